"""Benchmark: the cost of segsync's exact BG/NBD predictions against the closed form.

``write_predictions`` evaluates E[Y(t) | x, t_x, T] for every distinct history at the 90- and
365-day horizons and at the 12 monthly steps of the CLV. segsync sums a series of positive
terms (``btyd._alive_purchases``), exact for any parameters; the floor is the closed form it
replaced (FHL05 eq. 10 with Euler's transformation of the 2F1, one scipy ``hyp2f1`` call per
value), which is one vectorised special-function call but is NaN when a is large (a small
shop's fit) and 0/0 at a = 1. Both run here on the same histories, floor first, and the
script prints both times, their ratio, and the largest relative difference where the floor is
finite.

Two fits: the published CDNOW parameters on people simulated from them (as
``bench_bgnbd.py`` does), and the demo shop's fit (a = 6.3e5, b = 7.0e6), for which the floor
gives no finite value at all. Run ``python bench/bench_predict.py --help``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_bgnbd import TRUE_PARAMS, simulate
from scipy.special import hyp2f1

from segsync.core.measure.btyd import BGNBDFit, group_histories

DEMO_PARAMS = {"r": 2.654029921656129, "alpha": 26.12766679378348, "a": 627169.5213693724,
               "b": 7028850.47051717}
#: The horizons write_predictions evaluates, in weeks: 90 and 365 days, then 12 months of 30.
HORIZONS = np.r_[90.0, 365.0, np.arange(1, 13) * 30.0] / 7.0


def closed_form(m: BGNBDFit, t: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                T: np.ndarray) -> np.ndarray:
    """FHL05 eq. 10, Euler-transformed: the code segsync used before the series."""
    r, alpha, a, b = m.r, m.alpha, m.a, m.b
    u = (alpha + T) / (alpha + T + t)
    bracket = 1.0 - u ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, 1.0 - u)
    return (a + b + x - 1.0) / (a - 1.0) * bracket * m.p_alive(x, t_x, T)


def best_time(fn, repeat: int) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def compare(label: str, params: dict[str, float], x, t_x, T, repeat: int) -> None:
    m = BGNBDFit(**params, log_likelihood=0.0, n_people=0, n_histories=0, iterations=0,
                 converged=True)
    h = group_histories(x, t_x, T)
    args = (HORIZONS[None, :], h.x[:, None], h.t_x[:, None], h.T[:, None])
    with np.errstate(all="ignore"):
        floor_s, floor = best_time(lambda: closed_form(m, *args), repeat)
    ours_s, ours = best_time(lambda: m.expected_purchases(*args), repeat)
    finite = np.isfinite(floor)
    print(f"{label}: {h.n_people:,} people, {h.n_histories:,} distinct histories, "
          f"{HORIZONS.size} horizons ({floor.size:,} values)")
    print(f"  floor (closed form): {floor_s:8.3f} s, finite for {int(finite.sum()):,} of "
          f"{floor.size:,} values")
    print(f"  segsync (series):    {ours_s:8.3f} s, finite for "
          f"{int(np.isfinite(ours).sum()):,} of {ours.size:,}")
    print(f"  ratio segsync/floor: {ours_s / floor_s:.2f}")
    if finite.any():
        scale = np.maximum(np.abs(floor[finite]), 1e-300)
        print(f"  largest relative difference where the floor is finite: "
              f"{float(np.max(np.abs(ours[finite] - floor[finite]) / scale)):.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20050301)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is shown")
    args = parser.parse_args()
    x, t_x, T = simulate(args.people, args.seed)
    compare("CDNOW parameters (r, alpha, a, b = 0.243, 4.414, 0.793, 2.426)", TRUE_PARAMS,
            x, t_x, T, args.repeat)
    compare("demo shop's fit (a = 6.3e5, b = 7.0e6)", DEMO_PARAMS, x, t_x, T, args.repeat)


if __name__ == "__main__":
    main()
