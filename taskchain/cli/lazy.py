"""What Typer does up front that one command does not need: start-up cost, not behaviour.

A CI script runs `taskchain status ID` in a loop; each run should pay for that command only.
Typer, left alone, builds every command (reads each signature, evaluates its annotations,
makes its options) and builds a pydantic TypeAdapter for every option it processes, unset
ones included. Here both wait until they are needed; what the user sees is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from typer._click.core import Command
from typer.core import TyperCommand


class Coercion:
    """Typer's coercion of one parameter, its pydantic adapter built at the first value.

    Typer builds the adapter before it looks at the value, even an unset one (for
    `taskchain status --help` that is pydantic imported for the global options, all unset).
    An unset value needs no adapter: Typer answers None or () for it, and so does this; nor
    does a value the adapter would hand back unchanged (~20 ms of pydantic's modules).
    """

    def __init__(self, descriptor: Any) -> None:
        self.descriptor = descriptor
        self.real: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return () if param.multiple or param.nargs == -1 else None
        if self.real is None and self._unchanged(value, param):
            return value
        if self.real is None:
            from typer._coercion import build_runtime_param

            self.real = build_runtime_param(self.descriptor)
        return self.real.coerce(value, param=param, ctx=ctx)

    def _unchanged(self, value: Any, param: Any) -> bool:
        """A value the adapter would return as it is: already of the annotated scalar type
        (`status ID`'s str, a flag's bool, `--limit`'s default int) and not range-checked."""
        info = self.descriptor.parameter_info
        return (
            type(value) is self.descriptor.annotation
            and type(value) in (str, bool, int, float)
            and not (param.multiple or param.nargs == -1)
            and getattr(info, "min", None) is None
            and getattr(info, "max", None) is None
        )


def defer_coercion(params: Sequence[Any]) -> None:
    """Give each Typer parameter not yet coerced a `Coercion` (others are left alone)."""
    for param in params:
        if getattr(param, "_runtime_param", False) is None:
            param._runtime_param = Coercion(param.type_descriptor)


class Commands(MutableMapping[str, Command]):
    """A group's commands, each built by `build(name)` when first looked up, listed in the
    order of `summaries` (name: the line `--help` shows for it), then any added later."""

    def __init__(self, summaries: Mapping[str, str], build: Callable[[str], Command]) -> None:
        self._summaries = dict(summaries)
        self._built: dict[str, Command] = {}
        self._extra: dict[str, Command] = {}
        self._build = build

    def __getitem__(self, name: str) -> Command:
        if name in self._built:
            return self._built[name]
        if name in self._summaries:
            command = self._built[name] = self._build(name)
            return command
        return self._extra[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._summaries.pop(name, None)
        self._built.pop(name, None)
        self._extra[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._summaries.pop(name, None)
        self._built.pop(name, None)
        self._extra.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self._summaries
        yield from (name for name in self._extra if name not in self._summaries)

    def __len__(self) -> int:
        return len(self._summaries) + sum(name not in self._summaries for name in self._extra)

    def __contains__(self, name: object) -> bool:
        return name in self._summaries or name in self._extra

    def summary(self, name: str) -> Command:
        """The command if built, else a stand-in with only what a list of commands shows, its
        name and summary line (`taskchain --help` builds none)."""
        if name in self._built or name not in self._summaries:
            return self[name]
        return TyperCommand(name, help=self._summaries[name])


def name_of(info: Any) -> str:
    """A command's (or sub-group's) name as Typer gives it (typer.main.get_command_from_info)."""
    return str(info.name or info.callback.__name__.lower().replace("_", "-"))
