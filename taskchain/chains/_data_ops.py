"""The table work of data_chain, in polars: read a CSV, clean, transform, analyze.

Each operation reads one table file and writes one file, whole or not at all (a temporary
file beside the target, fsync, then os.replace), so a step that runs again after a crash
writes the same bytes. Tables flow through polars' streaming engine in chunks, and each
operation reads its source once (queries that need the same rows share one scan), so memory
grows with what must be remembered (8 bytes a row to find duplicates, the distinct values
that analyze counts), not with the size of the file. polars is imported inside the
functions: listing the chain types (read commands, `--help`) must not pay for it.

A CSV is read as text. `transform` (and `analyze`, for its statistics) gives each text
column the first of KINDS that holds every one of its values exactly (see `_convert`), else
leaves it text. The kind is guessed from the first SAMPLE_ROWS rows and checked on every row
in the same pass that writes or aggregates; a column that breaks its guess is typed again
from all of its values, and the pass runs once more.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskchain.errors import StepError

if TYPE_CHECKING:
    import polars as pl

Report = Callable[[str], None]

SAMPLE_ROWS = 10_000
#: polars reads ahead 32 MiB CSV chunks and at least 2 row groups per thread by
#: default; reading ahead less keeps memory low at the same speed. Variables already set in
#: the environment win.
POLARS_ENV = {"POLARS_CSV_CHUNK_SIZE": str(512 * 1024), "POLARS_ROW_GROUP_PREFETCH_SIZE": "1"}
PARQUET: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "row_group_size": 64 * 1024,  # read-ahead is counted in row groups: keep them small
}
KINDS = ("boolean", "integer", "float", "date", "datetime")
_DATETIME_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f")
_LEADING_ZERO = r"^[+-]?0[0-9]"  # 007, 02134: codes, not numbers
_PRIVATE = "\x00"  # prefix of helper columns; no CSV header can hold a NUL


@dataclass(frozen=True)
class Table:
    """A table file: where it is, how results and messages name it, and whether it is CSV."""

    path: Path
    rel: str
    csv: bool


def scan(table: Table) -> pl.LazyFrame:
    """The table, lazily. A CSV's columns are text; its header names trimmed, made unique."""
    for name, value in POLARS_ENV.items():
        os.environ.setdefault(name, value)  # polars reads them whenever a scan starts
    import polars as pl

    if not table.csv:
        return pl.scan_parquet(table.path)
    names = _header(table)
    return pl.scan_csv(table.path, infer_schema=False, encoding="utf8", new_columns=names)


def unique_names(names: list[str], normal: Callable[[str], str] = str.strip) -> list[str]:
    """`normal` of each name, `column_N` for an empty one, `_2`, `_3`... for repeats."""
    seen: set[str] = set()
    out = []
    for position, raw in enumerate(names, start=1):
        base = normal(raw) or f"column_{position}"
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        out.append(name)
    return out


def snake(name: str) -> str:
    """`Order ID` → order_id, `unitPrice` → unit_price, `HTTPStatus` → http_status."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    split = re.sub(r"([a-z0-9])([A-Z])|([A-Z])([A-Z][a-z])", r"\1\3_\2\4", plain)
    return re.sub(r"[^a-z0-9]+", "_", split.lower()).strip("_")


def clean(source: Table, target: Path, report: Report) -> dict[str, Any]:
    """Trim text; drop blank, incomplete and duplicate rows (the first of equal rows stays)."""
    import polars as pl

    gap, hashed = f"{_PRIVATE}gap", f"{_PRIVATE}hash"
    with reading(source):
        frame = scan(source)
        schema = frame.collect_schema()
        text = [c for c, dtype in schema.items() if dtype == pl.String]
        if text:
            frame = frame.with_columns(pl.col(text).str.strip_chars())
        empty = [pl.col(c).is_null() | (pl.col(c).str.len_bytes() == 0) for c in text]
        empty += [pl.col(c).is_null() for c in schema if c not in text]
        flagged = frame.with_columns(pl.any_horizontal(empty).alias(gap))
        # One pass: the complete rows go to the file; a hash of each and whether it is blank
        # come back (9 bytes a row) to count what was dropped and to find duplicates.
        rows = flagged.select(
            pl.when(~pl.col(gap)).then(pl.struct(list(schema)).hash()).alias(hashed),
            pl.all_horizontal(empty).alias("blank"),
        )
        report(f"cleaning {source.rel} ({_size(source.path)})")
        with atomic(target) as temp:
            complete = flagged.filter(~pl.col(gap)).drop(gap)
            sink = complete.sink_parquet(temp, lazy=True, **PARQUET)
            _, seen = pl.collect_all([sink, rows], engine="streaming")
            kept = seen[hashed].drop_nulls()
            duplicates = _duplicate_rows(temp, kept)
            if duplicates:
                report(f"dropping {len(duplicates):,} duplicate rows")
                _drop_rows(temp, duplicates)
    blank = int(seen["blank"].sum())
    written = len(kept) - len(duplicates)
    report(f"wrote {written:,} rows")
    return {
        "rows": written,
        "columns": len(schema),
        "rows_in": len(seen),
        "dropped": {
            "blank": blank,
            "incomplete": len(seen) - blank - len(kept),
            "duplicate": len(duplicates),
        },
    }


def _duplicate_rows(table: Path, hashes: pl.Series) -> list[int]:
    """Positions of rows equal to an earlier row. Hashes find the suspects; values decide."""
    import polars as pl

    ordered = hashes.sort()  # a fraction of the memory of is_duplicated()
    repeated = ordered.filter(ordered == ordered.shift(1))
    if repeated.is_empty():
        return []
    row = f"{_PRIVATE}row"
    positions = hashes.is_in(repeated.implode()).arg_true()
    suspects = (
        pl.scan_parquet(table)
        .with_row_index(row)
        .filter(pl.col(row).is_in(positions.implode()))
        .collect()
    )
    again = ~suspects.select(pl.struct(pl.exclude(row)).is_first_distinct()).to_series()
    return suspects[row].filter(again).to_list()


def _drop_rows(table: Path, positions: list[int]) -> None:
    import polars as pl

    row = f"{_PRIVATE}row"
    with atomic(table) as temp:
        (
            pl.scan_parquet(table)
            .with_row_index(row)
            .filter(~pl.col(row).is_in(positions))
            .drop(row)
            .sink_parquet(temp, engine="streaming", **PARQUET)
        )


def transform(source: Table, target: Path, report: Report) -> dict[str, Any]:
    """Column names snake_case and unique; text trimmed, empty text null, columns typed."""
    import polars as pl

    with reading(source):
        values, kinds = _values(source)
        schema = values.collect_schema()
        names = dict(zip(schema, unique_names(list(schema), snake), strict=True))
        report(f"typing the columns of {source.rel}")
        for attempt in range(2):
            typed, converted = _typed(values, kinds)
            out = typed.select([pl.col(converted.get(c, c)).alias(names[c]) for c in schema])
            try:
                with atomic(target) as temp:
                    sink = out.sink_parquet(temp, lazy=True, **PARQUET)
                    _, misfits = pl.collect_all(
                        [sink, _misfits(typed, converted)], engine="streaming"
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
    return {
        "rows": rows,
        "columns": len(names),
        "renamed": {old: new for old, new in names.items() if old != new},
        "types": {name: kind_of(dtype) for name, dtype in final.items()},
    }


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
        values, kinds = _values(source)
        schema = values.collect_schema()
        report(f"analyzing {len(schema)} columns of {source.rel}")
        for attempt in range(2):
            typed, converted = _typed(values, kinds)
            column = {c: converted.get(c, c) for c in schema}
            dtypes = typed.collect_schema()
            stats = typed.select(_statistics(column, dtypes))
            # A streaming group-by per column counts distinct values in memory that grows
            # with the number of distinct values, not of rows (n_unique() holds the column).
            distinct = [
                typed.select(pl.col(v).alias(c)).drop_nulls().group_by(c).len().select(pl.len())
                for c, v in column.items()
            ]
            found = pl.collect_all(
                [stats, _misfits(typed, converted), *distinct], engine="streaming"
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
        entry |= {"nulls": row[f"{i}:nulls"], "distinct": found[2 + i].item()}
        for stat in ("min", "max", "mean", "std"):
            if f"{i}:{stat}" in row:
                entry[stat] = _json_value(row[f"{i}:{stat}"])
        summary["columns"][name] = entry
    with atomic(target) as temp:
        temp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _values(source: Table) -> tuple[pl.LazyFrame, dict[str, str]]:
    """The table with text trimmed and empty text null, and the guessed kind of each text
    column. Tables this chain wrote are trimmed already (clean and transform trim)."""
    import polars as pl

    frame = scan(source)
    text = [c for c, dtype in frame.collect_schema().items() if dtype == pl.String]
    if text and source.csv:
        value = pl.col(text).str.strip_chars()
        frame = frame.with_columns(pl.when(value.str.len_bytes() > 0).then(value))
    if not text:
        return frame, {}
    sample = frame.select(text).head(SAMPLE_ROWS).collect()
    return frame, {c: infer(sample[c]) for c in text}


def _typed(values: pl.LazyFrame, kinds: dict[str, str]) -> tuple[pl.LazyFrame, dict[str, str]]:
    """`values` plus a converted copy of each column with a kind (its name in the dict)."""
    converted = {c: f"{_PRIVATE}{i}" for i, (c, k) in enumerate(kinds.items()) if k != "text"}
    exprs = [_convert(c, kinds[c]).alias(name) for c, name in converted.items()]
    return (values.with_columns(exprs) if exprs else values), converted


def _convert(column: str, kind: str) -> pl.Expr:
    """The text column as `kind`: null where a value does not fit it exactly."""
    import polars as pl

    value = pl.col(column)
    if kind == "boolean":
        lower = value.str.to_lowercase()
        return pl.when(lower == "true").then(True).when(lower == "false").then(False)
    if kind == "date":
        return value.str.to_date("%Y-%m-%d", strict=False)
    if kind == "datetime":
        return pl.coalesce(
            [value.str.to_datetime(f, time_unit="us", strict=False) for f in _DATETIME_FORMATS]
        )
    number = ~value.str.contains(_LEADING_ZERO)
    if kind == "integer":
        return pl.when(number).then(value.str.to_integer(strict=False))
    if kind == "float":
        parsed = value.cast(pl.Float64, strict=False)
        return pl.when(number & parsed.is_finite()).then(parsed)
    return value


def _misfits(typed: pl.LazyFrame, converted: dict[str, str]) -> pl.LazyFrame:
    """Per converted column, how many values did not fit (all zero when the guesses hold)."""
    import polars as pl

    checks = [
        (pl.col(c).is_not_null() & pl.col(v).is_null()).sum().alias(c) for c, v in converted.items()
    ]
    return typed.select(checks) if checks else pl.LazyFrame({_PRIVATE: [0]})


def _broken(misfits: pl.DataFrame) -> list[str]:
    return [column for column, count in misfits.row(0, named=True).items() if count]


def _infer_all(values: pl.LazyFrame, columns: list[str]) -> dict[str, str]:
    return {c: infer(values.select(c).collect(engine="streaming")[c]) for c in columns}


def infer(column: pl.Series) -> str:
    """The first kind that holds every (trimmed, non-empty) value of a text column, or text."""
    present = column.drop_nulls().to_frame("v")
    if present.is_empty():
        return "text"
    for kind in KINDS:
        if present.select(_convert("v", kind).is_not_null().all()).item():
            return kind
    return "text"


def kind_of(dtype: Any) -> str:
    """A polars type as a kind: integer, float, boolean, date, datetime, text (or its name)."""
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "float"
    names = {"Boolean": "boolean", "Date": "date", "Datetime": "datetime", "String": "text"}
    return names.get(dtype.base_type().__name__, str(dtype))


def _statistics(column: dict[str, str], dtypes: pl.Schema) -> list[pl.Expr]:
    import polars as pl

    exprs = [pl.len().alias("rows")]
    for i, value in enumerate(map(pl.col, column.values())):
        dtype = dtypes[value.meta.output_name()]
        exprs += [value.count().alias(f"{i}:count"), value.null_count().alias(f"{i}:nulls")]
        if dtype.is_numeric() or dtype.is_temporal():
            exprs += [value.min().alias(f"{i}:min"), value.max().alias(f"{i}:max")]
        if dtype.is_numeric():
            exprs += [value.mean().alias(f"{i}:mean"), value.std().alias(f"{i}:std")]
    return exprs


def _size(path: Path) -> str:
    size, unit = float(path.stat().st_size), "bytes"
    for bigger in ("KB", "MB", "GB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.0f} bytes" if unit == "bytes" else f"{size:.1f} {unit}"


def _json_value(value: Any) -> Any:
    """Dates as ISO text; NaN and infinities (which JSON cannot hold) as null."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


@contextmanager
def reading(table: Table) -> Iterator[None]:
    """Turn the errors of reading `table` into one-line StepErrors that name the problem."""
    import polars as pl

    try:
        yield
    except FileNotFoundError:
        raise StepError(f"{table.rel} does not exist (any more)") from None
    except OSError as exc:
        raise StepError(f"{table.rel}: {exc.strerror or exc}") from None
    except pl.exceptions.PolarsError as exc:
        raise StepError(_explain(table, exc)) from None


def _explain(table: Table, exc: Exception) -> str:
    message = str(exc).strip()
    if table.csv and "more fields than defined" in message:
        return _ragged(table)
    if table.csv and "invalid utf-8" in message.lower():
        return _not_utf8(table)
    first = message.splitlines()[0] if message else type(exc).__name__
    if not table.csv or "(os error" in first:  # e.g. a full disk: not the source's fault
        return f"{table.rel}: {first}"
    return f"{table.rel}: cannot read it as CSV: {first}"


def _header(table: Table) -> list[str] | None:
    try:
        with table.path.open(encoding="utf-8-sig", newline="") as file:
            row = next(csv.reader(file), None)
    except UnicodeDecodeError:
        raise StepError(_not_utf8(table)) from None
    except csv.Error:
        return None
    return unique_names(row) if row else None


def _ragged(table: Table) -> str:
    """The first row with more fields than the header (polars does not say which)."""
    with table.path.open(encoding="utf-8-sig", newline="", errors="replace") as file:
        rows = csv.reader(file)
        width = len(next(rows, []))
        for row in rows:
            if len(row) > width:
                return (
                    f"{table.rel}: line {rows.line_num} has {len(row)} fields but the header "
                    f"has {width} (ragged rows)"
                )
    return f"{table.rel}: a row has more fields than the header (ragged rows)"


def _not_utf8(table: Table) -> str:
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with table.path.open("rb") as file:
        while True:
            chunk = file.read(1 << 20)
            data = decoder.getstate()[0] + chunk  # bytes held back are never newlines
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                line += data.count(b"\n", 0, exc.start)
                what = f"byte 0x{data[exc.start]:02x}" if chunk else "a character cut short"
                return f"{table.rel} is not UTF-8 text: {what} on line {line} (save it as UTF-8)"
            if not chunk:
                return f"{table.rel} is not UTF-8 text (save it as UTF-8)"
            line += chunk.count(b"\n")


@contextmanager
def atomic(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`; on success it replaces `target` whole (fsync'd)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield temp
        with temp.open("rb") as file:
            os.fsync(file.fileno())
        os.replace(temp, target)
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    finally:
        temp.unlink(missing_ok=True)
