"""A FHIR R4 `Questionnaire` as a custom template: the inverse of app.fhir.questionnaires, for
the part of FHIR that our response schemas can say.

What cannot be said is refused, never dropped: each refusal names the item by its `linkId` and
points at it (`/item/2/item/0/enableWhen`). Unknown ordinary extensions are ignored, as FHIR
lets a reader do; a `modifierExtension` changes the meaning, so it is refused. Item codes are
not kept (a custom template has none), nor are `prefix` and `definition`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from fhir.resources.R4B.questionnaire import Questionnaire
from pydantic import ValidationError

from app.core.errors import FieldError, ValidationFailed, field_error
from app.fhir import canonical as fhir
from app.fhir.questionnaires import STRING_MAX
from app.schemas.templates import TemplateCreate
from app.services.response_schema import (
    DISTRESS_ITEM,
    DISTRESS_THRESHOLD,
    MAX_ARRAY_ITEMS,
    MAX_STRING_LENGTH,
    check_schema,
)

DEFAULT_MINUTES: Final = 5
_LINK_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_TYPES: Final = {"group", "string", "text", "integer", "decimal", "boolean", "choice"}
_REFUSED_ELEMENTS: Final = {
    "enableWhen": "conditional items (enableWhen) are not supported",
    "enableBehavior": "conditional items (enableBehavior) are not supported",
    "answerValueSet": "answer value sets are not supported: list the answers as answerOption",
    "initial": "initial answers are not supported",
    "modifierExtension": "modifier extensions are not supported",
}
Path = tuple[str | int, ...]


class _Refusals:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, path: Path, message: str, code: str = "unsupported") -> None:
        self.errors.append(field_error("body", list(path), message, code))


def template_from_questionnaire(body: Mapping[str, Any]) -> TemplateCreate:
    """The template a Questionnaire describes; raises a 422 naming every refused part."""
    _parse(body)
    refusals = _Refusals()
    if body.get("modifierExtension"):
        refusals.add(("modifierExtension",), _REFUSED_ELEMENTS["modifierExtension"])
    items = body.get("item") or []
    if not items:
        refusals.add(("item",), "a questionnaire needs at least one item", "missing")
    schema = _object(items, ("item",), refusals)
    extensions = _extensions(body)
    if fhir.DESCRIPTION in extensions:
        schema["description"] = extensions[fhir.DESCRIPTION][0]["valueString"]
    if refusals.errors:
        raise ValidationFailed(
            "The questionnaire uses what a template cannot say.", errors=refusals.errors
        )
    _check(schema, items)
    name = body.get("title") or body.get("name")
    instructions = body.get("description") or name
    minutes = extensions.get(fhir.ESTIMATED_MINUTES, [{}])[0].get("valueInteger")
    fields = {
        "name": name,
        "instructions": instructions,
        "purpose": body.get("purpose") or instructions,
        "estimated_minutes": minutes or DEFAULT_MINUTES,
        "response_schema": schema,
        "default_reminder_local_times": [
            e["valueTime"][:5] for e in extensions.get(fhir.REMINDER_TIMES, ()) if "valueTime" in e
        ],
    }
    try:
        return TemplateCreate.model_validate(fields)
    except ValidationError as exc:
        raise ValidationFailed(
            "The questionnaire's title, description or purpose cannot make a template.",
            errors=[
                field_error(
                    "body", [_SOURCE.get(str(e["loc"][0]), str(e["loc"][0]))], e["msg"], e["type"]
                )
                for e in exc.errors()
            ],
        ) from None


# Where each template field comes from in the Questionnaire.
_SOURCE: Final = {
    "name": "title",
    "instructions": "description",
    "purpose": "purpose",
    "estimated_minutes": "extension",
    "default_reminder_local_times": "extension",
}


def _parse(body: Mapping[str, Any]) -> None:
    """The body must be a valid R4 Questionnaire before we read it as one (fhir.resources)."""
    if body.get("resourceType") != "Questionnaire":
        raise ValidationFailed.for_field(
            "body", ["resourceType"], "The body must be a FHIR Questionnaire.", "invalid"
        )
    try:
        Questionnaire.model_validate(body)
    except ValidationError as exc:
        raise ValidationFailed(
            "The body is not a valid FHIR Questionnaire.",
            errors=[
                field_error("body", [str(p) for p in e["loc"]], e["msg"], e["type"])
                for e in exc.errors()[:100]
            ],
        ) from None


def _object(items: Sequence[Mapping[str, Any]], path: Path, refusals: _Refusals) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for index, item in enumerate(items):
        link_id = str(item.get("linkId", ""))
        where = (*path, index)
        if not _LINK_ID.fullmatch(link_id):
            refusals.add(
                (*where, "linkId"),
                f"item {_quoted(link_id)}: a linkId must start with a letter and hold only "
                "letters, digits and _ (at most 64)",
                "invalid",
            )
            continue
        if link_id in properties:
            refusals.add((*where, "linkId"), f"item {link_id!r}: linkIds must be unique", "invalid")
            continue
        prop = _property(link_id, item, where, refusals)
        if prop is not None:
            properties[link_id] = prop
            if item.get("required"):
                required.append(link_id)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def _property(
    link_id: str, item: Mapping[str, Any], where: Path, refusals: _Refusals
) -> dict[str, Any] | None:
    refused = False
    for name, why in _REFUSED_ELEMENTS.items():
        if item.get(name):
            refusals.add((*where, name), f"item {link_id!r}: {why}")
            refused = True
    if item.get("readOnly"):
        refusals.add((*where, "readOnly"), f"item {link_id!r}: read-only items are not supported")
        refused = True
    kind = item.get("type")
    if kind not in _TYPES:
        refusals.add(
            (*where, "type"),
            f"item {link_id!r}: type {_quoted(kind)} is not supported (only "
            f"{', '.join(sorted(_TYPES))})",
        )
        return None
    extensions = _extensions(item)
    element = _element(link_id, kind, item, extensions, where, refusals)
    if element is None or refused:
        return None
    for url, keyword, value_key in (
        (fhir.DISTRESS_THRESHOLD, DISTRESS_THRESHOLD, "valueDecimal"),
        (fhir.DISTRESS_ITEM, DISTRESS_ITEM, "valueBoolean"),
    ):
        if url in extensions:
            element[keyword] = extensions[url][0].get(value_key)
    prop = element
    if item.get("repeats"):
        prop = {"type": "array", "items": element}
        maximum = _ext_value(extensions, fhir.MAX_OCCURS, "valueInteger")
        prop["maxItems"] = maximum if maximum is not None else MAX_ARRAY_ITEMS
        minimum = _ext_value(extensions, fhir.MIN_OCCURS, "valueInteger")
        if minimum is not None:
            prop["minItems"] = minimum
    if "text" in item:
        prop["title"] = item["text"]
    if fhir.DESCRIPTION in extensions:
        prop["description"] = extensions[fhir.DESCRIPTION][0].get("valueString")
    # The keywords first, as our own schemas write them.
    return {"type": prop.pop("type"), **prop}


def _element(
    link_id: str,
    kind: str,
    item: Mapping[str, Any],
    extensions: Mapping[str, list[dict[str, Any]]],
    where: Path,
    refusals: _Refusals,
) -> dict[str, Any] | None:
    """The schema of one answer to the item."""
    if kind == "group":
        children = item.get("item") or []
        if not children:
            refusals.add((*where, "item"), f"group {link_id!r} has no items", "missing")
        return _object(children, (*where, "item"), refusals)
    if item.get("item"):
        refusals.add((*where, "item"), f"item {link_id!r}: only a group may hold items")
        return None
    if kind == "choice":
        return _choice(link_id, item.get("answerOption") or [], where, refusals)
    if kind in ("string", "text"):
        element: dict[str, Any] = {
            "type": "string",
            "maxLength": item.get("maxLength")
            or (STRING_MAX if kind == "string" else MAX_STRING_LENGTH),
        }
        minimum = _ext_value(extensions, fhir.MIN_LENGTH, "valueInteger")
        if minimum is not None:
            element["minLength"] = minimum
        return element
    if kind == "boolean":
        return {"type": "boolean"}
    value_key = "valueInteger" if kind == "integer" else "valueDecimal"
    element = {"type": "integer" if kind == "integer" else "number"}
    for keyword, url in (("minimum", fhir.MIN_VALUE), ("maximum", fhir.MAX_VALUE)):
        bound = _ext_value(extensions, url, value_key)
        if bound is not None:
            element[keyword] = bound
    return element


def _choice(
    link_id: str, options: Sequence[Mapping[str, Any]], where: Path, refusals: _Refusals
) -> dict[str, Any] | None:
    values = []
    for index, option in enumerate(options):
        value = [key for key in option if key.startswith("value")]
        if value not in (["valueString"], ["valueInteger"]):
            refusals.add(
                (*where, "answerOption", index),
                f"item {link_id!r}: answer options must be valueString or valueInteger",
            )
            return None
        values.append(option[value[0]])
    if not values:
        refusals.add((*where, "answerOption"), f"choice {link_id!r} has no options", "missing")
        return None
    if all(isinstance(v, str) for v in values):
        return {"type": "string", "maxLength": max(len(v) for v in values), "enum": values}
    if all(isinstance(v, int) for v in values):
        return {"type": "integer", "enum": values}
    refusals.add(
        (*where, "answerOption"),
        f"item {link_id!r}: answer options must all be strings or all integers",
    )
    return None


def _quoted(value: object) -> str:
    """A value of the body named in a message: quoted, and cut short (a refusal is never longer
    than what it refuses)."""
    text = str(value)
    return repr(text if len(text) <= 64 else text[:61] + "...")


def _extensions(element: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for extension in element.get("extension") or ():
        found.setdefault(extension.get("url", ""), []).append(extension)
    return found


def _ext_value(
    extensions: Mapping[str, list[dict[str, Any]]], url: str, value_key: str
) -> Any | None:
    return extensions[url][0].get(value_key) if url in extensions else None


def _check(schema: dict[str, Any], items: Sequence[Mapping[str, Any]]) -> None:
    """The schema made must still be within our subset (sizes, depth, bounds): each problem is
    named by the item it came from."""
    issues = check_schema(schema)
    if not issues:
        return
    errors = []
    for issue in issues:
        segments = issue.pointer.split("/")[1:]
        link_ids = [
            segments[i + 1] for i, segment in enumerate(segments[:-1]) if segment == "properties"
        ]
        named = f"item {'/'.join(link_ids)!r}: " if link_ids else ""
        errors.append(
            field_error("body", _item_path(link_ids, items), named + issue.message, issue.code)
        )
    raise ValidationFailed("The questionnaire is outside what a template can hold.", errors=errors)


def _item_path(link_ids: Sequence[str], items: Sequence[Mapping[str, Any]]) -> list[str | int]:
    """The Questionnaire path (`item/2/item/0`) of the item the linkIds name."""
    path: list[str | int] = []
    level = items
    for link_id in link_ids:
        index = next((i for i, item in enumerate(level) if item.get("linkId") == link_id), None)
        if index is None:
            break
        path += ["item", index]
        level = level[index].get("item") or []
    return path or ["item"]
