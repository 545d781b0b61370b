"""Helpers around the test-only `probe_chain` (tests/support/chains.py) that do not register
it: the log of executions, gates that hold steps until the test opens them, and the reset of
the chain-type registry to the built-in types that every test starts from."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

LOG = "executions.log"
#: How long a gated step waits for its gate before it fails (a test that forgot to open it).
GATE_PATIENCE = 300.0


def executions(workspace: Path) -> list[tuple[str, int]]:
    """(chain id, step index) of every step computation that finished, in order."""
    path = workspace / LOG
    if not path.exists():
        return []
    return [(c, int(i)) for c, i, _ in (line.split() for line in path.read_text().splitlines())]


class Gates:
    """A probe chain whose steps each wait for a gate: step n runs until the test calls
    `open(n)`. The test decides when a step ends, so what a watcher sees does not depend on
    how fast a busy machine is."""

    def __init__(self, workspace: Path, steps: int = 3, **step: Any) -> None:
        self.workspace = workspace
        self.names = [f"gate-{uuid.uuid4().hex[:8]}-{n + 1}" for n in range(steps)]
        self.steps = [{"wait_for": name, **step} for name in self.names]

    @property
    def config(self) -> str:
        return json.dumps({"steps": self.steps})

    def open(self, step: int) -> None:
        """Let step `step` (1-based) finish."""
        (self.workspace / self.names[step - 1]).touch()

    def open_all(self) -> None:
        for n in range(len(self.names)):
            self.open(n + 1)


def reset_chain_types() -> None:
    """Leave only the built-in chain types registered: a plug-in a test loaded (in this
    process, e.g. with --plugins) is unregistered, and its module forgotten so that the next
    test that loads it registers it again. Uses the registry's private state on purpose: the
    package has no unregister, and tests should not make it grow one."""
    from taskchain import chains

    chains.all_types(plugins=False)  # the built-in types, loaded once
    plugins = {
        name: cls
        for name, cls in chains._registry.items()
        if not cls.__module__.startswith("taskchain.chains.")
    }
    for name, cls in plugins.items():
        del chains._registry[name]
        sys.modules.pop(cls.__module__, None)
    for module in chains._plugins_loaded:
        sys.modules.pop(module, None)
    chains._plugins_loaded.clear()
