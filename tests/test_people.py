"""Clinicians, clients and care teams, through HTTP as a vendor would call them."""

from __future__ import annotations

import httpx

from tests.world import World


async def test_vendor_provisions_a_clinician_and_a_client_on_one_team(
    client: httpx.AsyncClient, world: World
) -> None:
    system = world.headers("system_a")
    clinician = await client.post(
        "/v1/clinicians", json={"external_id": "dr-9", "display_name": "Dr Nine"}, headers=system
    )
    assert clinician.status_code == 201
    assert clinician.json()["id"].startswith("cln_")
    assert clinician.headers["etag"]
    person = await client.post(
        "/v1/clients",
        json={
            "external_id": "pt-9",
            "time_zone": "Asia/Kathmandu",
            "locale": "ne-NP",
            "quiet_hours": {"start": "22:00", "end": "07:00"},
            "next_session_at": "2026-12-01T15:00:00Z",
        },
        headers=system,
    )
    assert person.status_code == 201, person.text
    body = person.json()
    assert body["id"].startswith("clt_")
    assert body["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert body["next_session_at"] == "2026-12-01T15:00:00Z"

    team = await client.post(
        f"/v1/clients/{body['id']}/care-team",
        json={"clinician_id": clinician.json()["id"]},
        headers=system,
    )
    assert team.status_code == 201
    assert [c["external_id"] for c in team.json()["clinicians"]] == ["dr-9"]


async def test_unknown_time_zone_is_a_422_naming_the_field(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/v1/clients",
        json={"external_id": "pt-x", "time_zone": "Mars/Olympus_Mons"},
        headers=world.headers("system_a"),
    )
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["pointer"] == "/time_zone"


async def test_external_id_is_unique_per_tenant_and_filterable(
    client: httpx.AsyncClient, world: World
) -> None:
    duplicate = await client.post(
        "/v1/clients",
        json={"external_id": "A-clt-1", "time_zone": "UTC"},
        headers=world.headers("system_a"),
    )
    assert duplicate.status_code == 409
    # The same vendor id is free in another tenant.
    elsewhere = await client.post(
        "/v1/clients",
        json={"external_id": "A-clt-1", "time_zone": "UTC"},
        headers=world.headers("system_b"),
    )
    assert elsewhere.status_code == 201
    found = await client.get(
        "/v1/clients", params={"external_id": "A-clt-2"}, headers=world.headers("system_a")
    )
    assert [c["id"] for c in found.json()["data"]] == [world.a.clients["A2"]]


async def test_lists_page_newest_first_with_an_opaque_cursor(
    client: httpx.AsyncClient, world: World
) -> None:
    system = world.headers("system_a")
    for n in range(5):
        await client.post("/v1/clinicians", json={"external_id": f"dr-{n}"}, headers=system)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/clinicians", params=params, headers=system)).json()
        seen += [c["external_id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[:5] == ["dr-4", "dr-3", "dr-2", "dr-1", "dr-0"]
    assert len(seen) == 7  # and the world's two
    bad = await client.get("/v1/clinicians", params={"cursor": "garbage!"}, headers=system)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"] == "/cursor"


async def test_if_match_refuses_a_stale_update(client: httpx.AsyncClient, world: World) -> None:
    system = world.headers("system_a")
    url = f"/v1/clients/{world.a.clients['A1']}"
    etag = (await client.get(url, headers=system)).headers["etag"]
    first = await client.patch(url, json={"locale": "fr-FR"}, headers={**system, "If-Match": etag})
    assert first.status_code == 200
    assert first.headers["etag"] != etag
    stale = await client.patch(url, json={"locale": "de-DE"}, headers={**system, "If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["type"] == "urn:homework:problem:precondition-failed"
    assert (await client.get(url, headers=system)).json()["locale"] == "fr-FR"


async def test_a_client_changes_its_own_preferences_only(
    client: httpx.AsyncClient, world: World
) -> None:
    url = f"/v1/clients/{world.a.clients['A1']}"
    own = await client.patch(
        url,
        json={
            "time_zone": "America/Los_Angeles",
            "quiet_hours": {"start": "23:00", "end": "06:30"},
        },
        headers=world.headers("client_a1"),
    )
    assert own.status_code == 200
    assert own.json()["time_zone"] == "America/Los_Angeles"
    vendor_field = await client.patch(
        url, json={"external_id": "hijack"}, headers=world.headers("client_a1")
    )
    assert vendor_field.status_code == 403
    other = await client.patch(
        f"/v1/clients/{world.a.clients['A2']}",
        json={"locale": "en"},
        headers=world.headers("client_a1"),
    )
    assert other.status_code == 404
    session = await client.patch(
        url, json={"next_session_at": "2026-12-02T10:00:00Z"}, headers=world.headers("clinician_a1")
    )
    assert session.status_code == 200
    null = await client.patch(url, json={"time_zone": None}, headers=world.headers("system_a"))
    assert null.status_code == 422


async def test_care_team_decides_what_a_clinician_sees(
    client: httpx.AsyncClient, world: World
) -> None:
    system = world.headers("system_a")
    client_a1 = world.a.clients["A1"]
    before = await client.get(f"/v1/clients/{client_a1}", headers=world.headers("clinician_a2"))
    assert before.status_code == 404
    await client.post(
        f"/v1/clients/{client_a1}/care-team",
        json={"clinician_id": world.a.clinicians["A2"]},
        headers=system,
    )
    during = await client.get(f"/v1/clients/{client_a1}", headers=world.headers("clinician_a2"))
    assert during.status_code == 200
    removed = await client.delete(
        f"/v1/clients/{client_a1}/care-team/{world.a.clinicians['A2']}", headers=system
    )
    assert removed.status_code == 204
    after = await client.get(f"/v1/clients/{client_a1}", headers=world.headers("clinician_a2"))
    assert after.status_code == 404
    # Another tenant's clinician cannot be put on this team.
    foreign = await client.post(
        f"/v1/clients/{client_a1}/care-team",
        json={"clinician_id": world.b.clinicians["B1"]},
        headers=system,
    )
    assert foreign.status_code == 404


async def test_clinicians_see_colleagues_and_clients_see_their_team(
    client: httpx.AsyncClient, world: World
) -> None:
    mine = await client.get("/v1/clinicians", headers=world.headers("clinician_a1"))
    assert [c["id"] for c in mine.json()["data"]] == [world.a.clinicians["A1"]]
    team = await client.get(
        f"/v1/clinicians/{world.a.clinicians['A1']}", headers=world.headers("client_a1")
    )
    assert team.status_code == 200
    not_mine = await client.get(
        f"/v1/clinicians/{world.a.clinicians['A2']}", headers=world.headers("client_a1")
    )
    assert not_mine.status_code == 404


async def test_erasure_removes_everything_and_leaves_a_trace(
    client: httpx.AsyncClient, world: World
) -> None:
    system = world.headers("system_a")
    client_a1 = world.a.clients["A1"]
    assert (await client.get(f"/v1/clients/{client_a1}", headers=system)).status_code == 200
    erased = await client.delete(f"/v1/clients/{client_a1}", headers=system)
    assert erased.status_code == 204
    assert (await client.get(f"/v1/clients/{client_a1}", headers=system)).status_code == 404
    # The client's token died with them (tests/test_revoked_subjects.py), and the care team
    # went with the client.
    own = await client.get(f"/v1/clients/{client_a1}", headers=world.headers("client_a1"))
    assert own.status_code == 401
    assert (await client.get("/v1/clients", headers=world.headers("clinician_a1"))).json()[
        "data"
    ] == []
    trail = await client.get("/v1/audit-events", params={"client_id": client_a1}, headers=system)
    actions = [e["action"] for e in trail.json()["data"]]
    assert actions[0] == "erase"
    assert "read" in actions
    # The same vendor id can be provisioned again (a returning client is a new record).
    again = await client.post(
        "/v1/clients", json={"external_id": "A-clt-1", "time_zone": "UTC"}, headers=system
    )
    assert again.status_code == 201


async def test_audit_events_record_references_never_data(
    client: httpx.AsyncClient, world: World
) -> None:
    client_a1 = world.a.clients["A1"]
    await client.get(
        f"/v1/clients/{client_a1}",
        headers={**world.headers("clinician_a1"), "X-Request-ID": "req-audit-1"},
    )
    await client.patch(
        f"/v1/clients/{client_a1}",
        json={"display_name": "Sam Secret"},
        headers=world.headers("client_a1"),
    )
    trail = await client.get(
        "/v1/audit-events", params={"client_id": client_a1}, headers=world.headers("system_a")
    )
    events = trail.json()["data"]
    assert "Sam Secret" not in trail.text
    read = next(e for e in events if e["request_id"] == "req-audit-1")
    assert read["actor_kind"] == "clinician"
    assert read["actor_id"] == world.a.clinicians["A1"]
    assert read["action"] == "read" and read["resource_type"] == "client"
    assert read["token_id"].startswith("tok_")
    assert read["ip"]
    by_actor = await client.get(
        "/v1/audit-events",
        params={"actor_id": world.a.clinicians["A1"]},
        headers=world.headers("system_a"),
    )
    assert {e["actor_id"] for e in by_actor.json()["data"]} == {world.a.clinicians["A1"]}
    # Tenant B sees none of tenant A's trail.
    theirs = await client.get("/v1/audit-events", headers=world.headers("system_b"))
    assert all(e["client_id"] != client_a1 for e in theirs.json()["data"])
    window = await client.get(
        "/v1/audit-events",
        params={"since": "2000-01-01T00:00:00Z", "until": "2000-01-02T00:00:00Z"},
        headers=world.headers("system_a"),
    )
    assert window.json()["data"] == []
