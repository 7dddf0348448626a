"""Buy-till-you-die models: BG/NBD for purchase counts, Gamma-Gamma for spend, and CLV.

Pure numpy/scipy maths, with no knowledge of the store (that is :mod:`.predict`).

Notation, per customer: ``x`` = number of repeat transactions, ``t_x`` = time of the last
transaction and ``T`` = time from the first transaction to the end of observation, both measured
from the first transaction; ``mbar`` = mean value of the ``x`` repeat transactions. Time is in
whatever unit the caller uses (segsync uses weeks); ``alpha`` scales with it, the other
parameters do not.

Sources:

* [FHL05] Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to
  the Pareto/NBD model", Marketing Science 24(2): the BG/NBD likelihood (eq. 6), P(alive)
  (eq. 13 of the technical appendix), E[X(t)] (eq. 9) and E[Y(t) | x, t_x, T] (eq. 10).
* [FH027] Fader & Hardie, note 027, "Overcoming the BG/NBD model's #NUM! error problem": the
  likelihood evaluated as a sum of logs with the x > 0 term combined by log-sum-exp.
* [FH025] Fader & Hardie, note 025, "The Gamma-Gamma model of monetary value": the spend
  likelihood and E[M | x, mbar].

Fits are maximum likelihood over log-parameters with analytic gradients. They run on *grouped*
sufficient statistics: people with the same (x, t_x, T) share one likelihood term weighted by
their count, so the cost follows the number of distinct histories rather than people, and the
terms that depend on x alone are summed once per distinct x.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

FloatArray = NDArray[np.float64]

#: Bounds on every parameter during a fit. Far outside any plausible value (alpha in weeks is
#: typically 1-100), they only stop a degenerate data set from driving a parameter to 0 or
#: infinity and overflowing; a fit that ends on one is reported as not converged.
_PARAM_MIN, _PARAM_MAX = 1e-8, 1e8
_LOG_BOUNDS = (float(np.log(_PARAM_MIN)), float(np.log(_PARAM_MAX)))

#: Stopping rules for L-BFGS-B on the mean log-likelihood per person: tight, because the
#: surface is flat along BG/NBD's a-b ridge and each iteration is cheap on grouped data. At most
#: ``_NEWTON_STEPS`` Newton steps then polish the optimum (see :func:`_fit_log_params`).
_OPTIONS = {"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10}
_NEWTON_STEPS = 4
#: Largest gradient component (mean log-likelihood per person, log-parameters) of a fit
#: reported as converged.
_GRADIENT_TOLERANCE = 1e-6

#: A month is 30 days, the convention of lifetimes' and PyMC-Marketing's
#: ``customer_lifetime_value``.
DAYS_PER_MONTH = 30.0


# --------------------------------------------------------------------------- grouping


def _dot(u: FloatArray, v: FloatArray) -> float:
    """Inner product over per-row arrays without BLAS.

    ``u @ v`` hands long vectors to OpenBLAS, whose worker threads spin between the calls of
    an optimiser loop; on a busy machine that made each likelihood evaluation 5-15 times slower.
    einsum's own loop costs a few microseconds more and never competes for cores.
    """
    return float(np.einsum("i,i->", u, v))


@dataclass(frozen=True, eq=False)
class GroupedHistories:
    """Distinct (x, t_x, T) rows with how many people share each.

    ``inverse[i]`` is the row of person ``i``, so a per-history result ``v`` maps back to
    people as ``v[inverse]``.
    """

    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    weights: FloatArray
    inverse: NDArray[np.intp]

    @property
    def n_people(self) -> int:
        return int(self.inverse.size)

    @property
    def n_histories(self) -> int:
        return int(self.x.size)


def _validate(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> tuple[FloatArray, ...]:
    xa, ta, Ta = (np.asarray(v, dtype=np.float64).ravel() for v in (x, t_x, T))
    if not (xa.size == ta.size == Ta.size):
        raise ValueError("x, t_x and T must have the same length")
    if xa.size == 0:
        raise ValueError("no customers")
    if not (np.isfinite(xa).all() and np.isfinite(ta).all() and np.isfinite(Ta).all()):
        raise ValueError("x, t_x and T must be finite")
    if (xa < 0).any() or (xa != np.floor(xa)).any():
        raise ValueError("x must be a non-negative whole number of repeat transactions")
    if (ta < 0).any() or (ta > Ta).any():
        raise ValueError("each t_x must lie in [0, T]")
    if (ta[xa == 0] != 0).any():
        raise ValueError("t_x must be 0 where x is 0 (no repeat transaction)")
    return xa, ta, Ta


def group_histories(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> GroupedHistories:
    """Collapse people with identical (x, t_x, T) into weighted rows.

    A lexicographic sort plus a run-length pass: several times faster than
    ``numpy.unique(axis=0)``, which views each row as an opaque byte string.
    """
    xa, ta, Ta = _validate(x, t_x, T)
    order = np.lexsort((Ta, ta, xa))
    xs, ts, Ts = xa[order], ta[order], Ta[order]
    starts_run = np.empty(xs.size, dtype=bool)
    starts_run[0] = True
    starts_run[1:] = (xs[1:] != xs[:-1]) | (ts[1:] != ts[:-1]) | (Ts[1:] != Ts[:-1])
    starts = np.flatnonzero(starts_run)
    inverse = np.empty(xs.size, dtype=np.intp)
    inverse[order] = np.cumsum(starts_run) - 1
    counts = np.diff(np.append(starts, xs.size)).astype(np.float64)
    return GroupedHistories(xs[starts], ts[starts], Ts[starts], counts, inverse)


@dataclass(frozen=True)
class _Optimum:
    params: FloatArray
    std_errors: tuple[float, ...]
    iterations: int
    converged: bool


def _hessian(objective: Any, theta: FloatArray, step: float = 1e-5) -> FloatArray:
    """Central differences of the analytic gradient: O(step²) truncation, ~1e-11 rounding."""
    cols = []
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = step
        cols.append((objective(theta + e)[1] - objective(theta - e)[1]) / (2.0 * step))
    hess = np.column_stack(cols)
    return (hess + hess.T) / 2.0


def _fit_log_params(objective: Any, start: FloatArray, n: float) -> _Optimum:
    """Minimise ``objective`` (mean negative log-likelihood and its gradient) over log-params.

    L-BFGS-B stops on the change in the objective, which along the flat a-b ridge of BG/NBD
    leaves the parameters uncertain around 1e-7; a few Newton steps on the exact gradient then
    solve gradient = 0 to ~1e-10, so grouped and per-person fits agree to that precision. The
    final Hessian also gives standard errors (delta method: SE(p) = p SE(ln p), from the
    inverse of n times the Hessian of the mean).
    """
    result = minimize(
        objective,
        np.log(start),
        jac=True,
        method="L-BFGS-B",
        bounds=[_LOG_BOUNDS] * start.size,
        options=_OPTIONS,
    )
    theta = result.x
    grad = objective(theta)[1]
    hess = _hessian(objective, theta)
    steps = 0
    for _ in range(_NEWTON_STEPS):
        try:
            candidate = np.clip(theta - np.linalg.solve(hess, grad), *_LOG_BOUNDS)
        except np.linalg.LinAlgError:
            break
        candidate_grad = objective(candidate)[1]
        if not np.linalg.norm(candidate_grad) < np.linalg.norm(grad):
            break
        theta, grad = candidate, candidate_grad
        hess = _hessian(objective, theta)
        steps += 1
    params = np.exp(theta)
    try:
        variances = np.diag(np.linalg.inv(hess * n))
    except np.linalg.LinAlgError:
        variances = np.full(theta.size, np.nan)
    # A negative variance means the Hessian is not positive definite: no proper optimum.
    std_errors = params * np.sqrt(np.where(variances > 0, variances, np.nan))
    # Converged means a stationary point (L-BFGS-B's own flag is not used: at a gradient this
    # small its line search often reports ABNORMAL although nothing is left to gain), inside
    # the bounds (a pinned parameter is a degenerate fit, e.g. no repeat buyers), with positive
    # curvature.
    interior = bool(((theta > _LOG_BOUNDS[0] + 1e-6) & (theta < _LOG_BOUNDS[1] - 1e-6)).all())
    stationary = bool(np.abs(grad).max() <= _GRADIENT_TOLERANCE)
    return _Optimum(
        params=params,
        std_errors=tuple(float(v) for v in std_errors),
        iterations=int(result.nit) + steps,
        converged=stationary and interior and bool(np.isfinite(std_errors).all()),
    )


# --------------------------------------------------------------------------- BG/NBD


@dataclass(frozen=True)
class BGNBDFit:
    """A fitted BG/NBD model [FHL05] and how the fit went.

    Transactions follow Poisson(lambda) while a customer is alive, lambda ~ Gamma(r, alpha);
    after each repeat transaction the customer drops out with probability p ~ Beta(a, b).
    ``log_likelihood`` is the unpenalised total over all people (CDNOW: -9582.4).
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_people: int
    n_histories: int
    iterations: int
    converged: bool
    #: Asymptotic standard errors of (r, alpha, a, b) from the Hessian of the (penalised)
    #: objective; NaN where the curvature is not positive.
    std_errors: tuple[float, ...] = (np.nan,) * 4
    penalizer: float = 0.0

    def _log_odds_dead(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        """ln[P(dead) / P(alive)] = ln(a / (b+x-1)) + (r+x) ln((alpha+T) / (alpha+t_x)).

        [FHL05] P(alive) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)). Kept in logs
        because the power overflows for frequent buyers seen long ago; -inf where x = 0.
        """
        out = np.full(np.broadcast(x, t_x, T).shape, -np.inf)
        rep = np.broadcast_to(x > 0, out.shape)
        xr, tr, Tr = (np.broadcast_to(v, out.shape)[rep] for v in (x, t_x, T))
        out[rep] = (
            np.log(self.a)
            - np.log(self.b + xr - 1.0)
            + (self.r + xr) * (np.log(self.alpha + Tr) - np.log(self.alpha + tr))
        )
        return out

    def p_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(alive at T | x, t_x, T); exactly 1 for x = 0, since drop-out follows a repeat."""
        xa, ta, Ta = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        return expit(-self._log_odds_dead(xa, ta, Ta))

    def churn_risk(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
        """1 - P(alive), computed directly so small risks keep their precision."""
        xa, ta, Ta = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        return expit(self._log_odds_dead(xa, ta, Ta))

    def expected_purchases(
        self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]: expected transactions in the next ``t`` time units [FHL05 eq. 10].

        E[Y] = (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]
        * P(alive), with z = t/(alpha+T+t). The 2F1 is applied through Euler's transformation
        2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z), which turns the bracket into
        1 - u^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z) with u = 1-z: the original 2F1 and the power
        both overflow for large x while their product stays moderate; the transformed series
        has no such growth and converges even at z -> 1 (C-A-B = x+r-a+1 > 0).
        """
        ta_, xa, txa, Ta = (np.asarray(v, dtype=np.float64) for v in (t, x, t_x, T))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        u = (alpha + Ta) / (alpha + Ta + ta_)
        bracket = 1.0 - u ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + xa - 1.0, 1.0 - u)
        return (a + b + xa - 1.0) / (a - 1.0) * bracket * self.p_alive(xa, txa, Ta)

    def expected_purchases_new(self, t: ArrayLike) -> FloatArray:
        """E[X(t)]: expected repeat transactions of a new customer by time ``t`` [FHL05 eq. 9].

        (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))], with the same
        Euler transformation as :meth:`expected_purchases`.
        """
        ta_ = np.asarray(t, dtype=np.float64)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        u = alpha / (alpha + ta_)
        bracket = 1.0 - u ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b - 1.0, 1.0 - u)
        return (a + b - 1.0) / (a - 1.0) * bracket


class _BGNBDObjective:
    """Negative mean log-likelihood of grouped data and its gradient in log-parameters.

    Per person [FHL05 eq. 6, in the log form of FH027]:
        LL = ln G(r+x) - ln G(r) + r ln alpha + ln B(a, b+x) - ln B(a, b)
             + ln[(alpha+T)^-(r+x) + [x>0] a/(b+x-1) (alpha+t_x)^-(r+x)]
    The last term is A3 + softplus(d) with A3 = -(r+x) ln(alpha+T) and
    d = ln(a/(b+x-1)) - (r+x) ln((alpha+t_x)/(alpha+T)): log-sum-exp without overflow, and its
    derivative weights the two branches by sigmoid(d). Gamma and Beta terms depend on x only,
    so they are summed over the distinct x values with their total weights; only softplus(d)
    needs a pass over the (repeat-buyer) rows.
    """

    def __init__(self, h: GroupedHistories, penalizer: float):
        self.penalizer = penalizer
        w, x = h.weights, h.x
        self.n = float(w.sum())
        self.sum_w_x = float(w @ x)
        self.ux, ix = np.unique(x, return_inverse=True)
        self.wx = np.bincount(ix, weights=w)
        # The A3 term sums (r+x) ln(alpha+T) per person, so it only needs, per distinct T, the
        # total weight and the total weighted x: a few hundred values instead of every row.
        self.uT, iT = np.unique(h.T, return_inverse=True)
        self.wT = np.bincount(iT, weights=w)
        self.wxT = np.bincount(iT, weights=w * x)
        # Repeat buyers carry a per-row term; their logs are looked up in per-distinct-value
        # tables (of T, t_x and x) rather than recomputed row by row.
        rep = x > 0
        self.rw, self.rx, self.riT = w[rep], x[rep], iT[rep]
        self.ut, self.rit = np.unique(h.t_x[rep], return_inverse=True)
        self.urx, self.rix = np.unique(x[rep], return_inverse=True)

    def loglik(self, r: float, alpha: float, a: float, b: float) -> tuple[float, FloatArray]:
        """Total log-likelihood and its gradient in (r, alpha, a, b)."""
        ux, wx, n = self.ux, self.wx, self.n
        ll = float(
            wx @ (gammaln(r + ux) + betaln(a, b + ux))
            - n * (gammaln(r) - r * np.log(alpha) + betaln(a, b))
        )
        psi_abx = digamma(a + b + ux)
        g_r = float(wx @ digamma(r + ux)) - n * (digamma(r) - np.log(alpha))
        g_alpha = n * r / alpha
        g_a = float(wx @ (digamma(a) - psi_abx)) - n * (digamma(a) - digamma(a + b))
        g_b = float(wx @ (digamma(b + ux) - psi_abx)) - n * (digamma(b) - digamma(a + b))

        log_aT = np.log(alpha + self.uT)
        inv_aT = 1.0 / (alpha + self.uT)
        coef_T = r * self.wT + self.wxT
        ll -= float(coef_T @ log_aT)
        g_r -= float(self.wT @ log_aT)
        g_alpha -= float(coef_T @ inv_aT)

        if self.rx.size:
            rx, rw = self.rx, self.rw
            log_ratio = np.log(alpha + self.ut)[self.rit] - log_aT[self.riT]
            d = (np.log(a) - np.log(b + self.urx - 1.0))[self.rix] - (r + rx) * log_ratio
            # softplus(d) = ln(1 + e^d) and sigmoid(d) from one exponential, both stable.
            e = np.exp(-np.abs(d))
            ll += _dot(rw, np.maximum(d, 0.0) + np.log1p(e))
            sw = rw * np.where(d >= 0.0, 1.0, e) / (1.0 + e)
            g_r -= _dot(sw, log_ratio)
            inv_diff = (1.0 / (alpha + self.ut))[self.rit] - inv_aT[self.riT]
            g_alpha -= _dot(sw * (r + rx), inv_diff)
            g_a += float(sw.sum()) / a
            g_b -= _dot(sw, (1.0 / (b + self.urx - 1.0))[self.rix])
        return ll, np.array([g_r, g_alpha, g_a, g_b])

    def __call__(self, theta: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(theta)
        ll, grad = self.loglik(*params)
        # Penalty on the natural parameters (lifetimes' convention) so a penalised segsync fit
        # is comparable with a penalised lifetimes fit; d/dtheta of p^2 is 2 p^2.
        value = -ll / self.n + self.penalizer * float(params @ params)
        gradient = -grad * params / self.n + 2.0 * self.penalizer * params**2
        return value, gradient


def fit_bgnbd(
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    *,
    penalizer: float = 0.0,
    group: bool = True,
) -> BGNBDFit:
    """Fit BG/NBD by maximum likelihood on per-person (x, t_x, T).

    ``group=False`` keeps one likelihood term per person; it exists to show grouping changes
    nothing but the time taken. ``penalizer`` adds ``penalizer * (r² + alpha² + a² + b²)`` to
    the mean negative log-likelihood (lifetimes' L2 convention); 0 gives the plain MLE.

    Starting values: r = a = b = 1 and alpha = r / (observed repeat rate), so the start is on the
    data's time scale whatever the unit.
    """
    if penalizer < 0:
        raise ValueError("penalizer must be >= 0")
    if group:
        h = group_histories(x, t_x, T)
    else:
        xa, ta, Ta = _validate(x, t_x, T)
        ones = np.ones(xa.size)
        h = GroupedHistories(xa, ta, Ta, ones, np.arange(xa.size))
    objective = _BGNBDObjective(h, penalizer)
    rate = max(objective.sum_w_x, 1.0) / max(float(h.weights @ h.T), 1e-9)
    start = np.array([1.0, 1.0 / rate, 1.0, 1.0])
    opt = _fit_log_params(objective, start, objective.n)
    r, alpha, a, b = (float(v) for v in opt.params)
    ll, _ = objective.loglik(r, alpha, a, b)
    return BGNBDFit(
        r=r, alpha=alpha, a=a, b=b, log_likelihood=ll, n_people=h.n_people,
        n_histories=h.n_histories, iterations=opt.iterations, converged=opt.converged,
        std_errors=opt.std_errors, penalizer=penalizer,
    )


# --------------------------------------------------------------------------- Gamma-Gamma


@dataclass(frozen=True)
class GammaGammaFit:
    """A fitted Gamma-Gamma spend model [FH025].

    Each transaction's value ~ Gamma(p, nu) per customer, with nu ~ Gamma(q, gamma) across
    customers. Fitted on repeat customers only (x > 0, mbar > 0): ``mbar`` is the mean of the
    *repeat* transactions, the trial purchase being excluded as in FH025's CDNOW example.
    """

    p: float
    q: float
    gamma: float
    log_likelihood: float
    n_customers: int
    iterations: int
    converged: bool
    #: Asymptotic standard errors of (p, q, gamma).
    std_errors: tuple[float, ...] = (np.nan,) * 3
    penalizer: float = 0.0

    def expected_spend(self, x: ArrayLike, mbar: ArrayLike) -> FloatArray:
        """E[M | x, mbar] = p (gamma + x mbar) / (p x + q - 1) [FH025 eq. 5].

        A weighted mean of the population mean p gamma / (q-1) and the customer's own ``mbar``,
        the weight on ``mbar`` growing with x; with x = 0 it is the population mean.
        Needs q > 1, which :func:`fit_gamma_gamma` callers check.
        """
        xa, ma = (np.asarray(v, dtype=np.float64) for v in (x, mbar))
        return self.p * (self.gamma + xa * ma) / (self.p * xa + self.q - 1.0)


class _GammaGammaObjective:
    """Negative mean log-likelihood of Gamma-Gamma and its gradient in log-parameters.

    Per customer [FH025 eq. 3]:
        LL = ln G(px+q) - ln G(px) - ln G(q) + q ln gamma + (px-1) ln mbar + px ln x
             - (px+q) ln(gamma + x mbar)
    The Gamma-function terms depend on x only (summed per distinct x), and the mbar and x
    logs not involving gamma are constants precomputed once.
    """

    def __init__(self, x: FloatArray, mbar: FloatArray, penalizer: float):
        self.penalizer = penalizer
        self.n = float(x.size)
        self.ux, inv = np.unique(x, return_inverse=True)
        self.wx = np.bincount(inv).astype(np.float64)
        self.x, self.xm = x, x * mbar
        self.sum_x_log_xm = float(x @ (np.log(mbar) + np.log(x)))
        self.sum_log_m = float(np.log(mbar).sum())
        self.sum_x = float(x.sum())

    def loglik(self, p: float, q: float, gamma: float) -> tuple[float, FloatArray]:
        ux, wx, n = self.ux, self.wx, self.n
        log_den = np.log(gamma + self.xm)
        ll = float(
            wx @ (gammaln(p * ux + q) - gammaln(p * ux))
            - n * gammaln(q) + n * q * np.log(gamma)
            + p * self.sum_x_log_xm - self.sum_log_m
        ) - _dot(p * self.x + q, log_den)
        psi = digamma(p * ux + q)
        g_p = float(wx @ (ux * (psi - digamma(p * ux)))) + self.sum_x_log_xm - _dot(
            self.x, log_den
        )
        g_q = float(wx @ psi) - n * digamma(q) + n * np.log(gamma) - float(log_den.sum())
        g_gamma = n * q / gamma - _dot(p * self.x + q, 1.0 / (gamma + self.xm))
        return ll, np.array([g_p, g_q, g_gamma])

    def __call__(self, theta: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(theta)
        ll, grad = self.loglik(*params)
        value = -ll / self.n + self.penalizer * float(params @ params)
        gradient = -grad * params / self.n + 2.0 * self.penalizer * params**2
        return value, gradient


def fit_gamma_gamma(x: ArrayLike, mbar: ArrayLike, *, penalizer: float = 0.0) -> GammaGammaFit:
    """Fit Gamma-Gamma by maximum likelihood on repeat customers' (x, mean repeat spend).

    Pass only customers with x > 0 and mbar > 0: the model has no density at zero spend.
    Starting values p = 1, q = 2, gamma = mean(mbar), which puts the prior mean spend
    p gamma / (q-1) at the observed mean, on the data's currency scale.
    """
    if penalizer < 0:
        raise ValueError("penalizer must be >= 0")
    xa, ma = (np.asarray(v, dtype=np.float64).ravel() for v in (x, mbar))
    if xa.size != ma.size:
        raise ValueError("x and mbar must have the same length")
    if xa.size == 0:
        raise ValueError("no repeat customers")
    if not ((xa > 0).all() and (ma > 0).all() and np.isfinite(ma).all()):
        raise ValueError("Gamma-Gamma needs x > 0 and a finite mbar > 0 for every customer")
    objective = _GammaGammaObjective(xa, ma, penalizer)
    start = np.array([1.0, 2.0, float(ma.mean())])
    opt = _fit_log_params(objective, start, objective.n)
    p, q, gamma = (float(v) for v in opt.params)
    ll, _ = objective.loglik(p, q, gamma)
    return GammaGammaFit(
        p=p, q=q, gamma=gamma, log_likelihood=ll, n_customers=int(xa.size),
        iterations=opt.iterations, converged=opt.converged, std_errors=opt.std_errors,
        penalizer=penalizer,
    )


# --------------------------------------------------------------------------- CLV


def discounted_purchases(
    bg: BGNBDFit,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    *,
    months: int = 12,
    discount_rate: float = 0.01,
    days_per_unit: float = 7.0,
) -> FloatArray:
    """Sum over months k = 1..months of (E[Y(k)] - E[Y(k-1)]) / (1 + discount_rate)^k.

    Multiplied by E[M] this is the CLV of lifetimes' and PyMC-Marketing's
    ``customer_lifetime_value``: each month's expected purchases valued at the expected spend
    and discounted to today. ``discount_rate`` is *per month* (0.01 a month is about 12.7 % a
    year); a month is 30 days and ``days_per_unit`` converts it to the time unit of the fit
    (7 for weeks). Kept separate from spend so it is computed once per distinct history.
    """
    if months < 1:
        raise ValueError("months must be >= 1")
    if discount_rate <= -1:
        raise ValueError("discount_rate must be > -1")
    xa, ta, Ta = (np.asarray(v, dtype=np.float64)[..., None] for v in (x, t_x, T))
    steps = np.arange(months + 1) * (DAYS_PER_MONTH / days_per_unit)
    cumulative = bg.expected_purchases(steps, xa, ta, Ta)
    monthly = np.diff(cumulative, axis=-1)
    factors = (1.0 + discount_rate) ** -np.arange(1, months + 1)
    return monthly @ factors
