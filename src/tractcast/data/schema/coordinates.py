"""Areas given by latitude/longitude columns, mapped to tracts through the geo index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tractcast.data.schema.parsing import (
    detect_number_format,
    normalise_keys,
    parse_counts,
    sample_rows,
)
from tractcast.data.schema.results import TractKeyInference, TractLayer
from tractcast.errors import InvalidInput


def layer_bounds(layer: TractLayer) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of a layer with geometry, None for a layer without."""
    if not hasattr(layer, "positions_for_points"):
        return None
    bounds = getattr(layer, "bounds", None)
    if bounds is not None:
        west, south, east, north = (float(b) for b in bounds)
        return west, south, east, north
    if not hasattr(layer, "geometry"):
        return None
    import shapely

    geometries = [layer.geometry(t.id) for t in layer.tracts]  # type: ignore[attr-defined]
    west, south, east, north = shapely.total_bounds(geometries)
    return float(west), float(south), float(east), float(north)


def point_tracts(
    layer: TractLayer, lats: np.ndarray, lons: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per point its tract id (None outside every tract) and a point key; one lookup per point."""
    points = pd.DataFrame({"lat": np.round(lats, 6), "lon": np.round(lons, 6)})
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(points))
    unique = np.array([list(u) for u in uniques], dtype=float).reshape(-1, 2)
    inside = ~np.isnan(unique).any(axis=1)
    positions = np.full(len(unique), -1, dtype=np.int64)
    if inside.any():
        positions[inside] = layer.positions_for_points(  # type: ignore[attr-defined]
            unique[inside, 0], unique[inside, 1]
        )
    ids = np.array([t.id for t in layer.tracts] + [None], dtype=object)
    labels = np.array(
        [
            f"{lat:.6f},{lon:.6f}" if ok else ""
            for (lat, lon), ok in zip(unique, inside, strict=True)
        ]
        + [""],
        dtype=object,
    )
    return ids[positions][codes], labels[codes]


def infer_coordinates(
    frame: pd.DataFrame,
    layer: TractLayer,
    *,
    exclude: Sequence[str] = (),
    columns: tuple[str, str] | None = None,
    min_share: float = 0.5,
) -> TractKeyInference | None:
    """Latitude and longitude columns whose points fall inside the layer's tracts, if any."""
    bounds = layer_bounds(layer)
    if bounds is None:
        if columns:
            raise InvalidInput("the tract layer has no geometry to map coordinates to tracts")
        return None
    west, south, east, north = bounds
    sample = sample_rows(frame, 5000)
    names = [n for n in frame.columns if n not in exclude] if columns is None else list(columns)
    numbers = {}
    for name in names:
        text = sample[name].astype(object).str.strip()
        values = parse_counts(text, detect_number_format(text))
        filled = text != ""
        if columns or (filled.mean() >= 0.5 and values[filled].notna().mean() >= 0.9):
            numbers[name] = values
    lat_names = [n for n, v in numbers.items() if v.dropna().between(south, north).mean() >= 0.9]
    lon_names = [n for n, v in numbers.items() if v.dropna().between(west, east).mean() >= 0.9]
    pairs = [columns] if columns else [(a, b) for a in lat_names for b in lon_names if a != b]
    scored = []
    for lat, lon in pairs:
        if numbers[lat].nunique() < 2 and not columns:
            continue
        tracts, _ = point_tracts(layer, numbers[lat].to_numpy(), numbers[lon].to_numpy())
        filled = numbers[lat].notna().to_numpy() & numbers[lon].notna().to_numpy()
        found = np.array([t is not None for t in tracts])
        share = float(found[filled].mean()) if filled.any() else 0.0
        hit = len({t for t in tracts if t is not None})
        scored.append((hit, share, lat, lon))
    if not scored:
        return None
    hit, share, lat, lon = max(scored)
    if not columns and (share < min_share or hit < min(2, len(layer.tracts))):
        return None
    evidence = {
        "method": "coordinates",
        "latitude": lat,
        "longitude": lon,
        "tracts_matched": hit,
        "share_tracts_matched": round(hit / max(len(layer.tracts), 1), 4),
        "share_points_in_tracts": round(share, 4),
        "layer_bounds": [round(b, 4) for b in bounds],
        "override": bool(columns),
    }
    return TractKeyInference(
        column=f"{lat},{lon}",
        evidence=evidence,
        layer_property="(point in polygon)",
        coordinates=(lat, lon),
        labels=label_columns(frame, exclude=[*exclude, lat, lon]),
    )


def label_columns(
    frame: pd.DataFrame, exclude: Sequence[str], n: int = 2, max_share: float = 0.9
) -> tuple[str, ...]:
    """Up to n text columns naming areas (filled, many distinct values but not one per row
    unless max_share allows it, not numbers): they name the rows that join no tract."""
    sample = sample_rows(frame)
    scored = []
    for name in frame.columns:
        if name in exclude:
            continue
        text = sample[name].astype(object).str.strip()
        if (text == "").mean() > 0.1 or parse_counts(text).notna().mean() > 0.5:
            continue
        count = text.nunique()
        if 1 < count <= max_share * len(sample):
            scored.append((count, name))
    return tuple(name for _, name in sorted(scored, reverse=True)[:n])


def row_labels(frame: pd.DataFrame, labels: Sequence[str]) -> tuple[pd.Series, pd.Series]:
    """Each row's label as written ("a, b") and normalised; "" without label columns."""
    if not labels:
        blank = pd.Series("", index=frame.index, dtype=object)
        return blank, blank
    parts = [frame[c].astype(object).str.strip() for c in labels]
    raw = parts[0]
    for part in parts[1:]:
        raw = raw.where(part == "", raw + ", " + part).where(raw != "", part)
    return raw, normalise_keys(raw)
