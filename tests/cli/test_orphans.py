"""An embedded chain whose runner died (its lease expired): every read shows it orphaned,
`watch` and `result --wait` stop waiting on it, and `retry` resumes it.

The dead runner is simulated in the store (a chain held by a token no process has, its lease
in the past); tests/integration/test_orphans.py kills a real `taskchain submit`.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from taskchain.engine import owner
from taskchain.engine.submit import prepare
from taskchain.store import Status, queries, session, transitions
from taskchain.store.models import utcnow
from taskchain.timeparse import iso
from tests.support.cli import invoke, status

#: Every test here runs on SQLite and on PostgreSQL (the `store_url` fixture's two params):
#: leases, reopen and the recovery sweep compare times in SQL.
pytestmark = pytest.mark.usefixtures("store_url")

DEAD = "deadhost:4242:abcd1234"  # host:pid:nonce, as engine/owner.py writes it
STEP_TOKEN = "embedded-7@deadhost:4242:ffff0000"


def orphan(*, lease_left: float = -1.0) -> str:
    """A 3-step math chain (1+2+3+4: results 3, 6, 10) whose runner completed step 1, was
    running step 2, and renews its lease no more: it expires `lease_left` seconds from now."""
    chain, steps = prepare("math_chain", {"numbers": [1, 2, 3, 4]})
    chain.runner = DEAD
    chain.runner_lease_expires_at = utcnow() + timedelta(seconds=lease_left)
    gone = utcnow() + timedelta(seconds=lease_left)
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=steps)
    with session(write=True) as s:
        for index in (0, 1):
            assert transitions.claim_step(
                session=s, chain_id=chain.id, index=index, token=STEP_TOKEN, lease_until=gone
            )
        assert transitions.complete_step(
            session=s, chain_id=chain.id, index=0, token=STEP_TOKEN, result=3, last=False
        )
    return chain.id


def reason(chain_id: str) -> str:
    with session() as s:
        expired = queries.get_chain(session=s, chain_id=chain_id).chain.runner_lease_expires_at
    return (
        f"chain {chain_id} is orphaned: its embedded runner (pid 4242 on host deadhost) died "
        f"(its lease expired at {iso(expired)}); resume it with: taskchain retry {chain_id}"
    )


def test_status_shows_an_orphaned_chain_in_text_and_json(runner: CliRunner) -> None:
    chain_id = orphan()
    text = invoke(runner, "status", chain_id)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0] == f"chain {chain_id}  math_chain  RUNNING ORPHANED"
    assert lines[-1] == "orphaned: " + reason(chain_id).split(" is orphaned: ", 1)[1]
    doc = status(runner, chain_id)
    assert (doc["status"], doc["orphaned"]) == ("RUNNING", True)
    # Reading does not rewrite the record: the status stays what the runner left.
    with session() as s:
        assert queries.get_chain(session=s, chain_id=chain_id).chain.status == Status.RUNNING


def test_a_chain_whose_runner_lives_is_not_orphaned_and_not_retried(runner: CliRunner) -> None:
    chain_id = orphan(lease_left=300)
    assert status(runner, chain_id)["orphaned"] is False
    assert "ORPHANED" not in invoke(runner, "status", chain_id).stdout
    refused = invoke(runner, "retry", chain_id)
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"taskchain: error: chain {chain_id} is RUNNING: only FAILED, CANCELLED or orphaned "
        "chains can be retried\n"
    )
    unfinished = invoke(runner, "result", chain_id)
    assert unfinished.exit_code == 124


def test_list_and_stats_count_orphans(runner: CliRunner) -> None:
    chain_id = orphan()
    alive = orphan(lease_left=300)
    table = invoke(runner, "list")
    rows = {line.split()[0]: line for line in table.stdout.splitlines() if line.strip()}
    assert "RUNNING ORPHANED" in rows[chain_id]
    assert "ORPHANED" not in rows[alive]
    listed = {d["id"]: d["orphaned"] for d in json.loads(invoke(runner, "list", "--json").stdout)}
    assert listed == {chain_id: True, alive: False}
    stats = json.loads(invoke(runner, "stats", "--json").stdout)
    assert (stats["by_status"]["RUNNING"], stats["orphaned"]) == (2, 1)


@pytest.mark.parametrize("wait", [False, True])
def test_result_of_an_orphan_says_why_and_exits_1(runner: CliRunner, wait: bool) -> None:
    chain_id = orphan()
    args = ["result", chain_id, *(["--wait", "--timeout", "60s"] if wait else [])]
    done = invoke(runner, *args)
    assert (done.exit_code, done.stdout) == (1, "")
    assert done.stderr == reason(chain_id) + "\n"
    as_json = invoke(runner, *args, "--json")
    assert (as_json.exit_code, as_json.stderr) == (1, reason(chain_id) + "\n")
    doc = json.loads(as_json.stdout)
    assert (doc["status"], doc["result"], doc["error"]) == ("RUNNING", None, None)


def test_watch_id_on_an_orphan_ends_at_once_with_exit_1(runner: CliRunner) -> None:
    chain_id = orphan()
    done = invoke(runner, "watch", chain_id, "--timeout", "60s")
    assert done.exit_code == 1
    short = chain_id[:12]
    assert done.stdout.splitlines() == [
        f"{short} step 1/3 add 2 COMPLETED 3",
        f"{short} step 2/3 add 3 RUNNING",
    ]
    assert done.stderr == f"taskchain: error: {reason(chain_id)}\n"


def test_watch_without_id_does_not_wait_on_an_orphan(runner: CliRunner) -> None:
    chain_id = orphan()
    done = invoke(runner, "watch", "--timeout", "60s")
    assert (done.exit_code, done.stdout) == (0, "")
    assert done.stderr == f"not watched: {reason(chain_id)}\nno active chains\n"


def test_watch_without_id_stops_when_a_watched_chain_is_orphaned(runner: CliRunner) -> None:
    chain_id = orphan(lease_left=2.0)  # alive when watch starts, dead 2 s later
    done = invoke(runner, "watch", "--timeout", "60s")
    assert done.exit_code == 1, done.output
    short = chain_id[:12]
    detail = reason(chain_id).split(" is orphaned: ", 1)[1]
    assert done.stdout.splitlines() == [
        f"{short} math_chain RUNNING (3 steps)",
        f"{short} step 1/3 add 2 COMPLETED 3",
        f"{short} step 2/3 add 3 RUNNING",
        f"{chain_id} math_chain ORPHANED: {detail}",
        "watched 1 chain(s): 1 RUNNING (1 of them orphaned: their runner died; taskchain retry ID)",
    ]


def test_retry_resumes_an_orphan_from_its_first_unfinished_step(runner: CliRunner) -> None:
    chain_id = orphan()
    done = invoke(runner, "retry", chain_id, "-q")
    assert done.exit_code == 0, done.output
    doc = status(runner, chain_id)
    assert (doc["status"], doc["result"], doc["orphaned"], doc["attempt"]) == (
        "COMPLETED", 10, False, 2,
    )  # fmt: skip
    assert [(s["result"], s["attempts"]) for s in doc["steps"]] == [(3, 1), (6, 2), (10, 1)]
    with session(write=True) as s:
        chain = queries.get_chain(session=s, chain_id=chain_id).chain
        assert chain.runner == owner.token()  # this process took it over
        # The dead runner, were it to wake, could record nothing.
        assert not transitions.complete_step(
            session=s, chain_id=chain_id, index=1, token=STEP_TOKEN, result=-1, last=False
        )
        assert transitions.renew_runner_lease(session=s, runner=DEAD, lease_until=utcnow()) == 0


def test_reopen_takes_an_orphan_only_once_its_lease_has_expired() -> None:
    alive, dead = orphan(lease_left=300), orphan()
    with session(write=True) as s:
        assert transitions.reopen_chain(session=s, chain_id=alive, new_task_ids={1: "a"}) is None
        assert transitions.reopen_chain(session=s, chain_id=dead, new_task_ids={1: "b"}) == 1
        # Taken over: a second retry racing the first finds it no longer orphaned.
        assert transitions.reopen_chain(
            session=s, chain_id=dead, new_task_ids={1: "c"}, runner="me:1:x",
            runner_lease_until=utcnow() + timedelta(minutes=1),
        ) is None  # fmt: skip


def test_the_recovery_sweep_leaves_embedded_chains_to_their_process() -> None:
    """A distributed worker sharing the store must not run an orphan behind `retry`'s back."""
    chain_id = orphan()
    later = utcnow() + timedelta(hours=1)
    with session() as s:
        stale = queries.stale_steps(session=s, now=later, pending_after=later)
    assert chain_id not in {c for c, _ in stale}
    with session(write=True) as s:  # the same chain run by workers (no runner) is swept
        chain = s.get(queries.ChainRecord, chain_id)
        assert chain is not None
        chain.runner = None
    with session() as s:
        stale = queries.stale_steps(session=s, now=later, pending_after=later)
    assert (chain_id, 1) in stale
