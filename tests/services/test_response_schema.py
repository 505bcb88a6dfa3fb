"""The response-schema subset: what a tenant may submit, and how answers are checked."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from app.services.response_schema import (
    MAX_ANSWER_ISSUES,
    MAX_PROPERTIES,
    MAX_SAFE_INTEGER,
    AnswerIssue,
    SchemaIssue,
    check_schema,
    distress_signals,
    validate_answers,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "A custom template",
    "properties": {
        "situation": {"type": "string", "minLength": 3, "maxLength": 100, "title": "Situation"},
        "feeling": {"type": "string", "maxLength": 20, "enum": ["sad", "anxious"]},
        "intensity": {
            "type": "integer",
            "minimum": 0,
            "maximum": 100,
            "x-distress-threshold": 90,
            "description": "0-100",
        },
        "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "count": {"type": "integer"},
        "done": {"type": "boolean"},
        "steps": {
            "type": "array",
            "maxItems": 3,
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "label": {"type": "string", "maxLength": 50},
                    "suds": {"type": "integer", "minimum": 0, "maximum": 100},
                },
                "required": ["label", "suds"],
                "additionalProperties": False,
            },
        },
        "harm": {"type": "integer", "minimum": 0, "maximum": 3, "x-distress-item": True},
        "unsafe": {"type": "boolean", "x-distress-item": True},
        "scores": {
            "type": "array",
            "maxItems": 5,
            "items": {"type": "integer", "minimum": 0, "maximum": 10, "x-distress-threshold": 8},
        },
        "level": {"type": "number", "minimum": 0, "maximum": 5, "x-distress-threshold": 4.5},
    },
    "required": ["situation", "intensity"],
    "additionalProperties": False,
}

VALID_ANSWERS: dict[str, Any] = {
    "situation": "At work, before the meeting",
    "feeling": "anxious",
    "intensity": 70,
    "ratio": 0.25,
    "count": -3,
    "done": False,
    "steps": [{"label": "Say hello", "suds": 40}, {"label": "Ask a question", "suds": 0}],
    "harm": 0,
    "unsafe": False,
    "scores": [1, 2, 7],
    "level": 4,
}


def _root(prop: object) -> dict[str, Any]:
    return {"type": "object", "properties": {"mood": prop}, "additionalProperties": False}


def _codes(issues: list[SchemaIssue] | list[AnswerIssue]) -> list[tuple[str, str]]:
    return [(issue.pointer, issue.code) for issue in issues]


def _nested(levels: int) -> dict[str, Any]:
    """A schema with `levels` object properties nested below the root."""
    node: dict[str, Any] = {"type": "string", "maxLength": 10}
    for _ in range(levels):
        node = {"type": "object", "properties": {"inner": node}}
    return {"type": "object", "properties": {"inner": node}}


# --- check_schema: valid schemas -------------------------------------------------------------


def test_a_schema_using_every_supported_construct_is_valid() -> None:
    assert check_schema(SCHEMA) == []


def test_absent_additional_properties_and_required_are_fine() -> None:
    assert check_schema({"type": "object", "properties": {}}) == []


def test_objects_nest_three_levels_below_the_root() -> None:
    assert check_schema(_nested(3)) == []
    assert _codes(check_schema(_nested(4))) == [
        ("/properties/inner/properties/inner/properties/inner/properties/inner", "too_deep")
    ]


def test_an_object_inside_array_items_counts_as_a_level() -> None:
    leaf: dict[str, Any] = {"type": "object", "properties": {"x": {"type": "boolean"}}}
    two_deep = {"type": "object", "properties": {"obj": leaf}}
    items: dict[str, Any] = {"type": "object", "properties": {"deep": two_deep}}
    schema = {
        "type": "object",
        "properties": {"list": {"type": "array", "maxItems": 2, "items": items}},
    }
    assert check_schema(schema) == []
    items["properties"]["deep"]["properties"]["obj"]["properties"]["x"] = {
        "type": "object",
        "properties": {},
    }
    assert _codes(check_schema(schema)) == [
        (
            "/properties/list/items/properties/deep/properties/obj/properties/x",
            "too_deep",
        )
    ]


# --- check_schema: unsupported constructs, each with its pointer ---------------------------

UNSUPPORTED: list[tuple[dict[str, Any], str, str]] = [
    (
        _root({"type": "string", "maxLength": 9, "pattern": "^a"}),
        "/properties/mood/pattern",
        "pattern is not supported",
    ),
    (
        _root({"type": "string", "maxLength": 9, "format": "email"}),
        "/properties/mood/format",
        "format is not supported",
    ),
    (_root({"type": "string", "maxLength": 9, "$ref": "#/x"}), "/properties/mood/$ref", ""),
    (_root({"type": "string", "maxLength": 9, "oneOf": []}), "/properties/mood/oneOf", ""),
    (_root({"type": "string", "maxLength": 9, "anyOf": []}), "/properties/mood/anyOf", ""),
    (_root({"type": "string", "maxLength": 9, "allOf": []}), "/properties/mood/allOf", ""),
    (_root({"type": "string", "maxLength": 9, "not": {}}), "/properties/mood/not", ""),
    (_root({"type": "integer", "if": {}, "then": {}}), "/properties/mood/if", ""),
    (_root({"type": "integer", "const": 1}), "/properties/mood/const", ""),
    (_root({"type": "integer", "default": 1}), "/properties/mood/default", ""),
    (_root({"type": "boolean", "x-colour": "red"}), "/properties/mood/x-colour", ""),
    (
        _root({"type": "array", "maxItems": 2, "items": {"type": "boolean"}, "uniqueItems": True}),
        "/properties/mood/uniqueItems",
        "",
    ),
    (
        _root({"type": "array", "maxItems": 2, "items": {"type": "boolean"}, "prefixItems": []}),
        "/properties/mood/prefixItems",
        "",
    ),
    (
        _root({"type": "object", "properties": {}, "patternProperties": {}}),
        "/properties/mood/patternProperties",
        "",
    ),
    (
        _root({"type": "object", "properties": {}, "additionalProperties": True}),
        "/properties/mood/additionalProperties",
        "additionalProperties must be false or absent",
    ),
    (
        _root({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}),
        "/properties/mood/additionalProperties",
        "",
    ),
    (_root({"type": ["string", "null"], "maxLength": 9}), "/properties/mood/type", ""),
    (_root({"type": "null"}), "/properties/mood/type", ""),
    (
        _root({"type": "integer", "maxLength": 9}),
        "/properties/mood/maxLength",
        "maxLength is not supported on integer properties",
    ),
    (_root({"type": "number", "enum": [1, 2]}), "/properties/mood/enum", ""),
    (
        _root({"type": "string", "maxLength": 9, "x-distress-threshold": 1}),
        "/properties/mood/x-distress-threshold",
        "",
    ),
    (
        _root({"type": "array", "maxItems": 2, "items": {"type": "array", "maxItems": 2}}),
        "/properties/mood/items/type",
        "",
    ),
    (
        {"type": "object", "properties": {}, "additionalProperties": True},
        "/additionalProperties",
        "",
    ),
    (
        {"$schema": "https://json-schema.org/draft/2020-12/schema", **_root({"type": "boolean"})},
        "/$schema",
        "",
    ),
    ({"$defs": {}, **_root({"type": "boolean"})}, "/$defs", ""),
    ({"type": "array", "maxItems": 2, "items": {"type": "boolean"}}, "/type", ""),
]


@pytest.mark.parametrize(("schema", "pointer", "message"), UNSUPPORTED)
def test_unsupported_constructs_are_reported_at_their_pointer(
    schema: dict[str, Any], pointer: str, message: str
) -> None:
    issues = check_schema(schema)
    matching = [issue for issue in issues if issue.pointer == pointer]
    assert [issue.code for issue in matching] == ["unsupported"], issues
    if message:
        assert matching[0].message == message


# --- check_schema: other mistakes --------------------------------------------------------------

MISTAKES: list[tuple[object, list[tuple[str, str]]]] = [
    ([], [("", "invalid")]),
    ({"properties": {}}, [("/type", "missing")]),
    ({"type": "object"}, [("/properties", "missing")]),
    ({"type": "object", "properties": []}, [("/properties", "invalid")]),
    (_root({"maxLength": 9}), [("/properties/mood/type", "missing")]),
    (_root({"type": 5}), [("/properties/mood/type", "invalid")]),
    (_root("string"), [("/properties/mood", "invalid")]),
    (_root({"type": "string"}), [("/properties/mood/maxLength", "missing")]),
    (_root({"type": "string", "maxLength": 0}), [("/properties/mood/maxLength", "invalid")]),
    (_root({"type": "string", "maxLength": 10_001}), [("/properties/mood/maxLength", "invalid")]),
    (_root({"type": "string", "maxLength": True}), [("/properties/mood/maxLength", "invalid")]),
    (
        _root({"type": "string", "maxLength": 5, "minLength": 6}),
        [("/properties/mood/minLength", "invalid")],
    ),
    (_root({"type": "string", "maxLength": 5, "enum": []}), [("/properties/mood/enum", "invalid")]),
    (
        _root({"type": "string", "maxLength": 5, "enum": ["a", 1, "toolong", "a"]}),
        [
            ("/properties/mood/enum/1", "invalid"),
            ("/properties/mood/enum/2", "invalid"),
            ("/properties/mood/enum/3", "invalid"),
        ],
    ),
    (
        _root({"type": "integer", "minimum": 0, "maximum": 3, "enum": [0, 4, True]}),
        [("/properties/mood/enum/1", "invalid"), ("/properties/mood/enum/2", "invalid")],
    ),
    (
        _root({"type": "integer", "minimum": 5, "maximum": 1}),
        [("/properties/mood/minimum", "invalid")],
    ),
    (_root({"type": "integer", "minimum": 0.5}), [("/properties/mood/minimum", "invalid")]),
    (_root({"type": "integer", "maximum": 2**53}), [("/properties/mood/maximum", "invalid")]),
    (_root({"type": "number", "maximum": math.inf}), [("", "invalid")]),
    (_root({"type": "number", "maximum": "10"}), [("/properties/mood/maximum", "invalid")]),
    (
        _root({"type": "integer", "minimum": 0, "maximum": 10, "x-distress-threshold": 11}),
        [("/properties/mood/x-distress-threshold", "invalid")],
    ),
    (
        _root({"type": "integer", "x-distress-threshold": "high"}),
        [("/properties/mood/x-distress-threshold", "invalid")],
    ),
    (
        _root({"type": "integer", "x-distress-item": "yes"}),
        [("/properties/mood/x-distress-item", "invalid")],
    ),
    (_root({"type": "boolean", "title": 7}), [("/properties/mood/title", "invalid")]),
    (
        _root({"type": "boolean", "description": "x" * 2001}),
        [("/properties/mood/description", "invalid")],
    ),
    (
        _root({"type": "array", "items": {"type": "boolean"}}),
        [("/properties/mood/maxItems", "missing")],
    ),
    (
        _root({"type": "array", "maxItems": 101, "items": {"type": "boolean"}}),
        [("/properties/mood/maxItems", "invalid")],
    ),
    (
        _root({"type": "array", "maxItems": 2, "minItems": 3, "items": {"type": "boolean"}}),
        [("/properties/mood/minItems", "invalid")],
    ),
    (_root({"type": "array", "maxItems": 2}), [("/properties/mood/items", "missing")]),
    (
        {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["b", "a", "a"]},
        [("/required/0", "invalid"), ("/required/2", "invalid")],
    ),
    ({"type": "object", "properties": {}, "required": "a"}, [("/required", "invalid")]),
    (
        {"type": "object", "properties": {"bad/name~": {"type": "boolean"}}},
        [("/properties/bad~1name~0", "invalid")],
    ),
    (
        {"type": "object", "properties": {"1st": {"type": "boolean"}}},
        [("/properties/1st", "invalid")],
    ),
    ({"type": "object", "properties": {}, "x": {1, 2}}, [("", "invalid")]),
    (
        {"type": "object", "properties": {"f": {"type": "number", "maximum": math.nan}}},
        [("", "invalid")],
    ),
]


@pytest.mark.parametrize(("schema", "expected"), MISTAKES)
def test_schema_mistakes_are_reported_at_their_pointer(
    schema: object, expected: list[tuple[str, str]]
) -> None:
    assert _codes(check_schema(schema)) == expected


def test_every_problem_is_reported_not_just_the_first() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "pattern": "x"},
            "b": {"type": "integer", "minimum": 3, "maximum": 1},
        },
        "oneOf": [],
    }
    assert _codes(check_schema(schema)) == [
        ("/oneOf", "unsupported"),
        ("/properties/a/pattern", "unsupported"),
        ("/properties/a/maxLength", "missing"),
        ("/properties/b/minimum", "invalid"),
    ]


def test_the_number_of_properties_is_limited() -> None:
    flat = {f"p{n}": {"type": "boolean"} for n in range(MAX_PROPERTIES)}
    assert check_schema({"type": "object", "properties": flat}) == []
    flat["one_more"] = {"type": "boolean"}
    assert _codes(check_schema({"type": "object", "properties": flat})) == [
        ("/properties/one_more", "too_many_properties")
    ]


def test_nested_properties_count_towards_the_limit() -> None:
    inner = {f"p{n}": {"type": "boolean"} for n in range(MAX_PROPERTIES)}
    schema = {"type": "object", "properties": {"group": {"type": "object", "properties": inner}}}
    assert _codes(check_schema(schema)) == [
        (f"/properties/group/properties/p{MAX_PROPERTIES - 1}", "too_many_properties")
    ]


def test_the_schema_size_is_limited() -> None:
    prop = {"type": "boolean", "description": "x" * 2000}
    big = {"type": "object", "properties": {f"p{n}": prop for n in range(40)}}
    assert _codes(check_schema(big)) == [("", "too_large")]


def test_check_schema_does_not_change_the_schema() -> None:
    before = copy.deepcopy(SCHEMA)
    check_schema(SCHEMA)
    assert before == SCHEMA


# --- validate_answers ----------------------------------------------------------------------------


def test_valid_answers_have_no_issues() -> None:
    assert validate_answers(SCHEMA, VALID_ANSWERS) == []
    assert validate_answers(SCHEMA, {"situation": "abc", "intensity": 0}) == []


def _with(**changes: Any) -> dict[str, Any]:
    answers = copy.deepcopy(VALID_ANSWERS)
    answers.update(changes)
    return answers


def _without(name: str) -> dict[str, Any]:
    answers = copy.deepcopy(VALID_ANSWERS)
    del answers[name]
    return answers


ANSWER_ERRORS: list[tuple[object, list[tuple[str, str]]]] = [
    (_without("situation"), [("/situation", "required")]),
    (_with(situation="x" * 101), [("/situation", "max_length")]),
    (_with(situation="ab"), [("/situation", "min_length")]),
    (_with(situation=5), [("/situation", "type")]),
    (_with(situation=None), [("/situation", "type")]),
    (_with(situation="a\x00bc"), [("/situation", "invalid_text")]),
    (_with(situation="ab\ud800c"), [("/situation", "invalid_text")]),
    (_with(feeling="happy"), [("/feeling", "enum")]),
    (_with(intensity=101), [("/intensity", "maximum")]),
    (_with(intensity=-1), [("/intensity", "minimum")]),
    (_with(intensity=True), [("/intensity", "type")]),
    (_with(intensity=False), [("/intensity", "type")]),
    (_with(intensity=50.0), [("/intensity", "type")]),
    (_with(intensity="50"), [("/intensity", "type")]),
    (_with(count=MAX_SAFE_INTEGER + 1), [("/count", "maximum")]),
    (_with(ratio=1.5), [("/ratio", "maximum")]),
    (_with(ratio=math.nan), [("/ratio", "type")]),
    (_with(ratio=math.inf), [("/ratio", "type")]),
    (_with(ratio=True), [("/ratio", "type")]),
    (_with(done=1), [("/done", "type")]),
    (_with(done="true"), [("/done", "type")]),
    (_with(steps=[{"label": "a", "suds": 1}] * 4), [("/steps", "max_items")]),
    (_with(steps=[]), [("/steps", "min_items")]),
    (_with(steps={"label": "a", "suds": 1}), [("/steps", "type")]),
    (_with(steps=[{"label": "a", "suds": 1}, "x"]), [("/steps/1", "type")]),
    (
        _with(steps=[{"label": "a", "suds": 1}, {"label": "b", "suds": 2}, {"label": "c"}]),
        [("/steps/2/suds", "required")],
    ),
    (
        _with(steps=[{"label": "a", "suds": 1}, {"label": "b", "suds": 101}]),
        [("/steps/1/suds", "maximum")],
    ),
    (
        _with(steps=[{"label": "a", "suds": 1, "note": "n"}]),
        [("/steps/0/note", "additional_property")],
    ),
    (_with(scores=[1, 11, -1]), [("/scores/1", "maximum"), ("/scores/2", "minimum")]),
    (_with(extra=1), [("/extra", "additional_property")]),
    (_with(**{"a/b~c": 1}), [("/a~1b~0c", "additional_property")]),
    ([VALID_ANSWERS], [("", "type")]),
    ("answers", [("", "type")]),
]


@pytest.mark.parametrize(("answers", "expected"), ANSWER_ERRORS)
def test_answer_errors_have_exact_pointers_and_codes(
    answers: object, expected: list[tuple[str, str]]
) -> None:
    assert _codes(validate_answers(SCHEMA, answers)) == expected


def test_every_answer_problem_is_reported_in_schema_order() -> None:
    answers = {"zzz": 1, "intensity": 500, "steps": [{"suds": "high"}], "done": "no"}
    assert _codes(validate_answers(SCHEMA, answers)) == [
        ("/situation", "required"),
        ("/intensity", "maximum"),
        ("/done", "type"),
        ("/steps/0/label", "required"),
        ("/steps/0/suds", "type"),
        ("/zzz", "additional_property"),
    ]


def test_messages_never_contain_the_submitted_values() -> None:
    secret = "ZEBRA-4417"
    number = 987654
    answers = {
        "situation": secret * 20,
        "feeling": secret,
        "intensity": number,
        "ratio": number + 0.5,
        "count": str(number),
        "done": secret,
        "steps": [{"label": secret * 10, "suds": number, secret: secret}],
        "harm": -number,
        "scores": [number],
        "level": secret,
        secret: secret,
    }
    issues = validate_answers(SCHEMA, answers)
    assert len(issues) == 13
    for issue in issues:
        assert secret not in issue.message
        assert str(number) not in issue.message


def test_messages_state_the_rule() -> None:
    issues = validate_answers(SCHEMA, _with(intensity=150, feeling="happy", situation="x" * 101))
    assert [issue.message for issue in issues] == [
        "must be at most 100 characters",
        'must be one of: "sad", "anxious"',
        "must be at most 100",
    ]


def test_the_number_of_answer_issues_is_capped() -> None:
    answers = {f"unknown_{n}": n for n in range(MAX_ANSWER_ISSUES * 3)}
    assert len(validate_answers(SCHEMA, answers)) == MAX_ANSWER_ISSUES


# --- distress_signals --------------------------------------------------------------------------


def test_no_distress_below_thresholds() -> None:
    assert distress_signals(SCHEMA, VALID_ANSWERS) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"intensity": 89}, []),
        ({"intensity": 90}, ["/intensity"]),
        ({"intensity": 100}, ["/intensity"]),
        ({"harm": 0}, []),
        ({"harm": 1}, ["/harm"]),
        ({"harm": 3}, ["/harm"]),
        ({"unsafe": False}, []),
        ({"unsafe": True}, ["/unsafe"]),
        ({"scores": [1, 8, 7, 10]}, ["/scores/1", "/scores/3"]),
        ({"level": 4.4}, []),
        ({"level": 4.5}, ["/level"]),
        ({"intensity": 95, "harm": 2}, ["/intensity", "/harm"]),
    ],
)
def test_distress_signals_for_thresholds_and_items(
    changes: dict[str, Any], expected: list[str]
) -> None:
    assert distress_signals(SCHEMA, _with(**changes)) == expected


def test_distress_ignores_values_of_the_wrong_type() -> None:
    assert distress_signals(SCHEMA, _with(intensity="95", harm=True, unsafe=1)) == []
    assert distress_signals(SCHEMA, "not an object") == []


def test_distress_inside_arrays_of_objects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "days": {
                "type": "array",
                "maxItems": 7,
                "items": {
                    "type": "object",
                    "properties": {"urge": {"type": "integer", "x-distress-threshold": 7}},
                },
            }
        },
    }
    assert check_schema(schema) == []
    answers = {"days": [{"urge": 2}, {"urge": 7}, {}]}
    assert distress_signals(schema, answers) == ["/days/1/urge"]
