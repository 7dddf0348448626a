"""Property: whatever the data does and however the destination fails, syncing converges.

A hypothesis state machine changes a small population (segment membership, a synced field,
email, consent, the sync's consent policy) and runs the sync against a destination that fails
transiently before or after applying writes. Checked throughout:

* every key at the destination is acknowledged in the baseline or has an unconfirmed attempt
  (nothing leaks past the bookkeeping), and every acknowledged key without an unconfirmed
  attempt holds exactly its acknowledged payload (the baseline never runs ahead);
* after a run that succeeds, the destination holds exactly the desired set, keys and fields;
  and running again makes no write call;
* the strict fake fails the test if an opted-out person is ever added or updated.
"""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from segsync.core.measure.attributes import CONSENT_ENUM
from segsync.core.retry import NO_WAIT
from segsync.core.settings import SyncSettings
from segsync.core.testing import MemoryDestination, SyncHarness

PEOPLE = range(1, 4)
STATUSES = [*CONSENT_ENUM, None]
ALLOWED = {
    "subscribed": {"SUBSCRIBED"},
    "subscribed_or_pending": {"SUBSCRIBED", "PENDING"},
    "not_opted_out": {"SUBSCRIBED", "PENDING", "NOT_SUBSCRIBED", None},
}
people = st.sampled_from(PEOPLE)
# Two attempts per batch, so two faults in a row exhaust the retries and leave work in doubt.
RETRY = replace(NO_WAIT, attempts=2)


class SyncMachine(RuleBasedStateMachine):
    @initialize(max_batch=st.integers(1, 4))
    def setup(self, max_batch: int) -> None:
        self.dest = MemoryDestination(max_batch=max_batch)
        sync = SyncSettings(
            segment="vip", destination="memory", fields={"first_name": "first_name"}
        )
        self.h = SyncHarness(self.dest, sync, retry=RETRY)
        self.people: dict[int, dict] = {}
        for pid in PEOPLE:
            self.people[pid] = {
                "email": f"p{pid}@shop.test",
                "email_subscription_status": "SUBSCRIBED",
                "first_name": "Ada",
                "member": pid % 2 == 0,
            }
            self.h.person(pid, **self.people[pid])

    def desired(self) -> dict[str, dict]:
        allowed = ALLOWED[self.h.sync.consent]
        return {
            p["email"]: {"first_name": p["first_name"]}
            for p in self.people.values()
            if p["member"] and p["email"] and p["email_subscription_status"] in allowed
        }

    def apply_event(self, event: tuple) -> None:
        kind, pid, value = event
        person = self.people[pid]
        if kind == "toggle":
            person["member"] = not person["member"]
            (self.h.join if person["member"] else self.h.leave)(pid)
        elif kind == "policy":
            self.h.sync = self.h.sync.model_copy(update={"consent": value})
        else:
            column = {"name": "first_name", "consent": "email_subscription_status",
                      "email": "email"}[kind]
            if kind == "email":
                value = f"{value}{pid}@shop.test" if value else None
            person[column] = value
            self.h.update(pid, **{column: value})

    # One rule: some data changes, then a run with scripted destination failures. Making every
    # step a run keeps the interesting sequences (fail in doubt, change, run again) short
    # enough for hypothesis to find.
    @rule(
        events=st.lists(
            st.one_of(
                st.tuples(st.just("toggle"), people, st.none()),
                st.tuples(st.just("name"), people, st.sampled_from(["Ada", "Bob", None])),
                st.tuples(st.just("consent"), people, st.sampled_from(STATUSES)),
                st.tuples(st.just("email"), people, st.sampled_from(["p", "q", None])),
                st.tuples(st.just("policy"), people, st.sampled_from(sorted(ALLOWED))),
            ),
            max_size=3,
        ),
        faults=st.one_of(
            st.lists(st.sampled_from([None, "before", "after"]), max_size=6),
            # Every call of the run fails: everything it sent is in doubt, applied or not.
            st.sampled_from(["before", "after"]).map(lambda kind: [kind] * 20),
        ),
        flaky=st.sets(people, max_size=2),
    )
    def step(self, events: list[tuple], faults: list[str | None], flaky: set[int]) -> None:
        for event in events:
            self.apply_event(event)
        self.dest.faults.clear()
        self.dest.script(faults)
        # Per-record transient failures, on whatever key those people have now.
        self.dest.fail_records(*(p["email"] for pid, p in self.people.items()
                                 if pid in flaky and p["email"]))
        result = self.h.run(allow_large_removals=True)
        self.dest.faults.clear()
        self.dest.flaky.clear()
        assert result.rejected == 0 and result.held == 0, result
        if result.status != "ok":
            return
        assert self.dest.state("vip") == self.desired()
        calls = self.dest.apply_calls
        quiet = self.h.run(allow_large_removals=True)
        assert (quiet.status, quiet.write_calls, self.dest.apply_calls) == ("ok", 0, calls)

    @invariant()
    def bookkeeping_matches_the_destination(self) -> None:
        at_destination = self.dest.state("vip")
        baseline = self.h.baseline()
        in_doubt = {
            key for key, (_op, status, _reason) in self.h.outcomes().items()
            if status in ("pending", "failed")
        }
        assert set(at_destination) <= set(baseline) | in_doubt
        for key, payload in baseline.items():
            if key not in in_doubt:
                assert at_destination.get(key) == json.loads(payload), key


TestSyncProperties = SyncMachine.TestCase
TestSyncProperties.settings = settings(
    max_examples=150,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
