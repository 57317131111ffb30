"""The default fit's extra cost (issue 13): ``fit()`` against ``fit(startvalues="factor")``.

The default fit runs Stata's factor start and then, on small problems, a search of random
starts for a better maximum (bayesfmm.ml.search), plus the identification checks
(bayesfmm.ml.identification). This times both on the benchmark models of bench_ml.py
(3-class gaussian regression) and bench_poisson.py (2-class Poisson regression).

    .venv/bin/python benchmarks/bench_search.py            # n = 2e3, 1e5, 1e6 (~1 min)
    .venv/bin/python benchmarks/bench_search.py 2e3 1e5    # chosen sizes
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd

import bayesfmm as bf


def regression(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    beta = np.array([[-6.0, 1.0, 2.0], [0.0, -1.0, 0.5], [6.0, 0.5, -1.0]])
    sd = np.array([1.0, 0.7, 1.2])
    x = rng.standard_normal((n, 2))
    cls = rng.choice(3, size=n, p=[0.3, 0.3, 0.4])
    y = np.einsum("ij,ij->i", np.column_stack([np.ones(n), x]), beta[cls]) + sd[cls] * rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x1": x[:, 0], "x2": x[:, 1]})


def poisson(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    eta = np.where(rng.random(n) < 0.4, 0.5 + 0.8 * x1 - 0.4 * x2, 2.5 - 0.5 * x1 + 0.3 * x2)
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x1": x1, "x2": x2})


def main(sizes: list[int]) -> None:
    warnings.simplefilter("ignore")
    print(f"{'n':>9}  {'model':<10} {'factor s':>9} {'default s':>10} {'extra s':>8} {'starts':>6}  same llf")
    for n in sizes:
        for name, model, data in (
            ("reg3 k=3", bf.FMM("y ~ x1 + x2", k=3), regression(n)),
            ("pois2 k=2", bf.FMM("y ~ x1 + x2", family="poisson", k=2), poisson(n)),
        ):
            model.fit(data.iloc[:1000])  # warm: lazy imports
            t0 = time.perf_counter()
            single = model.fit(data, startvalues="factor")
            t1 = time.perf_counter()
            default = model.fit(data)
            t2 = time.perf_counter()
            same = abs(default.llf - single.llf) < 1e-6
            print(f"{n:>9}  {name:<10} {t1 - t0:>9.2f} {t2 - t1:>10.2f} {t2 - t1 - (t1 - t0):>+8.2f} "
                  f"{default.starts.search_draws:>6}  {same}", flush=True)


if __name__ == "__main__":
    main([int(float(a)) for a in sys.argv[1:]] or [2_000, 100_000, 1_000_000])
