"""The OpenAPI document's examples of /fhir/R4, made by the mappings themselves from example
rows (never stored), so that an example cannot say what the server would not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, cast

from app.fhir import canonical as fhir
from app.fhir.capability import capability_statement
from app.fhir.people import patient, practitioner
from app.fhir.plans import care_plan, task
from app.fhir.questionnaires import questionnaire
from app.fhir.responses import answer_plan, questionnaire_response
from app.models import (
    Assignment,
    Client,
    Clinician,
    Completion,
    Occurrence,
    Template,
    TemplateVersion,
)
from app.schemas.common import (
    EXAMPLE_ASSIGNMENT_ID,
    EXAMPLE_CLIENT_ID,
    EXAMPLE_CLINICIAN_ID,
    EXAMPLE_COMPLETION_ID,
    EXAMPLE_OCCURRENCE_IDS,
    EXAMPLE_TIME_ZONE,
)
from app.schemas.templates import TemplateCreate
from app.services.builtin_templates import builtin_template_id, version_row
from app.services.template_catalog import BUILTIN_TEMPLATES

TENANT: Final = "ten_01jd3v2k4m6p8r0t2v4x6z8b0d"
EXTERNAL_ID: Final = "tenant-client-4711"
_CREATED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
_DONE = datetime(2026, 11, 22, 19, 42, tzinfo=UTC)
_GAD7 = BUILTIN_TEMPLATES["gad7"]
_GAD7_ID = builtin_template_id("gad7")
_ANSWERS = {f"item_{n}": v for n, v in zip(range(1, 8), (2, 1, 2, 1, 0, 1, 1), strict=True)}


def _questionnaire() -> dict[str, Any]:
    template = Template(
        id=_GAD7_ID, tenant_id=None, kind="gad7", latest_version=1, updated_at=_CREATED
    )
    version = version_row(_GAD7_ID, _GAD7)
    version.created_at = _CREATED
    return questionnaire(template, version)


def _questionnaire_response() -> dict[str, Any]:
    completion = Completion(
        id=EXAMPLE_COMPLETION_ID,
        tenant_id=TENANT,
        occurrence_id=EXAMPLE_OCCURRENCE_IDS[0],
        assignment_id=EXAMPLE_ASSIGNMENT_ID,
        client_id=EXAMPLE_CLIENT_ID,
        kind="gad7",
        status="done",
        answers={**_ANSWERS, "difficulty": "somewhat_difficult"},
        barriers=[],
        helpfulness=4,
        completed_at=_DONE,
        time_zone=EXAMPLE_TIME_ZONE,
        received_at=_DONE,
        late=False,
        imported=False,
        recorded_by_kind="client",
        recorded_by_id=EXAMPLE_CLIENT_ID,
        in_session=False,
        score=sum(_ANSWERS.values()),
        severity="mild",
        distress_flagged=False,
        distress_reasons=[],
        updated_at=_DONE,
        version=1,
    )
    return questionnaire_response(
        completion,
        template_id=_GAD7_ID,
        template_version=_GAD7.version,
        answers=answer_plan(_GAD7.response_schema_dict(), "gad7"),
        client_external_id=EXTERNAL_ID,
    )


def _assignment() -> Assignment:
    return Assignment(
        id=EXAMPLE_ASSIGNMENT_ID,
        tenant_id=TENANT,
        client_id=EXAMPLE_CLIENT_ID,
        clinician_id=EXAMPLE_CLINICIAN_ID,
        template_id=_GAD7_ID,
        kind="gad7",
        title=_GAD7.name,
        instructions=_GAD7.instructions,
        purpose=_GAD7.purpose,
        status="active",
        rrule="FREQ=WEEKLY;BYDAY=SU",
        starts_at=datetime(2026, 11, 22, 20, 0, tzinfo=UTC),
        created_at=_CREATED,
        updated_at=_CREATED,
    )


def _task() -> dict[str, Any]:
    occurrence = Occurrence(
        id=EXAMPLE_OCCURRENCE_IDS[0],
        tenant_id=TENANT,
        assignment_id=EXAMPLE_ASSIGNMENT_ID,
        client_id=EXAMPLE_CLIENT_ID,
        due_at=datetime(2026, 11, 23, 1, 0, tzinfo=UTC),
        opens_at=datetime(2026, 11, 22, 13, 0, tzinfo=UTC),
        closes_at=datetime(2026, 11, 23, 13, 0, tzinfo=UTC),
        status="completed",
        created_at=_CREATED,
        updated_at=_DONE,
    )
    return task(
        occurrence,
        title=_GAD7.name,
        client_external_id=EXTERNAL_ID,
        completion_id=EXAMPLE_COMPLETION_ID,
    )


def _people() -> tuple[dict[str, Any], dict[str, Any]]:
    client = Client(
        id=EXAMPLE_CLIENT_ID, tenant_id=TENANT, external_id=EXTERNAL_ID, updated_at=_CREATED
    )
    clinician = Clinician(
        id=EXAMPLE_CLINICIAN_ID,
        tenant_id=TENANT,
        external_id="tenant-clinician-17",
        updated_at=_CREATED,
    )
    return patient(client), practitioner(clinician)


BASE: Final = "https://api.homework.example/fhir/R4"
QUESTIONNAIRE: Final = _questionnaire()
QUESTIONNAIRE_RESPONSE: Final = _questionnaire_response()
CARE_PLAN: Final = care_plan(_assignment(), template_version=1, client_external_id=EXTERNAL_ID)
TASK: Final = _task()
PATIENT, PRACTITIONER = _people()
CAPABILITY_STATEMENT: Final = capability_statement(BASE, "1.0.0", "2026-12-02")


def searchset(resource: dict[str, Any], query: str) -> dict[str, Any]:
    """A Bundle of one page holding `resource`, as a search answers it."""
    kind = resource["resourceType"]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": fhir.instant(_DONE),
        "link": [{"relation": "self", "url": f"{BASE}/{kind}?{query}"}],
        "entry": [
            {
                "fullUrl": f"{BASE}/{kind}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
        ],
    }


def _importable() -> dict[str, Any]:
    """The examples' own custom template ("Worry time") as a Questionnaire to import: what we
    would emit for it, less what the server assigns (id, url, identifier, version, dates)."""
    extra = cast("dict[str, Any]", TemplateCreate.model_config.get("json_schema_extra"))
    fields = dict(extra["examples"][0])
    template = Template(id="tpl_example", kind="custom", latest_version=1, updated_at=_CREATED)
    version = TemplateVersion(number=1, created_at=_CREATED, **fields)
    exported = questionnaire(template, version)
    for assigned in ("id", "meta", "url", "identifier", "version", "date"):
        del exported[assigned]
    return exported


IMPORTABLE_QUESTIONNAIRE: Final = _importable()
