"""How a CSV file is separated: comma, semicolon, tab or pipe, judged from its first lines.

Pure Python, so that `submit` can judge a file without importing polars. Each candidate
splits the first rows with the csv module (quotes respected): a candidate fits when it
splits the header into more than one column; the fitting candidate whose data rows most
often have the header's width wins, then the one with the widest header, then the earlier
in DELIMITERS. A header of one column is fine (a one-column file), unless most rows under
it split into the same number of fields, or the header splits with another delimiter: such
a file would otherwise become one text column silently, so it is refused with the reason.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

#: The delimiters data_chain knows, in the order that breaks ties, and their names.
DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
ALIASES = {name: char for char, name in DELIMITERS.items()} | {"\\t": "\t"}
HEAD_BYTES = 64 * 1024
HEAD_ROWS = 100


def delimiter_value(value: object) -> str | None:
    """A config's `delimiter` as one of DELIMITERS (a character or its name); ValueError."""
    if value is None:
        return None
    if isinstance(value, str):
        char = value if value in DELIMITERS else ALIASES.get(value.strip().lower())
        if char:
            return char
    known = ", ".join(f"{name} {char!r}" for char, name in DELIMITERS.items())
    raise ValueError(f"{value!r} is not a delimiter data_chain reads (one of: {known})")


def label(char: str) -> str:
    """`;` → `semicolon (';')`: for messages."""
    return f"{DELIMITERS.get(char, 'delimiter')} ({char!r})"


def detect(path: Path, given: str | None = None) -> tuple[str, str | None]:
    """The delimiter of the CSV at `path` (`given`, or detected) and what is wrong, if
    anything, as a phrase that follows the file's name ("has a header of one column...")."""
    text, whole = _head(path)
    rows = {char: _rows(text, whole, char) for char in DELIMITERS}
    chosen = given
    if chosen is None:
        order = list(DELIMITERS)
        fitting = [c for c in order if rows[c] and len(rows[c][0]) > 1]
        if fitting:
            return max(
                fitting, key=lambda c: (_agreeing(rows[c]), len(rows[c][0]), -order.index(c))
            ), None
        chosen = ","
    if not rows[chosen] or len(rows[chosen][0]) > 1:
        return chosen, None
    for char in DELIMITERS:
        width = _usual_width(rows[char][1:])
        if char != chosen and len(rows[char][0]) > 1 and width == len(rows[char][0]):
            return chosen, (
                f"has one column with delimiter {label(chosen)} but {width} with {label(char)}: "
                f"set delimiter to {DELIMITERS[char]}"
            )
        if width > 1:
            how = "set delimiter" if given is None else "check the delimiter"
            return chosen, (
                f"has a header of one column but rows of {width} fields separated by "
                f"{label(char)}: give every column a name in the header line (or {how})"
            )
    return chosen, None


def _head(path: Path) -> tuple[str, bool]:
    """The first HEAD_BYTES of the file as text, cut after its last whole line; whether
    that is the whole file."""
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES + 1)
    whole = len(head) <= HEAD_BYTES
    text = head[:HEAD_BYTES].decode("utf-8", errors="replace").removeprefix("\ufeff")
    return (text if whole else text[: text.rfind("\n") + 1]), whole


def _rows(text: str, whole: bool, char: str) -> list[list[str]]:
    """The first non-blank rows of `text`, split by `char`; when the text is not the whole
    file its last row may be cut short (a quoted line break), so it is left out."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=char, strict=False)
    rows = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append(row)
            if len(rows) > HEAD_ROWS:
                break
    except csv.Error:  # e.g. a field larger than csv's limit: judge by the rows so far
        pass
    return rows if whole or len(rows) < 2 else rows[:-1]


def _agreeing(rows: list[list[str]]) -> float:
    """The share of data rows as wide as the header (1.0 with no data rows)."""
    body = rows[1:]
    return sum(len(row) == len(rows[0]) for row in body) / len(body) if body else 1.0


def _usual_width(body: list[list[str]]) -> int:
    """The number of fields most data rows (more than half) have; 0 if none has a majority.
    Not all: real files have short rows, which clean counts as incomplete."""
    widths = Counter(len(row) for row in body).most_common(1)
    return widths[0][0] if widths and widths[0][1] * 2 > len(body) else 0
