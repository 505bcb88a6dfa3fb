"""Time zones and DST are a contract: each test asserts the exact UTC instants a client's
homework comes due, through the API, with the clock set to the day in question."""

from __future__ import annotations

import httpx
import pytest

from tests.homework_helpers import assign, due_times, freeze, new_client
from tests.world import World

DAILY_AT_20 = "FREQ=DAILY;BYHOUR=20;BYMINUTE=0;COUNT={count}"


async def _daily_20(
    client: httpx.AsyncClient, world: World, zone: str, now: str, start: str, count: int
) -> list[str]:
    freeze(world, now)
    client_id = await new_client(client, world, zone)
    response = await assign(
        client,
        world,
        client_id,
        {"type": "recurring", "rrule": DAILY_AT_20.format(count=count), "start": start},
    )
    assert response.status_code == 201, response.text
    return due_times(response.json())


@pytest.mark.parametrize(
    ("zone", "now", "start", "expected"),
    [
        pytest.param(
            "America/New_York",
            "2026-03-05T12:00:00Z",
            "2026-03-06T20:00",
            [
                "2026-03-07T01:00:00Z",
                "2026-03-08T01:00:00Z",
                "2026-03-09T00:00:00Z",
                "2026-03-10T00:00:00Z",
            ],
            id="new-york-spring",
        ),
        pytest.param(
            "America/New_York",
            "2026-10-30T12:00:00Z",
            "2026-10-30T20:00",
            [
                "2026-10-31T00:00:00Z",
                "2026-11-01T00:00:00Z",
                "2026-11-02T01:00:00Z",
                "2026-11-03T01:00:00Z",
            ],
            id="new-york-autumn",
        ),
        pytest.param(
            "Europe/Berlin",
            "2026-03-27T12:00:00Z",
            "2026-03-27T20:00",
            [
                "2026-03-27T19:00:00Z",
                "2026-03-28T19:00:00Z",
                "2026-03-29T18:00:00Z",
                "2026-03-30T18:00:00Z",
            ],
            id="berlin-spring",
        ),
        pytest.param(
            "Europe/Berlin",
            "2026-10-23T12:00:00Z",
            "2026-10-23T20:00",
            [
                "2026-10-23T18:00:00Z",
                "2026-10-24T18:00:00Z",
                "2026-10-25T19:00:00Z",
                "2026-10-26T19:00:00Z",
            ],
            id="berlin-autumn",
        ),
        pytest.param(
            # Lord Howe moves by 30 minutes: +11:00 in summer, +10:30 in winter.
            "Australia/Lord_Howe",
            "2026-04-03T00:00:00Z",
            "2026-04-03T20:00",
            [
                "2026-04-03T09:00:00Z",
                "2026-04-04T09:00:00Z",
                "2026-04-05T09:30:00Z",
                "2026-04-06T09:30:00Z",
            ],
            id="lord-howe-autumn",
        ),
        pytest.param(
            "Australia/Lord_Howe",
            "2026-10-02T00:00:00Z",
            "2026-10-02T20:00",
            [
                "2026-10-02T09:30:00Z",
                "2026-10-03T09:30:00Z",
                "2026-10-04T09:00:00Z",
                "2026-10-05T09:00:00Z",
            ],
            id="lord-howe-spring",
        ),
        pytest.param(
            "Asia/Kathmandu",
            "2026-11-22T00:00:00Z",
            "2026-11-22T20:00",
            [
                "2026-11-22T14:15:00Z",
                "2026-11-23T14:15:00Z",
                "2026-11-24T14:15:00Z",
                "2026-11-25T14:15:00Z",
            ],
            id="kathmandu-plus-0545",
        ),
    ],
)
async def test_daily_20_00_stays_at_20_00_local(
    client: httpx.AsyncClient, world: World, zone: str, now: str, start: str, expected: list[str]
) -> None:
    assert await _daily_20(client, world, zone, now, start, 4) == expected


async def test_a_time_that_does_not_exist_moves_forward_by_the_gap(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-03-01T12:00:00Z")
    client_id = await new_client(client, world, "America/New_York")
    response = await assign(
        client, world, client_id, {"type": "once", "due_at": "2026-03-08T02:30"}
    )
    # 02:30 does not exist on 8 March in New York: it is 03:30 EDT.
    assert due_times(response.json()) == ["2026-03-08T07:30:00Z"]
    assert response.json()["occurrences"][0]["local_due"] == "2026-03-08T03:30"


async def test_a_time_that_happens_twice_is_the_first(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-10-25T12:00:00Z")
    client_id = await new_client(client, world, "America/New_York")
    response = await assign(
        client, world, client_id, {"type": "once", "due_at": "2026-11-01T01:30"}
    )
    # 01:30 happens twice on 1 November: the first, EDT (-04:00).
    assert due_times(response.json()) == ["2026-11-01T05:30:00Z"]


async def test_an_instant_with_an_offset_is_taken_as_it_is(
    client: httpx.AsyncClient, world: World
) -> None:
    freeze(world, "2026-11-20T12:00:00Z")
    client_id = await new_client(client, world, "Asia/Kathmandu")
    response = await assign(
        client, world, client_id, {"type": "once", "due_at": "2026-11-25T08:00:00+00:00"}
    )
    occurrence = response.json()["occurrences"][0]
    assert occurrence["due_at"] == "2026-11-25T08:00:00Z"
    assert occurrence["local_due"] == "2026-11-25T13:45"


async def test_a_client_who_moves_keeps_the_past_and_gets_the_new_local_time(
    client: httpx.AsyncClient, world: World
) -> None:
    clock = freeze(world, "2026-06-01T12:00:00Z")
    client_id = await new_client(client, world, "Europe/London")
    created = await assign(
        client,
        world,
        client_id,
        {"type": "recurring", "rrule": DAILY_AT_20.format(count=10), "start": "2026-06-01T20:00"},
    )
    assignment_id = created.json()["id"]
    assert due_times(created.json())[:3] == [
        "2026-06-01T19:00:00Z",
        "2026-06-02T19:00:00Z",
        "2026-06-03T19:00:00Z",
    ]

    clock.at = clock.at.replace(day=4)  # 4 June, 12:00Z: today's 20:00 London is already open
    moved = await client.patch(
        f"/v1/clients/{client_id}",
        json={"time_zone": "America/Los_Angeles"},
        headers=world.headers("system_a"),
    )
    assert moved.status_code == 200

    after = (
        await client.get(f"/v1/assignments/{assignment_id}", headers=world.headers("clinician_a1"))
    ).json()
    by_ordinal = {o["ordinal"]: (o["due_at"], o["time_zone"]) for o in after["occurrences"]}
    # Past and already-open occurrences stay where they were, in London time.
    for ordinal, day in ((0, "01"), (1, "02"), (2, "03"), (3, "04")):
        assert by_ordinal[ordinal] == (f"2026-06-{day}T19:00:00Z", "Europe/London")
    # From the 5th on: 20:00 in Los Angeles (PDT, -07:00), COUNT still bounding the series.
    for ordinal, day in ((4, "06"), (5, "07"), (9, "11")):
        assert by_ordinal[ordinal] == (f"2026-06-{day}T03:00:00Z", "America/Los_Angeles")
    assert sorted(by_ordinal) == list(range(10))
