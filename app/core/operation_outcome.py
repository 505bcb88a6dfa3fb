"""Errors under /fhir/ as FHIR `OperationOutcome`s: the same status, headers and wording as the
problem+json the rest of the API answers, in the shape a FHIR client reads.

It lives beside app.core.errors, which renders every error, so that an error made anywhere
(the body limit, the deadline, a crash, the rate limit) comes out the same way under /fhir/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from app.core.errors import Problem

FHIR_PREFIX: Final = "/fhir/"
FHIR_MEDIA_TYPE: Final = "application/fhir+json"

# hl7.org/fhir/R4/valueset-issue-type.html
_ISSUE_TYPE: Final = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    408: "timeout",
    409: "conflict",
    412: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    503: "transient",
}


def outcome(problem: Problem, request_id: str | None) -> dict[str, Any]:
    severity = "fatal" if problem.status >= 500 else "error"
    issue_type = _ISSUE_TYPE.get(problem.status, "exception")
    text = problem.detail or problem.title
    if request_id:
        text = f"{text} (request {request_id})"
    issues = [
        {
            "severity": severity,
            "code": issue_type,
            "details": {"text": error.message},
            "diagnostics": error.code,
            "expression": [error.field or error.location],
        }
        for error in problem.errors or ()
    ]
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": issue_type, "details": {"text": text}}, *issues],
    }


def outcome_response(problem: Problem, request_id: str | None) -> JSONResponse:
    return JSONResponse(
        outcome(problem, request_id),
        status_code=problem.status,
        headers=problem.headers,
        media_type=FHIR_MEDIA_TYPE,
    )
