import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from app.core.openapi_document import render
from app.main import create_app


@cache
def _built() -> str:
    return json.dumps(create_app().openapi())


def built() -> Any:
    """The app's document, built once for the module (each build takes a second or two), and a
    fresh copy for each test to read."""
    return json.loads(_built())


COMMITTED = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def test_committed_document_matches_the_app() -> None:
    assert COMMITTED.read_text() == render(create_app()), (
        "openapi/openapi.json has drifted from the app: run `homework openapi` and commit it"
    )


def test_the_document_is_valid_openapi() -> None:
    from openapi_spec_validator import validate

    validate(json.loads(COMMITTED.read_text()))


PUBLIC = {
    ("/healthz", "get"),
    ("/readyz", "get"),
    ("/.well-known/jwks.json", "get"),
    ("/.well-known/oauth-authorization-server", "get"),
    ("/fhir/R4/metadata", "get"),  # FHIR's CapabilityStatement is read before any token
}
# Client credentials in the request (Basic, or in the form), not a bearer token.
CLIENT_AUTHENTICATED = {
    ("/oauth/token", "post"),
    ("/oauth/revoke", "post"),
    ("/oauth/introspect", "post"),
}


def test_every_operation_states_the_scopes_it_needs() -> None:
    from app.core.scopes import ROLE_SCOPES, Context

    document = built()
    schemes = document["components"]["securitySchemes"]
    flow_scopes = set(schemes["oauth2"]["flows"]["clientCredentials"]["scopes"])
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["bearer"]["description"],
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            if (path, method) in PUBLIC:
                assert operation["security"] == [], label
                continue
            if (path, method) in CLIENT_AUTHENTICATED:
                assert operation["security"] == [{"clientBasic": []}, {}], label
                continue
            alternatives = operation.get("security")
            assert alternatives, f"{label} states no scope"
            bearer = []
            for alternative in alternatives:
                ((scheme, (needed,)),) = alternative.items()
                context, rest = needed.split("/")
                resource, permission = rest.split(".")
                assert ROLE_SCOPES[Context(context)].allows(Context(context), resource, permission)
                if scheme == "oauth2":
                    assert needed in flow_scopes, needed
                else:
                    assert scheme == "bearer", label
                    bearer.append(needed)
            # A pasted token of any kind that may hold the scope, the system one included.
            system = {
                scope for alternative in alternatives for scope in alternative.get("oauth2", [])
            }
            assert bearer and system <= set(bearer), label


def test_client_credentials_offers_only_system_scopes() -> None:
    """A client-credentials token can only ever be a system token: an Authorize dialog that
    offered client or clinician scopes there would fail on "select all"."""
    document = built()
    flow = document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]
    assert flow["scopes"] and all(scope.startswith("system/") for scope in flow["scopes"])
    assert "system/clients.c" in flow["scopes"]


def test_the_description_says_how_each_role_gets_a_token() -> None:
    from app.services.oauth import SUBJECT_TOKEN_TYPES, TOKEN_EXCHANGE

    description = built()["info"]["description"]
    assert "client_credentials" in description and TOKEN_EXCHANGE in description
    for token_type in SUBJECT_TOKEN_TYPES:
        assert token_type in description, token_type
    assert "bearer" in description and "Authorize" in description


def test_validation_errors_are_documented_as_problems() -> None:
    document = built()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    response = document["paths"]["/v1/clients"]["post"]["responses"]["422"]
    assert "application/problem+json" in response["content"]
    security = document["paths"]["/v1/clients/{client_id}"]["get"]["security"]
    assert security == [
        {"oauth2": ["system/clients.r"]},
        {"bearer": ["system/clients.r"]},
        {"bearer": ["clinician/clients.r"]},
        {"bearer": ["client/clients.r"]},
    ]


# The OAuth endpoints answer their errors in RFC 6749's own JSON, as OAuth libraries expect.
OAUTH_ERRORS = {"#/components/schemas/OAuthErrorBody"}


def test_responses_declare_exactly_the_media_types_sent() -> None:
    document = built()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                label = f"{method.upper()} {path} {status}"
                content = response.get("content", {})
                if path.startswith("/fhir/"):
                    # FHIR speaks its own media type, errors as OperationOutcome included.
                    assert list(content) in ([], ["application/fhir+json"]), label
                    if status.startswith(("4", "5")):
                        assert content["application/fhir+json"]["schema"] == {
                            "$ref": "#/components/schemas/OperationOutcome"
                        }, label
                elif status.startswith(("4", "5")):
                    if list(content) == ["application/json"]:
                        assert path.startswith("/oauth/"), label
                        assert content["application/json"]["schema"]["$ref"] in OAUTH_ERRORS
                    else:
                        assert list(content) == ["application/problem+json"], label
                elif status.startswith("2"):
                    # The one picture (the adherence chart) is SVG; everything else is JSON.
                    sent = {"image/svg+xml"} if path.endswith(".svg") else {"application/json"}
                    assert set(content) <= sent, label
                    if status == "204":
                        assert content == {}, label


def test_tags_servers_licence_and_contact_are_declared() -> None:
    document = built()
    used = {
        tag
        for section in ("paths", "webhooks")
        for item in document[section].values()
        for operation in item.values()
        for tag in operation["tags"]
    }
    declared = {tag["name"]: tag["description"] for tag in document["tags"]}
    assert set(declared) == used
    assert all(declared.values())
    # The first server is the one that served the document, where /docs sends "Try it out".
    assert document["servers"][0]["url"] == "/"
    assert all(server["description"] for server in document["servers"])
    assert document["info"]["license"]["name"]
    assert document["info"]["contact"]["name"]


def test_webhooks_state_their_signature() -> None:
    document = built()
    scheme = document["components"]["securitySchemes"]["webhookSignature"]
    assert scheme["in"] == "header" and scheme["name"] == "webhook-signature"
    for name, item in document["webhooks"].items():
        operation = item["post"]
        assert operation["security"] == [{"webhookSignature": []}], name
        headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
        signed = {"webhook-id", "webhook-timestamp", "webhook-signature"}
        assert set(headers) == signed | {"traceparent"}, name
        assert all(headers[header]["required"] for header in signed), name


def test_local_times_are_declared_as_local() -> None:
    """`2026-11-25T20:00` is what the API takes and answers for a time on the client's clock;
    a client that checks formats from the document must accept it (not `format: date-time`),
    and an instant must still be accepted where it is."""
    from jsonschema import Draft202012Validator

    schemas = built()["components"]["schemas"]
    for model, field in (("OnceSchedule", "due_at"), ("RecurringSchedule", "start")):
        schema = schemas[model]["properties"][field]
        assert "format" not in schema
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        for accepted in ("2026-11-25T20:00", "2026-11-25T20:00:00", "2026-11-25T20:00:00Z"):
            assert validator.is_valid(accepted), (model, accepted)
        for refused in ("2026-11-25", "20:00", "2026-11-25T20:00+01"):
            assert not validator.is_valid(refused), (model, refused)
    for model, field in (("OccurrenceOut", "local_due"), ("ReminderOut", "local_due")):
        schema = schemas[model]["properties"][field]
        assert "format" not in schema and schema["pattern"], (model, field)


def test_local_times_pattern_is_what_the_api_accepts() -> None:
    import re

    from pydantic import TypeAdapter, ValidationError

    from app.schemas.common import LOCAL_DATE_TIME_PATTERN, LocalOrInstant

    adapter = TypeAdapter(LocalOrInstant)
    for text in (
        "2026-11-25T20:00",
        "2026-11-25t20:00",
        "2026-11-25 20:00",
        "2026-11-25T20:00:59",
        "2026-11-25T20:00:00.123456",
    ):
        assert re.search(LOCAL_DATE_TIME_PATTERN, text), text
        assert adapter.validate_python(text).tzinfo is None, text
    for text in ("2026-11-25", "2026-11-25T20", "1764100800"):
        assert not re.search(LOCAL_DATE_TIME_PATTERN, text), text
        try:
            adapter.validate_python(text)
        except ValidationError:
            continue
        raise AssertionError(f"{text} was accepted")


def _media(operation: dict) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    """The request bodies and success responses of an operation, by where they are."""
    found = [
        (f"request {media_type}", media)
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items()
    ]
    for status, response in operation.get("responses", {}).items():
        if status.startswith("2"):
            found += [
                (f"{status} {media_type}", media)
                for media_type, media in response.get("content", {}).items()
            ]
    return found


def test_every_operation_is_described_with_examples() -> None:
    document = built()
    gaps = []
    for section in ("paths", "webhooks"):
        for path, operations in document[section].items():
            for method, operation in operations.items():
                label = f"{method.upper()} {path}"
                if not operation.get("summary") or not operation.get("description"):
                    gaps.append(f"{label}: summary or description")
                for where, media in _media(operation):
                    if "example" not in media and "examples" not in media:
                        gaps.append(f"{label}: {where} example")
    assert gaps == []


def _examples(node: object, where: str) -> Iterator[tuple[str, dict, object]]:  # type: ignore[type-arg]
    """Every (where, schema, example) in a part of the document: a schema's `examples`, and a
    media type's or parameter's `example` and `examples` against its `schema`."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _examples(item, f"{where}/{index}")
        return
    if not isinstance(node, dict):
        return
    if "schema" in node and isinstance(node["schema"], dict):
        if "example" in node:
            yield f"{where}/example", node["schema"], node["example"]
        for name, named in (node.get("examples") or {}).items():
            yield f"{where}/examples/{name}", node["schema"], named["value"]
    if isinstance(node.get("examples"), list):
        for index, example in enumerate(node["examples"]):
            yield f"{where}/examples/{index}", node, example
    for key, value in node.items():
        if key not in ("example", "examples"):
            yield from _examples(value, f"{where}/{key}")


def test_every_example_is_valid_against_its_schema() -> None:
    """As a client that checks formats from the document (zod, ajv-formats) would read them:
    every example of the document, formats asserted."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = built()
    resource = Resource.from_contents(
        {"components": {"schemas": document["components"]["schemas"]}}, DRAFT202012
    )
    registry = Registry().with_resource("urn:openapi", resource)
    checked, invalid = 0, []
    for section in ("components", "paths", "webhooks"):
        for where, schema, example in _examples(document[section], f"#/{section}"):
            rebased = json.loads(
                json.dumps(schema).replace('"#/components/', '"urn:openapi#/components/')
            )
            validator = Draft202012Validator(
                rebased, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
            checked += 1
            invalid += [f"{where}: {error.message}" for error in validator.iter_errors(example)]
    assert invalid == []
    assert checked > 150


def test_formats_are_checked_by_the_example_test() -> None:
    """The check above asserts formats: an example with a date-time of the wrong form fails."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(
        {"type": "string", "format": "date-time"},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    assert not validator.is_valid("2026-11-25T20:00")


def test_retry_later_answers_are_documented_with_retry_after() -> None:
    document = built()
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
