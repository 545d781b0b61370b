"""The schema has one definition (store/tables.py); the SQLModel records map onto it."""

from __future__ import annotations

import pytest

from taskchain.store import queries, session, tables
from taskchain.store.models import ChainRecord, Status, StepRecord, utcnow
from taskchain.store.workflow_model import WorkflowRecord

RECORDS = [
    (ChainRecord, tables.chain),
    (StepRecord, tables.step),
    (WorkflowRecord, tables.workflow),
]


@pytest.mark.parametrize(("record", "table"), RECORDS, ids=["chain", "step", "workflow"])
def test_each_record_maps_onto_its_table_field_for_column(record: type, table: object) -> None:
    assert record.__table__ is table  # type: ignore[attr-defined]
    # Every column is a field (model_dump, which submit inserts, has them all) and back.
    assert list(record.model_fields) == [c.key for c in table.c]  # type: ignore[attr-defined]
    for name in record.model_fields:
        assert record.__mapper__.columns[name] is table.c[name]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("record", "table"), RECORDS, ids=["chain", "step", "workflow"])
def test_a_new_record_has_the_defaults_of_its_columns(record: type, table: object) -> None:
    required = {"id": "x", "type": "t", "name": "n", "chain_id": "c", "index": 0, "queue": "q",
                "task_id": "k"}  # fmt: skip
    fresh = record(**{k: v for k, v in required.items() if k in record.model_fields})
    for column in table.c:  # type: ignore[attr-defined]
        if column.default is not None and column.default.is_scalar:
            assert getattr(fresh, column.key) == column.default.arg, column.key


@pytest.mark.usefixtures("store_url")
def test_a_row_read_by_get_chain_holds_what_the_record_holds() -> None:
    """The read functions return rows of the tables: the same names and Python values as
    the SQLModel records the ORM loads (Status members, UTC datetimes, decoded JSON)."""
    from taskchain.engine.submit import prepare

    chain, steps = prepare("math_chain", {"numbers": [10**30, 2, 3]})
    chain.result, chain.started_at = {"n": [1.5, None, "x"]}, utcnow()
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=steps)
    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain.id)
        listed = queries.list_chains(session=s, limit=None)
        record = s.get(ChainRecord, chain.id)
        records = [s.get(StepRecord, (chain.id, step.index)) for step in view.steps]
    assert record is not None and [r.id for r in listed] == [chain.id]
    for row in (view.chain, listed[0]):
        assert {k: getattr(row, k) for k in ChainRecord.model_fields} == record.model_dump()
    assert [dict(r._mapping) for r in view.steps] == [r.model_dump() for r in records if r]  # type: ignore[attr-defined]
    assert view.chain.status is Status.PENDING and view.chain.config["numbers"][0] == 10**30
    assert view.chain.created_at.tzinfo is not None and view.chain.result == {"n": [1.5, None, "x"]}
