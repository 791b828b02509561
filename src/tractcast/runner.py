"""Run the whole system as local processes (what `make up` does on a machine without Docker)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import shapely.geometry

from tractcast.nginxconf import connect_host, nginx_command, write_nginx_conf
from tractcast.settings import Settings
from tractcast.tract_layers import tract_layers

ROOT = Path(__file__).resolve().parents[2]
WEB_APPS = (
    ("geo", "services.geo.wsgi:app", "geo_port"),
    ("registry", "services.registry.wsgi:app", "registry_port"),
    ("api", "services.api.wsgi:app", "api_port"),
    ("retrainer", "services.retrainer.wsgi:app", "retrainer_port"),
)


@dataclass
class Stack:
    run_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    nginx: bool = False

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            _terminate(self.processes[name])
            (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
        self.processes.clear()

    def dead(self) -> list[str]:
        return [name for name, proc in self.processes.items() if proc.poll() is not None]


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of every child: ours, the settings, and the repo on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACTCAST_")}
    env.update(settings.to_env())
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def has_current(settings: Settings) -> bool:
    from tractcast.registry import RegistryReader

    return RegistryReader(settings.store).current_bundle_id() is not None


def train_first_model(settings: Settings, layer: str | None = None) -> None:
    """Train in a child process, so TensorFlow never lives in the long-running supervisor.

    The child shows its progress on stderr; its result comes back as JSON and is summed up here.
    """
    named = [] if layer is None else ["--layer", layer]
    of_layer = "" if layer is None else f" of layer {layer}"
    print(f"no model in the store{of_layer} yet: training the first one ...", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "tractcast.cli", "train", "--trigger", "first-start", "--json"]
        + named,
        env=child_env(settings),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the first training failed (exit {done.returncode}); see above")
    outcome = json.loads(done.stdout)
    print(
        f"first model: {outcome['champion']} serves ({outcome['reason']}; "
        f"{outcome['seconds']:.0f} s)",
        flush=True,
    )


def start_stack(settings: Settings, *, with_nginx: bool | None = None) -> Stack:
    """Start geo, registry, api, retrainer (web, scheduler, worker) and nginx; returns at once."""
    run_dir = Path(settings.run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(run_dir=run_dir)
    env = child_env(settings)
    log_dir = run_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    for name, app, port_attr in WEB_APPS:
        workers = settings.workers if name in ("api", "geo") else 1
        start_web_app(stack, settings, name, app, getattr(settings, port_attr), workers)
    _spawn(stack, "scheduler", [sys.executable, "-m", "services.retrainer.scheduler"], env, log_dir)
    if settings.broker_url:
        worker = [
            sys.executable, "-m", "celery", "-A", "services.retrainer.celery_app:celery",
            "worker", "-Q", "train,default", "--concurrency", "1", "--loglevel", "INFO",
        ]  # fmt: skip
        _spawn(stack, "worker", worker, env, log_dir)
    nginx = find_nginx(settings.nginx)
    if with_nginx is None:
        with_nginx = nginx is not None
    if with_nginx:
        if nginx is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
        certs = Path(settings.run_dir).resolve().parent / "certs"
        tls = (certs / "tls.crt", certs / "tls.key")  # nginx/make-self-signed-cert.sh
        conf = write_nginx_conf(settings, run_dir / "nginx", tls=tls)
        _spawn(stack, "nginx", nginx_command(conf, run_dir / "nginx", nginx), env, log_dir)
        stack.nginx = True
    else:
        _spawn(stack, "gateway", gateway_command(settings), env, log_dir)
    return stack


def start_web_app(
    stack: Stack, settings: Settings, name: str, app: str, port: int, workers: int
) -> None:
    """One gunicorn web service of the stack on settings.host:port, logging to logs/<name>.log."""
    cmd = [
        sys.executable, "-m", "gunicorn", app,
        "--bind", f"{settings.host}:{port}", "--workers", str(workers),
        "--chdir", str(ROOT), "--graceful-timeout", "5", "--timeout", "120",
        "--config", "python:services.common.gunicorn_conf",  # JSON logs, metrics, threads
    ]  # fmt: skip
    # Each service's workers share one metrics directory (gunicorn empties it at start).
    metrics_dir = {"PROMETHEUS_MULTIPROC_DIR": str(stack.run_dir / "metrics" / name)}
    _spawn(stack, name, cmd, {**child_env(settings), **metrics_dir}, stack.run_dir / "logs")


def gateway_command(settings: Settings) -> list[str]:
    """nginx's front door served by services/gateway, for machines without nginx."""
    return [
        sys.executable, "-m", "gunicorn", "services.gateway.wsgi:app",
        "--bind", f"{settings.host}:{settings.http_port}",
        # One process, so the rate limits hold per client as nginx's shared zones do.
        "--workers", "1", "--threads", "16",
        "--chdir", str(ROOT), "--graceful-timeout", "5", "--timeout", "60",
        "--config", "python:services.common.gunicorn_conf",
    ]  # fmt: skip


def find_nginx(choice: str | None = None) -> str | None:
    """TRACTCAST_NGINX's binary, none for "off", else nginx on the PATH or in /usr/sbin."""
    if choice and choice.lower() in {"off", "no", "none", "false", "0"}:
        return None
    if choice:
        return shutil.which(choice)
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def public_url(settings: Settings) -> str:
    """The one entry point: nginx, or the gateway standing in for it, on TRACTCAST_HTTP_PORT."""
    return f"http://{connect_host(settings.host)}:{settings.http_port}"


def wait_ready(url: str, stack: Stack, timeout: float = 120.0) -> float:
    """Seconds until GET url/readyz answers 200; raises if a process dies or time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if stack.dead():
            raise RuntimeError(f"process(es) exited early: {', '.join(stack.dead())}; see logs")
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url}/readyz did not answer 200 within {timeout:.0f} s")


def serve_forever(settings: Settings, train_if_empty: bool = True) -> int:
    """`make up`: train if the store is empty, start everything, wait for Ctrl-C or `make down`."""
    began = time.monotonic()
    for layer in tract_layers(settings):
        if train_if_empty and not has_current(layer.settings):
            train_first_model(settings, layer.name if settings.layers is not None else None)
    stack = start_stack(settings)
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    (stack.run_dir / "supervisor.pid").write_text(str(os.getpid()))
    try:
        url = public_url(settings)
        wait_ready(url, stack)
        print_welcome(url, settings, time.monotonic() - began, stack.nginx)
        while not stopping and not stack.dead():
            time.sleep(0.5)
        if stack.dead() and not stopping:
            print(f"stopping: {', '.join(stack.dead())} exited (logs in {stack.run_dir}/logs)")
            return 1
        return 0
    finally:
        stack.stop()
        (stack.run_dir / "supervisor.pid").unlink(missing_ok=True)
        print("tractcast stopped")


def example_point(url: str) -> tuple[float, float]:
    """A point inside the first tract of the served layer, for the printed examples."""
    first = requests.get(f"{url}/v1/tracts", timeout=10).json()["tracts"][0]["id"]
    outline = requests.get(f"{url}/v1/tracts/{first}", timeout=10).json()
    point = shapely.geometry.shape(outline["geometry"]).representative_point()
    return round(point.y, 4), round(point.x, 4)


def print_welcome(url: str, settings: Settings, seconds: float, nginx: bool) -> None:
    via = "nginx" if nginx else "tractcast's own gateway (nginx not installed)"
    print(f"\ntractcast is ready after {seconds:.1f} s at {url} (through {via})\n")
    lat, lon = example_point(url)
    print(f"dashboard: {url}/\n")
    print("try:")
    print(f"  curl '{url}/v1/forecast?lat={lat}&lon={lon}'")
    print(f"  curl '{url}/v1/stats/radius?lat={lat}&lon={lon}&radius_km=50'")
    print(f"  curl '{url}/v1/tracts/lookup?lat={lat}&lon={lon}'")
    print(f"  curl '{url}/v1/models/current'")
    if settings.admin_token:
        print("admin (Authorization: Bearer $TRACTCAST_ADMIN_TOKEN): POST /v1/admin/rollback,")
        print('  /v1/admin/promote {"version": ...} and /v1/admin/retrain (README, Public API)')
    print("\nCtrl-C or `make down` stops everything.", flush=True)


def stop_stack(run_dir: Path) -> int:
    """Stop a stack started by `serve_forever` in another process (make down)."""
    run_dir = Path(run_dir)
    supervisor = run_dir / "supervisor.pid"
    if supervisor.exists():
        pid = int(supervisor.read_text())
        if _signal(pid, signal.SIGTERM):
            for _ in range(100):
                if not _alive(pid):
                    return 1
                time.sleep(0.1)
    stopped = 0
    for pid_file in run_dir.glob("*.pid"):
        pid = int(pid_file.read_text() or 0)
        if pid and _signal(-pid, signal.SIGTERM):
            stopped += 1
        pid_file.unlink(missing_ok=True)
    return stopped


def _spawn(stack: Stack, name: str, cmd: list[str], env: dict[str, str], log_dir: Path) -> None:
    with open(log_dir / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    stack.processes[name] = proc
    (stack.run_dir / f"{name}.pid").write_text(str(proc.pid))


def _terminate(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    _signal(-proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal(-proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _alive(pid: int) -> bool:
    return _signal(pid, 0)
