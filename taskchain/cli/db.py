"""`taskchain db`: the store's schema version and its in-place upgrade."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from taskchain.cli import output
from taskchain.settings import get_settings, mask_url


def _engine_call(call: Any) -> Any:
    """Run `call(engine, url)` on a fresh engine whose schema is not checked first."""
    from taskchain.store import db

    url = get_settings().store_url
    engine = db.unchecked_engine()
    try:
        return db._unavailable_as_exit_4(url, lambda: call(engine, url))
    finally:
        engine.dispose()


def current(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Print the store's schema revision and whether it is this taskchain's head.

    Reads only: an outdated store is not upgraded, an empty one not created. Exit 0 whatever
    the revision; the `status` field says current, outdated, empty or newer.

    Example: taskchain db current --json
    """
    from taskchain.store import schema

    state = _engine_call(lambda engine, _url: schema.state(engine))
    if as_json:
        output.emit_json(
            {
                "store": mask_url(get_settings().store_url),
                "revision": state.revision,
                "head": schema.HEAD,
                "status": state.status,
                "stamped": state.stamped,
            }
        )
        return
    notes = {
        "current": "(head)",
        "outdated": f"(head is {schema.HEAD}: run `taskchain db upgrade`)",
        "empty": f"(empty store; created at {schema.HEAD} on first use)",
        "newer": f"(newer than this taskchain, which knows up to {schema.HEAD})",
    }
    output.out().print(f"{state.revision or 'none'} {notes[state.status]}", markup=False)


def upgrade(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Upgrade the store's schema in place to this taskchain's head (or create it).

    Safe to run on every deploy and from several machines at once: upgrades are serialised
    and the second finds nothing to do. A store from a newer taskchain is refused (exit 4)
    and left untouched.

    Example: taskchain db upgrade
    """
    from taskchain.store import schema

    before, after = _engine_call(schema.migrate)
    if as_json:
        output.emit_json(
            {"store": mask_url(get_settings().store_url), "before": before, "after": after}
        )
    elif before is None:
        output.say(f"created the store at schema {after}")
    elif before == after:
        output.say(f"store already at schema {after}; nothing to do")
    else:
        output.say(f"upgraded the store from schema {before} to {after}")


def register(app: typer.Typer) -> None:
    from taskchain.cli import _Group, _Typer

    group = _Typer(
        cls=_Group,
        name="db",
        help="Show or upgrade the store's schema version.\n\n"
        "Examples: taskchain db current; taskchain db upgrade",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    group.command("current")(current)
    group.command("upgrade")(upgrade)
    app.add_typer(group, name="db")
