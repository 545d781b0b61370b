"""`celery -A taskchain ...`: taskchain's Celery app, for Celery's own tools (inspect, status,
events, Flower), built from the same TASKCHAIN_* settings as `taskchain worker`."""

from taskchain.engine.app import get_app

app = get_app()
