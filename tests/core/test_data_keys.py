"""The data key ring on its own: AES-GCM sealing bound to a place, several keys for rotation,
HOMEWORK_DATA_KEYS refused with a message that names the entry and never its key, and the
development key generated once and kept."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core import data_keys
from app.core.config import Environment, Settings
from app.core.data_keys import DataKeys, Place, Unsealable

ENDPOINT = Place("webhook_endpoints", "secret", ("whe_1",))


def _ring(*entries: dict[str, str]) -> DataKeys:
    return DataKeys(data_keys.parse(json.dumps(list(entries))))


def test_a_sealed_value_names_its_key_and_opens_only_at_its_place() -> None:
    entry = data_keys.generate_entry()
    keys = _ring(entry)
    sealed = keys.seal(b"\x00secret bytes", ENDPOINT)
    version, kid, payload = sealed.split(".")
    assert (version, kid) == ("v1", entry["kid"]) and "secret" not in payload
    assert keys.unseal(sealed, ENDPOINT) == b"\x00secret bytes"
    assert keys.seal(b"\x00secret bytes", ENDPOINT) != sealed  # a fresh nonce each time

    for elsewhere in (
        Place("webhook_endpoints", "secret", ("whe_2",)),
        Place("webhook_endpoints", "previous_secret", ("whe_1",)),
        Place("idempotency_keys", "secret", ("whe_1",)),
    ):
        with pytest.raises(Unsealable, match="moved or altered"):
            keys.unseal(sealed, elsewhere)
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(Unsealable):
        keys.unseal(flipped, ENDPOINT)


def test_the_first_key_seals_and_every_key_opens_what_it_sealed() -> None:
    old, new = data_keys.generate_entry(), data_keys.generate_entry()
    sealed_by_old = _ring(old).seal(b"kept", ENDPOINT)
    both = _ring(new, old)
    assert both.unseal(sealed_by_old, ENDPOINT) == b"kept"
    assert not both.is_current(sealed_by_old)
    assert both.is_current(both.seal(b"kept", ENDPOINT))
    with pytest.raises(Unsealable, match=f"data key '{old['kid']}', not in HOMEWORK_DATA_KEYS"):
        _ring(new).unseal(sealed_by_old, ENDPOINT)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("not json", "is not JSON"),
        ("[]", "JSON list"),
        ([{"kid": "has.dot", "key": "x"}], "data key 'has.dot': a kid is 1 to 16"),
        ([{"kid": "k" * 17, "key": "x"}], "a kid is 1 to 16"),
        ([{"key": "x"}], "data key #1"),
        ([{"kid": "short", "key": "c2hvcnQ="}], "data key 'short': the key must be base64 of 32"),
        ([{"kid": "bad", "key": "not base64!"}], "data key 'bad': the key must be base64"),
    ],
)
def test_an_unusable_ring_is_refused_at_start_naming_the_entry(
    entries: object, message: str
) -> None:
    raw = entries if isinstance(entries, str) else json.dumps(entries)
    with pytest.raises(ValidationError, match=message) as refused:
        Settings(_env_file=None, env=Environment.test, data_keys=raw)  # type: ignore[call-arg]
    assert "c2hvcnQ=" not in str(refused.value)


def test_a_kid_used_twice_is_refused() -> None:
    twice = [data_keys.generate_entry(), data_keys.generate_entry()]
    twice[1]["kid"] = twice[0]["kid"]
    with pytest.raises(data_keys.DataKeyError, match="used twice"):
        data_keys.parse(json.dumps(twice))


def test_development_generates_one_key_keeps_it_owner_only_and_reuses_it(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "data-keys.json"

    def settings() -> Settings:
        return Settings(_env_file=None, dev_data_key_path=path)  # type: ignore[call-arg]

    first = DataKeys.from_settings(settings())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (kept,) = json.loads(path.read_text())
    assert kept["kid"] == first.current.kid
    sealed = first.seal(b"dev", ENDPOINT)
    # Another process (here: the cache forgotten) reads the same key and opens what was sealed.
    data_keys._kept_at.cache_clear()
    assert DataKeys.from_settings(settings()).unseal(sealed, ENDPOINT) == b"dev"
    assert [p.name for p in path.parent.iterdir()] == ["data-keys.json"]  # no temporary left
