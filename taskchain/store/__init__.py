"""The SQL store: the system of record for every chain and step.

Its names are loaded on first use: a read command imports `store.tables` and `store.db`
alone, not the SQLModel classes (`store.models`) nor the writes (`store.transitions`)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskchain.store import queries
    from taskchain.store.db import dispose_engines, get_engine, session
    from taskchain.store.models import ChainRecord, StepRecord
    from taskchain.store.tables import Status

_HOMES = {
    "ChainRecord": "models",
    "StepRecord": "models",
    "Status": "tables",
    "dispose_engines": "db",
    "get_engine": "db",
    "session": "db",
}

__all__ = [
    "ChainRecord",
    "Status",
    "StepRecord",
    "dispose_engines",
    "get_engine",
    "queries",
    "session",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{home}"), name)
