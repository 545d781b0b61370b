"""What a chain type is: a config model, a plan of steps, a queue, and the code of one step.

A new type is one module in this package that subclasses `ChainType` and decorates it with
`@register`; nothing else needs to change (the registry discovers the module).
"""

from __future__ import annotations

import argparse
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


def describe_validation_error(exc: ValidationError) -> str:
    """pydantic's first error as one line: `field.path: message`."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {message}{suffix}" if where else f"{message}{suffix}"
