"""Benchmark the Mailchimp destination: HTTP write calls per run against the minimum.

DESIGN §5 and issue 11 ask for at most ``1.05 × ceil(changes / 500)`` write calls per target
and none on a run with nothing to change. This drives the real engine (plan → push through
:class:`~segsync.core.testing.SyncHarness`) and the real Mailchimp destination over HTTP
against the strict fake of ``tests/fakes/mailchimp.py`` (fixed ``--latency`` per request, the
10-connection cap enforced), and counts the fake's non-GET requests by route:

1. ``first``: ``--people`` subscribed people join a tag that does not exist yet.
2. ``rerun``: nothing changed.
3. ``churn``: ``--churn`` of them leave, as many newcomers join and as many update a field.

For each run it prints the changes, the minimum ``ceil(changes / 500)`` first, then segsync's
write calls split into tag creation, batch subscribes (contacts, merge fields and joins: an
add carries the tag) and segment batches (leaves), the ratio of all write calls to the
minimum, the read calls (GET: the tag lookup and the audience's refused contacts, which are
not write calls), and the push's wall time next to its floor ``ceil(calls / 10) × latency``
over all calls (the fake's own work per call is included in the wall time, so treat that
ratio as an upper bound).

Usage::

    python bench/bench_mailchimp.py                    # 50,000 people, 1% churn
    python bench/bench_mailchimp.py --people 5000 --latency 0.05
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes.mailchimp import FakeMailchimp  # noqa: E402  (the fakes live with the tests)

from segsync.connectors.mailchimp.config import MailchimpConfig  # noqa: E402
from segsync.connectors.mailchimp.destination import MailchimpDestination  # noqa: E402
from segsync.core.settings import SyncSettings  # noqa: E402
from segsync.core.sync.push import push  # noqa: E402
from segsync.core.testing import SyncHarness  # noqa: E402

CALLS_TARGET = 1.05
BATCH = 500
ROUTES = {
    "tag": "POST /lists/{list_id}/segments",
    "subscribe": "POST /lists/{list_id}",
    "leaves": "POST /lists/{list_id}/segments/{segment_id}",
}


def email(i: int) -> str:
    return f"shopper{i:06d}@customers.shop"


def join(h: SyncHarness, ids: range, name: str = "First") -> None:
    h.db.conn.executemany(
        "INSERT OR REPLACE INTO person_features (person_id, email, email_subscription_status, "
        "first_name) VALUES (?, ?, 'SUBSCRIBED', ?)",
        [(i, email(i), f"{name}{i}") for i in ids],
    )
    h.join(*ids)


def measure(fake: FakeMailchimp, h: SyncHarness, scenario: str, latency: float) -> bool:
    before = Counter(fake.calls)
    h.run_id += 1
    with h.plan(allow_large_removals=True) as plan:
        started = time.perf_counter()
        result = push(h.db, plan, h.destination, h.run_id, retry=h.retry)
        wall = time.perf_counter() - started
    if result.status != "ok":
        raise SystemExit(f"{scenario}: push ended {result.status}: {result.error}")
    calls = Counter({k: n - before[k] for k, n in fake.calls.items() if n > before[k]})
    writes = {name: calls[route] for name, route in ROUTES.items()}
    total = sum(n for k, n in calls.items() if not k.startswith("GET "))
    reads = sum(n for k, n in calls.items() if k.startswith("GET "))
    changes = result.added + result.updated + result.removed
    minimum = math.ceil(changes / BATCH)
    ratio = total / minimum if minimum else None
    floor = math.ceil((total + reads) / fake.max_connections) * latency
    ok = total == 0 if minimum == 0 else total <= CALLS_TARGET * minimum
    print(f"{scenario:<6} {changes:>7} {minimum:>5} | {writes['tag']:>4} {writes['subscribe']:>9} "
          f"{writes['leaves']:>6} {total:>6} {fmt(ratio):>6} {reads:>5} | "
          f"{floor:>7.2f} {wall:>7.2f}  {'yes' if ok else 'NO'}", flush=True)
    return ok


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=50_000, help="segment size")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per request")
    parser.add_argument("--churn", type=float, default=0.01,
                        help="share leaving, joining and updating in the third run")
    args = parser.parse_args(argv)
    print(f"people={args.people} latency={args.latency}s churn={args.churn:.1%} "
          f"batch={BATCH} connections=10")
    print(f"{'run':<6} {'changes':>7} {'min':>5} | {'tag':>4} {'subscribe':>9} "
          f"{'leaves':>6} {'writes':>6} {'ratio':>6} {'reads':>5} | "
          f"{'floor s':>7} {'push s':>7}  ≤{CALLS_TARGET}×")
    passed = []
    with FakeMailchimp(latency=args.latency) as fake:
        config = MailchimpConfig(**fake.destination_config())
        sync = SyncSettings(segment="vip", destination="mailchimp", target="VIP",
                            fields={"FNAME": "first_name"})
        h = SyncHarness(MailchimpDestination("mailchimp", config, Path.cwd()), sync)
        join(h, range(1, args.people + 1))
        passed.append(measure(fake, h, "first", args.latency))
        passed.append(measure(fake, h, "rerun", args.latency))
        n = max(1, round(args.people * args.churn))
        h.leave(*range(1, n + 1))
        join(h, range(args.people + 1, args.people + n + 1))
        join(h, range(n + 1, 2 * n + 1), name="Renamed")
        passed.append(measure(fake, h, "churn", args.latency))
    print("PASS" if all(passed) else f"FAIL: write calls above {CALLS_TARGET} × "
          f"ceil(changes / {BATCH}) on {passed.count(False)} of {len(passed)} runs")
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
