"""Object-level access: what a principal may see, as SQL conditions.

Every query for a client's data goes through here, so a route never decides on its own who may
see what. An object outside these conditions is simply not found (404): its existence is not
leaked.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, select, true

from app.core.driver import param
from app.core.scopes import Context
from app.core.security import Principal
from app.models import Assignment, CareTeamMember, Client, Clinician, Completion, Occurrence
from app.models.tables import ASSIGNMENTS, CLIENTS, COMPLETIONS, OCCURRENCES, REMINDERS

# Whose data each kind of object is, by its audit `resource_type`: a refusal's audit row looks the
# object up by id and tenant alone to tell "the tenant's, but not yours" from "no such object".
CLIENT_OF: dict[str, Any] = {
    "client": CLIENTS.c.id,
    "adherence": CLIENTS.c.id,
    "session_summary": CLIENTS.c.id,
    "assignment": ASSIGNMENTS.c.client_id,
    "occurrence": OCCURRENCES.c.client_id,
    "completion": COMPLETIONS.c.client_id,
    "reminder": REMINDERS.c.client_id,
}


def client_visibility(principal: Principal, client_id_column: Any) -> ColumnElement[bool]:
    """The condition on a `client_id` column: which clients' rows this principal may see.

    Callers also filter on their table's `tenant_id`; this adds the per-role part.
    """
    return client_visibility_of(principal.kind, principal.subject_id, client_id_column)


def client_visibility_of(kind: Context, subject: Any, client_id_column: Any) -> ColumnElement[bool]:
    """`client_visibility` by the caller's kind; `subject` is their id, or a `bindparam` in a
    statement built once for every caller of that kind (app.core.driver)."""
    if kind is Context.client:
        condition: ColumnElement[bool] = client_id_column == subject
        return condition
    if kind is Context.clinician:
        return exists().where(
            CareTeamMember.client_id == client_id_column,
            CareTeamMember.clinician_id == subject,
        )
    return true()


def visible_clients(principal: Principal) -> Select[Client]:
    return select(Client).where(
        Client.tenant_id == principal.tenant_id, client_visibility(principal, Client.id)
    )


def visible_clinicians(principal: Principal) -> Select[Clinician]:
    """System: the tenant's clinicians. A clinician: themself and those who share a client
    with them. A client: the clinicians on their care team."""
    statement = select(Clinician).where(Clinician.tenant_id == principal.tenant_id)
    if principal.is_system:
        return statement
    mine = CareTeamMember.__table__.alias("mine")
    theirs = CareTeamMember.__table__.alias("theirs")
    if principal.is_clinician:
        shares_a_client = exists().where(
            mine.c.clinician_id == principal.subject_id,
            theirs.c.client_id == mine.c.client_id,
            theirs.c.clinician_id == Clinician.id,
        )
        return statement.where((Clinician.id == principal.subject_id) | shares_a_client)
    return statement.where(
        exists().where(
            and_(
                CareTeamMember.client_id == principal.subject_id,
                CareTeamMember.clinician_id == Clinician.id,
            )
        )
    )


def visible_assignments(principal: Principal) -> Select[Assignment]:
    return select(Assignment).where(
        Assignment.tenant_id == principal.tenant_id,
        client_visibility(principal, Assignment.client_id),
    )


def assignment_rows_visible_to(kind: Context) -> Select[Any]:
    """`visible_assignments` as table columns, for a statement built once per kind of caller
    (app.core.driver): the tenant and the caller's id are the parameters `tenant_id` and
    `subject_id`."""
    return select(*ASSIGNMENTS.c).where(
        ASSIGNMENTS.c.tenant_id == param("tenant_id"),
        client_visibility_of(kind, param("subject_id"), ASSIGNMENTS.c.client_id),
    )


def visible_completions(principal: Principal) -> Select[Completion]:
    return select(Completion).where(
        Completion.tenant_id == principal.tenant_id,
        client_visibility(principal, Completion.client_id),
    )


def visible_occurrences(principal: Principal) -> Select[Occurrence]:
    return select(Occurrence).where(
        Occurrence.tenant_id == principal.tenant_id,
        client_visibility(principal, Occurrence.client_id),
    )
