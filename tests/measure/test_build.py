"""The one build of ``person_features`` (features + scores): a subset rebuilt by
``build_features(people=...)`` reads only those people's orders and lines, by index, and sums
their amounts as a full build does, to the last bit."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from helpers_shop import AS_OF, Shop

from segsync.core.measure.scores import GLOBAL_COLUMNS, build_features, rescore
from segsync.core.settings import ScoringSettings

SCORING = ScoringSettings()


def _shop() -> Shop:
    """Two buyers whose orders sit in the table against date order, with amounts whose float
    sum depends on the order of addition: 0.1 + 0.2 + 0.3 != 0.3 + 0.2 + 0.1."""
    shop = Shop()
    for pid in (1, 2, 3):
        shop.person(pid)
    for pid in (1, 2):
        # Newest first in the table, so the orders_person index (person, date) reverses them.
        for days, amount in ((10, 0.1), (20, 0.2), (30, 0.3)):
            shop.order(pid, days, amount, lines=(("Books", amount), ("books", amount / 3),
                                                 ("Music", 0.25)))
    return shop


def _rows(shop: Shop) -> list[tuple]:
    return shop.db.execute("SELECT * FROM person_features ORDER BY person_id").fetchall()


def test_a_subset_rebuilt_against_the_store_equals_the_full_build_to_the_bit() -> None:
    shop = _shop()
    build_features(shop.db, AS_OF, SCORING)
    full = _rows(shop)
    assert shop.column("amount_spent")[1] == 0.1 + 0.2 + 0.3  # the table's order, not the date's
    shop.db.execute("UPDATE person_features SET top_category = 'x'")
    shop.db.execute("UPDATE person_features SET amount_spent = -1 WHERE person_id <> 2")
    shop.db.execute("CREATE TEMP TABLE chosen (person_id INTEGER PRIMARY KEY)")
    shop.db.execute("INSERT INTO chosen VALUES (1), (3)")
    with shop.db.atomic():
        assert build_features(shop.db, AS_OF, SCORING, "temp.chosen") == {"rebuilt": 2}
        rescore(shop.db, AS_OF, SCORING)
    rows = _rows(shop)
    assert rows[0] == full[0] and rows[2] == full[2]
    assert shop.column("top_category") == {1: "Books", 2: "x", 3: None}  # 2 is left alone


def test_a_subset_build_leaves_the_population_columns_to_the_global_pass() -> None:
    shop = _shop()
    build_features(shop.db, AS_OF, SCORING)
    full = _rows(shop)
    shop.db.execute("CREATE TEMP TABLE chosen (person_id INTEGER PRIMARY KEY)")
    shop.db.execute("INSERT INTO chosen VALUES (1)")
    build_features(shop.db, AS_OF, SCORING, "temp.chosen")
    assert shop.column("rfm_group")[1] is None  # ranked only over everyone
    assert "rfm_group" in GLOBAL_COLUMNS
    rescore(shop.db, AS_OF, SCORING)
    assert _rows(shop) == full


def test_a_subset_build_reads_orders_and_lines_by_index_only(monkeypatch) -> None:
    shop = _shop()
    build_features(shop.db, AS_OF, SCORING)
    shop.db.execute("CREATE TEMP TABLE chosen (person_id INTEGER PRIMARY KEY)")
    shop.db.execute("INSERT INTO chosen VALUES (2)")
    plans: list[list[str]] = []
    execute = shop.db.execute

    def explained(sql, params=None):
        if sql.lstrip().startswith("INSERT") and "?" not in sql:
            plans.append([row[3] for row in execute(f"EXPLAIN QUERY PLAN {sql}", params or {})])
        return execute(sql, params) if params is not None else execute(sql)

    monkeypatch.setattr(shop.db, "execute", explained)
    build_features(shop.db, AS_OF, SCORING, "temp.chosen")
    steps = [step for plan in plans for step in plan]
    assert any(step.startswith("SEARCH o USING INDEX orders_person") for step in steps)
    assert any(step.startswith("SEARCH l USING INDEX sqlite_autoindex_order_lines_1")
               for step in steps)
    for plan in plans:
        # orders is only searched: "SCAN o" is the subset's own orders, gathered as a co-routine.
        assert "SCAN o" not in plan or "CO-ROUTINE o" in plan, plan
        assert not {"SCAN l", "SCAN p", "SCAN orders", "SCAN order_lines"} & set(plan), plan


def test_the_benchmark_runs_at_tiny_size(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "bench"))
    sys.modules.pop("bench_features", None)
    import bench_features

    assert bench_features.main(["--people", "300", "--db", str(tmp_path / "b.db"),
                                "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert out.index("floor, as written") < out.index("features + scores")
    for stage in ("predictions", "segments", "segment compute", "... + predictions",
                  "peak RSS"):
        assert stage in out


def test_rescore_changes_nothing_on_a_fresh_build() -> None:
    shop = _shop()
    build_features(shop.db, AS_OF, SCORING)
    full = _rows(shop)
    rescore(shop.db, AS_OF, SCORING)
    assert _rows(shop) == full
    later = AS_OF + dt.timedelta(days=3)
    rescore(shop.db, later, SCORING)
    assert shop.column("days_since_last_order")[1] == 13
