"""Built-in scores, joined into ``person_features`` after the features stage.

:func:`add_scores` adds the attributes a marketer expects from Shopify, Klaviyo and Mailchimp
(reference/segmentation.md §1, §3, §5): RFM scores and groups, the lifecycle stage, fading
regulars, the usage tier, the spend percentile, occasions (seasonal buyers, "bought this time last
year", birthdays and first-order anniversaries), the expected next order date, category affinity,
and the BG/NBD predictions of :mod:`.predict` when they exist for the as-of date.

Everything is set-based SQL: one aggregate pass over ``orders``, one window pass over
``person_features``, one aggregate pass over the orders' ``order_lines``, then the table is
rebuilt with the scores joined in and swapped in one transaction, as the features stage does, so
a reader sees the old table or the new one. Running it twice gives the same table: the score
columns are dropped and recomputed from the other features.

Definitions and decisions (tests/test_scores.py holds a case for each):

* **Buyers** are people with ``number_of_orders >= 1``; every score that ranks people ranks
  buyers only, and is null for everybody else.
* **Tie rule.** A score is earned by the share of buyers *strictly worse*:
  ``score = 1 + floor(5 * below / n)`` where ``below = RANK() - 1`` in ascending order of goodness
  and ``n`` is the number of buyers. With distinct values this is exact quintiles (5 = top 20 %);
  equal values always share a score, and a tie group takes the score of its lowest position, so a
  5 means "in the top 20 % however the ties were broken" and one-order customers always get F = 1.
  R ranks ``last_order_date`` (the most recent get 5), F ``number_of_orders``, M ``amount_spent``.
* ``spend_percentile`` = ``100 * below / n`` for ``amount_spent``, i.e.
  ``100 * (1 - CUME_DIST() OVER (ORDER BY amount_spent DESC))``: the share of buyers who spent
  strictly less. ``spend_percentile >= 100 - p`` is the top ``p`` %: ties stay together and the
  group never exceeds ``p`` %, the rule of reference §6. It is computed from integer ranks so that
  boundary values are exact (90.0, not 89.99999).
* ``rfm_group`` reads the explicit 125-cell table :data:`RFM_MAP` (``core/rfm_map.toml``), or the
  file named by ``[scoring] rfm_map``, which must list every cell with one of the 11 names of the
  catalog. Null for non-buyers (their lifecycle stage is PROSPECT).
* **Lifecycle stage**, the first that applies (reference §5; ``days`` = days since the last order):
  PROSPECT no order; NEW exactly one order and ``days < n_new_days``; REACTIVATED
  ``days < n_new_days`` and the gap between the latest order date and the one before it
  ``> n_lapsed_days``; LOST ``days > n_lost_days``, or ``p_alive < lost_p_alive`` when the
  predictions are joined; LAPSED ``days > n_lapsed_days``; AT_RISK ``days > at_risk_k * gap``
  where gap is the person's median gap between order dates, or for people with one order date the
  shop-wide median of those medians; ACTIVE otherwise. "Within N days" means fewer than N days
  ago, like the features' ``orders_last_30d``.
* ``is_fading_regular``: ``number_of_orders >= fading_min_orders`` and
  ``days > fading_factor * median_order_gap_days`` and ``days >= fading_min_days``. Stored as
  0/1 like every boolean (the compiler compares ``= true`` with 1); never null.
* ``usage_tier`` over the trailing 12 months (``orders_last_365d`` or ``spent_last_365d``): in
  ``share`` mode HEAVY when at least ``100 - usage_heavy_percent`` % of that year's buyers are
  strictly below, MEDIUM when at least ``100 - heavy - medium`` % are, else LIGHT (the tie rule
  above); in ``fixed`` mode by ``usage_heavy_min`` / ``usage_medium_min``. Null for people
  without an order in the last 12 months: they are not light users but non-users, and
  ``usage_tier IS NULL`` selects them.
* ``is_seasonal_buyer``: at least one order inside the window in a *completed* season (one whose
  last day is before the as-of date: "a prior year" for a window inside one calendar year, and
  well-defined for a window that wraps the new year) and ``>= seasonal_min_share`` of lifetime
  orders inside the window in any year. The window compares month-days, both ends included.
* ``bought_this_time_last_year``: an order within ``last_year_window_days`` days either side of
  the as-of date one year back (29 February goes back to 28 February).
* ``birthday_in_days`` / ``first_order_anniversary_in_days``: days from the as-of date to the next
  occurrence of the month-day (0 = today), the year ignored as in Shopify's ``anniversary()``. A
  29 February date falls on 28 February in common years. The first-order date itself is not an
  anniversary: the next one is at least a year after it. Null without the date, or for a
  birth date after the as-of date.
* ``expected_next_order_date`` = last order date + the mean gap between order dates, rounded to
  whole days; needs two order dates (Klaviyo's "expected date of next order").
* ``top_category`` / ``top_category_share``: over the lines of a person's valid purchase orders,
  the category (compared case-insensitively) with the largest line amount
  (``amount``, else ``price * quantity``), and its share of the positive amounts of all the
  person's lines, uncategorised ones included. Ties go to the alphabetically first category.
* Predictions (``p_alive``, ``churn_risk``, ``expected_purchases_90d``, ``clv``,
  ``predicted_spend_tier``) are copied from ``person_predictions`` when it was written for this
  as-of date; otherwise the columns are null, so queries using them still compile.

Orders are valid as in the features stage: not cancelled, not test, dated on or before the as-of
date, with a person; refund rows (negative total) are not orders.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..errors import ConfigError, SegsyncError
from ..settings import ScoringSettings
from .attributes import BY_NAME
from .days import shift_date

#: The shipped R x F x M → rfm_group table.
RFM_MAP = resources.files("segsync.core.measure").joinpath("rfm_map.toml")

#: The names a map may use: the values the segment language accepts for ``rfm_group``.
RFM_GROUPS = BY_NAME["rfm_group"].values

#: The 125 cells, "111" … "555".
RFM_CELLS = tuple("".join(cell) for cell in itertools.product("12345", repeat=3))

#: The columns :func:`add_scores` writes, in catalog order.
SCORE_COLUMNS = (
    "recency_score", "frequency_score", "monetary_score", "rfm_score", "rfm_group",
    "lifecycle_stage", "is_fading_regular", "usage_tier", "spend_percentile",
    "is_seasonal_buyer", "bought_this_time_last_year", "birthday_in_days",
    "first_order_anniversary_in_days", "expected_next_order_date", "top_category",
    "top_category_share", "p_alive", "churn_risk", "expected_purchases_90d", "clv",
    "predicted_spend_tier",
)

#: Copied from ``person_predictions`` when it matches the as-of date.
PREDICTION_COLUMNS = ("p_alive", "churn_risk", "expected_purchases_90d", "clv",
                      "predicted_spend_tier")

_SQL_TYPES = {"integer": "INTEGER", "float": "REAL", "boolean": "INTEGER", "date": "TEXT",
              "string": "TEXT", "enum": "TEXT"}

_VALID = ("o.person_id IS NOT NULL AND o.cancelled_at IS NULL AND o.test = 0 "
          "AND o.order_date <= :as_of AND o.total >= 0")

_TEMP_TABLES = (
    "CREATE TEMP TABLE _sc_rfm_map (cell TEXT PRIMARY KEY, rfm_group TEXT NOT NULL)",
    """CREATE TEMP TABLE _sc_orders (
        person_id INTEGER PRIMARY KEY, order_days INTEGER, in_season INTEGER,
        past_season INTEGER, last_year INTEGER)""",
    """CREATE TEMP TABLE _sc_ranks (
        person_id INTEGER PRIMARY KEY, recency_score INTEGER, frequency_score INTEGER,
        monetary_score INTEGER, rfm_score TEXT, rfm_group TEXT, spend_percentile REAL,
        usage_tier TEXT)""",
    """CREATE TEMP TABLE _sc_category_amounts (
        person_id INTEGER, k TEXT, category TEXT, amount REAL, PRIMARY KEY (person_id, k)
    ) WITHOUT ROWID""",
    """CREATE TEMP TABLE _sc_categories (
        person_id INTEGER PRIMARY KEY, top_category TEXT, top_category_share REAL)""",
)
_TEMP_NAMES = ("_sc_rfm_map", "_sc_orders", "_sc_ranks", "_sc_category_amounts",
               "_sc_categories")

# One scan of the orders in table order (NOT INDEXED: see _CATEGORY_AMOUNTS), no join.
_ORDERS = f"""
INSERT INTO temp._sc_orders
SELECT o.person_id,
    count(DISTINCT o.order_date),
    count(*) FILTER (WHERE {{in_season}}),
    count(*) FILTER (WHERE {{in_season}} AND o.order_date <= :season_done),
    count(*) FILTER (WHERE o.order_date BETWEEN :last_year_from AND :last_year_to)
FROM orders AS o NOT INDEXED
WHERE {_VALID}
GROUP BY o.person_id
"""

# Integer arithmetic throughout, so a share exactly on a boundary is never lost to rounding.
_RANKS = """
INSERT INTO temp._sc_ranks
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
    FROM person_features
    WHERE number_of_orders > 0
    WINDOW year_buyers AS (PARTITION BY orders_last_365d > 0)
) AS w
LEFT JOIN temp._sc_rfm_map AS map ON map.cell = w.r || w.f || w.m
"""

_USAGE_SHARE = """CASE
            WHEN 100 * (rank() OVER (year_buyers ORDER BY {basis}) - 1)
                >= (100 - :heavy_percent) * count(*) OVER year_buyers THEN 'HEAVY'
            WHEN 100 * (rank() OVER (year_buyers ORDER BY {basis}) - 1)
                >= (100 - :heavy_percent - :medium_percent) * count(*) OVER year_buyers
                THEN 'MEDIUM'
            ELSE 'LIGHT' END"""
_USAGE_FIXED = """CASE WHEN {basis} >= :heavy_min THEN 'HEAVY'
            WHEN {basis} >= :medium_min THEN 'MEDIUM' ELSE 'LIGHT' END"""
_USAGE_BASIS = {"orders": "orders_last_365d", "spend": "spent_last_365d"}

# Categories compare case-insensitively, as products_purchased does; uncategorised lines
# (NULL or '') form the group '' that counts in the whole but never wins. NOT INDEXED makes
# SQLite read orders in table order: left to itself it walks orders_person for the
# "person_id IS NOT NULL" test and reads rows at random, 2-3x slower at 1M people.
_CATEGORY_AMOUNTS = f"""
INSERT INTO temp._sc_category_amounts
SELECT o.person_id, coalesce(lower(l.category), ''), min(l.category),
    total(coalesce(l.amount, l.price * l.quantity))
FROM orders AS o NOT INDEXED
JOIN order_lines AS l ON l.source = o.source AND l.order_key = o.key
WHERE {_VALID}
GROUP BY o.person_id, coalesce(lower(l.category), '')
"""

# An aggregate streaming over the (person_id, k) key, then a lookup of the winning category:
# several times faster than ranking every (person, category) row with a window.
_CATEGORIES = """
INSERT INTO temp._sc_categories
WITH p AS (
    SELECT person_id, max(amount) FILTER (WHERE k <> '') AS top,
        total(max(amount, 0)) AS whole
    FROM temp._sc_category_amounts
    GROUP BY person_id
)
SELECT p.person_id,
    (SELECT a.category FROM temp._sc_category_amounts AS a
     WHERE a.person_id = p.person_id AND a.k <> '' AND a.amount = p.top
     ORDER BY a.k LIMIT 1),
    p.top / p.whole
FROM p
WHERE p.top > 0
"""

# The median of the per-person median gaps: the usual gap of a 1-order-date customer.
_SHOP_GAP = """
WITH g AS (
    SELECT median_order_gap_days AS gap,
        row_number() OVER (ORDER BY median_order_gap_days) AS rn, count(*) OVER () AS n
    FROM person_features WHERE median_order_gap_days IS NOT NULL
)
SELECT avg(gap) FROM g WHERE rn IN ((n + 1) / 2, (n + 2) / 2)
"""

# The order date before the latest one (the LAG over distinct order dates at the latest) is
# looked up only for the few people whose latest order is recent: CASE stops at the first
# condition that fails, so the other buyers never reach the subquery.
_LIFECYCLE = f"""CASE
    WHEN pf.number_of_orders = 0 THEN 'PROSPECT'
    WHEN pf.number_of_orders = 1 AND pf.days_since_last_order < :n_new THEN 'NEW'
    WHEN pf.days_since_last_order < :n_new
        AND julianday(pf.last_order_date) - julianday((
            SELECT max(o.order_date) FROM orders AS o
            WHERE o.person_id = pf.person_id AND o.order_date < pf.last_order_date
                AND {_VALID})) > :n_lapsed
        THEN 'REACTIVATED'
    WHEN pf.days_since_last_order > :n_lost{{model_lost}} THEN 'LOST'
    WHEN pf.days_since_last_order > :n_lapsed THEN 'LAPSED'
    WHEN pf.days_since_last_order > :at_risk_k * coalesce(pf.median_order_gap_days, :shop_gap)
        THEN 'AT_RISK'
    ELSE 'ACTIVE' END"""

_FADING = """CASE WHEN pf.number_of_orders >= :fading_min_orders
        AND pf.days_since_last_order >= :fading_min_days
        AND pf.days_since_last_order > :fading_factor * pf.median_order_gap_days
    THEN 1 ELSE 0 END"""

_SEASONAL = """CASE WHEN so.past_season > 0
        AND CAST(so.in_season AS REAL) / pf.number_of_orders >= :season_share
    THEN 1 ELSE 0 END"""

_NEXT_ORDER = """CASE WHEN so.order_days >= 2 THEN date(pf.last_order_date, printf('%+d days',
    CAST(round((julianday(pf.last_order_date) - julianday(pf.first_order_date))
               / (so.order_days - 1)) AS INTEGER))) END"""


def load_rfm_map(path: Path | None = None) -> dict[str, str]:
    """The R x F x M → rfm_group table: the shipped one, or the file at ``path``.

    A replacement is checked completely before use, every problem listed, because a missing cell
    would silently leave customers without a group.
    """
    where = str(path) if path is not None else "the shipped rfm_map.toml"
    try:
        text = (path or RFM_MAP).read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the RFM map: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    groups = data.get("groups")
    if not isinstance(groups, dict) or set(data) != {"groups"}:
        raise ConfigError(f"{where}: an RFM map holds exactly one table, [groups], with "
                          "lines such as 545 = \"CHAMPIONS\"")
    problems = [f"{where}: cell {cell} is missing" for cell in RFM_CELLS if cell not in groups]
    problems += [f"{where}: {key} is not a cell (R, F and M are 1-5, written as 545)"
                 for key in groups if key not in RFM_CELLS]
    problems += [f"{where}: cell {key}: {value!r} is not one of {', '.join(RFM_GROUPS)}"
                 for key, value in groups.items() if key in RFM_CELLS and value not in RFM_GROUPS]
    if problems:
        raise ConfigError(problems[0], problems)
    return {cell: groups[cell] for cell in RFM_CELLS}


def add_scores(
    db: Database, as_of: dt.date, scoring: ScoringSettings, *, predictions: bool = True
) -> dict[str, Any]:
    """Compute the built-in scores as of ``as_of`` and rebuild ``person_features`` with them.

    Run after :func:`.features.compute_features` for the same ``as_of`` (and after
    :func:`.predict.write_predictions` to include the predictions). ``predictions``
    lets the caller leave the model out even where ``scoring.predictions`` is on. Returns the
    number of people and buyers, whether predictions were joined, and the size of each
    lifecycle stage, RFM group and usage tier.
    """
    if not db["person_features"].exists():
        raise SegsyncError("person_features does not exist: compute the features first")
    rfm_map = load_rfm_map(scoring.rfm_map)  # before any work: a bad map changes nothing
    joined = predictions and scoring.predictions and _predictions_match(db, as_of)
    params = _params(as_of, scoring)
    params["shop_gap"] = db.execute(_SHOP_GAP).fetchone()[0]
    kept = [(name, sql_type) for _, name, sql_type, *_ in
            db.execute("PRAGMA table_info(person_features)") if name not in SCORE_COLUMNS]
    indexes = [sql for (sql,) in db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'person_features' "
        "AND sql IS NOT NULL")]
    scores = _score_expressions(db, joined)
    definitions = [f'"{name}" {sql_type}' + (" PRIMARY KEY" if name == "person_id" else "")
                   for name, sql_type in kept]
    definitions += [f"{name} {_SQL_TYPES[BY_NAME[name].type]}" for name in SCORE_COLUMNS]
    select = [f'pf."{name}"' for name, _ in kept] + [scores[name] for name in SCORE_COLUMNS]

    try:
        # Statement by statement, not executescript, which would commit a caller's transaction.
        with db.atomic():
            for statement in _TEMP_TABLES:
                db.execute(statement)
            db.conn.executemany("INSERT INTO temp._sc_rfm_map VALUES (?, ?)", rfm_map.items())
            db.execute(_ORDERS.format(in_season=_in_season(scoring)), params)
            db.execute(_RANKS.format(usage=_usage(scoring)), params)
            db.execute(_CATEGORY_AMOUNTS, params)
            db.execute(_CATEGORIES)
            db.execute("DROP TABLE IF EXISTS person_features_new")
            db.execute(f"CREATE TABLE person_features_new ({', '.join(definitions)})")
            db.execute(
                f"""INSERT INTO person_features_new SELECT {", ".join(select)}
                FROM person_features AS pf
                LEFT JOIN temp._sc_orders AS so ON so.person_id = pf.person_id
                LEFT JOIN temp._sc_ranks AS r ON r.person_id = pf.person_id
                LEFT JOIN temp._sc_categories AS c ON c.person_id = pf.person_id
                {"LEFT JOIN person_predictions AS pp ON pp.person_id = pf.person_id"
                 if joined else ""}
                ORDER BY pf.person_id""",
                params,
            )
            db.execute("DROP TABLE person_features")
            db.execute("ALTER TABLE person_features_new RENAME TO person_features")
            for sql in indexes:
                db.execute(sql)
    finally:
        _drop_temp(db)
    return _summary(db, joined)


def _drop_temp(db: Database) -> None:
    for name in _TEMP_NAMES:
        db.execute(f"DROP TABLE IF EXISTS temp.{name}")


def _predictions_match(db: Database, as_of: dt.date) -> bool:
    """Whether ``person_predictions`` exists and was written for ``as_of``.

    Predictions for another date would mislabel churn risk, so they are left out rather than
    joined. write_predictions writes one as-of for the whole table, so one row tells.
    """
    if not db["person_predictions"].exists():
        return False
    row = db.execute("SELECT as_of FROM person_predictions LIMIT 1").fetchone()
    return row is not None and row[0] == as_of.isoformat()


def _on(year: int, month_day: str) -> dt.date:
    """``month_day`` (MM-DD) in ``year``; 29 February falls on the 28th in a common year."""
    month, day = int(month_day[:2]), int(month_day[3:])
    return dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _params(as_of: dt.date, s: ScoringSettings) -> dict[str, Any]:
    """Every bound value of the scoring SQL; dates are computed here, once, not per row."""
    season_done = _on(as_of.year, s.seasonal_end)
    if season_done >= as_of:
        season_done = _on(as_of.year - 1, s.seasonal_end)
    last_year = shift_date(as_of, -1, "y")
    window = dt.timedelta(days=s.last_year_window_days)
    return {
        "as_of": as_of.isoformat(),
        "n_new": s.n_new_days, "n_lapsed": s.n_lapsed_days, "n_lost": s.n_lost_days,
        "lost_p_alive": s.lost_p_alive, "at_risk_k": s.at_risk_k,
        "fading_min_orders": s.fading_min_orders, "fading_factor": s.fading_factor,
        "fading_min_days": s.fading_min_days,
        "heavy_percent": s.usage_heavy_percent, "medium_percent": s.usage_medium_percent,
        "heavy_min": s.usage_heavy_min, "medium_min": s.usage_medium_min,
        "season_start": s.seasonal_start, "season_end": s.seasonal_end,
        "season_done": season_done.isoformat(), "season_share": s.seasonal_min_share,
        "last_year_from": (last_year - window).isoformat(),
        "last_year_to": (last_year + window).isoformat(),
        "year": str(as_of.year), "next_year": str(as_of.year + 1),
        "feb29": _on(as_of.year, "02-29").strftime("%m-%d"),
        "next_feb29": _on(as_of.year + 1, "02-29").strftime("%m-%d"),
    }


def _in_season(s: ScoringSettings) -> str:
    md = "substr(o.order_date, 6, 5)"
    if s.seasonal_start <= s.seasonal_end:
        return f"{md} BETWEEN :season_start AND :season_end"
    return f"({md} >= :season_start OR {md} <= :season_end)"  # the window wraps the new year


def _usage(s: ScoringSettings) -> str:
    template = _USAGE_SHARE if s.usage_mode == "share" else _USAGE_FIXED
    return template.format(basis=_USAGE_BASIS[s.usage_basis])


def _days_until(column: str, *, after_own_year: bool) -> str:
    """SQL for the days from as-of to the next occurrence of ``column``'s month-day.

    This year's occurrence if it is not past (and, for an anniversary, later than the year of the
    date itself), else next year's; 29 February is moved to the 28th in a common year.
    """
    md = f"substr({column}, 6, 5)"
    this = f"(:year || '-' || CASE {md} WHEN '02-29' THEN :feb29 ELSE {md} END)"
    later = f"(:next_year || '-' || CASE {md} WHEN '02-29' THEN :next_feb29 ELSE {md} END)"
    upcoming = f"{this} >= :as_of" + (f" AND substr({column}, 1, 4) < :year"
                                     if after_own_year else "")
    return (f"CASE WHEN {column} <= :as_of THEN CAST(julianday(CASE WHEN {upcoming} "
            f"THEN {this} ELSE {later} END) - julianday(:as_of) AS INTEGER) END")


def _score_expressions(db: Database, joined: bool) -> dict[str, str]:
    """The SQL of each score column over ``pf``, ``so``, ``r``, ``c`` and (if joined) ``pp``."""
    available = ({name for _, name, *_ in db.execute("PRAGMA table_info(person_predictions)")}
                 if joined else set())
    # A table written with another purchase horizon has no expected_purchases_90d: null it.
    model = {name: f"pp.{name}" if name in available else "NULL" for name in PREDICTION_COLUMNS}
    return {
        "recency_score": "r.recency_score",
        "frequency_score": "r.frequency_score",
        "monetary_score": "r.monetary_score",
        "rfm_score": "r.rfm_score",
        "rfm_group": "r.rfm_group",
        "lifecycle_stage": _LIFECYCLE.format(
            model_lost=" OR pp.p_alive < :lost_p_alive" if joined else ""),
        "is_fading_regular": _FADING,
        "usage_tier": "r.usage_tier",
        "spend_percentile": "r.spend_percentile",
        "is_seasonal_buyer": _SEASONAL,
        "bought_this_time_last_year": "coalesce(so.last_year > 0, 0)",
        "birthday_in_days": _days_until("pf.birth_date", after_own_year=False),
        "first_order_anniversary_in_days": _days_until("pf.first_order_date",
                                                       after_own_year=True),
        "expected_next_order_date": _NEXT_ORDER,
        "top_category": "c.top_category",
        "top_category_share": "c.top_category_share",
        **model,
    }


def _summary(db: Database, joined: bool) -> dict[str, Any]:
    # One scan grouped by the three columns (a few hundred rows at most), not one per column.
    counts: dict[str, dict[str, int]] = {"lifecycle_stage": {}, "rfm_group": {}, "usage_tier": {}}
    for stage, group, tier, n in db.execute(
            "SELECT lifecycle_stage, rfm_group, usage_tier, count(*) FROM person_features "
            "GROUP BY 1, 2, 3"):
        for column, value in zip(counts, (stage, group, tier), strict=True):
            if value is not None:
                counts[column][value] = counts[column].get(value, 0) + n
    people = sum(counts["lifecycle_stage"].values())
    # Lifecycle PROSPECT is exactly "no order", so the buyers need no scan of their own.
    buyers = people - counts["lifecycle_stage"].get("PROSPECT", 0)
    return {"people": people, "buyers": buyers, "predictions": joined, **counts}
