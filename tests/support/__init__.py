"""Importable test helpers: services, a real `taskchain worker` process, CLI subprocesses."""
