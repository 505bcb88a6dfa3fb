"""The built-in templates: valid schemas, realistic answers, and the clinical choices in them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.services.measures import score_for_kind
from app.services.response_schema import check_schema, distress_signals, validate_answers
from app.services.template_catalog import BUILTIN_TEMPLATES, KINDS, BuiltinTemplate

PHQ9_SAMPLE: dict[str, Any] = {
    "item_1": 2,
    "item_2": 2,
    "item_3": 3,
    "item_4": 2,
    "item_5": 1,
    "item_6": 1,
    "item_7": 1,
    "item_8": 0,
    "item_9": 0,
    "difficulty": "somewhat_difficult",
}

# What a client would really submit for each kind.
SAMPLES: dict[str, dict[str, Any]] = {
    "thought_record": {
        "situation": "Friend did not reply to my message all evening",
        "automatic_thought": "She is annoyed with me and doesn't want to be friends any more",
        "emotion": "anxious, sad",
        "emotion_intensity": 80,
        "evidence_for": "She usually replies within an hour",
        "evidence_against": "She told me on Monday that work is busy this week",
        "alternative_thought": "She is probably tired after work; I can ask tomorrow",
        "intensity_after": 40,
    },
    "mood_log": {"mood": 4, "emotions": ["tired", "worried"], "note": "Bad night's sleep"},
    "activity_schedule": {
        "activity": "Walk round the park",
        "planned": True,
        "done": True,
        "mastery": 6,
        "pleasure": 7,
    },
    "exposure": {
        "step": "Take the bus two stops at rush hour",
        "suds_before": 65,
        "suds_peak": 85,
        "suds_after": 30,
        "duration_minutes": 20,
        "safety_behaviours": ["Sat near the door"],
        "learning": "I felt dizzy but did not faint, and the anxiety came down on its own",
    },
    "mindfulness": {
        "practice": "Three-minute breathing space",
        "minutes": 3,
        "attention": 5,
        "note": "Mind kept going to work",
    },
    "journal": {
        "entries": [
            {"good_thing": "Had lunch outside", "why": "I made time for it"},
            {"good_thing": "My sister called"},
        ]
    },
    "skill_practice": {
        "skill": "5-4-3-2-1 grounding",
        "situation": "In the supermarket queue",
        "how_it_went": "Helped me stay put",
        "confidence": 6,
    },
    "reading": {
        "material": "Mind Over Mood, chapter 5",
        "key_takeaway": "A thought is not a fact",
        "questions": ["How do I find evidence against a thought when I am upset?"],
    },
    "phq9": PHQ9_SAMPLE,
    "gad7": {
        "item_1": 2,
        "item_2": 3,
        "item_3": 3,
        "item_4": 1,
        "item_5": 0,
        "item_6": 2,
        "item_7": 1,
    },
}


def test_there_is_one_builtin_per_kind_and_custom_is_not_builtin() -> None:
    assert set(BUILTIN_TEMPLATES) == set(KINDS) - {"custom"}
    assert "custom" in KINDS
    for kind, template in BUILTIN_TEMPLATES.items():
        assert template.kind == kind


@pytest.mark.parametrize("kind", sorted(BUILTIN_TEMPLATES))
def test_every_builtin_schema_is_in_the_supported_subset(kind: str) -> None:
    assert check_schema(BUILTIN_TEMPLATES[kind].response_schema_dict()) == []


def test_there_is_a_sample_for_every_builtin() -> None:
    assert set(SAMPLES) == set(BUILTIN_TEMPLATES)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_a_realistic_answer_validates(kind: str) -> None:
    schema = BUILTIN_TEMPLATES[kind].response_schema
    assert validate_answers(schema, SAMPLES[kind]) == []
    assert distress_signals(schema, SAMPLES[kind]) == []


@pytest.mark.parametrize("kind", sorted(BUILTIN_TEMPLATES))
def test_an_empty_answer_is_rejected(kind: str) -> None:
    issues = validate_answers(BUILTIN_TEMPLATES[kind].response_schema, {})
    assert issues
    assert {issue.code for issue in issues} == {"required"}


@pytest.mark.parametrize("kind", sorted(BUILTIN_TEMPLATES))
def test_template_texts_and_reminder_defaults_are_sensible(kind: str) -> None:
    template = BUILTIN_TEMPLATES[kind]
    assert template.version >= 1
    assert template.name and template.instructions and template.purpose
    assert 1 <= template.estimated_minutes <= 60
    for local_time in template.default_reminder_local_times:
        assert re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", local_time)


def test_daily_logs_have_an_evening_reminder_by_default() -> None:
    assert BUILTIN_TEMPLATES["mood_log"].default_reminder_local_times == ("20:00",)
    assert BUILTIN_TEMPLATES["journal"].default_reminder_local_times


def test_a_required_text_answer_cannot_be_empty() -> None:
    answers = {**SAMPLES["thought_record"], "situation": ""}
    issues = validate_answers(BUILTIN_TEMPLATES["thought_record"].response_schema, answers)
    assert [(issue.pointer, issue.code) for issue in issues] == [("/situation", "min_length")]


def test_journal_takes_at_most_three_entries() -> None:
    entry = {"good_thing": "Slept well"}
    issues = validate_answers(
        BUILTIN_TEMPLATES["journal"].response_schema, {"entries": [entry] * 4}
    )
    assert [(issue.pointer, issue.code) for issue in issues] == [("/entries", "max_items")]


@pytest.mark.parametrize("field", ["suds_before", "suds_peak", "suds_after"])
def test_exposure_suds_is_zero_to_a_hundred_and_never_a_distress_signal(field: str) -> None:
    schema = BUILTIN_TEMPLATES["exposure"].response_schema
    at_most = {**SAMPLES["exposure"], field: 100}
    assert validate_answers(schema, at_most) == []
    assert distress_signals(schema, at_most) == []
    too_high = {**SAMPLES["exposure"], field: 101}
    assert [(i.pointer, i.code) for i in validate_answers(schema, too_high)] == [
        (f"/{field}", "maximum")
    ]


@pytest.mark.parametrize(("item_9", "expected"), [(0, []), (1, ["/item_9"]), (3, ["/item_9"])])
def test_phq9_item_9_is_a_distress_item(item_9: int, expected: list[str]) -> None:
    answers = {**PHQ9_SAMPLE, "item_9": item_9}
    assert distress_signals(BUILTIN_TEMPLATES["phq9"].response_schema, answers) == expected


def test_phq9_uses_the_standard_wording_and_scale() -> None:
    schema = BUILTIN_TEMPLATES["phq9"].response_schema
    properties = schema["properties"]
    assert list(schema["required"]) == [f"item_{n}" for n in range(1, 10)]
    assert properties["item_1"]["title"] == "1. Little interest or pleasure in doing things"
    assert properties["item_9"]["title"] == (
        "9. Thoughts that you would be better off dead or of hurting yourself in some way"
    )
    for n in range(1, 10):
        assert (properties[f"item_{n}"]["minimum"], properties[f"item_{n}"]["maximum"]) == (0, 3)
    assert "difficulty" not in schema["required"]
    answers = {**PHQ9_SAMPLE, "item_3": 4}
    issues = validate_answers(schema, answers)
    assert [(issue.pointer, issue.code) for issue in issues] == [("/item_3", "maximum")]


def test_gad7_has_seven_standard_items() -> None:
    schema = BUILTIN_TEMPLATES["gad7"].response_schema
    assert list(schema["required"]) == [f"item_{n}" for n in range(1, 8)]
    assert schema["properties"]["item_1"]["title"] == "1. Feeling nervous, anxious, or on edge"
    assert schema["properties"]["item_7"]["title"] == (
        "7. Feeling afraid, as if something awful might happen"
    )


def test_measure_samples_score_with_the_catalog_item_names() -> None:
    phq9 = score_for_kind("phq9", SAMPLES["phq9"])
    gad7 = score_for_kind("gad7", SAMPLES["gad7"])
    assert phq9 is not None and (phq9.total, phq9.band) == (12, "moderate")
    assert gad7 is not None and (gad7.total, gad7.band) == (12, "moderate")


def test_builtin_schemas_cannot_be_changed_by_accident() -> None:
    template = BUILTIN_TEMPLATES["mood_log"]
    with pytest.raises(TypeError):
        template.response_schema["properties"]["mood"]["maximum"] = 100
    with pytest.raises(TypeError):
        BUILTIN_TEMPLATES["custom"] = template  # type: ignore[index]


def test_the_schema_copy_is_plain_json_and_independent() -> None:
    template = BUILTIN_TEMPLATES["mood_log"]
    copy = template.response_schema_dict()
    assert isinstance(copy["properties"]["emotions"]["items"]["enum"], list)
    copy["properties"]["mood"]["maximum"] = 100
    assert template.response_schema["properties"]["mood"]["maximum"] == 10


def test_a_template_freezes_the_schema_it_is_given() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    template = BuiltinTemplate("custom", 1, "n", "i", "p", 5, schema)
    schema["properties"]["added"] = {"type": "boolean"}
    assert dict(template.response_schema["properties"]) == {}
