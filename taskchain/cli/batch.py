"""`submit --batch FILE|-`: many chains from JSON Lines, one chain per line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from taskchain.engine.submit import Request
from taskchain.errors import InvalidInput

FIELDS = ("type", "config", "description", "id")


def read_batch(path: str) -> list[Request]:
    """Every line of `path` ('-': stdin) as a Request, or InvalidInput naming the bad line."""
    source = "stdin" if path == "-" else f"batch file {path!r}"
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{source} does not exist") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{source} is not UTF-8 text") from None
    except OSError as exc:
        raise InvalidInput(f"{source} cannot be read: {exc.strerror or exc}") from None
    requests = [
        _request(line, where=f"line {n}")
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not requests:
        raise InvalidInput(f"{source} holds no chains (one JSON object per line)")
    return requests


def _request(line: str, *, where: str) -> Request:
    try:
        data: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where}: invalid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
    type_name, config = data.get("type"), data.get("config", {})
    description, chain_id = data.get("description", ""), data.get("id")
    if not isinstance(type_name, str):
        raise InvalidInput(f"{where}: 'type' must be a chain type name")
    if not isinstance(config, dict):
        raise InvalidInput(f"{where}: 'config' must be a JSON object")
    if not isinstance(description, str):
        raise InvalidInput(f"{where}: 'description' must be a string")
    if chain_id is not None and not isinstance(chain_id, str):
        raise InvalidInput(f"{where}: 'id' must be a string")
    return Request(type_name, config, description=description, chain_id=chain_id, where=where)


def wait_all(chains: dict[str, bool], *, timeout: float | None, quiet: bool) -> int:
    """Wait for every chain (id -> whether this process runs it); 0 when all COMPLETED,
    else 1 (each chain that did not complete says so on stderr)."""
    from taskchain.cli import output
    from taskchain.cli.follow import follow_chain

    deadline = None if timeout is None else time.monotonic() + timeout
    codes = []
    for chain_id, owner in chains.items():
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        code = follow_chain(chain_id, timeout=left, show=False, json_lines=False, owner=owner)
        codes.append(code)
    if not quiet:
        output.say(f"{codes.count(0)} of {len(codes)} chains completed")
    return 0 if all(code == 0 for code in codes) else 1
