"""Turning one row's text into typed canonical values, or the reason it cannot be."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .columns import Located
from .config import PosCsvConfig
from .fields import GUARDED_KINDS, Kind, fields_for
from .parse import (
    consent_reader,
    date_parser,
    parse_bool,
    parse_money,
    parse_time,
    split_tags,
    strip_guard,
)
from .presets import PRESETS

#: How a bad value of each kind is described in a reject reason.
_KIND_WORDS: dict[Kind, str] = {
    "date": "date", "datetime": "date", "time": "time", "money": "amount",
    "number": "number", "bool": "yes/no value",
}


@dataclass(frozen=True)
class Problem:
    """Why a row was refused: the canonical field (or column) at fault and a clear reason."""

    field: str | None
    reason: str


@dataclass
class RowValues:
    """A row's typed canonical values; blank cells are simply absent."""

    values: dict[str, Any]
    attributes: dict[str, str]
    order_attributes: dict[str, str]


class RowReader:
    """Reads the located columns of each row of one file, with that file's parsers."""

    def __init__(self, config: PosCsvConfig, located: Located):
        preset = PRESETS[config.preset] if config.preset else None
        consent_values = dict(preset.consent_values) if preset else {}
        consent_values.update(config.consent_values)
        kinds = fields_for(config.resolved_stream())
        converters = _converters(config, consent_values)
        # (field, columns to try, converter, guarded), resolved once so the per-row loop is lean.
        self._fields = [
            (name, found, converters[kinds[name]], kinds[name] in GUARDED_KINDS)
            for name, found in located.fields.items()
        ]
        self._kinds = {name: kinds[name] for name in located.fields}
        self._located = located
        self._attributes = [(n, [i for i, _ in found]) for n, found in located.attributes.items()]
        self._order_attributes = [
            (n, [i for i, _ in found]) for n, found in located.order_attributes.items()
        ]
        self._blank = preset.blank_values if preset else frozenset()
        #: canonical field → the first of its columns in this file, for messages.
        self.columns = {name: found[0][1] for name, found in located.fields.items()}

    def _cell(self, row: list[str], index: int, guarded: bool = False) -> str:
        # A short row (Excel drops trailing empty cells) reads as blank past its end.
        value = row[index].strip() if index < len(row) else ""
        if guarded:
            value = strip_guard(value)
        return "" if value in self._blank else value

    def text(self, name: str, row: list[str]) -> str:
        """The raw text of a field in ``row`` (first non-blank column), or ""."""
        guarded = self._kinds[name] in GUARDED_KINDS
        for index, _ in self._located.fields.get(name, ()):
            if value := self._cell(row, index, guarded):
                return value
        return ""

    def read(self, row: list[str]) -> RowValues | Problem:
        """Typed values of ``row``, or the first value that does not parse."""
        values: dict[str, Any] = {}
        blank = self._blank
        width = len(row)
        for name, found, convert, guarded in self._fields:
            # _cell inlined: this loop runs for every mapped field of every row.
            for index, header in found:
                if index >= width:
                    continue
                text = row[index].strip()
                if guarded and text[:1] == "'":
                    text = strip_guard(text)
                if text and text not in blank:
                    column = header
                    break
            else:
                continue
            try:
                value = convert(text)
            except ValueError as exc:
                word = _KIND_WORDS.get(self._kinds[name], "value")
                return Problem(name, f"bad {word} in column '{column}': {exc}")
            if value is not None:
                values[name] = value
        return RowValues(values, self._first(row, self._attributes),
                         self._first(row, self._order_attributes))

    def _first(self, row: list[str], wanted: list[tuple[str, list[int]]]) -> dict[str, str]:
        out = {}
        for name, indexes in wanted:
            value = next((v for i in indexes if (v := self._cell(row, i))), "")
            if value:
                out[name] = value
        return out


def _identity(value: str) -> str:
    return value


def _date_only(parse: Callable[[str], dt.datetime]) -> Callable[[str], dt.date]:
    return lambda value: parse(value).date()


def _converters(
    config: PosCsvConfig, consent_values: dict[str, Any]
) -> dict[Kind, Callable[[str], Any]]:
    dates = date_parser(config.date_format)
    decimal = config.decimal_separator
    return {
        "key": _identity,
        "text": _identity,
        "ident": _identity,
        "tags": split_tags,
        "date": _date_only(dates),
        "datetime": dates,
        "time": parse_time,
        "money": lambda value: parse_money(value, decimal),
        "number": lambda value: parse_money(value, decimal),
        "bool": parse_bool,
        "consent": consent_reader(consent_values),
    }


def _raw_names(header: list[str]) -> list[str]:
    """Header names made unique (``Phone``, ``Phone (2)``) so no cell of the raw row is lost."""
    names: list[str] = []
    counts: dict[str, int] = {}
    for name in header:
        counts[name] = counts.get(name, 0) + 1
        names.append(name if counts[name] == 1 else f"{name} ({counts[name]})")
    return names


def _raw(names: list[str], row: list[str]) -> dict[str, str]:
    raw = dict(zip(names, row, strict=False))
    if len(row) > len(names):
        raw["_extra"] = ",".join(row[len(names):])
    return raw


def _width_problem(row: list[str], width: int) -> Problem | None:
    """A row with more non-blank cells than the header has columns is shifted; refuse it.

    Shorter rows are fine: Excel drops trailing empty cells.
    """
    if len(row) > width and any(cell.strip() for cell in row[width:]):
        return Problem(None, f"row has {len(row)} fields but the header has {width} columns "
                             "(an unquoted delimiter inside a value?)")
    return None
