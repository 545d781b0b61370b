"""The SQL store: the system of record for every chain and step."""

from taskchain.store import queries, transitions
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
    "transitions",
]
