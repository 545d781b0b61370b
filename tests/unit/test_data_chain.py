"""data_chain on real files: config and flags, every refusal, and the values each step writes.

Expected values are computed here independently of polars, with the csv and statistics
modules, from the same files.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from taskchain.chains import StepContext, get_type
from taskchain.chains.data import RESULT_COLUMNS
from taskchain.cli.config_input import parse_type_flags
from taskchain.errors import InvalidInput, StepError

DATA = get_type("data_chain")
SALES = Path(__file__).resolve().parents[2] / "examples" / "sales.csv"
HEADER = "Order ID,Order Date,Region,Product,Quantity,Unit Price,Customer,Returned"


@pytest.fixture(autouse=True, params=["in-memory", "streaming"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs both ways a step can work: in memory (files this small always are)
    and streaming (what a file over the in-memory limit gets)."""
    from taskchain.chains import _data_frames

    if request.param == "streaming":
        monkeypatch.setattr(_data_frames, "IN_MEMORY_BYTES", -1)
    _data_frames.release()
    yield request.param
    _data_frames.release()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir(exist_ok=True)
    shutil.copy(SALES, root / "sales.csv")
    return root


def checked(ws: Path, data_input: str, *steps: str, **more: Any) -> Any:
    config = DATA.parse({"data_input": data_input, "processing_steps": list(steps), **more})
    DATA.check(config, ws)
    return config


def run(
    ws: Path, data_input: str, *steps: str, chain_id: str = "c1", **more: Any
) -> list[dict[str, Any]]:
    """Every step of the chain in order, as the runner calls them; the results. `more`:
    other config keys."""
    config = checked(ws, data_input, *steps, **more)
    plan = DATA.plan(config)
    results: list[dict[str, Any]] = []
    for index, step in enumerate(plan):
        previous = results[-1] if results else None
        ctx = StepContext(chain_id=chain_id, index=index, step_count=len(plan), workspace=ws)
        result = DATA.run_step(config, step, previous, ctx)
        assert json.loads(json.dumps(result)) == result  # what the store keeps
        results.append(result)
    return results


def table(ws: Path, result: dict[str, Any]) -> pl.DataFrame:
    return pl.read_parquet(ws / result["table"])


def refused(ws: Path, data_input: str, *steps: str, **more: Any) -> str:
    with pytest.raises(InvalidInput) as info:
        checked(ws, data_input, *(steps or ("clean",)), **more)
    return str(info.value)


def failed(ws: Path, data_input: str, *steps: str, config: Any = None, **more: Any) -> str:
    raw = {"data_input": data_input, "processing_steps": list(steps), **more}
    config = config or DATA.parse(raw)
    ctx = StepContext(chain_id="c1", index=0, step_count=1, workspace=ws)
    with pytest.raises(StepError) as info:
        DATA.run_step(config, DATA.plan(config)[0], None, ctx)
    return str(info.value)


def reference_clean(
    path: Path, delimiter: str = ",", markers: tuple[str, ...] = ()
) -> tuple[list[tuple[str, ...]], dict[str, int]]:
    """What clean should keep, by the csv module: short rows padded with empty cells, and
    a cell that is one of the null `markers` (trimmed) counted as empty."""
    with path.open(newline="", encoding="utf-8-sig") as file:
        header, *body = list(csv.reader(file, delimiter=delimiter))
    kept: list[tuple[str, ...]] = []
    dropped = {"blank": 0, "incomplete": 0, "duplicate": 0}
    for raw in body:
        cells = tuple(c.strip() for c in raw) + ("",) * (len(header) - len(raw))
        present = [c and c not in markers for c in cells]
        if not any(present):
            dropped["blank"] += 1
        elif not all(present):
            dropped["incomplete"] += 1
        elif cells in kept:
            dropped["duplicate"] += 1
        else:
            kept.append(cells)
    return kept, dropped


# --- config, flags, plan -------------------------------------------------------------------


def test_steps_from_a_list_a_comma_string_or_both() -> None:
    assert DATA.parse(
        {"data_input": "a.csv", "processing_steps": "Clean, analyze"}
    ).processing_steps == ["clean", "analyze"]
    assert DATA.parse(
        {"data_input": "a.csv", "processing_steps": ["transform,clean", "analyze"]}
    ).processing_steps == ["transform", "clean", "analyze"]


def test_steps_default_to_all_three_and_may_repeat() -> None:
    assert DATA.parse({"data_input": "a.csv"}).processing_steps == [
        "clean",
        "transform",
        "analyze",
    ]
    config = DATA.parse(
        {"data_input": "a.csv", "processing_steps": ["analyze", "clean", "analyze"]}
    )
    assert [(s.name, s.params) for s in DATA.plan(config)] == [
        ("analyze", {"step": "analyze"}),
        ("clean", {"step": "clean"}),
        ("analyze", {"step": "analyze"}),
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"data_input": "a.csv", "processing_steps": ["clean", "explode"]},
            "unknown step 'explode'",
        ),
        ({"data_input": "a.csv", "processing_steps": []}, "give at least one step"),
        ({"data_input": "a.csv", "processing_steps": " , "}, "give at least one step"),
        ({"data_input": "a.csv", "processing_steps": [1]}, "a step is a name"),
        ({"data_input": "a.csv", "processing_steps": ["clean"] * 21}, "at most 20 items"),
        ({"processing_steps": ["clean"]}, "data_input: Field required"),
        ({"data_input": "  ", "processing_steps": ["clean"]}, "not a usable path"),
        ({"data_input": "a.csv", "steps": ["clean"]}, "steps: Extra inputs are not permitted"),
    ],
)
def test_bad_configs_are_refused_with_the_reason(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        DATA.parse(config)
    assert message in str(info.value)
    assert str(info.value).startswith("data_chain config: ")


def test_flags_build_the_same_config() -> None:
    raw = parse_type_flags(DATA, ["--input", "s.csv", "--steps", "clean,transform", "analyze"])
    assert raw == {"data_input": "s.csv", "processing_steps": ["clean,transform", "analyze"]}
    assert DATA.parse(raw).model_dump() == {
        "data_input": "s.csv",
        "processing_steps": ["clean", "transform", "analyze"],
        "delimiter": None,
        "null_values": ["NA", "N/A", "null", "NULL", "NaN", "-"],
        "result_columns": 100,
    }
    again = parse_type_flags(DATA, ["--steps", "analyze", "--input", "s.csv", "--steps", "clean"])
    assert DATA.parse(again).processing_steps == ["analyze", "clean"]
    with pytest.raises(InvalidInput, match="unexpected argument '--numbers'"):
        parse_type_flags(DATA, ["--input", "s.csv", "--numbers", "1"])


def test_loading_the_chain_types_does_not_import_polars() -> None:
    code = (
        "import sys; from taskchain.chains import all_types; all_types(plugins=False); "
        "import taskchain.chains.data; print('polars' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# --- refusals at submit ---------------------------------------------------------------------


def test_a_good_csv_passes_check_by_relative_absolute_or_internal_link(ws: Path) -> None:
    checked(ws, "sales.csv", "clean")
    checked(ws, str(ws / "sales.csv"), "clean")
    (ws / "link.csv").symlink_to(ws / "sales.csv")
    checked(ws, "link.csv", "clean")


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("missing.csv", None, "'missing.csv' does not exist"),
        ("empty.csv", b"", "'empty.csv' is empty"),
        ("blank.csv", b"\n \r\n\t\n", "'blank.csv' is empty (no header line)"),
        ("binary.csv", bytes(range(256)) * 8, "'binary.csv' looks binary"),
        ("latin1.csv", "name,city\nJosé,Málaga\n".encode("latin-1"), "is not UTF-8 text"),
    ],
)
def test_unusable_files_are_refused_at_submit(
    ws: Path, name: str, make: bytes | None, message: str
) -> None:
    if make is not None:
        (ws / name).write_bytes(make)
    assert message in refused(ws, name)


def test_a_folder_is_refused(ws: Path) -> None:
    (ws / "data").mkdir()
    assert refused(ws, "data") == "data_chain: data_input 'data' is a folder, not a CSV file"


@pytest.mark.parametrize("path", ["../outside.csv", "sub/../../outside.csv"])
def test_a_path_escaping_with_dotdot_is_refused(ws: Path, path: str) -> None:
    (ws.parent / "outside.csv").write_text("a,b\n1,2\n")
    assert f"path {path!r} resolves outside the workspace" in refused(ws, path)


def test_an_absolute_path_elsewhere_is_refused(ws: Path) -> None:
    outside = ws.parent / "outside.csv"
    outside.write_text("a,b\n1,2\n")
    assert "resolves outside the workspace" in refused(ws, str(outside))


def test_a_symlink_pointing_out_is_refused(ws: Path) -> None:
    (ws.parent / "outside.csv").write_text("a,b\n1,2\n")
    (ws / "leak.csv").symlink_to(ws.parent / "outside.csv")
    (ws / "door").symlink_to(ws.parent)
    assert "path 'leak.csv' resolves outside" in refused(ws, "leak.csv")
    assert "path 'door/outside.csv' resolves outside" in refused(ws, "door/outside.csv")


# --- refusals only visible at run time ------------------------------------------------------


def test_a_ragged_row_fails_the_step_naming_the_line(ws: Path) -> None:
    (ws / "ragged.csv").write_text("a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n")
    message = failed(ws, "ragged.csv", "clean")
    assert message == "ragged.csv: line 4 has 4 fields but the header has 3 (ragged rows)"


def test_bad_encoding_after_the_first_kb_fails_the_step(ws: Path) -> None:
    body = "".join(f"{i},name {i}\n" for i in range(200))  # > 1 KB of good UTF-8 first
    (ws / "mixed.csv").write_bytes(b"id,name\n" + body.encode() + b"201,Jos\xe9\n")
    checked(ws, "mixed.csv", "analyze")  # the sniff sees only the start
    message = failed(ws, "mixed.csv", "analyze")
    assert message == "mixed.csv is not UTF-8 text: byte 0xe9 on line 202 (save it as UTF-8)"


def test_a_file_that_vanished_after_submit_fails_the_step(ws: Path) -> None:
    config = checked(ws, "sales.csv", "clean")
    (ws / "sales.csv").unlink()
    assert failed(ws, "sales.csv", config=config) == "sales.csv does not exist"


def test_a_symlink_turned_outward_after_submit_fails_the_step(ws: Path) -> None:
    (ws.parent / "outside.csv").write_text("a,b\n1,2\n")
    (ws / "link.csv").symlink_to(ws / "sales.csv")
    config = checked(ws, "link.csv", "clean")
    (ws / "link.csv").unlink()
    (ws / "link.csv").symlink_to(ws.parent / "outside.csv")
    assert "path 'link.csv' resolves outside the workspace" in failed(ws, "", config=config)
    assert not (ws / ".taskchain").exists()


def test_an_unterminated_quote_fails_the_step(ws: Path) -> None:
    (ws / "quote.csv").write_text('a,b\n"open,1\n2,3\n')
    assert failed(ws, "quote.csv", "clean").startswith("quote.csv: cannot read it as CSV: ")


def test_a_missing_table_from_the_previous_step_fails_the_step(ws: Path) -> None:
    first = run(ws, "sales.csv", "clean")[0]
    (ws / first["table"]).unlink()
    config = DATA.parse({"data_input": "sales.csv", "processing_steps": ["clean", "analyze"]})
    ctx = StepContext(chain_id="c1", index=1, step_count=2, workspace=ws)
    with pytest.raises(StepError, match="written by the previous step, is missing"):
        DATA.run_step(config, DATA.plan(config)[1], first, ctx)


def test_a_failed_step_leaves_no_file_behind(ws: Path) -> None:
    (ws / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    failed(ws, "ragged.csv", "clean")
    assert list((ws / ".taskchain" / "c1").iterdir()) == []


# --- clean ----------------------------------------------------------------------------------


def test_clean_drops_blank_incomplete_and_duplicate_rows(ws: Path) -> None:
    kept, dropped = reference_clean(SALES)
    result = run(ws, "sales.csv", "clean")[0]
    assert result == {
        "step": "clean",
        "input": "sales.csv",
        "file": ".taskchain/c1/1-clean.parquet",
        "table": ".taskchain/c1/1-clean.parquet",
        "rows": len(kept),
        "columns": 8,
        "rows_in": 25,
        "dropped": dropped,
        "read": {"file": "sales.csv", "delimiter": ",", "renamed": [], "null_markers": {}},
        "cleaned": {"rows_in": 25, "rows": len(kept), "dropped": dropped},
    }
    assert (len(kept), dropped) == (17, {"blank": 3, "incomplete": 3, "duplicate": 2})
    out = table(ws, result)
    assert out.columns == HEADER.split(",")
    assert out.rows() == kept  # trimmed text, first occurrences, in file order
    assert out.schema["Quantity"] == pl.String  # clean changes no type


def test_clean_trims_whitespace_and_treats_it_as_empty(ws: Path) -> None:
    (ws / "pad.csv").write_text("  name , qty\n  Ann  ,  1\n Bob,\t2\t\n   ,3\nAnn,1 \n")
    result = run(ws, "pad.csv", "clean")[0]
    assert table(ws, result).to_dict(as_series=False) == {"name": ["Ann", "Bob"], "qty": ["1", "2"]}
    assert result["dropped"] == {"blank": 0, "incomplete": 1, "duplicate": 1}


def test_clean_keeps_quoted_commas_and_newlines(ws: Path) -> None:
    (ws / "q.csv").write_text('a,b\n"x, y",1\n"two\nlines",2\n"x, y",1\n')
    result = run(ws, "q.csv", "clean")[0]
    assert table(ws, result).rows() == [("x, y", "1"), ("two\nlines", "2")]
    assert result["rows_in"] == 3


def test_clean_of_a_header_only_file_writes_an_empty_table(ws: Path) -> None:
    (ws / "h.csv").write_text("a,b\n")
    result = run(ws, "h.csv", "clean")[0]
    assert (result["rows"], result["rows_in"], result["columns"]) == (0, 0, 2)
    assert table(ws, result).columns == ["a", "b"]


def test_a_repeated_or_empty_header_name_gets_a_unique_name(ws: Path) -> None:
    (ws / "n.csv").write_text("a,a, ,b\n1,2,3,4\n")
    assert table(ws, run(ws, "n.csv", "clean")[0]).columns == ["a", "a_2", "column_3", "b"]


def test_many_duplicates_in_a_big_file(ws: Path) -> None:
    lines = [f"{i % 1000},{i % 7}" for i in range(30_000)]
    (ws / "dup.csv").write_text("k,v\n" + "\n".join(lines) + "\n")
    result = run(ws, "dup.csv", "clean")[0]
    expected = list(dict.fromkeys(tuple(line.split(",")) for line in lines))
    assert result["rows"] == len(expected) == 7000
    assert result["dropped"]["duplicate"] == 23_000
    assert table(ws, result).rows() == expected


def test_rows_that_only_share_a_hash_are_not_duplicates(tmp_path: Path) -> None:
    from taskchain.chains import _data_clean

    (tmp_path / "t").mkdir()
    path = tmp_path / "t" / "t.parquet"
    pl.DataFrame({"a": ["x", "y", "x", "z", "y"], "b": ["1"] * 5}).write_parquet(path)
    hashes = pl.Series([7, 7, 7, 8, 7], dtype=pl.UInt64)  # as if x and y collided
    assert _data_clean._dedupe(path, hashes) == 2
    assert pl.read_parquet(path)["a"].to_list() == ["x", "y", "z"]
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize(
    ("lines", "kept"),
    [
        (["1,a", "1,b"], [("1", "a"), ("1", "b")]),
        (["1,a", "1,b", "1,a", "2,c", "1,b"], [("1", "a"), ("1", "b"), ("2", "c")]),
    ],
)
def test_clean_lets_values_decide_when_rows_share_a_hash(
    ws: Path, monkeypatch: pytest.MonkeyPatch, lines: list[str], kept: list[tuple[str, str]]
) -> None:
    from taskchain.chains import _data_clean

    monkeypatch.setattr(_data_clean, "_row_hash", lambda columns: pl.col(columns[0]).hash())
    (ws / "c.csv").write_text("k,v\n" + "\n".join(lines) + "\n")
    result = run(ws, "c.csv", "clean")[0]
    assert table(ws, result).rows() == kept
    assert result["dropped"]["duplicate"] == len(lines) - len(kept)
    assert sorted(p.name for p in (ws / ".taskchain" / "c1").iterdir()) == ["1-clean.parquet"]


def test_clean_without_duplicates_writes_the_table_once(ws: Path) -> None:
    (ws / "u.csv").write_text("a,b\n1,2\n3,4\n")
    result = run(ws, "u.csv", "clean")[0]
    assert result["dropped"]["duplicate"] == 0
    assert table(ws, result).rows() == [("1", "2"), ("3", "4")]


# --- transform ------------------------------------------------------------------------------


def test_transform_names_and_types_the_sales_table(ws: Path) -> None:
    kept, _ = reference_clean(SALES)
    result = run(ws, "sales.csv", "clean", "transform")[1]
    assert result["renamed"] == {
        "Order ID": "order_id",
        "Order Date": "order_date",
        "Region": "region",
        "Product": "product",
        "Quantity": "quantity",
        "Unit Price": "unit_price",
        "Customer": "customer",
        "Returned": "returned",
    }
    assert result["types"] == {
        "order_id": "integer",
        "order_date": "date",
        "region": "text",
        "product": "text",
        "quantity": "integer",
        "unit_price": "float",
        "customer": "text",
        "returned": "boolean",
    }
    assert (result["file"], result["rows"], result["columns"]) == (
        ".taskchain/c1/2-transform.parquet",
        17,
        8,
    )
    out = table(ws, result)
    assert out["order_id"].to_list() == [int(r[0]) for r in kept]
    assert out["order_date"].to_list() == [date.fromisoformat(r[1]) for r in kept]
    assert out["quantity"].to_list() == [int(r[4]) for r in kept]
    assert out["unit_price"].to_list() == [float(r[5]) for r in kept]
    assert out["returned"].to_list() == [r[7].lower() == "true" for r in kept]


@pytest.mark.parametrize(
    ("values", "kind", "dtype", "typed"),
    [
        (["true", "FALSE", "True", ""], "boolean", pl.Boolean, [True, False, True, None]),
        (["1", "-20", "+3", "0", ""], "integer", pl.Int64, [1, -20, 3, 0, None]),
        (["1", "2.5", ".5", "1e3", "-0.25"], "float", pl.Float64, [1.0, 2.5, 0.5, 1000.0, -0.25]),
        (["2024-01-05", "2023-12-31"], "date", pl.Date, [date(2024, 1, 5), date(2023, 12, 31)]),
        (
            ["2024-01-05 10:30:00", "2024-01-06T08:00:00.5"],
            "datetime",
            pl.Datetime("us"),
            [datetime(2024, 1, 5, 10, 30), datetime(2024, 1, 6, 8, 0, 0, 500000)],
        ),
        (["007", "010", "123"], "text", pl.String, ["007", "010", "123"]),  # codes keep zeros
        (["1.5", "NaN"], "float", pl.Float64, [1.5, None]),  # NaN: a null marker
        (["1.5", "inf"], "text", pl.String, ["1.5", "inf"]),  # not a finite number
        (["2024-02-30", "2024-03-01"], "text", pl.String, ["2024-02-30", "2024-03-01"]),
        (["1", "yes"], "text", pl.String, ["1", "yes"]),
        (["", " "], "text", pl.String, [None, None]),  # nothing to type: text, all null
    ],
)
def test_transform_type_rules(
    ws: Path, values: list[str], kind: str, dtype: Any, typed: list[Any]
) -> None:
    (ws / "t.csv").write_text("Value\n" + "\n".join(f" {v} " for v in values) + "\n")
    result = run(ws, "t.csv", "transform")[0]
    assert result["types"] == {"value": kind}
    out = table(ws, result)
    assert out.schema["value"] == dtype
    assert out["value"].to_list() == typed


def test_a_column_that_breaks_its_sampled_type_is_typed_from_every_value(ws: Path) -> None:
    rows = [f"{i},{i},{i}" for i in range(12_000)] + ["2.5,x,7"]  # past the 10,000-row sample
    (ws / "late.csv").write_text("n,m,k\n" + "\n".join(rows) + "\n")
    result = run(ws, "late.csv", "transform")[0]
    assert result["types"] == {"n": "float", "m": "text", "k": "integer"}
    out = table(ws, result)
    assert out["n"][-1] == 2.5 and out["m"][-1] == "x" and out["k"].sum() == sum(range(12_000)) + 7


def test_column_names_become_unique_snake_case(ws: Path) -> None:
    (ws / "n.csv").write_text(
        "Order ID,orderId,unitPrice,HTTPStatus,Café (€),%,order_id\n" + "1," * 6 + "1\n"
    )
    result = run(ws, "n.csv", "transform")[0]
    assert table(ws, result).columns == [
        "order_id", "order_id_2", "unit_price", "http_status", "cafe", "column_6", "order_id_3",
    ]  # fmt: skip


def test_transform_twice_changes_nothing_more(ws: Path) -> None:
    first, second = run(ws, "sales.csv", "transform", "transform")
    assert second["renamed"] == {} and second["types"] == first["types"]
    assert table(ws, first).equals(table(ws, second))


# --- analyze --------------------------------------------------------------------------------


def numeric(values: list[float]) -> dict[str, Any]:
    return {
        "min": min(values),
        "max": max(values),
        "mean": pytest.approx(statistics.mean(values)),
        "std": pytest.approx(statistics.stdev(values)),
    }


def test_analyze_reports_statistics_computed_independently(ws: Path) -> None:
    kept, _ = reference_clean(SALES)
    results = run(ws, "sales.csv", "clean", "transform", "analyze")
    result = results[2]
    assert result["file"] == ".taskchain/c1/3-analyze.json"
    assert result["table"] == result["input"] == results[1]["table"]  # passed on unchanged
    assert (result["rows"], result["columns"]) == (17, 8)
    summary = result["summary"]
    assert summary["rows"] == 17
    columns = summary["columns"]
    typed = {"order_id": int, "quantity": int, "unit_price": float, "returned": str.lower}
    for i, name in enumerate(columns):
        values = [typed.get(name, str)(r[i]) for r in kept]
        assert columns[name]["count"] == 17
        assert columns[name]["nulls"] == 0
        assert columns[name]["distinct"] == len(set(values))
    assert columns["quantity"] == {
        "type": "integer", "count": 17, "nulls": 0, "distinct": 14,
        **numeric([int(r[4]) for r in kept]),
    }  # fmt: skip
    assert columns["unit_price"] == {
        "type": "float", "count": 17, "nulls": 0, "distinct": 7,
        **numeric([float(r[5]) for r in kept]),
    }  # fmt: skip
    assert columns["order_date"] == {
        "type": "date", "count": 17, "nulls": 0, "distinct": 14,
        "min": "2024-01-03", "max": "2024-01-20",
    }  # fmt: skip
    assert columns["region"] == {"type": "text", "count": 17, "nulls": 0, "distinct": 5}
    assert columns["returned"] == {"type": "boolean", "count": 17, "nulls": 0, "distinct": 2}
    assert json.loads((ws / result["file"]).read_text()) == summary


def test_analyze_of_the_raw_csv_types_values_and_counts_nulls(ws: Path) -> None:
    result = run(ws, "sales.csv", "analyze")[0]
    assert (result["input"], result["table"], result["rows"]) == ("sales.csv", "sales.csv", 25)
    with SALES.open(newline="") as file:
        body = list(csv.reader(file))[1:]
    prices = [r[5].strip() if len(r) > 5 else "" for r in body]
    present = [float(p) for p in prices if p]
    assert result["summary"]["columns"]["Unit Price"] == {
        "type": "float",
        "count": len(present),
        "nulls": 25 - len(present),
        "distinct": len(set(present)),
        **numeric(present),
    }
    regions = {r[2].strip() for r in body if len(r) > 2 and r[2].strip()}
    assert result["summary"]["columns"]["Region"]["distinct"] == len(regions) == 5


def test_analyze_of_a_header_only_file(ws: Path) -> None:
    (ws / "h.csv").write_text("a,b\n")
    assert run(ws, "h.csv", "analyze")[0]["summary"] == {
        "rows": 0,
        "columns": {
            "a": {"type": "text", "count": 0, "nulls": 0, "distinct": 0},
            "b": {"type": "text", "count": 0, "nulls": 0, "distinct": 0},
        },
    }


def test_a_wide_summary_is_shortened_in_the_result_not_in_the_file(ws: Path) -> None:
    width = RESULT_COLUMNS + 5
    header = ",".join(f"c{i}" for i in range(width))
    (ws / "wide.csv").write_text(header + "\n" + ",".join(["1"] * width) + "\n")
    result = run(ws, "wide.csv", "analyze")[0]
    assert len(result["summary"]["columns"]) == RESULT_COLUMNS
    assert result["summary"]["columns_omitted"] == 5
    assert result["columns"] == width
    assert len(json.loads((ws / result["file"]).read_text())["columns"]) == width


# --- chains of steps, files, idempotency ----------------------------------------------------


def test_steps_in_any_order_pass_files_not_data(ws: Path) -> None:
    results = run(ws, "sales.csv", "analyze", "clean", "analyze", "transform", "analyze")
    assert [r["file"] for r in results] == [
        ".taskchain/c1/1-analyze.json",
        ".taskchain/c1/2-clean.parquet",
        ".taskchain/c1/3-analyze.json",
        ".taskchain/c1/4-transform.parquet",
        ".taskchain/c1/5-analyze.json",
    ]
    assert [r["input"] for r in results] == [
        "sales.csv",
        "sales.csv",
        ".taskchain/c1/2-clean.parquet",
        ".taskchain/c1/2-clean.parquet",
        ".taskchain/c1/4-transform.parquet",
    ]
    assert [r["rows"] for r in results] == [25, 17, 17, 17, 17]
    assert results[2]["summary"]["columns"]["Unit Price"]["type"] == "float"
    assert all(len(json.dumps(r)) < 4000 for r in results)
    assert sorted(p.name for p in (ws / ".taskchain" / "c1").iterdir()) == [
        "1-analyze.json", "2-clean.parquet", "3-analyze.json",
        "4-transform.parquet", "5-analyze.json",
    ]  # fmt: skip


def test_running_a_step_again_writes_the_same_file(ws: Path) -> None:
    first = run(ws, "sales.csv", "clean", "transform", "analyze")
    files = {p.name: p.read_bytes() for p in (ws / ".taskchain" / "c1").iterdir()}
    again = run(ws, "sales.csv", "clean", "transform", "analyze")
    assert again == first
    assert {p.name: p.read_bytes() for p in (ws / ".taskchain" / "c1").iterdir()} == files


def test_steps_report_progress(ws: Path) -> None:
    config = checked(ws, "sales.csv", "clean")
    messages: list[str] = []
    ctx = StepContext(chain_id="c1", index=0, step_count=1, workspace=ws, report=messages.append)
    DATA.run_step(config, DATA.plan(config)[0], None, ctx)
    size = f"{SALES.stat().st_size / 1024:.1f} KB"
    assert messages == [
        f"cleaning sales.csv ({size})",
        "dropping 2 duplicate rows",
        "wrote 17 rows",
    ]


def test_nothing_is_written_outside_the_chain_folder(ws: Path) -> None:
    before = {p for p in ws.parent.rglob("*")}
    run(ws, "sales.csv", "clean", "transform", "analyze", chain_id="abc")
    new = {p for p in ws.parent.rglob("*")} - before
    assert new and all(p.is_relative_to(ws / ".taskchain") for p in new)
    assert os.listdir(ws / ".taskchain") == ["abc"]


# --- integers of any size (issue 8, item 2) ---------------------------------------------------

IDS = ["12345678901234567890", "12345678901234567891", "12345678901234567892"]


@pytest.mark.parametrize("steps", [("transform", "analyze"), ("analyze",), ("clean", "analyze")])
def test_integers_beyond_64_bits_keep_every_value(ws: Path, steps: tuple[str, ...]) -> None:
    (ws / "ids.csv").write_text("id,n\n" + "".join(f"{i},{n}\n" for n, i in enumerate(IDS)))
    results = run(ws, "ids.csv", *steps)
    if steps[0] == "transform":
        assert results[0]["types"] == {"id": "integer", "n": "integer"}
        out = table(ws, results[0])
        assert out.schema["id"] == pl.Int128
        assert out["id"].to_list() == [int(i) for i in IDS]
    column = results[-1]["summary"]["columns"]["id"]
    assert column == {
        "type": "integer", "count": 3, "nulls": 0, "distinct": 3,
        "min": int(IDS[0]), "max": int(IDS[2]),
        "mean": pytest.approx(float(IDS[1])), "std": 1.0,  # not 0.0: distances from a value
    }  # fmt: skip
    assert type(column["min"]) is int and json.loads(json.dumps(column))["max"] == int(IDS[2])


def test_a_column_that_outgrows_64_bits_after_the_sample_becomes_128_bit(ws: Path) -> None:
    rows = [str(i) for i in range(12_000)] + ["-170141183460469231731687303715884105728"]
    (ws / "late.csv").write_text("n\n" + "\n".join(rows) + "\n")
    result = run(ws, "late.csv", "transform")[0]
    out = table(ws, result)
    assert (result["types"], out.schema["n"]) == ({"n": "integer"}, pl.Int128)
    assert out["n"].to_list() == [int(r) for r in rows]


def test_integers_beyond_128_bits_stay_text_with_a_note(ws: Path) -> None:
    huge = [str(2**130 + i) for i in range(3)]
    (ws / "huge.csv").write_text("Id\n" + "\n".join(huge) + "\n")
    transformed, analyzed = run(ws, "huge.csv", "transform", "analyze")
    note = "integers too big for 128 bits: kept as text, exactly"
    assert (transformed["types"], transformed["notes"]) == ({"id": "text"}, {"id": note})
    assert table(ws, transformed)["id"].to_list() == huge
    assert analyzed["summary"]["columns"]["id"] == {
        "type": "text", "count": 3, "nulls": 0, "distinct": 3, "note": note,
    }  # fmt: skip
    assert "notes" not in run(ws, "sales.csv", "transform")[0]


@pytest.mark.parametrize(
    "values",
    [
        ["1.5", "12345678901234567891"],  # a float would make it 12345678901234567168
        ["1.5", "1234567890123456.5"],  # 16 digits before the point
        [str(2**130), "abc"],  # not every value an integer: plain text, no note
    ],
)
def test_values_a_float_cannot_hold_keep_the_column_text(ws: Path, values: list[str]) -> None:
    (ws / "m.csv").write_text("v\n" + "\n".join(values) + "\n")
    result = run(ws, "m.csv", "transform")[0]
    assert result["types"] == {"v": "text"} and "notes" not in result
    assert table(ws, result)["v"].to_list() == values


# --- delimiters (item 12) ---------------------------------------------------------------------

ROWS = [["name", "city", "amount"], ["Ann", "Köln, DE", "1.5"], ["Bob", "Lyon", "2"]]


def write_rows(path: Path, delimiter: str, rows: list[list[str]] = ROWS) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file, delimiter=delimiter).writerows(rows)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_detected(ws: Path, delimiter: str) -> None:
    write_rows(ws / "d.csv", delimiter)
    result = run(ws, "d.csv", "transform")[0]
    assert result["read"]["delimiter"] == delimiter
    out = table(ws, result)
    assert out.columns == ["name", "city", "amount"]
    assert out.rows() == [("Ann", "Köln, DE", 1.5), ("Bob", "Lyon", 2.0)]


def test_semicolons_with_decimal_commas_are_read_as_semicolon_separated(ws: Path) -> None:
    (ws / "eu.csv").write_text("produkt;preis\nA;1,5\nB;2,25\n")
    result = run(ws, "eu.csv", "clean")[0]
    assert result["read"]["delimiter"] == ";"
    assert table(ws, result).rows() == [("A", "1,5"), ("B", "2,25")]


def test_a_given_delimiter_wins_over_detection(ws: Path) -> None:
    (ws / "both.csv").write_text("a;b,c\n1;2,3\n4;5,6\n")
    assert table(ws, run(ws, "both.csv", "clean")[0]).columns == ["a;b", "c"]  # tie: comma
    result = run(ws, "both.csv", "clean", delimiter="semicolon")[0]
    assert (result["read"]["delimiter"], table(ws, result).columns) == (";", ["a", "b,c"])


@pytest.mark.parametrize(
    ("given", "stored"),
    [(",", ","), ("comma", ","), (";", ";"), ("Semicolon", ";"), ("\t", "\t"), ("tab", "\t"),
     ("\\t", "\t"), ("|", "|"), ("pipe", "|"), (None, None)],
)  # fmt: skip
def test_a_delimiter_is_a_character_or_its_name(given: str | None, stored: str | None) -> None:
    assert DATA.parse({"data_input": "a.csv", "delimiter": given}).delimiter == stored


@pytest.mark.parametrize("bad", ["x", ":", "", ",;", 9])
def test_other_delimiters_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        DATA.parse({"data_input": "a.csv", "delimiter": bad})
    assert str(info.value) == (
        f"data_chain config: delimiter: {bad!r} is not a delimiter data_chain reads "
        "(one of: comma ',', tab '\\t', semicolon ';', pipe '|')"
    )


def test_a_one_column_file_is_fine(ws: Path) -> None:
    (ws / "one.csv").write_text("name\nAnn\nBob; Jr\n")  # one row's ; is not a pattern
    result = run(ws, "one.csv", "clean")[0]
    assert table(ws, result).rows() == [("Ann",), ("Bob; Jr",)]


@pytest.mark.parametrize(
    ("text", "more", "message"),
    [
        (
            "id\n1;2;3\n4;5;6\n",
            {},
            "has a header of one column but rows of 3 fields separated by semicolon (';'): "
            "give every column a name in the header line (or set delimiter)",
        ),
        (
            "id\n1\t2\n3\t4\n",
            {"delimiter": "comma"},
            "has a header of one column but rows of 2 fields separated by tab ('\\t'): "
            "give every column a name in the header line (or check the delimiter)",
        ),
        (
            "a,b\n1,2\n3,4\n",
            {"delimiter": ";"},
            "has one column with delimiter semicolon (';') but 2 with comma (','): "
            "set delimiter to comma",
        ),
    ],
)
def test_a_one_column_header_over_delimited_rows_is_refused(
    ws: Path, text: str, more: dict[str, str], message: str
) -> None:
    (ws / "x.csv").write_text(text)
    assert refused(ws, "x.csv", **more) == f"data_chain: data_input 'x.csv' {message}"


def test_a_file_changed_after_submit_into_one_column_fails_the_step(ws: Path) -> None:
    write_rows(ws / "d.csv", ";")
    config = checked(ws, "d.csv", "clean")
    (ws / "d.csv").write_text("header\n1;2\n3;4\n")
    assert failed(ws, "", config=config) == (
        "d.csv has a header of one column but rows of 2 fields separated by semicolon (';'): "
        "give every column a name in the header line (or set delimiter)"
    )


def test_ragged_rows_are_named_with_any_delimiter(ws: Path) -> None:
    (ws / "r.csv").write_text("a|b\n1|2\n3|4|5\n")
    assert failed(ws, "r.csv", "clean") == (
        "r.csv: line 3 has 3 fields but the header has 2 (ragged rows)"
    )


# --- null markers (item 13) -------------------------------------------------------------------

MARKED = "k,v,w\n1,NA,x\n2, N/A ,y\n3,null,z\n4,NULL,x\n5,NaN,y\n6,-,z\n7,,x\n8,10,-\n9,20,y\n"


def test_the_usual_null_markers_are_missing_values(ws: Path) -> None:
    (ws / "m.csv").write_text(MARKED)
    analyzed, cleaned = run(ws, "m.csv", "analyze", "clean")
    v = analyzed["summary"]["columns"]["v"]
    assert (v["type"], v["count"], v["nulls"], v["min"], v["max"]) == ("integer", 2, 7, 10, 20)
    assert analyzed["summary"]["columns"]["w"]["nulls"] == 1
    seen = {"v": ["NA", "N/A", "null", "NULL", "NaN", "-"], "w": ["-"]}
    assert analyzed["read"]["null_markers"] == seen
    expected, dropped = reference_clean(ws / "m.csv", markers=tuple(seen["v"]))
    assert table(ws, cleaned).rows() == expected == [("9", "20", "y")]
    assert cleaned["dropped"] == dropped == {"blank": 0, "incomplete": 8, "duplicate": 0}
    assert cleaned["read"]["null_markers"] == seen


def test_transform_turns_markers_into_nulls(ws: Path) -> None:
    (ws / "m.csv").write_text(MARKED)
    result = run(ws, "m.csv", "transform")[0]
    assert table(ws, result)["v"].to_list() == [None] * 7 + [10, 20]
    assert result["read"]["null_markers"]["w"] == ["-"]


def test_null_values_replace_the_usual_markers(ws: Path) -> None:
    (ws / "m.csv").write_text("a,b\n1,?\nNA,2\n-,3\n")
    result = run(ws, "m.csv", "analyze", null_values=["?"])[0]
    columns = result["summary"]["columns"]
    assert (columns["a"]["type"], columns["b"]["type"], columns["b"]["nulls"]) == (
        "text", "integer", 1,
    )  # fmt: skip
    assert result["read"]["null_markers"] == {"b": ["?"]}
    none = run(ws, "m.csv", "analyze", null_values=[])[0]
    assert none["summary"]["columns"]["a"] == {
        "type": "text",
        "count": 3,
        "nulls": 0,
        "distinct": 3,
    }
    assert none["read"]["null_markers"] == {}


@pytest.mark.parametrize(
    ("given", "stored"),
    [([" NA ", "", "NA", "?"], ["NA", "?"]), ("-", ["-"]), ([], [])],
)
def test_null_values_are_trimmed_and_deduplicated(given: Any, stored: list[str]) -> None:
    assert DATA.parse({"data_input": "a.csv", "null_values": given}).null_values == stored


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([1], "null_values: a null value is text, like 'NA' or '-'"),
        (["a\nb"], "null_values: a null value is one line of at most 100 characters"),
        ([str(i) for i in range(51)], "null_values: List should have at most 50"),
    ],
)
def test_bad_null_values_are_refused(given: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        DATA.parse({"data_input": "a.csv", "null_values": given})
    assert str(info.value).startswith(f"data_chain config: {message}")


def test_flags_for_delimiter_and_null_values() -> None:
    raw = parse_type_flags(
        DATA,
        ["--input", "s.csv", "--delimiter", "tab", "--null-values", "NA", "-", "--steps", "clean"],
    )
    assert raw == {
        "data_input": "s.csv", "delimiter": "tab", "null_values": ["NA", "-"],
        "processing_steps": ["clean"],
    }  # fmt: skip
    config = DATA.parse(raw)
    assert (config.delimiter, config.null_values) == ("\t", ["NA", "-"])
    assert parse_type_flags(DATA, ["--input", "s.csv", "--null-values"])["null_values"] == []


# --- header renames, the result's columns (item 14) -------------------------------------------


def test_every_header_rename_is_reported(ws: Path) -> None:
    (ws / "n.csv").write_text("a,a, ,Unit Price , b,a\n1,2,3,4,5,6\n")
    cleaned, transformed = run(ws, "n.csv", "clean", "transform")
    renamed = [
        {"column": 2, "from": "a", "to": "a_2"},
        {"column": 3, "from": " ", "to": "column_3"},
        {"column": 4, "from": "Unit Price ", "to": "Unit Price"},
        {"column": 5, "from": " b", "to": "b"},
        {"column": 6, "from": "a", "to": "a_3"},
    ]
    assert cleaned["read"]["renamed"] == renamed
    assert transformed["read"] == cleaned["read"]  # passed on
    assert transformed["renamed"] == {"Unit Price": "unit_price"}
    assert table(ws, transformed).columns == ["a", "a_2", "column_3", "unit_price", "b", "a_3"]


@pytest.mark.parametrize(("limit", "kept"), [(3, 3), (0, 0), (200, 105)])
def test_result_columns_sets_how_many_columns_the_result_carries(
    ws: Path, limit: int, kept: int
) -> None:
    width = 105
    (ws / "wide.csv").write_text(
        ",".join(f"c{i}" for i in range(width)) + "\n" + "1," * 104 + "1\n"
    )
    result = run(ws, "wide.csv", "analyze", result_columns=limit)[0]
    assert list(result["summary"]["columns"]) == [f"c{i}" for i in range(kept)]
    assert result["summary"].get("columns_omitted") == (width - kept or None)
    assert len(json.loads((ws / result["file"]).read_text())["columns"]) == width


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (-1, "Input should be greater than or equal to 0"),
        ("5", "Input should be a valid integer"),
        (1.5, "Input should be a valid integer"),
        (True, "Input should be a valid integer"),
    ],
)
def test_result_columns_is_a_whole_number(bad: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        DATA.parse({"data_input": "a.csv", "result_columns": bad})
    assert str(info.value) == f"data_chain config: result_columns: {message}"


# --- what clean dropped, in the final result (item 15) ----------------------------------------

SALES_DROPPED = {"blank": 3, "incomplete": 3, "duplicate": 2}


@pytest.mark.parametrize(
    "steps",
    [
        ("clean", "transform", "analyze"),
        ("clean", "analyze"),
        ("analyze", "clean", "transform"),
        ("clean",),
        ("clean", "clean", "analyze"),  # the second drops nothing more
    ],
)
def test_the_final_result_says_what_clean_dropped(ws: Path, steps: tuple[str, ...]) -> None:
    results = run(ws, "sales.csv", *steps)
    assert results[-1]["cleaned"] == {"rows_in": 25, "rows": 17, "dropped": SALES_DROPPED}
    assert results[-1]["read"]["file"] == "sales.csv"
    assert all("cleaned" not in r for r in results[: steps.index("clean")])


def test_two_cleans_add_up(ws: Path) -> None:
    (ws / "t.csv").write_text("a,b\n1,2\n1,2\n,\n3,x\n")
    config = checked(ws, "t.csv", "clean", "clean")
    first = DATA.run_step(config, DATA.plan(config)[0], None, StepContext("c1", 0, 2, ws))
    # As if the table had changed between the steps: a second clean that drops a row too.
    pl.DataFrame({"a": ["1", "3"], "b": ["2", "x"]}).vstack(
        pl.DataFrame({"a": ["1"], "b": ["2"]})
    ).write_parquet(ws / first["table"])
    second = DATA.run_step(config, DATA.plan(config)[1], first, StepContext("c1", 1, 2, ws))
    assert second["dropped"] == {"blank": 0, "incomplete": 0, "duplicate": 1}
    assert second["cleaned"] == {
        "rows_in": 4, "rows": 2, "dropped": {"blank": 1, "incomplete": 0, "duplicate": 2},
    }  # fmt: skip


def test_without_clean_nothing_is_said_about_dropped_rows(ws: Path) -> None:
    assert all("cleaned" not in r for r in run(ws, "sales.csv", "transform", "analyze"))


# --- one line per step (item 11) --------------------------------------------------------------


def test_summarize_gives_one_line_per_step(ws: Path) -> None:
    clean, transform, analyze = map(
        DATA.summarize, run(ws, "sales.csv", "clean", "transform", "analyze")
    )
    dropped = "clean dropped 2 duplicate, 3 blank, 3 incomplete of 25 rows"
    assert clean == (
        "clean: 25 rows in, 17 out (2 duplicate, 3 blank, 3 incomplete), 8 columns "
        "-> .taskchain/c1/1-clean.parquet"
    )
    assert transform == (
        "transform: 17 rows, 8 columns (2 integer, 1 date, 3 text, 1 float, 1 boolean) "
        f"-> .taskchain/c1/2-transform.parquet; {dropped}"
    )
    assert analyze == f"analyze: 17 rows, 8 columns -> .taskchain/c1/3-analyze.json; {dropped}"


def test_summarize_names_what_a_reader_should_not_miss(ws: Path) -> None:
    (ws / "eu.csv").write_text("id;id;v\n1;NA;-\n2;x;y\n2;x;y\n" + f"{2**130};z;w\n")
    clean, transform = map(DATA.summarize, run(ws, "eu.csv", "clean", "transform"))
    assert clean == (
        "clean: 4 rows in, 2 out (1 duplicate, 1 incomplete), 3 columns "
        "-> .taskchain/c1/1-clean.parquet; semicolon-separated; 1 header name changed; "
        "null markers seen: NA, -"
    )
    assert transform == (
        "transform: 2 rows, 3 columns (3 text) -> .taskchain/c1/2-transform.parquet; "
        "clean dropped 1 duplicate, 1 incomplete of 4 rows; notes on 1 column"
    )


@pytest.mark.parametrize(
    ("result", "line"),
    [
        (None, ""),
        (42, "42"),
        ({"step": "explode"}, '{"step":"explode"}'),
        ({"step": "clean"}, "clean: ? rows in, ? out, ? columns"),
        (
            {"step": "analyze", "rows": 3, "columns": 2, "file": "a.json"},
            "analyze: 3 rows, 2 columns -> a.json",
        ),
        ("x" * 400, "x" * 79 + "…"),
    ],
)
def test_summarize_copes_with_any_value(result: Any, line: str) -> None:
    assert DATA.summarize(result) == line


# --- steps in one process share their tables ------------------------------------------------


def dirty_floats(ws: Path) -> str:
    """A CSV whose means and standard deviations depend on the order of additions, with
    duplicates, blanks, padding, markers and 128-bit ids."""
    lines = ["Id,Price,Rate,Day,Code,Flag"]
    for i in range(6000):
        price = f"{(i * 7919) % 100_003 / 7:.6f}"
        rate = f"{1 / (i % 97 + 1):.12f}" if i % 50 else " NA "
        lines.append(
            f"{12345678901234567890 + i},{price},{rate},2024-01-{i % 28 + 1:02d},"
            f" c{i % 13} ,{'true' if i % 3 else 'FALSE'}"
        )
        if i % 100 == 0:
            lines += [lines[-1], ",,,,,"]
    (ws / "f.csv").write_text("\n".join(lines) + "\n")
    return "f.csv"


def files(ws: Path, chain_id: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((ws / ".taskchain" / chain_id).iterdir())}


def apart(ws: Path, data_input: str, *steps: str, chain_id: str) -> list[dict[str, Any]]:
    """`run`, but each step as if in a process of its own: nothing kept in memory."""
    from taskchain.chains import _data_frames

    config = checked(ws, data_input, *steps)
    plan = DATA.plan(config)
    results: list[dict[str, Any]] = []
    for index, step in enumerate(plan):
        _data_frames.release()
        ctx = StepContext(chain_id=chain_id, index=index, step_count=len(plan), workspace=ws)
        results.append(DATA.run_step(config, step, results[-1] if results else None, ctx))
    return results


@pytest.mark.parametrize(
    "steps",
    [
        ("clean", "transform", "analyze"),
        ("clean", "analyze", "transform", "analyze"),
        ("transform", "clean", "analyze"),
        ("analyze", "analyze"),
    ],
)
def test_steps_in_one_process_give_the_results_and_files_of_steps_apart(
    ws: Path, steps: tuple[str, ...]
) -> None:
    name = dirty_floats(ws)
    together = run(ws, name, *steps, chain_id="one")
    separate = apart(ws, name, *steps, chain_id="two")
    assert json.loads(json.dumps(together).replace("/one/", "/two/")) == separate
    assert files(ws, "one") == files(ws, "two")
    summary = together[-1]["summary"]["columns"]
    assert [c["type"] for c in summary.values()] == [
        "integer", "float", "float", "date", "text", "boolean"
    ]  # fmt: skip


def test_a_step_hands_its_table_to_the_next_and_the_last_lets_it_go(
    ws: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskchain.chains import _data_frames

    reads: list[str] = []
    real = pl.scan_parquet
    monkeypatch.setattr(
        pl, "scan_parquet", lambda path, **kw: reads.append(Path(path).name) or real(path, **kw)
    )
    config = checked(ws, "sales.csv", "clean", "transform", "analyze")
    plan, results = DATA.plan(config), []
    for index, step in enumerate(plan):
        ctx = StepContext(chain_id="c1", index=index, step_count=len(plan), workspace=ws)
        results.append(DATA.run_step(config, step, results[-1] if results else None, ctx))
        table = ws / results[-1]["table"]
        kept = _data_frames.held(table)
        if index < len(plan) - 1 and engine == "in-memory":
            assert kept is not None and kept.equals(pl.read_parquet(table))
        else:
            assert kept is None
    # In memory, transform and analyze read no file; streaming, each reads its source.
    read = {r for r in reads if r in ("1-clean.parquet", "2-transform.parquet")}
    assert read == (set() if engine == "in-memory" else {"1-clean.parquet", "2-transform.parquet"})


def test_a_kept_table_whose_file_changed_is_not_used(ws: Path, engine: str) -> None:
    from taskchain.chains import _data_frames

    config = checked(ws, "sales.csv", "clean", "analyze")
    plan = DATA.plan(config)
    ctx = StepContext(chain_id="c1", index=0, step_count=2, workspace=ws)
    first = DATA.run_step(config, plan[0], None, ctx)
    path = ws / first["table"]
    assert (_data_frames.held(path) is not None) == (engine == "in-memory")
    pl.DataFrame({"only": ["1", "2", "3"]}).write_parquet(path)  # replaced behind its back
    assert _data_frames.held(path) is None
    ctx = StepContext(chain_id="c1", index=1, step_count=2, workspace=ws)
    second = DATA.run_step(config, plan[1], first, ctx)
    assert second["rows"] == 3 and list(second["summary"]["columns"]) == ["only"]


def test_a_failed_step_lets_the_kept_table_go(ws: Path, engine: str) -> None:
    from taskchain.chains import _data_frames

    config = checked(ws, "sales.csv", "clean", "transform")
    plan = DATA.plan(config)
    first = DATA.run_step(config, plan[0], None, StepContext("c1", 0, 2, ws))
    assert (_data_frames.held(ws / first["table"]) is not None) == (engine == "in-memory")
    with pytest.raises(StepError):
        DATA.run_step(
            config, plan[1], {"table": "../elsewhere.parquet"}, StepContext("c1", 1, 2, ws)
        )
    assert _data_frames.held(ws / first["table"]) is None


def test_a_chain_through_the_runner_writes_what_steps_apart_write(
    workspace: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embedded, the runner runs every step in this process (tables handed on in memory);
    with nothing kept, each step reads its file, as a step on another worker would."""
    from typer.testing import CliRunner

    from taskchain.chains import _data_frames
    from tests.support.cli import status, submit_quiet

    runner = CliRunner()
    name = dirty_floats(workspace)
    args = ("--input", name, "--steps", "clean,transform,analyze,clean,analyze")
    kept: list[str] = []
    real = _data_frames.keep
    monkeypatch.setattr(
        _data_frames, "keep", lambda path, frame: kept.append(path.name) or real(path, frame)
    )
    shared = status(runner, submit_quiet(runner, "data_chain", *args))
    if engine == "in-memory":
        assert kept == ["1-clean.parquet", "2-transform.parquet", "4-clean.parquet"]
    monkeypatch.setattr(_data_frames, "keep", lambda path, frame: None)
    alone = status(runner, submit_quiet(runner, "data_chain", *args))
    assert shared["status"] == alone["status"] == "COMPLETED"
    one, two = shared["id"], alone["id"]
    steps = [json.dumps(s["result"]).replace(f"/{one}/", f"/{two}/") for s in shared["steps"]]
    assert [json.loads(s) for s in steps] == [s["result"] for s in alone["steps"]]
    assert files(workspace, one) == files(workspace, two)
    assert len(files(workspace, one)) == 5
