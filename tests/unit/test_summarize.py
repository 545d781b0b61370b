"""ChainType.summarize: one short line for one step's result, per chain type."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from taskchain.chains import get_type
from taskchain.chains.base import ChainType, StepContext, brief, cut, human_bytes, short_int
from taskchain.chains.io import IoChain
from taskchain.chains.math import MathChain


def test_short_int_keeps_up_to_40_digits_whole() -> None:
    assert short_int(0) == "0"
    assert short_int(-(2**127)) == "-170141183460469231731687303715884105728"
    assert short_int(10**39) == "1" + "0" * 39  # 40 digits


def test_short_int_abbreviates_a_4000_digit_integer() -> None:
    number = int("7" + "0" * 3998 + "3")
    assert short_int(number) == "700000…000003 (4000 digits)"
    assert short_int(-number) == "-700000…000003 (4000 digits)"


def test_short_int_of_an_integer_python_will_not_print() -> None:
    # Over sys.get_int_max_str_digits(), str() refuses: the summary says how big instead.
    assert sys.get_int_max_str_digits() < 10_000
    assert short_int(10**10_000) == "an integer of about 10001 digits"


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 KB"), (1234, "1.2 KB"), (999_949, "999.9 KB"),
     (999_950, "1.0 MB"), (5_300_000_000, "5.3 GB")],
)  # fmt: skip
def test_human_bytes(size: int, text: str) -> None:
    assert human_bytes(size) == text


def test_cut_keeps_one_line_of_80_characters() -> None:
    assert cut("a\nb\r\nc") == "a b  c"
    assert cut("x" * 80) == "x" * 80
    assert cut("x" * 81) == "x" * 79 + "…"
    assert len(cut("y" * 5000)) == 80


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (2.5, "2.5"),
        ("plain text", "plain text"),
        ("two\nlines\ttab", "two\\nlines\\ttab"),
        ([1, "a", None], '[1,"a",null]'),
        ({"rows": 3, "ok": False}, '{"rows":3,"ok":false}'),
    ],
)
def test_default_summary_is_compact_json(value: Any, text: str) -> None:
    assert ChainType.summarize(value) == text


def test_default_summary_cuts_a_large_result_to_80_characters() -> None:
    big = {"files": [{"path": f"file-{i}.txt", "size": i} for i in range(100)]}
    line = ChainType.summarize(big)
    assert len(line) == 80 and line.endswith("…")
    assert line.startswith('{"files":[{"path":"file-0.txt","size":0},')


def test_default_summary_of_a_structure_holding_an_unprintable_integer() -> None:
    assert brief({"n": 10**10_000, "m": 1}) == "object of 2 item(s)"
    assert brief([10**10_000]) == "array of 1 item(s)"


def test_math_summary_is_the_value() -> None:
    assert MathChain.summarize(6) == "6"
    assert MathChain.summarize(-(10**39)) == "-1" + "0" * 39
    assert MathChain.summarize(10**100) == "100000…000000 (101 digits)"
    assert MathChain.summarize(2**8192) == "109074…792896 (2467 digits)"  # 1.0907e2466


def test_math_summary_of_something_else_does_not_fail() -> None:
    assert MathChain.summarize("1e+100") == "1e+100"
    assert MathChain.summarize(False) == "false"


def ctx(workspace: Path) -> StepContext:
    return StepContext(chain_id="c1", index=0, step_count=1, workspace=workspace)


def run_io(workspace: Path, ops: list[Any], targets: list[str]) -> list[Any]:
    """Every step's result of an io_chain run for real in `workspace`."""
    config = IoChain.parse({"target_files": targets, "file_operations": ops})
    results: list[Any] = []
    previous = None
    for step in IoChain.plan(config):
        previous = IoChain.run_step(config, step, previous, ctx(workspace))
        results.append(previous)
    return results


def test_io_summaries_of_a_real_run(workspace: Path) -> None:
    (workspace / "a.txt").write_text("x" * 1200)
    (workspace / "b.txt").write_text("hello")
    (workspace / "bin").write_bytes(b"\x00\xff" * 10)
    ops = ["checksum", "stat", "read", {"op": "copy", "to": "bk"}, {"op": "move", "to": "old"},
           "delete"]  # fmt: skip
    results = run_io(workspace, ops, ["a.txt", "b.txt", "bin"])
    assert [IoChain.summarize(r) for r in results] == [
        "checksum: 3 files, 1.2 KB",
        "stat: 3 files, 1.2 KB",
        "read: 3 files, 1.2 KB (1 binary)",
        "copy: 3 files, 1.2 KB",
        "move: 3 files, 1.2 KB",
        "delete: 3 files, 1.2 KB",
    ]


def test_io_summary_tells_the_unusual_outcomes(workspace: Path) -> None:
    (workspace / "here.txt").write_text("abc")
    write = run_io(workspace, [{"op": "write", "content": "12345"}], ["here.txt", "new.txt"])[0]
    assert IoChain.summarize(write) == "write: 2 files, 10 B (1 replaced, 1 created)"
    gone = run_io(workspace, ["delete"], ["new.txt", "never.txt"])[0]
    assert IoChain.summarize(gone) == "delete: 2 files, 5 B (1 already absent)"


def test_io_summary_of_a_listing(workspace: Path) -> None:
    (workspace / "d").mkdir()
    for name in ("1", "2", "3"):
        (workspace / "d" / name).write_text(name)
    listing = run_io(workspace, ["list"], ["d"])[0]
    assert IoChain.summarize(listing) == "list: 1 folder, 3 entries"
    assert IoChain.summarize({"op": "list", "files": [{"count": 1}, {"count": 0}]}) == (
        "list: 2 folders, 1 entry"
    )


def test_io_summary_is_short_however_many_files() -> None:
    result = {
        "op": "checksum",
        "targets": [f"f{i}" for i in range(1000)],
        "files": [{"path": f"f{i}", "size": 1_000_000, "sha256": "ab" * 32} for i in range(1000)],
    }
    assert IoChain.summarize(result) == "checksum: 1000 files, 1.0 GB"


@pytest.mark.parametrize(
    "odd", [None, 3, "text", {"op": "read"}, {"files": "nope"}, {"files": [1]}]
)
def test_io_summary_of_an_unexpected_result_falls_back(odd: Any) -> None:
    assert IoChain.summarize(odd) == brief(odd)


def test_every_registered_type_summarizes_in_one_line() -> None:
    for name in ("math_chain", "io_chain", "data_chain"):
        line = get_type(name).summarize({"x": "y" * 500, "n": "\n"})
        assert "\n" not in line and len(line) <= 80, (name, line)
