"""Assignments through the API: who may assign, what gets scheduled, what changes it."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from app.models import Event
from app.services.template_catalog import BUILTIN_TEMPLATES
from tests.homework_helpers import assign, count_queries, due_times, freeze, new_client
from tests.world import World

DAILY = {
    "type": "recurring",
    "rrule": "FREQ=DAILY;COUNT=5;BYHOUR=20;BYMINUTE=0",
    "start": "2026-11-22T20:00",
}


async def _events(world: World, **where: Any) -> list[Event]:
    async with world.app.state.database.sessionmaker() as session:
        statement = select(Event).order_by(Event.id)
        for column, value in where.items():
            statement = statement.where(getattr(Event, column) == value)
        return list((await session.scalars(statement)).all())


async def test_a_clinician_assigns_personal_homework(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    response = await assign(
        client,
        world,
        world.a.clients["A1"],
        DAILY,
        title="Evening mood check",
        purpose="So we can see what lifts your mood, as we said",
        difficulty_step=2,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("asg_")
    assert body["clinician_id"] == world.a.clinicians["A1"]
    assert body["kind"] == "mood_log" and body["status"] == "active"
    assert body["template"]["id"] == "tpl_builtin_mood_log"
    assert body["title"] == "Evening mood check" and body["difficulty_step"] == 2
    assert body["schedule"] == {
        "type": "recurring",
        "rrule": "FREQ=DAILY;BYHOUR=20;BYMINUTE=0;COUNT=5",  # stored in canonical order
        "start_local": "2026-11-22T20:00",
        "due_at": None,
    }
    # Europe/London in November is UTC.
    assert due_times(body) == [f"2026-11-{d}T20:00:00Z" for d in (22, 23, 24, 25, 26)]
    first = body["occurrences"][0]
    assert first["status"] == "open" and first["closes_at"] == "2026-11-23T08:00:00Z"
    assert body["occurrences"][1]["status"] == "upcoming"
    (created,) = await _events(world, type="assignment.created")
    assert created.subject == {"assignment_id": body["id"]}
    assert created.client_id == world.a.clients["A1"]


async def test_instructions_and_title_default_to_the_template(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await assign(
        client,
        world,
        world.a.clients["A1"],
        {"type": "once", "due_at": "2026-12-01T18:00"},
        template="tpl_builtin_thought_record",
    )
    body = response.json()
    assert body["title"] == BUILTIN_TEMPLATES["thought_record"].name
    assert body["instructions"] == BUILTIN_TEMPLATES["thought_record"].instructions


async def test_system_assigns_on_behalf_of_a_clinician_on_the_team(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")  # DAILY starts that evening
    client_a1 = world.a.clients["A1"]
    missing = await assign(client, world, client_a1, DAILY, role="system_a")
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["pointer"] == "/clinician_id"
    off_team = await assign(
        client, world, client_a1, DAILY, role="system_a", clinician_id=world.a.clinicians["A2"]
    )
    assert off_team.status_code == 422
    on_team = await assign(
        client, world, client_a1, DAILY, role="system_a", clinician_id=world.a.clinicians["A1"]
    )
    assert on_team.status_code == 201


async def test_a_clinician_cannot_assign_outside_their_care_team(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await assign(client, world, world.a.clients["A2"], DAILY)
    assert response.status_code == 404
    elsewhere = await assign(client, world, world.b.clients["B1"], DAILY)
    assert elsewhere.status_code == 404


async def test_bad_schedules_are_422_naming_the_field(
    client: httpx.AsyncClient, world: World
) -> None:
    client_a1 = world.a.clients["A1"]
    monthly = await assign(
        client,
        world,
        client_a1,
        {"type": "recurring", "rrule": "FREQ=MONTHLY", "start": "2026-12-01T09:00"},
    )
    assert monthly.status_code == 422
    (error,) = monthly.json()["errors"]
    assert error["pointer"] == "/schedule/rrule" and "MONTHLY" in error["message"]
    no_session = await assign(client, world, client_a1, {"type": "before_next_session"})
    assert no_session.status_code == 422
    unknown_type = await assign(client, world, client_a1, {"type": "someday"})
    assert unknown_type.status_code == 422
    unknown_template = await assign(client, world, client_a1, DAILY, template="tpl_nope")
    assert unknown_template.status_code == 404


async def test_before_the_next_session_follows_the_booking(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    client_id = await new_client(
        client, world, "America/New_York", next_session_at="2026-11-26T15:00:00Z"
    )
    created = await assign(client, world, client_id, {"type": "before_next_session"})
    assert due_times(created.json()) == ["2026-11-26T15:00:00Z"]
    await client.patch(
        f"/v1/clients/{client_id}",
        json={"next_session_at": "2026-11-27T16:00:00Z"},
        headers=world.headers("clinician_a1"),
    )
    moved = await client.get(
        f"/v1/assignments/{created.json()['id']}", headers=world.headers("clinician_a1")
    )
    assert due_times(moved.json()) == ["2026-11-27T16:00:00Z"]


async def test_an_idempotent_retry_creates_exactly_one(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")  # DAILY starts that evening
    headers = {**world.headers("clinician_a1"), "Idempotency-Key": "assign-once"}
    body = {
        "client_id": world.a.clients["A1"],
        "template_id": "tpl_builtin_mood_log",
        "schedule": DAILY,
    }
    first = await client.post("/v1/assignments", json=body, headers=headers)
    second = await client.post("/v1/assignments", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    listed = await client.get("/v1/assignments", headers=world.headers("system_a"))
    assert len(listed.json()["data"]) == 1
    assert len(await _events(world, type="assignment.created")) == 1


async def test_listing_with_occurrences_takes_a_fixed_number_of_queries(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    client_a1 = world.a.clients["A1"]
    params = {"include": "occurrences", "limit": 100}
    await assign(client, world, client_a1, DAILY)
    with count_queries(world) as one:
        small = await client.get(
            "/v1/assignments", params=params, headers=world.headers("clinician_a1")
        )
    for _ in range(99):
        await assign(client, world, client_a1, DAILY)
    with count_queries(world) as hundred:
        big = await client.get(
            "/v1/assignments", params=params, headers=world.headers("clinician_a1")
        )
    assert len(small.json()["data"]) == 1 and len(big.json()["data"]) == 100
    assert all(len(a["occurrences"]) == 5 for a in big.json()["data"])
    assert len(one) == len(hundred) == 3, hundred  # assignments, their occurrences, the audit rows


async def test_filters(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    client_a1 = world.a.clients["A1"]
    mood = (await assign(client, world, client_a1, DAILY)).json()
    reading = (
        await assign(
            client,
            world,
            client_a1,
            {"type": "once", "due_at": "2026-12-10T12:00"},
            template="tpl_builtin_reading",
        )
    ).json()
    system = world.headers("system_a")

    async def ids(**params: str) -> list[str]:
        response = await client.get("/v1/assignments", params=params, headers=system)
        return [a["id"] for a in response.json()["data"]]

    assert await ids(kind="reading") == [reading["id"]]
    assert await ids(client_id=client_a1) == [reading["id"], mood["id"]]
    assert await ids(client_id=world.a.clients["A2"]) == []
    assert await ids(due_from="2026-12-01T00:00:00Z") == [reading["id"]]
    assert await ids(due_to="2026-11-23T00:00:00Z") == [mood["id"]]
    await client.post(f"/v1/assignments/{mood['id']}/cancel", headers=system)
    assert await ids(status="cancelled") == [mood["id"]]
    assert await ids(status="active") == [reading["id"]]


async def test_changing_the_rule_moves_only_what_has_not_opened(
    client: httpx.AsyncClient, world: World
) -> None:
    clock = freeze(world, "2026-11-22T09:00:00Z")
    created = (await assign(client, world, world.a.clients["A1"], DAILY)).json()
    etag = (
        await client.get(f"/v1/assignments/{created['id']}", headers=world.headers("clinician_a1"))
    ).headers["etag"]
    clock.at = clock.at.replace(day=23, hour=10)
    changed = await client.patch(
        f"/v1/assignments/{created['id']}",
        json={
            "title": "Mood check, mornings",
            "schedule": {
                "type": "recurring",
                "rrule": "FREQ=DAILY;COUNT=5;BYHOUR=9;BYMINUTE=0",
                "start": "2026-11-22T20:00",
            },
        },
        headers={**world.headers("clinician_a1"), "If-Match": etag},
    )
    assert changed.status_code == 200, changed.text
    # The 22nd and the 23rd (already open at 10:00 on the 23rd) stay at 20:00. The new rule is
    # a new series from now: five at 09:00, numbered after the two kept.
    assert due_times(changed.json()) == [
        "2026-11-22T20:00:00Z",
        "2026-11-23T20:00:00Z",
        *[f"2026-11-{day}T09:00:00Z" for day in (24, 25, 26, 27, 28)],
    ]
    assert [o["ordinal"] for o in changed.json()["occurrences"]] == list(range(7))
    (updated,) = await _events(world, type="assignment.updated")
    assert updated.changed_fields == ["schedule", "title"]
    stale = await client.patch(
        f"/v1/assignments/{created['id']}",
        json={"title": "again"},
        headers={**world.headers("clinician_a1"), "If-Match": etag},
    )
    assert stale.status_code == 412


async def test_cancel_resolves_what_is_left(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    created = (await assign(client, world, world.a.clients["A1"], DAILY)).json()
    by_client = await client.post(
        f"/v1/assignments/{created['id']}/cancel", headers=world.headers("client_a1")
    )
    assert by_client.status_code == 403
    cancelled = await client.post(
        f"/v1/assignments/{created['id']}/cancel", headers=world.headers("clinician_a1")
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert {o["status"] for o in cancelled.json()["occurrences"]} == {"cancelled"}
    assert len(await _events(world, type="assignment.cancelled")) == 1
    again = await client.patch(
        f"/v1/assignments/{created['id']}",
        json={"title": "x"},
        headers=world.headers("clinician_a1"),
    )
    assert again.status_code == 409


async def test_a_client_proposes_a_smaller_step_and_the_clinician_accepts(
    client: httpx.AsyncClient, world: World
) -> None:
    clock = freeze(world, "2026-11-22T09:00:00Z")
    created = (await assign(client, world, world.a.clients["A1"], DAILY, difficulty_step=3)).json()
    url = f"/v1/assignments/{created['id']}/adjustments"
    proposal = await client.post(
        url,
        json={
            "note": "Every day is too much right now",
            "difficulty_step": 1,
            "rrule": "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=20;BYMINUTE=0;COUNT=4",
        },
        headers=world.headers("client_a1"),
    )
    assert proposal.status_code == 201, proposal.text
    adjustment = proposal.json()
    assert adjustment["status"] == "proposed"
    by_clinician = await client.post(
        url, json={"title": "x"}, headers=world.headers("clinician_a1")
    )
    assert by_clinician.status_code == 403
    self_accept = await client.post(
        f"{url}/{adjustment['id']}/accept", json={}, headers=world.headers("client_a1")
    )
    assert self_accept.status_code == 403

    clock.at = clock.at.replace(hour=12)
    accepted = await client.post(
        f"{url}/{adjustment['id']}/accept",
        json={"note": "Good call"},
        headers=world.headers("clinician_a1"),
    )
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "accepted"
    after = (
        await client.get(f"/v1/assignments/{created['id']}", headers=world.headers("client_a1"))
    ).json()
    assert after["difficulty_step"] == 1
    # Sunday the 22nd's (already open) stays; then four on Mondays and Thursdays at 20:00.
    assert due_times(after) == [
        "2026-11-22T20:00:00Z",
        "2026-11-23T20:00:00Z",
        "2026-11-26T20:00:00Z",
        "2026-11-30T20:00:00Z",
        "2026-12-03T20:00:00Z",
    ]
    types = [e.type for e in await _events(world)]
    assert types == [
        "assignment.created",
        "adjustment.proposed",
        "assignment.updated",
        "adjustment.resolved",
    ]
    twice = await client.post(
        f"{url}/{adjustment['id']}/decline", json={}, headers=world.headers("clinician_a1")
    )
    assert twice.status_code == 409
    listed = await client.get(url, headers=world.headers("clinician_a1"))
    assert [a["id"] for a in listed.json()] == [adjustment["id"]]


async def test_declining_changes_nothing(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-22T09:00:00Z")  # DAILY starts that evening
    created = (await assign(client, world, world.a.clients["A1"], DAILY)).json()
    url = f"/v1/assignments/{created['id']}/adjustments"
    proposal = (
        await client.post(url, json={"title": "Shorter"}, headers=world.headers("client_a1"))
    ).json()
    declined = await client.post(
        f"{url}/{proposal['id']}/decline", json={}, headers=world.headers("clinician_a1")
    )
    assert declined.json()["status"] == "declined"
    after = (
        await client.get(f"/v1/assignments/{created['id']}", headers=world.headers("client_a1"))
    ).json()
    assert after["title"] == created["title"]
    empty = await client.post(url, json={"note": "just a note"}, headers=world.headers("client_a1"))
    assert empty.status_code == 422


async def test_another_client_cannot_see_or_adjust(client: httpx.AsyncClient, world: World) -> None:
    freeze(world, "2026-11-22T09:00:00Z")  # DAILY starts that evening
    created = (await assign(client, world, world.a.clients["A1"], DAILY)).json()
    for method, path in (("GET", ""), ("GET", "/occurrences"), ("POST", "/adjustments")):
        response = await client.request(
            method,
            f"/v1/assignments/{created['id']}{path}",
            json={"title": "x"} if method == "POST" else None,
            headers=world.headers("client_a2"),
        )
        assert response.status_code == 404, path


async def test_my_homework_is_today_in_my_time_zone(
    client: httpx.AsyncClient, world: World
) -> None:
    clock = freeze(world, "2026-11-22T09:00:00Z")
    client_id = await new_client(client, world, "Asia/Kathmandu")
    await assign(
        client,
        world,
        client_id,
        {
            "type": "recurring",
            "rrule": "FREQ=DAILY;COUNT=3;BYHOUR=20;BYMINUTE=0",
            "start": "2026-11-22T20:00",
        },
        purpose="To notice what helps",
    )
    token = world.token_for(
        world.a, __import__("app.core.scopes", fromlist=["Context"]).Context.client, client_id
    )
    headers = {"Authorization": f"Bearer {token}"}
    today = (await client.get("/v1/me/homework", headers=headers)).json()
    assert today["date"] == "2026-11-22" and today["time_zone"] == "Asia/Kathmandu"
    (item,) = today["items"]
    assert item["occurrence"]["local_due"] == "2026-11-22T20:00"
    assert item["purpose"] == "To notice what helps"
    assert item["kind"] == "mood_log" and item["estimated_minutes"] > 0
    assert item["response_schema"]["type"] == "object"
    # 21:00 local is 15:15Z: still the 22nd there, and the same item.
    clock.at = clock.at.replace(hour=15, minute=15)
    assert len((await client.get("/v1/me/homework", headers=headers)).json()["items"]) == 1
    # 00:30 on the 23rd local: yesterday's (open until 08:00) and today's.
    clock.at = clock.at.replace(hour=18, minute=45)
    later = (await client.get("/v1/me/homework", headers=headers)).json()
    assert later["date"] == "2026-11-23"
    assert [i["occurrence"]["local_due"] for i in later["items"]] == [
        "2026-11-22T20:00",
        "2026-11-23T20:00",
    ]
    not_a_client = await client.get("/v1/me/homework", headers=world.headers("clinician_a1"))
    assert not_a_client.status_code == 403


async def test_a_failed_request_records_no_event(client: httpx.AsyncClient, world: World) -> None:
    await assign(client, world, world.a.clients["A2"], DAILY)  # 404: not on the care team
    await assign(
        client,
        world,
        world.a.clients["A1"],
        {"type": "recurring", "rrule": "FREQ=HOURLY", "start": "2026-12-01T09:00"},
    )
    assert await _events(world) == []
