"""The segment query language's type rules: which operators and literals each type takes.

Typing, as Shopify: enums and strings take ``=`` / ``!=`` (case-sensitive, enums only from their
permitted set); integers, floats and dates take every comparison and ``BETWEEN`` (inclusive);
lists take ``CONTAINS`` / ``NOT CONTAINS``; every attribute takes ``IS [NOT] NULL``. An integer
literal is promoted where a float is expected. Custom attributes (``attributes.NAME``) have no
declared type, so the literal decides how they compare (text, number, date or boolean).

The checks run while the parser reads, so each error points at the token that breaks a rule;
:class:`TypeChecks` is the parser's half that knows types, the parser the half that knows
grammar.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import QueryError
from ..measure import Attribute
from .lexer import Token, lex, lexes_as, literal_kind
from .tree import Attr, DateValue, Value

EXPECTED = {
    "integer": "a whole number such as 3",
    "float": "a number such as 100 or 19.99",
    "date": "a date such as 2024-01-31, -30d or today",
    "string": "a quoted string such as 'vip'",
    "list": "a quoted string such as 'vip'",
    "boolean": "true or false",
    "custom": "a number, a quoted string, a date or true/false",
}
ARTICLE = {"integer": "an integer", "float": "a float", "date": "a date", "string": "a string",
           "enum": "an enum", "list": "a list", "boolean": "a boolean",
           "custom": "a custom attribute"}
ORDERED = frozenset({"integer", "float", "date", "custom"})


def operators(attr_type: str) -> str:
    """The operators an attribute type takes, as shown in error messages."""
    if attr_type == "list":
        return "CONTAINS, NOT CONTAINS or IS [NOT] NULL"
    if attr_type == "custom":
        return "=, !=, <, <=, >, >=, BETWEEN, [NOT] CONTAINS or IS [NOT] NULL"
    if attr_type in ORDERED:
        return "=, !=, <, <=, >, >=, BETWEEN or IS [NOT] NULL"
    return "=, != or IS [NOT] NULL"


def param_operators(param_type: str) -> str:
    return "=, !=, IN or NOT IN" if param_type == "string" else "=, !=, <, <=, >, >= or BETWEEN"


class TypeChecks:
    """Literal reading and type checks, mixed into the parser (which provides the token
    cursor: ``peek``, ``advance`` and ``error``)."""

    peek: Callable[[], Token]
    advance: Callable[[], Token]
    error: Callable[[str, int], QueryError]

    def check_operator(self, attr: Attr, op: Token) -> None:
        if attr.type == "list" or (op.value not in ("=", "!=") and attr.type not in ORDERED):
            raise self.error(f"{op.text} does not work on {attr.name}, {ARTICLE[attr.type]}; "
                             f"use {operators(attr.type)}", op.pos)

    def check_ordered_custom(self, value: Value, tok: Token, op: str) -> None:
        """Custom attributes have no declared type: refuse an ordering the literal can't have."""
        if isinstance(value, bool):
            raise self.error(f"true/false compares only with = and !=, not {op}", tok.pos)
        if isinstance(value, str):
            raise self.error(f"text compares only with = and !=, not {op}; "
                             "use a number or a date to compare order", tok.pos)

    def check_bounds(self, low: Value, high: Value, tok: Token) -> None:
        """Refuse bounds that are known, before any as-of date, to select nothing."""
        if isinstance(low, DateValue) and isinstance(high, DateValue):
            reversed_ = bool(low.absolute and high.absolute and low.absolute > high.absolute)
        else:
            reversed_ = (isinstance(low, int | float) and isinstance(high, int | float)
                         and low > high)
        if reversed_:
            raise self.error("BETWEEN takes the lower bound first; these bounds match nothing",
                             tok.pos)

    def value(self, expected: str, spec: Attribute | None) -> Value:
        """Read one literal of the ``expected`` type (an attribute type, or ``custom``)."""
        tok = self.peek()
        value = self.convert(tok, expected, spec)
        self.advance()
        return value

    def convert(self, tok: Token, expected: str, spec: Attribute | None) -> Value:
        kind = literal_kind(tok)
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

    def mismatch(self, tok: Token, expected: str) -> str:
        if tok.kind == "string" and expected == "date" and lexes_as(lex(tok.value), "date"):
            return f"dates are written without quotes: {tok.value}"
        if tok.kind == "string" and expected in ("integer", "float") and lexes_as(
                lex(tok.value), "number"):
            return f"numbers are written without quotes: {tok.value}"
        if tok.kind == "end":
            return f"unexpected end of query: expected {EXPECTED[expected]}"
        if tok.kind == "keyword" and tok.value == "NULL":
            return "use IS NULL or IS NOT NULL to test for a missing value"
        return f"expected {EXPECTED[expected]}, got {tok.text}"

    def enum_value(self, tok: Token, spec: Attribute) -> str:
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

    def date_value(self, tok: Token) -> DateValue:
        if tok.kind in ("date", "datetime"):
            return DateValue(tok.text, tok.pos, absolute=tok.value)
        if tok.kind == "offset":
            amount, unit = tok.value
            return DateValue(tok.text, tok.pos, amount=amount, unit=unit)
        return DateValue(tok.text, tok.pos, amount=0 if tok.value == "TODAY" else -1)
