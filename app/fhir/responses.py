"""A completion as a FHIR `QuestionnaireResponse`; a measure's score as an `Observation`
contained in it (LOINC total-score code, severity band as its interpretation).

Status: `done` -> `completed` (`amended` once edited), `partial` and `not_done` -> `stopped`;
our own status is kept in the `completion-status` extension, and everything else the
completion says that FHIR has no element for (barriers, helpfulness, effort, minutes, the
reflection, the distress flag, the review) in our extensions (docs/FHIR.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from app.fhir import canonical as fhir
from app.fhir.loinc import FREQUENCY, MEASURES, MeasureCodes
from app.fhir.people import patient_reference
from app.models import Completion

STATUS: Final = {"done": "completed", "partial": "stopped", "not_done": "stopped"}
# Which of ours each FHIR status stands for, for `status=` searches.
OUR_STATUSES: Final = {
    "completed": ("done",),
    "amended": ("done",),
    "stopped": ("partial", "not_done"),
}
BAND_DISPLAY: Final = {
    "minimal": "Minimal",
    "mild": "Mild",
    "moderate": "Moderate",
    "moderately_severe": "Moderately severe",
    "severe": "Severe",
}
SCORE_ID: Final = "score"


def questionnaire_response(
    completion: Completion,
    *,
    template_id: str,
    template_version: int,
    schema: Mapping[str, Any],
    client_external_id: str,
) -> dict[str, Any]:
    measure = MEASURES.get(completion.kind)
    subject = patient_reference(completion.tenant_id, completion.client_id, client_external_id)
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": fhir.fhir_id(completion.id),
        "meta": fhir.meta(completion.updated_at),
        "extension": _extensions(completion),
        "identifier": {"system": fhir.ID_SYSTEM, "value": completion.id},
        "basedOn": [fhir.reference("CarePlan", completion.assignment_id)],
        "questionnaire": f"{fhir.questionnaire_url(template_id)}|{template_version}",
        "status": status_of(completion),
        "subject": subject,
        "authored": fhir.instant(completion.completed_at),
        "source": fhir.reference("Patient", completion.client_id),
    }
    author = _author(completion)
    if author is not None:
        resource["author"] = author
    answered = answer_items(schema, completion.answers or {}, measure)
    if answered:
        resource["item"] = answered
    if completion.score is not None and measure is not None:
        resource["contained"] = [score_observation(completion, measure, subject)]
    return resource


def status_of(completion: Completion) -> str:
    status = STATUS[completion.status]
    return "amended" if status == "completed" and completion.version > 1 else status


def answer_items(
    schema: Mapping[str, Any], answers: Mapping[str, Any], measure: MeasureCodes | None = None
) -> list[dict[str, Any]]:
    """The answered items, in the schema's order; a repeating group is one item per entry."""
    found: list[dict[str, Any]] = []
    for name, prop in schema.get("properties", {}).items():
        if name not in answers:
            continue
        is_array = prop["type"] == "array"
        element = prop["items"] if is_array else prop
        values = answers[name] if is_array else [answers[name]]
        if element["type"] == "object":
            found += [
                {"linkId": name, "item": answer_items(element, value, measure)} for value in values
            ]
        elif values:
            scored = measure is not None and name in measure.items and element["type"] == "integer"
            found.append(
                {"linkId": name, "answer": [_answer(element, value, scored) for value in values]}
            )
    return found


def _answer(element: Mapping[str, Any], value: Any, scored: bool) -> dict[str, Any]:
    if scored:
        code = FREQUENCY[value]
        return {"valueCoding": {"system": fhir.LOINC, "code": code.code, "display": code.display}}
    key = {
        "boolean": "valueBoolean",
        "integer": "valueInteger",
        "number": "valueDecimal",
        "string": "valueString",
    }[element["type"]]
    return {key: value}


def score_observation(
    completion: Completion, measure: MeasureCodes, subject: dict[str, Any]
) -> dict[str, Any]:
    band = completion.severity or ""
    return {
        "resourceType": "Observation",
        "id": SCORE_ID,
        "status": "amended" if completion.version > 1 else "final",
        "category": [
            {
                "coding": [
                    {"system": fhir.OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}
                ]
            }
        ],
        "code": {
            "coding": [
                {"system": fhir.LOINC, "code": measure.total.code, "display": measure.total.display}
            ]
        },
        "subject": subject,
        "effectiveDateTime": fhir.instant(completion.completed_at),
        "issued": fhir.instant(completion.received_at),
        "valueInteger": completion.score,
        "interpretation": [
            {
                "coding": [
                    {
                        "system": fhir.code_system("severity"),
                        "code": band,
                        "display": BAND_DISPLAY.get(band, band),
                    }
                ]
            }
        ],
        # "#": the resource this one is contained in, the QuestionnaireResponse it came from.
        "derivedFrom": [{"reference": "#"}],
    }


def _author(completion: Completion) -> dict[str, Any] | None:
    if completion.recorded_by_kind == "client":
        return fhir.reference("Patient", completion.recorded_by_id)
    if completion.recorded_by_kind == "clinician":
        return fhir.reference("Practitioner", completion.recorded_by_id)
    return None  # the vendor's backend (an import): no FHIR resource of ours stands for it


def _extensions(completion: Completion) -> list[dict[str, Any]]:
    values: list[tuple[str, str, Any]] = [
        (fhir.COMPLETION_STATUS, "valueCode", completion.status),
        *((fhir.BARRIER, "valueCode", barrier) for barrier in completion.barriers),
        (fhir.BARRIER_NOTE, "valueString", completion.barrier_note),
        (fhir.HELPFULNESS, "valueInteger", completion.helpfulness),
        (fhir.EFFORT, "valueInteger", completion.effort),
        (fhir.MINUTES_SPENT, "valueInteger", completion.minutes_spent),
        (fhir.REFLECTION, "valueString", completion.reflection),
        (fhir.TIME_ZONE, "valueCode", completion.time_zone),
        (fhir.RECEIVED_AT, "valueInstant", fhir.instant(completion.received_at)),
        (fhir.LATE, "valueBoolean", completion.late),
        (fhir.IMPORTED, "valueBoolean", completion.imported),
        (fhir.IN_SESSION, "valueBoolean", completion.in_session),
        (fhir.DISTRESS_FLAGGED, "valueBoolean", completion.distress_flagged),
        *((fhir.DISTRESS_REASON, "valueString", reason) for reason in completion.distress_reasons),
    ]
    extensions = [{"url": url, key: value} for url, key, value in values if value is not None]
    if completion.reviewed_at is not None:
        extensions.append(
            {
                "url": fhir.REVIEW,
                "extension": [
                    {"url": "feedback", "valueString": completion.feedback or ""},
                    {
                        "url": "reviewer",
                        "valueReference": fhir.reference(
                            "Practitioner", completion.reviewed_by or ""
                        ),
                    },
                    {"url": "reviewedAt", "valueDateTime": fhir.instant(completion.reviewed_at)},
                ],
            }
        )
    return extensions
