"""Clients as `Patient` and clinicians as `Practitioner`: stubs of ids and identifiers, since we
hold no demographics (the vendor's record has them, under the same `external_id`)."""

from __future__ import annotations

from typing import Any

from app.fhir import canonical as fhir
from app.models import Client, Clinician


def patient(client: Client) -> dict[str, Any]:
    return _person("Patient", "client", client)


def practitioner(clinician: Clinician) -> dict[str, Any]:
    return _person("Practitioner", "clinician", clinician)


def patient_reference(tenant_id: str, client_id: str, external_id: str) -> dict[str, Any]:
    """The client as a reference, by our id and by the vendor's."""
    return fhir.reference(
        "Patient", client_id, identifier=external_identifier(tenant_id, "client", external_id)
    )


def external_identifier(tenant_id: str, kind: str, external_id: str) -> dict[str, Any]:
    return {"system": fhir.external_id_system(tenant_id, kind), "value": external_id}


def _person(resource_type: str, kind: str, person: Client | Clinician) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "id": fhir.fhir_id(person.id),
        "meta": fhir.meta(person.updated_at),
        "identifier": [
            {"use": "official", "system": fhir.ID_SYSTEM, "value": person.id},
            {"use": "usual", **external_identifier(person.tenant_id, kind, person.external_id)},
        ],
        "active": True,
    }
