"""Workflow files: validation (one line naming the job and the field), declared outputs,
references and their substitution, and the examples run job by job in this process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from taskchain.chains import StepContext, get_type
from taskchain.errors import InvalidInput
from taskchain.workflows import load, prepare, resolve, validate
from taskchain.workflows.refs import BadReference, find
from taskchain.workflows.spec import parse_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MATH = "{type: math_chain, config: {numbers: [1, 2]}}"
IO_ONE = "{type: io_chain, config: {target_files: [sales.csv], file_operations: [stat]}}"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace laid out as the examples expect when TASKCHAIN_WORKSPACE=examples."""
    shutil.copy(EXAMPLES / "sales.csv", tmp_path / "sales.csv")
    return tmp_path


def check(text: str, workspace: Path) -> Any:
    data = parse_text(text, source="workflow w.yaml")
    return validate(data, source="workflow w.yaml", workspace=workspace, default_name="w")


def run_in_process(workflow: Any, workspace: Path) -> dict[str, dict[str, Any]]:
    """Each job in topological order, its steps run as a worker would; the outputs by job."""
    outputs: dict[str, dict[str, Any]] = {}
    for job in workflow.graph.order:
        _resolved, config = prepare(workflow, job, outputs, workspace)
        chain_type = get_type(workflow.jobs[job].type)
        plan = chain_type.plan(config)
        result = None
        for i, step in enumerate(plan):
            ctx = StepContext(
                chain_id=f"c-{job}", index=i, step_count=len(plan), workspace=workspace
            )
            result = chain_type.run_step(config, step, result, ctx)
        outputs[job] = chain_type.output_values(config, result)
    return outputs


# --- the examples ---------------------------------------------------------------------


def test_nightly_example_validates(workspace):
    workflow = load(EXAMPLES / "workflows" / "nightly.yaml", workspace=workspace)
    assert workflow.name == "nightly-report"
    assert workflow.graph.order == ("clean", "summary", "totals", "archive")
    assert workflow.jobs["archive"].needs == ("summary", "totals")
    assert [(r.job, r.key, r.where, r.whole) for r in workflow.jobs["archive"].references] == [
        ("summary", "report", "config.target_files.0", True)
    ]
    assert workflow.jobs["clean"].outputs == {"table": "path"}
    assert workflow.jobs["summary"].outputs == {"table": "path", "report": "path"}
    assert [j.name for j in workflow.jobs.values() if j.checked] == ["clean"]


def test_nightly_example_runs_job_by_job(workspace):
    workflow = load(EXAMPLES / "workflows" / "nightly.yaml", workspace=workspace)
    outputs = run_in_process(workflow, workspace)
    assert outputs["clean"] == {"table": ".taskchain/c-clean/2-transform.parquet"}
    # summary read clean's Parquet table (not sniffed as CSV) and analyzed it
    assert outputs["summary"] == {
        "table": ".taskchain/c-clean/2-transform.parquet",
        "report": ".taskchain/c-summary/1-analyze.json",
    }
    assert outputs["totals"] == {"value": 6}
    assert outputs["archive"] == {
        "files": ["archive/1-analyze.json"],
        "file": "archive/1-analyze.json",
    }
    report = json.loads((workspace / "archive" / "1-analyze.json").read_text())
    cleaned = json.loads((workspace / ".taskchain/c-summary/1-analyze.json").read_text())
    assert report == cleaned and report["rows"] > 0


def test_fanout_example_validates_and_joins_twenty_values(workspace):
    workflow = load(EXAMPLES / "workflows" / "fanout.yaml", workspace=workspace)
    squares = [f"square-{i:02d}" for i in range(1, 21)]
    assert list(workflow.jobs) == [*squares, "total"]
    assert workflow.graph.roots() == tuple(squares)
    assert workflow.jobs["total"].needs == tuple(squares)
    assert workflow.graph.advance({}).start == tuple(squares)  # all twenty at once
    outputs = run_in_process(workflow, workspace)
    assert outputs["total"] == {"value": sum(i * i for i in range(1, 21))} == {"value": 2870}


# --- bad files: one line naming the job and the field -----------------------------------

BAD = [
    ("- a", "workflow w.yaml: expected a mapping with 'jobs', got a list"),
    ("jobs: {a: [", "workflow w.yaml: invalid YAML: expected the node content, but found "
     "'<stream end>' at line 1"),
    ("jobs: {}", "workflow w.yaml: jobs: expected a mapping of job names to jobs, with at "
     "least one job"),
    (f"job: {{a: {MATH}}}", "workflow w.yaml: unknown field 'job' (fields: name, description, jobs)"),
    (f"name: 3\njobs: {{a: {MATH}}}", "workflow w.yaml: name: expected one line of text"),
    (f"jobs:\n  a: {MATH}\n  a: {MATH}\n", "workflow w.yaml: invalid YAML: key 'a' appears twice at line 3"),
    (f"jobs: {{'a b': {MATH}}}", "workflow w.yaml: jobs: 'a b' is not a job name (letters, digits, '_' and '-')"),
    ("jobs: {a: {type: nope, config: {}}}",
     "workflow w.yaml: job 'a': type: unknown chain type 'nope' (known: data_chain, io_chain, math_chain)"),
    ("jobs: {a: {config: {}}}", "workflow w.yaml: job 'a': type: expected a chain type name, like math_chain"),
    ("jobs: {a: {type: math_chain, neds: [], config: {numbers: [1, 2]}}}",
     "workflow w.yaml: job 'a': unknown field 'neds' (fields: type, config, needs, description)"),
    ("jobs: {a: {type: math_chain, config: [1]}}", "workflow w.yaml: job 'a': config: expected a mapping, got a list"),
    ("jobs: {a: {type: math_chain, needs: 3, config: {numbers: [1, 2]}}}",
     "workflow w.yaml: job 'a': needs: expected a list of job names"),
    ("jobs: {a: {type: math_chain, config: {operation: add}}}", "workflow w.yaml: job 'a': config.numbers: Field required"),
    (f"jobs: {{a: {MATH}, b: {{type: math_chain, needs: [c], config: {{numbers: [1, 2]}}}}}}",
     "workflow w.yaml: job 'b': needs: no job is named 'c' (jobs: a, b)"),
    ("jobs: {a: {type: math_chain, needs: [b], config: {numbers: [1, 2]}}, "
     "b: {type: math_chain, needs: a, config: {numbers: [1, 2]}}}",
     "workflow w.yaml: jobs a -> b -> a form a cycle"),
    ("jobs: {a: {type: data_chain, config: {data_input: nope.csv}}}",
     "workflow w.yaml: job 'a': data_chain: data_input 'nope.csv' does not exist"),
    (f"jobs: {{a: {MATH}, b: {{type: math_chain, needs: [a], config: "
     "{numbers: ['${{ jobs.a.outputs.value }}', '${{ jobs.c.outputs.value }}']}}}",
     "workflow w.yaml: job 'b': config.numbers.1: refers to job 'c', which does not exist"),
    (f"jobs: {{a: {MATH}, x: {MATH}, b: {{type: math_chain, needs: [a], config: "
     "{numbers: [1, '${{ jobs.x.outputs.value }}']}}}",
     "workflow w.yaml: job 'b': config.numbers.1: refers to job 'x', which is not in its needs (add it)"),
    (f"jobs: {{a: {MATH}, b: {{type: math_chain, needs: [a], config: "
     "{numbers: [1, '${{ jobs.a.outputs.result }}']}}}",
     "workflow w.yaml: job 'b': config.numbers.1: job 'a' (math_chain) has no output 'result' "
     "(its outputs: value)"),
    ("jobs: {a: {type: io_chain, config: {target_files: [sales.csv], file_operations: [delete]}}, "
     "b: {type: io_chain, needs: [a], config: {file_operations: [stat], "
     "target_files: '${{ jobs.a.outputs.files }}'}}}",
     "workflow w.yaml: job 'b': config.target_files: job 'a' (io_chain) has no output 'files' "
     "(it declares none)"),
    (f"jobs: {{a: {MATH}, b: {{type: data_chain, needs: [a], config: "
     "{data_input: 'x${{ jobs.a.value }}.csv'}}}",
     "workflow w.yaml: job 'b': config.data_input: '${{ jobs.a.value }}' is not a reference; "
     "write ${{ jobs.NAME.outputs.KEY }}"),
    (f"jobs: {{a: {MATH}, b: {{type: math_chain, needs: [a], config: "
     "{numbers: [1, 2], '${{ jobs.a.outputs.value }}': 3}}}",
     "workflow w.yaml: job 'b': config.${{ jobs.a.outputs.value }}: references go in values, not in keys"),
    # a reference of the wrong kind is caught by the type's own validation of a placeholder
    (f"jobs: {{a: {IO_ONE}, b: {{type: data_chain, needs: [a], config: "
     "{data_input: '${{ jobs.a.outputs.files }}'}}}",
     "workflow w.yaml: job 'b': config.data_input: jobs.a.outputs.files is a list of paths, "
     "which does not fit here (Input should be a valid string)"),
    (f"jobs: {{a: {IO_ONE}, b: {{type: math_chain, needs: [a], config: "
     "{numbers: ['${{ jobs.a.outputs.file }}', 1]}}}",
     "workflow w.yaml: job 'b': config.numbers.0: jobs.a.outputs.file is a path, which does not fit here"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_file_is_one_line_naming_job_and_field(text, message, workspace):
    with pytest.raises(InvalidInput) as caught:
        check(text, workspace)
    assert caught.value.message == message
    assert caught.value.exit_code == 2
    assert "\n" not in caught.value.message


def test_a_bad_json_file(tmp_path, workspace):
    path = tmp_path / "w.json"
    path.write_text('{"jobs": {"a": {"type": "math_chain"}, "a": {"type": "math_chain"}}}')
    with pytest.raises(InvalidInput, match=r"^workflow .*w\.json: key 'a' appears twice$"):
        load(path, workspace=workspace)
    path.write_text('{"jobs": ')
    with pytest.raises(InvalidInput, match=r"w\.json: invalid JSON: Expecting value at line 1$"):
        load(path, workspace=workspace)
    with pytest.raises(InvalidInput, match=r"^workflow .*missing\.yaml: no such file$"):
        load(tmp_path / "missing.yaml", workspace=workspace)


def test_json_workflow_and_default_name(tmp_path, workspace):
    path = tmp_path / "daily.json"
    path.write_text(
        json.dumps({"jobs": {"one": {"type": "math_chain", "config": {"numbers": [2, 3]}}}})
    )
    workflow = load(path, workspace=workspace)
    assert workflow.name == "daily"
    assert workflow.jobs["one"].config == {"numbers": [2, 3]}


def test_a_job_with_needs_is_checked_when_it_starts(workspace):
    """Its files may be made by the jobs it needs: not judged at load, judged by prepare."""
    workflow = check(
        "jobs: {make: {type: io_chain, config: {target_files: [made.txt], file_operations: "
        "[{op: write, content: hi}]}}, use: {type: data_chain, needs: make, config: "
        "{data_input: made.txt}}, broken: {type: data_chain, needs: make, config: "
        "{data_input: ../out.csv}}}",
        workspace,
    )
    assert [j.checked for j in workflow.jobs.values()] == [True, False, False]
    with pytest.raises(InvalidInput) as caught:
        prepare(workflow, "broken", {"make": {}}, workspace)
    assert caught.value.message.startswith(
        "job 'broken': data_chain: data_input: path '../out.csv' resolves outside the workspace"
    )


def test_prepare_fails_when_an_upstream_output_is_missing(workspace):
    workflow = load(EXAMPLES / "workflows" / "nightly.yaml", workspace=workspace)
    with pytest.raises(InvalidInput) as caught:
        prepare(workflow, "summary", {"clean": {}}, workspace)
    assert caught.value.message == (
        "job 'summary': config.data_input: job 'clean' produced no output 'table' (it has: none)"
    )


# --- substitution ---------------------------------------------------------------------

OUTPUTS = {"a": {"files": ["x.txt", "y.txt"], "value": 10**50, "file": "x.txt"}}


def test_a_whole_string_reference_keeps_the_value_type():
    config = {"target_files": "${{ jobs.a.outputs.files }}", "n": [" ${{jobs.a.outputs.value}} "]}
    assert resolve(config, OUTPUTS) == {"target_files": ["x.txt", "y.txt"], "n": [10**50]}
    assert config["target_files"] == "${{ jobs.a.outputs.files }}"  # the input is left alone


def test_a_reference_inside_a_string_is_written_as_text():
    config = {"to": "out/${{ jobs.a.outputs.value }}/${{ jobs.a.outputs.file }}",
              "note": "files: ${{ jobs.a.outputs.files }}"}  # fmt: skip
    assert resolve(config, OUTPUTS) == {
        "to": f"out/{10**50}/x.txt",
        "note": 'files: ["x.txt","y.txt"]',
    }


def test_resolve_errors_name_the_place():
    with pytest.raises(BadReference) as caught:
        resolve({"ops": [{"to": "${{ jobs.a.outputs.dir }}"}]}, OUTPUTS)
    assert caught.value.message == (
        "config.ops.0.to: job 'a' produced no output 'dir' (it has: file, files, value)"
    )
    with pytest.raises(BadReference, match=r"^config\.x: job 'b' has no outputs \(has it run\?\)$"):
        resolve({"x": "${{ jobs.b.outputs.value }}"}, OUTPUTS)


def test_find_lists_references_in_document_order():
    refs = find({"a": ["${{ jobs.x.outputs.k }}", "p-${{ jobs.y.outputs.j }}"], "b": 3, "c": True})
    assert [(r.job, r.key, r.where, r.whole) for r in refs] == [
        ("x", "k", "config.a.0", True),
        ("y", "j", "config.a.1", False),
    ]


# --- declared outputs -----------------------------------------------------------------


def outputs_of(type_name: str, config: dict[str, Any]) -> dict[str, str]:
    chain_type = get_type(type_name)
    return chain_type.outputs(chain_type.parse(config))


def test_declared_outputs():
    assert outputs_of("math_chain", {"numbers": [1, 2]}) == {"value": "integer"}
    assert outputs_of("data_chain", {"data_input": "x.csv", "processing_steps": ["clean"]}) == {
        "table": "path"
    }
    assert outputs_of("data_chain", {"data_input": "x.csv"}) == {"table": "path", "report": "path"}
    io = {"target_files": ["a", "b"], "file_operations": ["stat"]}
    assert outputs_of("io_chain", io) == {"files": "paths"}
    assert outputs_of("io_chain", {**io, "target_files": ["a"]}) == {
        "files": "paths",
        "file": "path",
    }
    assert outputs_of("io_chain", {**io, "file_operations": ["stat", "delete"]}) == {}


def test_data_report_is_found_when_analyze_is_not_last(workspace):
    workflow = check(
        "jobs: {d: {type: data_chain, config: {data_input: sales.csv, "
        "processing_steps: [analyze, clean]}}}",
        workspace,
    )
    outputs = run_in_process(workflow, workspace)
    assert outputs["d"] == {
        "table": ".taskchain/c-d/2-clean.parquet",
        "report": ".taskchain/c-d/1-analyze.json",
    }
    assert json.loads((workspace / outputs["d"]["report"]).read_text())["rows"] > 0


def test_output_values_of_an_unexpected_result_are_empty():
    for name, config in [
        ("math_chain", {"numbers": [1, 2]}),
        ("data_chain", {"data_input": "x.csv"}),
        ("io_chain", {"target_files": ["a"], "file_operations": ["stat"]}),
    ]:
        chain_type = get_type(name)
        assert chain_type.output_values(chain_type.parse(config), None) == {}


def test_a_parquet_file_outside_taskchain_folder_is_still_read_as_csv(workspace):
    """Only tables a chain wrote (under .taskchain/) are read as Parquet."""
    data = get_type("data_chain")
    (workspace / "t.parquet").write_bytes(b"PAR1\x00\x00PAR1")
    with pytest.raises(InvalidInput, match="looks binary"):
        data.check(data.parse({"data_input": "t.parquet"}), workspace)
