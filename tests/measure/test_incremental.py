"""An incremental run gives exactly what a full recompute gives: people, features, memberships.

Two stores receive the same random edits (customers and orders added, changed and removed,
people merging and splitting through shared emails and phones, consent changes) while the as-of
date advances; one is run incrementally, the other recomputed in full, and after every step
their ``people``, merges, ``person_features`` and segment memberships must be identical.
"""

from __future__ import annotations

import datetime as dt

from helpers_edits import RESOLVED, START, apply, crowd, snapshot, steps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segsync.core.ingest.resolve import resolve
from segsync.core.measure.refresh import refresh_features, segments_done
from segsync.core.segment.membership import materialise
from segsync.core.segment.templates import TEMPLATES
from segsync.core.settings import ScoringSettings, SegmentSettings
from segsync.core.store import open_store

SEGMENTS = {name: SegmentSettings(query=query) for name, query in {
    "repeat": "number_of_orders >= 2",
    "books": "product_categories CONTAINS 'books'",
    "recent_or_big": "orders_last_30d > 0 OR spent_last_365d > 100 OR orders_last_90d >= 2",
    "subscribed": "email_subscription_status = 'SUBSCRIBED' AND customer_tags CONTAINS 'vip'",
    "matches": "orders_placed MATCHES (count >= 2)",
    "champions": "rfm_group = 'CHAMPIONS' OR spend_percentile >= 50",
    "at_risk": "lifecycle_stage = 'AT_RISK' OR lifecycle_stage = 'LAPSED'",
    "lately": "last_order_date > -30d",
    # Relative dates: when the as-of moves, only the people a moved date reaches are looked at.
    "settled": "first_order_date <= -60d AND number_of_orders >= 1",
    "six_weeks": "last_order_date > -45d",  # no feature window ends there: rows stay
    "six_weeks_orders": "orders_placed MATCHES (date > -45d)",
    "on_the_day": "last_order_date = -30d OR first_order_date != -1y",
    "ordered_lately": "orders_placed MATCHES (date > -30d, count >= 1)",
    "books_a_while_ago": "products_purchased MATCHES (category = 'books', "
                         "date BETWEEN -1y AND -7d)",
    "quiet": "NOT orders_placed MATCHES (date >= -90d)",
    "spent_this_year": "orders_placed MATCHES (sum_amount > 30, date > -1y)",
    "occasions": "is_seasonal_buyer = true OR bought_this_time_last_year = true",
}.items()}

FEATURES = {
    "features": "SELECT * FROM person_features ORDER BY person_id",
    "members": "SELECT segment, person_id FROM segment_members ORDER BY 1, 2",
    "sizes": "SELECT name, size FROM segments ORDER BY name",
    "predictions": "SELECT * FROM person_predictions ORDER BY person_id",
    "inputs": "SELECT * FROM prediction_inputs ORDER BY person_id",
}

SCORING = ScoringSettings(seasonal_start="11-15", seasonal_end="01-10", n_new_days=20,
                          n_lapsed_days=60, n_lost_days=200, last_year_window_days=10)


def run(db, as_of, run_id, *, full):
    resolve(db, run_id, full=full)
    result = refresh_features(db, as_of, SCORING, full=full)
    materialise(db, SEGMENTS, as_of, run_id, TEMPLATES, changed=result["changed"])
    segments_done(db)
    return result


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.booleans())
def test_an_incremental_run_equals_a_full_recompute(sequence, crowded):
    """With ``crowded``, the stores start with enough buyers for the prediction models."""
    incremental, full = open_store(":memory:"), open_store(":memory:")
    as_of = START + dt.timedelta(days=300)
    modes = []
    for run_id, (edits, days) in enumerate(sequence, start=1):
        as_of += dt.timedelta(days=days)
        for db in (incremental, full):
            apply(db, (crowd() if crowded and run_id == 1 else []) + edits, run_id)
        modes.append(run(incremental, as_of, run_id, full=False)["mode"])
        run(full, as_of, run_id, full=True)
        assert snapshot(incremental, RESOLVED) == snapshot(full, RESOLVED)
        assert snapshot(incremental, FEATURES) == snapshot(full, FEATURES), (run_id, as_of)
    assert modes[1:] == ["incremental"] * (len(modes) - 1)


def test_only_changed_people_and_those_crossing_a_boundary_are_rebuilt():
    db = open_store(":memory:")
    edits = [("customer", "shop", str(k), f"p{k}@example.com", None, None, None, [])
             for k in range(5)]
    # Person 0 ordered 10 days before the as-of (leaves the 30-day window in 20 days), the
    # others long ago (their next boundary is a year out).
    edits += [("order", "shop", str(k), str(k), None, 290 if k == 0 else 100 + k, 40.0,
               "Books", False) for k in range(5)]
    apply(db, edits, 1)
    as_of = START + dt.timedelta(days=300)
    assert run(db, as_of, 1, full=False)["mode"] == "full"
    assert run(db, as_of + dt.timedelta(days=1), 2, full=False)["rebuilt"] == 0
    apply(db, [("customer", "shop", "3", "p3@example.com", None, "subscribed", None, [])], 3)
    assert run(db, as_of + dt.timedelta(days=2), 3, full=False)["rebuilt"] == 1
    assert run(db, as_of + dt.timedelta(days=20), 4, full=False)["rebuilt"] == 1


def test_the_benchmark_runs_at_tiny_size(tmp_path, capsys, monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "bench"))
    sys.modules.pop("bench_incremental", None)
    import bench_incremental

    assert bench_incremental.main(["--people", "400", "--db", str(tmp_path / "b.db")]) == 0
    out = capsys.readouterr().out
    assert "4 people changed" in out and "ratio" in out
    assert out.index("full (floor)") < out.index("incremental")


def test_a_moved_relative_date_looks_only_at_the_people_it_reaches(monkeypatch):
    from segsync.core.segment import membership

    db = open_store(":memory:")
    edits = [("customer", "shop", str(k), f"p{k}@example.com", None, None, None, [])
             for k in range(5)]
    # Person 0 ordered 42 days before the as-of, the others long before.
    edits += [("order", "shop", str(k), str(k), None, 258 if k == 0 else 100 + k, 40.0,
               "Books", False) for k in range(5)]
    apply(db, edits, 1)
    as_of = START + dt.timedelta(days=300)
    run(db, as_of, 1, full=False)
    members = "SELECT person_id FROM segment_members WHERE segment = ?"
    (person,) = {r[0] for r in db.execute(members, ["six_weeks"])}
    assert {r[0] for r in db.execute(members, ["six_weeks_orders"])} == {person}

    reached = {}

    def spy(db, seg, before):
        _reached(db, seg, before)
        reached[seg.name] = {r[0] for r in db.execute("SELECT person_id FROM temp._seg_people")}

    _reached = membership._reached
    monkeypatch.setattr(membership, "_reached", spy)
    # Five days on, the 45-day bound passes person 0's order, and no row is rebuilt: they
    # alone are looked at, through the feature column and through the orders, and leave.
    assert run(db, as_of + dt.timedelta(days=5), 2, full=False)["rebuilt"] == 0
    assert reached["six_weeks"] == reached["six_weeks_orders"] == {person}
    assert reached["repeat"] == reached["books"] == set()
    for name in ("six_weeks", "six_weeks_orders"):
        assert list(db.execute(members, [name])) == []
