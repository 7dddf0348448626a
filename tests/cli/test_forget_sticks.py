"""Erasure that sticks: after ``segsync forget``, pulling the same exports again (or a new export
still holding the person) does not bring them back, and the store never holds their identifiers
again — not in a table, not in a freed page, not in the write-ahead log."""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
from pathlib import Path

from segsync.core import store
from segsync.core.store import open_store
from segsync.core.sync.forget import forget

# The module: segsync.core.sync exports the function under the same name.
erasure = importlib.import_module("segsync.core.sync.forget")


def _person(db_path: Path, email: str) -> dict[str, list[str]]:
    """Every form of the person's identifiers the store holds: normalised and as exported."""
    db = open_store(db_path)
    person_id = db.execute("SELECT person_id FROM identity_links WHERE value = ?",
                           [email]).fetchone()[0]
    forms: dict[str, list[str]] = {"normalised": [], "raw": []}
    for row in db.execute("SELECT email, phone, email_raw, phone_raw FROM customers "
                          "WHERE person_id = ?", [person_id]):
        forms["normalised"] += [v for v in row[:2] if v]
        forms["raw"] += [v.strip() for v in row[2:] if v and v.strip()]
    db.close()
    return forms


def _store_bytes(folder: Path) -> bytes:
    """The database and its WAL and shared-memory files, lower-cased for the scan."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob("segsync.db*"))).lower()


def _add_order_of(demo: Path, email: str) -> None:
    """One more order of the person in the Shopify orders export: a later export that still
    holds them, as the source does until someone erases them there."""
    source = demo / "examples" / "exports" / "shopify-orders_export_1.csv"
    with source.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    theirs = [r for r in rows[1:] if r[1].lower() == email]
    assert theirs, f"{email} has no Shopify order in the demo export"
    new = list(theirs[0])
    new[0] = "#9999"
    with source.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([*rows, new])


def _shopify_customer(demo: Path) -> str:
    """An email address with Shopify orders and a record in the Shopify customers export."""
    exports = demo / "examples" / "exports"
    with (exports / "shopify-orders_export_1.csv").open(newline="", encoding="utf-8-sig") as fh:
        ordering = {r["Email"].lower() for r in csv.DictReader(fh) if r["Email"]}
    with (exports / "shopify-customers_export.csv").open(newline="", encoding="utf-8-sig") as fh:
        return sorted(r["Email"].lower() for r in csv.DictReader(fh)
                      if r["Email"].lower() in ordering and r["Phone"])[0]


def test_a_repull_does_not_bring_an_erased_person_back(demo, cli):
    assert cli("run").code == 0
    email = _shopify_customer(demo)
    forms = _person(demo / "segsync.db", email)
    assert forms["raw"] and any("@" not in v for v in forms["normalised"]), forms  # has a phone

    forgotten = cli("forget", email, "--json")
    assert forgotten.code == 0, forgotten.stderr
    assert json.loads(forgotten.stdout)["suppressed"] >= 3  # email, phone, record keys
    # Right away, nothing of them is left in the files but the keys the next run removes.
    db = open_store(demo / "segsync.db")
    pending = {r[0] for r in db.execute("SELECT key FROM sync_state")}
    db.close()
    stored = _store_bytes(demo)
    for value in {*forms["normalised"], *forms["raw"]} - pending:
        assert value.lower().encode() not in stored, value

    # The very same exports, read again from scratch.
    pulled = cli("pull", "--full-refresh", "--json")
    assert pulled.code == 0, pulled.stderr
    dropped = {s["source"]: s["suppressed"] for s in json.loads(pulled.stdout)["sources"]}
    assert dropped["shopify_orders"] >= 1 and dropped["shopify_customers"] >= 1, dropped
    assert "records of erased people dropped unstored" in pulled.stderr
    # A later export still holding them (a new order), pulled as usual.
    _add_order_of(demo, email)
    pulled = cli("pull", "--json")
    assert pulled.code == 0, pulled.stderr
    dropped = {s["source"]: s["suppressed"] for s in json.loads(pulled.stdout)["sources"]}
    assert dropped["shopify_orders"] >= 2, dropped  # the old orders and the new one

    db = open_store(demo / "segsync.db")
    for value in forms["normalised"]:
        assert db.execute("SELECT count(*) FROM identity_links WHERE value = ?",
                          [value]).fetchone()[0] == 0, value
        assert db.execute("SELECT count(*) FROM customers WHERE email = ? OR phone = ?",
                          [value, value]).fetchone()[0] == 0, value
    assert db.execute("SELECT count(*) FROM orders WHERE key = '#9999'").fetchone()[0] == 0
    db.close()

    # Runs go on: the person leaves every target, and the other people are all still there.
    # The run that removes them logs each removal under a stand-in, not their address.
    assert cli("run", "--allow-large-removals").code == 0
    stored = _store_bytes(demo)
    for value in {*forms["normalised"], *forms["raw"]}:
        assert value.lower().encode() not in stored, value

    listed = cli("forget", "--list", "--json")
    assert listed.code == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert report["suppressed"]["email"] == 1 and report["suppressed"]["phone"] >= 1
    assert report["suppressed"]["record"] >= 2  # a Shopify customer, a Shopify guest key
    assert report["records_dropped"] >= 3
    assert "suppressed: 1 emails" in cli("forget", "--list").stdout
    # The report's data-quality section counts the same records, and names no identifier.
    assert cli("report", "--out", demo / "report.html").code == 0
    page = (demo / "report.html").read_text(encoding="utf-8")
    assert f'data-erased-dropped="{report["records_dropped"]}"' in page
    assert email not in page.lower()


def test_the_list_holds_no_identifier(demo, cli):
    assert cli("run").code == 0
    email = _shopify_customer(demo)
    assert cli("forget", email).code == 0
    db = open_store(demo / "segsync.db")
    rows = db.execute("SELECT digest, kind FROM suppressions").fetchall()
    db.close()
    assert rows and all(len(d) == 64 and email not in d for d, _ in rows)
    # Keyed: another store's digest of the same address differs (a salt per store).
    other = demo / "other"
    other.mkdir()
    (other / "segsync.toml").write_text(
        (demo / "segsync.toml").read_text().replace('"examples/', '"../examples/'))
    assert cli("--config", other / "segsync.toml", "pull").code == 0
    assert cli("--config", other / "segsync.toml", "forget", email).code == 0
    db = open_store(other / "segsync.db")
    theirs = {d for d, _ in db.execute("SELECT digest, kind FROM suppressions")}
    db.close()
    assert theirs and not theirs & {d for d, _ in rows}


def test_everyone_else_still_imports(demo, cli):
    assert cli("run").code == 0
    db = open_store(demo / "segsync.db")
    before = db.execute("SELECT count(*) FROM people").fetchone()[0]
    db.close()
    email = _shopify_customer(demo)
    assert cli("forget", email).code == 0
    assert cli("pull", "--full-refresh").code == 0
    db = open_store(demo / "segsync.db")
    assert db.execute("SELECT count(*) FROM people").fetchone()[0] == before - 1
    db.close()


def test_forget_needs_an_identifier_or_list(demo, cli):
    result = cli("forget")
    assert result.code == 2
    assert "--list" in result.stderr


def test_erasure_leaves_nothing_where_sqlite_does_not_zero_by_default(demo, cli, monkeypatch):
    """Debian's SQLite zeroes deleted content by default, most builds do not. Here every
    connection has ``secure_delete`` OFF, as there, through pulls, runs and feature builds that
    free pages holding the person; after the erasure none of them is in the files, nor after
    the run that removes them from the targets."""
    opened = store.Database

    def without_zeroing(*args, **kwargs):
        db = opened(*args, **kwargs)
        db.execute("PRAGMA secure_delete = OFF")
        return db

    monkeypatch.setattr(store, "Database", without_zeroing)
    assert cli("run").code == 0
    assert cli("pull", "--full-refresh").code == 0
    assert cli("run").code == 0
    email = _shopify_customer(demo)
    forms = _person(demo / "segsync.db", email)
    values = {*forms["normalised"], *forms["raw"]}
    db = open_store(demo / "segsync.db")
    assert db.execute("PRAGMA secure_delete").fetchone()[0] == 0
    pending = {r[0] for r in db.execute("SELECT key FROM sync_state")}
    db.close()

    assert cli("forget", email).code == 0
    stored = _store_bytes(demo)
    for value in values - pending:
        assert value.lower().encode() not in stored, value
    assert cli("run", "--allow-large-removals").code == 0
    stored = _store_bytes(demo)
    for value in values:
        assert value.lower().encode() not in stored, value


def test_the_log_keeps_a_keyed_stand_in_not_a_plain_hash(demo, cli):
    """An unkeyed hash of an email is found again by hashing a list of emails."""
    assert cli("run").code == 0
    db = open_store(demo / "segsync.db")
    email = db.execute("SELECT key FROM sync_log WHERE key LIKE '%@%' LIMIT 1").fetchone()[0]
    logged = db.execute("SELECT count(*) FROM sync_log WHERE key = ?", [email]).fetchone()[0]
    db.close()
    assert cli("forget", email).code == 0
    db = open_store(demo / "segsync.db")
    stand_ins = {r[0] for r in db.execute("SELECT DISTINCT key FROM sync_log "
                                          "WHERE key LIKE 'forgotten:%'")}
    assert db.execute("SELECT count(*) FROM sync_log WHERE key IN "
                      f"({','.join('?' * len(stand_ins))})", [*stand_ins]).fetchone()[0] >= logged
    db.close()
    plain = "forgotten:" + hashlib.sha256(email.encode()).hexdigest()[:16]
    assert stand_ins and plain not in stand_ins


def test_no_table_keeps_a_row_of_the_erased_person(demo, cli):
    """Every table with a ``person_id`` column, present and future: only the id's mark in
    ``dirty_people`` (so the next run drops them from segments and targets) may stay."""
    assert cli("run").code == 0
    email = _shopify_customer(demo)
    db = open_store(demo / "segsync.db")
    [(person_id,)] = db.execute("SELECT person_id FROM identity_links WHERE value = ?",
                                [email]).fetchall()
    tables = [t for t in db.table_names()
              if "person_id" in {c.name for c in db[t].columns}]
    assert {"prediction_inputs", "person_expiry", "person_features"} <= set(tables)
    assert db.execute("SELECT count(*) FROM prediction_inputs WHERE person_id = ?",
                      [person_id]).fetchone()[0] == 1
    db.close()

    assert cli("forget", email).code == 0
    db = open_store(demo / "segsync.db")
    left = {t: n for t in tables if t != "dirty_people" and (n := db.execute(
        f"SELECT count(*) FROM [{t}] WHERE person_id = ?", [person_id]).fetchone()[0])}
    db.close()
    assert left == {}


def test_the_store_is_rewritten_only_when_something_was_erased(demo, cli):
    """The rewrite takes about as long as copying the store: an address nobody holds (a
    typo, a request repeated) adds it to the suppression list without one."""
    assert cli("pull").code == 0
    db = open_store(demo / "segsync.db")
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        unknown = forget(db, "nobody-here@example.org", "US")
        assert unknown.people == 0 and unknown.suppressed > 0
        assert "VACUUM" not in statements
        forget(db, _shopify_customer(demo), "US")
        assert "VACUUM" in statements
    finally:
        db.conn.set_trace_callback(None)
        db.close()


def test_the_run_that_removes_an_erased_person_rewrites_the_store(demo, cli, monkeypatch):
    """That run deletes the person's key from the baselines and logs it before scrubbing it:
    copies that page slack may keep on an SQLite that does not zero deleted content."""
    assert cli("run").code == 0
    db = open_store(demo / "segsync.db")
    synced = db.execute("SELECT min(key) FROM sync_state WHERE key LIKE '%@%'").fetchone()[0]
    db.close()
    assert json.loads(cli("forget", synced, "--json").stdout)["pending_removals"] >= 1
    rewrites: list[object] = []
    rewrite = erasure._rewrite
    monkeypatch.setattr(erasure, "_rewrite", lambda db: (rewrites.append(db), rewrite(db)))
    assert cli("run", "--allow-large-removals").code == 0
    assert len(rewrites) == 1
    assert cli("run").code == 0  # nothing more to scrub: no second rewrite
    assert len(rewrites) == 1
