"""ETag on reads, If-Match on PATCH and DELETE: a caller that edits what it has not seen gets
412 instead of silently overwriting someone else's change."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Response

from app.core.errors import PreconditionFailed

IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The ETag you last read; the change is refused with 412 if it is stale.",
    ),
]


def etag_of(resource_id: str, version: int) -> str:
    return f'"{resource_id}.{version}"'


def set_etag(response: Response, resource_id: str, version: int) -> None:
    response.headers["ETag"] = etag_of(resource_id, version)


def check_if_match(if_match: str | None, resource_id: str, version: int) -> None:
    if if_match is None:
        return
    current = etag_of(resource_id, version)
    offered = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if "*" not in offered and current not in offered:
        raise PreconditionFailed("The resource has changed since you read it; read it again.")
