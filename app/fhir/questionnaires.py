"""A template version as a FHIR `Questionnaire`: one item per property of its response schema.

Property name -> `linkId`; `title` -> `text`; `description` -> our `item-description`
extension; `required` -> `required`; an array -> `repeats` (its `minItems`/`maxItems` as the
standard minOccurs/maxOccurs extensions) of its items; an object -> a `group`. Types: `string`
-> `string` (or `text` when it may be longer than 255 characters) with `maxLength` and the
minLength extension, `integer` -> `integer`, `number` -> `decimal` (both with the minValue and
maxValue extensions), `boolean` -> `boolean`, and an `enum` -> `choice` with an `answerOption`
per value. The measures' scored items are `choice`s of LOINC's answers (LL358-3), each with its
0-3 as the standard ordinalValue extension, and carry their LOINC codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from app.fhir import canonical as fhir
from app.fhir.loinc import FREQUENCY, MEASURES, MeasureCodes
from app.models import Template, TemplateVersion
from app.services.response_schema import DISTRESS_ITEM, DISTRESS_THRESHOLD

# The longest answer FHIR's `string` type is meant for; longer free text is `text`.
STRING_MAX: Final = 255


def questionnaire(template: Template, version: TemplateVersion) -> dict[str, Any]:
    measure = MEASURES.get(template.kind)
    schema = version.response_schema
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": fhir.fhir_id(template.id),
        # The template's own time, which `_lastUpdated` searches (a new version updates it).
        "meta": fhir.meta(template.updated_at),
        "extension": _template_extensions(version),
        "url": fhir.questionnaire_url(template.id),
        "identifier": [{"system": fhir.ID_SYSTEM, "value": template.id}],
        "version": str(version.number),
        "title": version.name,
        "status": "retired" if template.retired_at is not None else "active",
        "subjectType": ["Patient"],
        "date": fhir.instant(version.created_at),
        "description": version.instructions,
        "purpose": version.purpose,
        "item": items(schema, measure),
    }
    if measure is not None:
        resource["code"] = [_loinc(measure.panel.code, measure.panel.display)]
    return resource


def items(schema: Mapping[str, Any], measure: MeasureCodes | None = None) -> list[dict[str, Any]]:
    """The items of an object schema (the root, or a group), in the schema's order."""
    required = set(schema.get("required", ()))
    return [
        _item(name, prop, name in required, measure)
        for name, prop in schema.get("properties", {}).items()
    ]


def _item(
    name: str, prop: Mapping[str, Any], required: bool, measure: MeasureCodes | None
) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": name}
    extensions: list[dict[str, Any]] = []
    if measure is not None and name in measure.items:
        item["code"] = [_loinc(measure.items[name])]
    if "title" in prop:
        item["text"] = prop["title"]
    if "description" in prop:
        extensions.append({"url": fhir.DESCRIPTION, "valueString": prop["description"]})
    if required:
        item["required"] = True
    element = prop
    if prop["type"] == "array":
        item["repeats"] = True
        if prop.get("minItems"):
            extensions.append({"url": fhir.MIN_OCCURS, "valueInteger": prop["minItems"]})
        extensions.append({"url": fhir.MAX_OCCURS, "valueInteger": prop["maxItems"]})
        element = prop["items"]
    scored = measure is not None and name in measure.items and element["type"] == "integer"
    extensions += _element(item, element, scored, measure)
    if extensions:
        item["extension"] = extensions
    return item


def _element(
    item: dict[str, Any], element: Mapping[str, Any], scored: bool, measure: MeasureCodes | None
) -> list[dict[str, Any]]:
    """Sets the item's type and options from what one answer is; returns its extensions."""
    kind = element["type"]
    extensions: list[dict[str, Any]] = []
    if scored:
        item["type"] = "choice"
        item["answerOption"] = [_frequency_option(value) for value in range(len(FREQUENCY))]
    elif kind == "object":
        item["type"] = "group"
        item["item"] = items(element, measure)
    elif "enum" in element:
        item["type"] = "choice"
        value_key = "valueString" if kind == "string" else "valueInteger"
        item["answerOption"] = [{value_key: value} for value in element["enum"]]
    elif kind == "string":
        item["type"] = "text" if element["maxLength"] > STRING_MAX else "string"
        item["maxLength"] = element["maxLength"]
        if element.get("minLength"):
            extensions.append({"url": fhir.MIN_LENGTH, "valueInteger": element["minLength"]})
    elif kind in ("integer", "number"):
        item["type"] = "integer" if kind == "integer" else "decimal"
        value_key = "valueInteger" if kind == "integer" else "valueDecimal"
        for keyword, url in (("minimum", fhir.MIN_VALUE), ("maximum", fhir.MAX_VALUE)):
            if keyword in element:
                extensions.append({"url": url, value_key: element[keyword]})
    else:
        item["type"] = "boolean"
    if DISTRESS_THRESHOLD in element:
        extensions.append(
            {"url": fhir.DISTRESS_THRESHOLD, "valueDecimal": element[DISTRESS_THRESHOLD]}
        )
    if DISTRESS_ITEM in element:
        extensions.append({"url": fhir.DISTRESS_ITEM, "valueBoolean": element[DISTRESS_ITEM]})
    return extensions


def _frequency_option(value: int) -> dict[str, Any]:
    answer = FREQUENCY[value]
    return {
        "extension": [{"url": fhir.ORDINAL_VALUE, "valueDecimal": value}],
        "valueCoding": {"system": fhir.LOINC, "code": answer.code, "display": answer.display},
    }


def _loinc(code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": fhir.LOINC, "code": code}
    return coding if display is None else {**coding, "display": display}


def _template_extensions(version: TemplateVersion) -> list[dict[str, Any]]:
    extensions: list[dict[str, Any]] = [
        {"url": fhir.ESTIMATED_MINUTES, "valueInteger": version.estimated_minutes}
    ]
    if "description" in version.response_schema:
        extensions.append(
            {"url": fhir.DESCRIPTION, "valueString": version.response_schema["description"]}
        )
    extensions += [
        {"url": fhir.REMINDER_TIMES, "valueTime": f"{local}:00"}
        for local in version.default_reminder_local_times
    ]
    return extensions
