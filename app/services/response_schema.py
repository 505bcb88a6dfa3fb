"""Response schemas: the small JSON Schema subset that describes a template's answers.

Supported subset
----------------
A response schema is a JSON object in a strict subset of JSON Schema. Anything not listed here
is rejected, so that every schema a tenant submits can be rendered as a form by any client app
and validated the same way everywhere.

- The root is ``{"type": "object", "properties": {...}, "required": [...],
  "additionalProperties": false}``. ``required`` is optional (default: nothing required);
  ``additionalProperties`` must be ``false`` or absent, and absent means ``false``: answers may
  never carry fields the schema does not name. The root may have a ``title`` and a
  ``description`` (for example, a questionnaire's stem).
- Property names start with a letter and contain only letters, digits and ``_`` (at most 64
  characters).
- Each property has exactly one ``type`` and only the keywords listed for that type:

  - ``string``: ``maxLength`` (1-10000, **required**), ``minLength`` (0-10000, at most
    ``maxLength``), ``enum`` (1-100 distinct strings that fit the lengths). Lengths count
    Unicode code points.
  - ``integer``: ``minimum``, ``maximum`` (integers within +/-9007199254740991), ``enum``
    (1-100 distinct integers within the bounds). Booleans and decimals such as ``1.0`` are not
    integers. An integer without bounds still must lie within +/-9007199254740991.
  - ``number``: ``minimum``, ``maximum`` (finite numbers). NaN and infinities are not numbers.
  - ``boolean``: no other keywords.
  - ``array``: ``items`` (**required**: one string, integer, number, boolean or object
    property; arrays of arrays are not supported), ``maxItems`` (1-100, **required**),
    ``minItems`` (0-100, at most ``maxItems``).
  - ``object``: ``properties`` (**required**), ``required``, ``additionalProperties: false``,
    as at the root. Objects nest at most 3 levels below the root; the object inside an array's
    ``items`` counts as a level.

- Every property may have a ``title`` (a string of at most 300 characters) and a
  ``description`` (at most 2000 characters), which apps show to the client.
- Two annotations mark answers that need a clinician's attention soon (a distress signal):
  ``x-distress-threshold`` (a number within the property's ``minimum``/``maximum``, on
  ``integer`` and ``number`` properties only): an answer at or above it is a distress signal;
  ``x-distress-item`` (``true`` or ``false``, on ``integer``, ``number`` and ``boolean``
  properties): any answer above 0, or ``true``, is a distress signal (PHQ-9 item 9 uses it).
- A schema defines at most 200 properties in all (nested ones included) and is at most 64 KiB
  as compact UTF-8 JSON.
- Not supported, among others: ``$ref``, ``$schema``, ``$defs``, ``pattern``, ``format``,
  ``oneOf``, ``anyOf``, ``allOf``, ``not``, ``if``/``then``/``else``, ``const``, ``default``,
  ``patternProperties``, ``additionalProperties: true`` or a schema, ``uniqueItems``,
  ``prefixItems``, ``type`` lists and the ``null`` type. To leave an answer out, omit it: an
  explicit ``null`` is not accepted.

Errors
------
``check_schema`` names each problem by a JSON pointer into the schema (``""`` is the root),
with a message and a code: ``invalid``, ``missing``, ``unsupported``, ``too_deep``,
``too_many_properties``, ``too_large``. ``validate_answers`` names each problem by a JSON pointer
into the answers (``/situation``, ``/steps/2/suds``) with a code: ``required``, ``type``,
``max_length``, ``min_length``, ``invalid_text``, ``minimum``, ``maximum``, ``enum``,
``max_items``, ``min_items``, ``additional_property``. Answer messages describe the rule, never
the answer (answers are protected health data). At most 100 answer problems are reported, so
that a hostile body cannot make the error response larger than itself.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

DISTRESS_THRESHOLD: Final = "x-distress-threshold"
DISTRESS_ITEM: Final = "x-distress-item"

MAX_SCHEMA_BYTES: Final = 64 * 1024
MAX_PROPERTIES: Final = 200
MAX_NESTED_OBJECTS: Final = 3
MAX_STRING_LENGTH: Final = 10_000
MAX_ARRAY_ITEMS: Final = 100
MAX_ENUM_VALUES: Final = 100
MAX_TITLE_LENGTH: Final = 300
MAX_DESCRIPTION_LENGTH: Final = 2_000
MAX_ANSWER_ISSUES: Final = 100
# JavaScript apps parse our JSON: integers beyond 2**53 - 1 would silently lose precision there.
MAX_SAFE_INTEGER: Final = 2**53 - 1

_PROPERTY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_COMMON = frozenset({"type", "title", "description"})
_KEYWORDS_BY_TYPE: Final[Mapping[str, frozenset[str]]] = {
    "object": _COMMON | {"properties", "required", "additionalProperties"},
    "string": _COMMON | {"maxLength", "minLength", "enum"},
    "integer": _COMMON | {"minimum", "maximum", "enum", DISTRESS_THRESHOLD, DISTRESS_ITEM},
    "number": _COMMON | {"minimum", "maximum", DISTRESS_THRESHOLD, DISTRESS_ITEM},
    "boolean": _COMMON | {DISTRESS_ITEM},
    "array": _COMMON | {"items", "maxItems", "minItems"},
}
_KNOWN_KEYWORDS = frozenset().union(*_KEYWORDS_BY_TYPE.values())
_PROPERTY_TYPES = ("string", "integer", "number", "boolean", "array", "object")
_ITEM_TYPES = ("string", "integer", "number", "boolean", "object")


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One problem in a response schema."""

    pointer: str
    message: str
    code: str


@dataclass(frozen=True, slots=True)
class AnswerIssue:
    """One problem in a client's answers; the message never contains the answer."""

    pointer: str
    message: str
    code: str


def check_schema(schema: object) -> list[SchemaIssue]:
    """Every problem that keeps `schema` out of the supported subset; empty when it is valid."""
    try:
        encoded = json.dumps(schema, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        size = len(encoded.encode("utf-8"))
    except (TypeError, ValueError, RecursionError):
        return [SchemaIssue("", "the schema must be plain JSON", "invalid")]
    # Measured before walking, so that a huge schema costs nothing more than its encoding.
    if size > MAX_SCHEMA_BYTES:
        return [
            SchemaIssue("", f"the schema must be at most {MAX_SCHEMA_BYTES} bytes", "too_large")
        ]
    checker = _SchemaChecker()
    checker.check_node(schema, "", 0, ("object",))
    return checker.issues


def validate_answers(schema: Mapping[str, Any], answers: object) -> list[AnswerIssue]:
    """Every problem with `answers` against `schema`, which must have passed `check_schema`."""
    issues = _AnswerIssues()
    # Hitting the cap ends the walk early, which also bounds the work.
    with contextlib.suppress(_IssueLimitReached):
        _validate(schema, answers, "", issues)
    return issues.items


def distress_signals(schema: Mapping[str, Any], answers: object) -> list[str]:
    """JSON pointers of the answers that meet a distress annotation of `schema`.

    Values of the wrong type are skipped rather than rejected: validate the answers first.
    """
    found: list[str] = []
    _collect_distress(schema, answers, "", found)
    return found


def _child(pointer: str, segment: object) -> str:
    """RFC 6901: `~` and `/` in a segment are escaped as `~0` and `~1`."""
    # A lone surrogate (valid in Python, invalid in UTF-8) in a key would make the error
    # response itself unencodable, so it is replaced.
    text = str(segment).encode("utf-8", "replace").decode("utf-8")
    return f"{pointer}/{text.replace('~', '~0').replace('/', '~1')}"


def _short(name: object) -> str:
    # Keyword names come from the tenant; a message quoting a 60 KiB one helps nobody.
    text = str(name)
    return text if len(text) <= 64 else text[:61] + "..."


def _is_integer(value: object) -> TypeGuard[int]:
    # bool is a subclass of int in Python, but true is not 1 in a schema or an answer.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _is_safe_integer(value: object) -> TypeGuard[int]:
    return _is_integer(value) and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


class _SchemaChecker:
    def __init__(self) -> None:
        self.issues: list[SchemaIssue] = []
        self.property_count = 0

    def add(self, pointer: str, message: str, code: str) -> None:
        self.issues.append(SchemaIssue(pointer, message, code))

    def check_node(self, node: object, pointer: str, level: int, types: Sequence[str]) -> None:
        """Checks one property (or the root, or an array's items) of any type in `types`."""
        if not isinstance(node, dict):
            self.add(pointer, "must be an object", "invalid")
            return
        kind = self.check_type(node, pointer, types)
        allowed = _KEYWORDS_BY_TYPE[kind] if kind else _KNOWN_KEYWORDS
        for keyword in node:
            if keyword not in allowed:
                where = f" on {kind} properties" if keyword in _KNOWN_KEYWORDS else ""
                self.add(
                    _child(pointer, keyword),
                    f"{_short(keyword)} is not supported{where}",
                    "unsupported",
                )
        self.check_text(node, pointer, "title", MAX_TITLE_LENGTH)
        self.check_text(node, pointer, "description", MAX_DESCRIPTION_LENGTH)
        if kind == "object":
            if level > MAX_NESTED_OBJECTS:
                self.add(
                    pointer,
                    f"objects may be nested at most {MAX_NESTED_OBJECTS} levels below the root",
                    "too_deep",
                )
                return
            self.check_object(node, pointer, level)
        elif kind == "array":
            self.check_array(node, pointer, level)
        elif kind == "string":
            self.check_string(node, pointer)
        elif kind in ("integer", "number"):
            self.check_numeric(node, pointer, kind)
        elif kind == "boolean":
            self.check_distress_item(node, pointer)

    def check_type(self, node: dict[Any, Any], pointer: str, types: Sequence[str]) -> str | None:
        where = _child(pointer, "type")
        if "type" not in node:
            self.add(where, "type is required", "missing")
            return None
        kind = node["type"]
        if isinstance(kind, str) and kind in types:
            return kind
        choices = ", ".join(types)
        if isinstance(kind, list):
            self.add(where, f"type lists are not supported; use one of: {choices}", "unsupported")
        elif isinstance(kind, str):
            self.add(
                where,
                f'type "{_short(kind)}" is not supported here; use one of: {choices}',
                "unsupported",
            )
        else:
            self.add(where, f"type must be one of: {choices}", "invalid")
        return None

    def check_text(self, node: dict[Any, Any], pointer: str, keyword: str, limit: int) -> None:
        if keyword in node:
            value = node[keyword]
            if not isinstance(value, str) or len(value) > limit:
                self.add(
                    _child(pointer, keyword),
                    f"{keyword} must be a string of at most {limit} characters",
                    "invalid",
                )

    def check_object(self, node: dict[Any, Any], pointer: str, level: int) -> None:
        properties = node.get("properties")
        if "properties" not in node:
            self.add(_child(pointer, "properties"), "properties is required", "missing")
        elif not isinstance(properties, dict):
            self.add(_child(pointer, "properties"), "properties must be an object", "invalid")
        else:
            for name, child in properties.items():
                where = _child(_child(pointer, "properties"), name)
                self.property_count += 1
                if self.property_count > MAX_PROPERTIES:
                    # Stop walking: the schema is rejected anyway, and this bounds the work.
                    self.add(
                        where,
                        f"a schema may define at most {MAX_PROPERTIES} properties",
                        "too_many_properties",
                    )
                    break
                if not isinstance(name, str) or not _PROPERTY_NAME.fullmatch(name):
                    self.add(
                        where,
                        "property names must start with a letter and contain only letters, "
                        "digits and underscores (at most 64 characters)",
                        "invalid",
                    )
                self.check_node(child, where, level + 1, _PROPERTY_TYPES)
        self.check_required(node, pointer, properties if isinstance(properties, dict) else {})
        if "additionalProperties" in node and node["additionalProperties"] is not False:
            self.add(
                _child(pointer, "additionalProperties"),
                "additionalProperties must be false or absent",
                "unsupported",
            )

    def check_required(
        self, node: dict[Any, Any], pointer: str, properties: dict[Any, Any]
    ) -> None:
        if "required" not in node:
            return
        where = _child(pointer, "required")
        required = node["required"]
        if not isinstance(required, list):
            self.add(where, "required must be an array of property names", "invalid")
            return
        seen: set[str] = set()
        for index, name in enumerate(required):
            if not isinstance(name, str) or name not in properties:
                self.add(_child(where, index), "names a property that is not defined", "invalid")
            elif name in seen:
                self.add(_child(where, index), "names a property already listed", "invalid")
            else:
                seen.add(name)

    def check_array(self, node: dict[Any, Any], pointer: str, level: int) -> None:
        most = self.check_count(node, pointer, "maxItems", 1, MAX_ARRAY_ITEMS, "array")
        least = self.check_count(node, pointer, "minItems", 0, MAX_ARRAY_ITEMS, None)
        if most is not None and least is not None and least > most:
            self.add(_child(pointer, "minItems"), "minItems must not exceed maxItems", "invalid")
        if "items" not in node:
            self.add(_child(pointer, "items"), "items is required for array properties", "missing")
        else:
            # An array's items are not a property of their own, so the level does not change.
            self.check_node(node["items"], _child(pointer, "items"), level, _ITEM_TYPES)

    def check_string(self, node: dict[Any, Any], pointer: str) -> None:
        most = self.check_count(node, pointer, "maxLength", 1, MAX_STRING_LENGTH, "string")
        least = self.check_count(node, pointer, "minLength", 0, MAX_STRING_LENGTH, None)
        if most is not None and least is not None and least > most:
            self.add(_child(pointer, "minLength"), "minLength must not exceed maxLength", "invalid")
        low = least or 0
        high = MAX_STRING_LENGTH if most is None else most
        self.check_enum(
            node,
            pointer,
            lambda value: isinstance(value, str) and low <= len(value) <= high,
            "strings within minLength and maxLength",
        )

    def check_numeric(self, node: dict[Any, Any], pointer: str, kind: str) -> None:
        fits = _is_safe_integer if kind == "integer" else _is_number
        rule = (
            f"an integer within +/-{MAX_SAFE_INTEGER}" if kind == "integer" else "a finite number"
        )
        bounds: dict[str, float] = {}
        for keyword in ("minimum", "maximum"):
            if keyword in node:
                if fits(node[keyword]):
                    bounds[keyword] = node[keyword]
                else:
                    self.add(_child(pointer, keyword), f"{keyword} must be {rule}", "invalid")
        low = bounds.get("minimum", -math.inf)
        high = bounds.get("maximum", math.inf)
        if low > high:
            self.add(_child(pointer, "minimum"), "minimum must not exceed maximum", "invalid")
        if kind == "integer":
            self.check_enum(
                node,
                pointer,
                lambda value: _is_safe_integer(value) and low <= value <= high,
                "integers within minimum and maximum",
            )
        if DISTRESS_THRESHOLD in node:
            threshold = node[DISTRESS_THRESHOLD]
            where = _child(pointer, DISTRESS_THRESHOLD)
            if not _is_number(threshold):
                self.add(where, f"{DISTRESS_THRESHOLD} must be a finite number", "invalid")
            elif not low <= threshold <= high:
                # Outside the bounds it would never fire (or always fire): a silent safety gap.
                self.add(
                    where, f"{DISTRESS_THRESHOLD} must lie within minimum and maximum", "invalid"
                )
        self.check_distress_item(node, pointer)

    def check_distress_item(self, node: dict[Any, Any], pointer: str) -> None:
        if DISTRESS_ITEM in node and not isinstance(node[DISTRESS_ITEM], bool):
            self.add(
                _child(pointer, DISTRESS_ITEM), f"{DISTRESS_ITEM} must be true or false", "invalid"
            )

    def check_count(
        self,
        node: dict[Any, Any],
        pointer: str,
        keyword: str,
        low: int,
        high: int,
        required_for: str | None,
    ) -> int | None:
        where = _child(pointer, keyword)
        if keyword not in node:
            if required_for:
                self.add(where, f"{keyword} is required for {required_for} properties", "missing")
            return None
        value = node[keyword]
        if not _is_integer(value) or not low <= value <= high:
            self.add(where, f"{keyword} must be an integer from {low} to {high}", "invalid")
            return None
        return int(value)

    def check_enum(
        self,
        node: dict[Any, Any],
        pointer: str,
        accepts: Callable[[Any], bool],
        described: str,
    ) -> None:
        if "enum" not in node:
            return
        where = _child(pointer, "enum")
        values = node["enum"]
        if not isinstance(values, list) or not 1 <= len(values) <= MAX_ENUM_VALUES:
            self.add(where, f"enum must be an array of 1 to {MAX_ENUM_VALUES} values", "invalid")
            return
        seen: set[object] = set()
        for index, value in enumerate(values):
            if not accepts(value):
                self.add(_child(where, index), f"enum values must be {described}", "invalid")
            elif value in seen:
                self.add(_child(where, index), "enum values must be distinct", "invalid")
            else:
                seen.add(value)


class _IssueLimitReached(Exception):
    pass


class _AnswerIssues:
    def __init__(self) -> None:
        self.items: list[AnswerIssue] = []

    def add(self, pointer: str, message: str, code: str) -> None:
        self.items.append(AnswerIssue(pointer, message, code))
        if len(self.items) >= MAX_ANSWER_ISSUES:
            raise _IssueLimitReached


def _validate(
    schema: Mapping[str, Any], value: object, pointer: str, issues: _AnswerIssues
) -> None:
    kind = schema.get("type")
    if kind == "object":
        _validate_object(schema, value, pointer, issues)
    elif kind == "array":
        _validate_array(schema, value, pointer, issues)
    elif kind == "string":
        _validate_string(schema, value, pointer, issues)
    elif kind in ("integer", "number"):
        _validate_numeric(schema, value, pointer, issues)
    elif kind == "boolean":
        if not isinstance(value, bool):
            issues.add(pointer, "must be true or false", "type")
    else:
        raise ValueError("the response schema has not passed check_schema")


def _validate_object(
    schema: Mapping[str, Any], value: object, pointer: str, issues: _AnswerIssues
) -> None:
    if not isinstance(value, Mapping):
        issues.add(pointer, "must be an object", "type")
        return
    properties: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    # Schema order, then the unknown keys: the same answers always give the same list.
    for name, child_schema in properties.items():
        if name in value:
            _validate(child_schema, value[name], _child(pointer, name), issues)
        elif name in required:
            issues.add(_child(pointer, name), "is required", "required")
    for name in value:
        if name not in properties:
            issues.add(_child(pointer, name), "is not allowed", "additional_property")


def _validate_array(
    schema: Mapping[str, Any], value: object, pointer: str, issues: _AnswerIssues
) -> None:
    if not isinstance(value, list | tuple):
        issues.add(pointer, "must be an array", "type")
        return
    most = schema["maxItems"]
    least = schema.get("minItems", 0)
    if len(value) > most:
        issues.add(pointer, f"must have at most {most} items", "max_items")
    if len(value) < least:
        issues.add(pointer, f"must have at least {least} items", "min_items")
    for index, item in enumerate(value):
        _validate(schema["items"], item, _child(pointer, index), issues)


def _validate_string(
    schema: Mapping[str, Any], value: object, pointer: str, issues: _AnswerIssues
) -> None:
    if not isinstance(value, str):
        issues.add(pointer, "must be a string", "type")
        return
    # PostgreSQL cannot store NUL in text or jsonb, and a lone surrogate cannot be encoded as
    # UTF-8 at all: either would fail later as a 500 instead of now as a 422.
    if "\x00" in value or not _encodable(value):
        issues.add(
            pointer, "must be text without NUL characters or unpaired surrogates", "invalid_text"
        )
        return
    most = schema["maxLength"]
    least = schema.get("minLength", 0)
    if len(value) > most:
        issues.add(pointer, f"must be at most {most} characters", "max_length")
    if len(value) < least:
        issues.add(pointer, f"must be at least {least} characters", "min_length")
    _check_enum(schema, value, pointer, issues)


def _validate_numeric(
    schema: Mapping[str, Any], value: object, pointer: str, issues: _AnswerIssues
) -> None:
    # bool is a subclass of int in Python, but true is not 1 in an answer.
    if schema["type"] == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            issues.add(pointer, "must be an integer", "type")
            return
        low = schema.get("minimum", -MAX_SAFE_INTEGER)
        high = schema.get("maximum", MAX_SAFE_INTEGER)
    else:
        if not _is_number(value):
            issues.add(pointer, "must be a finite number", "type")
            return
        low = schema.get("minimum", -math.inf)
        high = schema.get("maximum", math.inf)
    if value < low:
        issues.add(pointer, f"must be at least {low}", "minimum")
    elif value > high:
        issues.add(pointer, f"must be at most {high}", "maximum")
    _check_enum(schema, value, pointer, issues)


def _check_enum(
    schema: Mapping[str, Any], value: object, pointer: str, issues: _AnswerIssues
) -> None:
    allowed: Sequence[object] | None = schema.get("enum")
    if allowed is not None and value not in allowed:
        # The allowed values come from the schema, not from the client: safe to list.
        listed = ", ".join(json.dumps(option, ensure_ascii=False) for option in allowed)
        message = f"must be one of: {listed}" if len(allowed) <= 20 else "must be an allowed value"
        issues.add(pointer, message, "enum")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _collect_distress(
    schema: Mapping[str, Any], value: object, pointer: str, found: list[str]
) -> None:
    kind = schema.get("type")
    if kind == "object":
        if isinstance(value, Mapping):
            for name, child_schema in schema.get("properties", {}).items():
                if name in value:
                    _collect_distress(child_schema, value[name], _child(pointer, name), found)
    elif kind == "array":
        if isinstance(value, list | tuple):
            for index, item in enumerate(value):
                _collect_distress(schema["items"], item, _child(pointer, index), found)
    elif _meets_distress(schema, value):
        found.append(pointer)


def _meets_distress(schema: Mapping[str, Any], value: object) -> bool:
    flagged_item = schema.get(DISTRESS_ITEM) is True
    if isinstance(value, bool):
        return schema.get("type") == "boolean" and flagged_item and value
    if schema.get("type") not in ("integer", "number") or not _is_number(value):
        return False
    if flagged_item and value > 0:
        return True
    threshold = schema.get(DISTRESS_THRESHOLD)
    return _is_number(threshold) and value >= threshold
