from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskchain import settings
from taskchain.errors import InvalidInput
from taskchain.timeparse import iso, parse_duration, parse_time


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("amqp://guest:guest@localhost:5672//", "amqp://guest:***@localhost:5672//"),
        ("postgresql://app:pw@db/x", "postgresql://app:***@db/x"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (None, ""),
    ],
)
def test_mask_url(url: str | None, masked: str) -> None:
    assert settings.mask_url(url) == masked


def test_env_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCHAIN_BROKER_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("TASKCHAIN_TASK_TIME_LIMIT", "60")
    settings.configure()
    current = settings.get_settings()
    assert (current.broker_url, current.task_time_limit, current.mode) == (
        "redis://127.0.0.1:6379/3", 60, "distributed",
    )  # fmt: skip
    settings.configure(broker_url="amqp://guest:guest@127.0.0.1:5672//")
    assert settings.get_settings().broker_url.startswith("amqp://")  # type: ignore[union-attr]
    monkeypatch.setenv("TASKCHAIN_BROKER_URL", "")
    settings.configure()
    assert settings.get_settings().embedded


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("2d", 172800),
        ("0", 0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "-5", "5x", "nan", "inf", "1h-2m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidInput, match="not a duration"):
        parse_duration(text, option="--timeout")


def test_parse_time() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time("2h", now=now) == now - timedelta(hours=2)
    assert parse_time("2026-01-01T00:00:00") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_time("2026-01-01T01:00:00+01:00") == datetime(2026, 1, 1, tzinfo=UTC)
    assert iso(now) == "2026-01-02T03:04:05.000Z"
    with pytest.raises(InvalidInput, match="neither an ISO-8601 time"):
        parse_time("yesterday-ish", option="--since")
