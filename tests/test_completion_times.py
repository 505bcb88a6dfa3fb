"""Honest completion times (issue 17).

The app's clock is trusted within five minutes each way: a `completed_at` before the
occurrence opened would turn late work into on-time work in the adherence figures. Older
history comes only from the vendor's backend, as an audited import, left out of on-time rates.
The bounds are computed here from the occurrence the API returned, not from the service.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.homework_helpers import assign, complete, freeze
from tests.world import World

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
SKEW = timedelta(minutes=5)  # the documented clock skew
MOOD = {"status": "done", "answers": {"mood": 6}}
# Three evenings at 20:00 for client A1 in London (20:00Z); each opens two hours before.
EVENINGS = {
    "schedule": {
        "type": "recurring",
        "rrule": "FREQ=DAILY;COUNT=3;BYHOUR=20;BYMINUTE=0",
        "start": "2026-11-22T20:00",
    },
    "window": {"opens_before_minutes": 120, "grace_minutes": 60},
}


def z(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def evenings(http: httpx.AsyncClient, world: World) -> list[dict[str, Any]]:
    """The occurrences of a fresh three-evening assignment for client A1, first first."""
    freeze(world, z(NOW))
    response = await assign(
        http, world, world.a.clients["A1"], EVENINGS["schedule"], window=EVENINGS["window"]
    )
    assert response.status_code == 201, response.text
    occurrences: list[dict[str, Any]] = response.json()["occurrences"]
    return sorted(occurrences, key=lambda o: o["ordinal"])


async def at_time(
    http: httpx.AsyncClient, world: World, occurrence: dict[str, Any], when: datetime, **extra: Any
) -> httpx.Response:
    return await complete(http, world, occurrence["id"], completed_at=z(when), **MOOD, **extra)


def refused_at_completed_at(response: httpx.Response, code: str) -> None:
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert (error["pointer"], error["code"]) == ("/completed_at", code)


async def test_completed_at_may_be_as_early_as_the_opening_less_the_skew(
    client: httpx.AsyncClient, world: World
) -> None:
    first, second, _ = await evenings(client, world)
    opens = instant(first["opens_at"])
    assert opens == datetime(2026, 11, 22, 18, tzinfo=UTC)
    freeze(world, "2026-11-22T20:30:00Z")  # the first is open and due; the second not yet
    refused_at_completed_at(
        await at_time(client, world, first, opens - SKEW - timedelta(seconds=1)), "before_window"
    )
    accepted = await at_time(client, world, first, opens - SKEW)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["late"] is False and accepted.json()["imported"] is False
    # An occurrence that has not opened yet cannot be done "now" either, bar the skew.
    refused_at_completed_at(await complete(client, world, second["id"], **MOOD), "before_window")


async def test_backdating_into_the_past_is_refused_and_the_message_says_why(
    client: httpx.AsyncClient, world: World
) -> None:
    first, _, _ = await evenings(client, world)
    freeze(world, "2026-11-22T20:30:00Z")
    response = await at_time(client, world, first, datetime(1970, 1, 1, tzinfo=UTC))
    refused_at_completed_at(response, "before_window")
    (error,) = response.json()["errors"]
    assert "2026-11-22T18:00:00Z" in error["message"] and "imported" in error["message"]


async def test_completed_at_may_be_as_late_as_now_plus_the_skew(
    client: httpx.AsyncClient, world: World
) -> None:
    first, second, _ = await evenings(client, world)
    now = datetime(2026, 11, 22, 20, 30, tzinfo=UTC)
    freeze(world, z(now))
    refused_at_completed_at(
        await at_time(client, world, first, now + SKEW + timedelta(seconds=1)), "future"
    )
    assert (await at_time(client, world, first, now + SKEW)).status_code == 201
    # Not even an import may come from the future.
    refused_at_completed_at(
        await at_time(
            client, world, second, now + timedelta(hours=1), role="system_a", imported=True
        ),
        "future",
    )


async def test_the_vendors_backend_imports_history_older_than_the_window(
    client: httpx.AsyncClient, world: World
) -> None:
    first, _, _ = await evenings(client, world)
    freeze(world, "2026-11-22T20:30:00Z")
    long_ago = datetime(2026, 10, 1, 18, tzinfo=UTC)
    imported = await at_time(client, world, first, long_ago, role="system_a", imported=True)
    assert imported.status_code == 201, imported.text
    body = imported.json()
    assert body["imported"] is True and body["completed_at"] == z(long_ago)
    trail = (
        await client.get(
            "/v1/audit-events",
            params={"client_id": world.a.clients["A1"]},
            headers=world.headers("system_a"),
        )
    ).json()["data"]
    assert ("import", "completion", body["id"]) in [
        (e["action"], e["resource_type"], e["resource_id"]) for e in trail
    ]


@pytest.mark.parametrize("role", ["client_a1", "clinician_a1"])
async def test_only_the_vendors_backend_may_import(
    client: httpx.AsyncClient, world: World, role: str
) -> None:
    first, _, _ = await evenings(client, world)
    freeze(world, "2026-11-22T20:30:00Z")
    response = await at_time(client, world, first, NOW, role=role, imported=True)
    assert response.status_code == 403, response.text
    assert "system" in response.json()["detail"]


async def test_imports_count_as_done_but_not_in_the_on_time_rate(
    client: httpx.AsyncClient, world: World
) -> None:
    first, second, third = await evenings(client, world)
    freeze(world, "2026-11-22T20:30:00Z")
    assert (await at_time(client, world, first, instant("2026-11-22T20:10:00Z"))).status_code == 201
    freeze(world, "2026-11-26T12:00:00Z")
    # Imported "on time" by another system's record: neither on time nor late here.
    for occurrence in (second, third):
        response = await at_time(
            client, world, occurrence, instant(occurrence["due_at"]) - timedelta(minutes=10),
            role="system_a", imported=True,
        )  # fmt: skip
        assert response.status_code == 201, response.text
    figures = (
        await client.get(
            f"/v1/clients/{world.a.clients['A1']}/adherence",
            params={"from": "2026-11-22T00:00:00Z"},
            headers=world.headers("clinician_a1"),
        )
    ).json()["overall"]
    assert {k: figures[k] for k in ("counted", "completed", "on_time", "imported")} == {
        "counted": 3,
        "completed": 3,
        "on_time": 1,
        "imported": 2,
    }
    assert figures["on_time_rate"] == 1.0
