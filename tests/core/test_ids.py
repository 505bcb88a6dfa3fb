import re

from app.core.ids import new_id


def test_ids_carry_their_kind_and_are_opaque() -> None:
    value = new_id("clt")
    assert re.fullmatch(r"clt_[0-9a-hjkmnp-tv-z]{26}", value)


def test_ids_are_unique_and_sort_by_creation() -> None:
    ids = [new_id("asg") for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    # In creation order, even within one millisecond.
    assert [i[4:] for i in ids] == sorted(i[4:] for i in ids)
