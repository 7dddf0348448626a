"""The rank pass (:func:`segsync.core.measure.scores.rank`) and the shop-wide gap
(:func:`~segsync.core.measure.scores.shop_gap`) equal their window-function definitions.

The rank pass counts the buyers below each value (a GROUP BY and a running sum, then a look-up
per buyer) instead of sorting every buyer once per score; a wrong running sum, an off-by-one
between ``RANK()`` and the count below, or a tie split across values would move a score. So
random feature rows with many ties, in both usage modes and on both bases, are ranked both ways
and every column of ``temp._sc_ranks`` must match the plain ``RANK()`` form of the scores
module's docstring.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from segsync.core.measure.scores import drop_temp, prepare_ranks, rank, score_params, shop_gap
from segsync.core.settings import ScoringSettings

# score = 1 + floor(5 * below / n), below = RANK() - 1, over the buyers; the usage share over
# the year's buyers; counts as windows, the plainest form.
DEFINITION = """
SELECT w.person_id, w.r, w.f, w.m, w.r || w.f || w.m, map.rfm_group, w.spend_percentile,
    w.usage_tier
FROM (
    SELECT person_id,
        1 + 5 * (rank() OVER (ORDER BY last_order_date) - 1) / count(*) OVER () AS r,
        1 + 5 * (rank() OVER (ORDER BY number_of_orders) - 1) / count(*) OVER () AS f,
        1 + 5 * (rank() OVER (ORDER BY amount_spent) - 1) / count(*) OVER () AS m,
        100.0 * (rank() OVER (ORDER BY amount_spent) - 1) / count(*) OVER ()
            AS spend_percentile,
        CASE WHEN orders_last_365d > 0 THEN {usage} END AS usage_tier
    FROM feats
    WHERE number_of_orders > 0
    WINDOW year_buyers AS (PARTITION BY orders_last_365d > 0)
) AS w
LEFT JOIN temp._sc_rfm_map AS map ON map.cell = w.r || w.f || w.m
ORDER BY w.person_id
"""

SHARE = """CASE
    WHEN 100 * (rank() OVER (year_buyers ORDER BY {basis}) - 1)
        >= (100 - :heavy_percent) * count(*) OVER year_buyers THEN 'HEAVY'
    WHEN 100 * (rank() OVER (year_buyers ORDER BY {basis}) - 1)
        >= (100 - :heavy_percent - :medium_percent) * count(*) OVER year_buyers THEN 'MEDIUM'
    ELSE 'LIGHT' END"""
FIXED = """CASE WHEN {basis} >= :heavy_min THEN 'HEAVY'
    WHEN {basis} >= :medium_min THEN 'MEDIUM' ELSE 'LIGHT' END"""
BASIS = {"orders": "orders_last_365d", "spend": "spent_last_365d"}

# Few distinct values, so most buyers tie with others; amounts include 0, negatives (refunds
# larger than the orders) and values that are not exact in binary.
row = st.tuples(
    st.integers(0, 4),  # number_of_orders: 0 is a prospect, not ranked
    st.sampled_from(["2024-01-05", "2024-03-01", "2024-03-02", "2024-06-14"]),
    st.sampled_from([0.0, -5.5, 0.1, 0.3, 12.0, 99.99, 100.0]),
    st.integers(0, 3),  # orders_last_365d: 0 is not a year buyer
    st.sampled_from([0.0, 0.1, 4.0, 12.0, 12.5]),
)


@st.composite
def scorings(draw: st.DrawFn) -> ScoringSettings:
    heavy = draw(st.integers(0, 100))
    medium_min = draw(st.sampled_from([0.0, 1.0, 4.0]))
    return ScoringSettings(
        usage_mode=draw(st.sampled_from(["share", "fixed"])),
        usage_basis=draw(st.sampled_from(["orders", "spend"])),
        usage_heavy_percent=heavy, usage_medium_percent=draw(st.integers(0, 100 - heavy)),
        usage_medium_min=medium_min,
        usage_heavy_min=medium_min + draw(st.sampled_from([0.0, 0.5, 2.0, 10.0])))


@settings(max_examples=300, deadline=None)
@given(st.lists(row, max_size=40), scorings())
def test_the_rank_pass_equals_the_window_definition(rows, scoring):
    db = Database(memory=True)
    db.execute("CREATE TABLE feats (person_id INTEGER PRIMARY KEY, number_of_orders INTEGER, "
               "last_order_date TEXT, amount_spent REAL, orders_last_365d INTEGER, "
               "spent_last_365d REAL)")
    # Shuffled ids: the pass must not depend on the order rows arrive in.
    ids = [(k * 7919) % 1009 + 1 for k in range(len(rows))]
    db.conn.executemany("INSERT INTO feats VALUES (?, ?, ?, ?, ?, ?)",
                        [(i, *values) for i, values in zip(ids, rows, strict=True)])
    params = score_params(dt.date(2024, 6, 15), scoring)
    prepare_ranks(db, scoring)
    rank(db, scoring, "feats", params)
    got = db.execute("SELECT * FROM temp._sc_ranks ORDER BY person_id").fetchall()
    usage = (SHARE if scoring.usage_mode == "share" else FIXED).format(
        basis=BASIS[scoring.usage_basis])
    expected = db.execute(DEFINITION.format(usage=usage), params).fetchall()
    assert got == expected
    assert [name for (name,) in db.execute(
        "SELECT name FROM temp.sqlite_master WHERE type = 'table' ORDER BY 1")] == [
        "_sc_ranks", "_sc_rfm_map"]  # the pass leaves only its result behind
    drop_temp(db)


# The median by position in the sorted gaps, as the window form had it.
MEDIAN = """
WITH g AS (
    SELECT median_order_gap_days AS gap,
        row_number() OVER (ORDER BY median_order_gap_days) AS rn, count(*) OVER () AS n
    FROM gaps WHERE median_order_gap_days IS NOT NULL
)
SELECT avg(gap) FROM g WHERE rn IN ((n + 1) / 2, (n + 2) / 2)
"""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from([0.5, 1.0, 3.0, 7.5, 30.0, 0.1])),
                max_size=30))
def test_the_shop_gap_is_the_median_by_position(gaps):
    """Odd and even counts, middles inside one tie group or across two, none at all."""
    db = Database(memory=True)
    db.execute("CREATE TABLE gaps (median_order_gap_days REAL)")
    db.conn.executemany("INSERT INTO gaps VALUES (?)", [(g,) for g in gaps])
    assert shop_gap(db, "gaps") == db.execute(MEDIAN).fetchone()[0]
