"""The suppression list at the writer: every way a source can hand an erased person over again
(their record, a new record with their email or phone, a guest order, an order of their record,
a rejected row quoting them) is dropped and counted; nobody else is touched."""

from __future__ import annotations

import datetime as dt

from segsync.core.ingest import StoreWriter, resolve, suppress, suppression_counts
from segsync.core.ingest.suppress import Suppressions, record_value
from segsync.core.records import Customer, Order, Rejected
from segsync.core.store import open_store

DAY = dt.datetime(2026, 5, 1, 12, 0)


def _writer(db, source="pos"):
    return StoreWriter(db, source, run_id=None, timezone="UTC", default_region="US")


def _count(db, sql):
    return db.execute(sql).fetchone()[0]


def test_every_route_back_in_is_dropped_and_counted():
    db = open_store(":memory:")
    suppress(db, [("email", "ann@example.com"), ("phone", "+15035550100"),
                  ("record", record_value("pos", "C1"))])
    with _writer(db) as w:
        w.write(Customer(key="C1", email="someone.new@example.com"))  # their record, new email
        w.write(Customer(key="C2", email="ANN@Example.com"))  # a new record, their email
        w.write(Customer(key="C3", phone="(503) 555-0100"))  # a new record, their phone
        w.write(Order(key="O1", ordered_at=DAY, total=5, customer_key="C1"))  # their record's
        w.write(Order(key="O2", ordered_at=DAY, total=5, email="ann@example.com"))  # guest order
        w.write(Rejected("orders", "pos.csv", "bad date", line=7, field="Date",
                         raw={"Email": " Ann@example.com ", "Date": "31/31"}))
        w.write(Rejected("orders", "pos.csv", "bad date", line=8, field="Date",
                         raw={"Phone": "503.555.0100", "Date": "31/31"}))
        # Somebody else, in every shape, is kept.
        w.write(Customer(key="C9", email="bob@example.com", phone="503-555-0199"))
        w.write(Order(key="O9", ordered_at=DAY, total=7, customer_key="C9"))
        w.write(Order(key="O8", ordered_at=DAY, total=7, email="cy@example.com"))
        w.write(Rejected("orders", "pos.csv", "bad date", line=9, field="Date",
                         raw={"Email": "bob@example.com", "Date": "31/31"}))
    assert w.counts.suppressed == 7
    assert sorted(r[0] for r in db.execute("SELECT key FROM customers")) == [
        "C9", "guest:cy@example.com"]
    assert sorted(r[0] for r in db.execute("SELECT key FROM orders")) == ["O8", "O9"]
    assert _count(db, "SELECT count(*) FROM rejects") == 1
    assert _count(db, "SELECT count(*) FROM raw_records WHERE key IN ('C1','C2','C3','O1')") == 0
    assert (w.counts.customers, w.counts.orders, w.counts.rejected) == (2, 2, 1)


def test_a_store_that_never_erased_anyone_has_no_list_and_no_salt():
    db = open_store(":memory:")
    assert not Suppressions(db, "US")
    assert _count(db, "SELECT count(*) FROM meta WHERE key = 'suppression_salt'") == 0
    assert suppression_counts(db) == {"email": 0, "phone": 0, "link_id": 0, "record": 0}


def test_suppressing_twice_adds_nothing_and_counts_by_kind():
    db = open_store(":memory:")
    entries = [("email", "ann@example.com"), ("link_id", "square:CUST1")]
    assert suppress(db, entries) == 2
    assert suppress(db, entries) == 0
    assert suppression_counts(db) == {"email": 1, "phone": 0, "link_id": 1, "record": 0}
    with _writer(db, "square") as w:
        w.write(Customer(key="K", link_id="square:CUST1"))
    resolve(db)
    assert w.counts.suppressed == 1 and _count(db, "SELECT count(*) FROM people") == 0
