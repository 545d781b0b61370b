"""`info`: effective settings with secrets masked, and whether the broker and store answer."""

from __future__ import annotations

from typing import Any

from taskchain import __version__
from taskchain.errors import TaskchainError
from taskchain.settings import Settings, mask_url


def report(settings: Settings) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "version": __version__,
        "mode": settings.mode,
        "broker_url": mask_url(settings.broker_url) or None,
        "result_backend": _result_backend(settings),
        "database_url": mask_url(settings.store_url),
        "workspace": str(settings.workspace),
        "task_time_limit": settings.task_time_limit,
        "step_lease": settings.step_lease,
        "redispatch_after": settings.redispatch_after,
        "broker_timeout": settings.broker_timeout,
        "store_timeout": settings.store_timeout,
        "plugins": settings.plugins or None,
        "chain_types": _chain_types(),
        "queue_prefix": settings.queue_prefix,
        "queues": _queues(settings),
        "store": _store_state(),
    }
    if settings.embedded:
        facts["broker"] = "embedded (steps run inside the submitting process)"
        facts["workers"] = []
    else:
        facts["broker"], facts["workers"] = _broker_state(settings)
        if settings.uses_result_backend:
            facts["result_backend_state"] = _result_backend_state()
    return facts


def _chain_types() -> list[str]:
    """Every type a chain may have here: built-in, TASKCHAIN_PLUGINS and installed plug-ins
    (entry points); a plug-in that does not load is InvalidInput, one line."""
    from taskchain.chains import all_types

    return list(all_types())


def _queues(settings: Settings) -> list[str]:
    from taskchain.engine.queues import queue_names  # no Celery in there: `info` stays quick

    return queue_names(settings.queue_prefix)


def _result_backend(settings: Settings) -> str | None:
    if settings.result_backend is None:
        return None
    if settings.uses_result_backend:
        return mask_url(settings.result_backend)
    return f"{mask_url(settings.result_backend)} (unused in embedded mode)"


def _store_state() -> str:
    from taskchain.store import queries, session

    try:
        with session() as s:
            total = queries.stats(session=s).total
    except TaskchainError as exc:
        return f"unavailable: {exc}"
    return f"ok ({total} chains)"


def _result_backend_state() -> str:
    from taskchain.engine.app import get_app
    from taskchain.engine.worker import result_backend_problem

    problem = result_backend_problem(get_app())
    return "ok" if problem is None else f"unreachable: {problem}"


def _broker_state(settings: Settings) -> tuple[str, list[str]]:
    from taskchain.engine.app import get_app
    from taskchain.engine.control import ping

    app = get_app()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.broker_timeout)
    except Exception as exc:
        return f"unreachable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", []
    try:
        workers = ping(timeout=1.0)
    except Exception as exc:
        return f"ok (worker ping failed: {exc})", []
    return "ok", workers
