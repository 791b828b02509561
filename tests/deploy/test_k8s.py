"""The Kubernetes manifests: valid against the Kubernetes schemas and the same stack as compose."""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tractcast import k8s
from tractcast.errors import InvalidInput
from tractcast.nginxconf import NGINX_TEMPLATE, TEMPLATE_DIR, render_nginx_conf

ROOT = Path(__file__).resolve().parents[2]
# The oldest Kubernetes still commonly run, and the newest the package ships schemas for.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
GUNICORN_SERVICES = {"api", "geo", "registry", "retrainer"}
TOKEN = "test-token-not-a-secret"

Files = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(k8s.COMPOSE_FILE.read_text())


@pytest.fixture
def values() -> dict[str, Any]:
    return k8s.load_values([])


@pytest.fixture(scope="module")
def files(compose: dict[str, Any]) -> Files:
    values = k8s.load_values([])
    values["secrets"]["adminToken"] = TOKEN
    return k8s.render(compose, {}, values)


def objects(files: Files) -> Iterator[dict[str, Any]]:
    for group in files.values():
        yield from group


def find(files: Files, kind: str, name: str) -> dict[str, Any]:
    hits = [o for o in objects(files) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} objects"
    return hits[0]


def container(files: Files, name: str) -> dict[str, Any]:
    return find(files, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path))
        return [f"{obj['kind']}/{obj['metadata']['name']} {where}: {exc.message}"]
    return []


def compose_health_path(service: dict[str, Any]) -> str:
    test = " ".join(service["healthcheck"]["test"])
    return re.search(r"http://127\.0\.0\.1:\d+(/[^'\s]*)", test).group(1)


def compose_args(command: str | list[str]) -> list[str]:
    """Compose's command as the kubelet's args: ${VAR:-x} becomes $(VAR), from the ConfigMap."""
    words = shlex.split(command) if isinstance(command, str) else command
    return [re.sub(r"\$\{(\w+):-[^}]*\}", r"$(\1)", word) for word in words]


def compose_port(service: dict[str, Any]) -> int:
    return int(re.search(r"--bind 0\.0\.0\.0:(\d+)", service["command"]).group(1))


# ---- the Kubernetes schemas ----------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_rendered_object_follows_the_kubernetes_schemas(files: Files, version: str) -> None:
    errors = [e for obj in objects(files) for e in schema_errors(obj, version)]
    assert errors == []


def test_the_schema_check_rejects_a_misspelt_probe_and_a_wrong_type(files: Files) -> None:
    broken = copy.deepcopy(find(files, "Deployment", "api"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGets"] = {}
    assert schema_errors(broken, K8S_VERSIONS[0])
    broken = copy.deepcopy(find(files, "HorizontalPodAutoscaler", "api"))
    broken["spec"]["minReplicas"] = "two"
    assert schema_errors(broken, K8S_VERSIONS[0])


def test_the_render_holds_the_parts_an_operator_expects(files: Files) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects(files))
    deployments = {name for kind, name in kinds if kind == "Deployment"}
    assert deployments == {
        "nginx",
        "api",
        "geo",
        "registry",
        "retrainer",
        "retrainer-scheduler",
        "retrainer-worker",
    }
    services = {name for kind, name in kinds if kind == "Service"}
    assert services == GUNICORN_SERVICES | {"nginx"}
    assert ("HorizontalPodAutoscaler", "api") in kinds
    assert ("PodDisruptionBudget", "api") in kinds
    assert ("ConfigMap", k8s.CONFIG_NAME) in kinds
    assert ("Secret", k8s.SECRET_NAME) in kinds
    assert ("PersistentVolumeClaim", "model-store") in kinds
    namespaces = {
        o["metadata"].get("namespace") for o in objects(files) if o["kind"] != "Namespace"
    }
    assert namespaces == {"tractcast"}


# ---- the same stack as docker-compose.yml --------------------------------------------------


def drift(compose: dict[str, Any], files: Files) -> list[str]:
    """Every way the rendered manifests differ from what compose says, as readable lines."""
    found = []
    services = compose["services"]
    config = find(files, "ConfigMap", k8s.CONFIG_NAME)["data"]
    secret_keys = set(k8s.SECRET_SETTINGS)
    for name, service in services.items():
        if name in k8s.EXTERNAL_SERVICES | k8s.MONITORING_SERVICES:
            continue
        deployment = find(files, "Deployment", name)
        pod = deployment["spec"]["template"]["spec"]
        box = pod["containers"][0]
        if box["image"] != service["image"]:
            found.append(f"{name}: image {box['image']} != {service['image']}")
        # the command, word for word (compose's ${VAR:-x} is the kubelet's $(VAR))
        if "command" in service:
            words = compose_args(service["command"])
            if box.get("args") != words:
                found.append(f"{name}: args {box.get('args')} != {words}")
        # health: compose's check is the liveness probe; gunicorn services are ready on /readyz
        liveness = box["livenessProbe"]
        if name in GUNICORN_SERVICES | {"nginx"}:
            path = compose_health_path(service)
            if liveness.get("httpGet", {}).get("path") != path:
                found.append(f"{name}: liveness {liveness} is not {path}")
        ready = box.get("readinessProbe", {}).get("httpGet", {}).get("path")
        if name in GUNICORN_SERVICES and ready != "/readyz":
            found.append(f"{name}: readiness on {ready}, not /readyz")
        # ports: the container listens where compose binds; the Service is named as in compose
        if name in GUNICORN_SERVICES:
            port = compose_port(service)
            listening = [p["containerPort"] for p in box.get("ports", [])]
            exposed = [p["port"] for p in find(files, "Service", name)["spec"]["ports"]]
            if listening != [port] or exposed != [port]:
                found.append(f"{name}: ports {listening}/{exposed}, compose binds {port}")
        # TRACTCAST_*: what compose sets is what the pod gets (backends are values, secrets refs)
        env = {e["name"] for e in box.get("env", [])}
        if service.get("env_file"):
            if box.get("envFrom") != [{"configMapRef": {"name": k8s.CONFIG_NAME}}]:
                found.append(f"{name}: does not read the settings ConfigMap")
            if not secret_keys <= env:
                found.append(f"{name}: lacks the secrets {secret_keys - env}")
        for key, value in (service.get("environment") or {}).items():
            backend = key in set(k8s.EXTERNAL_SETTINGS.values()) | secret_keys
            if key.startswith("TRACTCAST_") and not backend and config.get(key) != str(value):
                found.append(f"{name}: {key}={config.get(key)!r}, compose {value!r}")
            if not key.startswith("TRACTCAST_") and key not in env:
                found.append(f"{name}: compose's {key} is not in the pod")
        # replicas: the scheduler is one pod, replaced rather than rolled
        if name in k8s.SINGLETONS:
            if (
                deployment["spec"].get("replicas") != 1
                or service.get("deploy", {}).get("replicas", 1) != 1
            ):
                found.append(f"{name}: not exactly one replica")
            if deployment["spec"]["strategy"] != {"type": "Recreate"}:
                found.append(f"{name}: strategy {deployment['spec']['strategy']}, not Recreate")
        # GPU reservation -> GPU limit on GPU nodes
        gpus = k8s.gpu_count(service)
        limit = box.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)
        if gpus != limit or (gpus and not pod.get("nodeSelector")):
            found.append(f"{name}: {limit} GPUs on {pod.get('nodeSelector')}, compose {gpus}")
        # mounts: the model store where compose mounts it
        compose_mounts = {
            v.split(":")[1] for v in service.get("volumes", []) if v.startswith("model-store:")
        }
        mounted = {
            m["mountPath"] for m in box.get("volumeMounts", []) if m["name"] == "model-store"
        }
        if compose_mounts != mounted:
            found.append(f"{name}: model store at {mounted}, compose {compose_mounts}")
    return found


def test_the_manifests_run_what_compose_runs(compose: dict[str, Any], files: Files) -> None:
    assert drift(compose, files) == []


@pytest.mark.parametrize(
    "tamper",
    [
        lambda f: container(f, "api").update(image="tractcast:other"),
        lambda f: container(f, "geo")["livenessProbe"]["httpGet"].update(path="/alive"),
        lambda f: container(f, "api")["readinessProbe"]["httpGet"].update(path="/healthz"),
        lambda f: find(f, "Service", "registry")["spec"]["ports"][0].update(port=9003),
        lambda f: find(f, "ConfigMap", k8s.CONFIG_NAME)["data"].update(
            TRACTCAST_GEO_URL="http://geo:9002"
        ),
        lambda f: find(f, "Deployment", "retrainer-scheduler")["spec"].update(replicas=2),
        lambda f: find(f, "Deployment", "retrainer-scheduler")["spec"].update(
            strategy={"type": "RollingUpdate"}
        ),
        lambda f: container(f, "retrainer-worker")["resources"]["limits"].pop("nvidia.com/gpu"),
        lambda f: container(f, "api")["env"].pop(),
        lambda f: container(f, "retrainer")["args"].append("--reload"),
        lambda f: container(f, "registry").pop("volumeMounts"),
    ],
    ids=[
        "image",
        "liveness",
        "readiness",
        "port",
        "setting",
        "replicas",
        "strategy",
        "gpu",
        "env",
        "command",
        "mount",
    ],
)
def test_the_drift_check_catches_a_manifest_that_differs_from_compose(
    compose: dict[str, Any], files: Files, tamper: Any
) -> None:
    changed = copy.deepcopy(files)
    tamper(changed)
    assert drift(compose, changed)


def test_a_change_in_compose_reaches_the_manifests(compose: dict[str, Any], values: dict) -> None:
    changed = copy.deepcopy(compose)
    geo = changed["services"]["geo"]
    geo["command"] = geo["command"].replace("0.0.0.0:8002", "0.0.0.0:9002")
    geo["healthcheck"]["test"][-1] = geo["healthcheck"]["test"][-1].replace("8002", "9002")
    for service in changed["services"].values():
        if (service.get("environment") or {}).get("TRACTCAST_GEO_URL"):
            service["environment"] = {
                **service["environment"],
                "TRACTCAST_GEO_URL": "http://geo:9002",
            }
    changed["services"]["api"]["image"] = "tractcast:2.0"
    files = k8s.render(changed, {}, values)
    assert drift(changed, files) == []
    assert find(files, "Service", "geo")["spec"]["ports"][0]["port"] == 9002
    assert container(files, "geo")["readinessProbe"]["httpGet"]["port"] == 9002
    assert (
        find(files, "ConfigMap", k8s.CONFIG_NAME)["data"]["TRACTCAST_GEO_URL"] == "http://geo:9002"
    )
    assert container(files, "api")["image"] == "tractcast:2.0"


def test_every_setting_of_env_example_is_in_the_configmap_or_the_secret(files: Files) -> None:
    names = set(k8s.read_env_file(k8s.ENV_EXAMPLE))
    config = set(find(files, "ConfigMap", k8s.CONFIG_NAME)["data"])
    secret = set(find(files, "Secret", k8s.SECRET_NAME)["stringData"])
    assert config | secret | k8s.LOCAL_ONLY_SETTINGS == names
    assert config & secret == set()
    assert secret == set(k8s.SECRET_SETTINGS)


def test_settings_come_from_env_example_then_the_env_file_then_values(
    compose: dict[str, Any], values: dict
) -> None:
    values["settings"] = {"TRACTCAST_EPOCHS": "50"}
    values["external"]["s3Bucket"] = "tractcast-models"
    env = {"TRACTCAST_HORIZON": "7", "TRACTCAST_EPOCHS": "10", "TRACTCAST_HOST": "127.0.0.1"}
    config = find(k8s.render(compose, env, values), "ConfigMap", k8s.CONFIG_NAME)["data"]
    assert config["TRACTCAST_HORIZON"] == "7"  # the env file over .env.example
    assert config["TRACTCAST_EPOCHS"] == "50"  # values over the env file
    assert config["TRACTCAST_HOST"] == "0.0.0.0"  # compose's own setting over the env file
    assert config["TRACTCAST_SEED"] == "42"  # .env.example's default
    assert config["TRACTCAST_S3_BUCKET"] == "tractcast-models"
    assert config["TRACTCAST_BROKER_URL"] == values["external"]["brokerUrl"]


def test_every_reference_a_pod_makes_resolves_to_a_rendered_key(files: Files) -> None:
    config = set(find(files, "ConfigMap", k8s.CONFIG_NAME)["data"])
    secret = set(find(files, "Secret", k8s.SECRET_NAME)["stringData"])
    claims = {o["metadata"]["name"] for o in objects(files) if o["kind"] == "PersistentVolumeClaim"}
    for deployment in (o for o in objects(files) if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        box = pod["containers"][0]
        for word in box.get("args", []):
            assert set(re.findall(r"\$\((\w+)\)", word)) <= config, word
        for env in box.get("env", []):
            ref = env.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                assert ref["configMapKeyRef"]["key"] in config, env
            if "secretKeyRef" in ref:
                assert ref["secretKeyRef"]["key"] in secret, env
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, volume
        mounted = {m["name"] for m in box.get("volumeMounts", [])}
        assert mounted == {v["name"] for v in pod.get("volumes", [])}


def test_the_gunicorn_services_serve_the_probed_paths() -> None:
    for name in GUNICORN_SERVICES:
        views = (ROOT / "services" / name / "views.py").read_text()
        for path in ("/healthz", "/readyz"):
            assert re.search(rf'\.get\("{path}"\)', views), f"{name} has no {path}"


def test_nginx_gets_every_placeholder_and_renders_a_complete_config(files: Files) -> None:
    box = container(files, "nginx")
    config = find(files, "ConfigMap", k8s.CONFIG_NAME)["data"]
    env = {
        e["name"]: e.get("value") or config[e["valueFrom"]["configMapKeyRef"]["key"]]
        for e in box["env"]
    }
    entrypoint = (ROOT / "nginx" / "docker-entrypoint.sh").read_text()
    substituted = set(re.findall(r"\$\{(\w+)\}", entrypoint.split("nginx.conf.template")[0]))
    assert substituted <= set(env) | {"NGINX_RUN_DIR"}
    text = render_nginx_conf(TEMPLATE_DIR / NGINX_TEMPLATE, env)
    for upstream in ("API", "GEO", "REGISTRY", "RETRAINER"):
        host, port = env[f"{upstream}_UPSTREAM"].split(":")
        assert f"server {host}:{port};" in text
        service = find(files, "Service", host)
        assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    assert f"listen {env['NGINX_PORT']};" in text
    assert int(env["NGINX_PORT"]) in [p["containerPort"] for p in box["ports"]]
    assert f"rate={config['TRACTCAST_RATE_LIMIT']};" in text


def test_nginx_is_published_on_the_http_port_and_tls_from_an_optional_secret(
    compose: dict[str, Any], values: dict
) -> None:
    values["settings"] = {"TRACTCAST_HTTP_PORT": "80"}
    files = k8s.render(compose, {}, values)
    service = find(files, "Service", "nginx")
    assert service["spec"]["type"] == "LoadBalancer"
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        (80, "http"),
        (8443, "https"),
    ]
    pod = find(files, "Deployment", "nginx")["spec"]["template"]["spec"]
    certs = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] == certs["/etc/nginx/certs"])
    assert volume["secret"] == {"secretName": "tractcast-tls", "optional": True}


# ---- Kubernetes' own rules ------------------------------------------------------------------


def test_the_api_autoscales_and_keeps_pods_through_a_drain(files: Files) -> None:
    hpa = find(files, "HorizontalPodAutoscaler", "api")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert "replicas" not in find(files, "Deployment", "api")["spec"]  # the autoscaler's count
    assert container(files, "api")["resources"]["requests"]["cpu"]  # what utilisation is of
    pdb = find(files, "PodDisruptionBudget", "api")["spec"]
    assert 1 <= pdb["minAvailable"] < hpa["minReplicas"]
    labels = find(files, "Deployment", "api")["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()


def test_every_service_selects_the_pods_of_its_deployment_only(files: Files) -> None:
    for service in (o for o in objects(files) if o["kind"] == "Service"):
        name = service["metadata"]["name"]
        for deployment in (o for o in objects(files) if o["kind"] == "Deployment"):
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            selected = service["spec"]["selector"].items() <= labels.items()
            assert selected == (deployment["metadata"]["name"] == name), (name, deployment)


def test_pods_run_unprivileged_as_the_image_s_user(files: Files) -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    uid = int(re.search(r"--uid (\d+)", dockerfile).group(1))
    for deployment in (o for o in objects(files) if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        if pod["containers"][0]["image"].startswith("tractcast:"):
            assert pod["securityContext"]["runAsUser"] == uid
        assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_a_settings_change_rolls_the_pods(compose: dict[str, Any], values: dict) -> None:
    values["secrets"]["adminToken"] = TOKEN
    before = k8s.render(compose, {}, values)
    values["settings"] = {"TRACTCAST_EPOCHS": "5"}
    after = k8s.render(compose, {}, values)

    def checksum(files: Files) -> str:
        annotations = find(files, "Deployment", "api")["spec"]["template"]["metadata"]
        return annotations["annotations"]["tractcast/settings-checksum"]

    assert checksum(before) != checksum(after)


# ---- secrets --------------------------------------------------------------------------------


def test_no_real_secret_is_committed_and_an_empty_token_is_generated(
    compose: dict[str, Any], values: dict
) -> None:
    shipped = yaml.safe_load(k8s.VALUES_FILE.read_text())["secrets"]
    assert shipped["adminToken"] == ""
    assert "CHANGE-ME" in shipped["databaseUrl"]
    tokens = {
        find(k8s.render(compose, {}, values), "Secret", k8s.SECRET_NAME)["stringData"][
            "TRACTCAST_ADMIN_TOKEN"
        ]
        for _ in range(2)
    }
    assert len(tokens) == 2 and all(len(t) >= 40 for t in tokens)


def test_an_env_file_serving_from_s3_is_refused_for_the_values_switch(
    compose: dict[str, Any], values: dict
) -> None:
    with pytest.raises(InvalidInput, match="for Kubernetes set values.serving.source"):
        k8s.render(compose, {"TRACTCAST_SERVING_SOURCE": "s3"}, values)


def test_a_misspelt_setting_in_the_env_file_is_refused(compose: dict, values: dict) -> None:
    with pytest.raises(InvalidInput, match=r"env file sets \['TRACTCAST_EPOCH'\]"):
        k8s.render(compose, {"TRACTCAST_EPOCH": "5", "AWS_REGION": "eu-south-1"}, values)


def test_the_env_file_s_admin_token_is_the_one_deployed(
    compose: dict[str, Any], values: dict
) -> None:
    files = k8s.render(compose, {"TRACTCAST_ADMIN_TOKEN": "from-dot-env"}, values)
    assert (
        find(files, "Secret", k8s.SECRET_NAME)["stringData"]["TRACTCAST_ADMIN_TOKEN"]
        == "from-dot-env"
    )


def test_an_existing_secret_is_referenced_instead_of_rendered(
    compose: dict[str, Any], values: dict
) -> None:
    values["secrets"]["existingSecret"] = "sealed-tractcast"
    files = k8s.render(compose, {}, values)
    assert not [o for o in objects(files) if o["kind"] == "Secret"]
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in container(files, "registry")["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {"sealed-tractcast"}


def test_secrets_named_in_values_reach_every_python_pod_like_compose_s_env_file(
    compose: dict[str, Any], values: dict
) -> None:
    values["secrets"]["envFrom"] = ["tractcast-s3"]
    files = k8s.render(compose, {}, values)
    for name, service in compose["services"].items():
        if service.get("env_file"):
            assert {"secretRef": {"name": "tractcast-s3"}} in container(files, name)["envFrom"]
    assert "envFrom" not in container(files, "nginx")


# ---- several tract layers --------------------------------------------------------------------

LAYERS_TOML = """\
[[layers]]
name = "municipalities"
tracts = "/data/municipalities.geojson"
data_source = "https://example.org/municipalities.csv"
database_url = "postgresql+psycopg2://tractcast@db:5432/municipalities"
s3_bucket = "tractcast-municipalities"

[[layers]]
name = "provinces"
tracts = "/data/provinces.geojson"
data_source = "s3://tractcast-data/provinces.csv.gz"
database_url = "postgresql+psycopg2://tractcast@db:5432/provinces"
s3_bucket = "tractcast-provinces"
"""


@pytest.fixture
def layers_file(tmp_path: Path) -> Path:
    path = tmp_path / "layers.toml"
    path.write_text(LAYERS_TOML)
    return path


def python_pods(compose: dict[str, Any], files: Files) -> dict[str, dict[str, Any]]:
    """The pod specs of the compose services that read the settings (env_file)."""
    return {
        name: find(files, "Deployment", name)["spec"]["template"]["spec"]
        for name, service in k8s.rendered_services(compose).items()
        if service.get("env_file")
    }


def mounted_file(pod: dict[str, Any], path: str) -> tuple[dict[str, Any], str] | None:
    """The volume and key a pod's container sees at `path`, if a ConfigMap or Secret holds it."""
    for mount in pod["containers"][0].get("volumeMounts", []):
        folder = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(folder):
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            return volume, path[len(folder) :]
    return None


def test_a_layers_file_in_values_is_a_configmap_every_python_pod_reads(
    compose: dict[str, Any], values: dict, layers_file: Path
) -> None:
    values["layers"]["file"] = str(layers_file)
    files = k8s.render(compose, {}, values)
    settings = find(files, "ConfigMap", k8s.CONFIG_NAME)["data"]
    layers = find(files, "ConfigMap", k8s.LAYERS_NAME)
    assert settings["TRACTCAST_LAYERS"] == k8s.LAYERS_FILE
    pods = python_pods(compose, files)
    assert set(pods) == {
        "api", "geo", "registry", "retrainer", "retrainer-scheduler", "retrainer-worker"
    }  # fmt: skip
    for name, pod in pods.items():
        seen = mounted_file(pod, settings["TRACTCAST_LAYERS"])
        assert seen is not None, f"{name} does not see the layers file"
        volume, key = seen
        assert volume["configMap"] == {"name": k8s.LAYERS_NAME}, name
        assert layers["data"][key] == LAYERS_TOML, name
    nginx = find(files, "Deployment", "nginx")["spec"]["template"]["spec"]
    assert mounted_file(nginx, k8s.LAYERS_FILE) is None
    # the layers' stores are folders of the shared store, as on one host
    assert container(files, "registry")["volumeMounts"][0]["name"] == "model-store"


def test_pods_find_the_layers_file_where_compose_mounts_it() -> None:
    override = yaml.safe_load((ROOT / "docker-compose.layers.yml").read_text())
    for name, service in override["services"].items():
        targets = [spec.split(":")[-2] for spec in service["volumes"]]
        assert targets == [k8s.LAYERS_FILE], name
        assert service["environment"]["TRACTCAST_LAYERS"] == k8s.LAYERS_FILE, name


def test_without_a_layers_file_no_pod_reads_one(compose: dict[str, Any], files: Files) -> None:
    assert find(files, "ConfigMap", k8s.CONFIG_NAME)["data"]["TRACTCAST_LAYERS"] == ""
    assert not [o for o in objects(files) if o["metadata"]["name"] == k8s.LAYERS_NAME]
    for name, pod in python_pods(compose, files).items():
        assert mounted_file(pod, k8s.LAYERS_FILE) is None, name


def test_the_env_file_s_layers_file_is_deployed_as_compose_mounts_it(
    compose: dict[str, Any], values: dict, layers_file: Path
) -> None:
    files = k8s.render(compose, {"TRACTCAST_LAYERS": str(layers_file)}, values)
    assert find(files, "ConfigMap", k8s.LAYERS_NAME)["data"]["layers.toml"] == LAYERS_TOML
    assert find(files, "ConfigMap", k8s.CONFIG_NAME)["data"]["TRACTCAST_LAYERS"] == k8s.LAYERS_FILE


def test_an_existing_secret_can_hold_the_layers_file(compose: dict, values: dict) -> None:
    values["layers"]["existingSecret"] = "tractcast-layers-with-passwords"
    files = k8s.render(compose, {}, values)
    assert not [o for o in objects(files) if o["metadata"]["name"] == k8s.LAYERS_NAME]
    for name, pod in python_pods(compose, files).items():
        volume, key = mounted_file(pod, k8s.LAYERS_FILE)
        assert volume["secret"] == {"secretName": "tractcast-layers-with-passwords"}, name
        assert key == "layers.toml"


def test_a_change_of_the_layers_file_rolls_the_pods(
    compose: dict[str, Any], values: dict, layers_file: Path
) -> None:
    values["secrets"]["adminToken"] = TOKEN
    values["layers"]["file"] = str(layers_file)

    def checksum() -> str:
        pod = find(k8s.render(compose, {}, values), "Deployment", "geo")["spec"]["template"]
        return pod["metadata"]["annotations"]["tractcast/settings-checksum"]

    before = checksum()
    layers_file.write_text(LAYERS_TOML.replace('"/data/provinces', '"/data/regions'))
    assert checksum() != before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('"/data/provinces.geojson"', '"provinces.geojson"'), "a path relative to the file's"),
        (('name = "provinces"', 'name = "Provinces"'), "malformed layer name"),
        (('name = "provinces"', 'name = "municipalities"'), "names a layer twice"),
        (('name = "provinces"', 'name = "provinces"\nport = 80'), "cannot: port"),
    ],
    ids=["relative-path", "name", "same-name", "not-per-layer"],
)
def test_the_renderer_refuses_a_layers_file_the_pods_would_refuse(
    compose: dict[str, Any], values: dict, layers_file: Path, change: tuple, message: str
) -> None:
    layers_file.write_text(LAYERS_TOML.replace(*change))
    values["layers"]["file"] = str(layers_file)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        k8s.render(compose, {}, values)


# ---- api and geo serving from S3 ------------------------------------------------------------


@pytest.fixture
def from_s3(compose: dict[str, Any], values: dict, layers_file: Path) -> Files:
    values["secrets"]["adminToken"] = TOKEN
    values["serving"]["source"] = "s3"
    values["external"]["s3Bucket"] = "tractcast-models"
    values["secrets"]["envFrom"] = ["tractcast-s3-credentials"]
    values["layers"]["file"] = str(layers_file)
    return k8s.render(compose, {}, values)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_layers_and_s3_serving_variant_follows_the_kubernetes_schemas(
    from_s3: Files, version: str
) -> None:
    errors = [e for obj in objects(from_s3) for e in schema_errors(obj, version)]
    assert errors == []


def test_api_and_geo_serve_from_s3_with_a_cache_of_their_own_and_no_shared_store(
    compose: dict[str, Any], from_s3: Files
) -> None:
    config = find(from_s3, "ConfigMap", k8s.CONFIG_NAME)["data"]
    assert config["TRACTCAST_S3_BUCKET"] == "tractcast-models"  # the mirror the registry writes
    for name, pod in python_pods(compose, from_s3).items():
        box = pod["containers"][0]
        env = {e["name"]: e for e in box.get("env", [])}
        claims = {v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        mounts = {m["mountPath"]: m["name"] for m in box["volumeMounts"]}
        assert {"configMapRef": {"name": k8s.CONFIG_NAME}} in box["envFrom"], name
        assert {"secretRef": {"name": "tractcast-s3-credentials"}} in box["envFrom"], name
        assert "secretKeyRef" in env["TRACTCAST_DATABASE_URL"]["valueFrom"], name
        assert mounted_file(pod, k8s.LAYERS_FILE) is not None, name
        if name in {"api", "geo"}:
            assert env["TRACTCAST_SERVING_SOURCE"].get("value") == "s3", name
            assert claims == set(), f"{name} mounts {claims}"
            cached = mounts[config["TRACTCAST_SERVING_CACHE"]]
            cache = next(v for v in pod["volumes"] if v["name"] == cached)
            assert cache["emptyDir"] == {"sizeLimit": "2Gi"}, name
        else:  # the registry and the retrainer pods keep writing the shared store
            assert "TRACTCAST_SERVING_SOURCE" not in env, name
            assert config["TRACTCAST_SERVING_SOURCE"] == "local"
            assert claims == {"model-store"}, name
        assert {m["name"] for m in box["volumeMounts"]} == {v["name"] for v in pod["volumes"]}
    # the store is still claimed, by the pods that write it
    assert find(from_s3, "PersistentVolumeClaim", "model-store")


def test_serving_from_the_store_keeps_api_on_the_shared_store(files: Files) -> None:
    api = find(files, "Deployment", "api")["spec"]["template"]["spec"]
    assert [v["name"] for v in api["volumes"]] == ["model-store"]
    assert "TRACTCAST_SERVING_SOURCE" not in {e["name"] for e in api["containers"][0]["env"]}


# ---- what the renderer refuses ----------------------------------------------------------------


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree[key]
    tree[leaf] = value


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("replicas.retrainer-scheduler", 2, "exactly one replica"),
        ("disruptionBudgets.api.minAvailable", 2, "drain would wait forever"),
        ("autoscaling.api.maxReplicas", 1, "minReplicas above maxReplicas"),
        ("settings", {"TRACTCAST_EPOCH": "5"}, "no setting"),
        ("settings", {"TRACTCAST_ADMIN_TOKEN": "x"}, "values.secrets"),
        ("settings", {"TRACTCAST_RATE_LIMIT": "fast"}, "TRACTCAST_RATE_LIMIT"),
        ("settings", {"TRACTCAST_HORIZON": "soon"}, "settings for Kubernetes"),
        ("bindMounts", {"./var/certs": None}, "no entry for ./data"),
        ("volumes", {}, "no entry for compose volume model-store"),
        ("replicas.api", 3, "autoscaling.api.minReplicas sets it"),
        ("resources.postgres", {}, "names no compose service"),
        ("secrets.databaseUrl", "", "databaseUrl is empty"),
        ("serving.source", "s3", "values.serving.source=s3 needs external.s3Bucket"),
        ("serving.source", "nfs", "expected one of local, s3"),
        ("settings", {"TRACTCAST_SERVING_SOURCE": "s3"}, "set values.serving.source"),
        ("settings", {"TRACTCAST_LAYERS": "/etc/layers.toml"}, "set values.layers.file"),
        ("layers", {"file": "/nowhere/layers.toml"}, "cannot be read"),
        ("layers", {"file": "a.toml", "existingSecret": "b"}, "not both"),
    ],
)
def test_the_renderer_refuses_values_that_would_break_the_deployment(
    compose: dict[str, Any], values: dict, dotted: str, value: Any, message: str
) -> None:
    _set(values, dotted, value)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        k8s.render(compose, {}, values)


def test_a_compose_service_the_renderer_cannot_carry_over_is_refused(
    compose: dict[str, Any], values: dict
) -> None:
    changed = copy.deepcopy(compose)
    changed["services"]["sidecar"] = {"image": "busybox", "command": "sleep 1d"}
    with pytest.raises(InvalidInput, match="sidecar: no image or health check"):
        k8s.render(changed, {}, values)


def test_the_scheduler_stays_single_when_compose_scales_it(compose: dict, values: dict) -> None:
    changed = copy.deepcopy(compose)
    changed["services"]["retrainer-scheduler"]["deploy"]["replicas"] = 2
    with pytest.raises(InvalidInput, match="exactly one replica"):
        k8s.render(changed, {}, values)


# ---- make k8s ---------------------------------------------------------------------------------


def test_make_k8s_writes_one_file_per_part_and_removes_stale_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "k8s"
    out.mkdir()
    (out / "30-gone.yaml").write_text("kind: Deployment\n")
    (out / "notes.txt").write_text("mine")
    overrides = tmp_path / "mine.yaml"
    overrides.write_text(
        "imageRegistry: registry.example.org/health/\nimageTag: '1.4'\n"
        "secrets: {databaseUrl: 'postgresql+psycopg2://u:p@db:5432/t'}\n"
    )
    assert k8s.main(["--out", str(out), "--values", str(overrides)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert "30-gone.yaml" not in names and "notes.txt" in names
    assert {"00-namespace.yaml", "10-settings.yaml", "30-api.yaml", "30-nginx.yaml"} <= set(names)
    assert (out / "10-settings.yaml").stat().st_mode & 0o077 == 0
    api = list(yaml.safe_load_all((out / "30-api.yaml").read_text()))
    image = api[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.org/health/tractcast-serve:1.4"  # api: the serve image
    for path in out.glob("*.yaml"):
        for obj in yaml.safe_load_all(path.read_text()):
            assert schema_errors(obj, K8S_VERSIONS[0]) == []
    warnings = capsys.readouterr().err
    assert "external.brokerUrl is still the shipped placeholder" in warnings
    assert "secrets.databaseUrl" not in warnings


def test_make_k8s_reports_a_refusal_without_writing(tmp_path: Path, capsys) -> None:
    overrides = tmp_path / "bad.yaml"
    overrides.write_text("replicas: {retrainer-scheduler: 3}\n")
    assert k8s.main(["--out", str(tmp_path / "k8s"), "--values", str(overrides)]) == 2
    assert "exactly one replica" in capsys.readouterr().err
    assert not (tmp_path / "k8s").exists()
