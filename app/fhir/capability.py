"""The server's `CapabilityStatement` (`GET /fhir/R4/metadata`): what it reads and searches."""

from __future__ import annotations

from typing import Any, Final

from app.fhir import canonical as fhir

# (resource type, search parameters beyond _count and _cursor, each with its type, and what
# it means here.)
SEARCHES: Final[dict[str, tuple[tuple[str, str, str], ...]]] = {
    "Questionnaire": (
        ("url", "uri", "The canonical URL; `|version` for one version."),
        ("status", "token", "active or retired."),
        ("_lastUpdated", "date", "When the template last changed."),
    ),
    "QuestionnaireResponse": (
        ("patient", "reference", "The client."),
        ("status", "token", "completed, amended or stopped."),
        ("_lastUpdated", "date", "When the completion last changed."),
    ),
    "CarePlan": (
        ("patient", "reference", "The client."),
        ("status", "token", "active, completed or revoked."),
        ("_lastUpdated", "date", "When the assignment last changed."),
    ),
    "Task": (
        ("patient", "reference", "The client."),
        (
            "status",
            "token",
            "requested, ready, in-progress, completed, failed, rejected, cancelled.",
        ),
        ("_lastUpdated", "date", "When the occurrence last changed."),
    ),
    "Patient": (
        ("identifier", "token", "Our id or the vendor's external_id."),
        ("_lastUpdated", "date", "When the client last changed."),
    ),
    "Practitioner": (
        ("identifier", "token", "Our id or the vendor's external_id."),
        ("_lastUpdated", "date", "When the clinician last changed."),
    ),
}


def capability_statement(base_url: str, version: str, date: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "Homework API",
        "kind": "instance",
        "software": {"name": "Homework API", "version": version},
        "implementation": {"description": "Homework API, FHIR R4 read-only", "url": base_url},
        "fhirVersion": fhir.FHIR_VERSION,
        "format": [fhir.MEDIA_TYPE, "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Read-only. Bearer tokens from POST /oauth/token, with the "
                "scopes of the same resources as /v1 (docs/FHIR.md).",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": "OAuth 2.0 bearer tokens with SMART v2 style scopes.",
                },
                "resource": [
                    {
                        "type": resource_type,
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": name, "type": kind, "documentation": text}
                            for name, kind, text in params
                        ],
                    }
                    for resource_type, params in SEARCHES.items()
                ],
            }
        ],
    }
