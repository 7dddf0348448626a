"""Staged ingest: a whole file of orders written set-wise, not record by record.

A source with the bulk capability (:class:`~segsync.core.records.StagedFile`) loads one typed
row per order row into ``temp.staged_orders`` (schema below: the order's final values, a
``problem`` when the row is refused) and datetimes into ``temp.staged_times`` through
:meth:`StagedStore.time_id`. :meth:`StagedStore.store` then, in one transaction:

* normalises each *distinct* raw email and phone once, with the same normalisers the record
  path uses, through ``identifier_norms`` (m004): a value validated in an earlier pull is
  not validated again;
* makes one customer record per customer key (or guest key) from its first order row, exactly
  as :class:`~segsync.core.ingest.writer.StoreWriter` would, and upserts them in file order
  (person ids follow rowid order);
* hashes each order with the writer's hash (a SQL function over the row) and upserts only the
  changed ones with ``INSERT … SELECT … ON CONFLICT … WHERE record_hash !=``, then replaces
  their lines; the m005 triggers see every changed record as they do on the record path;
* stores rejected rows with their file, line, field and reason, and drops (and counts) the
  records of erased people like the record path.

The stored bytes equal the record path's: ``tests/ingest/test_staged.py`` compares both. Past
the record path's memory bounds the staged path is the consistent one: the record path
forgets which customers a file already yielded after 100,000 of them (and keeps guest
customers per 20,000-record batch), so on bigger files it re-yields customers, stores the raw
row of a later order for them and counts them ``unchanged``; the staged path makes each
customer once, from its first order row, as the record path does on smaller files.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ..records import Customer
from ..store import utcnow
from .identifiers import VERSIONS, normalise_email, normalise_phone
from .stored import object_writer, stored_json, text_hash
from .suppress import record_value

#: One row per order row of the file. ``line`` is where the row starts; a refused row has
#: ``problem`` (and ``problem_field``) and only ``origin``/``raw`` besides. Datetimes are ids
#: of ``staged_times``; ``attributes`` / ``customer_attributes`` / ``product_tags`` are the
#: stored JSON text; ``has_line`` says whether the row has an order line (key ``1``).
STAGED_ORDERS = """
CREATE TEMP TABLE staged_orders (
    line INTEGER PRIMARY KEY, origin TEXT NOT NULL, raw TEXT,
    problem_field TEXT, problem TEXT,
    key TEXT, customer_key TEXT, email TEXT, phone TEXT,
    name TEXT, currency TEXT, total REAL, refunded REAL,
    ordered_at INTEGER, cancelled_at INTEGER, updated_at INTEGER,
    test INTEGER, financial_status TEXT, location TEXT, channel TEXT, attributes TEXT,
    has_line INTEGER, title TEXT, sku TEXT, vendor TEXT, category TEXT, product_tags TEXT,
    quantity REAL, price REAL, amount REAL,
    first_name TEXT, last_name TEXT, city TEXT, region TEXT, country TEXT, postal_code TEXT,
    link_id TEXT, customer_attributes TEXT,
    -- filled by StagedStore.store:
    person_key TEXT, is_guest INTEGER, dropped INTEGER
)"""

_NORMS_VERSION_KEY = "identifier_norms_versions"

#: (stored order column, staged expression) for the orders upsert.
_ORDER_COLUMNS = (
    ("source", "?"), ("key", "s.key"), ("customer_key", "s.person_key"), ("name", "s.name"),
    ("ordered_at", "t.utc"), ("order_date", "t.local_date"), ("currency", "s.currency"),
    ("total", "py_round(s.total, 6)"), ("refunded", "py_round(s.refunded, 6)"),
    ("cancelled_at", "tc.utc"), ("test", "s.test"), ("financial_status", "s.financial_status"),
    ("location", "s.location"), ("channel", "s.channel"), ("updated_at", "tu.utc"),
    ("attributes", "s.attributes"),
)
_LINE_COLUMNS = ("title", "sku", "vendor", "category", "product_tags", "quantity", "price",
                 "amount")
_RAW_UPSERT = """ON CONFLICT(source, stream, key) DO UPDATE SET
    origin = excluded.origin, data = excluded.data WHERE raw_records.data != excluded.data"""
_write_order = object_writer([name for name, _ in _ORDER_COLUMNS])
_write_line = object_writer(["source", "order_key", "key", *_LINE_COLUMNS])
_TIMES = """staged_orders s JOIN staged_times t ON t.id = s.ordered_at
    LEFT JOIN staged_times tc ON tc.id = s.cancelled_at
    LEFT JOIN staged_times tu ON tu.id = s.updated_at"""


def _round(value: float | None, digits: int) -> float | None:
    # Python's rounding, not SQLite's: the stored floats must be the record path's.
    return None if value is None else round(float(value), digits)


class StagedStore:
    """The store side of one staged file, made by the writer for its source."""

    def __init__(self, writer: Any):
        # ``writer`` is the source's StoreWriter (not imported: it imports this module); the
        # staged path shares its counts, conversions, suppressions and upserts.
        self.writer = writer
        self.db = writer.db
        self._times: dict[tuple[dt.datetime, int], int] = {}
        self._time_rows: list[tuple[int, str, str]] = []
        conn = self.db.conn
        conn.create_function("py_round", 2, _round, deterministic=True)
        conn.create_function("order_hash", -1, self._order_hash, deterministic=True)
        self.db.execute("DROP TABLE IF EXISTS temp.staged_orders")
        self.db.execute("DROP TABLE IF EXISTS temp.staged_times")
        self.db.execute(STAGED_ORDERS)
        self.db.execute("CREATE TEMP TABLE staged_times "
                        "(id INTEGER PRIMARY KEY, utc TEXT, local_date TEXT)")

    def time_id(self, value: dt.datetime) -> int:
        """The ``staged_times`` id of a datetime (naive ones are in the store's time zone)."""
        key = (value, value.fold)
        found = self._times.get(key)
        if found is None:
            found = self._times[key] = len(self._times) + 1
            self._time_rows.append((found, *self.writer._order_times(value)))
        return found

    def json(self, value: Any) -> str:
        """The stored JSON text of a value (raw rows, attributes, tags)."""
        return stored_json(value)

    def close(self) -> None:
        self.db.execute("DROP TABLE IF EXISTS temp.staged_orders")
        self.db.execute("DROP TABLE IF EXISTS temp.staged_times")
        self.db.execute("DROP TABLE IF EXISTS temp.staged_changed")

    # -- identifiers ---------------------------------------------------------------------------

    def _norms(self, kind: str, region: str, sql: str) -> dict[str, tuple[str | None, str | None]]:
        """Raw value → (normalised, reason) for the distinct values ``sql`` selects, validating
        only those the cache does not hold yet."""
        db = self.db
        db.execute("DROP TABLE IF EXISTS temp.staged_raw")
        db.execute(f"CREATE TEMP TABLE staged_raw AS {sql}")
        known = {raw: (value, error) for raw, value, error in db.execute(
            "SELECT r.raw, n.value, n.error FROM temp.staged_raw r JOIN identifier_norms n "
            "ON n.kind = ? AND n.region = ? AND n.raw = r.raw", [kind, region])}
        missing = [r[0] for r in db.execute(
            "SELECT raw FROM temp.staged_raw r WHERE NOT EXISTS (SELECT 1 FROM identifier_norms "
            "n WHERE n.kind = ? AND n.region = ? AND n.raw = r.raw)", [kind, region])]
        db.execute("DROP TABLE temp.staged_raw")
        new = [(raw, *(normalise_email(raw) if kind == "email"
                       else normalise_phone(raw, region))) for raw in missing]
        db.conn.executemany("INSERT OR REPLACE INTO identifier_norms(kind, region, raw, value, "
                            "error) VALUES (?, ?, ?, ?, ?)",
                            [(kind, region, *row) for row in new])
        known.update((raw, (value, error)) for raw, value, error in new)
        return known

    def _check_versions(self) -> None:
        """Empty the cache if it was filled by other validator versions."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?",
                              [_NORMS_VERSION_KEY]).fetchone()
        if row is None or row[0] != VERSIONS:
            self.db.execute("DELETE FROM identifier_norms")
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                            [_NORMS_VERSION_KEY, VERSIONS])

    # -- storing -------------------------------------------------------------------------------

    def store(self) -> None:
        """Write the staged file into the store (call inside the writer's transaction)."""
        w, db = self.writer, self.db
        db.conn.executemany("INSERT INTO temp.staged_times VALUES (?, ?, ?)", self._time_rows)
        self._time_rows.clear()
        self._check_versions()
        ok = "problem IS NULL"
        emails = self._norms("email", "", f"SELECT DISTINCT email AS raw FROM temp.staged_orders "
                                         f"WHERE {ok} AND email IS NOT NULL")
        phones = self._norms("phone", w.region, "SELECT DISTINCT phone AS raw FROM "
                             f"temp.staged_orders WHERE {ok} AND phone IS NOT NULL")
        self._rejects()
        self._guest_keys(emails, phones)
        self._customers(emails, phones)
        if w._suppressions:
            self._drop_orders(emails, phones)
        self._orders()

    def _rejects(self) -> None:
        w = self.writer
        rows = self.db.execute(
            "SELECT origin, line, problem_field, problem, raw FROM temp.staged_orders "
            "WHERE problem IS NOT NULL ORDER BY line").fetchall()
        now, kept = utcnow(), []
        for origin, line, field, reason, raw in rows:
            if w._suppressions and raw is not None and w._suppressions.mentions(json.loads(raw)):
                w.counts.suppressed += 1
                continue
            kept.append({"source": w.source, "stream": "orders", "origin": origin, "line": line,
                         "field": field, "reason": reason, "raw": raw, "run_id": w.run_id,
                         "created_at": now})
        if kept:
            w._upsert("rejects", kept, ("source", "stream", "origin"))
        w.counts.rejected += len(kept)

    def _guest_keys(self, emails: dict, phones: dict) -> None:
        """Each order's customer: its customer key, or the guest key the writer would make."""
        self.db.execute("UPDATE temp.staged_orders SET person_key = customer_key, is_guest = 0 "
                        "WHERE problem IS NULL AND customer_key IS NOT NULL")
        guests = []
        for line, email, phone in self.db.execute(
                "SELECT line, email, phone FROM temp.staged_orders "
                "WHERE problem IS NULL AND customer_key IS NULL").fetchall():
            value = (emails[email][0] if email is not None else None) or (
                phones[phone][0] if phone is not None else None)
            guests.append((f"guest:{value or (email or phone or '').strip().lower()}", line))
        self.db.conn.executemany("UPDATE temp.staged_orders SET person_key = ?, is_guest = 1 "
                                 "WHERE line = ?", guests)

    def _customers(self, emails: dict, phones: dict) -> None:
        """One customer per person key from its first order row, upserted in file order."""
        w = self.writer
        firsts = self.db.execute(
            """SELECT s.person_key, s.is_guest, s.origin, s.raw, s.email, s.phone, s.link_id,
                      s.first_name, s.last_name, s.city, s.region, s.country, s.postal_code,
                      s.customer_attributes
               FROM temp.staged_orders s JOIN (
                   SELECT min(line) AS line FROM temp.staged_orders
                   WHERE problem IS NULL GROUP BY person_key) f ON f.line = s.line
               ORDER BY s.line""").fetchall()
        rows, raws = [], []
        for (key, guest, origin, raw, email, phone, link_id, first, last, city, region, country,
             postal, attributes) in firsts:
            if guest and key in w._dropped:
                continue
            c = Customer(key=key, email=email, phone=phone, link_id=link_id, first_name=first,
                         last_name=last, city=city, region=region, country=country,
                         postal_code=postal, origin=origin,
                         attributes=json.loads(attributes) if attributes else {})
            row = w._customer_row(
                c, is_guest=bool(guest),
                email=emails[email] if email is not None else (None, None),
                phone=phones[phone] if phone is not None else (None, None))
            if w._suppressions and w._suppressed_customer(row):
                w._dropped.add(key)
                w.counts.suppressed += not guest
                continue
            rows.append(row)
            if not guest:
                raws.append(("customers", key, origin, raw))
        if rows:
            changed = w._upsert("customers", rows, ("source", "key"), if_changed=True)
            w.counts.customers += changed
            w.counts.unchanged += len(rows) - changed
        self._raw(raws)

    def _drop_orders(self, emails: dict, phones: dict) -> None:
        """Orders of erased people: their customer was dropped, or they carry an erased key,
        email or phone (the writer's ``_suppressed_order``)."""
        w = self.writer
        assert w._suppressions
        dropped = []
        for line, person_key, key, email, phone in self.db.execute(
                # A keyed order's email and phone are its customer's, checked with them.
                "SELECT line, person_key, key, CASE WHEN is_guest THEN email END, "
                "CASE WHEN is_guest THEN phone END FROM temp.staged_orders "
                "WHERE problem IS NULL").fetchall():
            if not (person_key in w._dropped or w._suppressions.holds(
                    record_value(w.source, person_key), record_value(w.source, key),
                    emails[email][0] if email is not None else None,
                    phones[phone][0] if phone is not None else None)):
                continue
            dropped.append((line,))
        self.db.conn.executemany("UPDATE temp.staged_orders SET dropped = 1 WHERE line = ?",
                                 dropped)
        w.counts.suppressed += len(dropped)

    def _order_hash(self, *values: Any) -> str:
        """The writer's hash of an order (its stored row and lines, not its origin), written
        with the key order fixed once: ``{"lines": [...], "order": {...}}``."""
        n = len(_ORDER_COLUMNS)
        order = _write_order(values[:n])
        if not values[n]:
            return text_hash(f'{{"lines": [], "order": {order}}}')
        source, key = values[0], values[1]
        line = _write_line((source, key, "1", *values[n + 1:]))
        return text_hash(f'{{"lines": [{line}], "order": {order}}}')

    def _orders(self) -> None:
        """Hash every kept order in SQL, upsert the changed ones, replace their lines."""
        w, db, source = self.writer, self.db, self.writer.source
        kept = "s.problem IS NULL AND s.dropped IS NULL"
        exprs = ", ".join(expr for _, expr in _ORDER_COLUMNS)
        line_exprs = ", ".join(f"s.{c}" for c in _LINE_COLUMNS)
        db.execute("DROP TABLE IF EXISTS temp.staged_changed")
        db.execute(
            f"""CREATE TEMP TABLE staged_changed AS SELECT line, key, record_hash FROM (
                    SELECT s.line, s.key, order_hash({exprs}, s.has_line, {line_exprs})
                        AS record_hash
                    FROM {_TIMES} WHERE {kept}) AS h
                WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.source = ?
                    AND o.key = h.key AND o.record_hash = h.record_hash)""",
            [source, source])
        total = db.execute(f"SELECT count(*) FROM staged_orders s WHERE {kept}").fetchone()[0]
        changed = db.execute("SELECT count(*) FROM temp.staged_changed").fetchone()[0]
        w.counts.orders += changed
        w.counts.unchanged += total - changed
        columns = [name for name, _ in _ORDER_COLUMNS] + ["record_hash", "origin", "changed_run"]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in ("source", "key"))
        db.execute(
            f"""INSERT INTO orders ({', '.join(columns)})
                SELECT {exprs}, c.record_hash, s.origin, ?
                FROM temp.staged_changed c CROSS JOIN {_TIMES}
                WHERE s.line = c.line ORDER BY s.line
                ON CONFLICT(source, key) DO UPDATE SET {updates}""",
            [source, w.run_id])
        db.execute("DELETE FROM order_lines WHERE source = ? AND order_key IN "
                   "(SELECT key FROM temp.staged_changed)", [source])
        db.execute(
            f"""INSERT INTO order_lines (source, order_key, key, {', '.join(_LINE_COLUMNS)})
                SELECT ?, s.key, '1', {line_exprs} FROM temp.staged_changed c
                JOIN staged_orders s ON s.line = c.line WHERE s.has_line
                ORDER BY s.line""",
            [source])
        db.execute(
            f"""INSERT INTO raw_records(source, stream, key, origin, data)
                SELECT ?, 'orders', s.key, s.origin, s.raw FROM staged_orders s
                WHERE {kept} AND s.raw IS NOT NULL ORDER BY s.line
                {_RAW_UPSERT}""",
            [source])

    def _raw(self, rows: list[tuple[str, str, str, str]]) -> None:
        if rows:
            self.db.conn.executemany(
                f"""INSERT INTO raw_records(source, stream, key, origin, data)
                    VALUES (?, ?, ?, ?, ?) {_RAW_UPSERT}""",
                [(self.writer.source, *r) for r in rows])
