"""Built-in scores: the score columns of ``person_features``.

The scores are the attributes a marketer expects from Shopify, Klaviyo and Mailchimp
(reference/segmentation.md §1, §3, §5): RFM scores and groups, the lifecycle stage, fading
regulars, the usage tier, the spend percentile, occasions (seasonal buyers, "bought this time last
year", birthdays and first-order anniversaries), the expected next order date, category affinity,
and the BG/NBD predictions of :mod:`.predict` when they exist for the as-of date.

This module holds the scores' SQL; :func:`build_features` computes them in the same
build as the features (the per-person order and line counts they need are folded into the
features' own passes; the ranks are counts of the buyers below each value, from one narrow read
of the buyers, not window sorts), so a full build writes ``person_features`` once;
:func:`rescore` recomputes, over the stored rows, the scores that depend on the whole
population or on the as-of date alone (the incremental refresh's global pass).

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

from ..errors import ConfigError
from ..settings import ScoringSettings
from . import features
from .attributes import BY_NAME
from .days import shift_date

#: The shipped R x F x M → rfm_group table.
RFM_MAP = resources.files("segsync.core.measure").joinpath("rfm_map.toml")

#: The names a map may use: the values the segment language accepts for ``rfm_group``.
RFM_GROUPS = BY_NAME["rfm_group"].values

#: The 125 cells, "111" … "555".
RFM_CELLS = tuple("".join(cell) for cell in itertools.product("12345", repeat=3))

#: The score columns of ``person_features``, in catalog order.
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

_VALID = ("o.person_id IS NOT NULL AND o.cancelled_at IS NULL AND o.test = 0 "
          "AND o.order_date <= :as_of AND o.total >= 0")

_TEMP_TABLES = (
    "CREATE TEMP TABLE _sc_rfm_map (cell TEXT PRIMARY KEY, rfm_group TEXT NOT NULL)",
    """CREATE TEMP TABLE _sc_ranks (
        person_id INTEGER PRIMARY KEY, recency_score INTEGER, frequency_score INTEGER,
        monetary_score INTEGER, rfm_score TEXT, rfm_group TEXT, spend_percentile REAL,
        usage_tier TEXT)""",
)
_TEMP_NAMES = ("_sc_rfm_map", "_sc_ranks")

# The ranks are counts, not window sorts: a buyer's ``RANK() - 1`` over a column is the number
# of buyers with a strictly smaller value, so each ranked column is grouped by value once (a few
# hundred order dates, a few dozen order counts; amount_spent, nearly all distinct, is the one
# big sort) and a running sum over the groups gives every value its count below; each buyer then
# looks its values up. Where the window form sorted every buyer four times over, carrying every
# column it needed through each sort, and inserted the ranks in the last sort's order, this
# reads the features once into a narrow table (``_sc_buyers``, declared with person_features'
# types, so the values ranked are the values stored), groups it, and writes the ranks in
# person_id order. Integer arithmetic throughout, so a share exactly on a boundary is never lost
# to rounding. {features} is a table or subquery with person_features' columns of the same names.
_RANKED_BY = {column: features.column_type(column) for column in (
    "last_order_date", "number_of_orders", "amount_spent", "orders_last_365d", "spent_last_365d")}

_BUYERS = """INSERT INTO temp._sc_buyers ({columns})
SELECT {columns} FROM {features} WHERE number_of_orders > 0"""

# One row per distinct value of {column} among the buyers {where}: how many are strictly below.
# Buyers' ranked columns are never null (the features coalesce them), which a WITHOUT ROWID
# primary key would refuse rather than rank.
_BELOW = """INSERT INTO temp._sc_below_{column}
SELECT {column}, sum(count(*)) OVER (ORDER BY {column}) - count(*)
FROM temp._sc_buyers {where} GROUP BY {column}"""

# CROSS JOIN keeps the buyers the outer loop, read in person_id order.
_RANKS = """
INSERT INTO temp._sc_ranks
SELECT w.person_id, w.r, w.f, w.m, w.r || w.f || w.m, map.rfm_group, w.spend_percentile,
    w.usage_tier
FROM (
    SELECT b.person_id,
        1 + 5 * r.below / :buyers AS r,
        1 + 5 * f.below / :buyers AS f,
        1 + 5 * m.below / :buyers AS m,
        100.0 * m.below / :buyers AS spend_percentile,
        CASE WHEN b.orders_last_365d > 0 THEN {usage} END AS usage_tier
    FROM temp._sc_buyers AS b
    CROSS JOIN temp._sc_below_last_order_date AS r ON r.last_order_date = b.last_order_date
    CROSS JOIN temp._sc_below_number_of_orders AS f ON f.number_of_orders = b.number_of_orders
    CROSS JOIN temp._sc_below_amount_spent AS m ON m.amount_spent = b.amount_spent
    {usage_join}
) AS w
LEFT JOIN temp._sc_rfm_map AS map ON map.cell = w.r || w.f || w.m
"""

# Share mode ranks the basis among the year's buyers only (those with an order in the last
# 365 days), as ``u.below``; fixed mode compares the basis itself.
_USAGE_SHARE = """CASE
            WHEN 100 * u.below >= (100 - :heavy_percent) * :year_buyers THEN 'HEAVY'
            WHEN 100 * u.below >= (100 - :heavy_percent - :medium_percent) * :year_buyers
                THEN 'MEDIUM'
            ELSE 'LIGHT' END"""
_USAGE_SHARE_JOIN = ("LEFT JOIN temp._sc_below_{basis} AS u "
                     "ON u.{basis} = b.{basis} AND b.orders_last_365d > 0")
_USAGE_FIXED = """CASE WHEN b.{basis} >= :heavy_min THEN 'HEAVY'
            WHEN b.{basis} >= :medium_min THEN 'MEDIUM' ELSE 'LIGHT' END"""
_USAGE_BASIS = {"orders": "orders_last_365d", "spend": "spent_last_365d"}

# The median of the per-person median gaps: the usual gap of a 1-order-date customer. The
# values at the middle positions ((n + 1) / 2 and (n + 2) / 2, one position when n is odd) are
# found in the running counts of the distinct gaps (a few hundred): a row_number() window with a
# count(*) OVER () sorted and buffered every buyer's row.
_SHOP_GAP = """
WITH g AS (
    SELECT median_order_gap_days AS gap, count(*) AS n,
        sum(count(*)) OVER (ORDER BY median_order_gap_days) AS upto
    FROM {features} WHERE median_order_gap_days IS NOT NULL
    GROUP BY median_order_gap_days
), middle AS (
    SELECT (max(upto) + 1) / 2 AS position FROM g
    UNION SELECT (max(upto) + 2) / 2 FROM g
)
SELECT avg(g.gap) FROM middle JOIN g ON g.upto - g.n < middle.position
    AND middle.position <= g.upto
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

_SEASONAL = """CASE WHEN pf.past_season > 0
        AND CAST(pf.in_season AS REAL) / pf.number_of_orders >= :season_share
    THEN 1 ELSE 0 END"""

# order_gaps is the number of gaps between distinct order dates (one less than the dates).
_NEXT_ORDER = """CASE WHEN pf.order_gaps >= 1 THEN date(pf.last_order_date, printf('%+d days',
    CAST(round((julianday(pf.last_order_date) - julianday(pf.first_order_date))
               / pf.order_gaps) AS INTEGER))) END"""


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


#: Columns that depend on the whole population or on the as-of date alone: :func:`rescore`
#: recomputes them for everyone, and :func:`build_features` leaves them to it for a subset.
GLOBAL_COLUMNS = frozenset({
    "days_since_last_order", "age", "birthday_in_days", "first_order_anniversary_in_days",
    "lifecycle_stage", "is_fading_regular", "recency_score", "frequency_score",
    "monetary_score", "rfm_score", "rfm_group", "usage_tier", "spend_percentile",
    *PREDICTION_COLUMNS,
})

_RANKED = ("recency_score", "frequency_score", "monetary_score", "rfm_score", "rfm_group",
           "usage_tier", "spend_percentile")

# What a full build ranks: the buyers among the people (person_features holds one row per
# person), read from the temp tables of features.gather.
_GATHERED_ORDERS = ("(SELECT o.* FROM temp._pf_orders AS o "
                    "JOIN people AS p ON p.id = o.person_id)")
_GATHERED_GAPS = "(SELECT g.* FROM temp._pf_gaps AS g JOIN people AS p ON p.id = g.person_id)"


def build_features(db: Database, as_of: dt.date, scoring: ScoringSettings,
                   people: str | None = None, *, predictions: bool = True) -> dict[str, Any]:
    """Build ``person_features`` as of ``as_of``: the features of :mod:`.features`, the scores
    and, when ``person_predictions`` was written for ``as_of`` (and ``predictions`` and
    ``scoring.predictions`` allow), the predictions, from one pass over the orders and one over
    their lines (:func:`.features.gather`), one ranking pass over the buyers, and one INSERT.

    Without ``people`` the whole table is built as ``person_features_new`` and swapped in within
    one transaction (a reader sees the old table or the new one); returns :func:`summary`. With
    ``people``, the name of a table of ``person_id``s, only their rows are built again (and
    removed for ids no longer in ``people``), their orders reached by index; the
    :data:`GLOBAL_COLUMNS` of those rows are left NULL for :func:`rescore` to fill, since they
    depend on everyone; returns ``{"rebuilt": rows}``.
    """
    counts = order_counts(scoring)
    params = {**features.feature_params(as_of), **score_params(as_of, scoring)}
    joined = (people is None and predictions and scoring.predictions
              and predictions_match(db, as_of))
    computed = features.feature_columns()
    scores = score_expressions(db, joined)
    # The scores read the features by name from pf, with what the passes counted for them.
    inner = [f"{expression} AS {name}" for name, _, expression in computed]
    inner += ["p.attributes AS attributes", *(f"o.{name} AS {name}" for name in counts),
              "g.order_gaps AS order_gaps", "t.top_category AS top_category",
              "t.top_category_share AS top_category_share"]
    columns = [(name, sql_type, f"pf.{name}") for name, sql_type, _ in computed]
    columns += [("attributes", "TEXT", "pf.attributes")]
    columns += [(name, features.column_type(name), scores[name]) for name in SCORE_COLUMNS]
    if people is None:
        source, target = "people AS p", "INTO person_features_new"
    else:
        source = f"{people} AS r CROSS JOIN people AS p ON p.id = r.person_id"
        # Each row replaced in place, its page read once (a DELETE first read every page
        # twice). The global columns are rescore's: computing them here (the lifecycle stage
        # looks orders up again) would be thrown away.
        target = "OR REPLACE INTO person_features"
        columns = [(name, sql_type, "NULL" if name in GLOBAL_COLUMNS else expression)
                   for name, sql_type, expression in columns]
    insert = f"""
        INSERT {target} ({", ".join(name for name, _, _ in columns)})
        SELECT {", ".join(expression for _, _, expression in columns)}
        FROM (
            SELECT {", ".join(inner)}
            FROM {source}
            {features.FEATURE_JOINS}
            {features.TOP_CATEGORY_JOIN}
        ) AS pf
        LEFT JOIN temp._sc_ranks AS r ON r.person_id = pf.person_id
        {"LEFT JOIN person_predictions AS pp ON pp.person_id = pf.person_id" if joined else ""}
        ORDER BY pf.person_id"""
    try:
        with db.atomic():
            prepare_ranks(db, scoring)  # checks the RFM map before anything is written
            features.gather(db, as_of, people=people, counts=counts, params=params)
            if people is not None:
                db.execute(f"DELETE FROM person_features WHERE person_id IN "
                           f"(SELECT r.person_id FROM {people} AS r WHERE NOT EXISTS "
                           f"(SELECT 1 FROM people AS p WHERE p.id = r.person_id))")
                return {"rebuilt": db.execute(insert, params).rowcount}
            rank(db, scoring, _GATHERED_ORDERS, params)
            params["shop_gap"] = shop_gap(db, _GATHERED_GAPS)
            db.execute("DROP TABLE IF EXISTS person_features_new")
            db.execute(f"CREATE TABLE person_features_new ({features.definitions(columns)})")
            db.execute(insert, params)
            features.swap(db)
    finally:
        features.release(db)
        drop_temp(db)
    return summary(db, joined)


def rescore(db: Database, as_of: dt.date, scoring: ScoringSettings) -> None:
    """Recompute the :data:`GLOBAL_COLUMNS` of every stored row of ``person_features`` for
    ``as_of``, from the row itself, the population and the predictions, with the build's own
    SQL; rows whose values stay are not rewritten. The caller holds a transaction.

    This is the global pass of the incremental refresh (:mod:`.refresh`): after it, rows built
    for an earlier as-of, or by :func:`build_features` for a subset, equal a full build's.
    """
    params = score_params(as_of, scoring)
    params["shop_gap"] = shop_gap(db, "person_features")
    joined = scoring.predictions and predictions_match(db, as_of)
    expressions = score_expressions(db, joined)
    days_since = features.days_since("pf.last_order_date")
    columns = {
        "days_since_last_order": days_since,
        "age": features.age("pf.birth_date"),
        **{name: expressions[name] for name in ("birthday_in_days",
                                                "first_order_anniversary_in_days")},
        # Over the new day count, not the stored one.
        **{name: expressions[name].replace("pf.days_since_last_order", f"({days_since})")
           for name in ("lifecycle_stage", "is_fading_regular")},
        **{name: expressions[name] for name in _RANKED},
        **{name: expressions[name] for name in PREDICTION_COLUMNS},
    }
    joins = "LEFT JOIN temp._sc_ranks AS r ON r.person_id = pf.person_id"
    if joined:
        joins += " LEFT JOIN person_predictions AS pp ON pp.person_id = pf.person_id"
    names = list(columns)
    try:
        prepare_ranks(db, scoring)
        rank(db, scoring, "person_features", params)
        # One statement, no temp table of every row's new values: SQLite flattens the subquery
        # into one scan of the rows in rowid order (the self-join is a rowid seek onto the page
        # just read) and buffers only the rows whose values move.
        db.execute(
            f"""UPDATE person_features SET {', '.join(f'{n} = g.{n}' for n in names)}
            FROM (
                SELECT pf.person_id, {', '.join(f'{sql} AS {n}' for n, sql in columns.items())}
                FROM person_features AS pf {joins}
            ) AS g
            WHERE g.person_id = person_features.person_id
                AND ({', '.join(f'person_features.{n}' for n in names)})
                    IS NOT ({', '.join(f'g.{n}' for n in names)})""", params)
    finally:
        drop_temp(db)


def prepare_ranks(db: Database, scoring: ScoringSettings) -> None:
    """Create the temporary tables :func:`rank` fills and :func:`score_expressions` reads
    (``temp._sc_ranks``, joined as ``r``), with the RFM map loaded; :func:`drop_temp` drops
    them. Checks the map first: a bad one raises before anything is written."""
    rfm_map = load_rfm_map(scoring.rfm_map)
    drop_temp(db)
    for statement in _TEMP_TABLES:
        db.execute(statement)
    db.conn.executemany("INSERT INTO temp._sc_rfm_map VALUES (?, ?)", rfm_map.items())


def rank(db: Database, scoring: ScoringSettings, features: str, params: dict[str, Any]) -> None:
    """Rank the buyers of ``features`` (a table or parenthesised subquery with
    ``person_features``' ``person_id``, ``number_of_orders``, ``last_order_date``,
    ``amount_spent``, ``orders_last_365d`` and ``spent_last_365d``) into ``temp._sc_ranks``:
    the RFM scores and group, the spend percentile and the usage tier. Row order does not
    matter: ties share a rank (the comment on ``_RANKED_BY`` says how)."""
    basis = _USAGE_BASIS[scoring.usage_basis]
    ranked = {"last_order_date": "", "number_of_orders": "", "amount_spent": ""}
    if scoring.usage_mode == "share":
        ranked[basis] = "WHERE orders_last_365d > 0"
    tables = ["_sc_buyers", *(f"_sc_below_{column}" for column in ranked)]
    try:
        db.execute("CREATE TEMP TABLE _sc_buyers (person_id INTEGER PRIMARY KEY, "
                   + ", ".join(f"{c} {t}" for c, t in _RANKED_BY.items()) + ")")
        db.execute(_BUYERS.format(columns=", ".join(["person_id", *_RANKED_BY]),
                                  features=features))
        for column, where in ranked.items():
            db.execute(f"CREATE TEMP TABLE _sc_below_{column} ({column} {_RANKED_BY[column]} "
                       "PRIMARY KEY, below INTEGER NOT NULL) WITHOUT ROWID")
            db.execute(_BELOW.format(column=column, where=where))
        buyers, year_buyers = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE orders_last_365d > 0) "
            "FROM temp._sc_buyers").fetchone()
        db.execute(_RANKS.format(usage=_usage(scoring), usage_join=(
            _USAGE_SHARE_JOIN.format(basis=basis) if scoring.usage_mode == "share" else "")),
                   {**params, "buyers": buyers, "year_buyers": year_buyers})
    finally:
        for table in tables:
            db.execute(f"DROP TABLE IF EXISTS temp.{table}")


def shop_gap(db: Database, features: str) -> float | None:
    """The median of the ``median_order_gap_days`` of ``features`` (a table or parenthesised
    subquery): the usual gap of a customer with one order date, for AT_RISK (bind it as
    ``:shop_gap``)."""
    return db.execute(_SHOP_GAP.format(features=features)).fetchone()[0]


def order_counts(scoring: ScoringSettings) -> dict[str, str]:
    """Per-person order counts the scores read (as ``pf.<name>``), as aggregates over valid
    orders ``o`` for the features' own pass: orders in the season window, those in a completed
    season, and those around the as-of date one year back. Refund rows are not orders."""
    order = "o.total >= 0"
    season = in_season(scoring)
    return {
        "in_season": f"count(*) FILTER (WHERE {order} AND {season})",
        "past_season": f"count(*) FILTER (WHERE {order} AND {season} "
                       "AND o.order_date <= :season_done)",
        "last_year": f"count(*) FILTER (WHERE {order} "
                     "AND o.order_date BETWEEN :last_year_from AND :last_year_to)",
    }


def drop_temp(db: Database) -> None:
    """Drop the temporary tables of :func:`prepare_ranks`."""
    for name in _TEMP_NAMES:
        db.execute(f"DROP TABLE IF EXISTS temp.{name}")


def predictions_match(db: Database, as_of: dt.date) -> bool:
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


def score_params(as_of: dt.date, s: ScoringSettings) -> dict[str, Any]:
    """Every bound value of the scoring SQL (``:shop_gap`` aside, see :func:`shop_gap`); dates
    are computed here, once, not per row."""
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


def in_season(s: ScoringSettings) -> str:
    """SQL: whether order ``o`` falls in the season window (month-days, both ends in)."""
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


def score_expressions(db: Database, joined: bool) -> dict[str, str]:
    """The SQL of each of :data:`SCORE_COLUMNS` over ``pf`` (the person's features, plus
    :func:`order_counts`, ``order_gaps``, ``top_category`` and ``top_category_share`` for
    the columns that read them), ``r`` (``temp._sc_ranks``) and, if ``joined``, ``pp``
    (``person_predictions``; see :func:`predictions_match`)."""
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
        "bought_this_time_last_year": "coalesce(pf.last_year > 0, 0)",
        "birthday_in_days": _days_until("pf.birth_date", after_own_year=False),
        "first_order_anniversary_in_days": _days_until("pf.first_order_date",
                                                       after_own_year=True),
        "expected_next_order_date": _NEXT_ORDER,
        "top_category": "pf.top_category",
        "top_category_share": "pf.top_category_share",
        **model,
    }


def summary(db: Database, joined: bool) -> dict[str, Any]:
    """The number of people and buyers in ``person_features``, whether the predictions were
    ``joined``, and the size of each lifecycle stage, RFM group and usage tier."""
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
