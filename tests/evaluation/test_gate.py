"""The promotion gate: ranked by robust skill, promoted only on a significant paired improvement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tractcast.errors import InvalidInput
from tractcast.evaluation.gate import best_baseline, choose_candidate, decide_promotion

BASELINES = {"persistence", "seasonal_naive", "moving_average"}
# per-origin WIS of a champion over 8 weekly origins: quiet weeks and one wave's peak
CHAMPION_WIS = np.array([20.0, 25.0, 40.0, 160.0, 90.0, 30.0, 22.0, 18.0])


def scores(skill: float, per_origin_wis: np.ndarray | None = None) -> dict:
    """A candidate's scores: its robust relative WIS and, optionally, per-origin WIS."""
    wis = CHAMPION_WIS * skill if per_origin_wis is None else per_origin_wis
    per_origin = [
        {"origin": 100 + 7 * k, "wis": float(v), "mae": float(v) * 1.3} for k, v in enumerate(wis)
    ]
    return {
        "robust_relative_wis": skill, "robust_relative_mae": skill, "wape": skill / 2,
        "mae": float(np.mean(wis)) * 1.3, "wis": float(np.mean(wis)), "per_origin": per_origin,
    }  # fmt: skip


@pytest.fixture
def run() -> dict[str, dict]:
    """One retrain's candidates: the ensemble ahead of the LSTM, both ahead of every baseline."""
    return {
        "ensemble": scores(0.60),
        "lstm": scores(0.70),
        "persistence": scores(0.95),
        "seasonal_naive": scores(1.00),
        "moving_average": scores(1.05),
    }


def candidate_with(improvement: float, noise: float, seed: int) -> dict:
    """Per-origin WIS of the champion times exp(noise) times (1 - improvement)."""
    rng = np.random.default_rng(seed)
    wis = CHAMPION_WIS * (1.0 - improvement) * np.exp(rng.normal(0.0, noise, CHAMPION_WIS.size))
    return scores(0.5, wis)


def promoted(candidate: dict, **options) -> bool:
    run = {"ensemble": candidate, "seasonal_naive": scores(1.0)}
    decision = decide_promotion(
        "ensemble", run, baselines=BASELINES, champion="v0001-lstm",
        champion_scores=scores(0.55, CHAMPION_WIS), **options,
    )  # fmt: skip
    return decision.promote


def test_candidates_are_ranked_by_robust_relative_wis(run) -> None:
    assert choose_candidate(run, BASELINES) == "ensemble"
    run["ensemble"] = scores(1.2)
    assert choose_candidate(run, BASELINES) == "lstm"
    assert best_baseline(run, BASELINES) == "persistence"


def test_a_run_scored_before_robust_skill_existed_falls_back_to_wape() -> None:
    old = {"lstm": {"wape": 0.3, "mae": 30.0}, "persistence": {"wape": 0.4, "mae": 40.0}}
    assert choose_candidate(old, BASELINES) == "lstm"


def test_on_a_tie_the_baseline_is_chosen(run) -> None:
    run["lstm"] = dict(run["persistence"])
    run["ensemble"] = dict(run["persistence"])
    assert choose_candidate(run, BASELINES) == "persistence"


def test_unscored_candidates_rank_last(run) -> None:
    run["ensemble"] = {"mae": math.nan}
    run["lstm"] = {"mae": math.nan}
    assert choose_candidate(run, BASELINES) == "persistence"


def test_without_a_champion_the_best_candidate_is_promoted(run) -> None:
    decision = decide_promotion("ensemble", run, baselines=BASELINES)
    assert decision.promote and decision.test is None
    assert "no champion yet" in decision.reason


def test_a_noise_level_improvement_is_rejected() -> None:
    # 1% better on average, origin-to-origin noise of 10%: no evidence, whatever the draw
    verdicts = [promoted(candidate_with(0.01, 0.10, seed)) for seed in range(40)]
    assert sum(verdicts) <= 4  # a 5% test: about 2 false promotions in 40 draws


def test_a_real_improvement_is_promoted() -> None:
    verdicts = [promoted(candidate_with(0.20, 0.10, seed)) for seed in range(40)]
    assert sum(verdicts) >= 38


def test_the_decision_carries_the_effect_its_interval_and_the_p_value(run) -> None:
    decision = decide_promotion(
        "ensemble", {"ensemble": candidate_with(0.20, 0.05, 1), "seasonal_naive": scores(1.0)},
        baselines=BASELINES, champion="v0001-lstm", champion_scores=scores(0.55, CHAMPION_WIS),
    )  # fmt: skip
    assert decision.promote, decision.reason
    test = decision.test
    assert test is not None and test["loss"] == "wis" and test["origins"] == 8
    assert test["ratio_low"] < test["ratio"] < test["ratio_high"] < 1.0
    assert test["effect"] == pytest.approx(1.0 - test["ratio"]) and 0.1 < test["effect"] < 0.3
    assert test["p_value"] < 0.05
    assert "significantly better than champion v0001-lstm" in decision.reason
    assert f"p = {test['p_value']:.3g}" in decision.reason


def test_a_noise_level_candidate_is_rejected_with_the_test_in_the_reason() -> None:
    decision = decide_promotion(
        "ensemble", {"ensemble": candidate_with(0.0, 0.10, 3), "seasonal_naive": scores(1.0)},
        baselines=BASELINES, champion="v0001-lstm", champion_scores=scores(0.55, CHAMPION_WIS),
    )  # fmt: skip
    assert not decision.promote
    assert "not significantly better than champion v0001-lstm" in decision.reason
    assert decision.test is not None and decision.test["p_value"] >= 0.05


def test_the_minimum_effect_is_configurable() -> None:
    candidate = candidate_with(0.20, 0.05, 2)
    assert promoted(candidate, min_effect=0.05)
    assert not promoted(candidate, min_effect=0.30)  # 20% better is not 30% better


def test_the_level_is_configurable() -> None:
    # a modest improvement: enough at 80%, not at 99.9%
    candidate = candidate_with(0.06, 0.08, 5)
    assert promoted(candidate, level=0.80)
    assert not promoted(candidate, level=0.999)


def saved_fit_on_last(count: int, factor: float) -> dict:
    """A champion's saved fit scored on the last `count` origins only, its WIS times `factor`."""
    saved = scores(0.6, CHAMPION_WIS * factor)
    saved["per_origin"] = saved["per_origin"][len(CHAMPION_WIS) - count :]
    return saved


def refresh(run: dict, saved: dict) -> object:
    return decide_promotion(
        "ensemble", run, baselines=BASELINES, champion="v0001-ensemble",
        champion_scores=saved, same_recipe=True,
    )  # fmt: skip


def test_a_refit_of_the_champions_recipe_is_promoted_only_when_it_beats_the_saved_fit(run) -> None:
    # the run's ensemble has WIS 0.6 x CHAMPION_WIS; the saved fit did 25% worse after its data
    decision = refresh(run, saved_fit_on_last(5, 0.6 / 0.75))
    assert decision.promote, decision.reason
    assert "refitted on newer data" in decision.reason
    assert "significantly better than the champion's saved fit" in decision.reason
    assert decision.test is not None and decision.test["origins"] == 5
    assert decision.test["ratio"] == pytest.approx(0.75)


def test_a_refit_no_better_than_the_saved_fit_leaves_the_champion_serving(run) -> None:
    # identical where the backtest scores them (the same recipe), and identical after: no refresh
    decision = refresh(run, saved_fit_on_last(6, 0.6))
    assert not decision.promote
    assert "not significantly better than the champion's saved fit" in decision.reason
    assert decision.test is not None and decision.test["ratio"] == pytest.approx(1.0)
    run["ensemble"] = scores(0.6, CHAMPION_WIS * np.array([1, 1] + [0.85] * 3 + [1.1] * 3))
    assert not refresh(run, saved_fit_on_last(6, 1.0)).promote


def test_a_refit_is_not_tested_before_enough_days_followed_the_champions_data(run) -> None:
    for count in (0, 2):
        decision = refresh(run, saved_fit_on_last(count, 2.0))
        assert not decision.promote and decision.test is None
        assert f"{count} origins scored both models; the test needs 3" in decision.reason


def test_a_candidate_that_does_not_beat_the_best_baseline_is_rejected(run) -> None:
    run["ensemble"] = scores(0.97)
    decision = decide_promotion("ensemble", run, baselines=BASELINES)
    assert not decision.promote
    assert "does not beat the best baseline persistence" in decision.reason


def test_a_champion_scored_on_other_origins_is_not_tested_and_stays(run) -> None:
    champion = scores(0.9)
    champion["per_origin"] = champion["per_origin"][1:]
    decision = decide_promotion(
        "ensemble", run, baselines=BASELINES, champion="v0001-lstm", champion_scores=champion
    )
    assert not decision.promote and "same origins" in decision.reason


def test_a_candidate_with_nothing_scored_never_replaces_a_champion(run) -> None:
    run["ensemble"] = {"mae": math.nan}
    decision = decide_promotion(
        "ensemble", run, baselines=BASELINES, champion="v0001-lstm", champion_scores=scores(0.9)
    )
    assert not decision.promote and "no MAE" in decision.reason


@pytest.mark.parametrize("options", [{"level": 1.0}, {"level": 0.2}, {"min_effect": 1.5}])
def test_a_level_or_minimum_effect_out_of_range_is_invalid(run, options) -> None:
    with pytest.raises(InvalidInput):
        decide_promotion("ensemble", run, baselines=BASELINES, **options)
