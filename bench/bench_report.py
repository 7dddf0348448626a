"""Build the report on the CDNOW example and print its build time and size.

The acceptance bar (issue 13): under 10 s and under 3 MB for CDNOW's 23,570 people. The store
is filled by ``segsync run`` on ``examples/cdnow.toml`` first (not timed); the build is timed
``--repeat`` times and the fastest and slowest are printed.

Usage::

    python bench/bench_report.py [--db /tmp/bench-cdnow.db] [--repeat 3]

``--db`` keeps the filled store and reuses it on the next run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "examples" / "cdnow.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-report-"))
    db_path = args.db or folder / "cdnow.db"
    os.environ["SEGSYNC_STORE__PATH"] = str(db_path)
    if not db_path.exists():
        subprocess.run([sys.executable, "-m", "segsync.core", "run", "--config", str(CONFIG)],
                       check=True, stdout=subprocess.DEVNULL)
    from segsync.core.report import write_report
    from segsync.core.settings import load_settings
    from segsync.core.store import open_store

    settings = load_settings(CONFIG)
    db = open_store(settings.store.path)
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        size = write_report(db, settings, settings.as_of, folder / "report.html")
        times.append(time.perf_counter() - started)
    people = db.execute("SELECT count(*) FROM people").fetchone()[0]
    print(f"CDNOW report: {people:,} people, {size / 1024:,.0f} KB, build "
          f"{min(times):.2f} s fastest / {max(times):.2f} s slowest of {args.repeat}")


if __name__ == "__main__":
    main()
