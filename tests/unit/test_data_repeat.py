"""data_chain's analyze gives the same figures every time it reads the same table in memory:
a mean or std must not change in its last digit from one run to the next (a step that runs
again after a crash writes the same bytes)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from taskchain.chains import _data_frames
from taskchain.chains._data_ops import analyze
from taskchain.chains._data_read import Table

ROWS = 400_000  # several of the streaming engine's morsels, whose sums finish in any order


def test_analyze_in_memory_gives_the_same_figures_every_run(tmp_path: Path) -> None:
    generator = __import__("random").Random(7)
    values = [generator.uniform(0, 1000) for _ in range(ROWS)]
    path = tmp_path / "t.parquet"
    pl.DataFrame({"price": values, "share": [v / 7 for v in values]}).write_parquet(path)
    assert _data_frames.in_memory(path, csv=False)
    source = Table(path=path, rel="t.parquet", csv=False)
    summaries = {
        json.dumps(analyze(source, tmp_path / f"{run}.json", lambda _: None), sort_keys=True)
        for run in range(8)
    }
    assert len(summaries) == 1
    files = {(tmp_path / f"{run}.json").read_bytes() for run in range(8)}
    assert len(files) == 1
    price = json.loads(summaries.pop())["columns"]["price"]
    assert price["count"] == ROWS and price["distinct"] == len(set(values))
    assert abs(price["mean"] - sum(values) / ROWS) < 1e-9
