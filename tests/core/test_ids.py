import re

from app.core.ids import new_id


def test_ids_carry_their_kind_and_are_opaque() -> None:
    value = new_id("clt")
    assert re.fullmatch(r"clt_[0-9a-hjkmnp-tv-z]{26}", value)


def test_ids_are_unique_and_sort_by_creation() -> None:
    ids = [new_id("asg") for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    # Within one millisecond the random tail decides; across milliseconds time does.
    assert ids[0][:14] <= ids[-1][:14]
