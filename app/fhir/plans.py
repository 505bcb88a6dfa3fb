"""Assignments as `CarePlan`s (one activity each) and occurrences as `Task`s.

A CarePlan rather than a ServiceRequest: homework is something the client does for themself,
on a schedule, which is what a care plan's activity describes; a ServiceRequest orders a
service from a performer (a lab, a referral), and would have the client order from themself.
Each occurrence is a Task `basedOn` its CarePlan, for the client, with its window as its
`executionPeriod` and, once done, the QuestionnaireResponse as its output.
"""

from __future__ import annotations

from typing import Any, Final

from app.fhir import canonical as fhir
from app.fhir.people import patient_reference
from app.models import Assignment, Occurrence

# Ours -> (CarePlan.status, CarePlan.activity.detail.status).
CARE_PLAN_STATUS: Final = {
    "active": ("active", "in-progress"),
    "completed": ("completed", "completed"),
    "expired": ("completed", "stopped"),
    "cancelled": ("revoked", "cancelled"),
}
TASK_STATUS: Final = {
    "upcoming": "requested",  # its window has not opened yet
    "open": "ready",
    "started": "in-progress",
    "completed": "completed",
    "partial": "completed",  # something was done; businessStatus says `partial`
    "missed": "failed",
    "declined": "rejected",  # the client said they did not do it, and why
    "cancelled": "cancelled",
}


def care_plan(
    assignment: Assignment, *, template_version: int, client_external_id: str
) -> dict[str, Any]:
    plan_status, activity_status = CARE_PLAN_STATUS[assignment.status]
    detail: dict[str, Any] = {
        "kind": "Task",
        "instantiatesCanonical": [
            f"{fhir.questionnaire_url(assignment.template_id)}|{template_version}"
        ],
        "code": {
            "coding": [{"system": fhir.code_system("homework-kind"), "code": assignment.kind}]
        },
        "status": activity_status,
        "description": assignment.instructions,
    }
    if assignment.rrule:
        detail["scheduledString"] = assignment.rrule
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": fhir.fhir_id(assignment.id),
        "meta": fhir.meta(assignment.updated_at),
        "extension": [{"url": fhir.ASSIGNMENT_STATUS, "valueCode": assignment.status}],
        "identifier": [{"system": fhir.ID_SYSTEM, "value": assignment.id}],
        "status": plan_status,
        "intent": "plan",
        "title": assignment.title,
        "subject": patient_reference(
            assignment.tenant_id, assignment.client_id, client_external_id
        ),
        "period": _period(assignment.starts_at, assignment.ended_at or assignment.due_at),
        "created": fhir.instant(assignment.created_at),
        "activity": [{"detail": detail}],
    }
    if assignment.purpose:
        resource["description"] = assignment.purpose
    if assignment.clinician_id:
        resource["author"] = fhir.reference("Practitioner", assignment.clinician_id)
    return resource


def task(
    occurrence: Occurrence,
    *,
    title: str,
    client_external_id: str,
    completion_id: str | None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": fhir.fhir_id(occurrence.id),
        "meta": fhir.meta(occurrence.updated_at),
        "identifier": [{"system": fhir.ID_SYSTEM, "value": occurrence.id}],
        "basedOn": [fhir.reference("CarePlan", occurrence.assignment_id)],
        "status": TASK_STATUS[occurrence.status],
        "businessStatus": {
            "coding": [{"system": fhir.code_system("occurrence-status"), "code": occurrence.status}]
        },
        "intent": "plan",
        "description": title,
        "for": patient_reference(occurrence.tenant_id, occurrence.client_id, client_external_id),
        "executionPeriod": _period(occurrence.opens_at, occurrence.closes_at),
        "authoredOn": fhir.instant(occurrence.created_at),
        "lastModified": fhir.instant(occurrence.updated_at),
        "owner": fhir.reference("Patient", occurrence.client_id),
        "restriction": {"period": {"end": fhir.instant(occurrence.due_at)}},
    }
    if completion_id is not None:
        resource["output"] = [
            {
                "type": {"text": "QuestionnaireResponse"},
                "valueReference": fhir.reference("QuestionnaireResponse", completion_id),
            }
        ]
    return resource


def _period(start: Any, end: Any | None) -> dict[str, str]:
    period = {"start": fhir.instant(start)}
    if end is not None:
        period["end"] = fhir.instant(end)
    return period
