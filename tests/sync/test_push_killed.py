"""A run whose store writes die at any point converges on the next run (DESIGN §4).

The process is "killed" inside SQLite: a progress handler aborts whatever statement runs after
``n`` virtual-machine steps, and every later one, so for some ``n`` each statement of the
plan and of the push (journal, pending marks, baseline, outcomes, log) dies half-way, and
nothing after it reaches the store. What the killed transaction wrote is rolled back, as a
real kill leaves it; calls already handed to a worker still land at the destination.

Between the kill and the next run the world moves on: keys that were being added leave, one
being removed comes back, a member unsubscribes. The next run must leave the destination with
exactly the desired set (no orphan from a write in doubt, no resubscribed opt-out), a baseline
that matches it, and nothing more to send.
"""

from __future__ import annotations

import sqlite3

import pytest

from segsync.core.settings import SyncSettings
from segsync.core.testing import MemoryDestination, SyncHarness

#: VM steps between two calls of the progress handler: small enough to stop inside statements.
PERIOD = 20


def key(pid: int) -> str:
    return f"p{pid:02d}@shop.test"


def world() -> SyncHarness:
    """A baseline of eight members, then the changes the killed run pushes: four adds (one
    rejected, one failing transiently), two updates, two removals, in batches of three."""
    dest = MemoryDestination(max_batch=3, max_concurrency=2)
    sync = SyncSettings(segment="vip", destination="memory", fields={"first_name": "first_name"})
    h = SyncHarness(dest, sync)
    for pid in range(1, 13):
        h.person(pid, email=key(pid), email_subscription_status="SUBSCRIBED", first_name="Ada",
                 member=pid <= 8)
    assert h.run().status == "ok"
    h.join(9, 10, 11, 12)
    h.update(1, first_name="Bob")
    h.update(2, first_name="Cy")
    h.leave(7, 8)
    dest.reject(key(10))
    dest.fail_records(key(11))
    return h


def killed_run(h: SyncHarness, steps: int) -> bool:
    """Run with the store dying after ``steps`` progress ticks; True if it died."""
    ticks = 0

    def tick() -> bool:
        nonlocal ticks
        ticks += 1
        return ticks > steps

    conn = h.db.conn
    conn.set_progress_handler(tick, PERIOD)
    try:
        h.run(allow_large_removals=True)
        died = False
    except sqlite3.OperationalError as exc:
        assert "interrupted" in str(exc)
        died = True
    finally:
        conn.set_progress_handler(None, 0)
    if conn.in_transaction:
        conn.rollback()
    return died


def total_ticks() -> int:
    h = world()
    ticks = 0

    def count() -> bool:
        nonlocal ticks
        ticks += 1
        return False

    h.db.conn.set_progress_handler(count, PERIOD)
    h.run(allow_large_removals=True)
    return ticks


TOTAL = total_ticks()


@pytest.mark.parametrize("steps", sorted({TOTAL * i // 80 for i in range(80)}))
def test_a_run_killed_at_any_store_write_converges_on_the_next(steps):
    h = world()
    assert killed_run(h, steps)
    dest = h.destination
    assert isinstance(dest, MemoryDestination)
    dest.flaky.clear()
    h.leave(9, 12)
    h.join(7)
    h.update(3, email_subscription_status="UNSUBSCRIBED")

    result = h.run(allow_large_removals=True)

    # Only the rejection may remain: the destination refuses p10 for good.
    assert result.failed == 0 and result.status in ("ok", "partial")
    names = {1: "Bob", 2: "Cy"}
    wanted = {key(pid): {"first_name": names.get(pid, "Ada")} for pid in (1, 2, 4, 5, 6, 7, 11)}
    assert dest.state("vip") == wanted
    assert set(h.baseline()) == set(wanted)
    assert {k for k, (_op, status, _reason) in h.outcomes().items()} <= {key(10)}
    assert h.db.execute("SELECT count(*) FROM sync_journal WHERE state = 'sent'").fetchone()[0] == 0
    calls = dest.apply_calls
    quiet = h.run(allow_large_removals=True)
    assert (quiet.write_calls, dest.apply_calls) == (0, calls)
