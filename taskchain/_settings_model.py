"""The settings model: pydantic-settings, imported only when a command needs a setting.

`taskchain.settings` is the public module; it builds this model lazily, so commands that
need no setting (`--help`, `--version`) never import pydantic-settings.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from taskchain.errors import InvalidInput
from taskchain.settings import default_database_path, mask_url

BROKER_SCHEMES = frozenset({"redis", "rediss", "amqp", "amqps", "pyamqp", "sentinel"})
# Result backends taskchain supports. The store is the record, so a result backend only serves
# Celery's own tools; these are the ones whose failures taskchain can bound and report.
RESULT_SCHEMES = frozenset({"redis", "rediss", "sentinel", "rpc"})
_QUEUE_PREFIX = re.compile(r"[A-Za-z0-9._:-]*")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
DAY = 86400


class Settings(BaseSettings):
    # An empty variable is the same as an unset one (`TASKCHAIN_BROKER_URL=` = embedded).
    model_config = SettingsConfigDict(
        env_prefix="TASKCHAIN_", extra="ignore", env_ignore_empty=True, validate_default=True
    )

    broker_url: str | None = Field(
        default=None, description="Celery broker (redis:// or amqp://); unset = embedded mode"
    )
    result_backend: str | None = Field(
        default=None, description="optional Celery result backend; the store is the record"
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the store; default: SQLite in the data dir"
    )
    workspace: Path = Field(default=Path("."), description="folder every chain path is relative to")
    task_time_limit: int = Field(
        default=1800, ge=1, le=7 * DAY, description="seconds a step may run"
    )
    step_lease: int = Field(
        default=60,
        ge=5,
        le=DAY,
        description="seconds a worker's claim on a running step lasts unrenewed",
    )
    redispatch_after: float = Field(
        default=60.0,
        gt=0,
        le=DAY,
        allow_inf_nan=False,
        description="seconds a queued step may wait before it is sent again",
    )
    plugins: str = Field(
        default="", description="comma-separated modules to import for extra chain types"
    )
    broker_timeout: float = Field(
        default=3.0,
        gt=0,
        le=300,
        allow_inf_nan=False,
        description="seconds to reach the broker (or result backend) before giving up (exit 4)",
    )
    store_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="seconds to wait for a locked or absent store (exit 4)",
    )

    task_events: bool = Field(
        default=True,
        description="send Celery task events (task-sent on every send; workers -E), which "
        "Flower and `celery events` show; off saves a step a quarter of its messages",
    )
    queue_prefix: str = Field(
        default="taskchain.",
        max_length=64,
        description="put before each queue family (math, data, io, default) to name its queue",
    )
    retention: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="age (30d, 12h, seconds) after which workers prune finished chains; "
        "unset = keep forever",
    )

    @field_validator("retention", mode="before")
    @classmethod
    def _retention_duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return None
            from taskchain.timeparse import parse_duration

            try:
                return parse_duration(value, option="retention")
            except InvalidInput:
                raise ValueError("not an age like 30d, 12h or 3600 (seconds)") from None
        return value

    @field_validator("broker_url", "result_backend", "database_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str | None) -> str | None:
        if value is not None:
            _check_url(value, BROKER_SCHEMES, what="broker URL")
        return value

    @field_validator("result_backend")
    @classmethod
    def _known_result_backend(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.lower().startswith("db+"):
            _check_sqlalchemy_url(value[3:], what="result backend", shown=value)
            return value
        _check_url(value, RESULT_SCHEMES | {"db+..."}, what="result backend")
        return value

    @field_validator("database_url")
    @classmethod
    def _valid_database_url(cls, value: str | None) -> str | None:
        if value is not None:
            _check_sqlalchemy_url(value, what="database URL")
        return value

    @field_validator("workspace", mode="before")
    @classmethod
    def _blank_workspace_is_cwd(cls, value: Any) -> Any:
        return "." if isinstance(value, str) and not value.strip() else value

    @field_validator("workspace")
    @classmethod
    def _existing_folder(cls, value: Path) -> Path:
        try:
            # Absolute now, so a later chdir cannot move it; symlinks are kept as given.
            path = Path(os.path.abspath(value.expanduser()))
        except OSError:
            raise ValueError("the current directory no longer exists") from None
        if not path.exists():
            raise ValueError(f"folder {str(path)!r} does not exist")
        if not path.is_dir():
            raise ValueError(f"{str(path)!r} is not a folder")
        return path

    @field_validator("queue_prefix")
    @classmethod
    def _queue_prefix(cls, value: str) -> str:
        # Names every broker accepts as queue, exchange and routing key alike.
        if not _QUEUE_PREFIX.fullmatch(value):
            raise ValueError(
                f"queue prefix {value!r} may hold only letters, digits and '.', '_', '-', ':'"
            )
        return value

    @field_validator("plugins")
    @classmethod
    def _module_names(cls, value: str) -> str:
        for name in (p.strip() for p in value.split(",")):
            if name and not _MODULE.fullmatch(name):
                raise ValueError(f"{name!r} is not a Python module name")
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

    @property
    def uses_result_backend(self) -> bool:
        """Embedded runs never use one: the in-process worker records steps in the store."""
        return self.result_backend is not None and not self.embedded


def _check_url(value: str, schemes: frozenset[str], *, what: str) -> None:
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in schemes:
        raise ValueError(
            f"{what} {mask_url(value)!r} must start with one of "
            + ", ".join(s if s.endswith("...") else f"{s}://" for s in sorted(schemes))
        )
    try:
        urlsplit(value).port  # noqa: B018  (parsing the port is the check)
    except ValueError as exc:
        raise ValueError(f"{what} {mask_url(value)!r}: {exc}") from None


def _check_sqlalchemy_url(value: str, *, what: str, shown: str | None = None) -> None:
    """Parseable, a known dialect, its driver importable: what create_engine would need."""
    name = mask_url(shown or value)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise ValueError(f"{what} {name!r} is not a valid SQLAlchemy URL") from None
    try:
        url.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{what} {name!r}: driver not installed ({reason})") from None
