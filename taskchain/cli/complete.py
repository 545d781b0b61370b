"""Shell completion: chain ids from the store, chain types from the registry, statuses.

The shell runs `taskchain` with `_TASKCHAIN_COMPLETE=complete_bash` (zsh, fish, ...) at every
TAB: these callbacks must answer fast and never fail loudly. Whatever goes wrong (no store yet,
the store unreachable, a bad setting), they offer nothing rather than print a traceback into
the user's prompt. They import the store only when called, so `--help` and `--version` pay
nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: Ids offered at most: the newest chains whose id starts with what was typed.
MAX_IDS = 50
#: Seconds a TAB may wait for a locked or remote store before it offers nothing.
STORE_TIMEOUT = 2.0

Suggestions = list[tuple[str, str]]  # (value, help shown by zsh and fish)
_SETTINGS = ("broker_url", "result_backend", "database_url", "workspace", "store_timeout",
             "plugins")  # fmt: skip


def chain_ids(ctx: Any, incomplete: str) -> Suggestions:
    """The newest chains whose id starts with `incomplete`, with their type and status."""
    try:
        return _chain_ids(ctx, incomplete)
    except Exception:  # anything at all: a completion offers nothing, it never fails
        return []


def chain_types(ctx: Any, incomplete: str) -> Suggestions:
    """Registered chain types, plug-ins too (TASKCHAIN_PLUGINS and installed packages' entry
    points) when they load."""
    from taskchain.chains import all_types

    try:
        _configure(ctx)
        types = all_types()
    except Exception:  # a plug-in that does not import: the built-in types still complete
        types = all_types(plugins=False)
    return [(name, kind.summary) for name, kind in types.items() if name.startswith(incomplete)]


def statuses(ctx: Any, incomplete: str) -> Suggestions:
    """Chain statuses, in the case typed (`--status failed` works as well as FAILED); SKIPPED
    too, which a workflow's job gets when a job it needs failed."""
    from taskchain.store.models import Status

    lower = incomplete.islower()
    found = [s.value.lower() if lower else s.value for s in Status]
    return [(s, "") for s in found if s.upper().startswith(incomplete.upper())]


def _chain_ids(ctx: Any, incomplete: str) -> Suggestions:
    _configure(ctx)
    from sqlalchemy.engine import make_url
    from sqlmodel import col, select

    from taskchain.settings import get_settings
    from taskchain.store import ChainRecord, Status, session

    url = make_url(get_settings().store_url)
    if url.get_backend_name() == "sqlite":
        from pathlib import Path

        if not url.database or not Path(url.database).expanduser().is_file():
            return []  # no store yet: a TAB must not create one
    pattern = incomplete.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    query = (
        select(ChainRecord.id, ChainRecord.type, ChainRecord.status, ChainRecord.created_at)
        .where(col(ChainRecord.id).like(pattern, escape="\\"))
        .order_by(col(ChainRecord.created_at).desc())
        .limit(MAX_IDS)
    )
    with session() as s:
        rows = s.exec(query).all()
    return [
        (chain_id, f"{kind} {Status(status).value} {created:%Y-%m-%d %H:%M}")
        for chain_id, kind, status, created in rows
    ]


def _configure(ctx: Any) -> None:
    """The global options typed before the command (`--database-url ...`): the group's own
    callback, which applies them, does not run while the shell completes a word."""
    from taskchain import settings

    root = ctx.find_root() if ctx is not None else None
    given = {k: v for k, v in (root.params if root else {}).items() if k in _SETTINGS}
    timeout = min(given.get("store_timeout") or STORE_TIMEOUT, STORE_TIMEOUT)
    settings.configure(**{**given, "store_timeout": timeout})


def _hook(source: Callable[[Any, str], Suggestions]) -> Callable[[Any, Any, str], list[Any]]:
    def shell_complete(ctx: Any, param: Any, incomplete: str) -> list[Any]:
        from typer._click.shell_completion import CompletionItem

        typed = ctx.params.get(param.name) if ctx is not None else None
        given = set(typed) if isinstance(typed, list | tuple) else set()  # `delete a b <TAB>`
        return [
            CompletionItem(value, help=help or None)
            for value, help in source(ctx, incomplete)
            if value not in given
        ]

    return shell_complete


def source_for(param: Any) -> Callable[[Any, str], Suggestions] | None:
    """What a parameter completes from, by what it is: an ID argument (chain ids), the TYPE
    argument or a --type option (chain types), a --status option (statuses)."""
    opts = set(getattr(param, "opts", ()))
    if param.param_type_name == "argument":
        return {"ID": chain_ids, "ID...": chain_ids, "TYPE": chain_types}.get(param.metavar)
    if "--type" in opts:
        return chain_types
    if "--status" in opts:
        return statuses
    return None


def attach(params: Sequence[Any]) -> None:
    """Give every parameter of a command its completion, unless it brought its own: one rule
    for every command, so that a new command's ID argument completes without being told."""
    for param in params:
        source = source_for(param)
        if source is not None and param._custom_shell_complete is None:
            param._custom_shell_complete = _hook(source)
