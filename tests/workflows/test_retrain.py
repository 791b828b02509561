"""One retrain end to end on the demo data: every candidate registered, the gate decides."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tractcast.cli import main
from tractcast.evaluation.backtest import Backtest, recent_origins
from tractcast.evaluation.gate import choose_candidate
from tractcast.models.base import BASELINE_FAMILIES
from tractcast.registry import Registry
from tractcast.registry import store as layout
from tractcast.settings import Settings
from tractcast.workflows.candidates import (
    REPORT_KEYS,
    candidate_forecasters,
    fitting_candidates,
    load_inputs,
    series_arrays,
)
from tractcast.workflows.promotion import (
    evaluate_champion,
    gate,
    last_day_fitted,
    refresh_champion,
    saved_forecaster,
    score_saved_fit,
)
from tractcast.workflows.retrain import RetrainOutcome, retrain

pytestmark = pytest.mark.slow

FAMILIES = ("lstm", *BASELINE_FAMILIES, "ensemble")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = tmp_path_factory.mktemp("pipeline")
    return Settings(
        store=base / "store",
        demo_dir=base / "demo",
        run_dir=base / "run",
        epochs=2,
        backtest_origins=4,
    )


@pytest.fixture(scope="module")
def first(settings: Settings) -> RetrainOutcome:
    return retrain(settings, trigger="test")


@pytest.fixture(scope="module")
def second(settings: Settings, first: RetrainOutcome) -> RetrainOutcome:
    return retrain(settings, trigger="test")


def test_every_candidate_family_is_registered_with_its_backtest_metrics(
    settings: Settings, first: RetrainOutcome
) -> None:
    assert list(first.versions) == list(FAMILIES)
    assert first.versions["lstm"] == "v0001-lstm"
    registry = Registry.open(settings)
    store = registry.store
    for family, version in first.versions.items():
        found = store.get_version(version)
        assert found.family == family and version.endswith(f"-{family}")
        metrics = found.metrics
        assert metrics["origins"] == first.origins and len(first.origins) == 4
        for key in (
            "mse", "mae", "rmse", "mape", "wape", "wis", "relative_mae", "relative_wis",
            "robust_relative_mae", "robust_relative_wis", "coverage", "coverage_50",
            "coverage_95", "coverage_min", "coverage_max",
        ):  # fmt: skip
            assert key in metrics
        for entry in metrics["per_origin"]:
            assert {"relative_mae", "relative_wis", "coverage", "wis"} <= set(entry)
        assert len(metrics["per_horizon"]) == 14
        assert [entry["origin"] for entry in metrics["per_origin"]] == first.origins
        assert found.manifest["hyperparameters"]["horizon"] == 14
        assert store.latest_bundle_for(version) is not None


def test_a_retrain_writes_under_the_store_root_only_what_the_registry_names(
    settings: Settings, first: RetrainOutcome
) -> None:
    named = {
        layout.VERSIONS_DIR, layout.BUNDLES_DIR, layout.CURRENT, layout.WRITER_LOCK,
        layout.METADATA_DB, layout.DATA_DIR, layout.CHECKS_DIR, layout.TRACKING_BACKLOG_DIR,
        layout.RETRAIN_LOCK, layout.SCHEDULER_LOCK,
    }  # fmt: skip
    entries = {path.name for path in Path(settings.store).iterdir()}
    beside_the_database = {name for name in entries if name.startswith(f"{layout.METADATA_DB}.")}
    assert entries - beside_the_database <= named, entries - named
    assert {layout.VERSIONS_DIR, layout.BUNDLES_DIR, layout.CURRENT, layout.DATA_DIR} <= entries
    reader = Registry.open(settings).reader
    assert (reader.data_dir() / first.data_version).is_dir()  # the watcher's snapshot


def test_without_a_champion_the_best_scoring_candidate_serves(
    settings: Settings, first: RetrainOutcome
) -> None:
    best = choose_candidate(first.metrics, BASELINE_FAMILIES)
    assert first.promoted == first.champion == first.candidate == first.versions[best]
    assert "no champion yet" in first.reason
    registry = Registry.open(settings)
    store = registry.store
    assert store.serving_version() == first.versions[best]
    assert first.bundle_id == f"{first.versions[best]}@{first.data_version}"
    current = registry.current_model()  # what GET /v1/models/current answers
    assert (current["version"], current["family"]) == (first.versions[best], best)
    assert store.bundle(first.bundle_id).model_version == first.versions[best]


def test_retraining_on_the_same_data_keeps_the_champion_and_records_why(
    settings: Settings, first: RetrainOutcome, second: RetrainOutcome
) -> None:
    assert second.promoted is None
    assert second.champion == first.champion
    assert second.metrics == first.metrics  # same data and configuration, same scores
    assert second.champion_metrics == first.metrics[first.champion.split("-", 1)[1]]
    registry = Registry.open(settings)
    store, metadata = registry.store, registry.metadata
    assert store.serving_version() == first.champion
    rejected = metadata.list_events(kinds=["rejected"])[0]
    assert rejected.version == second.candidate and rejected.from_version == first.champion
    assert "not significantly better than champion" in rejected.reason
    assert "ratio 1.000" in rejected.reason and "p = 1 over 4 origins" in rejected.reason
    assert rejected.reason == second.reason
    promotion = store.get_version(second.candidate).metrics["promotion"]
    assert promotion["promote"] is False and promotion["test"]["p_value"] == 1.0


def test_a_candidate_better_than_a_weak_champion_is_promoted(
    settings: Settings, second: RetrainOutcome
) -> None:
    registry = Registry.open(settings)
    store, metadata = registry.store, registry.metadata
    weak = second.versions["persistence"]
    if second.candidate == weak:
        pytest.fail("persistence was the best candidate on the demo data")
    registry.promote(weak, reason="test: serve a weak champion")
    third = retrain(settings, trigger="test")
    assert third.promoted == third.candidate == third.champion, third.reason
    assert f"significantly better than champion {weak}" in third.reason
    assert store.serving_version() == third.promoted
    metrics = store.get_version(third.promoted).metrics
    assert metrics["promotion"]["promote"] is True
    assert metrics["promotion_p_value"] < 0.05 and metrics["promotion_ratio_high"] < 1.0
    promoted = metadata.list_events(kinds=["promoted"])[0]
    assert f"p = {metrics['promotion_p_value']:.3g}" in promoted.reason


def test_the_gate_uses_the_configured_level_and_minimum_effect(second: RetrainOutcome) -> None:
    def scored(factor: float) -> dict:
        per_origin = [
            {"origin": 7 * k, "wis": w * factor, "mae": w * factor} for k, w in
            enumerate([10.0, 30.0, 20.0, 50.0, 15.0, 12.0, 40.0, 25.0])
        ]  # fmt: skip
        return {"mae": 30.0 * factor, "robust_relative_wis": factor, "per_origin": per_origin}

    wobble = [0.78, 0.82, 0.8, 0.79, 0.81, 0.8, 0.83, 0.77]
    candidate = scored(1.0)
    for entry, w in zip(candidate["per_origin"], wobble, strict=True):
        entry["wis"] *= w
    backtest = Backtest(
        origins=[7 * k for k in range(8)],
        scores={"lstm": candidate, "persistence": scored(1.1)},
    )
    candidates = candidate_forecasters(Settings(), 0)
    loose = gate(candidates, backtest, "v0001-lstm", scored(1.0), "test", Settings())
    assert loose.promote and loose.candidate == "lstm", loose.reason
    strict = gate(
        candidates, backtest, "v0001-lstm", scored(1.0), "test",
        Settings(promotion_min_effect=0.3),
    )  # fmt: skip
    assert not strict.promote and "minimum effect 30%" in strict.reason


def test_backtest_command_prints_the_issue_json_shape(settings: Settings, capsys) -> None:
    code = main(["backtest", "--origins", "2", "--json"], settings=settings)
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"champion", "origins", "candidates"}
    assert set(report["candidates"]) == set(FAMILIES)
    assert report["champion"] in FAMILIES
    assert len(report["origins"]) == 2
    for scores in report["candidates"].values():
        assert set(scores) == set(REPORT_KEYS)
        assert len(scores["per_horizon"]) == 14 and len(scores["per_origin"]) == 2
    assert report["champion"] == choose_candidate(report["candidates"], BASELINE_FAMILIES)


def test_backtest_command_spreads_origins_between_two_dates(settings: Settings, capsys) -> None:
    args = ["backtest", "--origins", "3", "--from", "2023-10-01", "--to", "2023-10-21"]
    assert main(args, settings=settings.with_(epochs=1)) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0] == "origins: 2023-10-01, 2023-10-11, 2023-10-21"
    assert "seasonal_naive" in table and "champion" in table


def test_backtest_command_explains_dates_outside_the_data(settings: Settings, capsys) -> None:
    code = main(["backtest", "--from", "1999-01-01", "--json"], settings=settings)
    assert code == 2
    assert "outside the data" in json.loads(capsys.readouterr().err)["message"]


def test_versions_command_shows_backtest_metrics(settings: Settings, first, capsys) -> None:
    assert main(["versions", "--json"], settings=settings) == 0
    listed = json.loads(capsys.readouterr().out)["versions"]
    assert listed[0]["version"] == "v0001-lstm"
    assert listed[0]["wape"] == pytest.approx(first.metrics["lstm"]["wape"], abs=1e-4)
    assert Path(settings.store).is_dir()


def test_a_champion_with_other_hyperparameters_is_refitted_and_scores_as_registered(
    settings: Settings, first: RetrainOutcome
) -> None:
    registry = Registry.open(settings)
    store = registry.store
    arrays = series_arrays(load_inputs(settings)[1])
    registered = store.get_version("v0001-lstm").metrics
    origins = [int(arrays.dates.get_loc(pd.Timestamp(day))) for day in registered["origins"]]
    others = candidate_forecasters(settings.with_(epochs=1), arrays.first_weekday)
    scores, how = evaluate_champion(
        registry, "v0001-lstm", others, Backtest(origins=origins, scores={}), arrays, settings
    )
    assert how == "refitted with its saved hyperparameters"
    assert scores is not None
    for key in ("mae", "wape", "rmse", "coverage"):
        assert scores[key] == pytest.approx(registered[key], rel=0.01)


def test_a_kept_champion_serves_its_forecast_from_the_newest_data(
    settings: Settings, second: RetrainOutcome, tmp_path: Path
) -> None:
    registry = Registry.open(settings)
    store, metadata = registry.store, registry.metadata
    champion, events = store.serving_version(), len(metadata.list_events(limit=None))
    demo = Path(settings.demo_dir)
    lines = (demo / "cases.csv").read_text().splitlines()
    last_day = lines[-1].split(",")[0]
    (tmp_path / "cases.csv").write_text(
        "\n".join(line for line in lines if not line.startswith(last_day)) + "\n"
    )
    other = settings.with_(
        data_source=str(tmp_path / "cases.csv"), tracts=str(demo / "tracts.geojson")
    )
    _, ingested = load_inputs(other)
    assert ingested.data_version != second.data_version
    bundle_id = refresh_champion(registry, champion, series_arrays(ingested), ingested)
    assert bundle_id == f"{champion}@{ingested.data_version}"
    assert store.current_bundle_id() == bundle_id and store.serving_version() == champion
    assert len(metadata.list_events(limit=None)) == events  # the champion did not change


def test_a_short_first_release_leaves_out_the_candidates_it_cannot_backtest() -> None:
    candidates = candidate_forecasters(Settings(), 0)
    ensemble_days, lstm_days = candidates["ensemble"].min_days, candidates["lstm"].min_days
    assert ensemble_days > lstm_days
    short = fitting_candidates(candidates, lstm_days + 14 + 7, Settings())
    assert "ensemble" not in short and "lstm" in short and "seasonal_naive" in short
    assert set(fitting_candidates(candidates, ensemble_days + 21, Settings())) == set(candidates)


def a_later_release(demo: Path, folder: Path, days: int) -> Path:
    """The demo's cases with `days` more days: each area's last `days` daily counts once more."""
    table = pd.read_csv(demo / "cases.csv", dtype=str)
    table["cases"] = pd.to_numeric(table["cumulative_cases"], errors="coerce")
    wide = table.pivot_table(index="date", columns="area_code", values="cases", aggfunc="last")
    steps = wide.sort_index().diff().iloc[-days:].clip(lower=0).fillna(0)
    names = dict(zip(table["area_code"], table["area_name"], strict=True))
    last = pd.Timestamp(wide.index.max())
    lines = (demo / "cases.csv").read_text().splitlines()
    for k in range(1, days + 1):
        totals = wide.ffill().iloc[-1] + steps.iloc[:k].sum()
        day = (last + pd.Timedelta(days=k)).date().isoformat()
        lines += [f"{day},{code},{names[code]},{int(totals[code])}" for code in wide.columns]
    (folder / "cases.csv").write_text("\n".join(lines) + "\n")
    return folder / "cases.csv"


def test_a_refit_of_the_champions_recipe_must_beat_its_saved_fit_after_its_data_ended(
    settings: Settings, first: RetrainOutcome, tmp_path: Path
) -> None:
    registry = Registry.open(settings)
    demo = Path(settings.demo_dir)
    newer = settings.with_(
        data_source=str(a_later_release(demo, tmp_path, 28)), tracts=str(demo / "tracts.geojson")
    )
    ingested = load_inputs(newer)[1]
    arrays = series_arrays(ingested)
    saved = first.versions["lstm"]
    last_day = pd.read_csv(demo / "cases.csv", usecols=["date"])["date"].max()
    ended = int(arrays.dates.get_loc(pd.Timestamp(last_day)))  # the saved fit's last day
    origins = recent_origins(arrays.history.shape[1], 4, 14, aligned=True)
    after = [origin for origin in origins if origin > ended]
    assert 3 <= len(after) < len(origins)  # the oldest origin's days were fitted on

    scores, how = score_saved_fit(registry, saved, Backtest(origins, {}), arrays, settings)
    assert scores is not None and f"the {len(after)} origins after its data ended" in how
    assert [entry["origin"] for entry in scores["per_origin"]] == after
    fitted = saved_forecaster(registry, saved, arrays)
    forecast = fitted.predict(arrays.history[:, : after[0]]).point  # served as of that day
    actual = arrays.history[:, after[0] : after[0] + 14]
    observed = arrays.observed[:, after[0] : after[0] + 14]
    error = float(np.mean(np.abs(forecast - actual)[observed]))
    assert scores["per_origin"][0]["mae"] == pytest.approx(error, rel=1e-6)

    lstm = candidate_forecasters(settings, arrays.first_weekday)["lstm"]

    def refit_scoring(factor: float) -> dict:
        per_origin = [{"origin": o, "mae": 1e9, "wis": 1e9} for o in origins if o <= ended]
        per_origin += [{**e, "wis": e["wis"] * factor} for e in scores["per_origin"]]
        return {"mae": 1.0, "robust_relative_wis": 0.5, "per_origin": per_origin}

    for factor, promoted in ((1.0, False), (0.7, True)):
        backtest = Backtest(origins, {"lstm": refit_scoring(factor)})
        decision = gate(
            {"lstm": lstm}, backtest, saved, first.metrics["lstm"], "test", settings,
            registry, arrays, ingested.data_version,
        )  # fmt: skip
        assert decision.promote is promoted, decision.reason
        assert "recipe refitted on newer data" in decision.reason and "saved fit" in decision.reason
        assert decision.test is not None and decision.test["origins"] == len(after)
        assert decision.test["ratio"] == pytest.approx(factor)


def test_the_last_day_a_version_was_fitted_on_is_found_in_todays_dates() -> None:
    dates = pd.date_range("2024-01-01", periods=60)
    assert last_day_fitted({"last_day": "2024-01-31", "days": 5}, dates) == 30
    assert last_day_fitted({"ingest": {"end": "2024-02-10"}}, dates) == 40  # an older version
    assert last_day_fitted({"days": 20}, dates) == 19  # older still: counted from today's start
    assert last_day_fitted({"last_day": "2023-12-01"}, dates) == -1  # before today's first day
