"""Budget periods: where a Daily, Weekly or Monthly period starts and ends, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from costscaler.api.budget import Period


def period_bounds(period: Period, at: datetime) -> tuple[datetime, datetime]:
    """The [start, end) of the period holding `at` (timezone-aware), in UTC.

    Weeks start on Monday 00:00 UTC (ISO 8601); months on the 1st at 00:00 UTC.
    """
    if at.tzinfo is None:
        raise ValueError("period_bounds needs a timezone-aware time")
    at = at.astimezone(UTC)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == Period.DAILY:
        return day, day + timedelta(days=1)
    if period == Period.WEEKLY:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def hours_between(start: datetime, end: datetime) -> float:
    """Hours from `start` to `end` (negative when `end` is earlier)."""
    return (end - start).total_seconds() / 3600.0
