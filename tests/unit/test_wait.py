"""The one rule every follower uses for a store that goes away: `wait.Outage`."""

from __future__ import annotations

import pytest

from taskchain.engine import wait
from taskchain.errors import StoreUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_shorter_than_its_patience_is_waited_out_and_a_longer_one_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(wait.time, "monotonic", clock)
    lost = StoreUnavailable("sqlite:///s.db", "database is locked")
    outage = wait.Outage(patience=30)
    outage.failed(lost)
    clock.now += 29
    outage.failed(lost)  # 29 s away: still waiting
    clock.now += 2
    with pytest.raises(StoreUnavailable) as raised:
        outage.failed(lost)
    assert raised.value is lost


def test_a_good_read_ends_the_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(wait.time, "monotonic", clock)
    lost = StoreUnavailable("sqlite:///s.db", "connection refused")
    outage = wait.Outage(patience=30)
    outage.failed(lost)
    clock.now += 25
    outage.ok()
    clock.now += 25
    outage.failed(lost)  # a new outage starts here, not 50 s ago
    clock.now += 25
    outage.failed(lost)
    assert outage.since == 150.0
