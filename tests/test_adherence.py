"""Adherence and the caseload: exact figures from a history whose answers are known.

Client A1 (Europe/London, UTC in November) keeps a daily mood log for ten days, does two
exposure practices and three PHQ-9s; one reading is cancelled, a mindfulness practice is still
open and a journal entry is due tomorrow. Time is frozen: the history is built by the API, and
what the worker would do (mark work missed) is done in the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select, update

from app.core.ids import new_id
from app.models import AuditEvent, CareTeamMember, Client, Occurrence
from tests.homework_helpers import assign, complete, count_queries, freeze, new_client
from tests.world import World

NO_BARRIERS = {
    "forgot": 0,
    "no_time": 0,
    "too_hard": 0,
    "felt_overwhelmed": 0,
    "not_relevant": 0,
    "unclear_instructions": 0,
    "other": 0,
}
ADHERENCE_QUERIES = 6  # client, figures by kind, counted statuses, SUDS, scores, audit
CASELOAD_QUERIES = 4  # clinician, clients with their completion figures, occurrences, audit


def barriers(**counts: int) -> dict[str, int]:
    return {**NO_BARRIERS, **counts}


def phq9(total: int) -> dict[str, int]:
    answers = {f"item_{n}": 0 for n in range(1, 10)}
    left = total
    for n in range(1, 9):
        answers[f"item_{n}"] = min(3, left)
        left -= answers[f"item_{n}"]
    return answers


async def set_status(world: World, occurrence_ids: Iterable[str], status: str) -> None:
    """What the worker does when a window closes with nothing recorded."""
    async with world.app.state.database.sessionmaker() as session, session.begin():
        await session.execute(
            update(Occurrence).where(Occurrence.id.in_(list(occurrence_ids))).values(status=status)
        )


async def once(
    http: httpx.AsyncClient, world: World, client_id: str, due: str, template: str, **extra: Any
) -> dict[str, Any]:
    response = await assign(
        http,
        world,
        client_id,
        {"type": "once", "due_at": due},
        template=f"tpl_builtin_{template}",
        **extra,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def done(
    http: httpx.AsyncClient, world: World, occurrence_id: str, role: str = "client_a1", **body: Any
) -> dict[str, Any]:
    response = await complete(http, world, occurrence_id, role=role, **body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def seed_history(http: httpx.AsyncClient, world: World) -> dict[str, Any]:
    client_a1 = world.a.clients["A1"]
    clock = freeze(world, "2026-11-01T09:00:00Z")
    mood = (
        await assign(
            http,
            world,
            client_a1,
            {
                "type": "recurring",
                "rrule": "FREQ=DAILY;COUNT=10;BYHOUR=20;BYMINUTE=0",
                "start": "2026-11-01T20:00",
            },
        )
    ).json()
    days = [o["id"] for o in mood["occurrences"]]  # due 1-10 November, 20:00Z
    assert len(days) == 10
    phq = [
        (await once(http, world, client_a1, f"2026-11-{d}T12:00", "phq9"))["occurrences"][0]["id"]
        for d in ("02", "06", "10")
    ]
    exposure = [
        (await once(http, world, client_a1, f"2026-11-{d}T12:00", "exposure"))["occurrences"][0][
            "id"
        ]
        for d in ("04", "09")
    ]
    reading = await once(http, world, client_a1, "2026-11-05T12:00", "reading")
    cancelled = await http.post(
        f"/v1/assignments/{reading['id']}/cancel", headers=world.headers("clinician_a1")
    )
    assert cancelled.status_code == 200
    # Due before now but still within its window: not counted yet.
    await once(http, world, client_a1, "2026-11-12T10:00", "mindfulness")
    # Due after now.
    await once(http, world, client_a1, "2026-11-12T20:00", "journal")

    clock.at = datetime(2026, 11, 12, 12, tzinfo=UTC)
    # The mood log: done, done, partial, done late, declined, missed, (nothing), done, done,
    # partial. Helpfulness 6, 8, 4, 7, 2, -, -, 9, 5, 3.
    await done(http, world, days[0], status="done", answers={"mood": 6}, helpfulness=6,
               completed_at="2026-11-01T20:30:00Z")  # fmt: skip
    await done(http, world, days[1], status="done", answers={"mood": 7}, helpfulness=8,
               completed_at="2026-11-02T20:30:00Z")  # fmt: skip
    await done(http, world, days[2], status="partial", answers={}, helpfulness=4,
               barriers=["no_time"], completed_at="2026-11-03T21:00:00Z")  # fmt: skip
    late = await done(http, world, days[3], status="done", answers={"mood": 5}, helpfulness=7,
                      completed_at="2026-11-05T09:00:00Z")  # fmt: skip
    assert late["late"] is True  # its window closed at 08:00
    await done(http, world, days[4], status="not_done", helpfulness=2,
               barriers=["forgot", "no_time"], barrier_note="Busy week",
               completed_at="2026-11-05T21:00:00Z")  # fmt: skip
    await set_status(world, [days[5]], "missed")
    # days[6] stays as it was: its window closed at 08:00 on the 8th, so it counts as missed.
    await done(http, world, days[7], status="done", answers={"mood": 8}, helpfulness=9,
               completed_at="2026-11-08T20:10:00Z")  # fmt: skip
    await done(http, world, days[8], status="done", answers={"mood": 6}, helpfulness=5,
               completed_at="2026-11-09T20:10:00Z")  # fmt: skip
    await done(http, world, days[9], status="partial", answers={"mood": 4}, helpfulness=3,
               barriers=["too_hard"], completed_at="2026-11-10T20:30:00Z")  # fmt: skip
    for occurrence, score, day in zip(phq, (15, 10, 6), ("02", "06", "10"), strict=True):
        await done(http, world, occurrence, status="done", answers=phq9(score),
                   completed_at=f"2026-11-{day}T12:05:00Z")  # fmt: skip
    bus = {"step": "Ride the bus two stops", "suds_before": 60, "suds_peak": 80,
           "suds_after": 30, "duration_minutes": 20}  # fmt: skip
    first = await done(http, world, exposure[0], status="done", answers=bus, helpfulness=7,
                       completed_at="2026-11-04T12:30:00Z")  # fmt: skip
    town = {"step": "Ride the bus into town", "suds_before": 70, "suds_peak": 85}
    second = await done(http, world, exposure[1], status="partial", answers=town, helpfulness=9,
                        barriers=["too_hard"], completed_at="2026-11-09T12:40:00Z")  # fmt: skip
    return {"exposure": [first["id"], second["id"]]}


def figures(
    counted: int,
    completed: int,
    on_time: int,
    streak: tuple[int, int],
    rate: float | None,
    on_time_rate: float | None,
    mean_helpfulness: float | None,
    rated: int,
    **barrier_counts: int,
) -> dict[str, Any]:
    return {
        "counted": counted,
        "completed": completed,
        "completion_rate": rate,
        "on_time": on_time,
        "imported": 0,
        "on_time_rate": on_time_rate,
        "current_streak": streak[0],
        "best_streak": streak[1],
        "mean_helpfulness": mean_helpfulness,
        "rated": rated,
        "barriers": barriers(**barrier_counts),
    }


async def test_adherence_of_a_known_history(client: httpx.AsyncClient, world: World) -> None:
    seeded = await seed_history(client, world)
    client_a1 = world.a.clients["A1"]
    response = await client.get(
        f"/v1/clients/{client_a1}/adherence", headers=world.headers("clinician_a1")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["from"] == "2026-10-15T12:00:00Z" and body["to"] == "2026-11-12T12:00:00Z"
    assert body["as_of"] == "2026-11-12T12:00:00Z"
    # 15 counted: 10 mood logs (the one never recorded counts as missed), 3 PHQ-9s, 2
    # exposures; the cancelled reading and the still-open mindfulness do not count.
    assert body["overall"] == figures(
        15, 12, 11, (5, 6), 0.8, 0.9167, 6.0, 10, no_time=2, forgot=1, too_hard=2
    )
    assert body["by_kind"] == {
        "exposure": figures(2, 2, 2, (2, 2), 1.0, 1.0, 8.0, 2, too_hard=1),
        "mindfulness": figures(0, 0, 0, (0, 0), None, None, None, 0),
        "mood_log": figures(10, 7, 6, (3, 4), 0.7, 0.8571, 5.5, 8, no_time=2, forgot=1, too_hard=1),
        "phq9": figures(3, 3, 3, (3, 3), 1.0, 1.0, None, 0),
    }
    # Weeks from the window's start, 15 October noon: nothing due in the first two; 1-5
    # November noon holds four mood logs, a PHQ-9 and an exposure, all done; the last week the
    # rest (mood logs 5-7 not done).
    assert [(w["start"], w["counted"], w["completed"], w["completion_rate"])
            for w in body["by_week"]] == [
        ("2026-10-15T12:00:00Z", 0, 0, None),
        ("2026-10-22T12:00:00Z", 0, 0, None),
        ("2026-10-29T12:00:00Z", 6, 6, 1.0),
        ("2026-11-05T12:00:00Z", 9, 6, 0.6667),
    ]  # fmt: skip
    assert body["by_week"][-1]["end"] == body["to"]
    assert body["exposure"] == [
        {
            "completion_id": seeded["exposure"][0],
            "completed_at": "2026-11-04T12:30:00Z",
            "status": "done",
            "step": "Ride the bus two stops",
            "suds_before": 60,
            "suds_peak": 80,
            "suds_after": 30,
        },
        {
            "completion_id": seeded["exposure"][1],
            "completed_at": "2026-11-09T12:40:00Z",
            "status": "partial",
            "step": "Ride the bus into town",
            "suds_before": 70,
            "suds_peak": 85,
            "suds_after": None,
        },
    ]
    phq9_series = [(p["completed_at"], p["score"], p["severity"]) for p in body["measures"]["phq9"]]
    assert phq9_series == [
        ("2026-11-02T12:05:00Z", 15, "moderately_severe"),
        ("2026-11-06T12:05:00Z", 10, "moderate"),
        ("2026-11-10T12:05:00Z", 6, "mild"),
    ]
    assert body["measures"]["gad7"] == []

    # The client sees the same figures about themself.
    own = await client.get(f"/v1/clients/{client_a1}/adherence", headers=world.headers("client_a1"))
    assert own.status_code == 200 and own.json()["overall"] == body["overall"]


async def test_the_window_bounds_are_respected(client: httpx.AsyncClient, world: World) -> None:
    await seed_history(client, world)
    url = f"/v1/clients/{world.a.clients['A1']}/adherence"
    headers = world.headers("clinician_a1")
    # Due on 3-7 November: mood logs 3 (partial), 4 (late), 5 (declined), 6 (missed), 7 (never
    # recorded), the first exposure and the second PHQ-9.
    middle = (
        await client.get(
            url,
            params={"from": "2026-11-03T00:00:00Z", "to": "2026-11-08T00:00:00Z"},
            headers=headers,
        )
    ).json()
    assert middle["overall"] == figures(7, 4, 3, (0, 3), 0.5714, 0.75, 5.0, 4, no_time=2, forgot=1)
    assert [(w["counted"], w["completed"]) for w in middle["by_week"]] == [(7, 4)]  # one, short
    assert sorted(middle["by_kind"]) == ["exposure", "mood_log", "phq9"]
    assert [p["completed_at"] for p in middle["exposure"]] == ["2026-11-04T12:30:00Z"]
    assert [p["score"] for p in middle["measures"]["phq9"]] == [10]
    # A window reaching into tomorrow: the open mindfulness and tomorrow's journal are due in it
    # but not counted.
    ahead = (
        await client.get(
            url,
            params={"from": "2026-11-12T00:00:00Z", "to": "2026-11-13T00:00:00Z"},
            headers=headers,
        )
    ).json()
    assert ahead["overall"]["counted"] == 0 and ahead["overall"]["completion_rate"] is None
    assert sorted(ahead["by_kind"]) == ["journal", "mindfulness"]
    # `from` alone: up to now.
    since = (await client.get(url, params={"from": "2026-11-09T00:00:00Z"}, headers=headers)).json()
    assert since["to"] == "2026-11-12T12:00:00Z" and since["overall"]["counted"] == 4


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"from": "2025-01-01T00:00:00Z", "to": "2026-01-03T00:00:00Z"}, "/from"),
        ({"from": "2026-11-10T00:00:00Z", "to": "2026-11-10T00:00:00Z"}, "/from"),
        ({"from": "2026-11-13T00:00:00Z"}, "/from"),
        ({"from": "2026-11-01T00:00:00"}, "/from"),
        ({"to": "yesterday"}, "/to"),
    ],
)
async def test_a_bad_window_is_422(
    client: httpx.AsyncClient, world: World, params: dict[str, str], pointer: str
) -> None:
    freeze(world, "2026-11-12T12:00:00Z")
    response = await client.get(
        f"/v1/clients/{world.a.clients['A1']}/adherence",
        params=params,
        headers=world.headers("clinician_a1"),
    )
    assert response.status_code == 422, response.text
    assert pointer in {e["pointer"] for e in response.json()["errors"]}


async def test_exactly_366_days_is_allowed(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-12T12:00:00Z")
    response = await client.get(
        f"/v1/clients/{world.a.clients['A1']}/adherence",
        params={"from": "2025-11-11T12:00:00Z", "to": "2026-11-12T12:00:00Z"},
        headers=world.headers("system_a"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["overall"] == figures(0, 0, 0, (0, 0), None, None, None, 0)


async def test_who_may_read_a_clients_adherence(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-12T12:00:00Z")
    url = f"/v1/clients/{world.a.clients['A1']}/adherence"
    for role, status in [
        ("system_a", 200),
        ("clinician_a1", 200),
        ("client_a1", 200),
        ("clinician_a2", 404),
        ("client_a2", 404),
        ("system_b", 404),
        ("no_scope", 403),
        ("expired", 401),
    ]:
        response = await client.get(url, headers=world.headers(role))
        assert response.status_code == status, (role, response.text)
    unknown = await client.get(
        "/v1/clients/clt_nobody/adherence", headers=world.headers("system_a")
    )
    assert unknown.status_code == 404


async def test_each_read_is_audited(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-12T12:00:00Z")
    client_a1 = world.a.clients["A1"]
    await client.get(f"/v1/clients/{client_a1}/adherence", headers=world.headers("clinician_a1"))
    trail = (
        await client.get(
            "/v1/audit-events", params={"client_id": client_a1}, headers=world.headers("system_a")
        )
    ).json()["data"]
    assert [(e["action"], e["resource_type"], e["actor_id"]) for e in trail] == [
        ("read", "adherence", world.a.clinicians["A1"])
    ]


async def test_adherence_takes_a_fixed_number_of_queries(
    client: httpx.AsyncClient, world: World
) -> None:
    client_a1 = world.a.clients["A1"]
    url = f"/v1/clients/{client_a1}/adherence"
    clock = freeze(world, "2026-11-01T09:00:00Z")
    first = await once(client, world, client_a1, "2026-11-01T20:00", "mood_log")
    await done(client, world, first["occurrences"][0]["id"], status="done", answers={"mood": 5})
    clock.at = datetime(2026, 11, 27, 12, tzinfo=UTC)
    with count_queries(world) as one:
        small = await client.get(url, headers=world.headers("clinician_a1"))
    assert small.json()["overall"]["completed"] == 1

    # 49 more, of every kind the endpoint reads differently: 24 mood logs, 20 exposures, 5 PHQ-9s.
    clock.at = datetime(2026, 11, 1, 9, tzinfo=UTC)
    series = []
    for template, count in (("mood_log", 24), ("exposure", 20)):
        created = await assign(
            client,
            world,
            client_a1,
            {
                "type": "recurring",
                "rrule": f"FREQ=DAILY;COUNT={count};BYHOUR=21;BYMINUTE=0",
                "start": "2026-11-01T21:00",
            },
            template=f"tpl_builtin_{template}",
        )
        series.append((template, created.json()["occurrences"]))
    measures = [
        (await once(client, world, client_a1, f"2026-11-0{d}T12:00", "phq9"))["occurrences"]
        for d in range(1, 6)
    ]
    clock.at = datetime(2026, 11, 27, 12, tzinfo=UTC)
    answers = {
        "mood_log": {"mood": 5},
        "exposure": {
            "step": "Lift",
            "suds_before": 50,
            "suds_peak": 70,
            "suds_after": 20,
            "duration_minutes": 5,
        },
        "phq9": phq9(4),
    }
    for template, occurrences in [*series, *(("phq9", m) for m in measures)]:
        for occurrence in occurrences:
            await done(
                client,
                world,
                occurrence["id"],
                status="done",
                answers=answers[template],
                helpfulness=6,
                completed_at=occurrence["due_at"],
            )
    with count_queries(world) as fifty:
        big = await client.get(url, headers=world.headers("clinician_a1"))
    body = big.json()
    assert body["overall"]["completed"] == 50 and len(body["exposure"]) == 20
    assert len(body["measures"]["phq9"]) == 5
    assert len(one) == len(fifty) == ADHERENCE_QUERIES, fifty


# The caseload


async def _client_on_a1s_team(http: httpx.AsyncClient, world: World, name: str) -> str:
    return await new_client(http, world, "Europe/London", display_name=name)


async def test_the_caseload_puts_those_most_in_need_first(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    names = ["flag2", "flag1", "missed3", "missed1", "falling", "rising"]
    ids = {name: await _client_on_a1s_team(client, world, name) for name in names}
    ids["quiet"] = world.a.clients["A1"]  # nothing at all

    async def one_off(name: str, day: int, template: str = "mood_log") -> str:
        created = await once(client, world, ids[name], f"2026-11-{day}T20:00", template)
        occurrence_id: str = created["occurrences"][0]["id"]
        return occurrence_id

    async def record(name: str, day: int, **body: Any) -> dict[str, Any]:
        occurrence = await one_off(name, day)
        # Recorded in session by the clinician: a client token per client is not needed.
        return await done(client, world, occurrence, role="clinician_a1",
                          completed_at=f"2026-11-{day}T20:30:00Z", **body)  # fmt: skip

    overwhelmed = {"status": "not_done", "barriers": ["felt_overwhelmed"]}
    await record("flag2", 19, **overwhelmed)
    await record("flag2", 20, **overwhelmed)
    reviewed = await record("flag1", 19, **overwhelmed)
    assert (
        await client.post(
            f"/v1/completions/{reviewed['id']}/review",
            json={"feedback": "We talked"},
            headers=world.headers("clinician_a1"),
        )
    ).status_code == 200
    await record(
        "flag1", 20, status="partial", answers={}, barriers=["felt_overwhelmed"], helpfulness=2
    )
    await record("missed3", 12, status="done", answers={"mood": 5}, helpfulness=5)
    gone = [await one_off("missed3", day) for day in (16, 17)]
    await set_status(world, gone, "missed")
    await one_off("missed3", 18)  # never recorded; its window closed at 08:00 on the 19th
    await one_off("missed3", 22)  # due tonight: open, not counted
    await record("missed1", 17, status="done", answers={"mood": 6}, helpfulness=6)
    await record("missed1", 19, status="not_done", barriers=["forgot"])
    await record("falling", 10, status="done", answers={"mood": 7}, helpfulness=8)
    await record("falling", 18, status="done", answers={"mood": 3}, helpfulness=3)
    await record("rising", 10, status="done", answers={"mood": 3}, helpfulness=4)
    await record("rising", 18, status="done", answers={"mood": 8}, helpfulness=9)

    response = await client.get(
        f"/v1/clinicians/{world.a.clinicians['A1']}/caseload",
        headers=world.headers("clinician_a1"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["clinician_id"] == world.a.clinicians["A1"]
    assert body["as_of"] == "2026-11-22T12:00:00Z"
    by_id = {v: k for k, v in ids.items()}
    rows = [
        (
            by_id[r["client_id"]],
            r["open_distress_flags"],
            r["missed_in_a_row"],
            r["helpfulness_recent"],
            r["helpfulness_previous"],
            r["helpfulness_trend"],
            r["completion_rate_28d"],
            r["last_completed_at"],
        )
        for r in body["clients"]
    ]
    assert rows == [
        ("flag2", 2, 2, None, None, None, 0.0, None),
        ("flag1", 1, 0, 2.0, None, None, 0.5, "2026-11-20T20:30:00Z"),
        ("missed3", 0, 3, None, 5.0, None, 0.25, "2026-11-12T20:30:00Z"),
        ("missed1", 0, 1, 6.0, None, None, 0.5, "2026-11-17T20:30:00Z"),
        ("falling", 0, 0, 3.0, 8.0, -5.0, 1.0, "2026-11-18T20:30:00Z"),
        ("quiet", 0, 0, None, None, None, None, None),
        ("rising", 0, 0, 9.0, 4.0, 5.0, 1.0, "2026-11-18T20:30:00Z"),
    ]
    external = {r["client_id"]: r["external_id"] for r in body["clients"]}
    assert external[ids["quiet"]] == "A-clt-1"
    assert all(r["next_session_at"] is None for r in body["clients"])

    # The audit trail: one row per client listed.
    trail = (
        await client.get(
            "/v1/audit-events",
            params={"actor_id": world.a.clinicians["A1"], "limit": 200},
            headers=world.headers("system_a"),
        )
    ).json()["data"]
    listed = [e for e in trail if e["resource_type"] == "caseload"]
    assert sorted(e["client_id"] for e in listed) == sorted(ids.values())
    assert {e["resource_id"] for e in listed} == {world.a.clinicians["A1"]}


async def test_who_may_read_a_caseload(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    url = f"/v1/clinicians/{world.a.clinicians['A1']}/caseload"
    for role, status in [
        ("system_a", 200),
        ("clinician_a1", 200),
        ("clinician_a2", 404),  # another clinician's caseload, even in the same tenant
        ("client_a1", 403),  # clients hold adherence.r, not adherence.s
        ("client_a2", 403),
        ("system_b", 404),
        ("no_scope", 403),
    ]:
        response = await client.get(url, headers=world.headers(role))
        assert response.status_code == status, (role, response.text)
    own = await client.get(
        f"/v1/clinicians/{world.a.clinicians['A2']}/caseload", headers=world.headers("clinician_a2")
    )
    assert [r["client_id"] for r in own.json()["clients"]] == [world.a.clients["A2"]]
    seen = await client.get(url, headers=world.headers("system_a"))
    assert [r["client_id"] for r in seen.json()["clients"]] == [world.a.clients["A1"]]


async def _add_clients_to_a1s_team(world: World, count: int) -> list[str]:
    """`count` clients on clinician A1's care team, inserted in two statements."""
    tenant = world.a.id
    ids = [new_id("clt") for _ in range(count)]
    async with world.app.state.database.sessionmaker() as session, session.begin():
        await session.execute(
            insert(Client),
            [
                {
                    "id": client_id,
                    "tenant_id": tenant,
                    "external_id": f"bulk-{n}",
                    "time_zone": "Europe/London",
                    "locale": "en-GB",
                    "version": 1,
                }
                for n, client_id in enumerate(ids)
            ],
        )
        await session.execute(
            insert(CareTeamMember),
            [
                {
                    "client_id": client_id,
                    "clinician_id": world.a.clinicians["A1"],
                    "tenant_id": tenant,
                }
                for client_id in ids
            ],
        )
    return ids


@pytest.mark.parametrize("role", ["clinician_a1", "system_a"])
async def test_the_caseload_takes_a_fixed_number_of_queries(
    client: httpx.AsyncClient, world: World, role: str
) -> None:
    freeze(world, "2026-11-22T12:00:00Z")
    url = f"/v1/clinicians/{world.a.clinicians['A1']}/caseload"
    with count_queries(world) as one:
        small = await client.get(url, headers=world.headers(role))
    assert len(small.json()["clients"]) == 1

    bulk = await _add_clients_to_a1s_team(world, 499)
    for n, client_id in enumerate(bulk[:5]):
        created = await once(client, world, client_id, "2026-11-20T20:00", "mood_log")
        occurrence = created["occurrences"][0]["id"]
        if n % 2:
            await done(client, world, occurrence, role="clinician_a1", status="not_done",
                       barriers=["felt_overwhelmed"])  # fmt: skip
        else:
            await done(client, world, occurrence, role="clinician_a1", status="done",
                       answers={"mood": 5}, helpfulness=n)  # fmt: skip
    with count_queries(world) as five_hundred:
        big = await client.get(url, headers=world.headers(role))
    assert big.status_code == 200, big.text
    rows = big.json()["clients"]
    assert len(rows) == 500
    # The two overwhelmed clients come first, each with one open flag.
    assert {r["client_id"] for r in rows[:2]} == {bulk[1], bulk[3]}
    assert [r["open_distress_flags"] for r in rows[:3]] == [1, 1, 0]
    assert len(one) == len(five_hundred) == CASELOAD_QUERIES, five_hundred
    async with world.app.state.database.sessionmaker() as session:
        audited = await session.scalar(
            select(func.count()).where(AuditEvent.resource_type == "caseload")
        )
    assert audited == 501
