"""Celery app, the step task, submit/cancel, the embedded worker, and waiting on the store.

Importing this package is cheap; Celery is imported by the modules that need it.
"""
