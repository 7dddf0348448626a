"""The Mailchimp destination driven by the real plan → push loop against the fake.

Call counts, convergence after a crash at every HTTP call, after every kind of fault, the
connection cap, and reconcile.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakes.mailchimp import FakeMailchimp, FaultKind

from segsync.connectors.mailchimp.config import MailchimpConfig
from segsync.connectors.mailchimp.destination import MailchimpDestination
from segsync.core.retry import NO_WAIT
from segsync.core.settings import SyncSettings
from segsync.core.sync.reconcile import reconcile
from segsync.core.testing import MemoryDestination, SyncHarness

TAG = "VIP Customers"


@pytest.fixture
def fake() -> Iterator[FakeMailchimp]:
    with FakeMailchimp() as server:
        yield server


def destination(fake: FakeMailchimp, transport: httpx.BaseTransport | None = None,
                **config) -> MailchimpDestination:
    cfg = MailchimpConfig(**fake.destination_config(**config))
    return MailchimpDestination("mailchimp", cfg, Path.cwd(), transport=transport)


def harness(fake: FakeMailchimp, **config) -> SyncHarness:
    """A sync with the default options, as most configs have it."""
    sync = SyncSettings(segment="vip", destination="mailchimp", target=TAG,
                        fields={"FNAME": "first_name", "LNAME": "last_name"})
    return SyncHarness(destination(fake, **config), sync)


def email(i: int) -> str:
    return f"shopper{i:06d}@customers.shop"


def add_people(h: SyncHarness, ids: range | list[int]) -> None:
    """Subscribed people in the segment, written in bulk (50k upserts one by one are slow)."""
    h.db.conn.executemany(
        "INSERT OR REPLACE INTO person_features (person_id, email, email_subscription_status, "
        "first_name, last_name) VALUES (?, ?, 'SUBSCRIBED', ?, ?)",
        [(i, email(i), f"First{i}", f"Last{i}") for i in ids],
    )
    h.join(*ids)


def desired(h: SyncHarness) -> set[str]:
    return {row[0] for row in h.db.execute(
        "SELECT f.email FROM segment_members m JOIN person_features f USING (person_id) "
        "WHERE m.segment = 'vip'").fetchall()}


def assert_converged(fake: FakeMailchimp, h: SyncHarness) -> None:
    """The tag holds exactly the desired people, once each, with their fields; one tag."""
    assert len(fake.tags_named(TAG)) == 1, "a second tag was created"
    assert fake.tag_emails(TAG) == desired(h)
    audience = fake.lists[next(iter(fake.lists))]
    emails = [m.email.lower() for m in audience.members.values()]
    assert len(emails) == len(set(emails)), "a contact was duplicated"
    for row in h.db.execute("SELECT email, first_name FROM person_features "
                            "JOIN segment_members USING (person_id)").fetchall():
        member = fake.member(row[0])
        assert member is not None and member.status == "subscribed"
        assert member.merge_fields["FNAME"] == row[1]


def settle(h: SyncHarness) -> None:
    """Run until a run has nothing left to send (at most three runs)."""
    for _ in range(3):
        result = h.run()
        if result.status == "ok" and result.write_calls == 0:
            return
    raise AssertionError(f"did not settle: {result}")


# -- call counts ------------------------------------------------------------------------------


def test_a_50k_initial_sync_makes_the_minimum_calls_and_a_second_run_none(fake):
    n = 50_000
    h = harness(fake)
    add_people(h, range(1, n + 1))
    result = h.run()
    assert (result.status, result.added) == ("ok", n), result
    # One tag creation, then per 500 people one batch subscribe that creates the contacts,
    # sets their merge fields and tags them: within 1.05 × ceil(changes / 500).
    assert fake.write_calls <= 1.05 * math.ceil(n / 500)
    assert fake.write_calls == 1 + math.ceil(n / 500)  # and nothing was retried
    assert fake.calls["POST /lists/{list_id}/segments/{segment_id}"] == 0
    assert fake.peak <= 10 and fake.refused == 0
    assert len(fake.tag_emails(TAG)) == n

    before = fake.calls.copy()
    again = h.run()
    assert (again.status, again.write_calls, again.unchanged) == ("ok", 0, n)
    assert fake.calls == before  # not a single request, reads included


def test_changes_share_calls(fake):
    h = harness(fake)
    add_people(h, range(1, 101))
    h.run()
    writes = fake.write_calls
    h.leave(*range(1, 11))
    add_people(h, range(101, 111))
    h.update(50, last_name="Changed")
    result = h.run()
    assert (result.added, result.updated, result.removed) == (10, 1, 10)
    # 21 changes in one batch: one batch subscribe (adds with the tag, the update), one
    # segment batch (the removals).
    assert fake.write_calls - writes == 2
    assert_converged(fake, h)


def test_a_null_field_never_blanks_a_value_in_mailchimp(fake):
    h = harness(fake)
    add_people(h, [1])
    h.run()
    h.update(1, first_name=None, last_name="New")
    assert h.run().updated == 1
    assert fake.member(email(1)).merge_fields == {"FNAME": "First1", "LNAME": "New"}


# -- the connection cap -----------------------------------------------------------------------


@pytest.mark.parametrize("cap, people, latency", [(3, 3000, 0.01), (10, 6000, 0.005)])
def test_simultaneous_requests_never_exceed_the_cap(cap, people, latency):
    with FakeMailchimp(latency=latency) as fake:
        h = harness(fake, max_concurrency=cap)
        add_people(h, range(1, people + 1))
        assert h.run().status == "ok"
        assert fake.refused == 0
        assert 1 < fake.peak <= cap  # concurrency was used, never beyond the cap
        assert_converged(fake, h)


# -- crashes and faults -----------------------------------------------------------------------


class Killed(BaseException):
    """The process died: not an error any code may catch and handle."""


class KillAfter(httpx.HTTPTransport):
    """Lets ``n`` requests reach the server, then kills the 'process': the n-th answer is
    never seen and nothing is sent afterwards."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.sent = n, 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            if self.sent >= self.n:
                raise Killed
            self.sent += 1
            last = self.sent == self.n
        response = super().handle_request(request)
        if last:
            response.read()
            raise Killed
        return response


def crash_and_rerun(fake: FakeMailchimp, h: SyncHarness, n: int) -> bool:
    """Run with the process killed after HTTP call ``n``, then rerun as a new process until
    settled; True when the kill happened."""
    transport = KillAfter(n)
    h.destination = destination(fake, transport=transport)
    killed = False
    try:
        h.run()
    except Killed:
        killed = True
    h.destination = destination(fake)
    settle(h)
    assert_converged(fake, h)
    return killed


def test_a_run_killed_after_any_call_converges_on_rerun():
    people = 1100
    # The first run (tag lookup and creation, contacts, membership), killed at each call.
    n = 1
    while True:
        with FakeMailchimp() as fake:
            h = harness(fake)
            add_people(h, range(1, people + 1))
            if not crash_and_rerun(fake, h, n):
                break
        n += 1
    assert n > 3
    # A run of adds, updates and removals, killed at each call.
    n = 1
    while True:
        with FakeMailchimp() as fake:
            h = harness(fake)
            add_people(h, range(1, people + 1))
            settle(h)
            h.leave(*range(1, people // 4 + 1))
            add_people(h, range(people + 1, people + people // 4 + 1))
            h.update(people // 2, first_name="Changed")
            if not crash_and_rerun(fake, h, n):
                break
        n += 1
    assert n > 2


FAULTS: list[FaultKind] = ["error_before", "error_after", "throttle", "bodiless_403",
                           "timeout_before", "timeout_after", "disconnect_before",
                           "disconnect_after", "truncate_after"]
SEGMENT_BATCH = "POST /lists/{list_id}/segments/{segment_id}"
ROUTES = ["POST /lists/{list_id}/segments", "GET /lists/{list_id}/members",
          "POST /lists/{list_id}", SEGMENT_BATCH]


@pytest.mark.parametrize("kind", FAULTS)
def test_faults_on_every_route_converge_without_duplicates(kind):
    for route in ROUTES:
        with FakeMailchimp(hang=0.3) as fake:
            h = harness(fake, timeout=0.1)
            add_people(h, range(1, 13))
            if route == SEGMENT_BATCH:  # only leaves take it
                settle(h)
                h.leave(1, 2, 3)
            fake.fail(kind, route)
            result = h.run(allow_large_removals=True)
            # One fault is absorbed by a retry within the run.
            assert result.status == "ok", (route, result)
            assert_converged(fake, h)
            assert not fake.faults


def test_faults_outlasting_the_retries_are_repaired_by_the_next_run():
    with FakeMailchimp() as fake:
        h = harness(fake)
        add_people(h, range(1, 13))
        settle(h)
        h.leave(1, 2)
        add_people(h, [20, 21])
        fake.fail("error_after", "write", times=5)
        assert h.run().status in ("partial", "failed")
        settle(h)
        assert_converged(fake, h)


# -- reconcile --------------------------------------------------------------------------------


def test_reconcile_repairs_hand_made_drift(fake):
    h = harness(fake)
    add_people(h, range(1, 21))
    settle(h)
    segment = fake.tags_named(TAG)[0]
    # Someone untags two people and tags two strangers (one of them a segsync customer who
    # is not in the segment) by hand.
    segment.members -= {h_ for h_ in list(segment.members)[:2]}
    fake.seed("stranger@customers.shop", tags=(TAG,))
    add_people(h, [99])
    h.leave(99)
    fake.seed(email(99), tags=(TAG,))
    writes = fake.write_calls

    found = reconcile(h.db, h.name, h.sync, h.destination, run_id=50, retry=NO_WAIT)
    assert (found.status, found.remote, found.missing, found.unexpected) == ("ok", 20, 2, 2)
    assert fake.write_calls == writes  # reading only
    drift = h.db.execute("SELECT count(*) FROM sync_log WHERE op = 'reconcile'").fetchone()[0]
    assert drift == 4
    result = h.run()
    assert (result.added, result.removed) == (2, 2)
    assert_converged(fake, h)
    again = reconcile(h.db, h.name, h.sync, h.destination, retry=NO_WAIT)
    assert (again.missing, again.unexpected) == (0, 0)


def test_reconcile_refills_a_tag_deleted_by_hand(fake):
    h = harness(fake)
    add_people(h, range(1, 11))
    settle(h)
    audience = fake.lists[next(iter(fake.lists))]
    del audience.segments[fake.tags_named(TAG)[0].id]
    found = reconcile(h.db, h.name, h.sync, h.destination, retry=NO_WAIT)
    assert (found.missing, found.unexpected) == (10, 0)
    assert h.run().added == 10
    assert_converged(fake, h)


def test_reconcile_leaves_targets_segsync_never_pushed_to(fake):
    fake.seed("theirs@customers.shop", tags=(TAG,))
    h = harness(fake)
    add_people(h, [1])
    found = reconcile(h.db, h.name, h.sync, h.destination, retry=NO_WAIT)
    assert found.status == "skipped" and found.reason
    assert h.baseline() == {}
    h.run()
    assert fake.tag_emails(TAG) == {"theirs@customers.shop", email(1)}


def test_reconcile_works_for_any_destination_that_lists_members():
    memory = MemoryDestination()
    h = SyncHarness(memory)
    for pid in (1, 2, 3):
        h.person(pid, email=f"p{pid}@shop.test", email_subscription_status="SUBSCRIBED")
    h.run()
    memory.data["vip"].pop("p1@shop.test")
    memory.data["vip"]["hand@shop.test"] = {}
    found = reconcile(h.db, h.name, h.sync, memory, retry=NO_WAIT)
    assert (found.missing, found.unexpected) == (1, 1)
    h.run(allow_large_removals=True)
    assert memory.members_of("vip") == {"p1@shop.test", "p2@shop.test", "p3@shop.test"}
