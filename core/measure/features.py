"""The measure stage: ``person_features``, one row of features per person, set-based in SQLite.

Every feature is computed "as of" a date so that a run, a plan and a test all see the same
numbers: only orders with ``order_date <= as_of`` count, and ages and day counts are measured to
``as_of``. The columns are the catalog in :mod:`.attributes` plus ``attributes`` (the
person's custom attributes, a JSON object copied from ``people.attributes``).

Definitions:

* **Valid rows** are orders with ``cancelled_at IS NULL AND test = 0`` and a ``person_id``.
  A row's net amount is ``total - refunded``. A row with ``total < 0`` is a refund row (POS
  exports write returns that way): it lowers spend but is not an order, so it is left out of
  ``number_of_orders``, the first/last order dates, the gaps, ``orders_last_*`` and the
  product, vendor, SKU, tag and location lists (returned goods are not goods bought).
* ``number_of_orders`` counts valid non-refund rows; ``amount_spent`` is the net amount of all
  valid rows (refund rows included), 0.0 for a person without any; ``average_order_value`` is
  ``amount_spent / number_of_orders``, NULL without orders.
* ``days_since_last_order`` is ``as_of - last_order_date`` in whole days.
* ``median_order_gap_days`` is the median of the gaps in days between consecutive *distinct*
  order dates (several orders on one day are one date): NULL under two distinct dates, the
  mean of the two middle gaps for an even number of gaps.
* Trailing windows are half-open: ``orders_last_30d`` counts orders with
  ``as_of - 30 days < order_date <= as_of``, so an order exactly 30 days before ``as_of`` is
  out and one 29 days before is in (likewise 90 and 365). ``spent_last_Nd`` is the net amount
  of the valid rows, refund rows included, in the same window.
* Lists are JSON arrays of distinct strings in ascending (binary) order, ``'[]'`` when empty;
  NULL and empty-string values are dropped. ``customer_tags`` and ``sources`` come from
  ``people.tags`` / ``people.sources``; ``product_categories``, ``product_vendors``,
  ``product_skus`` and ``product_tags`` (the union of the lines' ``product_tags`` arrays) from
  the lines of the person's orders; ``locations`` from the orders.
* ``email_domain`` is the part of the email after ``@``; ``customer_added_date`` is the date
  part of ``people.created_at``.
* ``email_subscription_status`` / ``sms_subscription_status`` upper-case the merged consent,
  except ``cleaned`` → ``INVALID``; unknown (NULL) consent is ``NOT_SUBSCRIBED``, never a
  state that would let a destination market to the person.
* ``age`` is whole years from ``birth_date`` to ``as_of``, one less while this year's birthday
  is still ahead. The birthday is compared as month-day text, so a 29 February birthday is
  reached on 1 March in a non-leap year (and on 29 February in a leap year). NULL when
  ``birth_date`` is missing or after ``as_of``.

:func:`.scores.build_features` computes the scores in the same build, over the passes of
:func:`gather`, so a full build writes the table once. :func:`compute_features` computes the
features alone; the score columns are then NULL columns of their declared type, so the table
always matches the catalog and a query naming them compiles.

How, and why this way: DESIGN §5 asks for 1M people / 5M orders / 12M lines within 1.5× of one
hand-written aggregate pass, under 500 MB. Walking ``orders_person`` and each order's lines
reads both tables in random order; scanning them in table order and letting SQLite's external
sorter group by person measured about 5× faster at 1M people, so every pass below scans
(``NOT INDEXED`` and ``CROSS JOIN`` pin those plans): one GROUP BY over the orders with
conditional aggregates for the windows and each person's order dates (the gaps between them
are sorted per person in Python, a few dates each), one GROUP BY over the lines joined to
their orders by primary key. Lists are gathered raw in those passes and sorted per person in
the final INSERT, a small sort over the row's own JSON; one global sort of every (person,
value) pair instead measured twice as slow. The temp tables are keyed by ``person_id`` so
the final INSERT joins them to ``people`` by rowid in one ordered pass.

With the scores, the orders pass also counts the orders the scores read, the gaps step counts
the gaps (one less than the distinct order dates), and a second lines pass sums the amounts by
person and category (the category with the largest amount is a score). It carries only the
key and the amount through its sort: grouping the lists by (person, category) as well made
ten times as many groups, each with four arrays to build and concatenate again, and measured
1.4× as slow as the two passes. The ranks are one window pass over the buyers, then the final
INSERT writes features and scores together.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any

from sqlite_utils import Database

from .attributes import ATTRIBUTES, BY_NAME

#: Windows for ``orders_last_Nd`` / ``spent_last_Nd``.
WINDOW_DAYS = (30, 90, 365)

_SQL_TYPES = {
    "integer": "INTEGER",
    "float": "REAL",
    "date": "TEXT",
    "string": "TEXT",
    "enum": "TEXT",
    "list": "TEXT",
    "boolean": "INTEGER",
}

_VALID = (
    "o.person_id IS NOT NULL AND o.cancelled_at IS NULL AND o.test = 0"
    " AND o.order_date <= :as_of"
)
_IS_ORDER = "o.total >= 0"


#: The orders a full build reads: the whole table in table order.
_ALL_ORDERS = "orders AS o NOT INDEXED"

#: The valid orders of the people in table {people} (a column ``person_id``), found by index
#: once and kept in ``temp._pf_own_orders`` for the three passes, each of which would otherwise
#: look every order up again. Keyed by (person, rowid), so the passes read each person's orders
#: in table order and group them without a sort: every amount is summed in the order a full
#: build sums it, and the floating-point sums come out the same to the last bit. The columns
#: are those the passes read.
_OWN_ORDERS = f"""
INSERT INTO temp._pf_own_orders
SELECT o.person_id, o.rowid, o.source, o.key, o.order_date, o.total, o.refunded,
    o.cancelled_at, o.test, o.location
FROM {{people}} AS r CROSS JOIN orders AS o ON o.person_id = r.person_id
WHERE {_VALID}
ORDER BY o.person_id, o.rowid
"""

#: What the passes read for a subset (see :data:`_OWN_ORDERS`).
_ORDERS_OF = "(SELECT * FROM temp._pf_own_orders) AS o"


def _window_aggregates() -> str:
    """``orders_last_Nd`` then ``spent_last_Nd`` as conditional aggregates; ``:dN`` is
    ``as_of - N days``, excluded, so each window holds exactly N dates."""
    counts = [f"count(*) FILTER (WHERE {_IS_ORDER} AND o.order_date > :d{n})"
              for n in WINDOW_DAYS]
    spent = [f"total(o.total - o.refunded) FILTER (WHERE o.order_date > :d{n})"
             for n in WINDOW_DAYS]
    return ",\n    ".join(counts + spent)


# NOT INDEXED: with orders_person SQLite would walk the index and fetch every row at random;
# a table scan plus one sort is several times faster on a store larger than the page cache.
_ORDERS = f"""
INSERT INTO temp._pf_orders
SELECT o.person_id,
    count(*) FILTER (WHERE {_IS_ORDER}),
    total(o.total - o.refunded),
    min(o.order_date) FILTER (WHERE {_IS_ORDER}),
    max(o.order_date) FILTER (WHERE {_IS_ORDER}),
    {_window_aggregates()},
    json_group_array(o.location) FILTER (WHERE {_IS_ORDER}),
    json_group_array(o.order_date) FILTER (WHERE {_IS_ORDER}){{counts}}
FROM {{orders}}
WHERE {_VALID}
GROUP BY o.person_id
"""

# The gaps between a person's distinct order dates, from the dates the orders pass gathered:
# a few dates per person, sorted in Python (see _order_gaps), where a window pass sorted every
# order twice over (by date, then by gap) and took longer than the orders pass itself.
_GAPS = """
INSERT INTO temp._pf_gaps
SELECT person_id, segsync_median_gap(order_dates), segsync_gap_count(order_dates)
FROM temp._pf_orders
WHERE number_of_orders > 1 AND segsync_gap_count(order_dates) > 0
"""


# Kept for the one row whose columns call it twice or thrice in a row.
@functools.lru_cache(maxsize=1)
def _order_gaps(dates: str) -> tuple[float | None, int]:
    """The median gap in days between consecutive distinct dates of a JSON array of
    ``YYYY-MM-DD`` order dates, and the number of those gaps: several orders on one day are
    one date, and an even number of gaps gives the mean of the two middle ones."""
    days = sorted({dt.date.fromisoformat(day).toordinal() for day in json.loads(dates)})
    gaps = sorted(later - earlier for earlier, later in zip(days, days[1:], strict=False))
    n = len(gaps)
    if n == 0:
        return None, 0
    middle = gaps[n // 2] if n % 2 else (gaps[n // 2 - 1] + gaps[n // 2]) / 2
    return float(middle), n


# The lines of each person's orders as raw JSON arrays, duplicates and NULLs included.
# CROSS JOIN keeps the orders as the outer loop (in table order, or a subset's by index), each
# order's lines found by primary key. product_tags gathers each line's tag array as a string,
# unnested when sorted; skipping the many untagged lines here spares the sort a JSON parse for
# each.
_LINES = f"""
INSERT INTO temp._pf_lines
SELECT o.person_id, json_group_array(l.category), json_group_array(l.vendor),
    json_group_array(l.sku), json_group_array(l.product_tags) FILTER (WHERE l.product_tags <> '[]')
FROM {{orders}}
CROSS JOIN order_lines AS l ON l.source = o.source AND l.order_key = o.key
WHERE {_VALID} AND {_IS_ORDER}
GROUP BY o.person_id
"""

# With the scores: the lines' amounts grouped by person and category (compared
# case-insensitively; uncategorised lines form the group '' that counts in the whole but never
# wins). Only the key and the amount travel through the sort: the lists come from the lines
# pass grouped by person alone, whose sort is of person ids. Orders in table order, each
# order's lines by primary key.
_CATEGORY_AMOUNTS = f"""
INSERT INTO temp._pf_line_groups
SELECT o.person_id, coalesce(lower(l.category), ''), min(l.category),
    total(coalesce(l.amount, l.price * l.quantity))
FROM {{orders}}
CROSS JOIN order_lines AS l ON l.source = o.source AND l.order_key = o.key
WHERE {_VALID} AND {_IS_ORDER}
GROUP BY o.person_id, coalesce(lower(l.category), '')
"""

# The top category per person, streaming over the groups in key order: the alphabetically
# first of the largest, with its share of the positive group amounts.
_TOP_CATEGORY = """
INSERT INTO temp._pf_top
SELECT s.person_id,
    CASE WHEN s.top > 0 THEN (
        SELECT a.category FROM temp._pf_line_groups AS a
        WHERE a.person_id = s.person_id AND a.k <> '' AND a.amount = s.top
        ORDER BY a.k LIMIT 1) END,
    CASE WHEN s.top > 0 THEN s.top / s.whole END
FROM (
    SELECT person_id, max(amount) FILTER (WHERE k <> '') AS top, total(max(amount, 0)) AS whole
    FROM temp._pf_line_groups
    GROUP BY person_id
) AS s
"""

_TEMP_TABLES = {
    "_pf_orders": "person_id INTEGER PRIMARY KEY, number_of_orders INTEGER, amount_spent REAL,"
    " first_order_date TEXT, last_order_date TEXT, "
    + ", ".join(f"orders_last_{n}d INTEGER" for n in WINDOW_DAYS)
    + ", "
    + ", ".join(f"spent_last_{n}d REAL" for n in WINDOW_DAYS)
    + ", locations TEXT, order_dates TEXT",
    "_pf_gaps": "person_id INTEGER PRIMARY KEY, median_order_gap_days REAL, order_gaps INTEGER",
    "_pf_lines": "person_id INTEGER PRIMARY KEY, product_categories TEXT, product_vendors TEXT,"
    " product_skus TEXT, product_tags TEXT",
}

#: The temp tables of a gather for the scores (see :func:`gather`).
_SCORED_TEMP_TABLES = {
    **_TEMP_TABLES,
    "_pf_line_groups": "person_id INTEGER, k TEXT, category TEXT, amount REAL,"
    " PRIMARY KEY (person_id, k)",
    "_pf_top": "person_id INTEGER PRIMARY KEY, top_category TEXT, top_category_share REAL",
}

#: With ``people``, their orders (see :data:`_OWN_ORDERS`).
_OWN_ORDERS_TABLE = {
    "_pf_own_orders": "person_id INTEGER, order_rowid INTEGER, source TEXT, key TEXT,"
    " order_date TEXT, total REAL, refunded REAL, cancelled_at TEXT, test INTEGER,"
    " location TEXT, PRIMARY KEY (person_id, order_rowid)",
}

# A raw JSON array made sorted, distinct and free of NULL and ''. It reads only the row's own
# JSON, so each person costs one small sort and no table lookup. json_group_array(DISTINCT)
# keeps the first of equal values, in the order the subquery delivers them. An empty array
# (many people have no tags, no tagged product) is returned as it is, without the subquery.
_SORTED = """CASE WHEN {array} = '[]' THEN '[]' ELSE (
    SELECT json_group_array(DISTINCT value) FROM (
        SELECT value FROM json_each({array}) WHERE value <> '' ORDER BY value)) END"""
# Same, for a person's own lists: most people have one source, and their array of one element
# is made without the subquery, as json_array() of the element's SQL value, which is what
# json_group_array() writes of it (a nested array or object included: the subquery's sort
# drops its JSON subtype, so both write it as a string). On the lists of the orders and lines
# passes one element is rare, and the extra test costs more than it spares.
_SORTED_PERSONAL = """CASE WHEN {array} = '[]' THEN '[]'
    WHEN json_array_length({array}) > 1 THEN (SELECT json_group_array(DISTINCT value) FROM (
        SELECT value FROM json_each({array}) WHERE value <> '' ORDER BY value))
    WHEN {array} ->> 0 <> '' THEN json_array({array} ->> 0) ELSE '[]' END"""
# Same for an array of JSON arrays (as strings): the union of the inner arrays.
_SORTED_UNION = """CASE WHEN {array} = '[]' THEN '[]' ELSE (
    SELECT json_group_array(DISTINCT value) FROM (
        SELECT inner_.value FROM json_each({array}) AS outer_, json_each(outer_.value) AS inner_
        WHERE inner_.value <> '' ORDER BY inner_.value)) END"""

_CONSENT = """CASE {column}
        WHEN 'subscribed' THEN 'SUBSCRIBED' WHEN 'pending' THEN 'PENDING'
        WHEN 'unsubscribed' THEN 'UNSUBSCRIBED' WHEN 'cleaned' THEN 'INVALID'
        WHEN 'redacted' THEN 'REDACTED' ELSE 'NOT_SUBSCRIBED' END"""


def days_since(last_order_date: str) -> str:
    """SQL of ``days_since_last_order`` from a ``last_order_date`` column (binds ``:as_of``)."""
    return f"CAST(julianday(:as_of) - julianday({last_order_date}) AS INTEGER)"


def age(birth_date: str) -> str:
    """SQL of ``age`` from a ``birth_date`` column (binds ``:as_of``)."""
    # Month-day text comparison: '02-28' < '02-29' keeps a leap-day baby a year younger until
    # 1 March in a non-leap year.
    return (f"CASE WHEN {birth_date} <= :as_of THEN CAST(substr(:as_of, 1, 4) AS INTEGER)"
            f" - CAST(substr({birth_date}, 1, 4) AS INTEGER)"
            f" - (substr(:as_of, 6, 5) < substr({birth_date}, 6, 5)) END")


#: SQL for every column this stage computes, over people ``p``, ``_pf_orders`` ``o``,
#: ``_pf_gaps`` ``g`` and ``_pf_lines`` ``li``.
_EXPRESSIONS: dict[str, str] = {
    "person_id": "p.id",
    "email": "p.email",
    "email_domain": "CASE WHEN instr(p.email, '@') > 0"
    " THEN substr(p.email, instr(p.email, '@') + 1) END",
    "phone": "p.phone",
    "first_name": "p.first_name",
    "last_name": "p.last_name",
    "email_subscription_status": _CONSENT.format(column="p.email_consent"),
    "sms_subscription_status": _CONSENT.format(column="p.sms_consent"),
    "customer_added_date": "substr(p.created_at, 1, 10)",
    "number_of_orders": "coalesce(o.number_of_orders, 0)",
    "amount_spent": "coalesce(o.amount_spent, 0.0)",
    "average_order_value": "o.amount_spent / nullif(o.number_of_orders, 0)",
    "first_order_date": "o.first_order_date",
    "last_order_date": "o.last_order_date",
    "days_since_last_order": days_since("o.last_order_date"),
    "median_order_gap_days": "g.median_order_gap_days",
    **{f"orders_last_{n}d": f"coalesce(o.orders_last_{n}d, 0)" for n in WINDOW_DAYS},
    **{f"spent_last_{n}d": f"coalesce(o.spent_last_{n}d, 0.0)" for n in WINDOW_DAYS},
    "customer_tags": _SORTED_PERSONAL.format(array="p.tags"),
    "product_categories": _SORTED.format(array="li.product_categories"),
    "product_vendors": _SORTED.format(array="li.product_vendors"),
    "product_skus": _SORTED.format(array="li.product_skus"),
    "product_tags": _SORTED_UNION.format(array="li.product_tags"),
    "locations": _SORTED.format(array="o.locations"),
    "sources": _SORTED_PERSONAL.format(array="p.sources"),
    "city": "p.city",
    "region": "p.region",
    "country": "p.country",
    "postal_code": "p.postal_code",
    "birth_date": "p.birth_date",
    "age": age("p.birth_date"),
    "gender": "p.gender",
}


#: The joins that put the temp tables of :func:`gather` beside people ``p``, as ``o``, ``g``
#: and ``li`` (the aliases of :func:`feature_columns`).
FEATURE_JOINS = """LEFT JOIN temp._pf_orders AS o ON o.person_id = p.id
            LEFT JOIN temp._pf_gaps AS g ON g.person_id = p.id
            LEFT JOIN temp._pf_lines AS li ON li.person_id = p.id"""

#: With the scores (:func:`gather` given ``counts``), the join that adds the top category of
#: each person as ``t``.
TOP_CATEGORY_JOIN = "LEFT JOIN temp._pf_top AS t ON t.person_id = p.id"


def column_type(attribute: str) -> str:
    """The SQL type of a catalog attribute's column."""
    return _SQL_TYPES[BY_NAME[attribute].type]


def feature_columns() -> list[tuple[str, str, str]]:
    """``(column, SQL type, SQL expression)`` of every catalog attribute this stage computes,
    in catalog order, over people ``p`` and the temp tables of :func:`gather`
    (:data:`FEATURE_JOINS`); the row's custom ``attributes`` are ``p.attributes``."""
    return [(a.sql_column, _SQL_TYPES[a.type], _EXPRESSIONS[a.sql_column])
            for a in ATTRIBUTES if a.sql_column in _EXPRESSIONS]


def feature_params(as_of: dt.date) -> dict[str, str]:
    """The values :func:`gather` and :func:`feature_columns` bind."""
    params = {"as_of": as_of.isoformat()}
    params.update({f"d{n}": (as_of - dt.timedelta(days=n)).isoformat() for n in WINDOW_DAYS})
    return params


def gather(db: Database, as_of: dt.date, *, people: str | None = None,
           counts: dict[str, str] | None = None, params: dict[str, Any] | None = None) -> None:
    """Run the aggregate passes into the temp tables of :data:`FEATURE_JOINS`; :func:`release`
    drops them. ``g.order_gaps`` counts the gaps between distinct order dates.

    With ``counts`` (column name → aggregate over the valid orders ``o``, see
    :func:`.scores.order_counts`) the orders pass adds those columns to ``o``, and a second
    lines pass grouped by person and category gives ``t.top_category`` and
    ``t.top_category_share`` (:data:`TOP_CATEGORY_JOIN`); ``params`` holds the values they
    bind. ``people`` (with ``counts`` only) names a table of ``person_id``s: only their
    orders are read, by index.
    """
    if counts is None and people is not None:
        raise ValueError("a subset is gathered for the scores: pass counts")
    params = {**(params or {}), **feature_params(as_of)}
    orders = _ALL_ORDERS if people is None else _ORDERS_OF.format(people=people)
    if counts is None:
        _create_temp(db, _TEMP_TABLES)
    else:
        _create_temp(db, {**_SCORED_TEMP_TABLES, "_pf_orders": _TEMP_TABLES["_pf_orders"]
                          + "".join(f", {name} INTEGER" for name in counts)})
    if people is not None:
        _create_temp(db, _OWN_ORDERS_TABLE)
        db.execute(_OWN_ORDERS.format(people=people), params)
    db.execute(_ORDERS.format(orders=orders, counts="".join(
        f",\n    {aggregate}" for aggregate in (counts or {}).values())), params)
    db.conn.create_function("segsync_median_gap", 1, lambda dates: _order_gaps(dates)[0],
                            deterministic=True)
    db.conn.create_function("segsync_gap_count", 1, lambda dates: _order_gaps(dates)[1],
                            deterministic=True)
    db.execute(_GAPS)
    db.execute(_LINES.format(orders=orders), params)
    if counts is not None:
        db.execute(_CATEGORY_AMOUNTS.format(orders=orders), params)
        db.execute(_TOP_CATEGORY)


def release(db: Database) -> None:
    """Drop the temp tables of :func:`gather`.

    Without zeroing their pages: an SQLite built with SECURE_DELETE (Debian's is) would write
    every freed page of the temp file again, over a second at 1M people, for a file that is
    deleted with the connection. The store's own ``secure_delete`` is left as it is.
    """
    secure = db.execute("PRAGMA temp.secure_delete").fetchone()[0]
    db.execute("PRAGMA temp.secure_delete = 0")
    try:
        for name in {**_SCORED_TEMP_TABLES, **_OWN_ORDERS_TABLE}:
            db.execute(f"DROP TABLE IF EXISTS temp.{name}")
    finally:
        db.execute(f"PRAGMA temp.secure_delete = {int(secure)}")


def _create_temp(db: Database, tables: dict[str, str]) -> None:
    for name, spec in tables.items():
        db.execute(f"DROP TABLE IF EXISTS temp.{name}")
        rowid = " WITHOUT ROWID" if name in ("_pf_line_groups", "_pf_own_orders") else ""
        db.execute(f"CREATE TEMP TABLE {name} ({spec}){rowid}")


def definitions(columns: list[tuple[str, str, str]]) -> str:
    """The column definitions of a ``person_features`` table of ``(name, type, _)``
    ``columns``: ``person_id`` is the primary key."""
    return ", ".join(f"{name} {sql_type}{' PRIMARY KEY' if name == 'person_id' else ''}"
                     for name, sql_type, _ in columns)


def compute_features(db: Database, as_of: dt.date) -> int:
    """Rebuild ``person_features`` as of ``as_of`` with the features alone (every score column
    NULL); return the number of people.

    The new table is built as ``person_features_new`` and swapped in within the same
    transaction, so a reader sees either the previous table or the complete new one. See the
    module docstring for the definition of each feature; :func:`.scores.build_features` builds
    the table with the scores.
    """
    computed = {name: expression for name, _, expression in feature_columns()}
    columns = [(a.sql_column, _SQL_TYPES[a.type], computed.get(a.sql_column, "NULL"))
               for a in ATTRIBUTES] + [("attributes", "TEXT", "p.attributes")]
    try:
        with db.atomic():
            gather(db, as_of)
            db.execute("DROP TABLE IF EXISTS person_features_new")
            db.execute(f"CREATE TABLE person_features_new ({definitions(columns)})")
            db.execute(
                f"""
                INSERT INTO person_features_new
                SELECT {", ".join(expression for _, _, expression in columns)}
                FROM people AS p
                {FEATURE_JOINS}
                ORDER BY p.id
                """,
                feature_params(as_of),
            )
            swap(db)
    finally:
        release(db)
    return db.execute("SELECT count(*) FROM person_features").fetchone()[0]


def swap(db: Database) -> None:
    """Replace ``person_features`` by ``person_features_new``; the caller holds a transaction.

    Views or triggers over ``person_features`` (the segment stage may create them) make a
    modern ALTER TABLE … RENAME fail, because for a moment they name a dropped table; the
    legacy rename leaves them alone, and they point at the new table once it has the name.

    The old table is dropped without zeroing its pages: an SQLite built with SECURE_DELETE
    (Debian's is) would write every freed page again, seconds at 1M people, on every build.
    The freed pages keep the previous build's rows until SQLite reuses them, data the store
    holds anyway; an erasure (``segsync forget``) rewrites the whole store, so no freed page
    keeps an erased person.
    """
    legacy = db.execute("PRAGMA legacy_alter_table").fetchone()[0]
    secure = db.execute("PRAGMA main.secure_delete").fetchone()[0]
    db.execute("PRAGMA main.secure_delete = 0")
    try:
        db.execute("DROP TABLE IF EXISTS person_features")
    finally:
        db.execute(f"PRAGMA main.secure_delete = {int(secure)}")
    db.execute("PRAGMA legacy_alter_table = ON")
    try:
        db.execute("ALTER TABLE person_features_new RENAME TO person_features")
    finally:
        db.execute(f"PRAGMA legacy_alter_table = {int(legacy)}")
    db.execute("CREATE INDEX person_features_email ON person_features (email)")
    db.execute("CREATE INDEX person_features_phone ON person_features (phone)")
