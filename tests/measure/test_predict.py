"""BG/NBD, Gamma-Gamma and CLV (segsync.core.measure.btyd) and their store integration (.predict).

The acceptance numbers are the published CDNOW results (reference/segmentation.md §4.2):
Fader, Hardie & Lee (2005) for BG/NBD and Fader & Hardie's note 025 for Gamma-Gamma, on the
2,357-customer sample in ../shared/data/cdnow. Tests needing that data skip when it is absent.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import sqlite3
import warnings

import numpy as np
import pytest
from conftest import needs_shared_data
from scipy.optimize import approx_fprime
from scipy.special import hyp2f1

from segsync.core.errors import ConfigError
from segsync.core.measure import btyd
from segsync.core.measure.btyd import (
    BGNBDFit,
    discounted_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    group_histories,
)
from segsync.core.measure.predict import (
    MIN_REPEAT_BUYERS,
    coverage_lines,
    describe_gap,
    fit_from_store,
    spend_tiers,
    summary_from_store,
    write_predictions,
)
from segsync.core.store import open_store

CDNOW_AS_OF = dt.date(1997, 9, 30)
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}
#: E[M | x, zbar] of CDNOW IDs 1-10 from Hardie's spreadsheet (as quoted by lifetimes' tests).
PUBLISHED_SPEND_FIRST_10 = [24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17]


def sig3(value: float) -> float:
    return float(f"{value:.3g}")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cdnow() -> dict[str, np.ndarray]:
    """The published CDNOW calibration summary: ID, x, t_x, T (weeks), zbar."""
    path = needs_shared_data("cdnow", "cdnow_customers_summary_with_transactions.csv")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in ("ID", "x", "t_x", "T", "zbar")}


@pytest.fixture(scope="module")
def bg(cdnow) -> BGNBDFit:
    return fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"])


@pytest.fixture(scope="module")
def gg(cdnow) -> btyd.GammaGammaFit:
    rep = cdnow["x"] > 0
    return fit_gamma_gamma(cdnow["x"][rep], cdnow["zbar"][rep])


def order(person_id: int | None, day: str, total: float, key: str, **extra) -> dict:
    """An ``orders`` row with only the columns the models read, plus the required ones."""
    return {
        "source": "test", "key": key, "customer_key": f"c{person_id}", "person_id": person_id,
        "ordered_at": f"{day}T12:00:00", "order_date": day, "total": total,
        "refunded": 0.0, "cancelled_at": None, "test": 0, "record_hash": key, **extra,
    }


@pytest.fixture(scope="module")
def cdnow_store():
    """CDNOW_sample.txt rows as orders: person_id = the sample ID of the summary file."""
    path = needs_shared_data("cdnow", "CDNOW_sample.txt")
    db = open_store(":memory:")
    rows = []
    for i, line in enumerate(path.read_text().splitlines()):
        master_id, sample_id, day, _cds, value = line.split()
        iso = f"{day[:4]}-{day[4:6]}-{day[6:]}"
        rows.append(order(int(sample_id), iso, float(value), str(i), customer_key=master_id))
    db["orders"].insert_all(rows)
    return db


def simulated_store(n: int = 600, seed: int = 11):
    """A store whose orders follow BG/NBD and Gamma-Gamma, for tests that need no shared data.

    Rates per week ~ Gamma(0.5, 4), drop-out ~ Beta(1, 3) after each repeat purchase, spend
    Gamma(6, nu) with nu ~ Gamma(4, 15); first purchases over 60 days, observed to day 300.
    """
    rng = np.random.default_rng(seed)
    start = dt.date(2023, 1, 1)
    rows = []
    for pid in range(1, n + 1):
        rate, dropout = rng.gamma(0.5, 1 / 4), rng.beta(1, 3)
        nu = rng.gamma(4, 1 / 15)
        first = int(rng.integers(0, 60))
        days = [first]
        week = first / 7
        while True:
            week += rng.exponential(1 / rate)
            if week * 7 > 300:
                break
            days.append(int(week * 7))
            if rng.random() < dropout:
                break
        for j, d in enumerate(days):
            day = (start + dt.timedelta(days=d)).isoformat()
            rows.append(order(pid, day, round(float(rng.gamma(6, 1 / nu)), 2), f"{pid}-{j}"))
    db = open_store(":memory:")
    db["orders"].insert_all(rows)
    return db, start + dt.timedelta(days=300)


# --------------------------------------------------------------------------- BG/NBD


@pytest.mark.shared_data
def test_bgnbd_reproduces_published_cdnow_fit(bg):
    assert {k: sig3(getattr(bg, k)) for k in PUBLISHED_BGNBD} == {
        k: sig3(v) for k, v in PUBLISHED_BGNBD.items()
    }
    assert round(bg.log_likelihood, 1) == -9582.4
    assert bg.converged
    assert bg.n_people == 2357
    assert bg.n_histories < bg.n_people
    # The standard errors lifetimes' BetaGeoFitter.summary prints for this fit.
    np.testing.assert_allclose(bg.std_errors, [0.012557, 0.378221, 0.185719, 0.705345],
                               rtol=1e-4)


@pytest.mark.shared_data
def test_bgnbd_conditional_expectation_matches_published(bg):
    assert round(float(bg.expected_purchases(39, 2, 30.43, 38.86)), 3) == 1.226
    published = BGNBDFit(**PUBLISHED_BGNBD, log_likelihood=0, n_people=0, n_histories=0,
                         iterations=0, converged=True)
    assert round(float(published.expected_purchases(39, 2, 30.43, 38.86)), 3) == 1.226


@pytest.mark.shared_data
def test_bgnbd_unconditional_expectation_matches_published(bg):
    t = [0.1429, 1, 3, 31.8571, 32, 78]
    expected = [0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576]
    np.testing.assert_allclose(bg.expected_purchases_new(t), expected, atol=1e-3)


@pytest.mark.shared_data
def test_grouping_gives_the_per_person_fit(cdnow, bg):
    per_person = fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"], group=False)
    assert per_person.n_histories == 2357
    for k in ("r", "alpha", "a", "b", "log_likelihood"):
        assert getattr(per_person, k) == pytest.approx(getattr(bg, k), rel=1e-9)


@pytest.mark.shared_data
def test_fit_is_scale_equivariant(cdnow, bg):
    # Fitting in days instead of weeks rescales alpha only: the time unit is the caller's.
    days = fit_bgnbd(cdnow["x"], cdnow["t_x"] * 7, cdnow["T"] * 7)
    assert days.alpha == pytest.approx(bg.alpha * 7, rel=1e-6)
    for k in ("r", "a", "b"):
        assert getattr(days, k) == pytest.approx(getattr(bg, k), rel=1e-6)


@pytest.mark.shared_data
def test_penalizer_shrinks_parameters(cdnow, bg):
    penalised = fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"], penalizer=0.01)
    size = lambda f: f.r**2 + f.alpha**2 + f.a**2 + f.b**2  # noqa: E731
    assert size(penalised) < size(bg)
    assert penalised.log_likelihood < bg.log_likelihood


def test_group_histories_round_trips():
    x = np.array([0, 2, 2, 0, 1, 2])
    t_x = np.array([0, 5, 5, 0, 3, 5.5])
    T = np.array([10, 10, 10, 10, 8, 10])
    h = group_histories(x, t_x, T)
    assert h.n_histories == 4
    assert h.weights.sum() == 6
    np.testing.assert_array_equal(h.x[h.inverse], x)
    np.testing.assert_array_equal(h.t_x[h.inverse], t_x)
    np.testing.assert_array_equal(h.T[h.inverse], T)


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        ([1], [5], [4], "t_x"),
        ([0], [1], [4], "t_x must be 0"),
        ([1.5], [1], [4], "whole number"),
        ([1], [np.nan], [4], "finite"),
        ([], [], [], "no customers"),
    ],
)
def test_fit_rejects_impossible_histories(x, t_x, T, message):
    with pytest.raises(ValueError, match=message):
        fit_bgnbd(x, t_x, T)


def test_bgnbd_gradient_is_exact():
    h = group_histories([0, 0, 1, 3, 7, 2, 0], [0, 0, 2.1, 9, 30, 4, 0], [5, 40, 10, 30, 38, 4, 1])
    objective = btyd._BGNBDObjective(h, penalizer=0.05)
    theta = np.log([0.4, 3.0, 0.7, 2.2])
    numeric = approx_fprime(theta, lambda t: objective(t)[0], 1e-7)
    np.testing.assert_allclose(objective(theta)[1], numeric, rtol=1e-5, atol=1e-8)


def test_p_alive_is_one_without_repeat_purchases():
    model = BGNBDFit(**PUBLISHED_BGNBD, log_likelihood=0, n_people=0, n_histories=0,
                     iterations=0, converged=True)
    assert model.p_alive(0, 0, 38.86) == 1.0
    assert model.churn_risk(0, 0, 100.0) == 0.0
    p = model.p_alive([1, 2, 5], [1, 30.43, 10], [38.86, 38.86, 38.86])
    assert ((p > 0) & (p < 1)).all()
    np.testing.assert_allclose(p + model.churn_risk([1, 2, 5], [1, 30.43, 10], [38.86] * 3), 1)
    # §4.2: P(alive | 2, 30.43, 38.86) = 0.7266 at the published parameters.
    assert round(float(model.p_alive(2, 30.43, 38.86)), 4) == 0.7266


def test_expected_purchases_stable_for_heavy_buyers():
    model = BGNBDFit(**PUBLISHED_BGNBD, log_likelihood=0, n_people=0, n_histories=0,
                     iterations=0, converged=True)
    r, alpha, a, b = PUBLISHED_BGNBD.values()
    # The Euler-transformed 2F1 agrees with FHL's eq. 10 as printed where the latter is finite.
    for x, t_x, T, t in [(1, 3.0, 20.0, 10.0), (2, 30.43, 38.86, 39.0), (15, 36.0, 38.0, 52.0)]:
        z = t / (alpha + T + t)
        printed = ((a + b + x - 1) / (a - 1)
                   * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x)
                      * hyp2f1(r + x, b + x, a + b + x - 1, z))
                   * model.p_alive(x, t_x, T))
        assert float(model.expected_purchases(t, x, t_x, T)) == pytest.approx(printed, rel=1e-9)
    # Where the printed form overflows, the transformed one stays finite and sensible.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        heavy = model.expected_purchases([52.0, 520.0], 2000, 38.0, 38.86)
        gone = model.expected_purchases(52.0, 2000, 1.0, 100.0)
    assert np.isfinite(heavy).all() and 0 < heavy[0] < heavy[1]
    assert 0 <= gone < 1e-12


def test_discounted_purchases_sums_monthly_expectations():
    model = BGNBDFit(**PUBLISHED_BGNBD, log_likelihood=0, n_people=0, n_histories=0,
                     iterations=0, converged=True)
    hist = (np.array([0, 2, 6]), np.array([0, 30.43, 29.43]), np.array([38.86] * 3))
    undiscounted = discounted_purchases(model, *hist, months=12, discount_rate=0.0)
    np.testing.assert_allclose(undiscounted, model.expected_purchases(360 / 7, *hist))
    discounted = discounted_purchases(model, *hist, months=12, discount_rate=0.01)
    assert (discounted < undiscounted).all()
    assert (discounted_purchases(model, *hist, months=24) > discounted).all()


# --------------------------------------------------------------------------- Gamma-Gamma


@pytest.mark.shared_data
def test_gamma_gamma_reproduces_published_cdnow_fit(gg, cdnow):
    assert {k: sig3(getattr(gg, k)) for k in PUBLISHED_GG} == {
        k: sig3(v) for k, v in PUBLISHED_GG.items()
    }
    assert gg.converged and gg.n_customers == 946
    np.testing.assert_allclose(gg.std_errors, [1.189687, 0.290166, 4.159994], rtol=1e-4)
    # Conditioning as in note 025: x repeat transactions and zbar, their mean (trial excluded).
    spend = gg.expected_spend(cdnow["x"][:10], cdnow["zbar"][:10])
    np.testing.assert_allclose(spend, PUBLISHED_SPEND_FIRST_10, atol=0.01)
    ids = {1: 24.65, 2: 18.91, 6: 71.46}
    for i, value in ids.items():
        row = int(np.flatnonzero(cdnow["ID"] == i)[0])
        assert float(gg.expected_spend(cdnow["x"][row], cdnow["zbar"][row])) == pytest.approx(
            value, abs=0.01)


def test_gamma_gamma_gradient_is_exact():
    x = np.array([1.0, 2, 2, 5, 9])
    m = np.array([10.0, 25, 7.5, 40, 18])
    objective = btyd._GammaGammaObjective(x, m, penalizer=0.0)
    theta = np.log([4.0, 3.0, 12.0])
    numeric = approx_fprime(theta, lambda t: objective(t)[0], 1e-7)
    np.testing.assert_allclose(objective(theta)[1], numeric, rtol=1e-5, atol=1e-8)


def test_gamma_gamma_rejects_zero_spend_and_one_time_buyers():
    with pytest.raises(ValueError, match="x > 0"):
        fit_gamma_gamma([1, 2], [10.0, 0.0])
    with pytest.raises(ValueError, match="x > 0"):
        fit_gamma_gamma([0, 2], [10.0, 5.0])


# --------------------------------------------------------------------------- tiers


def test_spend_tiers_top_30_bottom_10():
    tiers = spend_tiers(np.arange(1.0, 21.0))
    assert list(tiers[:2]) == ["LOW", "LOW"]
    assert set(tiers[2:14]) == {"MEDIUM"}
    assert list(tiers[14:]) == ["HIGH"] * 6


def test_spend_tiers_keep_ties_together():
    # A tie straddling a cut-off goes to MEDIUM rather than swelling HIGH or LOW.
    tiers = spend_tiers(np.array([1.0, 2, 2, 2, 3, 3, 3, 3, 9, 9]))
    assert list(tiers) == ["LOW", *["MEDIUM"] * 7, "HIGH", "HIGH"]
    assert set(spend_tiers(np.full(5, 7.0))) == {"MEDIUM"}


# --------------------------------------------------------------------------- store


def test_summary_from_store_hand_checked():
    db = open_store(":memory:")
    db["orders"].insert_all([
        # Person 1: three purchase days up to as-of.
        order(1, "2024-01-01", 10.0, "a"),
        order(1, "2024-01-01", 5.0, "b"),            # same day: one transaction worth 15
        order(1, "2024-01-15", 20.0, "c", refunded=5.0),  # net 15
        order(1, "2024-01-15", 100.0, "d", cancelled_at="2024-01-16T00:00:00"),
        order(1, "2024-02-01", 50.0, "e", test=1),
        order(1, "2024-02-10", -20.0, "f"),          # refund row: not a transaction
        order(1, "2024-03-01", 30.0, "g"),
        order(1, "2024-03-01", 0.0, "h"),            # free order, same day: still one day
        order(1, "2024-04-05", 99.0, "i"),           # after as-of
        # Person 2: one order on the as-of day itself.
        order(2, "2024-03-31", 40.0, "j"),
        # Person 3: only a cancelled order; person 4: only test and refund rows.
        order(3, "2024-02-01", 10.0, "k", cancelled_at="2024-02-01T13:00:00"),
        order(4, "2024-02-01", 10.0, "l", test=1),
        order(4, "2024-02-02", -10.0, "m"),
        # Person 5: two orders on one day, nothing else.
        order(5, "2024-02-01", 12.0, "n"),
        order(5, "2024-02-01", 8.0, "o"),
        # Person 6: bought before 2024 and again after.
        order(6, "2023-12-01", 10.0, "p"),
        order(6, "2024-02-01", 30.0, "q"),
        # Not yet resolved to a person.
        order(None, "2024-02-01", 10.0, "r"),
    ])
    s = summary_from_store(db, dt.date(2024, 3, 31))
    assert s.person_id.tolist() == [1, 2, 5, 6]
    assert s.x.tolist() == [2, 0, 0, 1]
    # 2024 is a leap year: Jan 1 -> Mar 1 is 60 days, -> Mar 31 is 90.
    np.testing.assert_allclose(s.t_x, [60 / 7, 0, 0, 62 / 7])
    np.testing.assert_allclose(s.T, [90 / 7, 0, 59 / 7, 121 / 7])
    np.testing.assert_allclose(s.mbar, [(15 + 30) / 2, 0, 0, 30])

    cohort = summary_from_store(db, dt.date(2024, 3, 31), calibration_start=dt.date(2024, 1, 1))
    assert cohort.person_id.tolist() == [1, 2, 5]
    assert len(summary_from_store(db, dt.date(2023, 1, 1))) == 0


@pytest.mark.shared_data
def test_summary_from_store_matches_published_cdnow_summary(cdnow_store, cdnow):
    s = summary_from_store(cdnow_store, CDNOW_AS_OF)
    np.testing.assert_array_equal(s.person_id, cdnow["ID"])
    np.testing.assert_array_equal(s.x, cdnow["x"])
    # The published file rounds to 2 decimals (half up, so compare within half a cent).
    np.testing.assert_allclose(s.t_x, cdnow["t_x"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(s.T, cdnow["T"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(s.mbar, cdnow["zbar"], atol=0.005 + 1e-9)
    assert s.T[0] == 272 / 7


@pytest.mark.shared_data
def test_fit_and_predictions_from_cdnow_store(cdnow_store):
    report = fit_from_store(cdnow_store, CDNOW_AS_OF)
    assert report["people"] == 2357 and report["repeat_buyers"] == 946
    assert {k: sig3(report["bgnbd"][k]) for k in PUBLISHED_BGNBD} == {
        k: sig3(v) for k, v in PUBLISHED_BGNBD.items()
    }
    assert {k: sig3(report["gamma_gamma"][k]) for k in PUBLISHED_GG} == {
        k: sig3(v) for k, v in PUBLISHED_GG.items()
    }
    assert report["diagnostics"]["spend_frequency_correlation"] == pytest.approx(0.11, abs=0.01)

    written = write_predictions(cdnow_store, CDNOW_AS_OF)
    assert written["predictions"]["rows"] == 2357
    spend = dict(cdnow_store.execute(
        "SELECT person_id, expected_spend FROM person_predictions WHERE person_id IN (1, 2, 6)"
    ).fetchall())
    assert spend == pytest.approx({1: 24.65, 2: 18.91, 6: 71.46}, abs=0.01)


def test_write_predictions_rows_match_the_models():
    db, as_of = simulated_store()
    report = write_predictions(db, as_of)
    summary = summary_from_store(db, as_of)
    assert report["bgnbd"]["converged"] and report["gamma_gamma"]["converged"]
    columns = [c.name for c in db["person_predictions"].columns]
    assert columns == [
        "person_id", "as_of", "p_alive", "churn_risk", "expected_purchases_90d",
        "expected_spend", "clv", "predicted_12m_spend", "predicted_spend_tier",
    ]
    rows = db.execute("SELECT * FROM person_predictions ORDER BY person_id").fetchall()
    assert [r[0] for r in rows] == summary.person_id.tolist()
    assert {r[1] for r in rows} == {as_of.isoformat()}

    # Every value equals the per-person computation with the fitted parameters.
    bg = BGNBDFit(**{k: report["bgnbd"][k] for k in ("r", "alpha", "a", "b")},
                  log_likelihood=0, n_people=0, n_histories=0, iterations=0, converged=True)
    gg = btyd.GammaGammaFit(**{k: report["gamma_gamma"][k] for k in ("p", "q", "gamma")},
                            log_likelihood=0, n_customers=0, iterations=0, converged=True)
    hist = (summary.x, summary.t_x, summary.T)
    table = np.array([r[2:8] for r in rows], dtype=float)
    spend = gg.expected_spend(summary.x, summary.mbar)
    np.testing.assert_allclose(table[:, 0], bg.p_alive(*hist), rtol=1e-12)
    np.testing.assert_allclose(table[:, 0] + table[:, 1], 1.0, rtol=1e-12)
    np.testing.assert_allclose(table[:, 2], bg.expected_purchases(90 / 7, *hist), rtol=1e-12)
    np.testing.assert_allclose(table[:, 3], spend, rtol=1e-12)
    np.testing.assert_allclose(table[:, 4], discounted_purchases(bg, *hist) * spend, rtol=1e-12)
    np.testing.assert_allclose(table[:, 5], bg.expected_purchases(365 / 7, *hist) * spend,
                               rtol=1e-12)
    tiers = [r[8] for r in rows]
    assert tiers == spend_tiers(table[:, 5]).tolist()
    assert report["predictions"]["tiers"] == {t: tiers.count(t) for t in set(tiers)}
    assert tiers.count("HIGH") <= 0.3 * len(rows) and tiers.count("LOW") <= 0.1 * len(rows)


def test_write_predictions_replaces_the_table_atomically(monkeypatch):
    db, as_of = simulated_store(n=300, seed=3)
    write_predictions(db, as_of, horizon_days=30)
    assert "expected_purchases_30d" in db["person_predictions"].columns_dict
    before = db.execute("SELECT * FROM person_predictions ORDER BY person_id").fetchall()

    # A failure while filling the new table (here a tier the CHECK rejects) leaves the old one.
    monkeypatch.setattr(
        "segsync.core.measure.predict.spend_tiers", lambda v: np.full(v.size, "BOGUS", dtype=object)
    )
    with pytest.raises(sqlite3.IntegrityError):
        write_predictions(db, as_of, horizon_days=90)
    assert db.execute("SELECT * FROM person_predictions ORDER BY person_id").fetchall() == before
    monkeypatch.undo()

    write_predictions(db, as_of)
    cols = db["person_predictions"].columns_dict
    assert "expected_purchases_90d" in cols and "expected_purchases_30d" not in cols


def predictions(db) -> list[tuple]:
    return db.execute("SELECT * FROM person_predictions ORDER BY person_id").fetchall()


def test_too_little_history_says_who_lacks_predictions_and_why():
    db = open_store(":memory:")
    db["people"].insert_all([{"id": i} for i in range(1, 16)])
    # 12 buyers, 3 of whom bought again; people 13-15 have no order at all.
    rows = [order(p, "2023-05-01", 10.0, f"{p}a") for p in range(1, 13)]
    rows += [order(p, "2023-08-01", 12.0, f"{p}b") for p in (1, 2, 3)]
    db["orders"].insert_all(rows)
    as_of = dt.date(2024, 1, 1)

    report = write_predictions(db, as_of)
    assert predictions(db) == []  # no stale rows, no rows of a model that is not there
    coverage = report["coverage"]
    assert (coverage["people"], coverage["buyers"], coverage["with_purchase_predictions"]) == (
        15, 12, 0)
    prospects, buyers = coverage["missing"]
    assert (prospects["people"], prospects["model"]) == (3, None)
    assert prospects["reason"] == "no valid order up to 2024-01-01"
    assert (buyers["people"], buyers["model"]) == (12, "purchase")
    assert buyers["reason"] == (
        "too little history: 3 of 12 buyers bought again up to 2024-01-01; the purchase model "
        f"needs at least {MIN_REPEAT_BUYERS} repeat buyers")
    assert coverage_lines(coverage) == [
        "predictions for 0 of 15 people",
        "3 have none: no valid order up to 2024-01-01",
        f"12 have none: {buyers['reason']}",
    ]
    fitted = fit_from_store(db, as_of)
    assert fitted["bgnbd"] is None and fitted["gamma_gamma"] is None
    assert fitted["problems"]["purchase"] == buyers["reason"]

    empty = open_store(":memory:")
    assert fit_from_store(empty, as_of)["problems"] == {
        "purchase": "no valid order up to 2024-01-01"}


def test_a_fit_that_did_not_converge_leaves_everyone_without_and_says_so(monkeypatch):
    db, as_of = simulated_store(n=300, seed=5)
    write_predictions(db, as_of)
    assert len(predictions(db)) == 300

    def unconverged(*args, **kwargs):
        return dataclasses.replace(fit_bgnbd(*args, **kwargs), converged=False)

    monkeypatch.setattr("segsync.core.measure.predict.fit_bgnbd", unconverged)
    # model fit still reports the fit; the run's predictions of the same day are replaced by
    # none, rather than left standing as if today's.
    assert fit_from_store(db, as_of)["bgnbd"]["converged"] is False
    report = write_predictions(db, as_of)
    assert predictions(db) == []
    (gap,) = report["coverage"]["missing"]
    assert gap["people"] == 300 and gap["model"] == "purchase"
    assert "did not converge" in gap["reason"]


def test_without_a_usable_spend_model_only_the_spend_columns_are_null():
    db, as_of = simulated_store(n=300, seed=5)
    # Every repeat purchase day becomes free, except those of five people: too few paid
    # repeat buyers for the spend model, while purchase counts are untouched.
    db.execute("""
        UPDATE orders SET total = 0
        WHERE person_id > 5 AND order_date > (SELECT min(o.order_date) FROM orders AS o
                                              WHERE o.person_id = orders.person_id)""")
    report = write_predictions(db, as_of)
    summary = summary_from_store(db, as_of)
    assert report["problems"]["spend"].startswith("too little history: ")
    assert "purchase" not in report["problems"]
    rows = predictions(db)
    assert len(rows) == 300
    assert all(r[2] is not None and r[5:] == (None, None, None, None) for r in rows)
    assert report["predictions"]["tiers"] == {}
    (gap,) = report["coverage"]["missing"]
    assert (gap["people"], gap["model"]) == (len(summary), "spend")
    assert gap["columns"] == ["expected_spend", "clv", "predicted_12m_spend",
                              "predicted_spend_tier"]
    assert describe_gap(gap).startswith(
        "300 have no expected_spend, clv, predicted_12m_spend, predicted_spend_tier: too little")
    assert report["coverage"]["with_purchase_predictions"] == 300
    assert report["coverage"]["with_spend_predictions"] == 0


def test_predictions_the_series_cannot_reach_are_a_reason_not_a_crash(monkeypatch):
    db, as_of = simulated_store(n=300, seed=5)
    # Purchase rates on a time scale of seconds: someone whose first purchase is today would
    # need a series of billions of terms for the next 90 days.
    db["orders"].insert(order(999, as_of.isoformat(), 10.0, "today"))

    def minute_scale(*args, **kwargs):
        return dataclasses.replace(fit_bgnbd(*args, **kwargs), r=1e-4, alpha=1e-8)

    monkeypatch.setattr("segsync.core.measure.predict.fit_bgnbd", minute_scale)
    report = write_predictions(db, as_of)
    assert predictions(db) == []
    assert "cannot be computed" in report["problems"]["purchase"]
    assert report["diagnostics"]["expected_repeat_purchases"] is None
    assert report["coverage"]["missing"][-1]["model"] == "purchase"


@pytest.mark.parametrize(
    "options",
    [{"horizon_days": 0}, {"horizon_days": 7.5}, {"clv_months": 0}, {"discount_rate": -0.1},
     {"penalizer": float("nan")}],
)
def test_write_predictions_rejects_bad_options(options):
    db, as_of = simulated_store(n=50, seed=1)
    with pytest.raises(ConfigError):
        write_predictions(db, as_of, **options)


def test_incremental_inputs_recompute_only_the_changed_people_and_match_a_full_build():
    db, as_of = simulated_store(n=300, seed=7)
    write_predictions(db, as_of)
    inputs = "SELECT * FROM prediction_inputs ORDER BY person_id"
    assert len(db.execute(inputs).fetchall()) == 300
    later = as_of + dt.timedelta(days=3)
    # Person 5 orders twice in the gap (one purchase day worth 30) and person 6's orders go;
    # person 7's new order is one the changed people do not name.
    db["orders"].insert_all([order(5, later.isoformat(), 10.0, "n1"),
                             order(5, later.isoformat(), 20.0, "n2"),
                             order(7, later.isoformat(), 50.0, "n3")])
    db.execute("DELETE FROM orders WHERE person_id = 6")
    db.execute("CREATE TEMP TABLE touched (person_id INTEGER PRIMARY KEY)")
    db.execute("INSERT INTO temp.touched VALUES (5), (6)")
    unnamed = db.execute("SELECT * FROM prediction_inputs WHERE person_id = 7").fetchone()

    incremental = write_predictions(db, later, changed="temp.touched", since=as_of)
    assert db.execute("SELECT * FROM prediction_inputs WHERE person_id = 7").fetchone() == unnamed
    assert db.execute("SELECT 1 FROM prediction_inputs WHERE person_id = 6").fetchone() is None
    rows, table = predictions(db), db.execute(inputs).fetchall()

    # Without the unnamed order, a full build gives the same rows to the last bit.
    db.execute("DELETE FROM orders WHERE key = 'n3'")
    full = write_predictions(db, later)
    assert (predictions(db), db.execute(inputs).fetchall()) == (rows, table)
    assert incremental["bgnbd"] == full["bgnbd"]


def test_inputs_kept_for_another_as_of_are_rebuilt_in_full():
    db, as_of = simulated_store(n=300, seed=7)
    write_predictions(db, as_of)
    before = db.execute("SELECT * FROM prediction_inputs WHERE person_id = 7").fetchone()
    db["orders"].insert(order(7, as_of.isoformat(), 50.0, "n3"))
    db.execute("CREATE TEMP TABLE touched (person_id INTEGER PRIMARY KEY)")
    # The rows were brought up to as_of, not to the day before: who changed since is not
    # known, so every row is recomputed, person 7's with the new order.
    write_predictions(db, as_of, changed="temp.touched", since=as_of - dt.timedelta(days=1))
    assert db.execute("SELECT * FROM prediction_inputs WHERE person_id = 7").fetchone() != before
    rows = db.execute("SELECT * FROM prediction_inputs ORDER BY person_id").fetchall()
    write_predictions(db, as_of)
    assert db.execute("SELECT * FROM prediction_inputs ORDER BY person_id").fetchall() == rows
