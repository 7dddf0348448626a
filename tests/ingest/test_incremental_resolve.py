"""Incremental resolution gives exactly what a full resolution gives, after any edits."""

from __future__ import annotations

from helpers_edits import RESOLVED, apply, snapshot, steps
from hypothesis import HealthCheck, given, settings

from segsync.core.ingest.resolve import resolve
from segsync.core.store import open_store


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_incremental_resolution_equals_a_full_one(sequence):
    incremental, full = open_store(":memory:"), open_store(":memory:")
    for run_id, (edits, _days) in enumerate(sequence, start=1):
        for db in (incremental, full):
            apply(db, edits, run_id)
        resolve(incremental, run_id)
        resolve(full, run_id, full=True)
        assert snapshot(incremental, RESOLVED) == snapshot(full, RESOLVED)
        assert incremental.execute("SELECT count(*) FROM pending_changes").fetchone()[0] == 0


def test_only_the_reached_components_are_relabelled():
    db = open_store(":memory:")
    apply(db, [("customer", "shop", str(k), f"p{k}@x.com", None, None, None, [])
               for k in range(6)], 1)
    assert resolve(db, 1)["relabelled"] == 6
    db.execute("DELETE FROM dirty_people")
    before = dict(db.execute("SELECT key, person_id FROM customers").fetchall())
    # c1 takes c2's address: the two people merge, nobody else is looked at.
    apply(db, [("customer", "shop", "1", "p2@x.com", None, None, None, [])], 2)
    counts = resolve(db, 2)
    assert (counts["relabelled"], counts["merged"]) == (2, 1)
    assert {r[0] for r in db.execute("SELECT person_id FROM dirty_people")} == {
        before["c1"], before["c2"]}
