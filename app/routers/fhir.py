"""`/fhir/R4`: read-only FHIR R4 views of templates, completions, assignments, occurrences,
clients and clinicians (app.fhir). The same tokens, scopes and visibility as /v1: a
QuestionnaireResponse needs `completions`, a CarePlan or Task `assignments`, and so on; a
resource the caller may not see is 404, audited like the /v1 read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic_core import to_json
from starlette.responses import JSONResponse

from app.core.clock import NowDep
from app.core.db import SessionDep
from app.core.errors import problem_responses
from app.core.operation_outcome import FHIR_MEDIA_TYPE
from app.core.routing import AppRoute
from app.core.security import Principal, require
from app.fhir import examples, reads, search
from app.fhir.bundles import base_url, searchset
from app.fhir.capability import capability_statement
from app.fhir.reads import Criteria, Found

router = APIRouter(prefix="/fhir/R4", tags=["fhir"], route_class=AppRoute)
FhirId = Annotated[
    str,
    Path(
        max_length=64,
        pattern=r"^[A-Za-z0-9.-]{1,64}$",
        description="The resource's FHIR id: ours with `-` for `_` (`clt-01jd…`).",
    ),
]
_SPEC = "https://hl7.org/fhir/R4"


class FhirResponse(JSONResponse):
    media_type = FHIR_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        # pydantic-core's encoder, as FastAPI's own responses use: a page of 50 responses is
        # about 150 KB, which the standard library's json.dumps takes four times as long over.
        return to_json(content)


def _documented(example: dict[str, Any], *errors: int) -> dict[int | str, dict[str, Any]]:
    kind = example["resourceType"]
    return {
        200: {
            "description": f"A FHIR R4 {kind} ({_SPEC}/{kind.lower()}.html).",
            "content": {
                FHIR_MEDIA_TYPE: {
                    "schema": {
                        "type": "object",
                        "description": f"A FHIR R4 {kind}.",
                        "required": ["resourceType"],
                        "properties": {"resourceType": {"type": "string", "const": kind}},
                        "additionalProperties": True,
                    },
                    "example": example,
                }
            },
        },
        **problem_responses(*errors),
    }


def _bundle(request: Request, found: Found, now: Any) -> FhirResponse:
    resources, next_cursor = found
    return FhirResponse(searchset(request, resources, next_cursor, now))


async def _clinical_search(
    request: Request,
    patient: search.PatientParam = None,
    status: search.StatusParam = None,
    last_updated: search.LastUpdatedParam = None,
    count: search.CountParam = search.DEFAULT_COUNT,
    cursor: search.CursorParam = None,
) -> Criteria:
    """The parameters of the client-data searches: QuestionnaireResponse, CarePlan and Task."""
    search.refuse_unknown(request, ("patient", "status", "_lastUpdated"))
    return Criteria(
        count, cursor, search.last_updated(last_updated), patient=patient, status=status
    )


async def _person_search(
    request: Request,
    identifier: search.IdentifierParam = None,
    last_updated: search.LastUpdatedParam = None,
    count: search.CountParam = search.DEFAULT_COUNT,
    cursor: search.CursorParam = None,
) -> Criteria:
    """The parameters of the Patient and Practitioner searches."""
    search.refuse_unknown(request, ("identifier", "_lastUpdated"))
    return Criteria(
        count, cursor, search.last_updated(last_updated), identifier=search.identifier(identifier)
    )


async def _questionnaire_search(
    request: Request,
    url: search.UrlParam = None,
    status: search.StatusParam = None,
    last_updated: search.LastUpdatedParam = None,
    count: search.CountParam = search.DEFAULT_COUNT,
    cursor: search.CursorParam = None,
) -> Criteria:
    search.refuse_unknown(request, ("url", "status", "_lastUpdated"))
    return Criteria(count, cursor, search.last_updated(last_updated), status=status, url=url)


# Each follows the route's `require(...)` in its signature: the token is checked first.
ClinicalSearch = Annotated[Criteria, Depends(_clinical_search)]
PersonSearch = Annotated[Criteria, Depends(_person_search)]
QuestionnaireSearch = Annotated[Criteria, Depends(_questionnaire_search)]


_READ_DESCRIPTION = (
    "By its FHIR id. Same scope, visibility and audit as the /v1 read of the same object: "
    "another tenant's, or one the caller may not see, is 404 (an `OperationOutcome`)."
)
_SEARCH_DESCRIPTION = (
    "A `searchset` Bundle, newest first; follow its `next` link for the next page. "
    "Parameters other than those listed are refused (422) rather than ignored."
)


@router.get(
    "/metadata",
    operation_id="fhir_capabilities",
    summary="The FHIR CapabilityStatement",
    description="What this server reads and searches, and how it is secured. Public.",
    response_class=FhirResponse,
    responses=_documented(examples.CAPABILITY_STATEMENT),
)
async def capabilities(request: Request, now: NowDep) -> FhirResponse:
    version = request.app.version
    return FhirResponse(capability_statement(base_url(request), version, now.date().isoformat()))


@router.get(
    "/Questionnaire/{resource_id}",
    operation_id="fhir_read_questionnaire",
    summary="A template as a Questionnaire (its latest version)",
    description="Built-in templates and your own; PHQ-9 and GAD-7 carry their LOINC codes. "
    "Older versions: search by `url` with `|version`. " + _READ_DESCRIPTION,
    response_class=FhirResponse,
    responses=_documented(examples.QUESTIONNAIRE, 401, 403, 404, 422),
)
async def read_questionnaire(
    resource_id: FhirId,
    session: SessionDep,
    principal: Annotated[Principal, require("templates", "r")],
) -> FhirResponse:
    return FhirResponse(await reads.read_questionnaire(session, principal, resource_id))


@router.get(
    "/Questionnaire",
    operation_id="fhir_search_questionnaires",
    summary="Search Questionnaires",
    description="The templates your tenant can assign, built-in ones first. " + _SEARCH_DESCRIPTION,
    response_class=FhirResponse,
    responses=_documented(
        examples.searchset(examples.QUESTIONNAIRE, "status=active"), 401, 403, 422
    ),
)
async def search_questionnaires(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("templates", "s")],
    criteria: QuestionnaireSearch,
    now: NowDep,
) -> FhirResponse:
    return _bundle(request, await reads.search_questionnaires(session, principal, criteria), now)


@router.get(
    "/QuestionnaireResponse/{resource_id}",
    operation_id="fhir_read_questionnaire_response",
    summary="A completion as a QuestionnaireResponse",
    description="Its answers by item, what else the completion says as extensions, and for "
    "PHQ-9 and GAD-7 the score as a contained Observation (LOINC total-score code, severity "
    "band as its interpretation). " + _READ_DESCRIPTION,
    response_class=FhirResponse,
    responses=_documented(examples.QUESTIONNAIRE_RESPONSE, 401, 403, 404, 422),
)
async def read_questionnaire_response(
    resource_id: FhirId,
    session: SessionDep,
    principal: Annotated[Principal, require("completions", "r")],
) -> FhirResponse:
    return FhirResponse(await reads.read_questionnaire_response(session, principal, resource_id))


@router.get(
    "/QuestionnaireResponse",
    operation_id="fhir_search_questionnaire_responses",
    summary="Search QuestionnaireResponses",
    description="The completions the caller may see, as in `GET /v1/completions`. "
    + _SEARCH_DESCRIPTION,
    response_class=FhirResponse,
    responses=_documented(
        examples.searchset(
            examples.QUESTIONNAIRE_RESPONSE, "patient=clt-01jd3x8q0m2v7k3c9r5t6y8w1a"
        ),
        401,
        403,
        422,
    ),
)
async def search_questionnaire_responses(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("completions", "s")],
    criteria: ClinicalSearch,
    now: NowDep,
) -> FhirResponse:
    return _bundle(
        request, await reads.search_questionnaire_responses(session, principal, criteria), now
    )


@router.get(
    "/CarePlan/{resource_id}",
    operation_id="fhir_read_care_plan",
    summary="An assignment as a CarePlan",
    description="One activity: the homework, its schedule (the RRULE) and the Questionnaire "
    "it instantiates. " + _READ_DESCRIPTION,
    response_class=FhirResponse,
    responses=_documented(examples.CARE_PLAN, 401, 403, 404, 422),
)
async def read_care_plan(
    resource_id: FhirId,
    session: SessionDep,
    principal: Annotated[Principal, require("assignments", "r")],
) -> FhirResponse:
    return FhirResponse(await reads.read_care_plan(session, principal, resource_id))


@router.get(
    "/CarePlan",
    operation_id="fhir_search_care_plans",
    summary="Search CarePlans",
    description="The assignments the caller may see. " + _SEARCH_DESCRIPTION,
    response_class=FhirResponse,
    responses=_documented(examples.searchset(examples.CARE_PLAN, "status=active"), 401, 403, 422),
)
async def search_care_plans(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("assignments", "s")],
    criteria: ClinicalSearch,
    now: NowDep,
) -> FhirResponse:
    return _bundle(request, await reads.search_care_plans(session, principal, criteria), now)


@router.get(
    "/Task/{resource_id}",
    operation_id="fhir_read_task",
    summary="An occurrence as a Task",
    description="Its window as `executionPeriod`, based on its CarePlan, and once done the "
    "QuestionnaireResponse as its output. " + _READ_DESCRIPTION,
    response_class=FhirResponse,
    responses=_documented(examples.TASK, 401, 403, 404, 422),
)
async def read_task(
    resource_id: FhirId,
    session: SessionDep,
    principal: Annotated[Principal, require("assignments", "r")],
) -> FhirResponse:
    return FhirResponse(await reads.read_task(session, principal, resource_id))


@router.get(
    "/Task",
    operation_id="fhir_search_tasks",
    summary="Search Tasks",
    description="The occurrences the caller may see. " + _SEARCH_DESCRIPTION,
    response_class=FhirResponse,
    responses=_documented(examples.searchset(examples.TASK, "status=completed"), 401, 403, 422),
)
async def search_tasks(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("assignments", "s")],
    criteria: ClinicalSearch,
    now: NowDep,
) -> FhirResponse:
    return _bundle(request, await reads.search_tasks(session, principal, criteria), now)


@router.get(
    "/Patient/{resource_id}",
    operation_id="fhir_read_patient",
    summary="A client as a Patient (ids only)",
    description="Our id and the vendor's `external_id` as identifiers; no demographics, "
    "which we do not hold. " + _READ_DESCRIPTION,
    response_class=FhirResponse,
    responses=_documented(examples.PATIENT, 401, 403, 404, 422),
)
async def read_patient(
    resource_id: FhirId,
    session: SessionDep,
    principal: Annotated[Principal, require("clients", "r")],
) -> FhirResponse:
    return FhirResponse(await reads.read_patient(session, principal, resource_id))


@router.get(
    "/Patient",
    operation_id="fhir_search_patients",
    summary="Search Patients",
    description="The clients the caller may see; by `identifier` to find one by the vendor's "
    "`external_id`. " + _SEARCH_DESCRIPTION,
    response_class=FhirResponse,
    responses=_documented(
        examples.searchset(examples.PATIENT, "identifier=tenant-client-4711"), 401, 403, 422
    ),
)
async def search_patients(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("clients", "s")],
    criteria: PersonSearch,
    now: NowDep,
) -> FhirResponse:
    return _bundle(request, await reads.search_patients(session, principal, criteria), now)


@router.get(
    "/Practitioner/{resource_id}",
    operation_id="fhir_read_practitioner",
    summary="A clinician as a Practitioner (ids only)",
    description="Our id and the vendor's `external_id` as identifiers. " + _READ_DESCRIPTION,
    response_class=FhirResponse,
    responses=_documented(examples.PRACTITIONER, 401, 403, 404, 422),
)
async def read_practitioner(
    resource_id: FhirId,
    session: SessionDep,
    principal: Annotated[Principal, require("clinicians", "r")],
) -> FhirResponse:
    return FhirResponse(await reads.read_practitioner(session, principal, resource_id))


@router.get(
    "/Practitioner",
    operation_id="fhir_search_practitioners",
    summary="Search Practitioners",
    description="The clinicians the caller may see, as in `GET /v1/clinicians`. "
    + _SEARCH_DESCRIPTION,
    response_class=FhirResponse,
    responses=_documented(
        examples.searchset(examples.PRACTITIONER, "identifier=tenant-clinician-17"), 401, 403, 422
    ),
)
async def search_practitioners(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("clinicians", "s")],
    criteria: PersonSearch,
    now: NowDep,
) -> FhirResponse:
    return _bundle(request, await reads.search_practitioners(session, principal, criteria), now)
