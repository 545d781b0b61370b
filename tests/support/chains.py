"""A chain type for tests only (loaded with TASKCHAIN_PLUGINS=tests.support.chains).

`probe_chain` steps sleep, fail, raise, return non-JSON, or log each execution, on demand.
Each step's result is the previous result + 1, so a chain of n steps ends with n.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskchain.chains import register
from taskchain.chains.base import ChainType, StepContext, StepPlan
from taskchain.errors import StepError

LOG = "executions.log"


class ProbeStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sleep: float = Field(default=0.0, ge=0)
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


def executions(workspace: Any) -> list[tuple[str, int]]:
    path = workspace / LOG
    if not path.exists():
        return []
    return [(c, int(i)) for c, i, _ in (line.split() for line in path.read_text().splitlines())]
