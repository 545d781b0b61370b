"""What every part of the benchmark shares: rows and medians, child processes, a private
Redis, private PostgreSQL databases, worker processes, the printed table.

The harness drives taskchain only through its public surfaces (the CLI, `taskchain worker`,
`taskchain.engine.submit.submit`, and the store's table and column names), so it keeps
working while the engine behind them changes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PY = sys.executable
CLI = [PY, "-m", "taskchain"]


@dataclass
class Row:
    """One line of the table: taskchain's figure, the baseline's, and their ratio.

    `ratio` is the median of the per-round ratios (each round's pair measured side by side),
    not the ratio of the medians. `target` is the limit on `ratio` (`le` or `ge`) or None.
    """

    part: str
    name: str
    unit: str
    ours: float
    theirs: float
    ratio: float
    baseline: str
    target: float | None = None
    sense: str = "le"  # "le": ratio <= target is met; "ge": ratio >= target
    rounds: int = 0
    note: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio <= self.target if self.sense == "le" else self.ratio >= self.target

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def paired(
    part: str,
    name: str,
    unit: str,
    ours: Sequence[float],
    theirs: Sequence[float],
    baseline: str,
    **kw: Any,
) -> Row:
    """A row from side-by-side rounds: medians of each side and the median of pair ratios."""
    ratios = [a / b for a, b in zip(ours, theirs, strict=True) if b]
    return Row(
        part=part,
        name=name,
        unit=unit,
        ours=statistics.median(ours),
        theirs=statistics.median(theirs),
        ratio=statistics.median(ratios) if ratios else float("nan"),
        baseline=baseline,
        rounds=len(ratios),
        raw={"ours": list(ours), "theirs": list(theirs)},
        **kw,
    )


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for a child: no TASKCHAIN_* from the caller, this tree importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCHAIN_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def measure(
    args: Sequence[str], env: dict[str, str], *, check: bool = True
) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) and stdout of one child process, from its own rusage."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen(list(args), env=env, stdout=subprocess.PIPE, stderr=errors)
        out = child.stdout.read() if child.stdout else b""
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        child.returncode = code
        if child.stdout:
            child.stdout.close()
        if check and code != 0:
            errors.seek(0)
            text = errors.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(args[:6])} ... exited {code}:\n{text}")
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return seconds, rss, out.decode()


def run_json(args: Sequence[str], env: dict[str, str], timeout: float = 900) -> Any:
    """Run a driver script that prints one JSON document; its stderr is passed through."""
    import json

    done = subprocess.run(list(args), env=env, stdout=subprocess.PIPE, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args[:4]))} ... exited {done.returncode}")
    return json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own on a free port, nothing kept on disk; yields its base URL."""
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the private redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def flush_redis(base_url: str) -> None:
    """Empty our private Redis between runs (never called on a shared server)."""
    import redis

    client = redis.Redis.from_url(base_url)
    client.flushall()
    client.close()


def pg_url(server_url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.set(database=database).render_as_string(hide_password=False)


def pg_admin(server_url: str, sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url(server_url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def pg_exists(server_url: str, name: str) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url(server_url, "postgres"))
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            return found.first() is not None
    finally:
        engine.dispose()


@contextlib.contextmanager
def pg_database(server_url: str, name: str | None = None, keep: bool = False) -> Iterator[str]:
    """A database of our own on the given server (created unless it exists; dropped after
    unless `keep`); yields its URL."""
    name = name or f"taskchain_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    if not pg_exists(server_url, name):
        pg_admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(server_url, name)
    finally:
        if not keep:
            with contextlib.suppress(Exception):
                pg_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def store(kind: str, postgres: str | None, scratch: Path) -> Iterator[str]:
    """A fresh, empty store URL: a new SQLite file, or a new PostgreSQL database."""
    if kind == "sqlite":
        path = scratch / f"store-{uuid.uuid4().hex[:8]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        assert postgres, "a PostgreSQL store needs --postgres URL"
        with pg_database(postgres) as url:
            yield url


@contextlib.contextmanager
def process(
    args: Sequence[str], env: dict[str, str], logfile: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running child (a worker) in its own process group, stopped with its children."""
    with logfile.open("ab") as out:
        child = subprocess.Popen(
            list(args), env=env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        yield child
    finally:
        _stop_group(child)


def _stop_group(child: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if child.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)  # the group we created: the worker and its pool
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=wait)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)  # pool children left behind, if any


def taskchain_worker(
    env: dict[str, str], concurrency: int, logfile: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    args = [
        *CLI,
        "worker",
        "-c",
        str(concurrency),
        "-l",
        "WARNING",
        "-n",
        f"bench-{uuid.uuid4().hex[:6]}@%h",
    ]
    return process(args, env, logfile)


def celery_worker(
    env: dict[str, str], concurrency: int, logfile: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    args = [
        PY,
        "-m",
        "celery",
        "-A",
        "bare_celery",
        "worker",
        "-c",
        str(concurrency),
        "-P",
        "prefork",
        "-l",
        "WARNING",
        "-Q",
        "bench",
        "-n",
        f"bare-{uuid.uuid4().hex[:6]}@%h",
    ]
    if env.get("BENCH_CELERY") == "events":
        args.append("-E")
    return process(args, {**env, "PYTHONPATH": f"{HERE}{os.pathsep}{env['PYTHONPATH']}"}, logfile)


def fmt(value: float, unit: str) -> str:
    if unit in ("s", "ms") or unit.endswith("/s"):
        return f"{value:,.1f}" if value >= 100 else f"{value:,.3g}"
    if unit == "MB":
        return f"{value:,.0f}"
    return f"{value:,.3g}"


def print_table(rows: Sequence[Row]) -> None:
    """Both sides, the ratio and the verdict, one line per row, grouped by part."""
    width = max([len(row.name) for row in rows] + [20])
    header = f"{'row':<{width}} {'taskchain':>11} {'baseline':>11} {'unit':<8} {'ratio':>7}  target"
    current = None
    for row in rows:
        if row.part != current:
            current = row.part
            print(f"\n== {current} ==")
            print(header)
        if row.target is None:
            verdict = ""
        else:
            sign = "<=" if row.sense == "le" else ">="
            verdict = f"{sign} {row.target:g}x {'met' if row.met else 'NOT met'}"
        print(
            f"{row.name:<{width}} {fmt(row.ours, row.unit):>11} {fmt(row.theirs, row.unit):>11} "
            f"{row.unit:<8} {row.ratio:>6.2f}x  {verdict}"
        )
        print(f"{'':<4}vs {row.baseline} (n={row.rounds}){'; ' + row.note if row.note else ''}")
