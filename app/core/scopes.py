"""SMART-on-FHIR v2 style scopes: `{context}/{resource}.{permissions}`.

A scope string is parsed once, when a token is issued or verified, into a `ScopeSet`; a route
asks it one question: may this context do this permission on this resource?
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Context(StrEnum):
    """Who the token speaks for; a token's subject kind is always its scopes' context."""

    system = "system"
    clinician = "clinician"
    client = "client"


RESOURCES = (
    "clients",
    "clinicians",
    "templates",
    "assignments",
    "completions",
    "reminders",
    "adherence",
    "webhooks",
    "events",
    "audit",
    "identity",
)
PERMISSION_ORDER = "cruds"
_GRAMMAR = re.compile(r"^(system|clinician|client)/([a-z_]+)\.([cruds]+)$")


class ScopeError(ValueError):
    pass


@dataclass(frozen=True, order=True)
class Scope:
    context: Context
    resource: str
    permissions: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scope:
        match = _GRAMMAR.match(text)
        if not match:
            raise ScopeError(f"{text!r} is not of the form context/resource.permissions")
        context, resource, permissions = match.groups()
        if resource not in RESOURCES:
            raise ScopeError(f"unknown resource {resource!r} in {text!r}")
        # SMART v2: permissions appear at most once each, in the order c r u d s.
        if permissions not in _ordered_subsets:
            raise ScopeError(f"permissions in {text!r} must be a subset of 'cruds' in that order")
        return cls(Context(context), resource, frozenset(permissions))

    def __str__(self) -> str:
        perms = "".join(p for p in PERMISSION_ORDER if p in self.permissions)
        return f"{self.context}/{self.resource}.{perms}"


_ordered_subsets = {
    "".join(p for i, p in enumerate(PERMISSION_ORDER) if mask >> i & 1) for mask in range(1, 32)
}


class ScopeSet:
    """What a token may do: for each (context, resource), the permissions granted."""

    __slots__ = ("_grants",)

    def __init__(self, scopes: Iterable[Scope] = ()) -> None:
        grants: dict[tuple[Context, str], set[str]] = {}
        for scope in scopes:
            grants.setdefault((scope.context, scope.resource), set()).update(scope.permissions)
        self._grants = {key: frozenset(value) for key, value in grants.items()}

    @classmethod
    def parse(cls, text: str | None) -> ScopeSet:
        return cls(Scope.parse(part) for part in (text or "").split())

    def allows(self, context: Context, resource: str, permission: str) -> bool:
        return permission in self._grants.get((context, resource), frozenset())

    def scopes(self) -> list[Scope]:
        return sorted(Scope(c, r, p) for (c, r), p in self._grants.items())

    def contexts(self) -> set[Context]:
        return {context for context, _ in self._grants}

    def intersect(self, other: ScopeSet) -> ScopeSet:
        return ScopeSet(
            Scope(context, resource, permissions & other._grants[(context, resource)])
            for (context, resource), permissions in self._grants.items()
            if permissions & other._grants.get((context, resource), frozenset())
        )

    def is_subset_of(self, other: ScopeSet) -> bool:
        return all(
            permissions <= other._grants.get(key, frozenset())
            for key, permissions in self._grants.items()
        )

    def only(self, context: Context) -> ScopeSet:
        return ScopeSet(s for s in self.scopes() if s.context is context)

    def __str__(self) -> str:
        return " ".join(str(s) for s in self.scopes())

    def __bool__(self) -> bool:
        return bool(self._grants)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScopeSet) and self._grants == other._grants

    def __hash__(self) -> int:
        return hash(frozenset(self._grants.items()))


# The most each kind of subject may ever hold. A token never carries more, whatever was asked.
ROLE_SCOPES: dict[Context, ScopeSet] = {
    Context.system: ScopeSet.parse(" ".join(f"system/{r}.cruds" for r in RESOURCES)),
    Context.clinician: ScopeSet.parse(
        "clinician/clients.rus clinician/clinicians.rs clinician/templates.cruds "
        "clinician/assignments.cruds clinician/completions.crus clinician/reminders.rs "
        "clinician/adherence.rs"
    ),
    Context.client: ScopeSet.parse(
        "client/clients.ru client/clinicians.r client/templates.r client/assignments.rus "
        "client/completions.crus client/reminders.rus client/adherence.r"
    ),
}

ALL_SCOPES = ScopeSet(s for role in ROLE_SCOPES.values() for s in role.scopes())
