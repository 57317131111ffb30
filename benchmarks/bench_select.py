"""Speed-up of ``bf.select`` and ``bf.bootstrap_lrt`` from worker processes.

Each case runs the same search serially (``n_jobs=1``, in this process) and in worker
processes (``n_jobs=2`` and ``n_jobs=None`` = every CPU), checks that the results are
identical (same seed), and prints the wall times and speed-ups as a table, also written to
``benchmarks/results/bench_select.csv``.

* ``NregFix``: the issue's run, ``bf.select(FMM("y ~ x2 + x1"), NregFix, k=1..5,
  nrep=10)`` (41 fits of 200 rows: a few seconds, so process start-up shows).
* ``reg3 n=5000``: the same search on a simulated 3-class regression ``y ~ x1 + x2`` with
  5,000 rows (the ``bench_ml.py`` truth), where each fit costs more.
* ``bootstrap``: ``bf.bootstrap_lrt`` of 2 vs 3 classes on 300 simulated rows, 39
  replicates with 4 starts each.

Run: ``.venv/bin/python benchmarks/bench_select.py [--quick] [--repeats 3]``. Timings on a
shared machine are noisy: the table prints the load average before the run. Exits with
status 1 if serial and parallel results differ or NregFix's BIC does not pick 3 classes.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmark the working tree even without an install

import bayesfmm as bf  # noqa: E402
from bayesfmm.parallel import available_cpus  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "bench_select.csv"
SEED = 20240611


def reg3(n: int, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    coef = np.array([[-6.0, 1.0, 2.0], [0.0, -1.0, 0.5], [6.0, 0.5, -1.0]])
    x = rng.standard_normal((n, 2))
    cls = rng.choice(3, size=n, p=[0.3, 0.3, 0.4])
    y = np.einsum("ij,ij->i", np.column_stack([np.ones(n), x]), coef[cls])
    y += np.array([1.0, 0.7, 1.2])[cls] * rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x1": x[:, 0], "x2": x[:, 1]})


def two_class(n: int, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    cls = rng.choice(2, size=n, p=[0.4, 0.6])
    y = np.array([-2.0, 2.0])[cls] + np.array([1.0, -1.0])[cls] * x + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x})


def cases(quick: bool):
    nreg = bf.datasets.load("NregFix")
    yield ("NregFix k=1..5 nrep=10", 200, 41,
           lambda nj: bf.select(bf.FMM("y ~ x2 + x1", k=1), nreg, k=range(1, 6), nrep=10, seed=SEED, n_jobs=nj, progress=False))
    if quick:
        return
    big = reg3(5_000)
    yield ("reg3 k=1..5 nrep=10", 5_000, 41,
           lambda nj: bf.select(bf.FMM("y ~ x1 + x2", k=1), big, k=range(1, 6), nrep=10, seed=SEED, n_jobs=nj, progress=False))
    small = two_class(300)
    yield ("bootstrap 2 vs 3, B=39", 300, 2 * 4 + 39 * 5,
           lambda nj: bf.bootstrap_lrt(bf.FMM("y ~ x", k=1), small, k=2, nboot=39, nrep=4, seed=SEED, n_jobs=nj, progress=False))


def fingerprint(result) -> tuple:
    if isinstance(result, bf.SelectionResult):
        return tuple(result.table["llf"].round(10).fillna(0)), tuple(result.table["n_failed"])
    return tuple(np.nan_to_num(result.boot_statistics).round(10)), result.pvalue


def timed(run, n_jobs, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run(n_jobs)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="NregFix only")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (median)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)  # fork() in a process with BLAS threads
    cpus = available_cpus()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"CPUs available: {cpus}; load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    rows, failed = [], False
    for name, n, fits, run in cases(args.quick):
        run(1)  # warm-up: lazy imports, first touch of memory
        serial_s, serial = timed(run, 1, args.repeats)
        settings = [2] + ([None] if cpus != 2 else [])
        for n_jobs in [1] + settings:
            seconds, result = (serial_s, serial) if n_jobs == 1 else timed(run, n_jobs, args.repeats)
            same = fingerprint(result) == fingerprint(serial)
            check = "ok" if same else "DIFFERS"
            if name.startswith("NregFix") and result.best_k("BIC") != 3:
                check = "BIC k != 3"
            failed |= check != "ok"
            rows.append({
                "case": name, "n": n, "fits": fits, "n_jobs": n_jobs or cpus,
                "seconds": round(seconds, 3), "speedup": round(serial_s / seconds, 2), "check": check,
            })
    header = ("case", "n", "fits", "n_jobs", "seconds", "speedup", "check")
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in header]
    print("  ".join(h.ljust(w) if h == "case" else h.rjust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(str(r[h]).ljust(w) if h == "case" else str(r[h]).rjust(w) for h, w in zip(header, widths)))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
