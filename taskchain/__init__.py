"""taskchain: run chains of jobs from a terminal or a CI script."""

__version__ = "0.1.0"
