"""submit builds its rows without the models: they must stay the rows the models would give."""

from __future__ import annotations

from datetime import UTC, datetime

from taskchain.engine.submit import prepare
from taskchain.store import ChainRecord, StepRecord, queries


def test_a_chain_row_is_the_models_own_dump() -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = queries.chain_row(
        chain_id="c1", type="math_chain", description="d", config={"numbers": [1, 2]},
        step_count=1, created_at=created, workspace="/w", submit_host="h", runner="h:1:x",
        runner_lease_expires_at=created,
    )  # fmt: skip
    record = ChainRecord(
        id="c1", type="math_chain", description="d", config={"numbers": [1, 2]}, step_count=1,
        created_at=created, workspace="/w", submit_host="h", runner="h:1:x",
        runner_lease_expires_at=created,
    )  # fmt: skip
    assert row == record.model_dump()
    assert list(row) == list(ChainRecord.__table__.columns.keys())  # type: ignore[attr-defined]


def test_a_step_row_has_every_column() -> None:
    row = queries.step_row(
        chain_id="c1", index=0, name="add", queue="math", params={"operand": 1}, task_id="t",
        dispatched_at=None,
    )  # fmt: skip
    assert sorted(row) == sorted(StepRecord.__table__.columns.keys())  # type: ignore[attr-defined]


def test_prepare_gives_the_records_it_would_insert() -> None:
    chain, steps = prepare("math_chain", {"numbers": [1, 2, 3]}, description="x", chain_id="abc")
    assert (chain.id, chain.type, chain.description, chain.step_count) == (
        "abc",
        "math_chain",
        "x",
        2,
    )
    assert chain.status == "PENDING" and chain.created_at.tzinfo is not None
    assert [(s.index, s.name, s.dispatched_at) for s in steps] == [
        (0, "add 2", chain.created_at),
        (1, "add 3", None),
    ]
