"""The two forms of a function: per person and set-wise select the same people, and each is run
where it is meant to be (set-wise over everyone, per person over a few).

The property test draws small stores meant to catch every way the forms could differ: people
with and without orders, orders of nobody in ``person_features`` and of nobody at all (NULL
``person_id``), cancelled, test and refund orders, NULL text values and empty or odd tag lists,
and values that differ only in case.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_utils import Database
from test_segments import create_person_features

from segsync.core.segment.compiler import compile_query
from segsync.core.segment.membership import compile_segment, materialise
from segsync.core.settings import SegmentSettings
from segsync.core.store import open_store

AS_OF = dt.date(2024, 3, 31)
PEOPLE = [1, 2, 3, 4, 5]  # 5 never has an order
DATES = ["2023-03-31", "2024-01-15", "2024-03-01", "2024-03-30", "2024-03-31"]

_lines = st.lists(st.fixed_dictionaries({
    "title": st.sampled_from([None, "Mug", "mug", "Gone Girl"]),
    "sku": st.sampled_from([None, "BK-1", "bk-1", "MG-1"]),
    "vendor": st.sampled_from([None, "Penguin", "PENGUIN", ""]),
    "category": st.sampled_from([None, "Mystery", "mystery", "Home"]),
    "product_tags": st.sampled_from(["[]", '["Thriller"]', '["thriller", "Maps"]', "[null]"]),
    "quantity": st.sampled_from([1.0, 3.0, -1.0]),
}), max_size=3)
_orders = st.lists(st.fixed_dictionaries({
    # Few owners, so that people often have several orders; 9 is nobody in person_features.
    "person_id": st.sampled_from([None, 1, 1, 2, 3, 9]),
    "order_date": st.sampled_from(DATES),
    "total": st.sampled_from([-30.0, 0.0, 25.0, 120.0]),
    "refunded": st.sampled_from([0.0, 10.0]),
    "cancelled_at": st.sampled_from([None, None, "2024-03-02"]),
    "test": st.sampled_from([0, 0, 0, 1]),
    "location": st.sampled_from([None, "NYC", "nyc"]),
    "channel": st.sampled_from([None, "web", "pos"]),
    "lines": _lines,
}), min_size=2, max_size=12)
_people = st.fixed_dictionaries({pid: st.tuples(st.sampled_from([None, 10.0, 200.0]),
                                                st.sampled_from([None, "Boston", "Paris"]))
                                 for pid in PEOPLE})

#: Literals for each parameter, quoted as the language writes them.
_TEXT = {"tag": ["'thriller'", "'MAPS'", "'none'"], "category": ["'mystery'", "'Home'"],
         "vendor": ["'penguin'", "''"], "sku": ["'bk-1'", "'MG-1'"],
         "title": ["'Mug'", "'mug'", "'Gone Girl'"], "location": ["'NYC'", "'nyc'"],
         "channel": ["'web'", "'pos'"]}
_NUMBERS = {"amount": ["0", "15", "25.5", "110"], "count": ["0", "1", "2"],
            "sum_quantity": ["0", "2", "3.5"], "sum_amount": ["0", "20", "100"]}
_FILTERS = {
    "products_purchased": ["tag", "category", "vendor", "sku", "title", "date"],
    "orders_placed": ["amount", "date", "location", "channel"],
}
_AGGREGATES = {"products_purchased": ["count", "sum_quantity"],
               "orders_placed": ["count", "sum_amount"]}
_DATE_LITERALS = ["2024-03-01", "-30d", "-1y", "today", "-1d"]
_ORDERING = ["<", "<=", "=", "!=", ">=", ">"]


@st.composite
def _param(draw: st.DrawFn, name: str) -> str:
    if name in _TEXT:
        op = draw(st.sampled_from(["=", "!=", "IN", "NOT IN"]))
        if op in ("=", "!="):
            return f"{name} {op} {draw(st.sampled_from(_TEXT[name]))}"
        values = draw(st.lists(st.sampled_from(_TEXT[name]), min_size=1, max_size=2))
        return f"{name} {op} ({', '.join(values)})"
    if name == "date":
        if draw(st.booleans()):
            low, high = sorted(draw(st.lists(st.sampled_from(DATES), min_size=2, max_size=2)))
            return f"date BETWEEN {low} AND {high}"
        return f"date {draw(st.sampled_from(_ORDERING))} {draw(st.sampled_from(_DATE_LITERALS))}"
    return f"{name} {draw(st.sampled_from(_ORDERING))} {draw(st.sampled_from(_NUMBERS[name]))}"


@st.composite
def _matches(draw: st.DrawFn) -> str:
    function = draw(st.sampled_from(sorted(_FILTERS)))
    names = draw(st.lists(st.sampled_from(_FILTERS[function]), unique=True, max_size=2))
    # Half have aggregates: a count alone (set-wise too), or with a sum (per person).
    names += draw(st.sampled_from([[], [], ["count"], [_AGGREGATES[function][1]],
                                   _AGGREGATES[function]]))
    params = ", ".join(draw(_param(name)) for name in names)
    negated = "NOT " if draw(st.booleans()) else ""
    return f"{function} {negated}MATCHES ({params})"


_plain = st.sampled_from(["amount_spent > 50", "city = 'Boston'", "city != 'Boston'",
                          "amount_spent IS NULL"])
_queries = st.recursive(
    st.one_of(_matches(), _matches(), _matches(), _plain),
    lambda children: st.one_of(
        children.map(lambda c: f"NOT ({c})"),
        st.tuples(st.sampled_from([" AND ", " OR "]), st.lists(children, min_size=2,
                                                                max_size=3))
        .map(lambda t: t[0].join(f"({c})" for c in t[1])),
    ),
    max_leaves=5,
)


@pytest.fixture(scope="module")
def store() -> Database:
    db = open_store(":memory:")
    create_person_features(db, [])
    return db


def _fill(db: Database, people: dict[int, tuple[Any, Any]], orders: list[dict[str, Any]]) -> None:
    for table in ("person_features", "orders", "order_lines"):
        db.execute(f"DELETE FROM {table}")
    db["person_features"].insert_all(
        [{"person_id": pid, "amount_spent": spent, "city": city}
         for pid, (spent, city) in people.items()])
    for n, order in enumerate(orders):
        key = f"o{n}"
        db["orders"].insert({
            "source": "shop", "key": key, "customer_key": f"c{order['person_id']}",
            "ordered_at": f"{order['order_date']}T12:00:00", "record_hash": key,
            **{k: v for k, v in order.items() if k != "lines"}})
        db["order_lines"].insert_all(
            [{"source": "shop", "order_key": key, "key": str(i), **line}
             for i, line in enumerate(order["lines"])])


def _members(db: Database, where: str, params: dict[str, Any]) -> set[int]:
    rows = db.execute(f"SELECT pf.person_id FROM person_features pf WHERE {where}", params)
    return {pid for (pid,) in rows}


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=_people, orders=_orders,
       queries=st.lists(st.one_of(_matches(), _queries), min_size=1, max_size=8))
def test_set_wise_and_per_person_forms_select_the_same_people(
        store: Database, people: dict[int, tuple[Any, Any]], orders: list[dict[str, Any]],
        queries: list[str]) -> None:
    _fill(store, people, orders)
    for query in queries:
        where, params = compile_query(query, AS_OF)
        where_all, params_all = compile_query(query, AS_OF, setwise=True)
        assert params_all == params
        assert _members(store, where_all, params_all) == _members(store, where, params), query


def test_the_forms_differ_only_for_functions_without_sums() -> None:
    plain = "amount_spent > 50 AND orders_placed MATCHES (sum_amount >= 2, date > -30d)"
    assert compile_query(plain, AS_OF, setwise=True) == compile_query(plain, AS_OF)
    for query in ("products_purchased MATCHES (category = 'Mystery')",
                  "orders_placed MATCHES (count < 2, date > -30d)"):
        where_all, _ = compile_query(query, AS_OF, setwise=True)
        assert where_all != compile_query(query, AS_OF)[0]
        assert "o.person_id = pf.person_id" not in where_all  # uncorrelated


# -- where each form runs -------------------------------------------------------------------

_SEGMENT = {"mystery": SegmentSettings(
    query="products_purchased MATCHES (category = 'Mystery', date > -1y) OR amount_spent > 150")}


def _plans(db: Database, run: Any, marker: str) -> list[str]:
    """The query plan of each statement ``run`` executes whose SQL contains ``marker``."""
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)  # the SQL with its parameters filled in
    try:
        run()
    finally:
        db.conn.set_trace_callback(None)
    found = [s for s in statements if marker in s]
    assert found, f"no statement with {marker!r} ran"
    # The stage drops its work tables when done; planning its statements needs them back.
    for table in ("_seg_members", "_seg_people"):
        db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} (person_id INTEGER PRIMARY KEY)")
    return [" / ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {s}")) for s in found]


@pytest.fixture
def shop(tmp_path: Any) -> Database:
    db = open_store(tmp_path / "store.db")
    create_person_features(db, [])
    _fill(db, {pid: (100.0 * pid, None) for pid in PEOPLE}, [
        {"person_id": 1, "order_date": "2024-03-01", "total": 20.0, "refunded": 0.0,
         "cancelled_at": None, "test": 0, "location": None, "channel": None,
         "lines": [{"category": "Mystery", "product_tags": json.dumps([]), "quantity": 1.0}]},
    ])
    return db


def test_materialising_over_everyone_runs_one_uncorrelated_subquery(shop: Database) -> None:
    (plan,) = _plans(shop, lambda: materialise(shop, _SEGMENT, AS_OF), "temp._seg_members SELECT")
    assert "LIST SUBQUERY" in plan
    assert "CORRELATED" not in plan
    assert "SCAN o" in plan  # one pass over the orders, not a probe per person
    assert {pid for (pid,) in shop.execute("SELECT person_id FROM segment_members")} == {
        1, 2, 3, 4, 5}


def test_an_incremental_update_keeps_the_per_person_form(shop: Database) -> None:
    materialise(shop, _SEGMENT, AS_OF)
    shop.execute("CREATE TEMP TABLE changed_people (person_id INTEGER PRIMARY KEY)")
    shop.execute("INSERT INTO changed_people VALUES (1)")
    (plan,) = _plans(shop, lambda: materialise(shop, _SEGMENT, AS_OF, changed="changed_people"),
                     "FROM temp._seg_people AS c")
    # A set-wise subquery would read every order for the few people changed.
    assert "CORRELATED" in plan
    assert "LIST SUBQUERY" not in plan


@pytest.mark.parametrize(("query", "outer"), [
    # a date narrows the orders first
    ("products_purchased MATCHES (category = 'Mystery', date > -1y)", "SCAN o"),
    ("products_purchased MATCHES (date > -30d)", "SCAN o"),
    ("products_purchased MATCHES ()", "SCAN o"),
    # lines alone: only the matching lines' orders are looked up
    ("products_purchased MATCHES (category = 'Mystery')", "SCAN l"),
    ("products_purchased MATCHES (tag = 'thriller', sku != 'x', count > 1)", "SCAN l"),
    # grouped by person, yet scanned, not walked through orders_person
    ("orders_placed MATCHES (count >= 2)", "SCAN o"),
    ("products_purchased MATCHES (date > -1y, count >= 2)", "SCAN o"),
    ("orders_placed NOT MATCHES (channel = 'web')", "SCAN o"),
])
def test_the_pass_is_one_scan_from_what_narrows_it(shop: Database, query: str,
                                                   outer: str) -> None:
    where_all, values = compile_query(query, AS_OF, setwise=True)
    plan = shop.execute(
        f"EXPLAIN QUERY PLAN SELECT pf.person_id FROM person_features pf WHERE {where_all}",
        values).fetchall()
    assert outer in [detail for _, _, _, detail in plan]
    assert not [detail for _, _, _, detail in plan if "orders_person" in detail]
    # Nothing runs per person: a correlated step (a tag's json_each runs per line) sits
    # under a list subquery, never at the top (parent 0).
    assert not [detail for _, parent, _, detail in plan if parent == 0 and "CORRELATED" in detail]


# Hashes stored by the code before the set-wise form: a stored segment must keep its hash, or the
# first run after an upgrade would take its unchanged definition for a new one.
@pytest.mark.parametrize(("query", "digest"), [
    ("products_purchased MATCHES (category = 'Mystery', date > -1y)",
     "995f15493af1f271f5b84f15c797e10c1b2b3ec4c962e1f09a860e63922648a3"),
    ("orders_placed NOT MATCHES (count >= 2, date > -90d) OR amount_spent > 100",
     "0ddedafddedb9494afca0ce5ed3dd760b40233f6a365981b702bcf54b3a81551"),
    ("products_purchased MATCHES (tag IN ('a', 'b'), sum_quantity > 2)",
     "58a756ad78f1cc9c649944265bc3691ccf17e47ab892346ff0aed9d69bb34651"),
])
def test_definition_hashes_are_those_stored_before(query: str, digest: str) -> None:
    seg = compile_segment("s", SegmentSettings(query=query), AS_OF)
    assert seg.definition_hash == digest
    assert seg.where_all != seg.where or "sum_" in query
