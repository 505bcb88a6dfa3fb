from pathlib import Path

from app.core.openapi_document import render
from app.main import create_app

COMMITTED = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def test_committed_document_matches_the_app() -> None:
    assert COMMITTED.read_text() == render(create_app()), (
        "openapi/openapi.json has drifted from the app: run `homework openapi` and commit it"
    )


def test_the_document_is_valid_openapi() -> None:
    import json

    from openapi_spec_validator import validate

    validate(json.loads(COMMITTED.read_text()))


PUBLIC = {
    ("/healthz", "get"),
    ("/readyz", "get"),
    ("/.well-known/jwks.json", "get"),
    ("/.well-known/oauth-authorization-server", "get"),
    ("/oauth/token", "post"),  # client credentials in the request, not a bearer token
}


def test_every_operation_states_the_scopes_it_needs() -> None:
    document = create_app().openapi()
    scopes = set(
        document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["scopes"]
    )
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if (path, method) in PUBLIC:
                assert "security" not in operation
                continue
            alternatives = operation.get("security")
            assert alternatives, f"{method.upper()} {path} states no scope"
            for alternative in alternatives:
                (needed,) = alternative["oauth2"]
                assert needed in scopes, needed


def test_validation_errors_are_documented_as_problems() -> None:
    document = create_app().openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    response = document["paths"]["/v1/clients"]["post"]["responses"]["422"]
    assert "application/problem+json" in response["content"]
    security = document["paths"]["/v1/clients/{client_id}"]["get"]["security"]
    assert security == [
        {"oauth2": ["system/clients.r"]},
        {"oauth2": ["clinician/clients.r"]},
        {"oauth2": ["client/clients.r"]},
    ]
