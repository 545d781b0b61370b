"""io_chain: file operations on workspace files, one step per operation.

Each step applies its operation to every current target. `copy` and `move` make their
destinations the targets of the steps after them; so each step's result carries the target
list forward (`targets`), and the first step starts from `target_files`. Every path is
confined to the workspace, checked at submit and again when the step runs (see `_io_ops`).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_serializer,
    model_validator,
)

from taskchain.builtin_types import TEXTS
from taskchain.chains import _io_ops as ops
from taskchain.chains import register
from taskchain.chains.base import ChainType, StepContext, StepPlan, brief, cut, human_bytes
from taskchain.errors import InvalidInput, StepError

OPERATIONS = ("write", "read", "checksum", "stat", "copy", "move", "delete", "list")
MAX_TARGETS = 1000
MAX_OPERATIONS = 100
MAX_CONTENT = 1024 * 1024
_NEEDS = {
    "write": ("content", "the text to write", "--write TEXT"),
    "copy": ("to", "a folder", "--copy DIR"),
    "move": ("to", "a folder", "--move DIR"),
}


def _path(value: str) -> str:
    if not value.strip() or "\x00" in value:
        raise ValueError(f"{value!r} is not a usable path")
    return value


def _paths(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _operation(value: Any) -> Any:
    """A name or an object with `op`, checked here for messages that name the problem."""
    if isinstance(value, str):
        value = {"op": value}
    if not isinstance(value, dict):
        raise ValueError(f"an operation is a name or an object with 'op', not {value!r}")
    name = value.get("op")
    if not isinstance(name, str):
        raise ValueError(f"an operation object needs 'op' (one of {', '.join(OPERATIONS)})")
    name = name.strip().lower()
    if name not in OPERATIONS:
        raise ValueError(f"unknown operation {name!r} (known: {', '.join(OPERATIONS)})")
    if name in _NEEDS and _NEEDS[name][0] not in value:
        key, what, flag = _NEEDS[name]
        raise ValueError(
            f'{name} needs {key!r} ({what}): give {{"op": "{name}", "{key}": ...}} '
            f"in --config, or use {flag}"
        )
    return {**value, "op": name}


WorkspacePath = Annotated[str, AfterValidator(_path)]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimpleOp(_Op):
    op: Literal["read", "checksum", "stat", "delete", "list"]

    @model_serializer
    def _as_name(self) -> str:
        return self.op


class WriteOp(_Op):
    op: Literal["write"]
    content: str = Field(max_length=MAX_CONTENT)


class CopyOp(_Op):
    op: Literal["copy"]
    to: WorkspacePath


class MoveOp(_Op):
    op: Literal["move"]
    to: WorkspacePath


Operation = Annotated[
    WriteOp | CopyOp | MoveOp | SimpleOp,
    Field(discriminator="op"),
    BeforeValidator(_operation),
]


class IoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_files: Annotated[list[WorkspacePath], BeforeValidator(_paths)] = Field(
        min_length=1, max_length=MAX_TARGETS
    )
    file_operations: list[Operation] = Field(min_length=1, max_length=MAX_OPERATIONS)

    @model_validator(mode="after")
    def _nothing_reads_deleted_files(self) -> IoConfig:
        deleted: int | None = None
        for n, op in enumerate(self.file_operations):
            if deleted is not None and op.op not in ("write", "delete"):
                raise ValueError(
                    f"file_operations.{n}: {op.op} follows delete (file_operations.{deleted}), "
                    "when the targets are gone; only write may come next"
                )
            if op.op == "delete":
                deleted = n
            elif op.op == "write":
                deleted = None
        return self


def label(op: WriteOp | CopyOp | MoveOp | SimpleOp) -> str:
    """A step's display name: `read`, `copy → backup/`."""
    if isinstance(op, CopyOp | MoveOp):
        return f"{op.op} → {op.to.rstrip('/')}/"
    return op.op


@register
class IoChain(ChainType):
    name = "io_chain"
    queue = "io"
    summary, details = TEXTS["io_chain"]
    Config = IoConfig

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--target", "--targets", dest="target_files", nargs="+", action="extend",
            metavar="PATH",
        )  # fmt: skip
        parser.add_argument(
            "--ops", dest="file_operations", nargs="+", action=_AddOps, metavar="OP[,OP...]"
        )
        parser.add_argument("--write", dest="file_operations", action=_Write, metavar="TEXT")
        parser.add_argument("--copy", dest="file_operations", action=_Copy, metavar="DIR")
        parser.add_argument("--move", dest="file_operations", action=_Move, metavar="DIR")

    @classmethod
    def check(cls, config: Any, workspace: Path) -> None:
        places = []
        first: dict[Path, str] = {}
        for i, path in enumerate(config.target_files):
            try:
                place = ops.locate(workspace, path)
            except InvalidInput as exc:
                raise InvalidInput(f"io_chain: target_files.{i}: {exc}") from None
            if place.entry in first:
                same = first[place.entry]
                raise InvalidInput(f"io_chain: target_files.{i}: {path!r} is the same as {same!r}")
            first[place.entry] = path
            places.append(place)
        for n, op in enumerate(config.file_operations):
            try:
                if op.op in ("write", "delete"):
                    for place in places:
                        ops.modifiable(place, op.op)
                if isinstance(op, CopyOp | MoveOp):
                    places = _destinations(workspace, places, op)
            except InvalidInput as exc:
                raise InvalidInput(f"io_chain: file_operations.{n} ({label(op)}): {exc}") from None

    @classmethod
    def plan(cls, config: Any) -> list[StepPlan]:
        return [
            StepPlan(name=label(op), params={"position": n, "op": op.op})
            for n, op in enumerate(config.file_operations)
        ]

    @classmethod
    def run_step(cls, config: Any, step: StepPlan, previous: Any, ctx: StepContext) -> Any:
        position = step.params["position"]
        op = config.file_operations[position]
        paths = _current_targets(config, position, previous)
        try:
            files, targets = _apply(op, paths, ctx)
        except InvalidInput as exc:  # an escape seen only now: a failed step, not bad input
            raise StepError(str(exc)) from None
        return {"op": op.op, "targets": targets, "files": files}

    @classmethod
    def summarize(cls, result: Any) -> str:
        """`checksum: 2 files, 1.2 KB`, `list: 1 folder, 12 entries`,
        `delete: 2 files, 9 B (1 already absent)`: what the step did, not each file's record."""
        files = result.get("files") if isinstance(result, dict) else None
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            return brief(result)
        op = str(result.get("op", "?"))
        if op == "list":
            entries = sum(f["count"] for f in files if isinstance(f.get("count"), int))
            line = f"list: {_count(len(files), 'folder')}, {_count(entries, 'entry', 'entries')}"
            notes = ["listing cut"] if any(f.get("truncated") for f in files) else []
        else:
            size = sum(f["size"] for f in files if isinstance(f.get("size"), int))
            line = f"{op}: {_count(len(files), 'file')}, {human_bytes(size)}"
            actions = Counter(str(f["action"]) for f in files if "action" in f)
            notes = [f"{n} {a}" for a, n in actions.items() if a != _DONE.get(op)]
            notes += [f"{n} {flag}" for flag in ("binary", "truncated")
                      if (n := sum(1 for f in files if f.get(flag) is True))]  # fmt: skip
        return cut(f"{line} ({', '.join(notes)})" if notes else line)

    @classmethod
    def outputs(cls, config: Any) -> dict[str, str]:
        """`files`: the targets after the last operation (copies and moves are the new
        paths); `file` too when there is exactly one. None when the last operation deletes."""
        if config.file_operations[-1].op == "delete":
            return {}
        declared = {"files": "paths"}
        if len(config.target_files) == 1:
            declared["file"] = "path"
        return declared

    @classmethod
    def output_values(cls, config: Any, result: Any) -> dict[str, Any]:
        targets = result.get("targets") if isinstance(result, dict) else None
        if not cls.outputs(config) or not isinstance(targets, list):
            return {}
        if not all(isinstance(t, str) for t in targets):
            return {}
        values: dict[str, Any] = {"files": list(targets)}
        if len(targets) == 1:
            values["file"] = targets[0]
        return values


#: An operation's ordinary outcome, left out of its summary (only the unusual ones are told).
_DONE = {"copy": "copied", "move": "moved", "delete": "deleted"}


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _current_targets(config: IoConfig, position: int, previous: Any) -> list[str]:
    if position == 0:
        return list(config.target_files)
    targets = previous.get("targets") if isinstance(previous, dict) else None
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise StepError("the previous step's result carries no target list")
    return targets


def _destinations(
    workspace: Path, places: Sequence[ops.Place], op: CopyOp | MoveOp
) -> list[ops.Place]:
    folder = ops.locate(workspace, op.to)
    if folder.real.exists() and not folder.real.is_dir():
        raise InvalidInput(f"{op.to!r} is a file, not a folder")
    taken: dict[Path, str] = {}
    result = []
    for place in places:
        dest = ops.destination(workspace, place, folder, op.op)
        if dest.entry in taken:
            raise InvalidInput(f"{taken[dest.entry]} and {place.rel} would both become {dest.rel}")
        taken[dest.entry] = place.rel
        result.append(dest)
    return result


def _apply(op: Any, paths: list[str], ctx: StepContext) -> tuple[list[dict[str, Any]], list[str]]:
    """Run `op` on every path; return what it did per file and the targets after it."""
    places = [ops.locate(ctx.workspace, path) for path in paths]
    dests = _destinations(ctx.workspace, places, op) if isinstance(op, CopyOp | MoveOp) else None
    budget = ops.STEP_TEXT_LIMIT
    files: list[dict[str, Any]] = []
    reported = time.monotonic()
    for i, place in enumerate(places):
        try:
            if op.op == "write":
                done = ops.write(place, op.content)
            elif op.op == "read":
                done = ops.read(place, budget)
                budget -= len(done.get("text", "").encode("utf-8"))
            elif op.op == "checksum":
                done = ops.checksum(place)
            elif op.op == "stat":
                done = ops.stat_of(place)
            elif op.op == "list":
                done = ops.listing(place)
            elif op.op == "delete":
                done = ops.delete(place)
            elif op.op == "copy" and dests is not None:
                done = ops.copy(place, dests[i])
            elif op.op == "move" and dests is not None:
                done = ops.move(ctx.workspace, place, dests[i])
            else:
                raise StepError(f"unknown operation {op.op!r}")
        except OSError as exc:
            raise StepError(f"{op.op} {place.rel}: {exc.strerror or exc}") from None
        files.append(done)
        if len(places) > 1 and time.monotonic() - reported >= 1.0:
            ctx.report(f"{i + 1}/{len(places)} files")
            reported = time.monotonic()
    targets = [d.rel for d in (dests if dests is not None else places)]
    return files, targets


class _AddOps(argparse.Action):
    """Append to file_operations, so that operations run in the order they are typed."""

    kind: ClassVar[str | None] = None

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        found = list(getattr(namespace, self.dest, None) or [])
        if self.kind is None:
            items = values if isinstance(values, list) else [values]
            found.extend(n.strip() for item in items for n in str(item).split(",") if n.strip())
        else:
            found.append({"op": self.kind, _NEEDS[self.kind][0]: values})
        setattr(namespace, self.dest, found)


class _Write(_AddOps):
    kind = "write"


class _Copy(_AddOps):
    kind = "copy"


class _Move(_AddOps):
    kind = "move"
