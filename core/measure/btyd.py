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

A small shop's likelihood often keeps rising towards one of the models' limits (every buyer
with the same drop-out probability, or the same purchase rate; nobody dropping out). Such a fit
converges *at* the limit: it ends where the gradient vanishes and nothing along the flat
direction is worth a thousandth of a log-likelihood unit (:func:`_fit_log_params`), and its
predictions are computed by a series that is exact for any positive parameters, so they are
finite there and tend to the limiting model's continuously (:func:`_alive_purchases`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln

FloatArray = NDArray[np.float64]

#: Bounds on every parameter during a fit. Far outside any plausible value (alpha in weeks is
#: typically 1-100), they stop a degenerate data set from driving a parameter to 0 or infinity
#: and overflowing. A small shop's likelihood often keeps rising towards one of the models'
#: limits (a, b -> infinity: one drop-out probability for all; a -> 0: no drop-out; r,
#: alpha -> infinity: one purchase rate for all); a parameter pinned here stands for that
#: limit, with predictions within about 1e-8 of the limiting model's.
_PARAM_MIN, _PARAM_MAX = 1e-8, 1e8
_LOG_BOUNDS = (float(np.log(_PARAM_MIN)), float(np.log(_PARAM_MAX)))

#: Stopping rules for L-BFGS-B on the mean log-likelihood per person: tight, because the
#: surface is flat along BG/NBD's a-b ridge and each iteration is cheap on grouped data. At most
#: ``_NEWTON_STEPS`` Newton steps then polish the optimum (see :func:`_fit_log_params`).
_OPTIONS = {"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10}
_NEWTON_STEPS = 4
#: Largest gradient component (mean log-likelihood per person, log-parameters) of a fit
#: reported as converged; at a bound, only the component pointing back inside counts.
_GRADIENT_TOLERANCE = 1e-6
#: Curvature (of the mean objective, in log-parameters) below which a direction is flat: the
#: data barely tell its points apart. The CDNOW fits' smallest is 3e-3; a small shop's fit
#: heading for a limit has one near 0 or slightly negative.
_FLAT_CURVATURE = 1e-4
#: A fit is not finished while a point along a flat direction beats it by more than this much
#: *total* log-likelihood; smaller differences mean nothing statistically.
_LIMIT_GAIN = 1e-3
#: Steps in log-parameters tried both ways along each flat direction (clipped to the bounds),
#: and how many times the fit may restart from a better point found so.
_PROBE_STEPS = tuple(2.0**k for k in range(-1, 7))
_RESTARTS = 3

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


def _held(theta: FloatArray, grad: FloatArray) -> NDArray[np.bool_]:
    """Parameters at a bound that the objective pushes outwards: the bound holds them there."""
    lower = (theta <= _LOG_BOUNDS[0] + 1e-6) & (grad > 0.0)
    upper = (theta >= _LOG_BOUNDS[1] - 1e-6) & (grad < 0.0)
    return lower | upper


def _minimise(objective: Any, theta: FloatArray,
              n: float) -> tuple[FloatArray, FloatArray, FloatArray, int]:
    """L-BFGS-B from ``theta``, then Newton steps; the point, its gradient and Hessian, steps.

    L-BFGS-B stops on the change in the objective, which along the flat a-b ridge of BG/NBD
    leaves the parameters uncertain around 1e-7; a few Newton steps on the exact gradient then
    solve gradient = 0 to ~1e-10, so grouped and per-person fits agree to that precision. They
    move only the parameters no bound holds (see :func:`_held`), and only along curved
    directions: along a flat one the step would be unbounded, and :func:`_better_along_flat`
    looks there instead. A step is kept only if it lowers the gradient and costs at most
    ``_LIMIT_GAIN`` of total log-likelihood: it must not trade a real loss for a smaller
    gradient.
    """
    result = minimize(
        objective, theta, jac=True, method="L-BFGS-B",
        bounds=[_LOG_BOUNDS] * theta.size, options=_OPTIONS,
    )
    theta = result.x
    value, grad = objective(theta)
    hess = _hessian(objective, theta)
    steps = 0
    for _ in range(_NEWTON_STEPS):
        free = ~_held(theta, grad)
        curvature, directions = np.linalg.eigh(hess[np.ix_(free, free)])
        curved = curvature >= _FLAT_CURVATURE
        step = np.zeros_like(theta)
        step[free] = directions[:, curved] @ (directions[:, curved].T @ grad[free]
                                              / curvature[curved])
        candidate = np.clip(theta - step, *_LOG_BOUNDS)
        candidate_value, candidate_grad = objective(candidate)
        if not (np.linalg.norm(candidate_grad) < np.linalg.norm(grad)
                and candidate_value <= value + _LIMIT_GAIN / n):
            break
        theta, value, grad = candidate, candidate_value, candidate_grad
        hess = _hessian(objective, theta)
        steps += 1
    return theta, grad, hess, int(result.nit) + steps


def _better_along_flat(objective: Any, theta: FloatArray, hess: FloatArray,
                       n: float) -> FloatArray | None:
    """A point along a flat direction of ``hess`` beating ``theta`` by over ``_LIMIT_GAIN``.

    Where the likelihood creeps up towards a limit of the model, L-BFGS-B stops on the ridge
    with a zero gradient; only looking far along the flat direction tells whether the rest of
    the way is worth anything. None when it is not (the fit is done).
    """
    curvature, directions = np.linalg.eigh(hess)
    best, best_value = None, objective.value(theta) - _LIMIT_GAIN / n
    for direction in directions.T[curvature < _FLAT_CURVATURE]:
        for step in _PROBE_STEPS:
            for candidate in (theta + step * direction, theta - step * direction):
                candidate = np.clip(candidate, *_LOG_BOUNDS)
                value = objective.value(candidate)
                if value < best_value:
                    best, best_value = candidate, value
    return best


def _fit_log_params(objective: Any, start: FloatArray, n: float) -> _Optimum:
    """Minimise ``objective`` (mean negative log-likelihood and its gradient; its ``value``
    method gives the first alone) over log-params.

    See :func:`_minimise` and :func:`_better_along_flat`. The final Hessian gives standard
    errors (delta method: SE(p) = p SE(ln p), from the inverse of n times the Hessian of the
    mean); they are NaN where the curvature is not positive and for a parameter held at a
    bound, whose value the data do not determine.
    """
    theta, grad, hess, iterations = _minimise(objective, np.log(start), n)
    restarts = 0
    while (better := _better_along_flat(objective, theta, hess, n)) is not None:
        if restarts == _RESTARTS:
            break
        theta, grad, hess, more = _minimise(objective, better, n)
        iterations += more
        restarts += 1
    params = np.exp(theta)
    held = _held(theta, grad)
    try:
        variances = np.diag(np.linalg.inv(hess * n))
    except np.linalg.LinAlgError:
        variances = np.full(theta.size, np.nan)
    std_errors = params * np.sqrt(np.where((variances > 0) & ~held, variances, np.nan))
    # Converged means a stationary point of the bounded problem (L-BFGS-B's own flag is not
    # used: at a gradient this small its line search often reports ABNORMAL although nothing is
    # left to gain) with nothing worth having further along a flat direction. A parameter held
    # at a bound needs no zero gradient: the likelihood goes on rising beyond it.
    inward = np.where(held, 0.0, grad)
    return _Optimum(
        params=params,
        std_errors=tuple(float(v) for v in std_errors),
        iterations=iterations,
        converged=bool(np.abs(inward).max() <= _GRADIENT_TOLERANCE) and better is None,
    )


# --------------------------------------------------------------------------- BG/NBD


@dataclass(frozen=True)
class BGNBDFit:
    """A fitted BG/NBD model [FHL05] and how the fit went.

    Transactions follow Poisson(lambda) while a customer is alive, lambda ~ Gamma(r, alpha);
    after each repeat transaction the customer drops out with probability p ~ Beta(a, b).
    ``log_likelihood`` is the unpenalised total over all people (CDNOW: -9582.4).

    The predictions are finite and exact for every positive parameter value, including the
    limits small shops' fits run towards (see :func:`_alive_purchases`): a, b -> infinity at a
    fixed a/(a+b) (everyone drops out with the same probability), a/(a+b) -> 0 (nobody drops
    out: the NBD), r, alpha -> infinity at a fixed r/alpha (everyone buys at the same rate).
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
    #: objective; NaN where the curvature is not positive (a parameter the data cannot pin
    #: down, as along the a, b -> infinity ridge).
    std_errors: tuple[float, ...] = (np.nan,) * 4
    penalizer: float = 0.0

    def __post_init__(self) -> None:
        params = (self.r, self.alpha, self.a, self.b)
        if not all(math.isfinite(v) and v > 0 for v in params):
            raise ValueError(f"BG/NBD parameters must be finite and > 0, not {params}")

    def _log_odds_dead(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        """ln[P(dead) / P(alive)] = ln(a / (b+x-1)) + (r+x) ln((alpha+T) / (alpha+t_x)).

        [FHL05] P(alive) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)). Kept in logs
        because the power overflows for frequent buyers seen long ago, and the log ratio is
        taken as log1p((T-t_x)/(alpha+t_x)) so it keeps its precision when alpha is huge (the
        equal-rates limit); -inf where x = 0.
        """
        out = np.full(np.broadcast(x, t_x, T).shape, -np.inf)
        rep = np.broadcast_to(x > 0, out.shape)
        xr, tr, Tr = (np.broadcast_to(v, out.shape)[rep] for v in (x, t_x, T))
        out[rep] = (
            np.log(self.a)
            - np.log(self.b + (xr - 1.0))  # b + x - 1 would lose a tiny b
            + (self.r + xr) * np.log1p((Tr - tr) / (self.alpha + tr))
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

        P(alive) times the expectation for a customer known to be alive, which depends on
        (x, T) but not t_x (:func:`_alive_purchases`).
        """
        ta_, xa, txa, Ta = (np.asarray(v, dtype=np.float64) for v in (t, x, t_x, T))
        alive = _alive_purchases(self.r, self.alpha, self.a, self.b, ta_, xa, Ta)
        return alive * self.p_alive(xa, txa, Ta)

    def expected_purchases_new(self, t: ArrayLike) -> FloatArray:
        """E[X(t)]: expected repeat transactions of a new customer by time ``t`` [FHL05 eq. 9].

        A customer just acquired is alive with no history: E[Y(t) | x = 0, T = 0].
        """
        ta_ = np.asarray(t, dtype=np.float64)
        return _alive_purchases(self.r, self.alpha, self.a, self.b, ta_, np.zeros(()),
                                np.zeros(()))


#: Series of :func:`_alive_purchases`: summed until the bound on what is left is below this
#: share of the sum, and never past ``_SERIES_MAX_TERMS`` terms.
_SERIES_TOLERANCE = 1e-13
_SERIES_MAX_TERMS = 1 << 24
_SERIES_FIRST_BLOCK, _SERIES_MAX_BLOCK = 64, 4096


def _alive_purchases(r: float, alpha: float, a: float, b: float, t: FloatArray, x: FloatArray,
                     T: FloatArray) -> FloatArray:
    """E[Y(t) | alive at T, x, T] by a series of positive terms, for any positive parameters.

    Given alive at T, the rate is Gamma(r+x, alpha+T) and the drop-out probability
    Beta(a, b+x), independently. The purchases the customer would make in (T, T+t] if they
    never dropped out number J ~ NegBin(k = r+x, z = s/(1+s)), s = t/(alpha+T); they drop out
    after each with probability p, so they make min(J, G) of them, G ~ Geometric(p). Hence

        E[Y | alive] = sum_{j>=1} P(J = j) R_j,   R_j = sum_{i<j} rho_i,
        rho_i = E[(1-p)^i] = prod_{m<i} (1 - a/(a+b+x+m)),

    which is FHL05 eq. 10 divided by P(alive), expanded. Every term is positive, P(J = j) is
    built in logs, and rho_i is a product of factors in (0, 1), so nothing overflows or
    cancels where the closed form does (its 2F1 and power overflow when a is large, and
    (a+b+x-1)/(a-1) is 0/0 at a = 1). The limits are reached continuously rather than by
    switching formulas: a, b -> infinity at mu = a/(a+b) gives rho_i -> (1-mu)^i and the sum
    (1 - (1+mu s)^-k) / mu; mu -> 0 gives rho_i -> 1 and k s, the NBD's (r+x) t/(alpha+T).

    It depends on x and s only, so it is summed once per distinct (x, s).
    """
    t, x, T = np.broadcast_arrays(t, x, T)
    if not (np.isfinite(t).all() and (t >= 0).all()):
        raise ValueError("t must be finite and >= 0")
    out = np.zeros(t.size)
    s_all = (t / (alpha + T)).ravel()
    ahead = np.flatnonzero(s_all > 0)  # t = 0: nothing can happen in no time
    if ahead.size:
        s, xs = s_all[ahead], x.ravel()[ahead]
        order = np.lexsort((s, xs))
        s, xs = s[order], xs[order]
        first = np.r_[True, (xs[1:] != xs[:-1]) | (s[1:] != s[:-1])]
        distinct_x, distinct_s = xs[first], s[first]
        values = np.empty(distinct_s.size)
        edges = np.flatnonzero(np.r_[True, distinct_x[1:] != distinct_x[:-1], True])
        for lo, hi in itertools.pairwise(edges):
            xv = float(distinct_x[lo])
            values[lo:hi] = _alive_series(r + xv, a, a + b + xv, distinct_s[lo:hi])
        out[ahead[order]] = values[np.cumsum(first) - 1]
    return out.reshape(t.shape)


def _alive_series(k: float, a: float, n: float, s: FloatArray) -> FloatArray:
    """The series of :func:`_alive_purchases` for one x (k = r+x, n = a+b+x) and many s.

    Summed in blocks of j shared by all s: ln P(J = j) = -k ln(1+s) + j ln z + G_j with
    G_j = ln Gamma(k+j) - ln Gamma(k) - ln j!, and G_j, R_j depend on j alone. After each
    block a rigorous bound on the rest decides which s are done: past the mode, P(J = j+m) <=
    P(J = j) c^m with c = z max(1, (k+j)/(j+1)) < 1, and R_{j+m} <= R_j + m, so the rest is at
    most P(J = j) (R_j c/(1-c) + c/(1-c)^2).
    """
    z = s / (1.0 + s)
    log_z = np.log(z)
    log_w0 = -k * np.log1p(s)
    total = np.zeros(s.size)
    active = np.arange(s.size)
    j0, g0, log_rho0, r0 = 0, 0.0, 0.0, 0.0
    size = _SERIES_FIRST_BLOCK
    while active.size:
        if j0 >= _SERIES_MAX_TERMS:
            raise ValueError(
                f"expected purchases need more than {_SERIES_MAX_TERMS:,} terms at "
                f"t/(alpha+T) = {float(s[active].max()):.3g}: the horizon is far beyond the "
                "time scale of the fitted purchase rates"
            )
        j = np.arange(j0 + 1, j0 + size + 1, dtype=np.float64)
        i = j - 1.0  # added to k and n as a whole: (n + j) - 1 would lose a tiny n's digits
        g = g0 + np.cumsum(np.log(k + i) - np.log(j))
        # rho_i for i = j0 .. j0+size-1.
        steps = np.log1p(-a / (n + i))
        log_rho = log_rho0 + np.r_[0.0, np.cumsum(steps[:-1])]
        big_r = r0 + np.cumsum(np.exp(log_rho))
        w = np.exp(log_w0[active, None] + log_z[active, None] * j + g)
        total[active] += np.einsum("ij,j->i", w, big_r)
        j0, g0, log_rho0, r0 = j0 + size, float(g[-1]), float(log_rho[-1] + steps[-1]), float(
            big_r[-1])
        c = z[active] * max(1.0, (k + j0) / (j0 + 1.0))
        last = w[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            rest = np.where(c < 1.0, last * (r0 * c / (1.0 - c) + c / (1.0 - c) ** 2), np.inf)
        active = active[rest > _SERIES_TOLERANCE * total[active]]
        size = min(2 * size, _SERIES_MAX_BLOCK)
    return total


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
        ll, grad = self._loglik(r, alpha, a, b, True)
        assert grad is not None
        return ll, grad

    def _loglik(self, r: float, alpha: float, a: float, b: float,
                gradient: bool) -> tuple[float, FloatArray | None]:
        """:meth:`loglik`, the gradient left out (None) unless ``gradient``: the probes along
        flat directions need values only, and the value is computed the same way either way."""
        ux, wx, n = self.ux, self.wx, self.n
        ll = float(
            wx @ (gammaln(r + ux) + betaln(a, b + ux))
            - n * (gammaln(r) - r * np.log(alpha) + betaln(a, b))
        )
        log_aT = np.log(alpha + self.uT)
        coef_T = r * self.wT + self.wxT
        ll -= float(coef_T @ log_aT)
        if self.rx.size:
            rx, rw = self.rx, self.rw
            # np.take: the same values as indexing, in about two thirds of the time.
            log_ratio = np.take(np.log(alpha + self.ut), self.rit) - np.take(log_aT, self.riT)
            d = np.take(np.log(a) - np.log(b + (self.urx - 1.0)), self.rix) - (r + rx) * log_ratio
            # softplus(d) = ln(1 + e^d) and sigmoid(d) from one exponential, both stable.
            e = np.exp(-np.abs(d))
            ll += _dot(rw, np.maximum(d, 0.0) + np.log1p(e))
        if not gradient:
            return ll, None

        psi_abx = digamma(a + b + ux)
        g_r = float(wx @ digamma(r + ux)) - n * (digamma(r) - np.log(alpha))
        g_alpha = n * r / alpha
        g_a = float(wx @ (digamma(a) - psi_abx)) - n * (digamma(a) - digamma(a + b))
        g_b = float(wx @ (digamma(b + ux) - psi_abx)) - n * (digamma(b) - digamma(a + b))
        inv_aT = 1.0 / (alpha + self.uT)
        g_r -= float(self.wT @ log_aT)
        g_alpha -= float(coef_T @ inv_aT)
        if self.rx.size:
            # sigmoid(d) = [1 if d >= 0 else e] / (1 + e); as 0 < e <= 1, max(e, d >= 0) picks
            # the same numerator as np.where, several times faster.
            sw = rw * np.maximum(e, d >= 0.0) / (1.0 + e)
            g_r -= _dot(sw, log_ratio)
            inv_diff = np.take(1.0 / (alpha + self.ut), self.rit) - np.take(inv_aT, self.riT)
            g_alpha -= _dot(sw * (r + rx), inv_diff)
            g_a += float(sw.sum()) / a
            g_b -= _dot(sw, np.take(1.0 / (b + (self.urx - 1.0)), self.rix))
        return ll, np.array([g_r, g_alpha, g_a, g_b])

    def __call__(self, theta: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(theta)
        ll, grad = self.loglik(*params)
        # Penalty on the natural parameters (lifetimes' convention) so a penalised segsync fit
        # is comparable with a penalised lifetimes fit; d/dtheta of p^2 is 2 p^2.
        value = -ll / self.n + self.penalizer * float(params @ params)
        gradient = -grad * params / self.n + 2.0 * self.penalizer * params**2
        return value, gradient

    def value(self, theta: FloatArray) -> float:
        """The objective alone, equal to ``self(theta)[0]`` at about half the cost."""
        params = np.exp(theta)
        ll, _ = self._loglik(*params, False)
        return -ll / self.n + self.penalizer * float(params @ params)


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
        ll, grad = self._loglik(p, q, gamma, True)
        assert grad is not None
        return ll, grad

    def _loglik(self, p: float, q: float, gamma: float,
                gradient: bool) -> tuple[float, FloatArray | None]:
        ux, wx, n = self.ux, self.wx, self.n
        log_den = np.log(gamma + self.xm)
        ll = float(
            wx @ (gammaln(p * ux + q) - gammaln(p * ux))
            - n * gammaln(q) + n * q * np.log(gamma)
            + p * self.sum_x_log_xm - self.sum_log_m
        ) - _dot(p * self.x + q, log_den)
        if not gradient:
            return ll, None
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

    def value(self, theta: FloatArray) -> float:
        """The objective alone, equal to ``self(theta)[0]`` at a fraction of the cost."""
        params = np.exp(theta)
        ll, _ = self._loglik(*params, False)
        return -ll / self.n + self.penalizer * float(params @ params)


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
