"""Timing benchmark of NUTS on the stamp data: our model under two samplers against a plain
PyMC ``pm.NormalMixture`` model, in one run.

Rows (all ``fmm 3: regress thickness``, 4 chains x 1000 draws after 1000 tuning by default):

* ``bayesfmm nutpie``: ``bf.FMM("thickness ~ 1", k=3).sample(stamp, sampler="nutpie")``:
  chains start from the ML fit jittered by its standard errors, ordering on the means.
* ``bayesfmm pymc``: the same with PyMC's own NUTS (``sampler="pymc"``).
* ``plain PyMC pymc`` / ``plain PyMC nutpie``: what a user would write by hand:
  ``pm.NormalMixture`` with a Dirichlet(1, 1, 1) weight, normal means ordered by PyMC's
  ``ordered`` transform (spread initial values across the data quartiles, as the PyMC
  examples do; the transform needs distinct values), half-normal sds, weakly informative
  priors scaled to the data, and PyMC's default initialisation (``jitter+adapt_diag``).

Columns: ``wall s`` (the whole call, ML start and model build included), ``compile s`` and
``sample s`` where the sampler reports them (for PyMC's sampler ``sample s`` includes its
compile), ``min ESS`` (bulk, over every free parameter;
``min tail`` likewise), ``ESS/s`` (min bulk ESS per second of wall time) and ``ESS/s
sampling`` (per second of sampling alone), ``max R-hat``, ``div`` (divergences), and ``max
|mean - ML|``: the largest distance of a class mean's posterior mean from the ML estimate,
in posterior sds (classes matched by sorting the means). Written to
``benchmarks/results/bench_bayes.csv``.

Run it with ``.venv/bin/python benchmarks/bench_bayes.py [--quick] [--seed 1]``. Timings on a
shared machine are noisy: compare runs on the same, quiet machine. It exits with status 1 if
a bayesfmm row misses R-hat <= 1.01 or has divergences.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmark the working tree even without an install

import bayesfmm as bf  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "bench_bayes.csv"
COLUMNS = [
    ("model", "model", "<"),
    ("sampler", "sampler", "<"),
    ("wall_s", "wall s", ">"),
    ("compile_s", "compile s", ">"),
    ("sample_s", "sample s", ">"),
    ("min_ess", "min ESS", ">"),
    ("min_ess_tail", "min tail", ">"),
    ("ess_per_s", "ESS/s", ">"),
    ("ess_per_s_sampling", "ESS/s sampling", ">"),
    ("max_rhat", "max R-hat", ">"),
    ("divergences", "div", ">"),
    ("max_dev_sd", "max |mean-ML| sd", ">"),
]


def draws_matrix(posterior, names: list[str]) -> np.ndarray:
    """(chain, draw, p) from the named posterior variables, their class axes flattened."""
    parts = []
    for name in names:
        values = posterior[name].to_numpy()
        parts.append(values.reshape(values.shape[0], values.shape[1], -1))
    return np.concatenate(parts, axis=2)


def convergence(draws: np.ndarray) -> dict:
    import arviz_stats as azs

    return {
        "min_ess": float(np.min(azs.ess(draws, method="bulk"))),
        "min_ess_tail": float(np.min(azs.ess(draws, method="tail", prob=0.05))),
        "max_rhat": float(np.max(azs.rhat(draws))),
    }


def mean_deviation(means: np.ndarray, ml_means: np.ndarray) -> float:
    """Largest |posterior mean - ML| of the class means, in posterior sds (sorted classes)."""
    flat = np.sort(means.reshape(-1, means.shape[-1]), axis=1)
    return float(np.max(np.abs(flat.mean(axis=0) - np.sort(ml_means)) / flat.std(axis=0)))


def divergences(idata) -> int:
    stats = idata["sample_stats"]
    return int(np.asarray(stats["diverging"]).sum()) if "diverging" in stats else 0


def run_ours(stamp, sampler: str, args, ml_means: np.ndarray) -> dict:
    model = bf.FMM("thickness ~ 1", family="gaussian", k=3)
    start = time.perf_counter()
    res = model.sample(
        stamp, draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed,
        sampler=sampler, progressbar=False,
    )
    wall = time.perf_counter() - start
    post = res.idata["posterior"]
    row = {"model": "bayesfmm", "sampler": sampler, "wall_s": wall, **res.timing}
    if sampler != "nutpie":  # PyMC's sampler compiles inside pm.sample: its time is in sample s
        row["compile_s"] = None
    row.update(convergence(res.theta_draws))
    row["divergences"] = divergences(res.idata)
    row["max_dev_sd"] = mean_deviation(post["thickness_Intercept"].to_numpy(), ml_means)
    return row


def plain_model(y: np.ndarray):
    """A hand-written NormalMixture, as in PyMC's examples."""
    import pymc as pm
    from pymc.distributions.transforms import ordered

    spread = float(np.std(y))
    with pm.Model() as model:
        w = pm.Dirichlet("w", a=np.ones(3))
        mu = pm.Normal(
            "mu", mu=float(np.mean(y)), sigma=2.5 * spread, shape=3, transform=ordered,
            initval=np.quantile(y, [0.25, 0.5, 0.75]),
        )
        sigma = pm.HalfNormal("sigma", sigma=2.5 * spread, shape=3)
        pm.NormalMixture("thickness", w=w, mu=mu, sigma=sigma, observed=y)
    return model


def run_plain(y: np.ndarray, sampler: str, args, ml_means: np.ndarray) -> dict:
    import pymc as pm

    start = time.perf_counter()
    model = plain_model(y)
    idata = pm.sample(
        draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed, model=model,
        nuts_sampler=sampler, progressbar=False, compute_convergence_checks=False,
    )
    wall = time.perf_counter() - start
    post = idata["posterior"]
    row = {"model": "plain PyMC NormalMixture", "sampler": sampler, "wall_s": wall}
    stats = idata["sample_stats"].attrs
    if "sampling_time" in stats:
        row["sample_s"] = float(stats["sampling_time"])
    row.update(convergence(draws_matrix(post, ["w", "mu", "sigma"])))
    row["divergences"] = divergences(idata)
    row["max_dev_sd"] = mean_deviation(post["mu"].to_numpy(), ml_means)
    return row


def fmt(value, key: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if key in ("min_ess", "min_ess_tail", "ess_per_s", "ess_per_s_sampling"):
        return f"{value:.0f}"
    if key == "max_rhat":
        return f"{value:.3f}"
    if key.endswith("_s") or key == "max_dev_sd":
        return f"{value:.2f}"
    return str(value)


def print_table(rows: list[dict]) -> None:
    cells = [[fmt(r.get(key), key) for key, _, _ in COLUMNS] for r in rows]
    widths = [max(len(title), *(len(c[i]) for c in cells)) for i, (_, title, _) in enumerate(COLUMNS)]
    line = "  ".join(f"{title:{a}{w}}" for (_, title, a), w in zip(COLUMNS, widths))
    print(line)
    print("-" * len(line))
    for c in cells:
        print("  ".join(f"{v:{a}{w}}" for v, (_, _, a), w in zip(c, COLUMNS, widths)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 chains x 300 draws after 300 tuning")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    args = parser.parse_args(argv)
    if args.quick:
        args.draws, args.tune, args.chains = 300, 300, 2
    warnings.simplefilter("ignore")
    import logging

    logging.getLogger("pymc").setLevel(logging.ERROR)
    stamp = bf.datasets.load("stamp")
    ml = bf.FMM("thickness ~ 1", family="gaussian", k=3).fit(stamp)
    ml_means = np.array([ml.params[(j, "thickness", "Intercept")] for j in (1, 2, 3)])
    samplers = ["nutpie", "pymc"] if importlib.util.find_spec("nutpie") else ["pymc"]
    if "nutpie" not in samplers:
        print("nutpie is not installed (pip install nutpie): its rows are skipped")
    print(
        f"stamp, fmm 3: regress thickness; {args.chains} chains x {args.draws} draws after {args.tune} "
        f"tuning, seed {args.seed}; {os.cpu_count()} CPUs"
    )
    rows = []
    for sampler in samplers:
        rows.append(run_ours(stamp, sampler, args, ml_means))
    for sampler in samplers:
        rows.append(run_plain(stamp["thickness"].to_numpy(dtype=float), sampler, args, ml_means))
    for row in rows:
        row["ess_per_s"] = row["min_ess"] / row["wall_s"]
        if row.get("sample_s"):
            row["ess_per_s_sampling"] = row["min_ess"] / row["sample_s"]
    print()
    print_table(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[key for key, _, _ in COLUMNS], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {RESULTS}")
    bad = [r for r in rows if r["model"] == "bayesfmm" and (r["max_rhat"] > 1.01 or r["divergences"] > 0)]
    for r in bad:
        print(f"CHECK FAILED: bayesfmm {r['sampler']}: max R-hat {r['max_rhat']:.3f}, {r['divergences']} divergences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
