"""Timing benchmark: ``mvnormal`` k=3 full covariances against scikit-learn's
``GaussianMixture(covariance_type="full")`` on the same simulated data (issue 18).

Data: n rows x d dimensions (default 1e5 x 10), three classes with shares 0.3/0.3/0.4,
means 3 apart on random directions and random full covariances (fixed seed; not timed).
bayesfmm: ``bf.FMM("y1 + ... + yd ~ 1", family="mvnormal", k=3).fit(df)`` (default start:
k-means++ on the data, EM, Newton with the exact Hessian, OIM standard errors; everything
timed). scikit-learn: ``GaussianMixture(3, covariance_type="full", tol=1e-8,
max_iter=5000, n_init=1, reg_covar=1e-12)`` (k-means start, EM only, no standard errors).
Reported: seconds, log likelihood, and whether bayesfmm reached at least scikit-learn's.

Run: ``.venv/bin/python benchmarks/bench_mvnormal.py [--n 1e5] [--d 10]``. The machine's
load matters (the numbers in docs/benchmarks.md name the machine and its sharing).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import bayesfmm as bf


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=float, default=1e5)
    parser.add_argument("--d", type=int, default=10)
    args = parser.parse_args()
    n, d = int(args.n), args.d
    data = simulate(n, d)
    formula = " + ".join(data.columns) + " ~ 1"
    t0 = time.perf_counter()
    res = bf.FMM(formula, family="mvnormal", k=3).fit(data)
    t_bf = time.perf_counter() - t0
    row = {"n": n, "d": d, "bayesfmm_s": round(t_bf, 2), "bayesfmm_llf": round(res.llf, 4), "converged": res.converged}
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError:
        print(pd.Series(row).to_string())
        return
    t0 = time.perf_counter()
    gm = GaussianMixture(3, covariance_type="full", tol=1e-8, max_iter=5000, n_init=1, reg_covar=1e-12, random_state=0)
    gm.fit(data.to_numpy())
    t_sk = time.perf_counter() - t0
    llf_sk = float(gm.score(data.to_numpy()) * n)
    row.update(sklearn_s=round(t_sk, 2), sklearn_llf=round(llf_sk, 4), reached=bool(res.llf >= llf_sk - 1e-6))
    print(pd.Series(row).to_string())


if __name__ == "__main__":
    main()
