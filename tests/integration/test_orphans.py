"""A real embedded `taskchain submit`, killed with SIGKILL mid-chain: once its lease expires
every read shows the chain orphaned, `watch` stops waiting on it, and `retry` finishes it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from taskchain.store import Status, queries, session
from taskchain.timeparse import iso
from tests.support import proc
from tests.support.chains import executions

LEASE = 5  # seconds; the runner renews every third of it
SLOW = json.dumps({"steps": [{"sleep": 0.1}, {"sleep": 12.0}, {"sleep": 0.1}]})


def view(chain_id: str) -> queries.ChainView:
    with session() as s:
        return queries.get_chain(session=s, chain_id=chain_id)


def until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `check()` holds; fails the test after `timeout`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"not within {timeout}s: {what}"
        time.sleep(0.1)
    return time.monotonic() - start


def test_a_killed_embedded_submit_leaves_an_orphan_that_retry_finishes(
    env: dict[str, str], workspace: Path
) -> None:
    penv = {**env, "TASKCHAIN_PLUGINS": "tests.support.chains", "TASKCHAIN_STEP_LEASE": str(LEASE)}
    submitter = subprocess.Popen(
        [*proc.TASKCHAIN, "submit", "probe_chain", "--config", SLOW, "-q"],
        env=penv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watcher: subprocess.Popen[str] | None = None
    try:
        assert submitter.stdout is not None
        chain_id = submitter.stdout.readline().strip()
        assert len(chain_id) == 32, submitter.communicate()
        until(lambda: view(chain_id).steps[1].status == Status.RUNNING, 30, "step 2 running")
        # `watch` without an id, started while the chain runs: it must end once it is orphaned.
        watcher = subprocess.Popen(
            [*proc.TASKCHAIN, "watch", "--timeout", "120s"],
            env=penv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # Past the lease taken at submit: only the heartbeat keeps the chain its runner's.
        until(lambda: view(chain_id).chain.runner_lease_expires_at is not None, 5, "lease")
        time.sleep(LEASE + 1)
        alive = proc.run(["status", chain_id, "--json"], penv)
        assert json.loads(alive.stdout)["orphaned"] is False, alive.stdout
        assert view(chain_id).steps[1].status == Status.RUNNING  # still in the 12 s step
        submitter.send_signal(signal.SIGKILL)
        assert submitter.wait(timeout=10) == -signal.SIGKILL
        seen = until(lambda: queries.is_orphaned(view(chain_id).chain), 3 * LEASE, "orphaned")
        print(f"[figure] orphaned {seen:.1f}s after the SIGKILL (lease {LEASE}s)")
        assert seen <= LEASE + 2

        watched = watcher.communicate(timeout=30)
        assert watcher.returncode == 1, watched
        assert watched[0].splitlines()[-1] == (
            "watched 1 chain(s): 1 RUNNING (1 of them orphaned: their runner died; taskchain "
            "retry ID)"
        )

        doc = json.loads(proc.run(["status", chain_id, "--json"], penv).stdout)
        assert (doc["status"], doc["orphaned"]) == ("RUNNING", True)
        expired = iso(view(chain_id).chain.runner_lease_expires_at)
        detail = (
            f"its embedded runner (pid {submitter.pid} on host {socket.gethostname()}) died "
            f"(its lease expired at {expired}); "
            f"resume it with: taskchain retry {chain_id}"
        )
        text = proc.run(["status", chain_id], penv).stdout.splitlines()
        assert text[0] == f"chain {chain_id}  probe_chain  RUNNING ORPHANED"
        assert text[-1] == f"orphaned: {detail}"

        started = time.monotonic()
        again = proc.run(["watch", "--timeout", "60s"], penv)
        assert (again.returncode, again.stdout) == (0, "")
        assert (
            again.stderr
            == f"not watched: chain {chain_id} is orphaned: {detail}\nno active chains\n"
        )
        assert time.monotonic() - started < 20
        one = proc.run(["watch", chain_id[:8], "--timeout", "60s"], penv)
        assert one.returncode == 1
        assert one.stderr == f"taskchain: error: chain {chain_id} is orphaned: {detail}\n"
        waited = proc.run(["result", chain_id, "--wait", "--timeout", "60s"], penv)
        assert (waited.returncode, waited.stdout) == (1, "")

        retried = proc.run(["retry", chain_id[:8]], penv, timeout=90)
        assert retried.returncode == 0, retried.stderr
        assert retried.stderr.splitlines()[0] == f"retrying chain {chain_id} from step 2"
        result = proc.run(["result", chain_id, "--json"], penv)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {
            "schema_version": 1, "id": chain_id, "status": "COMPLETED", "result": 3,
            "error": None,
        }  # fmt: skip
        # Step 1 kept its result and was not run again; the killed step 2 never finished
        # before, so each step finished exactly once.
        assert sorted(executions(workspace)) == [(chain_id, 0), (chain_id, 1), (chain_id, 2)]
        assert view(chain_id).chain.attempt == 2
    finally:
        for child in (submitter, watcher):
            if child is not None and child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(timeout=10)
