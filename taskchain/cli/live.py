"""The one place that redraws a terminal: a polling thread feeds states, the main thread draws.

Polling happens in a daemon thread (it sleeps between reads of the store and waits out store
outages); the main thread wakes REFRESH_PER_SECOND times a second and redraws only when the
state changed or when something that moves with time alone (spinner, clocks) would look
different. Ctrl-C lands in the main thread, which leaves the last frame on screen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from rich.console import Console, RenderableType
from rich.live import Live

REFRESH_PER_SECOND = 8

State = TypeVar("State")
Result = TypeVar("Result")

#: draw(state, now, spinner frame, rows available) -> renderable; the final frame is drawn
#: with frame and rows None: no spinner, and every row (the terminal scrolls; it is the record).
Draw = Callable[[State, datetime, int | None, int | None], RenderableType]
#: key(state, now, frame) -> what the frame shows that moves with time alone
Key = Callable[[State, datetime, int], Hashable]


class _Feed(Generic[State, Result]):
    """The latest state from the polling thread, and how the polling ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: State | None = None
        self._version = 0
        self.done = threading.Event()
        self.result: Result | None = None
        self.error: BaseException | None = None

    def push(self, state: State) -> None:
        with self._lock:
            self._state = state
            self._version += 1

    def latest(self) -> tuple[int, State | None]:
        with self._lock:
            return self._version, self._state


def run(
    console: Console,
    poll: Callable[[Callable[[State], None]], Result],
    *,
    draw: Draw[State],
    key: Key[State],
) -> Result:
    """Run `poll(push)` in a thread and show every state it pushes; return what it returns
    (or raise what it raised) once it ends. The final frame stays on the terminal."""
    feed: _Feed[State, Result] = _Feed()

    def target() -> None:
        try:
            feed.result = poll(feed.push)
        except BaseException as exc:  # handed to the main thread, which raises it
            feed.error = exc
        finally:
            feed.done.set()

    threading.Thread(target=target, name="taskchain-watch", daemon=True).start()
    live = Live(
        console=console,
        auto_refresh=False,
        transient=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with live:
        frame = 0
        shown: Hashable = None
        while True:
            finished = feed.done.wait(1 / REFRESH_PER_SECOND)
            version, state = feed.latest()
            now = datetime.now(UTC)
            rows = max(console.size.height, 10)
            if state is not None and finished:
                live.update(draw(state, now, None, None), refresh=True)
            elif state is not None:
                current = (version, key(state, now, frame))
                if current != shown:
                    shown = current
                    live.update(draw(state, now, frame, rows), refresh=True)
            if finished:
                break
            frame += 1
    if feed.error is not None:
        raise feed.error
    return feed.result  # type: ignore[return-value]
