"""`submit --batch` in distributed mode: 100 chains recorded at once and run by a real worker."""

from __future__ import annotations

import json
import time

import pytest

from tests.support import proc


@pytest.mark.redis
def test_a_batch_of_100_runs_on_a_real_worker(redis_worker: dict[str, str]) -> None:
    chains = [
        {"type": "math_chain", "config": {"numbers": [n, n, n]}, "description": f"n={n}"}
        for n in range(100)
    ]
    chains[7]["id"] = "batch-seven"
    text = "".join(json.dumps(chain) + "\n" for chain in chains)
    done = proc.run(["submit", "--batch", "-", "-q"], redis_worker, input=text)
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) == 100 and len(set(ids)) == 100 and ids[7] == "batch-seven"
    # Without --wait it returns once queued; the worker runs them all.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listed = proc.run(["list", "--json", "--limit", "200"], redis_worker)
        docs = json.loads(listed.stdout)
        if sum(doc["status"] == "COMPLETED" for doc in docs) == 100:
            break
        time.sleep(0.5)
    results = {doc["id"]: doc for doc in docs}
    assert set(results) == set(ids)
    assert all(doc["status"] == "COMPLETED" for doc in docs), docs
    one = json.loads(proc.run(["result", ids[42], "--json"], redis_worker).stdout)
    assert (one["id"], one["status"], one["result"], one["error"]) == (
        ids[42],
        "COMPLETED",
        126,
        None,
    )
    # The same batch again (with --wait): the named chain exists and is not run again.
    again = proc.run(["submit", "--batch", "-", "--wait", "--timeout", "120s"], redis_worker,
                     input=json.dumps(chains[7]) + "\n")  # fmt: skip
    assert (again.returncode, again.stdout) == (0, "batch-seven\n"), again.stderr
    status = json.loads(proc.run(["status", "batch-seven", "--json"], redis_worker).stdout)
    assert [step["attempts"] for step in status["steps"]] == [1, 1]
