"""Queue names, made in one place: TASKCHAIN_QUEUE_PREFIX + the family a chain type declares.

No Celery here, so that `info` and the read commands can name queues without importing it.
"""

from __future__ import annotations

from taskchain.settings import get_settings

#: Queue families: a chain type declares one; its queue is the prefix + the family.
FAMILIES = ("default", "math", "data", "io")
#: What the default family was called before taskchain had queues of its own.
LEGACY_DEFAULT = "celery"


def family_of(name: str, prefix: str | None = None) -> str | None:
    """The family a user names (`math`, the full `taskchain.math`, or the old `celery`),
    or None when it is none of taskchain's."""
    prefix = get_settings().queue_prefix if prefix is None else prefix
    if name == LEGACY_DEFAULT:
        return "default"
    if name in FAMILIES:
        return name
    if prefix and name.startswith(prefix) and name[len(prefix) :] in FAMILIES:
        return name[len(prefix) :]
    return None


def queue_name(family: str, prefix: str | None = None) -> str:
    """The broker queue of a family (the one place a queue name is made).

    The store records the family, which stays true when the prefix changes; a step recorded
    under the old default family `celery` goes to the default queue, never Celery's own.
    """
    prefix = get_settings().queue_prefix if prefix is None else prefix
    return prefix + ("default" if family == LEGACY_DEFAULT else family)


def queue_names(prefix: str | None = None) -> list[str]:
    return [queue_name(family, prefix) for family in FAMILIES]


def step_task_name(chain_type: str, step_name: str) -> str:
    """What Celery's tools show for a step (its `shadow` name): `math_chain.add`,
    `data_chain.clean`, `io_chain.copy`: the type and the first word of the step's name."""
    words = step_name.split()
    return f"{chain_type}.{words[0]}" if words else chain_type
