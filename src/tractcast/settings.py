"""Settings read from the environment once, typed; tests build a Settings directly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path


def _opt(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


@dataclass(frozen=True)
class Settings:
    data_source: str | None = None
    tracts: str | None = None
    tract_id_field: str | None = None
    date_column: str | None = None
    tract_column: str | None = None
    value_column: str | None = None
    value_kind: str | None = None
    coordinate_columns: str | None = None
    stale_days: int = 3
    history_tolerance: float = 0.1
    store: Path = Path("var/store")
    database_url: str | None = None
    broker_url: str | None = None
    mlflow_uri: str | None = None
    mlflow_experiment: str = "tractcast"
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    visibility_timeout: int = 3600
    admin_token: str | None = None
    dev_mode: bool = False
    http_port: int = 8080
    nginx: str | None = None
    host: str = "127.0.0.1"
    api_port: int = 8001
    geo_port: int = 8002
    registry_port: int = 8003
    retrainer_port: int = 8004
    geo_url: str | None = None
    registry_url: str | None = None
    demo_dir: Path = Path("var/demo")
    run_dir: Path = Path("var/run")
    schedule: str = "0 3 1 * *"
    data_check: str = "0 4 * * *"
    horizon: int = 14
    lookback: int = 28
    epochs: int = 30
    seed: int = 42
    workers: int = 2
    promotion_level: float = 0.95
    promotion_min_effect: float = 0.0
    backtest_origins: int = 8
    rate_limit: str = "20r/s"
    admin_rate_limit: str = "10r/m"
    drift_threshold: float = 0.25
    live_error_factor: float = 1.5
    rollback_margin: float = 0.1
    rollback_days: int = 14
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from TRACTCAST_* variables (every one is listed in .env.example)."""
        env = os.environ if env is None else env
        token = _opt(env, "TRACTCAST_ADMIN_TOKEN")
        token_file = _opt(env, "TRACTCAST_ADMIN_TOKEN_FILE")
        if token is None and token_file is not None:
            token = Path(token_file).read_text().strip() or None
        return cls(
            data_source=_opt(env, "TRACTCAST_DATA_SOURCE"),
            tracts=_opt(env, "TRACTCAST_TRACTS"),
            tract_id_field=_opt(env, "TRACTCAST_TRACT_ID_FIELD"),
            date_column=_opt(env, "TRACTCAST_DATE_COLUMN"),
            tract_column=_opt(env, "TRACTCAST_TRACT_COLUMN"),
            value_column=_opt(env, "TRACTCAST_VALUE_COLUMN"),
            value_kind=_opt(env, "TRACTCAST_VALUE_KIND"),
            coordinate_columns=_opt(env, "TRACTCAST_COORDINATE_COLUMNS"),
            store=Path(env.get("TRACTCAST_STORE") or "var/store"),
            database_url=_opt(env, "TRACTCAST_DATABASE_URL"),
            broker_url=_opt(env, "TRACTCAST_BROKER_URL"),
            mlflow_uri=_opt(env, "TRACTCAST_MLFLOW_URI"),
            mlflow_experiment=env.get("TRACTCAST_MLFLOW_EXPERIMENT") or "tractcast",
            s3_bucket=_opt(env, "TRACTCAST_S3_BUCKET"),
            s3_endpoint_url=_opt(env, "TRACTCAST_S3_ENDPOINT_URL"),
            visibility_timeout=int(env.get("TRACTCAST_VISIBILITY_TIMEOUT") or 3600),
            admin_token=token,
            dev_mode=env.get("TRACTCAST_DEV_MODE", "").lower() in {"1", "true", "yes"},
            http_port=int(env.get("TRACTCAST_HTTP_PORT") or 8080),
            nginx=_opt(env, "TRACTCAST_NGINX"),
            host=env.get("TRACTCAST_HOST") or "127.0.0.1",
            api_port=int(env.get("TRACTCAST_API_PORT") or 8001),
            geo_port=int(env.get("TRACTCAST_GEO_PORT") or 8002),
            registry_port=int(env.get("TRACTCAST_REGISTRY_PORT") or 8003),
            retrainer_port=int(env.get("TRACTCAST_RETRAINER_PORT") or 8004),
            geo_url=_opt(env, "TRACTCAST_GEO_URL"),
            registry_url=_opt(env, "TRACTCAST_REGISTRY_URL"),
            demo_dir=Path(env.get("TRACTCAST_DEMO_DIR") or "var/demo"),
            run_dir=Path(env.get("TRACTCAST_RUN_DIR") or "var/run"),
            schedule=env.get("TRACTCAST_SCHEDULE") or "0 3 1 * *",
            data_check=env.get("TRACTCAST_DATA_CHECK") or "0 4 * * *",
            horizon=int(env.get("TRACTCAST_HORIZON") or 14),
            lookback=int(env.get("TRACTCAST_LOOKBACK") or 28),
            epochs=int(env.get("TRACTCAST_EPOCHS") or 30),
            seed=int(env.get("TRACTCAST_SEED") or 42),
            workers=int(env.get("TRACTCAST_WORKERS") or 2),
            promotion_level=float(env.get("TRACTCAST_PROMOTION_LEVEL") or 0.95),
            promotion_min_effect=float(env.get("TRACTCAST_PROMOTION_MIN_EFFECT") or 0.0),
            backtest_origins=int(env.get("TRACTCAST_BACKTEST_ORIGINS") or 8),
            rate_limit=env.get("TRACTCAST_RATE_LIMIT") or "20r/s",
            admin_rate_limit=env.get("TRACTCAST_ADMIN_RATE_LIMIT") or "10r/m",
            drift_threshold=float(env.get("TRACTCAST_DRIFT_THRESHOLD") or 0.25),
            live_error_factor=float(env.get("TRACTCAST_LIVE_ERROR_FACTOR") or 1.5),
            rollback_margin=float(env.get("TRACTCAST_ROLLBACK_MARGIN") or 0.1),
            rollback_days=int(env.get("TRACTCAST_ROLLBACK_DAYS") or 14),
            stale_days=int(env.get("TRACTCAST_STALE_DAYS") or 3),
            history_tolerance=float(env.get("TRACTCAST_HISTORY_TOLERANCE") or 0.1),
        )

    def to_env(self) -> dict[str, str]:
        """The TRACTCAST_* variables that rebuild these settings in a child process."""
        values: dict[str, object | None] = {
            "TRACTCAST_DATA_SOURCE": self.data_source,
            "TRACTCAST_TRACTS": self.tracts,
            "TRACTCAST_TRACT_ID_FIELD": self.tract_id_field,
            "TRACTCAST_DATE_COLUMN": self.date_column,
            "TRACTCAST_TRACT_COLUMN": self.tract_column,
            "TRACTCAST_VALUE_COLUMN": self.value_column,
            "TRACTCAST_VALUE_KIND": self.value_kind,
            "TRACTCAST_COORDINATE_COLUMNS": self.coordinate_columns,
            "TRACTCAST_STORE": Path(self.store).resolve(),
            "TRACTCAST_DATABASE_URL": self.database_url,
            "TRACTCAST_BROKER_URL": self.broker_url,
            "TRACTCAST_MLFLOW_URI": self.mlflow_uri,
            "TRACTCAST_MLFLOW_EXPERIMENT": self.mlflow_experiment,
            "TRACTCAST_S3_BUCKET": self.s3_bucket,
            "TRACTCAST_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "TRACTCAST_VISIBILITY_TIMEOUT": self.visibility_timeout,
            "TRACTCAST_ADMIN_TOKEN": self.admin_token,
            "TRACTCAST_DEV_MODE": "1" if self.dev_mode else "",
            "TRACTCAST_HTTP_PORT": self.http_port,
            "TRACTCAST_NGINX": self.nginx,
            "TRACTCAST_HOST": self.host,
            "TRACTCAST_API_PORT": self.api_port,
            "TRACTCAST_GEO_PORT": self.geo_port,
            "TRACTCAST_REGISTRY_PORT": self.registry_port,
            "TRACTCAST_RETRAINER_PORT": self.retrainer_port,
            "TRACTCAST_GEO_URL": self.geo_url,
            "TRACTCAST_REGISTRY_URL": self.registry_url,
            "TRACTCAST_DEMO_DIR": Path(self.demo_dir).resolve(),
            "TRACTCAST_RUN_DIR": Path(self.run_dir).resolve(),
            "TRACTCAST_SCHEDULE": self.schedule,
            "TRACTCAST_DATA_CHECK": self.data_check,
            "TRACTCAST_HORIZON": self.horizon,
            "TRACTCAST_LOOKBACK": self.lookback,
            "TRACTCAST_EPOCHS": self.epochs,
            "TRACTCAST_SEED": self.seed,
            "TRACTCAST_WORKERS": self.workers,
            "TRACTCAST_PROMOTION_LEVEL": self.promotion_level,
            "TRACTCAST_PROMOTION_MIN_EFFECT": self.promotion_min_effect,
            "TRACTCAST_BACKTEST_ORIGINS": self.backtest_origins,
            "TRACTCAST_RATE_LIMIT": self.rate_limit,
            "TRACTCAST_ADMIN_RATE_LIMIT": self.admin_rate_limit,
            "TRACTCAST_DRIFT_THRESHOLD": self.drift_threshold,
            "TRACTCAST_LIVE_ERROR_FACTOR": self.live_error_factor,
            "TRACTCAST_ROLLBACK_MARGIN": self.rollback_margin,
            "TRACTCAST_ROLLBACK_DAYS": self.rollback_days,
            "TRACTCAST_STALE_DAYS": self.stale_days,
            "TRACTCAST_HISTORY_TOLERANCE": self.history_tolerance,
        }
        return {k: str(v) for k, v in values.items() if v is not None and v != ""}

    def with_(self, **changes: object) -> Settings:
        """Return a copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def metadata_url(self) -> str:
        """SQLAlchemy URL of the metadata database; SQLite inside the store by default."""
        return self.database_url or f"sqlite:///{Path(self.store).resolve() / 'metadata.db'}"

    @property
    def geo_base_url(self) -> str:
        return self.geo_url or f"http://{self.host}:{self.geo_port}"

    @property
    def registry_base_url(self) -> str:
        return self.registry_url or f"http://{self.host}:{self.registry_port}"
