"""The segment query language's parser: tokens to a typed, checked tree.

A query such as ``amount_spent > 100 AND customer_tags CONTAINS 'vip'`` becomes a
:class:`~segsync.core.segment.tree.Query` checked against the attribute catalog of
:mod:`segsync.core.measure.attributes`, so a marketer learns about a typo or a wrong operator
when the config is checked, not halfway through a run. The language mirrors Shopify's customer
segment query language (reference/segmentation.md §2); :mod:`.compiler` turns the tree into
parameterised SQL. The reading is split in three: :mod:`.lexer` (text to tokens), this module
(grammar), :mod:`.typecheck` (what each type accepts).

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

A datetime is kept only for its date part because features are whole days.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from ..errors import QueryError
from ..measure import BY_NAME, CUSTOM_PREFIX, Attribute, AttrType
from .lexer import Token, lex
from .tree import (
    And,
    Attr,
    Between,
    Compare,
    Contains,
    DateValue,
    Expr,
    IsNull,
    Matches,
    Not,
    Or,
    Param,
    Query,
    Value,
    one_line,
)
from .typecheck import ARTICLE, ORDERED, TypeChecks, operators, param_operators

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
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse(text: str, catalog: Mapping[str, Attribute] = BY_NAME) -> Query:
    """Parse and type-check ``text``; raise :class:`QueryError` pointing at the first problem.

    ``catalog`` defaults to the attribute catalog; tests and future optional features (predicted
    fields) can pass another.
    """
    parser = _Parser(text, catalog)
    expr = parser.query()
    canonical = " ".join(str(t.value) if t.kind == "keyword" else t.text for t in parser.tokens)
    return Query(text, expr, canonical.strip())


class _Parser(TypeChecks):
    def __init__(self, text: str, catalog: Mapping[str, Attribute]):
        self.text = text
        self.catalog = catalog
        self.tokens = lex(text)
        self.i = 0
        self.depth = 0

    # -- token helpers ------------------------------------------------------------------------

    def error(self, message: str, pos: int) -> QueryError:
        return QueryError(message, one_line(self.text), pos)

    def peek(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind == "error":
            raise self.error(tok.value, tok.pos)
        return tok

    def advance(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def at(self, *keywords: str) -> bool:
        tok = self.peek()
        return tok.kind == "keyword" and tok.value in keywords

    def expected(self, what: str, tok: Token) -> QueryError:
        if tok.kind == "end":
            return self.error(f"unexpected end of query: expected {what}", tok.pos)
        return self.error(f"expected {what}, got {tok.text}", tok.pos)

    def expect(self, keyword: str, what: str) -> None:
        if not self.at(keyword):
            raise self.expected(what, self.peek())
        self.advance()

    def close(self, opening: Token, what: str) -> None:
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

    def attribute(self, tok: Token) -> tuple[Attr, Attribute | None]:
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
                             + f"; {attr.name} is {ARTICLE[attr.type]}", tok.pos)
        if self.at("IN"):
            raise self.error("IN works only on the text parameters inside MATCHES (…); "
                             "join clauses with OR instead", tok.pos)
        if tok.kind != "op":
            raise self.expected(f"{operators(attr.type)} after {attr.name}", tok)
        self.advance()
        self.check_operator(attr, tok)
        value_tok = self.peek()
        value = self.value(attr.type, spec)
        if attr.type == "custom" and tok.value not in ("=", "!="):
            self.check_ordered_custom(value, value_tok, tok.value)
        return Compare(attr, tok.value, value)

    def contains(self, attr: Attr, tok: Token, negated: bool) -> Contains:
        if attr.type not in ("list", "custom"):
            lists = ", ".join(a.name for a in self.catalog.values() if a.type == "list")
            raise self.error(f"CONTAINS works on lists; {lists} are lists "
                             f"({attr.name} is {ARTICLE[attr.type]})", tok.pos)
        return Contains(attr, str(self.value("list", None)), negated)

    def between(self, attr: Attr, spec: Attribute | None, tok: Token) -> Between:
        if attr.type not in ORDERED:
            raise self.error(f"BETWEEN does not work on {attr.name}, {ARTICLE[attr.type]}; "
                             f"use {operators(attr.type)}", tok.pos)
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

    # -- functions ----------------------------------------------------------------------------

    def matches(self, func: Token) -> Matches:
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
                                 f"use {param_operators(ptype)}", op.pos)
            negated = self.at("NOT")
            self.advance()
            if negated:
                self.expect("IN", "IN after NOT")
            return Param(name, "NOT IN" if negated else "IN", self.in_list())
        if self.at("BETWEEN"):
            if ptype == "string":
                raise self.error(f"BETWEEN does not work on the {name} parameter; "
                                 f"use {param_operators(ptype)}", op.pos)
            self.advance()
            low_tok = self.peek()
            low = self.value(ptype, None)
            self.expect("AND", "AND in BETWEEN … AND …")
            high = self.value(ptype, None)
            self.check_bounds(low, high, low_tok)
            return Param(name, "BETWEEN", (low, high))
        if op.kind != "op":
            raise self.expected(f"{param_operators(ptype)} after {name}", op)
        if ptype == "string" and op.value not in ("=", "!="):
            raise self.error(f"{op.text} does not work on the {name} parameter; "
                             f"use {param_operators(ptype)}", op.pos)
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
