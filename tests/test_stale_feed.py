"""A feed that stops while its files keep coming: the retrain never trains or scores on the
repeated days, and says so."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tractcast.data.demo import write_demo_data
from tractcast.registry.registry import Registry
from tractcast.settings import Settings
from tractcast.workflows.retrain import retrain

pytestmark = pytest.mark.slow

FROZEN_DAYS = 21


def freeze_tail(cases: Path, days: int) -> pd.Timestamp:
    """Append `days` days that repeat the last day value for value; return the last fresh day."""
    frame = pd.read_csv(cases, dtype=str)
    last = frame["date"].max()
    tail = frame[frame["date"] == last]
    copies = [
        tail.assign(date=(pd.Timestamp(last) + pd.Timedelta(days=i)).strftime("%Y-%m-%d"))
        for i in range(1, days + 1)
    ]
    pd.concat([frame, *copies]).to_csv(cases, index=False)
    return pd.Timestamp(last)


def test_a_retrain_on_a_stopped_feed_ends_its_series_at_the_last_fresh_day(tmp_path: Path):
    cases, tracts = write_demo_data(tmp_path / "data", n_days=160)
    last_fresh = freeze_tail(cases, FROZEN_DAYS)
    settings = Settings(
        data_source=str(cases),
        tracts=str(tracts),
        store=tmp_path / "store",
        epochs=1,
        backtest_origins=2,
    )
    outcome = retrain(settings, trigger="test")
    # an origin's forecast covers its day and the horizon - 1 days after it
    scored_until = [
        pd.Timestamp(o) + pd.Timedelta(days=settings.horizon - 1) for o in outcome.origins
    ]
    # every scored day is an actual, never a copy; origins fall on a weekly grid, so the newest
    # scored day is within a week of the last fresh one
    assert last_fresh - pd.Timedelta(days=7) < max(scored_until) <= last_fresh
    registry = Registry.open(settings)
    store, metadata = registry.store, registry.metadata
    version = store.get_version(outcome.versions["lstm"])
    assert version.manifest["days"] == 160  # trained on the fresh days only
    bundle = store.bundle(store.current_bundle_id() or "")
    assert bundle.as_of == f"{last_fresh:%Y-%m-%d}"
    (event,) = metadata.list_events(kinds=["feed_stale"])
    assert event.version == outcome.data_version
    assert f"the last {FROZEN_DAYS} days repeat {last_fresh:%Y-%m-%d}" in event.reason
    metadata.close()
