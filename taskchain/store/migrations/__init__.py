"""Alembic's side of the schema: `env.py` and one revision per schema change in `versions/`.

Only `taskchain.store.schema` calls this, and only when a store is behind: importing
Alembic costs more than a read command may pay, so nothing else imports it.

A new revision: copy the last file in `versions/`, give it the next number as `revision`
and the previous one as `down_revision`, write its `upgrade()` with `op.*` (SQLite gets
batch mode), and append the number to `schema.REVISIONS` (a test checks the two agree).
A fresh store is made from the models with `create_all` and stamped at the head, so the
models and the revisions must describe the same tables (a test compares them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def config(connection: Any = None) -> Any:
    """Alembic's configuration, in code: no alembic.ini to ship or find."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Any, target: str = "head") -> None:
    """Run the revisions after the stamped one, inside the caller's transaction."""
    from alembic import command

    command.upgrade(config(connection), target)


def script_revisions() -> list[str]:
    """Every revision in `versions/`, oldest first (for the test that checks `REVISIONS`)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(config())
    return [s.revision for s in reversed(list(scripts.walk_revisions()))]
