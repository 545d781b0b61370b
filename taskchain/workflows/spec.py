"""A workflow file, read and validated whole before anything is recorded.

```yaml
name: nightly-report          # optional; default: the file's name without its extension
description: ...              # optional
jobs:
  NAME:                       # [A-Za-z0-9_-]+
    type: data_chain          # any registered chain type
    config: {...}             # the type's config, as for `submit --config`
    needs: [OTHER, ...]       # optional: jobs that must COMPLETE first
    description: ...          # optional
```
Every problem is one InvalidInput line naming the file, the job and the field:
`workflow nightly.yaml: job 'summary': config.data_input: ...`.

What is checked when: the shape of every job's config (the type's `parse`) now, with each
reference replaced by a placeholder of the output's kind; the world (the type's `check`:
files exist, paths stay inside the workspace) now only for jobs without `needs`. A job with
needs runs in a workspace its upstream jobs have changed (written, moved, deleted files), so
judging it today would be wrong both ways; `prepare` checks it when it starts, on its
resolved config, and a problem then fails that job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from taskchain.chains import ChainType, get_type
from taskchain.errors import InvalidInput
from taskchain.workflows import refs
from taskchain.workflows.graph import Graph, GraphError

#: A workflow file is a few hundred lines; anything bigger is a mistake, refused unread.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_JOBS = 500
_NAME = re.compile(refs.NAME)
_TOP_KEYS = ("name", "description", "jobs")
_JOB_KEYS = ("type", "config", "needs", "description")


@dataclass(frozen=True)
class Job:
    name: str
    type: str
    #: As written: references (`${{ jobs.X.outputs.KEY }}`) still in it.
    config: dict[str, Any]
    needs: tuple[str, ...]
    description: str | None
    references: tuple[refs.Reference, ...]
    #: The outputs a run of this job declares (name -> kind), from its config.
    outputs: dict[str, str]
    #: Its config was checked against the workspace at load time (a job without needs).
    checked: bool


@dataclass(frozen=True)
class Workflow:
    name: str
    description: str | None
    #: In file order.
    jobs: dict[str, Job]
    graph: Graph
    #: How messages name the file.
    source: str


def load(path: str | Path, *, workspace: Path) -> Workflow:
    """Read and validate a workflow file (`.json`: JSON; anything else: YAML, which JSON is)."""
    source = f"workflow {path}"
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise InvalidInput(f"{source}: over the {MAX_FILE_BYTES // 2**20} MiB limit")
        raw = file.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{source}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{source}: cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{source}: not UTF-8 text") from None
    data = parse_text(text, source=source, json_only=file.suffix.lower() == ".json")
    return validate(data, source=source, workspace=workspace, default_name=file.stem)


def parse_text(text: str, *, source: str, json_only: bool = False) -> Any:
    """The document in `text`: JSON, or YAML with duplicate keys refused (a job written
    twice would silently lose one)."""
    if json_only:
        try:
            return json.loads(text, object_pairs_hook=_unique_pairs)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{source}: invalid JSON: {exc.msg} at line {exc.lineno}") from None
        except _Duplicate as exc:
            raise InvalidInput(f"{source}: key {exc.key!r} appears twice") from None
    import yaml

    from taskchain.workflows._yaml import UniqueKeyLoader

    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise InvalidInput(f"{source}: invalid YAML: {problem}{where}") from None


def validate(data: Any, *, source: str, workspace: Path, default_name: str = "") -> Workflow:
    """A Workflow from a parsed document, or InvalidInput naming the job and the field."""

    def fail(message: str, job: str | None = None) -> InvalidInput:
        return InvalidInput(f"{source}: job {job!r}: {message}" if job else f"{source}: {message}")

    if not isinstance(data, dict):
        raise fail(f"expected a mapping with 'jobs', got {_kind(data)}")
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        raise fail(f"unknown field {str(unknown[0])!r} (fields: {', '.join(_TOP_KEYS)})")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip() or "\n" in name:
        raise fail("name: expected one line of text")
    description = _text(data, "description", fail)
    jobs_data = data.get("jobs")
    if not isinstance(jobs_data, dict) or not jobs_data:
        raise fail("jobs: expected a mapping of job names to jobs, with at least one job")
    if len(jobs_data) > MAX_JOBS:
        raise fail(f"jobs: {len(jobs_data)} jobs; the limit is {MAX_JOBS}")
    shapes = {_job_name(key, fail): _shape(key, body, fail) for key, body in jobs_data.items()}
    try:
        graph = Graph({job: shape["needs"] for job, shape in shapes.items()})
    except GraphError as exc:
        raise fail(exc.message, exc.job) from None
    jobs: dict[str, Job] = {}
    for job in graph.order:  # upstream first: a reference needs its job's declared outputs
        try:
            jobs[job] = _job(job, shapes[job], jobs, graph, workspace)
        except InvalidInput as exc:
            raise fail(exc.message, job) from None
    ordered = {job: jobs[job] for job in graph.jobs}
    return Workflow(name.strip(), description, ordered, graph, source)


def prepare(
    workflow: Workflow, job: str, outputs_by_job: Mapping[str, Mapping[str, Any]], workspace: Path
) -> tuple[dict[str, Any], BaseModel]:
    """For a job about to start: its config with references resolved, parsed and checked
    against the workspace as it is now. InvalidInput (`job 'x': ...`) fails the job."""
    spec = workflow.jobs[job]
    chain_type = get_type(spec.type)
    try:
        resolved = refs.resolve(spec.config, outputs_by_job)
        parsed = _parse(chain_type, resolved)
        _check(chain_type, parsed, workspace)
    except InvalidInput as exc:
        raise InvalidInput(f"job {job!r}: {exc.message}") from None
    return resolved, parsed


def _job(
    name: str, shape: dict[str, Any], upstream: Mapping[str, Job], graph: Graph, workspace: Path
) -> Job:
    chain_type = get_type(shape["type"])
    config, needs = shape["config"], shape["needs"]
    found = refs.find(config)
    for ref in found:
        if ref.job not in graph.needs:
            raise refs.BadReference(ref.where, f"refers to job {ref.job!r}, which does not exist")
        if ref.job not in needs:
            # As in GitHub Actions: only a direct need, so that reading a job's config tells
            # which jobs it takes values from.
            raise refs.BadReference(
                ref.where, f"refers to job {ref.job!r}, which is not in its needs (add it)"
            )
        declared = upstream[ref.job].outputs
        if ref.key not in declared:
            has = f"its outputs: {', '.join(declared)}" if declared else "it declares none"
            raise refs.BadReference(
                ref.where,
                f"job {ref.job!r} ({upstream[ref.job].type}) has no output {ref.key!r} ({has})",
            )
    kinds = {(r.job, r.key): upstream[r.job].outputs[r.key] for r in found}
    stand_in = refs.resolve(config, _Placeholders(kinds)) if found else config
    try:
        parsed = _parse(chain_type, stand_in)
    except InvalidInput as exc:
        raise _misfit(exc, found, kinds) from None
    checked = not needs
    if checked:
        _check(chain_type, parsed, workspace)
    return Job(
        name=name,
        type=chain_type.name,
        config=config,
        needs=tuple(needs),
        description=shape["description"],
        references=tuple(found),
        outputs=dict(chain_type.outputs(parsed)),
        checked=checked,
    )


class _Placeholders(Mapping[str, Mapping[str, Any]]):
    """outputs_by_job for `refs.resolve` whose values are placeholders of each output's kind."""

    def __init__(self, kinds: Mapping[tuple[str, str], str]) -> None:
        self.by_job: dict[str, dict[str, Any]] = {}
        for (job, key), kind in kinds.items():
            ref = refs.Reference(job, key, "", whole=True)
            self.by_job.setdefault(job, {})[key] = refs.placeholder(kind, ref)

    def __getitem__(self, job: str) -> Mapping[str, Any]:
        return self.by_job[job]

    def __iter__(self) -> Any:
        return iter(self.by_job)

    def __len__(self) -> int:
        return len(self.by_job)


_KIND_TEXT = {"path": "a path", "paths": "a list of paths", "integer": "an integer"}


def _misfit(
    exc: InvalidInput, found: list[refs.Reference], kinds: Mapping[tuple[str, str], str]
) -> InvalidInput:
    """A parse error at a reference's place, said of the reference, not of its placeholder:
    `config.numbers.0: jobs.a.outputs.file is a path, which does not fit here`."""
    for ref in found:
        if exc.message.startswith(f"{ref.where}:"):
            kind = kinds[(ref.job, ref.key)]
            detail = exc.message.removeprefix(f"{ref.where}:").strip()
            if "workflow-placeholder" in detail:  # says the stand-in's value: no help
                detail = ""
            return refs.BadReference(
                ref.where,
                f"jobs.{ref.job}.outputs.{ref.key} is {_KIND_TEXT.get(kind, kind)}, which does "
                f"not fit here" + (f" ({detail})" if detail else ""),
            )
    return exc


def _parse(chain_type: type[ChainType], config: dict[str, Any]) -> BaseModel:
    """The type's parse, its message turned from `data_chain config: x: ...` to `config.x: ...`."""
    try:
        return chain_type.parse(config)
    except InvalidInput as exc:
        prefix = f"{chain_type.name} config: "
        if exc.message.startswith(prefix):
            raise InvalidInput("config." + exc.message.removeprefix(prefix)) from None
        raise


def _check(chain_type: type[ChainType], config: BaseModel, workspace: Path) -> None:
    """The type's check; its messages already name the type and the field."""
    chain_type.check(config, workspace)


def _job_name(key: Any, fail: Any) -> str:
    if not isinstance(key, str) or not _NAME.fullmatch(key):
        raise fail(f"jobs: {str(key)!r} is not a job name (letters, digits, '_' and '-')")
    return key


def _shape(job: str, body: Any, fail: Any) -> dict[str, Any]:
    """A job's fields, checked for their JSON kinds (not yet against its type)."""
    if not isinstance(body, dict):
        raise fail(f"expected a mapping with 'type' and 'config', got {_kind(body)}", job)
    unknown = [k for k in body if k not in _JOB_KEYS]
    if unknown:
        raise fail(f"unknown field {str(unknown[0])!r} (fields: {', '.join(_JOB_KEYS)})", job)
    kind = body.get("type")
    if not isinstance(kind, str) or not kind.strip():
        raise fail("type: expected a chain type name, like math_chain", job)
    try:
        get_type(kind.strip())
    except InvalidInput as exc:
        raise fail(f"type: {exc.message}", job) from None
    config = body.get("config", {})
    if not isinstance(config, dict):
        raise fail(f"config: expected a mapping, got {_kind(config)}", job)
    needs = body.get("needs", [])
    if isinstance(needs, str):  # `needs: clean` reads as a list of one, as in CI files
        needs = [needs]
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise fail("needs: expected a list of job names", job)
    return {
        "type": kind.strip(),
        "config": config,
        "needs": needs,
        "description": _text(body, "description", lambda m: fail(m, job)),
    }


def _text(data: dict[str, Any], key: str, fail: Any) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise fail(f"{key}: expected text, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number"}
    return "nothing" if value is None else names.get(type(value), type(value).__name__)


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out
