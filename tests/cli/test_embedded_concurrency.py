"""Several shells submitting in embedded mode at once, on one SQLite store."""

from __future__ import annotations

import json
import subprocess

from tests.support.proc import run, spawn_taskchain


def test_concurrent_embedded_submits_are_all_recorded(env: dict[str, str]) -> None:
    shells = [
        spawn_taskchain(
            ["submit", "math_chain", "--numbers", str(k), "10", "100", "-q"],
            env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(8)
    ]
    outputs = [shell.communicate(timeout=120) for shell in shells]
    assert [shell.returncode for shell in shells] == [0] * 8, [err for _, err in outputs]
    ids = [out.strip() for out, _ in outputs]
    listed = json.loads(run(["list", "--json", "--limit", "0"], env).stdout)
    assert sorted(c["id"] for c in listed) == sorted(ids)
    assert sorted(c["result"] for c in listed) == [k + 110 for k in range(8)]
    assert {c["status"] for c in listed} == {"COMPLETED"}
