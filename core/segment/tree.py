"""The typed tree a parsed segment query becomes.

Dates stay unresolved here: an offset such as ``-30d`` is kept relative until the compiler is
given the as-of date, so a parsed query, and the definition hash built from it, does not change
from one day to the next.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from ..errors import QueryError
from ..measure import AttrType, shift_date


@dataclass(frozen=True)
class DateValue:
    """A date literal, absolute or relative to the as-of date given at compile time.

    ``today`` is an offset of 0 days and ``yesterday`` of -1 day. A datetime literal keeps only
    its date part (``absolute``), because features and order dates are whole local days.
    """

    text: str
    pos: int
    absolute: dt.date | None = None
    amount: int = 0
    unit: Literal["d", "w", "m", "y"] = "d"

    def resolve(self, as_of: dt.date) -> dt.date:
        if self.absolute is not None:
            return self.absolute
        return shift_date(as_of, self.amount, self.unit)


Value = bool | int | float | str | DateValue


@dataclass(frozen=True)
class Attr:
    """A resolved attribute: catalog attributes carry their column, custom ones their key."""

    name: str
    type: AttrType | Literal["custom"]
    column: str
    key: str | None = None


@dataclass(frozen=True)
class Compare:
    attr: Attr
    op: str
    value: Value


@dataclass(frozen=True)
class Between:
    attr: Attr
    low: Value
    high: Value


@dataclass(frozen=True)
class Contains:
    attr: Attr
    value: str
    negated: bool


@dataclass(frozen=True)
class IsNull:
    attr: Attr
    negated: bool


@dataclass(frozen=True)
class Param:
    """One ``MATCHES`` parameter; ``op`` is a comparison, ``BETWEEN``, ``IN`` or ``NOT IN``."""

    name: str
    op: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Matches:
    function: str
    params: tuple[Param, ...]
    negated: bool


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Expr, ...]


Expr = Or | And | Not | Compare | Between | Contains | IsNull | Matches


@dataclass(frozen=True)
class Query:
    """A parsed, type-checked query.

    ``canonical`` is the token stream re-joined with single spaces and upper-case keywords:
    layout and keyword case do not change it, so it identifies the definition for hashing.
    """

    text: str
    expr: Expr
    canonical: str

    def error(self, message: str, position: int) -> QueryError:
        """A :class:`QueryError` pointing at ``position`` of this query."""
        return QueryError(message, one_line(self.text), position)


def one_line(text: str) -> str:
    # A query written over several lines of TOML is shown on one line so that the caret, placed
    # by character offset, lands under the right character; the substitution keeps every offset.
    return re.sub(r"\s", " ", text)


