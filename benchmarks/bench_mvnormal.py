"""Timing benchmark: ``mvnormal`` k=3 full covariances against scikit-learn's
``GaussianMixture(covariance_type="full")`` on the same simulated data (issue 18).

Data: n rows x d dimensions (default 1e5 x 10), three classes with shares 0.3/0.3/0.4,
means 3 apart on random directions and random full covariances (fixed seed; not timed).
bayesfmm: ``bf.FMM("y1 + ... + yd ~ 1", family="mvnormal", k=3).fit(df)``, the first fit in
the process (default start: k-means++ with 10 seedings on the data, EM, Newton with the
exact Hessian, OIM standard errors; everything timed, including the design). scikit-learn:
``GaussianMixture(3, covariance_type="full", tol=1e-8, max_iter=5000, n_init=1,
reg_covar=1e-12)`` (one k-means start, EM only, no standard errors), fitted on the numpy
array. Printed: one table with each fit's seconds (wall clock and CPU), log likelihood and
settings, the time ratio and whether bayesfmm reached scikit-learn's log likelihood.

Run: ``.venv/bin/python benchmarks/bench_mvnormal.py [--n 1e5] [--d 10] [--profile]``.
Set ``OPENBLAS_NUM_THREADS`` (or ``OMP_NUM_THREADS``) to compare at a fixed thread count;
the machine's load matters (the numbers in docs/benchmarks.md name the machine and its
sharing). ``--profile`` adds where bayesfmm's time goes (cProfile, cumulative seconds of
the fit's stages).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import time

import numpy as np
import pandas as pd

import bayesfmm as bf

SKLEARN_SETTINGS = dict(covariance_type="full", tol=1e-8, max_iter=5000, n_init=1, reg_covar=1e-12, random_state=0)
STAGES = (
    ("design", "build_design"),
    ("k-means start", "kmeans_labels"),
    ("EM", "em.py:.*\\(em\\)"),
    ("Newton", "newton.py:.*\\(newton\\)"),
    ("  score and Hessian", "score_hessian"),
    ("standard errors", "vce.py:.*\\(covariance\\)"),
)


def simulate(n: int, d: int, seed: int = 20260101) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(3, d))
    means = 3.0 * directions / np.linalg.norm(directions, axis=1, keepdims=True) * np.sqrt(d) / 2
    covs = []
    for _ in range(3):
        a = rng.normal(size=(d, d))
        covs.append(a @ a.T / d + 0.5 * np.eye(d))
    z = rng.choice(3, size=n, p=[0.3, 0.3, 0.4])
    y = np.empty((n, d))
    for c in range(3):
        rows = z == c
        y[rows] = rng.multivariate_normal(means[c], covs[c], size=int(rows.sum()))
    return pd.DataFrame(y, columns=[f"y{i + 1}" for i in range(d)])


def _timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    out = function()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _stages(profile: cProfile.Profile) -> pd.Series:
    """Cumulative seconds of the fit's stages from a profile of it."""
    stats = pstats.Stats(profile)
    out = {}
    for label, pattern in STAGES:
        regex = re.compile(pattern)
        total = 0.0
        for (filename, line, name), (_, _, _, cumulative, _) in stats.stats.items():
            if regex.search(f"{filename}:{line}({name})"):
                total = max(total, cumulative)  # the outermost call (recursion counts once)
        out[label] = round(total, 3)
    return pd.Series(out, name="seconds (cProfile)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=float, default=1e5)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="also profile a second bayesfmm fit by stage")
    args = parser.parse_args()
    n, d = int(args.n), args.d
    data = simulate(n, d)
    formula = " + ".join(data.columns) + " ~ 1"
    model = bf.FMM(formula, family="mvnormal", k=3)
    res, bf_wall, bf_cpu = _timed(lambda: model.fit(data))
    rows = {
        "bayesfmm": {
            "wall_s": bf_wall, "cpu_s": bf_cpu, "llf": res.llf, "converged": res.converged,
            "settings": "default fit (k-means++ x10, EM, Newton, OIM SEs), first fit in the process",
        }
    }
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError:
        GaussianMixture = None
    if GaussianMixture is not None:
        y = data.to_numpy()
        gm, sk_wall, sk_cpu = _timed(lambda: GaussianMixture(3, **SKLEARN_SETTINGS).fit(y))
        rows["sklearn"] = {
            "wall_s": sk_wall, "cpu_s": sk_cpu, "llf": float(gm.score(y) * n), "converged": bool(gm.converged_),
            "settings": ", ".join(f"{key}={value}" for key, value in SKLEARN_SETTINGS.items()),
        }
    table = pd.DataFrame(rows).T
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"
    print(f"mvnormal k=3 full, n={n}, d={d}, BLAS threads: {threads}")
    with pd.option_context("display.max_colwidth", 120, "display.width", 200, "display.float_format", "{:.4f}".format):
        print(table.to_string())
    if "sklearn" in rows:
        sk = rows["sklearn"]
        print(f"time ratio bayesfmm / sklearn: wall {bf_wall / sk['wall_s']:.2f}, cpu {bf_cpu / sk['cpu_s']:.2f}; "
              f"llf difference {res.llf - sk['llf']:+.6f}; bayesfmm reached sklearn's llf: {res.llf >= sk['llf'] - 1e-6}")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(model.fit, data)
        print(_stages(profile).to_string())


if __name__ == "__main__":
    main()
