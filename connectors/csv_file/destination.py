"""A folder of CSV files as a destination: one file per target, plus a change log.

``<folder>/<target>.csv`` holds the target's current members: the key column (``email`` or
``phone``) then the synced fields in name order, one row per member sorted by key, so the file
diffs cleanly and two runs that reach the same state write the same bytes.
``<folder>/<target>.changes.jsonl`` gets one line per change that actually altered the file.

Each ``apply`` reads the file, applies the batch and, only if something changed, appends the
change lines and then replaces the CSV atomically (temporary file in the same folder, fsync,
``os.replace``, fsync of the folder), so a reader never sees half a file and a crash leaves the
old or the new one. The log is appended rather than rewritten because it only grows; it is
written *before* the CSV so that a crash between the two can only repeat lines on the retry,
never lose them. A batch that changes nothing writes nothing: re-sending after a timeout or a
crash leaves both files byte-identical.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segsync.core.connector import (
    ANY_FIELD,
    Capabilities,
    Change,
    ConnectorConfig,
    Destination,
    IdentityKind,
    Outcome,
    Target,
)
from segsync.core.errors import ConfigError
from segsync.core.files import atomic_write
from segsync.core.settings import ConfigPath

# A target becomes a file name: no separators, no hidden or relative names.
_TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.@+-]*")

Rows = dict[str, dict[str, str]]


class CsvFileConfig(ConnectorConfig):
    """``[destinations.NAME]`` for ``type = "csv_file"``."""

    #: Folder the target files are written to; relative paths are relative to the config file.
    folder: ConfigPath
    #: The key column: ``email`` (default) or ``phone``.
    identity: IdentityKind = "email"


def _cell(value: Any) -> str:
    """A field value as the CSV will hold it, so an incoming value compares equal to the one
    read back from the file (every cell reads back as text)."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


class CsvFileDestination(Destination):
    """Writes each target's members to a CSV file; see the module docstring."""

    type_name = "csv_file"
    Config = CsvFileConfig

    def __init__(self, name: str, config: CsvFileConfig, base_dir: Path):
        super().__init__(name, config, base_dir)
        self.config: CsvFileConfig
        # One timestamp per instance (one per run): every change line of a run carries it.
        self._run_at: str | None = None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            identity=self.config.identity,
            max_batch=50_000,
            max_concurrency=1,
            can_remove=True,
            container="file",
            fields=(ANY_FIELD,),
        )

    @property
    def folder(self) -> Path:
        return Path(self.config.folder)

    def check(self) -> list[str]:
        folder = self.folder
        existing = folder if folder.exists() else folder.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise ConfigError(f"destination {self.name!r}: cannot write to {folder}")
        return [f"writes to {folder}"]

    def paths(self, target: str) -> tuple[Path, Path]:
        """The member file and the change log of ``target``."""
        return self.folder / f"{target}.csv", self.folder / f"{target}.changes.jsonl"

    def ensure_target(self, name: str, options: dict[str, Any]) -> Target:
        """Check the name and create the folder; the file appears with the first change, so an
        empty target never leaves an empty file behind."""
        if not _TARGET_NAME.fullmatch(name):
            raise ConfigError(
                f"destination {self.name!r}: target {name!r} cannot be a file name "
                "(letters, digits, space and _ . @ + - only)"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        return Target(name, str(self.paths(name)[0]), dict(options))

    def apply(self, target: Target, changes: Sequence[Change]) -> list[Outcome]:
        csv_path, log_path = self.paths(target.name)
        rows = self._read(csv_path)
        log_lines = []
        if self._run_at is None:
            self._run_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for change in changes:
            before = rows.get(change.key)
            if change.op == "remove":
                after = None
                rows.pop(change.key, None)
            else:
                # Upsert: the row becomes exactly the synced fields; empty cells are absent.
                after = {k: _cell(v) for k, v in change.fields.items() if _cell(v) != ""}
                rows[change.key] = after
            if before == after:
                continue
            op = "remove" if after is None else ("add" if before is None else "update")
            line: dict[str, Any] = {"at": self._run_at, "op": op, "key": change.key}
            if after is not None:
                line["fields"] = after
            if before is not None and after is not None:
                line["before"] = before
            log_lines.append(json.dumps(line, sort_keys=True))
        if log_lines:
            self._append(log_path, log_lines)
            self._write(csv_path, rows)
        return [Outcome(change.key, "ok") for change in changes]

    def members(self, target: Target) -> list[str]:
        return sorted(self._read(self.paths(target.name)[0]))

    def _read(self, path: Path) -> Rows:
        if not path.exists():
            return {}
        key_column = self.config.identity
        with path.open(newline="", encoding="utf-8") as fh:
            return {
                row[key_column]: {k: v for k, v in row.items() if k != key_column and v != ""}
                for row in csv.DictReader(fh)
            }

    def _write(self, path: Path, rows: Rows) -> None:
        key_column = self.config.identity
        columns = sorted({name for fields in rows.values() for name in fields})
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([key_column, *columns])
        for key in sorted(rows):
            writer.writerow([key, *(rows[key].get(c, "") for c in columns)])
        atomic_write(path, buffer.getvalue(), newline="")

    def _append(self, path: Path, lines: list[str]) -> None:
        # One write of whole lines with O_APPEND: a crash can at worst tear the last line.
        data = "".join(line + "\n" for line in lines).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
