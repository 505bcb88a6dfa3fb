"""The OpenAPI document: built from the app, then made to say what FastAPI alone does not.

- Every operation states the exact scopes it needs, read from the route's own `require(...)`,
  as security requirements: the OAuth 2.0 client-credentials scheme with the `system` scope
  (the flow lists only `system/*` scopes: nothing else can be had by client credentials), and
  the HTTP bearer scheme with one alternative per kind of caller that may hold the scope
  (`system/clients.r` OR `clinician/clients.r` OR `client/clients.r`; OpenAPI 3.1 lets a
  non-OAuth requirement name roles). The bearer scheme is where `/docs` takes a pasted
  clinician's or client's token. Public routes say `security: []`; the OAuth endpoints name
  the client authentication they take.
- Webhooks name their signature (`webhookSignature`) and its three headers.
- Error responses are `application/problem+json` only, as the server sends them (FastAPI adds
  `application/json` for every `model=`).
- Every request body and JSON success response carries an example, taken from the schema's
  own (the models' `examples`, next to the fields they describe).
- Tags, servers, licence and contact are declared.
- Validation errors are problem+json, as the service answers them, not FastAPI's default shape.
- Every operation that takes a body documents the 413 that the body size limit answers and
  the 408 that the body deadline answers (middleware, which FastAPI cannot see).
- Every operation that uses the database documents its 503 (the database out of reach) and
  every POST its 409 (the same Idempotency-Key still in flight), both with `Retry-After`: the
  route classes add these answers to every route, so no route lists them itself.

It is rendered the same way every time, so that a diff of the committed file is a real change.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from app.core.errors import (
    PROBLEM_MEDIA_TYPE,
    Conflict,
    PayloadTooLarge,
    Problem,
    RequestTimeout,
    ServiceUnavailable,
)
from app.core.operation_outcome import FHIR_MEDIA_TYPE, FHIR_PREFIX
from app.core.routing import AppRoute, TransactionRoute
from app.core.scopes import ROLE_SCOPES, Context

SECURITY_SCHEME = "oauth2"
BEARER_SCHEME = "bearer"
CLIENT_BASIC_SCHEME = "clientBasic"
WEBHOOK_SCHEME = "webhookSignature"
PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetail"}


def required_scope(dependant: Dependant) -> tuple[str, str] | None:
    """The (resource, permission) a route's `require(...)` dependency demands, if any."""
    for dependency in dependant.dependencies:
        found = getattr(dependency.call, "required_scope", None) or required_scope(dependency)
        if found:
            return found
    return None


def _security(resource: str, permission: str) -> list[dict[str, list[str]]]:
    """The client-credentials flow for the system scope (what Swagger UI's Authorize dialog can
    fetch), then a pasted bearer token of each kind that may hold the scope."""
    needed = [
        f"{context}/{resource}.{permission}"
        for context in Context
        if ROLE_SCOPES[context].allows(context, resource, permission)
    ]
    system = [{SECURITY_SCHEME: [scope]} for scope in needed if scope.startswith("system/")]
    return system + [{BEARER_SCHEME: [scope]} for scope in needed]


# The OAuth endpoints authenticate the calling OAuth client, by Basic (client_secret_basic) or
# by `client_id` and `client_secret` in the form (client_secret_post). OpenAPI has no scheme for
# credentials in a form body: the empty alternative says the request may carry no
# Authorization header at all, and the scheme's description says what it carries instead.
_CLIENT_AUTHENTICATION: list[dict[str, list[str]]] = [{CLIENT_BASIC_SCHEME: []}, {}]
CLIENT_AUTHENTICATED = {"/oauth/token", "/oauth/revoke", "/oauth/introspect"}


PERMISSION_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def _scope_descriptions(context: Context) -> dict[str, str]:
    """Every single-permission scope one role may hold (tokens may ask for several at once, as
    in `system/clients.rs`)."""
    return {
        f"{scope.context}/{scope.resource}.{permission}": (
            f"{PERMISSION_NAMES[permission]} {scope.resource} as {scope.context}"
        )
        for scope in ROLE_SCOPES[context].scopes()
        for permission in "cruds"
        if permission in scope.permissions
    }


TOKENS_BY_ROLE = """
## Getting a token for each role

Every `/v1` call takes `Authorization: Bearer <access token>`; the token's kind decides what
it may see.

- **system** (your backend, the whole tenant): OAuth 2.0 client credentials,
  `POST /oauth/token` with `grant_type=client_credentials` and your OAuth client's id and secret
  (Basic, or `client_id` and `client_secret` in the form). In Authorize below, the `oauth2`
  scheme does this for you: enter the client id and secret and pick `system/*` scopes.
- **clinician** or **client** (an app acting for one person): your backend exchanges its
  credentials for one (RFC 8693): `POST /oauth/token` with
  `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`, `subject_token` the person's
  id and `subject_token_type` one of `urn:homework:token-type:client-external-id`,
  `urn:homework:token-type:client-id`, `urn:homework:token-type:clinician-external-id` or
  `urn:homework:token-type:clinician-id` (your own id for them, or ours), and the
  `client/*` or `clinician/*` scopes wanted. Or, where your tenant trusts your own identity
  provider (`PUT /v1/identity-provider`), the access token it issued to that person.

Then paste the `access_token` into Authorize, under **bearer**, and try any operation: a client
token tries `GET /v1/me/homework`, a clinician's `GET /v1/clinicians/{clinician_id}/caseload`.
"""

TAGS: dict[str, str] = {
    "health": "Liveness and readiness probes for load balancers and orchestrators.",
    "oauth": "Access tokens (client credentials, token exchange), their revocation and "
    "introspection, our signing keys and authorization server metadata.",
    "identity": "Your tenant's OAuth clients and the identity provider whose tokens it trusts.",
    "clients": "The people doing homework, and their care teams.",
    "clinicians": "The clinicians who assign and review homework.",
    "templates": "Homework templates: the built-in ones and your own, versioned.",
    "assignments": "Homework assigned to a client: schedule, window, reminders, occurrences, "
    "and the adjustments a client proposes.",
    "completions": "What a client recorded for an occurrence, its revisions and the "
    "clinician's review.",
    "me": "The calling client's own day: the homework open now, in their time zone.",
    "reminders": "Reminders due to clients, to dismiss or snooze.",
    "adherence": "Adherence over time, a clinician's caseload and the summary before a session.",
    "webhooks": "Webhook endpoints you register, their deliveries, and the webhooks we send.",
    "events": "The event log behind webhooks, and redelivery.",
    "audit": "Who read or changed what: the audit trail of your tenant.",
    "fhir": "HL7 FHIR R4 (4.0.1), read-only: templates as Questionnaires, completions as "
    "QuestionnaireResponses with PHQ-9 and GAD-7 scores as Observations, assignments as "
    "CarePlans and occurrences as Tasks, clients and clinicians as Patient and Practitioner "
    "stubs. `application/fhir+json`, errors as `OperationOutcome`; the same tokens and scopes "
    "as /v1 (docs/FHIR.md).",
}

SERVERS = [
    # Relative, and first: Swagger UI sends "Try it out" to the first server, which must be the
    # service that served the page (its Content-Security-Policy allows only that origin).
    {"url": "/", "description": "This service: the one serving this document"},
    {"url": "http://127.0.0.1:8000", "description": "Local: `make run`"},
    {
        "url": "https://api.homework.example",
        "description": "Production (a placeholder: your deployment's own HTTPS address)",
    },
]
# No LICENSE file and no licence in the README: the code is not published under an open
# licence, so the document says so rather than inventing one. `LicenseRef-` is SPDX's form for
# a licence not on its list (OpenAPI 3.1's `identifier` is an SPDX expression).
LICENSE = {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"}
# The placeholder production address's reference page: a deployment's own /docs.
CONTACT = {"name": "Homework API team", "url": "https://api.homework.example/docs"}

_BEARER_DESCRIPTION = (
    "An access token pasted as it is: a `client` or `clinician` token your backend got by "
    "token exchange at `POST /oauth/token`, one your own identity provider issued (if your "
    "tenant trusts it), or a `system` token. JWTs (`at+jwt`); the names listed on each "
    "operation are the scopes it needs, one of them per alternative."
)
_OAUTH_DESCRIPTION = (
    "Client credentials at `POST /oauth/token`: a `system` token for the vendor's backend. "
    "Only `system/*` scopes can be had this way; clinician and client tokens come from token "
    "exchange (see the description above) and are pasted under `bearer`."
)
_CLIENT_BASIC_DESCRIPTION = (
    "The OAuth client's `client_id` and `client_secret` (each form-urlencoded, RFC 6749 "
    "section 2.3.1) as HTTP Basic (`client_secret_basic`). They may instead be sent as "
    "`client_id` and `client_secret` in the form body (`client_secret_post`), never both."
)
# Webhooks are requests we make to the vendor's receiver. Their authentication is the
# Standard Webhooks signature: an HMAC in the `webhook-signature` header over the id, the
# timestamp and the body. OpenAPI has no HMAC scheme; an `apiKey` in that header is the nearest
# type Redocly's `security-defined` and the spec validator accept, and its description says
# what the value really is. The three headers are also required parameters of every webhook.
_WEBHOOK_DESCRIPTION = (
    "Standard Webhooks (https://www.standardwebhooks.com): `webhook-signature` is `v1,` and "
    "the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the "
    "endpoint's `whsec_` secret (base64 after the prefix); during a secret rotation, two "
    "signatures separated by a space. Verify it (and that `webhook-timestamp` is within 5 "
    "minutes) before trusting a delivery; any Standard Webhooks library does both."
)


def build(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description.rstrip("\n") + "\n" + TOKENS_BY_ROLE,
        routes=app.routes,
        webhooks=app.webhooks.routes,
        servers=SERVERS,
        license_info=LICENSE,
        contact=CONTACT,
    )
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(
        {
            SECURITY_SCHEME: {
                "type": "oauth2",
                "description": _OAUTH_DESCRIPTION,
                "flows": {
                    "clientCredentials": {
                        "tokenUrl": "/oauth/token",
                        "scopes": _scope_descriptions(Context.system),
                    }
                },
            },
            BEARER_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": _BEARER_DESCRIPTION,
            },
            CLIENT_BASIC_SCHEME: {
                "type": "http",
                "scheme": "basic",
                "description": _CLIENT_BASIC_DESCRIPTION,
            },
            WEBHOOK_SCHEME: {
                "type": "apiKey",
                "in": "header",
                "name": "webhook-signature",
                "description": _WEBHOOK_DESCRIPTION,
            },
        }
    )
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not context.path:
            continue
        scope = required_scope(route.dependant)
        for method in context.methods or ():
            operation = document["paths"].get(context.path, {}).get(method.lower())
            if operation is None:
                continue
            if scope is not None:
                operation["security"] = _security(*scope)
            elif context.path in CLIENT_AUTHENTICATED:
                operation["security"] = _CLIENT_AUTHENTICATION
            else:
                operation["security"] = []
            _restore_response_example_nulls(operation, route)
            _problem_validation_errors(operation)
            _body_size_limit(operation)
            if isinstance(route, TransactionRoute):
                _retry_later(operation, ServiceUnavailable, _UNAVAILABLE_RETRY)
            if isinstance(route, AppRoute) and method == "POST":
                _retry_later(operation, Conflict, _IN_FLIGHT_RETRY)
    for webhook in document.get("webhooks", {}).values():
        for operation in webhook.values():
            operation["security"] = [{WEBHOOK_SCHEME: []}]
    schemas = components.get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    _restore_example_nulls(schemas, app)
    for operation in _operations(document):
        _only_problem_media(operation)
        _media_examples(operation, schemas)
    _fhir_errors(document, schemas)
    document["tags"] = _declared_tags(document)
    return document


def json_example(status: int, example: Any) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` entry giving one status its own JSON example, where the model's
    (shared by several routes) does not fit this one."""
    return {status: {"content": {"application/json": {"example": example}}}}


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for section in ("paths", "webhooks")
        for item in document.get(section, {}).values()
        for operation in item.values()
    ]


def _declared_tags(document: dict[str, Any]) -> list[dict[str, str]]:
    """Every tag an operation uses, with its description, in TAGS' order. A tag with no
    description is a mistake the build refuses."""
    used = {tag for operation in _operations(document) for tag in operation.get("tags", ())}
    undescribed = used - set(TAGS)
    if undescribed:
        raise RuntimeError(f"tags without a description in TAGS: {sorted(undescribed)}")
    return [{"name": name, "description": text} for name, text in TAGS.items() if name in used]


def _fhir_errors(document: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Under /fhir/, every error is an `OperationOutcome` (app.core.operation_outcome)."""
    fhir_paths = [item for path, item in document["paths"].items() if path.startswith(FHIR_PREFIX)]
    if not fhir_paths:
        return
    schemas["OperationOutcome"] = OPERATION_OUTCOME_SCHEMA
    for item in fhir_paths:
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    response["content"] = {FHIR_MEDIA_TYPE: {"schema": OPERATION_OUTCOME_REF}}


OPERATION_OUTCOME_REF = {"$ref": "#/components/schemas/OperationOutcome"}
OPERATION_OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A FHIR R4 OperationOutcome (https://hl7.org/fhir/R4/operationoutcome.html): "
    "the first issue says what went wrong (with the request id), each further one names a "
    "field in `expression`, as `errors[]` does in problem+json.",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string", "enum": ["fatal", "error"]},
                    "code": {"type": "string", "description": "An IssueType code."},
                    "details": {
                        "type": "object",
                        "properties": {"text": {"type": "string"}},
                    },
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
    "examples": [
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "invalid",
                    "details": {"text": "Request is not valid (request 01JD5C7E9G1J3M5P)"},
                },
                {
                    "severity": "error",
                    "code": "invalid",
                    "details": {"text": "Supported statuses here: amended, completed, stopped."},
                    "diagnostics": "invalid",
                    "expression": ["status"],
                },
            ],
        }
    ],
}


def _only_problem_media(operation: dict[str, Any]) -> None:
    """`responses={...: {"model": ProblemDetail}}` makes FastAPI declare the route's own media
    type (`application/json`, or `image/svg+xml` for a picture) beside problem+json; the
    server sends only the latter."""
    for response in operation.get("responses", {}).values():
        content = response.get("content", {})
        if PROBLEM_MEDIA_TYPE in content:
            for media_type in [m for m in content if m != PROBLEM_MEDIA_TYPE]:
                del content[media_type]


def _media_examples(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A media-level `example` for every request body and success response that has none,
    taken from the schema's own examples (the models keep them next to their fields)."""
    media_types = list(operation.get("requestBody", {}).get("content", {}).values())
    for status, response in operation.get("responses", {}).items():
        if status.startswith("2"):
            media_types.extend(response.get("content", {}).values())
    for media in media_types:
        if "example" in media or "examples" in media or "schema" not in media:
            continue
        found = _example_of(media["schema"], schemas)
        if found is not _NONE:
            media["example"] = found


_NONE = object()


def _example_of(schema: dict[str, Any], schemas: dict[str, Any], depth: int = 0) -> Any:
    """An example value for a schema, from its own or its parts' `examples`, `default`,
    `const` or `enum`; `_NONE` where nothing says what a value looks like."""
    if depth > 20:
        return _NONE
    if "$ref" in schema:
        return _example_of(schemas[schema["$ref"].rsplit("/", 1)[1]], schemas, depth + 1)
    for key in ("examples", "enum"):
        if schema.get(key):
            return schema[key][0]
    for key in ("example", "const", "default"):
        if key in schema:
            return schema[key]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"]
            for branch in branches:
                found = _example_of(branch, schemas, depth + 1)
                if found is not _NONE:
                    return found
            return None if len(branches) < len(schema[key]) else _NONE
    if schema.get("type") == "array":
        item = _example_of(schema.get("items", {}), schemas, depth + 1)
        return [] if item is _NONE else [item]
    if schema.get("type") == "object" or "properties" in schema:
        value = {}
        for name, part in schema.get("properties", {}).items():
            found = _example_of(part, schemas, depth + 1)
            if found is _NONE:
                if name in schema.get("required", ()):
                    return _NONE
                continue
            value[name] = found
        return value
    return _NONE


def _restore_example_nulls(schemas: dict[str, Any], app: FastAPI) -> None:
    """FastAPI renders the document without None values, which strips `null` out of examples
    (`"retired_at": null`), leaving examples that miss required keys. Put each model's own
    examples back as written."""
    seen: set[type[BaseModel]] = set()
    pending = [
        annotation
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        for annotation in (
            context.original_route.response_model,
            getattr(context.original_route.body_field, "field_info", None)
            and context.original_route.body_field.field_info.annotation,  # type: ignore[union-attr]
        )
    ]
    while pending:
        for model in _models_in(pending.pop()):
            if model in seen:
                continue
            seen.add(model)
            extra = model.model_config.get("json_schema_extra")
            if isinstance(extra, dict) and "examples" in extra and model.__name__ in schemas:
                schemas[model.__name__]["examples"] = extra["examples"]
            pending.extend(field.annotation for field in model.model_fields.values())


def _restore_response_example_nulls(operation: dict[str, Any], route: APIRoute) -> None:
    """The same for the examples a route gives in its own `responses=`."""
    for status, response in (route.responses or {}).items():
        for media_type, media in response.get("content", {}).items():
            if "example" in media:
                rendered = operation["responses"][str(status)]["content"][media_type]
                rendered["example"] = media["example"]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation names, through unions, lists and Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _problem_validation_errors(operation: dict[str, Any]) -> None:
    response = operation.get("responses", {}).get("422")
    if response is None:
        return
    response["description"] = "Request is not valid"
    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}


def _body_size_limit(operation: dict[str, Any]) -> None:
    if "requestBody" not in operation:
        return
    # Both from middleware: a body over the size limit, and one not received in time.
    for problem in (PayloadTooLarge, RequestTimeout):
        operation["responses"][str(problem.status)] = {
            "description": problem.title,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
        }


_UNAVAILABLE_RETRY = "Seconds to wait before retrying: the database is out of reach for now."
_IN_FLIGHT_RETRY = (
    "Sent when the conflict is a request with the same Idempotency-Key still in flight: "
    "seconds until its lease, renewed while that request runs, would run out."
)


def _retry_later(operation: dict[str, Any], problem: type[Problem], retry: str) -> None:
    response = operation["responses"].setdefault(
        str(problem.status),
        {"description": problem.title, "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}},
    )
    response.setdefault("headers", {})["Retry-After"] = {
        "description": retry,
        "schema": {"type": "integer"},
    }


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def render(app: FastAPI) -> str:
    document: dict[str, Any] = app.openapi()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
