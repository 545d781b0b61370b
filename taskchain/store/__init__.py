"""The SQL store: the system of record for every chain and step.

`taskchain.store.transitions` (the writes) is imported by what writes, not here: a command
that only reads does not load it."""

from taskchain.store import queries
from taskchain.store.db import dispose_engines, get_engine, session
from taskchain.store.models import ChainRecord, Status, StepRecord

__all__ = [
    "ChainRecord",
    "Status",
    "StepRecord",
    "dispose_engines",
    "get_engine",
    "queries",
    "session",
]
