"""A store filled by hand for the scoring and template tests: people, orders and lines, then
the real features and scores stages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlite_utils import Database

from segsync.core.measure.scores import build_features
from segsync.core.segment.compiler import compile_query
from segsync.core.settings import ScoringSettings
from segsync.core.store import open_store

AS_OF = dt.date(2024, 6, 15)


class Shop:
    """A store filled by hand: people, orders and lines, then features and scores."""

    def __init__(self) -> None:
        self.db: Database = open_store(":memory:")
        self.orders = 0

    def person(self, pid: int, **fields: Any) -> int:
        self.db["people"].insert({"id": pid, "email": f"p{pid}@example.com", **fields})
        return pid

    def order(self, pid: int, day: int | str, total: float = 100.0, *,
              lines: tuple[tuple[str | None, float | None], ...] = (), as_of: dt.date = AS_OF,
              **fields: Any) -> None:
        """An order of ``pid`` placed ``day`` days before ``as_of``, or on the date ``day``."""
        date = (as_of - dt.timedelta(days=day)).isoformat() if isinstance(day, int) else day
        self.orders += 1
        key = f"o{self.orders}"
        self.db["orders"].insert({
            "source": "shop", "key": key, "customer_key": f"c{pid}", "person_id": pid,
            "ordered_at": f"{date}T12:00:00", "order_date": date, "total": total,
            "record_hash": key, **fields})
        self.db["order_lines"].insert_all(
            {"source": "shop", "order_key": key, "key": str(n), "category": category,
             "amount": amount, "price": 5.0, "quantity": 2}
            for n, (category, amount) in enumerate(lines))

    def score(self, as_of: dt.date = AS_OF, scoring: ScoringSettings | None = None,
              **kwargs: Any) -> dict[str, Any]:
        return build_features(self.db, as_of, scoring or ScoringSettings(), **kwargs)

    def column(self, name: str) -> dict[int, Any]:
        return dict(self.db.execute(
            f"SELECT person_id, {name} FROM person_features ORDER BY person_id").fetchall())

    def select(self, query: str, as_of: dt.date = AS_OF) -> set[int]:
        where, params = compile_query(query, as_of)
        return {pid for (pid,) in self.db.execute(
            f"SELECT pf.person_id FROM person_features pf WHERE {where}", params)}

    def predictions(self, as_of: dt.date, rows: dict[int, tuple[float, str]]) -> None:
        """A ``person_predictions`` table shaped as write_predictions writes it, with
        ``person_id: (p_alive, tier)``; the other figures are derived so tests can check them."""
        self.db.execute("DROP TABLE IF EXISTS person_predictions")
        self.db.execute(
            """CREATE TABLE person_predictions (person_id INTEGER PRIMARY KEY,
            as_of TEXT NOT NULL, p_alive REAL NOT NULL, churn_risk REAL NOT NULL,
            expected_purchases_90d REAL NOT NULL, expected_spend REAL NOT NULL,
            clv REAL NOT NULL, predicted_12m_spend REAL NOT NULL,
            predicted_spend_tier TEXT NOT NULL)""")
        self.db["person_predictions"].insert_all(
            {"person_id": pid, "as_of": as_of.isoformat(), "p_alive": p, "churn_risk": 1 - p,
             "expected_purchases_90d": pid / 10, "expected_spend": 20.0, "clv": pid * 100.0,
             "predicted_12m_spend": pid * 50.0, "predicted_spend_tier": tier}
            for pid, (p, tier) in rows.items())
