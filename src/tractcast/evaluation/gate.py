"""The promotion gate: which candidate would serve, and whether it may replace the champion.

Every candidate (LSTM or baseline) is scored by one rolling-origin backtest on the same origins,
so their metrics compare directly. The candidate with the lowest WAPE is the one put forward;
since WAPE and MAE share their points, it then also beats every baseline on both. It replaces
the champion (re-evaluated on the same origins) only when its WAPE and MAE are both lower by
`margin` (a fraction) and its RMSE is not higher.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from tractcast.errors import InvalidInput

DEFAULT_MARGIN = 0.02


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    candidate: str
    champion: str | None
    reason: str


def gate_score(scores: dict[str, Any]) -> float:
    """The number candidates are ranked by (lower is better): WAPE, infinite if unscored."""
    value = scores.get("wape")
    return float(value) if _finite(value) else math.inf


def choose_candidate(scores: dict[str, dict[str, Any]], baselines: Collection[str] = ()) -> str:
    """The candidate with the best gate score; on a tie a baseline, then the first named."""
    if not scores:
        raise InvalidInput("there is no candidate to choose from")
    return min(scores, key=lambda name: (gate_score(scores[name]), name not in baselines))


def best_baseline(scores: dict[str, dict[str, Any]], baselines: Collection[str]) -> str | None:
    """The baseline with the best gate score, or None when no baseline was scored."""
    present = {name: scores[name] for name in scores if name in baselines}
    return choose_candidate(present) if present else None


def decide_promotion(
    candidate: str,
    scores: dict[str, dict[str, Any]],
    *,
    baselines: Collection[str],
    champion: str | None = None,
    champion_scores: dict[str, Any] | None = None,
    margin: float = DEFAULT_MARGIN,
) -> GateDecision:
    """Promote `candidate` or not, saying why.

    `scores` holds every candidate of the run (names in `baselines` are the baselines);
    `champion_scores` are the champion's on the same origins (None: no champion to beat).
    """
    if not 0.0 <= margin < 1.0:
        raise InvalidInput(f"the promotion margin must be in [0, 1), got {margin}")
    mine = scores[candidate]
    unscored = [key for key in ("wape", "mae", "rmse") if not _finite(mine.get(key))]
    if unscored:
        missing = f"{candidate} has no {', '.join(unscored)} (no actual could be scored)"
        if champion is None or champion_scores is None:
            return GateDecision(True, candidate, champion, f"nothing to compare; {missing}")
        return GateDecision(False, candidate, champion, missing)
    others = {name: value for name, value in scores.items() if name != candidate}
    baseline = best_baseline(others, baselines)
    if baseline is not None:
        behind = _not_lower(mine, scores[baseline], ("wape", "mae"), 0.0)
        if behind:
            return GateDecision(
                False,
                candidate,
                champion,
                f"{candidate} does not beat the best baseline {baseline}: {'; '.join(behind)}",
            )
    if champion is None or champion_scores is None:
        context = "no champion yet" if champion is None else f"no scores of champion {champion}"
        return GateDecision(
            True,
            candidate,
            champion,
            f"{context}; {candidate} has the best WAPE of the candidates ({mine['wape']:.4f})",
        )
    failures = _not_lower(mine, champion_scores, ("wape", "mae"), margin)
    if _finite(champion_scores.get("rmse")) and mine["rmse"] > champion_scores["rmse"]:
        failures.append(f"RMSE {mine['rmse']:.4g} is worse than {champion_scores['rmse']:.4g}")
    if failures:
        return GateDecision(
            False,
            candidate,
            champion,
            f"{candidate} is not better than champion {champion} by {margin:.0%}: "
            + "; ".join(failures),
        )
    return GateDecision(
        True,
        candidate,
        champion,
        f"{candidate} beats champion {champion} by at least {margin:.0%} "
        f"(WAPE {mine['wape']:.4f} vs {champion_scores['wape']:.4f}, "
        f"MAE {mine['mae']:.4g} vs {champion_scores['mae']:.4g}, "
        f"RMSE {mine['rmse']:.4g} vs {champion_scores['rmse']:.4g})",
    )


def _not_lower(
    mine: dict[str, Any], theirs: dict[str, Any], keys: tuple[str, ...], margin: float
) -> list[str]:
    """A sentence for each metric where `mine` is not below (1 - margin) x `theirs`."""
    failures = []
    for key in keys:
        bar = theirs.get(key)
        if not _finite(bar):
            continue
        value, bar = float(mine[key]), float(bar)
        lower = value < bar if margin == 0 else value <= (1.0 - margin) * bar
        if not lower:
            failures.append(f"{key.upper()} {value:.4g} vs {bar:.4g}")
    return failures


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
