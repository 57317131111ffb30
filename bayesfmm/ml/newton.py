"""Newton-Raphson on the observed-data log likelihood, as Stata's ``ml`` runs it.

Each iteration solves for the Newton direction with the exact Hessian (scipy's Cholesky;
where the Hessian is not negative definite, its eigenvalues are reflected and the step is
logged ``(not concave)``), halves the step until the likelihood does not fall (``(backed
up)``), and stops when Stata's criteria hold: the scaled gradient ``g' (-H)^-1 g`` is below
``nrtolerance`` and either the parameters (``tolerance``, mreldif) or the log likelihood
(``ltolerance``, reldif) have stopped moving.

Under constraints (``theta = T phi + c``, :mod:`bayesfmm.constraints`) the direction is
computed in ``phi`` from ``T' g`` and ``T' H T`` and mapped back, so every iterate
satisfies the constraints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import linalg

from bayesfmm.likelihood import Evaluation, MixtureProblem, loglike, score_hessian
from bayesfmm.ml.iterlog import IterationLog, mreldif, reldif

__all__ = ["NewtonOptions", "NewtonResult", "newton"]


@dataclass(frozen=True)
class NewtonOptions:
    """Stata's maximisation options."""

    iterate: int = 300
    tolerance: float = 1e-6
    ltolerance: float = 1e-7
    nrtolerance: float = 1e-5
    max_halvings: int = 40
    difficult: bool = False  # Stata's ``difficult``: see :func:`split_newton_step`


@dataclass(frozen=True)
class NewtonResult:
    theta: np.ndarray
    llf: float
    gradient: np.ndarray
    hessian: np.ndarray
    evaluation: Evaluation
    iterations: int
    converged: bool
    concave: bool
    scaled_gradient: float
    message: str
    collapsed: str | None = None


def reflected_newton_step(g: np.ndarray, H: np.ndarray) -> np.ndarray:
    """An ascent direction where ``H`` is not negative definite: the Newton step with the
    eigenvalues of ``-H`` replaced by their absolute values (floored)."""
    vals, vecs = linalg.eigh(-(H + H.T) / 2)
    scale = np.max(np.abs(vals)) if vals.size else 1.0
    vals = np.maximum(np.abs(vals), max(scale * 1e-8, 1e-12))
    return vecs @ ((vecs.T @ g) / vals)


def split_newton_step(g: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Stata's ``difficult`` stepping where ``H`` is not negative definite: the parameter
    space is split along the eigenvectors of ``-H``; where the curvature is concave the
    step is Newton's, elsewhere it is steepest ascent, scaled by the smallest concave
    curvature (or the largest absolute one when none is concave) so the step lengths are
    comparable. The step-halving line search then sets the length."""
    vals, vecs = linalg.eigh(-(H + H.T) / 2)
    top = np.max(np.abs(vals)) if vals.size else 1.0
    floor = max(top * 1e-8, 1e-12)
    concave = vals > floor
    proj = vecs.T @ g
    ref = np.min(vals[concave]) if np.any(concave) else top
    coef = np.where(concave, proj / np.where(concave, vals, 1.0), proj / max(ref, floor))
    return vecs @ coef


def _direction(g: np.ndarray, H: np.ndarray, difficult: bool = False) -> tuple[np.ndarray, bool, float]:
    """Newton direction, whether ``H`` is negative definite, and ``g' (-H)^-1 g``."""
    try:
        factor = linalg.cho_factor(-(H + H.T) / 2, lower=True, check_finite=True)
        step = linalg.cho_solve(factor, g)
        return step, True, float(g @ step)
    except (linalg.LinAlgError, ValueError):
        if difficult:
            return split_newton_step(g, H), False, np.inf
        return reflected_newton_step(g, H), False, np.inf


def newton(
    problem: MixtureProblem,
    theta: np.ndarray,
    options: NewtonOptions,
    log: IterationLog | None = None,
    check: Callable[[np.ndarray, Evaluation], str | None] | None = None,
) -> NewtonResult:
    """Maximise the log likelihood from ``theta``."""
    theta = np.asarray(theta, dtype=float).copy()
    prev_theta, prev_llf = None, None
    note = ""
    message = f"iteration limit {options.iterate} reached"
    converged = False
    T = problem.layout.transform  # constraints: step in the free parameters, theta = T phi + c
    if T is not None:
        theta = problem.layout.project(theta)
    for it in range(options.iterate + 1):
        ev, g, H = score_hessian(problem, theta)
        if T is None:
            step, concave, scaled = _direction(g, H, options.difficult)
        else:
            step, concave, scaled = _direction(T.T @ g, T.T @ H @ T, options.difficult)
            step = T @ step
        if log is not None:
            log.iteration(it, ev.llf, note="(not concave)" if not concave else note)
        if check is not None:
            reason = check(theta, ev)
            if reason:
                return NewtonResult(theta, ev.llf, g, H, ev, it, False, concave, scaled, reason, reason)
        if prev_theta is not None and concave and scaled < options.nrtolerance:
            moved = mreldif(theta, prev_theta) < options.tolerance
            flat = reldif(ev.llf, prev_llf) < options.ltolerance
            if moved or flat:
                converged = True
                message = "converged"
                break
        if it == options.iterate:
            break
        if prev_theta is not None and concave and scaled < 1e-14 * (abs(ev.llf) + 1):
            converged = True  # at the maximum to machine precision; nothing left to move
            message = "converged"
            break
        note = ""
        t = 1.0
        for half in range(options.max_halvings):
            trial = theta + t * step
            value = loglike(problem, trial)
            if np.isfinite(value) and value >= ev.llf - 1e-12 * (abs(ev.llf) + 1):
                break
            t /= 2
            note = "(backed up)"
        else:
            message = "no step increases the log likelihood (flat or discontinuous region)"
            break
        prev_theta, prev_llf = theta, ev.llf
        theta = trial
    return NewtonResult(theta, ev.llf, g, H, ev, it, converged, concave, scaled, message)
