"""The table work of data_chain, in polars: clean (`_data_clean`), transform, analyze.

Each operation reads one table file and writes one file, whole or not at all (a temporary
file beside the target, fsync, then os.replace), so a step that runs again after a crash
writes the same bytes. Each operation reads its source once (queries that need the same
rows share one scan). A source that fits (`_data_frames.in_memory`) is processed whole by
polars' in-memory engine, and a table written that way may stay in memory for the next step
(`_data_frames.keep`). A bigger one flows through the streaming engine in chunks, so memory
grows with what must be remembered (the hashes of the rows seen, to find duplicates; the
distinct values that analyze counts), not with the size of the file. Both ways give the same
results; a given source always takes the same way, so the same files.

`transform` (and `analyze`, for its statistics) gives each text column the first of KINDS
that holds every one of its values exactly (see `_data_read.convert`), else leaves it text.
The kind is guessed from the first SAMPLE_ROWS rows and checked on every row in the same
pass that writes or aggregates; a column that breaks its guess is typed again from all of
its values, and the pass runs once more.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskchain.chains import _data_frames
from taskchain.chains._data_read import (
    NOTES,
    PARQUET,
    PARQUET_IN_MEMORY,
    PRIVATE,
    Report,
    Table,
    atomic,
    convert,
    infer_columns,
    kind_of,
    markers_seen,
    missing,
    read_report,
    reading,
    scan,
    seen_by_column,
    snake,
    unique_names,
)
from taskchain.chains._data_stats import json_value, origins, statistics
from taskchain.errors import StepError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Table", "analyze", "transform"]

SAMPLE_ROWS = 10_000


def transform(source: Table, target: Path, report: Report, *, hold: bool = False) -> dict[str, Any]:
    """Column names snake_case and unique; text trimmed, empty text null, columns typed.
    `hold`: keep the table written for the next step."""
    import polars as pl

    memory, table = _data_frames.in_memory(source.path, source.csv), None
    with reading(source):
        values, kinds, seen = _values(source, memory)
        schema = _public(values)
        names = dict(zip(schema, unique_names(list(schema), snake), strict=True))
        report(f"typing the columns of {source.rel}")
        for attempt in range(2):
            typed, converted = _typed(values, kinds)
            out = typed.select([pl.col(converted.get(c, c)).alias(names[c]) for c in schema])
            try:
                with atomic(target) as temp:
                    checks = _misfits(typed, converted, seen)
                    if memory:
                        table, misfits = pl.collect_all([out, checks])
                    else:
                        sink = out.sink_parquet(temp, lazy=True, **PARQUET)
                        _, misfits = pl.collect_all([sink, checks], engine="streaming")
                    if wrong := _broken(misfits, converted):
                        raise _Retype(wrong)
                    if table is not None:
                        table.write_parquet(temp, **PARQUET_IN_MEMORY)
                break
            except _Retype as again:
                if attempt:
                    raise StepError(f"{source.rel} changed while it was read") from None
                kinds.update(_infer_all(values, again.columns))
        if table is not None:
            rows = table.height
        else:
            rows = int(pl.scan_parquet(target).select(pl.len()).collect().item())
        final = pl.read_parquet_schema(target)
    if hold and table is not None:
        _data_frames.hand_on(target, table)
    report(f"wrote {rows:,} rows")
    notes = {names[c]: NOTES[k] for c, k in kinds.items() if k in NOTES}
    return (
        {
            "rows": rows,
            "columns": len(names),
            "renamed": {old: new for old, new in names.items() if old != new},
            "types": {name: kind_of(dtype) for name, dtype in final.items()},
        }
        | ({"notes": notes} if notes else {})
        | read_report(source, _seen(misfits.row(0, named=True), source, kinds))
    )


class _Retype(Exception):
    """Columns broke their sampled kind: discard what was written, type them from all values."""

    def __init__(self, columns: list[str]) -> None:
        super().__init__(", ".join(columns))
        self.columns = columns


def analyze(source: Table, target: Path, report: Report) -> dict[str, Any]:
    """Rows; per column count, nulls, distinct; min, max, mean, std of numbers (min, max of
    dates). Text is typed as `transform` would type it; the table itself is not changed."""
    import polars as pl

    memory = _data_frames.in_memory(source.path, source.csv)
    with reading(source):
        values, kinds, seen = _values(source, memory)
        schema = _public(values)
        report(f"analyzing {len(schema)} columns of {source.rel}")
        for attempt in range(2):
            typed, converted = _typed(values, kinds)
            column = {c: converted.get(c, c) for c in schema}
            # Typed once, for every aggregate; one chunk, so that sums (mean, std) add in
            # the same order whether the table came from memory or from its file.
            whole = typed.collect().rechunk() if memory else None
            if whole is not None:
                typed = whole.lazy()
            dtypes = typed.collect_schema()
            origin = origins(typed, column, dtypes)
            stats = typed.select(*statistics(column, dtypes, origin), *seen)
            if whole is not None:
                # In one select, the columns are counted in parallel, not one after another.
                uniques = typed.select(
                    pl.col(v).drop_nulls().n_unique().alias(str(i))
                    for i, v in enumerate(column.values())
                )
                # The in-memory engine: the streaming one adds a column's parts in the order
                # its threads finish, so a mean could differ in its last digit run to run.
                queries = [stats, _misfits(typed, converted), uniques]
                found = pl.collect_all(queries, engine="in-memory")
                distinct = list(found[2].row(0))
            else:
                # A streaming group-by per column counts distinct values in memory that
                # grows with the number of distinct values, not of rows (n_unique() holds
                # the column).
                counts = [
                    typed.select(pl.col(v).alias(c)).drop_nulls().group_by(c).len().select(pl.len())
                    for c, v in column.items()
                ]
                found = pl.collect_all(
                    [stats, _misfits(typed, converted), *counts], engine="streaming"
                )
                distinct = [int(n.item()) for n in found[2:]]
            if not (wrong := _broken(found[1], converted)):
                break
            if attempt:
                raise StepError(f"{source.rel} changed while it was read")
            kinds.update(_infer_all(values, wrong))
    row = found[0].row(0, named=True)
    summary: dict[str, Any] = {"rows": row["rows"], "columns": {}}
    for i, (name, value) in enumerate(column.items()):
        entry = {"type": kind_of(dtypes[value]), "count": row[f"{i}:count"]}
        entry |= {"nulls": row[f"{i}:nulls"], "distinct": distinct[i]}
        for stat in ("min", "max", "mean", "std"):
            if f"{i}:{stat}" in row:
                value = row[f"{i}:{stat}"]
                if stat == "mean" and value is not None:
                    value += origin.get(name, 0)
                entry[stat] = json_value(value)
        if kinds.get(name) in NOTES:
            entry["note"] = NOTES[kinds[name]]
        summary["columns"][name] = entry
    with atomic(target) as temp:
        temp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary | read_report(source, _seen(row, source, kinds))


def _values(source: Table, whole: bool) -> tuple[pl.LazyFrame, dict[str, str], list[pl.Expr]]:
    """The table with text trimmed and empty text (or a null marker) null, the guessed kind
    of each text column, and the aggregates that find the markers seen (over private
    columns: each trimmed text, and whether each value is a marker). Tables this chain
    wrote are trimmed already (clean and transform trim) and have no markers left."""
    import polars as pl

    frame = scan(source, whole)
    text = [c for c, dtype in frame.collect_schema().items() if dtype == pl.String]
    markers = source.null_values if source.csv else ()
    seen: list[pl.Expr] = []
    if text and source.csv:
        frame = frame.with_columns(pl.col(text).str.strip_chars())
        helpers = {c: (f"{PRIVATE}text:{c}", f"{PRIVATE}marker:{c}") for c in text}
        if markers:
            seen = markers_seen(helpers, markers)
            frame = frame.with_columns(
                *(pl.col(c).alias(copy) for c, (copy, _) in helpers.items()),
                *(pl.col(c).is_in(list(markers)).alias(hit) for c, (_, hit) in helpers.items()),
            )
        present = [~missing(pl.col(c)) for c in text]
        if markers:
            present = [p & ~pl.col(helpers[c][1]) for c, p in zip(text, present, strict=True)]
        frame = frame.with_columns(
            pl.when(p).then(pl.col(c)).alias(c) for c, p in zip(text, present, strict=True)
        )
    if not text:
        return frame, {}, seen
    sample = frame.select(text).head(SAMPLE_ROWS).collect()
    return frame, infer_columns(sample), seen


def _seen(row: dict[str, Any], source: Table, kinds: dict[str, str]) -> dict[str, list[str]]:
    """The markers that `_values`' aggregates found, by column (its text columns: `kinds`)."""
    return seen_by_column(row, list(kinds), source.null_values) if source.csv else {}


def _public(frame: pl.LazyFrame) -> dict[str, Any]:
    """The table's own columns and their types, without helper columns."""
    return {c: t for c, t in frame.collect_schema().items() if not c.startswith(PRIVATE)}


def _typed(values: pl.LazyFrame, kinds: dict[str, str]) -> tuple[pl.LazyFrame, dict[str, str]]:
    """`values` plus a converted copy of each column with a kind (its name in the dict)."""
    converted = {c: f"{PRIVATE}{i}" for i, (c, k) in enumerate(kinds.items()) if k != "text"}
    exprs = [convert(c, kinds[c]).alias(name) for c, name in converted.items()]
    return (values.with_columns(exprs) if exprs else values), converted


def _misfits(
    typed: pl.LazyFrame, converted: dict[str, str], more: list[pl.Expr] | None = None
) -> pl.LazyFrame:
    """Per converted column, how many values did not fit (all zero when the guesses hold);
    `more` aggregates in the same select."""
    import polars as pl

    checks = [
        (pl.col(c).is_not_null() & pl.col(v).is_null()).sum().alias(c) for c, v in converted.items()
    ]
    checks += more or []
    return typed.select(checks) if checks else pl.LazyFrame({PRIVATE: [0]})


def _broken(misfits: pl.DataFrame, converted: dict[str, str]) -> list[str]:
    row = misfits.row(0, named=True)
    return [column for column in converted if row[column]]


def _infer_all(values: pl.LazyFrame, columns: list[str]) -> dict[str, str]:
    # One column at a time: a table that streams may not fit in memory whole.
    return {c: infer_columns(values.select(c).collect(engine="streaming"))[c] for c in columns}
