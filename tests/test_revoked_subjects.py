"""Subjects that go away: an erased client's or a deleted clinician's token stops working at
once, on every route, with a 401 that says why (not empty lists, not a 404)."""

from __future__ import annotations

import httpx

from app.core.scopes import Context
from tests.revoked import assert_refused
from tests.world import World

ERASED = "the client the token is bound to has been erased"
DELETED = "the clinician the token is bound to has been deleted"


async def _gets(http: httpx.AsyncClient, token: str, paths: list[str]) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {token}"}
    return [await http.get(path, headers=headers) for path in paths]


async def test_an_erased_clients_token_is_refused_everywhere(
    client: httpx.AsyncClient, world: World
) -> None:
    person = world.a.clients["A1"]
    paths = ["/v1/me/homework", f"/v1/clients/{person}", "/v1/templates", "/v1/assignments"]
    before = await _gets(client, world.tokens["client_a1"], paths[:2])
    assert [r.status_code for r in before] == [200, 200]

    erased = await client.delete(f"/v1/clients/{person}", headers=world.headers("system_a"))
    assert erased.status_code == 204, erased.text

    for response in await _gets(client, world.tokens["client_a1"], paths):
        assert_refused(response, ERASED)
    # Writes too, and a second token minted before the erasure.
    second = world.token_for(world.a, Context.client, person)
    response = await client.patch(
        f"/v1/clients/{person}",
        json={"display_name": "x"},
        headers={"Authorization": f"Bearer {second}"},
    )
    assert_refused(response, ERASED)
    # Everyone else is untouched.
    others = await _gets(client, world.tokens["client_a2"], ["/v1/me/homework"])
    assert others[0].status_code == 200


async def test_a_deleted_clinicians_token_is_refused_everywhere(
    client: httpx.AsyncClient, world: World
) -> None:
    clinician = world.a.clinicians["A1"]
    paths = ["/v1/templates", "/v1/clients", f"/v1/clinicians/{clinician}", "/v1/me/homework"]
    (before,) = await _gets(client, world.tokens["clinician_a1"], paths[:1])
    assert before.status_code == 200

    deleted = await client.delete(f"/v1/clinicians/{clinician}", headers=world.headers("system_a"))
    assert deleted.status_code == 204, deleted.text

    for response in await _gets(client, world.tokens["clinician_a1"], paths):
        assert_refused(response, DELETED)
    (colleague,) = await _gets(client, world.tokens["clinician_a2"], paths[:1])
    assert colleague.status_code == 200


async def test_no_new_token_for_an_erased_client(client: httpx.AsyncClient, world: World) -> None:
    person = world.a.clients["A1"]
    await client.delete(f"/v1/clients/{person}", headers=world.headers("system_a"))
    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": person,
            "subject_token_type": "urn:homework:token-type:client-id",
        },
        auth=(world.a.client_id, world.a.client_secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
