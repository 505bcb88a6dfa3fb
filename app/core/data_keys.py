"""Secrets at rest: AES-256-GCM under a ring of data keys, each ciphertext bound to its place.

A sealed value reads `v1.<kid>.<base64url(nonce | ciphertext | tag)>`: it names the key that
sealed it, so a ring may hold several keys (the first seals, all unseal) and a key can be
rotated out once `homework keys rotate-data` has re-sealed everything under the new first one.
The associated data is the value's table, column and row key: a ciphertext copied to another
row or column (a backup spliced, a row edited by hand) fails to unseal instead of being used.

Keys come from HOMEWORK_DATA_KEYS (a JSON list of {"kid", "key": base64 of 32 bytes}). Outside
production, without it, one key is generated on first use and kept in
HOMEWORK_DEV_DATA_KEY_PATH, like the development signing key; unlike that key it is kept in
tests too, since every process that shares a database (an API, a worker) must unseal what the
others sealed.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.core.key_files import write_once

if TYPE_CHECKING:
    from app.core.config import Settings

VERSION = "v1"
PREFIX = VERSION + "."
NONCE_BYTES = 12
KEY_BYTES = 32
# Short, so that a sealed 32-byte webhook secret (84 characters plus the kid) still fits the
# column it always had (100 characters): no migration, no wider rows.
KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,16}")
log = logging.getLogger("homework.data_keys")


class DataKeyError(ValueError):
    """HOMEWORK_DATA_KEYS is not a usable key ring (the message never holds a key)."""


class Unsealable(ValueError):
    """A stored value that none of our keys opens at this place: a missing key, or tampering."""


@dataclass(frozen=True)
class Place:
    """Where a sealed value lives: its associated data."""

    table: str
    column: str
    row: tuple[str, ...]

    def associated_data(self) -> bytes:
        # JSON, not a joined string: no choice of ids can make two places read the same.
        return json.dumps([VERSION, self.table, self.column, *self.row]).encode()

    def __str__(self) -> str:
        return f"{self.table}.{self.column} of {'/'.join(self.row)}"


@dataclass(frozen=True)
class DataKey:
    kid: str
    aead: AESGCM = field(repr=False)


def is_sealed(value: str | bytes) -> bool:
    """Ours, as opposed to a value stored before encryption at rest (JSON or `whsec_…`)."""
    if isinstance(value, bytes):
        return value.startswith(PREFIX.encode())
    return value.startswith(PREFIX)


def sealed_kid(value: str) -> str:
    return value.split(".", 2)[1]


class DataKeys:
    """The ring: the first key seals, every key unseals what it sealed."""

    def __init__(self, keys: list[DataKey]) -> None:
        if not keys:
            raise DataKeyError("HOMEWORK_DATA_KEYS needs at least one key")
        self.current = keys[0]
        self.by_kid = {key.kid: key for key in keys}

    def seal(self, plaintext: bytes, place: Place) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self.current.aead.encrypt(nonce, plaintext, place.associated_data())
        encoded = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
        return f"{PREFIX}{self.current.kid}.{encoded}"

    def unseal(self, value: str, place: Place) -> bytes:
        version, kid, encoded = [*value.split(".", 2), "", ""][:3]
        key = self.by_kid.get(kid)
        if version != VERSION or key is None:
            raise Unsealable(f"{place}: sealed under data key {kid!r}, not in HOMEWORK_DATA_KEYS")
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            return key.aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], place.associated_data())
        except (InvalidTag, binascii.Error, ValueError) as error:
            raise Unsealable(f"{place}: does not unseal here (moved or altered)") from error

    def is_current(self, value: str) -> bool:
        return is_sealed(value) and sealed_kid(value) == self.current.kid

    @classmethod
    def from_settings(cls, settings: Settings) -> DataKeys:
        if settings.data_keys is not None:
            return _from_json(settings.data_keys.get_secret_value())
        return _kept_at(settings.dev_data_key_path)


def parse(raw: str) -> list[DataKey]:
    """HOMEWORK_DATA_KEYS' keys, or a DataKeyError naming the entry at fault (never its key)."""
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as error:
        raise DataKeyError("HOMEWORK_DATA_KEYS is not JSON") from error
    if not isinstance(entries, list) or not entries:
        raise DataKeyError('HOMEWORK_DATA_KEYS must be a JSON list of {"kid", "key"}')
    keys: list[DataKey] = []
    for number, entry in enumerate(entries, 1):
        kid = entry.get("kid") if isinstance(entry, dict) else None
        name = f"data key {kid!r}" if isinstance(kid, str) else f"data key #{number}"
        if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
            raise DataKeyError(f"{name}: a kid is 1 to 16 letters, digits, '-' or '_'")
        if kid in {k.kid for k in keys}:
            raise DataKeyError(f"{name}: the kid is used twice")
        try:
            secret = base64.b64decode(str(entry.get("key")), validate=True)
        except binascii.Error:
            secret = b""
        if len(secret) != KEY_BYTES:
            raise DataKeyError(f"{name}: the key must be base64 of {KEY_BYTES} random bytes")
        keys.append(DataKey(kid, AESGCM(secret)))
    return keys


def generate_entry() -> dict[str, str]:
    """A new key in HOMEWORK_DATA_KEYS' format."""
    return {
        "kid": "dk-" + secrets.token_hex(4),
        "key": base64.b64encode(AESGCM.generate_key(bit_length=256)).decode(),
    }


# One ring per configuration and process: built once, since every request that stores or
# replays an Idempotency-Key answer needs one.
@lru_cache(maxsize=8)
def _from_json(raw: str) -> DataKeys:
    return DataKeys(parse(raw))


@lru_cache(maxsize=8)
def _kept_at(path: Path) -> DataKeys:
    if not path.exists():
        write_once(path, json.dumps([generate_entry()]), "data key")
    return DataKeys(parse(path.read_text()))
