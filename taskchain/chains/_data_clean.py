"""data_chain's clean, in polars: trim text; drop blank, incomplete and duplicate rows.

It reads one table file and writes one file, whole or not at all, in polars' in-memory
engine for a source that fits and streaming for a bigger one, as the other operations do
(see `_data_ops`).

`clean` drops a row whose hash it has seen in the same pass that writes the table, and
collects the distinct rows it dropped; values decide: each must equal the kept row with its
hash (in the table in memory, or read back from the table written; only if rows were
dropped). If rows that differ share a hash (practically never: 64 bits), the table is
written again, judged by value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskchain.chains import _data_frames
from taskchain.chains._data_read import (
    PARQUET,
    PARQUET_IN_MEMORY,
    PRIVATE,
    Report,
    Table,
    atomic,
    human_size,
    markers_seen,
    missing,
    read_report,
    reading,
    scan,
    seen_by_column,
)

if TYPE_CHECKING:
    import polars as pl

__all__ = ["clean"]


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
            _data_frames.hand_on(target, kept)
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
