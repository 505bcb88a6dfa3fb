"""The database reads behind /fhir/R4: each resource with what its mapping needs in one
statement (whatever the page size), visibility as in /v1 (app.services.access), and the same
audit rows as the /v1 reads of the same objects."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.core.pagination import AnySelect, page_of, paginate
from app.core.security import Principal
from app.fhir import canonical as fhir
from app.fhir import search
from app.fhir.people import patient, practitioner
from app.fhir.plans import CARE_PLAN_STATUS, TASK_STATUS, care_plan, task
from app.fhir.questionnaires import questionnaire
from app.fhir.responses import (
    COMPLETION_COLUMNS,
    OUR_STATUSES,
    AnswerPlan,
    CompletionRow,
    answer_plan,
    questionnaire_response,
)
from app.models import (
    Assignment,
    Client,
    Clinician,
    Completion,
    Occurrence,
    Template,
    TemplateVersion,
)
from app.models.tables import ASSIGNMENTS, CLIENTS, COMPLETIONS, TEMPLATE_VERSIONS
from app.services import audit
from app.services.access import client_visibility, visible_clients, visible_clinicians
from app.services.audit import Action
from app.services.templates import visible_templates

Resource = dict[str, Any]
Found = tuple[list[Resource], str | None]

QUESTIONNAIRE_STATUSES: Final = {"active": ("active",), "retired": ("retired",)}
TASK_STATUSES: Final = search.inverse(TASK_STATUS)
CARE_PLAN_STATUSES: Final = search.inverse({k: v[0] for k, v in CARE_PLAN_STATUS.items()})


@dataclass(frozen=True, slots=True)
class Criteria:
    """A search's parameters, parsed (app.fhir.search)."""

    count: int = search.DEFAULT_COUNT
    cursor: str | None = None
    last_updated: Sequence[search.Range] = ()
    patient: str | None = None
    status: str | None = None
    identifier: search.Identifier | None = None
    url: str | None = None


def _filtered(
    statement: AnySelect,
    criteria: Criteria,
    *,
    updated: Any,
    client: Any = None,
    status: Any = None,
    statuses: Any = None,
) -> AnySelect:
    for bounds in criteria.last_updated:
        statement = statement.where(bounds.condition(updated))
    if client is not None and criteria.patient is not None:
        statement = statement.where(client == search.patient_id(criteria.patient))
    wanted = search.statuses(criteria.status, statuses) if statuses is not None else None
    if wanted is not None:
        statement = statement.where(status.in_(wanted))
    return statement


async def _page(
    session: AsyncSession,
    statement: AnySelect,
    id_column: Any,
    criteria: Criteria,
    last_id: Callable[[Any], str] = lambda row: row[0].id,
) -> tuple[list[Any], str | None]:
    paged = paginate(statement, id_column, criteria.count, criteria.cursor)
    rows = (await session.execute(paged)).all()
    return page_of(rows, criteria.count, last_id)


async def _one(session: AsyncSession, statement: AnySelect) -> Any:
    return (await session.execute(statement)).first()


async def _refused(
    session: AsyncSession, principal: Principal, resource_type: str, our_id: str, what: str
) -> NotFound:
    await audit.record_refusal_if_hidden(session, principal, Action.read, resource_type, our_id)
    return NotFound(f"No such {what}.")


# Questionnaire


def _questionnaires(principal: Principal, version: int | None = None) -> AnySelect:
    number = TemplateVersion.number == (Template.latest_version if version is None else version)
    return (
        select(Template, TemplateVersion)
        .join(TemplateVersion, (TemplateVersion.template_id == Template.id) & number)
        .where(visible_templates(principal))
    )


async def read_questionnaire(session: AsyncSession, principal: Principal, id_: str) -> Resource:
    row = await _one(session, _questionnaires(principal).where(Template.id == fhir.our_id(id_)))
    if row is None:
        raise NotFound("No such Questionnaire.")
    return questionnaire(row[0], row[1])


async def search_questionnaires(
    session: AsyncSession, principal: Principal, criteria: Criteria
) -> Found:
    statement = _questionnaires(principal)
    if criteria.url is not None:
        url, _, number = criteria.url.partition("|")
        version = int(number) if number.isdigit() and len(number) < 10 else None
        if number and version is None:
            return [], None  # no version of ours is named so
        template_id = fhir.our_id(url.removeprefix(f"{fhir.CANONICAL}/Questionnaire/"))
        statement = _questionnaires(principal, version).where(Template.id == template_id)
    if criteria.status is not None:
        wanted = search.statuses(criteria.status, QUESTIONNAIRE_STATUSES) or []
        if "active" not in wanted:
            statement = statement.where(Template.retired_at.is_not(None))
        if "retired" not in wanted:
            statement = statement.where(Template.retired_at.is_(None))
    statement = _filtered(statement, criteria, updated=Template.updated_at)
    rows, next_cursor = await _page(session, statement, Template.id, criteria)
    return [questionnaire(template, version) for template, version in rows], next_cursor


# QuestionnaireResponse


def _responses(principal: Principal) -> AnySelect:
    """The columns the mapping reads (app.fhir.responses.CompletionRow, in its order), then what
    it needs from the assignment, version and client."""
    return (
        select(
            *(COMPLETIONS.c[name] for name in COMPLETION_COLUMNS),
            ASSIGNMENTS.c.template_id,
            TEMPLATE_VERSIONS.c.number,
            TEMPLATE_VERSIONS.c.id,
            CLIENTS.c.external_id,
        )
        .join(ASSIGNMENTS, ASSIGNMENTS.c.id == COMPLETIONS.c.assignment_id)
        .join(TEMPLATE_VERSIONS, TEMPLATE_VERSIONS.c.id == ASSIGNMENTS.c.template_version_id)
        .join(CLIENTS, CLIENTS.c.id == COMPLETIONS.c.client_id)
        .where(
            COMPLETIONS.c.tenant_id == principal.tenant_id,
            client_visibility(principal, COMPLETIONS.c.client_id),
        )
    )


@dataclass(frozen=True, slots=True)
class _Response:
    completion: CompletionRow
    template_id: str
    template_version: int
    version_id: str
    client_external_id: str


def _unpacked(rows: Sequence[Any]) -> list[_Response]:
    # By position, as `_responses` selected them: a row's attributes by name cost 0.4 µs each.
    responses = []
    for row in rows:
        *columns, template_id, number, version_id, external_id = row
        responses.append(
            _Response(CompletionRow(*columns), template_id, number, version_id, external_id)
        )
    return responses


# Template versions never change, so the plan of each one's answers is kept once worked out:
# a search then costs no schema read at all. Structure only (names and types, never an
# answer); bounded, though a deployment has a few hundred versions at most.
_PLANS: dict[str, AnswerPlan] = {}
_MAX_PLANS: Final = 4096


async def _answer_plans(
    session: AsyncSession, responses: Sequence[_Response]
) -> dict[str, AnswerPlan]:
    """The answer plan of each template version on the page; the versions not yet planned are
    read in one query (a schema is up to 64 KiB, so never once per completion)."""
    kinds = {r.version_id: r.completion.kind for r in responses}
    missing = sorted(version_id for version_id in kinds if version_id not in _PLANS)
    if missing:
        if len(_PLANS) + len(missing) > _MAX_PLANS:
            _PLANS.clear()
        found = await session.execute(
            select(TemplateVersion.id, TemplateVersion.response_schema).where(
                TemplateVersion.id.in_(missing)
            )
        )
        for version_id, schema in found:
            _PLANS[version_id] = answer_plan(schema, kinds[version_id])
    return {version_id: _PLANS[version_id] for version_id in kinds}


async def _response_resources(
    session: AsyncSession, responses: Sequence[_Response]
) -> list[Resource]:
    plans = await _answer_plans(session, responses)
    return [
        questionnaire_response(
            r.completion,
            template_id=r.template_id,
            template_version=r.template_version,
            answers=plans[r.version_id],
            client_external_id=r.client_external_id,
        )
        for r in responses
    ]


async def read_questionnaire_response(
    session: AsyncSession, principal: Principal, id_: str
) -> Resource:
    our_id = fhir.our_id(id_)
    found = _unpacked(
        (await session.execute(_responses(principal).where(COMPLETIONS.c.id == our_id))).all()
    )
    if not found:
        raise await _refused(session, principal, "completion", our_id, "QuestionnaireResponse")
    completion = found[0].completion
    await audit.record(
        session, principal, Action.read, "completion", [(completion.client_id, our_id)]
    )
    return (await _response_resources(session, found))[0]


async def search_questionnaire_responses(
    session: AsyncSession, principal: Principal, criteria: Criteria
) -> Found:
    statement = _filtered(
        _responses(principal),
        criteria,
        updated=COMPLETIONS.c.updated_at,
        client=COMPLETIONS.c.client_id,
        status=COMPLETIONS.c.status,
        statuses=OUR_STATUSES,
    )
    if criteria.status is not None:
        # `completed` and `amended` are both our `done`: told apart by whether it was edited.
        codes = set(criteria.status.split(","))
        done = COMPLETIONS.c.status == "done"
        if "completed" in codes and "amended" not in codes:
            statement = statement.where(~done | (COMPLETIONS.c.version == 1))
        if "amended" in codes and "completed" not in codes:
            statement = statement.where(~done | (COMPLETIONS.c.version > 1))
    rows, next_cursor = await _page(
        session, statement, COMPLETIONS.c.id, criteria, last_id=lambda row: row[0]
    )
    responses = _unpacked(rows)
    await audit.record(
        session,
        principal,
        Action.list,
        "completion",
        [(r.completion.client_id, r.completion.id) for r in responses],
    )
    return await _response_resources(session, responses), next_cursor


# CarePlan


def _care_plans(principal: Principal) -> AnySelect:
    return (
        select(Assignment, TemplateVersion.number, Client.external_id)
        .join(TemplateVersion, TemplateVersion.id == Assignment.template_version_id)
        .join(Client, Client.id == Assignment.client_id)
        .where(
            Assignment.tenant_id == principal.tenant_id,
            client_visibility(principal, Assignment.client_id),
        )
    )


def _care_plan(row: Any) -> Resource:
    assignment, number, external_id = row
    return care_plan(assignment, template_version=number, client_external_id=external_id)


async def read_care_plan(session: AsyncSession, principal: Principal, id_: str) -> Resource:
    our_id = fhir.our_id(id_)
    row = await _one(session, _care_plans(principal).where(Assignment.id == our_id))
    if row is None:
        raise await _refused(session, principal, "assignment", our_id, "CarePlan")
    await audit.record(session, principal, Action.read, "assignment", [(row[0].client_id, our_id)])
    return _care_plan(row)


async def search_care_plans(
    session: AsyncSession, principal: Principal, criteria: Criteria
) -> Found:
    statement = _filtered(
        _care_plans(principal),
        criteria,
        updated=Assignment.updated_at,
        client=Assignment.client_id,
        status=Assignment.status,
        statuses=CARE_PLAN_STATUSES,
    )
    rows, next_cursor = await _page(session, statement, Assignment.id, criteria)
    await audit.record(
        session, principal, Action.list, "assignment", [(r[0].client_id, r[0].id) for r in rows]
    )
    return [_care_plan(row) for row in rows], next_cursor


# Task


def _tasks(principal: Principal) -> AnySelect:
    return (
        select(Occurrence, Assignment.title, Client.external_id, Completion.id)
        .join(Assignment, Assignment.id == Occurrence.assignment_id)
        .join(Client, Client.id == Occurrence.client_id)
        .outerjoin(Completion, Completion.occurrence_id == Occurrence.id)
        .where(
            Occurrence.tenant_id == principal.tenant_id,
            client_visibility(principal, Occurrence.client_id),
        )
    )


def _task(row: Any) -> Resource:
    occurrence, title, external_id, completion_id = row
    return task(
        occurrence, title=title, client_external_id=external_id, completion_id=completion_id
    )


async def read_task(session: AsyncSession, principal: Principal, id_: str) -> Resource:
    our_id = fhir.our_id(id_)
    row = await _one(session, _tasks(principal).where(Occurrence.id == our_id))
    if row is None:
        raise await _refused(session, principal, "occurrence", our_id, "Task")
    await audit.record(session, principal, Action.read, "occurrence", [(row[0].client_id, our_id)])
    return _task(row)


async def search_tasks(session: AsyncSession, principal: Principal, criteria: Criteria) -> Found:
    statement = _filtered(
        _tasks(principal),
        criteria,
        updated=Occurrence.updated_at,
        client=Occurrence.client_id,
        status=Occurrence.status,
        statuses=TASK_STATUSES,
    )
    rows, next_cursor = await _page(session, statement, Occurrence.id, criteria)
    await audit.record(
        session, principal, Action.list, "occurrence", [(r[0].client_id, r[0].id) for r in rows]
    )
    return [_task(row) for row in rows], next_cursor


# Patient and Practitioner


def _by_identifier(
    statement: AnySelect, model: Any, principal: Principal, kind: str, criteria: Criteria
) -> AnySelect:
    wanted = criteria.identifier
    if wanted is None:
        return statement
    by_id = model.id == wanted.value
    by_external = model.external_id == wanted.value
    if wanted.system is None:
        return statement.where(or_(by_id, by_external))
    if wanted.system == fhir.ID_SYSTEM:
        return statement.where(by_id)
    if wanted.system == fhir.external_id_system(principal.tenant_id, kind):
        return statement.where(by_external)
    return statement.where(false())  # another system: none of ours is in it


async def read_patient(session: AsyncSession, principal: Principal, id_: str) -> Resource:
    our_id = fhir.our_id(id_)
    client = await session.scalar(visible_clients(principal).where(Client.id == our_id))
    if client is None:
        raise await _refused(session, principal, "client", our_id, "Patient")
    await audit.record(session, principal, Action.read, "client", [(our_id, our_id)])
    return patient(client)


async def search_patients(session: AsyncSession, principal: Principal, criteria: Criteria) -> Found:
    statement = _by_identifier(visible_clients(principal), Client, principal, "client", criteria)
    statement = _filtered(statement, criteria, updated=Client.updated_at)
    rows, next_cursor = await _page(session, statement, Client.id, criteria)
    clients = [client for (client,) in rows]
    await audit.record(session, principal, Action.list, "client", [(c.id, c.id) for c in clients])
    return [patient(c) for c in clients], next_cursor


async def read_practitioner(session: AsyncSession, principal: Principal, id_: str) -> Resource:
    clinician = await session.scalar(
        visible_clinicians(principal).where(Clinician.id == fhir.our_id(id_))
    )
    if clinician is None:
        raise NotFound("No such Practitioner.")
    return practitioner(clinician)


async def search_practitioners(
    session: AsyncSession, principal: Principal, criteria: Criteria
) -> Found:
    statement = _by_identifier(
        visible_clinicians(principal), Clinician, principal, "clinician", criteria
    )
    statement = _filtered(statement, criteria, updated=Clinician.updated_at)
    rows, next_cursor = await _page(session, statement, Clinician.id, criteria)
    return [practitioner(clinician) for (clinician,) in rows], next_cursor
