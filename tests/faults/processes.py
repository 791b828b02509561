"""Real servers the stack tests start on loopback (stopped, or killed, by their own PIDs), and
the helpers those tests share: free ports, a slice of the Italy data, the CLI, and the machine's
own Redis and PostgreSQL (which .ci/run starts: a test needing them fails, never skips, without)
and Celery workers on it."""

from __future__ import annotations

import gzip
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest
import redis
from celery import Celery
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tractcast.runner import ROOT, child_env
from tractcast.settings import Settings

VENV_BIN = Path(sys.executable).parent
POSTGRES_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432"
MACHINE_REDIS = "redis://127.0.0.1:6379"
REDIS_CLAIM_PREFIX = "tractcast:tests:db:"  # + number: in database 0, who uses that database
REDIS_CLAIM_SECONDS = 2 * 3600  # a claim left by a run that died lapses after this


def missing_server(what: str, exc: BaseException) -> NoReturn:
    pytest.fail(f"{what} is not reachable ({exc}); .ci/run starts it", pytrace=False)


def machine_redis(url: str) -> redis.Redis:
    """A client of the machine's Redis at `url` (a database claimed with `claimed_redis_db`)."""
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        client.close()
        missing_server("Redis on 127.0.0.1:6379", exc)
    return client


@contextmanager
def claimed_redis_db(user: str) -> Iterator[str]:
    """The URL of an empty database of the machine's Redis that no other test run (of this
    checkout or another) uses meanwhile; emptied and given back afterwards.

    A run claims a database with a key in database 0 (set only if absent, expiring in case the
    run dies), and takes only one that is empty: a run that does not claim is not disturbed.
    """
    admin = machine_redis(f"{MACHINE_REDIS}/0")
    count = int(admin.config_get("databases")["databases"])
    token = f"{user} pid {os.getpid()} {secrets.token_hex(4)}"
    for number in random.sample(range(1, count), count - 1):  # 0: the claims, `make up`
        claim = admin.lock(
            f"{REDIS_CLAIM_PREFIX}{number}", timeout=REDIS_CLAIM_SECONDS, thread_local=False
        )
        if not claim.acquire(blocking=False, token=token):
            continue
        url = f"{MACHINE_REDIS}/{number}"
        client = machine_redis(url)
        if client.dbsize() == 0:
            break
        client.close()
        claim.release()
    else:
        admin.close()
        pytest.fail(f"every database of the machine's Redis is claimed or in use ({user})")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
        claim.release()
        admin.close()


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """The name of a new, empty database on the machine's PostgreSQL, dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(f"{POSTGRES_SERVER}/test", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        missing_server("PostgreSQL on 127.0.0.1:5432", exc.orig)
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loopback_ports() -> dict[str, int]:
    """A free loopback port for nginx and each service, named as the Settings fields."""
    names = ("http_port", "api_port", "geo_port", "registry_port", "retrainer_port")
    return {name: free_port() for name in names}


def write_italy_slice(source: Path, target: Path, start: str, end: str) -> None:
    """The Italy file restricted to days in [start, end], same layout and header."""
    with gzip.open(source, "rt", encoding="utf-8") as src, gzip.open(target, "wt") as out:
        out.write(next(src))
        out.writelines(line for line in src if start <= line[:10] <= end)


def run_cli(settings: Settings, *args: str) -> dict[str, Any]:
    """`tractcast ARGS --json` in a child process with the settings; its parsed output."""
    out = subprocess.run(
        [sys.executable, "-m", "tractcast.cli", *args, "--json"],
        env=child_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(every)


class Server:
    """One child process in a session of its own, so kill() reaches its children too."""

    def __init__(
        self,
        cmd: Sequence[str],
        log: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
        max_seconds: int = 900,
    ) -> None:
        # bounded in time whatever happens to the test: coreutils' timeout ends it
        self.cmd = ["timeout", "--foreground", "--kill-after=10", str(max_seconds), *cmd]
        self.log = log
        self.port = port
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_listening(self, timeout: float = 60.0) -> Server:
        assert self.port is not None

        def up() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.cmd[4]} exited early:\n{self.tail()}")
            return port_open(self.port)  # type: ignore[arg-type]

        wait_until(up, timeout, f"{self.cmd[4]} did not listen on {self.port}")
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group this server leads (its own children only)."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass  # the group is gone already
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM to the server alone (its own shutdown stops its children), then -9."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        self.kill(signal.SIGKILL)

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def celery_worker(
    settings: Settings,
    name: str,
    log: Path,
    concurrency: int = 1,
    env: dict[str, str] | None = None,
) -> Server:
    """A Celery worker of the retrainer on the settings' broker (queues train and default),
    named name@host, once it says it is ready; `env` replaces the settings' own environment."""
    cmd = [
        sys.executable, "-m", "celery", "-A", "services.retrainer.celery_app:celery", "worker",
        "-Q", "train,default", "--concurrency", str(concurrency), "--hostname", f"{name}@%h",
        "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    worker = Server(cmd, log, env=env or child_env(settings), cwd=ROOT)
    try:
        wait_until(lambda: "ready." in worker.tail(), 60, f"worker {name} was not ready")
    except BaseException:
        worker.kill()  # a worker that never said it was ready is no test's to stop
        raise
    return worker


def close_celery(app: Celery) -> None:
    """Close a client Celery app's connections to Redis (`close()` alone leaves them to the
    garbage collector, which warns of each unclosed socket whenever it comes)."""
    app.backend.result_consumer.stop()
    app.backend.client.connection_pool.disconnect()
    app.pool.force_close_all()
    app.close()


def moto_server(log_dir: Path) -> Server:
    """moto's standalone S3 (and more) server on a free loopback port."""
    port = free_port()
    cmd = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    return Server(cmd, log_dir / "moto.log", port=port).wait_listening()


def mlflow_server(base: Path) -> Server:
    """A tracking server with a SQLite backend and proxied artifacts, both under base."""
    port = free_port()
    base.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}",
        "--artifacts-destination", str(base / "artifacts"), "--serve-artifacts",
        "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return Server(cmd, base / "mlflow.log", env=env, cwd=base, port=port).wait_listening(120)


def redis_server(base: Path) -> Server:
    """A private redis-server on a free loopback port, without persistence."""
    port = free_port()
    base.mkdir(parents=True, exist_ok=True)
    cmd = [
        "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
        "--appendonly", "no", "--dir", str(base),
    ]  # fmt: skip
    return Server(cmd, base / "redis.log", port=port).wait_listening()


def tcp_proxy(target_port: int, log_dir: Path) -> Server:
    """A relay from a free loopback port to target_port (tests/faults/tcp_proxy.py)."""
    port = free_port()
    script = Path(__file__).with_name("tcp_proxy.py")
    cmd = [sys.executable, str(script), str(port), str(target_port)]
    return Server(cmd, log_dir / f"proxy-{port}.log", port=port).wait_listening()


@contextmanager
def stack_through_nginx(settings: Settings) -> Iterator[str]:
    """Every service and nginx as `make up` runs them, ready; yields nginx's public URL."""
    from tractcast.runner import start_stack, wait_ready

    stack = start_stack(settings, with_nginx=True)
    try:
        public = f"http://127.0.0.1:{settings.http_port}"
        wait_ready(public, stack, timeout=120)
        yield public
    finally:
        stack.stop()


@contextmanager
def serving_in_thread(app: Any) -> Iterator[str]:
    """A WSGI app served by werkzeug on a free loopback port, in a thread; yields its URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
