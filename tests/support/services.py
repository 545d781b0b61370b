"""Reaching this machine's services; skip when absent unless TASKCHAIN_REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import socket

import pytest

REDIS = ("127.0.0.1", 6379)
POSTGRES = ("127.0.0.1", 5432)
RABBITMQ = ("127.0.0.1", 5672)


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(name: str, address: tuple[str, int]) -> None:
    """Skip (or, in CI, fail) when the service does not answer."""
    if reachable(*address):
        return
    message = f"{name} is not reachable on {address[0]}:{address[1]}"
    if os.environ.get("TASKCHAIN_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} and TASKCHAIN_REQUIRE_SERVICES=1")
    pytest.skip(message)
