"""The pos_csv source against the malformed-export corpus in tests/data/pos and real CDNOW."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, needs_shared_data

from segsync.connectors.pos_csv.config import PosCsvConfig
from segsync.connectors.pos_csv.source import PosCsvSource
from segsync.core.connector import PullState
from segsync.core.errors import SourceError
from segsync.core.records import Customer, FileSeen, Order, Rejected
from segsync.plugins import load_plugins

CORPUS = REPO / "tests" / "data" / "pos"


def make_source(base: Path, **table: Any) -> PosCsvSource:
    config = PosCsvConfig.model_validate(table, context={"base_dir": base})
    return PosCsvSource("pos", config, base)


def pull(base: Path, seen: frozenset[str] = frozenset(), full_refresh: bool = False,
         **table: Any) -> list[Any]:
    state = PullState(cursors={}, full_refresh=full_refresh, timezone="UTC",
                      default_region="US", seen_files=seen)
    return list(make_source(base, **table).pull(state))


def of(records: list[Any], kind: type) -> list[Any]:
    return [r for r in records if isinstance(r, kind)]


GARBAGE = {
    "path": "garbage_rows.csv",
    "stream": "orders",
    "mapping": {"order_key": "order_id", "ordered_at": "date", "customer_key": "customer",
                "email": "email", "total": "amount", "quantity": "qty", "title": "item"},
}


def test_the_plugin_registers_the_source():
    assert load_plugins().source_class("pos_csv") is PosCsvSource


def test_good_rows_import_and_each_bad_row_is_rejected_with_line_and_reason():
    records = pull(CORPUS, **GARBAGE)
    orders = {o.key: o for o in of(records, Order)}
    assert sorted(orders) == ["1", "5", "7", "8:refund:20260110T000000"]
    assert orders["1"].total == 12.5 and orders["1"].customer_key == "C1"
    assert orders["1"].origin == "garbage_rows.csv:2"
    assert orders["1"].raw == {"order_id": "1", "date": "2026-01-05", "customer": "C1",
                               "email": "", "amount": "12.50", "qty": "1", "item": "Latte"}
    assert orders["1"].lines[0].title == "Latte" and orders["1"].lines[0].amount == 12.5
    # A row with only an email is a guest order.
    assert orders["5"].customer_key is None and orders["5"].email == "guest@example.com"
    assert orders["7"].total == 1149.0
    # A negative row is a refund, kept as an order of its own.
    assert orders["8:refund:20260110T000000"].total == -33.62

    rejects = {r.line: r for r in of(records, Rejected)}
    expected = {
        3: ("ordered_at", "bad date in column 'date': '2026-13-45' is not a valid date"),
        4: ("total", "bad amount in column 'amount': 'twelve' is not an amount"),
        5: ("customer_key", "no customer: columns 'customer', 'email' blank"),
        7: ("ordered_at", "no order date: column 'date' blank"),
        10: ("order_key", "no order id: column 'order_id' is blank"),
        11: ("quantity", "bad number in column 'qty': 'x' is not an amount"),
        12: (None, "row has 8 fields but the header has 7 columns"),
    }
    assert set(rejects) == set(expected)
    for line, (field, reason) in expected.items():
        reject = rejects[line]
        assert reject.field == field, line
        assert reject.reason.startswith(reason), reject.reason
        assert reject.origin == f"garbage_rows.csv:{line}"
        assert reject.stream == "orders" and not reject.whole_file
        assert isinstance(reject.raw, dict)
    assert rejects[3].raw["date"] == "2026-13-45"

    seen = of(records, FileSeen)
    assert len(seen) == 1 and seen[0].rows == 11 and seen[0].rejected == 7
    assert records[-1] is seen[0]


def test_minimal_customers_come_with_orders_once_per_key():
    records = pull(CORPUS, **GARBAGE)
    customers = of(records, Customer)
    assert sorted(c.key for c in customers) == ["C1", "C3", "C4"]
    # Each customer precedes its first order.
    first_c1 = next(i for i, r in enumerate(records) if isinstance(r, Order))
    assert isinstance(records[first_c1 - 1], Customer) and records[first_c1 - 1].key == "C1"


def test_a_missing_required_column_refuses_the_file_before_any_record():
    records = pull(CORPUS, path="missing_column.csv", preset="square_items")
    assert len(records) == 1
    reject = records[0]
    assert isinstance(reject, Rejected) and reject.whole_file
    assert reject.origin == "missing_column.csv" and reject.line == 1
    assert reject.field == "Transaction ID"
    assert reject.reason == ("missing required column 'Transaction ID' "
                             "(mapped to canonical field 'order_key')")


def test_a_refused_file_does_not_stop_the_others(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    shutil.copy(CORPUS / "missing_column.csv", folder / "a-broken.csv")
    shutil.copy(CORPUS / "square_items.csv", folder / "b-good.csv")
    (folder / "notes.md").write_text("not an export")
    records = pull(tmp_path, path="exports", preset="square_items")
    assert [r.origin for r in of(records, Rejected) if r.whole_file] == ["exports/a-broken.csv"]
    assert [f.path for f in of(records, FileSeen)] == ["exports/b-good.csv"]
    assert len(of(records, Order)) == 4


def test_a_column_the_user_maps_is_required_so_a_typo_stops_the_file():
    records = pull(CORPUS, path="tab_orders.tsv", stream="orders",
                   mapping={"order_key": "order", "ordered_at": "date", "customer_key": "customer",
                            "total": "amount"},
                   order_attributes={"store": "Store Name"})
    assert len(records) == 1 and records[0].whole_file
    assert records[0].reason == ("missing required column 'Store Name' "
                                 "(mapped to order attribute 'store')")


def test_a_file_already_imported_is_skipped_and_full_refresh_reads_it_again():
    first = pull(CORPUS, **GARBAGE)
    sha = of(first, FileSeen)[0].sha256
    again = pull(CORPUS, seen=frozenset({sha}), **GARBAGE)
    assert again == [FileSeen("garbage_rows.csv", sha, skipped=True)]
    refreshed = pull(CORPUS, seen=frozenset({sha}), full_refresh=True, **GARBAGE)
    assert len(of(refreshed, Order)) == 4


def test_a_second_copy_of_a_file_in_one_pull_is_skipped(tmp_path):
    for name in ("one.csv", "two.csv"):
        shutil.copy(CORPUS / "garbage_rows.csv", tmp_path / name)
    records = pull(tmp_path, **{**GARBAGE, "path": "*.csv"})
    seen = of(records, FileSeen)
    assert [(f.path, f.skipped) for f in seen] == [("one.csv", False), ("two.csv", True)]


def test_windows_1252_semicolons_european_dates_and_amounts():
    records = pull(CORPUS, path="eu_orders_cp1252.csv", stream="orders", date_format="eu",
                   decimal_separator=",",
                   mapping={"order_key": "Bestellnummer", "ordered_at": "Datum",
                            "email": "E-Mail", "total": "Betrag", "location": "Filiale"})
    orders = {o.key: o for o in of(records, Order)}
    assert orders["A-1001"].total == 1234.56
    assert orders["A-1001"].ordered_at == dt.datetime(2025, 12, 27)
    assert orders["A-1001"].location == "Köln"
    assert orders["A-1002"].total == 89.9 and orders["A-1002"].location == "Málaga"
    assert orders["A-1003:refund:20260115T000000"].total == -45.0
    assert orders["A-1001"].raw["Kunde"] == "Zoë Müller"
    assert not of(records, Rejected)


def test_utf8_bom_crlf_blank_lines_and_custom_attributes():
    records = pull(CORPUS, path="bom_crlf_customers.csv", stream="customers",
                   mapping={"customer_key": "Customer ID", "first_name": "First Name",
                            "last_name": "Last Name", "email": "Email", "phone": "Phone",
                            "birth_date": "Birthday"},
                   attributes={"loyalty_tier": "Loyalty Tier"})
    customers = {c.key: c for c in of(records, Customer)}
    assert list(customers) == ["C-1", "C-2", "C-3"]
    assert customers["C-1"].phone == "+15035550101"  # Excel's ' guard stripped
    assert customers["C-1"].birth_date == dt.date(1985, 12, 10)
    assert customers["C-1"].attributes == {"loyalty_tier": "gold"}
    assert customers["C-2"].first_name == "Ørjan" and customers["C-2"].attributes == {
        "loyalty_tier": "silver"}
    assert customers["C-3"].birth_date == dt.date(1979, 12, 24)
    # The blank line 3 is counted: C-2 is on line 4.
    assert [c.origin for c in customers.values()] == [
        "bom_crlf_customers.csv:2", "bom_crlf_customers.csv:4", "bom_crlf_customers.csv:5"]
    assert of(records, FileSeen)[0].rows == 3


def test_tab_separated_file_is_sniffed():
    records = pull(CORPUS, path="tab_orders.tsv", stream="orders",
                   mapping={"order_key": "order", "ordered_at": "date",
                            "customer_key": "customer", "total": "amount"},
                   order_attributes={"store": "store"})
    orders = of(records, Order)
    assert [(o.key, o.total, o.attributes) for o in orders] == [
        ("T-1", 1149.0, {"store": "Riverside"}), ("T-2", 8.0, {"store": "Old Town"})]


def test_quoted_newlines_keep_line_numbers_right():
    records = pull(CORPUS, path="quoted_newlines.csv", preset="shopify_customers",
                   attributes={"note": "Note"})
    customers = of(records, Customer)
    assert [(c.key, c.origin) for c in customers] == [
        ("7301", "quoted_newlines.csv:2"), ("7302", "quoted_newlines.csv:5")]
    assert customers[0].attributes["note"] == "Prefers pickup\r\nat Old Town,\r\nring first"
    assert customers[0].tags == ["vip"] and customers[1].tags == ["book-club", "vip"]
    # Line 7 (after the three-line row and a blank line) has no id, email or phone.
    [reject] = of(records, Rejected)
    assert reject.line == 7 and reject.field == "customer_key"
    assert reject.reason.startswith("no customer key: 'Customer ID', 'Email', 'Phone' blank")


def test_rows_without_order_id_are_keyed_by_content_and_occurrence(tmp_path):
    mapping = {"customer_key": "customer", "ordered_at": "date", "total": "amount"}
    a = of(pull(CORPUS, path="dup_a.csv", stream="orders", mapping=mapping), Order)
    b = of(pull(CORPUS, path="dup_b.csv", stream="orders", mapping=mapping), Order)
    # Three identical purchases in one file stay three orders, numbered 0, 1, 2.
    assert len(a) == 4 and len({o.key for o in a}) == 4
    c1 = [o.key for o in a if o.customer_key == "C1"]
    assert [k.rsplit("-", 1)[1] for k in c1] == ["0", "1", "2"]
    assert len({k.rsplit("-", 1)[0] for k in c1}) == 1
    # The same rows in a second export (columns swapped) get the same keys: imported once.
    keys_a = {o.key for o in a}
    assert [o.key in keys_a for o in b] == [True, True, False]
    assert len(keys_a | {o.key for o in b}) == 5


def test_whitespace_separated_file_with_a_repeated_purchase():
    records = pull(CORPUS, path="whitespace.txt", stream="orders", date_format="yyyymmdd",
                   mapping={"customer_key": "customer_id", "ordered_at": "date",
                            "total": "dollar_value", "quantity": "number_of_cds"})
    orders = of(records, Order)
    assert [(o.customer_key, o.total, o.lines[0].quantity) for o in orders] == [
        ("00001", 11.77, 1.0), ("00002", 12.0, 1.0), ("00002", 77.0, 5.0), ("00002", 12.0, 1.0)]
    assert orders[1].key != orders[3].key
    assert orders[0].ordered_at == dt.datetime(1997, 1, 1)
    assert orders[0].lines[0].amount == 11.77
    assert [o.origin for o in orders][-1] == "whitespace.txt:5"


def test_headerless_file_with_named_columns(tmp_path):
    (tmp_path / "sample.txt").write_text(" 00004 0001 19970101  2   29.33\n 00021 0002 19970101  3"
                                         "   63.34\n")
    records = pull(tmp_path, path="sample.txt", stream="orders", header=False,
                   columns=["master", "sample_id", "date", "cds", "dollars"],
                   mapping={"customer_key": "sample_id", "ordered_at": "date",
                            "total": "dollars"})
    orders = of(records, Order)
    assert [(o.customer_key, o.total, o.origin) for o in orders] == [
        ("0001", 29.33, "sample.txt:1"), ("0002", 63.34, "sample.txt:2")]


def test_a_named_encoding_that_does_not_fit_refuses_the_file():
    records = pull(CORPUS, path="eu_orders_cp1252.csv", stream="orders", encoding="utf-8",
                   date_format="eu", decimal_separator=",",
                   mapping={"order_key": "Bestellnummer", "ordered_at": "Datum",
                            "email": "E-Mail", "total": "Betrag"})
    assert len(records) == 1 and records[0].whole_file
    assert records[0].line == 2 and records[0].reason.startswith("not valid utf-8")


def test_utf16_with_bom_is_detected(tmp_path):
    text = "order\tdate\tcustomer\tamount\r\nU-1\t2026-03-01\tCü\t5.00\r\n"
    (tmp_path / "excel.txt").write_bytes(text.encode("utf-16"))
    records = pull(tmp_path, path="excel.txt", stream="orders",
                   mapping={"order_key": "order", "ordered_at": "date",
                            "customer_key": "customer", "total": "amount"})
    [order] = of(records, Order)
    assert order.customer_key == "Cü" and order.total == 5.0


def test_an_unclosed_quote_stops_the_file_without_marking_it_seen(tmp_path):
    lines = ["id,date,customer,amount", '1,2026-01-01,C1,5.00', '2,2026-01-02,"C2,5.00']
    lines += [f"{n},2026-01-03,C{n},1.00" for n in range(3, 8000)]
    (tmp_path / "broken.csv").write_text("\n".join(lines) + "\n")
    records = pull(tmp_path, path="broken.csv", stream="orders",
                   mapping={"order_key": "id", "ordered_at": "date", "customer_key": "customer",
                            "total": "amount"})
    assert not of(records, FileSeen)
    reject = records[-1]
    assert isinstance(reject, Rejected) and reject.whole_file
    assert reject.line == 3 and reject.origin == "broken.csv:3"
    assert reject.reason.startswith("cannot read the row starting on line 3: field larger than")


def test_columns_are_matched_by_name_in_any_order_and_older_layouts():
    records = pull(CORPUS, path="square_items_2018_reordered.csv", preset="square_items")
    [order] = of(records, Order)
    assert order.key == "TXN9" and order.customer_key == "CUST9" and order.total == 27.0
    assert order.ordered_at == dt.datetime(2018, 12, 27, 14, 3)
    assert order.lines[0].title == "The Ninth Footnote"
    assert order.lines[0].category == "Mystery"


def test_empty_file_is_refused_and_retried(tmp_path):
    (tmp_path / "empty.csv").write_text("\n\n")
    records = pull(tmp_path, path="empty.csv", preset="square_customers")
    assert len(records) == 1 and records[0].whole_file
    assert records[0].reason == "empty file: no header line"


def test_missing_path_is_a_source_error(tmp_path):
    source = make_source(tmp_path, path="nowhere.csv", preset="square_items")
    with pytest.raises(SourceError, match="nowhere.csv: no such file or folder"):
        list(source.pull(PullState(cursors={}, full_refresh=False, timezone="UTC",
                                   default_region="US")))
    # A glob that matches nothing is no error: there are simply no new exports.
    assert pull(tmp_path, path="items-*.csv", preset="square_items") == []


def test_files_in_a_folder_are_read_in_sorted_order(tmp_path):
    for name in ("b.csv", "a.csv", "c.TXT"):
        (tmp_path / name).write_text(f"id,date,customer,amount\n{name},2026-01-01,C,1\n")
    records = pull(tmp_path, path=".", stream="orders",
                   mapping={"order_key": "id", "ordered_at": "date", "customer_key": "customer",
                            "total": "amount"})
    assert [f.path for f in of(records, FileSeen)] == ["a.csv", "b.csv", "c.TXT"]
    assert make_source(tmp_path, path=".", preset="square_items").check() == [
        f"3 file(s) at {tmp_path}"]


@pytest.mark.shared_data
def test_cdnow_master_imports_every_purchase():
    path = needs_shared_data("cdnow", "CDNOW_master.txt")
    records = pull(path.parent, path=path.name, stream="orders", delimiter="whitespace",
                   date_format="yyyymmdd",
                   mapping={"customer_key": "customer_id", "ordered_at": "date",
                            "total": "dollar_value", "quantity": "number_of_cds"})
    orders = of(records, Order)
    assert len(orders) == 69_659
    assert len({o.key for o in orders}) == 69_659  # repeated lines are separate purchases
    assert len({o.customer_key for o in orders}) == 23_570
    assert len(of(records, Customer)) == 23_570
    assert round(sum(o.total for o in orders), 2) == 2_500_315.63
    assert not of(records, Rejected)
    assert of(records, FileSeen)[0].rows == 69_659
    assert min(o.ordered_at for o in orders) == dt.datetime(1997, 1, 1)
    assert max(o.ordered_at for o in orders) == dt.datetime(1998, 6, 30)


@pytest.mark.shared_data
def test_cdnow_sample_headerless_keyed_by_sample_id():
    path = needs_shared_data("cdnow", "CDNOW_sample.txt")
    records = pull(path.parent, path=path.name, stream="orders", header=False,
                   columns=["master_customer_id", "sample_id", "date", "number_of_cds",
                            "dollar_value"],
                   delimiter="whitespace", date_format="yyyymmdd",
                   mapping={"customer_key": "sample_id", "ordered_at": "date",
                            "total": "dollar_value", "quantity": "number_of_cds"})
    orders = of(records, Order)
    assert len(orders) == 6_919
    assert len({o.customer_key for o in orders}) == 2_357
    assert orders[0].customer_key == "0001"
