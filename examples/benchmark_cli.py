"""Wall time of whole `taskchain` commands, as a user runs them.

    python examples/benchmark_cli.py [--runs 5] [--redis redis://127.0.0.1:6379/14]

Prints the median and min of: `submit math_chain --numbers 1 2 3` embedded (a new process
each time, store in a temp dir), `status`, and, when Redis answers, a 10-step chain through
a real `taskchain worker` with `submit --wait`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "taskchain"]


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout.strip()


def report(label: str, seconds: list[float]) -> None:
    median, low = statistics.median(seconds), min(seconds)
    print(f"{label:<48} median {median:.3f}s  min {low:.3f}s  (n={len(seconds)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="taskchain-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCHAIN_")}
    env |= {
        "TASKCHAIN_DATABASE_URL": f"sqlite:///{tmp / 'store.db'}",
        "TASKCHAIN_WORKSPACE": str(tmp),
    }

    embedded = [
        timed(["submit", "math_chain", "--numbers", "1", "2", "3", "-q"], env)
        for _ in range(opts.runs)
    ]
    report("embedded: submit math_chain --numbers 1 2 3", [t for t, _ in embedded])
    report(
        "status <id> (reads the store only)",
        [timed(["status", embedded[0][1]], env)[0] for _ in range(opts.runs)],
    )

    denv = {**env, "TASKCHAIN_BROKER_URL": opts.redis}
    worker = subprocess.Popen([*CLI, "worker", "-c", "2", "-l", "WARNING"], env=denv,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(3)
        if worker.poll() is not None:
            print(f"redis: no worker could start on {opts.redis}; distributed figures skipped")
            return
        numbers = [str(n) for n in range(1, 12)]
        runs = [
            timed(["submit", "math_chain", "--numbers", *numbers, "--wait", "-q"], denv)[0]
            for _ in range(opts.runs)
        ]
        report("redis: submit --wait, 10-step math_chain", runs)
    finally:
        worker.terminate()
        worker.wait(timeout=20)


if __name__ == "__main__":
    main()
