"""References to upstream outputs in a job's config: `${{ jobs.NAME.outputs.KEY }}`.

A reference is a whole string value or part of one. A whole-string reference is replaced by
the output's value as it is (a list stays a list, an integer an integer); inside a longer
string the value is written as text (integers in decimal, lists and objects as compact JSON).
References go in values only, never in keys. Any other `${{ ... }}` is an error: there is no
expression language, and no escape (a config value cannot contain the text `${{`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from taskchain.chains.base import cut
from taskchain.errors import InvalidInput

NAME = r"[A-Za-z0-9_-]+"
REFERENCE = re.compile(rf"\$\{{\{{\s*jobs\.({NAME})\.outputs\.({NAME})\s*\}}\}}")
_OPEN = "${{"


class BadReference(InvalidInput):
    """A bad reference; `where` is the config path (`config.target_files.0`)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class Reference:
    job: str
    key: str
    #: Where in the config: `config.data_input`, `config.target_files.0`.
    where: str
    #: The reference is the whole string, so it takes the value's own type.
    whole: bool


def find(config: Any, where: str = "config") -> list[Reference]:
    """Every reference in `config`, in document order; BadReference for a malformed one."""
    found: list[Reference] = []
    _walk(config, where, lambda ref: found.append(ref))
    return found


def resolve(config: Any, outputs_by_job: Mapping[str, Mapping[str, Any]]) -> Any:
    """`config` with every reference replaced by its value from `outputs_by_job`
    (job -> output name -> value); BadReference naming the place when one is missing."""

    def value(ref: Reference) -> Any:
        if ref.job not in outputs_by_job:
            raise BadReference(ref.where, f"job {ref.job!r} has no outputs (has it run?)")
        outputs = outputs_by_job[ref.job]
        if ref.key not in outputs:
            known = ", ".join(sorted(outputs)) or "none"
            raise BadReference(
                ref.where, f"job {ref.job!r} produced no output {ref.key!r} (it has: {known})"
            )
        return outputs[ref.key]

    return _walk(config, "config", value)


def placeholder(kind: str, ref: Reference) -> Any:
    """A stand-in of the output's kind, so that a config can be validated before the upstream
    job has run. Paths name nothing real: a job with references is checked against the
    workspace when it starts."""
    path = f".taskchain/workflow-placeholder/{ref.job}/{ref.key}"
    if kind == "paths":
        return [path]
    if kind == "integer":
        return 1
    return path


def as_text(value: Any) -> str:
    """How a value reads inside a longer string."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _walk(node: Any, where: str, value: Callable[[Reference], Any]) -> Any:
    """A copy of `node` with each reference replaced by `value(reference)`."""
    if isinstance(node, str):
        return _string(node, where, value)
    if isinstance(node, list):
        return [_walk(item, f"{where}.{i}", value) for i, item in enumerate(node)]
    if isinstance(node, dict):
        out = {}
        for key, item in node.items():
            if isinstance(key, str) and _OPEN in key:
                raise BadReference(f"{where}.{key}", "references go in values, not in keys")
            out[key] = _walk(item, f"{where}.{key}", value)
        return out
    return node


def _string(text: str, where: str, value: Callable[[Reference], Any]) -> Any:
    if _OPEN not in text:
        return text
    for start in _positions(text):
        if not REFERENCE.match(text, start):
            close = text.find("}}", start)
            bad = text[start : close + 2 if close >= 0 else len(text)]
            raise BadReference(
                where,
                f"{cut(bad, 60)!r} is not a reference; write ${{{{ jobs.NAME.outputs.KEY }}}}",
            )
    whole = REFERENCE.fullmatch(text.strip())
    if whole:
        return value(Reference(whole[1], whole[2], where, whole=True))
    return REFERENCE.sub(lambda m: as_text(value(Reference(m[1], m[2], where, whole=False))), text)


def _positions(text: str) -> list[int]:
    found, start = [], text.find(_OPEN)
    while start >= 0:
        found.append(start)
        start = text.find(_OPEN, start + 1)
    return found
