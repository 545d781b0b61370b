"""data_chain on a big CSV, side by side with polars' own `read_csv(path).describe()`.

    python examples/benchmark_data_chain.py [--rows 1000000] [--csv PATH] [--runs 3] [--no-cli]

Writes a deterministic CSV of ROWS rows and 10 columns (about 70 MB at a million rows), with
a little dirt in it (padded cells, blank, incomplete and duplicate rows), into a temporary
folder, or at PATH (kept, and reused when it exists). Then measures, each in a subprocess of
its own so that its peak RSS is its own (wait4's ru_maxrss):

    baseline  python -c "import polars as pl; pl.read_csv(PATH).describe()"
    steps     data_chain's clean, transform, analyze: the plug-in's run_step, in one process
    submit    taskchain submit data_chain --input ... --steps clean,transform,analyze
              (embedded mode: a temporary SQLite store; the whole CLI, as a user runs it)

and prints the median wall time and the highest peak RSS of --runs runs, their ratios to the
baseline and to the file's size, and whether the steps meet the targets (both ratios <= 2).
Runs are interleaved, so a busy machine slows all alike; still, measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = "Order ID,Order Date,Region,Product,Quantity,Unit Price,Discount,Customer,Channel,Returned"
REGIONS = ("North", "South", "East", "West", "Central")
PRODUCTS = tuple(f"Product {letter}{n}" for letter in "ABCDEFGH" for n in range(1, 26))
CHANNELS = ("online", "store", "phone", "partner")

TARGET = 2.0  # the limit for both ratios
BASELINE = "import sys, polars as pl; pl.read_csv(sys.argv[1]).describe()"
FLOOR = "import polars"
STEPS = """
import json, sys, time
from pathlib import Path
from taskchain.chains import StepContext, get_type

kind = get_type("data_chain")
workspace, name, chain_id = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
config = kind.parse({"data_input": name, "processing_steps": ["clean", "transform", "analyze"]})
kind.check(config, workspace)
plan = kind.plan(config)
previous, seconds = None, {}
for index, step in enumerate(plan):
    start = time.perf_counter()
    ctx = StepContext(chain_id=chain_id, index=index, step_count=len(plan), workspace=workspace)
    previous = kind.run_step(config, step, previous, ctx)
    seconds[step.name] = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": previous["rows"]}))
"""


def generate(path: Path, rows: int, seed: int = 20240101) -> None:
    """The same file for the same rows and seed: 10 columns, ~1.4% of the rows dirty, in ways
    that polars' read_csv (the baseline) accepts too."""
    rng = random.Random(seed)
    recent: list[str] = []
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write(HEADER + "\n")
        lines = []
        for i in range(rows):
            roll = rng.random()
            if roll < 0.001 and recent:
                line = rng.choice(recent)  # a duplicate of a recent row
            elif roll < 0.002:
                line = rng.choice(("", ",,,,,,,,,"))  # a blank row
            else:
                cells = [
                    str(100_000 + i),
                    f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    rng.choice(REGIONS),
                    rng.choice(PRODUCTS),
                    str(rng.randint(1, 50)),
                    f"{rng.randint(100, 99_999) / 100:.2f}",
                    rng.choice(("0", "0.05", "0.1", "0.15")),
                    f"C{rng.randint(1, 99_999):06d}",
                    rng.choice(CHANNELS),
                    rng.choice(("true", "false")),
                ]
                if roll < 0.004:
                    cells[rng.randrange(1, 10)] = ""  # an incomplete row
                elif roll < 0.014:
                    k = rng.choice((2, 3, 7, 8))  # text only: read_csv fails on " 1.5"
                    cells[k] = f"  {cells[k]} "  # whitespace to trim
                line = ",".join(cells)
                recent = [*recent[-99:], line]
            lines.append(line)
            if len(lines) == 100_000:
                file.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            file.write("\n".join(lines) + "\n")


def measure(args: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes and stdout of one child process."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=errors)
        out = child.stdout.read() if child.stdout else b""
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not a running max
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            text = errors.read().decode(errors="replace")
            raise SystemExit(f"{' '.join(args[:4])}... exited {child.returncode}:\n{text}")
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return seconds, rss, out.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--csv", type=Path, help="where to write the CSV (reused if it exists)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip `taskchain submit`")
    opts = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="taskchain-data-bench-"))
    path = (opts.csv or scratch / f"sales-{opts.rows}.csv").resolve()
    if not path.exists():
        print(f"writing {opts.rows:,} rows to {path} ...", file=sys.stderr)
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(path, opts.rows)
    workspace, size, rows = path.parent, path.stat().st_size, _lines(path) - 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCHAIN_")}
    env |= {
        "TASKCHAIN_WORKSPACE": str(workspace),
        "TASKCHAIN_DATABASE_URL": f"sqlite:///{scratch / 'store.db'}",
    }
    py = sys.executable
    runs: dict[str, list[tuple[float, int]]] = {}
    step_seconds: list[dict[str, float]] = []
    chain_ids: list[str] = []
    try:
        for n in range(opts.runs):
            print(f"run {n + 1}/{opts.runs} ...", file=sys.stderr)
            for label, args in (
                ("floor", [py, "-c", FLOOR]),
                ("baseline", [py, "-c", BASELINE, str(path)]),
                ("steps", [py, "-c", STEPS, str(workspace), path.name, f"bench-steps-{n}"]),
            ):
                seconds, rss, out = measure(args, env)
                runs.setdefault(label, []).append((seconds, rss))
                if label == "steps":
                    step_seconds.append(json.loads(out)["seconds"])
                    chain_ids.append(f"bench-steps-{n}")
            if not opts.no_cli:
                cli = [py, "-m", "taskchain", "submit", "data_chain", "--input", path.name,
                       "--steps", "clean,transform,analyze", "-q"]  # fmt: skip
                seconds, rss, out = measure(cli, env)
                runs.setdefault("submit", []).append((seconds, rss))
                chain_ids.append(out.strip())
    finally:
        for chain_id in chain_ids:
            shutil.rmtree(workspace / ".taskchain" / chain_id, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)  # the store, and the CSV unless --csv
    report(path, size, rows, runs, step_seconds)  # the CSV may be gone (no --csv)


def _lines(path: Path) -> int:
    with path.open("rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 24), b""))


def report(
    path: Path,
    size: int,
    rows: int,
    runs: dict[str, list[tuple[float, int]]],
    step_seconds: list[dict[str, float]],
) -> None:
    wall = {k: statistics.median(s for s, _ in v) for k, v in runs.items()}
    peak = {k: max(r for _, r in v) for k, v in runs.items()}
    mb = 1024 * 1024
    print(f"\n{path}: {rows:,} rows, {size / mb:.1f} MB, {len(runs['baseline'])} runs")
    print(f"{'':44} {'wall (median)':>14} {'peak RSS (max)':>15} {'time/baseline':>14} "
          f"{'RSS/file':>9}")  # fmt: skip
    names = {
        "floor": "python -c 'import polars' (for scale)",
        "baseline": "polars read_csv(path).describe() (baseline)",
        "steps": "data_chain clean,transform,analyze (run_step)",
        "submit": "taskchain submit data_chain (embedded)",
    }
    for key, label in names.items():
        if key in wall:
            print(
                f"{label:44} {wall[key]:>12.2f} s {peak[key] / mb:>12.0f} MB "
                f"{wall[key] / wall['baseline']:>13.2f}x {peak[key] / size:>8.2f}x"
            )
    parts = {name: statistics.median(s[name] for s in step_seconds) for name in step_seconds[0]}
    print("  steps inside the process: " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()))
    for what, ratio, of in (
        ("wall time", wall["steps"] / wall["baseline"], "the baseline's"),
        ("peak RSS", peak["steps"] / size, "the file's size"),
    ):
        verdict = "met" if ratio <= TARGET else "NOT met"
        print(f"target: steps {what} <= {TARGET:g}x {of}: {ratio:.2f}x, {verdict}")


if __name__ == "__main__":
    main()
