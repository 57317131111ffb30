"""``FMM.fit``: start values -> EM -> Newton -> covariance, as Stata ``fmm`` does it.

Starts that collapse (an empty class, a variance shrinking to 0 on a few points, where the
likelihood is unbounded) are discarded and counted; if the best start collapses during
Newton the next best is tried; if none survives a :class:`~bayesfmm.errors.ConvergenceError`
says what happened and what to try.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from bayesfmm.design import build_design
from bayesfmm.errors import ConvergenceError, ConvergenceWarning, SpecificationError
from bayesfmm.likelihood import MixtureProblem
from bayesfmm.ml.em import EMOptions, EMResult, degeneracy, em
from bayesfmm.ml.iterlog import IterationLog
from bayesfmm.ml.newton import NewtonOptions, newton
from bayesfmm.ml.start import START_METHODS, one_class_fit, start_weights, theta_from_weights
from bayesfmm.ml.vce import VCE_TYPES, covariance
from bayesfmm.params import build_layout
from bayesfmm.spec import FMM

__all__ = ["fit_ml", "StartReport"]


@dataclass(frozen=True)
class StartReport:
    """Which start won and what happened to the others."""

    method: str
    draws: int
    winner: int  # 0-based draw index
    em_llf: tuple[float, ...]  # -inf where the draw collapsed
    collapsed: tuple[str | None, ...]
    newton_failed: tuple[int, ...] = ()  # draws whose Newton run collapsed or did not converge

    @property
    def n_collapsed(self) -> int:
        return sum(c is not None for c in self.collapsed)


def _progress(items: list, show: bool, description: str):
    """Iterate ``items``, with a rich progress bar on standard error when ``show``."""
    if not show:
        yield from items
        return
    from rich.progress import track

    yield from track(items, description=description, transient=True, console=None)


def _em_options(emopts: Mapping[str, Any] | None) -> EMOptions:
    if emopts is None:
        return EMOptions()
    if not isinstance(emopts, Mapping):
        raise SpecificationError(f"emopts must be a dict such as {{'iterate': 20}}, got {emopts!r}")
    allowed = {"iterate", "tolerance", "ltolerance"}
    unknown = sorted(set(emopts) - allowed)
    if unknown:
        raise SpecificationError(f"emopts does not take {unknown}; it takes {sorted(allowed)}")
    return EMOptions(**emopts)


def _check_positive(name: str, value: Any, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < (0 if integer else 0.0):
        what = "a non-negative integer" if integer else "a non-negative number"
        raise SpecificationError(f"{name} must be {what}, got {value!r}")


def fit_ml(
    spec: FMM,
    data: pd.DataFrame,
    *,
    startvalues: str = "default",
    draws: int = 1,
    seed: int | None = None,
    emopts: Mapping[str, Any] | None = None,
    iterate: int = 300,
    tolerance: float = 1e-6,
    ltolerance: float = 1e-7,
    nrtolerance: float = 1e-5,
    vce: str = "oim",
    collapse_tol: float = 1e-8,
    log: bool = False,
    progress: bool | None = None,
    **unknown: Any,
):
    """Fit ``spec`` to ``data`` by maximum likelihood.

    Parameters
    ----------
    spec
        The model.
    data
        A DataFrame holding every column the model names.
    startvalues
        ``"default"`` (deterministic quantile split), ``"randomid"`` or ``"randompr"``.
    draws, seed
        Number of random starts and the seed; EM runs from each, the best is kept.
    emopts
        EM options: ``{"iterate": 20, "tolerance": 1e-4, "ltolerance": 1e-6}`` (Stata's).
    iterate, tolerance, ltolerance, nrtolerance
        Newton's iteration limit and Stata's convergence criteria.
    vce
        ``"oim"`` (observed information, the default) or ``"opg"``.
    collapse_tol
        An error variance below this fraction of its 1-class value counts as collapsed.
    log
        Print a Stata-like iteration log.
    progress
        Show a progress bar over the start draws; by default when ``draws > 1`` and
        standard error is a terminal.

    Returns
    -------
    MLResults

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"), log=False)
    >>> res.converged
    True
    """
    if unknown:
        raise SpecificationError(
            f"fit() does not take option(s) {', '.join(sorted(unknown))}; it takes startvalues, "
            "draws, seed, emopts, iterate, tolerance, ltolerance, nrtolerance, vce, collapse_tol, log, progress"
        )
    if not isinstance(spec, FMM):
        raise SpecificationError(f"expected a bf.FMM, got {type(spec).__name__}")
    if startvalues not in START_METHODS:
        raise SpecificationError(
            f"startvalues={startvalues!r} is not a start method; choose from {', '.join(START_METHODS)}"
        )
    if vce not in VCE_TYPES:
        raise SpecificationError(f"vce={vce!r} is not available; choose from {', '.join(VCE_TYPES)}")
    _check_positive("draws", draws, integer=True)
    if draws < 1:
        raise SpecificationError(f"draws must be at least 1, got {draws}")
    for name, value in (("tolerance", tolerance), ("ltolerance", ltolerance), ("nrtolerance", nrtolerance)):
        _check_positive(name, value)
    _check_positive("iterate", iterate, integer=True)
    em_options = _em_options(emopts)
    newton_options = NewtonOptions(iterate=iterate, tolerance=tolerance, ltolerance=ltolerance, nrtolerance=nrtolerance)

    design = build_design(spec, data)
    layout = build_layout(design)
    problem = MixtureProblem.build(design, layout)
    iterlog = IterationLog(echo=log)
    rng = np.random.default_rng(seed)

    pooled = one_class_fit(problem)
    reference = layout.to_report(pooled)
    weights = start_weights(problem, startvalues, draws, rng, pooled)

    if spec.k == 1:
        runs = [EMResult(pooled, -np.inf, 0, None, None)]
    else:
        iterlog.write("Refining starting values:")
        runs = []
        show = progress if progress is not None else (len(weights) > 1 and sys.stderr.isatty() and not log)
        for w in _progress(weights, show, f"EM from {len(weights)} {startvalues} starts"):
            theta0 = theta_from_weights(problem, w, pooled)
            iterlog.write("")
            runs.append(em(problem, theta0, em_options, reference, iterlog, collapse_tol))
    order = sorted(range(len(runs)), key=lambda i: -runs[i].llf if runs[i].collapsed is None else np.inf)

    def check(theta, ev):
        return degeneracy(problem, theta, ev.resp, reference, collapse_tol)

    failures: list[str] = [f"start {i + 1}: {r.collapsed}" for i, r in enumerate(runs) if r.collapsed]
    result, fallback = None, None
    newton_failed: list[int] = []
    for i in order:
        if runs[i].collapsed is not None:
            continue
        iterlog.write("")
        iterlog.write("Fitting full model:")
        iterlog.write("")
        attempt = newton(problem, runs[i].theta, newton_options, iterlog, check)
        if attempt.collapsed is not None:
            failures.append(f"start {i + 1} in Newton: {attempt.collapsed}")
            newton_failed.append(i)
            continue
        if attempt.converged:
            result, winner = attempt, i
            break
        failures.append(f"start {i + 1} in Newton: {attempt.message}")
        newton_failed.append(i)
        if fallback is None or attempt.llf > fallback[0].llf:
            fallback = (attempt, i)
        iterlog.write(f"Newton did not converge from start {i + 1}: {attempt.message}; trying the next start")
    if result is None and fallback is not None:
        result, winner = fallback
    if result is None:
        raise ConvergenceError(
            "no start reached a proper maximum; every one collapsed:\n  "
            + "\n  ".join(failures)
            + "\nTry more random starts (startvalues='randompr', draws=20), fewer classes, "
            "or a model with fewer free variances."
        )
    if not result.converged:
        warnings.warn(
            f"Newton did not converge: {result.message}. The estimates may not be a maximum; "
            "try more iterations (iterate=), other start values, or fewer classes.",
            ConvergenceWarning,
            stacklevel=3,
        )
    cov, vce_note = covariance(problem, result, vce)
    starts = StartReport(
        method=startvalues,
        draws=len(runs),
        winner=winner,
        em_llf=tuple(r.llf for r in runs),
        collapsed=tuple(r.collapsed for r in runs),
        newton_failed=tuple(newton_failed),
    )
    from bayesfmm.results import MLResults

    return MLResults(
        problem=problem,
        theta=result.theta,
        cov_theta=cov,
        llf=result.llf,
        converged=result.converged,
        iterations=result.iterations,
        vce=vce,
        vce_note=vce_note,
        starts=starts,
        iteration_log=iterlog,
        gradient=result.gradient,
        hessian=result.hessian,
    )
