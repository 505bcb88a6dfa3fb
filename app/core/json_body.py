"""Reading a JSON request body the way the README promises, before FastAPI does.

FastAPI parses a body with `json.loads(bytes)`, which has two faults for us:
- it guesses the encoding, so a UTF-16 or UTF-32 body is accepted, and a declared
  `charset=utf-16` is ignored; JSON between systems must be UTF-8 (RFC 8259 §8.1), and the
  README says anything else is the 422 `malformed-json`;
- a number with more digits than Python converts (4,300: the guard against quadratic-time
  conversion) raises a ValueError, and arrays nested thousands deep a RecursionError, that
  FastAPI turns into an undocumented `400 bad-request` that names nothing.

`read_json_body` parses it first, strictly, and answers those with the documented 422s, the huge
number's naming its field by pointer. The parsed document is left where Starlette caches it, so
FastAPI does not parse it again (if a Starlette release moved that cache, FastAPI would parse
the same, already checked, bytes a second time: slower, not different).
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Iterator
from typing import Any

from fastapi import Request

from app.core.errors import MalformedBody, ValidationFailed, field_error

UTF8_CHARSETS = frozenset({"utf-8", "utf8"})


async def read_json_body(request: Request) -> None:
    """Parses the body of a request that FastAPI would read as JSON; raises a 422 Problem."""
    declared = request.headers.get("content-type")
    is_json, charset = _media_type(declared) if declared is not None else (True, None)
    if not is_json:
        return  # FastAPI hands such a body to the route as bytes, or refuses it itself
    body = await request.body()
    if not body:
        return
    if charset is not None and charset not in UTF8_CHARSETS:
        raise _malformed("The body must be UTF-8.")  # the charset it named is not echoed
    try:
        # utf-8-sig: RFC 8259 lets a parser ignore a byte order mark, and json.loads(bytes)
        # always has.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _malformed("JSON text must be UTF-8.") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        # Answered here, not left to FastAPI: it would guess another encoding and succeed.
        raise _malformed("JSON decode error") from None  # FastAPI's own words for it
    except ValueError:
        raise _too_many_digits(text) from None
    except RecursionError:
        # Arrays in arrays, thousands deep: no document of ours nests like that.
        raise _malformed("JSON text is nested too deeply.") from None
    request._json = document  # Starlette's cache of request.json(); see the module docstring


def _media_type(content_type: str) -> tuple[bool, str | None]:
    """Whether FastAPI reads the body as JSON (its own test, in get_request_handler), and the
    declared charset, lower-cased."""
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    is_json = message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
    charset = message.get_param("charset")
    return is_json, charset.strip().lower() if isinstance(charset, str) else None


def _malformed(message: str) -> MalformedBody:
    return MalformedBody(errors=[field_error("body", [], message, "json_invalid")])


class _HugeNumber:
    """Stands where a number too long to convert was, so that its place can be named."""


def _too_many_digits(text: str) -> ValidationFailed:
    def parse_int(digits: str) -> int | _HugeNumber:
        try:
            return int(digits)
        except ValueError:
            return _HugeNumber()

    document = json.loads(text, parse_int=parse_int)
    message = "Number has too many digits"
    # Pydantic's own code for a number too long to parse.
    errors = [field_error("body", path, message, "int_parsing_size") for path in _huge(document)]
    return ValidationFailed(errors=errors or [field_error("body", [], message, "int_parsing_size")])


def _huge(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, _HugeNumber):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _huge(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _huge(item, (*path, index))
