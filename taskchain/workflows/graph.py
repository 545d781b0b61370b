"""The jobs of a workflow as a graph: `needs` checked, cycles named, the fan-in rule.

Pure functions of job names and statuses: the engine calls `Graph.advance` with the statuses
it read, in the transaction that records a job's end, and applies the answer. The answer
depends only on the statuses, never on which event arrived, so calling it twice, late, or
from the recovery sweep gives the same decisions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from taskchain.errors import InvalidInput

# The store's status names (taskchain.store.models.Status is a StrEnum of the same text),
# spelled here so that this module imports no store.
PENDING, RUNNING, COMPLETED = "PENDING", "RUNNING", "COMPLETED"
FAILED, CANCELLED, SKIPPED = "FAILED", "CANCELLED", "SKIPPED"
#: A job in one of these stops the jobs that need it.
BLOCKING = frozenset({FAILED, CANCELLED, SKIPPED})
FINISHED = frozenset({COMPLETED, FAILED, CANCELLED, SKIPPED})
_VERB = {FAILED: "failed", CANCELLED: "was cancelled", SKIPPED: "was skipped"}


class GraphError(InvalidInput):
    """A bad `needs`: `job` names the job at fault (None for a cycle, which names them all)."""

    def __init__(self, message: str, *, job: str | None = None) -> None:
        super().__init__(message)
        self.job = job


@dataclass(frozen=True)
class Advance:
    """What the fan-in rule decides: jobs to start now, and jobs to skip with the reason."""

    start: tuple[str, ...] = ()
    skip: dict[str, str] = field(default_factory=dict)


class Graph:
    """Jobs in file order and what each needs. Raises GraphError for a need naming no job
    and for a cycle."""

    def __init__(self, needs: Mapping[str, Sequence[str]]) -> None:
        self.jobs: tuple[str, ...] = tuple(needs)
        # Listing a need twice means nothing more than once.
        self.needs: dict[str, tuple[str, ...]] = {j: tuple(dict.fromkeys(needs[j])) for j in needs}
        for job, wanted in self.needs.items():
            for need in wanted:
                if need not in self.needs:
                    known = ", ".join(self.jobs)
                    raise GraphError(f"needs: no job is named {need!r} (jobs: {known})", job=job)
        cycle = _find_cycle(self.jobs, self.needs)
        if cycle:
            raise GraphError(f"jobs {' -> '.join(cycle)} form a cycle")
        self.dependents: dict[str, tuple[str, ...]] = {
            job: tuple(j for j in self.jobs if job in self.needs[j]) for job in self.jobs
        }
        self.order: tuple[str, ...] = _topological(self.jobs, self.needs)

    def upstream(self, job: str) -> set[str]:
        """Every job `job` waits for, directly or through others."""
        return _reach(job, self.needs)

    def downstream(self, job: str) -> set[str]:
        """Every job that waits for `job`: those a failure of `job` skips."""
        return _reach(job, self.dependents)

    def roots(self) -> tuple[str, ...]:
        return tuple(j for j in self.order if not self.needs[j])

    def ready(self, completed: Collection[str], started: Collection[str]) -> list[str]:
        """Jobs not yet started whose needs have all COMPLETED, in topological order."""
        waiting = [j for j in self.order if j not in started and j not in completed]
        return [j for j in waiting if all(n in completed for n in self.needs[j])]

    def advance(self, states: Mapping[str, str]) -> Advance:
        """The fan-in rule. A PENDING job (or one absent from `states`) starts when all its
        needs COMPLETED, and is SKIPPED when any of them FAILED, was CANCELLED or SKIPPED
        (transitively, in this one call); else it waits."""
        now = {job: str(states.get(job, PENDING)) for job in self.jobs}
        start: list[str] = []
        skip: dict[str, str] = {}
        for job in self.order:
            if now[job] != PENDING:
                continue
            blocked = [n for n in self.needs[job] if now[n] in BLOCKING]
            if blocked:
                skip[job] = self._reason(blocked[0], now)
                now[job] = SKIPPED
            elif all(now[n] == COMPLETED for n in self.needs[job]):
                start.append(job)
        return Advance(start=tuple(start), skip=skip)

    def _reason(self, need: str, now: Mapping[str, str]) -> str:
        """`job 'clean' failed`, or with the need it came through when the cause is further up."""
        root = need
        while now[root] == SKIPPED:
            upper = [n for n in self.needs[root] if now[n] in BLOCKING]
            if not upper:  # skipped for a reason of its own (a cancelled workflow)
                break
            root = upper[0]
        reason = f"job {root!r} {_VERB[now[root]]}"
        return reason if root == need else f"{reason} (needed through {need!r})"

    def to_retry(self, states: Mapping[str, str]) -> set[str]:
        """The jobs `retry` runs again: those FAILED, CANCELLED or SKIPPED; COMPLETED jobs
        keep their outputs."""
        return {j for j in self.jobs if str(states.get(j, PENDING)) in BLOCKING}


def workflow_status(states: Iterable[str]) -> str:
    """A workflow's status from its jobs': RUNNING until every job has finished (PENDING
    while none has begun), then COMPLETED if all completed, FAILED if any failed, else
    CANCELLED. A skipped job always has a failed or cancelled job upstream."""
    seen = [str(s) for s in states]
    if not all(s in FINISHED for s in seen):
        return PENDING if all(s == PENDING for s in seen) else RUNNING
    if all(s == COMPLETED for s in seen):
        return COMPLETED
    return FAILED if FAILED in seen else CANCELLED


def _reach(start: str, edges: Mapping[str, Sequence[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(edges[start])
    while todo:
        job = todo.pop()
        if job not in seen:
            seen.add(job)
            todo.extend(edges[job])
    return seen


def _topological(jobs: Sequence[str], needs: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """Kahn's order; among jobs ready together, file order, so that it reads like the file."""
    waiting = {job: len(needs[job]) for job in jobs}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(jobs):
        for job in jobs:  # O(n^2) on a few hundred jobs at most: simplest stable choice
            if job not in done and waiting[job] == 0:
                order.append(job)
                done.add(job)
                for other in jobs:
                    if job in needs[other]:
                        waiting[other] -= 1
                break
    return tuple(order)


def _find_cycle(jobs: Sequence[str], needs: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One cycle as `[a, b, a]` (a needs b, b needs a), found by depth-first search in file
    order; None when there is none. Iterative: a long chain of needs must not hit the
    recursion limit."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for first in jobs:
        if first in state:
            continue
        path: list[str] = [first]
        state[first] = 1
        pending: list[list[str]] = [list(needs[first])[::-1]]
        while path:
            if not pending[-1]:
                state[path.pop()] = 2
                pending.pop()
                continue
            nxt = pending[-1].pop()
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                pending.append(list(needs[nxt])[::-1])
    return None
