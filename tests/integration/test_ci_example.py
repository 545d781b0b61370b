"""examples/ci.sh, run as a CI system would: against Redis with a real worker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import proc

pytestmark = pytest.mark.redis

SCRIPT = Path(__file__).parents[2] / "examples" / "ci.sh"
BIN = str(Path(sys.executable).parent)  # where `taskchain` and `python3` are installed


def ci(env: dict[str, str], *args: str, path: str | None = None, **extra: str):  # type: ignore[no-untyped-def]
    """Run the example job with CI=true, as a CI runner would; `path` replaces PATH."""
    job_env = {**env, "CI": "true", "PATH": path or f"{BIN}:{env.get('PATH', os.defpath)}", **extra}
    return subprocess.run(
        ["/bin/bash", str(SCRIPT), *args], env=job_env, capture_output=True, text=True, timeout=120
    )


def chain_id(job: subprocess.CompletedProcess[str]) -> str:
    match = re.search(r"^ci: chain ([0-9a-f]{32}): ", job.stdout, re.M)
    assert match, job.stdout + job.stderr
    return match.group(1)


def test_a_good_chain_passes_the_job(redis_worker: dict[str, str]) -> None:
    job = ci(redis_worker)
    assert job.returncode == 0, job.stdout + job.stderr
    found = chain_id(job)
    lines = job.stdout.splitlines()
    assert lines[0] == f"ci: chain {found}: math_chain --numbers 1 2 3"
    # A step may already have started (or finished) when the watch begins: RUNNING lines vary.
    assert [line for line in lines[1:-2] if not line.endswith(" RUNNING")] == [
        f"{found[:12]} step 1/2 add 2 COMPLETED 3",
        f"{found[:12]} step 2/2 add 3 COMPLETED 6",
    ]
    assert re.fullmatch(rf"{found} math_chain COMPLETED in \S+: result 6", lines[-2])
    assert lines[-1] == f"ci: chain {found} COMPLETED: result 6"
    assert "\x1b" not in job.stdout + job.stderr  # CI logs get no escape codes
    assert job.stderr == ""


def test_a_failing_chain_fails_the_job(redis_worker: dict[str, str]) -> None:
    job = ci(redis_worker, "math_chain", "--numbers", "1", "0", "--operation", "divide")
    assert job.returncode == 1, job.stdout + job.stderr
    found = chain_id(job)
    assert job.stderr.splitlines()[-1] == (
        f"ci: chain {found} FAILED: step 1 (divide 0) failed: division by zero (1 // 0)"
    )
    assert f"{found[:12]} step 1/1 divide 0 FAILED division by zero (1 // 0)" in job.stdout
    doc = json.loads(proc.run(["status", found, "--json"], redis_worker).stdout)
    assert doc["status"] == "FAILED"


def test_without_jq_python_reads_the_json(redis_worker: dict[str, str]) -> None:
    """PATH holding only the virtualenv: no jq, so the script parses with python3."""
    passing = ci(
        redis_worker, path=BIN, CHAIN="math_chain --numbers 2 10 --operation power", EXPECT="1024"
    )
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert passing.stdout.splitlines()[-1].endswith("COMPLETED: result 1024")
    wrong = ci(redis_worker, path=BIN, EXPECT="7")
    assert wrong.returncode == 1
    assert wrong.stderr.splitlines()[-1].endswith("result 6, expected 7")


def test_a_retried_job_with_chain_id_runs_the_chain_once(redis_worker: dict[str, str]) -> None:
    first = ci(redis_worker, CHAIN_ID="build-1234")
    again = ci(redis_worker, CHAIN_ID="build-1234")
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert (
        first.stdout.splitlines()[0]
        == again.stdout.splitlines()[0]
        == ("ci: chain build-1234: math_chain --numbers 1 2 3")
    )
    listed = json.loads(proc.run(["list", "--json"], redis_worker).stdout)
    assert [c["id"] for c in listed] == ["build-1234"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["math_chain", "--numbers", "1", "x"], 2, "ci: submit failed (exit 2)"),
        (["math_chain"], 2, "ci: submit failed (exit 2)"),
    ],
)
def test_bad_input_fails_the_job_with_its_code(
    redis_worker: dict[str, str], args: list[str], code: int, message: str
) -> None:
    job = ci(redis_worker, *args)
    assert (job.returncode, job.stderr.splitlines()[-1]) == (code, message)


def test_a_chain_with_no_worker_times_out_with_124(redis_env: dict[str, str]) -> None:
    job = ci(redis_env, WATCH_TIMEOUT="1s")
    assert job.returncode == 124, job.stdout + job.stderr
    assert job.stderr.splitlines()[-1] == "ci: watch ended with exit 124"


# ---- the workflow step (WORKFLOW=FILE) ---------------------------------------------------

FANOUT = Path(__file__).parents[2] / "examples" / "workflows" / "fanout.yaml"

BROKEN = """\
name: broken
jobs:
  divide:
    type: math_chain
    config: {operation: divide, numbers: [1, 0]}
  after:
    type: math_chain
    needs: [divide]
    config: {numbers: ["${{ jobs.divide.outputs.value }}", 1]}
  aside:
    type: math_chain
    config: {numbers: [2, 3]}
"""


def workflow_line(job: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The workflow step's last stdout line: `ci: workflow ID STATUS...`: (id, rest)."""
    match = re.fullmatch(r"ci: workflow ([0-9a-f]{32}) (.*)", job.stdout.splitlines()[-1])
    assert match, job.stdout + job.stderr
    return match.group(1), match.group(2)


def test_a_good_workflow_passes_the_job(redis_worker: dict[str, str]) -> None:
    job = ci(redis_worker, WORKFLOW=str(FANOUT))
    assert job.returncode == 0, job.stdout + job.stderr
    assert len(job.stdout.splitlines()) == 1, job.stdout  # only the workflow step ran
    found, rest = workflow_line(job)
    assert rest.startswith("COMPLETED: outputs "), rest
    outputs = json.loads(rest.removeprefix("COMPLETED: outputs "))
    assert outputs["total"] == {"value": 2870}
    assert len(outputs) == 21
    # Its progress is in the log: a plain line per job change, then the summary.
    log = job.stderr.splitlines()
    assert any(line.startswith(f"{found[:12]} job total COMPLETED ") for line in log), log
    assert re.fullmatch(
        rf"workflow {found} fanout COMPLETED in \S+: 21 jobs \(21 COMPLETED\)", log[-1]
    ), log
    assert "\x1b" not in job.stdout + job.stderr


def test_a_failing_workflow_fails_the_job(redis_worker: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN)
    job = ci(
        redis_worker, "math_chain", "--numbers", "1", "2", WORKFLOW=str(tmp_path / "broken.yaml")
    )
    assert job.returncode == 1, job.stdout + job.stderr
    # The chain step ran first and passed; then the workflow step failed the job.
    assert job.stdout.splitlines()[-1].endswith(" COMPLETED: result 3")
    found = re.search(r"^workflow ([0-9a-f]{32}) broken FAILED", job.stderr, re.M)
    assert found, job.stderr
    assert job.stderr.splitlines()[-1] == (
        f"ci: workflow {found.group(1)} FAILED: job 'divide' failed: step 1 (divide 0) failed: "
        "division by zero (1 // 0)"
    )
    doc = json.loads(proc.run(["status", found.group(1), "--json"], redis_worker).stdout)
    assert {j["name"]: j["status"] for j in doc["jobs"]} == {
        "divide": "FAILED", "after": "SKIPPED", "aside": "COMPLETED",
    }  # fmt: skip


def test_a_bad_workflow_file_fails_the_job_with_2(
    redis_worker: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text(BROKEN.replace("needs: [divide]", "needs: [nothing]"))
    job = ci(redis_worker, WORKFLOW=str(tmp_path / "bad.yaml"))
    assert job.returncode == 2, job.stdout + job.stderr
    assert (
        job.stderr.splitlines()[-1] == f"ci: workflow {tmp_path / 'bad.yaml'}: run failed (exit 2)"
    )
    assert json.loads(proc.run(["list", "--workflows", "--json"], redis_worker).stdout) == []
