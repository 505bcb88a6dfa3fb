import json

import pytest
from pydantic import ValidationError

from app.core import data_keys
from app.core.config import DEFAULT_DATABASE_URL, Environment, Settings
from app.core.keys import KeyRing, generate_pem


def test_defaults_to_embedded_sqlite() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///./homework.db"
    assert settings.is_sqlite
    assert settings.max_body_bytes == 65536


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEWORK_DATABASE_URL", "postgresql+asyncpg://u@db/homework")
    monkeypatch.setenv("HOMEWORK_DB_POOL_SIZE", "32")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "postgresql+asyncpg://u@db/homework"
    assert settings.db_pool_size == 32
    assert not settings.is_sqlite


def test_production_refuses_the_embedded_default() -> None:
    with pytest.raises(ValidationError, match="HOMEWORK_DATABASE_URL"):
        Settings(_env_file=None, env=Environment.production)  # type: ignore[call-arg]


def test_production_refuses_logging_query_parameters() -> None:
    with pytest.raises(ValidationError, match="HOMEWORK_DB_ECHO"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            env=Environment.production,
            database_url="postgresql+asyncpg://u@db/homework",
            db_echo=True,
        )


def test_production_refuses_generated_keys_and_plain_http_issuer() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(  # type: ignore[call-arg]
            _env_file=None, env=Environment.production, database_url="postgresql+asyncpg://u@db/h"
        )
    assert "HOMEWORK_SIGNING_KEYS" in str(refused.value)
    assert "HOMEWORK_ISSUER" in str(refused.value)


def test_production_accepts_a_real_configuration() -> None:
    keys = json.dumps([{"alg": "ES256", "pem": generate_pem()}])
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env=Environment.production,
        database_url="postgresql+asyncpg://u@db/h",
        signing_keys=keys,
        data_keys=json.dumps([data_keys.generate_entry()]),
        issuer="https://homework.vendor.example",
    )
    assert settings.env is Environment.production
    assert KeyRing.from_settings(settings).active.algorithm == "ES256"
