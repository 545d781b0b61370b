"""Turning `submit`'s inputs (--config, --config-file, per-type flags) into one config dict."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from taskchain.errors import InvalidInput

if TYPE_CHECKING:  # the chain types import pydantic: not for `submit --help`
    from taskchain.chains import ChainType


class _FlagParser(argparse.ArgumentParser):
    """argparse for a type's flags, raising instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"{self.prog}: {message}")


def parse_type_flags(chain_type: type[ChainType], args: list[str]) -> dict[str, Any]:
    """The config keys given by the type's own flags (e.g. `--numbers 1 2 3`)."""
    parser = _FlagParser(prog=f"submit {chain_type.name}", add_help=False, allow_abbrev=False)
    chain_type.add_flags(parser)
    namespace, extra = parser.parse_known_args(args)
    if extra:
        known = " ".join(sorted(a.option_strings[-1] for a in parser._actions if a.option_strings))
        raise InvalidInput(
            f"unexpected argument {extra[0]!r} for {chain_type.name} (its flags: {known or 'none'})"
        )
    return {key: value for key, value in vars(namespace).items() if value is not None}


#: A config is a few settings; anything bigger is a mistake (a data file named by accident),
#: refused before it is read whole.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def load_config_text(text: str, *, source: str, fmt: str | None = None) -> dict[str, Any]:
    """A mapping from JSON or YAML text; `fmt` None tries JSON, then YAML."""
    if len(text) > MAX_CONFIG_BYTES or len(text.encode("utf-8", "replace")) > MAX_CONFIG_BYTES:
        raise _too_big(source)
    if fmt in (None, "json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if fmt == "json":
                raise InvalidInput(
                    f"{source}: invalid JSON: {exc.msg} at line {exc.lineno}"
                ) from None
        else:
            return _mapping(data, source)
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        kind = "YAML" if fmt == "yaml" else "JSON or YAML"
        raise InvalidInput(f"{source}: invalid {kind}: {problem}{where}") from None
    return _mapping(data, source)


def load_config_file(path: str) -> dict[str, Any]:
    if path == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:
            text = sys.stdin.read(MAX_CONFIG_BYTES + 1)
            return load_config_text(text, source="stdin")
        return load_config_text(_decode(_read_limited(stream, "stdin"), "stdin"), source="stdin")
    file = Path(path)
    source = f"config file {path!r}"
    try:
        size = file.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise _too_big(source, size)
        with file.open("rb") as handle:
            # A pipe or a device has no size to stat: read one byte past the limit at most.
            raw = _read_limited(handle, source)
    except FileNotFoundError:
        raise InvalidInput(f"{source} does not exist") from None
    except (IsADirectoryError, PermissionError, OSError) as exc:
        raise InvalidInput(f"{source} cannot be read: {exc.strerror or exc}") from None
    suffix = file.suffix.lower()
    fmt = "json" if suffix == ".json" else "yaml" if suffix in (".yaml", ".yml") else None
    return load_config_text(_decode(raw, source), source=source, fmt=fmt)


def _read_limited(stream: Any, source: str) -> bytes:
    raw: bytes = stream.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise _too_big(source)
    return raw


def _decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{source} is not UTF-8 text") from None


def _too_big(source: str, size: int | None = None) -> InvalidInput:
    limit = f"{MAX_CONFIG_BYTES // 2**20} MiB"
    if size is None:
        return InvalidInput(f"{source} is over the {limit} limit for a config")
    return InvalidInput(f"{source} is {size / 2**20:,.1f} MiB, over the {limit} limit for a config")


def _mapping(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        got = type(data).__name__
        raise InvalidInput(f"{source}: expected a mapping of settings, got {got}{_file_hint(data)}")
    return data


def _file_hint(data: Any) -> str:
    """For a config that is only the name of a file (`--config chain.json`): the option
    that reads it."""
    import os
    import shlex

    if not isinstance(data, str) or not data or not os.path.isfile(data):
        return ""
    return f" ({data!r} is a file: read it with --config-file {shlex.quote(data)})"
