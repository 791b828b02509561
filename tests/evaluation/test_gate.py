"""The promotion gate: better by the margin on WAPE and MAE, RMSE no worse, beats the baselines."""

from __future__ import annotations

import math

import pytest

from tractcast.errors import InvalidInput
from tractcast.evaluation.gate import best_baseline, choose_candidate, decide_promotion

BASELINES = {"persistence", "seasonal_naive", "moving_average"}


def scores(wape: float, mae: float, rmse: float) -> dict[str, float]:
    return {"wape": wape, "mae": mae, "rmse": rmse}


@pytest.fixture
def run() -> dict[str, dict[str, float]]:
    """One retrain's candidates: the LSTM ahead of every baseline."""
    return {
        "lstm": scores(0.30, 30.0, 50.0),
        "persistence": scores(0.45, 45.0, 70.0),
        "seasonal_naive": scores(0.40, 40.0, 60.0),
        "moving_average": scores(0.38, 38.0, 58.0),
    }


def test_the_candidate_with_the_lowest_wape_is_chosen_whatever_its_family(run) -> None:
    assert choose_candidate(run, BASELINES) == "lstm"
    run["lstm"] = scores(0.50, 50.0, 80.0)
    assert choose_candidate(run, BASELINES) == "moving_average"
    assert best_baseline(run, BASELINES) == "moving_average"


def test_on_a_tie_the_baseline_is_chosen(run) -> None:
    run["lstm"] = dict(run["moving_average"])
    assert choose_candidate(run, BASELINES) == "moving_average"


def test_unscored_candidates_rank_last(run) -> None:
    run["lstm"] = scores(math.nan, math.nan, math.nan)
    assert choose_candidate(run, BASELINES) == "moving_average"


def test_without_a_champion_the_best_candidate_is_promoted(run) -> None:
    decision = decide_promotion("lstm", run, baselines=BASELINES)
    assert decision.promote
    assert "no champion yet" in decision.reason


def test_a_candidate_better_by_the_margin_on_wape_and_mae_is_promoted(run) -> None:
    champion = scores(0.31, 31.0, 50.0)  # lstm is 3.2% better on both, RMSE equal
    decision = decide_promotion(
        "lstm", run, baselines=BASELINES, champion="v0001-lstm", champion_scores=champion
    )
    assert decision.promote, decision.reason
    assert decision.champion == "v0001-lstm"


def test_a_candidate_better_by_less_than_the_margin_is_rejected_with_the_reason(run) -> None:
    champion = scores(0.305, 30.5, 55.0)  # 1.6% better: under the 2% margin
    decision = decide_promotion(
        "lstm", run, baselines=BASELINES, champion="v0001-lstm", champion_scores=champion
    )
    assert not decision.promote
    assert "not better than champion v0001-lstm by 2%" in decision.reason
    assert "WAPE 0.3 vs 0.305" in decision.reason and "MAE 30 vs 30.5" in decision.reason


def test_the_margin_is_configurable(run) -> None:
    champion = scores(0.305, 30.5, 55.0)
    decision = decide_promotion(
        "lstm", run, baselines=BASELINES, champion="c", champion_scores=champion, margin=0.01
    )
    assert decision.promote
    decision = decide_promotion(
        "lstm", run, baselines=BASELINES, champion="c", champion_scores=champion, margin=0.5
    )
    assert not decision.promote and "by 50%" in decision.reason


def test_a_worse_rmse_blocks_promotion_even_with_better_wape_and_mae(run) -> None:
    champion = scores(0.40, 40.0, 49.0)
    decision = decide_promotion(
        "lstm", run, baselines=BASELINES, champion="c", champion_scores=champion
    )
    assert not decision.promote
    assert "RMSE 50 is worse than 49" in decision.reason


def test_a_candidate_that_does_not_beat_the_best_baseline_is_rejected(run) -> None:
    run["lstm"] = scores(0.39, 37.0, 50.0)  # better MAE, worse WAPE than moving_average
    champion = scores(0.60, 60.0, 90.0)
    decision = decide_promotion(
        "lstm", run, baselines=BASELINES, champion="c", champion_scores=champion
    )
    assert not decision.promote
    assert "does not beat the best baseline moving_average" in decision.reason


def test_a_baseline_candidate_can_replace_a_worse_champion(run) -> None:
    run["lstm"] = scores(0.50, 50.0, 80.0)
    champion = scores(0.50, 50.0, 80.0)
    decision = decide_promotion(
        "moving_average", run, baselines=BASELINES, champion="v0001-lstm", champion_scores=champion
    )
    assert decision.promote


def test_a_candidate_with_nothing_scored_never_replaces_a_champion(run) -> None:
    run["lstm"] = scores(math.nan, math.nan, math.nan)
    decision = decide_promotion(
        "lstm", run, baselines=BASELINES, champion="c", champion_scores=scores(0.5, 5.0, 9.0)
    )
    assert not decision.promote and "no wape" in decision.reason


def test_a_margin_outside_zero_to_one_is_invalid(run) -> None:
    with pytest.raises(InvalidInput):
        decide_promotion("lstm", run, baselines=BASELINES, margin=1.5)
