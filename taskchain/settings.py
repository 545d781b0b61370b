"""The one settings object, from `TASKCHAIN_*` variables and the CLI's global options."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BROKER_SCHEMES = frozenset({"redis", "rediss", "amqp", "amqps", "pyamqp", "sentinel"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASKCHAIN_", extra="ignore")

    broker_url: str | None = Field(
        default=None, description="Celery broker (redis:// or amqp://); unset = embedded mode"
    )
    result_backend: str | None = Field(
        default=None, description="optional Celery result backend; the store is the record"
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the store; default: SQLite in the data dir"
    )
    workspace: Path = Field(
        default_factory=Path.cwd, description="folder every chain path is relative to"
    )
    task_time_limit: int = Field(default=1800, ge=1, description="seconds a step may run")
    step_lease: int = Field(
        default=60, ge=5, description="seconds a worker's claim on a running step lasts unrenewed"
    )
    redispatch_after: float = Field(
        default=60.0, gt=0, description="seconds a queued step may wait before it is sent again"
    )
    plugins: str = Field(
        default="", description="comma-separated modules to import for extra chain types"
    )
    broker_timeout: float = Field(
        default=3.0, gt=0, description="seconds to reach the broker before giving up (exit 4)"
    )
    store_timeout: float = Field(
        default=10.0, gt=0, description="seconds to wait for a locked or absent store (exit 4)"
    )

    @field_validator("broker_url", "result_backend", "database_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in BROKER_SCHEMES:
            raise ValueError(
                f"broker URL {mask_url(value)!r} must start with one of "
                + ", ".join(f"{s}://" for s in sorted(BROKER_SCHEMES))
            )
        return value

    @property
    def embedded(self) -> bool:
        return self.broker_url is None

    @property
    def mode(self) -> str:
        return "embedded" if self.embedded else "distributed"

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{default_database_path()}"

    @property
    def effective_broker(self) -> str:
        return self.broker_url or "memory://"


def default_database_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("taskchain", appauthor=False)) / "taskchain.db"


_overrides: dict[str, Any] = {}


def configure(**overrides: Any) -> None:
    """Apply the CLI's global options (they beat the environment) and forget cached state."""
    _overrides.clear()
    _overrides.update({k: v for k, v in overrides.items() if v is not None})
    get_settings.cache_clear()


@cache
def get_settings() -> Settings:
    return Settings(**_overrides)


def mask_url(url: str | None) -> str:
    """The URL with any password replaced by ***, safe to print."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
