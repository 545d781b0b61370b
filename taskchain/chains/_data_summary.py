"""One line for one data_chain step's result, for plain output (`watch` and `submit --wait`
off a terminal): rows in and out, columns, the file written, and what a reader should not
miss (rows clean dropped, a delimiter other than comma, renamed headers, null markers)."""

from __future__ import annotations

from typing import Any

from taskchain.chains._data_dialect import DELIMITERS
from taskchain.chains.base import brief


def summarize(result: Any) -> str:
    if not isinstance(result, dict) or result.get("step") not in ("clean", "transform", "analyze"):
        return brief(result)  # a result of an unknown shape: compact JSON, cut like any type's
    step = result["step"]
    rows, columns = _count(result.get("rows")), _count(result.get("columns"))
    if step == "clean":
        dropped = _reasons(result.get("dropped"))
        head = f"clean: {_count(result.get('rows_in'))} rows in, {rows} out"
        head += f" ({dropped}), {columns} columns" if dropped else f", {columns} columns"
    elif step == "transform":
        types = result.get("types")
        tally: dict[str, int] = {}
        for kind in types.values() if isinstance(types, dict) else ():
            tally[str(kind)] = tally.get(str(kind), 0) + 1
        kinds = ", ".join(f"{n} {kind}" for kind, n in tally.items())
        head = f"transform: {rows} rows, {columns} columns" + (f" ({kinds})" if kinds else "")
    else:
        head = f"analyze: {rows} rows, {columns} columns"
    if isinstance(result.get("file"), str):
        head += f" -> {result['file']}"
    return "; ".join([head, *_notes(result)])


def _notes(result: dict[str, Any]) -> list[str]:
    notes = []
    read = result.get("read")
    if isinstance(read, dict) and read.get("file") == result.get("input"):
        if read.get("delimiter", ",") != ",":
            notes.append(f"{DELIMITERS.get(read['delimiter'], repr(read['delimiter']))}-separated")
        if renamed := read.get("renamed"):
            notes.append(f"{len(renamed)} header name{'s' if len(renamed) != 1 else ''} changed")
        markers = read.get("null_markers")
        if isinstance(markers, dict) and markers:
            seen = dict.fromkeys(m for found in markers.values() for m in found)
            notes.append(f"null markers seen: {', '.join(seen)}")
    cleaned = result.get("cleaned")
    if result["step"] != "clean" and isinstance(cleaned, dict):
        dropped = _reasons(cleaned.get("dropped"))
        rows_in = _count(cleaned.get("rows_in"))
        notes += [f"clean dropped {dropped} of {rows_in} rows"] if dropped else []
    if notes_on := result.get("notes"):
        notes.append(f"notes on {len(notes_on)} column{'s' if len(notes_on) != 1 else ''}")
    return notes


def _reasons(dropped: Any) -> str:
    """`{"blank": 3, "incomplete": 0, "duplicate": 7}` → `7 duplicate, 3 blank`."""
    if not isinstance(dropped, dict):
        return ""
    order = ("duplicate", "blank", "incomplete")
    return ", ".join(f"{_count(dropped[k])} {k}" for k in order if dropped.get(k))


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"
