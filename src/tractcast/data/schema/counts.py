"""Count detection: the value column, cumulative or daily; counts over what derives from them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tractcast.data.relations import (
    MIN_CELLS,
    Relation,
    find_relations,
    name_role,
    value_grid,
)
from tractcast.data.schema.parsing import detect_number_format, parse_counts, sample_rows
from tractcast.data.schema.results import (
    CELLS,
    VALUE_KINDS,
    Cells,
    TractKeyInference,
    TractLayer,
    ValueInference,
)
from tractcast.errors import DataRejected, InvalidInput


def screen_count_column(values: pd.Series, number_format: str = "plain") -> dict[str, float]:
    """Shares telling whether a column holds counts: filled, numeric, integer-like, non-negative."""
    text = values.astype(object).str.strip()
    filled = text != ""
    numbers = parse_counts(text[filled], number_format)
    numeric = numbers.notna()
    valid = numbers[numeric]
    return {
        "share_filled": float(filled.mean()) if len(text) else 0.0,
        "share_numeric": float(numeric.mean()) if len(numbers) else 0.0,
        "share_integer": float((valid == np.round(valid)).mean()) if len(valid) else 0.0,
        "share_non_negative": float((valid >= 0).mean()) if len(valid) else 0.0,
    }


def is_count_column(screen: dict[str, float], min_share: float = 0.9) -> bool:
    """Whether a screened column looks like a column of counts."""
    return all(share >= min_share for share in screen.values())


def step_evidence(dates: pd.Series, keys: pd.Series, values: pd.Series) -> dict[str, Any]:
    """Per-key day-over-day steps: how many rise, stay, fall; share rising among changes."""
    dates, keys, values = (pd.Series(np.asarray(x)) for x in (dates, keys, values))
    valid = dates.notna().to_numpy() & (keys != "").to_numpy() & (values >= 0).to_numpy()
    key_codes, _ = pd.factorize(keys[valid])
    days = dates[valid].to_numpy().astype("datetime64[D]").astype(np.int64)
    numbers = values[valid].to_numpy()
    parts = pd.DataFrame({"key": key_codes, "day": days, "value": numbers})
    if parts.duplicated(["key", "day"]).any():  # several rows per area and day: their sum
        summed = parts.groupby(["key", "day"], sort=False)["value"].sum().reset_index()
        key_codes, days, numbers = (summed[c].to_numpy() for c in ("key", "day", "value"))
    order = np.lexsort((days, key_codes))
    same_key = key_codes[order][1:] == key_codes[order][:-1]
    steps = np.diff(numbers[order])[same_key]
    rises, falls = int((steps > 0).sum()), int((steps < 0).sum())
    constant = pd.Series(numbers).groupby(key_codes).nunique() <= 1
    return {
        "steps": int(steps.size),
        "rises": rises,
        "falls": falls,
        "share_non_decreasing": round(float((steps >= 0).mean()) if steps.size else 0.0, 4),
        "share_rising_of_changes": round(rises / max(rises + falls, 1), 4),
        "share_keys_constant": round(float(constant.mean()) if len(constant) else 1.0, 4),
    }


def magnitude(values: pd.Series, keys: pd.Series, kind: str) -> float:
    """Total count a column implies: sum of per-key maxima (cumulative) or of all values (daily)."""
    if kind == "cumulative":
        return float(values.groupby(np.asarray(keys)).max().sum())
    return float(values.sum())


def check_kind(kind: str | None) -> None:
    if kind is not None and kind not in VALUE_KINDS:
        raise InvalidInput(f"value_kind must be one of {VALUE_KINDS}, got {kind!r}")


@dataclass(frozen=True, eq=False)
class ValueCandidate:
    """A column that holds counts per tract: its values, kind, implied total and evidence."""

    name: str
    kind: str
    total: float
    evidence: dict[str, Any]
    number_format: str
    values: pd.Series
    role: str  # what its name says: "cases", "other", "rate" or ""


def infer_value_column(
    frame: pd.DataFrame,
    dates: pd.Series,
    keys: pd.Series,
    *,
    exclude: Sequence[str] = (),
    column: str | None = None,
    kind: str | None = None,
    min_rising: float = 0.9,
    populations: dict[str, float] | None = None,
) -> ValueInference:
    """The raw case count among the count columns, and whether it is cumulative.

    Columns that derive from another (rates per population, rolling sums and means, daily
    differences of a cumulative column) are set aside by content (relations.py); then other
    measures (tests, deaths ...) by name; among what is left the cumulative column with the
    largest total wins, unless two columns stay indistinguishable: then the release is refused.
    """
    check_kind(kind)
    sample = sample_rows(frame)
    columns = [column] if column else [name for name in frame.columns if name not in exclude]
    rejected: dict[str, str] = {}
    candidates: list[ValueCandidate] = []
    for name in columns:
        number_format = detect_number_format(sample[name])
        screen = screen_count_column(sample[name], number_format)
        if column is None and not is_count_column(screen):
            rejected[name] = "not a count column"
            continue
        values = parse_counts(frame[name], number_format)
        steps = step_evidence(dates, keys, values)
        if column is None and steps["share_keys_constant"] >= 0.9:
            rejected[name] = "constant per tract (an attribute, not a count)"
            continue
        rising = steps["share_rising_of_changes"] >= min_rising
        chosen_kind = kind or ("cumulative" if rising else "daily")
        evidence = {k: round(v, 4) for k, v in screen.items()} | steps
        evidence["number_format"] = number_format
        total = magnitude(values, keys, chosen_kind)
        role = name_role(name)
        candidates.append(
            ValueCandidate(name, chosen_kind, total, evidence, number_format, values, role)
        )
    if not candidates:
        raise DataRejected("no value column: no column holds non-negative integer counts per tract")
    relations: list[Relation] = []
    if column is None and len(candidates) > 1:
        grid = value_grid(dates, keys, {c.name: c.values for c in candidates})
        relations = find_relations(grid, {c.name: c.kind for c in candidates})
    chosen, roles = choose_count(candidates, relations, rejected, populations or {})
    evidence = {
        **chosen.evidence,
        "implied_total": chosen.total,
        "override": bool(column),
        "rejected": rejected,
        "kind_override": kind is not None,
        "name_roles": roles,
        "relations": [r.to_dict() for r in relations],
        "other_candidates": [c.name for c in candidates if c.name != chosen.name],
    }
    return ValueInference(
        column=chosen.name, evidence=evidence, kind=chosen.kind, number_format=chosen.number_format
    )


def choose_count(
    candidates: list[ValueCandidate],
    relations: list[Relation],
    rejected: dict[str, str],
    populations: dict[str, float],
) -> tuple[ValueCandidate, dict[str, str]]:
    """The raw case count among candidates; what was set aside goes into `rejected`."""
    roles = {c.name: c.role for c in candidates}
    if len(candidates) == 1:
        return candidates[0], roles
    unresolved = set_aside_derived(candidates, relations, rejected, populations)
    pool = [c for c in candidates if c.name not in rejected]
    plain = [c for c in pool if c.role in ("cases", "")]
    if not plain:
        names = ", ".join(repr(c.name) for c in pool)
        raise DataRejected(
            f"no case count column: the count columns left ({names}) are named as rates or as "
            "other measures (tests, deaths ...); set TRACTCAST_VALUE_COLUMN to use one anyway"
        )
    for c in pool:
        if c.role in ("rate", "other"):
            rejected[c.name] = (
                "named as a rate, share or rolling window"
                if c.role == "rate"
                else "named as another measure (tests, deaths, hospital ...), not cases"
            )
    ranked = sorted(plain, key=lambda c: (c.role == "cases", c.kind == "cumulative", c.total))
    best = ranked[-1]
    plain_names = {c.name for c in plain}
    for relation in unresolved:  # only a relation of the would-be choice leaves it in doubt
        pair = {relation.column, relation.source}
        if best.name in pair and pair <= plain_names:
            raise DataRejected(ambiguous_multiple(relation))
    rivals = [c for c in ranked[:-1] if (c.role, c.kind) == (best.role, best.kind)]
    settle_rivals(best, rivals, rejected)
    return best, roles


def set_aside_derived(
    candidates: list[ValueCandidate],
    relations: list[Relation],
    rejected: dict[str, str],
    populations: dict[str, float],
) -> list[Relation]:
    """Put every column derived from another into `rejected`; return the relations that
    nothing orients (two columns that are multiples of each other)."""
    by_name = {c.name: c for c in candidates}
    unresolved = []
    for relation in relations:
        if relation.column in rejected or relation.source in rejected:
            continue
        if not relation.symmetric or relation.kind == "copy":
            rejected[relation.column] = describe_relation(relation)
            continue
        derived, why = orient_relation(relation, by_name, populations)
        if derived is None:
            unresolved.append(relation)
            continue
        source = relation.source if derived == relation.column else relation.column
        rejected[derived] = f"{describe_relation(relation, derived, source)}; {why}"
    return unresolved


def settle_rivals(
    best: ValueCandidate, rivals: list[ValueCandidate], rejected: dict[str, str]
) -> None:
    """Columns of the same kind and name class as the choice: its parts (it is their sum) or
    its subsets (never above it) are set aside; any other rival makes the choice a guess."""
    summed = sum_of_parts(best, rivals)
    if summed is not None:
        rejected.update({c.name: f"a part of {best.name!r} ({summed})" for c in rivals})
        return
    left = []
    for rival in rivals:
        share = share_not_larger(rival, best)
        if share >= 0.99:  # never above the count: a subset of its cases (active, by test ...)
            rejected[rival.name] = f"a subset of {best.name!r} (not larger in {share:.0%} of rows)"
        else:
            left.append(rival)
    if left:
        names = ", ".join(repr(c.name) for c in [best, *left])
        raise DataRejected(
            f"ambiguous value column: {names} are all {best.kind} counts"
            f"{' named as cases' if best.role == 'cases' else ''}, none derives from another, "
            "none is the sum of the others and none stays below another; set "
            "TRACTCAST_VALUE_COLUMN (and TRACTCAST_VALUE_KIND) to choose"
        )


def ambiguous_multiple(relation: Relation) -> str:
    """Why a release is refused when two columns are multiples of each other."""
    spread = (
        f"varying by {relation.factor_spread:.0%} across tracts, as a rate per population does"
        if relation.kind == "rate"
        else "the same in every tract"
    )
    return (
        f"ambiguous value column: {relation.column!r} is a constant multiple of "
        f"{relation.source!r} (factor {relation.factor:.4g}, {spread}; fit "
        f"{relation.share_fit:.0%} of {relation.cells} cells), so one derives from the other, "
        "and neither their names, a population in the tract layer nor their rounding tells "
        "which is the count; set TRACTCAST_VALUE_COLUMN (and TRACTCAST_VALUE_KIND) to choose"
    )


def share_not_larger(part: ValueCandidate, whole: ValueCandidate) -> float:
    """Share of rows where `part` is at most `whole` (0 unless it is strictly smaller somewhere)."""
    a, b = part.values.to_numpy(dtype=float), whole.values.to_numpy(dtype=float)
    both = ~np.isnan(a) & ~np.isnan(b)
    if both.sum() < MIN_CELLS or not (a[both] < b[both]).any():
        return 0.0
    return float((a[both] <= b[both]).mean())


def sum_of_parts(best: ValueCandidate, parts: list[ValueCandidate]) -> str | None:
    """Evidence that `best` is the row-wise sum of `parts` (age or sex columns and their total)."""
    if len(parts) < 2:
        return None
    total = best.values.to_numpy(dtype=float)
    summed = np.nansum([p.values.to_numpy(dtype=float) for p in parts], axis=0)
    both = ~np.isnan(total)
    if both.sum() < MIN_CELLS:
        return None
    share = float((np.abs(total[both] - summed[both]) <= 0.5).mean())
    return f"the sum of {len(parts)} columns in {share:.0%} of rows" if share >= 0.95 else None


def describe_relation(relation: Relation, derived: str = "", source: str = "") -> str:
    """How one column derives from another, in words."""
    derived, source = derived or relation.column, source or relation.source
    over = {"identity": "", "difference": " of the daily differences"}.get(
        relation.transform, f" of the {relation.transform.split('_')[-1]}-day sums"
    )
    words = {
        "copy": f"a copy of {source!r}",
        "difference": f"the daily differences of {source!r}",
        "rolling_sum": f"the {relation.transform.split('_')[-1]}-day rolling sum of {source!r}",
        "rolling_mean": f"the {relation.transform.split('_')[-1]}-day rolling mean of {source!r}",
        "rate": f"a rate per population{over} of {source!r}",
        "scaled": f"a constant multiple (x{relation.factor:.4g}){over} of {source!r}",
    }
    return f"derived: {words[relation.kind]} (fits {relation.share_fit:.0%} of {relation.cells})"


def orient_relation(
    relation: Relation, by_name: dict[str, ValueCandidate], populations: dict[str, float]
) -> tuple[str | None, str]:
    """Which column of a symmetric multiple-of relation is the derived one, and why."""
    a, b = by_name[relation.column], by_name[relation.source]
    power = population_power(relation.factors, populations)
    if power is not None:
        derived = a.name if power > 0 else b.name
        return derived, f"x population of the tract = 10^{abs(power)} (per-capita rate)"
    roles = {a.role, b.role}
    if "rate" in roles and len(roles) == 2:
        derived = a.name if a.role == "rate" else b.name
        return derived, "its name says rate"
    integer = {c.name: c.evidence["share_integer"] >= 0.999 for c in (a, b)}
    if integer[a.name] != integer[b.name]:
        derived = b.name if integer[a.name] else a.name
        return derived, "it has decimals, the other is whole counts"
    return None, ""


def population_power(factors: dict[str, float], populations: dict[str, float]) -> int | None:
    """n when factor x population is 10^n for every tract (derived is per 10^n inhabitants),
    -n when factor / population is 10^-n (the source is the rate), else None."""
    pairs = [(f, populations[k]) for k, f in factors.items() if k in populations and f > 0]
    if len(pairs) < 2:
        return None
    factor, population = (np.array(x, dtype=float) for x in zip(*pairs, strict=True))
    for sign, products in ((1, factor * population), (-1, population / factor)):
        median = float(np.median(products))
        exponent = np.log10(median) if median > 0 else 0.0
        spread = float(np.median(np.abs(products / median - 1)))
        if spread <= 0.02 and abs(exponent - round(exponent)) <= 0.01 and round(exponent) >= 2:
            return sign * int(round(exponent))
    return None


def infer_cell_values(
    cells: Cells, text_sample: pd.Series, kind: str | None, min_rising: float = 0.9
) -> ValueInference:
    """Kind of the counts in the cells of a wide table (their number format is already known)."""
    check_kind(kind)
    tract_keys = cells.areas.keys.astype(object).where(cells.areas.tracts.notna().to_numpy(), "")
    steps = step_evidence(cells.dates, tract_keys, pd.Series(cells.values))
    screen = screen_count_column(text_sample, detect_number_format(text_sample))
    rising = steps["share_rising_of_changes"] >= min_rising
    chosen = kind or ("cumulative" if rising else "daily")
    evidence = {k: round(v, 4) for k, v in screen.items()} | steps | {"kind_override": bool(kind)}
    if not is_count_column({k: v for k, v in screen.items() if k != "share_filled"}):
        raise DataRejected("no value column: the cells under the headers are not counts")
    return ValueInference(column=CELLS, evidence=evidence, kind=chosen)


POPULATION_NAME = re.compile(
    r"pop|inhabit|resident|einwohner|abitant|habitant|poblaci|bevolking|ludnos|residenti",
    re.IGNORECASE,
)


def tract_populations(layer: TractLayer) -> tuple[str, dict[str, float]]:
    """The layer property holding each tract's population (named so, positive numbers for at
    least 90% of tracts) and tract id -> population; ("", {}) when the layer has none."""
    properties = layer.properties()
    names = [
        n for n in dict.fromkeys(k for p in properties for k in p) if POPULATION_NAME.search(n)
    ]
    for name in names:
        # one parse over every tract's text (one per tract took 35 s on 10,000 tracts)
        text = pd.Series([str(props.get(name, "")) for props in properties], dtype=object)
        numbers = parse_counts(text).to_numpy()
        values = {
            tract.id: float(number)
            for tract, number in zip(layer.tracts, numbers, strict=True)
            if number > 0
        }
        if len(values) >= 0.9 * max(len(layer.tracts), 1):
            return name, values
    return "", {}


def key_populations(tract: TractKeyInference, layer: TractLayer) -> dict[str, float]:
    """Normalised area key -> population of its tract, when the layer carries populations."""
    _, populations = tract_populations(layer)
    if not populations or tract.coordinates is not None:
        return {}
    return {k: populations[t] for k, t in tract.key_map.items() if t in populations}
