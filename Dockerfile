# Wunder / hundi images. Targets (make images builds them all):
#   prod     wunder/hundi          slim runtime: venv only, non-root uid 10001, HEALTHCHECK
#   dev      wunder/hundi-dev      editable install at /src (compose bind-mounts the checkout
#                                  there, so local edits apply at once), debugpy on 5678
#   jupyter  wunder/hundi-jupyter  JupyterLab on 0.0.0.0:8888, token from JUPYTER_TOKEN only
# Every install step is scripts/install.sh, the script `make venv` (and so CI) runs too.
# No secret enters an image: .dockerignore admits source files only, never .*.env files.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- base: interpreter, the non-root user and the venv on PATH ---------------------------------
FROM ${PYTHON_IMAGE} AS base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 hundi \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/hundi \
       --shell /usr/sbin/nologin hundi

# --- build: compilers for any dependency without a wheel; the prod venv -------------------------
FROM base AS build
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc g++ libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# Dependencies first (their layer is reused until pyproject.toml or uv.lock changes), then hundi
# itself. Every package comes from uv.lock: the image holds exactly what CI tested.
COPY pyproject.toml uv.lock README.md ./
COPY scripts/install.sh scripts/uv-requirements.txt scripts/
RUN scripts/install.sh /opt/venv prod bootstrap deps
COPY src ./src
RUN scripts/install.sh /opt/venv prod self

# --- build-jupyter: the prod venv plus the notebooks extra (JupyterLab) ---------------------------
FROM build AS build-jupyter
RUN scripts/install.sh /opt/venv jupyter deps self

# --- prod ---------------------------------------------------------------------------------------
FROM base AS prod
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
RUN mkdir -p /app/data /app/logs /app/spool && chown -R 10001:10001 /app
# HUNDI_LOG_STREAM=stdout: every log line from INFO up on stdout, for the container's log
# pipeline (the file under /app/logs is still written).
ENV HUNDI_STORE=/app/data \
    HUNDI_LOG_PATH=/app/logs/hundi.log \
    HUNDI_LOG_STREAM=stdout \
    HUNDI_SPOOL_DIR=/app/spool
USER 10001:10001
# `hundi collect` (and `hundi serve`) rewrite HUNDI_HEALTH_FILE (default: health.json beside
# HUNDI_LOG_PATH, so a pod that moves its logs to a volume moves it too) every status interval;
# `hundi health` fails when it is stale, missing or reports a failing collector.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["hundi", "health", "--max-age", "30"]
ENTRYPOINT ["hundi"]
CMD ["--help"]

# --- dev: editable install; compose mounts the checkout over /src ------------------------------
FROM base AS dev
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc g++ libc6-dev git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY scripts/install.sh scripts/uv-requirements.txt scripts/
RUN scripts/install.sh /opt/venv dev bootstrap deps
COPY . .
# Editable: the venv points at /src/src, so the bind-mounted checkout is what runs.
RUN scripts/install.sh /opt/venv dev self \
    && mkdir -p /src/logs /src/data /src/spool && chown -R 10001:10001 /src
USER 10001:10001
# debugpy (make hundi-debug listens here)
EXPOSE 5678
CMD ["sleep", "infinity"]

# --- jupyter ------------------------------------------------------------------------------------
FROM base AS jupyter
COPY --from=build-jupyter /opt/venv /opt/venv
RUN install -d --owner 10001 --group 10001 /home/hundi/work
WORKDIR /home/hundi/work
COPY --chown=10001:10001 notebooks ./notebooks
USER 10001:10001
EXPOSE 8888
# The token comes from the environment only (Kubernetes Secret, compose .secret.jupyter.env):
# Jupyter reads JUPYTER_TOKEN itself, and the server refuses to start without one.
CMD ["bash", "-c", "test -n \"${JUPYTER_TOKEN:-}\" || { echo 'JUPYTER_TOKEN is not set (from .secret.jupyter.env or the jupyter Secret)' >&2; exit 2; }; exec jupyter lab --no-browser --ip=0.0.0.0 --port=8888 --port-retries=0 --ServerApp.root_dir=/home/hundi/work"]
