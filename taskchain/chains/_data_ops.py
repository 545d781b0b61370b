"""The table work of data_chain, in polars: clean, transform, analyze.

Each operation reads one table file and writes one file, whole or not at all (a temporary
file beside the target, fsync, then os.replace), so a step that runs again after a crash
writes the same bytes. Tables flow through polars' streaming engine in chunks, and each
operation reads its source once (queries that need the same rows share one scan), so memory
grows with what must be remembered (the hashes of the rows seen, to find duplicates; the
distinct values that analyze counts), not with the size of the file.

`clean` drops a row whose hash it has seen in the same pass that writes the table, and
collects the distinct rows it dropped; values decide: each must equal the kept row with its
hash (read back from the table written, only if rows were dropped). If rows that differ
share a hash (practically never: 64 bits), the table is written again, judged by value.

`transform` (and `analyze`, for its statistics) gives each text column the first of KINDS
that holds every one of its values exactly (see `_data_read.convert`), else leaves it text.
The kind is guessed from the first SAMPLE_ROWS rows and checked on every row in the same
pass that writes or aggregates; a column that breaks its guess is typed again from all of
its values, and the pass runs once more.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskchain.chains._data_read import (
    NOTES,
    PARQUET,
    PRIVATE,
    Table,
    atomic,
    convert,
    human_size,
    infer,
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
from taskchain.errors import StepError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Table", "analyze", "clean", "transform"]

Report = Callable[[str], None]

SAMPLE_ROWS = 10_000


def clean(source: Table, target: Path, report: Report) -> dict[str, Any]:
    """Trim text; drop blank, incomplete (a cell empty or a null marker) and duplicate rows
    (the first of equal rows stays)."""
    import polars as pl

    with reading(source):
        frame = scan(source)
        schema = frame.collect_schema()
        text = [c for c, dtype in schema.items() if dtype == pl.String]
        if text:
            frame = frame.with_columns(pl.col(text).str.strip_chars())
        markers = source.null_values if source.csv else ()
        empty = [missing(pl.col(c), markers) for c in text]
        empty += [pl.col(c).is_null() for c in schema if c not in text]
        gap = pl.any_horizontal(empty)
        flagged = frame.with_columns(
            gap.alias(_GAP), pl.when(~gap).then(_row_hash(list(schema))).alias(_HASH)
        )
        counts = [
            pl.len().alias("rows"),
            pl.all_horizontal(empty).sum().alias("blank"),
            pl.col(_GAP).sum().alias("gaps"),
        ]
        report(f"cleaning {source.rel} ({human_size(source.path)})")
        seen = markers_seen(frame, text, markers)
        with atomic(target) as temp:
            found, duplicates, marked = _write_unique(flagged, list(schema), counts, temp, seen)
            if duplicates is None:  # rows that differ share a hash: let values decide
                found, duplicates, marked = _write_exact(flagged, list(schema), counts, temp, seen)
            if duplicates:
                report(f"dropping {duplicates:,} duplicate rows")
    row = found.row(0, named=True)
    written = row["rows"] - row["gaps"] - duplicates
    report(f"wrote {written:,} rows")
    return {
        "rows": written,
        "columns": len(schema),
        "rows_in": row["rows"],
        "dropped": {
            "blank": row["blank"],
            "incomplete": row["gaps"] - row["blank"],
            "duplicate": duplicates,
        },
    } | read_report(source, seen_by_column(marked, markers))


_GAP, _HASH = f"{PRIVATE}gap", f"{PRIVATE}hash"


def _row_hash(columns: list[str]) -> pl.Expr:
    import polars as pl

    return pl.struct(columns).hash()


def _write_unique(
    flagged: pl.LazyFrame,
    columns: list[str],
    counts: list[pl.Expr],
    target: Path,
    seen: pl.LazyFrame,
) -> tuple[pl.DataFrame, int | None, pl.DataFrame]:
    """One streaming pass: the complete rows whose hash was not seen before go to `target`;
    `counts`, how many rows were dropped as duplicates, and `seen`, come back. The distinct
    dropped rows are collected too (as many as there are distinct repeated rows): each must
    equal the row with its hash in `target`. None for the duplicates if one does not
    (practically never)."""
    import polars as pl

    repeat = f"{PRIVATE}repeat"
    marked = flagged.with_columns(
        (~pl.col(_GAP) & ~pl.col(_HASH).is_first_distinct()).alias(repeat)
    )
    unique = marked.filter(~pl.col(_GAP) & ~pl.col(repeat)).select(columns)
    sink = unique.sink_parquet(target, lazy=True, **PARQUET)
    tally = marked.select(*counts, pl.col(repeat).sum().alias("dropped"))
    repeated = marked.filter(repeat).select(_HASH, *columns).unique()
    _, found, drop, markers = pl.collect_all([sink, tally, repeated, seen], engine="streaming")
    duplicates = int(found["dropped"].item())
    if not duplicates:
        return found, 0, markers
    if drop[_HASH].is_duplicated().any():
        return found, None, markers
    kept = (
        pl.scan_parquet(target)
        .with_columns(_row_hash(columns).alias(_HASH))
        .filter(pl.col(_HASH).is_in(drop[_HASH].implode()))
        .collect(engine="streaming")
    )
    if not kept.sort(_HASH).equals(drop.sort(_HASH).select(kept.columns)):
        return found, None, markers
    return found, duplicates, markers


def _write_exact(
    flagged: pl.LazyFrame,
    columns: list[str],
    counts: list[pl.Expr],
    target: Path,
    seen: pl.LazyFrame,
) -> tuple[pl.DataFrame, int, pl.DataFrame]:
    """The complete rows go to `target`, then the rows equal to an earlier one are dropped,
    judged by value; `counts`, how many rows were dropped, and `seen` come back."""
    import polars as pl

    complete = flagged.filter(~pl.col(_GAP))
    sink = complete.select(columns).sink_parquet(target, lazy=True, **PARQUET)
    hashes = complete.select(_HASH)
    queries = [sink, flagged.select(counts), hashes, seen]
    _, found, kept, marked = pl.collect_all(queries, engine="streaming")
    return found, _dedupe(target, kept[_HASH]), marked


def _dedupe(table: Path, hashes: pl.Series) -> int:
    """Drop from `table` the rows equal to an earlier row; how many. Hashes find the
    suspects (every row but the first with its hash); their values decide, and the table is
    written again only if rows that differ shared a hash (practically never: 64 bits)."""
    import polars as pl

    first = hashes.is_first_distinct()
    if first.all():
        return 0
    drop = (~first).arg_true()
    shared = hashes.is_in(hashes.filter(~first).implode()).arg_true()
    again = table.with_name(f"{table.name}.2")
    try:
        suspects = _drop_rows(table, again, drop, shared)
        row = f"{PRIVATE}row"
        repeat = suspects.select(pl.struct(pl.exclude(row)).is_first_distinct()).to_series()
        exact = suspects[row].filter(~repeat)
        if not exact.equals(drop.cast(exact.dtype)):  # rows that differ share a hash
            _drop_rows(table, again, exact)
        os.replace(again, table)
    finally:
        again.unlink(missing_ok=True)
    return len(exact)


def _drop_rows(
    table: Path, target: Path, drop: pl.Series, keep: pl.Series | None = None
) -> pl.DataFrame:
    """`table` without the rows at the positions `drop`, written to `target` in one streaming
    pass; the rows at the positions `keep` (with their position) come back."""
    import polars as pl

    row = f"{PRIVATE}row"
    numbered = pl.scan_parquet(table).with_row_index(row)
    positions = drop.cast(pl.UInt32).implode()
    rest = numbered.filter(~pl.col(row).is_in(positions)).drop(row)
    queries = [rest.sink_parquet(target, lazy=True, **PARQUET)]
    if keep is not None:
        queries.append(numbered.filter(pl.col(row).is_in(keep.cast(pl.UInt32).implode())))
    found = pl.collect_all(queries, engine="streaming")
    return found[-1] if keep is not None else pl.DataFrame()


def transform(source: Table, target: Path, report: Report) -> dict[str, Any]:
    """Column names snake_case and unique; text trimmed, empty text null, columns typed."""
    import polars as pl

    with reading(source):
        values, kinds, seen = _values(source)
        schema = values.collect_schema()
        names = dict(zip(schema, unique_names(list(schema), snake), strict=True))
        report(f"typing the columns of {source.rel}")
        for attempt in range(2):
            typed, converted = _typed(values, kinds)
            out = typed.select([pl.col(converted.get(c, c)).alias(names[c]) for c in schema])
            try:
                with atomic(target) as temp:
                    sink = out.sink_parquet(temp, lazy=True, **PARQUET)
                    _, misfits, marked = pl.collect_all(
                        [sink, _misfits(typed, converted), seen], engine="streaming"
                    )
                    if wrong := _broken(misfits):
                        raise _Retype(wrong)
                break
            except _Retype as again:
                if attempt:
                    raise StepError(f"{source.rel} changed while it was read") from None
                kinds.update(_infer_all(values, again.columns))
        rows = int(pl.scan_parquet(target).select(pl.len()).collect().item())
        final = pl.read_parquet_schema(target)
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
        | read_report(source, seen_by_column(marked, source.null_values))
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

    with reading(source):
        values, kinds, seen = _values(source)
        schema = values.collect_schema()
        report(f"analyzing {len(schema)} columns of {source.rel}")
        for attempt in range(2):
            typed, converted = _typed(values, kinds)
            column = {c: converted.get(c, c) for c in schema}
            dtypes = typed.collect_schema()
            origin = _origins(typed, column, dtypes)
            stats = typed.select(_statistics(column, dtypes, origin))
            # A streaming group-by per column counts distinct values in memory that grows
            # with the number of distinct values, not of rows (n_unique() holds the column).
            distinct = [
                typed.select(pl.col(v).alias(c)).drop_nulls().group_by(c).len().select(pl.len())
                for c, v in column.items()
            ]
            found = pl.collect_all(
                [stats, _misfits(typed, converted), seen, *distinct], engine="streaming"
            )
            if not (wrong := _broken(found[1])):
                break
            if attempt:
                raise StepError(f"{source.rel} changed while it was read")
            kinds.update(_infer_all(values, wrong))
    row = found[0].row(0, named=True)
    summary: dict[str, Any] = {"rows": row["rows"], "columns": {}}
    for i, (name, value) in enumerate(column.items()):
        entry = {"type": kind_of(dtypes[value]), "count": row[f"{i}:count"]}
        entry |= {"nulls": row[f"{i}:nulls"], "distinct": found[3 + i].item()}
        for stat in ("min", "max", "mean", "std"):
            if f"{i}:{stat}" in row:
                value = row[f"{i}:{stat}"]
                if stat == "mean" and value is not None:
                    value += origin.get(name, 0)
                entry[stat] = _json_value(value)
        if kinds.get(name) in NOTES:
            entry["note"] = NOTES[kinds[name]]
        summary["columns"][name] = entry
    with atomic(target) as temp:
        temp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary | read_report(source, seen_by_column(found[2], source.null_values))


def _values(source: Table) -> tuple[pl.LazyFrame, dict[str, str], pl.LazyFrame]:
    """The table with text trimmed and empty text (or a null marker) null, the guessed kind
    of each text column, and the query of the markers seen. Tables this chain wrote are
    trimmed already (clean and transform trim) and have no markers left."""
    import polars as pl

    frame = scan(source)
    text = [c for c, dtype in frame.collect_schema().items() if dtype == pl.String]
    markers = source.null_values if source.csv else ()
    if text and source.csv:
        frame = frame.with_columns(pl.col(text).str.strip_chars())
        seen = markers_seen(frame, text, markers)
        frame = frame.with_columns(
            pl.when(~missing(pl.col(c), markers)).then(pl.col(c)).alias(c) for c in text
        )
    else:
        seen = markers_seen(frame, [], ())
    if not text:
        return frame, {}, seen
    sample = frame.select(text).head(SAMPLE_ROWS).collect()
    return frame, {c: infer(sample[c]) for c in text}, seen


def _typed(values: pl.LazyFrame, kinds: dict[str, str]) -> tuple[pl.LazyFrame, dict[str, str]]:
    """`values` plus a converted copy of each column with a kind (its name in the dict)."""
    converted = {c: f"{PRIVATE}{i}" for i, (c, k) in enumerate(kinds.items()) if k != "text"}
    exprs = [convert(c, kinds[c]).alias(name) for c, name in converted.items()]
    return (values.with_columns(exprs) if exprs else values), converted


def _misfits(typed: pl.LazyFrame, converted: dict[str, str]) -> pl.LazyFrame:
    """Per converted column, how many values did not fit (all zero when the guesses hold)."""
    import polars as pl

    checks = [
        (pl.col(c).is_not_null() & pl.col(v).is_null()).sum().alias(c) for c, v in converted.items()
    ]
    return typed.select(checks) if checks else pl.LazyFrame({PRIVATE: [0]})


def _broken(misfits: pl.DataFrame) -> list[str]:
    return [column for column, count in misfits.row(0, named=True).items() if count]


def _infer_all(values: pl.LazyFrame, columns: list[str]) -> dict[str, str]:
    return {c: infer(values.select(c).collect(engine="streaming")[c]) for c in columns}


def _origins(typed: pl.LazyFrame, column: dict[str, str], dtypes: pl.Schema) -> dict[str, int]:
    """A value of each integer column from its first rows (0 for none): mean and std are
    taken of the distances from it. A float holds ids like 12345678901234567890..92 only
    to the nearest 2048, so their std would come out 0; their distances it holds exactly."""
    import polars as pl

    integer = {c: v for c, v in column.items() if dtypes[v].is_integer()}
    if not integer:
        return {}
    head = typed.head(SAMPLE_ROWS).select(
        pl.col(v).drop_nulls().first().alias(c) for c, v in integer.items()
    )
    row = head.collect().row(0, named=True)
    return {c: int(v or 0) for c, v in row.items()}


def _statistics(column: dict[str, str], dtypes: pl.Schema, origin: dict[str, int]) -> list[pl.Expr]:
    import polars as pl

    exprs = [pl.len().alias("rows")]
    for i, (name, value) in enumerate((c, pl.col(v)) for c, v in column.items()):
        dtype = dtypes[value.meta.output_name()]
        exprs += [value.count().alias(f"{i}:count"), value.null_count().alias(f"{i}:nulls")]
        if dtype.is_numeric() or dtype.is_temporal():
            exprs += [value.min().alias(f"{i}:min"), value.max().alias(f"{i}:max")]
        if dtype.is_numeric():
            if name in origin:  # Int128: no overflow from an Int64 minus an Int64
                value = value.cast(pl.Int128) - pl.lit(origin[name], dtype=pl.Int128)
            exprs += [value.mean().alias(f"{i}:mean"), value.std().alias(f"{i}:std")]
    return exprs


def _json_value(value: Any) -> Any:
    """Dates as ISO text; NaN and infinities (which JSON cannot hold) as null."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
