"""data_chain end to end through the CLI in embedded mode: real CSV files, exit codes, JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.support.cli import invoke, status, submit_quiet

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ALL = ["clean", "transform", "analyze"]
DEFAULTS = {
    "delimiter": None,
    "null_values": ["NA", "N/A", "null", "NULL", "NaN", "-"],
    "result_columns": 100,
}


@pytest.fixture
def ws(workspace: Path) -> Path:
    root = workspace
    shutil.copy(EXAMPLES / "sales.csv", root / "sales.csv")
    return root


def submit(runner: CliRunner, *args: str, code: int = 0) -> str:
    return submit_quiet(runner, "data_chain", *args, code=code)


def test_submit_with_flags_runs_three_steps(runner: CliRunner, ws: Path) -> None:
    result = invoke(
        runner, "submit", "data_chain", "--input", "sales.csv", "--steps", "clean,transform,analyze",
        "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    chain_id = result.stdout.strip()
    assert result.stdout == f"{chain_id}\n"
    doc = status(runner, chain_id)
    assert (doc["type"], doc["status"], doc["error"]) == ("data_chain", "COMPLETED", None)
    assert doc["config"] == {"data_input": "sales.csv", "processing_steps": ALL, **DEFAULTS}
    assert [(s["index"], s["name"], s["queue"], s["status"]) for s in doc["steps"]] == [
        (0, "clean", "data", "COMPLETED"),
        (1, "transform", "data", "COMPLETED"),
        (2, "analyze", "data", "COMPLETED"),
    ]
    folder = f".taskchain/{chain_id}"
    clean, transform, analyze = (s["result"] for s in doc["steps"])
    assert clean["file"] == f"{folder}/1-clean.parquet" and clean["rows"] == 17
    assert clean["dropped"] == {"blank": 3, "incomplete": 3, "duplicate": 2}
    assert transform["input"] == clean["table"]
    assert analyze["input"] == transform["table"] == f"{folder}/2-transform.parquet"
    assert doc["result"] == analyze
    assert doc["result"]["summary"]["columns"]["quantity"]["max"] == 40
    assert pl.read_parquet(ws / doc["result"]["table"]).height == 17
    assert json.loads((ws / analyze["file"]).read_text()) == analyze["summary"]
    summary = json.loads(invoke(runner, "result", chain_id, "--json").stdout)
    assert summary["status"] == "COMPLETED" and summary["result"]["rows"] == 17


def test_generic_config_and_space_separated_steps_build_the_same_chain(
    runner: CliRunner, ws: Path
) -> None:
    by_config = submit(
        runner, "--config", '{"data_input": "sales.csv", "processing_steps": ["clean","analyze"]}'
    )
    by_flags = submit(runner, "--input", "sales.csv", "--steps", "clean", "analyze")
    one, two = status(runner, by_config), status(runner, by_flags)
    expected = {"data_input": "sales.csv", "processing_steps": ["clean", "analyze"], **DEFAULTS}
    assert one["config"] == two["config"] == expected
    assert one["result"]["summary"] == two["result"]["summary"]
    assert one["result"]["summary"]["columns"]["Unit Price"]["type"] == "float"


def test_steps_default_to_clean_transform_analyze(runner: CliRunner, ws: Path) -> None:
    doc = status(runner, submit(runner, "--input", "sales.csv"))
    assert [s["name"] for s in doc["steps"]] == ALL
    assert doc["status"] == "COMPLETED"


def test_a_ragged_row_fails_the_chain_with_the_reason(runner: CliRunner, ws: Path) -> None:
    (ws / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    chain_id = submit(runner, "--input", "ragged.csv", "--steps", "clean,analyze", code=1)
    doc = status(runner, chain_id)
    assert doc["status"] == "FAILED"
    reason = "ragged.csv: line 3 has 3 fields but the header has 2 (ragged rows)"
    assert doc["error"] == f"step 1 (clean) failed: {reason}"
    assert [s["status"] for s in doc["steps"]] == ["FAILED", "SKIPPED"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "nope.csv"], "data_chain: data_input 'nope.csv' does not exist"),
        (["--input", "empty.csv"], "data_chain: data_input 'empty.csv' is empty"),
        (["--input", "binary.csv"], "data_chain: data_input 'binary.csv' looks binary"),
        (["--input", "../outside.csv"], "path '../outside.csv' resolves outside the workspace"),
        (["--input", "leak.csv"], "path 'leak.csv' resolves outside the workspace"),
        (["--input", "sales.csv", "--steps", "clean,explode"], "unknown step 'explode'"),
        (["--steps", "clean"], "data_input: Field required"),
        (["--input", "sales.csv", "--numbers", "1"], "unexpected argument '--numbers'"),
        (
            ["--input", "one.csv"],
            "data_chain: data_input 'one.csv' has a header of one column but rows of 3 fields "
            "separated by semicolon (';')",
        ),
        (
            ["--input", "sales.csv", "--delimiter", ";"],
            "data_chain: data_input 'sales.csv' has one column with delimiter semicolon (';') "
            "but 8 with comma (','): set delimiter to comma",
        ),
        (["--input", "sales.csv", "--delimiter", "x"], "delimiter: 'x' is not a delimiter"),
        (
            ["--config", '{"data_input": "sales.csv", "result_columns": -1}'],
            "result_columns: Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_input_exits_2_and_records_nothing(
    runner: CliRunner, ws: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (ws / "empty.csv").write_bytes(b"")
    (ws / "one.csv").write_text("id\n1;2;3\n4;5;6\n")
    (ws / "binary.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "outside.csv").write_text("a,b\n1,2\n")
    (ws / "leak.csv").symlink_to(tmp_path / "outside.csv")
    result = invoke(runner, "submit", "data_chain", *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert json.loads(invoke(runner, "list", "--json").stdout) == []
    assert not (ws / ".taskchain").exists()


def test_submit_help_documents_data_flags(runner: CliRunner) -> None:
    text = " ".join(invoke(runner, "submit", "--help").stdout.split())
    assert "data_chain: --input FILE.csv [--steps clean,transform,analyze]" in text


def test_example_json_runs(runner: CliRunner, ws: Path) -> None:
    (ws / "examples").mkdir()
    shutil.copy(EXAMPLES / "sales.csv", ws / "examples" / "sales.csv")
    chain_id = submit(runner, "--config-file", str(EXAMPLES / "data_chain.json"))
    doc = status(runner, chain_id)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert [s["name"] for s in doc["steps"]] == ALL
    assert doc["result"]["input"] == f".taskchain/{chain_id}/2-transform.parquet"
    assert doc["result"]["summary"]["columns"]["unit_price"]["min"] == 4.25


def test_example_yaml_runs(runner: CliRunner, ws: Path) -> None:
    (ws / "examples").mkdir()
    shutil.copy(EXAMPLES / "sales.csv", ws / "examples" / "sales.csv")
    chain_id = submit(runner, "--config-file", str(EXAMPLES / "data_chain.yaml"))
    doc = status(runner, chain_id)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert [s["name"] for s in doc["steps"]] == ["analyze", "clean", "transform", "analyze"]
    assert [s["result"]["rows"] for s in doc["steps"]] == [25, 17, 17, 17]
    assert doc["steps"][0]["result"]["input"] == "examples/sales.csv"
    assert doc["result"]["summary"]["columns"]["returned"] == {
        "type": "boolean",
        "count": 17,
        "nulls": 0,
        "distinct": 2,
    }


def test_a_semicolon_file_with_null_markers_and_long_ids(runner: CliRunner, ws: Path) -> None:
    ids = ["12345678901234567890", "12345678901234567891", "12345678901234567892"]
    (ws / "eu.csv").write_text(
        "Kunde;Kunde;Betrag\n"
        + "".join(f"{i};K{n};{n}.5\n" for n, i in enumerate(ids))
        + f"{ids[0]};K0;0.5\n"  # a duplicate
        + "99;NA;1\n"  # incomplete: NA is a missing value
    )
    chain_id = submit(runner, "--input", "eu.csv")
    doc = status(runner, chain_id)
    assert doc["status"] == "COMPLETED", doc["error"]
    result = doc["result"]
    assert result["read"] == {
        "file": "eu.csv",
        "delimiter": ";",
        "renamed": [{"column": 2, "from": "Kunde", "to": "Kunde_2"}],
        "null_markers": {"Kunde_2": ["NA"]},
    }
    assert result["cleaned"] == {
        "rows_in": 5,
        "rows": 3,
        "dropped": {"blank": 0, "incomplete": 1, "duplicate": 1},
    }
    kunde = result["summary"]["columns"]["kunde"]
    assert (kunde["type"], kunde["distinct"]) == ("integer", 3)
    assert (kunde["min"], kunde["max"]) == (int(ids[0]), int(ids[2]))  # exact, from the store
    assert pl.read_parquet(ws / result["table"])["kunde"].to_list() == [int(i) for i in ids]


def test_delimiter_and_null_values_flags(runner: CliRunner, ws: Path) -> None:
    (ws / "t.tsv").write_text("a\tb\n1\t?\n2\tNA\n")
    chain_id = submit(
        runner, "--input", "t.tsv", "--delimiter", "tab", "--null-values", "?", "--steps", "analyze"
    )
    doc = status(runner, chain_id)
    assert (doc["config"]["delimiter"], doc["config"]["null_values"]) == ("\t", ["?"])
    columns = doc["result"]["summary"]["columns"]
    assert columns["b"] == {"type": "text", "count": 1, "nulls": 1, "distinct": 1}
    assert doc["result"]["read"]["null_markers"] == {"b": ["?"]}


def test_example_semicolon_orders_run(runner: CliRunner, ws: Path) -> None:
    shutil.copy(EXAMPLES / "orders_semicolon.csv", ws / "orders.csv")
    doc = status(runner, submit(runner, "--input", "orders.csv"))
    assert doc["status"] == "COMPLETED", doc["error"]
    result = doc["result"]
    assert result["read"]["null_markers"] == {"Amount": ["N/A"], "Shipped": ["-"]}
    assert result["cleaned"]["dropped"] == {"blank": 0, "incomplete": 2, "duplicate": 1}
    order_id = result["summary"]["columns"]["order_id"]
    assert (order_id["distinct"], order_id["min"], order_id["max"]) == (
        3, 12345678901234567890, 12345678901234567894,
    )  # fmt: skip
