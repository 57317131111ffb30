"""The posterior mode (MAP) on the ML Newton engine.

The log posterior is the log likelihood plus the log prior of every free parameter
(:class:`~bayesfmm.bayes.priors.LogPrior`: normal, Student-t or flat priors on ``theta``,
the optimiser's scale, with their analytic gradient and diagonal Hessian). It is
maximised by the ML engine's Newton-Raphson (:func:`bayesfmm.ml.newton.newton`) with the
log prior added as a penalty: the exact Hessian of the log likelihood plus the prior's,
Stata's step halving and convergence rule, constraints handled in the free parameters
(``theta = T phi + c``: ``T' g``, ``T' H T``) as in an ML fit. The run starts from the ML
fit the samplers start from (:func:`bayesfmm.bayes.starts.ml_fit`) unless ``start=`` is
given. The covariance is the Laplace approximation: the inverse of minus that exact
Hessian at the mode (mapped back as ``T V T'`` under constraints). No ordering is imposed:
a mode is a mode under any labelling. With ``priors="flat"`` the objective is the log
likelihood, so the mode is the ML estimate.

No PyMC model is built and PyMC is not imported.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesfmm.bayes.builder import problem_for
from bayesfmm.bayes.priors import LogPrior, resolve_priors
from bayesfmm.bayes.results import MAPResults
from bayesfmm.bayes.starts import ml_fit
from bayesfmm.errors import ConvergenceWarning, SpecificationError
from bayesfmm.iterlog import IterationLog
from bayesfmm.likelihood import MixtureProblem
from bayesfmm.ml.newton import NewtonOptions, NewtonResult, newton
from bayesfmm.ml.vce import observed_information_covariance

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from bayesfmm.spec import ModelSpec

__all__ = ["MAP_NRTOLERANCE", "map_estimate", "laplace_covariance"]

# the scaled gradient g' (-H)^-1 g below which the mode is reached: tighter than ML's
# 1e-5, so that the log posterior at the mode is within ~1e-10 of its maximum
MAP_NRTOLERANCE = 1e-10

LAPLACE_NOTE = "Laplace approximation: inverse of minus the Hessian of the log posterior at the mode"


def laplace_covariance(problem: MixtureProblem, hessian: np.ndarray) -> tuple[np.ndarray, str]:
    """``(-H)^-1`` of the log posterior's Hessian ``H`` (on ``theta``), computed in the free
    parameters under constraints and mapped back (``T V T'``); and a note, empty unless
    minus the Hessian is not positive definite (then the covariance is NaN)."""
    T = problem.layout.transform
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cov, note = observed_information_covariance(hessian if T is None else T.T @ hessian @ T)
    if T is not None:
        cov = T @ cov @ T.T
        cov = (cov + cov.T) / 2
    return cov, note


def _start_vector(spec: "ModelSpec", data: "pd.DataFrame", problem: MixtureProblem, pooled, start) -> np.ndarray:
    if start is None:
        ml = ml_fit(spec, data)
        start = ml.theta if ml is not None else pooled
    start = np.asarray(start, dtype=float)
    if start.shape != (problem.layout.size,):
        raise SpecificationError(f"start must be a vector of {problem.layout.size} parameters, got shape {start.shape}")
    return start


def map_estimate(
    spec: "ModelSpec",
    data: "pd.DataFrame",
    priors: Any = None,
    start: np.ndarray | None = None,
    gtol: float = MAP_NRTOLERANCE,
    maxiter: int = 500,
    *,
    log: bool = False,
) -> MAPResults:
    """The posterior mode of ``spec`` on ``data`` by Newton-Raphson with exact Hessians.

    Parameters
    ----------
    spec, data
        The model and the data.
    priors
        As for :meth:`bayesfmm.FMM.sample`: None (the defaults), ``"flat"``, or a dict of
        overrides (see :func:`bayesfmm.bayes.priors.resolve_priors`).
    start
        A ``theta`` vector in the layout's order; by default the ML fit
        (:func:`bayesfmm.bayes.starts.ml_fit`).
    gtol
        The Newton engine's ``nrtolerance`` (the scaled gradient ``g' (-H)^-1 g`` of the
        log posterior) at which the mode is reached, together with Stata's parameter or
        objective criterion.
    maxiter
        Newton iterations at most (Stata's ``iterate``).
    log
        Print the iteration log (``Iteration 0:   log posterior = ...``); it is always
        recorded in ``res.iteration_log``.

    Returns
    -------
    MAPResults
        MLResults' API at the mode: ``llf`` the log likelihood there, ``logp`` the log
        posterior, ``cov_theta`` the Laplace covariance, ``priors`` the prior table.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> stamp = bf.datasets.load("stamp")
    >>> mode = map_estimate(bf.FMM("thickness ~ 1", k=2), stamp, priors="flat")
    >>> ml = bf.FMM("thickness ~ 1", k=2).fit(stamp)
    >>> mode.converged, abs(mode.llf - ml.llf) < 1e-8
    (True, True)
    """
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        raise SpecificationError(f"maxiter must be a positive integer, got {maxiter!r}")
    if not (isinstance(gtol, (int, float)) and gtol > 0):
        raise SpecificationError(f"gtol must be a positive number, got {gtol!r}")
    problem, pooled = problem_for(spec, data)
    table = resolve_priors(problem, priors, pooled)
    theta0 = _start_vector(spec, data, problem, pooled, start)
    iterlog = IterationLog(echo=log)
    options = NewtonOptions(iterate=int(maxiter), nrtolerance=float(gtol))
    result = newton(problem, theta0, options, iterlog, penalty=LogPrior(table, problem.layout))
    return _results(problem, result, iterlog, table)


def _results(problem: MixtureProblem, result: NewtonResult, iterlog: IterationLog, table) -> MAPResults:
    cov, note = laplace_covariance(problem, result.hessian)
    if not result.converged:
        warnings.warn(
            f"MAP optimisation did not converge ({result.message}; scaled gradient "
            f"{result.scaled_gradient:.3g}): try another start= or proper priors",
            ConvergenceWarning,
            stacklevel=4,
        )
    return MAPResults(
        problem=problem,
        theta=result.theta,
        cov_theta=cov,
        llf=result.llf,
        converged=result.converged,
        iterations=result.iterations,
        vce="oim",
        vce_note=note or LAPLACE_NOTE,
        starts=None,
        iteration_log=iterlog,
        gradient=np.asarray(result.gradient),
        hessian=result.hessian,
        logp=float(result.objective),
        priors=table,
    )
