"""Writing a source's records into the store: normalised, batched, idempotent.

Every record is upserted on the source's own key and carries a hash of its stored form, so
re-pulling identical data rewrites nothing (the upsert's ``WHERE record_hash != …`` skips it)
and the counts say what really changed. Records are buffered and written in batches inside
one transaction each; a cursor or a finished file is recorded in the same transaction as the
last records before it, so a crash never stores a position past unwritten data. Records of
people erased by ``segsync forget`` are dropped before anything of them is buffered
(:mod:`.suppress`), and only counted.
"""

from __future__ import annotations

import datetime as dt
import operator
import zoneinfo
from dataclasses import asdict, dataclass
from typing import Any

from sqlite_utils import Database

from ..records import Cursor, Customer, FileSeen, Order, Record, Rejected, StagedFile
from ..store import utcnow
from .bulk import page_cache, paused_gc
from .identifiers import normalise_email, normalise_phone
from .staged import StagedStore
from .stored import record_hash, stored_json
from .suppress import Suppressions, record_value


@dataclass
class IngestCounts:
    """What one pull of one source did to the store."""

    customers: int = 0
    orders: int = 0
    unchanged: int = 0
    rejected: int = 0
    files_imported: int = 0
    files_skipped: int = 0
    #: Records of erased people, dropped unstored (see :mod:`.suppress`).
    suppressed: int = 0


class StoreWriter:
    """Buffers one source's records and writes them in batches.

    Use as a context manager, or call :meth:`flush` at the end: records still buffered when
    the writer is dropped without a flush are not written (a failed pull leaves no half batch).
    """

    def __init__(
        self,
        db: Database,
        source: str,
        *,
        run_id: int | None,
        timezone: str,
        default_region: str,
        batch_size: int = 20000,
    ):
        self.db = db
        self.source = source
        self.run_id = run_id
        self.tz = zoneinfo.ZoneInfo(timezone)
        self.region = default_region
        self.batch_size = batch_size
        self.counts = IngestCounts()
        self._customers: dict[str, dict[str, Any]] = {}
        self._orders: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        self._raw: list[tuple[str, str, str | None, str]] = []
        self._rejects: list[dict[str, Any]] = []
        self._marks: list[Cursor | FileSeen] = []
        self._last_raw: tuple[dict[str, str], dict[str, str], str] | None = None
        self._times: dict[tuple[dt.datetime, int], tuple[str, str]] = {}
        self._suppressions = Suppressions(db, default_region)
        #: Keys of this pull's customer records dropped as suppressed: their orders go too.
        self._dropped: set[str] = set()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.flush()

    # -- conversion ---------------------------------------------------------------------------

    def _utc(self, value: dt.datetime | None) -> str | None:
        if value is None:
            return None
        return self._order_times(value)[0]

    def _order_times(self, value: dt.datetime) -> tuple[str, str]:
        """``(UTC text, local date)`` of a datetime, cached: exports repeat their dates.

        Equal datetimes give equal results (aware ones are equal only as the same instant);
        ``fold`` is in the key because it does not take part in equality.
        """
        key = (value, value.fold)
        cached = self._times.get(key)
        if cached is None:
            if len(self._times) >= 100_000:
                self._times.clear()
            cached = self._times[key] = (self._utc_text(value), self._local_date(value))
        return cached

    def _utc_text(self, value: dt.datetime) -> str:
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.tz)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _local_date(self, value: dt.datetime) -> str:
        if value.tzinfo is not None:
            value = value.astimezone(self.tz)
        return value.date().isoformat()

    def _customer_row(
        self,
        c: Customer,
        *,
        is_guest: bool = False,
        email: tuple[str | None, str | None] | None = None,
        phone: tuple[str | None, str | None] | None = None,
    ) -> dict[str, Any]:
        """The stored row of a customer record; ``email`` / ``phone`` are their normalised
        forms when the caller has them already (the staged path)."""
        email, email_error = email if email is not None else normalise_email(c.email)
        phone, phone_error = phone if phone is not None else normalise_phone(c.phone,
                                                                             self.region)
        row = {
            "source": self.source,
            "key": c.key,
            "link_id": c.link_id,
            "is_guest": int(is_guest),
            "email_raw": c.email,
            "email": email,
            "email_error": email_error,
            "phone_raw": c.phone,
            "phone": phone,
            "phone_error": phone_error,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "city": c.city,
            "region": c.region,
            "country": c.country,
            "postal_code": c.postal_code,
            "tags": stored_json(sorted({t.strip() for t in c.tags if t and t.strip()})),
            "birth_date": c.birth_date.isoformat() if c.birth_date else None,
            "gender": c.gender,
            "email_consent": c.email_consent,
            "email_consent_at": self._utc(c.email_consent_at),
            "sms_consent": c.sms_consent,
            "sms_consent_at": self._utc(c.sms_consent_at),
            "created_at": self._utc(c.created_at),
            "updated_at": self._utc(c.updated_at),
            "attributes": stored_json(c.attributes),
            "origin": c.origin,
        }
        row["record_hash"] = record_hash({k: v for k, v in row.items() if k != "origin"})
        row["changed_run"] = self.run_id
        return row

    def _guest_key(self, o: Order) -> str | None:
        email, _ = normalise_email(o.email)
        if email:
            return f"guest:{email}"
        phone, _ = normalise_phone(o.phone, self.region)
        if phone:
            return f"guest:{phone}"
        raw = (o.email or o.phone or "").strip().lower()
        return f"guest:{raw}" if raw else None

    # -- writing ------------------------------------------------------------------------------

    def write(self, record: Record) -> None:
        """Buffer one record, flushing when the batch is full."""
        if isinstance(record, Customer):
            self._add_customer(record)
        elif isinstance(record, Order):
            self._add_order(record)
        elif isinstance(record, Rejected):
            if self._suppressions and self._suppressions.mentions(record.raw):
                self.counts.suppressed += 1
                return
            self._rejects.append(
                {
                    "source": self.source,
                    "stream": record.stream,
                    "origin": record.origin,
                    "line": record.line,
                    "field": record.field,
                    "reason": record.reason,
                    "raw": stored_json(record.raw) if record.raw is not None else None,
                    "run_id": self.run_id,
                    "created_at": utcnow(),
                }
            )
            self.counts.rejected += 1
        elif isinstance(record, StagedFile):
            self._staged(record)
            return
        elif isinstance(record, (Cursor, FileSeen)):
            self._marks.append(record)
            # A mark must land with the records before it, so write them now.
            self.flush()
            return
        else:
            raise TypeError(f"a source yielded {type(record).__name__}, not a record")
        if len(self._customers) + len(self._orders) + len(self._rejects) >= self.batch_size:
            self.flush()

    def _staged(self, offer: StagedFile) -> None:
        """Load and store a whole file set-wise (:mod:`.staged`), in one transaction with its
        :class:`FileSeen`; a declined offer leaves ``result`` None and stores nothing."""
        self.flush()
        staged = StagedStore(self)
        try:
            with paused_gc(), page_cache(self.db), self.db.atomic():
                seen = offer.load(staged)
                if seen is not None:
                    staged.store()
                    self._write_mark(seen)
        finally:
            staged.close()
        offer.result = seen

    def _suppressed_customer(self, row: dict[str, Any]) -> bool:
        return self._suppressions.holds(row["email"], row["phone"], row["link_id"],
                                        record_value(self.source, row["key"]))

    def _add_customer(self, c: Customer, *, is_guest: bool = False) -> None:
        row = self._customer_row(c, is_guest=is_guest)
        if self._suppressions and self._suppressed_customer(row):
            self._dropped.add(c.key)
            # A guest customer is made by the store for its order: the order is what counts.
            self.counts.suppressed += not is_guest
            return
        self._customers[c.key] = row
        if c.raw is not None:
            self._raw.append(("customers", c.key, c.origin,
                              self._raw_json(c.raw, remember=True)))

    def _raw_json(self, raw: Any, *, remember: bool = False) -> str:
        """The JSON of a raw row, reusing the last customer's text when the row equals it.

        A file's first order of a customer carries the very raw row (the same dict) as the
        customer record yielded just before it. Only rows of plain strings are remembered, with
        a copy: the text is reused only for that same dict, still equal to the copy.
        """
        last = self._last_raw
        if last is not None and raw is last[0] and raw == last[1]:
            return last[2]
        text = stored_json(raw)
        if remember:
            plain = type(raw) is dict and all(
                type(k) is str and type(v) is str for k, v in raw.items())
            self._last_raw = (raw, dict(raw), text) if plain else None
        return text

    def _add_order(self, o: Order) -> None:
        customer_key = o.customer_key
        if customer_key is None:
            customer_key = self._guest_key(o)
            if customer_key is None:
                self.write(Rejected("orders", o.origin or o.key, "order has no customer key, "
                                    "email or phone", raw=o.raw))
                return
            if customer_key not in self._customers and customer_key not in self._dropped:
                self._add_customer(
                    Customer(key=customer_key, email=o.email, phone=o.phone, origin=o.origin),
                    is_guest=True,
                )
        if self._suppressions and self._suppressed_order(o, customer_key):
            self.counts.suppressed += 1
            return
        ordered_at, order_date = self._order_times(o.ordered_at)
        row = {
            "source": self.source,
            "key": o.key,
            "customer_key": customer_key,
            "name": o.name,
            "ordered_at": ordered_at,
            "order_date": order_date,
            "currency": o.currency,
            "total": round(float(o.total), 6),
            "refunded": round(float(o.refunded or 0), 6),
            "cancelled_at": self._utc(o.cancelled_at),
            "test": int(o.test),
            "financial_status": o.financial_status,
            "location": o.location,
            "channel": o.channel,
            "updated_at": self._utc(o.updated_at),
            "attributes": stored_json(o.attributes),
        }
        lines = [
            {
                "source": self.source,
                "order_key": o.key,
                "key": line.key,
                "title": line.title,
                "sku": line.sku,
                "vendor": line.vendor,
                "category": line.category,
                "product_tags": stored_json(sorted(set(line.product_tags))),
                "quantity": line.quantity,
                "price": line.price,
                "amount": line.amount,
            }
            for line in o.lines
        ]
        # The hash covers everything stored but the origin (a re-export moves rows around).
        row["record_hash"] = record_hash({"order": row, "lines": lines})
        row["origin"] = o.origin
        row["changed_run"] = self.run_id
        self._orders[o.key] = (row, lines)
        if o.raw is not None:
            self._raw.append(("orders", o.key, o.origin, self._raw_json(o.raw)))

    def _suppressed_order(self, o: Order, customer_key: str) -> bool:
        """An order of an erased person: its customer was dropped (in this pull or by key), or
        it carries an erased email or phone itself."""
        return customer_key in self._dropped or self._suppressions.holds(
            record_value(self.source, customer_key), record_value(self.source, o.key),
            normalise_email(o.email)[0], normalise_phone(o.phone, self.region)[0])

    def flush(self) -> None:
        """Write everything buffered in one transaction."""
        if not (self._customers or self._orders or self._rejects or self._marks or self._raw):
            return
        # A bigger page cache while writing a batch: its upserts probe several indexes at
        # random, and the default 2 MB cache turns that into re-reads of the same pages.
        cache = self.db.execute("PRAGMA cache_size").fetchone()[0]
        self.db.execute("PRAGMA cache_size = -65536")
        try:
            with self.db.atomic():
                self._flush_batch()
        finally:
            self.db.execute(f"PRAGMA cache_size = {int(cache)}")
        self._customers.clear()
        self._orders.clear()
        self._raw.clear()
        self._rejects.clear()
        self._marks.clear()

    def _flush_batch(self) -> None:
        self._flush_customers()
        self._flush_orders()
        if self._raw:
            self.db.conn.executemany(
                """INSERT INTO raw_records(source, stream, key, origin, data)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT(source, stream, key) DO UPDATE SET
                     origin = excluded.origin, data = excluded.data
                   WHERE raw_records.data != excluded.data""",
                [(self.source, *r) for r in self._raw],
            )
        if self._rejects:
            self._upsert("rejects", self._rejects, ("source", "stream", "origin"))
        for mark in self._marks:
            self._write_mark(mark)

    def _upsert(
        self,
        table: str,
        rows: list[dict[str, Any]],
        pk: tuple[str, ...],
        *,
        if_changed: bool = False,
    ) -> int:
        """Upsert rows; with ``if_changed`` only rows whose record_hash differs are rewritten."""
        columns = list(rows[0])
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in pk)
        where = f" WHERE {table}.record_hash != excluded.record_hash" if if_changed else ""
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT({', '.join(pk)}) DO UPDATE SET {updates}{where}"
        )
        # rowcount, not total_changes: the store's triggers log changed rows (m005), and
        # their writes are not the records'.
        return self.db.conn.executemany(sql, map(operator.itemgetter(*columns), rows)).rowcount

    def _flush_customers(self) -> None:
        if not self._customers:
            return
        rows = list(self._customers.values())
        changed = self._upsert("customers", rows, ("source", "key"), if_changed=True)
        self.counts.customers += changed
        self.counts.unchanged += len(rows) - changed

    def _flush_orders(self) -> None:
        if not self._orders:
            return
        rows = [order for order, _ in self._orders.values()]
        keys = [(self.source, r["key"]) for r in rows]
        # Find which orders really changed, so only their lines are replaced.
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS ingest_keys (key TEXT PRIMARY KEY)")
        self.db.execute("DELETE FROM temp.ingest_keys")
        self.db.conn.executemany("INSERT OR IGNORE INTO temp.ingest_keys VALUES (?)",
                                 [(k,) for _, k in keys])
        known = dict(
            self.db.execute(
                # CROSS JOIN pins the loop order: probe the orders primary key once per
                # buffered key, instead of scanning the source's orders for every batch.
                "SELECT o.key, o.record_hash FROM temp.ingest_keys k CROSS JOIN orders o "
                "ON o.source = ? AND o.key = k.key",
                [self.source],
            ).fetchall()
        )
        changed = [r for r in rows if known.get(r["key"]) != r["record_hash"]]
        self.counts.unchanged += len(rows) - len(changed)
        self.counts.orders += len(changed)
        if not changed:
            return
        self._upsert("orders", changed, ("source", "key"))
        self.db.conn.executemany(
            "DELETE FROM order_lines WHERE source = ? AND order_key = ?",
            [(self.source, r["key"]) for r in changed],
        )
        lines = [line for r in changed for line in self._orders[r["key"]][1]]
        if lines:
            self._upsert("order_lines", lines, ("source", "order_key", "key"))

    def _write_mark(self, mark: Cursor | FileSeen) -> None:
        if isinstance(mark, Cursor):
            self.db.execute(
                """INSERT INTO source_cursors(source, stream, value, updated_at)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT(source, stream) DO UPDATE SET
                     value = excluded.value, updated_at = excluded.updated_at""",
                [self.source, mark.stream, mark.value, utcnow()],
            )
        elif mark.skipped:
            self.counts.files_skipped += 1
        else:
            self.counts.files_imported += 1
            self.db.execute(
                """INSERT OR REPLACE INTO source_files(source, sha256, path, rows, rejected,
                   run_id, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                [self.source, mark.sha256, mark.path, mark.rows, mark.rejected, self.run_id,
                 utcnow()],
            )

    def summary(self) -> dict[str, Any]:
        return asdict(self.counts)
