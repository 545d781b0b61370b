"""Settings and config inputs at their limits, through the real command: an embedded run with
an unreachable result backend, config inputs over the size limit (file, stdin, a device)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from taskchain.cli import app
from taskchain.cli.config_input import MAX_CONFIG_BYTES
from tests.support import proc

CLOSED = "127.0.0.1:6599"  # nothing listens there


def test_embedded_ignores_an_unreachable_result_backend(env: dict[str, str]) -> None:
    # The in-process worker records steps in the store; had it used the backend, its first
    # result would have stopped it and the chain would wait for ever.
    eenv = {**env, "TASKCHAIN_RESULT_BACKEND": f"redis://{CLOSED}/0"}
    done = proc.run(["submit", "math_chain", "--numbers", "1", "2", "--iterations", "3", "-q"],
                    eenv, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    chain_id = done.stdout.strip()
    result = proc.run(["result", chain_id, "--json"], eenv)
    assert json.loads(result.stdout)["result"] == (1 + 2) * 3  # 1 2 1 2 1 2 folded: 5 steps
    info = proc.run(["info", "--json"], eenv)
    assert json.loads(info.stdout)["result_backend"] == (
        f"redis://{CLOSED}/0 (unused in embedded mode)"
    )


def test_a_sparse_gigabyte_config_file_is_refused_at_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(2**30)
    # A wrapper whose only child is the command, so RUSAGE_CHILDREN is that command's peak.
    measure = (
        "import resource, subprocess, sys, time; t = time.monotonic(); "
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(r.returncode, time.monotonic() - t, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(r.stderr, end='')"
    )
    done = subprocess.run(
        [sys.executable, "-c", measure, *proc.TASKCHAIN, "submit", "math_chain",
         "--config-file", str(huge)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    summary, *stderr = done.stdout.splitlines()
    code, seconds, peak_kib = summary.split()
    assert code == "2"
    assert stderr == [
        f"taskchain: error: config file {str(huge)!r} is 1,024.0 MiB, over the 4 MiB limit "
        "for a config"
    ]
    # Reading it whole took 9.8 s; the limit grows with the machine's load (proc.within).
    assert float(seconds) < proc.within(2, env)
    assert int(peak_kib) < 200 * 1024  # and 3.2 GB of memory


def test_stdin_over_the_limit_is_refused(runner: CliRunner) -> None:
    text = '{"numbers": [1, 2]}' + " " * MAX_CONFIG_BYTES
    result = runner.invoke(app, ["submit", "math_chain", "--config-file", "-"], input=text)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == "taskchain: error: stdin is over the 4 MiB limit for a config\n"


def test_stdin_at_the_limit_is_read(runner: CliRunner) -> None:
    text = '{"numbers": [1, 2]}'
    text += " " * (MAX_CONFIG_BYTES - len(text))
    result = runner.invoke(app, ["submit", "math_chain", "--config-file", "-", "-q"], input=text)
    assert result.exit_code == 0, result.stderr
    shown = runner.invoke(app, ["result", result.stdout.strip(), "--json"])
    assert json.loads(shown.stdout)["result"] == 3


def test_stdin_not_utf8_is_refused(runner: CliRunner) -> None:
    result = runner.invoke(app, ["submit", "math_chain", "--config-file", "-"], input=b"\xff\xfe")
    assert result.exit_code == 2
    assert result.stderr == "taskchain: error: stdin is not UTF-8 text\n"


def test_an_endless_device_is_refused_after_the_limit(runner: CliRunner) -> None:
    started = time.monotonic()
    result = runner.invoke(app, ["submit", "math_chain", "--config-file", "/dev/zero"])
    assert result.exit_code == 2
    assert result.stderr == (
        "taskchain: error: config file '/dev/zero' is over the 4 MiB limit for a config\n"
    )
    assert time.monotonic() - started < 5
