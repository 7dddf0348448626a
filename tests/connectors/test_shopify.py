"""The Shopify source end to end against the strict fake on 127.0.0.1.

Pulls go through the real pull stage (``pull_sources`` → ``StoreWriter``) into real stores, and
time is a virtual clock shared by the fake's cost bucket and the client, so throttling and bulk
polling run in full without waiting.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import logging
from pathlib import Path

import pytest
from fakes.shopify import (
    ALL_SCOPES,
    TOKEN,
    Fault,
    ShopifyFake,
    VirtualClock,
    gid,
    iso,
    make_shop,
)

from segsync.connectors.shopify.config import ShopifyConfig
from segsync.connectors.shopify.source import ShopifySource, customer_record
from segsync.core.connector import PullState
from segsync.core.errors import FatalError
from segsync.core.ingest.pull import pull_sources
from segsync.core.ingest.resolve import resolve
from segsync.core.ingest.writer import StoreWriter
from segsync.core.records import Customer, Order
from segsync.core.retry import RetryPolicy
from segsync.core.runs import recorded
from segsync.core.settings import Settings
from segsync.core.store import open_store
from segsync.plugins import load_plugins

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
COMPARED = ("customers", "orders", "order_lines", "raw_records")


def make_source(fake, clock, name="shop", **config) -> ShopifySource:
    settings = ShopifyConfig(**{"shop": "fake-shop", "access_token": TOKEN, "base_url": fake.url,
                                "bulk_poll_interval": 2.0, **config})
    return ShopifySource(name, settings, Path("."), clock=clock, sleep=clock.sleep,
                         now=lambda: NOW,
                         retry=RetryPolicy(attempts=4, base=0.5, jitter=0, sleep=clock.sleep))


def pull(db, source, *, full_refresh=False):
    with recorded(db, "pull") as run:
        [result] = pull_sources(db, Settings(), {source.name: source}, run.id,
                                full_refresh=full_refresh)
    return result


def contents(db) -> dict[str, list[tuple]]:
    """What the pull stored, minus bookkeeping that names runs and people."""
    out = {}
    for table in COMPARED:
        columns = [c.name for c in db[table].columns if c.name not in ("person_id", "changed_run")]
        out[table] = db.execute(f"SELECT {', '.join(columns)} FROM {table} "
                                "ORDER BY 1, 2, 3").fetchall()
    return out


def cursors(db, source="shop") -> dict[str, str]:
    return dict(db.execute("SELECT stream, value FROM source_cursors WHERE source = ?",
                           [source]).fetchall())


def requests(fake, operation):
    return [e for e in fake.log if e.operation == operation]


def test_it_is_a_built_in_source():
    assert load_plugins().sources["shopify"].cls is ShopifySource


# -- paged and bulk pulls store the same thing ---------------------------------------------------


@pytest.mark.parametrize(("customers", "orders"), [
    (300, 1200),
    pytest.param(10_000, 40_000, marks=pytest.mark.slow, id="10k-customers-40k-orders"),
])
def test_a_shop_pulls_the_same_through_pages_and_through_bulk(tmp_path, customers, orders):
    shop = make_shop(customers, orders, seed=21)
    stored, logs = {}, {}
    for mode in ("never", "always"):
        clock = VirtualClock()
        with ShopifyFake(shop, clock=clock) as fake:
            db = open_store(tmp_path / f"{mode}.db")
            result = pull(db, make_source(fake, clock, bulk=mode))
            assert result.status == "ok", result.error
            stored[mode], logs[mode] = contents(db), fake.log
    assert stored["never"] == stored["always"]
    keys = {row[1] for row in stored["never"]["customers"]}
    assert {c["id"] for c in shop.customers} <= keys
    assert {row[1] for row in stored["never"]["orders"]} == {o["id"] for o in shop.orders}
    assert len(stored["never"]["order_lines"]) == sum(len(o["lineItems"]) for o in shop.orders)
    # Each path really went its own way: pages (some orders needing their lines paged too)
    # and, for the other, two bulk operations and no pages.
    paged = {e.operation for e in logs["never"]}
    assert {"SegsyncCustomers", "SegsyncOrders", "SegsyncOrderLines"} <= paged
    assert "SegsyncBulk" not in paged
    assert [e.operation for e in logs["always"]].count("SegsyncBulk") == 2
    assert not {"SegsyncCustomers", "SegsyncOrders"} & {e.operation for e in logs["always"]}


def test_order_pages_shrink_to_what_one_query_may_cost(tmp_path):
    clock = VirtualClock()
    with ShopifyFake(make_shop(20, 150), clock=clock) as fake:
        assert pull(open_store(tmp_path / "s.db"),
                    make_source(fake, clock, bulk="never")).status == "ok"
    pages = requests(fake, "SegsyncOrders")
    assert pages[0].variables["first"] == 100 and pages[0].payable is None  # refused
    assert all(e.variables["first"] < 100 and e.requested <= 1000 for e in pages[1:])
    assert len(pages) > 2


# -- mapping --------------------------------------------------------------------------------------


@pytest.fixture
def crafted():
    """A small shop with one of everything the mapping must get right."""
    shop = make_shop(6, 8, checkouts=0, seed=5, long_orders=1)
    alice = shop.customers[0]
    alice.update({"firstName": "Alice", "lastName": "Ng", "tags": ["vip", "local"]})
    for key, value in (("emailAddress", "Alice@Example.com"), ("marketingState", "SUBSCRIBED"),
                       ("marketingUpdatedAt", "2024-02-03T04:05:06Z")):
        alice["defaultEmailAddress"][key] = value
    alice["email"] = "Alice@Example.com"
    alice["emailMarketingConsent"].update(marketingState="SUBSCRIBED",
                                          consentUpdatedAt="2024-02-03T04:05:06Z")
    phone = {"phoneNumber": "+16175550199", "marketingState": "UNSUBSCRIBED",
             "marketingOptInLevel": "SINGLE_OPT_IN", "marketingUpdatedAt": "2024-03-01T00:00:00Z",
             "marketingCollectedFrom": "SHOPIFY"}
    alice["defaultPhoneNumber"], alice["phone"] = phone, phone["phoneNumber"]
    alice["smsMarketingConsent"] = {"marketingState": "UNSUBSCRIBED",
                                    "marketingOptInLevel": "SINGLE_OPT_IN",
                                    "consentUpdatedAt": "2024-03-01T00:00:00Z",
                                    "consentCollectedFrom": "SHOPIFY"}
    alice["defaultAddress"] = {**(shop.customers[1]["defaultAddress"] or {}), "city": "Austin",
                               "provinceCode": "TX", "countryCodeV2": "US", "zip": "73301"}
    guest, deleted, cancelled, pos = shop.orders[:4]
    guest.update(customer=None, email="Guest.Buyer@Example.net", phone=None)
    deleted["customer"] = alice
    deleted["lineItems"][0].update(product=None, title="Old mug", sku="MUG-1", vendor="Potter")
    cancelled.update(customer=alice, cancelledAt="2024-05-02T00:00:00Z",
                     displayFinancialStatus="PARTIALLY_REFUNDED",
                     totalRefundedSet={"shopMoney": {"amount": "12.50", "currencyCode": "USD"},
                                       "presentmentMoney": {"amount": "12.50",
                                                            "currencyCode": "USD"}},
                     refunds=[{"id": gid("Refund", 1), "createdAt": "2024-05-03T10:00:00Z",
                               "updatedAt": "2024-05-03T10:00:00Z", "note": None,
                               "totalRefundedSet": cancelled["totalPriceSet"]},
                              {"id": gid("Refund", 2), "createdAt": "2024-05-04T10:00:00Z",
                               "updatedAt": "2024-05-04T10:00:00Z", "note": None,
                               "totalRefundedSet": cancelled["totalPriceSet"]}])
    pos.update(sourceName="pos", retailLocation={"id": gid("Location", 1), "name": "Downtown"},
               test=True, processedAt="2023-12-31T23:00:00Z", createdAt="2024-01-02T00:00:00Z")
    shop.checkouts = [
        {"_n": 1, "id": gid("AbandonedCheckout", 1), "name": "#C1",
         "createdAt": "2024-03-10T23:30:00Z", "updatedAt": "2024-03-11T00:00:00Z",
         "completedAt": None, "abandonedCheckoutUrl": "https://fake/1/recover", "note": "",
         "customer": alice, "totalPriceSet": cancelled["totalPriceSet"]},
        {"_n": 2, "id": gid("AbandonedCheckout", 2), "name": "#C2",
         "createdAt": "2024-03-12T10:00:00Z", "updatedAt": "2024-03-12T11:00:00Z",
         "completedAt": "2024-03-12T11:00:00Z", "abandonedCheckoutUrl": "https://fake/2",
         "note": "", "customer": shop.customers[1], "totalPriceSet": cancelled["totalPriceSet"]},
        {"_n": 3, "id": gid("AbandonedCheckout", 3), "name": "#C3",
         "createdAt": "2024-03-13T10:00:00Z", "updatedAt": "2024-03-13T11:00:00Z",
         "completedAt": None, "abandonedCheckoutUrl": "https://fake/3", "note": "",
         "customer": None, "totalPriceSet": cancelled["totalPriceSet"]},
    ]
    shop.changed()
    return shop


def one(db, sql, *args):
    cursor = db.execute(sql, list(args))
    names = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    assert row is not None, sql
    return dict(zip(names, row, strict=True))


@pytest.mark.parametrize("mode", ["never", "always"])
def test_records_map_shopify_shapes_to_canonical_fields(tmp_path, crafted, mode):
    clock = VirtualClock()
    with ShopifyFake(crafted, clock=clock) as fake:
        db = open_store(tmp_path / "s.db")
        assert pull(db, make_source(fake, clock, bulk=mode)).status == "ok"
    alice = one(db, "SELECT * FROM customers WHERE key = ?", gid("Customer", 1))
    assert alice["link_id"] == "shopify:1"
    assert (alice["email"], alice["phone"]) == ("alice@example.com", "+16175550199")
    assert (alice["first_name"], alice["last_name"], json.loads(alice["tags"])) == \
        ("Alice", "Ng", ["local", "vip"])
    assert (alice["city"], alice["region"], alice["country"], alice["postal_code"]) == \
        ("Austin", "TX", "US", "73301")
    assert (alice["email_consent"], alice["email_consent_at"]) == \
        ("subscribed", "2024-02-03T04:05:06Z")
    assert (alice["sms_consent"], alice["sms_consent_at"]) == \
        ("unsubscribed", "2024-03-01T00:00:00Z")

    guest = one(db, "SELECT * FROM orders WHERE key = ?", gid("Order", 1))
    assert guest["customer_key"] == "guest:guest.buyer@example.net"
    assert one(db, "SELECT is_guest FROM customers WHERE key = ?", guest["customer_key"]) == \
        {"is_guest": 1}
    line = one(db, "SELECT * FROM order_lines WHERE order_key = ? ORDER BY key LIMIT 1",
               gid("Order", 2))
    assert (line["title"], line["sku"], line["vendor"], line["category"],
            line["product_tags"]) == ("Old mug", "MUG-1", "Potter", None, "[]")
    cancelled = one(db, "SELECT * FROM orders WHERE key = ?", gid("Order", 3))
    assert cancelled["cancelled_at"] == "2024-05-02T00:00:00Z"
    assert (cancelled["refunded"], cancelled["financial_status"]) == (12.5, "partially_refunded")
    assert json.loads(cancelled["attributes"]) == {"refunded_at": "2024-05-04T10:00:00Z"}
    pos = one(db, "SELECT * FROM orders WHERE key = ?", gid("Order", 4))
    assert (pos["channel"], pos["location"], pos["test"]) == ("pos", "Downtown", 1)
    assert pos["ordered_at"] == "2023-12-31T23:00:00Z"  # processedAt, not createdAt
    long_order = crafted.orders[-1]
    assert len(long_order["lineItems"]) == 13
    assert one(db, "SELECT count(*) AS n FROM order_lines WHERE order_key = ?",
               long_order["id"]) == {"n": 13}
    # Abandoned checkouts: only the open one with a customer, linked to that customer.
    checkouts = db.execute("SELECT key, link_id, attributes FROM customers "
                           "WHERE key LIKE 'checkout:%'").fetchall()
    assert [(k, link, json.loads(a)["abandoned_checkout_date"]) for k, link, a in checkouts] == \
        [("checkout:1", "shopify:1", "2024-03-10")]


def test_an_order_that_cannot_be_read_is_rejected_with_its_reason(tmp_path):
    shop = make_shop(10, 20, seed=6)
    broken = shop.orders[4]
    broken.update(processedAt=None, createdAt=None)
    clock = VirtualClock()
    with ShopifyFake(shop, clock=clock) as fake:
        db = open_store(tmp_path / "s.db")
        result = pull(db, make_source(fake, clock, bulk="never"))
    assert result.status == "partial" and result.counts.rejected == 1
    reject = one(db, "SELECT stream, origin, reason, raw FROM rejects")
    assert (reject["stream"], reject["origin"]) == ("orders", broken["id"])
    assert "unreadable order" in reject["reason"] and "no date" in reject["reason"]
    assert json.loads(reject["raw"])["name"] == broken["name"]
    assert len(contents(db)["orders"]) == 19


@pytest.mark.parametrize(("state", "canonical"), [
    ("SUBSCRIBED", "subscribed"), ("NOT_SUBSCRIBED", "not_subscribed"), ("PENDING", "pending"),
    ("UNSUBSCRIBED", "unsubscribed"), ("REDACTED", "redacted"), ("INVALID", "cleaned"),
])
def test_marketing_states_map_to_canonical_consent(state, canonical):
    at = "2024-05-01T10:00:00Z"
    base = {"id": gid("Customer", 9), "updatedAt": at}
    new = customer_record({**base,
                           "defaultEmailAddress": {"emailAddress": "a@b.co",
                                                   "marketingState": state,
                                                   "marketingUpdatedAt": at},
                           "defaultPhoneNumber": {"phoneNumber": "+16175550199",
                                                  "marketingState": state,
                                                  "marketingUpdatedAt": at}})
    old = customer_record({**base, "email": "a@b.co", "phone": "+16175550199",
                           "emailMarketingConsent": {"marketingState": state,
                                                     "consentUpdatedAt": at},
                           "smsMarketingConsent": {"marketingState": state,
                                                   "consentUpdatedAt": at}})
    for record in (new, old):
        assert (record.email_consent, record.sms_consent) == (canonical, canonical)
        assert record.email_consent_at == record.sms_consent_at == dt.datetime(2024, 5, 1, 10,
                                                                               tzinfo=dt.UTC)


def test_versions_before_and_after_2025_04_store_the_same_customers(tmp_path):
    shop = make_shop(80, 40, seed=8)
    stored = {}
    for version in ("2025-01", "2025-07"):
        clock = VirtualClock()
        with ShopifyFake(shop, clock=clock) as fake:
            db = open_store(tmp_path / f"{version}.db")
            assert pull(db, make_source(fake, clock, api_version=version)).status == "ok"
        stored[version] = contents(db)["customers"]
    assert stored["2025-01"] == stored["2025-07"]
    assert sum(1 for row in stored["2025-07"] if row[5]) > 60  # emails came through


# -- incremental pulls ----------------------------------------------------------------------------


def test_a_second_pull_reads_only_the_window_since_the_cursor(tmp_path):
    shop = make_shop(60, 200, seed=4)
    clock = VirtualClock()
    with ShopifyFake(shop, clock=clock) as fake:
        db = open_store(tmp_path / "s.db")
        assert pull(db, make_source(fake, clock)).status == "ok"
        first = cursors(db)
        assert [o.query.count(">=") for o in fake.operations.values()] == [0, 0]  # backfill
        shop.update(shop.customers[3], NOW - dt.timedelta(hours=1), firstName="Zed")
        order = copy.deepcopy(shop.orders[0])
        order.update(_n=5000, id=gid("Order", 5000), name="#9999", customer=shop.customers[3])
        for line in order["lineItems"]:
            line["id"] = gid("LineItem", 90000 + line["_n"])
        shop.update(order, NOW - dt.timedelta(minutes=30))
        shop.add_order(order)
        fake.log.clear()
        result = pull(db, make_source(fake, clock))
    assert result.status == "ok"
    assert (result.counts.customers, result.counts.orders) == (1, 1)
    assert one(db, "SELECT first_name FROM customers WHERE key = ?",
               gid("Customer", 4)) == {"first_name": "Zed"}
    assert cursors(db)["orders"] == iso(NOW - dt.timedelta(minutes=30))
    assert cursors(db)["customers"] == iso(NOW - dt.timedelta(hours=1))
    # Small windows are paged, from the stored cursor less the overlap, up to the pull's start.
    assert len(fake.operations) == 2
    for stream in ("customers", "orders"):
        since = dt.datetime.fromisoformat(first[stream]) - dt.timedelta(seconds=300)
        pages = requests(fake, f"Segsync{stream.title()}")
        assert pages and {p.variables["query"] for p in pages} == {
            f"updated_at:>='{iso(since)}' AND updated_at:<'{iso(NOW)}'"}


def test_full_refresh_ignores_cursors(tmp_path):
    shop = make_shop(40, 100, seed=4)
    clock = VirtualClock()
    with ShopifyFake(shop, clock=clock) as fake:
        db = open_store(tmp_path / "s.db")
        assert pull(db, make_source(fake, clock, bulk="never")).status == "ok"
        fake.log.clear()
        result = pull(db, make_source(fake, clock, bulk="never"), full_refresh=True)
    assert result.status == "ok"
    assert result.counts.unchanged >= 140 and result.counts.orders == 0
    assert all(">=" not in e.variables["query"]
               for e in fake.log if e.operation in ("SegsyncCustomers", "SegsyncOrders"))


def test_a_large_incremental_window_is_pulled_in_bulk(tmp_path):
    shop = make_shop(60, 200, seed=4)
    clock = VirtualClock()
    with ShopifyFake(shop, clock=clock) as fake:
        db = open_store(tmp_path / "s.db")
        assert pull(db, make_source(fake, clock, bulk="never")).status == "ok"
        for order in shop.orders[:30]:
            shop.update(order, NOW - dt.timedelta(minutes=5), name=order["name"] + "-x")
        result = pull(db, make_source(fake, clock, bulk_threshold=25))
    assert result.status == "ok" and result.counts.orders == 30
    [op] = fake.operations.values()
    assert "orders(" in op.query and "updated_at:>=" in op.query


# -- killed pulls resume --------------------------------------------------------------------------


KILL_SHOP = (120, 480)


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory):
    """The store an uninterrupted pull leaves, and how many records it yields, per mode."""
    out = {}
    for mode in ("never", "auto"):
        clock = VirtualClock()
        with ShopifyFake(make_shop(*KILL_SHOP), clock=clock) as fake:
            db = open_store(tmp_path_factory.mktemp(mode) / "reference.db")
            source = make_source(fake, clock, bulk=mode, page_size=25)
            yielded = sum(1 for _ in source.pull(PullState({}, False, "UTC", "US")))
            source.close()
            fake.log.clear()
            result = pull(db, make_source(fake, clock, bulk=mode, page_size=25))
            assert result.status == "ok"
        out[mode] = (contents(db), yielded,
                     result.counts.customers + result.counts.orders + result.counts.unchanged,
                     len(fake.log))
    return out


def killed_pull(db, source, stop_after):
    """Run a pull and drop it after ``stop_after`` records, as a killed process would: what the
    writer buffered since the last cursor is lost, not flushed."""
    state = PullState(cursors(db, source.name), False, "UTC", "US")
    with recorded(db, "pull") as run:
        writer = StoreWriter(db, source.name, run_id=run.id, timezone="UTC",
                             default_region="US")
        records = source.pull(state)
        for record in itertools.islice(records, stop_after):
            writer.write(record)
        records.close()
    source.close()


@pytest.mark.parametrize("mode", ["never", "auto"])
@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.3, 0.55, 0.8, 0.97])
def test_a_pull_killed_anywhere_ends_like_an_uninterrupted_one(tmp_path, kill_reference, mode,
                                                                fraction):
    expected, yielded, reads, _ = kill_reference[mode]
    clock = VirtualClock()
    with ShopifyFake(make_shop(*KILL_SHOP), clock=clock) as fake:
        db = open_store(tmp_path / "s.db")
        killed_pull(db, make_source(fake, clock, bulk=mode, page_size=25), int(yielded * fraction))
        left = cursors(db)
        result = pull(db, make_source(fake, clock, bulk=mode, page_size=25))
    assert result.status == "ok", result.error
    assert contents(db) == expected
    if mode == "auto":
        # The backfill of each stream ran as exactly one bulk operation: a killed pull's
        # operation was resumed, never started again.
        queries = [op.query for op in fake.operations.values()]
        assert sorted(q.split("(")[0].strip("{ \n") for q in queries) == ["customers", "orders"]
    elif fraction > 0:
        # Each stored page moved the cursor, so the rerun read less than a whole pull.
        assert "customers" in left
        rerun = result.counts.customers + result.counts.orders + result.counts.unchanged
        assert rerun < reads


@pytest.mark.parametrize("mode", ["never", "auto"])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_a_pull_failing_mid_way_is_finished_by_the_next_one(tmp_path, kill_reference, mode,
                                                            fraction):
    expected, *_, requests_made = kill_reference[mode]
    clock = VirtualClock()
    with ShopifyFake(make_shop(*KILL_SHOP), clock=clock) as fake:
        db = open_store(tmp_path / "s.db")
        # Shopify goes down for good at this request: every retry of it fails too.
        fake.down_from = max(2, int(requests_made * fraction))
        failed = pull(db, make_source(fake, clock, bulk=mode, page_size=25))
        fake.down_from = None
        result = pull(db, make_source(fake, clock, bulk=mode, page_size=25))
    assert failed.status == "failed" and "503" in failed.error
    assert result.status == "ok", result.error
    assert contents(db) == expected


# -- bulk operations: resumed, adopted, restarted -------------------------------------------------


def test_a_bulk_start_whose_answer_was_lost_is_adopted_not_repeated(tmp_path):
    clock = VirtualClock()
    with ShopifyFake(make_shop(50, 150), clock=clock) as fake:
        # Request 2 starts the customers operation; its answer is replaced by a 502.
        fake.faults = [Fault(at=2, status=502, after=True)]
        db = open_store(tmp_path / "s.db")
        result = pull(db, make_source(fake, clock))
    assert result.status == "ok", result.error
    assert [e.operation for e in fake.log[1:3]] == ["SegsyncBulk", "SegsyncBulk"]
    assert len(fake.operations) == 2
    assert len(contents(db)["orders"]) == 150


def test_a_failed_bulk_operation_fails_the_pull_and_the_next_pull_starts_anew(tmp_path):
    clock = VirtualClock()
    with ShopifyFake(make_shop(50, 150), clock=clock) as fake:
        fake.fail_next_bulk = "INTERNAL_SERVER_ERROR"
        db = open_store(tmp_path / "s.db")
        failed = pull(db, make_source(fake, clock))
        assert json.loads(cursors(db)["bulk:customers"])["id"] == gid("BulkOperation", 1)
        result = pull(db, make_source(fake, clock))
    assert failed.status == "failed"
    assert "FAILED" in failed.error and "INTERNAL_SERVER_ERROR" in failed.error
    assert result.status == "ok", result.error
    assert [op.status for op in fake.operations.values()] == ["FAILED", "COMPLETED", "COMPLETED"]
    assert cursors(db)["bulk:customers"] == cursors(db)["bulk:orders"] == ""


def test_a_broken_download_is_restarted_and_never_carries_the_token(tmp_path):
    clock = VirtualClock()
    with ShopifyFake(make_shop(50, 150), clock=clock) as fake:
        fake.cut_next_download = 700
        db = open_store(tmp_path / "s.db")
        result = pull(db, make_source(fake, clock))
    assert result.status == "ok", result.error
    assert len(fake.downloads) == 3  # customers twice (cut, then whole), orders once
    assert not any(d["token_sent"] for d in fake.downloads)
    assert len(contents(db)["customers"]) >= 50


def test_a_slow_bulk_operation_is_left_running_and_resumed_next_pull(tmp_path):
    clock = VirtualClock()
    with ShopifyFake(make_shop(50, 150), clock=clock, bulk_polls=20) as fake:
        db = open_store(tmp_path / "s.db")
        first = pull(db, make_source(fake, clock, bulk_timeout=10))
        assert first.status == "failed" and "next pull picks it up" in first.error
        result = pull(db, make_source(fake, clock, bulk_timeout=100))
    assert result.status == "ok", result.error
    assert len(fake.operations) == 2
    assert len(contents(db)["orders"]) == 150


# -- throttling -----------------------------------------------------------------------------------


@pytest.mark.parametrize("throttle_status", [200, 429])
def test_a_throttle_storm_slows_the_pull_but_never_fails_it(tmp_path, throttle_status):
    shop = make_shop(100, 300, seed=9)
    clock = VirtualClock()
    with ShopifyFake(shop, clock=clock) as calm:
        reference = open_store(tmp_path / "calm.db")
        assert pull(reference, make_source(calm, clock, bulk="never")).status == "ok"
    clock = VirtualClock()
    with ShopifyFake(shop, clock=clock, maximum=1000, restore_rate=20,
                     throttle_status=throttle_status) as fake:
        # Other apps drain the shared bucket again and again; 429s, 5xx and a dropped
        # connection on top.
        fake.faults = [Fault(at=n, kind="drain") for n in range(3, 400, 2)] + [
            Fault(at=4, status=429), Fault(at=7, status=429, retry_after=3),
            Fault(at=10, status=502), Fault(at=14, kind="drop"),
            Fault(at=19, status=500, after=True)]
        db = open_store(tmp_path / "storm.db")
        result = pull(db, make_source(fake, clock, bulk="never"))
    assert result.status == "ok", result.error
    assert contents(db) == contents(reference)
    # Drained requests that reached the bucket (not refused for their size first).
    drained = [e for e in fake.log if e.drained and e.payable is not None]
    assert len(drained) >= 20
    assert all(e.payable is False and e.status == throttle_status for e in drained)
    # After each drain the client waited for the bucket to refill before asking again.
    assert sum(clock.sleeps) >= sum(e.requested / 20 for e in drained)
    # Once the client has seen the bucket, it only sends what the bucket can pay, unless
    # someone else emptied the bucket behind its back.
    assert [e.n for e in fake.log[1:] if e.payable is False and not e.drained] == []


def test_a_small_slow_bucket_paces_the_pull_without_a_single_throttle(tmp_path):
    clock = VirtualClock()
    with ShopifyFake(make_shop(100, 300, seed=9), clock=clock, maximum=1000,
                     restore_rate=10) as fake:
        result = pull(open_store(tmp_path / "s.db"), make_source(fake, clock, bulk="never"))
    assert result.status == "ok", result.error
    judged = [e for e in fake.log if e.payable is not None]
    assert len(judged) > 15 and all(e.payable for e in judged)
    # Time passes only in the client's waits, and the bucket (1000 at the start) refills 10
    # points a second: spending more than 1000 points took at least this much waiting.
    spent = sum(e.actual for e in judged)
    assert spent > 5000
    assert sum(clock.sleeps) >= (spent - 1000) / 10


# -- identity across sources ----------------------------------------------------------------------


def test_shopify_and_pos_records_sharing_an_email_or_phone_become_one_person(tmp_path, crafted):
    clock = VirtualClock()
    with ShopifyFake(crafted, clock=clock) as fake:
        db = open_store(tmp_path / "s.db")
        assert pull(db, make_source(fake, clock)).status == "ok"
    bob = crafted.customers[1]
    with StoreWriter(db, "pos", run_id=None, timezone="UTC", default_region="US") as pos:
        pos.write(Customer(key="P1", email="  ALICE@example.COM "))
        pos.write(Customer(key="P2", phone="(617) 555-0199"))
        pos.write(Customer(key="P3", link_id=f"shopify:{bob['_n']}"))
        pos.write(Customer(key="P4", email="nobody@example.org"))
        pos.write(Order(key="T1", email=" Alice@Example.com", total=20.0,
                        ordered_at=dt.datetime(2024, 6, 1, tzinfo=dt.UTC)))
    resolve(db)

    def person(source, key):
        return one(db, "SELECT person_id FROM customers WHERE source = ? AND key = ?",
                   source, key)["person_id"]

    alice = person("shop", gid("Customer", 1))
    assert person("pos", "P1") == person("pos", "P2") == person("shop", "checkout:1") == alice
    assert person("pos", "P3") == person("shop", bob["id"])
    assert person("pos", "P4") not in (alice, person("shop", bob["id"]))
    order_people = {r[0] for r in db.execute(
        "SELECT person_id FROM orders WHERE (source = 'pos' AND key = 'T1') OR "
        "(source = 'shop' AND key IN (?, ?))", [gid("Order", 2), gid("Order", 3)])}
    assert order_people == {alice}
    merged = one(db, "SELECT email, phone, attributes FROM people WHERE id = ?", alice)
    assert (merged["email"], merged["phone"]) == ("alice@example.com", "+16175550199")
    assert json.loads(merged["attributes"])["abandoned_checkout_date"] == "2024-03-10"


# -- access: check() and scopes -------------------------------------------------------------------


def test_check_reports_the_shop_and_what_the_token_cannot_do(tmp_path):
    clock = VirtualClock()
    limited = {TOKEN: frozenset({"read_customers", "write_orders"})}
    with ShopifyFake(make_shop(5, 5), clock=clock, tokens=limited) as fake:
        notes = make_source(fake, clock).check()
    assert notes[0].startswith("shop fake-shop.myshopify.com")
    assert any("read_all_orders" in n and "60 days" in n for n in notes)
    assert any("abandoned checkouts skipped" in n for n in notes)


def test_check_refuses_a_bad_token_and_a_token_without_required_scopes():
    clock = VirtualClock()
    with ShopifyFake(make_shop(5, 5), clock=clock,
                     tokens={TOKEN: frozenset({"read_customers"})}) as fake:
        with pytest.raises(FatalError, match="401.*access_token"):
            make_source(fake, clock, access_token="shpat_wrong").check()
        with pytest.raises(FatalError, match="lacks the read_orders scope"):
            make_source(fake, clock).check()


def test_checkouts_without_access_are_skipped_with_a_note(tmp_path, crafted, caplog):
    clock = VirtualClock()
    scopes = {TOKEN: ALL_SCOPES - {"read_checkouts"}}
    with ShopifyFake(crafted, clock=clock, tokens=scopes) as fake:
        db = open_store(tmp_path / "s.db")
        source = make_source(fake, clock)
        with caplog.at_level(logging.WARNING, logger="segsync.shopify"):
            result = pull(db, source)
    assert result.status == "ok"
    assert any("abandoned checkouts skipped" in n for n in source.notes)
    assert "abandoned checkouts skipped" in caplog.text
    assert db.execute("SELECT count(*) FROM customers WHERE key LIKE 'checkout:%'").fetchone() \
        == (0,)
    assert len(contents(db)["orders"]) == len(crafted.orders)


# -- the real CLI ---------------------------------------------------------------------------------


def test_the_cli_pulls_from_the_fake_over_http(cli, tmp_path):
    shop = make_shop(30, 90, seed=2)
    with ShopifyFake(shop, restore_rate=100_000) as fake:
        config = tmp_path / "segsync.toml"
        config.write_text(
            '[store]\npath = "shop.db"\n\n[sources.shopify]\n'
            f'shop = "fake-shop"\naccess_token = "{TOKEN}"\nbase_url = "{fake.url}"\n'
            "bulk_poll_interval = 0.01\n"
        )
        checked = cli("--config", config, "check")
        first = cli("--config", config, "pull", "--json")
        second = cli("--config", config, "pull", "--json")
    assert checked.code == 0, checked.stderr
    assert "fake-shop.myshopify.com" in checked.stdout
    assert first.code == 0, first.stderr
    [summary] = json.loads(first.stdout)["sources"]
    assert (summary["source"], summary["status"], summary["orders"]) == ("shopify", "ok", 90)
    assert summary["customers"] >= 30
    [again] = json.loads(second.stdout)["sources"]
    assert (again["customers"], again["orders"]) == (0, 0)
    db = open_store(tmp_path / "shop.db")
    assert db.execute("SELECT count(*) FROM orders").fetchone() == (90,)
    assert set(cursors(db, "shopify")) >= {"customers", "orders", "checkouts"}
