"""The test suite's own hygiene: the test-only chain type exists only where a test loads it,
the caller's terminal settings do not leak in, background processes do not outlive a test,
and every test that uses a service is marked for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskchain import settings
from taskchain.chains import all_types
from tests.support import proc
from tests.support.fixtures import SERVICE_MARKERS
from tests.support.probe import reset_chain_types
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_a_test_starts_with_the_built_in_chain_types_only() -> None:
    assert list(all_types()) == ["data_chain", "io_chain", "math_chain"]


def test_a_plugin_loaded_in_a_test_is_unregistered_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKCHAIN_PLUGINS", "tests.support.chains")
    settings.configure()
    assert "probe_chain" in all_types()
    reset_chain_types()  # what the autouse `chain_types` fixture does after every test
    monkeypatch.delenv("TASKCHAIN_PLUGINS")
    settings.configure()
    assert "probe_chain" not in all_types()
    monkeypatch.setenv("TASKCHAIN_PLUGINS", "tests.support.chains")
    settings.configure()
    assert "probe_chain" in all_types()  # loaded again: registered again


def test_the_probe_chain_fixture_registers_it_for_this_test(probe_chain: type) -> None:
    assert all_types()["probe_chain"] is probe_chain


def test_importing_the_probe_helpers_registers_nothing() -> None:
    code = (
        "import tests.support.probe, tests.support.terminal; "
        "from taskchain.chains import all_types; print(sorted(all_types(plugins=False)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout == "['data_chain', 'io_chain', 'math_chain']\n", done.stderr


def test_terminal_settings_of_the_caller_do_not_change_the_tests() -> None:
    """FORCE_COLOR=1, a narrow COLUMNS, CI or TERM=dumb in the caller's environment: the
    output tests still see plain, 80-column output."""
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "40", "CI": "true", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         "tests/cli/test_cli.py::test_status_table", "tests/cli/test_render.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]


def test_a_background_process_is_killed_when_the_test_ends() -> None:
    child = proc.spawn([sys.executable, "-c", "import time; time.sleep(600)"], os.environ)
    assert child.poll() is None
    assert proc.reap() == [[sys.executable, "-c", "import time; time.sleep(600)"]]
    assert child.poll() == -9  # SIGKILL, at once
    finished = proc.spawn([sys.executable, "-c", "pass"], os.environ)
    wait_until(lambda: finished.poll() is not None, message="a process that exits at once")
    assert proc.reap() == []  # a process that ended by itself is only collected


def test_every_test_using_a_service_carries_its_marker(request: pytest.FixtureRequest) -> None:
    unmarked = [
        (item.nodeid, marker)
        for item in request.session.items
        for fixture, marker in SERVICE_MARKERS.items()
        if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None
    ]
    assert unmarked == []
