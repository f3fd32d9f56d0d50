# syntax=docker/dockerfile:1
# The Writech dataflow image. Runs one Bytewax process of dataflow.py per
# container (deploy/entrypoint.sh); the same image serves the init-db Job, the
# report CronJob and the Bytewax Helm chart (see docs/operations.md).
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

# -- runtime: the virtualenv, the flow and the entrypoint, as a non-root user
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# tini: forwards signals to the Bytewax process (PID 1 ignores SIGTERM);
# tzdata: the school time zones (WRITECH_TIMEZONE, and `date` in the CronJob).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends tini tzdata \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 writech \
    && useradd --system --uid 10001 --gid writech --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin writech
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY dataflow.py ./
# The Bytewax chart runs `sh ./entrypoint.sh` and `sh ./entrypoint-recovery.sh`
# in the working directory: both are our entrypoint.
COPY deploy/entrypoint.sh ./entrypoint.sh
RUN ln -s entrypoint.sh entrypoint-recovery.sh
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    WRITECH_DATA_DIR=/tmp/writech \
    BYTEWAX_PYTHON_FILE_PATH=/app/dataflow.py \
    BYTEWAX_WORKDIR=/app \
    BYTEWAX_DATAFLOW_API_CACHE_PATH=/tmp
USER 10001:10001
# 9999: Bytewax processes talk to each other; 3030: /metrics and /dataflow
EXPOSE 9999 3030
ENTRYPOINT ["/usr/bin/tini", "--", "/app/entrypoint.sh"]
CMD ["run"]
