import pytest

from app.core.scopes import ROLE_SCOPES, Context, Scope, ScopeError, ScopeSet


def test_parses_the_smart_v2_grammar() -> None:
    scope = Scope.parse("clinician/assignments.cruds")
    assert scope.context is Context.clinician
    assert scope.resource == "assignments"
    assert scope.permissions == frozenset("cruds")
    assert str(Scope.parse("client/completions.cru")) == "client/completions.cru"


@pytest.mark.parametrize(
    "text",
    [
        "client/completions.rc",  # out of order
        "client/completions.crr",  # repeated
        "client/completions.",
        "admin/clients.r",
        "system/patients.r",
        "system/clients.x",
        "system/clients",
        "system/*.r",
        "",
    ],
)
def test_refuses_what_the_grammar_does_not_allow(text: str) -> None:
    with pytest.raises(ScopeError):
        Scope.parse(text)


def test_a_scope_set_answers_one_question() -> None:
    scopes = ScopeSet.parse("clinician/clients.rs clinician/assignments.c")
    assert scopes.allows(Context.clinician, "clients", "r")
    assert scopes.allows(Context.clinician, "assignments", "c")
    assert not scopes.allows(Context.clinician, "assignments", "r")
    assert not scopes.allows(Context.system, "clients", "r")


def test_set_algebra() -> None:
    wide = ScopeSet.parse("system/clients.cruds system/audit.rs")
    narrow = ScopeSet.parse("system/clients.rs")
    assert narrow.is_subset_of(wide)
    assert not wide.is_subset_of(narrow)
    assert wide.intersect(ScopeSet.parse("system/clients.r client/clients.r")) == ScopeSet.parse(
        "system/clients.r"
    )
    assert str(ScopeSet.parse("system/clients.s system/clients.r")) == "system/clients.rs"


def test_roles_hold_only_their_own_context() -> None:
    for context, scopes in ROLE_SCOPES.items():
        assert scopes.contexts() == {context}
    assert not ROLE_SCOPES[Context.client].allows(Context.client, "clinicians", "c")
    assert not ROLE_SCOPES[Context.clinician].allows(Context.clinician, "webhooks", "r")
