"""The template catalogue, through HTTP as a vendor's apps would call it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, get_args

import httpx
import pytest
from sqlalchemy import event

from app.core.errors import Conflict, NotFound
from app.core.scopes import ROLE_SCOPES, Context
from app.core.security import Principal
from app.schemas.templates import TemplateKind, TemplateVersionCreate
from app.services import templates
from app.services.response_schema import check_schema
from app.services.template_catalog import BUILTIN_TEMPLATES, KINDS
from tests.world import Tenant, World

BUILTIN_KINDS = {
    "thought_record",
    "mood_log",
    "activity_schedule",
    "exposure",
    "mindfulness",
    "journal",
    "skill_practice",
    "reading",
    "phq9",
    "gad7",
}


def worry_time(name: str = "Worry time", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "instructions": "Set aside 15 minutes at the same time each day to write your worries.",
        "purpose": "Postponing worry shows that it can wait, and loosens its grip.",
        "estimated_minutes": 15,
        "response_schema": {
            "type": "object",
            "properties": {
                "worry": {"type": "string", "title": "Your worry", "maxLength": 2000},
                "mood": {"type": "integer", "minimum": 0, "maximum": 10},
            },
            "required": ["worry"],
            "additionalProperties": False,
        },
        "default_reminder_local_times": ["18:00"],
    }
    return {**body, **changes}


async def _create(
    http: httpx.AsyncClient, world: World, role: str = "clinician_a1", **changes: Any
) -> dict[str, Any]:
    response = await http.post(
        "/v1/templates", json=worry_time(**changes), headers=world.headers(role)
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _listed(
    http: httpx.AsyncClient, world: World, role: str = "system_a", **params: Any
) -> list[dict[str, Any]]:
    response = await http.get(
        "/v1/templates", params={"limit": 200, **params}, headers=world.headers(role)
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_the_kind_filter_offers_exactly_the_catalogue_kinds() -> None:
    assert get_args(TemplateKind) == KINDS
    assert set(KINDS) == BUILTIN_KINDS | {"custom"}


async def test_the_catalogue_lists_every_builtin_kind(
    client: httpx.AsyncClient, world: World
) -> None:
    listed = await _listed(client, world, "clinician_a1")
    builtins = {t["kind"]: t for t in listed if t["builtin"]}
    assert set(builtins) == BUILTIN_KINDS
    for kind, template in builtins.items():
        assert template["id"] == f"tpl_builtin_{kind}"
        assert template["name"] == BUILTIN_TEMPLATES[kind].name
        assert len(template["instructions"]) > 50
        assert len(template["purpose"]) > 50
        assert 1 <= template["estimated_minutes"] <= 60
        assert template["response_schema"]["type"] == "object"
        assert template["response_schema"]["properties"]
        # The built-ins keep to the subset that tenants are held to.
        assert check_schema(template["response_schema"]) == [], kind
        assert template["version"] == template["latest_version"] >= 1
        assert template["version_id"].startswith("tpv_")
        assert template["retired_at"] is None
    assert builtins["mood_log"]["default_reminder_local_times"] == ["20:00"]
    assert builtins["phq9"]["response_schema"]["properties"]["item_9"]["x-distress-item"] is True

    only = await _listed(client, world, kind="phq9")
    assert [t["id"] for t in only] == ["tpl_builtin_phq9"]
    unknown = await client.get(
        "/v1/templates", params={"kind": "horoscope"}, headers=world.headers("system_a")
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["pointer"] == "/kind"


async def test_a_clinician_creates_a_custom_template(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/v1/templates",
        json=worry_time(default_reminder_local_times=["21:00", "08:30"]),
        headers=world.headers("clinician_a1"),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"].startswith("tpl_")
    assert created["kind"] == "custom"
    assert created["builtin"] is False
    assert created["version"] == created["latest_version"] == 1
    assert created["name"] == "Worry time"
    assert created["response_schema"] == worry_time()["response_schema"]
    assert created["default_reminder_local_times"] == ["08:30", "21:00"]
    assert response.headers["etag"] == f'"{created["id"]}.1"'

    # Everyone in the tenant reads it: the vendor, another clinician, a client.
    for role in ("system_a", "clinician_a2", "client_a2"):
        read = await client.get(f"/v1/templates/{created['id']}", headers=world.headers(role))
        assert read.status_code == 200, role
        assert read.json() == created
        assert read.headers["etag"] == response.headers["etag"]
    assert created["id"] in {t["id"] for t in await _listed(client, world, kind="custom")}


async def test_reminder_times_are_optional_distinct_and_few(
    client: httpx.AsyncClient, world: World
) -> None:
    body = worry_time()
    del body["default_reminder_local_times"]
    response = await client.post("/v1/templates", json=body, headers=world.headers("system_a"))
    assert response.status_code == 201
    assert response.json()["default_reminder_local_times"] == []

    for times, pointer in [
        (["25:00"], "/default_reminder_local_times/0"),
        (["08:00", "08:00"], "/default_reminder_local_times"),
        ([f"0{n}:00" for n in range(7)], "/default_reminder_local_times"),
    ]:
        refused = await client.post(
            "/v1/templates",
            json=worry_time(default_reminder_local_times=times),
            headers=world.headers("system_a"),
        )
        assert refused.status_code == 422, times
        assert [e["pointer"] for e in refused.json()["errors"]] == [pointer]


@pytest.mark.parametrize(
    ("change", "field", "pointer"),
    [
        ({"kind": "mood_log"}, None, "/kind"),
        ({"name": ""}, None, "/name"),
        ({"name": "x" * 201}, None, "/name"),
        ({"instructions": "a\x00b"}, None, "/instructions"),
        ({"purpose": "x" * 5001}, None, "/purpose"),
        ({"estimated_minutes": 0}, None, "/estimated_minutes"),
        ({"estimated_minutes": 601}, None, "/estimated_minutes"),
        ({"response_schema": ["not", "an", "object"]}, None, "/response_schema"),
        ({}, "instructions", "/instructions"),
    ],
)
async def test_an_invalid_body_is_a_422_naming_the_field(
    client: httpx.AsyncClient,
    world: World,
    change: dict[str, Any],
    field: str | None,
    pointer: str,
) -> None:
    body = worry_time(**change)
    if field:
        del body[field]
    response = await client.post("/v1/templates", json=body, headers=world.headers("system_a"))
    assert response.status_code == 422
    assert response.json()["type"] == "urn:homework:problem:validation-error"
    assert [e["pointer"] for e in response.json()["errors"]] == [pointer]


def _mood_with(**extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"mood": {"type": "integer", "minimum": 0, "maximum": 10, **extra}},
    }


@pytest.mark.parametrize(
    ("schema", "pointer"),
    [
        (
            {
                "type": "object",
                "properties": {"mood": {"type": "string", "maxLength": 9, "pattern": "^[a-z]+$"}},
            },
            "/response_schema/properties/mood/pattern",
        ),
        ({**_mood_with(), "$ref": "#/$defs/mood"}, "/response_schema/$ref"),
        (
            _mood_with(oneOf=[{"minimum": 0}, {"maximum": 10}]),
            "/response_schema/properties/mood/oneOf",
        ),
        (
            {**_mood_with(), "additionalProperties": True},
            "/response_schema/additionalProperties",
        ),
        # RFC 6901 escaping survives the trip from the schema checker into the problem.
        (
            {"type": "object", "properties": {"a/b": {"type": "boolean"}}},
            "/response_schema/properties/a~1b",
        ),
    ],
    ids=["pattern", "$ref", "oneOf", "additionalProperties", "escaped"],
)
async def test_an_unsupported_schema_construct_is_a_422_with_its_pointer(
    client: httpx.AsyncClient, world: World, schema: dict[str, Any], pointer: str
) -> None:
    response = await client.post(
        "/v1/templates", json=worry_time(response_schema=schema), headers=world.headers("system_a")
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:homework:problem:validation-error"
    assert [e["pointer"] for e in problem["errors"]] == [pointer]
    assert problem["errors"][0]["location"] == "body"
    assert await _listed(client, world, kind="custom") == []


async def test_every_schema_problem_is_named_in_one_422(
    client: httpx.AsyncClient, world: World
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "note": {"type": "string", "format": "email"},
            "score": {"type": ["integer", "null"]},
        },
        "required": ["missing"],
    }
    response = await client.post(
        "/v1/templates", json=worry_time(response_schema=schema), headers=world.headers("system_a")
    )
    assert response.status_code == 422
    errors = {e["pointer"]: e for e in response.json()["errors"]}
    assert set(errors) == {
        "/response_schema/properties/note/format",
        "/response_schema/properties/note/maxLength",
        "/response_schema/properties/score/type",
        "/response_schema/required/0",
    }
    assert errors["/response_schema/properties/note/maxLength"]["code"] == "missing"
    assert errors["/response_schema/properties/note/format"]["code"] == "unsupported"
    assert errors["/response_schema/required/0"]["field"] == "response_schema.required.0"


async def test_a_new_version_becomes_the_latest_and_the_old_one_stays(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await _create(client, world)
    url = f"/v1/templates/{created['id']}"
    first_etag = (await client.get(url, headers=world.headers("system_a"))).headers["etag"]

    second = await client.post(
        f"{url}/versions",
        json=worry_time("Worry postponement", estimated_minutes=20),
        headers={**world.headers("clinician_a2"), "If-Match": first_etag},
    )
    assert second.status_code == 201, second.text
    assert second.json()["version"] == second.json()["latest_version"] == 2
    assert second.json()["name"] == "Worry postponement"
    assert second.json()["version_id"] != created["version_id"]
    assert second.headers["etag"] != first_etag

    latest = (await client.get(url, headers=world.headers("client_a1"))).json()
    assert (latest["version"], latest["name"], latest["estimated_minutes"]) == (
        2,
        "Worry postponement",
        20,
    )
    old = await client.get(url, params={"version": 1}, headers=world.headers("client_a1"))
    assert old.status_code == 200
    assert (old.json()["version"], old.json()["latest_version"]) == (1, 2)
    assert old.json()["name"] == "Worry time"
    assert old.json()["version_id"] == created["version_id"]
    missing = await client.get(url, params={"version": 3}, headers=world.headers("system_a"))
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:homework:problem:not-found"

    versions = await client.get(f"{url}/versions", headers=world.headers("client_a1"))
    assert versions.status_code == 200
    assert [(v["version"], v["name"]) for v in versions.json()["data"]] == [
        (2, "Worry postponement"),
        (1, "Worry time"),
    ]
    assert {v["template_id"] for v in versions.json()["data"]} == {created["id"]}

    # Only the latest version counts in the list.
    (listed,) = await _listed(client, world, kind="custom")
    assert (listed["version"], listed["name"]) == (2, "Worry postponement")


async def test_a_stale_if_match_refuses_a_new_version(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await _create(client, world)
    url = f"/v1/templates/{created['id']}"
    etag = f'"{created["id"]}.1"'
    headers = {**world.headers("system_a"), "If-Match": etag}
    assert (await client.post(f"{url}/versions", json=worry_time("v2"), headers=headers)).is_success
    stale = await client.post(f"{url}/versions", json=worry_time("v3"), headers=headers)
    assert stale.status_code == 412
    assert stale.json()["type"] == "urn:homework:problem:precondition-failed"
    assert (await client.get(url, headers=world.headers("system_a"))).json()["latest_version"] == 2


async def test_a_new_version_needs_the_whole_body(client: httpx.AsyncClient, world: World) -> None:
    created = await _create(client, world)
    body = worry_time()
    del body["default_reminder_local_times"]
    response = await client.post(
        f"/v1/templates/{created['id']}/versions", json=body, headers=world.headers("system_a")
    )
    assert response.status_code == 422
    assert [e["pointer"] for e in response.json()["errors"]] == ["/default_reminder_local_times"]
    bad_schema = await client.post(
        f"/v1/templates/{created['id']}/versions",
        json=worry_time(response_schema=_mood_with(pattern="x")),
        headers=world.headers("system_a"),
    )
    assert bad_schema.status_code == 422
    assert [e["pointer"] for e in bad_schema.json()["errors"]] == [
        "/response_schema/properties/mood/pattern"
    ]


async def test_retiring_hides_a_template_from_the_default_list_only(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await _create(client, world)
    url = f"/v1/templates/{created['id']}"
    etag = (await client.get(url, headers=world.headers("system_a"))).headers["etag"]
    stale = await client.delete(url, headers={**world.headers("system_a"), "If-Match": '"x.1"'})
    assert stale.status_code == 412

    retired = await client.delete(url, headers={**world.headers("system_a"), "If-Match": etag})
    assert retired.status_code == 204
    assert created["id"] not in {t["id"] for t in await _listed(client, world)}
    (shown,) = await _listed(client, world, kind="custom", include_retired="true")
    assert shown["id"] == created["id"]
    assert shown["retired_at"] is not None

    read = await client.get(url, headers=world.headers("client_a1"))
    assert read.status_code == 200
    assert read.json()["retired_at"] == shown["retired_at"]
    versions = await client.get(f"{url}/versions", headers=world.headers("system_a"))
    assert [v["version"] for v in versions.json()["data"]] == [1]

    # Retiring again is a no-op, even with the If-Match of the first attempt.
    again = await client.delete(url, headers={**world.headers("system_a"), "If-Match": etag})
    assert again.status_code == 204
    assert (await client.get(url, headers=world.headers("system_a"))).json() == read.json()

    refused = await client.post(
        f"{url}/versions", json=worry_time("v2"), headers=world.headers("system_a")
    )
    assert refused.status_code == 409
    assert refused.json()["type"] == "urn:homework:problem:conflict"


async def test_builtin_templates_are_read_only(client: httpx.AsyncClient, world: World) -> None:
    url = "/v1/templates/tpl_builtin_mood_log"
    before = (await client.get(url, headers=world.headers("system_a"))).json()
    for response in (
        await client.post(f"{url}/versions", json=worry_time(), headers=world.headers("system_a")),
        await client.delete(url, headers=world.headers("clinician_a1")),
    ):
        assert response.status_code == 403
        problem = response.json()
        assert problem["type"] == "urn:homework:problem:forbidden"
        assert problem["detail"] == (
            "built-in templates are read-only; create a custom template instead"
        )
        # The caller holds the scope: this is not a scope problem.
        assert "insufficient_scope" not in response.headers.get("www-authenticate", "")
    assert (await client.get(url, headers=world.headers("system_a"))).json() == before
    # Every tenant reads the built-ins.
    assert (await client.get(url, headers=world.headers("system_b"))).status_code == 200


async def test_another_tenant_can_neither_see_nor_change_a_template(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await _create(client, world)
    url = f"/v1/templates/{created['id']}"
    other = world.headers("system_b")
    for response in (
        await client.get(url, headers=other),
        await client.get(url, params={"version": 1}, headers=other),
        await client.get(f"{url}/versions", headers=other),
        await client.post(f"{url}/versions", json=worry_time(), headers=other),
        await client.delete(url, headers=other),
    ):
        assert response.status_code == 404
        assert response.json()["type"] == "urn:homework:problem:not-found"
    assert created["id"] not in {
        t["id"] for t in await _listed(client, world, "system_b", include_retired="true")
    }
    # Tenant B's own template is likewise invisible to tenant A.
    theirs = await _create(client, world, "system_b", name="B's own")
    assert {t["id"] for t in await _listed(client, world, "system_b", kind="custom")} == {
        theirs["id"]
    }
    assert {t["id"] for t in await _listed(client, world, "clinician_a1", kind="custom")} == {
        created["id"]
    }
    untouched = await client.get(url, headers=world.headers("system_a"))
    assert (untouched.json()["latest_version"], untouched.json()["retired_at"]) == (1, None)


async def test_a_client_reads_templates_but_cannot_list_or_change_them(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await _create(client, world)
    me = world.headers("client_a1")
    assert (await client.get(f"/v1/templates/{created['id']}", headers=me)).status_code == 200
    assert (await client.get("/v1/templates/tpl_builtin_journal", headers=me)).status_code == 200
    versions = await client.get(f"/v1/templates/{created['id']}/versions", headers=me)
    assert versions.status_code == 200
    # client/templates.r: no `s` to search, no `c`, `u` or `d`.
    for response, scope in (
        (await client.get("/v1/templates", headers=me), "client/templates.s"),
        (await client.post("/v1/templates", json=worry_time(), headers=me), "client/templates.c"),
        (
            await client.post(
                f"/v1/templates/{created['id']}/versions", json=worry_time(), headers=me
            ),
            "client/templates.u",
        ),
        (await client.delete(f"/v1/templates/{created['id']}", headers=me), "client/templates.d"),
    ):
        assert response.status_code == 403
        assert response.json()["scope"] == scope
    assert not ROLE_SCOPES[Context.client].allows(Context.client, "templates", "s")


async def test_lists_page_with_an_opaque_cursor(client: httpx.AsyncClient, world: World) -> None:
    made = [(await _create(client, world, name=f"Custom {n}"))["id"] for n in range(5)]
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/v1/templates", params=params, headers=world.headers("system_a"))
        assert page.status_code == 200
        assert len(page.json()["data"]) <= 4
        seen += page.json()["data"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    ids = [t["id"] for t in seen]
    assert len(ids) == len(set(ids)) == len(BUILTIN_KINDS) + 5
    # Built-ins first (their ids are names), then the tenant's own, newest first.
    assert [t["builtin"] for t in seen] == [True] * len(BUILTIN_KINDS) + [False] * 5
    assert ids[-5:] == list(reversed(made))

    bad = await client.get(
        "/v1/templates", params={"cursor": "garbage!"}, headers=world.headers("system_a")
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"] == "/cursor"


async def test_versions_page_newest_first(client: httpx.AsyncClient, world: World) -> None:
    created = await _create(client, world)
    url = f"/v1/templates/{created['id']}/versions"
    for n in (2, 3, 4):
        response = await client.post(
            url, json=worry_time(f"v{n}"), headers=world.headers("system_a")
        )
        assert response.json()["version"] == n
    first = (await client.get(url, params={"limit": 3}, headers=world.headers("system_a"))).json()
    assert [v["version"] for v in first["data"]] == [4, 3, 2]
    rest = await client.get(
        url, params={"limit": 3, "cursor": first["next_cursor"]}, headers=world.headers("system_a")
    )
    assert [v["version"] for v in rest.json()["data"]] == [1]
    assert rest.json()["next_cursor"] is None
    # A list cursor is no version cursor.
    listed = await client.get(
        "/v1/templates", params={"limit": 1}, headers=world.headers("system_a")
    )
    wrong = await client.get(
        url, params={"cursor": listed.json()["next_cursor"]}, headers=world.headers("system_a")
    )
    assert wrong.status_code == 422


@contextmanager
def counting_statements(world: World) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = world.app.state.database.engine.sync_engine

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def _statements_for_the_list(client: httpx.AsyncClient, world: World) -> list[str]:
    with counting_statements(world) as statements:
        listed = await _listed(client, world, "clinician_a1")
    assert all(t["version"] == t["latest_version"] for t in listed)
    return statements


async def test_the_list_costs_the_same_queries_for_1_or_30_templates(
    client: httpx.AsyncClient, world: World
) -> None:
    await _create(client, world)
    with_one = await _statements_for_the_list(client, world)
    for n in range(29):
        await _create(client, world, name=f"Custom {n}")
    assert len(await _listed(client, world, kind="custom")) == 30
    with_thirty = await _statements_for_the_list(client, world)

    assert len(with_thirty) == len(with_one)
    # One statement reads templates and their latest versions together; nothing else does.
    assert len([s for s in with_thirty if "template_versions" in s]) == 1
    assert len([s for s in with_thirty if "templates" in s]) == 1


async def test_an_idempotency_key_retry_creates_one_template(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = {**world.headers("clinician_a1"), "Idempotency-Key": "tpl-create-1"}
    first = await client.post("/v1/templates", json=worry_time(), headers=headers)
    again = await client.post("/v1/templates", json=worry_time(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["idempotent-replayed"] == "true"
    assert [t["id"] for t in await _listed(client, world, kind="custom")] == [first.json()["id"]]


# The assignment service's way in: the version a new assignment is made from.


def _principal(tenant: Tenant, kind: Context, subject: str) -> Principal:
    return Principal(
        tenant_id=tenant.id,
        kind=kind,
        subject_id=subject,
        client_app_id=tenant.client_id,
        token_id="test",
        scopes=ROLE_SCOPES[kind],
    )


async def test_the_assignable_version_is_the_latest_of_a_visible_live_template(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await _create(client, world)
    url = f"/v1/templates/{created['id']}"
    second = await client.post(
        f"{url}/versions", json=worry_time("v2"), headers=world.headers("system_a")
    )
    clinician = _principal(world.a, Context.clinician, world.a.clinicians["A1"])
    stranger = _principal(world.b, Context.system, world.b.client_id)
    database = world.app.state.database

    async with database.sessionmaker() as session:
        version = await templates.get_assignable_version(session, clinician, created["id"])
        assert (version.id, version.number, version.name) == (second.json()["version_id"], 2, "v2")
        builtin = await templates.get_assignable_version(session, stranger, "tpl_builtin_gad7")
        assert builtin.template_id == "tpl_builtin_gad7"
        with pytest.raises(NotFound):
            await templates.get_assignable_version(session, stranger, created["id"])
        with pytest.raises(NotFound):
            await templates.get_assignable_version(session, clinician, "tpl_nope")

    assert (await client.delete(url, headers=world.headers("system_a"))).status_code == 204
    async with database.sessionmaker() as session:
        with pytest.raises(Conflict, match="the template is retired"):
            await templates.get_assignable_version(session, clinician, created["id"])


async def test_of_two_concurrent_new_versions_the_second_is_a_409(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await _create(client, world)
    system = _principal(world.a, Context.system, world.a.client_id)
    database = world.app.state.database
    # Both read version 1; the first publishes; the second then publishes from what it read.
    async with database.sessionmaker() as first, database.sessionmaker() as second:
        async with second.begin():
            stale = await templates.get_changeable_template(second, system, created["id"])
        async with first.begin():
            mine = await templates.get_changeable_template(first, system, created["id"])
            await templates.add_version(first, mine, TemplateVersionCreate(**worry_time("mine")))
        with pytest.raises(Conflict):
            async with second.begin():
                await templates.add_version(
                    second, stale, TemplateVersionCreate(**worry_time("theirs"))
                )
    versions = await client.get(
        f"/v1/templates/{created['id']}/versions", headers=world.headers("system_a")
    )
    assert [(v["version"], v["name"]) for v in versions.json()["data"]] == [
        (2, "mine"),
        (1, "Worry time"),
    ]
