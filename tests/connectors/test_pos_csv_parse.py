"""pos_csv building blocks: value parsers, delimiter and encoding detection, row keys, config."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from pydantic import ValidationError

from segsync.connectors.pos_csv import dedupe
from segsync.connectors.pos_csv.config import PosCsvConfig
from segsync.connectors.pos_csv.dedupe import RowKeys
from segsync.connectors.pos_csv.parse import (
    consent_reader,
    date_parser,
    parse_bool,
    parse_money,
    parse_time,
    split_name,
    split_tags,
    strip_guard,
)
from segsync.connectors.pos_csv.reader import inspect_file, sniff_delimiter
from segsync.core.errors import ConfigError
from segsync.core.settings import build_connector, load_settings
from segsync.plugins import load_plugins


@pytest.mark.parametrize(
    ("text", "decimal", "expected"),
    [
        ("11.77", ".", 11.77),
        ("$8.00", ".", 8.0),
        ("$1,149.00 ", ".", 1149.0),
        ("-$45.00", ".", -45.0),
        ("$-45.00", ".", -45.0),
        ("($33.62)", ".", -33.62),
        ("45.00-", ".", -45.0),
        ("USD 12.00", ".", 12.0),
        ("CA$5.00", ".", 5.0),
        ("1,234,567.80", ".", 1234567.8),
        ("1 234.50", ".", 1234.5),
        (".5", ".", 0.5),
        ("'12.00", ".", 12.0),
        ("€1.234,56", ",", 1234.56),
        ("1.234", ",", 1234.0),
        ("12,5", ",", 12.5),
        ("-€3,50", ",", -3.5),
        ("12,00 EUR", ",", 12.0),
        ("1 234,56", ",", 1234.56),
    ],
)
def test_money(text, decimal, expected):
    assert parse_money(strip_guard(text.strip()), decimal) == expected


@pytest.mark.parametrize(
    ("text", "decimal"),
    [("twelve", "."), ("12abc34", "."), ("nan", "."), ("1e5", "."), ("$", "."), ("-", "."),
     ("--5", "."), ("(-5)", "."), ("1,14", "."), ("1,23,456", "."), ("1.", "."),
     ("1,234.56", ",")],
)
def test_money_refuses_what_it_cannot_read_exactly(text, decimal):
    with pytest.raises(ValueError, match="is not an amount"):
        parse_money(text, decimal)


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        ("auto", "2026-05-01", dt.datetime(2026, 5, 1)),
        ("auto", "2026-05-01 10:00:00 +0200",
         dt.datetime(2026, 5, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
        ("auto", "2026-07-18T12:59:30Z", dt.datetime(2026, 7, 18, 12, 59, 30, tzinfo=dt.UTC)),
        ("auto", "2026-05-01T10:00:00.25-05:30",
         dt.datetime(2026, 5, 1, 10, 0, 0, 250000,
                     tzinfo=dt.timezone(-dt.timedelta(hours=5, minutes=30)))),
        ("auto", "12/27/2018", dt.datetime(2018, 12, 27)),
        ("auto", "12/27/2018 2:03 PM", dt.datetime(2018, 12, 27, 14, 3)),
        ("auto", "19970101", dt.datetime(1997, 1, 1)),
        ("us", "3/4/26", dt.datetime(2026, 3, 4)),
        ("eu", "27/12/2018", dt.datetime(2018, 12, 27)),
        ("eu", "27.12.2018 18:05", dt.datetime(2018, 12, 27, 18, 5)),
        ("iso", "2026-01-02 03:04", dt.datetime(2026, 1, 2, 3, 4)),
        ("yyyymmdd", "19980630", dt.datetime(1998, 6, 30)),
        ("%d %b %Y", "27 Dec 2018", dt.datetime(2018, 12, 27)),
    ],
)
def test_dates(fmt, text, expected):
    parsed = date_parser(fmt)(text)
    assert parsed == expected
    # Aware only when the text carries an offset.
    assert (parsed.tzinfo is None) == (expected.tzinfo is None)


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        ("auto", "27/12/2018", 'is not a valid date (for day-first dates set date_format = "eu")'),
        ("auto", "2026-02-30", "is not a valid date"),
        ("auto", "garbage", "is not an ISO, yyyymmdd or month/day/year date"),
        ("eu", "12/27/2018", "is not a valid date"),
        ("yyyymmdd", "1997-01-01", "is not a yyyymmdd date"),
        ("iso", "12/27/2018", "is not an ISO date"),
        ("%d %b %Y", "2018-12-27", "is not a date like '%d %b %Y'"),
    ],
)
def test_bad_dates(fmt, text, message):
    with pytest.raises(ValueError, match="^" + re.escape(f"{text!r} {message}")):
        date_parser(fmt)(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12:59:30", dt.time(12, 59, 30)), ("9:05", dt.time(9, 5)), ("2:03 PM", dt.time(14, 3)),
     ("12:00 am", dt.time(0, 0)), ("12:30 PM", dt.time(12, 30))],
)
def test_times(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["25:00", "13:00 PM", "noon"])
def test_bad_times(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_booleans_tags_names_and_guards():
    assert [parse_bool(v) for v in ("yes", "No", "TRUE", "f", "1", "0")] == [
        True, False, True, False, True, False]
    with pytest.raises(ValueError, match="not yes/no"):
        parse_bool("maybe")
    assert split_tags(" vip, book-club ,, ") == ["vip", "book-club"]
    assert split_name("Ada  King Lovelace") == ("Ada", "King Lovelace")
    assert split_name("Cher") == ("Cher", None)
    assert strip_guard("'+15035550142") == "+15035550142"
    assert strip_guard("O'Brien") == "O'Brien"


def test_consent_needs_an_explicit_mapping():
    read = consent_reader({"Bounced": "cleaned", "yes": "subscribed"})
    assert read("BOUNCED") == "cleaned" and read("yes") == "subscribed"
    assert read("unsubscribed") == "unsubscribed"  # canonical names stand for themselves
    assert read("unknown") is None and read("true") is None


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("a,b,c\n1,2,3\n", ","),
        ("a;b;c\n1;2,5;3\n", ";"),
        ("Datum;Betrag (EUR, inkl. MwSt.)\n01.01.2026;1,00\n", ";"),
        ("a\tb\n1\t2\n", "\t"),
        ("a|b\n1|2\n", "|"),
        (" customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n",
         "whitespace"),
        ('"Name, full",Email\n"Lovelace, Ada",ada@example.com\n', ","),
        ("single\nvalue\n", ","),
        ("", ","),
    ],
)
def test_sniff_delimiter(sample, expected):
    assert sniff_delimiter(sample) == expected


def test_encoding_detection(tmp_path):
    cases = {
        "utf8.csv": ("a,b\nZoë,1\n".encode(), "utf-8"),
        "bom.csv": ("\ufeffa,b\nZoë,1\n".encode(), "utf-8-sig"),
        "cp1252.csv": ("a,b\nZoë,€1\n".encode("cp1252"), "cp1252"),
        # 0x81 is undefined in Windows-1252: only Latin-1 reads every byte.
        "latin1.csv": (b"a,b\nZo\x81,1\n", "latin-1"),
        "utf16.csv": ("a\tb\nZoë\t1\n".encode("utf-16"), "utf-16"),
    }
    for name, (data, encoding) in cases.items():
        (tmp_path / name).write_bytes(data)
        info = inspect_file(tmp_path / name, "auto")
        assert info.encoding == encoding, name
        assert info.problem is None
    # The hash is of the bytes, so it names the content whatever the encoding.
    assert inspect_file(tmp_path / "bom.csv", "auto").sha256 == hashlib.sha256(
        cases["bom.csv"][0]).hexdigest()


def test_named_encoding_reports_the_line_of_the_first_bad_byte(tmp_path):
    (tmp_path / "f.csv").write_bytes(b"a,b\n1,2\n3,\xe9\n")
    info = inspect_file(tmp_path / "f.csv", "utf-8")
    assert info.encoding is None and info.problem_line == 3
    assert info.problem.startswith("not valid utf-8: invalid continuation byte")


def test_row_keys_are_exact_whatever_the_filter_says(monkeypatch):
    header = ["customer", "date", "amount"]
    rows = [["C1", "d1", "1"], ["C2", "d1", "1"], ["C1", "d1", "1"], ["C3", "d2", "5"],
            ["C1", "d1", "1 "]]

    def keys_with(bloom_says: bool | None) -> list[str]:
        if bloom_says is not None:
            monkeypatch.setattr(dedupe._Bloom, "add", lambda self, value: bloom_says)
        keys = RowKeys(header)
        keys.scan(rows, expected=len(rows))
        return [keys.key(row) for row in rows]

    real = keys_with(None)
    # Every row a false positive, or the filter never firing for unique rows: same keys.
    assert keys_with(True) == real
    suffixes = [k.rsplit("-", 1)[1] for k in real]
    assert suffixes == ["0", "0", "1", "0", "2"]  # surrounding spaces do not make a new row
    assert len(set(real)) == 5


def test_row_keys_ignore_column_order():
    a = RowKeys(["customer", "date", "amount"])
    b = RowKeys(["amount", "customer", "date"])
    a.scan([], 0)
    b.scan([], 0)
    assert a.key(["C1", "2026-02-01", "10.00"]) == b.key(["10.00", "C1", "2026-02-01"])


# -- config ----------------------------------------------------------------------------------


def validate(table: dict, tmp_path) -> PosCsvConfig:
    return PosCsvConfig.model_validate(table, context={"base_dir": tmp_path})


def test_path_is_relative_to_the_config_folder(tmp_path):
    config = validate({"path": "exports/*.csv", "preset": "square_items"}, tmp_path)
    assert config.path == tmp_path / "exports" / "*.csv"
    assert config.resolved_stream() == "orders"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"preset": "lightspeed"}, "Input should be 'square_customers'"),
        ({"preset": "square_items", "encoding": "klingon"}, "unknown encoding 'klingon'"),
        ({"preset": "square_items", "date_format": "dd/mm"}, "unknown date format 'dd/mm'"),
        ({"preset": "square_items", "delimiter": ":"}, "Input should be 'auto'"),
        ({"preset": "square_items", "colour": "red"}, "Extra inputs are not permitted"),
        ({"preset": "square_items", "mapping": {"favourite": "X"}},
         "mapping: unknown field(s) favourite for the orders stream"),
        ({"preset": "square_customers", "mapping": {"total": "X"}},
         "mapping: unknown field(s) total for the customers stream"),
        ({"preset": "square_customers", "stream": "orders"},
         "stream 'orders' contradicts preset 'square_customers'"),
        ({"mapping": {"email": "E"}}, "give a preset or stream"),
        ({"preset": "square_customers", "order_attributes": {"store": "Location"}},
         "order_attributes: only an orders stream"),
        ({"preset": "square_items", "header": False}, "header = false needs columns"),
        ({"preset": "square_items", "columns": ["a"]}, "columns names a headerless file"),
        ({"stream": "customers", "mapping": {"first_name": "F"}},
         "a customers stream needs customer_key, email or phone"),
        ({"stream": "orders", "mapping": {"customer_key": "c", "total": "t"}},
         "an orders stream needs ordered_at"),
        ({"stream": "orders", "mapping": {"customer_key": "c", "ordered_at": "d"}},
         "an orders stream needs total, amount or price"),
        ({"stream": "orders", "mapping": {"ordered_at": "d", "total": "t"}},
         "an orders stream needs customer_key, email or phone"),
        ({"preset": "square_items", "consent_values": {"yes": "maybe"}},
         "Input should be 'subscribed'"),
    ],
)
def test_config_errors(table, message, tmp_path):
    with pytest.raises(ValidationError) as excinfo:
        validate({"path": "x.csv", **table}, tmp_path)
    assert message in str(excinfo.value)


def test_a_bad_table_is_a_config_error_naming_the_key(tmp_path):
    (tmp_path / "segsync.toml").write_text(
        '[sources.square]\ntype = "pos_csv"\npath = "items.csv"\npreset = "square_items"\n'
        'encoding = "klingon"\n'
    )
    settings = load_settings(tmp_path / "segsync.toml")
    cls = load_plugins().source_class("pos_csv")
    with pytest.raises(ConfigError) as excinfo:
        build_connector("sources", "square", settings.sources["square"], cls, settings)
    assert "sources.square.encoding: unknown encoding 'klingon'" in str(excinfo.value)


def test_a_source_is_built_from_a_config_file(tmp_path):
    (tmp_path / "segsync.toml").write_text(
        '[sources.cdnow]\ntype = "pos_csv"\npath = "data/cdnow.txt"\nstream = "orders"\n'
        'delimiter = "whitespace"\n'
        '[sources.cdnow.mapping]\ncustomer_key = "customer_id"\nordered_at = "date"\n'
        'total = "dollar_value"\n'
    )
    settings = load_settings(tmp_path / "segsync.toml")
    cls = load_plugins().source_class("pos_csv")
    source = build_connector("sources", "cdnow", settings.sources["cdnow"], cls, settings)
    assert source.config.path == tmp_path / "data" / "cdnow.txt"
