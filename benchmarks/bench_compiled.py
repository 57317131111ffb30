"""What a compiled kernel would buy the ML engine (issue 14: "measure before choosing").

Four parts, printed as tables and written to ``benchmarks/results/bench_engine_compiled_*.csv``:

1. ``exp``: ns per element of ``exp`` over cache-sized blocks, alternated in rounds:
   numpy's (on a CPU without AVX-512 numpy calls the scalar libm ``exp``), a numba loop
   (LLVM calls the same scalar ``exp``: numba's vector math needs Intel's SVML, which
   ``numba -s`` reports absent), and a C loop built here with ``gcc -O3 -ffast-math
   -mavx2 -mfma``, which gcc vectorises into glibc's libmvec ``_ZGVdN4v_exp`` (4 doubles
   per call). Skipped without gcc.
2. ``passes``: at n = 1e6 (gaussian, k = 3, ``y ~ x1 + x2``, the fit's own maximum), an
   EM iteration and a score + exact Hessian, the package's engine (numpy, with the
   logsumexp's vector ``exp``/``log`` of ``bayesfmm._vecmath`` where ``ops.VECTOR_EXP``:
   the table's title says which) against hand-fused numba kernels
   (``compiled_kernels.py``: every row read once; the Newton kernel with ``S'S``
   accumulated per row or per 256-row block in BLAS), each beside the
   memory-bandwidth bound of ``bench_engine.py`` measured in the same run, with the
   kernels' agreement with the engine.
3. ``startup``: what a compiled kernel costs a fresh process: ``import numba``, the first
   call with an empty cache (compilation) and with the cache ``cache=True`` wrote (load),
   beside the package's own first fit of the same model at n = 1e5 (fresh process).
4. ``xla``: the same gaussian model in JAX (when installed: the ``jax`` extra): an EM
   iteration written in ``jax.numpy`` and fused by XLA's compiler (one thread, as the
   engine's BLAS), and the exact Hessian by ``jax.hessian`` (timed last: its intermediates
   take gigabytes), against the package's engine at the same n, with JAX's import and
   compile times (the route by which the families' one definition, through PyTensor's JAX
   backend, could reach a compiler).

Run: ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_compiled.py
[--n 1e6] [--rounds 9]`` (about 3 minutes). numba comes with nutpie (the Bayesian
sampler's dependency); the package itself never imports it. The vector exp inside the
package is timed against numpy's by ``bench_kernels.py`` (part 4).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

import compiled_kernels as ck  # noqa: E402
from bench_engine import CHILD, MODELS, _median_ms, bandwidth_gbs, run_child, show, simulate  # noqa: E402
from bench_ml import parse_n  # noqa: E402

import bayesfmm as bf  # noqa: E402
from bayesfmm import ops  # noqa: E402
from bayesfmm.likelihood import score_hessian  # noqa: E402
from bayesfmm.ml.chunks import e_step  # noqa: E402
from bayesfmm.ml.em import m_step  # noqa: E402

VEXP_C = r"""
#include <math.h>
void vexp(const double *x, double *y, long n) { for (long i = 0; i < n; i++) y[i] = exp(x[i]); }
"""


def build_vexp(where: Path):
    """The libmvec exp loop as a ctypes function, or None without gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    src, lib = where / "vexp.c", where / "libvexp.so"
    src.write_text(VEXP_C)
    subprocess.run([gcc, "-O3", "-ffast-math", "-mavx2", "-mfma", "-fPIC", "-shared", str(src), "-o", str(lib), "-lm"],
                   check=True)
    symbols = subprocess.run(["nm", "-D", str(lib)], capture_output=True, text=True).stdout
    if "_ZGVdN4v_exp" not in symbols:
        print("  gcc did not vectorise exp into libmvec here: the C loop is scalar", file=sys.stderr)
    fn = ctypes.CDLL(str(lib)).vexp
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long], None
    return fn


def alternate(candidates: dict, rounds: int, reps: int) -> dict:
    """Median ms of each candidate over ``rounds`` alternated rounds (``reps`` calls each)."""
    times: dict = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, f in candidates.items():
            times[name].append(_median_ms(f, reps))
    return {name: statistics.median(t) for name, t in times.items()}


def _fitted(n: int):
    """The gaussian k = 3 benchmark fit at n rows: its problem, theta and the kernels'
    arguments (``compiled_kernels.gaussian_layout``)."""
    df = simulate("gaussian", n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bf.FMM("y ~ x1 + x2", k=3).fit(df, search=0)
    return res.problem, res.theta, ck.gaussian_layout(res.problem, res.theta)


# -- 1. exp ----------------------------------------------------------------------------------
def exp_table(vexp, rounds: int) -> list[dict]:
    import numba as nb

    @nb.njit
    def numba_exp(x, out):
        for i in range(x.size):
            out[i] = np.exp(x[i])

    size = 8192
    x = np.random.default_rng(0).normal(-3.0, 2.0, size)  # like a fit's joint - top
    out = np.empty(size)
    numba_exp(x, out)
    candidates = {"numpy": lambda: np.exp(x, out=out), "numba loop": lambda: numba_exp(x, out)}
    if vexp is not None:
        candidates["C, libmvec (gcc -ffast-math)"] = lambda: vexp(x.ctypes.data, out.ctypes.data, size)
    ms = alternate({k: (lambda f=f: [f() for _ in range(100)]) for k, f in candidates.items()}, rounds, 5)
    rows = []
    for name, t in ms.items():
        rows.append({"exp": name, "ns_per_element": t * 1e6 / (100 * size)})
    if vexp is not None:
        vexp(x.ctypes.data, out.ctypes.data, size)
        rows[-1]["max_rel_err_vs_numpy"] = float(np.max(np.abs(out / np.exp(x) - 1)))
    return rows


# -- 2. passes -------------------------------------------------------------------------------
def passes_table(n: int, rounds: int) -> list[dict]:
    problem, theta, (X, y, beta, lnvar, pi, mu_cols, lv_col, cls_col) = _fitted(n)
    size = problem.layout.size
    log_pi = np.log(pi)
    ev, g, H = score_hessian(problem, theta)
    kernel = ck.newton_pass(X, y, beta, lnvar, pi, mu_cols, lv_col, cls_col, size, True)
    ck.newton_pass(X, y, beta, lnvar, pi, mu_cols, lv_col, cls_col, size, False)
    em_llf = ck.em_pass(X, y, beta, lnvar, log_pi)[0]
    candidates = {
        "EM iteration, engine (e_step + m_step)": lambda: m_step(problem, e_step(problem, theta).resp, theta),
        "EM iteration, fused numba (E-step + M-step cross-products)": lambda: ck.em_pass(X, y, beta, lnvar, log_pi),
        "score + Hessian, engine": lambda: score_hessian(problem, theta),
        "score + Hessian, fused numba, S'S per row": lambda: ck.newton_pass(X, y, beta, lnvar, pi, mu_cols, lv_col, cls_col, size, False),
        "score + Hessian, fused numba, S'S per 256 rows (BLAS)": lambda: ck.newton_pass(X, y, beta, lnvar, pi, mu_cols, lv_col, cls_col, size, True),
    }
    for f in candidates.values():
        f()
    ms = alternate(candidates, rounds, 1)
    gbs = bandwidth_gbs()
    bound = 8 * n * (1 + 3 + 3) / (gbs * 1e9) * 1e3
    agree = {"EM iteration, fused numba (E-step + M-step cross-products)": f"llf rel. diff {abs(em_llf / ev.llf - 1):.1e}",
             "score + Hessian, fused numba, S'S per 256 rows (BLAS)":
                 f"H max rel. diff {np.abs(kernel[2] - H).max() / np.abs(H).max():.1e}"}
    return [{"n": n, "pass": name, "ms": t, "x_bound": t / bound, "bound_ms": bound, "bandwidth_GBs": gbs,
             "agreement": agree.get(name, "")} for name, t in ms.items()]


# -- 3. startup ------------------------------------------------------------------------------
STARTUP_CHILD = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
sys.path[:0] = [%(repo)r, %(here)r]
import numpy as np
import compiled_kernels as ck
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
X = np.ascontiguousarray(rng.standard_normal((1000, 3))); y = rng.standard_normal(1000)
beta = np.zeros((3, 3)); lnvar = np.zeros(3); pi = np.full(3, 1 / 3)
mu_cols = np.arange(9).reshape(3, 3) + 2; lv_col = np.array([11, 12, 13]); cls_col = np.array([-1, 0, 1])
t2 = time.perf_counter()
ck.em_pass(X, y, beta, lnvar, np.log(pi))
t3 = time.perf_counter()
ck.newton_pass(X, y, beta, lnvar, pi, mu_cols, lv_col, cls_col, 14, True)
t4 = time.perf_counter()
print(json.dumps({"import_numba_s": t1 - t0, "em_kernel_first_call_s": t3 - t2, "newton_kernel_first_call_s": t4 - t3}))
"""


def startup_table() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["NUMBA_CACHE_DIR"] = cache
        try:
            for label in ("empty cache (compiles)", "from cache"):
                out = run_child(STARTUP_CHILD % {"repo": str(REPO), "here": str(HERE)})
                rows.append({"process": f"numba kernels, {label}", **out})
        finally:
            del os.environ["NUMBA_CACHE_DIR"]
    model, *_ = MODELS["gaussian"]
    for n in (100_000,):
        out = run_child(CHILD % {"repo": str(REPO), "here": str(HERE), "kind": "gaussian", "n": n,
                                 "model": model, "kw": ", search=0", "reps": 0})
        rows.append({"process": f"bayesfmm first fit, n = {n:.0e} (no numba)", "import_bayesfmm_s": out["import_s"],
                     "first_fit_s": out["first_s"]})
    return rows


# -- 4. XLA (JAX) ---------------------------------------------------------------------------
def xla_table(n: int, rounds: int) -> list[dict]:
    # one thread, as the engine's BLAS runs (OPENBLAS_NUM_THREADS=1)
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    start = time.perf_counter()
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    import_s = time.perf_counter() - start
    jax.config.update("jax_enable_x64", True)
    problem, theta, (X, y, beta, lnvar, pi, mu_cols, lv_col, cls_col) = _fitted(n)
    k, p = beta.shape

    def joint(beta, lnvar, log_pi, X, y):
        return log_pi - 0.5 * (ck.LOG_2PI + lnvar + (y[:, None] - X @ beta.T) ** 2 * jnp.exp(-lnvar))

    @jax.jit
    def em_iteration(beta, lnvar, log_pi, X, y):
        J = joint(beta, lnvar, log_pi, X, y)
        top = J.max(axis=1, keepdims=True)
        e = jnp.exp(J - top)
        total = e.sum(axis=1, keepdims=True)
        r = e / total
        Z = jnp.concatenate([X, y[:, None]], axis=1)
        return jnp.sum(top[:, 0] + jnp.log(total[:, 0])), r.sum(axis=0), jnp.einsum("ij,iu,iv->juv", r, Z, Z)

    def loglik(params, X, y):
        logits = jnp.concatenate([jnp.zeros(1), params[k * p + k:]])
        log_pi = logits - logsumexp(logits)
        return logsumexp(joint(params[: k * p].reshape(k, p), params[k * p: k * p + k], log_pi, X, y), axis=1).sum()

    hessian = jax.jit(jax.hessian(loglik))
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    em_args = (jnp.asarray(beta), jnp.asarray(lnvar), jnp.asarray(np.log(pi)), Xj, yj)
    params = jnp.asarray(np.r_[beta.ravel(), lnvar, np.log(pi[1:] / pi[0])])
    compile_s = {}
    for name, f in (("em", lambda: em_iteration(*em_args)), ("hessian", lambda: hessian(params, Xj, yj))):
        s = time.perf_counter()
        jax.block_until_ready(f())
        compile_s[name] = time.perf_counter() - s
    llf = float(em_iteration(*em_args)[0])
    H = np.asarray(hessian(params, Xj, yj))
    _, _, H_engine = score_hessian(problem, theta)
    candidates = {
        "EM iteration, engine": lambda: m_step(problem, e_step(problem, theta).resp, theta),
        "EM iteration, XLA (jax.jit)": lambda: jax.block_until_ready(em_iteration(*em_args)),
        "score + Hessian, engine": lambda: score_hessian(problem, theta),
    }
    ms = alternate(candidates, rounds, 1)
    # timed after the others: its intermediates take gigabytes, which would disturb them
    ms["Hessian, XLA (jax.hessian)"] = _median_ms(lambda: jax.block_until_ready(hessian(params, Xj, yj)), 3)
    ev = e_step(problem, theta)
    notes = {"EM iteration, XLA (jax.jit)": f"llf rel. diff {abs(llf / ev.llf - 1):.1e}; first call (compile) {compile_s['em']:.2f} s",
             "Hessian, XLA (jax.hessian)": f"largest entry {np.abs(H).max():.6g} (engine {np.abs(H_engine).max():.6g}); "
                                            f"first call (compile) {compile_s['hessian']:.2f} s"}
    return [{"n": n, "pass": name, "ms": t, "import_jax_s": import_s, "note": notes.get(name, "")} for name, t in ms.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=parse_n, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    print(f"compiled-kernel benchmark: numpy {np.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        vexp = build_vexp(Path(tmp))
        show("1. exp, ns per element (8192-element blocks, alternated)", exp_table(vexp, args.rounds), "compiled_exp")
        engine = "numpy + vector exp/log" if ops.VECTOR_EXP else "numpy"
        show(f"2. one pass at n = {args.n:.0e}: the package's engine ({engine}) against fused numba kernels",
             passes_table(args.n, args.rounds), "compiled_passes")
        show("3. what a fresh process pays (numba kernels against the package's first fit)", startup_table(), "compiled_startup")
    if importlib.util.find_spec("jax") is None:
        print("\n4. XLA: skipped (JAX is not installed: pip install -e '.[jax]')")
    else:
        show(f"4. XLA (JAX) at n = {args.n:.0e}", xla_table(args.n, args.rounds), "compiled_xla")
    return 0


if __name__ == "__main__":
    sys.exit(main())
