"""What production refuses to start with: weak signing keys (naming the kid), any SQLite
database, no data keys; and `homework keys generate`, whose output production accepts."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from pydantic import ValidationError

from app.cli import main
from app.core import data_keys
from app.core.config import Environment, Settings
from app.core.data_keys import DataKeys, Place
from app.core.keys import KeyRing, generate_pem
from tests.core.test_keys import _issue, _service

POSTGRES = "postgresql+asyncpg://u@db.invalid/homework"


def _pem(key: PrivateKeyTypes) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _production(**values: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        **{
            "env": Environment.production,
            "database_url": POSTGRES,
            "signing_keys": json.dumps([{"kid": "ok", "alg": "ES256", "pem": generate_pem()}]),
            "data_keys": json.dumps([data_keys.generate_entry()]),
            "issuer": "https://homework.vendor.example",
            **values,
        },
    )


@pytest.mark.parametrize(
    ("alg", "key", "message"),
    [
        ("RS256", rsa.generate_private_key(65537, 1024), "at least 2048 bits, this one has 1024"),
        ("ES256", ec.generate_private_key(ec.SECP521R1()), "on secp256r1 (P-256), not secp521r1"),
        ("ES256", ec.generate_private_key(ec.SECP256K1()), "not secp256k1"),
        ("ES256", ec.generate_private_key(ec.SECP384R1()), "not secp384r1"),
        ("ES384", ec.generate_private_key(ec.SECP256R1()), "on secp384r1 (P-384)"),
        ("RS256", ec.generate_private_key(ec.SECP256R1()), "RS256 takes an RSA key"),
    ],
)
def test_a_weak_or_mismatched_signing_key_stops_the_start_naming_its_kid(
    alg: str, key: PrivateKeyTypes, message: str
) -> None:
    settings = _production(
        signing_keys=json.dumps(
            [
                {"kid": "fine", "alg": "ES256", "pem": generate_pem()},
                {"kid": "weak-2019", "alg": alg, "pem": _pem(key)},
            ]
        )
    )
    with pytest.raises(ValueError, match=f"signing key 'weak-2019': .*{re.escape(message)}"):
        KeyRing.from_settings(settings)


async def test_rsa_2048_and_p384_keys_sign_and_verify() -> None:
    service = _service(
        [
            {"kid": "p384", "alg": "ES384", "pem": _pem(ec.generate_private_key(ec.SECP384R1()))},
            {"kid": "rsa", "alg": "RS256", "pem": _pem(rsa.generate_private_key(65537, 2048))},
        ]
    )
    assert (await service.verify(_issue(service))).subject == "clt_1"
    assert [k["alg"] for k in service.keys.jwks()["keys"]] == ["ES384", "RS256"]


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///./homework.db",
        "sqlite+aiosqlite:////var/lib/homework/prod.db",
        "sqlite+aiosqlite:///:memory:",
    ],
)
def test_production_refuses_any_sqlite_database(url: str) -> None:
    with pytest.raises(ValidationError, match="must name a PostgreSQL database in production"):
        _production(database_url=url)


def test_production_refuses_to_start_without_data_keys() -> None:
    with pytest.raises(ValidationError, match="HOMEWORK_DATA_KEYS must be set in production"):
        _production(data_keys=None)


def test_generated_keys_are_what_production_takes() -> None:
    printed = CliRunner().invoke(main, ["keys", "generate"])
    assert printed.exit_code == 0, printed.output
    # NAME='JSON' lines, as a shell or a .env file reads them.
    values = dict(shlex.split(line)[0].split("=", 1) for line in printed.output.splitlines())
    assert set(values) == {"HOMEWORK_SIGNING_KEYS", "HOMEWORK_DATA_KEYS"}
    settings = _production(
        signing_keys=values["HOMEWORK_SIGNING_KEYS"], data_keys=values["HOMEWORK_DATA_KEYS"]
    )
    (signing,) = json.loads(values["HOMEWORK_SIGNING_KEYS"])
    ring = KeyRing.from_settings(settings)
    assert ring.active.kid == signing["kid"] and ring.active.algorithm == "ES256"
    (data,) = json.loads(values["HOMEWORK_DATA_KEYS"])
    keys = DataKeys.from_settings(settings)
    place = Place("t", "c", ("r",))
    assert keys.current.kid == data["kid"] and keys.unseal(keys.seal(b"x", place), place) == b"x"
    again = CliRunner().invoke(main, ["keys", "generate"]).output
    assert again != printed.output  # new keys every time
