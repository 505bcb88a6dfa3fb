"""A completion as a FHIR `QuestionnaireResponse`; a measure's score as an `Observation`
contained in it (LOINC total-score code, severity band as its interpretation).

Status: `done` -> `completed` (`amended` once edited), `partial` and `not_done` -> `stopped`;
our own status is kept in the `completion-status` extension, and everything else the
completion says that FHIR has no element for (barriers, helpfulness, effort, minutes, the
reflection, the distress flag, the review) in our extensions (docs/FHIR.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Final

from app.fhir import canonical as fhir
from app.fhir.loinc import FREQUENCY, MEASURES, MeasureCodes
from app.fhir.people import patient_reference
from app.models import Completion


@dataclass(frozen=True, slots=True)
class CompletionRow:
    """The columns of a completion that its QuestionnaireResponse is made of, in the order a
    search selects them (app.fhir.reads): a page is mapped from these rather than from ORM
    objects or rows read by name, which cost a third of the search between them."""

    id: str
    tenant_id: str
    assignment_id: str
    client_id: str
    kind: str
    status: str
    answers: dict[str, Any] | None
    barriers: list[str]
    barrier_note: str | None
    helpfulness: int | None
    effort: int | None
    minutes_spent: int | None
    reflection: str | None
    completed_at: datetime
    time_zone: str
    received_at: datetime
    late: bool
    imported: bool
    recorded_by_kind: str
    recorded_by_id: str
    in_session: bool
    score: int | None
    severity: str | None
    distress_flagged: bool
    distress_reasons: list[str]
    feedback: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    updated_at: datetime
    version: int


COMPLETION_COLUMNS: Final = tuple(f.name for f in fields(CompletionRow))
# A completion as the API holds it, or as a search read it.
AnyCompletion = Completion | CompletionRow

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


@dataclass(frozen=True, slots=True)
class AnswerItem:
    """How one property's answers are written: worked out once per template version (a page
    of 50 responses to one template walks its schema once, not 50 times)."""

    link_id: str
    repeats: bool
    group: tuple[AnswerItem, ...] | None  # an object's properties
    value_key: str
    codings: tuple[dict[str, Any], ...] | None  # a measure's item: LOINC's answer for 0-3


AnswerPlan = tuple[AnswerItem, ...]


def answer_plan(schema: Mapping[str, Any], kind: str) -> AnswerPlan:
    """The plan of the answers to a template version of this kind, in the schema's order."""
    return _plan(schema, MEASURES.get(kind))


def _plan(schema: Mapping[str, Any], measure: MeasureCodes | None) -> AnswerPlan:
    plan = []
    for name, prop in schema.get("properties", {}).items():
        repeats = prop["type"] == "array"
        element = prop["items"] if repeats else prop
        scored = measure is not None and name in measure.items and element["type"] == "integer"
        plan.append(
            AnswerItem(
                link_id=name,
                repeats=repeats,
                group=_plan(element, measure) if element["type"] == "object" else None,
                value_key=_VALUE_KEYS.get(element["type"], ""),
                codings=_FREQUENCY_ANSWERS if scored else None,
            )
        )
    return tuple(plan)


_VALUE_KEYS: Final = {
    "boolean": "valueBoolean",
    "integer": "valueInteger",
    "number": "valueDecimal",
    "string": "valueString",
}
# Shared by every response that gives them, never changed: they are only ever serialised.
_FREQUENCY_ANSWERS: Final = tuple(
    {"valueCoding": {"system": fhir.LOINC, "code": code.code, "display": code.display}}
    for code in FREQUENCY
)


def questionnaire_response(
    completion: AnyCompletion,
    *,
    template_id: str,
    template_version: int,
    answers: AnswerPlan,
    client_external_id: str,
) -> dict[str, Any]:
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
    answered = answer_items(answers, completion.answers or {})
    if answered:
        resource["item"] = answered
    measure = MEASURES.get(completion.kind)
    if completion.score is not None and measure is not None:
        resource["contained"] = [score_observation(completion, measure, subject)]
    return resource


def status_of(completion: AnyCompletion) -> str:
    status = STATUS[completion.status]
    return "amended" if status == "completed" and completion.version > 1 else status


def answer_items(plan: AnswerPlan, answers: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The answered items; a repeating group is one item per entry; unanswered items are left
    out."""
    found: list[dict[str, Any]] = []
    for item in plan:
        if item.link_id not in answers:
            continue
        value = answers[item.link_id]
        values = value if item.repeats else (value,)
        if item.group is not None:
            group = item.group
            found += [{"linkId": item.link_id, "item": answer_items(group, v)} for v in values]
        elif values:
            if item.codings is not None:
                codings = item.codings
                answer = [codings[v] for v in values]
            else:
                key = item.value_key
                answer = [{key: v} for v in values]
            found.append({"linkId": item.link_id, "answer": answer})
    return found


def score_observation(
    completion: AnyCompletion, measure: MeasureCodes, subject: dict[str, Any]
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


def _author(completion: AnyCompletion) -> dict[str, Any] | None:
    if completion.recorded_by_kind == "client":
        return fhir.reference("Patient", completion.recorded_by_id)
    if completion.recorded_by_kind == "clinician":
        return fhir.reference("Practitioner", completion.recorded_by_id)
    return None  # the vendor's backend (an import): no FHIR resource of ours stands for it


# Shared by every response that says them, never changed: they are only ever serialised.
_COMPLETION_STATUS: Final = {
    status: {"url": fhir.COMPLETION_STATUS, "valueCode": status} for status in STATUS
}
_DISTRESS_FLAGGED: Final = {
    flagged: {"url": fhir.DISTRESS_FLAGGED, "valueBoolean": flagged} for flagged in (False, True)
}
_EXCEPTIONS: Final = tuple(
    {"url": url, "valueBoolean": True} for url in (fhir.LATE, fhir.IMPORTED, fhir.IN_SESSION)
)


def _extensions(completion: AnyCompletion) -> list[dict[str, Any]]:
    extensions: list[dict[str, Any]] = [
        _COMPLETION_STATUS[completion.status],
        _DISTRESS_FLAGGED[completion.distress_flagged],
        *({"url": fhir.BARRIER, "valueCode": barrier} for barrier in completion.barriers),
        *({"url": fhir.DISTRESS_REASON, "valueString": r} for r in completion.distress_reasons),
        {"url": fhir.TIME_ZONE, "valueCode": completion.time_zone},
        {"url": fhir.RECEIVED_AT, "valueInstant": fhir.instant(completion.received_at)},
    ]
    for url, key, value in (
        (fhir.BARRIER_NOTE, "valueString", completion.barrier_note),
        (fhir.HELPFULNESS, "valueInteger", completion.helpfulness),
        (fhir.EFFORT, "valueInteger", completion.effort),
        (fhir.MINUTES_SPENT, "valueInteger", completion.minutes_spent),
        (fhir.REFLECTION, "valueString", completion.reflection),
    ):
        if value is not None:
            extensions.append({"url": url, key: value})
    # The three exceptions are written only when they hold (absent: false).
    for flag, holds in zip(
        _EXCEPTIONS, (completion.late, completion.imported, completion.in_session), strict=True
    ):
        if holds:
            extensions.append(flag)
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
