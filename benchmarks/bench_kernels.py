"""A/B timings behind single engine changes of issue 14, each alternated in one process.

A shared 2-core machine drifts by up to 1.7x over seconds, so a change is timed against
what it replaced in alternating rounds inside one process, and the medians and the median
of the paired ratios are printed. Three parts:

1. ``exp``: numpy's ``exp`` of ``joint - top`` for a gaussian k = 3 fit's own joint log
   densities, with the row maxima's exact zeros and with them moved to ``-2**-54`` (glibc
   takes a separate, mispredicted branch for arguments below ``2**-54``), and
   ``logsumexp_columns`` with and without that shortcut (``ops._EXP_ONE_BELOW_ZERO``).
2. ``fit``: warm gaussian k = 3 fits (``search=0``) with the shortcut and the Gram rank
   certificate (``frame.design_rank``) against without both (``matrix_rank``'s SVD).
3. ``chunk``: one score/Hessian pass at ``hessian.HESSIAN_CHUNK`` = 32768, 16384, 8192.
4. ``vexp``: the logsumexp's exponentials from the compiled vector exp
   (``bayesfmm._vecmath``, glibc's libmvec) against numpy's (``ops.VECTOR_EXP``): the
   logsumexp per row, warm Poisson, binomial and NB2 fits at n = 1e4 (bench_engine's
   models), warm gaussian fits at n = 1e4 and ``--n``, an EM iteration and a
   score/Hessian pass at ``--n``, with the largest relative llf difference. Parts 1 and 2 time
   numpy's exp (the vector exp off).

Run: ``OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_kernels.py [--n 1e5]
[--rounds 15]`` (about a minute at n = 1e5).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from bench_engine import MODELS, simulate  # noqa: E402

import bayesfmm as bf  # noqa: E402
from bayesfmm import design, frame, hessian, mixture, ops  # noqa: E402

SHORTCUT = ops._EXP_ONE_BELOW_ZERO  # as the package set it at import
VECTOR = ops.VECTOR_EXP  # likewise


def _per(f, count: int, reps: int = 30) -> float:
    return min(timeit.repeat(f, number=reps, repeat=3)) / reps * 1e9 / count


def _report(name: str, old: list[float], new: list[float], unit: str) -> None:
    paired = statistics.median(a / b for a, b in zip(old, new))
    print(f"  {name}: before {statistics.median(old):.2f} {unit}, after {statistics.median(new):.2f} {unit}, "
          f"paired before/after {paired:.3f}")


def exp_part(n: int, rounds: int) -> None:
    df = simulate("gaussian", n)
    res = bf.FMM("y ~ x1 + x2", family="gaussian", k=3).fit(df, search=0)
    terms = mixture.mixture_terms(res.problem, res.theta, ops.NUMPY_OPS)
    joint = np.asfortranarray(np.log(terms.posterior) + terms.ll_units[:, None])
    shifted = joint[:, 0] - joint.max(axis=1)
    moved = np.minimum(shifted, -(2.0**-54))
    out = np.empty_like(shifted)
    zeros, off, lse_old, lse_new = [], [], [], []
    for _ in range(rounds):
        zeros.append(_per(lambda: np.exp(shifted, out=out), n))
        off.append(_per(lambda: np.exp(moved, out=out), n))
        ops._EXP_ONE_BELOW_ZERO = False
        lse_old.append(_per(lambda: ops.logsumexp_columns(joint), n))
        ops._EXP_ONE_BELOW_ZERO = True
        lse_new.append(_per(lambda: ops.logsumexp_columns(joint), n))
    ops._EXP_ONE_BELOW_ZERO = SHORTCUT
    print(f"1. exp and logsumexp at n = {n} (share of exact zeros in column 1: {np.mean(shifted == 0):.2f})")
    _report("exp per element, zeros -> moved off zero", zeros, off, "ns")
    _report("logsumexp_columns per row, k = 3", lse_old, lse_new, "ns")


def fit_part(n: int, rounds: int) -> None:
    df = simulate("gaussian", n)
    model = bf.FMM("y ~ x1 + x2", family="gaussian", k=3)
    new_rank = frame.design_rank
    times: dict[bool, list[float]] = {False: [], True: []}
    llf: dict[bool, float] = {}
    for _ in range(2):
        model.fit(df, search=0)
    for i in range(rounds):
        for after in (False, True) if i % 2 else (True, False):
            ops._EXP_ONE_BELOW_ZERO = after
            design.design_rank = new_rank if after else (lambda m: int(np.linalg.matrix_rank(m)))
            start = time.perf_counter()
            llf[after] = model.fit(df, search=0).llf
            times[after].append((time.perf_counter() - start) * 1e3)
    design.design_rank, ops._EXP_ONE_BELOW_ZERO = new_rank, SHORTCUT
    print(f"2. warm gaussian k = 3 fit at n = {n} (llf {llf[False]!r} before, {llf[True]!r} after)")
    _report("fit", times[False], times[True], "ms")


def vexp_part(n: int, rounds: int) -> None:
    from bayesfmm.likelihood import score_hessian
    from bayesfmm.ml.chunks import e_step
    from bayesfmm.ml.em import m_step

    print("4. the vector exp (bayesfmm._vecmath) against numpy's exp, alternated (before: numpy, after: vector)")
    joint = np.asfortranarray(np.random.default_rng(0).normal(-3.0, 2.0, (min(n, 32_768), 3)))
    cases = [("logsumexp_columns per row, k = 3", lambda: ops.logsumexp_columns(joint), joint.shape[0], "ns")]
    llf_gap = 0.0
    models = [(kind, 10_000, eval(MODELS[kind][0], {"bf": bf})) for kind in ("poisson", "binomial", "nbinomial")]
    models += [("gaussian", size, bf.FMM("y ~ x1 + x2", family="gaussian", k=3)) for size in sorted({10_000, n})]
    for kind, size, model in models:  # bench_engine's models, the gaussian also at --n
        df = simulate(kind, size)
        fits = {}
        for flag in (False, True):
            ops.VECTOR_EXP = flag
            fits[flag] = model.fit(df, search=0)
        llf_gap = max(llf_gap, abs(fits[True].llf - fits[False].llf) / abs(fits[False].llf))
        cases.append((f"warm {kind} fit at n = {size}", lambda m=model, d=df: m.fit(d, search=0), 0, "ms"))
        if kind == "gaussian" and size == n:
            pr, th = fits[True].problem, fits[True].theta
            cases.append((f"EM iteration at n = {size}", lambda pr=pr, th=th: m_step(pr, e_step(pr, th).resp, th), 0, "ms"))
            cases.append((f"score/Hessian at n = {size}", lambda pr=pr, th=th: score_hessian(pr, th), 0, "ms"))
    for name, f, count, unit in cases:
        times: dict[bool, list[float]] = {False: [], True: []}
        for i in range(rounds):
            for flag in (False, True) if i % 2 else (True, False):
                ops.VECTOR_EXP = flag
                if count:
                    times[flag].append(_per(f, count))
                else:
                    start = time.perf_counter()
                    f()
                    times[flag].append((time.perf_counter() - start) * 1e3)
        _report(name, times[False], times[True], unit)
    ops.VECTOR_EXP = VECTOR
    print(f"  largest relative llf difference between the two: {llf_gap:.2e}")


def chunk_part(n: int, rounds: int) -> None:
    df = simulate("gaussian", n)
    res = bf.FMM("y ~ x1 + x2", family="gaussian", k=3).fit(df, search=0)
    sizes = (32_768, 16_384, 8_192)
    times: dict[int, list[float]] = {size: [] for size in sizes}
    kept = hessian.HESSIAN_CHUNK
    for _ in range(rounds):
        for size in sizes:
            hessian.HESSIAN_CHUNK = size
            start = time.perf_counter()
            hessian.chunked_score_hessian(res.problem, res.theta)
            times[size].append((time.perf_counter() - start) * 1e3)
    hessian.HESSIAN_CHUNK = kept
    cells = ", ".join(f"{size}: {statistics.median(t):.2f} ms" for size, t in times.items())
    print(f"3. one score/Hessian pass at n = {n} by rows per chunk: {cells}")


def main(argv: list[str] | None = None) -> int:
    from bench_ml import parse_n

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=parse_n, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    ops.VECTOR_EXP = False  # parts 1-3 time numpy's exp; part 4 compares the two
    if SHORTCUT:
        exp_part(min(args.n, 32_768), args.rounds)
        fit_part(args.n, args.rounds)
    else:  # this libm's exp(-2**-54) is not 1.0: the shortcut would change the numbers
        print("ops._EXP_ONE_BELOW_ZERO is False here: parts 1 and 2 have nothing to compare")
    chunk_part(args.n, args.rounds)
    ops.VECTOR_EXP = VECTOR
    if VECTOR:
        vexp_part(args.n, args.rounds)
    else:
        print("4. no vector exp in this install (bayesfmm._vecmath missing or not vectorised): nothing to compare")
    return 0


if __name__ == "__main__":
    sys.exit(main())
