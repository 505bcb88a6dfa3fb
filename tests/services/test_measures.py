"""PHQ-9 and GAD-7 scoring at every band boundary."""

from __future__ import annotations

import pytest

from app.services.measures import (
    GAD7_ITEMS,
    PHQ9_ITEMS,
    MeasureScore,
    score_for_kind,
    score_gad7,
    score_phq9,
)


def _answers(items: tuple[str, ...], total: int) -> dict[str, object]:
    """Items answered so that they add up to `total`, highest answers first."""
    answers: dict[str, object] = {}
    for item in items:
        answers[item] = min(3, total)
        total -= answers[item]  # type: ignore[operator]
    assert total == 0
    return answers


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately_severe"),
        (19, "moderately_severe"),
        (20, "severe"),
        (27, "severe"),
    ],
)
def test_phq9_bands(total: int, band: str) -> None:
    assert score_phq9(_answers(PHQ9_ITEMS, total)) == MeasureScore(total, band)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ],
)
def test_gad7_bands(total: int, band: str) -> None:
    assert score_gad7(_answers(GAD7_ITEMS, total)) == MeasureScore(total, band)  # type: ignore[arg-type]


def test_the_difficulty_question_is_not_scored() -> None:
    answers = {**_answers(PHQ9_ITEMS, 7), "difficulty": "extremely_difficult"}
    assert score_phq9(answers) == MeasureScore(7, "mild")


def test_score_for_kind() -> None:
    assert score_for_kind("phq9", _answers(PHQ9_ITEMS, 20)) == MeasureScore(20, "severe")
    assert score_for_kind("gad7", _answers(GAD7_ITEMS, 10)) == MeasureScore(10, "moderate")
    assert score_for_kind("mood_log", {"mood": 3}) is None
    assert score_for_kind("custom", {}) is None


@pytest.mark.parametrize("bad", [None, 4, -1, True, 2.0, "2"])
def test_an_invalid_item_is_refused_not_guessed(bad: object) -> None:
    answers = _answers(PHQ9_ITEMS, 10)
    if bad is None:
        del answers["item_4"]
    else:
        answers["item_4"] = bad
    with pytest.raises(ValueError, match="item_4 must be an integer from 0 to 3"):
        score_phq9(answers)


def test_gad7_needs_all_seven_items() -> None:
    answers = _answers(GAD7_ITEMS, 5)
    del answers["item_7"]
    with pytest.raises(ValueError, match="gad7 item_7"):
        score_gad7(answers)


def test_the_error_never_repeats_the_answer() -> None:
    answers = {**_answers(PHQ9_ITEMS, 0), "item_2": 98765}
    with pytest.raises(ValueError) as error:
        score_phq9(answers)
    assert "98765" not in str(error.value)
