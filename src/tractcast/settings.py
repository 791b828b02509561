"""Settings read from the environment once, typed; tests build a Settings directly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

TRUE = frozenset({"1", "true", "yes"})
DEFAULT_LAYER = "default"  # the one layer of a deployment without a layers file


def setting(env: str, default: Any = None) -> Any:
    """A field read from the environment variable `env`, parsed by the field's type."""
    return field(default=default, metadata={"env": env})


def _opt(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


@dataclass(frozen=True)
class Settings:
    """Every setting once: its type, its variable and its default (an unset or empty variable
    keeps the default; optional text is stripped, and empty means None)."""

    data_source: str | None = setting("TRACTCAST_DATA_SOURCE")
    tracts: str | None = setting("TRACTCAST_TRACTS")
    tract_id_field: str | None = setting("TRACTCAST_TRACT_ID_FIELD")
    date_column: str | None = setting("TRACTCAST_DATE_COLUMN")
    tract_column: str | None = setting("TRACTCAST_TRACT_COLUMN")
    value_column: str | None = setting("TRACTCAST_VALUE_COLUMN")
    value_kind: str | None = setting("TRACTCAST_VALUE_KIND")
    coordinate_columns: str | None = setting("TRACTCAST_COORDINATE_COLUMNS")
    stale_days: int = setting("TRACTCAST_STALE_DAYS", 3)
    history_tolerance: float = setting("TRACTCAST_HISTORY_TOLERANCE", 0.1)
    store: Path = setting("TRACTCAST_STORE", Path("var/store"))
    layers: str | None = setting("TRACTCAST_LAYERS")
    database_url: str | None = setting("TRACTCAST_DATABASE_URL")
    broker_url: str | None = setting("TRACTCAST_BROKER_URL")
    mlflow_uri: str | None = setting("TRACTCAST_MLFLOW_URI")
    mlflow_experiment: str = setting("TRACTCAST_MLFLOW_EXPERIMENT", "tractcast")
    s3_bucket: str | None = setting("TRACTCAST_S3_BUCKET")
    s3_endpoint_url: str | None = setting("TRACTCAST_S3_ENDPOINT_URL")
    serving_source: str = setting("TRACTCAST_SERVING_SOURCE", "local")
    serving_cache: Path = setting("TRACTCAST_SERVING_CACHE", Path("var/cache"))
    visibility_timeout: int = setting("TRACTCAST_VISIBILITY_TIMEOUT", 3600)
    admin_token: str | None = setting("TRACTCAST_ADMIN_TOKEN")
    dev_mode: bool = setting("TRACTCAST_DEV_MODE", False)
    http_port: int = setting("TRACTCAST_HTTP_PORT", 8080)
    nginx: str | None = setting("TRACTCAST_NGINX")
    host: str = setting("TRACTCAST_HOST", "127.0.0.1")
    api_port: int = setting("TRACTCAST_API_PORT", 8001)
    geo_port: int = setting("TRACTCAST_GEO_PORT", 8002)
    registry_port: int = setting("TRACTCAST_REGISTRY_PORT", 8003)
    retrainer_port: int = setting("TRACTCAST_RETRAINER_PORT", 8004)
    geo_url: str | None = setting("TRACTCAST_GEO_URL")
    registry_url: str | None = setting("TRACTCAST_REGISTRY_URL")
    demo_dir: Path = setting("TRACTCAST_DEMO_DIR", Path("var/demo"))
    run_dir: Path = setting("TRACTCAST_RUN_DIR", Path("var/run"))
    schedule: str = setting("TRACTCAST_SCHEDULE", "0 3 1 * *")
    data_check: str = setting("TRACTCAST_DATA_CHECK", "0 4 * * *")
    horizon: int = setting("TRACTCAST_HORIZON", 14)
    lookback: int = setting("TRACTCAST_LOOKBACK", 28)
    epochs: int = setting("TRACTCAST_EPOCHS", 30)
    seed: int = setting("TRACTCAST_SEED", 42)
    workers: int = setting("TRACTCAST_WORKERS", 2)
    promotion_level: float = setting("TRACTCAST_PROMOTION_LEVEL", 0.95)
    promotion_min_effect: float = setting("TRACTCAST_PROMOTION_MIN_EFFECT", 0.0)
    backtest_origins: int = setting("TRACTCAST_BACKTEST_ORIGINS", 8)
    rate_limit: str = setting("TRACTCAST_RATE_LIMIT", "20r/s")
    admin_rate_limit: str = setting("TRACTCAST_ADMIN_RATE_LIMIT", "10r/m")
    drift_threshold: float = setting("TRACTCAST_DRIFT_THRESHOLD", 0.25)
    live_error_factor: float = setting("TRACTCAST_LIVE_ERROR_FACTOR", 1.5)
    rollback_margin: float = setting("TRACTCAST_ROLLBACK_MARGIN", 0.1)
    rollback_days: int = setting("TRACTCAST_ROLLBACK_DAYS", 14)
    # The tract layer these settings are of: set by tract_layers, not by a variable. Its rows in a
    # shared metadata database and its keys in a shared S3 bucket are told apart by it.
    layer: str = DEFAULT_LAYER
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from TRACTCAST_* variables (every one is listed in .env.example)."""
        env = os.environ if env is None else env
        values = {
            item.name: _parse(kind, env.get(item.metadata["env"], ""), item.default)
            for item, kind in _env_fields()
        }
        token_file = _opt(env, "TRACTCAST_ADMIN_TOKEN_FILE")
        if values["admin_token"] is None and token_file is not None:
            values["admin_token"] = Path(token_file).read_text().strip() or None
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The TRACTCAST_* variables that rebuild these settings in a child process."""
        values = {
            item.metadata["env"]: _format(kind, getattr(self, item.name))
            for item, kind in _env_fields()
        }
        return {name: text for name, text in values.items() if text}

    def with_(self, **changes: object) -> Settings:
        """Return a copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def geo_base_url(self) -> str:
        return self.geo_url or f"http://{self.host}:{self.geo_port}"

    @property
    def registry_base_url(self) -> str:
        return self.registry_url or f"http://{self.host}:{self.registry_port}"


@cache
def _env_fields() -> tuple[tuple[Field[Any], Any], ...]:
    """The fields read from the environment, with their resolved types."""
    kinds = get_type_hints(Settings)
    return tuple((item, kinds[item.name]) for item in fields(Settings) if "env" in item.metadata)


def _parse(kind: Any, text: str, default: Any) -> Any:
    """A variable's text as a value of the field's type; unset or empty text is the default."""
    if kind == str | None:
        return text.strip() or None
    if not text:
        return default
    if kind is bool:
        return text.lower() in TRUE
    return kind(text)


def _format(kind: Any, value: Any) -> str:
    """A value as its variable's text; empty text is left out of the environment."""
    if value is None:
        return ""
    if kind is bool:
        return "1" if value else ""
    if kind is Path:
        return str(Path(value).resolve())
    return str(value)
