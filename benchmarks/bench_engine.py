"""The ML engine against R flexmix and against the machine's memory bandwidth, in one run.

Five parts, printed as tables and written to ``benchmarks/results/bench_engine_*.csv``:

1. ``ratio``: flexmix time / bayesfmm time at n = 1e3 ... 1e6 for a gaussian regression
   mixture (k = 3, ``y ~ x1 + x2``), a Poisson one (k = 2), a binomial one (k = 2, trials
   5..20) and a negative binomial one (NB2, k = 2) against its nearest flexmix peer (the
   Poisson ``FLXMRglm`` on the same overdispersed counts: Debian's flexmix 2.3-18 has no
   negative binomial driver). Each bayesfmm case runs in a fresh process: ``import
   bayesfmm``, then the first fit (``FMM(...)`` built and fitted: it pays formulaic's first
   use and scipy's lazily loaded submodules), then warm fits (median). flexmix runs on the
   same data (``flexmix_fit.R``, timed inside R, from the partition our default start
   uses), with its log likelihood. Up to n = 1e5 each time is the median of 3 rounds,
   each round a flexmix run followed by a fresh bayesfmm process per fit (warm: the median
   of 11 fits at n <= 1e4, 3 at 1e5): a shared machine's speed drifts by up to 1.7x over
   tens of seconds, so both sides of a ratio are timed in the same stretch of time.
   Each model is timed twice: its default fit (which now also searches 20 random starts
   for a better maximum, ``bayesfmm.ml.search``) and ``search=0`` (the default start
   alone: start values, EM, Newton and the covariance, what flexmix's one fit does).
2. ``scaling``: warm fit time (``search=0``) and per-iteration times of the gaussian model at n = 1e5 in
   the number of classes (k = 2, 3, 5, 8; two regressors) and of regressors (2, 10, 50;
   k = 3).
3. ``iteration``: at n = 1e6, p = 3, k = 3 (gaussian): ms per EM iteration (E-step +
   M-step) and per Newton iteration (score + exact Hessian, the Newton direction and one
   log likelihood for the line search), beside the memory-bandwidth bound measured in the
   same run: the bytes an iteration must read or write (y, X and the n x k
   responsibilities: ``8 n (1 + p + k)``) over the copy bandwidth of a 256 MB array.
4. ``memory``: the peak memory the fit allocates above the data at n = 1e6 (tracemalloc,
   which sees numpy's allocations), and the process's max RSS.
5. ``import``: ``import bayesfmm`` against ``import numpy, scipy, pandas``, each the median
   of 5 fresh processes.

Run: ``.venv/bin/python benchmarks/bench_engine.py [--max-n 1e5] [--no-flexmix] [--quick]
[--models gaussian ...]`` (``--models``: the ratio table alone, for those models)
(the full run takes 5-10 minutes, most of it R at n = 1e6). Timings on a shared machine
are noisy; compare ratios from one run.
"""

from __future__ import annotations

import argparse
import csv
import json
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
RESULTS = HERE / "results"
SIZES = (1_000, 10_000, 100_000, 1_000_000)


# -- data -----------------------------------------------------------------------------------
def simulate(kind: str, n: int, k: int = 3, p: int = 2, seed: int = 20240613) -> pd.DataFrame:
    """The benchmark data sets (fixed seeds): ``kind`` gaussian (k classes, p regressors),
    poisson, binomial or nbinomial (k = 2, two regressors)."""
    if kind == "gaussian" and k == 3 and p == 2:
        from bench_ml import simulate as gaussian3

        return gaussian3(n)
    if kind == "poisson":
        from bench_poisson import simulate as poisson2

        return poisson2(n)
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        x = rng.standard_normal((n, p))
        z = rng.integers(0, k, size=n)
        intercepts = 6.0 * (np.arange(k) - (k - 1) / 2)
        slopes = rng.uniform(-1, 1, size=(k, p))
        y = intercepts[z] + np.einsum("ij,ij->i", x, slopes[z]) + rng.standard_normal(n)
        return pd.DataFrame({"y": y, **{f"x{i + 1}": x[:, i] for i in range(p)}})
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    z = rng.choice(2, size=n, p=[0.4, 0.6])
    if kind == "binomial":
        coef = np.array([[-1.0, 0.8, -0.5], [1.5, -0.6, 0.4]])
        trials = rng.integers(5, 21, size=n)
        eta = coef[z, 0] + coef[z, 1] * x1 + coef[z, 2] * x2
        y = rng.binomial(trials, 1 / (1 + np.exp(-eta)))
        return pd.DataFrame({"y": y, "n": trials, "x1": x1, "x2": x2})
    if kind == "nbinomial":
        coef = np.array([[0.5, 0.8, -0.4], [2.5, -0.5, 0.3]])
        mu = np.exp(coef[z, 0] + coef[z, 1] * x1 + coef[z, 2] * x2)
        alpha = 0.5
        y = rng.poisson(mu * rng.gamma(1 / alpha, alpha, size=n))
        return pd.DataFrame({"y": y, "x1": x1, "x2": x2})
    raise ValueError(kind)


MODELS = {  # bayesfmm model, flexmix formula, flexmix family, k
    "gaussian": ('bf.FMM("y ~ x1 + x2", family="gaussian", k=3)', "y ~ x1 + x2", "gaussian", 3),
    "poisson": ('bf.FMM("y ~ x1 + x2", family="poisson", k=2)', "y ~ x1 + x2", "poisson", 2),
    "binomial": ('bf.FMM("y ~ x1 + x2", family="binomial", trials="n", k=2)', "cbind(y, n - y) ~ x1 + x2", "binomial", 2),
    "nbinomial": ('bf.FMM("y ~ x1 + x2", family="nbinomial", k=2)', "y ~ x1 + x2", "poisson", 2),
}

CHILD = r"""
import json, statistics, sys, time, warnings
sys.path[:0] = [%(repo)r, %(here)r]
t0 = time.perf_counter()
import bayesfmm as bf
t1 = time.perf_counter()
from bench_engine import simulate
df = simulate(%(kind)r, %(n)d)
warnings.simplefilter("ignore")
t2 = time.perf_counter()
model = %(model)s
res = model.fit(df%(kw)s)
t3 = time.perf_counter()
warm = []
for _ in range(%(reps)d):
    s = time.perf_counter()
    model.fit(df%(kw)s)
    warm.append(time.perf_counter() - s)
print(json.dumps({"import_s": t1 - t0, "first_s": t3 - t2, "warm_s": statistics.median(warm) if warm else None,
                  "llf": res.llf, "converged": bool(res.converged), "nr_iter": int(res.iterations),
                  "search_draws": int(res.starts.search_draws or 0)}))
"""


def run_child(code: str) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def flexmix(df: pd.DataFrame, formula: str, family: str, k: int, extra: int = 0) -> tuple[float, float]:
    """(seconds, logLik) of one flexmix fit, timed inside R; with ``extra``, that many more
    fits from random partitions (``stepFlexmix``) in the same timing, the best kept."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        df.to_csv(path, index=False)
        out = subprocess.run(
            ["Rscript", str(HERE / "flexmix_fit.R"), str(path), formula, str(k), "1", family, str(extra)],
            capture_output=True, text=True, check=True,
        )
    seconds, llf, _, _ = out.stdout.split()
    return float(seconds), float(llf)


FITS = {"default": "", "search=0": ", search=0"}  # the default fit, and its start alone (no search)


SMALL_N = 100_000  # up to here a cell is the median of SMALL_REPEATS processes and flexmix runs
SMALL_REPEATS = 3


def _median_runs(runs: list[dict]) -> dict:
    """The first run's results, its times the medians over the runs."""
    out = dict(runs[0])
    for key in ("import_s", "first_s", "warm_s"):
        out[key] = statistics.median(r[key] for r in runs)
    return out


def ratio_table(sizes, with_flexmix: bool, models: list[str] | None = None) -> list[dict]:
    """Up to :data:`SMALL_N` each cell takes :data:`SMALL_REPEATS` rounds, and each round
    runs flexmix and then a fresh bayesfmm process per fit one after the other: this
    machine's speed drifts by up to 1.7x over tens of seconds (the same warm Poisson fit at
    n = 1e4 took 30-55 ms in one 20 s loop), so the two sides of a ratio are timed in the
    same stretch of time and each side's median is taken over the rounds.

    Where the default fit's search ran (``search_draws`` random starts besides the default
    one: n = 1e3 here), flexmix is timed a second time with as many starts (its quantile
    start and ``stepFlexmix(nrep = search_draws)``): ``x_first_same_starts`` and
    ``x_warm_same_starts`` compare the same number of fits on both sides."""
    rows = []
    for kind, (model, formula, family, k) in MODELS.items():
        if models and kind not in models:
            continue
        for n in sizes:
            df = simulate(kind, n)
            reps = 11 if n <= 10_000 else (3 if n <= 100_000 else 1)
            repeats = SMALL_REPEATS if n <= SMALL_N else 1
            flex_runs: list[tuple[float, float]] = []
            same_starts: list[tuple[float, float]] = []  # flexmix with the default fit's number of starts
            child_runs: dict[str, list[dict]] = {fit: [] for fit in FITS}
            for _ in range(repeats):
                if with_flexmix:
                    flex_runs.append(flexmix(df, formula, family, k))
                for fit, kw in FITS.items():
                    code = CHILD % {"repo": str(REPO), "here": str(HERE), "kind": kind, "n": n, "model": model, "reps": reps, "kw": kw}
                    child_runs[fit].append(run_child(code))
                draws = child_runs["default"][-1]["search_draws"] if "default" in child_runs else 0
                if with_flexmix and draws:
                    same_starts.append(flexmix(df, formula, family, k, draws))
            flex = (statistics.median(r[0] for r in flex_runs), flex_runs[0][1]) if flex_runs else None
            for fit in FITS:
                row = {"model": kind, "fit": fit, "n": n, **_median_runs(child_runs[fit])}
                if flex is not None:
                    row["flexmix_s"], row["flexmix_llf"] = flex
                    row["x_first"] = row["flexmix_s"] / row["first_s"]
                    row["x_warm"] = row["flexmix_s"] / row["warm_s"]
                    row["llf_ge_flexmix"] = row["llf"] >= row["flexmix_llf"] - 1e-6 * abs(row["flexmix_llf"])  # R prints 7 digits
                if fit == "default" and same_starts:
                    row["flexmix_same_starts_s"] = statistics.median(r[0] for r in same_starts)
                    row["x_first_same_starts"] = row["flexmix_same_starts_s"] / row["first_s"]
                    row["x_warm_same_starts"] = row["flexmix_same_starts_s"] / row["warm_s"]
                rows.append(row)
                print(f"  {kind} {fit} n={n:.0e}: first {row['first_s']:.3f} s, warm {row['warm_s']:.3f} s"
                      + (f", flexmix {flex[0]:.3f} s" if flex else ""), file=sys.stderr, flush=True)
    return rows


# -- in-process measurements ----------------------------------------------------------------
def _problem(df: pd.DataFrame, formula: str, k: int):
    import bayesfmm as bf
    from bayesfmm.design import build_design
    from bayesfmm.likelihood import MixtureProblem
    from bayesfmm.params import build_layout

    design = build_design(bf.FMM(formula, k=k), df)
    return MixtureProblem.build(design, build_layout(design))


def _median_ms(f, reps: int = 3) -> float:
    times = []
    for _ in range(reps):
        s = time.perf_counter()
        f()
        times.append(time.perf_counter() - s)
    return 1e3 * statistics.median(times)


def iteration_times(problem, theta) -> tuple[float, float]:
    """ms per EM iteration (E-step + M-step) and per Newton iteration at ``theta``."""
    from bayesfmm.likelihood import score_hessian
    from bayesfmm.ml.chunks import e_step
    from bayesfmm.ml.em import m_step
    from bayesfmm.ml.newton import _direction

    def em_iteration():
        m_step(problem, e_step(problem, theta).resp, theta)

    def newton_iteration():
        # as bayesfmm.ml.newton runs it once full steps are taken: the score and Hessian are
        # evaluated at the full step (its log likelihood comes with them), then the direction
        _, g, H = score_hessian(problem, theta)
        _direction(g, H)

    em_iteration(), newton_iteration()  # first touch of the buffers
    return _median_ms(em_iteration, 7), _median_ms(newton_iteration, 7)


def bandwidth_gbs() -> float:
    """Copy bandwidth (bytes read + written per second) of a 256 MB array."""
    a = np.ones(32 * 2**20)
    b = np.empty_like(a)
    np.copyto(b, a)
    best = min(_median_ms(lambda: np.copyto(b, a), 1) for _ in range(5))
    return 2 * a.nbytes / (best / 1e3) / 1e9


def scaling_table(n: int) -> list[dict]:
    import bayesfmm as bf

    rows = []
    for k, p in [(2, 2), (3, 2), (5, 2), (8, 2), (3, 10), (3, 50)]:
        df = simulate("gaussian", n, k=k, p=p)
        formula = "y ~ " + " + ".join(f"x{i + 1}" for i in range(p))
        model = bf.FMM(formula, k=k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = model.fit(df, search=0)
            fit_ms = _median_ms(lambda m=model, d=df: m.fit(d, search=0), 3)
        em_ms, nr_ms = iteration_times(res.problem, res.theta)
        rows.append({"k": k, "regressors": p, "n": n, "params": res.problem.layout.size, "fit_ms": fit_ms,
                     "em_iter_ms": em_ms, "newton_iter_ms": nr_ms, "llf": res.llf, "converged": bool(res.converged)})
        print(f"  k={k} p={p}: fit {fit_ms:.0f} ms", file=sys.stderr, flush=True)
    return rows


def iteration_table(n: int) -> list[dict]:
    import bayesfmm as bf

    df = simulate("gaussian", n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bf.FMM("y ~ x1 + x2", k=3).fit(df, search=0)
    em_ms, nr_ms = iteration_times(res.problem, res.theta)
    gbs = bandwidth_gbs()
    p, k = 3, 3
    touched = 8 * n * (1 + p + k)
    bound_ms = touched / (gbs * 1e9) * 1e3
    return [{"n": n, "p": p, "k": k, "bandwidth_GBs": gbs, "bytes_MB": touched / 1e6, "bound_ms": bound_ms,
             "em_iter_ms": em_ms, "em_x_bound": em_ms / bound_ms, "newton_iter_ms": nr_ms, "newton_x_bound": nr_ms / bound_ms,
             **compute_floors(n, p, k)}]


def compute_floors(n: int, p: int, k: int) -> dict:
    """Arithmetic an EM iteration cannot skip, timed alone in cache-sized blocks: the
    ``n k`` exponentials of the E-step (``exp_ms``) and the M-step's weighted
    cross-products of ``[X, y]`` for the ``k`` classes as one matrix product per block
    (``gram_ms``, BLAS), and the Hessian's ``S'S`` over the ``n x (k (p + 1) + k - 1)``
    per-row scores (``syrk_ms``)."""
    rng = np.random.default_rng(0)
    size = 8192
    block = rng.standard_normal((size, k))
    Z = np.asfortranarray(rng.standard_normal((size, p + 1)))
    scaled = np.asfortranarray(rng.standard_normal((size, k * (p + 1))))
    S = np.asfortranarray(rng.standard_normal((size, k * (p + 1) + k - 1)))
    out = np.empty_like(block)
    blocks = n // size

    def exps():
        for _ in range(blocks):
            np.exp(block, out=out)

    def grams():
        for _ in range(blocks):
            scaled.T @ Z

    def syrk():
        for _ in range(blocks):
            S.T @ S

    return {"exp_ms": _median_ms(exps, 5), "gram_ms": _median_ms(grams, 5), "syrk_ms": _median_ms(syrk, 5)}


MEMORY_CHILD = r"""
import json, resource, sys, tracemalloc, warnings
sys.path[:0] = [%(repo)r, %(here)r]
import bayesfmm as bf
from bench_engine import simulate
warnings.simplefilter("ignore")
df = simulate("gaussian", %(n)d)
model = bf.FMM("y ~ x1 + x2", k=3)
model.fit(df.iloc[:1000], search=0)
data_mib = df.memory_usage(deep=True).sum() / 2**20
tracemalloc.start()
res = model.fit(df, search=0)
current, peak = tracemalloc.get_traced_memory()
print(json.dumps({"data_mib": data_mib, "fit_peak_mib": peak / 2**20, "kept_mib": current / 2**20,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


IMPORT_CHILD = "import time; t = time.perf_counter(); import %s; print(time.perf_counter() - t)"


def import_table(reps: int = 11) -> list[dict]:
    """Median fresh-process import times. bayesfmm's bytecode is compiled first, as a
    wheel install (pip compiles on install) or any earlier import leaves it: with
    ``PYTHONDONTWRITEBYTECODE=1`` and an editable install, every import would otherwise
    recompile the package's ~100 modules from source (about 0.2 s more)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "bayesfmm")], check=True)
    labels = ("numpy, scipy, pandas", "bayesfmm")
    times: dict[str, list[float]] = {label: [] for label in labels}
    for _ in range(reps):  # interleaved, so that a busy moment hits both
        for label in labels:
            proc = subprocess.run([sys.executable, "-c", IMPORT_CHILD % label], capture_output=True, text=True, cwd=REPO, check=True)
            times[label].append(float(proc.stdout.strip()))
    out = {label: statistics.median(t) for label, t in times.items()}
    return [{"import": label, "median_s": t, "x_numpy_scipy_pandas": t / out["numpy, scipy, pandas"]} for label, t in out.items()]


# -- output ---------------------------------------------------------------------------------
def show(title: str, rows: list[dict], name: str) -> None:
    print(f"\n{title}")
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.6g}"
        return str(v)

    table = [[cell(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(t[i]) for t in table)) for i, k in enumerate(keys)]
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths)))
    for t in table:
        print("  ".join(v.rjust(w) for v, w in zip(t, widths)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / f"bench_engine_{name}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    from bench_ml import flexmix_available, parse_n

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-n", type=parse_n, default=1_000_000)
    parser.add_argument("--no-flexmix", action="store_true")
    parser.add_argument("--quick", action="store_true", help="n up to 1e4, scaling at 1e4, iterations at 1e5")
    parser.add_argument("--models", nargs="+", choices=list(MODELS),
                        help="only the ratio table, for these models (written to bench_engine_ratio_<models>.csv)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    max_n = min(args.max_n, 10_000 if args.quick else args.max_n)
    sizes = [n for n in SIZES if n <= max_n]
    with_flexmix = not args.no_flexmix and flexmix_available()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "bayesfmm")], check=True)  # as installed
    print(f"bayesfmm engine benchmark: Python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"R flexmix {'timed in this run' if with_flexmix else 'not run'}")
    title = "1. flexmix / bayesfmm (x_first: first fit in a fresh process after import bayesfmm; x_warm: warm fit)"
    if args.models:
        show(title, ratio_table(sizes, with_flexmix, args.models), "ratio_" + "-".join(args.models))
        return 0
    show(title, ratio_table(sizes, with_flexmix), "ratio")
    show("2. scaling in classes and regressors (gaussian, warm fit)", scaling_table(min(100_000, max_n)), "scaling")
    show("3. per iteration against the memory-bandwidth bound", iteration_table(1_000_000 if max_n >= 1_000_000 else 100_000), "iteration")
    n_mem = 1_000_000 if max_n >= 1_000_000 else 100_000
    show(f"4. memory of a fit at n = {n_mem:.0e} (gaussian k = 3)",
         [run_child(MEMORY_CHILD % {"repo": str(REPO), "here": str(HERE), "n": n_mem})], "memory")
    show("5. import time (median of 11 fresh processes each, interleaved)", import_table(), "import")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}; CSVs in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
