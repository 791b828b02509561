"""Automated rollback: a just-promoted champion that does worse live than its predecessor, on
the forecasts both made, is rolled back (a monitoring policy over the registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tractcast.monitoring.live_error import (
    Comparison,
    compare_on_same_points,
    observed_actuals,
    scored_points,
    version_bundles,
)
from tractcast.registry.metadata import CHAMPION_KINDS, Event
from tractcast.registry.registry import Registry
from tractcast.settings import Settings

if TYPE_CHECKING:
    from tractcast.data.ingest import IngestResult


def check_rollback(
    registry: Registry,
    champion: str,
    ingested: IngestResult,
    settings: Settings,
) -> dict[str, Any] | None:
    """Compare a just-promoted champion with its predecessor; roll back when it does worse."""
    history = registry.list_events(limit=None, kinds=CHAMPION_KINDS)
    if not history or history[0].kind != "promoted" or history[0].version != champion:
        return None  # not just promoted (or promoted outside the lifecycle)
    predecessor = registry.previous_champion(champion)
    if predecessor is None:
        return None
    comparison = compare_versions(registry, champion, predecessor, ingested, settings.rollback_days)
    event = rollback_if_degraded(
        registry,
        comparison,
        margin=settings.rollback_margin,
        days=settings.rollback_days,
    )
    return {**comparison.to_dict(), "rolled_back": event.to_dict() if event else None}


def compare_versions(
    registry: Registry, champion: str, predecessor: str, ingested: IngestResult, days: int
) -> Comparison:
    """Champion and predecessor on the forecasts both made since the champion's first bundle."""
    actuals = observed_actuals(ingested.series)
    mine = version_bundles(registry.reader, champion)
    since = mine[0].as_of if mine else ""
    theirs = [
        bundle for bundle in version_bundles(registry.reader, predecessor) if bundle.as_of >= since
    ]
    return compare_on_same_points(
        champion,
        scored_points(mine, actuals),
        predecessor,
        scored_points(theirs, actuals),
        days,
    )


def rollback_if_degraded(
    registry: Registry,
    comparison: Comparison,
    *,
    margin: float,
    days: int,
) -> Event | None:
    """Roll back a just-promoted champion whose live error exceeds its predecessor's.

    Only a champion that serves because it was promoted (not rolled back to) is judged, on
    `days` days of forecasts both versions made; its MAE must exceed the predecessor's by more
    than `margin` (a fraction). Returns the rollback event, or None when the champion stays.
    """
    champion = registry.serving_version()
    latest = registry.list_events(limit=1, kinds=CHAMPION_KINDS)
    if champion != comparison.champion or not latest or latest[0].kind != "promoted":
        return None
    mine, theirs = comparison.champion_mae, comparison.predecessor_mae
    if comparison.days < days or mine is None or theirs is None or mine <= (1 + margin) * theirs:
        return None
    reason = (
        f"live error {mine:.4g} exceeded predecessor {comparison.predecessor}'s {theirs:.4g} "
        f"by more than {margin:.0%} over {comparison.days} days "
        f"({comparison.start} to {comparison.end}; MAE of daily new cases on the same "
        f"{comparison.points} forecasts)"
    )
    return registry.rollback(comparison.predecessor, reason=reason, trigger="live_error")
