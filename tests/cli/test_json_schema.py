"""The JSON of every command that takes --json, checked against schemas kept here.

Fields may be added, never renamed or retyped: a schema names the fields a script may rely
on (extra ones pass) and their types. The validator is small and strict on purpose (no
`jsonschema` dependency): bool is not an int, a float is not an int, times are ISO-8601 UTC
ending in Z. A chain's config and results are typed per chain type (`PerType`).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from taskchain.cli import app
from tests.support import proc
from tests.support.probe import Gates
from tests.support.terminal import running_submit


class Many:
    """A JSON array whose items all match `item`."""

    def __init__(self, item: Any) -> None:
        self.item = item


class Keys:
    """A JSON object with any keys, whose values all match `value`."""

    def __init__(self, value: Any) -> None:
        self.value = value


class OneOf:
    """One of these exact values (and of the same JSON type: 1 is not true)."""

    def __init__(self, *values: Any) -> None:
        self.values = values


class PerType:
    """The schema of the chain type in force: the enclosing object's `type` field, or the
    type given to `check` for a document without one (`result --json`)."""

    def __init__(self, **by_type: Any) -> None:
        self.by_type = by_type


ISO = "ISO-8601 UTC time"
NUMBER = "number"
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


def errors(value: Any, schema: Any, path: str = "$", chain_type: str | None = None) -> list[str]:
    """Where `value` breaks `schema` (empty when it matches)."""
    if isinstance(schema, PerType):
        if chain_type not in schema.by_type:
            return [f"{path}: no schema for chain type {chain_type!r}"]
        return errors(value, schema.by_type[chain_type], path, chain_type)
    if isinstance(schema, tuple):  # any of these
        found = [errors(value, option, path, chain_type) for option in schema]
        return [] if any(not e for e in found) else [f"{path}: {value!r} matches none of {schema}"]
    if schema is None:
        return [] if value is None else [f"{path}: expected null, got {value!r}"]
    if schema is ISO:
        ok = isinstance(value, str) and _ISO.fullmatch(value)
        return [] if ok else [f"{path}: {value!r} is not an ISO-8601 UTC time with Z"]
    if schema is NUMBER:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a number"]
    if isinstance(schema, OneOf):
        ok = any(type(value) is type(v) and value == v for v in schema.values)
        return [] if ok else [f"{path}: {value!r} not one of {schema.values}"]
    if isinstance(schema, type):
        ok = isinstance(value, schema) and not (isinstance(value, bool) and schema is not bool)
        return [] if ok else [f"{path}: {value!r} is not {schema.__name__}"]
    if isinstance(schema, Many):
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {value!r}"]
        return [
            e
            for i, item in enumerate(value)
            for e in errors(item, schema.item, f"{path}[{i}]", chain_type)
        ]
    if isinstance(schema, Keys | dict):
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {value!r}"]
        if isinstance(value.get("type"), str):
            chain_type = value["type"]
        if isinstance(schema, Keys):
            return [
                e
                for k, v in value.items()
                for e in errors(v, schema.value, f"{path}.{k}", chain_type)
            ]
        missing = [f"{path}: no field {key!r}" for key in schema if key not in value]
        return missing + [
            e
            for key, sub in schema.items()
            if key in value
            for e in errors(value[key], sub, f"{path}.{key}", chain_type)
        ]
    raise TypeError(f"bad schema at {path}: {schema!r}")


CHAIN_STATUS = OneOf("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")
STEP_STATUS = OneOf("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED")
VERSION = {"schema_version": OneOf(1)}
MAYBE_TIME = (ISO, None)
MAYBE_TEXT = (str, None)

# Per chain type: its config, and a step's or the chain's result (null until there is one).
# math_chain works on exact integers: a float here means a number lost its value.
CONFIG = PerType(
    math_chain={
        "numbers": Many(int),
        "operation": OneOf("add", "subtract", "multiply", "divide", "power", "modulo"),
        "iterations": int,
    },
    probe_chain={
        "steps": Many({"sleep": NUMBER, "fail": MAYBE_TEXT, "crash": bool, "non_json": bool})
    },
)
RESULT = PerType(math_chain=(int, None), probe_chain=(int, None))

STEP = {
    "index": int, "name": str, "queue": str, "status": STEP_STATUS, "attempts": int,
    "started_at": MAYBE_TIME, "finished_at": MAYBE_TIME, "duration": (NUMBER, None),
    "progress": MAYBE_TEXT, "result": RESULT, "error": MAYBE_TEXT,
}  # fmt: skip
SUMMARY = {
    **VERSION, "id": str, "type": str, "description": str, "status": CHAIN_STATUS,
    "created_at": ISO, "started_at": MAYBE_TIME, "finished_at": MAYBE_TIME,
    "duration": (NUMBER, None), "step_count": int, "attempt": int, "result": RESULT,
    "error": MAYBE_TEXT,
}  # fmt: skip
SCHEMAS: dict[str, Any] = {
    "status": {**SUMMARY, "config": CONFIG, "steps": Many(STEP)},
    "result": {**VERSION, "id": str, "status": CHAIN_STATUS, "result": RESULT, "error": MAYBE_TEXT},
    "list": Many(SUMMARY),
    "stats": {
        **VERSION,
        "total": int,
        "by_status": {s: int for s in ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")},
        "by_type": Keys({"total": int}),
        "durations": {k: (NUMBER, None) for k in ("count", "min", "mean", "p50", "p95", "max")},
    },
    "info": {
        **VERSION,
        "version": str,
        "mode": OneOf("embedded", "distributed"),
        "broker_url": MAYBE_TEXT,
        "result_backend": MAYBE_TEXT,
        "database_url": str,
        "workspace": str,
        "task_time_limit": int,
        "store": str,
        "broker": str,
        "workers": Many(str),
    },
}
SCHEMAS["watch"] = SCHEMAS["status"]  # one object per line, one line per change


def document(runner: CliRunner, *args: str) -> Any:
    """Run a command; its stdout must be exactly one JSON document."""
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return json.loads(result.stdout)


def check(doc: Any, command: str, chain_type: str | None = None) -> None:
    assert errors(doc, SCHEMAS[command], chain_type=chain_type) == []


#: Results a float cannot hold (a float would pass `==` against 2**200, not against these).
BIG = (str(2**200 + 1), str(10**100 + 7))
BIG_SUM = 2**200 + 1 + 10**100 + 7


@pytest.mark.usefixtures("store_url")  # SQLite and PostgreSQL
def test_every_json_command_matches_its_schema(runner: CliRunner) -> None:
    ok = runner.invoke(app, ["submit", "math_chain", "--numbers", "1", "2", "3", "-q"])
    bad = runner.invoke(
        app, ["submit", "math_chain", "--numbers", "5", "0", "--operation", "/", "-q"]
    )
    big = runner.invoke(app, ["submit", "math_chain", "--numbers", *BIG, "-q"])
    power = runner.invoke(
        app, ["submit", "math_chain", "--numbers", "3", "200", "--operation", "**", "-q"]
    )
    ids = [r.stdout.strip() for r in (ok, bad, big, power)]
    for chain_id in ids:
        check(document(runner, "status", chain_id, "--json"), "status")
        check(document(runner, "result", chain_id, "--json"), "result", "math_chain")
        check(document(runner, "result", chain_id, "--wait", "--json"), "result", "math_chain")
        lines = runner.invoke(app, ["watch", chain_id, "--json"]).stdout.splitlines()
        assert len(lines) == 1  # a finished chain: its final state, once
        check(json.loads(lines[0]), "watch")
    listed = document(runner, "list", "--json")
    assert [c["id"] for c in listed] == ids[::-1]
    check(listed, "list")
    check(document(runner, "list", "--json", "--status", "RUNNING"), "list")
    check(document(runner, "stats", "--json"), "stats")
    check(document(runner, "info", "--json"), "info")
    results = [document(runner, "result", i, "--json")["result"] for i in ids]
    assert results == [6, None, BIG_SUM, 3**200]
    assert [type(r) for r in results] == [int, type(None), int, int]
    status = document(runner, "status", ids[2], "--json")
    assert status["config"] == {"numbers": [2**200 + 1, 10**100 + 7], "operation": "add",
                                "iterations": 1}  # fmt: skip
    assert [type(n) for n in status["config"]["numbers"]] == [int, int]
    assert [(type(s["result"]), s["result"]) for s in status["steps"]] == [(int, BIG_SUM)]
    assert (
        document(runner, "status", ids[1], "--json")["steps"][0]["error"]
        == "division by zero (5 // 0)"
    )


def _watched(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    """`taskchain watch ARGS --json` on a gated probe chain run by an embedded submit: each
    gate opens only once the watcher has printed a line since the last, so the watcher sees
    every step change however slow the machine is."""
    gates = Gates(Path(env["TASKCHAIN_WORKSPACE"]))
    runner, chain_id = running_submit(env, gates.config)
    watcher = proc.spawn_taskchain(
        ["watch", *[a.format(id=chain_id) for a in args], "--json"],
        env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert watcher.stdout is not None
    lines = [watcher.stdout.readline()]
    for step in range(1, len(gates.names) + 1):
        gates.open(step)
        if step < len(gates.names):
            lines.append(watcher.stdout.readline())
    rest, err = watcher.communicate(timeout=60)
    runner.wait(timeout=60)
    assert watcher.returncode == 0, err
    docs = [json.loads(line) for line in [*lines, *rest.splitlines()] if line.strip()]
    assert {d["id"] for d in docs} == {chain_id}
    return docs


@pytest.mark.parametrize("args", [("{id}",), ()], ids=["one chain", "every active chain"])
def test_watch_json_lines_of_running_chains_match(env: dict[str, str], args: tuple) -> None:
    docs = _watched({**env, "TASKCHAIN_PLUGINS": "tests.support.chains"}, *args)
    assert len(docs) >= 3
    assert {d["status"] for d in docs} >= {"RUNNING", "COMPLETED"}
    for doc in docs:
        check(doc, "watch")


def test_the_validator_catches_renames_and_wrong_types() -> None:
    good = {"schema_version": 1, "id": "a", "status": "FAILED", "result": None, "error": "x"}
    result = SCHEMAS["result"]
    assert errors(good, result, chain_type="math_chain") == []
    assert errors({**good, "extra": 1}, result, chain_type="math_chain") == []  # may be added
    renamed = {k if k != "error" else "err": v for k, v in good.items()}
    assert errors(renamed, result, chain_type="math_chain") == ["$: no field 'error'"]
    assert errors({**good, "schema_version": True}, result, chain_type="math_chain") == [
        "$.schema_version: True not one of (1,)"
    ]
    assert errors({**good, "status": "DONE"}, result, chain_type="math_chain") == [
        f"$.status: 'DONE' not one of {CHAIN_STATUS.values}"
    ]
    assert errors([{"id": 1}], SCHEMAS["list"])[0] == "$[0]: no field 'schema_version'"
    assert errors("2024-05-01T12:00:00+00:00", ISO) != []
    assert errors("2024-05-01T12:00:00.123Z", ISO) == []
    assert errors({"total": 1.5}, {"total": int}) == ["$.total: 1.5 is not int"]


def test_the_validator_types_results_and_config_per_chain_type() -> None:
    chain = {"schema_version": 1, "id": "a", "type": "math_chain", "status": "COMPLETED",
             "result": 10**100 + 7, "error": None}  # fmt: skip
    schema = {**SCHEMAS["result"], "type": str}
    assert errors(chain, schema) == []
    # The float a SQLite JSON column made of 10**100 + 7, and a number as text: both wrong.
    assert errors({**chain, "result": 1e100}, schema) == ["$.result: 1e+100 matches none of "
                                                          f"{RESULT.by_type['math_chain']}"]  # fmt: skip
    assert errors({**chain, "result": "7"}, schema) != []
    assert errors({**chain, "type": "nope"}, schema) == [
        "$.result: no schema for chain type 'nope'"
    ]
    result_doc = {k: v for k, v in chain.items() if k != "type"}
    assert errors(result_doc, SCHEMAS["result"], chain_type="math_chain") == []
    assert errors({**result_doc, "result": 6.0}, SCHEMAS["result"], chain_type="math_chain") != []
    assert errors(result_doc, SCHEMAS["result"]) == ["$.result: no schema for chain type None"]
    config = {"numbers": [1, 2.0], "operation": "add", "iterations": 1}
    assert errors(config, CONFIG, chain_type="math_chain") == ["$.numbers[1]: 2.0 is not int"]
    assert errors({**config, "numbers": [1, 2]}, CONFIG, chain_type="math_chain") == []
    assert errors({**config, "operation": "+"}, CONFIG, chain_type="math_chain") != []


@pytest.mark.parametrize("command", ["status", "result", "list", "stats", "info"])
def test_json_leaves_stdout_to_the_document(runner: CliRunner, command: str) -> None:
    chain_id = runner.invoke(app, ["submit", "math_chain", "--numbers", "1", "2", "-q"]).stdout
    args = [command, chain_id.strip()] if command in ("status", "result") else [command]
    result = runner.invoke(app, [*args, "--json"])
    assert result.stdout.count("\n") == 1  # one document, on one line
    assert json.loads(result.stdout) is not None
    assert result.stderr == ""
