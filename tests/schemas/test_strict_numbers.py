"""Numbers and booleans in request bodies take only their own JSON type: pydantic's lax mode
would store `"effort": true` as 1 and `"helpfulness": "5"` as 5."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from app.schemas.assignments import ReminderPolicyIn, Window
from app.schemas.completions import CompletionCreate
from app.schemas.people import ClientUpdate
from app.schemas.webhooks import EndpointUpdate
from tests.homework_helpers import occurrence_of
from tests.world import World


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (CompletionCreate, {"occurrence_id": "occ_x", "status": "done", "effort": True}, "effort"),
        (
            CompletionCreate,
            {"occurrence_id": "occ_x", "status": "done", "helpfulness": "5"},
            "helpfulness",
        ),
        (
            CompletionCreate,
            {"occurrence_id": "occ_x", "status": "done", "minutes_spent": "10"},
            "minutes_spent",
        ),
        (ReminderPolicyIn, {"lead_minutes": [10, True]}, "lead_minutes"),
        (ReminderPolicyIn, {"only_if_not_done": 1}, "only_if_not_done"),
        (Window, {"grace_minutes": "60"}, "grace_minutes"),
        (ClientUpdate, {"reminders_muted": "yes"}, "reminders_muted"),
        (EndpointUpdate, {"enabled": 1}, "enabled"),
    ],
)
def test_another_json_type_is_refused(
    model: type[BaseModel], body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)
    assert refused.value.errors()[0]["loc"][0] == field


def test_the_right_types_still_pass() -> None:
    completion = CompletionCreate.model_validate(
        {"occurrence_id": "occ_x", "status": "done", "effort": 3, "minutes_spent": 10}
    )
    assert (completion.effort, completion.minutes_spent) == (3, 10)
    policy = ReminderPolicyIn.model_validate({"lead_minutes": [10, 60], "only_if_not_done": False})
    assert policy.lead_minutes == [10, 60] and policy.only_if_not_done is False


async def test_a_completion_with_effort_true_is_a_422_naming_the_field(
    client: httpx.AsyncClient, world: World
) -> None:
    occurrence = await occurrence_of(client, world, world.a.clients["A1"])
    response = await client.post(
        "/v1/completions",
        json={
            "occurrence_id": occurrence,
            "status": "done",
            "answers": {"mood": 5},
            "effort": True,
        },
        headers=world.headers("client_a1"),
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"] == "/effort"
