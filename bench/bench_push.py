"""Benchmark push: write calls against the minimum, and wall time against the latency floor.

DESIGN §5 asks that a push makes ``ceil(changes / batch limit)`` write calls per target
(at most 1.05× that minimum), that a run with no changes makes no write call at all, and that
its wall time stays within 1.3× of ``calls × latency ÷ allowed concurrency`` against a fake
with fixed latency.

The fake is the engine's own test destination, :class:`~segsync.core.testing.MemoryDestination`,
with ``max_batch``, ``max_concurrency`` and a fixed ``latency`` slept inside every ``apply``
call; it asserts the engine never exceeds either limit. The engine is the real one, driven by
:class:`~segsync.core.testing.SyncHarness` (``plan_sync`` then ``push`` on an in-memory store).
For each allowed concurrency a fresh store and destination go through three runs:

1. ``full``: every person joins the segment, so each is one add.
2. ``quiet``: nothing changed; the run must make zero write calls.
3. ``leave``: ``--leave`` of the members (1% by default) leave, so each is one remove.

Write calls are ``SyncResult.write_calls`` (checked against the destination's own count).
Wall time is that of ``push`` alone (planning is printed separately); ``cpu s`` is the CPU
time of the calling thread during it, which is what the push itself costs whatever the load,
and ``cpu/b ms`` the same per write call: every batch queues behind the calling thread's
database writes, so at 10 workers × 50 ms it must stay well under 5 ms. ``all/b ms`` is the
CPU time of the whole process per call (workers and the fake destination included), which is
what a loaded machine has to find room for.
The ideal is §5's ``calls × latency ÷ concurrency``; when the calls do not divide evenly over
the workers that figure cannot be reached (one call cannot be shared by four workers), so the
ratio is held against the floor ``ceil(calls ÷ concurrency) × latency``, which equals it otherwise.

Each cell (latency × concurrency) first times the bare floor on this machine: the same number of
calls, each only sleeping ``latency``, through a plain thread pool of that concurrency, with no
store and no engine. It is printed beside the push (``bare s``) to show how much of any excess is
the machine (thread wake-ups on a loaded host) rather than segsync; the ratio is held against
the computed floor, the stricter figure.

Usage::

    python bench/bench_push.py
    python bench/bench_push.py --people 50000 --latency 0.05 0.1 --batch 500 \\
        --concurrency 1 4 10
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from segsync.core.settings import SyncSettings
from segsync.core.sync.push import push
from segsync.core.testing import MemoryDestination, SyncHarness

CALLS_TARGET = 1.05
WALL_TARGET = 1.3


@dataclass
class Row:
    latency: float
    scenario: str
    concurrency: int
    changes: int
    calls: int
    minimum: int
    max_in_flight: int
    plan_s: float
    push_s: float
    cpu_s: float
    process_s: float
    ideal_s: float
    floor_s: float
    bare_s: float
    ok_calls: bool
    ok_wall: bool

    @property
    def call_ratio(self) -> float | None:
        return self.calls / self.minimum if self.minimum else None

    @property
    def wall_ratio(self) -> float | None:
        return self.push_s / self.floor_s if self.floor_s else None


def bare_floor(calls: int, concurrency: int, latency: float) -> float:
    """Wall time of ``calls`` sleeps of ``latency`` through a pool of ``concurrency`` threads."""
    if not calls:
        return 0.0
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in pool.map(time.sleep, [latency] * calls):
            pass
    return time.perf_counter() - t0


def build(people: int, batch: int, concurrency: int, latency: float) -> SyncHarness:
    dest = MemoryDestination(max_batch=batch, max_concurrency=concurrency, latency=latency)
    harness = SyncHarness(dest, SyncSettings(segment="vip", destination=dest.name))
    harness.db["person_features"].insert_all(
        (
            {
                "person_id": pid,
                "email": f"person-{pid}@segsync.test",
                "email_subscription_status": "SUBSCRIBED",
            }
            for pid in range(1, people + 1)
        ),
        batch_size=5000,
    )
    return harness


def measure(harness: SyncHarness, scenario: str, latency: float, batch: int) -> Row:
    dest = harness.destination
    assert isinstance(dest, MemoryDestination)
    caps = dest.capabilities
    calls_before = dest.apply_calls
    dest.max_in_flight = 0
    harness.run_id += 1
    t0 = time.perf_counter()
    with harness.plan() as plan:
        planned = time.perf_counter() - t0
        # Floor first: the bare calls this push will make, timed before it on the same machine.
        bare = bare_floor(math.ceil(plan.to_send / batch), caps.max_concurrency, latency)
        t1, c1, p1 = time.perf_counter(), time.thread_time(), time.process_time()
        result = push(harness.db, plan, dest, harness.run_id, retry=harness.retry)
        t2, c2, p2 = time.perf_counter(), time.thread_time(), time.process_time()
    if result.status != "ok":
        raise SystemExit(f"{scenario}: push ended {result.status}: {result.error}")
    calls = result.write_calls
    seen = dest.apply_calls - calls_before
    if seen != calls:
        raise SystemExit(f"{scenario}: SyncResult says {calls} calls, destination saw {seen}")
    changes = result.added + result.updated + result.removed
    minimum = math.ceil(changes / batch)
    conc = caps.max_concurrency
    ideal = calls * latency / conc
    floor = math.ceil(calls / conc) * latency
    push_s = t2 - t1
    ok_calls = calls == 0 if minimum == 0 else calls <= CALLS_TARGET * minimum
    ok_wall = floor == 0 or push_s <= WALL_TARGET * floor
    row = Row(
        latency,
        scenario,
        conc,
        changes,
        calls,
        minimum,
        dest.max_in_flight,
        planned,
        push_s,
        c2 - c1,
        p2 - p1,
        ideal,
        floor,
        bare,
        ok_calls,
        ok_wall,
    )
    return row


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def per_call_ms(seconds: float, calls: int) -> str:
    return f"{seconds / calls * 1000:.2f}" if calls else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=50_000, help="segment size (adds)")
    parser.add_argument(
        "--latency",
        type=float,
        nargs="+",
        default=[0.05, 0.1],
        help="seconds per apply call; each latency is run with every concurrency",
    )
    parser.add_argument("--batch", type=int, default=500, help="destination max_batch")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 4, 10],
        help="allowed concurrencies to run, one fresh store each",
    )
    parser.add_argument(
        "--leave", type=float, default=0.01, help="share of members leaving in the third run"
    )
    args = parser.parse_args(argv)

    print(
        f"people={args.people} latency={args.latency} s batch={args.batch} "
        f"concurrency={args.concurrency} leave={args.leave:.1%}"
    )
    header = (
        f"{'latency':>7} {'scenario':<8} {'conc':>4} {'changes':>8} {'calls':>6} {'min':>5} "
        f"{'ratio':>6} {'inflt':>5} {'plan s':>7} {'push s':>7} {'cpu s':>6} {'cpu/b ms':>8} "
        f"{'all/b ms':>8} {'ideal s':>8} "
        f"{'bare s':>7} {'floor s':>8} {'ratio':>6}  ok"
    )
    print(header)
    print("-" * len(header))
    rows: list[Row] = []
    cells = [(latency, conc) for latency in args.latency for conc in args.concurrency]
    for latency, conc in cells:
        harness = build(args.people, args.batch, conc, latency)
        leaving = list(range(1, max(1, round(args.people * args.leave)) + 1))
        for scenario in ("full", "quiet", "leave"):
            if scenario == "full":
                harness.join(*range(1, args.people + 1))
            elif scenario == "leave":
                harness.leave(*leaving)
            row = measure(harness, scenario, latency, args.batch)
            rows.append(row)
            ok = "yes" if row.ok_calls and row.ok_wall else "NO"
            print(
                f"{row.latency:>7.3f} {row.scenario:<8} {row.concurrency:>4} {row.changes:>8} "
                f"{row.calls:>6} {row.minimum:>5} {fmt_ratio(row.call_ratio):>6} "
                f"{row.max_in_flight:>5} {row.plan_s:>7.2f} {row.push_s:>7.2f} "
                f"{row.cpu_s:>6.3f} {per_call_ms(row.cpu_s, row.calls):>8} "
                f"{per_call_ms(row.process_s, row.calls):>8} "
                f"{row.ideal_s:>8.2f} {row.bare_s:>7.2f} {row.floor_s:>8.2f} "
                f"{fmt_ratio(row.wall_ratio):>6}  {ok}",
                flush=True,
            )

    worst_calls = max((r.call_ratio for r in rows if r.call_ratio is not None), default=None)
    worst_wall = max((r.wall_ratio for r in rows if r.wall_ratio is not None), default=None)
    quiet_calls = sum(r.calls for r in rows if r.minimum == 0)
    passed = all(r.ok_calls and r.ok_wall for r in rows)
    print(
        f"{'PASS' if passed else 'FAIL'}: worst calls/minimum {fmt_ratio(worst_calls)} "
        f"(target ≤ {CALLS_TARGET}), calls on no-change runs {quiet_calls} (target 0), "
        f"worst push wall/floor {fmt_ratio(worst_wall)} (target ≤ {WALL_TARGET})"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
