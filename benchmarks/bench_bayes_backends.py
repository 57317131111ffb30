"""ESS per second and compile time by sampler backend, at growing n (issue 15).

Model: a k = 2 gaussian regression ``y ~ x`` on simulated data (classes at intercepts 0
and 3, slopes 1 and -1, error sds 1 and 0.5, shares 0.6/0.4); n = 485 (stamp's size), 1e4
and 1e5 by default. Backends:

* ``nutpie``: nutpie with the numba backend (the default sampler);
* ``nutpie-jax``: nutpie with ``backend="jax"`` (jax's CPU or GPU, whichever jax finds);
* ``numpyro``: ``sampler="numpyro"`` (NUTS in JAX through PyMC);
* ``pymc``: PyMC's own NUTS.

Each row is one ``model.sample(data, draws, tune, chains=4)`` in a process where the model
was not compiled before (the compile cache is cleared): ``compile s`` (nutpie's compile;
for PyMC-driven samplers it is inside ``sample s``), ``sample s``, ``min ESS`` (bulk, over
all parameters), ``ESS/s`` (min bulk ESS per second of sampling), ``max R-hat``. Rows are
appended to ``benchmarks/results/bench_bayes_backends.csv``.

Run ``.venv/bin/python benchmarks/bench_bayes_backends.py --n 485 10000 --backend nutpie
nutpie-jax`` (the defaults: every n and every installed backend; the n = 1e5 rows take
minutes on 2 cores, and are meant for a bigger or GPU machine, with ``--n 100000 1000000``).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayesfmm as bf
from bayesfmm.bayes.runners import clear_compile_cache

BACKENDS = {
    "nutpie": {"sampler": "nutpie"},
    "nutpie-jax": {"sampler": "nutpie", "backend": "jax"},
    "numpyro": {"sampler": "numpyro"},
    "pymc": {"sampler": "pymc"},
}
RESULTS = Path(__file__).resolve().parent / "results" / "bench_bayes_backends.csv"


def simulate(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    second = rng.random(n) < 0.4
    y = np.where(second, 3.0 - x + rng.normal(0, 0.5, n), x + rng.normal(0, 1.0, n))
    return pd.DataFrame({"y": y, "x": x})


def available(name: str) -> bool:
    needs = {"nutpie-jax": ("jax",), "numpyro": ("jax", "numpyro")}.get(name, ())
    return all(importlib.util.find_spec(pkg) is not None for pkg in needs)


def run(n: int, backend: str, draws: int, tune: int, seed: int) -> dict:
    data = simulate(n, seed)
    clear_compile_cache()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bf.FMM("y ~ x", k=2).sample(data, draws=draws, tune=tune, chains=4, random_seed=seed,
                                          progressbar=False, **BACKENDS[backend])
    wall = time.perf_counter() - start
    diag = res.diagnostics()
    sample_s = res.timing.get("sample_s", float("nan"))
    return {
        "n": n, "backend": backend, "draws": draws, "wall s": round(wall, 1),
        "compile s": round(res.timing.get("compile_s", 0.0), 1), "sample s": round(sample_s, 1),
        "min ESS": round(diag.min_ess_bulk), "ESS/s": round(diag.min_ess_bulk / sample_s, 1),
        "max R-hat": round(diag.max_rhat, 4), "div": diag.divergences,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[485, 10_000, 100_000])
    parser.add_argument("--backend", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for n in args.n:
        for backend in args.backend:
            if not available(backend):
                print(f"skipping {backend}: not installed (pip install 'bayesfmm[jax]')")
                continue
            row = run(n, backend, args.draws, args.tune, args.seed)
            print(row, flush=True)
            rows.append(row)
    table = pd.DataFrame(rows)
    print("\n" + table.to_string(index=False))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new = not RESULTS.exists()
    with RESULTS.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table.columns))
        if new:
            writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
