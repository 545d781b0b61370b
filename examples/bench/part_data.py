"""Issue 10, target 4: data_chain clean+transform+analyze of a CSV (1M rows, 10 columns)
against the same work as an eager polars script and as a pandas script, each in a process
of its own: wall time and peak RSS (the child's own rusage).

Also, without targets: each side's CPU time (user + system, the child's rusage), which a busy
machine disturbs less than wall time; and the polars script writing the two tables that
data_chain keeps (`data_polars.py --write`), which shows what those files cost; and the
floor: that script, after importing what a command recording a chain loads (`--cli`), the
least any data_chain under the contract does (its two tables, a CLI with a store) if the
rest of its work cost what polars' own does."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import CLI, HERE, PY, Row, base_env, log, paired
from sides import Context

TIME_TARGET = 1.5  # taskchain <= 1.5x polars' time
MB = 1024 * 1024


def csv_file(ctx: Context, rows: int) -> Path:
    """The benchmark CSV (data_csv.py), cached if asked."""
    folder = ctx.cache or ctx.scratch
    path = folder / f"sales-{rows}.csv"
    if not path.exists():
        log(f"writing {rows:,} CSV rows to {path} ...")
        from data_csv import generate

        generate(path, rows)
    return path


def measure(args: list[str], env: dict[str, str]) -> tuple[float, int, float, str]:
    """Wall seconds, peak RSS (bytes), CPU seconds (user + system) and stdout of a child."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=errors)
        out = child.stdout.read() if child.stdout else b""
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        if child.stdout:
            child.stdout.close()
        if code := os.waitstatus_to_exitcode(status):
            errors.seek(0)
            text = errors.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(args[:6])} ... exited {code}:\n{text}")
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return seconds, rss, usage.ru_utime + usage.ru_stime, out.decode()


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
        "polars+files": [PY, str(HERE / "data_polars.py"), str(path), "--write", str(ctx.scratch)],
        "floor": [
            PY, str(HERE / "data_polars.py"), str(path), "--write", str(ctx.scratch), "--cli"
        ],
    }  # fmt: skip
    pandas = importlib.util.find_spec("pandas") is not None
    if pandas:
        jobs["pandas"] = [PY, str(HERE / "data_pandas.py"), str(path)]
    seconds: dict[str, list[float]] = defaultdict(list)
    rss: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
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
                    wall, peak, used, out = measure(jobs[name], env)
                except RuntimeError as exc:  # the in-process plug-in API may change
                    notes[name] = str(exc).splitlines()[0]
                    continue
                seconds[name].append(wall)
                rss[name].append(peak / MB)
                cpu[name].append(used)
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
        result.append(
            paired("data", f"{how}: CPU time", "s", cpu[name], cpu["polars"], "eager polars script")
        )
    if "polars+files" in seconds:
        for name, what in (("polars", "the polars script"), ("steps", "data_chain's steps")):
            if name not in seconds:
                continue
            result.append(
                paired(
                    "data",
                    f"{what}: CPU time (reference)",
                    "s",
                    cpu[name],
                    cpu["polars+files"],
                    "polars script writing data_chain's two tables",
                )
            )
    if "floor" in seconds:
        note = (
            "not taskchain: the polars script, writing the two tables the contract keeps, "
            "after importing what a command recording a chain loads (data_polars.py --cli)"
        )
        for values, what in ((seconds, "time"), (cpu, "CPU time")):
            result.append(
                paired(
                    "data", f"floor: {what}, {label}", "s", values["floor"], values["polars"],
                    "eager polars script", note=note,
                )
            )  # fmt: skip
    if not pandas and result:
        result[0].note = (
            notes.get("pandas") or "pandas not installed: `pip install pandas` adds its rows"
        )
    return result
