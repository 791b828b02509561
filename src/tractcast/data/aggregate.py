"""Rows to one value per tract and day: parts summed, areas of one tract aggregated."""

from __future__ import annotations

import pandas as pd


def sum_disaggregated(
    observations: pd.DataFrame, min_share: float = 0.5
) -> tuple[pd.DataFrame, int]:
    """Sum rows that split one area-day into parts (age groups, sexes, sources ...).

    Recognised when most (area, day) pairs have several rows, each pair within one file (a day
    published twice in two files is a conflict, not parts). When one row of each pair is the
    total of the others (an "all ages" row), that row is kept instead of the sum.
    Returns the rows and how many were merged.
    """
    repeated = observations.duplicated(["key", "date"], keep=False)
    if repeated.mean() < min_share:
        return observations, 0
    pairs = observations.groupby(["key", "date"], observed=True, sort=False)
    if (pairs["file"].nunique() > 1).any():
        return observations, 0
    summed = pairs.agg(
        value=("value", "sum"),
        largest=("value", "max"),
        file=("file", "first"),
        line=("line", "first"),
        raw_key=("raw_key", "first"),
        tract_id=("tract_id", "first"),
    ).reset_index()
    with_total = (summed["largest"] * 2 == summed["value"]) | (summed["value"] == 0)
    if with_total.mean() >= 0.9:
        summed["value"] = summed["largest"]
    return summed.drop(columns="largest"), int(len(observations) - len(summed))


def split_by_tract(observations: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observations whose area joins a tract and those whose area does not (pseudo-areas)."""
    joined = observations["tract_id"].notna().to_numpy()
    matched = observations[joined]
    if not isinstance(matched["tract_id"].dtype, pd.CategoricalDtype):
        matched = matched.astype({"tract_id": str})
    return matched.reset_index(drop=True), observations[~joined].reset_index(drop=True)


def aggregate_areas(matched: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Sum the areas that share a tract and a day (points mapped to one tract)."""
    per_tract_day = matched.duplicated(["tract_id", "date"], keep=False)
    if not per_tract_day.any():
        return matched, 0
    summed = matched.groupby(["tract_id", "date"], as_index=False, sort=False, observed=True).agg(
        value=("value", "sum"), line=("line", "first"), file=("file", "first")
    )
    return summed, int(len(matched) - len(summed))
