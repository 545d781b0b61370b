"""Pseudo-terminal helpers for the live-view tests, and a probe chain run in the background."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from tests.support import proc
from tests.support.probe import Gates
from tests.support.waiting import wait_until

SLOW = json.dumps({"steps": [{"sleep": 1.0}, {"sleep": 1.0}, {"sleep": 1.0}]})
CURSOR_BACK = re.compile(rb"\r\x1b\[2K(?:\x1b\[1A\x1b\[2K)+")  # Live going back to redraw
ESCAPE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
ROW = re.compile(r"^\s*(\d+)\s+probe \d+\s+default\s+(?:[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] )?([A-Z]+)\b", re.M)


def terminal_env(env: dict[str, str]) -> dict[str, str]:
    """What a person's terminal has: no CI, no NO_COLOR; a known size."""
    clean = {k: v for k, v in env.items() if k not in ("CI", "NO_COLOR", "FORCE_COLOR")}
    return {**clean, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40"}


class Terminal:
    """A command whose stdout and/or stderr is a pseudo-terminal; output read as it comes."""

    def __init__(self, args: list[str], env: dict[str, str], *, stdout_tty: bool = True) -> None:
        import fcntl
        import struct
        import termios

        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        self.proc = proc.spawn_taskchain(
            args, env, stdin=slave, stdout=slave if stdout_tty else subprocess.PIPE, stderr=slave
        )
        os.close(slave)
        self.master = master
        self.raw = bytearray()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every holder of the terminal's other side is gone
                return
            if not data:
                return
            self.raw.extend(data)

    def wait_for(self, pattern: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in self.text():
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not shown within {timeout}s:\n{self.text()}")
            time.sleep(0.05)

    def wait_until(
        self, predicate: Callable[[], object], message: str, timeout: float = 60
    ) -> None:
        wait_until(
            predicate, timeout=timeout, message=lambda: f"{message}; shown so far:\n{self.text()}"
        )

    def text(self) -> str:
        return ESCAPE.sub(b"", bytes(self.raw)).decode(errors="replace")

    def finish(self, timeout: float = 60) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.reader.join(timeout=5)
        os.close(self.master)
        return code

    def frames(self) -> list[str]:
        """Each redraw of the live view as plain text (colours and cursor moves removed)."""
        parts = CURSOR_BACK.split(bytes(self.raw))
        # errors="replace": the reader may have stopped in the middle of a character.
        return [
            ESCAPE.sub(b"", p).replace(b"\r\n", b"\n").decode(errors="replace").strip("\n")
            for p in parts
        ]


def step_states(frames: list[str]) -> list[tuple[str, ...]]:
    """The step statuses each frame shows, consecutive repeats dropped."""
    states: list[tuple[str, ...]] = []
    for frame in frames:
        state = tuple(status for _, status in ROW.findall(frame))
        if state and (not states or states[-1] != state):
            states.append(state)
    return states


def progressed(states: list[tuple[str, ...]], *expected: tuple[str, ...]) -> bool:
    """`expected` were shown in this order (maybe with states between), and no step ever went
    back from COMPLETED."""
    done = [state.count("COMPLETED") for state in states]
    remaining = iter(states)
    return done == sorted(done) and all(any(s == wanted for s in remaining) for wanted in expected)


def running(step: int, steps: int = 3) -> tuple[str, ...]:
    """The statuses shown while step `step` (1-based) runs and those before it are done."""
    return ("COMPLETED",) * (step - 1) + ("RUNNING",) + ("PENDING",) * (steps - step)


def drive(term: Terminal, gates: Gates, *, while_first: Callable[[], object] | None = None) -> None:
    """Open each gate once the live view has shown its step RUNNING (and, for the first step,
    once `while_first` holds): the view is seen in every state, however slow the machine."""
    steps = len(gates.names)
    for step in range(1, steps + 1):
        wanted = running(step, steps)

        def shown(wanted: tuple[str, ...] = wanted) -> bool:
            return wanted in step_states(term.frames())

        term.wait_until(shown, f"step {step} RUNNING")
        if step == 1 and while_first is not None:
            term.wait_until(while_first, "the view redrawn while step 1 runs")
        gates.open(step)


def spinners(frames: list[str]) -> set[str]:
    return set(re.findall(r"([⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]) RUNNING", "\n".join(frames)))


def running_submit(env: dict[str, str], config: str) -> tuple[subprocess.Popen[str], str]:
    """An embedded `taskchain submit -q` that runs its chain in the background; and its id."""
    runner = proc.spawn_taskchain(
        ["submit", "probe_chain", "--config", config, "-q"],
        env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert runner.stdout is not None
    chain_id = runner.stdout.readline().strip()
    assert len(chain_id) == 32, runner.communicate()
    return runner, chain_id
