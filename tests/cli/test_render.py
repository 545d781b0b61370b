"""The pure renderers at a fixed width, without colour: exact text of live frames and lines."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console, RenderableType

from taskchain.cli import lines as plain
from taskchain.cli import render
from taskchain.store import ChainRecord, Status, StepRecord
from taskchain.store.queries import ChainView

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ID = "0123456789abcdef0123456789abcdef"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(
    index: int,
    status: Status,
    *,
    attempts: int = 1,
    start: float | None = None,
    end: float | None = None,
    **fields: Any,
) -> StepRecord:
    return StepRecord(
        chain_id=ID, index=index, name=fields.pop("name", f"add {index + 2}"), queue="math",
        status=status, task_id=f"t{index}", attempts=attempts,
        started_at=None if start is None else at(start),
        finished_at=None if end is None else at(end), **fields,
    )  # fmt: skip


def chain(status: Status, **fields: Any) -> ChainRecord:
    defaults: dict[str, Any] = {
        "id": ID, "type": "math_chain", "description": "nightly sums", "status": status,
        "config": {}, "created_at": T0, "started_at": at(1), "step_count": 4,
    }  # fmt: skip
    return ChainRecord(**{**defaults, **fields})


def running() -> ChainView:
    return ChainView(
        chain(Status.RUNNING),
        [
            step(0, Status.COMPLETED, start=1, end=1.5, result=3),
            step(1, Status.COMPLETED, attempts=2, start=1.5, end=2.25, result=6),
            step(2, Status.RUNNING, start=2.25, progress="half way"),
            step(3, Status.PENDING, attempts=0),
        ],
    )


def failed() -> ChainView:
    return ChainView(
        chain(
            Status.FAILED,
            finished_at=at(2.5),
            error="step 2 (divide 0) failed: division by zero (3 // 0)",
        ),
        [
            step(0, Status.COMPLETED, start=1, end=1.5, result=3, name="divide 1"),
            step(
                1,
                Status.FAILED,
                start=1.5,
                end=2.5,
                name="divide 0",
                error="division by zero (3 // 0)",
            ),
            step(2, Status.SKIPPED, attempts=0, name="divide 4"),
            step(3, Status.SKIPPED, attempts=0, name="divide 5"),
        ],
    )


def lines(renderable: RenderableType, width: int = 100) -> list[str]:
    console = Console(width=width, no_color=True, record=True, file=io.StringIO())
    console.print(renderable)
    return [line.rstrip() for line in console.export_text().splitlines()]


def test_live_frame_of_a_running_chain() -> None:
    assert lines(render.live_view(running(), now=at(3), frame=2)) == [
        "chain 0123456789abcdef0123456789abcdef  math_chain  RUNNING",
        "nightly sums",
        "━━━━━━━━━━━━────────────  2/4 steps  elapsed 2.00s",
        "",
        "#   step    queue   status      tries   started     time   result / error",
        "─────────────────────────────────────────────────────────────────────────",
        "1   add 2   math    COMPLETED       1   12:00:01   0.50s   3",
        "2   add 3   math    COMPLETED       2   12:00:01   0.75s   6",
        "3   add 4   math    ⠹ RUNNING       1   12:00:02   0.75s   half way",
        "4   add 5   math    PENDING         0",
    ]


def test_the_spinner_turns_and_the_clocks_run() -> None:
    first = lines(render.live_view(running(), now=at(3), frame=0))
    later = lines(render.live_view(running(), now=at(14), frame=1))
    assert first[8] == "3   add 4   math    ⠋ RUNNING       1   12:00:02   0.75s   half way"
    assert later[8] == "3   add 4   math    ⠙ RUNNING       1   12:00:02   11.8s   half way"
    assert later[2] == "━━━━━━━━━━━━────────────  2/4 steps  elapsed 13.0s"


def test_final_frame_of_a_failed_chain() -> None:
    assert lines(render.live_view(failed(), now=at(99))) == [
        "chain 0123456789abcdef0123456789abcdef  math_chain  FAILED",
        "nightly sums",
        "━━━━━━━━━━━━────────────  2/4 steps  elapsed 1.50s",
        "",
        "#   step       queue   status      tries   started     time   result / error",
        "───────────────────────────────────────────────────────────────────────────────────────",
        "1   divide 1   math    COMPLETED       1   12:00:01   0.50s   3",
        "2   divide 0   math    FAILED          1   12:00:01   1.00s   division by zero (3 // 0)",
        "3   divide 4   math    SKIPPED         0",
        "4   divide 5   math    SKIPPED         0",
        "error: step 2 (divide 0) failed: division by zero (3 // 0)",
    ]


def test_completed_frame_ends_with_the_result_and_a_full_bar() -> None:
    view = running()
    view.chain.status, view.chain.result, view.chain.finished_at = Status.COMPLETED, 10, at(4)
    view.steps[2].status, view.steps[2].result, view.steps[2].finished_at = (
        Status.COMPLETED,
        10,
        at(3),
    )
    view.steps[3].status, view.steps[3].attempts = Status.COMPLETED, 1
    frame = lines(render.live_view(view, now=at(99), frame=7))
    assert frame[2] == "━━━━━━━━━━━━━━━━━━━━━━━━  4/4 steps  elapsed 3.00s"
    assert frame[-1] == "result: 10"
    assert "⠋" not in "".join(frame) and "RUNNING" not in "".join(frame)


def test_long_cells_are_cut_to_one_line_in_a_live_frame() -> None:
    view = failed()
    view.steps[1].error = "a very long reason " * 10
    row = lines(render.live_view(view, now=at(9)), width=80)[7]
    assert row == "2   divide 0   math    FAILED          1   12:00:01   1.00s   a very long reaso…"
    assert len(row) == 80


def test_a_long_chain_shows_the_steps_around_the_current_one() -> None:
    steps = [step(i, Status.COMPLETED, start=1, end=1, result=i) for i in range(20)]
    steps += [step(20, Status.RUNNING, start=1)]
    steps += [step(i, Status.PENDING, attempts=0) for i in range(21, 40)]
    view = ChainView(chain(Status.RUNNING, step_count=40, description=""), steps)
    frame = lines(render.live_view(view, now=at(2), frame=0, max_rows=8))
    assert frame[:2] == [
        "chain 0123456789abcdef0123456789abcdef  math_chain  RUNNING",
        "━━━━━━━━━━━━────────────  20/40 steps  elapsed 1.00s",
    ]
    assert frame[3:] == [
        "… 18 earlier step(s)",
        " #   step     queue   status      tries   started     time   result / error",
        "───────────────────────────────────────────────────────────────────────────",
        "19   add 20   math    COMPLETED       1   12:00:01   0.00s   18",
        "20   add 21   math    COMPLETED       1   12:00:01   0.00s   19",
        "21   add 22   math    ⠋ RUNNING       1   12:00:01   1.00s",
        "22   add 23   math    PENDING         0",
        "23   add 24   math    PENDING         0",
        "24   add 25   math    PENDING         0",
        "… 16 more step(s)",
    ]
    assert len(frame) == 3 + 8 + 2  # header lines + max_rows + the table's head


def test_ascii_terminals_get_ascii_spinner_and_bar() -> None:
    frame = lines(render.live_view(running(), now=at(3), frame=1, ascii=True))
    assert frame[2] == "############------------  2/4 steps  elapsed 2.00s"
    assert "/ RUNNING" in frame[8]


def test_board_of_all_active_chains() -> None:
    other = failed()
    other.chain.id = "fedcba9876543210fedcba9876543210"
    assert lines(render.board([running(), other], since=at(0.5), now=at(3), frame=3)) == [
        "watching 2 chain(s): 1 RUNNING, 1 FAILED  elapsed 2.50s",
        "",
        "id             type         status      progress         step        time   result / error",
        "────────────────────────────────────────────────────────────────────────────────────────────────────",
        "0123456789ab   math_chain   ⠸ RUNNING   ━━━━━───── 2/4   add 4      2.00s",
        "fedcba987654   math_chain   FAILED      ━━━━━───── 2/4   divide 0   1.50s   step 2 (divide 0) faile…",
    ]


def test_live_keys_move_only_with_what_the_frame_shows() -> None:
    # A running step: the spinner and its clock move the key.
    assert render.live_key(running(), now=at(3), frame=0) != render.live_key(
        running(), now=at(3), frame=1
    )
    # A finished chain: nothing moves, whatever the time and the frame.
    assert render.live_key(failed(), now=at(3), frame=0) == render.live_key(
        failed(), now=at(50), frame=9
    )
    # Waiting in a queue: no spinner, but the elapsed clock runs.
    waiting = ChainView(chain(Status.PENDING, started_at=None), [step(0, Status.PENDING)])
    assert render.live_key(waiting, now=at(3), frame=0) == render.live_key(
        waiting, now=at(3), frame=5
    )
    assert render.live_key(waiting, now=at(3), frame=0) != render.live_key(
        waiting, now=at(4), frame=0
    )


def test_plain_lines() -> None:
    view = failed()
    assert (
        plain.step_line(view.chain, view.steps[0]) == "0123456789ab step 1/4 divide 1 COMPLETED 3"
    )
    assert plain.step_line(view.chain, view.steps[1]) == (
        "0123456789ab step 2/4 divide 0 FAILED division by zero (3 // 0)"
    )
    assert plain.step_line(running().chain, running().steps[1]) == (
        "0123456789ab step 2/4 add 3 COMPLETED (attempt 2) 6"
    )
    assert plain.summary_line(view.chain) == (
        f"{ID} math_chain FAILED in 1.50s: step 2 (divide 0) failed: division by zero (3 // 0)"
    )
    assert (
        plain.chain_line(running().chain)
        == "0123456789ab math_chain RUNNING (4 steps) nightly sums"
    )
    assert plain.board_summary([running(), view, view]) == "watched 3 chain(s): 1 RUNNING, 2 FAILED"


def test_durations() -> None:
    assert [plain.duration(T0, at(s)) for s in (0, 0.004, 9.994, 10, 59.9, 60, 3599, 3600, 90061)] == [
        "0.00s", "0.00s", "9.99s", "10.0s", "59.9s", "1m00s", "59m59s", "1h00m00s", "25h01m01s",
    ]  # fmt: skip
    assert plain.duration(None, at(1)) == ""
    assert render.progress_bar(1, 3, width=9).plain == "━━━──────"
    assert render.progress_bar(0, 0, width=4).plain == "━━━━"


def test_columns_keep_their_width_from_waiting_to_running() -> None:
    waiting = ChainView(
        chain(Status.PENDING, started_at=None),
        [step(i, Status.PENDING, attempts=0) for i in range(4)],
    )
    frame = lines(render.live_view(waiting, now=at(3), frame=0))
    assert frame[2] == "────────────────────────  0/4 steps  elapsed 3.00s"
    assert frame[4] == lines(render.live_view(running(), now=at(3), frame=0))[4]
    assert frame[6] == "1   add 2   math    PENDING         0"


IO_RESULT = {
    "op": "checksum",
    "targets": ["a.txt", "b.txt"],
    "files": [{"path": p, "size": 600, "sha256": "ab" * 32} for p in ("a.txt", "b.txt")],
}


def io_view() -> ChainView:
    return ChainView(
        chain(Status.COMPLETED, type="io_chain", step_count=1, finished_at=at(2), result=IO_RESULT),
        [step(0, Status.COMPLETED, start=1, end=1.5, name="checksum", result=IO_RESULT)],
    )


def test_plain_lines_carry_the_chain_types_summary_not_the_whole_result() -> None:
    view = io_view()
    assert plain.step_line(view.chain, view.steps[0]) == (
        "0123456789ab step 1/1 checksum COMPLETED checksum: 2 files, 1.2 KB"
    )
    assert plain.summary_line(view.chain) == (
        f"{ID} io_chain COMPLETED in 1.00s: result checksum: 2 files, 1.2 KB"
    )


def test_a_long_integer_is_abbreviated_in_plain_lines() -> None:
    big = int("1" + "0" * 3998 + "7")
    view = ChainView(
        chain(Status.COMPLETED, step_count=1, finished_at=at(2), result=big),
        [step(0, Status.COMPLETED, start=1, end=1.5, name="add 7", result=big)],
    )
    assert plain.step_line(view.chain, view.steps[0]) == (
        "0123456789ab step 1/1 add 7 COMPLETED 100000…000007 (4000 digits)"
    )
    assert plain.summary_line(view.chain).endswith(": result 100000…000007 (4000 digits)")


def test_tables_show_the_summary_in_the_result_cell() -> None:
    view = io_view()
    row = "1   checksum   math    COMPLETED       1   12:00:01   0.50s   checksum: 2 files, 1.2 KB"
    assert lines(render.live_view(view, now=at(9)))[6] == row
    assert row in [line.strip() for line in lines(render.chain_view(view, now=at(9)))]
    board = lines(render.board([view], since=at(0), now=at(9)))
    assert board[-1].endswith("   checksum: 2 files, 1.2 KB")


def test_an_unknown_type_or_a_failing_summary_falls_back_to_compact_json(
    monkeypatch: Any,
) -> None:
    from taskchain.chains.io import IoChain

    view = io_view()
    view.chain.type = "gone_chain"  # a plug-in no longer installed
    assert plain.result_summary("gone_chain", {"a": 1}) == '{"a":1}'

    def broken(result: Any) -> str:
        raise KeyError("files")

    monkeypatch.setattr(IoChain, "summarize", broken)
    line = plain.step_line(io_view().chain, io_view().steps[0])
    assert line.startswith('0123456789ab step 1/1 checksum COMPLETED {"op":"checksum","targets"')
    assert len(line.split(" COMPLETED ", 1)[1]) == 80


def test_failure_line_for_quiet_submit() -> None:
    assert plain.failure_line(failed().chain) == (
        f"chain {ID} FAILED: step 2 (divide 0) failed: division by zero (3 // 0)"
    )
    cancelled = chain(Status.CANCELLED, error=None)
    assert plain.failure_line(cancelled) == f"chain {ID} CANCELLED: no reason recorded"
