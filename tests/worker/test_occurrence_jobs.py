"""The worker's occurrence jobs, on both databases: state is built through the API with a
frozen clock, then the jobs run at explicit instants."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli import main
from app.core.clock import FixedClock
from app.core.config import Settings
from app.core.db import Database
from app.core.logging import JsonFormatter
from app.models import Assignment, Event, Occurrence
from app.services.schedules import jobs as occurrence_jobs
from app.services.schedules.jobs import extend_horizons, finish_assignments, mark_missed, open_due
from app.worker.jobs import JOBS, Job, transactional
from app.worker.loop import run_forever, run_once
from tests.homework_helpers import assign, freeze
from tests.world import World

BATCH = 200
SECOND = timedelta(seconds=1)
OPEN_ENDED = {
    "type": "recurring",
    "rrule": "FREQ=DAILY;BYHOUR=20;BYMINUTE=0",
    "start": "2026-11-22T20:00",
}


def at(instant: str) -> datetime:
    return datetime.fromisoformat(instant.replace("Z", "+00:00"))


async def run_job(world: World, job: Any, now: datetime) -> int:
    database: Database = world.app.state.database
    async with database.sessionmaker() as session, session.begin():
        handled: int = await job(session, now, BATCH)
        return handled


async def occurrences(world: World, assignment_id: str) -> list[Occurrence]:
    async with world.app.state.database.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(Occurrence)
                    .where(Occurrence.assignment_id == assignment_id)
                    .order_by(Occurrence.ordinal)
                )
            ).all()
        )


async def stored_assignment(world: World, assignment_id: str) -> Assignment:
    async with world.app.state.database.sessionmaker() as session:
        assignment = await session.get(Assignment, assignment_id)
        assert assignment is not None
        return assignment


async def events(world: World, event_type: str) -> list[Event]:
    async with world.app.state.database.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(Event).where(Event.type == event_type).order_by(Event.id)
                )
            ).all()
        )


async def set_status(world: World, occurrence_id: str, status: str) -> None:
    """Stands in for a completion (built elsewhere) or a client starting the work."""
    async with world.app.state.database.sessionmaker() as session, session.begin():
        await session.execute(
            update(Occurrence).where(Occurrence.id == occurrence_id).values(status=status)
        )


async def read(http: httpx.AsyncClient, world: World, assignment_id: str) -> dict[str, Any]:
    response = await http.get(
        f"/v1/assignments/{assignment_id}", headers=world.headers("clinician_a1")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_occurrence_opens_at_its_opening_time_and_is_missed_once_it_closes(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    schedule = {
        "type": "recurring",
        "rrule": "FREQ=DAILY;COUNT=1;BYHOUR=20;BYMINUTE=0",
        "start": "2026-11-23T20:00",
    }
    created = await assign(client, world, world.a.clients["A1"], schedule)
    assert created.status_code == 201, created.text
    assignment_id = created.json()["id"]
    (occurrence,) = created.json()["occurrences"]
    # Europe/London in November is UTC; the window is 12 hours either side of 20:00.
    assert occurrence["status"] == "upcoming"
    opens_at, closes_at = at(occurrence["opens_at"]), at(occurrence["closes_at"])
    assert (opens_at, closes_at) == (at("2026-11-23T08:00:00Z"), at("2026-11-24T08:00:00Z"))

    assert await run_job(world, open_due, opens_at - SECOND) == 0
    assert (await read(client, world, assignment_id))["occurrences"][0]["status"] == "upcoming"
    assert await run_job(world, open_due, opens_at) == 1
    assert (await read(client, world, assignment_id))["occurrences"][0]["status"] == "open"

    assert await run_job(world, mark_missed, closes_at - SECOND) == 0
    assert (await read(client, world, assignment_id))["occurrences"][0]["status"] == "open"
    assert await run_job(world, mark_missed, closes_at) == 1
    assert (await read(client, world, assignment_id))["occurrences"][0]["status"] == "missed"
    assert await run_job(world, mark_missed, closes_at + timedelta(days=1)) == 0

    (missed,) = await events(world, "occurrence.missed")
    assert missed.tenant_id == world.a.id
    assert missed.client_id == world.a.clients["A1"]
    assert missed.subject == {"assignment_id": assignment_id, "occurrence_id": occurrence["id"]}


async def test_started_work_is_missed_too_but_resolved_work_is_left_alone(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    schedule = {
        "type": "recurring",
        "rrule": "FREQ=DAILY;COUNT=3;BYHOUR=20;BYMINUTE=0",
        "start": "2026-11-22T20:00",
    }
    created = (await assign(client, world, world.a.clients["A1"], schedule)).json()
    started, completed, declined = (o["id"] for o in created["occurrences"])
    await set_status(world, started, "started")
    await set_status(world, completed, "completed")
    await set_status(world, declined, "declined")

    assert await run_job(world, mark_missed, at("2026-12-31T00:00:00Z")) == 1
    statuses = [o.status for o in await occurrences(world, created["id"])]
    assert statuses == ["missed", "completed", "declined"]
    assert [e.subject["occurrence_id"] for e in await events(world, "occurrence.missed")] == [
        started
    ]


async def test_an_open_ended_series_always_has_weeks_ahead_and_never_twice_the_same_day(
    client: httpx.AsyncClient, world: World
) -> None:
    created_at = at("2026-11-22T09:00:00Z")
    freeze(world, "2026-11-22T09:00:00Z")
    created = (await assign(client, world, world.a.clients["A1"], OPEN_ENDED)).json()
    assignment_id = created["id"]
    first = await occurrences(world, assignment_id)
    assert len(first) == 28  # 22 November to 19 December, each at 20:00
    assert first[-1].due_at == at("2026-12-19T20:00:00Z")

    # It has three weeks ahead until a week has passed: nothing to do before then.
    assert await run_job(world, extend_horizons, created_at + timedelta(days=7)) == 0

    now = created_at + timedelta(days=10)
    counts = await run_once(world.app.state.database, now, BATCH)
    assert counts["extend_horizons"] == 1
    series = await occurrences(world, assignment_id)
    assert [o.ordinal for o in series] == list(range(len(series)))
    days = [o.due_at.date() for o in series]
    assert len(set(days)) == len(days)
    assert series[-1].due_at > now + timedelta(days=27)
    assert series[-1].due_at <= now + timedelta(days=28)
    assert (await stored_assignment(world, assignment_id)).materialized_until == now + timedelta(
        days=28
    )
    # Everything whose window has passed was missed; the rest is open or upcoming.
    assert {o.status for o in series if o.closes_at <= now} == {"missed"}
    assert {o.status for o in series if o.opens_at > now} == {"upcoming"}
    # A second worker round at the same instant finds nothing to do and adds nothing.
    again = await run_once(world.app.state.database, now, BATCH)
    assert again == dict.fromkeys(again, 0)
    assert len(await occurrences(world, assignment_id)) == len(series)
    # The next extension is due when less than three weeks are left, exactly.
    next_due = now + timedelta(days=7)
    assert await run_job(world, extend_horizons, next_due) == 0
    assert await run_job(world, extend_horizons, next_due + SECOND) == 1
    assert len(await occurrences(world, assignment_id)) == len(series) + 7


async def test_a_window_that_passed_while_no_worker_ran_is_resolved_in_one_round(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    schedule = {
        "type": "recurring",
        "rrule": "FREQ=DAILY;COUNT=1;BYHOUR=20;BYMINUTE=0",
        "start": "2026-11-23T20:00",
    }
    created = (await assign(client, world, world.a.clients["A1"], schedule)).json()
    assert created["occurrences"][0]["status"] == "upcoming"
    counts = await run_once(world.app.state.database, at("2026-12-01T00:00:00Z"), BATCH)
    assert counts == {
        "extend_horizons": 0,
        "open_due": 1,
        "mark_missed": 1,
        "finish_assignments": 1,
        # Its 20:00 reminder came due too: claimed, then cancelled, since the work was missed.
        "fire_reminders": 1,
        # The assignment's events (created, missed): fanned out, to no endpoint here.
        "fan_out_events": 2,
        "dispatch_webhooks": 0,
        "prune_old_events": 0,
    }
    body = await read(client, world, created["id"])
    assert body["status"] == "expired" and body["occurrences"][0]["status"] == "missed"


async def test_a_missed_one_off_expires_without_an_event(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    once = {"type": "once", "due_at": "2026-11-23T18:00"}
    created = (await assign(client, world, world.a.clients["A1"], once)).json()
    (occurrence,) = created["occurrences"]
    assert occurrence["status"] == "open"  # a one-off opens when it is assigned
    closes_at = at(occurrence["closes_at"])

    before = await run_once(world.app.state.database, closes_at - SECOND, BATCH)
    assert before["finish_assignments"] == 0
    assert (await read(client, world, created["id"]))["status"] == "active"

    counts = await run_once(world.app.state.database, closes_at, BATCH)
    assert counts["mark_missed"] == 1 and counts["finish_assignments"] == 1
    body = await read(client, world, created["id"])
    assert body["status"] == "expired"
    assert body["occurrences"][0]["status"] == "missed"
    assert (await stored_assignment(world, created["id"])).ended_at == closes_at
    assert await events(world, "assignment.completed") == []
    assert len(await events(world, "occurrence.missed")) == 1


@pytest.mark.parametrize("done", ["completed", "partial"])
async def test_a_done_one_off_completes_with_its_event(
    client: httpx.AsyncClient, world: World, done: str
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    once = {"type": "once", "due_at": "2026-11-23T18:00"}
    created = (await assign(client, world, world.a.clients["A1"], once)).json()
    etag = (
        await client.get(f"/v1/assignments/{created['id']}", headers=world.headers("clinician_a1"))
    ).headers["ETag"]
    now = at("2026-11-22T10:00:00Z")
    assert await run_job(world, finish_assignments, now) == 0  # still open: not over yet
    await set_status(world, created["occurrences"][0]["id"], done)

    assert await run_job(world, finish_assignments, now) == 1
    assert await run_job(world, finish_assignments, now) == 0
    assert (await read(client, world, created["id"]))["status"] == "completed"
    assert (await stored_assignment(world, created["id"])).ended_at == now
    (completed,) = await events(world, "assignment.completed")
    assert completed.subject == {"assignment_id": created["id"]}
    assert completed.client_id == world.a.clients["A1"]
    # The ended assignment has a new ETag: an edit based on what was read before is refused.
    stale = await client.patch(
        f"/v1/assignments/{created['id']}",
        json={"title": "Too late"},
        headers={**world.headers("clinician_a1"), "If-Match": etag},
    )
    assert stale.status_code == 412


async def test_a_series_with_work_still_ahead_does_not_end(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    schedule = {
        "type": "recurring",
        "rrule": "FREQ=DAILY;COUNT=2;BYHOUR=20;BYMINUTE=0",
        "start": "2026-11-22T20:00",
    }
    created = (await assign(client, world, world.a.clients["A1"], schedule)).json()
    first, second = (o["id"] for o in created["occurrences"])
    await set_status(world, first, "completed")
    now = at("2026-11-23T09:00:00Z")  # the first has closed, the second is open
    counts = await run_once(world.app.state.database, now, BATCH)
    assert counts["finish_assignments"] == 0
    await set_status(world, second, "completed")
    counts = await run_once(world.app.state.database, now, BATCH)
    assert counts["finish_assignments"] == 1
    assert (await read(client, world, created["id"]))["status"] == "completed"


async def test_a_failing_job_is_logged_without_its_message_and_the_others_still_run(
    client: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    once = {"type": "once", "due_at": "2026-11-23T18:00"}
    await assign(client, world, world.a.clients["A1"], once)

    async def breaks(session: AsyncSession, now: datetime, batch_size: int) -> int:
        await occurrence_jobs.mark_missed(session, now, batch_size)
        raise ValueError("Client Jane Doe wrote: 'I felt overwhelmed'")

    jobs = [transactional("breaks", breaks), *JOBS]
    with caplog.at_level(logging.INFO, logger="homework.worker"):
        counts = await run_once(
            world.app.state.database, at("2026-12-01T00:00:00Z"), BATCH, jobs=jobs
        )
    # The broken batch was rolled back whole: the real job then misses the occurrence, once.
    assert counts == {
        "breaks": 0,
        "extend_horizons": 0,
        "open_due": 0,
        "mark_missed": 1,
        "finish_assignments": 1,
        "fire_reminders": 1,
        "fan_out_events": 2,
        "dispatch_webhooks": 0,
        "prune_old_events": 0,
    }
    assert len(await events(world, "occurrence.missed")) == 1
    assert await events(world, "reminder.due") == []
    (failure,) = [r for r in caplog.records if r.getMessage() == "worker job failed"]
    line = json.loads(JsonFormatter().format(failure))
    assert line["job"] == "breaks" and line["error"] == "builtins.ValueError"
    assert line["at"].startswith("worker/jobs.py:")  # the innermost frame of app/ code
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "Jane" not in logged and "overwhelmed" not in logged


async def test_run_forever_runs_each_job_on_its_own_and_stops_when_told(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A job stuck in one batch (a slow receiver, a long fan-out) holds back no other job."""
    stop = asyncio.Event()
    stuck = asyncio.Event()
    batches: list[int] = []

    async def never_returns(database: Database, now: datetime, batch_size: int) -> int:
        stuck.set()
        await stop.wait()
        return 0

    async def counts_batches(database: Database, now: datetime, batch_size: int) -> int:
        batches.append(1)
        if len(batches) == 3:
            stop.set()
        return 0

    fast = settings.model_copy(update={"worker_interval_seconds": 0.01})
    clock = FixedClock(at("2026-11-22T09:00:00Z"))
    jobs = [Job("stuck", never_returns), Job("count", counts_batches), *JOBS]
    with caplog.at_level(logging.INFO, logger="homework.worker"):
        await asyncio.wait_for(run_forever(fast, stop, jobs=jobs, clock=clock), timeout=10)
    assert stuck.is_set() and len(batches) == 3
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "worker started" and messages[-1] == "worker stopped"
    assert "worker job failed" not in messages


def _cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/worker.db"
    monkeypatch.setenv("HOMEWORK_DATABASE_URL", url)
    return url


async def _seed_overdue_one_off(url: str) -> None:
    """A one-off whose window closed long ago, written directly: the CLI runs on the real clock."""
    from app.core.config import Environment
    from app.models import Client, TemplateVersion
    from app.services import tenants

    database = Database(Settings(_env_file=None, env=Environment.test, database_url=url))  # type: ignore[call-arg]
    try:
        async with database.sessionmaker() as session, session.begin():
            issued = await tenants.create_tenant(session, "Cron")
            person = Client(
                tenant_id=issued.tenant_id, external_id="c1", time_zone="UTC", locale="en"
            )
            session.add(person)
            version = await session.scalar(
                select(TemplateVersion).where(TemplateVersion.template_id == "tpl_builtin_journal")
            )
            assert version is not None
            await session.flush()
            due = at("2020-01-01T12:00:00Z")
            assignment = Assignment(
                tenant_id=issued.tenant_id,
                client_id=person.id,
                template_id=version.template_id,
                template_version_id=version.id,
                kind="journal",
                title="t",
                instructions="i",
                schedule_type="once",
                starts_at=due,
                due_at=due,
                materialized_until=due,
                series_complete=True,
                opens_before_minutes=0,
                grace_minutes=60,
            )
            session.add(assignment)
            await session.flush()
            session.add(
                Occurrence(
                    tenant_id=issued.tenant_id,
                    assignment_id=assignment.id,
                    client_id=person.id,
                    ordinal=0,
                    due_at=due,
                    opens_at=due,
                    closes_at=due + timedelta(hours=1),
                    local_due="2020-01-01T12:00",
                    time_zone="UTC",
                    status="open",
                )
            )
    finally:
        await database.dispose()


def test_homework_worker_once_prints_its_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core.config import get_settings

    url = _cli_database(tmp_path, monkeypatch)
    get_settings.cache_clear()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    runner = CliRunner()
    try:
        assert runner.invoke(main, ["migrate", "upgrade"]).exit_code == 0
        asyncio.run(_seed_overdue_one_off(url))
        first = runner.invoke(main, ["worker", "--once"])
        assert first.exit_code == 0, first.output
        assert json.loads(first.output.splitlines()[-1]) == {
            "extend_horizons": 0,
            "open_due": 0,
            "mark_missed": 1,
            "finish_assignments": 1,
            "fire_reminders": 0,
            "fan_out_events": 1,
            "dispatch_webhooks": 0,
            "prune_old_events": 0,
        }
        second = runner.invoke(main, ["worker", "--once"])
        assert json.loads(second.output.splitlines()[-1])["mark_missed"] == 0
    finally:
        get_settings.cache_clear()
        root.handlers[:], root.level = handlers, level  # the command configures logging


def test_homework_worker_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/worker.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOMEWORK_")},
        "HOMEWORK_DATABASE_URL": url,
        "HOMEWORK_WORKER_INTERVAL_SECONDS": "0.05",
    }
    command = [sys.executable, "-c", "from app.cli import main; main()"]
    migrated = subprocess.run(
        [*command, "migrate", "upgrade"], env=env, capture_output=True, timeout=60, check=False
    )
    assert migrated.returncode == 0, migrated.stderr
    worker = subprocess.Popen(
        [*command, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        lines: list[dict[str, Any]] = []
        while not any(line["message"] == "worker started" for line in lines):
            raw = worker.stdout.readline()
            assert raw, worker.stderr.read() if worker.stderr else "no output"
            lines.append(json.loads(raw))
        worker.send_signal(signal.SIGTERM)
        remaining, errors = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, errors
    messages = [line["message"] for line in lines] + [
        json.loads(raw)["message"] for raw in remaining.splitlines()
    ]
    assert messages[0] == "worker started" and messages[-1] == "worker stopped"
