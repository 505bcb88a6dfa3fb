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
    ("/oauth/revoke", "post"),  # the same
    ("/oauth/introspect", "post"),  # the same
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


def _resolve(document: dict, schema: dict) -> dict:  # type: ignore[type-arg]
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _has_example(document: dict, media: dict) -> bool:  # type: ignore[type-arg]
    if "example" in media or "examples" in media:
        return True
    schema = _resolve(document, media.get("schema", {}))
    if "examples" in schema:
        return True
    if schema.get("type") == "array":
        return "examples" in _resolve(document, schema.get("items", {}))
    data = schema.get("properties", {}).get("data", {})
    return data.get("type") == "array" and "examples" in _resolve(document, data["items"])


def test_every_operation_is_described_with_examples() -> None:
    document = create_app().openapi()
    gaps = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            if not operation.get("summary") or not operation.get("description"):
                gaps.append(f"{label}: summary or description")
            for media in operation.get("requestBody", {}).get("content", {}).values():
                if not _has_example(document, media):
                    gaps.append(f"{label}: request example")
            for status, response in operation.get("responses", {}).items():
                media = response.get("content", {}).get("application/json")
                if status.startswith("2") and media and not _has_example(document, media):
                    gaps.append(f"{label}: {status} example")
    assert gaps == []


def test_every_example_is_valid_against_its_schema() -> None:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = create_app().openapi()
    schemas = document["components"]["schemas"]
    resource = Resource.from_contents({"components": {"schemas": schemas}}, DRAFT202012)
    registry = Registry().with_resource("urn:openapi", resource)
    invalid = []
    for name, schema in schemas.items():
        validator = Draft202012Validator(
            {"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry
        )
        invalid += [
            f"{name}: {error.message}"
            for example in schema.get("examples", [])
            for error in validator.iter_errors(example)
        ]
    assert invalid == []


def test_retry_later_answers_are_documented_with_retry_after() -> None:
    document = create_app().openapi()
    for path, operations in document["paths"].items():
        if not path.startswith(("/v1/", "/oauth/")):
            continue
        for method, operation in operations.items():
            # Every route on the database can find it out of reach; every POST takes a key.
            expected = ("409", "503") if method == "post" and path.startswith("/v1/") else ("503",)
            for status in expected:
                response = operation["responses"].get(status)
                assert response, f"{method.upper()} {path} does not document {status}"
                assert "Retry-After" in response.get("headers", {}), f"{method} {path} {status}"
