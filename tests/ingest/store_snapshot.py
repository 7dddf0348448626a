"""A canonical dump of what a pull stored, to prove an ingest change stores the same bytes.

Every table the pull stage writes is dumped in primary-key order with each value's exact
Python ``repr`` (so ``1.0`` and ``1`` and ``'1'`` differ, and floats are exact); wall-clock
columns (``imported_at``, ``created_at`` of rejects, ``merged_at``, ``updated_at`` of cursors,
``runs``) are left out because they differ between any two pulls. ``rowid`` order of
``customers`` is included: person ids are assigned in that order.

    python tests/ingest/store_snapshot.py dump CONFIG OUTDIR     # pull CONFIG into a fresh
                                                                 # store, write OUTDIR/*.txt
    python tests/ingest/store_snapshot.py compare DIR_A DIR_B    # exit 1 on any difference
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

#: table → (columns to leave out, ORDER BY). ``rowid`` lists insertion order where it matters.
TABLES: dict[str, tuple[frozenset[str], str]] = {
    "customers": (frozenset(), "source, key"),
    "customers_rowid_order": (frozenset(), "rowid"),
    "orders": (frozenset(), "source, key"),
    "order_lines": (frozenset(), "source, order_key, key"),
    "raw_records": (frozenset(), "source, stream, key"),
    "rejects": (frozenset({"created_at"}), "source, stream, origin"),
    "people": (frozenset(), "id"),
    "person_merges": (frozenset({"merged_at"}), "old_id"),
    "identity_links": (frozenset(), "kind, value"),
    "source_files": (frozenset({"imported_at"}), "source, sha256"),
    "source_cursors": (frozenset({"updated_at"}), "source, stream"),
    "source_runs": (frozenset(), "run_id, source"),
}


def dump(db_path: Path) -> dict[str, str]:
    """Table name → its canonical text (one line per row)."""
    conn = sqlite3.connect(db_path)
    try:
        out = {}
        for name, (skip, order) in TABLES.items():
            if name == "customers_rowid_order":
                sql = "SELECT source, key FROM customers ORDER BY rowid"
            else:
                columns = [r[1] for r in conn.execute(f"PRAGMA table_info({name})")
                           if r[1] not in skip]
                sql = f"SELECT {', '.join(columns)} FROM {name} ORDER BY {order}"
            out[name] = "".join(
                "\t".join(repr(v) for v in row) + "\n" for row in conn.execute(sql))
        return out
    finally:
        conn.close()


def digest(tables: dict[str, str]) -> str:
    """One sha256 over every table's text, for a committed expectation."""
    h = hashlib.sha256()
    for name in sorted(tables):
        h.update(f"{name}\n{tables[name]}".encode())
    return h.hexdigest()


def pull(config: Path, db_path: Path, *, times: int = 1) -> None:
    """``segsync --config CONFIG pull`` into ``db_path`` (``times`` pulls, like re-runs)."""
    env = {**os.environ, "SEGSYNC_STORE__PATH": str(db_path), "SEGSYNC_LOAD_PLUGINS": ""}
    for _ in range(times):
        done = subprocess.run(
            [sys.executable, "-m", "segsync.core", "--config", str(config), "pull", "--json"],
            env=env, capture_output=True, text=True)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"pull of {config} failed ({done.returncode}): {done.stderr}")


def write(tables: dict[str, str], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    (folder / "digest").write_text(digest(tables) + "\n")


def compare(a: Path, b: Path) -> list[str]:
    """The tables whose dumps differ between two folders."""
    return [name for name in TABLES
            if (a / f"{name}.txt").read_bytes() != (b / f"{name}.txt").read_bytes()]


def main(argv: list[str]) -> int:
    if argv[:1] == ["dump"] and len(argv) in (3, 4):
        config, folder = Path(argv[1]), Path(argv[2])
        times = int(argv[3]) if len(argv) == 4 else 1
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "store.db"
            pull(config, db, times=times)
            tables = dump(db)
        write(tables, folder)
        print(f"{folder}: {digest(tables)}")
        return 0
    if argv[:1] == ["compare"] and len(argv) == 3:
        differ = compare(Path(argv[1]), Path(argv[2]))
        print("identical" if not differ else f"differ: {', '.join(differ)}")
        return 1 if differ else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
