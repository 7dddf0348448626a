"""A segment in words, and why one person is in it or not (``segsync segments explain / why``).

A marketer reads ``last_order_date < -8m`` as a riddle and ``is_fading_regular = true`` as a
black box: :func:`describe_segment` turns each condition into a sentence with the attribute's
meaning, the ``[scoring]`` thresholds behind a built-in score and relative dates resolved to
the as-of day; :func:`why_member` checks each condition for one person with the same compiled
SQL the segment runs (:func:`.compiler.compile_condition`), next to that person's value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from sqlite_utils import Database

from ..measure import BY_NAME
from ..settings import ScoringSettings, SegmentSettings
from . import tree
from .compiler import compile_condition
from .membership import TemplateRegistry, compile_segment, read_only_connection
from .parser import parse

_UNITS = {"d": "day", "w": "week", "m": "month", "y": "year"}
_OPS = {"=": "is", "!=": "is not", "<": "is less than", "<=": "is at most",
        ">": "is more than", ">=": "is at least"}
_DATE_OPS = {"=": "is on", "!=": "is not on", "<": "is before", "<=": "is on or before",
             ">": "is after", ">=": "is on or after"}


def _scoring_rules(s: ScoringSettings) -> dict[str, Callable[[dt.date], str]]:
    """How each built-in score is decided, with this config's thresholds."""
    return {
        "is_fading_regular": lambda day: (
            f"a fading regular: at least {s.fading_min_orders} orders, the latest "
            f"{s.fading_min_days}+ days ago (on or before "
            f"{day - dt.timedelta(days=s.fading_min_days)}) and more than {s.fading_factor:g} "
            "times their median gap between orders ([scoring] fading_min_orders, "
            "fading_min_days, fading_factor)"),
        "lifecycle_stage": lambda day: (
            f"NEW: one order, under {s.n_new_days} days ago (after "
            f"{day - dt.timedelta(days=s.n_new_days)}); LOST: no order for over "
            f"{s.n_lost_days} days (since {day - dt.timedelta(days=s.n_lost_days)}) or P(alive) "
            f"under {s.lost_p_alive:g}; LAPSED: none for over {s.n_lapsed_days} days (since "
            f"{day - dt.timedelta(days=s.n_lapsed_days)}); AT_RISK: over {s.at_risk_k:g} times "
            "their median gap ([scoring] n_new_days, n_lost_days, n_lapsed_days, at_risk_k)"),
        "is_seasonal_buyer": lambda day: (
            f"ordered in a past {s.seasonal_start} to {s.seasonal_end} window and at least "
            f"{s.seasonal_min_share:.0%} of their orders fall in it ([scoring] seasonal_*)"),
        "bought_this_time_last_year": lambda day: (
            f"an order within {s.last_year_window_days} days either side of "
            f"{day.replace(year=day.year - 1) if not (day.month == 2 and day.day == 29) else day}"
            " ([scoring] last_year_window_days)"),
        "usage_tier": lambda day: (
            f"ranked by {s.usage_basis} over the last 12 months: "
            + (f"HEAVY the top {s.usage_heavy_percent} % of buyers, MEDIUM the next "
               f"{s.usage_medium_percent} %" if s.usage_mode == "share" else
               f"HEAVY from {s.usage_heavy_min:g}, MEDIUM from {s.usage_medium_min:g}")
            + " ([scoring] usage_*)"),
        "churn_risk": lambda day: (
            "1 - P(alive), from the BG/NBD purchase model fitted on the store's history"),
        "p_alive": lambda day: "from the BG/NBD purchase model fitted on the store's history",
        "clv": lambda day: (f"the model's discounted value of the next {s.clv_months} months "
                            "([scoring] clv_months)"),
    }


def _value_text(value: tree.Value) -> str:
    if isinstance(value, tree.DateValue):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _date_words(value: tree.DateValue, as_of: dt.date) -> str:
    day = value.resolve(as_of)
    if value.absolute is not None:
        return day.isoformat()
    if value.amount == 0:
        return f"{day} (today)"
    n = abs(value.amount)
    unit = _UNITS[value.unit] + ("s" if n != 1 else "")
    side = "before" if value.amount < 0 else "after"
    return f"{day} ({n} {unit} {side} {as_of})"


def _value_words(value: tree.Value, as_of: dt.date) -> str:
    if isinstance(value, tree.DateValue):
        return _date_words(value, as_of)
    return _value_text(value)


def condition_text(node: tree.Expr) -> str:
    """One condition written back in the query language."""
    match node:
        case tree.Compare(attr, op, value):
            return f"{attr.name} {op} {_value_text(value)}"
        case tree.Between(attr, low, high):
            return f"{attr.name} BETWEEN {_value_text(low)} AND {_value_text(high)}"
        case tree.Contains(attr, value, negated):
            return f"{attr.name} {'NOT ' if negated else ''}CONTAINS {_value_text(value)}"
        case tree.IsNull(attr, negated):
            return f"{attr.name} IS {'NOT ' if negated else ''}NULL"
        case tree.Matches(function, params, negated):
            inner = ", ".join(_param_text(p) for p in params)
            return f"{function} {'NOT ' if negated else ''}MATCHES ({inner})"
        case tree.Not(operand):
            return f"NOT ({condition_text(operand)})"
        case tree.And(operands) | tree.Or(operands):
            joiner = " AND " if isinstance(node, tree.And) else " OR "
            return "(" + joiner.join(condition_text(o) for o in operands) + ")"
    raise AssertionError(f"unknown node {node!r}")


def _param_text(p: tree.Param) -> str:
    if p.op == "BETWEEN":
        return f"{p.name} BETWEEN {_value_text(p.values[0])} AND {_value_text(p.values[1])}"
    if p.op in ("IN", "NOT IN"):
        return f"{p.name} {p.op} ({', '.join(_value_text(v) for v in p.values)})"
    return f"{p.name} {p.op} {_value_text(p.values[0])}"


def _subject(attr: tree.Attr) -> str:
    if attr.key:
        return f"custom attribute {attr.key!r}"
    known = BY_NAME.get(attr.name)
    return f"{attr.name} ({known.description})" if known else attr.name


def condition_words(node: tree.Expr, as_of: dt.date, scoring: ScoringSettings) -> str:
    """One condition as a sentence: what the attribute is, the comparison, resolved dates, and
    the ``[scoring]`` rule behind a built-in score."""
    rules = _scoring_rules(scoring)
    match node:
        case tree.Compare(attr, op, value):
            if isinstance(value, bool) and attr.type == "boolean" and not attr.key:
                held = (op == "=") == value
                rule = rules.get(attr.name, lambda _day: BY_NAME[attr.name].description)
                return f"{'is' if held else 'is not'} {rule(as_of)}"
            else:
                ops = _DATE_OPS if isinstance(value, tree.DateValue) else _OPS
                words = f"{_subject(attr)} {ops[op]} {_value_words(value, as_of)}"
        case tree.Between(attr, low, high):
            words = (f"{_subject(attr)} is between {_value_words(low, as_of)} and "
                     f"{_value_words(high, as_of)}, both included")
        case tree.Contains(attr, value, negated):
            words = f"{_subject(attr)} {'does not include' if negated else 'includes'} {value!r}"
        case tree.IsNull(attr, negated):
            words = f"{_subject(attr)} {'is known' if negated else 'is missing'}"
        case tree.Matches(function, params, negated):
            what = "order" if function == "orders_placed" else "order line"
            chosen = "; ".join(_param_words(p, as_of) for p in params) or "any"
            words = (f"{'has no' if negated else 'has at least one'} {what} (not cancelled "
                     f"or test) matching: {chosen}")
            if any(p.name in ("count", "sum_amount", "sum_quantity") for p in params):
                words = (f"{'does not match' if negated else 'matches'} over their "
                         f"{what}s: {chosen}")
            return words
        case _:
            return condition_text(node)
    attr = node.attr
    if attr.name in rules and not attr.key:
        words += f" — {rules[attr.name](as_of)}"
    return words


def _param_words(p: tree.Param, as_of: dt.date) -> str:
    if p.op == "BETWEEN":
        return (f"{p.name} between {_value_words(p.values[0], as_of)} and "
                f"{_value_words(p.values[1], as_of)}")
    if p.op in ("IN", "NOT IN"):
        values = ", ".join(_value_words(v, as_of) for v in p.values)
        return f"{p.name} {'not ' if p.op == 'NOT IN' else ''}one of {values}"
    ops = _DATE_OPS if isinstance(p.values[0], tree.DateValue) else _OPS
    return f"{p.name} {ops[p.op]} {_value_words(p.values[0], as_of)}"


def _leaves(node: tree.Expr, depth: int = 0) -> Iterator[tuple[int, str | None, tree.Expr]]:
    """``(depth, group, node)``: a group header ("all of", "any of", "none of") then its items."""
    match node:
        case tree.And(operands) | tree.Or(operands):
            yield depth, "all of" if isinstance(node, tree.And) else "any of", node
            for o in operands:
                yield from _leaves(o, depth + 1)
        case tree.Not(operand):
            yield depth, "none of", node
            yield from _leaves(operand, depth + 1)
        case _:
            yield depth, None, node


def describe_segment(name: str, seg: SegmentSettings, as_of: dt.date,
                     scoring: ScoringSettings,
                     templates: TemplateRegistry | None = None) -> dict[str, Any]:
    """The segment in words: one entry per condition (``depth``, ``group`` header or
    ``condition`` with its ``meaning``), plus the SQL and parameters it compiles to."""
    compiled = compile_segment(name, seg, as_of, templates)
    text = compiled.text
    conditions = []
    if text is not None:
        for depth, group, node in _leaves(parse(text).expr):
            if group:
                conditions.append({"depth": depth, "group": group})
            else:
                conditions.append({"depth": depth, "condition": condition_text(node),
                                   "meaning": condition_words(node, as_of, scoring)})
    return {"name": name, "description": seg.description, "as_of": as_of.isoformat(),
            "kind": compiled.kind, "query": text, "conditions": conditions,
            "sql": compiled.sql, "params": compiled.params}


def _value_of(db: Database, node: tree.Expr, person_id: int) -> Any:
    attr = getattr(node, "attr", None)
    if attr is None:
        return None
    sql = (f"json_extract(pf.attributes, '$.\"{attr.key}\"')" if attr.key
           else f"pf.{attr.column}")
    row = db.execute(f"SELECT {sql} FROM person_features pf WHERE pf.person_id = ?",
                     [person_id]).fetchone()
    value = row[0] if row else None
    if attr.type == "boolean" and value is not None:
        return bool(value)
    return round(value, 2) if isinstance(value, float) else value


def why_member(db: Database, name: str, seg: SegmentSettings, as_of: dt.date, person_id: int,
               scoring: ScoringSettings,
               templates: TemplateRegistry | None = None) -> dict[str, Any]:
    """For one person: each condition with their value and whether it held, and whether they
    are in the segment, from ``person_features`` as they stand for ``as_of``."""
    described = describe_segment(name, seg, as_of, scoring, templates)
    compiled = compile_segment(name, seg, as_of, templates)
    if compiled.where is None:
        with read_only_connection(db) as conn:
            member = conn.execute(f"SELECT 1 FROM ({compiled.sql}) WHERE person_id = ?",
                                  [person_id]).fetchone() is not None
        return {**described, "person_id": person_id, "member": member}
    member = db.execute(
        f"SELECT 1 FROM person_features pf WHERE pf.person_id = :person_id AND "
        f"{compiled.where}", {**compiled.params, "person_id": person_id}).fetchone() is not None
    query = parse(described["query"])
    checked = []
    for entry, (_depth, _group, node) in zip(described["conditions"], _leaves(query.expr),
                                             strict=True):
        where, params = compile_condition(query, node, as_of)
        held = db.execute(
            f"SELECT coalesce(({where}), 0) FROM person_features pf "
            "WHERE pf.person_id = :person_id", {**params, "person_id": person_id}).fetchone()
        checked.append({**entry, "held": bool(held and held[0]),
                        **({} if "group" in entry else {"value": _value_of(db, node, person_id)})})
    return {**described, "conditions": checked, "person_id": person_id, "member": member}


def people_with_key(db: Database, key: str) -> list[int]:
    """The people whose normalised email or phone is ``key`` (several when a key is shared)."""
    return [r[0] for r in db.execute(
        "SELECT person_id FROM person_features WHERE email = ? OR phone = ? ORDER BY person_id",
        [key, key])]
