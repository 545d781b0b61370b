"""A chain type for tests only (loaded with TASKCHAIN_PLUGINS=tests.support.chains).

`probe_chain` steps sleep, wait for a gate (a file the test creates), fail, raise, return
non-JSON, or log each execution, on demand. Each step's result is the previous result + 1, so
a chain of n steps ends with n.

Importing this module registers the type: import it only in a subprocess (through
TASKCHAIN_PLUGINS) or in a test (the `probe_chain` fixture); the helpers tests need without the
type live in tests/support/probe.py. The autouse `chain_types` fixture unregisters it after
every test.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskchain.chains import register
from taskchain.chains.base import ChainType, StepContext, StepPlan
from taskchain.errors import StepError
from tests.support.probe import GATE_PATIENCE, LOG, executions

__all__ = ["LOG", "ProbeChain", "executions"]


class ProbeStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sleep: float = Field(default=0.0, ge=0)
    wait_for: str | None = None  # a file name in the workspace: the step waits until it exists
    fail: str | None = None
    crash: bool = False
    non_json: bool = False


class ProbeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[ProbeStep] = Field(min_length=1)


@register
class ProbeChain(ChainType):
    name = "probe_chain"
    queue = "celery"
    summary = "test-only steps that sleep, fail or misbehave on demand"
    Config = ProbeConfig

    @classmethod
    def plan(cls, config: Any) -> list[StepPlan]:
        return [
            StepPlan(name=f"probe {i + 1}", params=step.model_dump())
            for i, step in enumerate(config.steps)
        ]

    @classmethod
    def run_step(cls, config: Any, step: StepPlan, previous: Any, ctx: StepContext) -> Any:
        params = step.params
        if params["wait_for"]:
            gate = ctx.workspace / params["wait_for"]
            give_up = time.monotonic() + GATE_PATIENCE
            while not gate.exists():
                if time.monotonic() > give_up:
                    raise StepError(f"gate {params['wait_for']} not opened in {GATE_PATIENCE}s")
                time.sleep(0.02)
        deadline = time.monotonic() + params["sleep"]
        while time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        if params["fail"]:
            raise StepError(params["fail"])
        if params["crash"]:
            raise RuntimeError("probe crashed on purpose")
        if params["non_json"]:
            return {1, 2, 3}
        # One line per finished computation: tests count how often a step really ran.
        with open(ctx.workspace / LOG, "a") as log:
            log.write(f"{ctx.chain_id} {ctx.index} {os.getpid()}\n")
        return (previous or 0) + 1
