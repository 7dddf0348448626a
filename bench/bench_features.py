"""Benchmark segment compute against the floor: one hand-written aggregate pass.

DESIGN §5 asks segment compute over 1M people / 5M orders / 12M lines to stay within 1.5× of
the floor, with peak RSS under 500 MB. Segment compute is what a full run does after its pull:
the predictions (``write_predictions``), the features with the scores and the predictions
joined (``build_features``), and every example segment of ``config.example.toml``
materialised; each stage is timed and reported, and the ratio is given with and without the
predictions (the model fit is numpy work over one summary query, not a pass SQLite could do by
hand). The floor is what a person would write by hand to read the same tables once:
per-person count, net sum and first/last date of the orders, and per-person count and sum of
the order lines joined to their orders, each materialised into a table. It is timed twice: as
written, with the plan SQLite picks (the DESIGN target), and with the sequential-scan plans the
features stage pins (the cheapest read of the data, so the stricter yardstick). Everything runs
in one process against the same file, interleaved, and both wall and CPU time are printed: the
ratios compare across machines even when the absolute times do not, and CPU time holds
steadier on a machine shared with other work. Each round starts with no segment members, so
every round materialises the segments from scratch.

Usage::

    /work/venv/bin/python bench/bench_features.py --people 100000
    /work/venv/bin/python bench/bench_features.py --people 1000000 --db /tmp/bench-1m.db

``--db`` keeps the generated store and reuses it on the next run with the same ``--people``
(generating 1M people takes a few minutes). Generation runs in a child process so that the
peak RSS printed at the end is that of the measured work alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlite_utils import Database

from segsync.core.measure.predict import write_predictions
from segsync.core.measure.scores import build_features
from segsync.core.segment import TEMPLATES, materialise
from segsync.core.settings import Settings, load_settings
from segsync.core.store import open_store

AS_OF = dt.date(2026, 11, 1)
CONFIG = Path(__file__).resolve().parents[1] / "config.example.toml"


def _r(mod: int) -> str:
    """SQL for a random integer in [0, mod); masking the sign bit keeps it non-negative."""
    return f"((random() & 9223372036854775807) % {mod})"


def _generate(path: str, people: int) -> None:
    """Fill a fresh store with ``people`` people, 5 orders per person and ~2.4 lines per order.

    Everything is INSERT … SELECT over recursive CTEs: a Python loop would take longer than the
    benchmark itself. Orders pick their person at random, as real order streams do, so the
    ``orders_person`` index is not in table order. The mix has the cases the features stage
    treats specially: refund rows (1%), partial refunds (5%), cancelled (2%) and test (0.5%)
    orders, orders without a location, people without orders.
    """
    db = open_store(path)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    with db.atomic():
        db.execute(
            f"""
            INSERT INTO people (id, email, phone, first_name, last_name, city, region, country,
                postal_code, birth_date, gender, tags, attributes, sources, email_consent,
                sms_consent, created_at)
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {people})
            SELECT i,
                CASE WHEN {_r(20)} > 0 THEN 'user' || i || '@example' || {_r(8)} || '.com' END,
                CASE WHEN {_r(10)} < 6 THEN '+1555' || printf('%07d', i) END,
                'First' || {_r(500)}, 'Last' || {_r(2000)}, 'City' || {_r(300)},
                'R' || {_r(50)}, 'US', printf('%05d', {_r(99999)}),
                CASE WHEN {_r(10)} < 4
                     THEN date('1950-01-01', '+' || {_r(20000)} || ' days') END,
                CASE {_r(3)} WHEN 0 THEN 'female' WHEN 1 THEN 'male' END,
                CASE {_r(3)} WHEN 0 THEN '[]'
                     WHEN 1 THEN json_array('tag' || {_r(30)})
                     ELSE json_array('tag' || {_r(30)}, 'vip' || {_r(5)}) END,
                json_object('tier', 'T' || {_r(3)}),
                CASE WHEN {_r(4)} = 0 THEN '["pos","shopify"]' ELSE '["shopify"]' END,
                CASE {_r(7)} WHEN 0 THEN 'subscribed' WHEN 1 THEN 'not_subscribed'
                     WHEN 2 THEN 'unsubscribed' WHEN 3 THEN 'cleaned' WHEN 4 THEN 'pending'
                     WHEN 5 THEN 'subscribed' END,
                CASE {_r(3)} WHEN 0 THEN 'subscribed' WHEN 1 THEN 'unsubscribed' END,
                date('2022-01-01', '+' || {_r(1700)} || ' days') || 'T10:00:00Z'
            FROM n
            """
        )
        db.execute(
            f"""
            INSERT INTO orders (source, key, customer_key, person_id, ordered_at, order_date,
                total, refunded, cancelled_at, test, location, record_hash)
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {people * 5}),
            o AS MATERIALIZED (
                SELECT i, 1 + {_r(people)} AS person_id,
                    date('{AS_OF.isoformat()}', '-' || {_r(1200)} || ' days') AS d,
                    {_r(1000)} AS kind
                FROM n
            )
            SELECT 'shopify', printf('o%09d', i), 'c' || person_id, person_id, d || 'T12:00:00',
                d,
                CASE WHEN kind < 10 THEN -5.0 ELSE 10.0 + {_r(20000)} / 100.0 END,
                CASE WHEN kind BETWEEN 10 AND 59 THEN 5.0 ELSE 0.0 END,
                CASE WHEN kind BETWEEN 60 AND 79 THEN d || 'T13:00:00' END,
                kind BETWEEN 80 AND 84,
                CASE WHEN {_r(2)} = 0 THEN 'Store ' || {_r(12)} END,
                'h'
            FROM o
            """
        )
        # 1 to 5 lines per order with weights 30/30/20/10/10: 2.4 lines per order on average.
        # The draw hashes the rowid rather than calling random(), which SQLite would call
        # afresh for every mention of r once it flattens the subquery (MATERIALIZED above
        # does the same job for the orders' draws).
        hash100 = "(rowid * 2654435761 % 4294967296 * 100 / 4294967296)"
        db.execute(
            f"""
            INSERT INTO order_lines (source, order_key, key, title, sku, vendor, category,
                product_tags, quantity, price, amount)
            WITH o AS MATERIALIZED (
                SELECT source, key, CASE WHEN r < 30 THEN 1 WHEN r < 60 THEN 2 WHEN r < 80 THEN 3
                                         WHEN r < 90 THEN 4 ELSE 5 END AS lines
                FROM (SELECT source, key, {hash100} AS r FROM orders)
            ),
            k(n) AS (VALUES (1), (2), (3), (4), (5))
            SELECT o.source, o.key, printf('l%d', k.n), 'Product', 'SKU' || {_r(20000)},
                'Vendor' || {_r(150)}, 'Category' || {_r(40)},
                CASE {_r(3)} WHEN 0 THEN '[]'
                     WHEN 1 THEN json_array('pt' || {_r(80)})
                     ELSE json_array('pt' || {_r(80)}, 'pt' || {_r(80)}) END,
                1, 10.0, 10.0
            FROM o CROSS JOIN k
            WHERE k.n <= o.lines
            """
        )
    db.close()


# The floor as DESIGN §5 words it: the hand-written query, planned by SQLite. SQLite answers
# GROUP BY person_id by walking orders_person and fetching each row (and each order's lines)
# at random.
FLOOR_AS_WRITTEN = (
    """
    CREATE TEMP TABLE floor_orders AS
    SELECT person_id, count(*) AS n, total(total - refunded) AS spent,
        min(order_date) AS first, max(order_date) AS last
    FROM orders GROUP BY person_id
    """,
    """
    CREATE TEMP TABLE floor_lines AS
    SELECT o.person_id, count(*) AS n, total(l.amount) AS amount
    FROM orders AS o JOIN order_lines AS l ON l.source = o.source AND l.order_key = o.key
    GROUP BY o.person_id
    """,
)
# The same pass with the plans the features stage pins: tables read in order, one sort per
# GROUP BY. This is the cheapest way SQLite has to read the data once, so the stricter floor.
FLOOR_SCANNED = (
    FLOOR_AS_WRITTEN[0].replace("FROM orders GROUP BY", "FROM orders NOT INDEXED GROUP BY"),
    """
    CREATE TEMP TABLE floor_lines AS
    SELECT o.person_id, count(*) AS n, total(l.amount) AS amount
    FROM order_lines AS l CROSS JOIN orders AS o ON o.source = l.source AND o.key = l.order_key
    GROUP BY o.person_id
    """,
)


def _floor(db: Database, statements: tuple[str, ...]) -> None:
    """One hand-written aggregate pass over orders and one over lines, materialised."""
    db.execute("DROP TABLE IF EXISTS temp.floor_orders")
    db.execute("DROP TABLE IF EXISTS temp.floor_lines")
    for sql in statements:
        db.execute(sql)


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn()``; CPU time is steadier on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _people_in(path: Path) -> int | None:
    if not path.exists():
        return None
    db = Database(path)
    try:
        return db["people"].count if db["people"].exists() else None
    finally:
        db.close()


def ensure_store(path: Path, people: int, generate: Callable[[str, int], None]) -> bool:
    """Generate the store at ``path`` unless it already holds ``people`` people (a kept
    ``--db`` is reused), in a child process so its memory is not counted in this one's peak
    RSS. False when the generator failed."""
    if _people_in(path) == people:
        return True
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    start = time.perf_counter()
    child = multiprocessing.Process(target=generate, args=(str(path), people))
    child.start()
    child.join()
    if child.exitcode != 0:
        return False
    print(f"generated {people:,} people in {time.perf_counter() - start:.1f}s")
    return True


def _stages(db: Database, settings: Settings) -> dict[str, tuple[float, float]]:
    """One run of segment compute from scratch: wall and CPU seconds per stage."""
    with db.atomic():  # untimed: the segments are materialised from nothing in every round
        db.execute("DELETE FROM segment_members")
        db.execute("DELETE FROM segments")
    scoring = settings.scoring
    return {
        "predictions": _timed(lambda: write_predictions(db, AS_OF,
                                                        clv_months=scoring.clv_months)),
        "features + scores": _timed(lambda: build_features(db, AS_OF, scoring)),
        "segments": _timed(lambda: materialise(db, settings.segments, AS_OF, None, TEMPLATES)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--db", type=Path, help="keep the generated store here and reuse it")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best of each counts")
    args = parser.parse_args(argv)
    settings = load_settings(CONFIG)

    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        if not ensure_store(path, args.people, _generate):
            return 1
        db = open_store(path)
        orders, lines = db["orders"].count, db["order_lines"].count
        print(f"store: {args.people:,} people, {orders:,} orders, {lines:,} lines, "
              f"{len(settings.segments)} segments")

        # An untimed pass warms the OS page cache, so no side is charged for the first read of
        # the file; the rounds interleave the floors and segsync so a noisy neighbour hits
        # them alike.
        _floor(db, FLOOR_SCANNED)
        runs: dict[str, list[tuple[float, float]]] = {"as written": [], "scanned": []}
        for _ in range(args.repeat):
            runs["as written"].append(_timed(lambda: _floor(db, FLOOR_AS_WRITTEN)))
            runs["scanned"].append(_timed(lambda: _floor(db, FLOOR_SCANNED)))
            for name, times in _stages(db, settings).items():
                runs.setdefault(name, []).append(times)
        db.close()

    best = {name: (min(w for w, _ in r), min(c for _, c in r)) for name, r in runs.items()}
    floors = {name: best.pop(name) for name in ("as written", "scanned")}
    without = tuple(best["features + scores"][i] + best["segments"][i] for i in (0, 1))
    total = tuple(without[i] + best["predictions"][i] for i in (0, 1))
    print(f"{'':32}{'wall s':>9}{'cpu s':>9}")
    for name, (wall, cpu) in floors.items():
        print(f"{'floor, ' + name:32}{wall:9.2f}{cpu:9.2f}")
    for name, (wall, cpu) in best.items():
        print(f"{name:32}{wall:9.2f}{cpu:9.2f}")
    print(f"{'segment compute':32}{total[0]:9.2f}{total[1]:9.2f}")
    print(f"\n{'ratio to the floor':32}{'wall':>9}{'cpu':>9}{'wall':>9}{'cpu':>9}")
    print(f"{'':32}{'(as written)':>18}{'(scanned)':>18}")
    for name, (wall, cpu) in (("features + scores + segments", without),
                              ("... + predictions", total)):
        print(f"{name:32}" + "".join(f"{wall / fw:8.2f}x{cpu / fc:8.2f}x"
                                      for fw, fc in floors.values()))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB (target < 500); ratio target <= 1.5x the floor as written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
