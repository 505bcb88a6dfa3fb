"""Every FHIR resource the test suite is sent, validated: the `fhir.resources` R4B models
(structure, types, cardinality) and, since those models do not check codes, the R4 value sets
of the coded elements we emit. `tests.conftest.client_for` runs it on every response."""

from __future__ import annotations

from typing import Any

import httpx
from fhir.resources.R4B import get_fhir_model_class

# hl7.org/fhir/R4: the codes each status-like element may hold.
R4_CODES: dict[tuple[str, str], frozenset[str]] = {
    ("Questionnaire", "status"): frozenset({"draft", "active", "retired", "unknown"}),
    ("QuestionnaireResponse", "status"): frozenset(
        {"in-progress", "completed", "amended", "entered-in-error", "stopped"}
    ),
    ("Observation", "status"): frozenset(
        {
            "registered",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "cancelled",
            "entered-in-error",
            "unknown",
        }
    ),
    ("CarePlan", "status"): frozenset(
        {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
    ),
    ("CarePlan", "intent"): frozenset({"proposal", "plan", "order", "option"}),
    ("Task", "status"): frozenset(
        {
            "draft",
            "requested",
            "received",
            "accepted",
            "rejected",
            "ready",
            "cancelled",
            "in-progress",
            "on-hold",
            "failed",
            "completed",
            "entered-in-error",
        }
    ),
    ("Task", "intent"): frozenset(
        {
            "unknown",
            "proposal",
            "plan",
            "order",
            "original-order",
            "reflex-order",
            "filler-order",
            "instance-order",
            "option",
        }
    ),
}
ACTIVITY_STATUS = frozenset(
    {
        "not-started",
        "scheduled",
        "in-progress",
        "on-hold",
        "completed",
        "cancelled",
        "stopped",
        "unknown",
        "entered-in-error",
    }
)
ITEM_TYPES = frozenset(
    {
        "group",
        "display",
        "boolean",
        "decimal",
        "integer",
        "date",
        "dateTime",
        "time",
        "string",
        "text",
        "url",
        "choice",
        "open-choice",
        "attachment",
        "reference",
        "quantity",
    }
)


def validate(resource: dict[str, Any]) -> None:
    """Raises unless `resource` (and everything it holds) is valid R4."""
    kind = resource["resourceType"]
    get_fhir_model_class(kind).model_validate(resource)
    for (resource_type, element), codes in R4_CODES.items():
        if resource_type == kind and element in resource:
            assert resource[element] in codes, f"{kind}.{element} {resource[element]!r}"
    if kind == "Questionnaire":
        _check_items(resource.get("item", []))
    if kind == "CarePlan":
        for activity in resource.get("activity", []):
            assert activity["detail"]["status"] in ACTIVITY_STATUS
    for held in resource.get("contained", []):
        validate(held)
    for entry in resource.get("entry", []):
        validate(entry["resource"])


def _check_items(items: list[dict[str, Any]]) -> None:
    for item in items:
        assert item["type"] in ITEM_TYPES, item["type"]
        _check_items(item.get("item", []))


async def validate_fhir_response(response: httpx.Response) -> None:
    if response.headers.get("content-type", "").startswith("application/fhir+json"):
        await response.aread()
        validate(response.json())
