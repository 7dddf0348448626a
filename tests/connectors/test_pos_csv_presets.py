"""The Square and Shopify presets on the real export headers, and the bundled demo exports."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys

import pytest
from conftest import REPO
from test_pos_csv import CORPUS, of, pull

from segsync.core.records import Customer, FileSeen, Order, Rejected
from segsync.core.settings import build_connector, load_settings
from segsync.plugins import load_plugins

EXAMPLES = REPO / "examples"


def test_square_items_joins_rows_of_a_transaction_and_keeps_refunds_apart():
    records = pull(CORPUS, path="square_items.csv", preset="square_items", currency="USD",
                   order_attributes={"store": "Location"})
    orders = {o.key: o for o in of(records, Order)}
    assert sorted(orders) == ["TXN1", "TXN1:refund:20260722T164510", "TXN2", "TXN4"]
    sale = orders["TXN1"]
    assert [(line.title, line.category, line.quantity, line.amount) for line in sale.lines] == [
        ("A Quiet Poison", "Mystery", 1.0, 18.99), ("Latte", "Coffee", 2.0, 10.5)]
    assert sale.total == 29.49 and sale.currency == "USD"
    assert sale.ordered_at == dt.datetime(2026, 7, 18, 12, 59, 30)  # Date + Time, naive
    assert sale.location == "Riverside" and sale.attributes == {"store": "Riverside"}
    assert sale.lines[0].sku == "MYS-1003"
    # The refund shares its sale's Transaction ID but is its own negative order.
    refund = orders["TXN1:refund:20260722T164510"]
    assert refund.total == -18.99 and refund.lines[0].amount == -18.99
    # Square writes "None" for an item without a category.
    assert orders["TXN2"].lines[0].category is None and orders["TXN2"].total == 1149.0
    # The anonymous sale has no Customer ID: refused, not dropped silently.
    [reject] = of(records, Rejected)
    assert reject.line == 5 and reject.field == "customer_key"
    assert reject.reason.startswith("no customer: column 'Customer ID' blank")


def test_square_items_yields_each_customer_once_with_a_link_id():
    records = pull(CORPUS, path="square_items.csv", preset="square_items")
    customers = of(records, Customer)
    assert [(c.key, c.first_name, c.last_name, c.link_id) for c in customers] == [
        ("CUST1", "Ada", "Abernathy", "square:CUST1"),
        ("CUST2", "Bruno", "Valdez", "square:CUST2"),
    ]


def test_square_customers_preset_reads_the_directory():
    records = pull(CORPUS, path="square_customers.csv", preset="square_customers")
    customers = {c.key: c for c in of(records, Customer)}
    ada = customers["CUST1"]
    assert (ada.first_name, ada.last_name, ada.email) == ("Ada", "Abernathy", "ada@example.com")
    assert ada.phone == "+15035550142" and ada.postal_code == "97214"  # guards stripped
    assert ada.city == "Portland" and ada.region == "OR"
    assert ada.birth_date == dt.date(1971, 3, 14)
    assert ada.created_at == dt.datetime(2026, 1, 8)
    assert ada.link_id == "square:CUST1"
    # "Customer Reference ID" is accepted for "Reference ID".
    assert ada.attributes == {"reference_id": "MBC-1"}
    # Identifiers stay raw; the store validates and normalises them.
    assert customers["CUST3"].email == "cleo@example"
    assert customers["CUST4"].phone == "555-01"
    consent = {key: c.email_consent for key, c in customers.items()}
    assert consent == {"CUST1": "subscribed", "CUST2": "unsubscribed", "CUST3": "cleaned",
                       "CUST4": None, "CUST5": None}
    assert all(c.sms_consent is None for c in customers.values())


def test_consent_values_can_be_extended_but_unknown_values_never_opt_in():
    records = pull(CORPUS, path="square_customers.csv", preset="square_customers",
                   consent_values={"unknown": "not_subscribed"})
    consent = {c.key: c.email_consent for c in of(records, Customer)}
    assert consent["CUST4"] == "not_subscribed" and consent["CUST5"] is None
    assert consent["CUST3"] == "cleaned"


def test_shopify_customers_preset(tmp_path):
    header = ("Customer ID,First Name,Last Name,Email,Accepts Email Marketing,"
              "Default Address Company,Default Address Address1,Default Address Address2,"
              "Default Address City,Default Address Province Code,Default Address Country Code,"
              "Default Address Zip,Default Address Phone,Phone,Accepts SMS Marketing,Total Spent,"
              "Total Orders,Note,Tax Exempt,Tags,Accepts WhatsApp Marketing,"
              "Fecha de nacimiento (customer.metafields.facts.birth_date)")
    row = ("'7301,Ines,Moreau,INES@example.com,yes,Rose City Readers,1 Main St,,Portland,OR,US,"
           "'97214,,'+15035550111,no,120.00,3,,no,\"vip, book-club\",no,1980-02-29")
    (tmp_path / "customers_export.csv").write_text(f"{header}\n{row}\n")
    [customer] = of(pull(tmp_path, path="customers_export.csv", preset="shopify_customers"),
                    Customer)
    assert customer.key == "7301" and customer.link_id == "shopify:7301"
    assert customer.email == "INES@example.com" and customer.phone == "+15035550111"
    assert (customer.city, customer.region, customer.country, customer.postal_code) == (
        "Portland", "OR", "US", "97214")
    assert customer.tags == ["vip", "book-club"]
    assert customer.email_consent == "subscribed" and customer.sms_consent == "not_subscribed"
    assert customer.birth_date == dt.date(1980, 2, 29)
    assert customer.attributes == {"company": "Rose City Readers"}


def test_shopify_orders_preset_groups_line_items():
    records = pull(CORPUS, path="shopify_orders.csv", preset="shopify_orders")
    orders = {o.key: o for o in of(records, Order)}
    assert sorted(orders) == ["#1001", "#1002", "#1003"]
    first = orders["#1001"]
    assert first.total == 61.98 and first.currency == "EUR" and first.name == "#1001"
    assert first.ordered_at == dt.datetime(2026, 5, 1, 8, tzinfo=dt.UTC)
    assert first.ordered_at.utcoffset() == dt.timedelta(hours=2)
    assert [(ln.title, ln.quantity, ln.price, ln.amount, ln.vendor) for ln in first.lines] == [
        ("A Quiet Poison", 2.0, 18.99, 37.98, "Lantern House Press"),
        ("House Blend Beans 12oz", 1.0, 24.0, 24.0, "Marginalia Roasters"),
    ]
    # No customer id in the export: guest orders by email, or by phone when there is none
    # (the blank "Phone" column falls back to "Billing Phone" on that row).
    assert first.customer_key is None and first.email == "ines@example.com"
    pos = orders["#1002"]
    assert pos.email is None and pos.phone == "+15035550111"
    assert pos.refunded == 19.99 and pos.financial_status == "partially_refunded"
    assert pos.location == "Old Town" and pos.channel == "pos" and len(pos.lines) == 2
    cancelled = orders["#1003"]
    assert cancelled.cancelled_at == dt.datetime(2026, 5, 3, 9, tzinfo=dt.UTC)
    assert not of(records, Customer) and not of(records, Rejected)
    assert of(records, FileSeen)[0].rows == 5


SQUARE_TRANSACTIONS_HEADER = (
    "Date,Time,Time Zone,Gross Sales,Discounts,Service Charges,Net Sales,Gift Card Sales,Tax,Tip,"
    "Partial Refunds,Total Collected,Source,Card,Card Entry Methods,Cash,Square Gift Card,"
    "Other Tender,Other Tender Type,Tender Note,Fees,Net Total,Transaction ID,Payment ID,"
    "Card Brand,PAN Suffix,Device Name,Staff Name,Staff ID,Details,Description,Event Type,"
    "Location,Dining Option,Customer ID,Customer Name,Customer Reference ID,Device Nickname,"
    "Third Party Fees,Deposit ID,Deposit Date,Deposit Details,Fee Percentage Rate,Fee Fixed Rate,"
    "Refund Reason,Discount Name,Transaction Status,Cash App,Order Reference ID,"
    "Fulfillment Note,Free Processing Applied,Channel,Unattributed Tips,Table Info,"
    "International Fee"
)


def test_square_transactions_preset(tmp_path):
    columns = SQUARE_TRANSACTIONS_HEADER.split(",")

    def row(**values: str) -> str:
        cells = dict.fromkeys(columns, "")
        cells.update(values)
        return ",".join(f'"{v}"' if "," in v else v for v in cells.values())

    lines = [
        SQUARE_TRANSACTIONS_HEADER,
        row(Date="12/27/2018", Time="", **{
            "Net Sales": "$1,149.00 ", "Partial Refunds": "($33.62)", "Transaction ID": "T1",
            "Event Type": "Payment", "Location": "Old Town", "Customer ID": "CUST7",
            "Customer Name": "Femi Okafor", "Transaction Status": "Complete",
            "Source": "Point of Sale", "Description": "Latte x 1, Scone x 1"}),
        row(Date="12/29/2018", Time="4:15 PM", **{
            "Net Sales": "$45.00", "Transaction ID": "T1", "Event Type": "Refund",
            "Location": "Old Town", "Customer ID": "CUST7", "Transaction Status": "Complete"}),
    ]
    (tmp_path / "transactions-2018.csv").write_text("\n".join(lines) + "\n")
    records = pull(tmp_path, path="transactions-*.csv", preset="square_transactions")
    orders = {o.key: o for o in of(records, Order)}
    sale = orders["T1"]
    assert sale.total == 1149.0 and sale.refunded == 33.62 and not sale.lines
    assert sale.ordered_at == dt.datetime(2018, 12, 27)  # a blank Time is midnight
    assert sale.financial_status == "Complete" and sale.channel == "Point of Sale"
    # "Event Type = Refund" makes the row a refund even though its amount is positive.
    refund = orders["T1:refund:20181229T161500"]
    assert refund.total == -45.0
    [customer] = of(records, Customer)
    assert (customer.key, customer.first_name, customer.link_id) == (
        "CUST7", "Femi", "square:CUST7")


def test_a_user_mapping_fixes_one_preset_column(tmp_path):
    text = (CORPUS / "square_items.csv").read_text().replace("Net Sales", "Net Sales (USD)", 1)
    (tmp_path / "renamed.csv").write_text(text)
    broken = pull(tmp_path, path="renamed.csv", preset="square_items")
    assert broken[0].reason.startswith("missing required column 'Net Sales'")
    fixed = pull(tmp_path, path="renamed.csv", preset="square_items",
                 mapping={"amount": "Net Sales (USD)"})
    assert len(of(fixed, Order)) == 4
    # A list names alternatives: the first present in the file is read.
    either = pull(tmp_path, path="renamed.csv", preset="square_items",
                  mapping={"amount": ["Net Sales (EUR)", "Net Sales (USD)"]})
    assert [o.total for o in of(either, Order)] == [o.total for o in of(fixed, Order)]
    # "" drops a preset field: no more categories.
    dropped = pull(tmp_path, path="renamed.csv", preset="square_items",
                   mapping={"amount": "Net Sales (USD)", "category": ""})
    assert {ln.category for o in of(dropped, Order) for ln in o.lines} == {None}


# -- the bundled demo exports ------------------------------------------------------------------

DEMO = {
    "square-customers-2026-11-01.csv": {"preset": "square_customers"},
    "items-2026-01-01-2026-10-31.csv": {"preset": "square_items", "currency": "USD"},
    "shopify-customers_export.csv": {"preset": "shopify_customers"},
    "shopify-orders_export_1.csv": {"preset": "shopify_orders"},
}


@pytest.mark.parametrize("name", sorted(DEMO))
def test_demo_exports_import(name):
    records = pull(EXAMPLES / "exports", path=name, **DEMO[name])
    [seen] = of(records, FileSeen)
    rejects = of(records, Rejected)
    # The only refused rows are Square's anonymous sales (no Customer ID).
    assert all("no customer: column 'Customer ID' blank" in r.reason for r in rejects)
    assert seen.rejected == len(rejects)
    if DEMO[name]["preset"].endswith("customers"):
        assert len(of(records, Customer)) == seen.rows
    else:
        assert of(records, Order)


def test_demo_items_cover_both_stores_every_category_and_refunds():
    records = pull(EXAMPLES / "exports", path="items-*.csv", preset="square_items")
    orders = of(records, Order)
    assert {o.location for o in orders} == {"Riverside", "Old Town"}
    assert {ln.category for o in orders for ln in o.lines} == {
        "Mystery", "Romance", "Science Fiction", "Children's", "Cookbooks", "Coffee", "Pastry"}
    assert len([o for o in orders if o.total < 0]) == 2
    assert min(o.ordered_at for o in orders).date() >= dt.date(2026, 1, 1)
    assert max(o.ordered_at for o in orders).date() <= dt.date(2026, 10, 31)
    last_30 = [o for o in orders if o.ordered_at.date() >= dt.date(2026, 10, 2)]
    assert max(o.total for o in last_30) > 1000  # October's big spender


def test_demo_generator_reproduces_the_committed_exports(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("demo_generate",
                                                  EXAMPLES / "exports" / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "demo_generate", generate)  # dataclasses look it up
    spec.loader.exec_module(generate)
    monkeypatch.setattr(generate, "HERE", tmp_path)
    generate.main()
    for name in DEMO:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / "exports" / name).read_bytes(), name


@pytest.mark.parametrize(("toml", "data"), [("cdnow.toml", "CDNOW_master.txt"),
                                             ("cdnow_sample.toml", "CDNOW_sample.txt")])
def test_example_cdnow_configs_name_the_shared_data(toml, data):
    settings = load_settings(EXAMPLES / toml)
    [(name, table)] = settings.sources.items()
    cls = load_plugins().source_class("pos_csv")
    source = build_connector("sources", name, table, cls, settings)
    assert settings.store.path == EXAMPLES / f"{toml.removesuffix('.toml')}.db"
    assert source.config.path.resolve() == (REPO.parent / "shared" / "data" / "cdnow" /
                                            data).resolve()
    if source.config.path.exists():
        assert source.files() == [source.config.path]
