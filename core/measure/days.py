"""Calendar arithmetic shared by scoring thresholds and segment-query date offsets."""

from __future__ import annotations

import calendar
import datetime as dt


def shift_date(day: dt.date, amount: int, unit: str) -> dt.date:
    """``day`` moved by ``amount`` days, weeks, calendar months or calendar years.

    Months and years keep the day of the month and clamp it to the target month's length, the
    way people count ("a month before 31 March" is 29 February in a leap year), rather than
    approximating a month as 30 days. Raises ``ValueError`` / ``OverflowError`` out of range.
    """
    if unit == "d":
        return day + dt.timedelta(days=amount)
    if unit == "w":
        return day + dt.timedelta(weeks=amount)
    years, month0 = divmod(day.month - 1 + amount * (12 if unit == "y" else 1), 12)
    year = day.year + years
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise ValueError("year is out of range")
    return dt.date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))

