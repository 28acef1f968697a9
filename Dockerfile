# syntax=docker/dockerfile:1
# Bank gateway image.  Build:  docker build -t kbnn-bank-gateway .
#
# Runs `gateway run` as the non-root user `gateway` (uid 10001) in /app
# (GATEWAY_HOME): conf/ and schemas/ are shipped read-only, var/ (SQLite
# database, outbox files) and keys/ (signing keys, mounted or generated) are
# writable.  Mount a volume on /app/var to keep the database, and the real
# keys on /app/keys.  The private key's passphrase comes from
# GATEWAY_KEY_PASSPHRASE or, better, a mounted secret named by
# GATEWAY_KEY_PASSPHRASE_FILE (e.g. /run/secrets/gateway-key-passphrase).
# Partners reached by file exchange need their folders mounted where
# conf/partners/<name>.toml [files] says (or reached over SFTP, with the SSH
# key mounted and the host key pinned in the profile).
#
# python-xmlsec's wheel bundles libxmlsec1 and the same libxml2 as lxml's
# wheel (both pinned in pyproject.toml), so no system XML library is needed.
# Likewise psycopg's binary wheel bundles libpq: PostgreSQL is an external
# service in production, named by GATEWAY_DB_URL (postgresql://...), and
# nothing of it is installed in this image (scripts/postgres is for
# development and tests only).
#
# The default broker URL expects a RabbitMQ container named `rabbitmq`.  The
# official rabbitmq image allows guest from other hosts; any other broker
# needs a real user in GATEWAY_AMQP_URL.
#
# Metrics: `gateway run` serves Prometheus metrics on port 9464 at /metrics
# (README "Operations: metrics").  Outside a container the gateway binds them
# to 127.0.0.1; in this image they listen on all of the container's addresses
# (GATEWAY_METRICS_ADDRESS=0.0.0.0), since only the container network reaches
# them: point a scrape job at <container>:9464 (publish with -p 9464:9464
# only towards the monitoring network).  GATEWAY_METRICS_PORT=0 serves none.

# --- build stage: install the package and its dependencies into a venv -----
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv

WORKDIR /src
# README.md is part of the package metadata (pyproject `readme`).
COPY pyproject.toml README.md ./
COPY gateway/ gateway/
COPY schemas/ schemas/
COPY conf/ conf/
RUN /opt/venv/bin/pip install --no-cache-dir .

# --- runtime stage ------------------------------------------------------------
FROM python:3.11-slim-bookworm

ENV PATH=/opt/venv/bin:$PATH \
    GATEWAY_AMQP_URL=amqp://guest:guest@rabbitmq:5672/%2F \
    GATEWAY_HOME=/app \
    GATEWAY_METRICS_ADDRESS=0.0.0.0 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN useradd --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin gateway

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Owned by root: the service reads these and never writes them.
COPY schemas/ schemas/
COPY conf/ conf/
COPY keys/README.md keys/README.md
RUN mkdir -p var \
    && chown gateway:gateway var keys \
    && chmod 0750 var keys

# Numeric, so that orchestrators (Kubernetes runAsNonRoot) can verify it is
# not root; 10001 is the `gateway` user created above.
USER 10001:10001

# `gateway status` exits 0 when the database is readable.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["gateway", "status"]

# Prometheus metrics (see the note at the top for the bind address); the operations console
# when console_with_run is set (bound to console_address, 127.0.0.1 unless changed).
EXPOSE 9464 8470

CMD ["gateway", "run"]
