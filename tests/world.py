"""Two tenants and the people in them, with a real token for each role, for API tests.

Tenant A: clinician A1 treats client A1; clinician A2 treats client A2 only.
Tenant B: its own clinician and client, to prove that nothing crosses tenants.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI

from app.core.db import Database
from app.core.scopes import ROLE_SCOPES, Context, ScopeSet
from app.core.tokens import TokenService
from app.models import CareTeamMember, Client, Clinician
from app.services import tenants


@dataclass
class Tenant:
    id: str
    client_id: str
    client_secret: str
    clinicians: dict[str, str] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    app: FastAPI
    a: Tenant
    b: Tenant
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role in self.tokens else {}

    def token_for(
        self,
        tenant: Tenant,
        kind: Context,
        subject: str,
        scopes: ScopeSet | None = None,
        ttl: int = 900,
    ) -> str:
        service: TokenService = self.app.state.tokens
        token, _ = service.issue(
            tenant_id=tenant.id,
            kind=kind,
            subject=subject,
            client_id=tenant.client_id,
            scopes=scopes if scopes is not None else ROLE_SCOPES[kind],
            ttl_seconds=ttl,
        )
        return token


async def _tenant(database: Database, name: str, people: int) -> Tenant:
    async with database.sessionmaker() as session, session.begin():
        issued = await tenants.create_tenant(session, name)
        tenant = Tenant(issued.tenant_id, issued.client_id, issued.client_secret)
        for n in range(1, people + 1):
            clinician = Clinician(tenant_id=tenant.id, external_id=f"{name}-cln-{n}")
            client = Client(
                tenant_id=tenant.id,
                external_id=f"{name}-clt-{n}",
                display_name=f"Client {name}{n}",
                time_zone="Europe/London",
                locale="en-GB",
            )
            session.add_all([clinician, client])
            await session.flush()
            session.add(
                CareTeamMember(client_id=client.id, clinician_id=clinician.id, tenant_id=tenant.id)
            )
            tenant.clinicians[f"{name}{n}"] = clinician.id
            tenant.clients[f"{name}{n}"] = client.id
    return tenant


async def build_world(app: FastAPI) -> World:
    database: Database = app.state.database
    world = World(app, await _tenant(database, "A", 2), await _tenant(database, "B", 1))
    a, b = world.a, world.b
    world.tokens = {
        "system_a": world.token_for(a, Context.system, a.client_id),
        "clinician_a1": world.token_for(a, Context.clinician, a.clinicians["A1"]),
        "clinician_a2": world.token_for(a, Context.clinician, a.clinicians["A2"]),
        "client_a1": world.token_for(a, Context.client, a.clients["A1"]),
        "client_a2": world.token_for(a, Context.client, a.clients["A2"]),
        "system_b": world.token_for(b, Context.system, b.client_id),
        "expired": _expired(world, a),
        "no_scope": world.token_for(a, Context.system, a.client_id, ScopeSet()),
    }
    return world


def _expired(world: World, tenant: Tenant) -> str:
    real_time = time.time
    try:
        # Issued an hour ago with a 15-minute life: expired well past the 30 s leeway.
        time.time = lambda: real_time() - 3600  # type: ignore[assignment]
        return world.token_for(tenant, Context.system, tenant.client_id)
    finally:
        time.time = real_time  # type: ignore[assignment]


async def get_token(http: httpx.AsyncClient, tenant: Tenant, **form: str) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", **form},
        auth=(tenant.client_id, tenant.client_secret),
    )
