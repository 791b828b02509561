"""What makes a whole release refused rather than partly quarantined."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from tractcast.data.layouts import Table
from tractcast.errors import DataRejected


def refuse_future_dates(observations: pd.DataFrame, table: Table, today: date | None) -> None:
    """A release dated after tomorrow cannot be right: refuse it."""
    limit = pd.Timestamp((today or date.today()) + timedelta(days=1))
    future = observations["date"] > limit
    if future.any():
        first = observations[future].iloc[0]
        raise DataRejected(
            f"dates in the future: {int(future.sum())} rows are dated after {limit:%Y-%m-%d}, "
            f"e.g. {first['date']:%Y-%m-%d} in {table.names[int(first['file'])]} "
            f"line {int(first['line'])}"
        )


def refuse_national_jumps(
    dates: pd.DatetimeIndex,
    new: np.ndarray,
    factor: float = 10.0,
    window: int = 14,
    floor: float = 50.0,
) -> None:
    """A national daily total ten times the largest of the fortnight before cannot be an
    epidemic's growth: a unit or column error in the release; refuse it."""
    national = np.nansum(new, axis=0)
    for day in range(window, national.size):
        before = float(national[day - window : day].max())
        if before >= floor and national[day] > factor * before:
            raise DataRejected(
                f"implausible national total: {national[day]:g} new cases on "
                f"{dates[day]:%Y-%m-%d}, more than {factor:g} times the largest day of the "
                f"{window} days before ({before:g}); check the value column "
                "(TRACTCAST_VALUE_COLUMN) and the units of the release"
            )


def refuse_conflicting_days(
    matched: pd.DataFrame, conflicts: pd.DataFrame, min_share: float = 0.5
) -> None:
    """A day reported twice with different values for most areas is a broken release."""
    if conflicts.empty:
        return
    per_day = conflicts.groupby("date")["key"].nunique()
    kept = (
        matched.groupby("date", observed=True)["key"].nunique().reindex(per_day.index, fill_value=0)
    )
    broken = per_day[(per_day >= 2) & (per_day >= min_share * (kept + per_day))]
    if broken.empty:
        return
    days = ", ".join(f"{d:%Y-%m-%d}" for d in broken.index[:5])
    files = sorted(set(conflicts[conflicts["date"].isin(broken.index)]["file"]))[:5]
    raise DataRejected(
        f"conflicting duplicate days: {days} ({len(broken)} days reported twice with different "
        f"values for most areas; files: {', '.join(files)})"
    )
