"""The staged path of an orders file: rows loaded in bulk, each distinct value parsed once.

For a file with one row per order id (no refund marker column, no separate time column) the
source does not build a record per row. It loads every row into ``temp.pos_stage`` in large
``executemany`` batches, each *distinct* cell of each mapped column cleaned and parsed once
with the file's own :class:`~.rows.RowReader` converters (a memo per column: measured, a
dictionary lookup per cell is several times cheaper than joining a mapping table per field),
and fills the store's ``staged_orders`` (:mod:`segsync.core.ingest.staged`) with one
``INSERT … SELECT`` that applies the order rules of :mod:`.orders` set-wise: which problem
refuses a row first, a refund's sign and key, a total taken from the line, the line's amount
from the total.
Reject reasons, fields and lines are the record path's. A file whose order ids repeat (a
line-item export), or any other shape, is declined and read record by record.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segsync.core.records import FileSeen, StagedFile

from .columns import ColumnPlan, Located, clean_header
from .config import PosCsvConfig
from .fields import GUARDED_KINDS, LINE_FIELDS, fields_for
from .orders import OrderAssembler
from .parse import split_name, strip_guard
from .reader import FileInfo, RowStream, open_text, sniff_delimiter
from .rows import _KIND_WORDS, RowReader, _raw, _raw_names, _width_problem

#: Kinds the staged path stores (an orders file's fields but the time of day).
_KINDS = frozenset({"key", "text", "ident", "money", "number", "datetime", "bool", "tags"})
_SNIFF_CHARS = 64 * 1024
_BATCH = 50_000
#: Kinds whose converter may refuse a value (the others take any text).
_FAILING = frozenset({"money", "number", "datetime", "bool"})


@dataclass(frozen=True)
class Shape:
    """What the staged path needs of the source: its config, column plan and link namespace."""

    config: PosCsvConfig
    plan: ColumnPlan
    link_namespace: str | None


def offer(shape: Shape, path: Path, display: str, info: FileInfo) -> StagedFile | None:
    """A staged load of one file, or None when the source's shape rules it out up front."""
    config = shape.config
    if config.resolved_stream() != "orders" or shape.plan.refund_when or not config.header:
        return None
    return StagedFile(display, lambda store: _Load(shape, path, display, info, store).run())


class _Load:
    def __init__(self, source: Shape, path: Path, display: str, info: FileInfo,
                 store: Any):
        # ``store`` is the store's StagedStore (segsync.core.ingest.staged): a connector
        # does not import the ingest stage, it gets one from the writer.
        self.source, self.path, self.display, self.info, self.store = (
            source, path, display, info, store)
        self.db = store.db

    def run(self) -> FileSeen | None:
        assert self.info.encoding is not None
        with open_text(self.path, self.info.encoding) as handle:
            delimiter = self.source.config.resolved_delimiter()
            if delimiter == "auto":
                delimiter = sniff_delimiter(handle.read(_SNIFF_CHARS))
                handle.seek(0)
            rows = RowStream(handle, delimiter)
            first = next(rows, None)
            if first is None:
                return None
            header = [clean_header(h) for h in first[1]]
            located = self.source.plan.locate(header)
            if not isinstance(located, Located) or not self._covers(located):
                return None
            self.reader = RowReader(self.source.config, located)
            self.located = located
            try:
                read = self._load(rows, header)
            except csv.Error:
                # The record path reads the file again and reports where it broke.
                self._discard()
                return None
        if not self._parse():
            self._discard()
            return None
        rejected = self._stage()
        return FileSeen(self.display, self.info.sha256, rows=read, rejected=rejected)

    def _discard(self) -> None:
        self.db.execute("DROP VIEW IF EXISTS temp.pos_parsed")
        self.db.execute("DROP TABLE IF EXISTS temp.pos_stage")

    def _covers(self, located: Located) -> bool:
        kinds = fields_for("orders")
        return ("order_key" in located.fields and not located.refund_when
                and all(kinds[name] in _KINDS for name in located.fields))

    # -- loading -------------------------------------------------------------------------------

    def _load(self, rows: RowStream, header: list[str]) -> int:
        """Every row into ``pos_stage``: its raw JSON, a width problem, attributes, and per
        mapped field the value (``f_``) of its first non-blank column, with an extra value
        (``x_``: a refund key's stamp, a full name's last part) and a parse error (``e_``)
        where its kind has them. Each distinct cell of a column is cleaned and parsed once (a
        memo per column); a row costs dictionary lookups, not parses."""
        located = self.located
        kinds = fields_for("orders")
        converters = {name: convert for name, _, convert, _ in self.reader._fields}
        fields, columns = [], []
        for name, found in located.fields.items():
            parts = _parts(name, kinds[name])
            absent = (None,) * len(parts)
            fields.append((absent, [(index, {}, self._parser(name, kinds[name], column,
                                                             converters[name], parts, absent))
                                    for index, column in found]))
            columns += [f"{part}_{name}" for part in parts]
        self.errors = [name for name in located.fields if "e" in _parts(name, kinds[name])]
        self.db.execute("DROP TABLE IF EXISTS temp.pos_stage")
        self.db.execute(f"CREATE TEMP TABLE pos_stage (line INTEGER PRIMARY KEY, raw TEXT, "
                        f"width TEXT, attributes TEXT, order_attributes TEXT, "
                        f"{', '.join(columns)})")
        insert = (f"INSERT INTO temp.pos_stage VALUES "
                  f"({', '.join('?' for _ in range(5 + len(columns)))})")
        names, width = _raw_names(header), len(header)
        encode, reader = self.store.json, self.reader
        wanted, order_wanted = reader._attributes, reader._order_attributes
        batch: list[list[Any]] = []
        read = 0
        for line, row in rows:
            read += 1
            n = len(row)
            wide = _width_problem(row, width) if n > width else None
            out = [line, encode(_raw(names, row)), wide.reason if wide else None,
                   encode(reader._first(row, wanted)) if wanted else "{}",
                   encode(reader._first(row, order_wanted)) if order_wanted else "{}"]
            for absent, found in fields:
                entry = absent
                for index, memo, parse in found:
                    if index >= n:
                        continue
                    cell = row[index]
                    entry = memo.get(cell)
                    if entry is None:
                        entry = memo[cell] = parse(cell)
                    if entry is not absent:
                        break
                out += entry
            batch.append(out)
            if len(batch) >= _BATCH:
                self.db.conn.executemany(insert, batch)
                batch.clear()
        self.db.conn.executemany(insert, batch)
        return read

    def _parser(self, name: str, kind: str, column: str, convert: Callable[[str], Any],
                parts: tuple[str, ...], absent: tuple[None, ...]) -> Callable[[str], tuple]:
        """One column's cell → its ``parts`` (value, extra, error as the kind has them), or
        ``absent`` for a blank cell: the cleaning of :meth:`RowReader.read` and the field's
        own converter."""
        guarded = kind in GUARDED_KINDS
        blank = self.reader._blank
        store = self._storer(name, kind)
        word = _KIND_WORDS.get(kind, "value")
        extra, fails = "x" in parts, "e" in parts

        def parse(cell: str) -> tuple:
            text = cell.strip()
            if guarded and text[:1] == "'":
                text = strip_guard(text)
            if not text or text in blank:
                return absent
            try:
                value, more = store(convert(text))
            except ValueError as exc:
                if not fails:
                    raise
                return (None, None, f"bad {word} in column '{column}': {exc}") if extra else (
                    None, f"bad {word} in column '{column}': {exc}")
            return (value, *((more,) if extra else ()), *((None,) if fails else ()))

        return parse

    def _storer(self, name: str, kind: str) -> Callable[[Any], tuple[Any, Any]]:
        """How a parsed value is kept: (value, extra) columns of ``pos_values``."""
        if kind == "datetime":
            return lambda v: (self.store.time_id(v), f"{v:%Y%m%dT%H%M%S}")
        if kind == "tags":
            return lambda v: (self.store.json(sorted(set(v))), None)
        if kind == "bool":
            return lambda v: (int(v), None)
        if name == "full_name":
            return lambda v: split_name(v)
        return lambda v: (v, None)

    # -- the order rules, set-wise ---------------------------------------------------------------

    def _parse(self) -> bool:
        """``pos_parsed``, a view of each row with the line and refund rules applied; False
        when order ids repeat (rows would group into orders: the record path's work)."""
        fields = self.located.fields

        def f(name: str) -> str:
            return f"f_{name}" if name in fields else "NULL"

        has_line = " OR ".join(f"f_{n} IS NOT NULL" for n in LINE_FIELDS if n in fields) or "0"
        self.db.execute("DROP VIEW IF EXISTS temp.pos_parsed")
        self.db.execute(
            f"""CREATE TEMP VIEW pos_parsed AS SELECT *,
                    ({has_line}) AS has_line,
                    coalesce({f('amount')}, CASE WHEN {f('price')} IS NOT NULL THEN
                        py_round({f('price')} * coalesce({f('quantity')}, 1.0), 4) END)
                        AS line_amount,
                    CASE WHEN {f('total')} IS NOT NULL THEN {f('total')} < 0
                         WHEN {f('amount')} IS NOT NULL THEN {f('amount')} < 0 ELSE 0 END
                        AS refund
                FROM temp.pos_stage""")
        return not self.db.execute("SELECT 1 FROM temp.pos_stage WHERE f_order_key IS NOT NULL "
                                   "GROUP BY f_order_key HAVING count(*) > 1 LIMIT 1").fetchone()

    def _stage(self) -> int:
        """Fill ``staged_orders`` from ``pos_parsed``; returns the number of refused rows."""
        fields = self.located.fields

        def f(name: str) -> str:
            return f"f_{name}" if name in fields else "NULL"

        blank = OrderAssembler(display=self.display, columns=self.reader.columns, keyed=True,
                               currency=None, link_namespace=None)._blank
        # In the record path's order: no order id, a shifted row, the first field that does
        # not parse (in mapping order), then the order rules of OrderAssembler._build.
        problems = [
            ("'order_key'", "f_order_key IS NULL", _quote(
                f"no order id: column '{self.reader.columns['order_key']}' is blank")),
            ("NULL", "width IS NOT NULL", "width"),
            *[(_quote(name), f"e_{name} IS NOT NULL", f"e_{name}") for name in self.errors],
            ("'ordered_at'", f"{f('ordered_at')} IS NULL",
             _quote(blank("no order date", ("ordered_at",)))),
            ("'total'", f"{f('total')} IS NULL AND line_amount IS NULL",
             _quote(blank("no amount", ("total", "amount", "price")))),
            ("'customer_key'", f"{f('customer_key')} IS NULL AND {f('email')} IS NULL AND "
             f"{f('phone')} IS NULL",
             _quote(blank("no customer", ("customer_key", "email", "phone"),
                          " (a row needs a customer id, email or phone)"))),
        ]
        problem_field = "CASE " + " ".join(f"WHEN {w} THEN {c}" for c, w, _ in problems) + " END"
        problem = "CASE " + " ".join(f"WHEN {w} THEN {r}" for _, w, r in problems) + " END"
        first_name, last_name = f("first_name"), f("last_name")
        if "full_name" in fields:
            # build_customer: full_name fills whichever name part is missing.
            first_name = f"coalesce({first_name}, f_full_name)"
            last_name = f"coalesce({last_name}, x_full_name)"
        total = f"coalesce({f('total')}, py_round(line_amount, 4))"
        amount = f"coalesce(line_amount, CASE WHEN has_line THEN {f('total')} END)"
        namespace = self.source.link_namespace
        self.db.execute(
            f"""INSERT INTO staged_orders (line, origin, raw, problem_field, problem, key,
                    customer_key, email, phone, name, currency, total, refunded, ordered_at,
                    cancelled_at, updated_at, test, financial_status, location, channel,
                    attributes, has_line, title, sku, vendor, category, product_tags, quantity,
                    price, amount, first_name, last_name, city, region, country, postal_code,
                    link_id, customer_attributes)
                SELECT line, ? || ':' || line, raw, {problem_field}, {problem},
                    CASE WHEN refund THEN f_order_key || ':refund:' || {
                        'x_ordered_at' if 'ordered_at' in fields else 'NULL'}
                         ELSE f_order_key END,
                    {f('customer_key')}, {f('email')}, {f('phone')}, {f('name')},
                    coalesce({f('currency')}, ?),
                    CASE WHEN refund THEN -abs({total}) ELSE {total} END,
                    abs(coalesce({f('refunded')}, 0.0)), {f('ordered_at')},
                    {f('cancelled_at')}, {f('updated_at')}, coalesce({f('test')}, 0),
                    {f('financial_status')}, {f('location')}, {f('channel')}, order_attributes,
                    has_line, {f('title')}, {f('sku')}, {f('vendor')}, {f('category')},
                    coalesce({f('product_tags')}, '[]'), coalesce({f('quantity')}, 1.0),
                    {f('price')}, CASE WHEN refund THEN -abs({amount}) ELSE {amount} END,
                    {first_name}, {last_name}, {f('city')}, {f('region')}, {f('country')},
                    {f('postal_code')},
                    CASE WHEN ? IS NOT NULL AND {f('customer_key')} IS NOT NULL
                         THEN ? || ':' || {f('customer_key')} END,
                    attributes
                FROM temp.pos_parsed""",
            [self.display, self.source.config.currency, namespace, namespace])
        self.db.execute("DROP VIEW temp.pos_parsed")
        self.db.execute("DROP TABLE temp.pos_stage")
        return self.db.execute("SELECT count(*) FROM staged_orders "
                               "WHERE problem IS NOT NULL").fetchone()[0]


def _parts(name: str, kind: str) -> tuple[str, ...]:
    """A field's ``pos_stage`` columns: its value, an extra value for a datetime (the stamp of
    a refund's key) or a full name (its last part), an error where the kind can refuse."""
    extra = kind == "datetime" or name == "full_name"
    return ("f", *(("x",) if extra else ()), *(("e",) if kind in _FAILING else ()))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
