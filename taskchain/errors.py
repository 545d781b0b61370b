"""One exception hierarchy; the CLI turns each into a one-line message and an exit code."""

from __future__ import annotations


class TaskchainError(Exception):
    """Base of every error a user may see. `exit_code` follows the contract's table."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(TaskchainError):
    """Bad usage or invalid input, rejected before anything is recorded or enqueued."""

    exit_code = 2


class ChainNotFound(TaskchainError):
    exit_code = 3

    def __init__(self, ref: str) -> None:
        super().__init__(f"no chain matches id {ref!r}")
        self.ref = ref


class AmbiguousId(TaskchainError):
    exit_code = 3

    def __init__(self, ref: str, matches: list[str]) -> None:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        super().__init__(f"id prefix {ref!r} is ambiguous: it matches {shown}")
        self.ref = ref
        self.matches = matches


class Unavailable(TaskchainError):
    """The broker or the store cannot be reached (or stays locked)."""

    exit_code = 4


class BrokerUnavailable(Unavailable):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"broker {url} is unreachable: {reason}")
        self.url = url


class StoreUnavailable(Unavailable):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"store {url} is unavailable: {reason}")
        self.url = url


class TimedOut(TaskchainError):
    exit_code = 124

    def __init__(self, chain_id: str, seconds: float) -> None:
        super().__init__(f"chain {chain_id} did not finish within {seconds:g}s; it goes on")
        self.chain_id = chain_id


class StepError(Exception):
    """Raised by a chain type's step: the step fails with this message (no traceback)."""
