"""The segment query language: lexer, recursive-descent parser and type checker.

A query such as ``amount_spent > 100 AND customer_tags CONTAINS 'vip'`` becomes a typed tree
(:class:`Query`) checked against the attribute catalog of :mod:`segsync.core.attributes`, so a
marketer learns about a typo or a wrong operator when the config is checked, not halfway through a
run. The language mirrors Shopify's customer segment query language (reference/segmentation.md
§2); :mod:`segsync.core.query_compiler` turns the tree into parameterised SQL.

Grammar (keywords are case-insensitive; ``AND`` binds tighter than ``OR``)::

    query    := or_expr END
    or_expr  := and_expr { OR and_expr }
    and_expr := unary { AND unary }
    unary    := NOT unary | "(" or_expr ")" | clause
    clause   := attr cmp value | attr BETWEEN value AND value
              | attr [NOT] CONTAINS value | attr IS [NOT] NULL
              | function [NOT] MATCHES "(" [ param { "," param } ] ")"
    param    := name cmp value | name BETWEEN value AND value
              | name [NOT] IN "(" value { "," value } ")"
    cmp      := "=" | "!=" | "<" | "<=" | ">" | ">="
    value    := integer | float | 'string' | yyyy-mm-dd | yyyy-mm-ddTHH:mm:ss
              | [+-]N(d|w|m|y) | today | yesterday | true | false

Typing, as Shopify: enums and strings take ``=`` / ``!=`` (case-sensitive, enums only from their
permitted set); integers, floats and dates take every comparison and ``BETWEEN`` (inclusive);
lists take ``CONTAINS`` / ``NOT CONTAINS``; every attribute takes ``IS [NOT] NULL``. An integer
literal is promoted where a float is expected. Custom attributes (``attributes.NAME``) have no
declared type, so the literal decides how they compare (text, number, date or boolean).

Dates are not resolved here: an offset such as ``-30d`` stays relative until the compiler is given
the as-of date, so a parsed query, and the definition hash built from it, does not change from one
day to the next. A datetime is kept only for its date part because features are whole days.
"""

from __future__ import annotations

import calendar
import datetime as dt
import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .attributes import BY_NAME, CUSTOM_PREFIX, Attribute, AttrType
from .errors import QueryError

#: Functions and the type of each of their parameters.
FUNCTIONS: dict[str, dict[str, AttrType]] = {
    "products_purchased": {
        "tag": "string", "category": "string", "vendor": "string", "sku": "string",
        "title": "string", "date": "date", "count": "integer", "sum_quantity": "float",
    },
    "orders_placed": {
        "count": "integer", "sum_amount": "float", "amount": "float", "date": "date",
        "location": "string", "channel": "string",
    },
}

#: Deeper nesting than this is refused instead of exhausting Python's recursion limit.
MAX_DEPTH = 50

_KEYWORDS = frozenset({
    "AND", "OR", "NOT", "BETWEEN", "CONTAINS", "IS", "NULL", "MATCHES", "IN",
    "TRUE", "FALSE", "TODAY", "YESTERDAY",
})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT64 = 2**63

# Alternatives are tried in order: a datetime before a date before a number, and an offset
# before a number, so that "2024-01-31" and "-30d" are never read as arithmetic.
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<quote>')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?![\w:.+-])
    | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:.+-])
    | (?P<offset>[+-]\d+[dwmy])(?![\w.:+-])
    | (?P<number>[+-]?\d+(?:\.\d+)?)(?![\w.:+-])
    | (?P<word>[A-Za-z_]\w*(?:\.\w*)*)
    | (?P<op>!=|<=|>=|==|<>|=|<|>|!)
    | (?P<punct>[(),])
    | (?P<junk>[^\s(),'=<>!]+)
    """,
    re.VERBOSE | re.ASCII,
)
_THOUSANDS = re.compile(r",\d{3}(?!\d)")
_OP_HINTS = {"==": "use = to test equality", "<>": "use != for 'not equal'",
             "!": "use != for 'not equal' or NOT before a condition"}

_EXPECTED = {
    "integer": "a whole number such as 3",
    "float": "a number such as 100 or 19.99",
    "date": "a date such as 2024-01-31, -30d or today",
    "string": "a quoted string such as 'vip'",
    "list": "a quoted string such as 'vip'",
    "boolean": "true or false",
    "custom": "a number, a quoted string, a date or true/false",
}
_ARTICLE = {"integer": "an integer", "float": "a float", "date": "a date", "string": "a string",
            "enum": "an enum", "list": "a list", "boolean": "a boolean",
            "custom": "a custom attribute"}
_ORDERED = frozenset({"integer", "float", "date", "custom"})


def _operators(attr_type: str) -> str:
    """The operators an attribute type takes, as shown in error messages."""
    if attr_type == "list":
        return "CONTAINS, NOT CONTAINS or IS [NOT] NULL"
    if attr_type == "custom":
        return "=, !=, <, <=, >, >=, BETWEEN, [NOT] CONTAINS or IS [NOT] NULL"
    if attr_type in _ORDERED:
        return "=, !=, <, <=, >, >=, BETWEEN or IS [NOT] NULL"
    return "=, != or IS [NOT] NULL"


def _param_operators(param_type: str) -> str:
    return "=, !=, IN or NOT IN" if param_type == "string" else "=, !=, <, <=, >, >= or BETWEEN"


# ---------------------------------------------------------------------------------------------
# The typed tree


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
        return QueryError(message, _one_line(self.text), position)


def _one_line(text: str) -> str:
    # A query written over several lines of TOML is shown on one line so that the caret, placed
    # by character offset, lands under the right character; the substitution keeps every offset.
    return re.sub(r"\s", " ", text)


# ---------------------------------------------------------------------------------------------
# Lexer


@dataclass(frozen=True)
class _Token:
    kind: str  # word keyword string number date datetime offset op ( ) , error end
    text: str
    pos: int
    #: Decoded value: str, int/float, date, (amount, unit), upper-case keyword, or an error.
    value: Any = None


def _lex(text: str) -> list[_Token]:
    """Split ``text`` into tokens; a malformed token becomes an ``error`` token.

    Errors are raised by the parser when it reaches the token, so the first problem in reading
    order is the one reported even when a later token cannot be lexed.
    """
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None  # "junk" matches any character the other alternatives reject
        if m.lastgroup == "ws":
            pos = m.end()
            continue
        token = (_lex_string(text, pos) if m.lastgroup == "quote"
                 else _classify(m.lastgroup or "", m.group(), pos, text))
        tokens.append(token)
        # A token may span more than the regex matched (a string, "1,000"): continue after it.
        pos += len(token.text)
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _lex_string(text: str, start: int) -> _Token:
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "'\\":
            chars.append(text[i + 1])
            i += 2
        elif ch == "'":
            return _Token("string", text[start:i + 1], start, "".join(chars))
        else:
            chars.append(ch)
            i += 1
    return _Token("error", text[start:], start, "unterminated string: add the closing '")


def _classify(kind: str, raw: str, pos: int, text: str) -> _Token:
    if kind == "word":
        upper = raw.upper()
        if upper in _KEYWORDS:
            return _Token("keyword", raw, pos, upper)
        return _Token("word", raw, pos)
    if kind == "punct":
        return _Token(raw, raw, pos)
    if kind == "op":
        if raw in _OP_HINTS:
            return _Token("error", raw, pos, _OP_HINTS[raw])
        return _Token("op", raw, pos, raw)
    if kind in ("date", "datetime"):
        try:
            day = (dt.date.fromisoformat(raw) if kind == "date"
                   else dt.datetime.fromisoformat(raw).date())
        except ValueError as exc:
            return _Token("error", raw, pos, f"invalid {kind} {raw}: {exc}")
        return _Token(kind, raw, pos, day)
    if kind == "offset":
        return _Token("offset", raw, pos, (int(raw[:-1]), raw[-1]))
    if kind == "number":
        thousands = _THOUSANDS.match(text, pos + len(raw))
        if thousands and "." not in raw:
            return _Token("error", raw + thousands.group(), pos,
                          "numbers are written without thousands separators")
        number: int | float = float(raw) if "." in raw else int(raw)
        if not math.isfinite(number) or abs(number) >= _INT64:
            return _Token("error", raw, pos, f"number {raw} is out of range")
        return _Token("number", raw, pos, number)
    return _Token("error", raw, pos, _junk_message(raw))


def _junk_message(raw: str) -> str:
    if re.fullmatch(r"\d+[dwmy]", raw):
        return (f"a date offset needs a sign: -{raw} (in the past) or +{raw} (in the future)")
    if re.match(r"[+-]?\d{1,4}-\d", raw):
        return f"dates are written yyyy-mm-dd and datetimes yyyy-mm-ddTHH:mm:ss, got {raw}"
    if re.match(r"[-+.]?\d", raw):
        return f"invalid number {raw}"
    return f"unexpected character {raw[0]!r}"


# ---------------------------------------------------------------------------------------------
# Parser


def parse(text: str, catalog: Mapping[str, Attribute] = BY_NAME) -> Query:
    """Parse and type-check ``text``; raise :class:`QueryError` pointing at the first problem.

    ``catalog`` defaults to the attribute catalog; tests and future optional features (predicted
    fields) can pass another.
    """
    parser = _Parser(text, catalog)
    expr = parser.query()
    canonical = " ".join(str(t.value) if t.kind == "keyword" else t.text for t in parser.tokens)
    return Query(text, expr, canonical.strip())


class _Parser:
    def __init__(self, text: str, catalog: Mapping[str, Attribute]):
        self.text = text
        self.catalog = catalog
        self.tokens = _lex(text)
        self.i = 0
        self.depth = 0

    # -- token helpers ------------------------------------------------------------------------

    def error(self, message: str, pos: int) -> QueryError:
        return QueryError(message, _one_line(self.text), pos)

    def peek(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind == "error":
            raise self.error(tok.value, tok.pos)
        return tok

    def advance(self) -> _Token:
        tok = self.peek()
        self.i += 1
        return tok

    def at(self, *keywords: str) -> bool:
        tok = self.peek()
        return tok.kind == "keyword" and tok.value in keywords

    def expected(self, what: str, tok: _Token) -> QueryError:
        if tok.kind == "end":
            return self.error(f"unexpected end of query: expected {what}", tok.pos)
        return self.error(f"expected {what}, got {tok.text}", tok.pos)

    def expect(self, keyword: str, what: str) -> None:
        if not self.at(keyword):
            raise self.expected(what, self.peek())
        self.advance()

    def close(self, opening: _Token, what: str) -> None:
        """Consume the ``)`` matching ``opening``; at the end of input blame the ``(``."""
        tok = self.peek()
        if tok.kind == "end":
            raise self.error("unbalanced parenthesis: this ( is never closed", opening.pos)
        if tok.kind != ")":
            raise self.expected(what, tok)
        self.advance()

    # -- boolean structure --------------------------------------------------------------------

    def query(self) -> Expr:
        if self.peek().kind == "end":
            raise self.error("empty query", 0)
        expr = self.or_expr()
        tok = self.peek()
        if tok.kind == ")":
            raise self.error("unbalanced parenthesis: this ) has no matching (", tok.pos)
        if tok.kind != "end":
            raise self.error(f"unexpected {tok.text} after a complete condition; "
                             "join conditions with AND or OR", tok.pos)
        return expr

    def or_expr(self) -> Expr:
        operands = [self.and_expr()]
        while self.at("OR"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Expr:
        operands = [self.unary()]
        while self.at("AND"):
            self.advance()
            operands.append(self.unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def unary(self) -> Expr:
        tok = self.peek()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"the query nests deeper than {MAX_DEPTH} levels", tok.pos)
        try:
            if self.at("NOT"):
                self.advance()
                return Not(self.unary())
            if tok.kind == "(":
                self.advance()
                expr = self.or_expr()
                self.close(tok, "AND, OR or )")
                return expr
            return self.clause()
        finally:
            self.depth -= 1

    # -- clauses ------------------------------------------------------------------------------

    def clause(self) -> Expr:
        tok = self.peek()
        if tok.kind != "word":
            raise self.expected("an attribute", tok)
        self.advance()
        if tok.text in FUNCTIONS:
            return self.matches(tok)
        attr, spec = self.attribute(tok)
        return self.predicate(attr, spec)

    def attribute(self, tok: _Token) -> tuple[Attr, Attribute | None]:
        name = tok.text
        if name.startswith(CUSTOM_PREFIX):
            key = name[len(CUSTOM_PREFIX):]
            if not _IDENT.fullmatch(key):
                raise self.error("a custom attribute is written attributes.NAME, NAME made of "
                                 f"letters, digits and _; got {name}", tok.pos)
            return Attr(name, "custom", "attributes", key), None
        spec = self.catalog.get(name)
        if spec is None:
            raise self.error(self.unknown_attribute(name), tok.pos)
        return Attr(name, spec.type, spec.sql_column), spec

    def unknown_attribute(self, name: str) -> str:
        candidates = [*self.catalog, *FUNCTIONS]
        by_lower = {c.lower(): c for c in candidates}
        guess = by_lower.get(name.lower()) or next(
            iter(difflib.get_close_matches(name, candidates, n=1)), None)
        if guess:
            return f"unknown attribute {name!r}; did you mean {guess!r}?"
        return f"unknown attribute {name!r} (custom attributes are written attributes.NAME)"

    def predicate(self, attr: Attr, spec: Attribute | None) -> Expr:
        tok = self.peek()
        if self.at("NOT"):
            self.advance()
            if not self.at("CONTAINS"):
                raise self.expected("CONTAINS after NOT", self.peek())
            return self.contains(attr, self.advance(), negated=True)
        if self.at("CONTAINS"):
            return self.contains(attr, self.advance(), negated=False)
        if self.at("IS"):
            self.advance()
            negated = self.at("NOT")
            if negated:
                self.advance()
            self.expect("NULL", "NULL or NOT NULL after IS")
            return IsNull(attr, negated)
        if self.at("BETWEEN"):
            return self.between(attr, spec, self.advance())
        if self.at("MATCHES"):
            raise self.error("MATCHES works on the functions " + " and ".join(FUNCTIONS)
                             + f"; {attr.name} is {_ARTICLE[attr.type]}", tok.pos)
        if self.at("IN"):
            raise self.error("IN works only on the text parameters inside MATCHES (…); "
                             "join clauses with OR instead", tok.pos)
        if tok.kind != "op":
            raise self.expected(f"{_operators(attr.type)} after {attr.name}", tok)
        self.advance()
        self.check_operator(attr, tok)
        value_tok = self.peek()
        value = self.value(attr.type, spec)
        if attr.type == "custom" and tok.value not in ("=", "!="):
            self.check_ordered_custom(value, value_tok, tok.value)
        return Compare(attr, tok.value, value)

    def check_operator(self, attr: Attr, op: _Token) -> None:
        if attr.type == "list" or (op.value not in ("=", "!=") and attr.type not in _ORDERED):
            raise self.error(f"{op.text} does not work on {attr.name}, {_ARTICLE[attr.type]}; "
                             f"use {_operators(attr.type)}", op.pos)

    def check_ordered_custom(self, value: Value, tok: _Token, op: str) -> None:
        """Custom attributes have no declared type: refuse an ordering the literal can't have."""
        if isinstance(value, bool):
            raise self.error(f"true/false compares only with = and !=, not {op}", tok.pos)
        if isinstance(value, str):
            raise self.error(f"text compares only with = and !=, not {op}; "
                             "use a number or a date to compare order", tok.pos)

    def contains(self, attr: Attr, tok: _Token, negated: bool) -> Contains:
        if attr.type not in ("list", "custom"):
            lists = ", ".join(a.name for a in self.catalog.values() if a.type == "list")
            raise self.error(f"CONTAINS works on lists; {lists} are lists "
                             f"({attr.name} is {_ARTICLE[attr.type]})", tok.pos)
        return Contains(attr, str(self.value("list", None)), negated)

    def between(self, attr: Attr, spec: Attribute | None, tok: _Token) -> Between:
        if attr.type not in _ORDERED:
            raise self.error(f"BETWEEN does not work on {attr.name}, {_ARTICLE[attr.type]}; "
                             f"use {_operators(attr.type)}", tok.pos)
        low_tok = self.peek()
        low = self.value(attr.type, spec)
        self.expect("AND", "AND in BETWEEN … AND …")
        high_tok = self.peek()
        high = self.value(attr.type, spec)
        if attr.type == "custom":
            self.check_ordered_custom(low, low_tok, "BETWEEN")
            self.check_ordered_custom(high, high_tok, "BETWEEN")
            if isinstance(low, DateValue) != isinstance(high, DateValue):
                raise self.error("BETWEEN needs two numbers or two dates", high_tok.pos)
        self.check_bounds(low, high, low_tok)
        return Between(attr, low, high)

    def check_bounds(self, low: Value, high: Value, tok: _Token) -> None:
        """Refuse bounds that are known, before any as-of date, to select nothing."""
        if isinstance(low, DateValue) and isinstance(high, DateValue):
            reversed_ = bool(low.absolute and high.absolute and low.absolute > high.absolute)
        else:
            reversed_ = (isinstance(low, int | float) and isinstance(high, int | float)
                         and low > high)
        if reversed_:
            raise self.error("BETWEEN takes the lower bound first; these bounds match nothing",
                             tok.pos)

    # -- values -------------------------------------------------------------------------------

    def value(self, expected: str, spec: Attribute | None) -> Value:
        """Read one literal of the ``expected`` type (an attribute type, or ``custom``)."""
        tok = self.peek()
        value = self.convert(tok, expected, spec)
        self.advance()
        return value

    def convert(self, tok: _Token, expected: str, spec: Attribute | None) -> Value:
        kind = _literal_kind(tok)
        if expected == "custom" and kind is not None:
            # A custom attribute has no declared type: the literal's own kind decides, and a
            # number stays the int or float it was written as.
            if kind == "number":
                return tok.value
            expected = kind
        if expected == "enum" and spec is not None:
            return self.enum_value(tok, spec)
        if kind == "number" and expected == "float":
            return float(tok.value)  # an integer literal is promoted
        if kind == "number" and expected == "integer" and isinstance(tok.value, int):
            return tok.value
        if kind == "string" and expected in ("string", "list"):
            return tok.value
        if kind == "boolean" and expected == "boolean":
            return tok.value == "TRUE"
        if kind == "date" and expected == "date":
            return self.date_value(tok)
        raise self.error(self.mismatch(tok, expected), tok.pos)

    def mismatch(self, tok: _Token, expected: str) -> str:
        if tok.kind == "string" and expected == "date" and _looks(_lex(tok.value), "date"):
            return f"dates are written without quotes: {tok.value}"
        if tok.kind == "string" and expected in ("integer", "float") and _looks(
                _lex(tok.value), "number"):
            return f"numbers are written without quotes: {tok.value}"
        if tok.kind == "end":
            return f"unexpected end of query: expected {_EXPECTED[expected]}"
        if tok.kind == "keyword" and tok.value == "NULL":
            return "use IS NULL or IS NOT NULL to test for a missing value"
        return f"expected {_EXPECTED[expected]}, got {tok.text}"

    def enum_value(self, tok: _Token, spec: Attribute) -> str:
        if tok.kind == "string" and tok.value in spec.values:
            return tok.value
        if tok.kind == "word" and tok.text in spec.values:
            raise self.error(f"enum values are quoted: write '{tok.text}'", tok.pos)
        message = (f"enum {spec.name} takes one of {', '.join(spec.values)}, got "
                   + ("end of query" if tok.kind == "end" else tok.text))
        folded = {v.lower(): v for v in spec.values}
        if tok.kind in ("string", "word"):
            guess = folded.get((tok.value if tok.kind == "string" else tok.text).lower())
            if guess:
                message += f"; did you mean '{guess}'?"
        raise self.error(message, tok.pos)

    def date_value(self, tok: _Token) -> DateValue:
        if tok.kind in ("date", "datetime"):
            return DateValue(tok.text, tok.pos, absolute=tok.value)
        if tok.kind == "offset":
            amount, unit = tok.value
            return DateValue(tok.text, tok.pos, amount=amount, unit=unit)
        return DateValue(tok.text, tok.pos, amount=0 if tok.value == "TODAY" else -1)

    # -- functions ----------------------------------------------------------------------------

    def matches(self, func: _Token) -> Matches:
        name = func.text
        tok = self.peek()
        negated = self.at("NOT")
        if negated:
            self.advance()
            if not self.at("MATCHES"):
                raise self.expected("MATCHES after NOT", self.peek())
        elif tok.kind == "(":
            raise self.error(f"the {name}(…) = true form is not supported; "
                             f"write {name} MATCHES (…)", tok.pos)
        elif tok.kind == "op" or self.at("IS", "CONTAINS", "BETWEEN", "IN"):
            raise self.error(f"{name} is a function: write {name} MATCHES (…)", tok.pos)
        elif not self.at("MATCHES"):
            raise self.expected(f"MATCHES or NOT MATCHES after {name}", tok)
        self.advance()
        opening = self.peek()
        if opening.kind != "(":
            raise self.expected("( after MATCHES", opening)
        self.advance()
        params: list[Param] = []
        if self.peek().kind == ")":
            self.advance()
            return Matches(name, (), negated)
        while True:
            params.append(self.param(name, {p.name for p in params}))
            if self.peek().kind == ",":
                self.advance()
                continue
            self.close(opening, ", or ) after a parameter")
            return Matches(name, tuple(params), negated)

    def param(self, func: str, seen: set[str]) -> Param:
        specs = FUNCTIONS[func]
        tok = self.peek()
        if tok.kind != "word":
            raise self.expected(f"a parameter of {func} ({', '.join(specs)})", tok)
        self.advance()
        name = tok.text
        if name not in specs:
            guess = next(iter(difflib.get_close_matches(name, list(specs), n=1)), None)
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise self.error(f"unknown parameter {name!r} for {func}{hint} "
                             f"(it takes {', '.join(specs)})", tok.pos)
        if name in seen:
            raise self.error(f"parameter {name} is given twice in {func} MATCHES (…)", tok.pos)
        ptype = specs[name]
        op = self.peek()
        if self.at("NOT", "IN"):
            if ptype != "string":
                raise self.error(f"{op.text} does not work on the {name} parameter; "
                                 f"use {_param_operators(ptype)}", op.pos)
            negated = self.at("NOT")
            self.advance()
            if negated:
                self.expect("IN", "IN after NOT")
            return Param(name, "NOT IN" if negated else "IN", self.in_list())
        if self.at("BETWEEN"):
            if ptype == "string":
                raise self.error(f"BETWEEN does not work on the {name} parameter; "
                                 f"use {_param_operators(ptype)}", op.pos)
            self.advance()
            low_tok = self.peek()
            low = self.value(ptype, None)
            self.expect("AND", "AND in BETWEEN … AND …")
            high = self.value(ptype, None)
            self.check_bounds(low, high, low_tok)
            return Param(name, "BETWEEN", (low, high))
        if op.kind != "op":
            raise self.expected(f"{_param_operators(ptype)} after {name}", op)
        if ptype == "string" and op.value not in ("=", "!="):
            raise self.error(f"{op.text} does not work on the {name} parameter; "
                             f"use {_param_operators(ptype)}", op.pos)
        self.advance()
        return Param(name, str(op.value), (self.value(ptype, None),))

    def in_list(self) -> tuple[Value, ...]:
        opening = self.peek()
        if opening.kind != "(":
            raise self.expected("( after IN", opening)
        self.advance()
        if self.peek().kind == ")":
            raise self.error("an IN list needs at least one value", self.peek().pos)
        values = [self.value("string", None)]
        while self.peek().kind == ",":
            self.advance()
            values.append(self.value("string", None))
        self.close(opening, ", or ) in the IN list")
        return tuple(values)


def _literal_kind(tok: _Token) -> str | None:
    """number, string, boolean or date for a literal token; None for anything else."""
    if tok.kind in ("number", "string"):
        return tok.kind
    if tok.kind in ("date", "datetime", "offset"):
        return "date"
    if tok.kind == "keyword":
        return {"TRUE": "boolean", "FALSE": "boolean", "TODAY": "date",
                "YESTERDAY": "date"}.get(tok.value)
    return None


def _looks(tokens: list[_Token], kind: str) -> bool:
    """Whether a quoted string's content lexes as exactly one ``kind`` token (for hints)."""
    kinds = {"date": ("date", "datetime", "offset"), "number": ("number",)}[kind]
    return len(tokens) == 2 and tokens[0].kind in kinds
