"""The promotion gate: which candidate would serve, and whether it may replace the champion.

Every candidate (LSTM, ensemble or baseline) is scored by one rolling-origin backtest on the
same origins, so their metrics compare directly. Candidates are ranked by their robust relative
WIS: the geometric mean over origins of each origin's WIS divided by the seasonal naive's, which
one origin on a wave's peak cannot decide. The best one is put forward; it must beat the best
baseline, and it replaces the champion (re-evaluated on the same origins) only when a paired
Diebold-Mariano test on the per-origin losses (tractcast.evaluation.significance) says it is
better by at least the minimum effect at the configured level.

A candidate of the champion's own recipe (family and hyperparameters), fitted on newer data,
scores exactly as the champion does on the backtest, which refits both alike. What differs is
the fitted model: a refit is another draw, as often worse than the fit it would replace as
better. So a refresh is held to the same test against the champion's saved fit, on the origins
after the champion's data ended, where neither has seen the days it is scored on; until enough
such origins exist, the champion keeps serving.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from tractcast.errors import InvalidInput
from tractcast.evaluation.significance import TestResult, diebold_mariano

DEFAULT_LEVEL = 0.95
DEFAULT_MIN_EFFECT = 0.0
# ranking keys, most robust first: a run scored before a key existed falls back to the next
RANK_KEYS = ("robust_relative_wis", "robust_relative_mae", "wape")


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    candidate: str
    champion: str | None
    reason: str
    test: dict[str, Any] | None = field(default=None)  # the paired test, when one ran


def gate_score(scores: dict[str, Any]) -> tuple[float, ...]:
    """What candidates are ranked by (lower is better): robust relative WIS, then fallbacks."""
    return tuple(float(scores[key]) if _finite(scores.get(key)) else math.inf for key in RANK_KEYS)


def choose_candidate(scores: dict[str, dict[str, Any]], baselines: Collection[str] = ()) -> str:
    """The candidate with the best gate score; on a tie a baseline, then the first named."""
    if not scores:
        raise InvalidInput("there is no candidate to choose from")
    return min(scores, key=lambda name: (gate_score(scores[name]), name not in baselines))


def best_baseline(scores: dict[str, dict[str, Any]], baselines: Collection[str]) -> str | None:
    """The baseline with the best gate score, or None when no baseline was scored."""
    present = {name: scores[name] for name in scores if name in baselines}
    return choose_candidate(present) if present else None


def paired_test(
    mine: dict[str, Any],
    theirs: dict[str, Any],
    *,
    lags: int,
    level: float,
    min_effect: float,
) -> TestResult:
    """The Diebold-Mariano test on per-origin WIS (MAE when either lacks WIS), same origins."""
    ours, others = mine.get("per_origin", []), theirs.get("per_origin", [])
    if [entry["origin"] for entry in ours] != [entry["origin"] for entry in others]:
        raise InvalidInput("candidate and champion were not scored on the same origins")
    loss = "wis" if all(_finite(entry.get("wis")) for entry in [*ours, *others]) else "mae"
    return diebold_mariano(
        [float(entry.get(loss, math.nan)) for entry in ours],
        [float(entry.get(loss, math.nan)) for entry in others],
        lags=lags,
        level=level,
        min_effect=min_effect,
        loss=loss,
    )


def decide_promotion(
    candidate: str,
    scores: dict[str, dict[str, Any]],
    *,
    baselines: Collection[str],
    champion: str | None = None,
    champion_scores: dict[str, Any] | None = None,
    level: float = DEFAULT_LEVEL,
    min_effect: float = DEFAULT_MIN_EFFECT,
    lags: int = 1,
    same_recipe: bool = False,
) -> GateDecision:
    """Promote `candidate` or not, saying why.

    `scores` holds every candidate of the run (names in `baselines` are the baselines);
    `champion_scores` are the champion's on the same origins (None: no champion to beat);
    `same_recipe` says the candidate is the champion's family and hyperparameters refitted; then
    `champion_scores` are the champion's saved fit's, and only the origins they hold are tested.
    """
    if not 0.5 <= level < 1.0:
        raise InvalidInput(f"the promotion test level must be in [0.5, 1), got {level}")
    if not 0.0 <= min_effect < 1.0:
        raise InvalidInput(f"the promotion minimum effect must be in [0, 1), got {min_effect}")
    mine = scores[candidate]
    if not _finite(mine.get("mae")):
        missing = f"{candidate} has no MAE (no actual could be scored)"
        if champion is None or champion_scores is None:
            return GateDecision(True, candidate, champion, f"nothing to compare; {missing}")
        return GateDecision(False, candidate, champion, missing)
    others = {name: value for name, value in scores.items() if name != candidate}
    baseline = best_baseline(others, baselines)
    if baseline is not None and gate_score(mine) >= gate_score(scores[baseline]):
        return GateDecision(
            False,
            candidate,
            champion,
            f"{candidate} does not beat the best baseline {baseline}: "
            f"{_skill(mine)} vs {_skill(scores[baseline])}",
        )
    if champion is None or champion_scores is None:
        context = "no champion yet" if champion is None else f"no scores of champion {champion}"
        return GateDecision(
            True, candidate, champion,
            f"{context}; {candidate} has the best skill of the candidates ({_skill(mine)})",
        )  # fmt: skip
    subject, against = candidate, f"champion {champion}"
    if same_recipe:
        mine = _on_origins_of(mine, champion_scores)
        subject = f"{candidate} (champion {champion}'s recipe refitted on newer data)"
        against = "the champion's saved fit"
    try:
        test = paired_test(mine, champion_scores, lags=lags, level=level, min_effect=min_effect)
    except InvalidInput as exc:
        return GateDecision(False, candidate, champion, f"{subject} was not tested: {exc}")
    verdict = (
        f"{test.loss.upper()} ratio {test.ratio:.3f} (interval {test.ratio_low:.3f}-"
        f"{test.ratio_high:.3f} at {test.level:.0%}), p = {test.p_value:.3g} over "
        f"{test.origins} origins, minimum effect {test.min_effect:.0%}"
    )
    if not test.better:
        return GateDecision(
            False, candidate, champion,
            f"{subject} is not significantly better than {against}: {verdict}",
            test.to_dict(),
        )  # fmt: skip
    return GateDecision(
        True, candidate, champion,
        f"{subject} is significantly better than {against}: {verdict}",
        test.to_dict(),
    )  # fmt: skip


def _on_origins_of(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """`mine` with only the per-origin scores of the origins `theirs` was scored on."""
    kept = {entry["origin"] for entry in theirs.get("per_origin", [])}
    return {**mine, "per_origin": [e for e in mine.get("per_origin", []) if e["origin"] in kept]}


def _skill(scores: dict[str, Any]) -> str:
    """The ranking figures of a candidate, for a reason."""
    named = [(key, scores.get(key)) for key in RANK_KEYS]
    return ", ".join(f"{key} {value:.4g}" for key, value in named if _finite(value)) or "unscored"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
