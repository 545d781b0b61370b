"""Issue 10, target 4: data_chain clean+transform+analyze of a CSV (1M rows, 10 columns)
against the same work as an eager polars script and as a pandas script, each in a process
of its own: wall time and peak RSS (the child's own rusage)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections import defaultdict
from pathlib import Path

from common import CLI, HERE, PY, ROOT, Row, base_env, log, measure, paired
from sides import Context

TIME_TARGET = 1.5  # taskchain <= 1.5x polars' time
MB = 1024 * 1024


def csv_file(ctx: Context, rows: int) -> Path:
    """The benchmark CSV (examples/benchmark_data_chain.py's generator), cached if asked."""
    folder = ctx.cache or ctx.scratch
    path = folder / f"sales-{rows}.csv"
    if not path.exists():
        log(f"writing {rows:,} CSV rows to {path} ...")
        sys.path.insert(0, str(ROOT / "examples"))
        from benchmark_data_chain import generate

        generate(path, rows)
    return path


def run(ctx: Context) -> list[Row]:
    rows = ctx.rows or ctx.n(20_000, 1_000_000)
    path = csv_file(ctx, rows)
    workspace = path.parent
    env = base_env(
        TASKCHAIN_WORKSPACE=str(workspace),
        TASKCHAIN_DATABASE_URL=f"sqlite:///{ctx.scratch / 'data-store.db'}",
    )
    jobs = {
        "polars": [PY, str(HERE / "data_polars.py"), str(path)],
        "submit": [
            *CLI,
            "submit",
            "data_chain",
            "--input",
            path.name,
            "--steps",
            "clean,transform,analyze",
            "-q",
        ],
        "steps": [PY, str(HERE / "data_steps.py"), str(workspace), path.name, "bench-steps"],
    }
    pandas = importlib.util.find_spec("pandas") is not None
    if pandas:
        jobs["pandas"] = [PY, str(HERE / "data_pandas.py"), str(path)]
    seconds: dict[str, list[float]] = defaultdict(list)
    rss: dict[str, list[float]] = defaultdict(list)
    notes: dict[str, str] = {}
    order = list(jobs)
    try:
        for round_ in range(ctx.r(1, 3)):
            log(f"data round {round_ + 1}")
            shift = round_ % len(order)
            for name in order[shift:] + order[:shift]:
                if name in notes:
                    continue
                try:
                    wall, peak, out = measure(jobs[name], env)
                except RuntimeError as exc:  # the in-process plug-in API may change
                    notes[name] = str(exc).splitlines()[0]
                    continue
                seconds[name].append(wall)
                rss[name].append(peak / MB)
                if name == "submit":
                    shutil.rmtree(workspace / ".taskchain" / out.strip(), ignore_errors=True)
    finally:
        shutil.rmtree(workspace / ".taskchain" / "bench-steps", ignore_errors=True)
    if "polars" not in seconds:
        raise RuntimeError(f"the polars script failed: {notes.get('polars')}")
    if "pandas" in notes:
        log(f"data: the pandas script failed: {notes['pandas']}")
        pandas = False
    label = f"{rows:,} rows"
    result = []
    for name, how in (
        ("submit", "taskchain submit data_chain (embedded)"),
        ("steps", "data_chain steps in one process"),
    ):
        if name not in seconds:
            log(f"data: {how} skipped: {notes.get(name)}")
            continue
        result.append(
            paired(
                "data",
                f"{how}: time, {label}",
                "s",
                seconds[name],
                seconds["polars"],
                "eager polars script",
                target=TIME_TARGET,
            )
        )
        result.append(
            paired(
                "data",
                f"{how}: peak RSS",
                "MB",
                rss[name],
                rss["polars"],
                "eager polars script",
                target=1.0,
            )
        )
        if pandas:
            result.append(
                paired(
                    "data",
                    f"{how}: time",
                    "s",
                    seconds[name],
                    seconds["pandas"],
                    "pandas script (faster than it)",
                    target=1.0,
                )
            )
    if not pandas and result:
        result[0].note = (
            notes.get("pandas") or "pandas not installed: `pip install pandas` adds its rows"
        )
    return result
