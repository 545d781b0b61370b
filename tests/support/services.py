"""The services the tests use, each of the suite's own: a redis-server it starts on a free port,
a PostgreSQL database it creates, a RabbitMQ vhost it adds. Nothing here touches data the
suite did not create. When a service (or the redis-server binary) is missing the test is
skipped, or fails when TASKCHAIN_REQUIRE_SERVICES=1 (CI sets it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

POSTGRES = ("127.0.0.1", 5432)
RABBITMQ = ("127.0.0.1", 5672)


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def missing(message: str) -> None:
    """Skip (or, in CI, fail) a test whose service is not there."""
    if os.environ.get("TASKCHAIN_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} and TASKCHAIN_REQUIRE_SERVICES=1")
    pytest.skip(message)


def require(name: str, address: tuple[str, int]) -> None:
    """Skip (or, in CI, fail) when the service does not answer."""
    if not reachable(*address):
        missing(f"{name} is not reachable on {address[0]}:{address[1]}")


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of the test suite's own: a free port, its own folder, nothing on disk
    (`--save '' --appendonly no`), a child of this process, stopped by its pid."""

    def __init__(self, folder: Path) -> None:
        if shutil.which("redis-server") is None:
            missing("redis-server is not on PATH (the Redis tests start their own server)")
        self.folder = folder
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, port: int | None = None) -> None:
        """Start on `port` (again after `stop`), or on a free port; retried if it was taken."""
        for _ in range(5):
            self.port = port or free_port()
            log = self.folder / f"redis-{self.port}.log"
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.folder),
                 "--logfile", str(log), "--daemonize", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            deadline = time.monotonic() + 20
            while self.proc.poll() is None and time.monotonic() < deadline:
                if self.ping():
                    return
                time.sleep(0.02)
            self.stop()
            if port is not None:
                break
        text = log.read_text() if log.exists() else "(no log)"
        raise RuntimeError(f"the test suite's redis-server did not start:\n{text}")

    def ping(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM (a clean shutdown that saves nothing: saving is off), then SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def flush(self) -> None:
        """Empty every database of this server (it is ours: nothing else uses it)."""
        import redis

        with contextlib.closing(redis.Redis(host="127.0.0.1", port=self.port)) as client:
            client.flushall()


def broker_idle(url: str) -> bool:
    """Nothing queued and nothing in flight on the test's broker (Redis or RabbitMQ)."""
    if url.startswith("amqp"):
        return all(ready == unacked == 0 for ready, unacked in rabbit_queues(url).values())
    return _redis_idle(url)


def _redis_idle(url: str) -> bool:
    """Every list (a queue) is empty and no message waits for an ack (kombu keeps those in
    the `unacked` hash, with acks_late until the step is done, and retries with a countdown
    until they run)."""
    import redis

    with contextlib.closing(redis.Redis.from_url(url)) as client:
        if client.hlen("unacked"):
            return False
        return all(
            client.llen(key) == 0 for key in client.scan_iter() if client.type(key) == b"list"
        )


def queue_length(url: str, queue: str) -> int:
    """Messages waiting in `queue` (not those a worker holds unacked)."""
    if url.startswith("amqp"):
        return rabbit_queues(url).get(queue, (0, 0))[0]
    import redis

    with contextlib.closing(redis.Redis.from_url(url)) as client:
        return int(client.llen(queue))


def rabbit_queues(url: str) -> dict[str, tuple[int, int]]:
    """Every queue of the URL's vhost: (messages ready, messages delivered and not yet acked).

    rabbitmqctl, because AMQP itself cannot count unacked messages: with acks_late a step a
    worker runs, and a retry it holds for its countdown, are unacked until done."""
    vhost = url.rsplit("/", 1)[1] or "/"
    done = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers",
         "name", "messages_ready", "messages_unacknowledged"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (line.split("\t") for line in done.stdout.splitlines() if line.strip())
    return {name: (int(ready), int(unacked)) for name, ready, unacked in rows}


class RabbitVhost:
    """A RabbitMQ vhost of the suite's own (rabbitmqctl add_vhost), deleted at the end: the
    tests' queues never meet another application's on the shared server."""

    def __init__(self, name: str) -> None:
        require("RabbitMQ", RABBITMQ)
        if shutil.which("rabbitmqctl") is None:
            missing("rabbitmqctl is not on PATH (the RabbitMQ tests add a vhost of their own)")
        self.name = name
        self._ctl("add_vhost", name)
        self._ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}/{self.name}"

    def delete(self) -> None:
        subprocess.run(["rabbitmqctl", "delete_vhost", self.name], capture_output=True, timeout=60)

    @staticmethod
    def _ctl(*args: str) -> None:
        done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            missing(f"rabbitmqctl {args[0]} failed: {(done.stderr or done.stdout).strip()}")
