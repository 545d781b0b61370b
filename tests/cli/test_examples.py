"""Every example chain file in examples/ runs to COMPLETED (embedded mode), with the result a
user computing it by hand would expect."""

from __future__ import annotations

import csv
import hashlib
import json
import operator
import shutil
import statistics
from collections.abc import Callable
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from taskchain.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(
    p for p in EXAMPLES.iterdir() if p.suffix in (".json", ".yaml") and "_chain" in p.stem
)
OPERATIONS: dict[str, Callable[[int, int], int]] = {
    "add": operator.add,
    "multiply": operator.mul,
    "power": operator.pow,
    "subtract": operator.sub,
    "divide": operator.floordiv,
    "modulo": operator.mod,
}


def load(path: Path) -> dict[str, Any]:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def run_example(runner: CliRunner, workspace: Path, path: Path) -> dict[str, Any]:
    """`taskchain submit TYPE --config-file examples/FILE` from a copy of the checkout; the
    chain's `status --json`, checked COMPLETED in every step."""
    kind = path.stem.split(".")[0]
    result = runner.invoke(app, ["submit", kind, "--config-file", f"examples/{path.name}", "-q"])
    assert result.exit_code == 0, result.output
    doc = json.loads(runner.invoke(app, ["status", result.stdout.strip(), "--json"]).stdout)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert [step["status"] for step in doc["steps"]] == ["COMPLETED"] * len(doc["steps"])
    return doc


@pytest.fixture
def checkout(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The examples name their inputs from the repository root, as a user runs them.
    shutil.copytree(EXAMPLES, workspace / "examples")
    monkeypatch.chdir(workspace)
    return workspace


def test_there_is_a_json_and_a_yaml_example_for_every_type() -> None:
    names = {p.name for p in FILES}
    for kind in ("math_chain", "data_chain", "io_chain"):
        assert {f"{kind}.json", f"{kind}.yaml"} <= names
    assert len(FILES) == 6  # a new example needs its expected result below


@pytest.mark.parametrize("name", ["math_chain.json", "math_chain.yaml"])
def test_math_example(runner: CliRunner, checkout: Path, name: str) -> None:
    config = load(EXAMPLES / name)
    operands = config["numbers"] * config.get("iterations", 1)
    fold = OPERATIONS[config.get("operation", "add")]
    partial = [reduce(fold, operands[: k + 1]) for k in range(1, len(operands))]
    doc = run_example(runner, checkout, EXAMPLES / name)
    assert [step["result"] for step in doc["steps"]] == partial
    assert doc["result"] == partial[-1]
    assert doc["result"] == {"math_chain.json": 576, "math_chain.yaml": 4096}[name]


def sales_by_hand(path: Path) -> dict[str, Any]:
    """What `clean` should keep of examples/sales.csv, computed with the csv module: cells
    trimmed; blank, incomplete and repeated rows dropped."""
    with path.open(newline="") as file:
        header, *rows = list(csv.reader(file))
    kept: list[list[str]] = []
    for row in rows:
        cells = [cell.strip() for cell in row]
        if len(cells) == len(header) and all(cells) and cells not in kept:
            kept.append(cells)
    return {
        "raw_rows": len(rows),
        "columns": dict(zip(header, zip(*kept, strict=True), strict=True)),
    }


def check_numeric(summary: dict[str, Any], values: list[float]) -> None:
    assert summary["count"] == len(values)
    assert summary["nulls"] == 0
    assert summary["distinct"] == len(set(values))
    assert (summary["min"], summary["max"]) == (min(values), max(values))
    assert summary["mean"] == pytest.approx(statistics.mean(values))
    assert summary["std"] == pytest.approx(statistics.stdev(values))


@pytest.mark.parametrize("name", ["data_chain.json", "data_chain.yaml"])
def test_data_example(runner: CliRunner, checkout: Path, name: str) -> None:
    expected = sales_by_hand(EXAMPLES / "sales.csv")
    kept = expected["columns"]
    doc = run_example(runner, checkout, EXAMPLES / name)
    steps = [step["name"] for step in doc["steps"]]
    assert steps == load(EXAMPLES / name)["processing_steps"]
    if steps[0] == "analyze":  # the YAML example looks at the raw file first
        assert doc["steps"][0]["result"]["rows"] == expected["raw_rows"] == 25
    result = doc["result"]
    summary = result["summary"]
    assert result["rows"] == summary["rows"] == len(kept["Order ID"]) == 17
    assert result["columns"] == len(kept) == 8
    columns = summary["columns"]
    assert list(columns) == [
        "order_id", "order_date", "region", "product", "quantity", "unit_price", "customer",
        "returned",
    ]  # fmt: skip
    assert [columns[c]["type"] for c in columns] == [
        "integer", "date", "text", "text", "integer", "float", "text", "boolean",
    ]  # fmt: skip
    check_numeric(columns["order_id"], [int(v) for v in kept["Order ID"]])
    check_numeric(columns["quantity"], [int(v) for v in kept["Quantity"]])
    check_numeric(columns["unit_price"], [float(v) for v in kept["Unit Price"]])
    for column, source in (("region", "Region"), ("product", "Product"), ("customer", "Customer")):
        assert columns[column]["distinct"] == len(set(kept[source]))
    dates = kept["Order Date"]
    assert (columns["order_date"]["min"], columns["order_date"]["max"]) == (min(dates), max(dates))
    # The tables the steps wrote are in the chain's folder of the workspace.
    assert (checkout / result["table"]).is_file()
    assert result["table"].startswith(f".taskchain/{doc['id']}/")


@pytest.mark.parametrize("name", ["io_chain.json", "io_chain.yaml"])
def test_io_example(runner: CliRunner, checkout: Path, name: str) -> None:
    config = load(EXAMPLES / name)
    operations = config["file_operations"]
    written = next((op["content"] for op in operations if isinstance(op, dict)
                    and op["op"] == "write"), None)  # fmt: skip
    originals = {
        Path(t).name: written.encode()
        if written is not None
        else (EXAMPLES.parent / t).read_bytes()
        for t in config["target_files"]
    }
    doc = run_example(runner, checkout, EXAMPLES / name)
    assert len(doc["steps"]) == len(operations)
    last_copy = [op["to"] for op in operations if isinstance(op, dict) and op["op"] == "copy"][-1]
    result = doc["result"]
    assert result["op"] == "checksum"
    assert result["targets"] == [f"{last_copy}/{n}" for n in originals]
    assert [(f["path"], f["size"], f["sha256"]) for f in result["files"]] == [
        (f"{last_copy}/{n}", len(data), hashlib.sha256(data).hexdigest())
        for n, data in originals.items()
    ]
    for n, data in originals.items():
        assert (checkout / last_copy / n).read_bytes() == data  # the copies are really there
    reads = [s["result"] for s in doc["steps"] if s["name"].startswith("read")]
    assert [f["text"] for f in reads[0]["files"]] == [d.decode() for d in originals.values()]


# ---- workflows (examples/workflows/), as their README runs them: TASKCHAIN_WORKSPACE=examples


@pytest.fixture
def in_examples(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from taskchain import settings

    monkeypatch.setenv("TASKCHAIN_WORKSPACE", str(checkout / "examples"))
    settings.configure()
    return checkout / "examples"


def run_workflow(runner: CliRunner, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """`taskchain run examples/workflows/NAME --wait -q`: its `result --json` (checked
    COMPLETED) and each job's chain id."""
    done = runner.invoke(app, ["run", f"examples/workflows/{name}", "--wait", "-q"])
    assert done.exit_code == 0, done.output
    workflow_id = done.stdout.strip()
    result = json.loads(runner.invoke(app, ["result", workflow_id, "--json"]).stdout)
    assert (result["status"], result["error"]) == ("COMPLETED", None)
    doc = json.loads(runner.invoke(app, ["status", workflow_id, "--json"]).stdout)
    return result, {job["name"]: job["chain_id"] for job in doc["jobs"]}


def test_the_fanout_workflow_example(runner: CliRunner, in_examples: Path) -> None:
    result, chains = run_workflow(runner, "fanout.yaml")
    squares = {f"square-{n:02d}": {"value": n * n} for n in range(1, 21)}
    assert result["result"] == {**squares, "total": {"value": 2870}}
    total = json.loads(runner.invoke(app, ["status", chains["total"], "--json"]).stdout)
    assert total["config"]["numbers"] == [n * n for n in range(1, 21)]  # resolved references
    assert len(total["steps"]) == 19


def test_the_nightly_workflow_example(runner: CliRunner, in_examples: Path) -> None:
    result, chains = run_workflow(runner, "nightly.yaml")
    table = f".taskchain/{chains['clean']}/2-transform.parquet"
    report = f".taskchain/{chains['summary']}/1-analyze.json"
    assert result["result"] == {
        "clean": {"table": table},
        "summary": {"table": table, "report": report},
        "totals": {"value": 6},
        "archive": {"files": ["archive/1-analyze.json"], "file": "archive/1-analyze.json"},
    }
    archived = (in_examples / "archive" / "1-analyze.json").read_bytes()
    assert archived == (in_examples / report).read_bytes()
    expected = sales_by_hand(EXAMPLES / "sales.csv")
    assert json.loads(archived)["rows"] == len(expected["columns"]["Order ID"]) == 17
