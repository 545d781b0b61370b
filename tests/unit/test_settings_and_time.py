from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskchain import settings
from taskchain.errors import InvalidInput
from taskchain.timeparse import iso, parse_duration, parse_time


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@redis.internal:6379/0", "redis://:***@redis.internal:6379/0"),
        ("amqp://guest:guest@localhost:5672//", "amqp://guest:***@localhost:5672//"),
        ("postgresql://app:pw@db/x", "postgresql://app:***@db/x"),
        ("redis://redis.internal:6379/0", "redis://redis.internal:6379/0"),
        (None, ""),
    ],
)
def test_mask_url(url: str | None, masked: str) -> None:
    assert settings.mask_url(url) == masked


def test_env_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCHAIN_BROKER_URL", "redis://redis.internal:6379/3")
    monkeypatch.setenv("TASKCHAIN_TASK_TIME_LIMIT", "60")
    settings.configure()
    current = settings.get_settings()
    assert (current.broker_url, current.task_time_limit, current.mode) == (
        "redis://redis.internal:6379/3", 60, "distributed",
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


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("sentinel://:a@h1:26379;sentinel://:b@h2:26379/0",
         "sentinel://:***@h1:26379;sentinel://:***@h2:26379/0"),
        ("redis://u:p@ss@h:1/0", "redis://u:***@h:1/0"),  # an unescaped @ in the password
        ("redis://:pw@h:notaport/0", "redis://:***@h:notaport/0"),  # a URL that does not parse
        ("db+postgresql://app:pw@db/x", "db+postgresql://app:***@db/x"),
        ("redis://h:6379/0?name=a@b", "redis://h:6379/0?name=a@b"),
    ],
)  # fmt: skip
def test_mask_url_hard_cases(url: str, masked: str) -> None:
    assert settings.mask_url(url) == masked


FIELDS = (
    "BROKER_URL", "RESULT_BACKEND", "DATABASE_URL", "WORKSPACE", "TASK_TIME_LIMIT", "STEP_LEASE",
    "REDISPATCH_AFTER", "BROKER_TIMEOUT", "STORE_TIMEOUT", "PLUGINS",
)  # fmt: skip


@pytest.mark.parametrize("name", FIELDS)
def test_an_empty_variable_is_the_same_as_an_unset_one(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for other in FIELDS:
        monkeypatch.delenv(f"TASKCHAIN_{other}", raising=False)
    monkeypatch.chdir(tmp_path)
    settings.configure()
    unset = settings.get_settings()
    monkeypatch.setenv(f"TASKCHAIN_{name}", "")
    settings.configure()
    assert settings.get_settings() == unset
    assert settings.get_settings().workspace == tmp_path  # default: the current folder
    assert settings.get_settings().embedded


def test_workspace_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKCHAIN_WORKSPACE", "mine")
    settings.configure()
    assert settings.get_settings().workspace == tmp_path / "mine"
    monkeypatch.chdir("/")  # a later chdir does not move it
    assert settings.get_settings().workspace == tmp_path / "mine"


def test_a_deleted_current_folder_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    monkeypatch.delenv("TASKCHAIN_WORKSPACE", raising=False)
    settings.configure()
    with pytest.raises(settings.InvalidSetting) as caught:
        settings.get_settings()
    assert str(caught.value) == (
        "invalid setting TASKCHAIN_WORKSPACE: the current directory no longer exists"
    )
    assert caught.value.exit_code == 2


def test_settings_name_the_flag_when_a_flag_gave_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKCHAIN_STEP_LEASE", "1")
    settings.configure()
    with pytest.raises(settings.InvalidSetting, match=r"^invalid setting TASKCHAIN_STEP_LEASE: "):
        settings.get_settings()
    monkeypatch.delenv("TASKCHAIN_STEP_LEASE")
    settings.configure(step_lease=1)
    with pytest.raises(
        settings.InvalidSetting, match=r"^invalid setting --step-lease: .* \(got 1\)$"
    ):
        settings.get_settings()


def test_embedded_mode_never_uses_a_result_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskchain.engine.app import celery_config

    monkeypatch.setenv("TASKCHAIN_RESULT_BACKEND", "redis://127.0.0.1:6599/0")
    settings.configure()
    embedded = celery_config(settings.get_settings())
    assert "result_backend" not in embedded
    assert embedded["task_ignore_result"] is True
    settings.configure(broker_url="redis://127.0.0.1:6599/1", broker_timeout=2.5)
    distributed = celery_config(settings.get_settings())
    assert distributed["result_backend"] == "redis://127.0.0.1:6599/0"
    # Celery's own reconnect loop and each connect bounded by the broker timeout: exit 4 soon.
    assert distributed["result_backend_transport_options"] == {"retry_policy": {"timeout": 2.5}}
    assert distributed["redis_socket_connect_timeout"] == 2.5
    assert "task_ignore_result" not in distributed
