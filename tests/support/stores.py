"""A store on each backend, for tests that must hold on SQLite and on PostgreSQL alike.

A test takes the `store_url` fixture (tests/support/fixtures.py), or a module puts
`pytestmark = pytest.mark.usefixtures("store_url")` on every test it has: each then runs
once per backend, so a difference between them (the big-integer one) cannot hide.
"""

from __future__ import annotations

import os

import pytest

from taskchain import settings

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def use(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test's store URL: its own SQLite file, or a PostgreSQL database made for it."""
    if request.param == "sqlite":
        return os.environ["TASKCHAIN_DATABASE_URL"]  # set by the autouse `isolated` fixture
    url: str = request.getfixturevalue("postgres_url")  # created now, dropped after the test
    monkeypatch.setenv("TASKCHAIN_DATABASE_URL", url)
    settings.configure()
    return url
