"""Waiting on a condition, never on the clock: a busy machine makes things slower, not wrong."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Long enough for a loaded 2-core CI machine; a test that passes waits far less.
PATIENCE = 60.0


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = PATIENCE,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Call `predicate` until it returns something truthy, and return that; after `timeout`
    seconds, fail with `message` (a string, or a function for the state worth showing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"not met within {timeout:g}s: {text}")
        time.sleep(interval)
