"""Built-in scores (segsync.core.measure.scores) against hand-computed answers on small stores.

Each test builds people and orders in an in-memory store, runs the real build
(:func:`build_features`: features and scores), and compares with values worked out by hand in the
comments. The as-of date is 2024-06-15 unless a test says otherwise (2024 is a leap year, so
29 February shows).
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest
from conftest import needs_shared_data
from helpers_shop import AS_OF, Shop

from segsync.core.errors import ConfigError
from segsync.core.measure.attributes import ATTRIBUTES, BY_NAME
from segsync.core.measure.predict import write_predictions
from segsync.core.measure.scores import (
    PREDICTION_COLUMNS,
    RFM_CELLS,
    RFM_GROUPS,
    SCORE_COLUMNS,
    build_features,
    load_rfm_map,
)
from segsync.core.settings import ScoringSettings, load_settings

# -- RFM --------------------------------------------------------------------------------------


@pytest.fixture
def ten_buyers() -> Shop:
    """Person i (1-10) has i orders, the latest (11 - i) * 10 days ago and the others 3 days
    apart before it, and spent (11 - i) * 100 in all; person 11 is a prospect.

    So R and F grow with i, M shrinks with it, and every value is distinct: scores are the
    exact quintiles 1,1,2,2,3,3,4,4,5,5 (M reversed).
    """
    shop = Shop()
    for i in range(1, 11):
        shop.person(i)
        last = (11 - i) * 10
        for n in range(i):
            shop.order(i, last + 3 * n, (11 - i) * 100.0 - (i - 1) if n == 0 else 1.0)
    shop.person(11)
    return shop


def test_rfm_scores_are_quintiles_of_buyers_most_recent_best(ten_buyers: Shop) -> None:
    ten_buyers.score()
    quintiles = dict(zip(range(1, 11), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5], strict=True))
    assert ten_buyers.column("recency_score") == {**quintiles, 11: None}
    assert ten_buyers.column("frequency_score") == {**quintiles, 11: None}
    assert ten_buyers.column("monetary_score") == {i: 6 - q for i, q in quintiles.items()} | {
        11: None}
    assert ten_buyers.column("rfm_score") == {
        1: "115", 2: "115", 3: "224", 4: "224", 5: "333", 6: "333", 7: "442", 8: "442",
        9: "551", 10: "551", 11: None}
    # 115 and 224 are Hibernating (only 111 is Lost), 333 Need Attention, 442 Loyal, 551
    # Champions: the group follows R and F, whatever M says.
    assert ten_buyers.column("rfm_group") == {
        1: "HIBERNATING", 2: "HIBERNATING", 3: "HIBERNATING", 4: "HIBERNATING",
        5: "NEED_ATTENTION", 6: "NEED_ATTENTION", 7: "LOYAL_CUSTOMERS", 8: "LOYAL_CUSTOMERS",
        9: "CHAMPIONS", 10: "CHAMPIONS", 11: None}
    # Person 10 spent least (100): nobody spent less. Person 1 spent most: 90 % spent less.
    assert ten_buyers.column("spend_percentile") == {
        **{i: float((10 - i) * 10) for i in range(1, 11)}, 11: None}


def test_rfm_ties_share_the_score_of_their_lowest_position() -> None:
    """Orders 1,1,1,2,3 and spends 10,20,30,50,50, all on the same day.

    A rank-first rule would give F = 1,2,3,4,5; here the three one-order buyers share F = 1
    (nobody is below them), the two-order buyer has 3 of 5 below (F = 1 + 15 // 5 = 4) and the
    three-order buyer 4 of 5 (F = 5). The tied top spenders both have 3 below: M = 4, and
    spend_percentile 60. Everyone ordered last on the same day, so nobody is more recent than
    anybody: R = 1 for all.
    """
    shop = Shop()
    for pid, (orders, spent) in enumerate([(1, 10), (1, 20), (1, 30), (2, 50), (3, 50)], 1):
        shop.person(pid)
        for n in range(orders):
            shop.order(pid, 7 if n == 0 else 20 + n, spent if n == 0 else 0.0)
    shop.score()
    assert shop.column("frequency_score") == {1: 1, 2: 1, 3: 1, 4: 4, 5: 5}
    assert shop.column("monetary_score") == {1: 1, 2: 2, 3: 3, 4: 4, 5: 4}
    assert shop.column("recency_score") == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    assert shop.column("spend_percentile") == {1: 0.0, 2: 20.0, 3: 40.0, 4: 60.0, 5: 60.0}
    # The top 20 % cannot hold a tie of two out of five: nobody; the top 40 % holds both.
    assert shop.select("spend_percentile >= 80") == set()
    assert shop.select("spend_percentile >= 60") == {4, 5}


#: The documented default grid (rfm_map.toml's header): F row → group for R 1-2, 3, 4, 5.
DOCUMENTED_GRID = {
    1: ("HIBERNATING", "ABOUT_TO_SLEEP", "PROMISING", "NEW_CUSTOMERS"),
    2: ("HIBERNATING", "ABOUT_TO_SLEEP", "POTENTIAL_LOYALISTS", "POTENTIAL_LOYALISTS"),
    3: ("AT_RISK", "NEED_ATTENTION", "POTENTIAL_LOYALISTS", "POTENTIAL_LOYALISTS"),
    4: ("AT_RISK", "LOYAL_CUSTOMERS", "LOYAL_CUSTOMERS", "CHAMPIONS"),
    5: ("CANT_LOSE_THEM", "LOYAL_CUSTOMERS", "LOYAL_CUSTOMERS", "CHAMPIONS"),
}


def test_the_shipped_map_gives_every_one_of_125_cells_one_of_the_11_groups() -> None:
    groups = load_rfm_map()
    cells = ["".join(c) for c in itertools.product("12345", repeat=3)]
    assert sorted(groups) == cells == list(RFM_CELLS)
    assert len(RFM_GROUPS) == 11
    assert set(groups.values()) == set(RFM_GROUPS)  # every name used, no other name
    assert RFM_GROUPS == BY_NAME["rfm_group"].values


def test_the_shipped_map_is_the_documented_grid_plus_lost() -> None:
    groups = load_rfm_map()
    for r, f, m in itertools.product(range(1, 6), repeat=3):
        expected = DOCUMENTED_GRID[f][max(r - 2, 0)]
        assert groups[f"{r}{f}{m}"] == ("LOST" if (r, f, m) == (1, 1, 1) else expected)
    assert (groups["111"], groups["112"], groups["211"]) == ("LOST", "HIBERNATING",
                                                               "HIBERNATING")
    assert (groups["555"], groups["541"], groups["515"], groups["155"]) == (
        "CHAMPIONS", "CHAMPIONS", "NEW_CUSTOMERS", "CANT_LOSE_THEM")


def _write_map(path: Path, groups: dict[str, str]) -> Path:
    path.write_text("[groups]\n" + "".join(f'{k} = "{v}"\n' for k, v in groups.items()))
    return path


def test_a_replacement_map_from_settings_is_used(ten_buyers: Shop, tmp_path: Path) -> None:
    everything_lost = _write_map(tmp_path / "map.toml", dict.fromkeys(RFM_CELLS, "LOST"))
    ten_buyers.score(scoring=ScoringSettings(rfm_map=everything_lost))
    assert set(ten_buyers.column("rfm_group").values()) == {"LOST", None}


def test_a_bad_map_lists_every_problem_and_changes_nothing(ten_buyers: Shop,
                                                           tmp_path: Path) -> None:
    groups = dict.fromkeys(RFM_CELLS, "CHAMPIONS")
    del groups["345"]
    groups["155"] = "VIP"
    groups["605"] = "LOST"
    path = _write_map(tmp_path / "map.toml", groups)
    ten_buyers.score()
    before = ten_buyers.column("rfm_group")
    with pytest.raises(ConfigError) as err:
        build_features(ten_buyers.db, AS_OF, ScoringSettings(rfm_map=path))
    assert err.value.problems == [
        f"{path}: cell 345 is missing",
        f"{path}: 605 is not a cell (R, F and M are 1-5, written as 545)",
        f"{path}: cell 155: 'VIP' is not one of {', '.join(RFM_GROUPS)}",
    ]
    assert ten_buyers.column("rfm_group") == before


@pytest.mark.parametrize(("text", "message"), [
    ("[groups\n", "not valid TOML"),
    ('111 = "LOST"\n', "exactly one table, [groups]"),
])
def test_a_map_that_is_not_a_groups_table_is_refused(tmp_path: Path, text: str,
                                                     message: str) -> None:
    path = tmp_path / "map.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_rfm_map(path)
    with pytest.raises(ConfigError, match="cannot read the RFM map"):
        load_rfm_map(tmp_path / "missing.toml")


# -- lifecycle --------------------------------------------------------------------------------


@pytest.fixture
def lifecycle_shop() -> Shop:
    """One person per stage (as of 2024-06-15, defaults 30 / 240 / 365 days, k = 1.5).

    Per-person median gaps: 3 → 295, 4 → 195, 5 → 100, 6/7/8 → 10; the shop-wide median of
    those six is (10 + 100) / 2 = 55, the usual gap of one-order customers (1.5 × 55 = 82.5).
    """
    shop = Shop()
    for pid in range(1, 13):
        shop.person(pid)
    shop.order(1, 5, cancelled_at="2024-06-11T00:00:00")  # none of 1's rows is an order
    shop.order(1, 4, test=1)
    shop.order(1, 3, -20.0)
    shop.order(2, 10)                                 # NEW: one order, 10 days ago
    for days in (300, 5):                             # REACTIVATED: back after 295 days
        shop.order(3, days)
    shop.order(3, 100, cancelled_at="2024-03-08T00:00:00")  # does not shorten the gap
    for days in (200, 5):                             # back after 195 days: only ACTIVE
        shop.order(4, days)
    for days in (500, 400):                           # LOST: 400 > 365 (and > 240)
        shop.order(5, days)
    for days in (270, 260, 250):                      # LAPSED: 250 > 240, though also at risk
        shop.order(6, days)
    for days in (40, 30, 20):                         # AT_RISK: 20 > 1.5 × 10
        shop.order(7, days)
    for days in (32, 22, 12):                         # ACTIVE: 12 < 15
        shop.order(8, days)
    shop.order(9, 100)                                # AT_RISK by the shop gap: 100 > 82.5
    shop.order(10, 50)                                # ACTIVE: 50 < 82.5
    shop.order(11, 30)                                # not NEW: 30 days is not within 30
    shop.order(12, 240)                               # not LAPSED: 240 is not over 240
    return shop


def test_lifecycle_stage_is_the_first_rule_that_applies(lifecycle_shop: Shop) -> None:
    result = lifecycle_shop.score()
    assert lifecycle_shop.column("lifecycle_stage") == {
        1: "PROSPECT", 2: "NEW", 3: "REACTIVATED", 4: "ACTIVE", 5: "LOST", 6: "LAPSED",
        7: "AT_RISK", 8: "ACTIVE", 9: "AT_RISK", 10: "ACTIVE", 11: "ACTIVE", 12: "AT_RISK"}
    assert result == {
        "people": 12, "buyers": 11, "predictions": False,
        "lifecycle_stage": {"PROSPECT": 1, "NEW": 1, "REACTIVATED": 1, "LOST": 1, "LAPSED": 1,
                            "AT_RISK": 3, "ACTIVE": 4},
        "rfm_group": result["rfm_group"],
        "usage_tier": result["usage_tier"],
    }
    assert sum(result["rfm_group"].values()) == 11
    # Person 5's orders are all over a year old: no usage tier, like the prospect.
    assert lifecycle_shop.column("usage_tier")[5] is None
    assert lifecycle_shop.column("usage_tier")[1] is None
    assert sum(result["usage_tier"].values()) == 10


def test_lifecycle_thresholds_come_from_the_settings(lifecycle_shop: Shop) -> None:
    lifecycle_shop.score(scoring=ScoringSettings(n_new_days=31, n_lapsed_days=300,
                                                 at_risk_k=2.5))
    stages = lifecycle_shop.column("lifecycle_stage")
    assert stages[11] == "NEW"          # 30 < 31
    assert stages[6] == "AT_RISK"       # 250 is no longer lapsed, but 250 > 2.5 × 10
    assert stages[3] == "ACTIVE"        # a gap of 295 days is no longer a reactivation
    assert stages[7] == "ACTIVE"        # 20 < 2.5 × 10
    assert stages[9] == "ACTIVE"        # 100 < 2.5 × 55


def test_predictions_for_the_as_of_date_are_joined_and_low_p_alive_is_lost(
        lifecycle_shop: Shop) -> None:
    lifecycle_shop.predictions(AS_OF, {
        pid: (0.05 if pid in (3, 8) else 0.9, "HIGH" if pid == 8 else "MEDIUM")
        for pid in range(2, 12)})
    result = lifecycle_shop.score()
    assert result["predictions"] is True
    stages = lifecycle_shop.column("lifecycle_stage")
    assert stages[8] == "LOST"          # P(alive) 0.05 < 0.1 although the days say ACTIVE
    assert stages[3] == "REACTIVATED"   # reactivation is checked before loss
    assert lifecycle_shop.column("p_alive")[8] == 0.05
    assert lifecycle_shop.column("churn_risk")[8] == 0.95
    assert lifecycle_shop.column("expected_purchases_90d")[8] == 0.8
    assert lifecycle_shop.column("clv")[8] == 800.0
    assert lifecycle_shop.column("predicted_spend_tier")[8] == "HIGH"
    assert lifecycle_shop.column("p_alive")[1] is None  # prospects have no prediction
    assert lifecycle_shop.select("churn_risk > 0.7") == {3, 8}
    assert lifecycle_shop.select("predicted_spend_tier = 'HIGH'") == {8}


@pytest.mark.parametrize("how", ["other day", "argument", "settings"])
def test_predictions_are_left_out_when_stale_or_turned_off(lifecycle_shop: Shop,
                                                           how: str) -> None:
    day = AS_OF - dt.timedelta(days=1) if how == "other day" else AS_OF
    lifecycle_shop.predictions(day, {pid: (0.05, "LOW") for pid in range(2, 12)})
    result = lifecycle_shop.score(
        scoring=ScoringSettings(predictions=how != "settings"), predictions=how != "argument")
    assert result["predictions"] is False
    assert lifecycle_shop.column("lifecycle_stage")[8] == "ACTIVE"
    for column in PREDICTION_COLUMNS:
        assert set(lifecycle_shop.column(column).values()) == {None}


@pytest.mark.shared_data
def test_real_orders_with_model_predictions() -> None:
    """The CDNOW sample (2,357 customers, real purchases) as of the end of its calibration
    period: predictions from the real model are copied, and the tie rule's guarantees hold on
    data with heavy ties (most customers bought once)."""
    path = needs_shared_data("cdnow", "CDNOW_sample.txt")
    as_of = dt.date(1997, 9, 30)
    shop = Shop()
    shop.db["people"].insert_all({"id": pid} for pid in range(1, 2358))
    for line in path.read_text().splitlines():
        _master, pid, day, _cds, value = line.split()
        shop.order(int(pid), f"{day[:4]}-{day[4:6]}-{day[6:]}", float(value))
    write_predictions(shop.db, as_of)
    result = build_features(shop.db, as_of, ScoringSettings())
    assert result["predictions"] is True
    assert result["buyers"] == 2357
    db = shop.db
    copied = db.execute(
        """SELECT count(*) FROM person_features pf JOIN person_predictions pp USING (person_id)
        WHERE pf.p_alive = pp.p_alive AND pf.churn_risk = pp.churn_risk
        AND pf.expected_purchases_90d = pp.expected_purchases_90d AND pf.clv = pp.clv
        AND pf.predicted_spend_tier = pp.predicted_spend_tier""").fetchone()[0]
    assert copied == db["person_predictions"].count == 2357
    # Nobody is 365 days past an order yet: LOST comes from P(alive) < 0.1 alone.
    lost = shop.select("lifecycle_stage = 'LOST'", as_of)
    assert lost and lost == shop.select("p_alive < 0.1 AND lifecycle_stage != 'REACTIVATED'",
                                        as_of)
    # A score s is only given when (s - 1) fifths of buyers are strictly worse, so at most
    # (6 - s) fifths of buyers have s or more, however many ties there are.
    for column in ("recency_score", "frequency_score", "monetary_score"):
        for score in range(2, 6):
            count = len(shop.select(f"{column} >= {score}", as_of))
            assert count <= 2357 * (6 - score) / 5
    assert shop.select("number_of_orders = 1", as_of) == shop.select("frequency_score = 1",
                                                                      as_of)
    assert len(shop.select("spend_percentile >= 90", as_of)) <= 235.7
    assert len(shop.select("usage_tier = 'HEAVY'", as_of)) <= 0.2 * len(
        shop.select("orders_last_365d > 0", as_of))


# -- fading regulars and usage tiers ----------------------------------------------------------


def test_fading_regulars() -> None:
    shop = Shop()
    cases = {
        1: (100, 90, 80, 70),   # 4 orders, gap 10, 70 days: 70 >= 60 and 70 > 20 → fading
        2: (150, 110, 70),      # gap 40: 70 is not > 80
        3: (80, 70, 59),        # gaps 10 and 11 → 10.5, but 59 days < 60
        4: (90, 80),            # two orders are not a regular
        5: (300, 290, 280),     # long gone: still a fading regular (lifecycle says LOST)
        7: (80, 70, 60),        # exactly 60 days: fading
    }
    for pid, days in cases.items():
        shop.person(pid)
        for d in days:
            shop.order(pid, d)
    shop.person(6)
    shop.score()
    assert shop.column("is_fading_regular") == {1: 1, 2: 0, 3: 0, 4: 0, 5: 1, 6: 0, 7: 1}
    assert shop.select("is_fading_regular = true") == {1, 5, 7}
    assert shop.select("is_fading_regular = false") == {2, 3, 4, 6}
    shop.score(scoring=ScoringSettings(fading_min_days=50, fading_min_orders=4))
    assert shop.select("is_fading_regular = true") == {1}


@pytest.mark.parametrize(("scoring", "heavy", "medium"), [
    # Orders in the last year are 1..10: HEAVY needs 80 % of the 10 strictly below (9, 10),
    # MEDIUM 50 % (6, 7, 8).
    (ScoringSettings(), {9, 10}, {6, 7, 8}),
    # By spend the order is reversed: person 1 spent most.
    (ScoringSettings(usage_basis="spend"), {1, 2}, {3, 4, 5}),
    (ScoringSettings(usage_heavy_percent=10, usage_medium_percent=60), {10}, {4, 5, 6, 7, 8, 9}),
    (ScoringSettings(usage_mode="fixed", usage_heavy_min=8, usage_medium_min=4), {8, 9, 10},
     {4, 5, 6, 7}),
    (ScoringSettings(usage_mode="fixed", usage_basis="spend", usage_heavy_min=900,
                     usage_medium_min=500), {1, 2}, {3, 4, 5, 6}),
])
def test_usage_tiers(ten_buyers: Shop, scoring: ScoringSettings, heavy: set[int],
                     medium: set[int]) -> None:
    ten_buyers.score(scoring=scoring)
    tiers = ten_buyers.column("usage_tier")
    assert {p for p, t in tiers.items() if t == "HEAVY"} == heavy
    assert {p for p, t in tiers.items() if t == "MEDIUM"} == medium
    assert {p for p, t in tiers.items() if t == "LIGHT"} == set(range(1, 11)) - heavy - medium
    assert tiers[11] is None


def test_a_usage_tie_straddling_the_heavy_share_is_not_heavy() -> None:
    """Orders 1 ×7 and 2 ×3: the three two-order buyers are 30 % of buyers, more than the
    heavy 20 %, and only 7 of 10 are strictly below them: all three are MEDIUM, none HEAVY."""
    shop = Shop()
    for pid in range(1, 11):
        shop.person(pid)
        for d in ((10,) if pid <= 7 else (10, 20)):
            shop.order(pid, d)
    shop.score()
    assert shop.column("usage_tier") == {**dict.fromkeys(range(1, 8), "LIGHT"),
                                         **dict.fromkeys(range(8, 11), "MEDIUM")}


# -- occasions --------------------------------------------------------------------------------


def test_seasonal_buyers_in_a_window_inside_the_year() -> None:
    """Window 11-15 … 12-31; as of 2024-06-15 the last completed season ended 2023-12-31."""
    shop = Shop()
    orders = {
        1: ("2023-11-20", "2023-12-10", "2024-03-01"),  # 2 of 3 inside → seasonal
        2: ("2023-11-20", "2024-03-01", "2024-04-01"),  # 1 of 3
        3: ("2022-12-31", "2024-02-01"),                # 1 of 2 = 50 %, end day included
        4: ("2023-11-15",),                             # start day included
        5: ("2023-11-14", "2024-01-01"),                # just outside both ends
    }
    for pid, days in orders.items():
        shop.person(pid)
        for day in days:
            shop.order(pid, day)
    shop.person(6)
    shop.order(6, "2023-12-01", cancelled_at="2023-12-02T00:00:00")
    shop.order(6, "2024-03-01")
    shop.score()
    assert shop.column("is_seasonal_buyer") == {1: 1, 2: 0, 3: 1, 4: 1, 5: 0, 6: 0}
    shop.score(scoring=ScoringSettings(seasonal_min_share=0.3))
    assert shop.select("is_seasonal_buyer = true") == {1, 2, 3, 4}


def test_an_order_in_the_current_season_is_not_a_past_season() -> None:
    """As of 2024-12-01 the 2024 season is running: only 2023's counts as a prior year."""
    shop = Shop()
    shop.person(1)
    shop.order(1, "2024-11-20")
    shop.person(2)
    shop.order(2, "2023-11-20")
    shop.score(dt.date(2024, 12, 1))
    assert shop.column("is_seasonal_buyer") == {1: 0, 2: 1}


def test_a_season_window_may_wrap_the_new_year() -> None:
    """Window 12-15 … 01-15 as of 2025-01-10: the running season began 2024-12-15, the last
    completed one ended 2024-01-15."""
    shop = Shop()
    orders = {
        1: ("2024-01-05", "2024-12-20"),  # completed season and the current one
        2: ("2024-12-20",),               # only the running season
        3: ("2023-12-15", "2024-06-01"),  # start day, 1 of 2
        4: ("2024-01-16", "2023-12-14"),  # a day outside each end
    }
    for pid, days in orders.items():
        shop.person(pid)
        for day in days:
            shop.order(pid, day)
    shop.score(dt.date(2025, 1, 10),
               ScoringSettings(seasonal_start="12-15", seasonal_end="01-15"))
    assert shop.column("is_seasonal_buyer") == {1: 1, 2: 0, 3: 1, 4: 0}


@pytest.mark.parametrize(("as_of", "window", "bought"), [
    # One year before 2024-06-15 is 2023-06-15; 14 days either side: 2023-06-01 … 2023-06-29.
    (AS_OF, 14, {1, 2, 5}),
    (AS_OF, 0, {5}),
    # One year before 29 February 2024 is 28 February 2023: 2023-02-14 … 2023-03-14.
    (dt.date(2024, 2, 29), 14, {6}),
])
def test_bought_this_time_last_year(as_of: dt.date, window: int, bought: set[int]) -> None:
    shop = Shop()
    for pid, day in enumerate(["2023-06-01", "2023-06-29", "2023-05-31", "2023-06-30",
                               "2023-06-15", "2023-03-14", "2023-03-15"], 1):
        shop.person(pid)
        shop.order(pid, day)
    shop.person(8)
    shop.order(8, "2023-06-15", test=1)
    shop.score(as_of, ScoringSettings(last_year_window_days=window))
    assert shop.select("bought_this_time_last_year = true", as_of) == bought


@pytest.mark.parametrize(("as_of", "expected"), [
    # From 2024-06-15: same day 0, a week 7, the day before 364 (2025 is a common year),
    # 29 Feb → 28 Feb 2025 = 258, 31 Dec = 199.
    (AS_OF, {1: 0, 2: 7, 3: 364, 4: 258, 5: 199, 6: None, 7: None}),
    # 29 Feb in a common year is celebrated on the 28th …
    (dt.date(2023, 2, 28), {4: 0}),
    # … and the day after, the next one is 29 Feb 2024, 365 days away.
    (dt.date(2023, 3, 1), {4: 365}),
    (dt.date(2024, 2, 28), {4: 1}),
])
def test_birthday_in_days_ignores_the_year(as_of: dt.date, expected: dict[int, int]) -> None:
    shop = Shop()
    births = ["1990-06-15", "1990-06-22", "1990-06-14", "2000-02-29", "1990-12-31", None,
              "2030-01-01"]  # 6 has no birth date; 7 is born after the as-of date
    for pid, birth in enumerate(births, 1):
        shop.person(pid, birth_date=birth)
    shop.score(as_of)
    got = shop.column("birthday_in_days")
    assert {pid: got[pid] for pid in expected} == expected


def test_first_order_anniversary_is_never_the_first_order_day() -> None:
    shop = Shop()
    firsts = ["2023-06-20", "2024-06-15", "2024-06-10", "2020-02-29", "2022-06-15"]
    for pid, day in enumerate(firsts, 1):
        shop.person(pid)
        shop.order(pid, day)
        shop.order(pid, 0)  # a later order does not move the anniversary
    shop.person(6)
    shop.score()
    # 5 days; today's first order: a year away (365); 2025-06-10 = 360; 2025-02-28 = 258;
    # the second anniversary falls today.
    assert shop.column("first_order_anniversary_in_days") == {
        1: 5, 2: 365, 3: 360, 4: 258, 5: 0, 6: None}
    assert shop.select("first_order_anniversary_in_days <= 7") == {1, 5}


def test_birthday_soon_as_a_query() -> None:
    shop = Shop()
    for pid, birth in enumerate(["1990-06-22", "1990-06-23", "1990-06-15"], 1):
        shop.person(pid, birth_date=birth)
    shop.score()
    assert shop.select("birthday_in_days <= 7") == {1, 3}


# -- next order, category affinity ------------------------------------------------------------


def test_expected_next_order_date_adds_the_mean_gap() -> None:
    shop = Shop()
    orders = {
        1: ("2024-01-01", "2024-01-11", "2024-01-31"),  # mean gap 15 → 2024-02-15
        2: ("2024-05-01", "2024-05-01", "2024-05-11"),  # two order dates, gap 10
        3: ("2024-01-01", "2024-01-02", "2024-01-04"),  # mean 1.5 rounds to 2 → 2024-01-06
        4: ("2024-03-03", "2024-03-03"),                # one order date: no gap to use
    }
    for pid, days in orders.items():
        shop.person(pid)
        for day in days:
            shop.order(pid, day)
    shop.score()
    assert shop.column("expected_next_order_date") == {
        1: "2024-02-15", 2: "2024-05-21", 3: "2024-01-06", 4: None}
    assert shop.select("expected_next_order_date < 2024-03-01") == {1, 3}


def test_top_category_is_the_largest_share_of_line_amounts() -> None:
    shop = Shop()
    for pid in range(1, 6):
        shop.person(pid)
    # Books 30 + books 20 = 50 of 100 (the uncategorised 10 counts in the whole).
    shop.order(1, 10, lines=(("Books", 30.0), ("books", 20.0), ("Toys", 40.0), (None, 10.0)))
    shop.order(2, 10, lines=(("Games", 20.0), ("Art", 20.0)))  # a tie: alphabetical
    shop.order(3, 10, lines=((None, 50.0), ("", 20.0)))       # nothing categorised
    # A cancelled order does not count; a line without amount is price × quantity (10).
    shop.order(4, 10, lines=(("Toys", 500.0),), cancelled_at="2024-06-06T00:00:00")
    shop.order(4, 9, lines=(("Books", None),))
    shop.score()
    assert shop.column("top_category") == {1: "Books", 2: "Art", 3: None, 4: "Books", 5: None}
    assert shop.column("top_category_share") == {1: 0.5, 2: 0.5, 3: None, 4: 1.0, 5: None}


# -- the table and the catalog ----------------------------------------------------------------


def test_every_score_is_a_catalog_attribute_after_the_features(ten_buyers: Shop) -> None:
    assert SCORE_COLUMNS == tuple(a.name for a in ATTRIBUTES[-len(SCORE_COLUMNS):])
    ten_buyers.score()
    columns = {row[1]: row[2] for row in ten_buyers.db.execute(
        "PRAGMA table_info(person_features)")}
    for attribute in ATTRIBUTES:
        assert attribute.sql_column in columns
    for name in SCORE_COLUMNS:
        sql_type = {"integer": "INTEGER", "boolean": "INTEGER", "float": "REAL"}.get(
            BY_NAME[name].type, "TEXT")
        assert columns[name] == sql_type
    booleans = [a.name for a in ATTRIBUTES if a.type == "boolean"]
    for name in booleans:
        assert set(ten_buyers.column(name).values()) <= {0, 1}


def test_a_rebuild_is_repeatable_and_keeps_the_indexes(lifecycle_shop: Shop) -> None:
    lifecycle_shop.score()
    first = lifecycle_shop.db.execute("SELECT * FROM person_features ORDER BY 1").fetchall()
    indexes = lifecycle_shop.db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'person_features' "
        "AND sql IS NOT NULL ORDER BY name").fetchall()
    assert indexes  # the features stage's email / phone indexes
    build_features(lifecycle_shop.db, AS_OF, ScoringSettings())
    assert lifecycle_shop.db.execute(
        "SELECT * FROM person_features ORDER BY 1").fetchall() == first
    assert lifecycle_shop.db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'person_features' "
        "AND sql IS NOT NULL ORDER BY name").fetchall() == indexes
    assert lifecycle_shop.db.execute(
        "SELECT name FROM sqlite_temp_master WHERE name LIKE '_sc_%'").fetchall() == []


def test_queries_on_the_scores_compile_and_select(lifecycle_shop: Shop) -> None:
    lifecycle_shop.score()
    assert lifecycle_shop.select("lifecycle_stage = 'LAPSED'") == {6}
    assert lifecycle_shop.select("lifecycle_stage = 'AT_RISK' OR lifecycle_stage = 'LOST'") == {
        5, 7, 9, 12}
    assert lifecycle_shop.select("is_fading_regular = true") == {6}
    assert lifecycle_shop.select("rfm_group IS NULL") == {1}


@pytest.mark.parametrize(("toml", "key"), [
    ('seasonal_start = "11/15"', "scoring.seasonal_start"),
    ('seasonal_end = "02-30"', "scoring.seasonal_end"),
    ("usage_heavy_percent = 60\nusage_medium_percent = 50", "scoring"),
    ('usage_basis = "visits"', "scoring.usage_basis"),
])
def test_bad_scoring_settings_are_config_errors(tmp_path: Path, toml: str, key: str) -> None:
    path = tmp_path / "segsync.toml"
    path.write_text(f"[scoring]\n{toml}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert f": {key}: " in str(err.value)
