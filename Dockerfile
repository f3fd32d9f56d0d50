# syntax=docker/dockerfile:1
# The Writech image. Runs one Bytewax process of the packaged flow
# (writech.dataflow) per container (deploy/entrypoint.sh); the same image
# serves the init-db Job, the report CronJob, the teachers' web app, the
# Bytewax Helm chart and docker-compose.yml (see docs/operations.md).
#
#   docker build -t writech:dev .
#   docker run --rm writech:dev                      # the bundled sample, embedded stores in /tmp
#   docker run --rm writech:dev writech --help       # any other command

ARG PYTHON_VERSION=3.12

# -- build: the package and its dependencies in a virtualenv ---------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY writech ./writech
RUN /opt/venv/bin/pip install . \
    && /opt/venv/bin/python -m compileall -q /opt/venv

# -- runtime: the virtualenv (the flow is in it) and the entrypoint, as a non-root user
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# tini: forwards signals to the Bytewax process (PID 1 ignores SIGTERM);
# tzdata: the school time zones (WRITECH_TIMEZONE, and `date` in the CronJob).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends tini tzdata \
    && rm -rf /var/lib/apt/lists/*
# The Bytewax chart runs `sh -c "sh ./entrypoint.sh"`, bypassing ENTRYPOINT:
# dash would stay PID 1 and ignore SIGTERM; bash execs the command, so the
# entrypoint becomes PID 1 and hands it to tini.
# hadolint ignore=DL4005
RUN ln -sf bash /bin/sh
# /var/recovery: the recovery store's mount point, owned by the user so that
# a fresh named volume (docker-compose.yml) takes that owner.
RUN groupadd --system --gid 10001 writech \
    && useradd --system --uid 10001 --gid writech --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin writech \
    && install -d -o writech -g writech /var/recovery
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The Bytewax chart runs `sh ./entrypoint.sh` and `sh ./entrypoint-recovery.sh`
# in the working directory: both are our entrypoint.
COPY deploy/entrypoint.sh ./entrypoint.sh
RUN ln -s entrypoint.sh entrypoint-recovery.sh
# No BYTEWAX_DATAFLOW_API_CACHE_PATH: Bytewax then writes dataflow.json into
# the working directory, the writable one in the chart's job mode; the
# manifests and docker-compose.yml point it at their /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    WRITECH_DATA_DIR=/tmp/writech
USER 10001:10001
# 9999: Bytewax processes talk to each other; 3030: /metrics and /dataflow;
# 8080: the teachers' web app (`writech serve`)
EXPOSE 9999 3030 8080
ENTRYPOINT ["/usr/bin/tini", "--", "/app/entrypoint.sh"]
CMD ["run"]
