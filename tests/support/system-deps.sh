#!/usr/bin/env bash
# What the suite needs beyond Python, installed when missing (Debian packages):
# - chromium and its matching chromium-driver: the browser test (tests/clients/test_browser.py);
# - prometheus (prometheus and promtool): the alert-rule unit tests and the real-Prometheus
#   test (tests/monitoring);
# - haproxy: the load balancer in front of the instances of the cluster test
#   (tests/resilience/test_cluster.py, `make cluster-smoke`).
# As root through apt-get; as another user through `sudo -n` when that works, else one line
# saying what to run. (node 20 and npm come with the machine; the JS client's packages are
# installed by the test setup with `npm ci`.)
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
{ command -v promtool >/dev/null && command -v prometheus >/dev/null; } || missing+=(prometheus)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "the test suite needs Debian's ${missing[*]}:" \
        "run 'sudo apt-get install ${missing[*]}', then make test again" >&2
    exit 1
fi
echo "installing ${missing[*]} (apt-get) for the test suite"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
