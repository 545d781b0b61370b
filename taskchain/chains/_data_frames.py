"""Where a data step works: in memory for a table that fits, streaming for a bigger one;
and the table a step hands to the next step of its chain in the same process.

In memory. A source up to IN_MEMORY_BYTES (its file's size; a Parquet file counts
PARQUET_FACTOR times, as it is smaller) is processed whole by polars' in-memory engine:
at a million rows it takes about a third less CPU than the streaming engine, whose small
chunks keep memory flat but cost per chunk, and its peak memory stays below an eager
`polars.read_csv` of the same file. A bigger source streams, in memory that grows with what
must be remembered (hashes of rows, distinct values), not with the file. The choice hangs on
the size of the file a step reads, so a step decides the same way however it is run.

Handing on. A step that wrote a table in memory and is not the last of its chain keeps that
table (one, per process) under its file's identity (path, size, mtime, inode); the next step,
when it runs in the same process (embedded mode, or the same worker), reads the table from
memory instead of the file. The frame is the file's content, the same values and types as
`read_parquet` gives (checked before it is kept), so a step's result and files are the same
whether the steps run in one process or apart. Any change to the file (or another step's
table) makes the kept table stale: the step reads the file. The last step of a chain, a
step that fails, and a step that reads another table let it go.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

#: The largest source (file size) a step processes in memory: a CSV of about 2M rows of 10
#: columns. Peak memory in memory is about 4x the CSV's size.
IN_MEMORY_BYTES = 128 * 1024 * 1024
#: A Parquet table between steps is about half its CSV's size uncompressed (the way tables
#: are written in memory), a quarter with LZ4 (streamed).
PARQUET_FACTOR = 2

_Key = tuple[str, int, int, int]
_lock = threading.Lock()
_held: tuple[_Key, pl.DataFrame] | None = None


def in_memory(path: Path, csv: bool) -> bool:
    """Whether a step reading `path` works in memory (see the module's note)."""
    try:
        size = path.stat().st_size
    except OSError:
        return False  # the read that follows says what is wrong
    return size * (1 if csv else PARQUET_FACTOR) <= IN_MEMORY_BYTES


def _key(path: Path) -> _Key:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def keep(path: Path, frame: pl.DataFrame) -> None:
    """Hold `frame`, just written to `path`, for the next step; it replaces any other."""
    global _held
    try:
        key = _key(path)
    except OSError:
        return
    with _lock:
        _held = (key, frame)


def held(path: Path) -> pl.DataFrame | None:
    """The table kept for `path`, if its file has not changed since; else None."""
    with _lock:
        current = _held
    if current is None:
        return None
    try:
        key = _key(path)
    except OSError:
        return None
    return current[1] if current[0] == key else None


def release(unless: Path | None = None) -> None:
    """Let the kept table go (the chain's last step ran here, or a step failed); `unless`
    it is the table of that file, which a step is about to read. A step calls this as it
    starts, so a table whose next step ran in another process is not kept for long."""
    global _held
    if unless is not None and held(unless) is not None:
        return
    with _lock:
        _held = None


def hand_on(target: Path, table: pl.DataFrame) -> None:
    """Keep `table`, just written to `target`, for the next step in this process, if it is
    what reading the file gives (same columns and types)."""
    import polars as pl

    if dict(pl.read_parquet_schema(target)) == dict(table.schema):
        keep(target, table)
