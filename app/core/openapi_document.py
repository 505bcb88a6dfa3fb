"""The OpenAPI document: built from the app, then made to say what FastAPI alone does not.

- Every operation states the exact scopes it needs, as OAuth 2.0 security requirements: one
  alternative per kind of caller that may hold the scope (`system/clients.r` OR
  `clinician/clients.r` OR `client/clients.r`), read from the route's own `require(...)`.
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
from app.core.routing import AppRoute, TransactionRoute
from app.core.scopes import ALL_SCOPES, ROLE_SCOPES, Context

SECURITY_SCHEME = "oauth2"
PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetail"}


def required_scope(dependant: Dependant) -> tuple[str, str] | None:
    """The (resource, permission) a route's `require(...)` dependency demands, if any."""
    for dependency in dependant.dependencies:
        found = getattr(dependency.call, "required_scope", None) or required_scope(dependency)
        if found:
            return found
    return None


def _security(resource: str, permission: str) -> list[dict[str, list[str]]]:
    return [
        {SECURITY_SCHEME: [f"{context}/{resource}.{permission}"]}
        for context in Context
        if ROLE_SCOPES[context].allows(context, resource, permission)
    ]


PERMISSION_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def _scope_descriptions() -> dict[str, str]:
    """Every single-permission scope a role may hold (tokens may ask for several at once, as in
    `system/clients.rs`)."""
    return {
        f"{scope.context}/{scope.resource}.{permission}": (
            f"{PERMISSION_NAMES[permission]} {scope.resource} as {scope.context}"
        )
        for scope in ALL_SCOPES.scopes()
        for permission in "cruds"
        if permission in scope.permissions
    }


def build(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
        webhooks=app.webhooks.routes,
        tags=app.openapi_tags,
    )
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "oauth2",
        "description": "JWT access tokens from `POST /oauth/token`: client credentials for the "
        "vendor's backend (`system`), token exchange for a clinician or a client.",
        "flows": {
            "clientCredentials": {
                "tokenUrl": "/oauth/token",
                "scopes": _scope_descriptions(),
            }
        },
    }
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
            _problem_validation_errors(operation)
            _body_size_limit(operation)
            if isinstance(route, TransactionRoute):
                _retry_later(operation, ServiceUnavailable, _UNAVAILABLE_RETRY)
            if isinstance(route, AppRoute) and method == "POST":
                _retry_later(operation, Conflict, _IN_FLIGHT_RETRY)
    schemas = components.get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    _restore_example_nulls(schemas, app)
    return document


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
