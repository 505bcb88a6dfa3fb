"""/metrics as production runs it: `homework serve --workers 2` (two API processes adding up
their values in one multi-process directory) and two `homework worker` processes on their own
ports, after a scripted flow with PHI markers in everything a client and a clinician write.

Every family is there with its promised labels, the values add up across processes (what the
API answered, whichever process answered it; what both workers delivered), and no marker
appears in any scrape or in any process's log.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.core.config import Settings
from app.core.keys import generate_pem
from tests.metrics_scrape import Samples, parse
from tests.served import free_port, homework, running, service_env
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.usefixtures("postgres_only")

MARK = f"PHI{uuid.uuid4().hex[:8]}"
MARKERS = {
    "external_id": f"{MARK}-external",
    "display_name": f"{MARK} Display Name",
    "note": f"{MARK} felt low after the call with my sister",
    "reflection": f"{MARK} reflection",
    "hook_path": f"/hook/{MARK}-token",
}
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
BY_EXTERNAL_ID = "urn:homework:token-type:client-external-id"
READS = 20
REQUESTS = "homework_http_request_duration_seconds_count"  # the histogram counts them


@dataclass
class Processes:
    ports: dict[str, int]  # api, worker_1, worker_2
    env: dict[str, str]


@pytest.fixture
def processes(settings: Settings, receiver: Receiver, tmp_path: Path) -> Iterator[Processes]:
    """Two API processes on one port and two workers, each worker with its probe port."""
    env = service_env(
        env="test",
        database_url=settings.database_url,
        embedded_worker="false",
        outbound_allow_http="true",
        outbound_allowed_hosts="127.0.0.1",
        worker_interval_seconds="0.2",
        metrics_backlog_seconds="0.5",
        rate_limit_token_failures="3/minute",
        # One key for both API processes (the test environment's is each process's own).
        signing_keys=json.dumps([{"alg": "ES256", "pem": generate_pem()}]),
    )
    ports = {"api": free_port(), "worker_1": free_port(), "worker_2": free_port()}
    with ExitStack() as stack:
        api = ["homework", "serve", "--workers", "2", "--no-migrate", "--port", str(ports["api"])]
        stack.enter_context(running(api, port=ports["api"], cwd=tmp_path, env=env))
        for name in ("worker_1", "worker_2"):
            worker_env = env | {"HOMEWORK_WORKER_PORT": str(ports[name])}
            command = ["homework", "worker"]
            stack.enter_context(running(command, port=ports[name], cwd=tmp_path, env=worker_env))
        yield Processes(ports, env)


def _scrape(port: int) -> tuple[str, Samples]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", trust_env=False).text
    return text, parse(text)


def _flow(api: str, issued: dict[str, str], receiver: Receiver) -> str:
    """A tenant's day in miniature; returns the client's id."""
    auth = (issued["client_id"], issued["client_secret"])
    with httpx.Client(base_url=api, trust_env=False) as http:
        token = http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
        system = {"Authorization": f"Bearer {token.json()['access_token']}"}
        endpoint = http.post(
            "/v1/webhook-endpoints",
            json={"url": receiver.url(MARKERS["hook_path"])},
            headers=system,
        )
        assert endpoint.status_code == 201, endpoint.text
        receiver.secrets = [endpoint.json()["secret"]]
        clinician = http.post(
            "/v1/clinicians", json={"external_id": f"{MARK}-cln"}, headers=system
        ).json()["id"]
        client = http.post(
            "/v1/clients",
            json={
                "external_id": MARKERS["external_id"],
                "display_name": MARKERS["display_name"],
                "time_zone": "Europe/London",
            },
            headers=system,
        ).json()["id"]
        http.post(
            f"/v1/clients/{client}/care-team", json={"clinician_id": clinician}, headers=system
        ).raise_for_status()
        due = datetime.now(ZoneInfo("Europe/London")) + timedelta(hours=1)
        assignment = http.post(
            "/v1/assignments",
            json={
                "client_id": client,
                "clinician_id": clinician,
                "template_id": "tpl_builtin_mood_log",
                "schedule": {"type": "once", "due_at": due.strftime("%Y-%m-%dT%H:%M")},
            },
            headers=system,
        )
        assert assignment.status_code == 201, assignment.text
        exchanged = http.post(
            "/oauth/token",
            data={
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": MARKERS["external_id"],
                "subject_token_type": BY_EXTERNAL_ID,
            },
            auth=auth,
        )
        assert exchanged.status_code == 200, exchanged.text
        as_client = {"Authorization": f"Bearer {exchanged.json()['access_token']}"}
        completed = http.post(
            "/v1/completions",
            json={
                "occurrence_id": assignment.json()["occurrences"][0]["id"],
                "status": "done",
                "answers": {"mood": 3, "emotions": ["sad"], "note": MARKERS["note"]},
                "reflection": MARKERS["reflection"],
                "helpfulness": 6,
            },
            headers=as_client,
        )
        assert completed.status_code == 201, completed.text
        refused = [
            http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(issued["client_id"], "wrong"),
            ).status_code
            for _ in range(10)
        ]
        assert 429 in refused
    # Each read on a connection of its own, so that both API processes answer some.
    for _ in range(READS):
        assert httpx.get(f"{api}/v1/clients/{client}", headers=system, trust_env=False).is_success
    return client


def test_every_family_adds_up_across_two_api_processes_and_two_workers(
    processes: Processes, receiver: Receiver, tmp_path: Path
) -> None:
    ports, env = processes.ports, processes.env
    issued = json.loads(homework("tenants", "create", f"{MARK} Clinic", cwd=tmp_path, env=env))
    client_id = _flow(f"http://127.0.0.1:{ports['api']}", issued, receiver)
    deadline = time.monotonic() + 30
    while len(receiver.requests) < 3 and time.monotonic() < deadline:  # created, assigned, done
        time.sleep(0.1)
    assert len(receiver.requests) >= 3
    time.sleep(1.5)  # a backlog reading after the last delivery was recorded

    scrapes = {name: _scrape(ports[name]) for name in ("api", "worker_1", "worker_2")}
    # Nothing the flow wrote, nor the receiver's URL, in any scrape or any process's log.
    logs = {path.name: path.read_text() for path in tmp_path.glob("server-*.log")}
    assert len(logs) == 3 and all(logs.values())
    for where, text in [*((name, text) for name, (text, _) in scrapes.items()), *logs.items()]:
        for marker in [*MARKERS.values(), MARK]:
            assert marker not in text, where
    for text, _ in scrapes.values():
        assert client_id not in text  # ids may be logged (the access log has none): not here

    api = scrapes["api"][1]
    reads = {"route": "/v1/clients/{client_id}", "method": "GET", "status": "2xx"}
    # Whichever process answers the scrape, it counts every process's requests.
    assert api.value(REQUESTS, **reads) == READS
    for _ in range(5):
        assert _scrape(ports["api"])[1].value(REQUESTS, **reads) == READS
    assert api.value(REQUESTS, **reads) == READS
    assert api.label_sets(REQUESTS) == {frozenset({"route", "method", "status"})}
    assert api.label_sets("homework_http_request_duration_seconds_bucket") == {
        frozenset({"route", "method", "status", "le"})
    }
    assert api.value("homework_token_verifications_total", issuer="ours", outcome="valid") > READS
    assert api.value("homework_rate_limit_rejections_total", policy="token-failures") >= 1
    assert {"homework_db_pool_connections_in_use", "homework_db_pool_waiting"} <= api.names()

    workers = [scrapes["worker_1"][1], scrapes["worker_2"][1]]
    attempts = sum(
        w.value("homework_webhook_attempts_total", outcome="delivered", circuit="closed")
        for w in workers
    )
    assert attempts == len(receiver.requests)  # each counted once, by the worker that sent it
    for worker in workers:
        jobs = worker.values_of("homework_worker_batches_total", "job")
        assert {"open_due", "mark_missed", "fire_reminders", "fan_out_events"} <= jobs
        assert worker.value("homework_worker_batches_total", job="open_due") >= 1
        assert worker.label_sets("homework_worker_batch_duration_seconds_bucket") == {
            frozenset({"job", "le"})
        }
        assert worker.values_of("homework_backlog_items", "queue") == {
            "reminders",
            "fan_out",
            "deliveries",
        }
        assert worker.value("homework_backlog_items", queue="deliveries") == 0
        assert worker.value("homework_backlog_oldest_age_seconds", queue="fan_out") == 0
        assert {
            "homework_webhook_endpoints_failing",
            "homework_webhook_endpoint_failing_longest_seconds",
            "homework_reminder_lateness_seconds_count",
            "homework_webhook_attempt_duration_seconds_count",
        } <= worker.names()
    assert set().union(*(w.values_of("homework_webhook_circuits", "state") for w in workers)) == {
        "open",
        "half_open",
    }
