"""Timing benchmark of a 2-class Poisson regression mixture ``y ~ x1 + x2`` (ML fit).

The data are simulated with a fixed seed at n = 1e3 ... 1e6 (x1, x2 ~ N(0, 1); class
probabilities 0.4/0.6; log-linear coefficients (0.5, 0.8, -0.4) and (2.5, -0.5, 0.3), so
the class means are about 1.6 and 12); data generation is not timed. Each size is fitted
in this (warm) process: ``bf.FMM("y ~ x1 + x2", family="poisson", k=2).fit(df)`` with the
default start (start values -> EM -> Newton -> OIM). Reported as in ``bench_ml.py``: the
first and the median fit time, log likelihood, EM and Newton iterations, convergence, the
largest absolute error of the coefficients and of the class probabilities against the truth
(classes matched by intercept), the memory high-water mark, and R flexmix
(``FLXMRglm(family = "poisson")``) on the same data in the same run, started from the same
partition (``flexmix_fit.R``'s fifth argument), when ``Rscript`` with flexmix is installed.
Without R the times quoted in the issue (0.07 s at 1e3, 22.6 s at 1e6) are shown.

Run it with ``make bench`` or ``.venv/bin/python benchmarks/bench_poisson.py [--quick]
[--max-n 1e5] [--no-flexmix]``; the table is also written to
``benchmarks/results/bench_poisson.csv``. It exits with status 1 when a fit does not
converge or misses the truth by more than 5 standard errors on a coefficient.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from bench_ml import (  # same folder: shared helpers of the gaussian benchmark
    FLEXMIX_SCRIPT,
    REPO,
    em_iterations,
    flexmix_available,
    fmt,
    max_rss_mib,
    parse_n,
)

import bayesfmm as bf  # noqa: E402  (bench_ml puts the working tree on sys.path)

RESULTS = REPO / "benchmarks" / "results" / "bench_poisson.csv"
SEED = 20240612
TRUE_PROBS = np.array([0.4, 0.6])
TRUE_COEF = np.array([[0.5, 0.8, -0.4], [2.5, -0.5, 0.3]])  # per class: intercept, x1, x2
SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)
FLEXMIX_SECONDS = {1_000: 0.07, 1_000_000: 22.6}  # quoted in issue 3, same kind of machine
MAX_COEF_Z = 5.0  # the check: every coefficient within 5 standard errors of the truth

COLUMNS = [
    ("case", "case", "<"),
    ("n", "n", ">"),
    ("cold_fit_s", "cold fit s", ">"),
    ("fit_s", "fit s", ">"),
    ("reps", "reps", ">"),
    ("llf", "llf", ">"),
    ("em_iter", "EM it", ">"),
    ("nr_iter", "NR it", ">"),
    ("converged", "conv", ">"),
    ("max_err_coef", "max|err| b", ">"),
    ("max_err_pi", "max|err| pi", ">"),
    ("maxrss_mib", "max RSS MiB", ">"),
    ("flexmix_s", "flexmix s", ">"),
    ("ratio_flexmix", "x flexmix", ">"),
    ("flexmix_llf", "flexmix llf", ">"),
    ("flexmix_source", "flexmix src", "<"),
    ("check", "check", "<"),
]


def simulate(n: int, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.standard_normal(n)
    x2 = rng.standard_normal(n)
    z = rng.choice(2, size=n, p=TRUE_PROBS)
    a, b1, b2 = TRUE_COEF.T
    y = rng.poisson(np.exp(a[z] + b1[z] * x1 + b2[z] * x2))
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2})


def estimation_errors(res) -> tuple[float, float, float]:
    """Max |error| of the coefficients and of the class probabilities, and the largest
    coefficient error in standard errors, classes matched by intercept."""
    p, se = res.params, res.bse
    k = TRUE_COEF.shape[0]
    terms = ("Intercept", "x1", "x2")
    coef = np.array([[p[(j, "y", t)] for t in terms] for j in range(1, k + 1)])
    coef_se = np.array([[se[(j, "y", t)] for t in terms] for j in range(1, k + 1)])
    probs = res.lcprob()["margin"].to_numpy()
    order = np.argsort(coef[:, 0])
    truth = np.argsort(TRUE_COEF[:, 0])
    err = np.abs(coef[order] - TRUE_COEF[truth])
    err_pi = np.max(np.abs(probs[order] - TRUE_PROBS[truth]))
    return float(err.max()), float(err_pi), float(np.max(err / coef_se[order]))


def time_flexmix(df: pd.DataFrame) -> tuple[float, float, int, int]:
    """(seconds, logLik, EM iterations, classes kept) of one flexmix Poisson fit, timed in R."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        df.to_csv(path, index=False)
        out = subprocess.run(
            ["Rscript", str(FLEXMIX_SCRIPT), str(path), "y ~ x1 + x2", "2", "1", "poisson"],
            capture_output=True, text=True, check=True,
        )
    seconds, llf, iterations, kept = out.stdout.split()
    return float(seconds), float(llf), int(iterations), int(kept)


def bench(n: int, with_flexmix: bool) -> dict:
    df = simulate(n)
    model = bf.FMM("y ~ x1 + x2", family="poisson", k=2)
    reps = 3 if n < 1_000_000 else 1
    times, res = [], None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is reported in the table
        for _ in range(reps):
            start = time.perf_counter()
            res = model.fit(df)
            times.append(time.perf_counter() - start)
    err_b, err_pi, err_z = estimation_errors(res)
    fit_s = statistics.median(times)
    ref, source, flex_llf = FLEXMIX_SECONDS.get(n), "quoted", None
    if with_flexmix:
        ref, flex_llf, flex_iter, kept = time_flexmix(df)
        source = f"same run, {flex_iter} EM it, k={kept}"
    ok = bool(res.converged) and err_z < MAX_COEF_Z
    return {
        "case": "pois2 y~x1+x2 k=2",
        "n": n,
        "cold_fit_s": times[0],
        "fit_s": fit_s,
        "reps": reps,
        "llf": res.llf,
        "em_iter": em_iterations(res),
        "nr_iter": int(res.iterations),
        "converged": bool(res.converged),
        "max_err_coef": err_b,
        "max_err_pi": err_pi,
        "maxrss_mib": max_rss_mib(),
        "flexmix_s": ref,
        "ratio_flexmix": fit_s / ref if ref else None,
        "flexmix_llf": flex_llf,
        "flexmix_source": source if ref else "",
        "check": f"ok ({err_z:.1f} se)" if ok else ("NOT CONVERGED" if not res.converged else f"TRUTH MISSED ({err_z:.1f} se)"),
        "_ok": ok,
    }


def print_table(rows: list[dict]) -> None:
    cells = [[fmt(r.get(key), key) for key, _, _ in COLUMNS] for r in rows]
    widths = [max(len(head), *(len(c[i]) for c in cells)) for i, (_, head, _) in enumerate(COLUMNS)]

    def line(values):
        return "  ".join(v.ljust(w) if a == "<" else v.rjust(w) for v, w, (_, _, a) in zip(values, widths, COLUMNS)).rstrip()

    print(line([head for _, head, _ in COLUMNS]))
    print(line(["-" * w for w in widths]))
    for c in cells:
        print(line(c))


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[key for key, _, _ in COLUMNS])
        writer.writeheader()
        for r in rows:
            writer.writerow({key: ("" if r.get(key) is None else r.get(key)) for key, _, _ in COLUMNS})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-n", type=parse_n, default=1_000_000, help="largest n to fit (default 1e6)")
    parser.add_argument("--quick", action="store_true", help="only n = 1e3 and 1e4")
    parser.add_argument("--csv", type=Path, default=RESULTS, help=f"CSV output (default {RESULTS.relative_to(REPO)})")
    parser.add_argument("--no-flexmix", action="store_true", help="do not run R flexmix even if installed")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    sizes = [n for n in (QUICK_SIZES if args.quick else SIZES) if n <= args.max_n]
    print(
        f"bayesfmm Poisson-mixture benchmark: Python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    with warnings.catch_warnings():  # warm the process: lazy imports stay out of the timings
        warnings.simplefilter("ignore")
        bf.FMM("y ~ x1 + x2", family="poisson", k=2).fit(simulate(500))
    with_flexmix = not args.no_flexmix and flexmix_available()
    print(f"R flexmix: {'timed in this run' if with_flexmix else 'not installed; quoting the issue'}")
    rows = []
    for n in sizes:
        rows.append(bench(n, with_flexmix))
        print(f"  n={n:.0e}: {rows[-1]['fit_s']:.3f} s", file=sys.stderr, flush=True)
    print()
    print_table(rows)
    print()
    print("cold fit: the first fit at that size; fit s: median of 3 (1 at 1e6); EM it = '(EM)' lines of the")
    print("iteration log; NR it = res.iterations; max|err|: vs the simulation truth, classes matched by intercept;")
    print("flexmix s: R flexmix (FLXMRglm poisson) on the same data from the same start partition (flexmix llf),")
    print("or, without R, the times quoted in the issue (flexmix src = quoted).")
    write_csv(rows, args.csv)
    print(f"CSV: {args.csv}")
    failed = [f"n={r['n']}" for r in rows if not r["_ok"]]
    if failed:
        print(f"CHECK FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
