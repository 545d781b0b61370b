"""Broadcast control: revoke steps, ping workers. Best effort: the store already decided."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from taskchain.engine.app import get_app
from taskchain.settings import get_settings

log = logging.getLogger(__name__)


def revoke(task_ids: Sequence[str], *, terminate: bool = False) -> None:
    if not task_ids or get_settings().embedded:
        # Embedded: the worker is in this process and checks the store before each step.
        return
    try:
        get_app().control.revoke(list(task_ids), terminate=terminate, signal="SIGTERM")
    except Exception as exc:  # the cancel flag in the store stops the chain regardless
        log.warning("could not broadcast revoke: %s", exc)


def ping(timeout: float = 1.0) -> list[str]:
    """Names of the workers that answered a ping within `timeout` seconds."""
    replies = get_app().control.ping(timeout=timeout) or []
    return sorted(name for reply in replies for name in reply)
