"""Reading and typing for data_chain: table files, CSV headers, kinds of values, errors.

A CSV is read as text, separated by the delimiter `_data_dialect` found (or the config
gave): the kinds of `transform` are stricter than the reader's guesses (007 stays text), so
`_data_ops` types columns itself, with `convert` and `infer_columns`. Null markers (`NA`,
`-`...) are matched after trimming, so ` NA ` is missing too; the reader's own
`null_values` would see untrimmed text. Tables between steps are Parquet files in row
groups of 16K rows, LZ4-compressed when streamed (PARQUET_IN_MEMORY: the others): each is
written once and read once, so cheap (de)compression matters more than size (LZ4 measured
~8% less CPU per chain than zstd), and small row groups keep read-ahead buffers small
(~60 MB less peak RSS than 64K rows at the same speed). polars is imported inside the
functions: listing the chain types (read commands, `--help`) must not pay for it.
"""

from __future__ import annotations

import codecs
import csv
import itertools
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

#: polars reads ahead 32 MiB CSV chunks and at least 2 row groups per thread by default;
#: reading ahead less keeps a streamed read's memory low at the same speed. A CSV read whole
#: (`_data_frames.in_memory`) is read in chunks of CSV_CHUNK_IN_MEMORY instead: every later
#: operation on the table pays per chunk, and 512 KiB chunks (264 at 1M rows, after the
#: filters) cost clean ~10% more CPU than 4 MiB ones (1.28 s against 1.16 at 1M rows) at
#: the same peak memory. Variables set in the environment before the first read win.
POLARS_ENV = {"POLARS_CSV_CHUNK_SIZE": str(512 * 1024), "POLARS_ROW_GROUP_PREFETCH_SIZE": "1"}
CSV_CHUNK_IN_MEMORY = str(4 * 1024 * 1024)
_given: frozenset[str] | None = None
PARQUET: dict[str, Any] = {
    "compression": "lz4",
    "row_group_size": 16 * 1024,  # read-ahead and buffers count row groups: keep them small
}
#: A table written in memory (`_data_frames`) is small enough not to compress: that saves
#: ~25% of the CPU of writing it (0.25 s a million rows over clean and transform) for
#: files about twice as big (34 MB instead of 18 for clean's table of 1M rows).
PARQUET_IN_MEMORY: dict[str, Any] = PARQUET | {"compression": "uncompressed"}
#: What `infer_columns` tries, in order. `integer` is 64-bit; `integer128` takes what 64 bits
#: do not hold; `big integer` is text whose every value is an integer too big for 128 bits:
#: it stays text (exact), with a note. polars has no wider integer type.
KINDS = ("boolean", "integer", "integer128", "float", "date", "datetime", "big integer")
NOTES = {"big integer": "integers too big for 128 bits: kept as text, exactly"}
_DATETIME_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f")
_LEADING_ZERO = r"^[+-]?0[0-9]"  # 007, 02134: codes, not numbers
#: ...and 16 digits before the point are more than a float holds: 12345678901234567891
#: would become ...568000, so a column with such a value is not a float column.
_NOT_FLOAT = r"^[+-]?(?:0[0-9]|[0-9]{16})"
_INTEGER = r"^[+-]?(?:0|[1-9][0-9]*)$"
#: true and false in any case: TRUE, True, tRuE...
_BOOLEANS = {
    "".join(spelling): word == "true"
    for word in ("true", "false")
    for spelling in itertools.product(*((c, c.upper()) for c in word))
}
PRIVATE = "\x00"  # prefix of helper columns; no CSV header can hold a NUL
SEEN = f"{PRIVATE}seen:"

#: How an operation says what it is doing (the step's progress line).
Report = Callable[[str], None]


@dataclass(frozen=True)
class Table:
    """A table file: where it is, how results and messages name it, and whether it is CSV."""

    path: Path
    rel: str
    csv: bool
    delimiter: str = ","
    #: Text that means "no value" (besides empty text), matched after trimming.
    null_values: tuple[str, ...] = ()


def scan(table: Table, whole: bool = False) -> pl.LazyFrame:
    """The table, lazily. A CSV's columns are text; its header names trimmed, made unique.
    A Parquet table the previous step kept in memory is read from there (`_data_frames`).
    `whole`: the caller collects it whole, not streaming (a CSV is read in larger chunks)."""
    _read_ahead(whole)
    import polars as pl

    if not table.csv:
        from taskchain.chains._data_frames import held

        frame = held(table.path)  # the previous step's table, still in memory
        return frame.lazy() if frame is not None else pl.scan_parquet(table.path)
    names = header(table)[1]
    return pl.scan_csv(
        table.path,
        separator=table.delimiter,
        infer_schema=False,
        encoding="utf8",
        new_columns=names or None,
    )


def _read_ahead(whole: bool) -> None:
    """Set POLARS_ENV (polars reads it whenever a read starts), but not the variables that
    were in the environment before the first read. The chunk size only changes speed and
    memory, never what is read."""
    global _given
    if _given is None:
        _given = frozenset(name for name in POLARS_ENV if name in os.environ)
    chunk = {"POLARS_CSV_CHUNK_SIZE": CSV_CHUNK_IN_MEMORY} if whole else {}
    for name, value in (POLARS_ENV | chunk).items():
        if name not in _given:
            os.environ[name] = value


def missing(value: pl.Expr) -> pl.Expr:
    """Whether a trimmed text value is missing: null or empty (null markers: see callers)."""
    return value.is_null() | (value.str.len_bytes() == 0)


def markers_seen(columns: dict[str, tuple[str, str]], markers: tuple[str, ...]) -> list[pl.Expr]:
    """Aggregates for a select the step runs anyway (no second read of the file): per
    column, `{name: (its trimmed text, whether each value is a marker)}`, whether each
    marker is among its values. Equality on the few marker cells only, and no unique():
    a unique() in the select makes the streaming engine hold far more rows (+150 MB in the
    benchmark)."""
    import polars as pl

    return [
        (pl.col(text).filter(pl.col(hit)) == marker).any().alias(f"{SEEN}{i}:{j}")
        for i, (text, hit) in enumerate(columns.values())
        for j, marker in enumerate(markers)
    ]


def seen_by_column(
    row: dict[str, Any], columns: list[str], markers: tuple[str, ...]
) -> dict[str, list[str]]:
    """From a row with `markers_seen`'s values: {column: the markers seen in it, in the
    configured order}, for the columns with any."""
    seen: dict[str, list[str]] = {}
    for i, column in enumerate(columns):
        found = [m for j, m in enumerate(markers) if row.get(f"{SEEN}{i}:{j}")]
        if found:
            seen[column] = found
    return seen


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


def convert(column: str, kind: str) -> pl.Expr:
    """The text column as `kind`: null where a value does not fit it exactly."""
    import polars as pl

    value = pl.col(column)
    if kind == "boolean":  # a lookup of every spelling: a third of the CPU of lowercasing
        return value.replace_strict(_BOOLEANS, default=None, return_dtype=pl.Boolean)
    if kind == "date":
        return value.str.to_date("%Y-%m-%d", strict=False)
    if kind == "datetime":
        return pl.coalesce(
            [value.str.to_datetime(f, time_unit="us", strict=False) for f in _DATETIME_FORMATS]
        )
    if kind in ("integer", "integer128"):
        dtype = pl.Int64 if kind == "integer" else pl.Int128
        parsed = value.str.to_integer(dtype=dtype, strict=False)
        return pl.when(~value.str.contains(_LEADING_ZERO)).then(parsed)
    if kind == "float":
        parsed = value.cast(pl.Float64, strict=False)
        return pl.when(~value.str.contains(_NOT_FLOAT) & parsed.is_finite()).then(parsed)
    if kind == "big integer":
        return pl.when(value.str.contains(_INTEGER)).then(value)
    return value


def infer_columns(frame: pl.DataFrame) -> dict[str, str]:
    """Per text column of `frame`, the first kind that holds every (trimmed, non-empty)
    value, or text; every kind of every column tried in one select (in parallel)."""
    import polars as pl

    checks = [pl.col(c).is_not_null().any().alias(f"{i}") for i, c in enumerate(frame.columns)]
    checks += [
        (pl.col(c).is_null() | convert(c, kind).is_not_null()).all().alias(f"{i}:{kind}")
        for i, c in enumerate(frame.columns)
        for kind in KINDS
    ]
    row = frame.select(checks).row(0, named=True)
    return {
        c: next((k for k in KINDS if row[f"{i}:{k}"]), "text") if row[f"{i}"] else "text"
        for i, c in enumerate(frame.columns)
    }


def kind_of(dtype: Any) -> str:
    """A polars type as a kind: integer, float, boolean, date, datetime, text (or its name)."""
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "float"
    names = {"Boolean": "boolean", "Date": "date", "Datetime": "datetime", "String": "text"}
    return names.get(dtype.base_type().__name__, str(dtype))


def human_size(path: Path) -> str:
    size, unit = float(path.stat().st_size), "bytes"
    for bigger in ("KB", "MB", "GB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.0f} bytes" if unit == "bytes" else f"{size:.1f} {unit}"


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


def header(table: Table) -> tuple[list[str], list[str]]:
    """A CSV's header names as written, and as the table's columns: trimmed, unique."""
    try:
        with table.path.open(encoding="utf-8-sig", newline="") as file:
            row = next(csv.reader(file, delimiter=table.delimiter), None)
    except UnicodeDecodeError:
        raise StepError(_not_utf8(table)) from None
    except csv.Error:
        return [], []
    return (row, unique_names(row)) if row else ([], [])


def read_report(source: Table, markers: dict[str, list[str]]) -> dict[str, Any]:
    """For a step that read the CSV: how (delimiter, header renames, null markers seen)."""
    if not source.csv:
        return {}
    return {
        "read": {
            "file": source.rel,
            "delimiter": source.delimiter,
            "renamed": header_renames(source),
            "null_markers": markers,
        }
    }


def header_renames(table: Table) -> list[dict[str, Any]]:
    """Each header name the table's column differs from: `{"column": 3, "from", "to"}`."""
    raw, names = header(table)
    return [
        {"column": i, "from": old, "to": new}
        for i, (old, new) in enumerate(zip(raw, names, strict=True), start=1)
        if old != new
    ]


def _ragged(table: Table) -> str:
    """The first row with more fields than the header (polars does not say which)."""
    with table.path.open(encoding="utf-8-sig", newline="", errors="replace") as file:
        rows = csv.reader(file, delimiter=table.delimiter)
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
