"""The FHIR mappings without a database: LOINC codes, every built-in template as a valid
Questionnaire, the round trip Questionnaire -> template -> Questionnaire, what the import
refuses (named by linkId), and `_lastUpdated`'s ranges."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.core.errors import ValidationFailed
from app.fhir import loinc
from app.fhir.examples import IMPORTABLE_QUESTIONNAIRE
from app.fhir.questionnaire_import import template_from_questionnaire
from app.fhir.questionnaires import questionnaire
from app.fhir.search import last_updated
from app.models import Template
from app.services.builtin_templates import builtin_template_id, version_row
from app.services.template_catalog import BUILTIN_TEMPLATES
from tests.fhir_validation import validate

_AT = datetime(2026, 11, 20, tzinfo=UTC)


def _loinc_check_digit(number: str) -> int:
    """LOINC's mod 10: odd positions from the right doubled, then all digits summed."""
    digits = number[::-1]
    doubled = str(int(digits[0::2][::-1]) * 2)
    total = sum(int(d) for d in digits[1::2][::-1] + doubled)
    return (10 - total % 10) % 10


def test_every_loinc_code_carries_its_check_digit() -> None:
    codes = set()
    for measure in loinc.MEASURES.values():
        codes |= {measure.panel.code, measure.total.code, *measure.items.values()}
    assert len(codes) == 2 + 2 + 9 + 7 + 1  # panels, totals, items, and "how difficult"
    for code in codes:
        number, check = code.split("-")
        assert _loinc_check_digit(number) == int(check), code
    assert (loinc.PHQ9.panel.code, loinc.GAD7.panel.code) == ("44249-1", "69737-5")
    assert loinc.GAD7.items["item_1"] == "69725-0"


def _export(kind: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    template = Template(id=builtin_template_id(kind), kind=kind, latest_version=1, updated_at=_AT)
    version = version_row(template.id, BUILTIN_TEMPLATES[kind])
    version.created_at = _AT
    if schema is not None:
        version.response_schema = schema
    return questionnaire(template, version)


@pytest.mark.parametrize("kind", sorted(BUILTIN_TEMPLATES))
def test_every_builtin_template_is_a_valid_questionnaire_that_round_trips(kind: str) -> None:
    exported = _export(kind)
    validate(exported)
    if kind in loinc.MEASURES:
        codes = loinc.MEASURES[kind]
        assert exported["code"][0]["code"] == codes.panel.code
        assert {i["linkId"]: i["code"][0]["code"] for i in exported["item"]} == codes.items
        # The scored items are LOINC codings, which a custom template cannot hold: a measure is
        # assigned from its built-in template, never imported.
        with pytest.raises(ValidationFailed):
            template_from_questionnaire(exported)
        return
    imported = template_from_questionnaire(exported)
    assert imported.name == BUILTIN_TEMPLATES[kind].name
    again = _export(kind, imported.response_schema)
    assert again["item"] == exported["item"]
    assert again["extension"] == exported["extension"]


def _refusals(*items: dict[str, Any], **top: Any) -> list[tuple[str, str]]:
    body = {"resourceType": "Questionnaire", "status": "active", "title": "T", **top}
    body["item"] = list(items)
    with pytest.raises(ValidationFailed) as refused:
        template_from_questionnaire(body)
    return [(e.pointer, e.message) for e in refused.value.errors or ()]


def test_the_import_refuses_what_a_template_cannot_say_naming_the_item() -> None:
    coded = {
        "linkId": "mood",
        "type": "choice",
        "answerOption": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5"}}],
    }
    assert _refusals(coded) == [
        (
            "/item/0/answerOption/0",
            "item 'mood': answer options must be valueString or valueInteger",
        )
    ]
    [(pointer, message)] = _refusals({"linkId": "when", "type": "dateTime"})
    assert pointer == "/item/0/type" and "'when'" in message
    [(pointer, message)] = _refusals({"linkId": "1.1", "type": "string"})
    assert pointer == "/item/0/linkId" and "'1.1'" in message
    [(_, message)] = _refusals({"linkId": "9" * 5000, "type": "string"})
    assert len(message) < 200  # the refusal names the item, cut short
    [(pointer, _)] = _refusals({"linkId": "a", "type": "string"}, {"linkId": "a", "type": "string"})
    assert pointer == "/item/1/linkId"
    [(pointer, message)] = _refusals(
        {
            "linkId": "g",
            "type": "group",
            "item": [{"linkId": "note", "type": "display", "text": "Hi"}],
        }
    )
    assert pointer == "/item/0/item/0/type" and "'note'" in message
    [(pointer, _)] = _refusals(
        {
            "linkId": "x",
            "type": "string",
            "modifierExtension": [{"url": "urn:x", "valueBoolean": True}],
        }
    )
    assert pointer == "/item/0/modifierExtension"
    # Within FHIR, outside our subset: a title over 300 characters, named by its item.
    [(pointer, message)] = _refusals({"linkId": "long", "type": "string", "text": "x" * 301})
    assert pointer == "/item/0" and message.startswith("item 'long': ")
    # Not FHIR at all: the R4 models' own error, by path.
    [(pointer, _)] = _refusals({"linkId": "x", "type": "string", "maxLength": "ten"})
    assert pointer == "/item/0/maxLength"
    assert _refusals() == [("/item", "a questionnaire needs at least one item")]


def test_the_import_keeps_what_the_example_says() -> None:
    imported = template_from_questionnaire(IMPORTABLE_QUESTIONNAIRE)
    assert imported.default_reminder_local_times == ["18:00"]
    assert imported.response_schema["required"] == ["worry"]
    assert imported.response_schema["properties"]["minutes"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 60,
        "title": "Minutes",
    }


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        ("2026", "2026-01-01T00:00:00", "2027-01-01T00:00:00"),
        ("ge2026-12", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        ("lt2026-11-22", "2026-11-22T00:00:00", "2026-11-23T00:00:00"),
        ("gt2026-11-22T20:00:00+01:00", "2026-11-22T19:00:00", "2026-11-22T19:00:01"),
        ("le2026-11-22T20:00:00.5Z", "2026-11-22T20:00:00.500000", "2026-11-22T20:00:00.600000"),
    ],
)
def test_last_updated_names_the_range_its_precision_says(value: str, start: str, end: str) -> None:
    [bounds] = last_updated([value])
    assert bounds.prefix == (value[:2] if value[0].isalpha() else "eq")
    assert (bounds.start, bounds.end) == (
        datetime.fromisoformat(start).replace(tzinfo=UTC),
        datetime.fromisoformat(end).replace(tzinfo=UTC),
    )


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "sa2026", "2026-11-22T20:00", "9999"])
def test_last_updated_refuses_what_it_cannot_read(value: str) -> None:
    with pytest.raises(ValidationFailed):
        last_updated([value])
