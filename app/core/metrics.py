"""Every Prometheus family the service exports, and their exposition at /metrics.

Labels are route templates, methods, status classes, job and queue names and outcomes: never a
raw path, a URL, a name or anything a client wrote. Tenant ids appear only in the families named
`homework_tenant_*`, and only with HOMEWORK_METRICS_TENANT_LABELS=true (a tenant count is
bounded; a client count is not, so no family is labelled by client).

One process, or many: `homework serve --workers N` points PROMETHEUS_MULTIPROC_DIR at a fresh
directory before uvicorn starts its processes (prometheus-client reads it when it is first
imported), each process writes its values there, and /metrics, whichever process answers it,
adds them all up. A process that ends takes its gauges with it (`forget_this_process`); its
counters stay counted. A `homework worker` process is scraped on its own port.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds: from a cached token's read to a slow receiver's whole attempt.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# A reminder's lateness: on time is under a second; a stalled worker shows in minutes and hours.
LATENESS_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)

# The API.
# Its `_count` is the request count: a counter beside it would cost every request once more.
REQUEST_SECONDS = Histogram(
    "homework_http_request_duration_seconds",
    "Requests answered and the time each took, by route template, method and status class.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
DB_POOL_IN_USE = Gauge(
    "homework_db_pool_connections_in_use",
    "Database connections checked out of this service's pools (read every second).",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "homework_db_pool_waiting",
    "Callers waiting for a database connection (the pool is exhausted while this is above 0).",
    multiprocess_mode="livesum",
)
RATE_LIMITED = Counter(
    "homework_rate_limit_rejections",
    "Requests refused with 429, by the policy that was spent.",
    ["policy"],
)
TOKEN_VERIFICATIONS = Counter(
    "homework_token_verifications",
    "Bearer tokens checked, by issuer (ours or a tenant's identity provider) and outcome.",
    ["issuer", "outcome"],
)

# The worker.
JOB_BATCHES = Counter("homework_worker_batches", "Batches a worker job ran.", ["job"])
JOB_ITEMS = Counter("homework_worker_items", "Rows a worker job handled.", ["job"])
JOB_FAILURES = Counter("homework_worker_failures", "Batches that failed, by job.", ["job"])
JOB_SECONDS = Histogram(
    "homework_worker_batch_duration_seconds",
    "Time one batch of a worker job took.",
    ["job"],
    buckets=LATENCY_BUCKETS,
)
BACKLOG = Gauge(
    "homework_backlog_items",
    "Work due now and not yet done, by queue (reminders, fan_out, deliveries); counted up to "
    "100,000.",
    ["queue"],
    multiprocess_mode="livemax",
)
BACKLOG_OLDEST = Gauge(
    "homework_backlog_oldest_age_seconds",
    "How long the oldest item of a queue has been due (0 when the queue is empty).",
    ["queue"],
    multiprocess_mode="livemax",
)
ENDPOINTS_FAILING = Gauge(
    "homework_webhook_endpoints_failing",
    "Enabled webhook endpoints whose latest attempts failed (none delivered since).",
    multiprocess_mode="livemax",
)
ENDPOINT_FAILING_LONGEST = Gauge(
    "homework_webhook_endpoint_failing_longest_seconds",
    "How long the longest-failing enabled endpoint has been failing (0 when none is).",
    multiprocess_mode="livemax",
)
DELIVERY_ATTEMPTS = Counter(
    "homework_webhook_attempts",
    "Webhook attempts, by outcome (delivered, rejected: an answer other than 2xx, unanswered, "
    "interrupted) and the endpoint's circuit when the attempt started (closed, probe).",
    ["outcome", "circuit"],
)
DELIVERY_SECONDS = Histogram(
    "homework_webhook_attempt_duration_seconds",
    "Time one webhook attempt took, answer included.",
    buckets=LATENCY_BUCKETS,
)
CIRCUITS = Gauge(
    "homework_webhook_circuits",
    "Endpoints whose circuit breaker is open or half-open, in this worker process.",
    ["state"],
    multiprocess_mode="livesum",
)
REMINDER_LATENESS = Histogram(
    "homework_reminder_lateness_seconds",
    "How long after its due time a reminder was sent.",
    buckets=LATENESS_BUCKETS,
)
TENANT_DELIVERY_ATTEMPTS = Counter(
    "homework_tenant_webhook_attempts",
    "Webhook attempts by tenant id and outcome (only with HOMEWORK_METRICS_TENANT_LABELS).",
    ["tenant_id", "outcome"],
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_DIR_VARIABLE)


def share_between_processes() -> None:
    """Before uvicorn starts several processes: a fresh directory for their values (unless one
    is given), removed at exit. A directory left from an earlier run would add its counts in."""
    if multiprocess_dir() is None:
        directory = tempfile.mkdtemp(prefix="homework-metrics-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ[MULTIPROCESS_DIR_VARIABLE] = directory


def _registry() -> CollectorRegistry:
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def exposition() -> bytes:
    """The text format of every family: this process's, or every process's that shares the
    multi-process directory."""
    return generate_latest(_registry())


def serve_on_port(host: str, port: int) -> None:
    """/metrics on a port of its own, from a thread of this process (`homework serve` with
    HOMEWORK_METRICS_PORT: the supervising process, which sees every worker's values)."""
    start_http_server(port, addr=host, registry=_registry())


def forget_this_process() -> None:
    """On a clean exit in multi-process mode: drop this process's gauges from the sums."""
    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


def status_class(status: int) -> str:
    return f"{status // 100}xx"


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def series(family: Any, *labels: str) -> Any:
    """`family.labels(*labels)`, kept: on the hot paths a label lookup (a lock and a tuple
    hash inside prometheus-client) would cost more than the increment itself."""
    key = (id(family), labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = family.labels(*labels)
    return child


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """One answered request. A method we do not serve is `other`, so that a caller cannot
    mint series."""
    labels = (route, method if method in _METHODS else "other", status_class(status))
    series(REQUEST_SECONDS, *labels).observe(seconds)
