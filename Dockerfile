# syntax=docker/dockerfile:1
# Ferry's operator image: `ferry run` by default; any other `ferry` subcommand works too
# (`docker run IMAGE plan --source ... --target ...`). Non-root (UID/GID 10001), and
# runs on a read-only root filesystem with a writable /tmp (as the Helm chart mounts it).
#
#   docker build -t ferry:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim

# --- deps: Ferry's dependencies (wheels only) in a relocatable venv ---
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ONLY_BINARY=:all:
RUN python -m venv /opt/ferry \
 && /opt/ferry/bin/pip install --upgrade pip setuptools wheel
WORKDIR /src
# Dependencies change less often than the code: their own stage, and in the runtime
# image their own layer, which a change to controller/ leaves as it is.
# The placeholder package's build/ and egg-info go with it: COPY keeps the sources'
# older mtimes, so setuptools would take the placeholder's build/lib as up to date.
COPY pyproject.toml README.md ./
RUN mkdir -p controller && touch controller/__init__.py \
 && /opt/ferry/bin/pip install --no-binary=ferry . \
 && /opt/ferry/bin/pip uninstall -y ferry setuptools wheel \
 && rm -rf build controller ./*.egg-info

# --- build: Ferry itself, as a wheel ---
FROM deps AS build
COPY controller ./controller
RUN /opt/ferry/bin/pip wheel --no-deps --no-binary=ferry --wheel-dir /wheels .

# --- runtime ---
FROM ${PYTHON_IMAGE}
# git and ssh: Migrations whose source is a Git repository (GitPython runs the git binary).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ferry \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
            --shell /usr/sbin/nologin ferry
COPY --from=deps /opt/ferry /opt/ferry
COPY --from=build /wheels /tmp/wheels
RUN /opt/ferry/bin/pip install --no-deps --no-index /tmp/wheels/*.whl \
 && /opt/ferry/bin/pip uninstall -y pip \
 && rm -rf /tmp/wheels \
 && /opt/ferry/bin/ferry --help >/dev/null
ENV PATH=/opt/ferry/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
WORKDIR /tmp
# 8080: liveness (/healthz), 9090: Prometheus metrics.
EXPOSE 8080 9090
ENTRYPOINT ["ferry"]
CMD ["run"]
