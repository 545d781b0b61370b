"""The benchmark in examples/bench/ runs end to end (a smoke test: sizes are tiny and nothing
is timed against a target here; the figures only have to be real)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("throughput", "latency", "submit", "startup")


@pytest.mark.redis
def test_quick_benchmark_gives_every_row_both_sides_and_a_ratio(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:  # the benchmark starts a private one
        if os.environ.get("TASKCHAIN_REQUIRE_SERVICES") == "1":
            pytest.fail("redis-server is not installed and TASKCHAIN_REQUIRE_SERVICES=1")
        pytest.skip("redis-server is not installed")
    out = tmp_path / "out.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCHAIN_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples/bench/run.py"), "--quick",
         "--parts", ",".join(PARTS), "--json", str(out)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(out.read_text())
    assert document["quick"] is True
    rows = document["rows"]
    assert {row["part"] for row in rows} == set(PARTS)
    # Each taskchain row against each baseline: 2 workloads x 3 Celery configurations, one
    # latency row per Celery configuration and one with task events off (against Celery
    # without them), the floor (bare Celery with two SQLite writes per task; the PostgreSQL
    # floor needs --postgres), 2 submit sizes, 9 commands at start-up and the 5 of them that read the
    # store or submit again against floors that also skip exit-time GC.
    counts = {part: sum(row["part"] == part for row in rows) for part in PARTS}
    assert counts["throughput"] >= 6 and counts["latency"] == 5 and counts["submit"] >= 2
    assert counts["startup"] == 9 + 5
    for row in rows:
        for key in ("ours", "theirs", "ratio"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["part"], row["name"], key)
        assert row["rounds"] >= 1
        # --quick runs one round, so the median of the per-round ratios is the one ratio.
        assert row["ratio"] == pytest.approx(row["ours"] / row["theirs"]), row["name"]
        assert row["met"] in (True, False, None)
    # The table went to stdout with the same rows.
    assert all(row["name"] in done.stdout for row in rows)
    # Task events off is measured too, like for like with bare Celery without events.
    quiet = [row for row in rows if "task events off" in row["name"]]
    assert {row["part"] for row in quiet} == {"throughput", "latency", "submit"}
    floors = [row for row in rows if "floor:" in row["name"]]
    # The store floor (SQLite, as there is no --postgres): both throughput workloads, the
    # latency chain, and a 10-step and a 1-step submit.
    assert {row["part"] for row in floors} == {"throughput", "latency", "submit"}
    assert len(floors) == 5
