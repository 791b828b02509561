"""Render Kubernetes manifests for the compose stack: `python -m tractcast.k8s --out var/k8s`.

docker-compose.yml is the one source of what runs (images, commands, ports, health checks,
mounts, the services' environment) and .env.example of the TRACTCAST_* defaults; k8s/values.yaml
adds only what Kubernetes alone needs (replicas, autoscaling, budgets, resources, the GPU node
selector, the external backends, secrets, the layers file, where api and geo read bundles).
Nothing is repeated, so the two deployments cannot drift; anything in compose the renderer does
not know how to carry over is refused, not dropped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import secrets
import shlex
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tractcast.errors import InvalidInput
from tractcast.nginxconf import TLS_PORT, check_rate
from tractcast.registry.remote import SERVING_SOURCES
from tractcast.settings import Settings
from tractcast.tract_layers import tract_layers

# The inputs in a source checkout (the installed package does not ship them).
ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
VALUES_FILE = ROOT / "k8s" / "values.yaml"
PROMETHEUS_FILE = ROOT / "monitoring" / "prometheus.yml"

#: Compose services a cluster gets from outside: values.external and secrets.databaseUrl.
EXTERNAL_SERVICES = frozenset({"redis", "postgres", "mlflow"})
#: Compose's own monitoring; a cluster scrapes the pods' prometheus.io annotations instead.
MONITORING_SERVICES = frozenset({"prometheus", "grafana"})
#: APScheduler must run in exactly one process: one replica, and the old pod gone first.
SINGLETONS = frozenset({"retrainer-scheduler"})
#: Settings kept in the Secret, never in the ConfigMap.
SECRET_SETTINGS = ("TRACTCAST_ADMIN_TOKEN", "TRACTCAST_DATABASE_URL")
#: Settings of the local runner only (`make up` choosing nginx or the gateway).
LOCAL_ONLY_SETTINGS = frozenset({"TRACTCAST_NGINX"})
#: values.external key -> the setting it fills.
EXTERNAL_SETTINGS = {
    "brokerUrl": "TRACTCAST_BROKER_URL",
    "mlflowUri": "TRACTCAST_MLFLOW_URI",
    "s3Bucket": "TRACTCAST_S3_BUCKET",
    "s3EndpointUrl": "TRACTCAST_S3_ENDPOINT_URL",
}
#: Settings a values section sets (they change mounts, not only the environment).
VALUES_SETTINGS = {
    "TRACTCAST_LAYERS": "values.layers.file",
    "TRACTCAST_SERVING_SOURCE": "values.serving.source",
}
#: Compose services that can serve from the S3 mirror instead of the shared store.
SERVED_FROM_S3 = frozenset({"api", "geo"})
CONFIG_NAME = "tractcast-settings"
SECRET_NAME = "tractcast-secrets"
LAYERS_NAME = "tractcast-layers"
#: Where the layers file is in every Python pod, as docker-compose.layers.yml mounts it.
LAYERS_FILE = "/etc/tractcast/layers.toml"
PART_OF = "tractcast"

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
_LOCAL_URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost):(\d+)(/[^'\"\s]*)")
_BIND = re.compile(r"--bind\s+\S*:(\d+)")
_DURATION = re.compile(r"(\d+)(h|m|s|ms)")

Object = dict[str, Any]


# ---- inputs ---------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a .env file (comments and blank lines skipped, no quoting rules)."""
    pairs = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value
    return pairs


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of two values trees; override wins, mappings merge key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(paths: Iterable[Path]) -> dict[str, Any]:
    """k8s/values.yaml merged with each file given, in order."""
    values: dict[str, Any] = yaml.safe_load(VALUES_FILE.read_text())
    for path in paths:
        values = merge_values(values, yaml.safe_load(Path(path).read_text()) or {})
    return values


# ---- small conversions ----------------------------------------------------------------------


def seconds(duration: str) -> int:
    """A compose duration ("15s", "1m30s") in whole seconds, at least 1."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise InvalidInput(f"docker-compose.yml: cannot read duration {duration!r}")
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return max(1, math.ceil(sum(int(n) * scale[u] for n, u in parts)))


def interpolate(text: str, config: Mapping[str, str], as_reference: bool) -> str:
    """Resolve compose's ${NAME:-default}: to $(NAME) (kubelet expands it) or to the value."""

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name not in config:
            raise InvalidInput(f"docker-compose.yml uses ${{{name}}}, which is no setting")
        return f"$({name})" if as_reference else (config[name] or default or "")

    return _INTERPOLATION.sub(one, text).replace("$$", "$")


def probe_action(test: list[str] | str) -> Object:
    """A compose health check as a probe: local HTTP gets become httpGet, the rest exec."""
    test = ["CMD-SHELL", test] if isinstance(test, str) else list(test)
    kind, args = test[0], test[1:]
    url = _LOCAL_URL.search(" ".join(args))
    if kind == "CMD" and url and args[0] in {"wget", "curl", "python"}:
        return {"httpGet": {"path": url.group(2), "port": int(url.group(1))}}
    if kind == "CMD-SHELL":
        return {"exec": {"command": ["sh", "-c", args[0].replace("$$", "$")]}}
    if kind == "CMD":
        return {"exec": {"command": [arg.replace("$$", "$") for arg in args]}}
    raise InvalidInput(f"docker-compose.yml: health check {test!r} is neither CMD nor CMD-SHELL")


def liveness_probe(healthcheck: Mapping[str, Any]) -> Object:
    """Compose's health check timing carried over: interval, timeout, retries, start period."""
    return {
        **probe_action(healthcheck["test"]),
        "initialDelaySeconds": seconds(healthcheck.get("start_period", "0s")),
        "periodSeconds": seconds(healthcheck.get("interval", "30s")),
        "timeoutSeconds": seconds(healthcheck.get("timeout", "30s")),
        "failureThreshold": int(healthcheck.get("retries", 3)),
    }


def readiness_probe(port: int, readiness: Mapping[str, Any]) -> Object:
    """The HTTP services' readiness: values.readiness.path (/readyz) on the service's port."""
    return {
        "httpGet": {"path": readiness["path"], "port": port},
        "periodSeconds": int(readiness["periodSeconds"]),
        "timeoutSeconds": int(readiness["timeoutSeconds"]),
        "failureThreshold": int(readiness["failureThreshold"]),
    }


def labels(component: str) -> dict[str, str]:
    """Labels every object of one compose service carries; the first two select its pods."""
    return {
        "app.kubernetes.io/name": PART_OF,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "tractcast-k8s",
    }


def selector(component: str) -> dict[str, str]:
    return {k: v for k, v in labels(component).items() if k.endswith(("/name", "/component"))}


def metadata(name: str, namespace: str, component: str) -> Object:
    return {"name": name, "namespace": namespace, "labels": labels(component)}


def image_name(image: str, values: Mapping[str, Any]) -> str:
    """Compose's image name with values.imageRegistry before it and values.imageTag for its tag."""
    name, _, tag = image.partition(":")
    return f"{values.get('imageRegistry') or ''}{name}:{values.get('imageTag') or tag or 'latest'}"


# ---- settings and secrets -------------------------------------------------------------------


def shared_environment(rendered: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The TRACTCAST_* environment compose gives its Python services; it must be one set."""
    sets = {
        name: {
            k: str(v) for k, v in (s.get("environment") or {}).items() if k.startswith("TRACTCAST_")
        }
        for name, s in rendered.items()
        if s.get("env_file")
    }
    distinct = {json.dumps(env, sort_keys=True) for env in sets.values()}
    if len(distinct) > 1:
        raise InvalidInput(f"compose services set different TRACTCAST_* variables: {sorted(sets)}")
    return next(iter(sets.values()), {})


def settings_config(
    env: Mapping[str, str], compose_env: Mapping[str, str], values: Mapping[str, Any]
) -> dict[str, str]:
    """The ConfigMap: .env.example <- env files <- compose's environment <- values; no secrets."""
    known = read_env_file(ENV_EXAMPLE)
    config = dict(known)
    for source, layer in (("env file", env), ("docker-compose.yml", compose_env)):
        config |= {k: v for k, v in layer.items() if k.startswith("TRACTCAST_")}
        unknown = {k for k in layer if k.startswith("TRACTCAST_") and k not in known}
        if unknown:
            raise InvalidInput(f"{source} sets {sorted(unknown)}, not in .env.example")
    overrides = {k: str(v) for k, v in (values.get("settings") or {}).items()}
    for name in overrides:
        if name in SECRET_SETTINGS:
            raise InvalidInput(f"values.settings.{name}: put it under values.secrets")
        if name in VALUES_SETTINGS:
            raise InvalidInput(f"values.settings.{name}: set {VALUES_SETTINGS[name]}")
        if name not in known:
            raise InvalidInput(f"values.settings.{name} is no setting (see .env.example)")
    config |= overrides
    for key, name in EXTERNAL_SETTINGS.items():
        config[name] = str(values["external"].get(key) or "")
    if config["TRACTCAST_SERVING_SOURCE"] != "local":
        raise InvalidInput(
            f"TRACTCAST_SERVING_SOURCE={config['TRACTCAST_SERVING_SOURCE']}: for Kubernetes set "
            f"{VALUES_SETTINGS['TRACTCAST_SERVING_SOURCE']} (api and geo then need no store)"
        )
    # The env file's TRACTCAST_LAYERS is the layers file on this machine, as compose mounts it.
    config["TRACTCAST_LAYERS"] = LAYERS_FILE if has_layers(env, values) else ""
    config = {
        k: v for k, v in config.items() if k not in SECRET_SETTINGS + tuple(LOCAL_ONLY_SETTINGS)
    }
    check_settings(config)
    return dict(sorted(config.items()))


def check_settings(config: Mapping[str, str]) -> None:
    """Refuse at render time what the pods would refuse at start."""
    try:
        Settings.from_env(config)
        check_rate("TRACTCAST_RATE_LIMIT", config["TRACTCAST_RATE_LIMIT"])
        check_rate("TRACTCAST_ADMIN_RATE_LIMIT", config["TRACTCAST_ADMIN_RATE_LIMIT"])
    except (ValueError, KeyError) as exc:
        raise InvalidInput(f"settings for Kubernetes: {exc}") from exc


def has_layers(env: Mapping[str, str], values: Mapping[str, Any]) -> bool:
    """Whether the pods get a layers file: values.layers, or the env file's TRACTCAST_LAYERS."""
    existing = (values.get("layers") or {}).get("existingSecret")
    return bool(existing or layers_path(env, values))


def layers_path(env: Mapping[str, str], values: Mapping[str, Any]) -> Path | None:
    """The layers file to put in the ConfigMap: values.layers.file, else the env file's
    TRACTCAST_LAYERS (the path docker-compose.layers.yml mounts); None with existingSecret."""
    given = values.get("layers") or {}
    if given.get("existingSecret"):
        if given.get("file"):
            raise InvalidInput("values.layers: set file or existingSecret, not both")
        return None
    path = str(given.get("file") or env.get("TRACTCAST_LAYERS") or "").strip()
    return Path(path) if path else None


def layers_data(path: Path, config: Mapping[str, str], database_url: str) -> dict[str, str]:
    """The layers ConfigMap's data, once the file is one the pods would accept."""
    settings = Settings.from_env(
        {**config, "TRACTCAST_LAYERS": str(path), "TRACTCAST_DATABASE_URL": database_url}
    )
    tract_layers(settings)  # refuses what the pods would refuse at start
    text = path.read_text()
    for entry in tomllib.loads(text)["layers"]:
        for key in ("tracts", "data_source"):
            value = str(entry.get(key) or "").strip()
            if value and "://" not in value and not value.startswith("/"):
                raise InvalidInput(
                    f"the layers file {path}: layer {entry['name']!r} has {key} = {value!r}, a "
                    f"path relative to the file's folder, which the pods lack: name it by its "
                    f"path in the pods (/data/... through values.bindMounts) or by URL"
                )
    return {Path(LAYERS_FILE).name: text}


def layers_objects(
    env: Mapping[str, str],
    values: Mapping[str, Any],
    config: Mapping[str, str],
    secret: Mapping[str, str] | None,
) -> list[Object]:
    """The ConfigMap holding the layers file, when one is given (none for an existing Secret)."""
    path = layers_path(env, values)
    if path is None:
        return []
    # An existing Secret holds the database URL: any URL stands for it in the check.
    database_url = secret["TRACTCAST_DATABASE_URL"] if secret else "postgresql://existing-secret"
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(LAYERS_NAME, values["namespace"], "settings"),
            "data": layers_data(path, config, database_url),
        }
    ]


def serving_source(values: Mapping[str, Any]) -> str:
    """Where api and geo pods read what they serve: the shared store (local) or the S3 mirror."""
    source = str((values.get("serving") or {}).get("source") or "local")
    if source not in SERVING_SOURCES:
        raise InvalidInput(
            f"values.serving.source={source!r}: expected one of {', '.join(SERVING_SOURCES)}"
        )
    if source == "s3" and not values["external"].get("s3Bucket"):
        raise InvalidInput("values.serving.source=s3 needs external.s3Bucket (the S3 mirror)")
    return source


def secret_data(env: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, str]:
    """Admin token (given, from the env file, or generated now) and the database URL."""
    given = values["secrets"]
    token = given.get("adminToken") or env.get("TRACTCAST_ADMIN_TOKEN") or ""
    database = given.get("databaseUrl") or ""
    if not database:
        raise InvalidInput("values.secrets.databaseUrl is empty (or set secrets.existingSecret)")
    return {
        "TRACTCAST_ADMIN_TOKEN": token or secrets.token_urlsafe(32),
        "TRACTCAST_DATABASE_URL": database,
    }


def placeholders(values: Mapping[str, Any]) -> list[str]:
    """Values still holding the shipped placeholders, for a warning."""
    found = []
    if "CHANGE-ME" in str(values["secrets"].get("databaseUrl")) and not values["secrets"].get(
        "existingSecret"
    ):
        found.append("secrets.databaseUrl")
    found += [
        f"external.{k}" for k, v in values["external"].items() if "tractcast-backends" in str(v)
    ]
    return found


# ---- one compose service --------------------------------------------------------------------


def container_ports(service: Mapping[str, Any]) -> list[int]:
    """Ports the container listens on: gunicorn's --bind, else compose's published targets."""
    command = service.get("command") or ""
    bound = _BIND.findall(command if isinstance(command, str) else " ".join(command))
    published = [str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])]
    return [int(p) for p in dict.fromkeys(bound + published)]


def port_name(port: int, first: bool) -> str:
    return "http" if first else ("https" if port == TLS_PORT else f"port-{port}")


def container_env(
    service: Mapping[str, Any], config: Mapping[str, str], secret_name: str
) -> list[Object]:
    """Env beyond the ConfigMap: secret refs, compose's other variables, ${...} as key refs."""
    env: list[Object] = []
    if service.get("env_file"):
        env += [
            {"name": n, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": n}}}
            for n in SECRET_SETTINGS
        ]
    for name, value in (service.get("environment") or {}).items():
        if name.startswith("TRACTCAST_"):
            continue  # the ConfigMap carries them (shared_environment checked they agree)
        text = str(value)
        reference = _INTERPOLATION.fullmatch(text)
        if reference and reference.group(1) in config:
            key = {"name": CONFIG_NAME, "key": reference.group(1)}
            env.append({"name": name, "valueFrom": {"configMapKeyRef": key}})
        else:
            env.append({"name": name, "value": interpolate(text, config, as_reference=False)})
    return env


def volumes_for(
    name: str, service: Mapping[str, Any], values: Mapping[str, Any], claims: bool = True
) -> tuple[list[Object], list[Object]]:
    """Pod volumes and container mounts for compose's named volumes (unless not `claims`) and
    bind mounts."""
    volumes, mounts = [], []
    for i, spec in enumerate(service.get("volumes", [])):
        if not isinstance(spec, str):
            raise InvalidInput(f"docker-compose.yml {name}: use the short volume syntax")
        source, target, *mode = spec.split(":")
        read_only = mode == ["ro"]
        if source.startswith("."):
            if source not in values["bindMounts"]:
                raise InvalidInput(f"values.bindMounts has no entry for {source} ({name})")
            backing = values["bindMounts"][source]
            if backing is None:
                continue
            volume_name = f"bind-{i}"
            if "secret" in backing:
                volumes.append(
                    {
                        "name": volume_name,
                        "secret": {"secretName": backing["secret"], "optional": True},
                    }
                )
                read_only = True
            else:
                claim = {"claimName": backing["persistentVolumeClaim"], "readOnly": read_only}
                volumes.append({"name": volume_name, "persistentVolumeClaim": claim})
        elif not claims:
            continue
        else:
            volume_name = source
            claim = {"claimName": source, "readOnly": read_only}
            volumes.append({"name": volume_name, "persistentVolumeClaim": claim})
        mounts.append({"name": volume_name, "mountPath": target, "readOnly": read_only})
    return volumes, mounts


def gpu_count(service: Mapping[str, Any]) -> int:
    """NVIDIA GPUs compose reserves for the service (0 without a reservation)."""
    devices = (
        service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    )
    return sum(int(d.get("count", 1)) for d in devices if "gpu" in d.get("capabilities", []))


def replica_rule(name: str, service: Mapping[str, Any], values: Mapping[str, Any]) -> int | None:
    """Replicas of the Deployment; None when an autoscaler owns the count."""
    scaled = name in (values.get("autoscaling") or {})
    if scaled and name in values["replicas"]:
        raise InvalidInput(f"values.replicas.{name}: autoscaling.{name}.minReplicas sets it")
    if scaled:
        return None
    if name not in values["replicas"]:
        raise InvalidInput(f"values.replicas has no entry for {name}")
    replicas = int(values["replicas"][name])
    compose_replicas = service.get("deploy", {}).get("replicas")
    if name in SINGLETONS and (replicas != 1 or compose_replicas not in (None, 1)):
        raise InvalidInput(f"{name} runs APScheduler: exactly one replica, got {replicas}")
    return replicas


def strategy(name: str, gpus: int) -> Object:
    """Recreate for the singleton; GPU pods roll one at a time without a surge pod needing a GPU."""
    if name in SINGLETONS:
        return {"type": "Recreate"}
    if gpus:
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def scraped_ports() -> dict[str, int]:
    """Service -> port Prometheus scrapes in compose (monitoring/prometheus.yml)."""
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    ports = {}
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            for target in group["targets"]:
                host, _, port = target.partition(":")
                ports[host] = int(port)
    return ports


def probes(service: Mapping[str, Any], values: Mapping[str, Any]) -> Object:
    """Liveness from compose's health check; readiness on /readyz where the service has one."""
    liveness = liveness_probe(service["healthcheck"])
    found: Object = {"livenessProbe": liveness}
    if not container_ports(service):
        return found  # no Service sends it traffic: nothing to be ready for
    http_get = liveness.get("httpGet")
    if http_get and http_get["path"] == "/healthz":
        found["readinessProbe"] = readiness_probe(http_get["port"], values["readiness"])
    else:  # no /readyz of its own (nginx): ready when alive
        found["readinessProbe"] = {k: v for k, v in liveness.items() if k != "initialDelaySeconds"}
    return found


def container_spec(
    name: str, service: Mapping[str, Any], values: Mapping[str, Any], config: Mapping[str, str]
) -> Object:
    """The one container of a compose service's pod."""
    container: Object = {
        "name": name,
        "image": image_name(service["image"], values),
        "imagePullPolicy": values["imagePullPolicy"],
    }
    if service.get("command"):
        command = service["command"]
        args = shlex.split(command) if isinstance(command, str) else list(command)
        container["args"] = [interpolate(a, config, as_reference=True) for a in args]
    if service.get("env_file"):  # compose's .env: the settings, plus e.g. AWS_* credentials
        container["envFrom"] = [{"configMapRef": {"name": CONFIG_NAME}}] + [
            {"secretRef": {"name": secret}} for secret in values["secrets"].get("envFrom") or []
        ]
    env = container_env(service, config, secret_name_of(values))
    if env:
        container["env"] = env
    ports = container_ports(service)
    if ports:
        container["ports"] = [
            {"name": port_name(p, i == 0), "containerPort": p, "protocol": "TCP"}
            for i, p in enumerate(ports)
        ]
    container |= probes(service, values)
    resources = dict(values["resources"].get(name) or {})
    gpus = gpu_count(service)
    if gpus:
        resources["limits"] = {**resources.get("limits", {}), "nvidia.com/gpu": gpus}
    if resources:
        container["resources"] = resources
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    return container


def pod_annotations(name: str, checksum: str) -> dict[str, str]:
    """The settings checksum (a change rolls the pods) and where Prometheus scrapes."""
    annotations = {"tractcast/settings-checksum": checksum}
    scraped = scraped_ports()
    if name in scraped:
        annotations |= {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(scraped[name]),
            "prometheus.io/path": "/metrics",
        }
    return annotations


def pod_spec(
    name: str, service: Mapping[str, Any], values: Mapping[str, Any], config: Mapping[str, str]
) -> Object:
    """The pod: its user, container, volumes, and GPU placement when compose reserves a GPU."""
    identity = values["podSecurity"][service["image"].partition(":")[0]]
    container = container_spec(name, service, values, config)
    from_s3 = name in SERVED_FROM_S3 and serving_source(values) == "s3"
    volumes, mounts = volumes_for(name, service, values, claims=not from_s3)
    if from_s3:  # no shared store: bundles and the tract layer cached in the pod
        container.setdefault("env", []).append({"name": "TRACTCAST_SERVING_SOURCE", "value": "s3"})
        cache = {"sizeLimit": str(values["serving"]["cacheSizeLimit"])}
        volumes.append({"name": "serving-cache", "emptyDir": cache})
        mounts.append({"name": "serving-cache", "mountPath": config["TRACTCAST_SERVING_CACHE"]})
    if service.get("env_file") and config["TRACTCAST_LAYERS"]:
        volumes.append({"name": "layers", **layers_volume(values)})
        mounts.append(
            {"name": "layers", "mountPath": str(Path(LAYERS_FILE).parent), "readOnly": True}
        )
    if mounts:
        container["volumeMounts"] = mounts
    pod: Object = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": int(identity["runAsUser"]),
            "runAsGroup": int(identity["runAsUser"]),
            "fsGroup": int(identity["fsGroup"]),
        },
        "containers": [container],
    }
    if volumes:
        pod["volumes"] = volumes
    if gpu_count(service):
        pod["nodeSelector"] = dict(values["gpu"]["nodeSelector"])
        pod["tolerations"] = list(values["gpu"]["tolerations"])
        pod["terminationGracePeriodSeconds"] = int(values["workerTerminationGracePeriodSeconds"])
    return pod


def layers_volume(values: Mapping[str, Any]) -> Object:
    """The layers file's volume: the rendered ConfigMap, or the Secret values name."""
    existing = (values.get("layers") or {}).get("existingSecret")
    if existing:
        return {"secret": {"secretName": existing}}
    return {"configMap": {"name": LAYERS_NAME}}


def deployment(
    name: str,
    service: Mapping[str, Any],
    values: Mapping[str, Any],
    config: Mapping[str, str],
    checksum: str,
) -> Object:
    """The Deployment of one compose service."""
    spec: Object = {
        "selector": {"matchLabels": selector(name)},
        "strategy": strategy(name, gpu_count(service)),
        "template": {
            "metadata": {"labels": labels(name), "annotations": pod_annotations(name, checksum)},
            "spec": pod_spec(name, service, values, config),
        },
    }
    replicas = replica_rule(name, service, values)
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, values["namespace"], name),
        "spec": spec,
    }


def service_object(
    name: str, service: Mapping[str, Any], values: Mapping[str, Any], config: Mapping[str, str]
) -> Object | None:
    """A Service named as in compose (other pods dial http://geo:8002 as they do there)."""
    ports = container_ports(service)
    if not ports:
        return None
    published = {}
    for port in service.get("ports", []):
        parts = interpolate(str(port), config, as_reference=False).split(":")
        published[int(parts[-1])] = int(parts[-2]) if len(parts) > 1 else int(parts[-1])
    spec: Object = {
        "selector": selector(name),
        "ports": [
            {
                "name": port_name(p, i == 0),
                "port": published.get(p, p),
                "targetPort": port_name(p, i == 0),
                "protocol": "TCP",
            }
            for i, p in enumerate(ports)
        ],
    }
    if service.get("ports"):  # published in compose: the entry point
        spec = {"type": values["entrypoint"]["serviceType"], **spec}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, values["namespace"], name),
        "spec": spec,
    }


def autoscaler(name: str, values: Mapping[str, Any]) -> Object:
    rule = values["autoscaling"][name]
    if int(rule["minReplicas"]) > int(rule["maxReplicas"]):
        raise InvalidInput(f"values.autoscaling.{name}: minReplicas above maxReplicas")
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, values["namespace"], name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": int(rule["minReplicas"]),
            "maxReplicas": int(rule["maxReplicas"]),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": int(rule["targetCPUUtilizationPercentage"]),
                        },
                    },
                }
            ],
        },
    }


def disruption_budget(name: str, values: Mapping[str, Any]) -> Object:
    """At least minAvailable pods through a drain; refused when that would block every drain."""
    min_available = int(values["disruptionBudgets"][name]["minAvailable"])
    scaled = (values.get("autoscaling") or {}).get(name)
    fewest = int(scaled["minReplicas"]) if scaled else int(values["replicas"].get(name, 0))
    if min_available >= fewest:
        raise InvalidInput(
            f"values.disruptionBudgets.{name}.minAvailable={min_available} leaves no pod of "
            f"{fewest} to evict: a node drain would wait forever"
        )
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(name, values["namespace"], name),
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": selector(name)}},
    }


# ---- the whole stack ------------------------------------------------------------------------


def secret_name_of(values: Mapping[str, Any]) -> str:
    return values["secrets"].get("existingSecret") or SECRET_NAME


def rendered_services(compose: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Compose services that become Deployments; an unclassified one is refused."""
    services = compose["services"]
    unknown = set(services) - EXTERNAL_SERVICES - MONITORING_SERVICES
    for name in sorted(unknown):
        if "image" not in services[name] or "healthcheck" not in services[name]:
            raise InvalidInput(f"docker-compose.yml {name}: no image or health check to carry over")
    return {name: services[name] for name in services if name in unknown}


def settings_objects(
    config: Mapping[str, str], secret: Mapping[str, str] | None, values: Mapping[str, Any]
) -> list[Object]:
    namespace = values["namespace"]
    objects: list[Object] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(CONFIG_NAME, namespace, "settings"),
            "data": dict(config),
        }
    ]
    if secret is not None:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": metadata(SECRET_NAME, namespace, "settings"),
                "type": "Opaque",
                "stringData": dict(secret),
            }
        )
    return objects


def claims(services: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]) -> list[Object]:
    """A PersistentVolumeClaim for each compose named volume a rendered service mounts."""
    used = sorted(
        {
            spec.split(":")[0]
            for service in services.values()
            for spec in service.get("volumes", [])
            if isinstance(spec, str) and not spec.startswith((".", "/", "~"))
        }
    )
    objects = []
    for name in used:
        if name not in values["volumes"]:
            raise InvalidInput(f"values.volumes has no entry for compose volume {name}")
        rule = values["volumes"][name]
        spec: Object = {
            "accessModes": list(rule["accessModes"]),
            "resources": {"requests": {"storage": str(rule["size"])}},
        }
        if rule.get("storageClassName"):
            spec["storageClassName"] = rule["storageClassName"]
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": metadata(name, values["namespace"], "storage"),
                "spec": spec,
            }
        )
    return objects


def render(
    compose: Mapping[str, Any], env: Mapping[str, str], values: Mapping[str, Any]
) -> dict[str, list[Object]]:
    """File name -> the objects it holds, for `kubectl apply -f` on the folder."""
    services = rendered_services(compose)
    config = settings_config(env, shared_environment(services), values)
    if serving_source(values) == "s3" and not config["TRACTCAST_SERVING_CACHE"].startswith("/"):
        raise InvalidInput("TRACTCAST_SERVING_CACHE must be an absolute path (the pods' cache)")
    secret = None if values["secrets"].get("existingSecret") else secret_data(env, values)
    layers = layers_objects(env, values, config, secret)
    summary = [config, secret, [o["data"] for o in layers]]
    checksum = hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()[:16]
    files: dict[str, list[Object]] = {
        "00-namespace.yaml": [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": values["namespace"], "labels": labels("namespace")},
            }
        ],
        "10-settings.yaml": settings_objects(config, secret, values) + layers,
        "20-storage.yaml": claims(services, values),
    }
    for name, service in services.items():
        objects = [deployment(name, service, values, config, checksum)]
        exposed = service_object(name, service, values, config)
        if exposed is not None:
            objects.append(exposed)
        if name in (values.get("autoscaling") or {}):
            objects.append(autoscaler(name, values))
        if name in (values.get("disruptionBudgets") or {}):
            objects.append(disruption_budget(name, values))
        files[f"30-{name}.yaml"] = objects
    for section in ("autoscaling", "disruptionBudgets", "replicas", "resources"):
        stray = set(values.get(section) or {}) - set(services)
        if stray:
            raise InvalidInput(f"values.{section} names no compose service: {sorted(stray)}")
    return {name: objects for name, objects in files.items() if objects}


HEADER = (
    "# Rendered by `make k8s` (python -m tractcast.k8s) from docker-compose.yml, .env.example\n"
    "# and k8s/values.yaml. Do not edit: change those and render again.\n"
)
_OURS = re.compile(r"^\d\d-[a-z0-9-]+\.yaml$")


class _Dumper(yaml.SafeDumper):
    """Plain YAML: a dict used twice (liveness and readiness) is written twice, not aliased."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_manifests(out_dir: Path, files: Mapping[str, list[Object]]) -> list[Path]:
    """Write each file (and remove manifests a previous render left that this one lacks)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.iterdir():
        if _OURS.match(old.name) and old.name not in files:
            old.unlink()
    written = []
    for name, objects in files.items():
        path = out_dir / name
        text = yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, width=100)
        path.write_text(HEADER + text)
        path.chmod(0o600)  # the settings file may hold the Secret
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Render the manifests into --out; print what was written and which values are placeholders."""
    parser = argparse.ArgumentParser(prog="python -m tractcast.k8s", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "k8s")
    parser.add_argument("--values", type=Path, action="append", default=[], help="override file")
    parser.add_argument("--env-file", type=Path, action="append", default=[], help="e.g. .env")
    parser.add_argument("--compose", type=Path, default=COMPOSE_FILE)
    args = parser.parse_args(argv)
    values = load_values(args.values)
    env: dict[str, str] = {}
    for path in args.env_file:
        env |= read_env_file(path)
    try:
        files = render(yaml.safe_load(args.compose.read_text()), env, values)
    except InvalidInput as exc:
        print(f"tractcast k8s: {exc.message}", file=sys.stderr)
        return 2
    for path in write_manifests(args.out, files):
        print(path)
    for name in placeholders(values):
        print(f"tractcast k8s: values.{name} is still the shipped placeholder", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
