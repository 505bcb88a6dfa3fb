"""Search results as a FHIR `Bundle` of type `searchset`, paged by `next` links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request

from app.fhir import canonical as fhir


def base_url(request: Request) -> str:
    """This service's FHIR base, as the caller reached it (`https://…/fhir/R4`)."""
    return f"{str(request.base_url).rstrip('/')}/fhir/R4"


def searchset(
    request: Request, resources: list[dict[str, Any]], next_cursor: str | None, now: datetime
) -> dict[str, Any]:
    base = base_url(request)
    links = [{"relation": "self", "url": str(request.url)}]
    if next_cursor is not None:
        following = request.url.remove_query_params("_cursor").include_query_params(
            _cursor=next_cursor
        )
        links.append({"relation": "next", "url": str(following)})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": fhir.instant(now),
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in resources
        ],
    }
