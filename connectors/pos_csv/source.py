"""The ``pos_csv`` source: POS and shop CSV exports into canonical customers and orders.

Per file: hash it (a file seen before is skipped), prove its encoding, find the mapped columns
by header name (a missing required column refuses the file before any of its records), then
stream its rows into records. Every row ends up as a record or as a :class:`Rejected` with
its file, line and reason; the file is reported as seen only after its last row.
"""

from __future__ import annotations

import csv
import glob
from collections.abc import Generator, Iterator
from pathlib import Path

from segsync.core.connector import PullState, Source
from segsync.core.errors import SourceError
from segsync.core.records import FileSeen, Record, Rejected

from .columns import ColumnPlan, Located, Missing, clean_header
from .config import PosCsvConfig
from .customers import build_customer, customer_key
from .dedupe import RowKeys
from .fields import Stream
from .orders import OrderAssembler, OrderRow
from .presets import PRESETS
from .reader import FileInfo, RowStream, inspect_file, open_text, sniff_delimiter
from .rows import Problem, RowReader, RowValues, _raw, _raw_names, _width_problem
from .staged import Shape, offer

#: Files a folder ``path`` picks up.
SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
_SNIFF_CHARS = 64 * 1024

# What the import of one file yields, returning whether it finished (so it may be marked seen).
FileImport = Generator[Record, None, bool]


class PosCsvSource(Source):
    """Customers or orders from CSV exports (Square, Shopify, or any CSV with a mapping)."""

    type_name = "pos_csv"
    Config = PosCsvConfig
    streams = ("customers", "orders")

    def __init__(self, name: str, config: PosCsvConfig, base_dir: Path):
        super().__init__(name, config, base_dir)
        self.config: PosCsvConfig = config
        self.stream: Stream = config.resolved_stream()
        self.plan = ColumnPlan.from_config(config)
        preset = PRESETS[config.preset] if config.preset else None
        namespace = config.link_namespace
        if namespace is None and preset is not None:
            namespace = preset.link_namespace
        self.link_namespace = namespace or None
        self.shape = Shape(config, self.plan, self.link_namespace)

    # -- files ---------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """The files ``path`` names, in sorted order.

        A missing file or folder is an error (a typo must not look like "no new exports"); a
        glob or folder with no files in it is not.
        """
        path = self.config.path
        if path.is_dir():
            return sorted(
                p for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
            )
        if glob.has_magic(str(path)):
            return sorted(Path(p) for p in glob.glob(str(path), recursive=True)
                          if Path(p).is_file())
        if path.is_file():
            return [path]
        raise SourceError(f"{path}: no such file or folder")

    def check(self) -> list[str]:
        files = self.files()
        return [f"{len(files)} file(s) at {self.config.path}"]

    def _display(self, path: Path) -> str:
        """The path as records name it: relative to the config's folder when inside it."""
        path = path.resolve()
        try:
            return path.relative_to(self.base_dir.resolve()).as_posix()
        except ValueError:
            return path.as_posix()

    # -- pulling -------------------------------------------------------------------------------

    def pull(self, state: PullState) -> Iterator[Record]:
        seen = set() if state.full_refresh else set(state.seen_files)
        for path in self.files():
            display = self._display(path)
            info = inspect_file(path, self.config.encoding)
            if info.sha256 in seen:
                yield FileSeen(display, info.sha256, skipped=True)
                continue
            if info.encoding is None:
                yield Rejected(self.stream, display, info.problem or "unreadable file",
                               line=info.problem_line, whole_file=True)
                continue
            staged = offer(self.shape, path, display, info) if state.staged else None
            if staged is not None:
                yield staged
            if staged is not None and staged.result is not None:
                finished = True
            else:
                finished = yield from self._import(path, display, info)
            if finished:
                # The same content under a second name in this pull is skipped too.
                seen.add(info.sha256)

    def _file_rejected(self, display: str, reason: str, line: int | None,
                       field: str | None = None) -> Rejected:
        return Rejected(self.stream, display, reason, line=line, field=field, whole_file=True)

    def _import(self, path: Path, display: str, info: FileInfo) -> FileImport:
        assert info.encoding is not None
        with open_text(path, info.encoding) as handle:
            delimiter = self.config.resolved_delimiter()
            if delimiter == "auto":
                delimiter = sniff_delimiter(handle.read(_SNIFF_CHARS))
                handle.seek(0)
            rows = RowStream(handle, delimiter)
            if self.config.header:
                first = next(rows, None)
                if first is None:
                    yield self._file_rejected(display, "empty file: no header line", 1)
                    return False
                header_line, header = first[0], [clean_header(h) for h in first[1]]
            else:
                header_line, header = 1, list(self.config.columns or [])
            located = self.plan.locate(header)
            if isinstance(located, Missing):
                yield self._file_rejected(display, located.reason, header_line, located.column)
                return False
            keys = None
            if self.stream == "orders" and "order_key" not in located.fields:
                keys = self._scan_duplicates(path, info, delimiter, header)
            try:
                if self.stream == "customers":
                    counts = yield from self._customers(rows, header, located, display)
                else:
                    counts = yield from self._orders(rows, header, located, display, keys)
            except csv.Error as exc:
                # Not marked seen: once the file is fixed, all of it is read again.
                line = rows.line + 1
                yield self._file_rejected(
                    f"{display}:{line}",
                    f"cannot read the row starting on line {line}: {exc} (an unclosed quote?); "
                    "the rest of the file was not read",
                    line,
                )
                return False
        rows_read, rejected = counts
        yield FileSeen(display, info.sha256, rows=rows_read, rejected=rejected)
        return True

    def _scan_duplicates(self, path: Path, info: FileInfo, delimiter: str,
                         header: list[str]) -> RowKeys:
        """First pass over a file without order ids: find rows that occur more than once."""
        keys = RowKeys(header)
        assert info.encoding is not None
        with open_text(path, info.encoding) as handle:
            rows = RowStream(handle, delimiter)
            if self.config.header:
                next(rows, None)
            keys.scan((row for _, row in rows), info.lines)
        return keys

    def _customers(self, rows: RowStream, header: list[str],
                   located: Located, display: str) -> Generator[Record, None, tuple[int, int]]:
        reader = RowReader(self.config, located)
        names = _raw_names(header)
        key_columns = [reader.columns[n] for n in ("customer_key", "email", "phone")
                       if n in reader.columns]
        no_key = Problem("customer_key", (
            f"no customer key: {', '.join(repr(c) for c in key_columns)} blank"
            if key_columns else "no customer key: the file has no id, email or phone column"
        ) + " (a customer needs an id, email or phone)")
        read = rejected = 0
        for line, row in rows:
            read += 1
            origin = f"{display}:{line}"
            raw = _raw(names, row)
            parsed = _width_problem(row, len(header)) or reader.read(row)
            if isinstance(parsed, RowValues):
                key = customer_key(parsed.values)
                if key is None:
                    parsed = no_key
                else:
                    yield build_customer(key, parsed.values, parsed.attributes,
                                         link_namespace=self.link_namespace, origin=origin,
                                         raw=raw)
                    continue
            rejected += 1
            yield Rejected("customers", origin, parsed.reason, line=line, field=parsed.field,
                           raw=raw)
        return read, rejected

    def _orders(self, rows: RowStream, header: list[str],
                located: Located, display: str,
                keys: RowKeys | None) -> Generator[Record, None, tuple[int, int]]:
        reader = RowReader(self.config, located)
        names = _raw_names(header)
        assembler = OrderAssembler(
            display=display,
            columns=reader.columns,
            keyed=keys is None,
            currency=self.config.currency,
            link_namespace=self.link_namespace,
        )
        refund_when = located.refund_when
        read = 0
        for line, row in rows:
            read += 1
            raw = _raw(names, row)
            # Read apart from the other values: a row with a bad value still belongs to (and
            # is refused with) its order.
            key = keys.key(row) if keys is not None else reader.text("order_key", row) or None
            parsed = _width_problem(row, len(header)) or reader.read(row)
            values = parsed if isinstance(parsed, RowValues) else None
            problem = parsed if isinstance(parsed, Problem) else None
            if key is None:
                problem = Problem("order_key", f"no order id: column "
                                  f"'{reader.columns['order_key']}' is blank")
            if refund_when:
                refund: bool | None = all(
                    (row[i].strip().lower() if i < len(row) else "") == value
                    for i, value in refund_when
                )
            else:
                refund = _negative(values)
            yield from assembler.add(OrderRow(line, raw, key, refund, values, problem))
        yield from assembler.finish()
        return read, assembler.rejected


def _negative(values: RowValues | None) -> bool | None:
    """Whether a row is a refund by its sign; None when the row has no amount to tell by."""
    if values is None:
        return None
    for name in ("total", "amount"):
        if name in values.values:
            return values.values[name] < 0
    return None
