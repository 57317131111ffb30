"""Timing benchmark of the posterior mode (``FMM.map``) on the stamp data.

Rows (``fmm 3: regress thickness`` on stamp), each timed in a fresh Python process:

* ``stamp k=3 default priors``: ``model.map(stamp)``.
* ``stamp k=3 flat priors``: ``model.map(stamp, priors="flat")``; the mode is then the ML
  estimate, and ``max |MAP-ML|`` (the largest absolute difference from ``model.fit(stamp)``
  over every parameter, optimiser scale) says how close the two engines land.
* ``stamp k=3 [1]var(e)=[2]var(e)`` (default and flat priors): the same under a linear
  constraint, which MAP must respect as the ML engine does.
* ``stamp k=3 lcinvariant=cons`` (flat priors): the intercepts equal across classes.

(``lcinvariant="errvar"`` at k = 3 is not a useful row: its ML fit has two identical
classes, a ridge on which MAP and ML may stop at different points of equal likelihood.)

Columns: ``cold s`` (the first ``map`` call in the process: lazy imports, any compilation,
the ML start fit), ``warm s`` (the median of 3 further calls), ``max |MAP-ML|`` (flat-prior
rows), ``logp`` (log posterior at the mode) and ``conv``. Written to
``benchmarks/results/bench_map.csv``.

Run it with ``.venv/bin/python benchmarks/bench_map.py``. It exits with status 1 when a
flat-prior row differs from ML by more than 1e-6 or a row did not converge. Timings on a
shared machine are noisy: compare runs on the same, quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "bench_map.csv"
TOL = 1e-6

ROWS = [
    ("stamp k=3 default priors", {}, None),
    ("stamp k=3 flat priors", {}, "flat"),
    ("stamp k=3 [1]var(e)=[2]var(e) default", {"constraints": "[1]var(e) = [2]var(e)"}, None),
    ("stamp k=3 [1]var(e)=[2]var(e) flat", {"constraints": "[1]var(e) = [2]var(e)"}, "flat"),
    ("stamp k=3 lcinvariant=cons flat", {"lcinvariant": "cons"}, "flat"),
]

# run in a fresh process: argv[1] is the JSON of (options, priors, warm repeats)
CHILD = r"""
import json, statistics, sys, time, warnings
import numpy as np
options, priors, repeats = json.loads(sys.argv[1])
import bayesfmm as bf
stamp = bf.datasets.load("stamp")
model = bf.FMM("thickness ~ 1", k=3, **options)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    res = model.map(stamp, priors=priors)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.map(stamp, priors=priors)
        warm.append(time.perf_counter() - t0)
    diff = None
    if priors == "flat":
        ml = model.fit(stamp)
        diff = float(np.max(np.abs(np.asarray(res.theta) - np.asarray(ml.theta))))
print(json.dumps({"cold_s": cold, "warm_s": statistics.median(warm) if warm else None,
                  "diff": diff, "logp": float(res.logp), "converged": bool(res.converged)}))
"""

COLUMNS = [("model", "<", 38), ("cold_s", ">", 8), ("warm_s", ">", 8), ("diff", ">", 13), ("logp", ">", 11), ("converged", ">", 5)]
HEADERS = {"model": "model", "cold_s": "cold s", "warm_s": "warm s", "diff": "max |MAP-ML|", "logp": "logp", "converged": "conv"}


def run_row(options: dict, priors: str | None, repeats: int) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([options, priors, repeats])],
        capture_output=True, text=True, env=env, cwd=REPO, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if key in ("cold_s", "warm_s"):
        return f"{value:.2f}"
    if key == "diff":
        return f"{value:.2e}"
    if key == "logp":
        return f"{value:.4f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm calls per row (default 3)")
    args = parser.parse_args(argv)
    rows = []
    for name, options, priors in ROWS:
        row = {"model": name, **run_row(options, priors, args.repeats)}
        rows.append(row)
        print(" ".join(f"{fmt(k, row[k]):{a}{w}}" for k, a, w in COLUMNS) if len(rows) > 1 else
              " ".join(f"{HEADERS[k]:{a}{w}}" for k, a, w in COLUMNS) + "\n"
              + " ".join(f"{fmt(k, row[k]):{a}{w}}" for k, a, w in COLUMNS), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[k for k, _, _ in COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
    bad = [r["model"] for r in rows if not r["converged"] or (r["diff"] is not None and r["diff"] > TOL)]
    if bad:
        print(f"FAILED: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
