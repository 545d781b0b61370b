"""Submit: validate, record, enqueue. Nothing is recorded for input that fails validation."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskchain.chains import get_type
from taskchain.engine import owner
from taskchain.engine.queues import step_task_name
from taskchain.errors import BrokerUnavailable, InvalidInput
from taskchain.settings import get_settings
from taskchain.store import ChainRecord, StepRecord, queries, session
from taskchain.store.db import transaction
from taskchain.store.models import utcnow
from taskchain.store.queries import Row

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
    chain, steps = _prepare(type_name, raw_config, description=description, chain_id=chain_id)
    return ChainRecord(**chain), [StepRecord(**step) for step in steps]


def _prepare(
    type_name: str, raw_config: Mapping[str, Any], *, description: str, chain_id: str | None
) -> tuple[Row, list[Row]]:
    """`prepare`, as plain rows: building a validated model object for the chain and each of
    its steps would cost more than inserting them (submit is a hot path)."""
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
    chain = queries.chain_row(
        chain_id=chain_id or new_id(),
        type=type_name,
        description=description,
        config=config.model_dump(mode="json"),
        step_count=len(plan),
        created_at=utcnow(),
        # What the chain was validated against: a worker elsewhere must see the same folder.
        workspace=str(workspace.resolve()),
        submit_host=socket.gethostname(),
    )
    steps = [
        queries.step_row(
            chain_id=chain["id"],
            index=i,
            name=step.name,
            queue=chain_type.queue,
            params=step.params,
            task_id=str(uuid.uuid4()),
            dispatched_at=chain["created_at"] if i == 0 else None,
        )
        for i, step in enumerate(plan)
    ]
    return chain, steps


@dataclass(frozen=True)
class Request:
    """One chain to submit; `where` names it in an error message (e.g. "line 3")."""

    type_name: str
    config: Mapping[str, Any]
    description: str = ""
    chain_id: str | None = None
    where: str = ""


class PartlyQueued(BrokerUnavailable):
    """The broker failed in the middle of a batch: `queued` reached it (and will run); the
    rest were removed from the store, as if never submitted."""

    def __init__(self, cause: BrokerUnavailable, queued: list[str], total: int) -> None:
        Exception.__init__(self, f"{cause} ({len(queued)} of {total} chains were queued)")
        self.message = str(self)
        self.queued = queued


def submit(
    type_name: str,
    raw_config: Mapping[str, Any],
    *,
    description: str = "",
    chain_id: str | None = None,
) -> Submitted:
    """Record a chain and send its first step. With `chain_id` the call is idempotent."""
    request = Request(type_name, raw_config, description=description, chain_id=chain_id)
    return submit_many([request])[0]


def submit_many(requests: Sequence[Request]) -> list[Submitted]:
    """Submit chains as one batch: every request is validated before anything is recorded
    (InvalidInput names the first bad one), the new chains are recorded in one transaction
    and their first steps published over one broker connection (embedded: queued to this
    process's runner, without loading Celery). A request whose `chain_id` exists already is
    returned as it is (idempotent, not re-run, not re-validated: a retried submit returns
    the chain it made even if its inputs have changed since)."""
    given = _check_ids(requests)
    existing = set()
    if given:
        with transaction() as conn:
            existing = queries.existing_ids(conn, given)
    prepared: dict[int, tuple[Row, list[Row]]] = {}
    for n, request in enumerate(requests):
        if request.chain_id in existing:
            continue
        try:
            prepared[n] = _prepare(
                request.type_name, request.config, description=request.description,
                chain_id=request.chain_id,
            )  # fmt: skip
        except InvalidInput as exc:
            raise InvalidInput(f"{request.where}: {exc}" if request.where else str(exc)) from exc
    embedded = get_settings().embedded
    if embedded:  # this process runs them: say so, so that its death can be seen (owner.py)
        for chain, _ in prepared.values():
            chain["runner"], chain["runner_lease_expires_at"] = owner.token(), owner.lease_until()
    with transaction(write=True) as conn:
        # Look again under the write lock: a twin submit may have recorded some meanwhile.
        raced = queries.existing_ids(conn, given) - existing if given else set()
        new = {n: cs for n, cs in prepared.items() if cs[0]["id"] not in raced}
        queries.insert_chains(conn, list(new.values()))
    if embedded and new:
        owner.hold()
    firsts = [
        (chain["id"], 0, steps[0]["queue"], steps[0]["task_id"], shadow_name(chain["type"], steps))
        for chain, steps in new.values()
    ]
    queued: list[str] = []
    try:
        if embedded:
            from taskchain.engine import embedded as local

            for chain_id, index, *_ in firsts:
                local.send(chain_id, index)
                queued.append(chain_id)
        else:
            from taskchain.engine import dispatch

            dispatch.start_many(firsts, sent=queued)
    except (BrokerUnavailable, KeyboardInterrupt) as exc:
        # Nothing half-done: a chain that never reached the broker leaves no record behind.
        unsent = [chain_id for chain_id, *_ in firsts if chain_id not in set(queued)]
        with session(write=True) as s:
            queries.delete_chains(session=s, chain_ids=unsent)
        if isinstance(exc, BrokerUnavailable) and queued:
            raise PartlyQueued(exc, queued, len(firsts)) from exc
        raise
    return [
        Submitted(new[n][0]["id"], created=True) if n in new else Submitted(r.chain_id or "", False)
        for n, r in enumerate(requests)
    ]


def _check_ids(requests: Sequence[Request]) -> list[str]:
    """The chain ids the requests give, each at most once."""
    seen: dict[str, str] = {}
    for request in requests:
        if request.chain_id is None:
            continue
        if request.chain_id in seen:
            first, again = seen[request.chain_id], request.where
            raise InvalidInput(f"{again}: id {request.chain_id!r} is used already by {first}")
        seen[request.chain_id] = request.where
    return list(seen)


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
    if chain.workflow_id is not None and chain.status.finished:
        # Alone, the job would run while the jobs that need it stay SKIPPED and the workflow
        # keeps its end: its workflow's retry runs it and what it holds up, in order. (An
        # orphaned job, still unfinished, goes on as any chain; its end advances the workflow.)
        raise InvalidInput(
            f"chain {chain_id} is job {chain.job!r} of workflow {chain.workflow_id}: retry the "
            f"workflow (taskchain retry {chain.workflow_id[:12]}), which runs its failed, "
            "cancelled and skipped jobs again"
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
        dispatch.start(
            chain_id, first, queue=queue, task_id=new_ids[first],
            shadow=step_task_name(view.chain.type, view.steps[first].name),
        )  # fmt: skip
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


def shadow_name(chain_type: str, steps: Sequence[Mapping[str, Any]]) -> str:
    """The name Celery's tools show for a chain's first step (`math_chain.add`)."""
    return step_task_name(chain_type, str(steps[0]["name"]))
