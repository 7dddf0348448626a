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
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlite_utils import Database

from ..errors import ConfigError, SegsyncError
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


_SUMMARY_SQL = """
WITH days AS (
    SELECT person_id, order_date, SUM(MAX(total - refunded, 0)) AS amount
    FROM orders
    WHERE person_id IS NOT NULL
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
       p.n_days - 1,
       CAST(julianday(p.last_date) - julianday(p.first_date) AS INTEGER),
       CAST(julianday(:as_of) - julianday(p.first_date) AS INTEGER),
       CASE WHEN p.n_days > 1 THEN (p.amount - f.amount) / (p.n_days - 1) ELSE 0.0 END
FROM people AS p
JOIN days AS f ON f.person_id = p.person_id AND f.order_date = p.first_date
WHERE :calibration_start IS NULL OR p.first_date >= :calibration_start
ORDER BY p.person_id
"""


def summary_from_store(
    db: Database, as_of: dt.date, calibration_start: dt.date | None = None
) -> StoreSummary:
    """Compute (x, t_x, T, mbar) per person from valid orders up to ``as_of`` in one query.

    ``calibration_start`` keeps only the cohort whose *first* valid order is on or after it
    (the CDNOW design: customers first buying in a given quarter). It filters people, not
    orders: cutting a person's earlier orders would make a long-standing customer look new,
    which the models (T counts from the very first purchase) would misread.
    """
    rows = db.execute(
        _SUMMARY_SQL,
        {
            "as_of": as_of.isoformat(),
            "calibration_start": calibration_start.isoformat() if calibration_start else None,
        },
    ).fetchall()
    data = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return StoreSummary(
        as_of=as_of,
        person_id=data[:, 0].astype(np.int64),
        x=data[:, 1],
        t_x=data[:, 2] / DAYS_PER_WEEK,
        T=data[:, 3] / DAYS_PER_WEEK,
        mbar=data[:, 4],
    )


@dataclass(frozen=True)
class FittedModels:
    """Both fits for one summary."""

    bgnbd: BGNBDFit
    gamma_gamma: GammaGammaFit


def fit_models(summary: StoreSummary, *, penalizer: float = 0.0) -> FittedModels:
    """Fit BG/NBD on everyone and Gamma-Gamma on repeat buyers with positive spend.

    Raises :class:`SegsyncError` when the store cannot support the models at all: no buyers,
    or no repeat buyer with a paid repeat purchase. A fit that ran but did not converge is
    returned as such (``converged`` false) so ``model fit`` can show it; see
    :func:`_require_usable`.
    """
    if len(summary) == 0:
        raise SegsyncError(f"no valid orders up to {summary.as_of}: nothing to model")
    spenders = (summary.x > 0) & (summary.mbar > 0)
    if not spenders.any():
        raise SegsyncError(
            f"no person has a paid repeat purchase up to {summary.as_of}: the purchase and "
            "spend models need repeat buyers"
        )
    bg = fit_bgnbd(summary.x, summary.t_x, summary.T, penalizer=penalizer)
    gg = fit_gamma_gamma(summary.x[spenders], summary.mbar[spenders], penalizer=penalizer)
    return FittedModels(bg, gg)


def _require_usable(models: FittedModels) -> None:
    """Refuse to predict from a fit that did not converge or has an unbounded mean spend.

    A degenerate fit (parameters run to their bounds, a -> 1 making E[Y] 0/0) would write
    meaningless numbers that segments then act on; failing loudly is the safer default.
    """
    bg, gg = models.bgnbd, models.gamma_gamma
    if not bg.converged:
        raise SegsyncError(
            "the purchase model (BG/NBD) did not converge; run 'segsync model fit' to see the "
            "fit, or add a penalizer; predictions were not written"
        )
    if not gg.converged:
        raise SegsyncError(
            "the spend model (Gamma-Gamma) did not converge; run 'segsync model fit' to see "
            "the fit, or add a penalizer; predictions were not written"
        )
    if gg.q <= 1:
        raise SegsyncError(
            f"the spend model fitted q = {gg.q:.3g} <= 1, so expected spend is unbounded: too "
            "few or too uneven repeat buyers to predict spend; predictions were not written"
        )


def _finite(value: float) -> float | None:
    """JSON has no NaN: undefined diagnostics become null."""
    return value if math.isfinite(value) else None


def _report(summary: StoreSummary, models: FittedModels) -> dict[str, Any]:
    """Parameters and diagnostics as plain JSON-ready values."""
    bg, gg = models.bgnbd, models.gamma_gamma
    repeat = summary.x > 0
    expected = float(bg.expected_purchases_new(summary.T).sum())
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
        "bgnbd": {
            "r": bg.r,
            "alpha": bg.alpha,
            "a": bg.a,
            "b": bg.b,
            "std_errors": dict(zip(("r", "alpha", "a", "b"), map(_finite, bg.std_errors),
                                   strict=True)),
            "log_likelihood": bg.log_likelihood,
            "distinct_histories": bg.n_histories,
            "iterations": bg.iterations,
            "converged": bg.converged,
            "penalizer": bg.penalizer,
        },
        "gamma_gamma": {
            "p": gg.p,
            "q": gg.q,
            "gamma": gg.gamma,
            "std_errors": dict(zip(("p", "q", "gamma"), map(_finite, gg.std_errors),
                                   strict=True)),
            "log_likelihood": gg.log_likelihood,
            "customers": gg.n_customers,
            "iterations": gg.iterations,
            "converged": gg.converged,
            "penalizer": gg.penalizer,
        },
        "diagnostics": {
            # In-sample check: the model's expected repeat purchases over each person's own
            # observation window, E[X(T)], summed, against what was observed.
            "observed_repeat_purchases": float(summary.x.sum()),
            "expected_repeat_purchases": expected,
            "mean_repeat_spend_observed": _finite(
                float(summary.mbar[repeat].mean()) if repeat.any() else math.nan
            ),
            "mean_spend_expected": gg.p * gg.gamma / (gg.q - 1.0) if gg.q > 1 else None,
            "spend_frequency_correlation": _finite(correlation),
        },
    }


def fit_from_store(db: Database, as_of: dt.date, *, penalizer: float = 0.0) -> dict[str, Any]:
    """Fit both models on the store at ``as_of``; the result of ``segsync model fit --json``."""
    _check_options(penalizer=penalizer)
    summary = summary_from_store(db, as_of)
    return _report(summary, fit_models(summary, penalizer=penalizer))


def spend_tiers(values: FloatArray) -> np.ndarray:
    """HIGH / MEDIUM / LOW by rank among everyone given (people with orders).

    HIGH when the people predicted at least as much make up at most 30 % (top 30 %), LOW when
    the people predicted at most as much make up at most 10 % (bottom 10 %), else MEDIUM. Equal
    values always share a tier, and a tie straddling a cut-off goes to MEDIUM, so HIGH and LOW
    never exceed their shares.
    """
    n = values.size
    ordered = np.sort(values)
    at_least = n - np.searchsorted(ordered, values, side="left")
    at_most = np.searchsorted(ordered, values, side="right")
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
) -> dict[str, Any]:
    """Fit the models at ``as_of`` and replace ``person_predictions`` with one row per buyer.

    Columns: ``person_id``, ``as_of``, ``p_alive``, ``churn_risk`` (1 - p_alive),
    ``expected_purchases_{horizon_days}d`` (purchase days expected in the next
    ``horizon_days``; the name carries the horizon so it never lies), ``expected_spend``
    (E[M], per purchase day), ``clv`` (discounted value over ``clv_months`` 30-day months at
    ``discount_rate`` per month; see :func:`.btyd.discounted_purchases`),
    ``predicted_12m_spend`` (undiscounted E[purchases in 365 days] * E[M]) and
    ``predicted_spend_tier`` (:func:`spend_tiers` of ``predicted_12m_spend``).

    Purchase predictions depend only on (x, t_x, T), so they are computed once per distinct
    history and mapped back. The table is dropped, recreated and filled in one transaction:
    readers see the old predictions or the new, never a mix. Returns the fit report plus
    row and tier counts.
    """
    _check_options(
        horizon_days=horizon_days, clv_months=clv_months, discount_rate=discount_rate,
        penalizer=penalizer,
    )
    summary = summary_from_store(db, as_of)
    models = fit_models(summary, penalizer=penalizer)
    _require_usable(models)
    bg, gg = models.bgnbd, models.gamma_gamma

    h = group_histories(summary.x, summary.t_x, summary.T)
    # Overflow in an extreme fit is caught below as non-finite values, not printed as warnings.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        purchases = np.column_stack([
            bg.expected_purchases(t / DAYS_PER_WEEK, h.x, h.t_x, h.T)
            for t in (horizon_days, TIER_HORIZON_DAYS)
        ])[h.inverse]
        discounted = discounted_purchases(
            bg, h.x, h.t_x, h.T, months=clv_months, discount_rate=discount_rate,
            days_per_unit=DAYS_PER_WEEK,
        )[h.inverse]
        p_alive = bg.p_alive(h.x, h.t_x, h.T)[h.inverse]
        churn = bg.churn_risk(h.x, h.t_x, h.T)[h.inverse]
        spend = gg.expected_spend(summary.x, summary.mbar)
        clv = discounted * spend
        year_value = purchases[:, 1] * spend
    tiers = spend_tiers(year_value)

    # Extreme fits (a and b in the millions on a small shop) overflow the closed forms; a
    # prediction that is not a number must not reach a segment, so the whole set is refused.
    for label, values in (("P(alive)", p_alive), ("expected purchases", purchases),
                          ("expected spend", spend), ("CLV", clv)):
        if not np.all(np.isfinite(values)):
            raise SegsyncError(
                f"the fitted model gives non-finite {label} for some people "
                f"(r={bg.r:.3g}, alpha={bg.alpha:.3g}, a={bg.a:.3g}, b={bg.b:.3g}); "
                "more purchase history is needed"
            )
    purchases_column = f"expected_purchases_{horizon_days}d"
    rows = zip(
        summary.person_id.tolist(),
        [as_of.isoformat()] * len(summary),
        p_alive.tolist(),
        churn.tolist(),
        purchases[:, 0].tolist(),
        spend.tolist(),
        clv.tolist(),
        year_value.tolist(),
        tiers.tolist(),
        strict=True,
    )
    with db.atomic():
        db.execute("DROP TABLE IF EXISTS person_predictions")
        db.execute(
            f"""
            CREATE TABLE person_predictions (
                person_id INTEGER PRIMARY KEY,
                as_of TEXT NOT NULL,
                p_alive REAL NOT NULL,
                churn_risk REAL NOT NULL,
                {purchases_column} REAL NOT NULL,
                expected_spend REAL NOT NULL,
                clv REAL NOT NULL,
                predicted_12m_spend REAL NOT NULL,
                predicted_spend_tier TEXT NOT NULL
                    CHECK (predicted_spend_tier IN ('HIGH', 'MEDIUM', 'LOW'))
            )
            """
        )
        db.conn.executemany(
            "INSERT INTO person_predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )
    report = _report(summary, models)
    values, counts = np.unique(tiers.astype(str), return_counts=True)
    report["predictions"] = {
        "rows": len(summary),
        "horizon_days": horizon_days,
        "clv_months": clv_months,
        "discount_rate": discount_rate,
        "tiers": {str(v): int(c) for v, c in zip(values, counts, strict=True)},
    }
    return report
