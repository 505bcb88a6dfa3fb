"""RFC 9457 problem details: one exception type, one response shape, one set of handlers.

Every 4xx/5xx the service answers is `application/problem+json` with a stable `type` per error
kind. Messages never echo the caller's input: request bodies carry client data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from app.core.db_errors import RETRY_AFTER_SECONDS, database_unavailable
from app.core.operation_outcome import FHIR_PREFIX, outcome_response

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:homework:problem:"

log = logging.getLogger("homework.errors")


class FieldError(BaseModel):
    """One invalid field: where it is, and what is wrong with it."""

    location: str = Field(description="body, query, path, header or cookie")
    pointer: str = Field(description="JSON pointer to the field within its location")
    field: str = Field(description="dotted name of the field")
    message: str
    code: str


class ProblemDetail(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=[PROBLEM_TYPE_PREFIX + "not-found"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


class Problem(Exception):
    """An error the caller should see, with its HTTP status and stable problem type."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})
        self.extensions = extensions


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(Problem):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class RequestTimeout(Problem):
    status, slug, title = 408, "request-timeout", "Request body not received in time"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(Problem):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class MalformedBody(Problem):
    status, slug, title = 422, "malformed-json", "Request body is not valid JSON"


class ValidationFailed(Problem):
    status, slug, title = 422, "validation-error", "Request is not valid"

    @classmethod
    def for_field(
        cls, location: str, path: Sequence[str | int], message: str, code: str
    ) -> Problem:
        return cls(message, errors=[field_error(location, path, message, code)])


class TooManyRequests(Problem):
    status, slug, title = 429, "rate-limited", "Too many requests"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class InternalError(Problem):
    pass


_BY_STATUS: dict[int, type[Problem]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        RequestTimeout,
        Conflict,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        TooManyRequests,
        ServiceUnavailable,
        InternalError,
    )
}


def field_error(location: str, path: Sequence[str | int], message: str, code: str) -> FieldError:
    parts = [str(p) for p in path]
    return FieldError(
        location=location,
        # RFC 6901: "" is the whole document, "/a/0" a member of it.
        pointer="".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts),
        field=".".join(parts),
        message=message,
        code=code,
    )


def problem_response(request: Request | None, problem: Problem) -> JSONResponse:
    if request is not None and request.url.path.startswith(FHIR_PREFIX):
        return outcome_response(problem, request.scope.get("state", {}).get("request_id"))
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + problem.slug,
        "title": problem.title,
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    if request is not None:
        body["instance"] = request.url.path
        request_id = request.scope.get("state", {}).get("request_id")
        if request_id:
            body["request_id"] = request_id
    if problem.errors:
        body["errors"] = [e.model_dump() for e in problem.errors]
    body.update(problem.extensions)
    return JSONResponse(
        body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_MEDIA_TYPE
    )


def problem_from_status(status: int, detail: str | None = None) -> Problem:
    cls = _BY_STATUS.get(status, BadRequest if status < 500 else InternalError)
    problem = cls(detail)
    if cls.status != status:
        problem.status = status
    return problem


def _validation_errors(raw: Iterable[Mapping[str, Any]]) -> tuple[bool, list[FieldError]]:
    malformed = False
    errors = []
    for err in raw:
        loc = list(err.get("loc", ()))
        location = str(loc.pop(0)) if loc else "body"
        code = str(err.get("type", "invalid"))
        if code == "json_invalid":
            # Pydantic puts the character offset where a field would be; the problem is the
            # whole document.
            malformed = True
            loc = []
        # The message, never the offending input: it may be a client's answer.
        errors.append(field_error(location, loc, str(err.get("msg", "Invalid value")), code))
    return malformed, errors


async def _handle_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(request, exc)


async def _handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI decodes a JSON body with json.loads(bytes): bytes that are not UTF-8 (which
        # JSON must be, RFC 8259 §8.1) fail before the parser and reach us as a bare 400.
        # They are malformed JSON like any other: the same 422 the route documents.
        return problem_response(
            request,
            MalformedBody(
                errors=[field_error("body", [], "JSON text must be UTF-8", "json_invalid")]
            ),
        )
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else None
    problem = problem_from_status(exc.status_code, detail)
    problem.headers.update(exc.headers or {})
    return problem_response(request, problem)


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    malformed, errors = _validation_errors(exc.errors())
    problem: Problem = (
        MalformedBody(errors=errors) if malformed else ValidationFailed(errors=errors)
    )
    return problem_response(request, problem)


def _refused_value(exc: Exception) -> bool:
    """SQLSTATE class 22, "data exception": a value the database will not take (a NUL byte, a
    number out of range). PostgreSQL drivers do not all map it to DataError, hence the code."""
    if isinstance(exc, DataError):
        return True
    orig = getattr(exc, "orig", None)
    return str(getattr(orig, "sqlstate", "") or "").startswith("22")


async def _handle_database_error(request: Request, exc: Exception) -> JSONResponse:
    if _refused_value(exc):
        # The database refused a value our validation let through (an encoding, a range): the
        # caller's input, so a 4xx; logged, since validation should have caught it first.
        log.warning("database refused a value", extra={"error": type(exc).__name__})
        return problem_response(request, ValidationFailed("A value could not be stored."))
    if not database_unavailable(exc):
        raise exc
    # The exception's name only: a driver's message can quote the statement's values.
    log.warning("database unavailable", extra={"error": type(exc).__name__})
    return problem_response(
        request,
        ServiceUnavailable(
            "The database is unreachable; retry shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ),
    )


async def _handle_lost_update(request: Request, exc: Exception) -> JSONResponse:
    # Someone (a worker, another request) changed the row between our read and our write.
    return problem_response(
        request, Conflict("The resource changed while this request ran; read it and retry.")
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _handle_problem)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StaleDataError, _handle_lost_update)
    # OSError: the driver raises a refused or timed-out connect as it is (app.core.db_errors).
    for unavailable in (DBAPIError, OSError, PoolTimeout):
        app.add_exception_handler(unavailable, _handle_database_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry that documents a route's error statuses as problem+json. A route
    that authenticates (401) is also rate-limited (429)."""
    if 401 in statuses and 429 not in statuses:
        statuses = (*statuses, 429)
    return {
        status: {
            "model": ProblemDetail,
            "content": {
                PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}
            },
            "description": problem_from_status(status).title,
            **({"headers": RATE_LIMIT_HEADERS} if status == 429 else {}),
        }
        for status in statuses
    }


RATE_LIMIT_HEADERS = {
    "Retry-After": {
        "description": "Seconds until the refused request would be allowed.",
        "schema": {"type": "integer"},
    },
    "RateLimit-Policy": {
        "description": 'The quotas the request was counted against: `"subject-reads";q=1200;w=60`.',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left of each: `"subject-reads";r=0;t=12` (on every response).',
        "schema": {"type": "string"},
    },
}
