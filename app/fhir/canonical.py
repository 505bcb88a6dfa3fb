"""The names our FHIR resources use: our canonical URL, its extensions, code systems and
identifier systems, and the FHIR ids of our objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

# A name, not an address the service answers at: canonical URLs identify definitions wherever
# a resource travels (an EHR keeps them), so they cannot be a deployment's host.
CANONICAL: Final = "https://fhir.homework-api.dev"
FHIR_VERSION: Final = "4.0.1"
MEDIA_TYPE: Final = "application/fhir+json"

LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"

# Standard extensions (hl7.org/fhir/R4/extensibility-registry.html).
MIN_VALUE: Final = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE: Final = "http://hl7.org/fhir/StructureDefinition/maxValue"
MIN_LENGTH: Final = "http://hl7.org/fhir/StructureDefinition/minLength"
MIN_OCCURS: Final = "http://hl7.org/fhir/StructureDefinition/questionnaire-minOccurs"
MAX_OCCURS: Final = "http://hl7.org/fhir/StructureDefinition/questionnaire-maxOccurs"
ORDINAL_VALUE: Final = "http://hl7.org/fhir/StructureDefinition/ordinalValue"


def extension_url(name: str) -> str:
    return f"{CANONICAL}/StructureDefinition/{name}"


def code_system(name: str) -> str:
    return f"{CANONICAL}/CodeSystem/{name}"


# Our own extensions (docs/FHIR.md "Extensions").
DESCRIPTION: Final = extension_url("item-description")
DISTRESS_THRESHOLD: Final = extension_url("distress-threshold")
DISTRESS_ITEM: Final = extension_url("distress-item")
ESTIMATED_MINUTES: Final = extension_url("estimated-minutes")
REMINDER_TIMES: Final = extension_url("default-reminder-time")
COMPLETION_STATUS: Final = extension_url("completion-status")
BARRIER: Final = extension_url("barrier")
BARRIER_NOTE: Final = extension_url("barrier-note")
HELPFULNESS: Final = extension_url("helpfulness")
EFFORT: Final = extension_url("effort")
MINUTES_SPENT: Final = extension_url("minutes-spent")
REFLECTION: Final = extension_url("reflection")
TIME_ZONE: Final = extension_url("time-zone")
RECEIVED_AT: Final = extension_url("received-at")
LATE: Final = extension_url("late")
IMPORTED: Final = extension_url("imported")
IN_SESSION: Final = extension_url("in-session")
DISTRESS_FLAGGED: Final = extension_url("distress-flagged")
DISTRESS_REASON: Final = extension_url("distress-reason")
REVIEW: Final = extension_url("review")
ASSIGNMENT_STATUS: Final = extension_url("assignment-status")

# Our ids, exactly, as identifiers; the vendor's external ids are unique within a tenant only.
ID_SYSTEM: Final = f"{CANONICAL}/sid/id"


def external_id_system(tenant_id: str, kind: str) -> str:
    """`kind` is `client` or `clinician`."""
    return f"{CANONICAL}/sid/tenant/{tenant_id}/{kind}-external-id"


def fhir_id(our_id: str) -> str:
    """FHIR ids may not contain `_` ([A-Za-z0-9.-]); ours never contain `-`, so `_` becomes `-`
    and back without loss."""
    return our_id.replace("_", "-")


def our_id(fhir_resource_id: str) -> str:
    return fhir_resource_id.replace("-", "_")


def reference(resource_type: str, our_object_id: str, **extra: Any) -> dict[str, Any]:
    return {"reference": f"{resource_type}/{fhir_id(our_object_id)}", **extra}


def questionnaire_url(template_id: str) -> str:
    return f"{CANONICAL}/Questionnaire/{fhir_id(template_id)}"


def instant(moment: datetime) -> str:
    """FHIR `instant` and `dateTime`: ours are UTC, written with `Z`."""
    if moment.tzinfo is not UTC:  # ours always are (app.models.base.UTCDateTime)
        moment = moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def meta(updated_at: datetime) -> dict[str, Any]:
    return {"lastUpdated": instant(updated_at)}
