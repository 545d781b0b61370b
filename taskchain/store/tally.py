"""Counts that do not grow with the history: `stats` reads these, not the chain table.

Two small tables beside `chain`, kept by the database itself (triggers), in the same
statement, hence the same transaction, as the rows they count. Every write path is covered
(submit, a step's record, cancel, retry, delete, prune, workflows, a bulk INSERT), a crash
mid-write rolls both back together, and the application sends no extra statement:

- `chain_tally`: per (type, status): chains, chains with a run time (`timed`) and the sum of
  those run times in microseconds (integers: sums stay exact after any number of changes);
- `duration_hist`: finished chains per run-time bucket (below 100 µs one bucket per µs, above
  it the number of digits and the two leading digits: 100-109, 110-119, ... 990-999, 1000-1099,
  ...). `stats` finds the bucket holding the k-th run time here, then reads that exact value
  off the `chain.duration_us` index with an OFFSET smaller than the bucket (at most 10% of
  the values): p50 and p95 are exact, and cost what one bucket does, not the table.

`chain.duration_us` (finished_at - started_at, in µs, NULL until both are set) is set by the
triggers too, whichever statement moves those times. Nothing else writes it or the tallies.

On PostgreSQL each connection adds into its own row of the tallies (`slot`, from the backend
pid), so workers finishing chains at the same time do not queue on one counter row; readers
sum over the slots. SQLite has one writer at a time: one slot.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, event

SLOTS = 16


def tables(metadata: MetaData) -> tuple[Table, Table]:
    tally = Table(
        "chain_tally",
        metadata,
        Column("type", String(64), primary_key=True),
        Column("status", String(16), primary_key=True),
        Column("slot", Integer, primary_key=True, autoincrement=False),
        Column("chains", BigInteger, nullable=False),
        Column("timed", BigInteger, nullable=False),
        Column("total_us", BigInteger, nullable=False),
    )
    hist = Table(
        "duration_hist",
        metadata,
        Column("bucket", Integer, primary_key=True, autoincrement=False),
        Column("slot", Integer, primary_key=True, autoincrement=False),
        Column("chains", BigInteger, nullable=False),
    )
    return tally, hist


def bucket(us: int) -> int:
    """The histogram bucket of a run time in µs (the SQL in `_bucket_sql` does the same)."""
    if us < 0:
        return -1
    if us < 100:
        return us
    digits = str(us)
    return len(digits) * 100 + int(digits[:2])


def lower_bound(b: int) -> int | None:
    """The smallest run time in bucket `b` (None: no lower bound, the negative bucket)."""
    if b < 0:
        return None
    if b < 100:
        return b
    return (b % 100) * 10 ** (b // 100 - 2)


def _bucket_sql(us: str, text: str) -> str:
    return (
        f"CASE WHEN {us} < 0 THEN -1 WHEN {us} < 100 THEN {us} "
        f"ELSE length({text}) * 100 + CAST(substr({text}, 1, 2) AS INTEGER) END"
    )


# ---- SQLite: the run time from the stored text, exactly: whole seconds by strftime (given
# no fraction, which it would round to the millisecond), then the microseconds as
# SQLAlchemy writes them (`YYYY-MM-DD HH:MM:SS.ffffff`).
def _sqlite_us(row: str) -> str:
    f, s = f"{row}.finished_at", f"{row}.started_at"
    return (
        f"(CASE WHEN {f} IS NOT NULL AND {s} IS NOT NULL THEN "
        f"(CAST(strftime('%s', substr({f}, 1, 19)) AS INTEGER) "
        f"- CAST(strftime('%s', substr({s}, 1, 19)) AS INTEGER)) "
        f"* 1000000 + CAST(substr({f}, 21, 6) AS INTEGER) - CAST(substr({s}, 21, 6) AS INTEGER) "
        "END)"
    )


def _sqlite_add(row: str, us: str, sign: str) -> str:
    return f"""
    INSERT INTO chain_tally (type, status, slot, chains, timed, total_us)
    VALUES ({row}.type, {row}.status, 0, {sign}1, {sign}({us} IS NOT NULL),
            {sign}coalesce({us}, 0))
    ON CONFLICT (type, status, slot) DO UPDATE SET chains = chains + excluded.chains,
        timed = timed + excluded.timed, total_us = total_us + excluded.total_us;
    INSERT INTO duration_hist (bucket, slot, chains)
    SELECT {_bucket_sql(us, f"CAST({us} AS TEXT)")}, 0, {sign}1 WHERE {us} IS NOT NULL
    ON CONFLICT (bucket, slot) DO UPDATE SET chains = chains + excluded.chains;"""


SQLITE = [
    f"""CREATE TRIGGER chain_tally_insert AFTER INSERT ON chain BEGIN
    {_sqlite_add("NEW", _sqlite_us("NEW"), "+")}
    UPDATE chain SET duration_us = {_sqlite_us("NEW")} WHERE rowid = NEW.rowid;
    END""",
    # Not `OF duration_us`: the UPDATE inside sets only that column, so it fires nothing.
    f"""CREATE TRIGGER chain_tally_update AFTER UPDATE OF status, started_at, finished_at ON chain
    WHEN OLD.status IS NOT NEW.status OR OLD.started_at IS NOT NEW.started_at
      OR OLD.finished_at IS NOT NEW.finished_at BEGIN
    {_sqlite_add("OLD", "OLD.duration_us", "-")}
    {_sqlite_add("NEW", _sqlite_us("NEW"), "+")}
    UPDATE chain SET duration_us = {_sqlite_us("NEW")} WHERE rowid = NEW.rowid;
    END""",
    f"""CREATE TRIGGER chain_tally_delete AFTER DELETE ON chain BEGIN
    {_sqlite_add("OLD", "OLD.duration_us", "-")}
    END""",
]

# ---- PostgreSQL: a BEFORE trigger sets the run time, an AFTER trigger counts the change.
_PG_US = (
    "CASE WHEN NEW.started_at IS NOT NULL AND NEW.finished_at IS NOT NULL THEN "
    "(extract(epoch FROM NEW.finished_at - NEW.started_at) * 1000000)::bigint END"
)
POSTGRESQL = [
    f"""CREATE OR REPLACE FUNCTION taskchain_chain_duration() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN NEW.duration_us := {_PG_US}; RETURN NEW; END $$""",
    f"""CREATE OR REPLACE FUNCTION taskchain_tally_add(t text, s text, us bigint, d integer)
    RETURNS void LANGUAGE plpgsql AS $$
    DECLARE k integer := mod(pg_backend_pid(), {SLOTS});
    BEGIN
      INSERT INTO chain_tally AS c (type, status, slot, chains, timed, total_us)
      VALUES (t, s, k, d, CASE WHEN us IS NULL THEN 0 ELSE d END, coalesce(us, 0) * d)
      ON CONFLICT (type, status, slot) DO UPDATE SET chains = c.chains + excluded.chains,
        timed = c.timed + excluded.timed, total_us = c.total_us + excluded.total_us;
    END $$""",
    f"""CREATE OR REPLACE FUNCTION taskchain_hist_add(us bigint, d integer)
    RETURNS void LANGUAGE plpgsql AS $$
    DECLARE k integer := mod(pg_backend_pid(), {SLOTS});
    BEGIN
      IF us IS NOT NULL THEN
        INSERT INTO duration_hist AS h (bucket, slot, chains)
        VALUES ({_bucket_sql("us", "us::text")}, k, d)
        ON CONFLICT (bucket, slot) DO UPDATE SET chains = h.chains + excluded.chains;
      END IF;
    END $$""",
    # Rows are touched in one order (tallies before buckets, each by key) so that two
    # transactions sharing a slot do not lock the same two rows the other way round.
    """CREATE OR REPLACE FUNCTION taskchain_chain_tally() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN
      IF TG_OP = 'INSERT' THEN
        PERFORM taskchain_tally_add(NEW.type, NEW.status::text, NEW.duration_us, 1);
        PERFORM taskchain_hist_add(NEW.duration_us, 1);
      ELSIF TG_OP = 'DELETE' THEN
        PERFORM taskchain_tally_add(OLD.type, OLD.status::text, OLD.duration_us, -1);
        PERFORM taskchain_hist_add(OLD.duration_us, -1);
      ELSIF OLD.status::text <= NEW.status::text THEN
        PERFORM taskchain_tally_add(OLD.type, OLD.status::text, OLD.duration_us, -1);
        PERFORM taskchain_tally_add(NEW.type, NEW.status::text, NEW.duration_us, 1);
      ELSE
        PERFORM taskchain_tally_add(NEW.type, NEW.status::text, NEW.duration_us, 1);
        PERFORM taskchain_tally_add(OLD.type, OLD.status::text, OLD.duration_us, -1);
      END IF;
      IF TG_OP = 'UPDATE' AND coalesce(OLD.duration_us, -1) <= coalesce(NEW.duration_us, -1) THEN
        PERFORM taskchain_hist_add(OLD.duration_us, -1);
        PERFORM taskchain_hist_add(NEW.duration_us, 1);
      ELSIF TG_OP = 'UPDATE' THEN
        PERFORM taskchain_hist_add(NEW.duration_us, 1);
        PERFORM taskchain_hist_add(OLD.duration_us, -1);
      END IF;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER chain_duration_insert BEFORE INSERT ON chain
    FOR EACH ROW EXECUTE FUNCTION taskchain_chain_duration()""",
    """CREATE TRIGGER chain_duration_update BEFORE UPDATE OF started_at, finished_at ON chain
    FOR EACH ROW EXECUTE FUNCTION taskchain_chain_duration()""",
    """CREATE TRIGGER chain_tally_insert AFTER INSERT OR DELETE ON chain
    FOR EACH ROW EXECUTE FUNCTION taskchain_chain_tally()""",
    """CREATE TRIGGER chain_tally_update AFTER UPDATE ON chain FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.duration_us IS DISTINCT FROM NEW.duration_us)
    EXECUTE FUNCTION taskchain_chain_tally()""",
]

DROP = {
    "sqlite": [f"DROP TRIGGER IF EXISTS chain_tally_{op}" for op in ("insert", "update", "delete")],
    "postgresql": [
        *(
            f"DROP TRIGGER IF EXISTS {name} ON chain"
            for name in (
                "chain_duration_insert",
                "chain_duration_update",
                "chain_tally_insert",
                "chain_tally_update",
            )
        ),
        "DROP FUNCTION IF EXISTS taskchain_chain_tally()",
        "DROP FUNCTION IF EXISTS taskchain_tally_add(text, text, bigint, integer)",
        "DROP FUNCTION IF EXISTS taskchain_hist_add(bigint, integer)",
        "DROP FUNCTION IF EXISTS taskchain_chain_duration()",
    ],
}


def triggers(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return SQLITE
    if dialect == "postgresql":
        return POSTGRESQL
    raise NotImplementedError(f"taskchain keeps tallies on SQLite and PostgreSQL, not {dialect}")


def backfill(conn: Any) -> None:
    """Set every chain's run time and count the rows already there (an upgrade; a new store
    is empty). Run before the triggers exist."""
    sqlite = conn.dialect.name == "sqlite"
    us = _sqlite_us("chain") if sqlite else _PG_US.replace("NEW.", "chain.")
    conn.exec_driver_sql(f"UPDATE chain SET duration_us = {us} WHERE finished_at IS NOT NULL")
    conn.exec_driver_sql(
        "INSERT INTO chain_tally (type, status, slot, chains, timed, total_us) "
        "SELECT type, status, 0, count(*), count(duration_us), coalesce(sum(duration_us), 0) "
        "FROM chain GROUP BY type, status"
    )
    text = "CAST(duration_us AS TEXT)"
    conn.exec_driver_sql(
        "INSERT INTO duration_hist (bucket, slot, chains) "
        f"SELECT b, 0, count(*) FROM (SELECT {_bucket_sql('duration_us', text)} AS b "
        "FROM chain WHERE duration_us IS NOT NULL) AS d GROUP BY b"
    )


def install(conn: Any) -> None:
    uninstall(conn)
    for statement in triggers(conn.dialect.name):
        conn.exec_driver_sql(statement)


def uninstall(conn: Any) -> None:
    for statement in DROP.get(conn.dialect.name, []):
        conn.exec_driver_sql(statement)


def on_create(metadata: MetaData) -> None:
    """A new store (create_all) gets the triggers with its tables."""

    @event.listens_for(metadata, "after_create")
    def _installed(target: Any, connection: Any, **kw: Any) -> None:
        if connection.dialect.name in ("sqlite", "postgresql"):
            install(connection)
