"""Compile a parsed segment query to a parameterised SQL condition over ``person_features pf``.

Every literal of the query travels as a named parameter (``:p1``, ``:p2`` …); the SQL text holds
only column names taken from the attribute catalog, JSON paths passed as parameters, and fixed
SQL of this module. A query can therefore never inject SQL, and the SQL text of a query does not
depend on the as-of date (dates are parameters too).

Semantics, decided here and relied on by the tests:

* **Two-valued logic.** A condition on a missing (NULL) value is false, and ``NOT x`` is exactly
  the people ``x`` does not match, missing values included: ``city != 'Paris'`` and
  ``NOT city = 'Paris'`` both match people with no city, and ``NOT CONTAINS`` matches people with
  no list. SQL's three-valued NULL would make ``NOT`` silently drop them.
* **Lists.** JSON arrays; ``CONTAINS`` compares elements case-insensitively (SQLite ``lower()``,
  which folds ASCII letters only); ``IS NULL`` is true for NULL and for an empty array.
* **Dates.** Whole local days compared as ``YYYY-MM-DD`` text: ``= 2020-05-30`` is that day,
  ``> -30d`` is after the day 30 days before as-of, ``BETWEEN`` includes both ends. A datetime
  literal counts as its date because features hold no time of day.
* **Custom attributes** (``attributes.NAME``) are read with ``json_extract(pf.attributes,
  '$."NAME"')`` and compared the way the literal is written: text with a quoted string; numbers
  with a number (JSON numbers, or text that looks like a number, such as ``"150"`` from a CSV);
  dates with a date (text starting ``YYYY-MM-DD``); ``true`` / ``false`` with JSON booleans, 1/0,
  or the text true/false. ``CONTAINS`` looks inside a JSON array (a scalar counts as a one-item
  list); ``IS NULL`` is true when the key is missing, null or an empty array.

Functions read the store's ``orders o`` (and ``order_lines l``), restricted to valid orders
(not cancelled, not test). Orders with a negative total are refund rows: they never count as an
order or a purchase, but their (negative) amount counts toward ``sum_amount``. A function
compiles to one of two forms with the same members and the same parameters:

* **per person** (the default): a correlated subquery restricted to the person
  (``o.person_id = pf.person_id``), an index probe into their orders each time it is evaluated.
  It is the form for evaluating a few people (the incremental segment update, ``segments why``),
  and the SQL a segment's definition hash is taken from.
* **set-wise** (``setwise=True``), for evaluating everyone: a function without aggregates becomes
  ``pf.person_id IN (SELECT o.person_id FROM … WHERE …)``, one uncorrelated subquery that SQLite
  runs once, in one pass over the orders, into a set that each person is looked up in. Per person
  over a million people, the correlated form costs a million probes (most of a full evaluation's
  time); set-wise over a few people it would scan every order for them. With ``count`` the
  subquery groups by person (``HAVING`` the counts), and people with no selected order, whose
  count is 0, are members exactly when the condition holds at 0. ``sum_amount`` and
  ``sum_quantity`` keep the per-person form in both: a float sum depends on the order its rows
  are added in, which differs between the forms, so a sum at a boundary could differ.

``orders_placed MATCHES (…)``
    ``date``, ``amount`` (``o.total - o.refunded``), ``location`` and ``channel`` select orders;
    ``count`` compares the number of selected orders (refund rows excluded) and ``sum_amount``
    the sum of their amounts (refund rows included, so it is net of returns). Without ``count``
    or ``sum_amount`` it means "placed at least one selected order". ``location`` and ``channel``
    match case-sensitively.
``products_purchased MATCHES (…)``
    ``tag`` (a product tag of the line), ``category``, ``vendor``, ``sku`` (case-insensitive),
    ``title`` (case-sensitive) and ``date`` select order lines of purchase orders; ``count``
    compares the number of distinct orders holding a selected line and ``sum_quantity`` the
    total quantity of selected lines (returns are not subtracted). Without them it means
    "bought at least one selected line".

Aggregates are computed even when nothing matches, so ``count = 0`` or ``count < 2`` include
people with no selected orders. ``MATCHES ()`` means any valid order or line; ``NOT MATCHES`` is
the complement. ``!=`` and ``NOT IN`` on a parameter select lines/orders whose value differs or
is missing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from . import tree
from .parser import parse

_PERSON = "o.person_id = pf.person_id"
_VALID_ORDER = "o.cancelled_at IS NULL AND o.test = 0"
_PURCHASE = "o.total >= 0"
_ORDER_AMOUNT = "(o.total - o.refunded)"
_LINES_OF_ORDER = "ON l.source = o.source AND l.order_key = o.key"
_ORDER_LINES = f"orders o JOIN order_lines l {_LINES_OF_ORDER}"
# Set-wise, the plan is pinned to one sequential pass. NOT INDEXED scans the outer table in
# storage order: through orders_person (to group by person without sorting) SQLite would fetch
# every order's row at random, 2-3x slower at 5M orders. CROSS JOIN puts outer what narrows the
# pass: a date filter selects orders before any of their lines is read (through the lines'
# primary key); filters on lines alone are cheapest tested in one scan of the lines, looking up
# only the matching lines' orders. At 1M people / 5M orders / 12M lines, CPU: category with
# date > -30d 0.9 s orders first against 1.4 s lines first; category alone 1.4 s lines first
# against 4.7 s orders first.
_ALL_ORDERS = "orders o NOT INDEXED"
_ALL_ORDERS_THEN_LINES = f"{_ALL_ORDERS} CROSS JOIN order_lines l {_LINES_OF_ORDER}"
_ALL_LINES_THEN_ORDERS = f"order_lines l NOT INDEXED CROSS JOIN orders o {_LINES_OF_ORDER}"

#: Text parameters: the SQL they read and whether they match case-insensitively.
_TEXT_PARAMS = {
    "products_purchased": {"category": ("l.category", True), "vendor": ("l.vendor", True),
                           "sku": ("l.sku", True), "title": ("l.title", False)},
    "orders_placed": {"location": ("o.location", False), "channel": ("o.channel", False)},
}
#: Parameters that filter on a number or a date of the order.
_ORDER_PARAMS = {"date": "o.order_date", "amount": _ORDER_AMOUNT}
#: Aggregate parameters and the aggregate they compare.
_AGGREGATES = {
    "products_purchased": {"count": "count(DISTINCT o.rowid)",
                           "sum_quantity": "coalesce(sum(l.quantity), 0)"},
    "orders_placed": {"count": f"count(CASE WHEN {_PURCHASE} THEN 1 END)",
                      "sum_amount": f"coalesce(sum({_ORDER_AMOUNT}), 0)"},
}

#: Aggregates kept per person in the set-wise form (see :meth:`_Compiler.matches`).
_SUMS = frozenset({"sum_quantity", "sum_amount"})

# Text that looks like a number ("150", "-3.5", "1e3"): CSV sources store numbers as text.
_NUMERIC_TEXT = "trim({v}) GLOB '*[0-9]*' AND trim({v}) NOT GLOB '*[^0-9.eE+-]*'"
_ISO_DATE_TEXT = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"


def compile_query(query: tree.Query | str, as_of: dt.date, *,
                  setwise: bool = False) -> tuple[str, dict[str, Any]]:
    """Compile ``query`` to ``(where_sql, params)``: a condition over ``person_features pf``.

    ``params`` maps the named parameters of ``where_sql`` to their values; relative dates
    are resolved against ``as_of``. A string is parsed first (against the default catalog).
    ``setwise`` compiles functions for evaluating everyone at once (see the module docstring);
    the parameters are the same either way, bound in the same order under the same names.
    """
    if isinstance(query, str):
        query = parse(query)
    compiler = _Compiler(query, as_of, setwise)
    return compiler.expr(query.expr), compiler.params


#: Where a relative date is compared: with an expression over ``pf``, or with ``o.order_date``
#: inside a function's subquery over the person's orders.
Scope = Literal["pf", "orders"]


def moving_dates(query: tree.Query | str, as_of: dt.date) -> dict[str, tuple[Scope, str]]:
    """The parameters of :func:`compile_query`'s SQL that move with the as-of date (relative
    dates), each with where its value is compared and the SQL of what it is compared with.

    Every comparison of a value with a date (``<``, ``<=``, ``=``, ``!=``, ``>=``, ``>``, an end
    of ``BETWEEN``) changes outcome between two bounds only for values lying between them, so
    when the as-of moves, a person's membership can change only through a compared value
    between the old and the new date: the segment stage re-evaluates those people alone.
    """
    if isinstance(query, str):
        query = parse(query)
    compiler = _Compiler(query, as_of)
    compiler.expr(query.expr)
    return compiler.moving


def compile_condition(query: tree.Query, node: tree.Expr,
                      as_of: dt.date) -> tuple[str, dict[str, Any]]:
    """Compile one node of ``query`` on its own, so each condition can be checked for a person
    (``segsync segments why``) with exactly the SQL the whole segment uses."""
    compiler = _Compiler(query, as_of)
    return compiler.expr(node), compiler.params


def _not(condition: str) -> str:
    # coalesce keeps NOT two-valued: a NULL (unknown) condition counts as false, so NOT is true.
    return f"NOT coalesce({condition}, 0)"


class _Compiler:
    def __init__(self, query: tree.Query, as_of: dt.date, setwise: bool = False):
        self.query = query
        self.as_of = as_of
        self.setwise = setwise
        self.params: dict[str, Any] = {}
        self.moving: dict[str, tuple[Scope, str]] = {}

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params) + 1}"
        self.params[name] = value
        return f":{name}"

    def literal(self, value: tree.Value, against: tuple[Scope, str]) -> str:
        """Bind ``value``; a relative date is recorded in :attr:`moving` with ``against``,
        the scope and SQL of what it is compared with."""
        if isinstance(value, tree.DateValue):
            try:
                day = value.resolve(self.as_of)
            except (ValueError, OverflowError):
                raise self.query.error(f"date {value.text} is out of range", value.pos) from None
            name = self.bind(day.isoformat())
            if value.absolute is None:
                self.moving[name[1:]] = against
            return name
        return self.bind(value)

    # -- boolean structure --------------------------------------------------------------------

    def expr(self, node: tree.Expr) -> str:
        match node:
            case tree.Or(operands):
                return "(" + " OR ".join(self.expr(o) for o in operands) + ")"
            case tree.And(operands):
                return "(" + " AND ".join(self.expr(o) for o in operands) + ")"
            case tree.Not(operand):
                return _not(self.expr(operand))
            case tree.Compare(attr, op, value):
                return self.compare(attr, op, value)
            case tree.Between(attr, low, high):
                column = self.column(attr, low)
                against = ("pf", column)
                return (f"{column} BETWEEN {self.literal(low, against)} "
                        f"AND {self.literal(high, against)}")
            case tree.Contains(attr, value, negated):
                source = (f"json_each(pf.attributes, {self.path(attr)})" if attr.key
                          else f"json_each(pf.{attr.column})")
                found = (f"EXISTS (SELECT 1 FROM {source} AS j "
                         f"WHERE lower(j.value) = lower({self.bind(value)}))")
                return f"NOT {found}" if negated else found
            case tree.IsNull(attr, negated):
                return self.is_null(attr, negated)
            case tree.Matches():
                return self.matches(node)
        raise AssertionError(f"unknown node {node!r}")  # the parser builds no other node

    # -- attributes ---------------------------------------------------------------------------

    def path(self, attr: tree.Attr) -> str:
        # The name was checked to be an identifier, and is quoted in the path all the same.
        return self.bind(f'$."{attr.key}"')

    def column(self, attr: tree.Attr, value: tree.Value) -> str:
        """The SQL reading ``attr``; for a custom attribute, shaped by the literal's kind."""
        if not attr.key:
            return f"pf.{attr.column}"
        raw = f"json_extract(pf.attributes, {self.path(attr)})"
        if isinstance(value, bool):
            return f"lower(CAST({raw} AS TEXT))"
        if isinstance(value, str):
            return f"CAST({raw} AS TEXT)"
        if isinstance(value, tree.DateValue):
            text = f"CAST({raw} AS TEXT)"
            return f"(CASE WHEN {text} GLOB '{_ISO_DATE_TEXT}' THEN substr({text}, 1, 10) END)"
        return (f"(CASE WHEN typeof({raw}) IN ('integer', 'real') THEN {raw} "
                f"WHEN {_NUMERIC_TEXT.format(v=raw)} THEN CAST(trim({raw}) AS REAL) END)")

    def compare(self, attr: tree.Attr, op: str, value: tree.Value) -> str:
        column = self.column(attr, value)
        if attr.key and isinstance(value, bool):
            # JSON true extracts as 1; CSV sources give "true" / "TRUE".
            spellings = ("true", "1") if value else ("false", "0")
            found = f"{column} IN ({self.bind(spellings[0])}, {self.bind(spellings[1])})"
            return found if op == "=" else _not(found)
        if op == "!=":
            # IS NOT is true for NULL: "not equal" includes people with no value.
            return f"{column} IS NOT {self.literal(value, ('pf', column))}"
        return f"{column} {op} {self.literal(value, ('pf', column))}"

    def is_null(self, attr: tree.Attr, negated: bool) -> str:
        if attr.key:
            # json_extract renders an empty array as '[]' and a missing key or JSON null as NULL.
            empty = f"coalesce(json_extract(pf.attributes, {self.path(attr)}), '[]') = '[]'"
            return f"NOT ({empty})" if negated else empty
        if attr.type == "list":
            return f"coalesce(json_array_length(pf.{attr.column}), 0) {'>' if negated else '='} 0"
        return f"pf.{attr.column} IS {'NOT ' if negated else ''}NULL"

    # -- functions ----------------------------------------------------------------------------

    def matches(self, node: tree.Matches) -> str:
        filters: list[str] = []
        aggregates: list[str] = []
        # Each aggregate's comparison for someone with no selected row (the aggregate is 0).
        at_zero: list[str] = []
        for param in node.params:
            if param.name in _AGGREGATES[node.function]:
                sql = _AGGREGATES[node.function][param.name]
                comparison = self.comparison(param, ("orders", sql))
                aggregates.append(sql + comparison)
                at_zero.append("0" + comparison)
            elif param.name in _ORDER_PARAMS:
                filters.append(self.param(_ORDER_PARAMS[param.name], param))
            elif param.name == "tag":
                filters.append(self.tag(param))
            else:
                filters.append(self.text_param(*_TEXT_PARAMS[node.function][param.name], param))
        products = node.function == "products_purchased"
        # Refund rows stay in an orders_placed aggregate for sum_amount (count skips them itself).
        base = [_VALID_ORDER] + ([] if aggregates and not products else [_PURCHASE])
        # A sum is a float added up in the order the rows are read, which differs between the
        # forms: at a boundary the last bit could differ, so sums stay per person. Counts are
        # exact whatever the order.
        if self.setwise and all(param.name not in _SUMS for param in node.params):
            found = self.matches_all(node, " AND ".join(["o.person_id IS NOT NULL", *base,
                                                         *filters]),
                                     bool(filters), aggregates, at_zero)
            return f"NOT {found}" if node.negated else found
        source = _ORDER_LINES if products else "orders o"
        where = " AND ".join([_PERSON, *base, *filters])
        if aggregates:
            # An aggregate without GROUP BY yields one row even when nothing matches, so
            # "count = 0" holds for people without matching orders.
            found = f"(SELECT {' AND '.join(aggregates)} FROM {source} WHERE {where})"
        else:
            found = f"EXISTS (SELECT 1 FROM {source} WHERE {where})"
        return f"NOT {found}" if node.negated else found

    def matches_all(self, node: tree.Matches, where: str, filtered: bool, aggregates: list[str],
                    at_zero: list[str]) -> str:
        """The set-wise form of ``node`` (without its negation): one uncorrelated subquery.

        ``o.person_id IS NOT NULL`` keeps NULL out of every set, and ``pf.person_id`` (the rowid)
        is never NULL, so IN and NOT IN are two-valued and NOT MATCHES is the exact complement
        (one NULL in a set would make NOT IN unknown, so false, for everyone outside it).
        """
        source = _ALL_ORDERS
        if node.function == "products_purchased":
            dated = any(param.name == "date" for param in node.params)
            source = _ALL_ORDERS_THEN_LINES if dated or not filtered else _ALL_LINES_THEN_ORDERS
        selected = f"SELECT o.person_id FROM {source} WHERE {where}"
        if not aggregates:
            return f"pf.person_id IN ({selected})"
        # The people with a selected row, grouped, have the counts the per-person form computes;
        # everyone else has count 0. So when the conditions hold at 0 the members are everyone
        # but those whose counts fail them, and otherwise those whose counts meet them.
        having = " AND ".join(aggregates)
        grouped = f"{selected} GROUP BY o.person_id HAVING"
        return (f"(CASE WHEN {' AND '.join(at_zero)} "
                f"THEN pf.person_id NOT IN ({grouped} NOT ({having})) "
                f"ELSE pf.person_id IN ({grouped} {having}) END)")

    def param(self, sql: str, param: tree.Param) -> str:
        return sql + self.comparison(param, ("orders", sql))

    def comparison(self, param: tree.Param, against: tuple[Scope, str]) -> str:
        """The operator and bound values of ``param`` (what follows the SQL it compares)."""
        if param.op == "BETWEEN":
            low, high = param.values
            return f" BETWEEN {self.literal(low, against)} AND {self.literal(high, against)}"
        return f" {param.op} {self.literal(param.values[0], against)}"

    def text_param(self, sql: str, fold_case: bool, param: tree.Param) -> str:
        values = [self.bind(v) for v in param.values]
        if fold_case:
            sql, values = f"lower({sql})", [f"lower({v})" for v in values]
        found = f"{sql} IN ({', '.join(values)})" if len(values) > 1 else f"{sql} = {values[0]}"
        return _not(found) if param.op in ("!=", "NOT IN") else found

    def tag(self, param: tree.Param) -> str:
        values = ", ".join(f"lower({self.bind(v)})" for v in param.values)
        found = (f"EXISTS (SELECT 1 FROM json_each(l.product_tags) AS t "
                 f"WHERE lower(t.value) IN ({values}))")
        return f"NOT {found}" if param.op in ("!=", "NOT IN") else found
