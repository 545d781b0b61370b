"""The table work of data_chain, in polars: clean, transform, analyze.

Each operation reads one table file and writes one file, whole or not at all (a temporary
file beside the target, fsync, then os.replace), so a step that runs again after a crash
writes the same bytes. Each operation reads its source once (queries that need the same
rows share one scan). A source that fits (`_data_frames.in_memory`) is processed whole by
polars' in-memory engine, and a table written that way may stay in memory for the next step
(`_data_frames.keep`). A bigger one flows through the streaming engine in chunks, so memory
grows with what must be remembered (the hashes of the rows seen, to find duplicates; the
distinct values that analyze counts), not with the size of the file. Both ways give the same
results; a given source always takes the same way, so the same files.

`clean` drops a row whose hash it has seen in the same pass that writes the table, and
collects the distinct rows it dropped; values decide: each must equal the kept row with its
hash (in the table in memory, or read back from the table written; only if rows were
dropped). If rows that differ share a hash (practically never: 64 bits), the table is
written again, judged by value.

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

from taskchain.chains import _data_frames
from taskchain.chains._data_read import (
    NOTES,
    PARQUET,
    PARQUET_IN_MEMORY,
    PRIVATE,
    Table,
    atomic,
    convert,
    human_size,
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

__all__ = ["Table", "analyze", "clean", "transform"]

Report = Callable[[str], None]

SAMPLE_ROWS = 10_000


def clean(source: Table, target: Path, report: Report, *, hold: bool = False) -> dict[str, Any]:
    """Trim text; drop blank, incomplete (a cell empty or a null marker) and duplicate rows
    (the first of equal rows stays). `hold`: keep the table written for the next step."""
    import polars as pl

    memory = _data_frames.in_memory(source.path, source.csv)
    with reading(source):
        frame = scan(source, whole=memory)
        schema = frame.collect_schema()
        text = [c for c, dtype in schema.items() if dtype == pl.String]
        if text:
            frame = frame.with_columns(pl.col(text).str.strip_chars())
        markers = source.null_values if source.csv else ()
        # Whether each cell is a marker, once: it makes the row incomplete and tells which
        # markers were seen.
        hits = {c: f"{PRIVATE}marker:{c}" for c in text} if markers else {}
        if hits:
            frame = frame.with_columns(
                pl.col(c).is_in(list(markers)).alias(h) for c, h in hits.items()
            )
        empty = [missing(pl.col(c)) for c in text]
        empty = [e | pl.col(hits[c]) for c, e in zip(text, empty, strict=True)] if hits else empty
        empty += [pl.col(c).is_null() for c in schema if c not in text]
        gap = pl.any_horizontal(empty)
        flagged = frame.with_columns(
            gap.alias(_GAP), pl.when(~gap).then(_row_hash(list(schema))).alias(_HASH)
        )
        counts = [
            pl.len().alias("rows"),
            pl.all_horizontal(empty).sum().alias("blank"),
            pl.col(_GAP).sum().alias("gaps"),
            *markers_seen({c: (c, h) for c, h in hits.items()}, markers),
        ]
        report(f"cleaning {source.rel} ({human_size(source.path)})")
        kept = None
        with atomic(target) as temp:
            if memory:
                found, duplicates, kept = _unique_in_memory(flagged, list(schema), counts)
                if kept is not None:
                    kept.write_parquet(temp, **PARQUET_IN_MEMORY)
            else:
                found, duplicates = _write_unique(flagged, list(schema), counts, temp)
            if duplicates is None:  # rows that differ share a hash: let values decide
                found, duplicates = _write_exact(flagged, list(schema), counts, temp)
            if duplicates:
                report(f"dropping {duplicates:,} duplicate rows")
        if hold and kept is not None:
            _hand_on(target, kept)
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
    } | read_report(source, seen_by_column(row, list(hits), markers))


_GAP, _HASH, _REPEAT = f"{PRIVATE}gap", f"{PRIVATE}hash", f"{PRIVATE}repeat"


def _row_hash(columns: list[str]) -> pl.Expr:
    import polars as pl

    return pl.struct(columns).hash()


def _repeat(flagged: pl.LazyFrame) -> pl.LazyFrame:
    """`flagged` with a column that marks a complete row whose hash an earlier row has."""
    import polars as pl

    return flagged.with_columns((~pl.col(_GAP) & ~pl.col(_HASH).is_first_distinct()).alias(_REPEAT))


def _unique_in_memory(
    flagged: pl.LazyFrame, columns: list[str], counts: list[pl.Expr]
) -> tuple[pl.DataFrame, int | None, pl.DataFrame | None]:
    """`_write_unique` in memory: `counts`, the duplicates dropped and the table of the
    complete rows whose hash was not seen before, which the caller writes. The dropped rows
    must equal the kept row with their hash; (counts, None, None) if one does not."""
    import polars as pl

    marked = _repeat(flagged)
    queries = [
        marked.filter(~pl.col(_GAP) & ~pl.col(_REPEAT)).select(_HASH, *columns),
        marked.select(*counts, pl.col(_REPEAT).sum().alias("dropped")),
        marked.filter(_REPEAT).select(_HASH, *columns).unique(),
    ]
    unique, found, drop = pl.collect_all(queries)  # one pass: they share `marked`
    duplicates = int(found["dropped"].item())
    if duplicates:
        if drop[_HASH].is_duplicated().any():
            return found, None, None
        kept = unique.filter(pl.col(_HASH).is_in(drop[_HASH].implode()))
        if not kept.sort(_HASH).equals(drop.sort(_HASH).select(kept.columns)):
            return found, None, None
    return found, duplicates, unique.drop(_HASH)


def _hand_on(target: Path, table: pl.DataFrame) -> None:
    """Keep `table`, just written to `target`, for the next step in this process, if it is
    what reading the file gives (same columns and types)."""
    import polars as pl

    if dict(pl.read_parquet_schema(target)) == dict(table.schema):
        _data_frames.keep(target, table)


def _write_unique(
    flagged: pl.LazyFrame, columns: list[str], counts: list[pl.Expr], target: Path
) -> tuple[pl.DataFrame, int | None]:
    """One streaming pass: the complete rows whose hash was not seen before go to `target`;
    `counts`, and how many rows were dropped as duplicates, come back. The distinct dropped
    rows come back too (as many as there are distinct repeated rows): each must equal the row
    with its hash in `target`. None for the duplicates if one does not (practically never)."""
    import polars as pl

    marked = _repeat(flagged)
    unique = marked.filter(~pl.col(_GAP) & ~pl.col(_REPEAT)).select(columns)
    sink = unique.sink_parquet(target, lazy=True, **PARQUET)
    tally = marked.select(*counts, pl.col(_REPEAT).sum().alias("dropped"))
    repeated = marked.filter(_REPEAT).select(_HASH, *columns).unique()
    _, found, drop = pl.collect_all([sink, tally, repeated], engine="streaming")
    duplicates = int(found["dropped"].item())
    if not duplicates:
        return found, 0
    if drop[_HASH].is_duplicated().any():
        return found, None
    kept = (
        pl.scan_parquet(target)
        .with_columns(_row_hash(columns).alias(_HASH))
        .filter(pl.col(_HASH).is_in(drop[_HASH].implode()))
        .collect(engine="streaming")
    )
    if not kept.sort(_HASH).equals(drop.sort(_HASH).select(kept.columns)):
        return found, None
    return found, duplicates


def _write_exact(
    flagged: pl.LazyFrame, columns: list[str], counts: list[pl.Expr], target: Path
) -> tuple[pl.DataFrame, int]:
    """The complete rows go to `target`, then the rows equal to an earlier one are dropped,
    judged by value; `counts` and how many rows were dropped come back."""
    import polars as pl

    complete = flagged.filter(~pl.col(_GAP))
    sink = complete.select(columns).sink_parquet(target, lazy=True, **PARQUET)
    hashes = complete.select(_HASH)
    _, found, seen = pl.collect_all([sink, flagged.select(counts), hashes], engine="streaming")
    return found, _dedupe(target, seen[_HASH])


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
        _hand_on(target, table)
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
