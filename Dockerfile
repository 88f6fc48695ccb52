# syntax=docker/dockerfile:1
# The production image: gunicorn with one gevent worker (gunicorn.conf.py), non-root, ready
# for a read-only root filesystem (writes only to /tmp and /dev/shm). See docs/deploy.md.
#
#   docker build -t python-base-04:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#
# The base is pinned by tag; pin it by digest too once you can resolve it
# (`docker buildx imagetools inspect python:3.11.14-slim-bookworm`), e.g.
# --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- builder: the runtime dependencies in a virtual environment --------------------------------
FROM ${PYTHON_IMAGE} AS builder
# Behind a private index: --build-arg PIP_INDEX_URL=https://... and, for its CA, PIP_CERT=<a
# bundle inside the build, e.g. mounted with -v>. Declared in this stage only: nothing of
# them reaches the runtime image.
ARG PIP_INDEX_URL
ARG PIP_CERT
# Swagger UI (/docs, off in prod by default) is an optional extra: DOCS=true keeps it.
ARG DOCS=false
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
# The hash-locked runtime requirements (`make lock`): the exact files the tests ran with.
COPY requirements.lock /tmp/requirements.lock
# Wheels only (no compiler in a slim image), except psycogreen: pure Python, sdist only.
# Then out with what only installing needs (pip, setuptools) and, unless DOCS, Swagger UI.
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: \
        --no-binary=psycogreen -r /tmp/requirements.lock \
    && if [ "$DOCS" != "true" ]; then /opt/venv/bin/pip uninstall --yes swagger-ui-py; fi \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# -- runtime -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG PYTHON_IMAGE
LABEL org.opencontainers.image.title="python-base-04" \
      org.opencontainers.image.description="Flask backend framework: JWT REST, API-key service calls and Socket.IO rooms" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=prod \
    HOST=0.0.0.0 \
    PORT=8000 \
    LOG_FORMAT=json

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

# The base's own pip and setuptools (python:*-slim ships them) are not needed at run time.
RUN if python -m pip --version >/dev/null 2>&1; then \
        python -m pip uninstall --yes --disable-pip-version-check pip setuptools wheel; \
    fi

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# What is copied is decided by .dockerignore (an allow-list: no tests, dev stack or secrets).
# Secret files are mounted at /app/secrets (SECRETS_DIR's default, ./secrets) at run time.
COPY . .
# Byte-code compiled at build time: nothing is written at run time (read-only root).
RUN python -m compileall -q /app

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000 9464 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8000'), timeout=3)"]
ENTRYPOINT ["gunicorn", "--config", "/app/gunicorn.conf.py"]
CMD ["app:app"]
