"""The LOINC codes of the two validated measures: the panels, their items, their answers and
their total scores (loinc.org/44249-1, loinc.org/69737-5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from app.services.measures import GAD7_ITEMS, PHQ9_ITEMS


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    display: str


@dataclass(frozen=True, slots=True)
class MeasureCodes:
    panel: Code
    total: Code
    items: dict[str, str]  # our property name -> its LOINC code


# The "how difficult" question both panels end with.
DIFFICULTY: Final = "69722-7"

PHQ9: Final = MeasureCodes(
    panel=Code("44249-1", "PHQ-9 quick depression assessment panel [Reported.PHQ]"),
    total=Code("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"),
    items={
        **dict(
            zip(
                PHQ9_ITEMS,
                (
                    "44250-9",
                    "44255-8",
                    "44259-0",
                    "44254-1",
                    "44251-7",
                    "44258-2",
                    "44252-5",
                    "44253-3",
                    "44260-8",
                ),
                strict=True,
            )
        ),
        "difficulty": DIFFICULTY,
    },
)
GAD7: Final = MeasureCodes(
    panel=Code("69737-5", "Generalized anxiety disorder 7 item (GAD-7)"),
    total=Code("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"),
    items={
        **dict(
            zip(
                GAD7_ITEMS,
                ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"),
                strict=True,
            )
        ),
        "difficulty": DIFFICULTY,
    },
)
MEASURES: Final = {"phq9": PHQ9, "gad7": GAD7}

# LOINC answer list LL358-3, the frequency every item of both panels is answered with: our
# 0-3 are these answers' ordinal values.
FREQUENCY: Final = (
    Code("LA6568-5", "Not at all"),
    Code("LA6569-3", "Several days"),
    Code("LA6570-1", "More than half the days"),
    Code("LA6571-9", "Nearly every day"),
)
