"""What the metrics cost a request of scenario (a), `GET /v1/me/homework`.

Such a request records, through the service's own functions: its latency and so its count
(`observe_request`) and one token verification. (The pool's connections in use are read once a
second, not counted per checkout, and callers waiting only while the pool is exhausted.) Those
calls are timed here on their own, in a
process of one's own, both as `homework serve` runs them with one process (values in memory)
and with `--workers N` (values in the files of PROMETHEUS_MULTIPROC_DIR, which
prometheus-client reads when it is first imported: hence a fresh interpreter for each). The
figure is set beside the service's own CPU time per request of (a) from the latest load run
(bench/results/latest.json): the goal is under 3 %.

    .venv/bin/python -m bench.metrics_cost        # also a step of `make bench`
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.rate_limit_cost import RESULTS, ours_ms_per_request

REQUESTS = 200_000
GOAL = 0.03
ROUTES = ("/v1/me/homework", "/v1/clients/{client_id}", "/v1/assignments/{assignment_id}")


def per_request_ms(requests: int) -> float:
    """Mean time of one request's metrics, in this process."""
    from app.core import metrics

    def one_request(n: int) -> None:
        metrics.series(metrics.TOKEN_VERIFICATIONS, "ours", "valid").inc()
        metrics.observe_request(ROUTES[n % 3], "GET", 200, 0.0012 + (n % 7) * 0.0003)

    for n in range(1000):  # warm up: every series exists, as under a steady load
        one_request(n)
    started = time.perf_counter()
    for n in range(requests):
        one_request(n)
    return (time.perf_counter() - started) * 1000 / requests


def _in_a_fresh_process(multiprocess_dir: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    if multiprocess_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir
    done = subprocess.run(
        [sys.executable, "-m", "bench.metrics_cost", "--measure"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


def main() -> None:
    if sys.argv[1:] == ["--measure"]:
        print(per_request_ms(REQUESTS))
        return
    figures: dict[str, Any] = {"requests": REQUESTS, "goal_share": GOAL}
    figures["one_process_ms"] = _in_a_fresh_process(None)
    with tempfile.TemporaryDirectory(prefix="homework-metrics-bench-") as directory:
        figures["multiprocess_ms"] = _in_a_fresh_process(directory)
    ours = ours_ms_per_request("a")
    figures["ours_server_cpu_ms_per_request"] = ours
    one, many = figures["one_process_ms"] * 1000, figures["multiprocess_ms"] * 1000
    line = f"metrics, scenario (a): {one:.1f} µs a request in one process, {many:.1f} µs with"
    line += " --workers N"
    if ours:
        figures["one_process_share"] = figures["one_process_ms"] / ours
        figures["multiprocess_share"] = figures["multiprocess_ms"] / ours
        line += (
            f" = {figures['one_process_share']:.1%} and {figures['multiprocess_share']:.1%} of"
            f" ours ({ours:.2f} ms; goal under {GOAL:.0%})"
        )
    print(line)
    (RESULTS / "metrics_cost.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
