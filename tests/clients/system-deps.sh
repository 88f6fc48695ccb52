#!/usr/bin/env bash
# What the client tests need beyond Python, installed when missing: Debian's chromium and its
# matching chromium-driver (tests/clients/test_browser.py). As root through apt-get; as
# another user through `sudo -n` when that works, else one line saying what to run.
# (node 20 and npm come with the machine; the JS client's packages are installed by the test
# setup with `npm ci`.)
set -euo pipefail
command -v chromium >/dev/null && command -v chromedriver >/dev/null && exit 0
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "the browser test needs Debian's chromium and chromium-driver:" \
        "run 'sudo apt-get install chromium chromium-driver', then make test again" >&2
    exit 1
fi
echo "installing chromium and chromium-driver (apt-get) for the browser test"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends chromium chromium-driver >/dev/null
