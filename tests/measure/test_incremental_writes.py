"""The incremental refresh's writes: a subset rebuild reads its people's orders once and
replaces their rows in place, and the predictions are written as the definitions say."""

from __future__ import annotations

import datetime as dt

import numpy as np
from helpers_shop import AS_OF, Shop
from test_predict import simulated_store

from segsync.core.measure.predict import spend_tiers, write_predictions
from segsync.core.measure.scores import GLOBAL_COLUMNS, build_features, rescore
from segsync.core.settings import ScoringSettings

SCORING = ScoringSettings()


def _shop() -> Shop:
    shop = Shop()
    for pid in (1, 2, 3):
        shop.person(pid)
        for days, amount in ((5, 0.1), (40, 0.2), (400, 0.3)):
            shop.order(pid, days, amount * pid, lines=(("Books", amount), ("Music", 0.25)))
    return shop


def _rows(shop: Shop) -> list[tuple]:
    return shop.db.execute("SELECT * FROM person_features ORDER BY person_id").fetchall()


def test_a_subset_rebuild_drops_people_gone_adds_new_ones_and_equals_a_full_build() -> None:
    shop = _shop()
    build_features(shop.db, AS_OF, SCORING)
    shop.db.execute("DELETE FROM people WHERE id = 3")
    shop.db.execute("DELETE FROM orders WHERE person_id = 3")
    shop.person(4)
    shop.order(4, 2, 9.0, lines=(("Games", 9.0),))
    shop.db.execute("CREATE TEMP TABLE chosen (person_id INTEGER PRIMARY KEY)")
    shop.db.execute("INSERT INTO chosen VALUES (1), (3), (4)")
    with shop.db.atomic():
        assert build_features(shop.db, AS_OF, SCORING, "temp.chosen") == {"rebuilt": 2}
        rebuilt = shop.db.execute("SELECT * FROM person_features WHERE person_id = 4").fetchone()
        columns = [c.name for c in shop.db["person_features"].columns]
        # The global columns are the global pass's to fill: the subset leaves them NULL.
        assert {name for name, value in zip(columns, rebuilt, strict=True)
                if value is None} >= GLOBAL_COLUMNS
        rescore(shop.db, AS_OF, SCORING)
    incremental = _rows(shop)
    build_features(shop.db, AS_OF, SCORING)
    assert [r[0] for r in incremental] == [1, 2, 4]
    assert incremental == _rows(shop)


def test_a_subset_rebuild_looks_each_order_up_once(monkeypatch) -> None:
    shop = _shop()
    build_features(shop.db, AS_OF, SCORING)
    shop.db.execute("CREATE TEMP TABLE chosen (person_id INTEGER PRIMARY KEY)")
    shop.db.execute("INSERT INTO chosen VALUES (2)")
    searches: list[str] = []
    execute = shop.db.execute

    def explained(sql, params=None):
        if sql.lstrip().startswith("INSERT"):
            searches.extend(row[3] for row in execute(f"EXPLAIN QUERY PLAN {sql}", params or {})
                            if "orders_person" in row[3])
        return execute(sql, params) if params is not None else execute(sql)

    monkeypatch.setattr(shop.db, "execute", explained)
    build_features(shop.db, AS_OF, SCORING, "temp.chosen")
    # Once into the subset's own orders; the three passes and the final INSERT read those
    # (the lifecycle stage, which looked orders up again, is left to the global pass).
    assert len(searches) == 1, searches


def test_spend_tiers_count_who_is_above_and_below_with_ties_and_nan() -> None:
    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 9, 10, 31, 200):
        values = rng.choice(np.array([0.0, -0.0, 1.5, 2.0, 7.0, np.nan, np.inf]), n)
        if n > 100:
            values = rng.random(n).round(2)
        same = (values[:, None] == values[None, :]) | (np.isnan(values)[:, None]
                                                        & np.isnan(values)[None, :])
        # NaN sorts above every number, as numpy orders it.
        above = (values[None, :] > values[:, None]) | (np.isnan(values)[None, :]
                                                        & ~np.isnan(values)[:, None])
        at_least = (same | above).sum(axis=1)
        at_most = n - above.sum(axis=1)
        expected = np.where(at_least <= 0.3 * n, "HIGH",
                            np.where(at_most <= 0.1 * n, "LOW", "MEDIUM"))
        assert spend_tiers(values).tolist() == expected.tolist(), values


def test_predictions_without_a_spend_model_leave_its_columns_null_with_the_as_of_on_each_row(
        ) -> None:
    db, as_of = simulated_store(n=300, seed=3)
    db.execute("UPDATE orders SET total = 0, refunded = 0")  # no spend to fit
    report = write_predictions(db, as_of)
    assert "spend" in report["problems"] and "purchase" not in report["problems"]
    rows = db.execute("SELECT as_of, expected_spend, clv, predicted_12m_spend, "
                      "predicted_spend_tier FROM person_predictions").fetchall()
    assert len(rows) == report["predictions"]["rows"] > 0
    assert set(rows) == {(as_of.isoformat(), None, None, None, None)}
    later = as_of + dt.timedelta(days=1)
    write_predictions(db, later)
    assert {r[0] for r in db.execute("SELECT as_of FROM person_predictions")} == {
        later.isoformat()}
