"""Issue 10, target 3: read commands on a store of N chains (~2N steps) against the same
commands on a store of a few chains, whole processes, interleaved big/small."""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from common import CLI, Row, base_env, log, measure, paired, pg_database
from fill import count, fill
from sides import Context

TARGET = 1.5  # big store <= 1.5x small store
SMALL = 10


def commands(prefix: str) -> list[tuple[str, list[str]]]:
    return [
        ("stats", ["stats"]),
        ("list --status FAILED --limit 20", ["list", "--status", "FAILED", "--limit", "20"]),
        ("list --since 1h", ["list", "--since", "1h"]),
        ("status <8-char prefix>", ["status", prefix]),
    ]


@contextlib.contextmanager
def filled(ctx: Context, kind: str, n: int) -> Iterator[str]:
    """A store of n chains: reused from --cache when it holds exactly n, else filled."""
    env = base_env(TASKCHAIN_WORKSPACE=str(ctx.scratch))
    keep = ctx.cache is not None and n > SMALL
    if kind == "sqlite":
        folder = ctx.cache if keep and ctx.cache else ctx.scratch
        path = folder / f"store-{n}.db"
        url = f"sqlite:///{path}"
        if count(url) != n:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            log(f"filling a SQLite store with {n:,} chains ...")
            log(f"... {fill(url, n, env):.0f} s")
        _upgrade(url, env)
        yield url
        return
    assert ctx.postgres
    name = f"taskchain_bench_fill_{n}" if keep else None
    with pg_database(ctx.postgres, name, keep=keep) as url:
        if count(url) != n:
            with contextlib.suppress(Exception):
                _drop_tables(url)
            log(f"filling a PostgreSQL store with {n:,} chains ...")
            log(f"... {fill(url, n, env):.0f} s")
        _upgrade(url, env)
        yield url


def _upgrade(url: str, env: dict[str, str]) -> None:
    """A store kept in --cache by an older taskchain is brought to this one's schema (what
    `taskchain db upgrade` does in a deployment); the time it takes is logged, once."""
    env = {**env, "TASKCHAIN_DATABASE_URL": url}
    seconds, _, out = measure([*CLI, "db", "upgrade", "--json"], env)
    doc = json.loads(out)
    if doc["before"] != doc["after"]:
        log(f"upgraded the store from {doc['before']} to {doc['after']} in {seconds:.1f} s")


def _drop_tables(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def _unique_prefix(url: str) -> str:
    """The 8-character prefix of a chain id that no other chain shares."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            for (chain_id,) in conn.execute(text("SELECT id FROM chain LIMIT 50")):
                prefix = chain_id[:8]
                same = conn.execute(
                    text("SELECT count(*) FROM chain WHERE id >= :lo AND id < :hi"),
                    {"lo": prefix, "hi": prefix + "~"},
                ).scalar_one()
                if same == 1:
                    return str(prefix)
    finally:
        engine.dispose()
    raise RuntimeError("no chain id with a unique 8-character prefix")


def _exact(env: dict[str, str], url: str, n: int) -> str:
    """'' when `stats` agrees with a count over the rows (total and by status), else why."""
    from sqlalchemy import create_engine, text

    _, _, out = measure([*CLI, "stats", "--json"], env)
    doc = json.loads(out)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM chain GROUP BY status"))
            counted = {str(status): int(k) for status, k in rows}
    finally:
        engine.dispose()
    said = {status: k for status, k in doc["by_status"].items() if k}
    if doc["total"] == n and said == counted:
        return ""
    return f"stats says {doc['total']:,} chains {said}, the rows {n:,} {counted}"


def run(ctx: Context) -> list[Row]:
    n = ctx.fill or ctx.n(2_000, 1_000_000)
    kinds = ["sqlite", "postgres"] if ctx.postgres else ["sqlite"]
    rows = []
    for kind in kinds:
        with filled(ctx, kind, n) as big_url, filled(ctx, kind, SMALL) as small_url:
            envs = {
                size: base_env(TASKCHAIN_DATABASE_URL=url, TASKCHAIN_WORKSPACE=str(ctx.scratch))
                for size, url in (("big", big_url), ("small", small_url))
            }
            # Whatever the engine keeps beside the rows (aggregates), counts must be exact.
            note = _exact(envs["big"], big_url, n)
            jobs = [
                (size, name, [*CLI, *args])
                for name, args in commands(_unique_prefix(big_url))
                for size in ("big", "small")
            ]
            small_jobs = {name: [*CLI, *args] for name, args in commands(_unique_prefix(small_url))}
            ms: dict[tuple[str, str], list[float]] = defaultdict(list)
            for round_ in range(ctx.r(2, 5)):
                log(f"store {kind} round {round_ + 1}")
                for size, name, args in jobs:
                    if size == "small":
                        args = small_jobs[name]
                    ms[size, name].append(measure(args, envs[size])[0] * 1000)
            for name, _ in commands(""):
                rows.append(
                    paired(
                        "store",
                        f"{name}, {kind}",
                        "ms",
                        ms["big", name],
                        ms["small", name],
                        f"the same on a store of {SMALL} chains (big: {n:,} chains)",
                        target=TARGET,
                        note=note,
                    )
                )
    return rows
