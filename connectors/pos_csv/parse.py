"""Reading the values exports actually contain: money, dates, times, booleans, consent, tags.

Every parser takes a stripped, non-empty string and returns a value or raises ``ValueError``
with a message that names the value and what was expected; the row reader turns that into a
rejected row. Nothing here guesses silently: an amount with a misplaced thousands separator or
a day-first date in a month-first file is refused, not read as some other number or day.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from functools import lru_cache

from segsync.core.records import CONSENT_STATES, Consent

#: ``date_format`` names; anything else containing ``%`` is a strftime pattern.
DATE_FORMATS = ("auto", "iso", "us", "eu", "yyyymmdd")

_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# A currency symbol or code before or after the number ("$", "€", "CA$", "USD 12.00").
_CUR = r"(?:[$€£¥₹₩₽¢]|[A-Z]{1,3}\$|[A-Za-z]{3})"
_MONEY = re.compile(
    rf"(?P<s1>[-+]?)\s*{_CUR}?\s*(?P<s2>[-+]?)\s*"
    r"(?P<num>[\d.,' \u00a0\u202f]*\d[\d.,' \u00a0\u202f]*?)"
    rf"\s*{_CUR}?\s*(?P<s3>-?)"
)
# The number itself: digits with thousands groups (one separator, used consistently).
_GROUPED = r"\d{1,3}(?:(?P<sep>[%s])\d{3})(?:(?P=sep)\d{3})*"
_DOT_DECIMAL = re.compile(r"(?:%s|\d*)(?:\.\d+)?" % (_GROUPED % ",' \u00a0\u202f"))
_COMMA_DECIMAL = re.compile(r"(?:%s|\d*)(?:,\d+)?" % (_GROUPED % ".' \u00a0\u202f"))

_ISO = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6})\d*)?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?"
)
_SLASHED = re.compile(
    r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4}|\d{2})"
    r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?"
)
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?\s*([AaPp][Mm])?")

_TRUE = frozenset({"yes", "y", "true", "t", "1"})
_FALSE = frozenset({"no", "n", "false", "f", "0"})


def strip_guard(value: str) -> str:
    """Drop the leading ``'`` Excel users type to keep ids, zips and phones as text."""
    return value[1:].lstrip() if value.startswith("'") else value


def parse_money(value: str, decimal: str = ".") -> float:
    """``$1,149.00``, ``-$45.00``, ``($33.62)``, ``€1.234,56`` (with ``decimal=","``) → float.

    Parentheses and a minus before or after the number mean negative. Thousands separators
    must sit every three digits, so ``1,14`` in a dot-decimal file is an error, not 114.
    """
    if decimal == "." and _PLAIN_NUMBER.fullmatch(value):
        return float(value)
    text = value.strip()
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1].strip()
    m = _MONEY.fullmatch(text)
    number = m["num"] if m else ""
    grouped = (_COMMA_DECIMAL if decimal == "," else _DOT_DECIMAL).fullmatch(number)
    signs = sum(1 for s in ("s1", "s2", "s3") if m and m[s]) + negative
    if m is None or grouped is None or signs > 1:
        sep = "decimal comma" if decimal == "," else "decimal point"
        raise ValueError(f"{value!r} is not an amount (expected digits with a {sep})")
    if grouped["sep"]:
        number = number.replace(grouped["sep"], "")
    if decimal == ",":
        number = number.replace(",", ".")
    result = float(number)
    return -result if negative != ("-" in (m["s1"], m["s2"], m["s3"])) else result


def parse_bool(value: str) -> bool:
    """yes/no, true/false, y/n, t/f, 1/0 in any case."""
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"{value!r} is not yes/no or true/false")


def parse_time(value: str) -> dt.time:
    """``12:59:30``, ``9:05``, ``2:03 PM``: Square keeps the time of day in its own column."""
    m = _TIME.fullmatch(value)
    if not m:
        raise ValueError(f"{value!r} is not a time of day (hh:mm[:ss] [AM/PM])")
    hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
    hour = _twelve_hour(hour, m[4], value)
    try:
        return dt.time(hour, minute, second)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid time of day") from None


def _twelve_hour(hour: int, meridiem: str | None, value: str) -> int:
    if not meridiem:
        return hour
    if not 1 <= hour <= 12:
        raise ValueError(f"{value!r}: hour {hour} with AM/PM")
    return hour % 12 + (12 if meridiem.lower() == "pm" else 0)


def _offset(text: str) -> dt.tzinfo:
    if text == "Z":
        return dt.UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
    return dt.timezone(sign * dt.timedelta(minutes=minutes))


def _iso(value: str) -> dt.datetime | None:
    m = _ISO.fullmatch(value)
    if not m:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    micro = int((frac or "0").ljust(6, "0"))
    tz = _offset(zone) if zone else None
    return dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                       int(second or 0), micro, tzinfo=tz)


def _slashed(value: str, day_first: bool) -> dt.datetime | None:
    m = _SLASHED.fullmatch(value)
    if not m:
        return None
    first, second, year, hour, minute, sec, meridiem = m.groups()
    month, day = (int(second), int(first)) if day_first else (int(first), int(second))
    year_n = int(year)
    if len(year) == 2:
        # Toast writes MM/DD/YY; two-digit years are read as the nearest century.
        year_n += 2000 if year_n < 70 else 1900
    h = _twelve_hour(int(hour or 0), meridiem, value)
    return dt.datetime(year_n, month, day, h, int(minute or 0), int(sec or 0))


def _compact(value: str) -> dt.datetime | None:
    m = _COMPACT.fullmatch(value)
    return dt.datetime(int(m[1]), int(m[2]), int(m[3])) if m else None


def _strptime(pattern: str) -> Callable[[str], dt.datetime | None]:
    def attempt(value: str) -> dt.datetime | None:
        try:
            return dt.datetime.strptime(value, pattern)
        except ValueError:
            return None

    return attempt


def date_parser(date_format: str) -> Callable[[str], dt.datetime]:
    """A cached parser for one file's dates, returning aware datetimes only when the text has
    an offset (the store reads naive ones in the shop's time zone).

    ``auto`` accepts ISO (``2026-05-01``, ``2026-05-01 10:00:00 +0200``), ``yyyymmdd`` and
    US month-first dates (``12/27/2018``), Square's and Excel's defaults; a day-first file
    must say ``eu`` because ``03/04/2026`` cannot be told apart.
    """
    attempts: tuple[Callable[[str], dt.datetime | None], ...]
    if date_format == "auto":
        attempts = (_iso, _compact, lambda v: _slashed(v, day_first=False))
        expected = "an ISO, yyyymmdd or month/day/year date"
    elif date_format == "iso":
        attempts, expected = (_iso,), "an ISO date (yyyy-mm-dd)"
    elif date_format == "us":
        attempts, expected = (lambda v: _slashed(v, day_first=False),), "a month/day/year date"
    elif date_format == "eu":
        attempts, expected = (lambda v: _slashed(v, day_first=True),), "a day/month/year date"
    elif date_format == "yyyymmdd":
        attempts, expected = (_compact,), "a yyyymmdd date"
    else:
        attempts, expected = (_strptime(date_format),), f"a date like {date_format!r}"

    # Exports repeat the same dates on thousands of rows; datetimes are immutable, so a
    # per-file cache is safe and saves most of the parsing time.
    @lru_cache(maxsize=8192)
    def parse(value: str) -> dt.datetime:
        hint = ""
        if date_format in ("auto", "us") and _SLASHED.fullmatch(value):
            hint = ' (for day-first dates set date_format = "eu")'
        for attempt in attempts:
            try:
                result = attempt(value)
            except ValueError:
                # A pattern matched but the date does not exist (2026-02-30, month 13).
                raise ValueError(f"{value!r} is not a valid date{hint}") from None
            if result is not None:
                return result
        raise ValueError(f"{value!r} is not {expected}{hint}")

    return parse


def consent_reader(values: dict[str, Consent]) -> Callable[[str], Consent | None]:
    """Read a consent column through an explicit value map.

    Values are compared case-insensitively. A canonical state name (``subscribed``,
    ``unsubscribed``, …) stands for itself; anything else, such as Square's ``unknown``, is
    "not known" (None) and never an opt-in.
    """
    table: dict[str, Consent] = {state: state for state in CONSENT_STATES}  # type: ignore[misc]
    table.update({k.strip().lower(): v for k, v in values.items()})

    def read(value: str) -> Consent | None:
        return table.get(value.lower())

    return read


def split_tags(value: str) -> list[str]:
    """Shopify's quoted comma list (``vip, book-club``) → ``["vip", "book-club"]``."""
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def split_name(value: str) -> tuple[str, str | None]:
    """One "Customer Name" column → first name and the rest as last name."""
    first, _, last = value.strip().partition(" ")
    return first, (last.strip() or None)
