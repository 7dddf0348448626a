"""The store: schema by migrations, owner-only file, WAL, the run lock, idempotent writes."""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest

from segsync.core.errors import LockedError
from segsync.core.ingest.writer import StoreWriter
from segsync.core.migrations import migrations
from segsync.core.records import Cursor, Customer, FileSeen, Order, OrderLine, Rejected
from segsync.core.store import open_store, run_lock


def test_open_applies_migrations_once(tmp_path):
    path = tmp_path / "s.db"
    db = open_store(path)
    assert migrations.pending(db) == []
    applied = [m.name for m in migrations.applied(db)]
    db.close()
    db = open_store(path)
    assert [m.name for m in migrations.applied(db)] == applied
    for table in ("customers", "orders", "order_lines", "rejects", "people", "identity_links",
                  "source_cursors", "source_files", "raw_records", "runs", "segment_members",
                  "sync_state", "sync_log"):
        assert db[table].exists(), table


def test_file_is_owner_only_and_wal(tmp_path):
    path = tmp_path / "s.db"
    old = os.umask(0o022)
    try:
        db = open_store(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_run_lock_refuses_a_second_holder(tmp_path):
    path = tmp_path / "s.db"
    with run_lock(path):
        with pytest.raises(LockedError, match="another segsync run holds the lock"):
            with run_lock(path):
                pass
    with run_lock(path):  # released after the first block
        pass


def sample_records(amount: float = 10.0):
    yield Customer("c1", email="A@Example.com", phone="(212) 555-0134", first_name="Ann",
                   raw={"id": "c1"})
    yield Order("o1", dt.datetime(2026, 3, 1, 12), amount, customer_key="c1",
                lines=[OrderLine("1", sku="BK-1", category="Mystery", quantity=2, amount=amount)],
                raw={"id": "o1"})
    yield Rejected("orders", "f.csv:7", "bad date", line=7, field="ordered_at")
    yield Cursor("orders", "2026-03-01")
    yield FileSeen("f.csv", "abc", rows=3, rejected=1)


def snapshot(db):
    return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("customers", "orders", "order_lines", "raw_records", "source_cursors")}


def pull(db, records, run_id):
    with StoreWriter(db, "src", run_id=run_id, timezone="America/New_York",
                     default_region="US", batch_size=2) as writer:
        for r in records:
            writer.write(r)
    return writer.counts


def test_repulling_identical_data_changes_nothing():
    db = open_store(":memory:")
    first = pull(db, sample_records(), 1)
    assert (first.customers, first.orders, first.rejected, first.files_imported) == (1, 1, 1, 1)
    before = snapshot(db)
    again = pull(db, sample_records(), 2)
    assert (again.customers, again.orders, again.unchanged) == (0, 0, 2)
    assert snapshot(db) == before
    assert db.execute("SELECT changed_run FROM orders").fetchone()[0] == 1


def test_a_changed_order_replaces_its_lines():
    db = open_store(":memory:")
    pull(db, sample_records(10.0), 1)
    counts = pull(db, sample_records(12.5), 2)
    assert counts.orders == 1
    assert db.execute("SELECT total, changed_run FROM orders").fetchone() == (12.5, 2)
    assert db.execute("SELECT count(*), sum(amount) FROM order_lines").fetchone() == (1, 12.5)


def test_identifiers_are_normalised_and_dates_localised():
    db = open_store(":memory:")
    pull(db, sample_records(), 1)
    assert db.execute("SELECT email, phone, email_raw FROM customers").fetchone() == (
        "a@example.com", "+12125550134", "A@Example.com")
    # 12:00 New York time is 16:00 UTC (EDT starts 8 March 2026, so 1 March is EST: 17:00).
    assert db.execute("SELECT ordered_at, order_date FROM orders").fetchone() == (
        "2026-03-01T17:00:00Z", "2026-03-01")


def test_cursor_is_written_only_with_the_records_before_it():
    db = open_store(":memory:")
    writer = StoreWriter(db, "src", run_id=1, timezone="UTC", default_region="US",
                         batch_size=1000)
    writer.write(Customer("c1", email="a@example.com"))
    writer.write(Cursor("customers", "page-2"))
    writer.write(Customer("c2", email="b@example.com"))
    # The writer is dropped without flush (a crash): the cursor covers only c1.
    assert db.execute("SELECT value FROM source_cursors").fetchall() == [("page-2",)]
    assert db.execute("SELECT key FROM customers").fetchall() == [("c1",)]


def test_guest_orders_get_a_guest_customer():
    db = open_store(":memory:")
    pull(db, [Order("g1", dt.datetime(2026, 1, 2), 20.0, email=" Guest@Shop.com ")], 1)
    assert db.execute("SELECT key, is_guest, email FROM customers").fetchone() == (
        "guest:guest@shop.com", 1, "guest@shop.com")
    assert db.execute("SELECT customer_key FROM orders").fetchone() == ("guest:guest@shop.com",)


def test_order_without_any_identity_is_rejected_with_reason():
    db = open_store(":memory:")
    counts = pull(db, [Order("x", dt.datetime(2026, 1, 2), 20.0, origin="f.csv:3")], 1)
    assert counts.rejected == 1 and counts.orders == 0
    assert db.execute("SELECT origin, reason FROM rejects").fetchone() == (
        "f.csv:3", "order has no customer key, email or phone")
