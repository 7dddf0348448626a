"""The features stage against a hand-made store whose every feature is worked out by hand.

The store is written straight into ``people``, ``orders`` and ``order_lines`` (not through
ingest) so that each case is exactly the row that exercises it. ``AS_OF`` is 2025-06-30, so:
the 30-day window starts after 2025-05-31, the 90-day one after 2025-04-01 and the 365-day one
after 2024-06-30 (an order dated exactly on those days is outside its window).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlite_utils import Database

from segsync.core.measure.attributes import ATTRIBUTES
from segsync.core.measure.features import _ALL_ORDERS, _LINES, compute_features
from segsync.core.store import open_store

AS_OF = dt.date(2025, 6, 30)

ALICE, BOB, CAROL, DAVE, ERIN = 1, 2, 3, 4, 5


def _person(pid: int, **fields: Any) -> dict[str, Any]:
    columns = ("email", "phone", "first_name", "last_name", "city", "region", "country",
               "postal_code", "birth_date", "gender", "email_consent", "sms_consent",
               "created_at")
    return {"id": pid, **dict.fromkeys(columns), "tags": "[]", "sources": "[]",
            "attributes": "{}", **fields}


def _order(source: str, key: str, person_id: int | None, date: str, total: float,
           **fields: Any) -> dict[str, Any]:
    return {"source": source, "key": key, "customer_key": f"c{person_id}",
            "person_id": person_id, "ordered_at": f"{date}T12:00:00", "order_date": date,
            "total": total, "refunded": 0.0, "cancelled_at": None, "test": 0, "location": None,
            "record_hash": "h", **fields}


def _line(source: str, order_key: str, key: str, category: str | None = None,
          vendor: str | None = None, sku: str | None = None, tags: str = "[]") -> dict[str, Any]:
    return {"source": source, "order_key": order_key, "key": key, "category": category,
            "vendor": vendor, "sku": sku, "product_tags": tags}


PEOPLE = [
    _person(ALICE, email="alice@example.com", phone="+14155550101", first_name="Alice",
            last_name="Archer", city="Portland", region="OR", country="US", postal_code="97201",
            birth_date="1990-07-01", gender="female", tags='["vip", "b-tag", "vip", ""]',
            sources='["shopify", "pos", "shopify", ""]', attributes='{"tier": "gold"}',
            email_consent="subscribed", sms_consent="cleaned",
            created_at="2023-01-15T09:30:00Z"),
    _person(BOB, email="bob@shop.example.org", email_consent="unsubscribed",
            sms_consent="pending", created_at="2024-02-01"),
    _person(CAROL),
    _person(DAVE, email="dave@example.net", email_consent="redacted",
            sms_consent="not_subscribed"),
    _person(ERIN, email="erin@example.com", birth_date="2000-06-30",
            email_consent="pending", sms_consent="subscribed"),
]

ORDERS = [
    # Alice: two orders on 2025-01-10 (one partly refunded), then 01-20, 05-31 (exactly 30 days
    # before AS_OF) and 06-01 (29 days before).
    _order("shop", "a1", ALICE, "2025-01-10", 100.0, location="Store B"),
    _order("shop", "a2", ALICE, "2025-01-10", 50.0, refunded=10.0),
    _order("shop", "a3", ALICE, "2025-01-20", 80.0, location="Store A"),
    _order("shop", "a4", ALICE, "2025-05-31", 30.0, location="Store B"),
    _order("shop", "a5", ALICE, "2025-06-01", 20.0, location=""),
    # A POS refund row: lowers spend, is no order, and neither its lines nor its location count.
    _order("pos", "r1", ALICE, "2025-06-10", -15.0, location="Store C"),
    _order("shop", "x1", ALICE, "2025-06-15", 500.0, cancelled_at="2025-06-16T00:00:00",
           location="Store X"),
    _order("shop", "x2", ALICE, "2025-06-16", 700.0, test=1, location="Store X"),
    _order("shop", "x3", ALICE, "2025-07-05", 1000.0, location="Store F"),
    # Bob: on the 365- and 90-day boundaries and a day inside each; four gaps (1, 274, 1, 10).
    _order("shop", "b1", BOB, "2024-06-30", 10.0),
    _order("shop", "b2", BOB, "2024-07-01", 20.0),
    _order("shop", "b3", BOB, "2025-04-01", 30.0),
    _order("shop", "b4", BOB, "2025-04-02", 40.0),
    _order("shop", "b5", BOB, "2025-04-12", 50.0),
    # Carol has only a cancelled and a test order; Dave only a refund row.
    _order("shop", "c1", CAROL, "2025-06-01", 90.0, cancelled_at="2025-06-02T00:00:00"),
    _order("shop", "c2", CAROL, "2025-06-01", 90.0, test=1),
    _order("pos", "d1", DAVE, "2025-06-20", -20.0),
    # Erin: two orders on AS_OF itself; "a1" is also a key of the shop source, and only this
    # order's lines (source pos) are hers.
    _order("pos", "a1", ERIN, "2025-06-30", 12.5, location="Kiosk"),
    _order("shop", "e2", ERIN, "2025-06-30", 7.5, refunded=7.5),
    # Not yet resolved to a person: counted for nobody.
    _order("shop", "n1", None, "2025-06-01", 999.0),
]

LINES = [
    _line("shop", "a1", "1", "Shoes", "Acme", "SKU-2", '["summer", "sale"]'),
    _line("shop", "a1", "2", "Hats", "Zeta", "SKU-1"),
    _line("shop", "a2", "1", "Shoes", "Acme", "SKU-3", '["summer"]'),
    _line("shop", "a3", "1", "Bags", "Acme", "SKU-1", '["new"]'),
    _line("shop", "a4", "1", None, "Beta", "SKU-4", '[""]'),
    _line("shop", "a4", "2", "", None, "SKU-4"),
    _line("shop", "a5", "1", "Socks", "Acme", None, '["sale"]'),
    _line("pos", "r1", "1", "Returned", "Returns Inc", "SKU-R", '["refund"]'),
    _line("shop", "x1", "1", "Cancelled", "Gone", "SKU-X", '["cancelled"]'),
    _line("shop", "x2", "1", "TestCat", "Test", "SKU-T", '["test"]'),
    _line("shop", "x3", "1", "Future", "Later", "SKU-F", '["future"]'),
    _line("pos", "a1", "1", "PosCat", "PosVendor", "SKU-P", '["pos"]'),
    _line("shop", "n1", "1", "Nobody", "Nobody", "SKU-N"),
]


def _store() -> Database:
    db = open_store(":memory:")
    db["people"].insert_all(PEOPLE)
    db["orders"].insert_all(ORDERS)
    db["order_lines"].insert_all(LINES)
    return db


@pytest.fixture()
def db() -> Database:
    db = _store()
    assert compute_features(db, AS_OF) == len(PEOPLE)
    return db


def _row(db: Database, person_id: int) -> dict[str, Any]:
    return next(db.query("SELECT * FROM person_features WHERE person_id = ?", [person_id]))


def _catalog_columns() -> list[str]:
    return [a.sql_column for a in ATTRIBUTES]


def test_columns_are_the_catalog_plus_attributes(db: Database) -> None:
    assert list(db["person_features"].columns_dict) == [*_catalog_columns(), "attributes"]


def test_one_row_per_person_keyed_and_indexed(db: Database) -> None:
    ids = [r["person_id"] for r in db.query("SELECT person_id FROM person_features ORDER BY 1")]
    assert ids == [ALICE, BOB, CAROL, DAVE, ERIN]
    assert db["person_features"].pks == ["person_id"]
    indexed = {tuple(i.columns) for i in db["person_features"].indexes}
    assert {("email",), ("phone",)} <= indexed


def test_alice_every_column(db: Database) -> None:
    expected = {
        "person_id": ALICE,
        "email": "alice@example.com",
        "email_domain": "example.com",
        "phone": "+14155550101",
        "first_name": "Alice",
        "last_name": "Archer",
        "email_subscription_status": "SUBSCRIBED",
        "sms_subscription_status": "INVALID",
        "customer_added_date": "2023-01-15",
        # a1..a5; not the refund row, the cancelled, the test or the future order.
        "number_of_orders": 5,
        # 100 + (50 - 10) + 80 + 30 + 20 - 15 (refund row)
        "amount_spent": 255.0,
        "average_order_value": 51.0,
        "first_order_date": "2025-01-10",
        "last_order_date": "2025-06-01",
        "days_since_last_order": 29,
        # Distinct dates 01-10, 01-20, 05-31, 06-01: gaps 10, 131, 1 -> median 10. Counting the
        # refund row's date (06-10) would add a gap of 9 and give 9.5.
        "median_order_gap_days": 10.0,
        # 05-31 is exactly 30 days back and outside; 06-01 is inside.
        "orders_last_30d": 1,
        "orders_last_90d": 2,
        "orders_last_365d": 5,
        "spent_last_30d": 5.0,  # 20 - 15
        "spent_last_90d": 35.0,  # 30 + 20 - 15
        "spent_last_365d": 255.0,
        "customer_tags": '["b-tag","vip"]',
        "product_categories": '["Bags","Hats","Shoes","Socks"]',
        "product_vendors": '["Acme","Beta","Zeta"]',
        "product_skus": '["SKU-1","SKU-2","SKU-3","SKU-4"]',
        "product_tags": '["new","sale","summer"]',
        "locations": '["Store A","Store B"]',
        "sources": '["pos","shopify"]',
        "city": "Portland",
        "region": "OR",
        "country": "US",
        "postal_code": "97201",
        "birth_date": "1990-07-01",
        "age": 34,  # the 35th birthday is tomorrow
        "gender": "female",
        "attributes": '{"tier": "gold"}',
    }
    row = _row(db, ALICE)
    assert {k: row[k] for k in expected} == pytest.approx(expected)


def test_bob_window_boundaries_and_an_even_number_of_gaps(db: Database) -> None:
    expected = {
        "email_domain": "shop.example.org",
        "email_subscription_status": "UNSUBSCRIBED",
        "sms_subscription_status": "PENDING",
        "customer_added_date": "2024-02-01",
        "number_of_orders": 5,
        "amount_spent": 150.0,
        "average_order_value": 30.0,
        "first_order_date": "2024-06-30",
        "last_order_date": "2025-04-12",
        "days_since_last_order": 79,
        # Gaps 1, 274, 1, 10 -> sorted 1, 1, 10, 274 -> (1 + 10) / 2.
        "median_order_gap_days": 5.5,
        "orders_last_30d": 0,
        "orders_last_90d": 2,  # 04-02 and 04-12; 04-01 is exactly 90 days back
        "orders_last_365d": 4,  # 2024-06-30 is exactly 365 days back
        "spent_last_30d": 0.0,
        "spent_last_90d": 90.0,
        "spent_last_365d": 140.0,
        "customer_tags": "[]",
        "product_categories": "[]",
        "product_vendors": "[]",
        "product_skus": "[]",
        "product_tags": "[]",
        "locations": "[]",
        "sources": "[]",
        "phone": None,
        "birth_date": None,
        "age": None,
    }
    row = _row(db, BOB)
    assert {k: row[k] for k in expected} == pytest.approx(expected)


def test_a_person_without_valid_orders_gets_zeros_nulls_and_empty_lists(db: Database) -> None:
    expected = {
        "email": None,
        "email_domain": None,
        "phone": None,
        "email_subscription_status": "NOT_SUBSCRIBED",
        "sms_subscription_status": "NOT_SUBSCRIBED",
        "customer_added_date": None,
        "number_of_orders": 0,
        "amount_spent": 0.0,
        "average_order_value": None,
        "first_order_date": None,
        "last_order_date": None,
        "days_since_last_order": None,
        "median_order_gap_days": None,
        "orders_last_30d": 0,
        "orders_last_90d": 0,
        "orders_last_365d": 0,
        "spent_last_30d": 0.0,
        "spent_last_90d": 0.0,
        "spent_last_365d": 0.0,
        **{c: "[]" for c in ("customer_tags", "product_categories", "product_vendors",
                             "product_skus", "product_tags", "locations", "sources")},
        "age": None,
        "attributes": "{}",
    }
    row = _row(db, CAROL)
    assert {k: row[k] for k in expected} == expected
    assert isinstance(row["amount_spent"], float)


def test_refund_rows_alone_lower_spend_but_are_no_orders(db: Database) -> None:
    row = _row(db, DAVE)
    assert (row["number_of_orders"], row["amount_spent"], row["average_order_value"]) == (
        0, -20.0, None)
    assert (row["first_order_date"], row["last_order_date"], row["median_order_gap_days"]) == (
        None, None, None)
    assert (row["orders_last_30d"], row["spent_last_30d"], row["spent_last_365d"]) == (
        0, -20.0, -20.0)
    assert (row["email_subscription_status"], row["sms_subscription_status"]) == (
        "REDACTED", "NOT_SUBSCRIBED")


def test_orders_on_the_as_of_day_count_and_one_date_has_no_median(db: Database) -> None:
    row = _row(db, ERIN)
    assert row["number_of_orders"] == 2
    assert row["amount_spent"] == pytest.approx(12.5)  # the second order was fully refunded
    assert row["average_order_value"] == pytest.approx(6.25)
    assert row["days_since_last_order"] == 0
    assert row["orders_last_30d"] == 2
    assert row["median_order_gap_days"] is None
    assert row["age"] == 25  # the 25th birthday is today
    assert (row["email_subscription_status"], row["sms_subscription_status"]) == (
        "PENDING", "SUBSCRIBED")


def test_lines_belong_to_the_order_of_the_same_source(db: Database) -> None:
    # Two orders share key "a1" (sources shop and pos): each person gets their own lines.
    assert _row(db, ERIN)["product_categories"] == '["PosCat"]'
    assert _row(db, ERIN)["product_tags"] == '["pos"]'
    assert _row(db, ERIN)["locations"] == '["Kiosk"]'
    assert "PosCat" not in _row(db, ALICE)["product_categories"]


def test_as_of_pins_the_orders_that_count() -> None:
    db = _store()
    compute_features(db, dt.date(2025, 7, 5))
    row = _row(db, ALICE)
    assert row["number_of_orders"] == 6
    assert row["last_order_date"] == "2025-07-05"
    assert row["product_categories"] == '["Bags","Future","Hats","Shoes","Socks"]'
    compute_features(db, dt.date(2025, 1, 15))
    row = _row(db, ALICE)
    assert (row["number_of_orders"], row["amount_spent"]) == (2, 140.0)
    assert row["median_order_gap_days"] is None  # both orders on 2025-01-10
    assert row["product_categories"] == '["Hats","Shoes"]'
    assert row["locations"] == '["Store B"]'
    assert _row(db, BOB)["number_of_orders"] == 2


@pytest.mark.parametrize(
    ("consent", "status"),
    [
        ("subscribed", "SUBSCRIBED"),
        ("not_subscribed", "NOT_SUBSCRIBED"),
        ("pending", "PENDING"),
        ("unsubscribed", "UNSUBSCRIBED"),
        ("cleaned", "INVALID"),
        ("redacted", "REDACTED"),
        (None, "NOT_SUBSCRIBED"),
    ],
)
def test_consent_maps_to_the_catalog_enum(consent: str | None, status: str) -> None:
    db = open_store(":memory:")
    db["people"].insert(_person(1, email_consent=consent, sms_consent=consent))
    compute_features(db, AS_OF)
    row = _row(db, 1)
    assert (row["email_subscription_status"], row["sms_subscription_status"]) == (status, status)


@pytest.mark.parametrize(
    ("birth_date", "as_of", "age"),
    [
        ("1990-07-01", "2025-06-30", 34),
        ("1990-07-01", "2025-07-01", 35),
        # 29 February birthdays are reached on 1 March in a non-leap year.
        ("2000-02-29", "2025-02-28", 24),
        ("2000-02-29", "2025-03-01", 25),
        ("2000-02-29", "2024-02-28", 23),
        ("2000-02-29", "2024-02-29", 24),
        ("2000-02-29", "2000-02-29", 0),
        ("2030-01-01", "2025-06-30", None),
    ],
)
def test_age(birth_date: str, as_of: str, age: int | None) -> None:
    db = open_store(":memory:")
    db["people"].insert(_person(1, birth_date=birth_date))
    compute_features(db, dt.date.fromisoformat(as_of))
    assert _row(db, 1)["age"] == age


def test_rebuild_replaces_the_table_and_keeps_views_over_it(db: Database) -> None:
    db.execute("CREATE VIEW buyers AS SELECT person_id FROM person_features "
               "WHERE number_of_orders > 0")
    db["people"].insert(_person(6, email="new@example.com"))
    assert compute_features(db, AS_OF) == 6
    assert [r["person_id"] for r in db.query("SELECT person_id FROM buyers")] == [
        ALICE, BOB, ERIN]
    tables = set(db.table_names())
    assert "person_features_new" not in tables
    assert not [t for t in db.execute("SELECT name FROM temp.sqlite_master").fetchall()]


def test_orders_are_read_in_table_order_with_lines_found_by_primary_key() -> None:
    db = open_store(":memory:")
    params = {"as_of": AS_OF.isoformat()}
    db.execute("CREATE TEMP TABLE _pf_lines (person_id INTEGER PRIMARY KEY, a, b, c, d)")
    sql = _LINES.format(orders=_ALL_ORDERS)
    plan = [r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
    assert plan[0] == "SCAN o"
    assert plan[1].startswith(
        "SEARCH l USING INDEX sqlite_autoindex_order_lines_1 (source=? AND order_key=?)")


@pytest.mark.parametrize("secure", [0, 1])
def test_a_build_leaves_the_stores_secure_delete_as_it_was(secure: int) -> None:
    # The build drops its temp tables without zeroing them; the store's own setting (which
    # erasure relies on, and Debian's SQLite turns on by default) must not move.
    db = _store()
    db.execute(f"PRAGMA main.secure_delete = {secure}")
    db.execute(f"PRAGMA temp.secure_delete = {secure}")
    compute_features(db, AS_OF)
    assert db.execute("PRAGMA main.secure_delete").fetchone()[0] == secure
    assert db.execute("PRAGMA temp.secure_delete").fetchone()[0] == secure
