"""Routes that exist only in tests, to drive the foundation's error and transaction handling
before the API has routes of its own that fail in these ways."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from app.core.db import SessionDep
from app.core.errors import Conflict
from app.core.routing import TransactionRoute
from app.models import Tenant

router = APIRouter(prefix="/v1/_probe", route_class=TransactionRoute)


class Echo(BaseModel):
    title: str = Field(max_length=20)
    count: int = Field(ge=0)
    nested: list[int] = []


@router.post("/echo")
async def echo(body: Echo) -> Echo:
    return body


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals: password=hunter2")


class NewTenant(BaseModel):
    name: str
    fail_after_flush: bool = False
    fail_at_commit: bool = False


@router.post("/tenants", status_code=201)
async def create_tenant(body: NewTenant, session: SessionDep) -> dict[str, str]:
    tenant = Tenant(name=body.name)
    session.add(tenant)
    await session.flush()
    if body.fail_after_flush:
        raise Conflict("refused after the row was flushed")
    if body.fail_at_commit:
        # A second tenant with the same primary key: the INSERT runs only at commit.
        session.add(Tenant(id=tenant.id, name="duplicate"))
    return {"id": tenant.id}


@router.get("/tenants/count")
async def count_tenants(session: SessionDep) -> dict[str, int]:
    return {"count": await session.scalar(select(func.count()).select_from(Tenant)) or 0}
