"""Random edit sequences for the incremental-run tests: customers and orders added, changed and
removed, identifiers shared so people merge and split, consent changing, the as-of advancing.

The same edits are applied to two stores, one run incrementally and one recomputed in full, so a
test can require them to be identical after every step.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from hypothesis import strategies as st
from sqlite_utils import Database

from segsync.core.ingest.writer import StoreWriter
from segsync.core.records import Customer, Order, OrderLine

START = dt.date(2024, 1, 1)
EMAILS = [f"u{i}@example.com" for i in range(6)]
PHONES = [f"212555010{i}" for i in range(5)]
CONSENTS = [None, "subscribed", "unsubscribed", "pending"]
CATEGORIES = [None, "Books", "books", "Music", "Toys"]
SOURCES = ["shop", "pos"]

_keys = st.integers(0, 7).map(str)
_customer = st.tuples(
    st.just("customer"), st.sampled_from(SOURCES), _keys,
    st.none() | st.sampled_from(EMAILS), st.none() | st.sampled_from(PHONES),
    st.sampled_from(CONSENTS), st.none() | st.integers(0, 40 * 365),
    st.sampled_from([[], ["vip"], ["vip", "new"]]),
)
_order = st.tuples(
    st.just("order"), st.sampled_from(SOURCES), st.integers(0, 15).map(str),
    st.none() | _keys, st.none() | st.sampled_from(EMAILS),
    # Days after START: some orders lie in the future of the early as-of dates.
    st.integers(0, 900), st.sampled_from([-20.0, 0.0, 0.1, 0.2, 19.99, 40.0, 125.5]),
    st.sampled_from(CATEGORIES), st.booleans(),
)
_remove = st.tuples(st.sampled_from(["del_customer", "del_order"]), st.sampled_from(SOURCES),
                    st.integers(0, 15).map(str))
#: One step: a few edits, then how many days the as-of moves on.
steps = st.lists(
    st.tuples(st.lists(st.one_of(_customer, _customer, _order, _order, _order, _remove),
                       max_size=6),
              st.sampled_from([0, 1, 1, 2, 7, 29, 30, 31, 89, 180, 364, 365])),
    min_size=1, max_size=6,
)


def crowd(seed: int = 0) -> list[tuple[Any, ...]]:
    """Edits giving the stores a crowd of buyers, so the prediction models can be fitted.

    Forty-eight customers, most with several orders before the first as-of, some on the same
    day (several orders make one purchase day). Customers 0-7 and orders 0-15 are the ones the
    random edits change, merge and remove; the other orders are never edited, so enough repeat
    buyers stay whatever the edits do.
    """
    rng = random.Random(seed)
    edits: list[tuple[Any, ...]] = [
        ("customer", "shop", str(k), f"crowd{k}@example.com", None, "subscribed", None, [])
        for k in range(48)
    ]
    amounts = [5.0, 12.5, 19.99, 0.1, 0.2, 40.0, 77.7, 0.0]
    for n in range(16):
        edits.append(("order", "shop", str(n), str(n % 8), None, rng.randrange(0, 300),
                      rng.choice(amounts), "Books", False))
    n = 100
    for k in range(8, 48):
        days = sorted(rng.sample(range(0, 300), rng.randrange(1, 6)))
        days.insert(0, days[0])  # a second order on the first purchase day
        for day in days:
            edits.append(("order", "shop", str(n), str(k), None, day, rng.choice(amounts),
                          rng.choice(CATEGORIES), False))
            n += 1
    return edits


def apply(db: Database, edits: list[tuple[Any, ...]], run_id: int) -> None:
    """Write ``edits`` into ``db`` the way pulls and ``forget`` do."""
    writers: dict[str, StoreWriter] = {}

    def writer(source: str) -> StoreWriter:
        if source not in writers:
            writers[source] = StoreWriter(db, source, run_id=run_id, timezone="UTC",
                                          default_region="US", batch_size=3)
        return writers[source]

    for edit in edits:
        kind, source, key, *rest = edit
        if kind == "customer":
            email, phone, consent, birth, tags = rest
            writer(source).write(Customer(
                f"c{key}", email=email, phone=phone, email_consent=consent, tags=tags,
                birth_date=START - dt.timedelta(days=birth) if birth is not None else None,
                updated_at=dt.datetime(2024, 1, 1) + dt.timedelta(hours=run_id),
                first_name=f"n{run_id}",
            ))
        elif kind == "order":
            customer, email, day, total, category, cancelled = rest
            ordered = dt.datetime.combine(START + dt.timedelta(days=day), dt.time(12))
            writer(source).write(Order(
                f"o{key}", ordered, total, customer_key=f"c{customer}" if customer else None,
                email=None if customer else (email or EMAILS[0]),
                cancelled_at=ordered if cancelled and total > 30 else None,
                location=f"store{day % 3}",
                lines=[OrderLine("1", category=category, amount=total / 2, sku=f"s{day % 4}"),
                       OrderLine("2", category="Books", price=3.0, quantity=2)],
            ))
        else:
            for w in writers.values():
                w.flush()
            table = "customers" if kind == "del_customer" else "orders"
            prefix = "c" if kind == "del_customer" else "o"
            if table == "orders":
                db.execute("DELETE FROM order_lines WHERE source = ? AND order_key = ?",
                           [source, f"{prefix}{key}"])
            db.execute(f"DELETE FROM {table} WHERE source = ? AND key = ?",
                       [source, f"{prefix}{key}"])
    for w in writers.values():
        w.flush()


def snapshot(db: Database, tables: dict[str, str]) -> dict[str, list[tuple]]:
    """Every row of each table (named → SELECT), for comparing two stores."""
    return {name: db.execute(sql).fetchall() for name, sql in tables.items()}


#: Resolution's output, without the wall-clock columns.
RESOLVED = {
    "customers": "SELECT source, key, person_id FROM customers ORDER BY source, key",
    "orders": "SELECT source, key, person_id FROM orders ORDER BY source, key",
    "people": "SELECT * FROM people ORDER BY id",
    "merges": "SELECT old_id, new_id, run_id FROM person_merges ORDER BY old_id",
    "links": "SELECT * FROM identity_links ORDER BY kind, value",
}
