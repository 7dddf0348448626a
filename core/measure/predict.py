"""Predicted churn risk, purchases, spend and lifetime value per person, from the store's orders.

The maths lives in :mod:`.btyd`; this module turns ``orders`` into the models'
inputs and writes the predictions back as ``person_predictions``.

Conventions (the CDNOW conventions of Fader & Hardie, which the published numbers assume):

* A *transaction* is a distinct purchase day: several valid orders by one person on one local
  ``order_date`` count as one, their amounts summed. ``x`` = purchase days - 1 (repeat
  transactions).
* Time is in **weeks** = days / 7. ``t_x`` = days from the first to the last purchase day,
  ``T`` = days from the first purchase day to ``as_of`` (CDNOW: first purchase 1997-01-01,
  as-of 1997-09-30 gives T = 272 / 7 = 38.86, as in the published summary).
* Valid orders: ``cancelled_at IS NULL AND test = 0 AND total >= 0 AND order_date <= as_of``
  with a ``person_id``. Refund rows (negative ``total``) are not transactions; an order's value
  is ``total - refunded`` (net of partial refunds, never below 0).
* ``mbar`` (monetary value) = mean value of the *repeat* purchase days; the first day is left out,
  as in Fader & Hardie's Gamma-Gamma note and the CDNOW ``zbar``.
* Predictions cover people with at least one valid order; prospects get no row.

Under BG/NBD a person can only drop out right after a *repeat* purchase, so a one-time buyer
has P(alive) = 1 and churn risk 0 however long ago the purchase was: a property of the model,
which is why lifecycle stages also use day-based rules.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlite_utils import Database

from ..errors import ConfigError
from .btyd import (
    BGNBDFit,
    FloatArray,
    GammaGammaFit,
    discounted_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    group_histories,
)

#: Days in the model's time unit: the fit is in weeks, like the published CDNOW results.
DAYS_PER_WEEK = 7.0

#: The spend tier looks one year ahead, like Shopify's ``predicted_spend_tier``.
TIER_HORIZON_DAYS = 365

#: Tier cut-offs as shares of people with orders: HIGH = top 30 %, LOW = bottom 10 % of predicted
#: 12-month spend, MEDIUM the rest (the >70th / 10-70th / <10th percentile definition quoted for
#: Shopify's tiers).
TIER_HIGH_SHARE = 0.30
TIER_LOW_SHARE = 0.10


@dataclass(frozen=True, eq=False)
class StoreSummary:
    """Per-person sufficient statistics at ``as_of``, sorted by ``person_id``.

    ``x`` repeat purchase days, ``t_x`` and ``T`` in weeks, ``mbar`` mean repeat-day value
    (0 where x = 0).
    """

    as_of: dt.date
    person_id: np.ndarray
    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    mbar: FloatArray

    def __len__(self) -> int:
        return int(self.person_id.size)


#: Per buyer, the models' inputs that do not move with the as-of: ``first_day`` (days since
#: 1970-01-01), ``x``, ``t_x`` in days and ``mbar``; ``{people}`` may narrow it to some people.
#: T is the as-of's day number minus ``first_day``. One statement for every caller, so a full
#: build and an incremental one add each person's amounts in the same order (the orders_person
#: index's) and agree to the last bit.
_INPUTS_SQL = """
WITH days AS (
    SELECT person_id, order_date, SUM(MAX(total - refunded, 0)) AS amount
    FROM orders
    WHERE person_id IS NOT NULL{people}
      AND cancelled_at IS NULL AND test = 0 AND total >= 0
      AND order_date <= :as_of
    GROUP BY person_id, order_date
),
people AS (
    SELECT person_id, MIN(order_date) AS first_date, MAX(order_date) AS last_date,
           COUNT(*) AS n_days, SUM(amount) AS amount
    FROM days
    GROUP BY person_id
)
SELECT p.person_id,
       CAST(julianday(p.first_date) - 2440587.5 AS INTEGER),
       p.n_days - 1,
       CAST(julianday(p.last_date) - julianday(p.first_date) AS INTEGER),
       CASE WHEN p.n_days > 1 THEN (p.amount - f.amount) / (p.n_days - 1) ELSE 0.0 END
FROM people AS p
JOIN days AS f ON f.person_id = p.person_id AND f.order_date = p.first_date
ORDER BY p.person_id
"""

#: ``meta`` key of the as-of whose valid orders ``prediction_inputs`` holds.
INPUTS_KEY = "prediction_inputs"

_EPOCH = dt.date(1970, 1, 1)


def _day_number(day: dt.date) -> int:
    return (day - _EPOCH).days


def _summary(as_of: dt.date, rows: Iterable[tuple], calibration_start: dt.date | None = None
             ) -> StoreSummary:
    """The summary at ``as_of`` from rows of (person_id, first_day, x, t_x days, mbar), read
    straight into one array (a list of a million tuples would take several times its memory)."""
    data = np.fromiter(itertools.chain.from_iterable(rows), np.float64).reshape(-1, 5)
    if calibration_start is not None:
        data = data[data[:, 1] >= _day_number(calibration_start)]
    return StoreSummary(
        as_of=as_of,
        person_id=data[:, 0].astype(np.int64),
        x=data[:, 2],
        t_x=data[:, 3] / DAYS_PER_WEEK,
        T=(_day_number(as_of) - data[:, 1]) / DAYS_PER_WEEK,
        mbar=data[:, 4],
    )


def summary_from_store(
    db: Database, as_of: dt.date, calibration_start: dt.date | None = None
) -> StoreSummary:
    """Compute (x, t_x, T, mbar) per person from valid orders up to ``as_of`` in one query.

    ``calibration_start`` keeps only the cohort whose *first* valid order is on or after it
    (the CDNOW design: customers first buying in a given quarter). It filters people, not
    orders: cutting a person's earlier orders would make a long-standing customer look new,
    which the models (T counts from the very first purchase) would misread.
    """
    rows = db.execute(_INPUTS_SQL.format(people=""), {"as_of": as_of.isoformat()})
    return _summary(as_of, rows, calibration_start)


def _stored_summary(db: Database, as_of: dt.date, changed: str | None,
                    since: dt.date | None) -> StoreSummary:
    """The summary at ``as_of`` from ``prediction_inputs``, first brought up to ``as_of``.

    The table is rebuilt from every order unless ``changed`` names a table holding everyone
    whose inputs may differ between ``since`` and ``as_of`` (an incremental refresh's people:
    those whose records changed and those with an order dated in between), and the table was
    last brought up to ``since``; then only their rows are recomputed. T alone moves with the
    as-of, and is derived from it here.
    """
    held = db.execute("SELECT value FROM meta WHERE key = ?", [INPUTS_KEY]).fetchone()
    incremental = (changed is not None and since is not None and since <= as_of
                   and held is not None and held[0] == since.isoformat())
    people = ""
    with db.atomic():
        if incremental:
            people = f" AND person_id IN (SELECT person_id FROM {changed})"
            db.execute(f"DELETE FROM prediction_inputs WHERE person_id IN "
                       f"(SELECT person_id FROM {changed})")
        else:
            db.execute("DELETE FROM prediction_inputs")
        db.execute("INSERT INTO prediction_inputs " + _INPUTS_SQL.format(people=people),
                   {"as_of": as_of.isoformat()})
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                   [INPUTS_KEY, as_of.isoformat()])
    rows = db.execute("SELECT person_id, first_day, x, t_x, mbar FROM prediction_inputs "
                      "ORDER BY person_id")
    return _summary(as_of, rows)


#: The fewest repeat buyers each model is fitted on: the purchase model learns drop-out and
#: the spread of purchase rates, the spend model the spread of spend, from people who bought
#: more than once. Below this a fit would mostly describe a handful of individuals, and
#: segments acting on it would target noise; a small shop reaches it within weeks.
MIN_REPEAT_BUYERS = 10

#: ``person_predictions`` columns each model provides; the spend columns need both models.
PURCHASE_COLUMNS = ("p_alive", "churn_risk", "expected_purchases_{horizon}d")
SPEND_COLUMNS = ("expected_spend", "clv", "predicted_12m_spend", "predicted_spend_tier")


@dataclass(frozen=True)
class FittedModels:
    """Both models for one summary, each None where it could not be fitted or used.

    ``problems`` says why, by model (``purchase``, ``spend``), in words for the people
    concerned; a fit that ran but cannot be used is kept (``model fit`` shows it) with its
    problem recorded.
    """

    bgnbd: BGNBDFit | None
    gamma_gamma: GammaGammaFit | None
    problems: dict[str, str]

    @property
    def purchase(self) -> BGNBDFit | None:
        """The purchase model when its predictions can be used."""
        return None if "purchase" in self.problems else self.bgnbd

    @property
    def spend(self) -> GammaGammaFit | None:
        """The spend model when its predictions can be used (it also needs the purchase one)."""
        return None if self.problems else self.gamma_gamma


def fit_models(summary: StoreSummary, *, penalizer: float = 0.0) -> FittedModels:
    """Fit BG/NBD on everyone and Gamma-Gamma on repeat buyers with positive spend.

    Each model is fitted only with at least :data:`MIN_REPEAT_BUYERS` repeat buyers (for the
    spend model: repeat buyers with a paid repeat purchase), and used only when its fit
    converged (a fit that runs towards one of the model's limits converges there: see
    :mod:`.btyd`) and, for spend, when the expected spend is bounded (q > 1). A fit that ran
    but cannot be used is returned with its problem, so ``model fit`` can show it.
    """
    problems: dict[str, str] = {}
    repeat = int((summary.x > 0).sum())
    spenders = (summary.x > 0) & (summary.mbar > 0)
    bg = gg = None
    if len(summary) == 0:
        problems["purchase"] = f"no valid order up to {summary.as_of}"
    elif repeat < MIN_REPEAT_BUYERS:
        problems["purchase"] = (
            f"too little history: {repeat} of {len(summary)} buyers bought again up to "
            f"{summary.as_of}; the purchase model needs at least {MIN_REPEAT_BUYERS} repeat "
            "buyers"
        )
    else:
        bg = fit_bgnbd(summary.x, summary.t_x, summary.T, penalizer=penalizer)
        if not bg.converged:
            problems["purchase"] = (
                "the purchase model (BG/NBD) did not converge on this history; "
                "'segsync model fit' shows the fit"
            )
    if len(summary) and int(spenders.sum()) < MIN_REPEAT_BUYERS:
        problems["spend"] = (
            f"too little history: {int(spenders.sum())} buyers have a paid repeat purchase up "
            f"to {summary.as_of}; the spend model needs at least {MIN_REPEAT_BUYERS}"
        )
    elif len(summary):
        gg = fit_gamma_gamma(summary.x[spenders], summary.mbar[spenders], penalizer=penalizer)
        if not gg.converged:
            problems["spend"] = (
                "the spend model (Gamma-Gamma) did not converge on this history; "
                "'segsync model fit' shows the fit"
            )
        elif gg.q <= 1:
            problems["spend"] = (
                f"the spend model fitted q = {gg.q:.3g} <= 1: spend per purchase varies too "
                "much between buyers for a bounded expected spend"
            )
    return FittedModels(bg, gg, problems)


def _finite(value: float) -> float | None:
    """JSON has no NaN: undefined diagnostics become null."""
    return value if math.isfinite(value) else None


def _bgnbd_report(bg: BGNBDFit) -> dict[str, Any]:
    return {
        "r": bg.r,
        "alpha": bg.alpha,
        "a": bg.a,
        "b": bg.b,
        # What the parameters mean, and stay meaning where r, alpha or a, b run large
        # together (a shop whose buyers share one rate or one drop-out probability).
        "mean_weekly_purchase_rate": bg.r / bg.alpha,
        "mean_dropout_probability": bg.a / (bg.a + bg.b),
        "std_errors": dict(zip(("r", "alpha", "a", "b"), map(_finite, bg.std_errors),
                               strict=True)),
        "log_likelihood": bg.log_likelihood,
        "distinct_histories": bg.n_histories,
        "iterations": bg.iterations,
        "converged": bg.converged,
        "penalizer": bg.penalizer,
    }


def _gamma_gamma_report(gg: GammaGammaFit) -> dict[str, Any]:
    return {
        "p": gg.p,
        "q": gg.q,
        "gamma": gg.gamma,
        "std_errors": dict(zip(("p", "q", "gamma"), map(_finite, gg.std_errors), strict=True)),
        "log_likelihood": gg.log_likelihood,
        "customers": gg.n_customers,
        "iterations": gg.iterations,
        "converged": gg.converged,
        "penalizer": gg.penalizer,
    }


def _report(summary: StoreSummary, models: FittedModels) -> dict[str, Any]:
    """Parameters and diagnostics as plain JSON-ready values (null for a model not fitted)."""
    bg, gg = models.bgnbd, models.gamma_gamma
    repeat = summary.x > 0
    # Gamma-Gamma assumes spend is independent of frequency; a strong correlation says the
    # spend predictions are biased (CDNOW: about 0.11).
    correlation = (
        float(np.corrcoef(summary.x[repeat], summary.mbar[repeat])[0, 1])
        if repeat.sum() > 2 and np.ptp(summary.x[repeat]) > 0 and np.ptp(summary.mbar[repeat]) > 0
        else math.nan
    )
    return {
        "as_of": summary.as_of.isoformat(),
        "time_unit": "weeks",
        "people": len(summary),
        "repeat_buyers": int(repeat.sum()),
        "bgnbd": _bgnbd_report(bg) if bg else None,
        "gamma_gamma": _gamma_gamma_report(gg) if gg else None,
        "problems": models.problems,
        "diagnostics": {
            # In-sample check: the model's expected repeat purchases over each person's own
            # observation window, E[X(T)], summed, against what was observed.
            "observed_repeat_purchases": float(summary.x.sum()),
            "expected_repeat_purchases": _expected_repeats(bg, summary) if bg else None,
            "mean_repeat_spend_observed": _finite(
                float(summary.mbar[repeat].mean()) if repeat.any() else math.nan
            ),
            "mean_spend_expected": (gg.p * gg.gamma / (gg.q - 1.0)
                                    if gg and gg.q > 1 else None),
            "spend_frequency_correlation": _finite(correlation),
        },
    }


def _expected_repeats(bg: BGNBDFit, summary: StoreSummary) -> float | None:
    """Sum of E[X(T)] over people; None where the series cannot reach it (see .btyd)."""
    try:
        return float(bg.expected_purchases_new(summary.T).sum())
    except ValueError:
        return None


def _coverage(db: Database, summary: StoreSummary, problems: dict[str, str],
              horizon_days: int) -> dict[str, Any]:
    """Who has which predictions, and for everyone else how many and why not.

    ``missing`` holds one entry per group of people lacking columns: prospects (no valid
    order: the models predict from purchases), then buyers whose model could not be used
    (``model`` names it). Every person of ``people`` is counted once per gap.
    """
    people = max(db["people"].count if db["people"].exists() else 0, len(summary))
    purchase = [c.format(horizon=horizon_days) for c in PURCHASE_COLUMNS]
    missing = []
    if people > len(summary):
        missing.append({
            "people": people - len(summary), "columns": purchase + list(SPEND_COLUMNS),
            "model": None, "reason": f"no valid order up to {summary.as_of}",
        })
    if len(summary) and "purchase" in problems:
        missing.append({"people": len(summary), "columns": purchase + list(SPEND_COLUMNS),
                        "model": "purchase", "reason": problems["purchase"]})
    elif len(summary) and "spend" in problems:
        missing.append({"people": len(summary), "columns": list(SPEND_COLUMNS),
                        "model": "spend", "reason": problems["spend"]})
    usable = "purchase" not in problems
    return {
        "people": people,
        "buyers": len(summary),
        "with_purchase_predictions": len(summary) if usable else 0,
        "with_spend_predictions": len(summary) if usable and not problems else 0,
        "missing": missing,
    }


def describe_gap(gap: dict[str, Any]) -> str:
    """One ``coverage["missing"]`` entry in words: how many people lack what, and why."""
    what = "none" if gap["model"] != "spend" else "no " + ", ".join(gap["columns"])
    return f"{gap['people']:,} have {what}: {gap['reason']}"


def coverage_lines(coverage: dict[str, Any]) -> list[str]:
    """The coverage in words: who has predictions, then each group without and why."""
    head = (f"predictions for {coverage['with_purchase_predictions']:,} of "
            f"{coverage['people']:,} people")
    return [head] + [describe_gap(gap) for gap in coverage["missing"]]


def fit_from_store(db: Database, as_of: dt.date, *, penalizer: float = 0.0) -> dict[str, Any]:
    """Fit both models on the store at ``as_of``; the result of ``segsync model fit --json``.

    ``coverage`` says who would get predictions (see :func:`_coverage`).
    """
    _check_options(penalizer=penalizer)
    summary = summary_from_store(db, as_of)
    models = fit_models(summary, penalizer=penalizer)
    report = _report(summary, models)
    report["coverage"] = _coverage(db, summary, models.problems, 90)
    return report


def spend_tiers(values: FloatArray) -> np.ndarray:
    """HIGH / MEDIUM / LOW by rank among everyone given (people with orders).

    HIGH when the people predicted at least as much make up at most 30 % (top 30 %), LOW when
    the people predicted at most as much make up at most 10 % (bottom 10 %), else MEDIUM. Equal
    values always share a tier, and a tie straddling a cut-off goes to MEDIUM, so HIGH and LOW
    never exceed their shares.
    """
    n = values.size
    # From one sort: for each run of equal values in sorted order, who is before its start and
    # who up to its end (NaNs, sorted last, are one run). Looking every value up in the sorted
    # array instead took a second at a million buyers.
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_run = np.ones(n, dtype=bool)
    starts_run[1:] = (ordered[1:] != ordered[:-1]) & ~(np.isnan(ordered[1:])
                                                        & np.isnan(ordered[:-1]))
    run = np.cumsum(starts_run) - 1
    starts = np.flatnonzero(starts_run)
    ends = np.append(starts[1:], n)
    at_least = np.empty(n, dtype=np.intp)
    at_least[order] = n - starts[run]
    at_most = np.empty(n, dtype=np.intp)
    at_most[order] = ends[run]
    tiers = np.full(n, "MEDIUM", dtype=object)
    tiers[at_most <= TIER_LOW_SHARE * n] = "LOW"
    tiers[at_least <= TIER_HIGH_SHARE * n] = "HIGH"
    return tiers


def _check_options(
    *, horizon_days: int = 90, clv_months: int = 12, discount_rate: float = 0.0,
    penalizer: float = 0.0,
) -> None:
    """Reject bad options as a :class:`ConfigError` (exit 2) before any work is done."""
    problems = []
    # The horizon becomes part of a column name, so it must be a plain positive integer.
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or horizon_days < 1:
        problems.append(f"horizon_days must be a whole number of days >= 1, not {horizon_days!r}")
    if isinstance(clv_months, bool) or not isinstance(clv_months, int) or clv_months < 1:
        problems.append(f"clv_months must be a whole number >= 1, not {clv_months!r}")
    if not (math.isfinite(discount_rate) and discount_rate >= 0):
        problems.append(f"discount_rate is a monthly rate >= 0, not {discount_rate!r}")
    if not (math.isfinite(penalizer) and penalizer >= 0):
        problems.append(f"penalizer must be >= 0, not {penalizer!r}")
    if problems:
        raise ConfigError("; ".join(problems), problems)


def write_predictions(
    db: Database,
    as_of: dt.date,
    *,
    horizon_days: int = 90,
    clv_months: int = 12,
    discount_rate: float = 0.01,
    penalizer: float = 0.0,
    changed: str | None = None,
    since: dt.date | None = None,
) -> dict[str, Any]:
    """Fit the models at ``as_of`` and replace ``person_predictions`` with one row per buyer.

    Columns: ``person_id``, ``as_of``, ``p_alive``, ``churn_risk`` (1 - p_alive),
    ``expected_purchases_{horizon_days}d`` (purchase days expected in the next
    ``horizon_days``; the name carries the horizon so it never lies), ``expected_spend``
    (E[M], per purchase day), ``clv`` (discounted value over ``clv_months`` 30-day months at
    ``discount_rate`` per month; see :func:`.btyd.discounted_purchases`),
    ``predicted_12m_spend`` (undiscounted E[purchases in 365 days] * E[M]) and
    ``predicted_spend_tier`` (:func:`spend_tiers` of ``predicted_12m_spend``).

    Without a usable purchase model the table is left empty, and without a usable spend model
    the spend columns are null, so stale predictions never stand in for today's: the returned
    report's ``coverage`` says who lacks which columns and why (:func:`fit_models` has the
    rules). Purchase predictions depend only on (x, t_x, T), so they are computed once per
    distinct history and mapped back. The table is dropped, recreated and filled in one
    transaction: readers see the old predictions or the new, never a mix.

    The models' inputs are kept in ``prediction_inputs``; ``changed`` and ``since`` let an
    incremental refresh recompute only its people's (see :func:`_stored_summary`).
    """
    _check_options(
        horizon_days=horizon_days, clv_months=clv_months, discount_rate=discount_rate,
        penalizer=penalizer,
    )
    summary = _stored_summary(db, as_of, changed, since)
    models = fit_models(summary, penalizer=penalizer)
    problems = dict(models.problems)
    columns: dict[str, np.ndarray] = {}
    tiers = np.array([], dtype=object)
    if models.purchase:
        try:
            columns, tiers = _prediction_columns(summary, models, horizon_days, clv_months,
                                                 discount_rate)
        except ValueError as exc:  # a horizon beyond what the series can sum: see .btyd
            problems["purchase"] = f"the purchase model's predictions cannot be computed: {exc}"
    purchases_column = f"expected_purchases_{horizon_days}d"
    # Only the columns with values are bound: binding None goes through the driver's adapter
    # lookup and cost more than a row's floats; left out, the spend columns default to NULL.
    # The as-of, shared by every row, is a literal of the statement (an ISO date).
    insert = (f"INSERT INTO person_predictions (as_of, {', '.join(columns)}) "
              f"VALUES ('{as_of.isoformat()}', {', '.join('?' for _ in columns)})")
    with db.atomic():
        db.execute("DROP TABLE IF EXISTS person_predictions")
        # The tier check is written as comparisons: SQLite checks an IN list of three constants
        # by building a lookup table on every execution of the statement, once per row of
        # executemany, and that took longer than inserting the row.
        db.execute(
            f"""
            CREATE TABLE person_predictions (
                person_id INTEGER PRIMARY KEY,
                as_of TEXT NOT NULL,
                p_alive REAL NOT NULL,
                churn_risk REAL NOT NULL,
                {purchases_column} REAL NOT NULL,
                expected_spend REAL,
                clv REAL,
                predicted_12m_spend REAL,
                predicted_spend_tier TEXT
                    CHECK (predicted_spend_tier = 'HIGH' OR predicted_spend_tier = 'MEDIUM'
                           OR predicted_spend_tier = 'LOW')
            )
            """
        )
        # In batches: a million rows as tuples at once would double the stage's peak memory.
        rows = len(summary) if columns else 0
        for start in range(0, rows, _WRITE_BATCH):
            db.conn.executemany(insert, _rows(list(columns.values()), start,
                                              min(start + _WRITE_BATCH, rows)))
    report = _report(summary, models)
    report["problems"] = problems
    values, counts = np.unique(tiers.astype(str), return_counts=True)
    report["predictions"] = {
        "rows": rows,
        "horizon_days": horizon_days,
        "clv_months": clv_months,
        "discount_rate": discount_rate,
        "tiers": {str(v): int(c) for v, c in zip(values, counts, strict=True)},
    }
    report["coverage"] = _coverage(db, summary, problems, horizon_days)
    return report


#: Rows of ``person_predictions`` written per executemany call.
_WRITE_BATCH = 50_000


def _prediction_columns(summary: StoreSummary, models: FittedModels, horizon_days: int,
                        clv_months: int, discount_rate: float
                        ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ``person_predictions`` columns that have values, by name (the spend columns only
    with a spend model; ``as_of`` is the same for every row and not among them), and the
    tiers."""
    bg, gg = models.purchase, models.spend
    h = group_histories(summary.x, summary.t_x, summary.T)
    purchases = np.column_stack([
        bg.expected_purchases(t / DAYS_PER_WEEK, h.x, h.t_x, h.T)
        for t in (horizon_days, TIER_HORIZON_DAYS)
    ])[h.inverse]
    columns = {
        "person_id": summary.person_id,
        "p_alive": bg.p_alive(h.x, h.t_x, h.T)[h.inverse],
        "churn_risk": bg.churn_risk(h.x, h.t_x, h.T)[h.inverse],
        f"expected_purchases_{horizon_days}d": purchases[:, 0],
    }
    tiers = np.array([], dtype=object)
    if gg:
        discounted = discounted_purchases(
            bg, h.x, h.t_x, h.T, months=clv_months, discount_rate=discount_rate,
            days_per_unit=DAYS_PER_WEEK,
        )[h.inverse]
        spend = gg.expected_spend(summary.x, summary.mbar)
        year_value = purchases[:, 1] * spend
        tiers = spend_tiers(year_value)
        columns.update(zip(SPEND_COLUMNS, (spend, discounted * spend, year_value, tiers),
                           strict=True))
    return columns, tiers


def _rows(columns: list[np.ndarray], start: int, stop: int) -> Iterator[tuple]:
    """Rows ``start`` to ``stop`` of ``columns`` as plain Python values."""
    return zip(*(column[start:stop].tolist() for column in columns), strict=True)
