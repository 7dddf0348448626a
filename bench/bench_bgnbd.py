"""Benchmark: segsync's BG/NBD fit against lifetimes' ``BetaGeoFitter`` on the same data.

Simulates people from BG/NBD with the published CDNOW parameters (fixed seed), fits them with
:func:`segsync.core.measure.btyd.fit_bgnbd` and, in the same run, with lifetimes, then prints both
times, their ratio (target: segsync <= 1/10 of lifetimes) and whether the parameters agree to
three significant figures. Run ``python bench/bench_bgnbd.py --help``; see bench/README.md.

The simulation follows Fader, Hardie & Lee (2005): lambda ~ Gamma(r, alpha) and
p ~ Beta(a, b) per person; purchases arrive as a Poisson process while alive; after each repeat
purchase the person drops out with probability p. As in CDNOW, people are acquired over a
12-week window and observed until day 273, and times are kept at day resolution (t_x, T =
whole days / 7), the resolution a store's order dates have.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from segsync.core.measure.btyd import fit_bgnbd, group_histories

#: Published CDNOW estimates (Fader, Hardie & Lee 2005), weeks.
TRUE_PARAMS = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
ACQUISITION_DAYS = 84
OBSERVATION_END_DAY = 273


def simulate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-person (x, t_x, T) in weeks, simulated from BG/NBD; vectorised over people."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(TRUE_PARAMS["r"], 1.0 / TRUE_PARAMS["alpha"], n)
    dropout = rng.beta(TRUE_PARAMS["a"], TRUE_PARAMS["b"], n)
    T_days = OBSERVATION_END_DAY - rng.integers(0, ACQUISITION_DAYS, n)
    T = T_days / 7.0
    x = np.zeros(n)
    last = np.zeros(n)
    clock = np.zeros(n)
    active = np.arange(n)
    # One round per purchase: everyone still alive and inside the window draws their next one.
    while active.size:
        clock[active] += rng.exponential(1.0, active.size) / rate[active]
        active = active[clock[active] <= T[active]]
        x[active] += 1
        last[active] = clock[active]
        active = active[rng.random(active.size) >= dropout[active]]
    t_x = np.minimum(np.floor(last * 7.0), T_days) / 7.0
    return x, t_x, T


def sig(value: float, digits: int = 3) -> float:
    """``value`` rounded to ``digits`` significant figures."""
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20050301)
    parser.add_argument("--repeat", type=int, default=3,
                        help="segsync fits to time; the best is reported (lifetimes runs once)")
    args = parser.parse_args()

    x, t_x, T = simulate(args.people, args.seed)
    grouped = group_histories(x, t_x, T)
    print(f"simulated {args.people:,} people (seed {args.seed}): "
          f"{grouped.n_histories:,} distinct (x, t_x, T), {int((x > 0).sum()):,} repeat buyers")

    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        fit = fit_bgnbd(x, t_x, T)
        times.append(time.perf_counter() - start)
    ours = {"r": fit.r, "alpha": fit.alpha, "a": fit.a, "b": fit.b}
    segsync_s = min(times)

    # Imported here so the simulation above runs without the benchmark-only dependency.
    import pandas as pd
    from lifetimes import BetaGeoFitter

    frame = pd.DataFrame({"x": x, "t_x": t_x, "T": T})
    start = time.perf_counter()
    lt = BetaGeoFitter().fit(frame["x"], frame["t_x"], frame["T"])
    lifetimes_s = time.perf_counter() - start
    theirs = {k: float(lt.params_[k]) for k in ours}

    print(f"{'param':>6} {'true':>9} {'segsync':>12} {'lifetimes':>12} {'rel diff':>9}")
    for k in ours:
        rel = abs(ours[k] - theirs[k]) / abs(theirs[k])
        print(f"{k:>6} {TRUE_PARAMS[k]:>9.3f} {ours[k]:>12.6f} {theirs[k]:>12.6f} {rel:>9.1e}")
    agree = all(sig(ours[k]) == sig(theirs[k]) for k in ours)
    print(f"segsync log-likelihood {fit.log_likelihood:.2f}, {fit.iterations} iterations, "
          f"converged={fit.converged}")
    print(f"segsync fit:   {segsync_s:8.3f} s (best of {args.repeat}, grouping included)")
    print(f"lifetimes fit: {lifetimes_s:8.3f} s")
    print(f"ratio segsync/lifetimes: {segsync_s / lifetimes_s:.4f} "
          f"(target <= 0.1: {'met' if segsync_s <= lifetimes_s / 10 else 'NOT met'})")
    print(f"parameters agree to 3 significant figures: {'yes' if agree else 'NO'}")


if __name__ == "__main__":
    main()
