# syntax=docker/dockerfile:1
# Build stage: install the locked dependencies and the app into a virtual environment.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN /opt/venv/bin/pip install --no-deps .

# Runtime stage: only the virtual environment, run as an unprivileged user.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOMEWORK_ENV=production
RUN useradd --system --uid 10001 --home-dir /srv homework && mkdir -p /srv && chown homework /srv
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
USER homework
# 8000: `homework serve` (the API, /healthz, /readyz, /metrics). 8001: `homework worker`'s
# /healthz and /metrics when HOMEWORK_WORKER_PORT=8001 (deploy/compose.yaml, deploy/kubernetes/).
EXPOSE 8000 8001
# Liveness, not readiness: /healthz answers without the database. On /readyz a database outage
# would mark every container unhealthy at once and an orchestrator acting on it would restart
# them all, for nothing (each recovers on its own when the database is back). The API's; a
# worker container overrides it with its own port (deploy/compose.yaml).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["homework", "serve", "--host", "0.0.0.0", "--port", "8000"]
