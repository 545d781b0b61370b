"""What a chain type is: a config model, a plan of steps, a queue, and the code of one step.

A new type is one module in this package that subclasses `ChainType` and decorates it with
`@register`; nothing else needs to change (the registry discovers the module).
"""

from __future__ import annotations

import argparse
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from taskchain.errors import InvalidInput


@dataclass(frozen=True)
class StepPlan:
    """One planned step: its display name and the JSON parameters its run receives."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    """What a running step may know and do besides computing its result."""

    chain_id: str
    index: int
    step_count: int
    workspace: Path
    report: Callable[[str], None] = lambda _message: None

    @property
    def chain_dir(self) -> Path:
        """The chain's own folder in the workspace, for files its steps write."""
        return self.workspace / ".taskchain" / self.chain_id


class ChainType(ABC):
    """Base of every chain type. Subclasses set the class attributes and the three methods."""

    name: ClassVar[str]
    #: The queue family (`math`, `data`, `io` or `default`); workers consume it from the
    #: queue TASKCHAIN_QUEUE_PREFIX + family (`taskchain.math`).
    queue: ClassVar[str]
    summary: ClassVar[str]
    #: Longer text for `taskchain submit --help`: flags and semantics.
    details: ClassVar[str] = ""
    Config: ClassVar[type[BaseModel]]

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        """Friendly `submit` flags; each flag's dest is a config key (None = not given)."""

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> BaseModel:
        try:
            return cls.Config.model_validate(dict(raw))
        except ValidationError as exc:
            raise InvalidInput(f"{cls.name} config: {describe_validation_error(exc)}") from exc

    @classmethod
    def check(cls, config: Any, workspace: Path) -> None:
        """Checks that need the world (files exist, paths stay inside); raise InvalidInput."""

    @classmethod
    @abstractmethod
    def plan(cls, config: Any) -> list[StepPlan]:
        """The steps this config runs, in order (at least one)."""

    @classmethod
    @abstractmethod
    def run_step(cls, config: Any, step: StepPlan, previous: Any, ctx: StepContext) -> Any:
        """Run one step; `previous` is the prior step's result (None for the first).

        Return a JSON-serialisable value; raise `StepError` to fail with a message.
        """

    @classmethod
    def summarize(cls, result: Any) -> str:
        """One line saying what ONE step's `result` is, for plain progress lines (a CI log).

        The result itself stays whole in `result`, `status --json` and `watch --json`; this
        only has to tell a reader what happened. The default: compact JSON cut to about 80
        characters. Override it for results larger than a line (files, tables).
        """
        return brief(result)

    @classmethod
    def outputs(cls, config: Any) -> dict[str, str]:
        """The named outputs a chain of this config declares, each with its kind (one of
        OUTPUT_KINDS), for workflows: a downstream job's config refers to them as
        `${{ jobs.NAME.outputs.KEY }}`. Declared from the config alone, before anything runs;
        the default: none."""
        return {}

    @classmethod
    def output_values(cls, config: Any, result: Any) -> dict[str, Any]:
        """The values of `outputs(config)`, from the chain's final `result` (the last step's);
        an output the result does not carry is left out, and a job that refers to it fails."""
        return {}


#: What an output is, for the placeholders that let a workflow validate a job's config
#: before the upstream value exists: a workspace path (text), a list of them, an integer.
OUTPUT_KINDS = ("path", "paths", "integer")

#: Characters a summary may take; longer ones are cut and end in `…`.
SUMMARY_WIDTH = 80
#: Digits an integer may have before only its ends and its length are shown.
INT_DIGITS = 40
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def short_int(number: int) -> str:
    """An integer whole up to INT_DIGITS digits, else `123456…789012 (4000 digits)`."""
    try:
        text = str(number)
    except ValueError:  # over Python's int-to-str limit: say how big, not what
        return f"an integer of about {int(abs(number).bit_length() * 0.30103) + 1} digits"
    digits = len(text.lstrip("-"))
    if digits <= INT_DIGITS:
        return text
    sign = "-" if number < 0 else ""
    body = text.lstrip("-")
    return f"{sign}{body[:6]}…{body[-6:]} ({digits} digits)"


def human_bytes(size: int | float) -> str:
    """`512 B`, `1.2 KB`, `3.4 MB` (powers of 1000, as `du --si` and `ls --si` count)."""
    if size < 1000:
        return f"{int(size)} B"
    for unit in ("KB", "MB", "GB", "TB"):
        size /= 1000
        if size < 999.95:
            return f"{size:.1f} {unit}"
    return f"{size:.1f} PB"


def cut(text: str, width: int = SUMMARY_WIDTH) -> str:
    """`text` on one line and at most `width` characters, ending in `…` when cut."""
    line = text.replace("\r", " ").replace("\n", " ")
    return line if len(line) <= width else line[: width - 1] + "…"


def brief(value: Any, width: int = SUMMARY_WIDTH) -> str:
    """Any JSON value as one short line: integers abbreviated, strings bare, the rest compact
    JSON, cut to `width` characters."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return cut(short_int(value), width)
    if isinstance(value, str):
        return cut(_CONTROL.sub(lambda m: repr(m.group())[1:-1], value), width)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    except ValueError:  # an integer too long to write, nested somewhere
        kind = "object" if isinstance(value, dict) else "array"
        text = f"{kind} of {len(value)} item(s)" if hasattr(value, "__len__") else repr(value)
    return cut(text, width)


def describe_validation_error(exc: ValidationError) -> str:
    """pydantic's first error as one line: `field.path: message`."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {message}{suffix}" if where else f"{message}{suffix}"
