# The worker image: `celery -A tasks worker` for one pool (the stack passes each pool's command).
# Built by `cdk deploy` (Docker on your machine); the synthesized stack references it as an asset.

FROM python:3.13-slim-bookworm AS build
# pycurl (kombu's SQS transport) compiles against libcurl with OpenSSL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libcurl4-openssl-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYCURL_SSL_LIBRARY=openssl
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
# The worker is the core and the tasks: whole packages, so a new module needs no line here.
COPY dropq dropq
COPY tasks tasks
RUN pip install --no-binary pycurl . \
    && python -c "import pycurl, celery, PIL, pyarrow; print(pycurl.version)"

FROM python:3.13-slim-bookworm
# libcurl's runtime only: no compiler in the image that runs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcurl4 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --create-home dropq
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER dropq
# ECS stops a task with SIGTERM, then SIGKILL after the container's stop timeout: Celery's warm shutdown
# finishes running tasks, and releases the rest to other workers inside that window (tasks/shutdown.py).
STOPSIGNAL SIGTERM
CMD ["celery", "-A", "tasks", "worker", "--queues", "default", "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"]
