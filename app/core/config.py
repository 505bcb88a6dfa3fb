"""One Settings object for the whole service, read from `HOMEWORK_*` environment variables."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./homework.db"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HOMEWORK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Environment = Environment.development
    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = Field(default=10, ge=1, le=500)
    db_max_overflow: int = Field(default=0, ge=0, le=500)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    db_pool_pre_ping: bool = True
    db_echo: bool = False
    max_body_bytes: int = Field(default=65536, ge=1024)
    log_level: str = "INFO"
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @model_validator(mode="after")
    def refuse_insecure_production(self) -> Self:
        if self.env is not Environment.production:
            return self
        problems = []
        if self.database_url == DEFAULT_DATABASE_URL:
            problems.append("HOMEWORK_DATABASE_URL must name a real database in production")
        if self.db_echo:
            problems.append("HOMEWORK_DB_ECHO would log query parameters (client data)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
