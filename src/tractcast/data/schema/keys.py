"""The tract-key join: which column (or header) holds keys that match a layer property."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from tractcast.data.schema.coordinates import infer_coordinates, point_tracts, row_labels
from tractcast.data.schema.parsing import (
    detect_number_format,
    map_distinct,
    normalise_key,
    normalise_keys,
    parse_counts,
    sample_rows,
    strip_text,
)
from tractcast.data.schema.results import AreaKeys, TractKeyInference, TractLayer
from tractcast.errors import DataRejected


def header_tracts(frame: pd.DataFrame, layer: TractLayer) -> tuple[str, list[str]]:
    """The layer property most column headers match, and those headers."""
    keys = [normalise_key(column) for column in frame.columns]
    best, matched = "", list[str]()
    for prop, key_map in layer_key_maps(layer).items():
        hits = [c for c, k in zip(frame.columns, keys, strict=True) if k in key_map]
        if len(hits) > len(matched):
            best, matched = prop, hits
    return best, matched


def layer_key_maps(layer: TractLayer, min_coverage: float = 0.9) -> dict[str, dict[str, str]]:
    """For every layer property that identifies tracts uniquely: normalised value -> tract id."""
    tracts = list(layer.tracts)
    properties = layer.properties()
    names = list(dict.fromkeys(name for props in properties for name in props))
    maps: dict[str, dict[str, str]] = {}
    for name in names:
        pairs = [
            (normalise_key(p.get(name)), t.id) for p, t in zip(properties, tracts, strict=True)
        ]
        keyed = {key: tract_id for key, tract_id in pairs if key}
        filled = sum(1 for key, _ in pairs if key)
        if len(keyed) == filled and filled >= min_coverage * len(tracts):
            maps[name] = keyed
    if layer.id_field not in maps:
        maps[layer.id_field] = {normalise_key(t.id): t.id for t in tracts}
    return maps


def score_key_pair(
    keys: set[str], completeness: float, key_map: dict[str, str], n_tracts: int
) -> dict[str, Any]:
    """Evidence that a data column joins a layer property: matched, completeness, precision."""
    matched = len(keys & key_map.keys())
    return {
        "tracts_matched": matched,
        "share_tracts_matched": round(matched / max(n_tracts, 1), 4),
        "share_rows_filled": round(completeness, 4),
        "share_keys_matched": round(matched / max(len(keys), 1), 4),
    }


def joins_enough(score: dict[str, Any], min_share: float, min_tracts: int = 10) -> bool:
    """A key joins when it covers min_share of the layer, or when it names few tracts of a big
    layer but nearly all its values are tracts (data for one region of a national layer)."""
    if score["share_tracts_matched"] >= min_share:
        return True
    return score["tracts_matched"] >= min_tracts and score["share_keys_matched"] >= 0.8


def infer_tract_key(
    frame: pd.DataFrame,
    layer: TractLayer,
    *,
    exclude: Sequence[str] = (),
    max_keys: int | None = None,
    column: str | None = None,
    min_share: float = 0.25,
) -> TractKeyInference:
    """The (data column, layer property) pair matching the largest share of the layer's tracts."""
    maps = layer_key_maps(layer)
    n_tracts = len(layer.tracts)
    columns = [column] if column else [name for name in frame.columns if name not in exclude]
    candidates = []
    for name in columns:
        normalised = normalise_keys(frame[name])
        keys = set(normalised.unique()) - {""}
        if not keys or (column is None and max_keys is not None and len(keys) > max_keys):
            continue
        completeness = float((normalised != "").mean())
        for prop, key_map in maps.items():
            score = score_key_pair(keys, completeness, key_map, n_tracts)
            if score["tracts_matched"]:
                candidates.append((name, prop, score))
    ranked = sorted(
        candidates,
        key=lambda c: (
            c[2]["share_tracts_matched"],
            round(c[2]["share_rows_filled"], 1),
            c[1] == layer.id_field,  # ids are steadier than names
            c[2]["share_keys_matched"],
        ),
        reverse=True,
    )
    if not ranked or not (column or joins_enough(ranked[0][2], min_share)):
        best = f" (best: {ranked[0][0]!r}, {ranked[0][2]['tracts_matched']})" if ranked else ""
        raise DataRejected(f"no column matches the tracts of the layer{best}")
    name, prop, score = ranked[0]
    evidence = {**score, "method": "key", "layer_property": prop, "override": bool(column)}
    evidence["candidates"] = [
        {"column": c, "layer_property": p, **s} for c, p, s in ranked[:5] if (c, p) != (name, prop)
    ]
    return TractKeyInference(
        column=name, evidence=evidence, layer_property=prop, key_map=maps[prop]
    )


def infer_area(
    frame: pd.DataFrame,
    layer: TractLayer,
    *,
    exclude: Sequence[str] = (),
    max_keys: int | None = None,
    column: str | None = None,
    coordinates: tuple[str, str] | None = None,
) -> TractKeyInference:
    """How rows join tracts: a key column, else latitude/longitude (whichever joins more)."""
    if coordinates:
        found = infer_coordinates(frame, layer, exclude=exclude, columns=coordinates)
        assert found is not None
        return found
    try:
        key: TractKeyInference | None = infer_tract_key(
            frame, layer, exclude=exclude, max_keys=max_keys, column=column
        )
        refusal = None
    except DataRejected as exc:
        key, refusal = None, exc
    if column or (key is not None and key.evidence["share_tracts_matched"] >= 0.9):
        assert key is not None
        return key
    points = infer_coordinates(frame, layer, exclude=exclude)
    if points is not None and (
        key is None or points.evidence["tracts_matched"] > key.evidence["tracts_matched"]
    ):
        return points
    if key is None:
        assert refusal is not None
        raise refusal
    return key


def area_keys(frame: pd.DataFrame, tract: TractKeyInference, layer: TractLayer) -> AreaKeys:
    """Every row's area: as written, its series key, and its tract (NaN when none)."""
    label, label_keys = row_labels(frame, tract.labels)
    if tract.coordinates is None:
        raw = strip_text(frame[tract.column])
        keys = normalise_keys(frame[tract.column])
        tracts = map_distinct(keys, tract.key_map)
        unkeyed = (keys == "") & (label_keys != "")  # a pseudo-area named only by its label
        if unkeyed.any():
            raw = raw.where(~unkeyed, label)
            keys = keys.where(~unkeyed, "~" + label_keys)
        return AreaKeys(raw=raw, keys=keys, tracts=tracts)
    lat, lon = (
        parse_counts(frame[c], detect_number_format(sample_rows(frame)[c]))
        for c in tract.coordinates
    )
    tracts, points = point_tracts(layer, lat.to_numpy(), lon.to_numpy())
    found = pd.Series([t is not None for t in tracts], index=frame.index)
    point_keys = pd.Series(points, index=frame.index, dtype=object)
    raw = point_keys.where(found, label.where(label != "", point_keys))
    keys = point_keys.where(found, label_keys.where(label_keys != "", point_keys))
    return AreaKeys(raw=raw, keys=keys, tracts=pd.Series(tracts, index=frame.index, dtype=object))


def header_areas(headers: Sequence[str], tract: TractKeyInference) -> AreaKeys:
    """Areas named by column headers (wide_by_tract)."""
    raw = pd.Series([str(h).strip() for h in headers], dtype=object)
    keys = normalise_keys(raw)
    return AreaKeys(raw=raw, keys=keys, tracts=keys.map(tract.key_map))
