"""Invented releases in the shapes real public portals publish, with the counts they must give.

One small epidemic (six counties over 42 days, numbers invented) is written out in each layout:
per-area files with rates and rolling sums beside the counts, per-day files with update
timestamps, wide dashboard exports, age-class rows, semicolon files with decimal commas, several
measures side by side, a feed that stops while its files keep coming. Each layout function
writes its files into a folder and returns it; `EPIDEMIC` holds the truth to compare with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tractcast.geo.index import Tract

COUNTIES = (  # code, name, region, population
    ("01001", "Autauga", "Alabama", 55_869),
    ("01003", "Baldwin", "Alabama", 223_234),
    ("02020", "Anchorage", "Alaska", 288_000),
    ("04013", "Maricopa", "Arizona", 4_485_414),
    ("06037", "Los Angeles", "California", 10_039_107),
    ("06059", "Orange", "California", 3_175_692),
)
START = date(2021, 3, 1)
DAYS = 42


@dataclass(frozen=True)
class Epidemic:
    """Daily new cases (tracts x days), the cumulative count before the first day, and more."""

    daily: np.ndarray
    before: np.ndarray
    tests: np.ndarray
    deaths: np.ndarray

    @property
    def cumulative(self) -> np.ndarray:
        return self.before[:, None] + np.cumsum(self.daily, axis=1)

    def final_totals(self) -> dict[str, float]:
        """Per tract code the last cumulative count."""
        return {c[0]: float(v) for c, v in zip(COUNTIES, self.cumulative[:, -1], strict=True)}

    def daily_sums(self) -> dict[str, float]:
        """Per tract code the sum of the daily counts over the period."""
        return {c[0]: float(v) for c, v in zip(COUNTIES, self.daily.sum(axis=1), strict=True)}


def make_epidemic(seed: int = 11) -> Epidemic:
    rng = np.random.default_rng(seed)
    population = np.array([c[3] for c in COUNTIES], dtype=float)
    wave = 1 + 0.6 * np.sin(np.arange(DAYS) / 6.0)
    rate = (population / 1e5 * 18)[:, None] * wave[None, :]
    daily = rng.poisson(rate).astype(float)
    tests = daily * 9 + rng.poisson(50, daily.shape)
    deaths = rng.binomial(daily.astype(int), 0.015).astype(float)
    return Epidemic(daily, np.round(population / 40), tests, deaths)


EPIDEMIC = make_epidemic()


def days() -> list[date]:
    return [START + timedelta(days=i) for i in range(DAYS)]


@dataclass
class CorpusLayer:
    """The six counties as a tract layer without geometry (population optional)."""

    with_population: bool = True
    id_field: str = "code"
    tracts: list[Tract] = field(init=False)

    def __post_init__(self) -> None:
        self.tracts = [Tract(code, name) for code, name, _, _ in COUNTIES]

    def properties(self) -> list[dict[str, Any]]:
        rows = []
        for code, name, region, population in COUNTIES:
            row: dict[str, Any] = {"code": code, "name": name, "region": region}
            if self.with_population:
                row["population"] = population
            rows.append(row)
        return rows


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def rolling(values: np.ndarray, window: int) -> np.ndarray:
    """Sums of the last `window` values (fewer at the start, as portals print them)."""
    csum = np.cumsum(np.concatenate([[0.0], values]))
    idx = np.arange(1, len(values) + 1)
    return csum[idx] - csum[np.maximum(idx - window, 0)]


# --- layouts ---------------------------------------------------------------------------------


def per_area_with_rates(folder: Path, opaque: bool = False) -> Path:
    """One file per area (name in the file name): cumulative and daily counts, 7-day sums, the
    same per million (rounded to whole numbers), deaths and percentages."""
    headers = [
        "date", "total_cases", "new_cases", "weekly_cases", "total_cases_per_million",
        "new_cases_per_million", "weekly_cases_per_million", "total_deaths", "positive_rate",
    ]  # fmt: skip
    if opaque:  # headers that say nothing of the case columns: only content can tell
        headers = ["date", *[f"c{i}" for i in range(1, 7)], *headers[7:]]
    files = {}
    e = EPIDEMIC
    for k, (_, name, _, population) in enumerate(COUNTIES):
        per_million = 1e6 / population
        weekly = rolling(e.daily[k], 7)
        lines = [",".join(headers)]
        deaths = np.cumsum(e.deaths[k]) + 3
        for t, day in enumerate(days()):
            lines.append(
                f"{day},{e.cumulative[k, t]:.0f},{e.daily[k, t]:.0f},{weekly[t]:.0f},"
                f"{e.cumulative[k, t] * per_million:.0f},{e.daily[k, t] * per_million:.0f},"
                f"{weekly[t] * per_million:.0f},{deaths[t]:.0f},"
                f"{e.daily[k, t] / e.tests[k, t]:.3f}"
            )
        files[f"covid_{name.lower().replace(' ', '_')}.csv"] = "\n".join(lines) + "\n"
    return write(folder, files)


LAST_UPDATE_FORMATS = ("{d:%Y-%m-%d %H:%M:%S}", "{d:%m/%d/%y %H:%M}", "{d:%Y-%m-%dT%H:%M:%SZ}")


def per_day_with_update_times(folder: Path, stale_after: int | None = None) -> Path:
    """One file per day named MM-DD-YYYY.csv; rows carry a Last_Update timestamp with times of
    day (next day in UTC, three formats across files), FIPS codes without leading zeros, an
    Unassigned row per state (FIPS 900xx), columns renamed midway; the epidemic's cumulative counts.

    With `stale_after`, every file after that day repeats that day's values (a stopped feed).
    """
    files = {}
    e = EPIDEMIC
    for t, day in enumerate(days()):
        source_day = t if stale_after is None else min(t, stale_after)
        renamed = t >= DAYS // 2
        state = "Province_State" if renamed else "Province/State"
        update = "Last_Update" if renamed else "Last Update"
        rate = "Incident_Rate" if renamed else "Incidence_Rate"
        lines = [f"FIPS,Admin2,{state},Country_Region,{update},Confirmed,Deaths,Active,{rate}"]
        fmt = LAST_UPDATE_FORMATS[t % len(LAST_UPDATE_FORMATS)]
        for k, (code, name, region, population) in enumerate(COUNTIES):
            stamp = fmt.format(
                d=_clock(START + timedelta(days=source_day + 1), minutes=7 * k + t % 5)
            )
            confirmed = e.cumulative[k, source_day]
            deaths = np.cumsum(e.deaths[k])[source_day]
            lines.append(
                f"{int(code)},{name},{region},US,{stamp},{confirmed:.0f},{deaths:.0f},"
                f"{confirmed - deaths:.0f},{confirmed * 1e5 / population:.4f}"
            )
        for fips, region in (("90001", "Alabama"), ("90006", "California")):
            lines.append(
                f"{fips},Unassigned,{region},US,{stamp},{3 + source_day},0,{3 + source_day},"
            )
        files[f"{day:%m-%d-%Y}.csv"] = "\n".join(lines) + "\n"
    return write(folder, files)


def _clock(day: date, minutes: int) -> Any:
    from datetime import datetime

    return datetime(day.year, day.month, day.day, 4, 21) + timedelta(minutes=minutes)


def long_by_name_and_region(folder: Path) -> Path:
    """One long file keyed by area name plus region name; Unknown areas per region."""
    e = EPIDEMIC
    lines = ["date,county,state,fips,cases,deaths"]
    for t, day in enumerate(days()):
        for k, (code, name, region, _) in enumerate(COUNTIES):
            lines.append(
                f"{day},{name},{region},{code},{e.cumulative[k, t]:.0f},"
                f"{np.cumsum(e.deaths[k])[t]:.0f}"
            )
        lines.append(f"{day},Unknown,Alabama,,{10 + t},0")
    return write(folder, {"us-counties.csv": "\n".join(lines) + "\n"})


def wide_dashboard(folder: Path) -> Path:
    """A dashboard export: one row per area with its code, name, population and a rate, then
    one column per day (M/D/YY headers) holding cumulative counts."""
    e = EPIDEMIC
    headers = ["UID", "FIPS", "Admin2", "Province_State", "Population", "Rate_per_100k"]
    headers += [f"{d.month}/{d.day}/{d:%y}" for d in days()]
    lines = [",".join(headers)]
    for k, (code, name, region, population) in enumerate(COUNTIES):
        rate = e.cumulative[k, -1] * 1e5 / population
        cells = [f"840{code}", code, name, region, str(population), f"{rate:.2f}"]
        cells += [f"{v:.0f}" for v in e.cumulative[k]]
        lines.append(",".join(f'"{c}"' if " " in c else c for c in cells))
    return write(folder, {"time_series_confirmed_US.csv": "\n".join(lines) + "\n"})


AGE_GROUPS = ("0-19", "20-39", "40-59", "60-79", "80+")


def age_classes_with_total(folder: Path, total_label: str | None = "all ages") -> Path:
    """Daily counts per area split into age classes, with (or without) an all-ages row."""
    e = EPIDEMIC
    rng = np.random.default_rng(5)
    lines = ["date;area_code;age_group;new_cases"]
    for t, day in enumerate(days()):
        for k, (code, _, _, _) in enumerate(COUNTIES):
            parts = rng.multinomial(int(e.daily[k, t]), [0.2, 0.3, 0.25, 0.15, 0.1])
            for group, part in zip(AGE_GROUPS, parts, strict=True):
                lines.append(f"{day};{code};{group};{part}")
            if total_label:
                lines.append(f"{day};{code};{total_label};{e.daily[k, t]:.0f}")
    return write(folder, {"cases_by_age.csv": "\n".join(lines) + "\n"})


def semicolon_decimal_comma(folder: Path) -> Path:
    """German-style export: semicolons, DD.MM.YYYY, dotted thousands, decimal-comma rates."""
    e = EPIDEMIC
    lines = ["Meldedatum;IdLandkreis;Landkreis;AnzahlFall;AnzahlTodesfall;Inzidenz_7T"]
    for t, day in enumerate(days()):
        for k, (code, name, _, population) in enumerate(COUNTIES):
            week = rolling(e.daily[k], 7)[t] * 1e5 / population
            rate = f"{week:.1f}".replace(".", ",")
            lines.append(
                f"{day:%d.%m.%Y};{code};{name};{_dotted(e.daily[k, t])};{e.deaths[k, t]:.0f};{rate}"
            )
    return write(folder, {"RKI_Landkreise.csv": "\n".join(lines) + "\n"})


def _dotted(value: float) -> str:
    return f"{value:,.0f}".replace(",", ".")


def measures_side_by_side(folder: Path) -> Path:
    """Daily cases, tests (ten times more), deaths and hospital admissions per area and day."""
    e = EPIDEMIC
    lines = ["report_date,region_code,tests,cases,deaths,hospital_admissions"]
    for t, day in enumerate(days()):
        for k, (code, _, _, _) in enumerate(COUNTIES):
            lines.append(
                f"{day},{code},{e.tests[k, t]:.0f},{e.daily[k, t]:.0f},{e.deaths[k, t]:.0f},"
                f"{e.deaths[k, t] * 3 + 1:.0f}"
            )
    return write(folder, {"indicators.csv": "\n".join(lines) + "\n"})


def neutral_cumulative_and_daily(folder: Path) -> Path:
    """Headers that say nothing: a cumulative count and its daily differences."""
    e = EPIDEMIC
    lines = ["dt,geo,v_a,v_b"]
    for t, day in enumerate(days()):
        for k, (code, _, _, _) in enumerate(COUNTIES):
            previous = e.cumulative[k, t - 1] if t else e.before[k]
            lines.append(
                f"{day},{code},{e.cumulative[k, t] - previous:.0f},{e.cumulative[k, t]:.0f}"
            )
    return write(folder, {"export.csv": "\n".join(lines) + "\n"})


def neutral_daily_with_windows(folder: Path, population_rate: bool = True) -> Path:
    """Headers that say nothing: the daily count beside its 7-day sum, its rounded 7-day mean
    and a 14-day rate per 100k inhabitants (whole numbers)."""
    e = EPIDEMIC
    lines = ["d,area,x1,x2,x3,x4"]
    for k, (code, _, _, population) in enumerate(COUNTIES):
        week = rolling(e.daily[k], 7)
        fortnight = rolling(e.daily[k], 14)
        for t, day in enumerate(days()):
            lines.append(
                f"{day},{code},{week[t]:.0f},{e.daily[k, t]:.0f},{week[t] / 7:.0f},"
                f"{fortnight[t] * 1e5 / population:.0f}"
            )
    return write(folder, {"dashboard.csv": "\n".join(lines) + "\n"})


def wide_by_tract(folder: Path) -> Path:
    """One row per day, one column per area code, daily counts."""
    e = EPIDEMIC
    lines = ["Date," + ",".join(c[0] for c in COUNTIES)]
    for t, day in enumerate(days()):
        lines.append(f"{day}," + ",".join(f"{v:.0f}" for v in e.daily[:, t]))
    return write(folder, {"daily_by_county.csv": "\n".join(lines) + "\n"})


def two_unrelated_counts(folder: Path) -> Path:
    """Two cumulative counts with headers that say nothing and no relation between them."""
    e = EPIDEMIC
    lines = ["date,code,m1,m2"]
    for t, day in enumerate(days()):
        for k, (code, _, _, _) in enumerate(COUNTIES):
            lines.append(f"{day},{code},{e.cumulative[k, t]:.0f},{np.cumsum(e.tests[k])[t]:.0f}")
    return write(folder, {"release.csv": "\n".join(lines) + "\n"})


def per_day_frozen_tail(folder: Path, fresh_days: int = 24) -> Path:
    """One file per day, the date only in the file name; after `fresh_days` every new file is a
    value-for-value copy of the last fresh one (the feed stopped, the files kept coming)."""
    e = EPIDEMIC
    files = {}
    for t, day in enumerate(days()):
        source = min(t, fresh_days - 1)
        lines = ["county_code,county,confirmed"]
        for k, (code, name, _, _) in enumerate(COUNTIES):
            lines.append(f"{code},{name},{e.cumulative[k, source]:.0f}")
        files[f"cases_{day:%Y%m%d}.csv"] = "\n".join(lines) + "\n"
    return write(folder, files)


MEASURES = ("confirmed cases", "tests performed", "deaths", "hospitalised")


def long_measures(folder: Path) -> Path:
    """A long file with one row per area, day and indicator (cases, tests, deaths, hospital)."""
    e = EPIDEMIC
    lines = ["date,area_id,indicator,value"]
    for t, day in enumerate(days()):
        for k, (code, _, _, _) in enumerate(COUNTIES):
            values = (e.daily[k, t], e.tests[k, t], e.deaths[k, t], e.deaths[k, t] * 3)
            for measure, value in zip(MEASURES, values, strict=True):
                lines.append(f"{day},{code},{measure},{value:.0f}")
    return write(folder, {"indicators_long.csv": "\n".join(lines) + "\n"})


def age_columns_with_total(folder: Path) -> Path:
    """Daily cases per area with one column per age class beside a column with their total."""
    e = EPIDEMIC
    rng = np.random.default_rng(7)
    lines = ["date,code," + ",".join(f"cases_{g}" for g in ("0_19", "20_59", "60_plus", "total"))]
    for t, day in enumerate(days()):
        for k, (code, _, _, _) in enumerate(COUNTIES):
            parts = rng.multinomial(int(e.daily[k, t]), [0.3, 0.5, 0.2])
            lines.append(
                f"{day},{code}," + ",".join(str(p) for p in parts) + f",{e.daily[k, t]:.0f}"
            )
    return write(folder, {"cases_age_columns.csv": "\n".join(lines) + "\n"})


def write_layer(path: Path) -> Path:
    """The six counties as a GeoJSON layer (invented unit squares side by side)."""
    import json

    features = []
    for i, (code, name, region, population) in enumerate(COUNTIES):
        x = float(i)
        ring = [[x, 0.0], [x + 1, 0.0], [x + 1, 1.0], [x, 1.0], [x, 0.0]]
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "code": code,
                    "name": name,
                    "region": region,
                    "population": population,
                },
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def regional_bulletin(folder: Path) -> Path:
    """An Italian-style bulletin: hospital, intensive care, home isolation, currently positive
    (a subset of all cases), new positives, recovered, deaths, cases by detection route (only in
    the later weeks), swabs and people tested, beside the cumulative case count."""
    e = EPIDEMIC
    header = (
        "data,stato,codice_regione,denominazione_regione,ricoverati_con_sintomi,"
        "terapia_intensiva,totale_ospedalizzati,isolamento_domiciliare,totale_positivi,"
        "nuovi_positivi,dimessi_guariti,deceduti,casi_da_sospetto_diagnostico,"
        "casi_da_screening,totale_casi,tamponi,casi_testati,note"
    )
    lines = [header]
    for t, day in enumerate(days()):
        for k, (code, name, _, _) in enumerate(COUNTIES):
            total, new = e.cumulative[k, t], e.daily[k, t]
            deaths = np.cumsum(e.deaths[k])[t]
            recovered = int(total * 0.6)
            positive = int(total - recovered - deaths)
            hospital = positive // 20
            icu = hospital // 10
            swabs = int(np.cumsum(e.tests[k])[t])
            routes = f"{int(total * 0.8)},{int(total - int(total * 0.8))}" if t > 20 else ","
            lines.append(
                f"{day}T17:00:00,ITA,{code},{name},{hospital - icu},{icu},{hospital},"
                f"{positive - hospital},{positive},{new:.0f},{recovered},{deaths:.0f},{routes},"
                f"{total:.0f},{swabs},{int(swabs * 0.7)},"
            )
    return write(folder, {"dpc-covid19-ita-regioni.csv": "\n".join(lines) + "\n"})
