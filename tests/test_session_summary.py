"""The session summary: a known fortnight of client A1's homework, summarised exactly.

Time is frozen and moved through the history. Rows record their own `created_at` with the real
clock, so the test sets it to the frozen timeline where the summary reads it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import update

from app.core.clock import FixedClock
from app.models import Adjustment, Assignment
from tests.homework_helpers import assign, count_queries, freeze
from tests.test_adherence import done, once, phq9, set_status
from tests.world import World

SUMMARY_QUERIES = 8  # client, assigned, items, flags, adjustments, helpfulness, scores, audit


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def set_created_at(world: World, model: Any, row_id: str, when: str) -> None:
    async with world.app.state.database.sessionmaker() as session, session.begin():
        await session.execute(update(model).where(model.id == row_id).values(created_at=at(when)))


async def propose(
    http: httpx.AsyncClient, world: World, assignment_id: str, created: str, **body: Any
) -> str:
    response = await http.post(
        f"/v1/assignments/{assignment_id}/adjustments",
        json=body,
        headers=world.headers("client_a1"),
    )
    assert response.status_code == 201, response.text
    adjustment_id: str = response.json()["id"]
    await set_created_at(world, Adjustment, adjustment_id, created)
    return adjustment_id


async def seed(http: httpx.AsyncClient, world: World) -> dict[str, Any]:
    """Client A1's history, October 20 to November 8 (now: 12:00 on the 8th)."""
    client_a1 = world.a.clients["A1"]
    clinician = world.headers("clinician_a1")
    clock: FixedClock = freeze(world, "2026-10-20T09:00:00Z")
    # Before the summary's week: a PHQ-9 of 14 whose item 9 raised a flag nobody has reviewed,
    # a GAD-7 of 8, and a reviewed flag.
    old_phq = await once(http, world, client_a1, "2026-10-20T12:00", "phq9")
    gad = await once(http, world, client_a1, "2026-10-20T12:00", "gad7")
    old_flag = await once(http, world, client_a1, "2026-10-20T20:00", "mood_log")
    weekend = await once(http, world, client_a1, "2026-10-31T20:00", "mood_log", title="Weekend")
    old_miss = await once(http, world, client_a1, "2026-10-30T20:00", "mood_log")
    for assignment in (old_phq, gad, old_flag, weekend, old_miss):
        await set_created_at(world, Assignment, assignment["id"], "2026-10-20T09:00:00Z")

    clock.at = at("2026-11-01T09:00:00Z")
    mood = (
        await assign(
            http,
            world,
            client_a1,
            {
                "type": "recurring",
                "rrule": "FREQ=DAILY;COUNT=5;BYHOUR=20;BYMINUTE=0",
                "start": "2026-11-01T20:00",
            },
            title="Evening mood",
        )
    ).json()
    days = [o["id"] for o in mood["occurrences"]]  # due 1-5 November, 20:00Z
    await set_created_at(world, Assignment, mood["id"], "2026-11-01T09:00:00Z")
    pending_before = await propose(
        http, world, mood["id"], "2026-10-30T10:00:00Z", instructions="Just the number"
    )
    declined = await propose(
        http, world, mood["id"], "2026-10-31T10:00:00Z", difficulty_step=1, note="Smaller please"
    )

    clock.at = at("2026-11-03T09:00:00Z")
    new = [
        await once(http, world, client_a1, "2026-11-05T18:00", "exposure", title="Bus, step 2"),
        await once(http, world, client_a1, "2026-11-07T12:00", "phq9", title="PHQ-9 check-in"),
        await once(
            http, world, client_a1, "2026-11-08T10:00", "mindfulness", title="Breathing space"
        ),
    ]
    for n, assignment in enumerate(new):
        await set_created_at(world, Assignment, assignment["id"], f"2026-11-03T09:0{n}:00Z")
    declining = await http.post(
        f"/v1/assignments/{mood['id']}/adjustments/{declined}/decline",
        json={"note": "Let us keep it as it is"},
        headers=clinician,
    )
    assert declining.status_code == 200, declining.text
    clock.at = at("2026-11-04T09:00:00Z")
    pending = await propose(
        http, world, mood["id"], "2026-11-04T09:00:00Z", title="Quick mood", note="Shorter"
    )

    clock.at = at("2026-11-08T12:00:00Z")
    ids: dict[str, Any] = {"mood": mood["id"], "new": [a["id"] for a in new], "days": days}
    ids["old_phq"] = (
        await done(http, world, old_phq["occurrences"][0]["id"], status="done",
                   answers={**phq9(13), "item_9": 1}, completed_at="2026-10-20T12:10:00Z")
    )["id"]  # fmt: skip
    await done(http, world, gad["occurrences"][0]["id"], status="done",
               answers={f"item_{n}": 1 for n in range(1, 8)} | {"item_1": 2},
               completed_at="2026-10-20T12:20:00Z")  # fmt: skip
    reviewed_old = await done(http, world, old_flag["occurrences"][0]["id"], status="not_done",
                              barriers=["felt_overwhelmed"],
                              completed_at="2026-10-20T21:00:00Z")  # fmt: skip
    await set_status(world, [old_miss["occurrences"][0]["id"]], "missed")
    ids["weekend"] = await done(http, world, weekend["occurrences"][0]["id"], status="done",
                                answers={"mood": 4}, helpfulness=4,
                                completed_at="2026-11-02T10:00:00Z")  # fmt: skip
    ids["d1"] = await done(http, world, days[0], status="done", answers={"mood": 6},
                           helpfulness=7, completed_at="2026-11-01T20:30:00Z")  # fmt: skip
    ids["d2"] = await done(http, world, days[1], status="partial", answers={}, helpfulness=5,
                           barriers=["too_hard"], barrier_note="Long day",
                           completed_at="2026-11-02T21:00:00Z")  # fmt: skip
    ids["d3"] = await done(http, world, days[2], status="not_done",
                           barriers=["felt_overwhelmed"], barrier_note="Too much",
                           completed_at="2026-11-03T21:00:00Z")  # fmt: skip
    await set_status(world, [days[3]], "missed")
    ids["d5"] = await done(http, world, days[4], status="done", answers={"mood": 8},
                           helpfulness=9, completed_at="2026-11-05T20:30:00Z")  # fmt: skip
    bus = {"step": "Bus two stops", "suds_before": 60, "suds_peak": 75, "suds_after": 25,
           "duration_minutes": 15}  # fmt: skip
    ids["exposure"] = await done(http, world, new[0]["occurrences"][0]["id"], status="done",
                                 answers=bus, helpfulness=6,
                                 completed_at="2026-11-05T19:00:00Z")  # fmt: skip
    ids["phq"] = await done(http, world, new[1]["occurrences"][0]["id"], status="done",
                            answers=phq9(9), completed_at="2026-11-07T12:10:00Z")  # fmt: skip
    for completion in (reviewed_old, ids["d3"]):
        reviewed = await http.post(
            f"/v1/completions/{completion['id']}/review",
            json={"feedback": "Talked it through"},
            headers=clinician,
        )
        assert reviewed.status_code == 200
    patched = await http.patch(
        f"/v1/clients/{client_a1}",
        json={"next_session_at": "2026-11-09T10:00:00Z"},
        headers=world.headers("system_a"),
    )
    assert patched.status_code == 200, patched.text
    ids["adjustments"] = {
        "pending_before": pending_before,
        "declined": declined,
        "pending": pending,
    }
    return ids


def item(
    ids: dict[str, Any],
    key: str,
    title: str,
    kind: str,
    due: str,
    status: str,
    completed_at: str | None = None,
    late: bool | None = False,
    helpfulness: int | None = None,
    barriers: list[str] | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    completion = ids.get(key)
    return {
        "occurrence_id": completion["occurrence_id"] if completion else ids["days"][3],
        "assignment_id": completion["assignment_id"] if completion else ids["mood"],
        "title": title,
        "kind": kind,
        "due_at": due,
        "status": status,
        "completion_id": completion["id"] if completion else None,
        "completed_at": completed_at,
        "late": late if completion else None,
        "helpfulness": helpfulness,
        "barriers": barriers or [],
        "barrier_note": note,
    }


async def test_the_summary_of_a_known_week(client: httpx.AsyncClient, world: World) -> None:
    ids = await seed(client, world)
    client_a1 = world.a.clients["A1"]
    response = await client.get(
        f"/v1/clients/{client_a1}/session-summary", headers=world.headers("clinician_a1")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_id"] == client_a1
    assert body["since"] == "2026-11-01T12:00:00Z" and body["until"] == "2026-11-08T12:00:00Z"
    assert body["next_session_at"] == "2026-11-09T10:00:00Z"
    # The mood log was assigned at 09:00 on the 1st, before the summary's week began.
    assigned = [
        (a["assignment_id"], a["title"], a["kind"], a["created_at"]) for a in body["assigned"]
    ]
    assert assigned == [
        (ids["new"][0], "Bus, step 2", "exposure", "2026-11-03T09:00:00Z"),
        (ids["new"][1], "PHQ-9 check-in", "phq9", "2026-11-03T09:01:00Z"),
        (ids["new"][2], "Breathing space", "mindfulness", "2026-11-03T09:02:00Z"),
    ]  # fmt: skip
    assert body["counts"] == {"done": 5, "partly_done": 1, "not_done": 2}
    # Done: the weekend log due before the week but done (late) in it, then by due time. The
    # breathing space due at 10:00 today is still open: not listed.
    assert body["done"] == [
        item(ids, "weekend", "Weekend", "mood_log", "2026-10-31T20:00:00Z", "completed",
             "2026-11-02T10:00:00Z", late=True, helpfulness=4),
        item(ids, "d1", "Evening mood", "mood_log", "2026-11-01T20:00:00Z", "completed",
             "2026-11-01T20:30:00Z", helpfulness=7),
        item(ids, "exposure", "Bus, step 2", "exposure", "2026-11-05T18:00:00Z", "completed",
             "2026-11-05T19:00:00Z", helpfulness=6),
        item(ids, "d5", "Evening mood", "mood_log", "2026-11-05T20:00:00Z", "completed",
             "2026-11-05T20:30:00Z", helpfulness=9),
        item(ids, "phq", "PHQ-9 check-in", "phq9", "2026-11-07T12:00:00Z", "completed",
             "2026-11-07T12:10:00Z"),
    ]  # fmt: skip
    assert body["partly_done"] == [
        item(ids, "d2", "Evening mood", "mood_log", "2026-11-02T20:00:00Z", "partial",
             "2026-11-02T21:00:00Z", helpfulness=5, barriers=["too_hard"], note="Long day"),
    ]  # fmt: skip
    assert body["not_done"] == [
        item(ids, "d3", "Evening mood", "mood_log", "2026-11-03T20:00:00Z", "declined",
             "2026-11-03T21:00:00Z", barriers=["felt_overwhelmed"], note="Too much"),
        item(ids, "missed", "Evening mood", "mood_log", "2026-11-04T20:00:00Z", "missed"),
    ]  # fmt: skip
    # The old flag nobody reviewed stays; this week's is shown, reviewed; the old reviewed one
    # is gone.
    assert [(f["completion_id"], f["reasons"], f["reviewed"]) for f in body["distress_flags"]] == [
        (ids["old_phq"], ["answer:/item_9"], False),
        (ids["d3"]["id"], ["barrier:felt_overwhelmed"], True),
    ]
    assert body["distress_flags"][1]["reviewed_at"] == "2026-11-08T12:00:00Z"
    adjustments = ids["adjustments"]
    assert [
        (a["adjustment_id"], a["status"], a["proposed"], a["note"], a["resolved_at"])
        for a in body["adjustments"]
    ] == [
        (adjustments["declined"], "declined", {"difficulty_step": 1}, "Smaller please",
         "2026-11-03T09:00:00Z"),
        (adjustments["pending"], "proposed", {"title": "Quick mood"}, "Shorter", None),
    ]  # fmt: skip
    assert {a["title"] for a in body["adjustments"]} == {"Evening mood"}
    # Rated completions made since: 4, 7, 5, 9, 6.
    assert body["mean_helpfulness"] == 6.2 and body["rated"] == 5
    assert body["measures"]["phq9"] == {
        "completion_id": ids["phq"]["id"],
        "completed_at": "2026-11-07T12:10:00Z",
        "score": 9,
        "severity": "mild",
        "previous_score": 14,
        "previous_severity": "moderate",
        "change": -5,
    }
    gad7 = body["measures"]["gad7"]
    assert (gad7["score"], gad7["severity"], gad7["previous_score"], gad7["change"]) == (
        8,
        "mild",
        None,
        None,
    )


async def test_since_narrows_the_summary(client: httpx.AsyncClient, world: World) -> None:
    ids = await seed(client, world)
    response = await client.get(
        f"/v1/clients/{world.a.clients['A1']}/session-summary",
        params={"since": "2026-11-05T00:00:00Z"},
        headers=world.headers("client_a1"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["assigned"] == [] and body["adjustments"] == []
    assert body["counts"] == {"done": 3, "partly_done": 0, "not_done": 0}
    assert [i["completion_id"] for i in body["done"]] == [
        ids["exposure"]["id"],
        ids["d5"]["id"],
        ids["phq"]["id"],
    ]
    assert [f["completion_id"] for f in body["distress_flags"]] == [ids["old_phq"]]
    assert body["mean_helpfulness"] == 7.5 and body["rated"] == 2
    # The latest scores do not depend on `since`.
    assert body["measures"]["phq9"]["change"] == -5


async def test_a_bad_since_is_422(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-08T12:00:00Z")
    url = f"/v1/clients/{world.a.clients['A1']}/session-summary"
    for since in ("2026-11-09T00:00:00Z", "2025-11-01T00:00:00Z", "2026-11-01T00:00:00"):
        response = await client.get(
            url, params={"since": since}, headers=world.headers("clinician_a1")
        )
        assert response.status_code == 422, since
        assert [e["pointer"] for e in response.json()["errors"]] == ["/since"]


async def test_who_may_read_a_session_summary(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-08T12:00:00Z")
    url = f"/v1/clients/{world.a.clients['A1']}/session-summary"
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
    trail = (
        await client.get(
            "/v1/audit-events",
            params={"client_id": world.a.clients["A1"]},
            headers=world.headers("system_a"),
        )
    ).json()["data"]
    # Clinician A2 and client A2 were refused a summary of the tenant's: denied, not hidden from
    # the trail; tenant B's probe left nothing (tests/test_audit_outcomes.py).
    assert sorted((e["actor_kind"], e["resource_type"], e["outcome"]) for e in trail) == [
        ("client", "session_summary", "allowed"),
        ("client", "session_summary", "denied"),
        ("clinician", "session_summary", "allowed"),
        ("clinician", "session_summary", "denied"),
        ("system", "session_summary", "allowed"),
    ]


async def test_the_summary_takes_a_fixed_number_of_queries(
    client: httpx.AsyncClient, world: World
) -> None:
    url = f"/v1/clients/{world.a.clients['A1']}/session-summary"
    freeze(world, "2026-11-08T12:00:00Z")
    with count_queries(world) as empty:
        first = await client.get(url, headers=world.headers("clinician_a1"))
    assert first.json()["counts"] == {"done": 0, "partly_done": 0, "not_done": 0}
    await seed(client, world)
    with count_queries(world) as full:
        seeded = await client.get(url, headers=world.headers("clinician_a1"))
    assert seeded.json()["counts"] == {"done": 5, "partly_done": 1, "not_done": 2}
    assert len(empty) == len(full) == SUMMARY_QUERIES, full
