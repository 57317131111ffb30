"""EM passes, Newton and the covariance of a fit on partitions (:mod:`bayesfmm.ml.dask_fit`).

The same rules as the in-memory engines: Newton's direction (:func:`bayesfmm.ml.newton._direction`:
Cholesky, or the reflected or ``difficult`` step where the Hessian is not negative
definite), Stata's step halving (:func:`bayesfmm.ml.linesearch.step_halving`) and its
convergence rule; the covariance formulas of :mod:`bayesfmm.ml.vce`. Only the sums come
from :func:`~bayesfmm.ml.partitions.tree_sum`, one pass over the partitions each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from bayesfmm.errors import ConvergenceError, SpecificationError
from bayesfmm.iterlog import IterationLog, mreldif, reldif
from bayesfmm.ml.linesearch import step_halving
from bayesfmm.ml.newton import NewtonOptions, _direction
from bayesfmm.ml.partitions import part_em, part_loglike, part_meat, part_score_hessian, tree_sum
from bayesfmm.ml.vce import observed_information_covariance
from bayesfmm.params import ParamLayout

__all__ = ["PartitionNewton", "em_passes_on", "newton_on", "partition_covariance"]


@dataclass(frozen=True)
class PartitionNewton:
    theta: np.ndarray
    llf: float
    gradient: np.ndarray
    hessian: np.ndarray
    iterations: int
    converged: bool
    message: str


def _free_direction(g: np.ndarray, H: np.ndarray, T: np.ndarray | None, difficult: bool = False):
    if T is None:
        return _direction(g, H, difficult)
    step, concave, scaled = _direction(T.T @ g, T.T @ H @ T, difficult)
    return T @ step, concave, scaled


def em_passes_on(
    parts: Sequence[Any], theta: np.ndarray, T: np.ndarray | None, passes: int, log: IterationLog, split_every: int,
    ltolerance: float = 1e-6,
) -> tuple[np.ndarray, int]:
    """``passes`` generalised EM iterations on the partitions: each one pass for the E-step
    and the gradient and Hessian of ``Q``; the M-step is a Newton step on ``Q``, halved at
    the next pass when the log likelihood fell. Returns the last evaluated ``theta`` that
    did not lower the likelihood, and the passes taken."""
    if passes <= 0:
        return theta, 0
    log.write("EM on the whole data:")
    best_theta, best_llf, step, used, halvings = None, -np.inf, None, 0, 0
    while used < passes:
        share = tree_sum(parts, part_em, theta, split_every=split_every)
        used += 1
        llf, g, H = share
        if best_theta is not None and not (np.isfinite(llf) and llf >= best_llf - 1e-12 * (abs(best_llf) + 1)):
            halvings += 1
            if halvings > 30:
                break
            step = step / 2  # back up: the M-step overshot
            theta = best_theta + step
            continue
        log.iteration(used - 1, llf, tag="EM", note="(backed up)" if halvings else "")
        done = best_theta is not None and reldif(llf, best_llf) < ltolerance
        best_theta, best_llf, halvings = theta, llf, 0
        if done:
            break
        step, _, _ = _free_direction(g, H, T)
        theta = theta + step
    return (theta if best_theta is None else best_theta), used


def newton_on(
    parts: Sequence[Any], theta: np.ndarray, layout: ParamLayout, options: NewtonOptions, log: IterationLog, split_every: int
) -> tuple[PartitionNewton, int]:
    """Newton-Raphson with the exact score and Hessian summed over the partitions (one
    pass per iteration, one per trial step). Returns the result and the passes taken."""
    T = layout.transform
    theta = layout.project(np.asarray(theta, dtype=float)) if T is not None else np.asarray(theta, dtype=float).copy()
    passes = 0

    def objective(point: np.ndarray) -> float:
        nonlocal passes
        passes += 1
        return tree_sum(parts, part_loglike, point, split_every=split_every)[0]

    log.write("")
    log.write("Fitting full model:")
    log.write("")
    prev_theta, prev_value, note = None, None, ""
    message, converged = f"iteration limit {options.iterate} reached", False
    for it in range(options.iterate + 1):
        value, g, H = tree_sum(parts, part_score_hessian, theta, split_every=split_every)
        passes += 1
        if not np.isfinite(value):
            raise ConvergenceError("the log likelihood is not finite at the start: fit a larger sample (sample_rows=)")
        step, concave, scaled = _free_direction(g, H, T, options.difficult)
        log.iteration(it, value, note="(not concave)" if not concave else note)
        if prev_theta is not None and concave and scaled < options.nrtolerance:
            if mreldif(theta, prev_theta) < options.tolerance or reldif(value, prev_value) < options.ltolerance:
                converged, message = True, "converged"
                break
        if it == options.iterate:
            break
        if prev_theta is not None and concave and scaled < 1e-14 * (abs(value) + 1):
            converged, message = True, "converged"
            break
        search = step_halving(objective, theta, step, value, max_halvings=options.max_halvings)
        if not search.accepted:
            message = "no step increases the log likelihood (flat or discontinuous region)"
            break
        note = "(backed up)" if search.halvings else ""
        prev_theta, prev_value, theta = theta, value, search.x
    return PartitionNewton(theta, float(value), g, H, it, converged, message), passes


def partition_covariance(
    parts: Sequence[Any], result: PartitionNewton, layout: ParamLayout, vce: str, split_every: int
) -> tuple[np.ndarray, str, int, int | None]:
    """The covariance of ``theta`` under ``vce`` (:mod:`bayesfmm.ml.vce`'s formulas), a note,
    the passes it took (0 for ``oim``) and the number of clusters."""
    T = layout.transform
    H = result.hessian if T is None else T.T @ result.hessian @ T
    if vce == "oim":
        cov, note = observed_information_covariance(H)
        passes, n_clusters = 0, None
    else:
        meat, count = tree_sum(parts, part_meat, result.theta, vce, split_every=split_every)
        passes = 1
        n_clusters = int(count) if vce == "cluster" else None
        if T is not None:
            meat = T.T @ meat @ T
        cov, note = _from_meat(H, meat, count, vce)
    if T is not None:
        cov = T @ cov @ T.T
    return (cov + cov.T) / 2, note, passes, n_clusters


def _from_meat(H: np.ndarray, meat: np.ndarray, count: float, vce: str) -> tuple[np.ndarray, str]:
    if vce == "opg":
        return observed_information_covariance(-meat)
    bread, note = observed_information_covariance(H)
    if note:
        return bread, note
    if count < 2:
        raise SpecificationError(f"vce={vce!r} needs at least 2 {'clusters' if vce == 'cluster' else 'observations'}")
    cov = count / (count - 1) * bread @ meat @ bread
    return (cov + cov.T) / 2, ""
