"""Another Celery application, as a neighbour on a shared broker would run it: Celery's
defaults, so its tasks go to the queue named `celery`. Its broker is OTHER_BROKER_URL and its
result backend OTHER_RESULT_BACKEND.

    celery -A tests.support.other_app worker
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery(
    "other",
    broker=os.environ["OTHER_BROKER_URL"],
    backend=os.environ.get("OTHER_RESULT_BACKEND"),
)
app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


@app.task(name="other.echo")
def echo(value: str) -> str:
    return f"other app got {value}"
