"""Shared field types: what a date-time accepts."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from app.schemas.common import Instant, LocalOrInstant
from tests.world import World

INSTANT: TypeAdapter[datetime] = TypeAdapter(Instant)
LOCAL_OR_INSTANT: TypeAdapter[datetime] = TypeAdapter(LocalOrInstant)


@pytest.mark.parametrize("value", ["2026-11-25T20:00:00Z", "2026-11-25T21:00+01:00"])
def test_an_instant_is_date_time_text_with_an_offset(value: str) -> None:
    assert INSTANT.validate_python(value) == datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
    assert INSTANT.validate_json(f'"{value}"') == datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def test_wall_clock_time_stays_local() -> None:
    assert LOCAL_OR_INSTANT.validate_json('"2026-11-25T20:00"') == datetime(2026, 11, 25, 20, 0)


# Pydantic alone reads numbers as seconds since 1970 and a bare date as its midnight: found by
# the negative fuzzing (`until=3529` listed completions before 00:58:49 on 1 January 1970).
@pytest.mark.parametrize("value", ["3529", "-211496057", "2026", "2026-11-25", "1e3", ""])
@pytest.mark.parametrize("adapter", [INSTANT, LOCAL_OR_INSTANT])
def test_numbers_and_bare_dates_are_not_date_times(
    adapter: TypeAdapter[datetime], value: str
) -> None:
    with pytest.raises(ValidationError):
        adapter.validate_python(value)
    with pytest.raises(ValidationError):
        adapter.validate_json(f'"{value}"')


@pytest.mark.parametrize("number", ["3529", "1764100800.5", "true"])
@pytest.mark.parametrize("adapter", [INSTANT, LOCAL_OR_INSTANT])
def test_a_json_number_is_not_a_date_time(adapter: TypeAdapter[datetime], number: str) -> None:
    with pytest.raises(ValidationError):
        adapter.validate_json(number)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/completions", "until"),
        ("/v1/events", "since"),
        ("/v1/assignments", "due_from"),
        ("/v1/reminders", "due_to"),
        ("/v1/audit-events", "since"),
    ],
)
async def test_a_time_filter_given_a_number_is_a_422(
    client: httpx.AsyncClient, world: World, path: str, name: str
) -> None:
    response = await client.get(path, params={name: "3529"}, headers=world.headers("system_a"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == f"/{name}"
