"""Snapshot ``person_features`` and segment membership, to prove a measure-stage change keeps
them identical.

The measure stage is rebuilt for speed (issue 12), and its output must not move: run ``dump``
with the old code, change the code, run ``dump`` again on the same pulled store, then
``compare``. Each dump runs ``measure_and_segment`` on a throw-away copy of the store (the
pulled file is never written), so both sides see the same input whatever the ingest code does.

Usage::

    python bench/features_snapshot.py dump CONFIG PULLED_DB OUT.json AS_OF [AS_OF ...]
    python bench/features_snapshot.py compare OLD.json NEW.json

A dump records, per as-of day, the table's columns and types, its indexes, every row (in
``OUT.json.<as_of>.rows``, one ``repr`` per line, so ``diff`` shows what moved) with a digest,
and each segment's members. ``compare`` exits 1 and names the first difference.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

from segsync.core.runner import measure_and_segment
from segsync.core.settings import load_settings
from segsync.core.store import open_store


def dump(config: Path, pulled: Path, out: Path, days: list[str]) -> None:
    settings = load_settings(config)
    snapshot = {}
    for day in days:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "store.db"
            shutil.copy(pulled, copy)
            db = open_store(copy)
            sizes, _ = measure_and_segment(db, settings, dt.date.fromisoformat(day), None)
            rows = db.execute("SELECT * FROM person_features ORDER BY person_id").fetchall()
            members = db.execute(
                "SELECT segment, person_id FROM segment_members ORDER BY 1, 2").fetchall()
            snapshot[day] = {
                "columns": [list(r[1:3]) for r in db.execute("PRAGMA table_info(person_features)")],
                "indexes": sorted(sql for (sql,) in db.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = 'person_features' AND sql IS NOT NULL")),
                "rows": len(rows),
                "rows_sha256": hashlib.sha256(repr(rows).encode()).hexdigest(),
                "members_sha256": hashlib.sha256(repr(members).encode()).hexdigest(),
                "sizes": sizes,
            }
            Path(f"{out}.{day}.rows").write_text("".join(f"{tuple(r)!r}\n" for r in rows))
            db.close()
    out.write_text(json.dumps(snapshot, indent=1))
    for day, s in snapshot.items():
        print(f"{day}: {s['rows']:,} people, rows {s['rows_sha256'][:12]}, "
              f"members {s['members_sha256'][:12]}")


def compare(old: Path, new: Path) -> int:
    a, b = json.loads(old.read_text()), json.loads(new.read_text())
    if set(a) != set(b):
        print(f"different as-of days: {sorted(a)} vs {sorted(b)}")
        return 1
    for day in sorted(a):
        for key in a[day]:
            if a[day][key] != b[day][key]:
                print(f"{day}: {key} differs (diff {old}.{day}.rows {new}.{day}.rows)")
                return 1
    print(f"identical: {', '.join(sorted(a))}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 5 and argv[0] == "dump":
        dump(Path(argv[1]), Path(argv[2]), Path(argv[3]), argv[4:])
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return compare(Path(argv[1]), Path(argv[2]))
    print(__doc__.split("Usage::")[1].split("A dump")[0].strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
