"""Series that never silently lose homework (issue 17): a plan that started long ago gets its
next four weeks, a dense rule is refused rather than cut short, and a series that can yield
nothing from now on is refused with a reason. Expected instants come from `zoneinfo` here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.worker.loop import run_once
from tests.homework_helpers import assign, freeze, new_client
from tests.world import World

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def evenings(first_day: datetime, days: int) -> list[str]:
    """20:00 in Berlin on `days` consecutive days from `first_day`, as the API writes UTC."""
    return [
        (first_day + timedelta(days=n)).replace(hour=20, tzinfo=BERLIN).astimezone(UTC)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        for n in range(days)
    ]  # fmt: skip


async def occurrences_of(http: httpx.AsyncClient, world: World, assignment_id: str) -> list[Any]:
    response = await http.get(
        f"/v1/assignments/{assignment_id}/occurrences", headers=world.headers("system_a")
    )
    assert response.status_code == 200, response.text
    return sorted(response.json(), key=lambda o: o["ordinal"])


async def test_a_daily_plan_started_years_ago_gets_its_next_four_weeks(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    client_id = await new_client(client, world, "Europe/Berlin")
    # Started 1,500 days before today: more than the expansion's 1,000 occurrences ago.
    start = datetime(2022, 10, 14, 20, 0)
    rule = {"type": "recurring", "rrule": "FREQ=DAILY;BYHOUR=20;BYMINUTE=0"}
    created = await assign(client, world, client_id, {**rule, "start": start.isoformat()[:16]})
    assert created.status_code == 201, created.text
    listed = await occurrences_of(client, world, created.json()["id"])
    # Today 20:00 to the evening 27 days later: 28 occurrences, none from before today, with
    # the ordinals of the whole series (day 1,500 after the start is ordinal 1,500).
    expected = evenings(datetime(2026, 11, 22), 28)
    assert [o["due_at"] for o in listed] == expected
    assert listed[0]["ordinal"] == (datetime(2026, 11, 22) - datetime(2022, 10, 14)).days

    # Eight days later (less than three weeks ahead) the worker extends it to four weeks
    # ahead of then: the last evening before 2026-12-28T09:00Z.
    later = NOW + timedelta(days=8)
    await run_once(world.app.state.database, later, 200)
    listed = await occurrences_of(client, world, created.json()["id"])
    assert [o["due_at"] for o in listed][-1] == evenings(datetime(2026, 12, 27), 1)[0]


async def test_a_rule_denser_than_the_maximum_is_refused_not_cut_short(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    client_id = await new_client(client, world, "Europe/Berlin")
    every_quarter_hour = {
        "type": "recurring",
        "rrule": "FREQ=DAILY;BYHOUR=" + ",".join(map(str, range(24))) + ";BYMINUTE=0,15,30,45",
        "start": "2026-11-22T10:00",
    }  # 96 a day: 2,688 in 28 days
    refused = await assign(client, world, client_id, every_quarter_hour)
    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["errors"]
    assert error["pointer"] == "/schedule/rrule"
    assert error["message"] == "more than 1000 occurrences in 28 days"


@pytest.mark.parametrize(
    ("rrule", "start", "why"),
    [
        ("FREQ=DAILY;UNTIL=20261101;BYHOUR=20;BYMINUTE=0", "2026-11-22T20:00",
         "the rule yields no occurrence at all: its UNTIL is before the first one"),
        # Mondays only, until a Sunday: the first Monday is after UNTIL.
        ("FREQ=WEEKLY;BYDAY=MO;UNTIL=20261129", "2026-11-24T20:00",
         "the rule yields no occurrence at all: its UNTIL is before the first one"),
        ("FREQ=DAILY;COUNT=5;BYHOUR=20;BYMINUTE=0", "2026-10-01T20:00",
         "every occurrence of the rule is in the past: its COUNT or UNTIL has run out"),
    ],
)  # fmt: skip
async def test_a_series_that_yields_nothing_from_now_on_is_refused(
    client: httpx.AsyncClient, world: World, rrule: str, start: str, why: str
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    client_id = await new_client(client, world, "Europe/Berlin")
    refused = await assign(
        client, world, client_id, {"type": "recurring", "rrule": rrule, "start": start}
    )
    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["errors"]
    assert (error["pointer"], error["message"]) == ("/schedule/rrule", why)


async def test_a_series_with_a_past_too_long_to_walk_is_refused_naming_its_start(
    client: httpx.AsyncClient, world: World
) -> None:
    """Ordinals and COUNT run from the start, so every expansion walks the series' past: more
    than 20,000 occurrences of it is refused (hourly since 2024: 1,054 days of 24), while a
    daily plan may have started decades ago."""
    freeze(world, "2026-11-22T09:00:00Z")
    client_id = await new_client(client, world, "Europe/Berlin")
    hourly = "FREQ=DAILY;BYHOUR=" + ",".join(map(str, range(24))) + ";BYMINUTE=0"
    refused = await assign(
        client, world, client_id,
        {"type": "recurring", "rrule": hourly, "start": "2024-01-03T00:00"},
    )  # fmt: skip
    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["errors"]
    assert error["pointer"] == "/schedule/start" and "20000 occurrences ago" in error["message"]
    daily = {"type": "recurring", "rrule": "FREQ=DAILY;BYHOUR=20", "start": "1980-01-01T20:00"}
    assert (await assign(client, world, client_id, daily)).status_code == 201


async def test_an_adjustment_to_a_rule_that_yields_nothing_is_refused_too(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-22T09:00:00Z")
    schedule = {
        "type": "recurring",
        "rrule": "FREQ=DAILY;BYHOUR=20;BYMINUTE=0",
        "start": "2026-11-01T20:00",
    }
    created = await assign(client, world, world.a.clients["A1"], schedule)
    assert created.status_code == 201, created.text
    url = f"/v1/assignments/{created.json()['id']}/adjustments"
    # Three evenings from 1 November: all gone by the 22nd.
    refused = await client.post(
        url,
        json={"rrule": "FREQ=DAILY;COUNT=3;BYHOUR=20;BYMINUTE=0"},
        headers=world.headers("client_a1"),
    )
    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["errors"]
    assert (error["pointer"], error["message"]) == (
        "/rrule",
        "every occurrence of the rule is in the past: its COUNT or UNTIL has run out",
    )
    smaller = await client.post(
        url,
        json={"rrule": "FREQ=DAILY;COUNT=30;BYHOUR=20;BYMINUTE=0"},
        headers=world.headers("client_a1"),
    )
    assert smaller.status_code == 201, smaller.text
