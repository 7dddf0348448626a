"""BG/NBD predictions where a small shop's fit goes: the models' limits, and what holds anywhere.

A shop with a few dozen buyers often fits a, b (or r, alpha) in the millions: the likelihood
keeps rising towards a limit of the model. The closed form of E[Y(t)] overflows there (the
demo printed "predictions skipped ... a=1.13e+06, b=1.27e+07"); these tests hold the
predictions to the limiting models' own formulas, written out here from the model's
definition and never by calling the code under test:

* a, b -> infinity at mu = a/(a+b): everyone drops out with probability mu after each
  purchase; an alive customer's purchases are min(J, G), J ~ NegBin(r+x, t/(alpha+T+t)),
  G ~ Geometric(mu), so E[Y | alive] = (1 - (1 + mu t/(alpha+T))^-(r+x)) / mu;
* mu -> 0 (b -> infinity, or a -> 0): nobody drops out, the NBD, E[Y] = (r+x) t/(alpha+T);
* a, b -> 0: a customer drops out after their first purchase (probability a/(a+b)) or never;
* r, alpha -> infinity at lambda = r/alpha: everyone buys at rate lambda, and
  E[Y | alive] = E_p[(1 - exp(-lambda p t)) / p], integrated numerically over p.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from scipy.special import expit, hyp2f1

from segsync.core.measure.btyd import BGNBDFit, discounted_purchases, fit_bgnbd
from segsync.core.measure.predict import (
    MIN_REPEAT_BUYERS,
    fit_from_store,
    summary_from_store,
    write_predictions,
)
from segsync.core.store import open_store

#: The demo's fit (config.example.toml, as of 2026-11-01) that the closed form could not use.
DEMO = {"r": 2.654029921656129, "alpha": 26.12766679378348, "a": 627169.5213693724,
        "b": 7028850.47051717}

#: (x, t_x, T, t) in weeks: a one-time buyer, a buyer seen today, a lapsed regular, a heavy
#: regular, a customer whose first purchase is today, a long horizon.
HISTORIES = np.array([
    (0, 0.0, 30.0, 13.0), (3, 20.0, 20.0, 13.0), (8, 10.0, 40.0, 52.0), (40, 43.0, 44.0, 52.0),
    (0, 0.0, 0.0, 52.0), (5, 30.0, 35.0, 520.0),
])


def model(**params: float) -> BGNBDFit:
    return BGNBDFit(**params, log_likelihood=0.0, n_people=0, n_histories=0, iterations=0,
                    converged=True)


def columns():
    x, t_x, T, t = HISTORIES.T
    return x, t_x, T, t


def fixed_dropout(r, alpha, mu, x, t_x, T, t):
    """The a, b -> infinity limit: P(alive) and E[Y] with one drop-out probability mu."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    log_odds = np.log(mu / (1 - mu)) + (r + x) * np.log((alpha + T) / (alpha + t_x))
    p_alive = np.where(x > 0, expit(-log_odds), 1.0)
    alive = (1 - (1 + mu * t / (alpha + T)) ** -(r + x)) / mu
    return p_alive, p_alive * alive


def nbd(r, alpha, x, T, t):
    return (r + x) * t / (alpha + T)


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize("mu", [0.5, 0.0819, 1e-3])
def test_large_a_and_b_give_the_fixed_dropout_model(mu):
    x, t_x, T, t = columns()
    r, alpha = 2.654, 26.13
    expected_alive, expected = fixed_dropout(r, alpha, mu, x, t_x, T, t)
    # The fixed-mu model is exact at infinity; at a + b = 1e9 the Beta's spread is 1e-9 of mu.
    m = model(r=r, alpha=alpha, a=1e9 * mu, b=1e9 * (1 - mu))
    np.testing.assert_allclose(m.p_alive(x, t_x, T), expected_alive, rtol=1e-7)
    np.testing.assert_allclose(m.expected_purchases(t, x, t_x, T), expected, rtol=1e-6)


def test_the_demo_fit_gives_finite_predictions_next_to_its_limit():
    x, t_x, T, t = columns()
    m = model(**DEMO)
    got = m.expected_purchases(t, x, t_x, T)
    mu = DEMO["a"] / (DEMO["a"] + DEMO["b"])
    _, limit = fixed_dropout(DEMO["r"], DEMO["alpha"], mu, x, t_x, T, t)
    # a + b = 7.7e6: within 1e-4 of the limit, and finite where the closed form is NaN.
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, limit, rtol=1e-4)
    assert (got < nbd(DEMO["r"], DEMO["alpha"], x, T, t)).all()  # some do drop out
    with np.errstate(all="ignore"):
        u = (DEMO["alpha"] + T) / (DEMO["alpha"] + T + t)
        a, b, r = DEMO["a"], DEMO["b"], DEMO["r"]
        closed = (a + b + x - 1) / (a - 1) * (1 - u ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1,
                                                                        a + b + x - 1, 1 - u))
    assert not np.isfinite(closed).any()


@pytest.mark.parametrize("params", [{"a": 2.0, "b": 1e14}, {"a": 1e-12, "b": 3.0}])
def test_vanishing_dropout_gives_the_nbd(params):
    x, t_x, T, t = columns()
    r, alpha = 0.8, 6.0
    m = model(r=r, alpha=alpha, **params)
    np.testing.assert_allclose(m.p_alive(x, t_x, T), 1.0, atol=1e-8)
    np.testing.assert_allclose(m.expected_purchases(t, x, t_x, T), nbd(r, alpha, x, T, t),
                               rtol=1e-6)
    np.testing.assert_allclose(m.expected_purchases_new([1.0, 52.0]), [r / alpha, 52 * r / alpha],
                               rtol=1e-6)


def test_vanishing_a_and_b_drop_out_after_the_first_purchase_or_never():
    r, alpha, a, b = 1.5, 10.0, 1e-13, 3e-13
    m = model(r=r, alpha=alpha, a=a, b=b)
    T, t = 20.0, 26.0
    s = t / (alpha + T)
    # A new-ish customer: a/(a+b) = 1/4 drop out after one purchase, 3/4 never do.
    one_then_gone = 1 - (1 + s) ** -r
    expected = 0.25 * one_then_gone + 0.75 * r * s
    assert float(m.expected_purchases(t, 0, 0.0, T)) == pytest.approx(expected, rel=1e-6)
    # Someone who bought again has shown they are of the kind that never drops out.
    assert float(m.p_alive(2, 5.0, T)) == pytest.approx(1.0, abs=1e-8)
    assert float(m.expected_purchases(t, 2, 5.0, T)) == pytest.approx(nbd(r, alpha, 2, T, t),
                                                                      rel=1e-6)
    # After one repeat purchase the odds of being gone are those of the quarter who leave.
    odds = (a / b) * ((alpha + T) / (alpha + 5.0)) ** (r + 1)
    assert float(m.p_alive(1, 5.0, T)) == pytest.approx(1 / (1 + odds), rel=1e-6)


@pytest.mark.parametrize(("a", "b"), [(0.8, 2.4), (1.0, 3.0), (4.0, 9.0), (1e9, 3e9)])
def test_equal_rates_give_the_poisson_model(a, b):
    rate = 0.3  # purchases per week, the same for everyone
    m = model(r=1e9 * rate, alpha=1e9, a=a, b=b)
    x, t_x, T, t = 4, 12.0, 20.0, 26.0
    if a + b > 1e6:  # and one drop-out probability for everyone as well
        mu = a / (a + b)
        alive = -np.expm1(-rate * mu * t) / mu
    else:
        alive = integrate.quad(lambda p: -np.expm1(-rate * p * t) / p
                               * stats.beta.pdf(p, a, b + x), 0, 1, epsabs=0, epsrel=1e-10)[0]
    # Given equal rates, P(alive) only weighs the time since the last purchase.
    odds = a / (b + x - 1) * np.exp(rate * (T - t_x))
    expected = alive / (1 + odds)
    assert float(m.expected_purchases(t, x, t_x, T)) == pytest.approx(expected, rel=1e-6)


def test_a_equal_to_one_is_no_special_case():
    # The closed form's (a+b+x-1)/(a-1) is 0/0 at a = 1; the value is finite and continuous.
    x, t_x, T, t = columns()
    values = [model(r=0.5, alpha=4.0, a=a, b=2.0).expected_purchases(t, x, t_x, T)
              for a in (1 - 1e-7, 1.0, 1 + 1e-7)]
    assert np.isfinite(values).all()
    np.testing.assert_allclose(values[1], values[0], rtol=1e-6)
    np.testing.assert_allclose(values[1], values[2], rtol=1e-6)
    B = 2.0 + x
    s = t / (4.0 + T)
    direct = [integrate.quad(lambda p, k=k, s=s, B=B: (1 - (1 + p * s) ** -k) / p
                             * stats.beta.pdf(p, 1.0, B), 0, 1, epsrel=1e-11)[0]
              for k, s, B in zip(0.5 + x, s, B, strict=True)]
    alive = model(r=0.5, alpha=4.0, a=1.0, b=2.0).p_alive(x, t_x, T)
    np.testing.assert_allclose(values[1], alive * np.array(direct), rtol=1e-8)


def test_a_horizon_far_beyond_the_rates_time_scale_is_refused_not_truncated():
    m = model(r=1e-4, alpha=1e-8, a=0.8, b=2.4)
    with pytest.raises(ValueError, match="far beyond the time scale"):
        m.expected_purchases(52.0, 0, 0.0, 0.0)


# --------------------------------------------------------------------------- properties

positive = st.floats(1e-6, 1e9).map(float)
histories = st.tuples(
    st.integers(0, 400), st.floats(0, 1), st.floats(0, 300), st.floats(0.1, 260),
).map(lambda h: (float(h[0]), 0.0 if h[0] == 0 else h[1] * h[2], h[2], h[3]))


def bounded(m: BGNBDFit, x: float, T: float, t: float) -> bool:
    """Within a store's range, where the series is quick: a horizon under 2,000 times the
    rates' time scale, and under 20,000 purchases expected without drop-out (a store's
    heaviest buyer makes one a day, a few thousand in ten years)."""
    s = t / (m.alpha + T)
    return s < 2e3 and (m.r + x) * s < 2e4


@settings(max_examples=150, deadline=None)
@given(positive, positive, positive, positive, histories)
def test_predictions_are_finite_and_bounded_by_the_nbd(r, alpha, a, b, history):
    x, t_x, T, t = history
    m = model(r=r, alpha=alpha, a=a, b=b)
    assume(bounded(m, x, T, t))
    value = float(m.expected_purchases(t, x, t_x, T))
    p = float(m.p_alive(x, t_x, T))
    assert np.isfinite(value) and value >= 0
    assert 0 <= p <= 1 and p + float(m.churn_risk(x, t_x, T)) == pytest.approx(1.0)
    # Dropping out can only take purchases away from the no-dropout (NBD) expectation.
    assert value <= nbd(r, alpha, x, T, t) * (1 + 1e-9)


@settings(max_examples=100, deadline=None)
@given(positive, positive, positive, positive, histories, st.floats(1.01, 4))
def test_predictions_move_the_expected_ways(r, alpha, a, b, history, factor):
    x, t_x, T, t = history
    m = model(r=r, alpha=alpha, a=a, b=b)
    assume(bounded(m, x, T, t * factor))
    tol = 1e-9
    # More time ahead: more purchases.
    assert m.expected_purchases(t * factor, x, t_x, T) >= m.expected_purchases(t, x, t_x, T) * (
        1 - tol)
    # Seen for longer without a purchase since t_x: less likely alive, fewer purchases.
    later = T * factor + 1
    assert m.p_alive(x, t_x, later) <= m.p_alive(x, t_x, T) + tol
    assert m.expected_purchases(t, x, t_x, later) <= m.expected_purchases(t, x, t_x, T) * (
        1 + tol)
    # A more recent last purchase (same count, same age): more likely alive.
    if x > 0 and t_x < T:
        recent = t_x + (T - t_x) / factor
        assert m.p_alive(x, recent, T) >= m.p_alive(x, t_x, T) - tol


@settings(max_examples=60, deadline=None)
@given(st.floats(0.05, 5), st.floats(0.5, 50), st.floats(1e-3, 0.999), histories)
@example(1.0, 1.0, 0.001, (110, 281, 281, 0.125))  # found by a run: the floor of arithmetic
def test_predictions_approach_the_limit_continuously_as_a_and_b_grow(r, alpha, mu, history):
    x, t_x, T, t = history
    assume(t / (alpha + T) < 100)
    _, limit = fixed_dropout(r, alpha, mu, x, t_x, T, t)
    limit = float(limit)
    assume(limit > 1e-12)
    errors = [abs(float(model(r=r, alpha=alpha, a=n * mu, b=n * (1 - mu)).expected_purchases(
        t, x, t_x, T)) - limit) / limit for n in 10.0 ** np.arange(4, 13)]
    # The gap to the limit shrinks with every tenfold a + b (no jump where a formula would
    # switch) and is within 1e-6 by a + b = 1e12. Past a + b = 1e10 it reaches the floor of
    # the arithmetic, where it wanders by a few 1e-10 (r = alpha = 1, mu = 0.001, history
    # (110, 281, 281, 0.125): 1.0e-10 at 1e10, then 2.0e-10): a jump is orders larger.
    for bigger, smaller in zip(errors[1:], errors[:-1], strict=True):
        assert bigger <= smaller + 1e-9
    assert errors[-1] <= 1e-6


@settings(max_examples=60, deadline=None)
@given(positive, st.floats(0.1, 1e9), positive, positive, histories, st.integers(1, 36),
       st.floats(0, 0.05))
def test_discounted_purchases_are_finite_and_below_the_undiscounted(r, alpha, a, b, history,
                                                                    months, rate):
    x, t_x, T, _ = history
    m = model(r=r, alpha=alpha, a=a, b=b)
    assume(bounded(m, x, T, months * 30 / 7))
    discounted = float(discounted_purchases(m, x, t_x, T, months=months, discount_rate=rate))
    undiscounted = float(m.expected_purchases(months * 30 / 7, x, t_x, T))
    assert np.isfinite(discounted) and 0 <= discounted <= undiscounted * (1 + 1e-9)


# --------------------------------------------------------------------------- fits


def small_shop(n: int, dropout: float, seed: int):
    """(x, t_x, T) of ``n`` buyers with purchase rates Gamma(2, 20) per week and one drop-out
    probability for all, first purchases spread over 300 days, at day resolution."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 1 / 20.0, n)
    T_days = 300 - rng.integers(0, 300, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        week = 0.0
        while True:
            week += rng.exponential(1 / rates[i])
            if week * 7 > T_days[i]:
                break
            x[i] += 1
            t_x[i] = np.floor(week * 7) / 7
            if rng.random() < dropout:
                break
    return x, t_x, T_days / 7.0


@pytest.mark.parametrize(("dropout", "seed"), [(0.08, 1), (0.08, 5), (0.0, 1), (0.0, 13)])
def test_a_small_shop_fit_running_to_a_limit_converges_there(dropout, seed):
    x, t_x, T = small_shop(60, dropout, seed)
    fit = fit_bgnbd(x, t_x, T)
    # Each of these runs towards a limit (a, b -> infinity; a -> 0; a, b -> 0) along which the
    # likelihood is flat, and was reported as "did not converge" before (no predictions).
    assert fit.a + fit.b > 1e3 or fit.a < 1e-3
    assert fit.converged
    expected = fit.expected_purchases(np.array([13.0, 52.0]), x[:, None], t_x[:, None],
                                      T[:, None])
    assert np.isfinite(expected).all()
    assert fit.a / (fit.a + fit.b) < 0.5


def orders_for(x, t_x, T, as_of: dt.date) -> list[dict]:
    """``orders`` rows reproducing the (x, t_x, T) histories at day resolution, as_of ``as_of``."""
    rows = []
    for pid, (xi, txi, Ti) in enumerate(zip(x, t_x, T, strict=True), start=1):
        first = as_of - dt.timedelta(days=round(Ti * 7))
        days = sorted({0, round(txi * 7)} | {round(txi * 7 * (j + 1) / (xi + 1))
                                            for j in range(int(xi) - 1)})
        days = days[: int(xi) + 1] if len(days) >= xi + 1 else days
        for j, d in enumerate(days):
            day = (first + dt.timedelta(days=d)).isoformat()
            rows.append({"source": "t", "key": f"{pid}-{j}", "customer_key": f"c{pid}",
                         "person_id": pid, "ordered_at": f"{day}T10:00:00", "order_date": day,
                         "total": 20.0 + (pid * 7 + j * 3) % 30, "refunded": 0.0,
                         "cancelled_at": None, "test": 0, "record_hash": f"{pid}-{j}"})
    return rows


def test_write_predictions_for_a_small_shop_whose_fit_runs_to_a_limit():
    as_of = dt.date(2026, 11, 1)
    x, t_x, T = small_shop(60, 0.08, 5)
    db = open_store(":memory:")
    db["orders"].insert_all(orders_for(x, t_x, T, as_of))
    summary = summary_from_store(db, as_of)
    assert int((summary.x > 0).sum()) >= MIN_REPEAT_BUYERS
    report = write_predictions(db, as_of)
    assert report["problems"] == {}, report["problems"]
    assert report["coverage"]["with_spend_predictions"] == len(summary)
    assert db["person_predictions"].count == len(summary)
    (nulls,) = db.execute("SELECT count(*) FROM person_predictions WHERE clv IS NULL").fetchone()
    assert nulls == 0
    assert fit_from_store(db, as_of)["bgnbd"]["converged"]
