"""Submit: validate, record, enqueue. Nothing is recorded for input that fails validation."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskchain.chains import get_type
from taskchain.engine import owner
from taskchain.errors import BrokerUnavailable, InvalidInput
from taskchain.settings import get_settings
from taskchain.store import ChainRecord, StepRecord, queries, session

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Submitted:
    chain_id: str
    created: bool  # False when --id named a chain that already exists


def new_id() -> str:
    return uuid.uuid4().hex


def prepare(
    type_name: str,
    raw_config: Mapping[str, Any],
    *,
    description: str = "",
    chain_id: str | None = None,
) -> tuple[ChainRecord, list[StepRecord]]:
    """Validated records for a new chain (not yet stored); InvalidInput for any bad input."""
    chain_type = get_type(type_name)
    config = chain_type.parse(raw_config)
    workspace = get_settings().workspace
    chain_type.check(config, workspace)
    plan = chain_type.plan(config)
    if not plan:
        raise InvalidInput(f"{type_name}: the config gives no steps to run")
    if chain_id is not None and not _ID.fullmatch(chain_id):
        raise InvalidInput(
            f"--id {chain_id!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    chain = ChainRecord(
        id=chain_id or new_id(),
        type=type_name,
        description=description,
        config=config.model_dump(mode="json"),
        step_count=len(plan),
        # What the chain was validated against: a worker elsewhere must see the same folder.
        workspace=str(workspace.resolve()),
        submit_host=socket.gethostname(),
    )
    steps = [
        StepRecord(
            chain_id=chain.id,
            index=i,
            name=step.name,
            queue=chain_type.queue,
            params=step.params,
            task_id=str(uuid.uuid4()),
            dispatched_at=chain.created_at if i == 0 else None,
        )
        for i, step in enumerate(plan)
    ]
    return chain, steps


def submit(
    type_name: str,
    raw_config: Mapping[str, Any],
    *,
    description: str = "",
    chain_id: str | None = None,
) -> Submitted:
    """Record a chain and send its first step. With `chain_id` the call is idempotent."""
    from taskchain.engine import dispatch

    if chain_id is not None:
        # A retried submit returns the chain it made, even if its inputs have changed since.
        with session() as s:
            if s.get(ChainRecord, chain_id) is not None:
                return Submitted(chain_id, created=False)
    chain, steps = prepare(type_name, raw_config, description=description, chain_id=chain_id)
    embedded = get_settings().embedded
    if embedded:  # this process runs it: say so, so that its death can be seen (owner.py)
        chain.runner, chain.runner_lease_expires_at = owner.token(), owner.lease_until()
    with session(write=True) as s:
        if chain_id is not None and s.get(ChainRecord, chain_id) is not None:
            return Submitted(chain_id, created=False)  # lost a race with a twin submit
        queries.insert_chain(session=s, chain=chain, steps=steps)
    if embedded:
        owner.hold()
    try:
        dispatch.start(chain.id, 0, queue=steps[0].queue, task_id=steps[0].task_id)
    except (BrokerUnavailable, KeyboardInterrupt):
        # Nothing half-done: a chain that never reached the broker leaves no record behind.
        with session(write=True) as s:
            queries.delete_chains(session=s, chain_ids=[chain.id])
        raise
    return Submitted(chain.id, created=True)


def retry(chain_id: str) -> int:
    """Run a FAILED, CANCELLED or orphaned chain again from its first unfinished step;
    return its index. Completed steps keep their results; the chain's `attempt` counts runs.
    """
    from taskchain.engine import dispatch
    from taskchain.store import Status, transitions

    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain_id)
    chain = view.chain
    if chain.status not in (Status.FAILED, Status.CANCELLED) and not queries.is_orphaned(chain):
        raise InvalidInput(
            f"chain {chain_id} is {chain.status.value}: only FAILED, CANCELLED or orphaned "
            "chains can be retried"
        )
    settings = get_settings()
    if settings.embedded:
        # This process will run the steps: refuse now rather than record a failed attempt.
        mismatch = workspace_mismatch(chain, settings.workspace, who="this process")
        if mismatch:
            raise InvalidInput(mismatch)
    unfinished = [s.index for s in view.steps if s.status != Status.COMPLETED]
    new_ids = {index: str(uuid.uuid4()) for index in unfinished}
    runner = owner.token() if settings.embedded else None
    with session(write=True) as s:
        first = transitions.reopen_chain(
            session=s, chain_id=chain_id, new_task_ids=new_ids, runner=runner,
            runner_lease_until=owner.lease_until() if runner else None,
        )  # fmt: skip
    if first is None:
        raise InvalidInput(f"chain {chain_id} changed while being retried; look again")
    if runner:
        owner.hold()
    queue = view.steps[first].queue
    try:
        dispatch.start(chain_id, first, queue=queue, task_id=new_ids[first])
    except BrokerUnavailable as exc:
        with session(write=True) as s:
            transitions.fail_step(
                session=s, chain_id=chain_id, index=first, error=f"retry not queued: {exc}"
            )
        raise
    return first


def workspace_mismatch(chain: ChainRecord, workspace: Path, *, who: str) -> str | None:
    """The one-line reason `who` may not run `chain`'s steps, or None when the workspaces
    agree (or the chain predates the rule). Every chain type is held to it: the rule stays
    simple, and a plug-in type's steps may use paths that taskchain cannot see."""
    if chain.workspace is None:
        return None
    mine = workspace.resolve()
    if mine == Path(chain.workspace):
        return None
    host = chain.submit_host or "?"
    return (
        f"workspace mismatch: {who} uses {mine}, the chain was submitted against "
        f"{chain.workspace} on host {host}; set TASKCHAIN_WORKSPACE the same on both"
    )
