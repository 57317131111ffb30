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

A ``penalty`` (an object with ``value(theta)`` and ``derivatives(theta) -> (value,
gradient, Hessian)``, such as the log prior of :mod:`bayesfmm.bayes.priors`) is added to
the log likelihood, its value, gradient and Hessian to the likelihood's: the engine then
maximises the penalised objective (the log posterior, for MAP) with the same steps, line
search and convergence rule; its iteration log says ``log posterior``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from bayesfmm.iterlog import IterationLog, mreldif, reldif
from bayesfmm.likelihood import Evaluation, MixtureProblem, loglike, score_hessian
from bayesfmm.ml.linesearch import step_halving
from bayesfmm.ops import cho_factor, cho_solve

__all__ = ["NewtonOptions", "NewtonResult", "Penalty", "newton"]


class Penalty(Protocol):
    """A smooth term added to the log likelihood (e.g. a log prior), on ``theta``."""

    def value(self, theta: np.ndarray) -> float: ...

    def derivatives(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]: ...


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
    gradient: np.ndarray  # of the objective: the log likelihood's plus the penalty's
    hessian: np.ndarray  # likewise
    evaluation: Evaluation
    iterations: int
    converged: bool
    concave: bool
    scaled_gradient: float
    message: str
    collapsed: str | None = None
    objective: float = float("nan")  # llf plus the penalty (llf itself without one)


def reflected_newton_step(g: np.ndarray, H: np.ndarray) -> np.ndarray:
    """An ascent direction where ``H`` is not negative definite: the Newton step with the
    eigenvalues of ``-H`` replaced by their absolute values (floored)."""
    vals, vecs = np.linalg.eigh(-(H + H.T) / 2)
    scale = np.max(np.abs(vals)) if vals.size else 1.0
    vals = np.maximum(np.abs(vals), max(scale * 1e-8, 1e-12))
    return vecs @ ((vecs.T @ g) / vals)


def split_newton_step(g: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Stata's ``difficult`` stepping where ``H`` is not negative definite: the parameter
    space is split along the eigenvectors of ``-H``; where the curvature is concave the
    step is Newton's, elsewhere it is steepest ascent, scaled by the smallest concave
    curvature (or the largest absolute one when none is concave) so the step lengths are
    comparable. The step-halving line search then sets the length."""
    vals, vecs = np.linalg.eigh(-(H + H.T) / 2)
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
        step = cho_solve(cho_factor(-(H + H.T) / 2), g)
        return step, True, float(g @ step)
    except (np.linalg.LinAlgError, ValueError):
        if difficult:
            return split_newton_step(g, H), False, np.inf
        return reflected_newton_step(g, H), False, np.inf


def _objective_derivatives(problem: MixtureProblem, theta: np.ndarray, penalty: Penalty | None,
                           known: Evaluation | None = None):
    """The evaluation, the objective's value, gradient and Hessian at ``theta`` (``known``:
    an evaluation there, see :func:`~bayesfmm.likelihood.score_hessian`)."""
    ev, g, H = score_hessian(problem, theta, known)
    if penalty is None:
        return ev, ev.llf, g, H
    value, pg, pH = penalty.derivatives(theta)
    return ev, ev.llf + value, g + pg, H + pH


def _log_iteration(log: IterationLog, it: int, value: float, note: str, penalised: bool) -> None:
    if not penalised:
        log.iteration(it, value, note=note)
        return
    log.write(f"Iteration {it}:{' ' * (3 - len(str(it)) + 1)}log posterior = {value:.8g}  {note}".rstrip())


def newton(
    problem: MixtureProblem,
    theta: np.ndarray,
    options: NewtonOptions,
    log: IterationLog | None = None,
    check: Callable[[np.ndarray, Evaluation], str | None] | None = None,
    penalty: Penalty | None = None,
    start: Evaluation | None = None,
) -> NewtonResult:
    """Maximise the log likelihood (plus ``penalty``, when given) from ``theta``.

    Parameters
    ----------
    problem
        The mixture.
    theta
        The start (projected onto the constraints, if any).
    options
        Stata's maximisation options (:class:`NewtonOptions`).
    log
        Where the iteration log goes.
    check
        ``check(theta, evaluation) -> reason or None``: stops the run (not converged) when
        it gives a reason (a collapsed class).
    penalty
        A term added to the objective (:class:`Penalty`); None for the log likelihood.
    start
        The evaluation at ``theta`` when the caller has it (EM's last E-step): the first
        score and Hessian read its log likelihood per row and responsibilities instead of
        evaluating the mixture again. Not used under constraints (``theta`` is projected).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.likelihood import MixtureProblem
    >>> ml = bf.FMM("thickness ~ 1", k=2).fit(bf.datasets.load("stamp"))
    >>> again = newton(ml.problem, ml.theta, NewtonOptions())
    >>> again.converged, round(again.llf, 4) == round(ml.llf, 4)
    (True, True)
    """
    theta = np.asarray(theta, dtype=float).copy()
    prev_theta, prev_value = None, None
    note = ""
    message = f"iteration limit {options.iterate} reached"
    converged = False
    penalised = penalty is not None

    def objective(point: np.ndarray) -> float:
        value = loglike(problem, point)
        return value if penalty is None else value + penalty.value(point)

    trials = [0]

    def speculative(point: np.ndarray):
        """The full step is usually taken: evaluate the derivatives there too, in the same
        pass over the data, so the next iteration need not read the data again; a halved
        trial evaluates the objective alone."""
        trials[0] += 1
        if trials[0] > 1:
            return objective(point), None
        found = _objective_derivatives(problem, point, penalty)
        return found[1], found

    T = problem.layout.transform  # constraints: step in the free parameters, theta = T phi + c
    if T is not None:
        theta = problem.layout.project(theta)
    ahead = None  # (ev, value, g, H) at theta, from the last line search's full step
    if start is not None and T is None:
        ahead = _objective_derivatives(problem, theta, penalty, start)
    for it in range(options.iterate + 1):
        ev, value, g, H = ahead if ahead is not None else _objective_derivatives(problem, theta, penalty)
        if T is None:
            step, concave, scaled = _direction(g, H, options.difficult)
        else:
            step, concave, scaled = _direction(T.T @ g, T.T @ H @ T, options.difficult)
            step = T @ step
        if log is not None:
            _log_iteration(log, it, value, "(not concave)" if not concave else note, penalised)
        if check is not None:
            reason = check(theta, ev)
            if reason:
                return NewtonResult(theta, ev.llf, g, H, ev, it, False, concave, scaled, reason, reason, value)
        if prev_theta is not None and concave and scaled < options.nrtolerance:
            moved = mreldif(theta, prev_theta) < options.tolerance
            flat = reldif(value, prev_value) < options.ltolerance
            if moved or flat:
                converged = True
                message = "converged"
                break
        if it == options.iterate:
            break
        if prev_theta is not None and concave and scaled < 1e-14 * (abs(value) + 1):
            converged = True  # at the maximum to machine precision; nothing left to move
            message = "converged"
            break
        trials[0] = 0
        # speculate only where full steps are being taken (a concave point, no backing up)
        search = step_halving(speculative if concave and not note else objective, theta, step, value,
                              max_halvings=options.max_halvings)
        ahead = search.payload if search.halvings == 0 else None
        if not search.accepted:
            message = f"no step increases the {'log posterior' if penalised else 'log likelihood'} (flat or discontinuous region)"
            break
        note = "(backed up)" if search.halvings else ""
        prev_theta, prev_value = theta, value
        theta = search.x
    return NewtonResult(theta, ev.llf, g, H, ev, it, converged, concave, scaled, message, None, value)
