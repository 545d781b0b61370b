"""Importable test helpers: the suite's own services and fixtures (services.py, fixtures.py),
a real `taskchain worker` and CLI subprocesses (proc.py), the test-only chain type (chains.py,
loaded as a plug-in) and its helpers (probe.py: gates, the execution log), waiting on
conditions (waiting.py), pseudo-terminals (terminal.py), the load-test submitter."""
