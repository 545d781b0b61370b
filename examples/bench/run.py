"""taskchain against bare Celery, polars and pandas, side by side (issues 9 and 10).

    python examples/bench/run.py [--quick] [--postgres URL] [--json FILE]
                                 [--parts throughput,latency,submit,scale,store,startup,data]

Starts a private redis-server on a free port (nothing kept on disk) and, with --postgres,
creates and drops its own databases on that server. Every part runs its sides in interleaved
rounds and reports, per row, both medians and the median of the per-round ratios, and whether
the issue's target is met. --quick runs every part at tiny sizes (a smoke test, not a
measurement). See the README's Benchmarks section.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, log, print_table, private_redis
from sides import Context

PARTS = ("throughput", "latency", "submit", "scale", "store", "startup", "data")


def part_runner(name: str):  # type: ignore[no-untyped-def]
    """Import a part only when asked for (the data part needs polars, the store part SQL)."""
    if name == "scale":
        from part_throughput import run_scale

        return run_scale
    module = __import__(f"part_{name}")
    return module.run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--postgres", metavar="URL", help="also a PostgreSQL store on this server")
    parser.add_argument("--json", metavar="FILE", type=Path, help="write the rows as JSON here")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated, of: " + ", ".join(PARTS)
    )
    parser.add_argument("--rounds", type=int, help="rounds per part (default: per part)")
    parser.add_argument(
        "--fill",
        type=int,
        help="store part: chains in the big store (default 1,000,000; quick 2,000)",
    )
    parser.add_argument(
        "--rows", type=int, help="data part: CSV rows (default 1,000,000; quick 20,000)"
    )
    parser.add_argument(
        "--cache", type=Path, help="keep the filled store and the CSV here, reuse them next time"
    )
    opts = parser.parse_args()
    parts = [p.strip() for p in opts.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s): {', '.join(unknown)}")
    if opts.cache:
        opts.cache.mkdir(parents=True, exist_ok=True)

    scratch = Path(tempfile.mkdtemp(prefix="taskchain-bench-"))
    rows: list[Row] = []
    started = time.time()
    seconds: dict[str, float] = {}
    try:
        with private_redis() as redis:
            ctx = Context(
                redis=redis,
                postgres=opts.postgres,
                scratch=scratch,
                cache=opts.cache,
                quick=opts.quick,
                rounds=opts.rounds,
                fill=opts.fill,
                rows=opts.rows,
            )
            for name in parts:
                log(f"part {name} ...")
                start = time.perf_counter()
                rows += part_runner(name)(ctx)
                seconds[name] = time.perf_counter() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(rows)
    missed = [r for r in rows if r.met is False]
    print(
        f"\n{sum(r.met is True for r in rows)} targets met, {len(missed)} not met "
        f"({time.time() - started:.0f} s)"
    )
    if opts.json:
        document = {
            "quick": opts.quick,
            "postgres": bool(opts.postgres),
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "seconds": seconds,
            "rows": [row.as_json() for row in rows],
        }
        opts.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
