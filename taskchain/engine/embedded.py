"""Embedded mode: a Celery worker on the in-memory transport, inside the submitting process."""

from __future__ import annotations

import logging
import socket
import threading
import time
import warnings

from taskchain.engine.app import get_app
from taskchain.engine.queues import queue_names

_started: dict[int, threading.Thread] = {}
_lock = threading.Lock()


def ensure_worker() -> None:
    """Start (once per app) a solo-pool worker thread consuming every queue."""
    app = get_app()
    with _lock:
        if id(app) in _started and _started[id(app)].is_alive():
            return
        # Celery's worker logs at WARNING+ through the root logger; keep a quiet terminal.
        logging.getLogger("celery").setLevel(logging.ERROR)
        # The superuser warning is about a long-lived daemon; this worker lives for one command.
        warnings.filterwarnings("ignore", message=".*superuser privileges.*")
        worker = app.Worker(
            pool="solo",
            concurrency=1,
            queues=queue_names(),
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            redirect_stdouts=False,
            quiet=True,
            loglevel="ERROR",
            # Node name first, host after the @ (as Celery names workers): messages name both.
            hostname=f"embedded-{threading.get_native_id()}@{socket.gethostname()}",
        )
        ready = threading.Event()

        def on_ready(**_kw: object) -> None:
            ready.set()

        from celery.signals import worker_ready

        worker_ready.connect(on_ready, weak=False)
        thread = threading.Thread(target=worker.start, name="taskchain-embedded", daemon=True)
        thread.start()
        _started[id(app)] = thread
        deadline = time.monotonic() + 10
        while not ready.is_set() and thread.is_alive() and time.monotonic() < deadline:
            ready.wait(0.01)
        worker_ready.disconnect(on_ready)
