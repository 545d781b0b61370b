"""What the built-in chain types say of themselves in `taskchain submit --help`, readable
without importing them: their configs are pydantic models (~0.1 s to import), and help must
not pay for that. Each type in taskchain/chains/ takes its texts from here."""

from __future__ import annotations

MATH_MAX_DIGITS = 4000
MATH_MAX_STEPS = 1000

#: type name: (one-line summary, the paragraph `submit --help` shows)
TEXTS: dict[str, tuple[str, str]] = {
    "data_chain": (
        "clean, transform and analyze a CSV file; steps pass Parquet files, not data",
        "data_chain: --input FILE.csv [--steps clean,transform,analyze] [--delimiter "
        "comma|tab|semicolon|pipe] [--null-values [MARKER ...]]. One step per name, "
        "in the order given (default: all three): clean trims text and drops blank, "
        "incomplete (an empty cell or a null marker) and duplicate rows; transform makes "
        "column names snake_case and unique and types columns (boolean, integer, float, date, "
        "datetime, text); analyze reports rows and, per column, count, nulls, distinct, and "
        "min, max, mean, std of numbers. The CSV needs a header line and UTF-8 text; its "
        "delimiter is detected unless given; NA, N/A, null, NULL, NaN and - are missing "
        "values unless --null-values says otherwise. Its path is relative to the workspace. "
        "Each step writes its table under .taskchain/<chain id>/ and its result names the file.",
    ),
    "io_chain": (
        "write, read, checksum, stat, copy, move, delete, list workspace files",
        "io_chain: --targets PATH... and operations, run in the order typed: --ops "
        "read,checksum,stat,list,delete (names, comma-separated), --write TEXT, --copy DIR, "
        "--move DIR. One step per operation, applied to every target; after copy or move the "
        "targets are the new files. Paths are relative to the workspace (TASKCHAIN_WORKSPACE) "
        "and may not leave it, not even through a symlink; .taskchain/ is read-only. Writes "
        "and copies are atomic; move and delete can run twice (already moved / already absent)."
        " read reports up to 64 KiB of UTF-8 text per file (binary files: size only).",
    ),
    "math_chain": (
        "fold integers with add/subtract/multiply/divide/power/modulo, one step per operation",
        "math_chain: --numbers 1 2 3 [--operation add] [--iterations 1]. The sequence folded is "
        "NUMBERS repeated ITERATIONS times, left to right, one step per operation: "
        "--numbers 1 2 3 gives 1+2=3, 3+3=6. Operations: add, subtract, multiply, divide "
        "(floor division, like Python's //), power, modulo (Python's %, sign of the divisor). "
        f"Exact integers up to {MATH_MAX_DIGITS} digits; at most {MATH_MAX_STEPS} steps.",
    ),
}
