"""The tract layers of one deployment, each with its own settings.

TRACTCAST_LAYERS names a TOML file listing the layers, in any order (a point is answered from
the layer whose tract holding it is smallest; the first layer answers what names no point).
Each layer overrides the per-layer settings and keeps its store (versions, champion, bundles,
data snapshots, locks) under <store>/layers/<name>, and its replicas' S3 cache under
<serving cache>/layers/<name>:

    [[layers]]
    name = "municipalities"
    tracts = "municipalities.geojson"      # relative paths are read from the file's folder
    data_source = "municipalities.csv"
    tract_id_field = "com_istat_code"
    schedule = "0 3 * * mon"

Without the file the deployment has one layer, named "default": the settings themselves.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

from tractcast.errors import InvalidInput, NotFound
from tractcast.settings import DEFAULT_LAYER, Settings

LAYER_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
LAYERS_DIR = "layers"
# What differs from one layer to the next; everything else (ports, broker, token) is shared.
PER_LAYER = frozenset(
    {
        "data_source",
        "tracts",
        "tract_id_field",
        "date_column",
        "tract_column",
        "value_column",
        "value_kind",
        "coordinate_columns",
        "stale_days",
        "history_tolerance",
        "database_url",
        "mlflow_experiment",
        "s3_bucket",
        "schedule",
        "data_check",
        "lookback",
        "epochs",
        "seed",
        "promotion_level",
        "promotion_min_effect",
        "backtest_origins",
        "drift_threshold",
        "live_error_factor",
        "rollback_margin",
        "rollback_days",
    }
)
_NAME = re.compile(LAYER_NAME_PATTERN)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://")


@dataclass(frozen=True)
class TractLayer:
    """One layer: its name and the settings every part uses for it (its own store included)."""

    name: str
    settings: Settings


def tract_layers(settings: Settings) -> tuple[TractLayer, ...]:
    """The deployment's layers in the file's order: those of the layers file, or the one
    default."""
    if settings.layers is None:
        return (TractLayer(DEFAULT_LAYER, settings),)
    path = Path(settings.layers)
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"the layers file {path} cannot be read: {exc}") from exc
    entries = document.get("layers")
    if not isinstance(entries, list) or not entries:
        raise InvalidInput(f"the layers file {path} lists no [[layers]]")
    layers = tuple(_layer(entry, settings, path.parent) for entry in entries)
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise InvalidInput(f"the layers file {path} names a layer twice: {names}")
    return layers


def check_layer_name(name: str) -> str:
    """The name, or InvalidInput when it is not shaped like a layer's name."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(f"malformed layer name {str(name)[:60]!r}, expected e.g. provinces")
    return name


def known_layer(names: Iterable[str], name: str) -> str:
    """`name` when it is one of `names`: InvalidInput when malformed, NotFound when unknown."""
    check_layer_name(name)
    names = list(names)
    if name not in names:
        raise NotFound(f"no layer named {name!r} (layers: {', '.join(names)})")
    return name


def layer_named(layers: tuple[TractLayer, ...], name: str) -> TractLayer:
    """The layer called `name`: InvalidInput when malformed, NotFound when there is none."""
    by_name = {layer.name: layer for layer in layers}
    return by_name[known_layer(by_name, name)]


def settings_of_layer(settings: Settings, name: str | None) -> Settings:
    """The settings of the named layer; None: the settings themselves when there is one layer."""
    layers = tract_layers(settings)
    if name is None:
        if len(layers) > 1:
            raise InvalidInput("this deployment has several layers: name one with --layer")
        return layers[0].settings
    return layer_named(layers, name).settings


def _layer(entry: Any, settings: Settings, folder: Path) -> TractLayer:
    if not isinstance(entry, dict):
        raise InvalidInput("each [[layers]] entry of the layers file must be a table")
    name = check_layer_name(entry.get("name", ""))
    unknown = sorted(set(entry) - PER_LAYER - {"name"})
    if unknown:
        raise InvalidInput(f"layer {name!r} sets what a layer cannot: {', '.join(unknown)}")
    kinds = get_type_hints(Settings)
    changes: dict[str, Any] = {
        key: _value(key, kinds[key], value, folder) for key, value in entry.items() if key != "name"
    }
    changes.setdefault("mlflow_experiment", f"{settings.mlflow_experiment}-{name}")
    store = Path(settings.store) / LAYERS_DIR / name
    cache = Path(settings.serving_cache) / LAYERS_DIR / name  # what replicas fetched from S3
    return TractLayer(
        name,
        settings.with_(store=store, serving_cache=cache, layers=None, layer=name, **changes),
    )


def _value(key: str, kind: Any, value: Any, folder: Path) -> Any:
    """A layer's value as the field's type; relative paths are the layers file's folder's."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput(f"layer setting {key} must be text or a number")
    if kind == str | None:
        text = str(value).strip()
        if key in {"tracts", "data_source"} and text and not _URL.match(text):
            text = str(folder / text)
        return text or None
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"layer setting {key} = {value!r} is not a valid {kind.__name__}"
        ) from exc
