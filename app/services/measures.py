"""Scoring of the validated measures: PHQ-9 (depression) and GAD-7 (anxiety).

Each item is answered 0 (not at all) to 3 (nearly every day); the total is the plain sum and its
severity band follows the published cut-offs (Kroenke et al. 2001; Spitzer et al. 2006). The
optional "how difficult" question is not part of either score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

Band = Literal["minimal", "mild", "moderate", "moderately_severe", "severe"]

ITEM_MIN: Final = 0
ITEM_MAX: Final = 3
PHQ9_ITEMS: Final = tuple(f"item_{number}" for number in range(1, 10))
GAD7_ITEMS: Final = tuple(f"item_{number}" for number in range(1, 8))

# (highest total in the band, band), in ascending order.
_PHQ9_BANDS: Final[tuple[tuple[int, Band], ...]] = (
    (4, "minimal"),
    (9, "mild"),
    (14, "moderate"),
    (19, "moderately_severe"),
    (27, "severe"),
)
_GAD7_BANDS: Final[tuple[tuple[int, Band], ...]] = (
    (4, "minimal"),
    (9, "mild"),
    (14, "moderate"),
    (21, "severe"),
)


@dataclass(frozen=True, slots=True)
class MeasureScore:
    total: int
    band: Band


def score_phq9(answers: Mapping[str, object]) -> MeasureScore:
    """PHQ-9 total (0-27) and band. Raises ValueError unless items 1-9 are integers 0-3."""
    return _score("phq9", answers, PHQ9_ITEMS, _PHQ9_BANDS)


def score_gad7(answers: Mapping[str, object]) -> MeasureScore:
    """GAD-7 total (0-21) and band. Raises ValueError unless items 1-7 are integers 0-3."""
    return _score("gad7", answers, GAD7_ITEMS, _GAD7_BANDS)


def score_for_kind(kind: str, answers: Mapping[str, object]) -> MeasureScore | None:
    """The score of a measure's answers; None for kinds that are not scored."""
    if kind == "phq9":
        return score_phq9(answers)
    if kind == "gad7":
        return score_gad7(answers)
    return None


def _score(
    measure: str,
    answers: Mapping[str, object],
    items: tuple[str, ...],
    bands: tuple[tuple[int, Band], ...],
) -> MeasureScore:
    total = 0
    for item in items:
        value = answers.get(item)
        # A missing item would make the total look less severe than it is: refuse, never guess.
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not ITEM_MIN <= value <= ITEM_MAX
        ):
            # The message names the rule, never the answer (protected health data).
            raise ValueError(f"{measure} {item} must be an integer from {ITEM_MIN} to {ITEM_MAX}")
        total += value
    band = next(name for highest, name in bands if total <= highest)
    return MeasureScore(total=total, band=band)


def band_ranges(measure: str) -> tuple[tuple[int, int, Band], ...]:
    """(lowest total, highest total, band) of each band of `phq9` or `gad7`, ascending: what the
    adherence chart shades its score panels with."""
    bands = {"phq9": _PHQ9_BANDS, "gad7": _GAD7_BANDS}[measure]
    lowest = (ITEM_MIN, *(highest + 1 for highest, _ in bands[:-1]))
    return tuple((low, high, band) for low, (high, band) in zip(lowest, bands, strict=True))
