"""The built-in homework templates: one versioned template per kind, shared by every tenant.

A template's wording is what a CBT clinician would hand a client; an assignment copies it and
may personalise it. Changing a schema in a way that old answers would fail means a new
`version`: assignments keep the version they were made from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from app.services.measures import GAD7_ITEMS, ITEM_MAX, ITEM_MIN, PHQ9_ITEMS
from app.services.response_schema import DISTRESS_ITEM

KINDS: Final = (
    "thought_record",
    "mood_log",
    "activity_schedule",
    "exposure",
    "mindfulness",
    "journal",
    "skill_practice",
    "reading",
    "phq9",
    "gad7",
    "custom",
)


@dataclass(frozen=True, slots=True)
class BuiltinTemplate:
    kind: str
    version: int
    name: str
    instructions: str
    purpose: str
    estimated_minutes: int
    # Deep-frozen in __post_init__: the catalog is shared by every tenant and request, so an
    # accidental edit must fail loudly instead of changing everyone's template.
    response_schema: Mapping[str, Any] = field(hash=False)
    # Local times of day ("HH:MM") for the reminder policy an assignment starts from.
    default_reminder_local_times: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "response_schema", _freeze(self.response_schema))

    def response_schema_dict(self) -> dict[str, Any]:
        """A plain, mutable copy of the schema, ready to serialise or store."""
        thawed: dict[str, Any] = _thaw(self.response_schema)
        return thawed


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


def _form(
    properties: dict[str, Any], required: list[str], description: str | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _text(title: str, max_length: int, description: str | None = None) -> dict[str, Any]:
    # minLength 1: an empty string is not an answer, so a required field cannot be skipped
    # with "" and an optional one is simply left out.
    schema: dict[str, Any] = {
        "type": "string",
        "title": title,
        "minLength": 1,
        "maxLength": max_length,
    }
    if description:
        schema["description"] = description
    return schema


def _scale(title: str, low: int, high: int, description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "title": title, "minimum": low, "maximum": high}
    if description:
        schema["description"] = description
    return schema


def _yes_no(title: str) -> dict[str, Any]:
    return {"type": "boolean", "title": title}


def _list(title: str, items: dict[str, Any], max_items: int, **extra: Any) -> dict[str, Any]:
    return {"type": "array", "title": title, "items": items, "maxItems": max_items, **extra}


_THOUGHT_RECORD = BuiltinTemplate(
    kind="thought_record",
    version=1,
    name="Thought record",
    instructions=(
        "When you notice your mood shift, pause and write down what was happening and what "
        "went through your mind, then rate how strong the feeling was. If you can, weigh the "
        "evidence for and against the thought and write a more balanced one. The first few "
        "boxes on their own are already worth doing."
    ),
    purpose=(
        "Putting automatic thoughts on paper helps you step back from them, and shows us the "
        "patterns we can work on together."
    ),
    estimated_minutes=15,
    # Evidence and the balanced thought are optional: early in therapy, catching the thought
    # is the skill being learnt, and a half-filled record is still worth discussing.
    response_schema=_form(
        {
            "situation": _text("Situation", 2000, "Where were you, who with, what was happening?"),
            "automatic_thought": _text(
                "Automatic thought", 2000, "What went through your mind in that moment?"
            ),
            "emotion": _text("Emotion", 200, "For example anxious, sad, angry or ashamed."),
            "emotion_intensity": _scale(
                "How strong was the emotion?", 0, 100, "0 = not at all, 100 = the strongest ever"
            ),
            "evidence_for": _text("Evidence that supports the thought", 2000),
            "evidence_against": _text("Evidence that does not support the thought", 2000),
            "alternative_thought": _text(
                "A more balanced thought", 2000, "What would you say to a friend in your place?"
            ),
            "intensity_after": _scale(
                "How strong is the emotion now?", 0, 100, "0 = not at all, 100 = the strongest"
            ),
        },
        ["situation", "automatic_thought", "emotion", "emotion_intensity"],
    ),
)

_EMOTIONS = [
    "happy",
    "calm",
    "content",
    "hopeful",
    "proud",
    "grateful",
    "sad",
    "anxious",
    "worried",
    "angry",
    "irritable",
    "ashamed",
    "guilty",
    "lonely",
    "tired",
    "numb",
]

_MOOD_LOG = BuiltinTemplate(
    kind="mood_log",
    version=1,
    name="Mood log",
    instructions=(
        "Once a day, rate your mood from 0 to 10, choose any emotions that fit, and add a note "
        "if something stood out. It takes a minute; there are no wrong answers."
    ),
    purpose=(
        "A daily record shows how your mood moves with your days, which is easier to see on a "
        "chart than to remember in session."
    ),
    estimated_minutes=2,
    response_schema=_form(
        {
            "mood": _scale("Mood today", 0, 10, "0 = the lowest you have felt, 10 = the best"),
            "emotions": _list(
                "Emotions", {"type": "string", "maxLength": 20, "enum": _EMOTIONS}, len(_EMOTIONS)
            ),
            "note": _text("Note", 2000, "Anything that affected your mood today."),
        },
        ["mood"],
    ),
    default_reminder_local_times=("20:00",),
)

_ACTIVITY_SCHEDULE = BuiltinTemplate(
    kind="activity_schedule",
    version=1,
    name="Activity schedule",
    instructions=(
        "Record an activity you planned or did today and whether you did it. If you did, rate "
        "mastery (a sense of achievement) and pleasure (enjoyment) from 0 to 10. Small "
        "activities count: a shower or a short walk is an activity."
    ),
    purpose=(
        "Low mood makes us do less, and doing less lowers mood further. Seeing which activities "
        "bring achievement or enjoyment helps you choose more of them."
    ),
    estimated_minutes=5,
    response_schema=_form(
        {
            "activity": _text("Activity", 500),
            "planned": _yes_no("Was it planned in advance?"),
            "done": _yes_no("Did you do it?"),
            "mastery": _scale("Mastery", 0, 10, "How much of a sense of achievement? (0-10)"),
            "pleasure": _scale("Pleasure", 0, 10, "How much did you enjoy it? (0-10)"),
        },
        ["activity", "done"],
    ),
    default_reminder_local_times=("19:00",),
)

_SUDS = "Subjective units of distress: 0 = completely calm, 100 = the most distress imaginable"

_EXPOSURE = BuiltinTemplate(
    kind="exposure",
    version=1,
    name="Exposure practice",
    instructions=(
        "Practise the step of your fear hierarchy we agreed on. Rate your distress (SUDS, "
        "0-100) just before, at its highest and at the end. Stay with the feeling rather than "
        "escaping it if you can, and note honestly any safety behaviours you used: it helps us "
        "plan the next step."
    ),
    purpose=(
        "Facing feared situations step by step, without escape or safety behaviours, teaches "
        "you that you can cope and that what you fear is less likely than it feels. Feeling "
        "anxious during practice is expected: it is part of how the exercise works."
    ),
    estimated_minutes=30,
    # No distress annotation on SUDS: high distress is the point of an exposure, and flagging
    # it would page clinicians for practice going as planned. A client who is overwhelmed says
    # so with the `felt_overwhelmed` barrier, which does raise a distress flag.
    response_schema=_form(
        {
            "step": _text("Exposure step", 1000, "The step of your fear hierarchy you practised."),
            "suds_before": _scale("Distress before (SUDS)", 0, 100, _SUDS),
            "suds_peak": _scale("Highest distress during (SUDS)", 0, 100, _SUDS),
            "suds_after": _scale("Distress at the end (SUDS)", 0, 100, _SUDS),
            "duration_minutes": _scale("How long did you stay with it? (minutes)", 1, 600),
            "safety_behaviours": _list(
                "Safety behaviours used",
                _text("Safety behaviour", 200),
                10,
                description="For example checking your phone, holding on to something, "
                "leaving early.",
            ),
            # What was learnt against what was feared is what carries exposure forward.
            "learning": _text(
                "What did you learn?", 2000, "Did what you feared happen? How did you cope?"
            ),
        },
        ["step", "suds_before", "suds_peak", "suds_after", "duration_minutes"],
    ),
)

_MINDFULNESS = BuiltinTemplate(
    kind="mindfulness",
    version=1,
    name="Mindfulness practice",
    instructions=(
        "Set aside a few minutes for the practice we discussed, such as a breathing space or a "
        "body scan. When your mind wanders, notice where it went and gently bring it back. "
        "Afterwards, note how long you practised and anything you noticed."
    ),
    purpose=(
        "Regular practice builds the ability to notice thoughts and feelings without getting "
        "caught up in them."
    ),
    estimated_minutes=10,
    response_schema=_form(
        {
            "practice": _text("Practice", 200, "For example breathing space, body scan, walking."),
            "minutes": _scale("Minutes practised", 1, 240),
            "attention": _scale(
                "How settled was your attention?",
                0,
                10,
                "0 = very scattered, 10 = very settled. A wandering mind is part of the "
                "practice, not a failure.",
            ),
            "note": _text("What did you notice?", 2000),
        },
        ["practice", "minutes"],
    ),
    default_reminder_local_times=("08:00",),
)

_JOURNAL = BuiltinTemplate(
    kind="journal",
    version=1,
    name="Three good things",
    instructions=(
        "Before bed, write down up to three things that went well today, big or small, and "
        "why you think each one happened."
    ),
    purpose=(
        "Deliberately noticing what went well balances the mind's habit of dwelling on what "
        "went wrong, and tends to lift mood over a few weeks."
    ),
    estimated_minutes=5,
    response_schema=_form(
        {
            "entries": _list(
                "Good things",
                _form(
                    {
                        "good_thing": _text("What went well?", 1000),
                        "why": _text("Why do you think it happened?", 1000),
                    },
                    ["good_thing"],
                ),
                3,
                minItems=1,
            ),
        },
        ["entries"],
    ),
    default_reminder_local_times=("21:00",),
)

_SKILL_PRACTICE = BuiltinTemplate(
    kind="skill_practice",
    version=1,
    name="Skill practice",
    instructions=(
        'Practise the skill we worked on in session, such as a grounding exercise or an "I" '
        "statement. Note when you used it, how it went, and how confident you now feel using it."
    ),
    purpose=(
        "Skills become yours by practising them outside the therapy room, ideally before the "
        "moments you need them most."
    ),
    estimated_minutes=10,
    response_schema=_form(
        {
            "skill": _text("Skill", 200, 'For example 5-4-3-2-1 grounding or an "I" statement.'),
            "situation": _text("When and where did you use it?", 2000),
            "how_it_went": _text("How did it go?", 2000),
            "confidence": _scale("How confident do you feel using it now?", 0, 10),
        },
        ["skill"],
    ),
)

_READING = BuiltinTemplate(
    kind="reading",
    version=1,
    name="Reading",
    instructions=(
        "Read the material we agreed on. Write down one idea you want to remember and any "
        "questions you would like to talk about next session."
    ),
    purpose=(
        "Understanding how your difficulties work makes the strategies we use make sense, and "
        "your questions help us focus the next session."
    ),
    estimated_minutes=20,
    response_schema=_form(
        {
            "material": _text("What did you read?", 300),
            "key_takeaway": _text("One idea you want to remember", 2000),
            "questions": _list("Questions for next session", _text("Question", 500), 5),
        },
        ["material"],
    ),
)

_FREQUENCY = "0 = not at all, 1 = several days, 2 = more than half the days, 3 = nearly every day"
_PHQ9_STEM = (
    "Over the last 2 weeks, how often have you been bothered by any of the following problems?"
)
_ANSWER_WITH = (
    "Answer each question with 0 (not at all), 1 (several days), 2 (more than half the days) "
    "or 3 (nearly every day)."
)
_GAD7_STEM = "Over the last 2 weeks, how often have you been bothered by the following problems?"
_DIFFICULTY = {
    "type": "string",
    "title": (
        "If you checked off any problems, how difficult have these problems made it for you to "
        "do your work, take care of things at home, or get along with other people?"
    ),
    "maxLength": 30,
    # Words, not 0-3: this question is not part of the score and must not look summable.
    "enum": ["not_difficult_at_all", "somewhat_difficult", "very_difficult", "extremely_difficult"],
}

# Kroenke, Spitzer & Williams (2001); free to reproduce, no permission required.
_PHQ9_WORDING = (
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself — or that you are a failure or have let yourself or your "
    "family down",
    "Trouble concentrating on things, such as reading the newspaper or watching television",
    "Moving or speaking so slowly that other people could have noticed? Or the opposite — "
    "being so fidgety or restless that you have been moving around a lot more than usual",
    "Thoughts that you would be better off dead or of hurting yourself in some way",
)

# Spitzer, Kroenke, Williams & Löwe (2006); free to reproduce, no permission required.
_GAD7_WORDING = (
    "Feeling nervous, anxious, or on edge",
    "Not being able to stop or control worrying",
    "Worrying too much about different things",
    "Trouble relaxing",
    "Being so restless that it is hard to sit still",
    "Becoming easily annoyed or irritable",
    "Feeling afraid, as if something awful might happen",
)


def _measure_items(keys: tuple[str, ...], wording: tuple[str, ...]) -> dict[str, Any]:
    return {
        key: _scale(f"{number}. {text}", ITEM_MIN, ITEM_MAX, _FREQUENCY)
        for number, (key, text) in enumerate(zip(keys, wording, strict=True), start=1)
    }


_phq9_items = _measure_items(PHQ9_ITEMS, _PHQ9_WORDING)
# Item 9 asks about thoughts of death or self-harm: any answer above "not at all" must reach
# the clinician now, whatever the total score.
_phq9_items["item_9"][DISTRESS_ITEM] = True

_PHQ9 = BuiltinTemplate(
    kind="phq9",
    version=1,
    name="PHQ-9 depression questionnaire",
    instructions=(
        f"{_PHQ9_STEM} {_ANSWER_WITH} This questionnaire is not watched around the clock: "
        "if you are thinking about harming yourself, call your local emergency number or a "
        "crisis line now."
    ),
    purpose=(
        "A short, standard questionnaire that helps us follow how your mood changes over time "
        "and whether treatment is helping."
    ),
    estimated_minutes=3,
    response_schema=_form(
        {**_phq9_items, "difficulty": _DIFFICULTY}, list(PHQ9_ITEMS), description=_PHQ9_STEM
    ),
)

_GAD7 = BuiltinTemplate(
    kind="gad7",
    version=1,
    name="GAD-7 anxiety questionnaire",
    instructions=f"{_GAD7_STEM} {_ANSWER_WITH}",
    purpose=(
        "A short, standard questionnaire that helps us follow how your anxiety changes over "
        "time and whether treatment is helping."
    ),
    estimated_minutes=2,
    response_schema=_form(
        {**_measure_items(GAD7_ITEMS, _GAD7_WORDING), "difficulty": _DIFFICULTY},
        list(GAD7_ITEMS),
        description=_GAD7_STEM,
    ),
)

BUILTIN_TEMPLATES: Final[Mapping[str, BuiltinTemplate]] = MappingProxyType(
    {
        template.kind: template
        for template in (
            _THOUGHT_RECORD,
            _MOOD_LOG,
            _ACTIVITY_SCHEDULE,
            _EXPOSURE,
            _MINDFULNESS,
            _JOURNAL,
            _SKILL_PRACTICE,
            _READING,
            _PHQ9,
            _GAD7,
        )
    }
)
