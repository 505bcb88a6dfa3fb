"""Completions: answers, barriers, distress, lateness, edits, reviews, and what they move."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.models import Event
from tests.homework_helpers import assign, complete, freeze, occurrence_of
from tests.world import World

DAILY_3 = {
    "type": "recurring",
    "rrule": "FREQ=DAILY;COUNT=3;BYHOUR=20;BYMINUTE=0",
    "start": "2026-11-22T20:00",
}


async def _events(world: World, event_type: str) -> list[Event]:
    async with world.app.state.database.sessionmaker() as session:
        return list((await session.scalars(select(Event).where(Event.type == event_type))).all())


@pytest.fixture
def now(world: World) -> None:
    freeze(world, "2026-11-22T12:00:00Z")


async def test_a_client_completes_with_answers(
    client: httpx.AsyncClient, world: World, now: None
) -> None:
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    response = await complete(
        client,
        world,
        occurrence,
        status="done",
        answers={"mood": 6, "note": "Walked at lunch"},
        helpfulness=8,
        effort=4,
        minutes_spent=5,
        reflection="Noticing helped",
        completed_at="2026-11-22T11:57:00Z",  # offline, a little before it opened at 12:00
        time_zone="Europe/Paris",
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("cmp_") and body["status"] == "done"
    assert body["answers"] == {"mood": 6, "note": "Walked at lunch"}
    assert body["completed_at"] == "2026-11-22T11:57:00Z" and body["time_zone"] == "Europe/Paris"
    assert body["received_at"] == "2026-11-22T12:00:00Z"
    assert body["late"] is False and body["recorded_by"] == "client" and body["in_session"] is False
    assert body["distress_flagged"] is False and body["measure"] is None
    assert body["editable_until"] == "2026-11-23T12:00:00Z"
    assignment = (
        await client.get(
            f"/v1/assignments/{body['assignment_id']}", headers=world.headers("client_a1")
        )
    ).json()
    assert assignment["occurrences"][0]["status"] == "completed"
    assert assignment["status"] == "completed"
    assert len(await _events(world, "completion.created")) == 1
    (done,) = await _events(world, "assignment.completed")
    assert done.subject == {"assignment_id": body["assignment_id"]}


async def test_answers_are_checked_against_the_template_version(
    client: httpx.AsyncClient, world: World, now: None
) -> None:
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    response = await complete(
        client,
        world,
        occurrence,
        status="done",
        answers={"mood": 11, "emotions": ["joy", "not-an-emotion"], "extra": "secret words"},
    )
    assert response.status_code == 422
    pointers = {e["pointer"]: e["code"] for e in response.json()["errors"]}
    assert pointers["/answers/mood"] == "maximum"
    assert pointers["/answers/emotions/1"] == "enum"
    assert pointers["/answers/extra"] == "additional_property"
    assert "secret words" not in response.text
    missing = await complete(client, world, occurrence, status="done", answers={})
    assert {e["pointer"] for e in missing.json()["errors"]} == {"/answers/mood"}
    # Partly done work may leave required answers out.
    partial = await complete(
        client, world, occurrence, status="partial", answers={}, barriers=["no_time"]
    )
    assert partial.status_code == 201
    assert partial.json()["status"] == "partial"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"status": "not_done"}, "/barriers"),
        ({"status": "not_done", "barriers": ["other"]}, "/barrier_note"),
        ({"status": "not_done", "barriers": ["forgot", "forgot"]}, "/barriers"),
        ({"status": "not_done", "barriers": ["lazy"]}, "/barriers/0"),
        ({"status": "not_done", "barriers": ["forgot"], "answers": {"mood": 3}}, "/answers"),
        ({"status": "done"}, "/answers"),
        ({"status": "done", "answers": {"mood": 3}, "helpfulness": 11}, "/helpfulness"),
        ({"status": "done", "answers": {"mood": 3}, "reflection": "x" * 4001}, "/reflection"),
        (
            {"status": "done", "answers": {"mood": 3}, "completed_at": "2026-11-23T12:00:00Z"},
            "/completed_at",
        ),
        ({"status": "done", "answers": {"mood": 3}, "time_zone": "Nowhere/Land"}, "/time_zone"),
    ],
)
async def test_bad_completions_name_the_field(
    client: httpx.AsyncClient, world: World, now: None, body: dict[str, Any], pointer: str
) -> None:
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    response = await complete(client, world, occurrence, **body)
    assert response.status_code == 422, response.text
    assert pointer in {e["pointer"] for e in response.json()["errors"]}


@pytest.mark.parametrize(
    "barriers",
    [
        ["forgot"],
        ["no_time"],
        ["too_hard"],
        ["not_relevant"],
        ["unclear_instructions"],
        ["forgot", "no_time"],
    ],
)
async def test_each_barrier_is_recorded_for_the_next_session(
    client: httpx.AsyncClient, world: World, now: None, barriers: list[str]
) -> None:
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    response = await complete(
        client, world, occurrence, status="not_done", barriers=barriers, barrier_note="Busy week"
    )
    assert response.status_code == 201
    assert response.json()["barriers"] == barriers
    assert response.json()["distress_flagged"] is False
    assignment = (
        await client.get(
            f"/v1/assignments/{response.json()['assignment_id']}",
            headers=world.headers("client_a1"),
        )
    ).json()
    assert assignment["occurrences"][0]["status"] == "declined"
    assert assignment["status"] == "expired"


async def test_other_with_a_note(client: httpx.AsyncClient, world: World, now: None) -> None:
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    response = await complete(
        client, world, occurrence, status="not_done", barriers=["other"], barrier_note="Sick"
    )
    assert response.status_code == 201


async def test_feeling_overwhelmed_flags_at_once(
    client: httpx.AsyncClient, world: World, now: None
) -> None:
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    response = await complete(
        client, world, occurrence, status="not_done", barriers=["felt_overwhelmed"]
    )
    body = response.json()
    assert body["distress_flagged"] is True
    assert body["distress_reasons"] == ["barrier:felt_overwhelmed"]
    (flag,) = await _events(world, "completion.distress_flagged")
    assert flag.subject["completion_id"] == body["id"] and flag.client_id == world.a.clients["A1"]
    flagged = await client.get(
        "/v1/completions",
        params={"distress_flagged": "true"},
        headers=world.headers("clinician_a1"),
    )
    assert [c["id"] for c in flagged.json()["data"]] == [body["id"]]


def _phq9(total: int, item_9: int = 0) -> dict[str, int]:
    """Answers summing to `total`, with item 9 as given."""
    answers = {f"item_{n}": 0 for n in range(1, 10)}
    answers["item_9"] = item_9
    left = total - item_9
    for n in range(1, 9):
        answers[f"item_{n}"] = min(3, left)
        left -= answers[f"item_{n}"]
    assert left == 0
    return answers


async def test_any_answer_above_0_on_phq9_item_9_flags(
    client: httpx.AsyncClient, world: World, now: None
) -> None:
    occurrence = await occurrence_of(
        client, world, world.a.clients["A1"], template="tpl_builtin_phq9"
    )
    response = await complete(client, world, occurrence, status="done", answers=_phq9(3, item_9=1))
    body = response.json()
    assert body["distress_flagged"] is True
    assert body["distress_reasons"] == ["answer:/item_9"]
    assert body["measure"] == {"score": 3, "severity": "minimal"}
    calm = await occurrence_of(client, world, world.a.clients["A1"], template="tpl_builtin_phq9")
    assert (await complete(client, world, calm, status="done", answers=_phq9(12))).json()[
        "distress_flagged"
    ] is False


async def test_a_templates_distress_threshold_flags(
    client: httpx.AsyncClient, world: World, now: None
) -> None:
    template = await client.post(
        "/v1/templates",
        json={
            "name": "Urge log",
            "instructions": "Rate the urge",
            "purpose": "Spot the pattern",
            "estimated_minutes": 2,
            "response_schema": {
                "type": "object",
                "properties": {
                    "urge": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 10,
                        "x-distress-threshold": 8,
                    }
                },
                "required": ["urge"],
            },
        },
        headers=world.headers("clinician_a1"),
    )
    assert template.status_code == 201, template.text
    below = await occurrence_of(
        client, world, world.a.clients["A1"], template=template.json()["id"]
    )
    assert (await complete(client, world, below, status="done", answers={"urge": 7})).json()[
        "distress_flagged"
    ] is False
    at = await occurrence_of(client, world, world.a.clients["A1"], template=template.json()["id"])
    flagged = (await complete(client, world, at, status="done", answers={"urge": 8})).json()
    assert flagged["distress_flagged"] is True and flagged["distress_reasons"] == ["answer:/urge"]


@pytest.mark.parametrize(
    ("template", "total", "severity"),
    [
        ("phq9", 0, "minimal"),
        ("phq9", 4, "minimal"),
        ("phq9", 5, "mild"),
        ("phq9", 9, "mild"),
        ("phq9", 10, "moderate"),
        ("phq9", 14, "moderate"),
        ("phq9", 15, "moderately_severe"),
        ("phq9", 19, "moderately_severe"),
        ("phq9", 20, "severe"),
        ("phq9", 24, "severe"),
        ("gad7", 0, "minimal"),
        ("gad7", 4, "minimal"),
        ("gad7", 5, "mild"),
        ("gad7", 9, "mild"),
        ("gad7", 10, "moderate"),
        ("gad7", 14, "moderate"),
        ("gad7", 15, "severe"),
        ("gad7", 21, "severe"),
    ],
)
async def test_measures_are_scored_at_every_band_boundary(
    client: httpx.AsyncClient, world: World, now: None, template: str, total: int, severity: str
) -> None:
    # Item 9 stays 0 here (24 is the most items 1-8 can make), so only the score is under test.
    if template == "phq9":
        answers = _phq9(total)
    else:
        answers = {f"item_{n}": 0 for n in range(1, 8)}
        left = total
        for n in range(1, 8):
            answers[f"item_{n}"] = min(3, left)
            left -= answers[f"item_{n}"]
    occurrence = await occurrence_of(
        client, world, world.a.clients["A1"], template=f"tpl_builtin_{template}"
    )
    response = await complete(client, world, occurrence, status="done", answers=answers)
    assert response.json()["measure"] == {"score": total, "severity": severity}


async def test_phq9_maximum_is_27_severe(
    client: httpx.AsyncClient, world: World, now: None
) -> None:
    occurrence = await occurrence_of(
        client, world, world.a.clients["A1"], template="tpl_builtin_phq9"
    )
    response = await complete(client, world, occurrence, status="done", answers=_phq9(27, item_9=3))
    assert response.json()["measure"] == {"score": 27, "severity": "severe"}


async def test_a_late_completion_is_accepted_and_marked(
    client: httpx.AsyncClient, world: World
) -> None:
    clock = freeze(world, "2026-11-22T12:00:00Z")
    occurrence = await occurrence_of(
        client, world, world.a.clients["A1"]
    )  # due 20:00, closes 08:00
    clock.at = clock.at.replace(day=23, hour=9)
    response = await complete(client, world, occurrence, status="done", answers={"mood": 4})
    assert response.status_code == 201
    assert response.json()["late"] is True
    on_time = await occurrence_of(
        client,
        world,
        world.a.clients["A1"],
        schedule={"type": "once", "due_at": "2026-11-23T20:00"},
    )
    assert (await complete(client, world, on_time, status="done", answers={"mood": 4})).json()[
        "late"
    ] is False


async def test_one_completion_per_occurrence(
    client: httpx.AsyncClient, world: World, now: None
) -> None:
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    assert (
        await complete(client, world, occurrence, status="done", answers={"mood": 4})
    ).status_code == 201
    again = await complete(client, world, occurrence, status="done", answers={"mood": 5})
    assert again.status_code == 409


async def test_edits_within_the_window_keep_every_version(
    client: httpx.AsyncClient, world: World
) -> None:
    clock = freeze(world, "2026-11-22T12:00:00Z")
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    created = await complete(
        client, world, occurrence, status="done", answers={"mood": 4}, helpfulness=3
    )
    url = f"/v1/completions/{created.json()['id']}"
    etag = created.headers["etag"]
    edited = await client.put(
        url,
        json={"status": "done", "answers": {"mood": 5}, "helpfulness": 7},
        headers={**world.headers("client_a1"), "If-Match": etag},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["answers"] == {"mood": 5} and edited.json()["helpfulness"] == 7
    stale = await client.put(
        url,
        json={"status": "done", "answers": {"mood": 1}},
        headers={**world.headers("client_a1"), "If-Match": etag},
    )
    assert stale.status_code == 412
    revisions = (await client.get(f"{url}/revisions", headers=world.headers("clinician_a1"))).json()
    assert [r["content"]["answers"] for r in revisions] == [{"mood": 4}, {"mood": 5}]
    assert [r["content"]["helpfulness"] for r in revisions] == [3, 7]
    (updated,) = await _events(world, "completion.updated")
    assert updated.changed_fields == ["answers", "helpfulness"]
    # Becoming overwhelmed on an edit flags too.
    worse = await client.put(
        url,
        json={"status": "partial", "answers": {"mood": 1}, "barriers": ["felt_overwhelmed"]},
        headers=world.headers("client_a1"),
    )
    assert worse.json()["distress_flagged"] is True
    assert len(await _events(world, "completion.distress_flagged")) == 1
    by_clinician = await client.put(
        url, json={"status": "done", "answers": {"mood": 9}}, headers=world.headers("clinician_a1")
    )
    assert by_clinician.status_code == 403
    clock.at = clock.at.replace(day=23, hour=12, minute=1)
    too_late = await client.put(
        url, json={"status": "done", "answers": {"mood": 9}}, headers=world.headers("client_a1")
    )
    assert too_late.status_code == 409


async def test_a_clinician_records_one_in_session(
    client: httpx.AsyncClient, world: World, now: None
) -> None:
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    response = await complete(
        client, world, occurrence, role="clinician_a1", status="done", answers={"mood": 5}
    )
    assert response.status_code == 201
    assert response.json()["recorded_by"] == "clinician" and response.json()["in_session"] is True


async def test_review_is_seen_by_the_client(
    client: httpx.AsyncClient, world: World, now: None
) -> None:
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    created = (await complete(client, world, occurrence, status="done", answers={"mood": 5})).json()
    url = f"/v1/completions/{created['id']}"
    by_client = await client.post(
        f"{url}/review", json={"feedback": "Great"}, headers=world.headers("client_a1")
    )
    assert by_client.status_code == 403
    reviewed = await client.post(
        f"{url}/review",
        json={"feedback": "Well noticed: let us talk about lunch walks"},
        headers=world.headers("clinician_a1"),
    )
    assert reviewed.status_code == 200
    seen = (await client.get(url, headers=world.headers("client_a1"))).json()
    assert seen["review"]["feedback"] == "Well noticed: let us talk about lunch walks"
    assert seen["review"]["reviewed_by"] == world.a.clinicians["A1"]
    (event,) = await _events(world, "completion.reviewed")
    assert "lunch" not in str(event.subject) + str(event.changed_fields)
    unreviewed = await client.get(
        "/v1/completions", params={"reviewed": "false"}, headers=world.headers("clinician_a1")
    )
    assert unreviewed.json()["data"] == []


async def test_another_client_cannot_complete_and_an_outsider_cannot_read(
    client: httpx.AsyncClient, world: World, now: None
) -> None:
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    stolen = await complete(
        client, world, occurrence, role="client_a2", status="done", answers={"mood": 1}
    )
    assert stolen.status_code == 404
    created = (await complete(client, world, occurrence, status="done", answers={"mood": 5})).json()
    for role in ("clinician_a2", "client_a2", "system_b"):
        assert (
            await client.get(f"/v1/completions/{created['id']}", headers=world.headers(role))
        ).status_code == 404
        listed = await client.get("/v1/completions", headers=world.headers(role))
        assert created["id"] not in [c["id"] for c in listed.json()["data"]]


async def test_a_recurring_assignment_completes_when_its_last_occurrence_is_resolved(
    client: httpx.AsyncClient, world: World, now: None
) -> None:
    created = (await assign(client, world, world.a.clients["A1"], DAILY_3)).json()
    ids = [o["id"] for o in created["occurrences"]]
    await complete(client, world, ids[0], status="done", answers={"mood": 5})
    freeze(world, "2026-11-23T09:00:00Z")  # each is done once it has opened (08:00)
    await complete(client, world, ids[1], status="not_done", barriers=["no_time"])
    after_two = (
        await client.get(f"/v1/assignments/{created['id']}", headers=world.headers("client_a1"))
    ).json()
    assert after_two["status"] == "active"
    freeze(world, "2026-11-24T09:00:00Z")
    await complete(client, world, ids[2], status="partial", answers={}, barriers=["too_hard"])
    done = (
        await client.get(f"/v1/assignments/{created['id']}", headers=world.headers("client_a1"))
    ).json()
    assert done["status"] == "completed"
    assert [o["status"] for o in done["occurrences"]] == ["completed", "declined", "partial"]


async def test_a_cancelled_occurrence_cannot_be_completed(
    client: httpx.AsyncClient, world: World, now: None
) -> None:
    created = (await assign(client, world, world.a.clients["A1"], DAILY_3)).json()
    await client.post(
        f"/v1/assignments/{created['id']}/cancel", headers=world.headers("clinician_a1")
    )
    response = await complete(
        client, world, created["occurrences"][0]["id"], status="done", answers={"mood": 5}
    )
    assert response.status_code == 409
