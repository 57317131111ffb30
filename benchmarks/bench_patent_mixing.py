"""How well NUTS mixes on the patent posterior: the issue-7 line "R-hat <= 1.01 at 4 chains x
1000 draws after 1000 tuning, in 10 of 10 seeds" under every sampler setting tried.

Model: ``bf.FMM("Patents ~ lgRD", family="poisson", k=3, lcprob="~ RDS")`` on flexmix's
patent data (70 firms, 10 parameters), default priors, ``init="ml"``, ordering on the
intercepts (the default). Each row samples seeds 1..10 (``--seeds``) and reports, over the
seeds: how many meet R-hat <= 1.01, the range of the max R-hat (rank-normalised split
R-hat, arviz-stats, as ``post.diagnostics()``), the median of the min bulk ESS and of the
bulk ESS of class 1's slope and of class 3's RDS coefficient (the two slowest), the
divergences (all seeds), the largest |posterior mean - ML| / posterior sd, and the
sampling seconds (all seeds) with the min bulk ESS per sampling second (median over seeds).

Rows (``--rows`` picks some):

* ``default``: ``model.sample`` as shipped (nutpie, low-rank mass matrix, target_accept 0.8).
* ``diag 0.95``, ``draw_diag 0.95``, ``draw_diag 0.85``, ``draw_diag 0.99``: nutpie's
  diagonal mass matrix from draws and gradients (``diag``) or from draws alone
  (``draw_diag``, Stan's and PyMC's rule) at that ``target_accept``.
* ``dense pilot + diag 0.95``: the sampler's unconstrained vector is written
  ``y = m + L z`` with ``L L'`` the covariance of a pilot run's draws (4 x 2000, seed 0,
  ``diag 0.95``), and NUTS samples ``z``. This is the best a dense mass matrix could do:
  the posterior's own covariance (a constant Jacobian, so the posterior is unchanged).
* ``asinh class slopes + draw_diag 0.95``: the class-model covariate coefficients are
  sampled as ``u = asinh(beta)`` (Jacobian added, posterior unchanged), which compresses
  the prior-bounded shelf of class 3's RDS coefficient logarithmically.
* ``diag 0.95 at 4 x 4000``: the larger budget under which every criterion is met.
* ``flow``: nutpie's normalizing-flow adaptation (needs ``flowjax`` and ``jax``; one seed,
  skipped without them).

Run: ``.venv/bin/python benchmarks/bench_patent_mixing.py [--rows "diag 0.95,draw_diag 0.95"]
[--seeds 1-10]``. Takes 20-30 minutes for every row on 2 cores. Writes
``benchmarks/results/bench_patent_mixing.csv``. Sampling seconds are noisy on a shared
machine; R-hat, ESS and divergences are fixed by the seed.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
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
from bayesfmm.bayes.identify import relabel_to_order  # noqa: E402
from bayesfmm.bayes.sample import _ml_fit, build_model, ml_start_for, seeded_initial_point  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "bench_patent_mixing.csv"
RHAT_MAX = 1.01
SPEC = bf.FMM("Patents ~ lgRD", family="poisson", k=3, lcprob="~ RDS")
SLOPE_1 = (1, "Patents", "lgRD")  # class 1's slope: minor modes (which high-lgRD firms join class 1)
RDS_3 = (3, "Class", "RDS")  # class 3's RDS coefficient: the prior-bounded shelf

ROWS = {
    "default": {"kwargs": {}},
    "diag 0.95": {"kwargs": {"target_accept": 0.95, "adaptation": "diag"}},
    "draw_diag 0.95": {"kwargs": {"target_accept": 0.95, "adaptation": "draw_diag"}},
    "draw_diag 0.85": {"kwargs": {"target_accept": 0.85, "adaptation": "draw_diag"}},
    "draw_diag 0.99": {"kwargs": {"target_accept": 0.99, "adaptation": "draw_diag"}},
    "dense pilot + diag 0.95": {"kwargs": {"target_accept": 0.95, "adaptation": "diag"}, "reparam": "dense"},
    "asinh class slopes + draw_diag 0.95": {
        "kwargs": {"target_accept": 0.95, "adaptation": "draw_diag"},
        "reparam": "asinh",
    },
    "diag 0.95 at 4 x 4000": {"kwargs": {"target_accept": 0.95, "adaptation": "diag"}, "draws": 4000},
    "flow": {"kwargs": {"transform_adapt": True}, "reparam": "flow", "seeds": 1},
}


def _seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = (int(v) for v in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(v) for v in text.split(",")]


def _theta_from_flat(built, flat: np.ndarray) -> np.ndarray:
    """Inverse of ``built.flat_value`` on the last axis (the intercept ordering only)."""
    model = built.model
    theta = np.empty(flat.shape[:-1] + (built.problem.layout.size,))
    start = 0
    for rv in model.free_RVs:
        g = built.group(rv.name)
        size = len(g.positions)
        value = flat[..., start : start + size]
        start += size
        if built.order is not None and g.name == built.order.group:
            assert built.order.kind != "classpr"
            value = np.cumsum(np.concatenate([value[..., :1], np.exp(value[..., 1:])], axis=-1), axis=-1)
        theta[..., g.positions] = value
    return theta


class Reparameterised:
    """The PyMC model's log density written in ``u`` with ``y = forward(u)`` (the sampler's
    unconstrained vector) and the log Jacobian added: the same posterior, other geometry."""

    def __init__(self, built, kind: str, pilot: np.ndarray | None = None) -> None:
        import nutpie
        import pymc as pm
        import pytensor.tensor as pt
        from pytensor.graph import clone_replace

        self.built, self.kind = built, kind
        model = built.model
        values = [model.rvs_to_values[rv] for rv in model.free_RVs]
        sizes = [len(built.group(rv.name).positions) for rv in model.free_RVs]
        dim = sum(sizes)
        u = pt.dvector("u")
        if kind == "dense":
            flat = np.array([built.flat_value(t) for t in pilot.reshape(-1, pilot.shape[-1])])
            self.mean = flat.mean(axis=0)
            self.chol = np.linalg.cholesky(np.cov(flat.T) + 1e-10 * np.eye(dim))
            y = pt.as_tensor(self.mean) + pt.as_tensor(self.chol) @ u
            log_jac = pt.as_tensor(0.0)
        else:  # asinh on the class-model covariate coefficients
            mask = np.zeros(dim, bool)
            start = 0
            for rv, size in zip(model.free_RVs, sizes):
                if rv.name.startswith("Class_") and rv.name != "Class_Intercept":
                    mask[start : start + size] = True
                start += size
            self.mask = mask
            y = pt.switch(mask, pt.sinh(u), u)
            log_jac = pt.sum(pt.switch(mask, pt.log(pt.cosh(u)), 0.0))
        replacements, start = {}, 0
        for value, size in zip(values, sizes):
            replacements[value] = y[start : start + size]
            start += size
        logp = clone_replace(model.logp(jacobian=True), replacements) + log_jac
        with pm.Model() as reparam:
            z = pm.Flat("u", shape=dim)
            pm.Potential("logp", clone_replace(logp, {u: reparam.rvs_to_values[z]}))
        self.compiled = nutpie.compile_pymc_model(reparam, backend="numba")

    def to_flat(self, u: np.ndarray) -> np.ndarray:
        if self.kind == "dense":
            return self.mean + u @ self.chol.T
        return np.where(self.mask, np.sinh(u), u)

    def from_flat(self, y: np.ndarray) -> np.ndarray:
        if self.kind == "dense":
            return np.linalg.solve(self.chol, y - self.mean)
        return np.where(self.mask, np.arcsinh(y), y)

    def sample(self, ml, seed: int, draws: int, tune: int, **kwargs):
        import nutpie

        initial_point, _ = seeded_initial_point(
            ml_start_for(self.built, ml, seed), lambda t: self.from_flat(self.built.flat_value(t))
        )
        compiled = dataclasses.replace(self.compiled, initial_point_func=initial_point)
        t0 = time.perf_counter()
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=4, cores=min(4, os.cpu_count() or 1),
                              seed=seed, progress_bar=False, **kwargs)
        seconds = time.perf_counter() - t0
        theta = _theta_from_flat(self.built, self.to_flat(idata.posterior["u"].to_numpy()))
        return theta, int(idata.sample_stats["diverging"].sum()), seconds


def _flow_sample(built, ml, seed: int, draws: int, tune: int):
    import nutpie

    compiled = nutpie.compile_pymc_model(built.model, backend="jax", gradient_backend="jax").with_transform_adapt()

    initial_point, _ = seeded_initial_point(ml_start_for(built, ml, seed), built.flat_value)
    compiled = dataclasses.replace(compiled, _make_initial_points=initial_point)
    t0 = time.perf_counter()
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=4, cores=min(4, os.cpu_count() or 1),
                          seed=seed, progress_bar=False, transform_adapt=True)
    seconds = time.perf_counter() - t0
    return built.theta_from_posterior(idata.posterior), int(idata.sample_stats["diverging"].sum()), seconds


def _summary(theta: np.ndarray, built, ml) -> dict:
    import arviz_stats as azs

    rhat = np.asarray(azs.rhat(theta), dtype=float)
    ess = np.asarray(azs.ess(theta, method="bulk"), dtype=float)
    names = list(built.problem.layout.index)
    ml_theta = relabel_to_order(built.problem, built.order_group, built.order, ml.theta)
    layout = built.problem.layout
    report = np.array([layout.to_report(t) for t in theta.reshape(-1, theta.shape[-1])])
    z = (report.mean(axis=0) - layout.to_report(ml_theta)) / report.std(axis=0, ddof=1)
    return {
        "rhat": float(rhat.max()), "ess": float(ess.min()), "z": float(np.abs(z).max()),
        "ess_slope1": float(ess[names.index(SLOPE_1)]), "ess_rds3": float(ess[names.index(RDS_3)]),
    }


def run_row(name: str, seeds: list[int], pilot: np.ndarray | None, data) -> dict | None:
    row = ROWS[name]
    draws = row.get("draws", 1000)
    seeds = seeds[: row["seeds"]] if "seeds" in row else seeds
    built = build_model(SPEC, data)
    reparam = row.get("reparam")
    if reparam == "flow" and (importlib.util.find_spec("flowjax") is None or importlib.util.find_spec("jax") is None):
        print(f"{name}: skipped (needs flowjax and jax)")
        return None
    sampler = Reparameterised(built, reparam, pilot) if reparam in ("dense", "asinh") else None
    per_seed = []
    for seed in seeds:
        ml = _ml_fit(SPEC, data, random_seed=seed)
        if sampler is not None:
            theta, div, seconds = sampler.sample(ml, seed, draws, 1000, **row["kwargs"])
        elif reparam == "flow":
            theta, div, seconds = _flow_sample(built, ml, seed, draws, 1000)
        else:
            post = SPEC.sample(data, draws=draws, tune=1000, chains=4, random_seed=seed, progressbar=False,
                               **row["kwargs"])
            theta, div, seconds = post.theta_draws, post.diagnostics().divergences, post.timing["sample_s"]
        stats = _summary(theta, built, ml) | {"div": div, "seconds": seconds, "seed": seed}
        per_seed.append(stats)
        print(f"  {name} seed {seed}: R-hat {stats['rhat']:.4f}, min ESS {stats['ess']:.0f}, "
              f"divergences {div}, max |z| {stats['z']:.2f}, {seconds:.1f} s", flush=True)
    rhats = [s["rhat"] for s in per_seed]
    return {
        "row": name,
        "draws": f"4 x {draws}",
        "seeds": f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0]),
        "rhat_ok": f"{sum(r <= RHAT_MAX for r in rhats)} of {len(rhats)}",
        "max_rhat": f"{min(rhats):.4f}-{max(rhats):.4f}",
        "min_ess": f"{np.median([s['ess'] for s in per_seed]):.0f}",
        "ess_slope1": f"{np.median([s['ess_slope1'] for s in per_seed]):.0f}",
        "ess_rds3": f"{np.median([s['ess_rds3'] for s in per_seed]):.0f}",
        "divergences": str(sum(s["div"] for s in per_seed)),
        "max_z": f"{max(s['z'] for s in per_seed):.2f}",
        "sample_s": f"{sum(s['seconds'] for s in per_seed):.0f}",
        "ess_per_s": f"{np.median([s['ess'] / s['seconds'] for s in per_seed]):.0f}",
    }


COLUMNS = [
    ("row", "setting"), ("draws", "draws"), ("seeds", "seeds"), ("rhat_ok", "R-hat <= 1.01"),
    ("max_rhat", "max R-hat"), ("min_ess", "min ESS"), ("ess_slope1", "ESS slope 1"),
    ("ess_rds3", "ESS RDS 3"), ("divergences", "div"), ("max_z", "max |z|"),
    ("sample_s", "sample s"), ("ess_per_s", "ESS/s"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated row names")
    parser.add_argument("--seeds", default="1-10", help="e.g. 1-10 or 1,4,7")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {list(ROWS)}")
    warnings.filterwarnings("ignore")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    data = bf.datasets.load("patent")
    pilot = None
    if any(ROWS[n].get("reparam") == "dense" for n in names):
        pilot = SPEC.sample(data, draws=2000, tune=1000, chains=4, random_seed=0, progressbar=False,
                            target_accept=0.95, adaptation="diag").theta_draws
    results = [r for r in (run_row(n, _seeds(args.seeds), pilot, data) for n in names) if r is not None]
    widths = [max(len(title), *(len(r[key]) for r in results)) for key, title in COLUMNS]
    print()
    print("  ".join(title.ljust(w) for (_, title), w in zip(COLUMNS, widths)))
    for r in results:
        print("  ".join(r[key].ljust(w) for (key, _), w in zip(COLUMNS, widths)))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[key for key, _ in COLUMNS])
        writer.writeheader()
        writer.writerows(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
