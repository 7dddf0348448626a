"""CSV ingest throughput: segsync's ``pos_csv`` pull vs the ``sqlite3`` shell's ``.import``.

DESIGN §5: "CSV ingest: at least 0.3× the throughput of the sqlite3 shell's .import of the same
file (the raw limit), with normalisation on." This script writes a synthetic, seeded orders CSV
(order id, customer id, email, phone, date, amount, sku, category), times

* (a) ``sqlite3 <fresh db> ".import --csv <file> orders"`` (the raw limit; when the shell is
  missing, Python's ``sqlite3`` ``executemany`` of ``csv.reader`` rows, and it says so), and
* (b) segsync's full pull of the same file (``pull_sources``: ``pos_csv`` reading, row keys,
  normalisation, upserts, identity resolution) into a fresh store; a file with one row per
  order id like this one takes the staged path (``segsync.core.ingest.staged``),

and prints rows/s for both and the ratio (target ≥ 0.3). With ``--cdnow`` it also times the
pull of examples/cdnow.toml's file (CDNOW_master.txt) into a fresh store.

    python bench/bench_ingest.py                    # 500,000 rows, seed 1997
    python bench/bench_ingest.py --rows 100000 --cdnow
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from segsync.connectors.pos_csv.config import PosCsvConfig
from segsync.connectors.pos_csv.source import PosCsvSource
from segsync.core.ingest.pull import pull_sources
from segsync.core.runs import recorded
from segsync.core.settings import Settings
from segsync.core.store import open_store

CDNOW = Path(__file__).resolve().parents[2] / "shared" / "data" / "cdnow" / "CDNOW_master.txt"
_CATEGORIES = ("books", "music", "film", "games", "garden", "kitchen", "toys", "sport")
_DOMAINS = ("example.com", "mail.example.org", "shop.example.net", "example.co.uk")


def write_orders(path: Path, rows: int, seed: int) -> None:
    """A one-row-per-order export: ~rows/4 customers, some without email or phone."""
    rng = random.Random(seed)
    customers = max(1, rows // 4)
    start = dt.date(2024, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["order_id", "customer_id", "email", "phone", "date", "amount", "sku",
                      "category"])
        for n in range(rows):
            c = rng.randrange(customers)
            email = f"Customer.{c}@{_DOMAINS[c % len(_DOMAINS)]}" if c % 10 else ""
            # NANP numbers with a valid area and exchange code (2xx-9xx).
            phone = (f"({200 + c % 700}) {200 + (c // 700) % 700}-{c % 10000:04d}"
                     if c % 7 else "")
            day = start + dt.timedelta(days=rng.randrange(730))
            amount = f"{rng.randrange(100, 50000) / 100:.2f}"
            out.writerow([f"SO-{100000 + n}", f"C{c:07d}", email, phone, day.isoformat(),
                          amount, f"SKU-{rng.randrange(5000):05d}",
                          _CATEGORIES[rng.randrange(len(_CATEGORIES))]])


def raw_limit(csv_path: Path, workdir: Path) -> tuple[float, str]:
    """Seconds for the raw limit and how it was measured."""
    db = workdir / "raw.db"
    db.unlink(missing_ok=True)
    shell = shutil.which("sqlite3")
    if shell:
        began = time.perf_counter()
        subprocess.run([shell, str(db), f".import --csv {csv_path} orders"], check=True)
        return time.perf_counter() - began, f"sqlite3 shell .import --csv ({shell})"
    began = time.perf_counter()
    conn = sqlite3.connect(db)
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        conn.execute(f"CREATE TABLE orders ({', '.join(f'{h} TEXT' for h in header)})")
        conn.executemany(f"INSERT INTO orders VALUES ({', '.join('?' for _ in header)})",
                         reader)
    conn.commit()
    conn.close()
    return (time.perf_counter() - began,
            "FALLBACK: no sqlite3 shell; Python sqlite3 executemany of csv.reader rows")


def segsync_pull(db_path: Path, config: dict) -> tuple[float, dict]:
    """Seconds for a full pull of one pos_csv source into a fresh store, and its counts."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    settings = Settings.model_validate({"store": {"path": str(db_path)}})
    db = open_store(db_path)
    source = PosCsvSource("bench", PosCsvConfig.model_validate(config), db_path.parent)
    began = time.perf_counter()
    with recorded(db, "pull") as run:
        results = pull_sources(db, settings, {"bench": source}, run.id)
    elapsed = time.perf_counter() - began
    db.close()
    return elapsed, results[0].as_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=1997)
    parser.add_argument("--csv", type=Path, help="Use this orders CSV instead of generating")
    parser.add_argument("--cdnow", action="store_true", help="Also time the CDNOW master pull")
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep its files")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="segsync-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        csv_path = args.csv or workdir / "orders.csv"
        if args.csv is None:
            began = time.perf_counter()
            write_orders(csv_path, args.rows, args.seed)
            print(f"wrote {csv_path} ({args.rows:,} rows) in {time.perf_counter() - began:.1f} s")
        with csv_path.open(encoding="utf-8") as fh:
            rows = sum(1 for _ in fh) - 1

        raw_s, how = raw_limit(csv_path, workdir)
        print(f"raw limit  : {raw_s:7.2f} s  {rows / raw_s:>10,.0f} rows/s  [{how}]")

        pull_s, counts = segsync_pull(workdir / "store.db", {
            "type": "pos_csv", "path": str(csv_path), "stream": "orders", "currency": "USD",
            "mapping": {"order_key": "order_id", "customer_key": "customer_id",
                        "email": "email", "phone": "phone", "ordered_at": "date",
                        "total": "amount", "sku": "sku", "category": "category"},
        })
        print(f"segsync    : {pull_s:7.2f} s  {rows / pull_s:>10,.0f} rows/s  "
              f"[pull_sources: {counts['orders']:,} orders, {counts['customers']:,} customers, "
              f"{counts['rejected']:,} rejected]")
        print(f"ratio      : {raw_s / pull_s:.3f}  (segsync throughput / raw limit; target ≥ 0.3)")

        if args.cdnow:
            cdnow_s, counts = segsync_pull(workdir / "cdnow.db", {
                "type": "pos_csv", "path": str(CDNOW), "stream": "orders",
                "delimiter": "whitespace", "date_format": "yyyymmdd", "currency": "USD",
                "mapping": {"customer_key": "customer_id", "ordered_at": "date",
                            "total": "dollar_value", "quantity": "number_of_cds"},
            })
            print(f"CDNOW pull : {cdnow_s:7.2f} s  {counts['orders'] / cdnow_s:>10,.0f} rows/s  "
                  f"[{counts['orders']:,} orders, {counts['customers']:,} customers]")
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
