"""The staged path stores exactly what the record path stores, and validates each value once.

Every test pulls the same export twice, once through the staged path (``pos_csv``'s
:func:`~segsync.connectors.pos_csv.staged.offer`) and once record by record (the offer
withdrawn), and compares the canonical dumps of :mod:`store_snapshot` table by table.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from store_snapshot import dump

import segsync.connectors.pos_csv.source as pos_source
import segsync.core.ingest.staged as staged_module
from segsync.connectors.pos_csv.config import PosCsvConfig
from segsync.connectors.pos_csv.source import PosCsvSource
from segsync.connectors.pos_csv.staged import offer as staged_offer
from segsync.core.ingest.pull import pull_sources
from segsync.core.ingest.stored import encode, object_writer
from segsync.core.ingest.suppress import suppress
from segsync.core.runs import recorded
from segsync.core.settings import Settings
from segsync.core.store import open_store

HEADER = "order_id,customer,email,phone,billing phone,name,date,amount,price,qty,sku,tier,store\n"
ROWS = [
    "A1,C1,Ann@Example.com,(415) 555-0101,,Ann Lee,2026-05-01,12.50,,,SKU-1,gold,north",
    "A2,C1,ann@example.com,,,Ann Lee,2026-05-02 10:30:00,-4.00,,,SKU-2,,north",
    "A3,C2,bad@@example.com,555,,Bo,2026-05-03,7,,,,,",
    "A4,,guest@example.com,,,,2026-05-04,3.10,,,,,",
    "A5,,Guest@Example.com,,,,2026-05-05,3.20,,,,,",
    "A6,,,,(212) 555-0199,,2026-05-06,1.00,,,,,",
    "A7,,not-an-email,,,,2026-05-06,1.00,,,,,",
    "A8,C3,c3@example.com,'4155550102,,Cy Dee Ess,2026-05-07,,2.25,3,SKU-3,,south",
    "A9,C4,c4@example.com,,,,2026-05-08,1.149.00,,,,,",
    "A10,C4,c4@example.com,,,,2026-13-08,1.00,,,,,",
    ",C5,c5@example.com,,,,2026-05-09,1.00,,,,,",
    "A11,C5,c5@example.com,,,,,1.00,,,,,",
    "A12,C6,c6@example.com,,,,2026-05-10,,,,,,",
    "A13,,,,,,2026-05-11,1.00,,,,,",
    "A14,C7,c7@example.com,,,,2026-05-12,1.00,,,,,,extra",
    "A15,C8,c8@example.com",
    "A16,C9,c9@example.com,,,,2026-05-13,($33.62),,,,,",
    "A17,C1,ANN@example.com,,,,2026-05-14,5,,,SKU-1,,",
]
MAPPING = {"order_key": "order_id", "customer_key": "customer", "email": "email",
           "phone": ["phone", "billing phone"], "full_name": "name", "ordered_at": "date",
           "total": "amount", "price": "price", "quantity": "qty", "sku": "sku"}


def _pull(tmp: Path, name: str, csv_path: Path, *, full: bool = False,
          erase: list[tuple[str, str]] | None = None, times: int = 1) -> tuple[Path, list]:
    db_path = tmp / f"{name}.db"
    settings = Settings.model_validate({"store": {"path": str(db_path), "timezone":
                                                  "America/Los_Angeles"}})
    db = open_store(db_path)
    if erase:
        with db.atomic():
            suppress(db, erase)
    config = PosCsvConfig.model_validate({
        "type": "pos_csv", "path": str(csv_path), "stream": "orders", "currency": "USD",
        "link_namespace": "pos", "mapping": MAPPING, "attributes": {"tier": "tier"},
        "order_attributes": {"store": "store"}})
    counts = []
    for _ in range(times):
        with recorded(db, "pull") as run:
            results = pull_sources(db, settings, {"shop": PosCsvSource("shop", config, tmp)},
                                   run.id, full_refresh=full)
        counts.append(results[0].as_dict())
    db.close()
    return db_path, counts


def _both(tmp: Path, monkeypatch: pytest.MonkeyPatch, rows: list[str], **kw) -> tuple:
    csv_path = tmp / "orders.csv"
    csv_path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    taken = []
    real = pos_source.offer

    def spy(*args):
        made = real(*args)
        taken.append(made)
        return made

    monkeypatch.setattr(pos_source, "offer", spy)
    staged, staged_counts = _pull(tmp, "staged", csv_path, **kw)
    monkeypatch.setattr(pos_source, "offer", lambda *args: None)
    record, record_counts = _pull(tmp, "record", csv_path, **kw)
    return taken, dump(staged), dump(record), staged_counts, record_counts


def _same(a: dict[str, str], b: dict[str, str]) -> None:
    for table in a:
        assert a[table] == b[table], table


def test_a_staged_file_stores_what_the_record_path_stores(tmp_path, monkeypatch):
    taken, staged, record, sc, rc = _both(tmp_path, monkeypatch, ROWS)
    assert taken and taken[0].result is not None, "the staged path was not taken"
    _same(staged, record)
    assert sc == rc
    assert "bad amount in column 'amount'" in staged["rejects"]
    assert staged["people"] and "refund" in staged["orders"]


def test_a_re_pull_changes_nothing_and_validates_nothing_again(tmp_path, monkeypatch):
    taken, staged, record, sc, rc = _both(tmp_path, monkeypatch, ROWS, full=True, times=2)
    _same(staged, record)
    assert sc == rc and sc[1]["customers"] == sc[1]["orders"] == 0 and sc[1]["unchanged"]

    def refuse(*args):
        raise AssertionError(f"validated again: {args}")

    monkeypatch.setattr(staged_module, "normalise_email", refuse)
    monkeypatch.setattr(staged_module, "normalise_phone", refuse)
    monkeypatch.setattr(pos_source, "offer", staged_offer)
    _, counts = _pull(tmp_path, "staged", tmp_path / "orders.csv", full=True)
    assert counts[0]["unchanged"] == sc[1]["unchanged"]


def test_erased_people_are_dropped_and_counted_as_on_the_record_path(tmp_path, monkeypatch):
    erase = [("email", "ann@example.com"), ("phone", "+12125550199"),
             ("record", "record\x1fshop\x1fA9")]
    taken, staged, record, sc, rc = _both(tmp_path, monkeypatch, ROWS, erase=erase)
    assert taken[0].result is not None
    _same(staged, record)
    assert sc == rc and sc[0]["suppressed"] >= 4
    assert "ann@example.com" not in staged["customers"].lower()


def test_repeated_order_ids_are_declined_and_read_record_by_record(tmp_path, monkeypatch):
    rows = [*ROWS, "A1,C1,ann@example.com,,,,2026-05-01,2.00,,,SKU-9,,"]
    taken, staged, record, sc, rc = _both(tmp_path, monkeypatch, rows)
    assert taken[0].result is None
    _same(staged, record)


_VALUES = st.one_of(st.none(), st.text(), st.integers(), st.floats(allow_nan=True),
                    st.booleans())


@given(st.dictionaries(st.text(min_size=1, max_size=8), _VALUES, max_size=8))
def test_the_fixed_key_writer_writes_what_the_encoder_writes(row):
    # The staged path hashes orders with it; the record path hashes with ``encode``.
    names = list(row)
    assert object_writer(names)([row[n] for n in names]) == encode(row)


def test_a_staged_pull_leaves_the_connection_as_it_found_it(tmp_path):
    # The bulk settings (a bigger page cache, no cyclic GC) last only as long as the step.
    import gc

    csv_path = tmp_path / "orders.csv"
    csv_path.write_text(HEADER + "\n".join(ROWS) + "\n", encoding="utf-8")
    db = open_store(tmp_path / "store.db")
    settings = Settings.model_validate({"store": {"path": str(tmp_path / "store.db")}})
    config = PosCsvConfig.model_validate({"type": "pos_csv", "path": str(csv_path),
                                          "stream": "orders", "mapping": MAPPING})
    sizes = [db.execute(f"PRAGMA {s}.cache_size").fetchone()[0] for s in ("main", "temp")]
    with recorded(db, "pull") as run:
        result = pull_sources(db, settings, {"shop": PosCsvSource("shop", config, tmp_path)},
                              run.id)[0]
    assert result.counts.orders and gc.isenabled()
    assert [db.execute(f"PRAGMA {s}.cache_size").fetchone()[0] for s in ("main", "temp")] == sizes
    assert not db.execute("SELECT name FROM temp.sqlite_master").fetchall()


def test_a_file_the_csv_module_cannot_finish_is_declined_and_reported_as_before(
        tmp_path, monkeypatch):
    # An unclosed quote runs past the csv module's field size limit: csv.Error mid-file.
    rows = [*ROWS[:3], 'A90,C1,"ann@example.com,,,,2026-05-01,1.00,,,,,', *["y" * 1000] * 140]
    taken, staged, record, sc, rc = _both(tmp_path, monkeypatch, rows)
    assert taken[0].result is None
    _same(staged, record)
    assert sc == rc and "unclosed quote" in staged["rejects"]
