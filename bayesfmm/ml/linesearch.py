"""The step-halving line search every Newton-type loop of the package uses.

From ``x`` along ``step``, try ``x + step``, ``x + step / 2``, ``x + step / 4``, ... and take
the first trial whose objective is finite and has not fallen below the current value (less
a relative slack, so that a step at the optimum, where rounding makes the objective wobble
by an ulp, still counts). This is Stata's ``ml`` stepping rule (a halved step is logged
``(backed up)``). The trials are ``x + t * step`` with ``t = 2^-i``, which is exact in
floating point, so halving ``t`` and halving ``step`` give the same points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["LineSearchResult", "step_halving"]


@dataclass(frozen=True)
class LineSearchResult:
    """The outcome of :func:`step_halving`.

    Attributes
    ----------
    x : numpy.ndarray
        The accepted trial point; when ``accepted`` is False, the last (smallest) trial.
    value : float
        The objective at ``x``.
    halvings : int
        How many times the step was halved before ``x`` (0: the full step).
    accepted : bool
        Whether ``x`` met the rule (finite, not below ``value - slack``).
    payload : Any
        Whatever the objective returned alongside its value for ``x`` (None if nothing).
    """

    x: np.ndarray
    value: float
    halvings: int
    accepted: bool
    payload: Any = None


def step_halving(
    objective: Callable[[np.ndarray], "float | tuple[float, Any]"],
    x: np.ndarray,
    step: np.ndarray,
    value: float,
    *,
    max_halvings: int = 40,
    tolerance: float = 1e-12,
    offset: float = 1.0,
) -> LineSearchResult:
    """Halve ``step`` until ``objective(x + t * step)`` does not fall below ``value``.

    A trial is accepted when its objective is finite and at least
    ``value - tolerance * (abs(value) + offset)``.

    Parameters
    ----------
    objective
        ``objective(trial) -> value`` or ``-> (value, payload)``; the payload of the point
        returned (e.g. intermediate results the caller reuses) comes back in the result.
    x, step
        The current point and the full step.
    value
        The objective at ``x``.
    max_halvings
        Trials at most (the full step counts as the first).
    tolerance, offset
        The slack of the acceptance rule. ``offset=1.0`` is the Newton engine's
        ``1e-12 * (|llf| + 1)``; ``offset=0.0`` a purely relative ``1e-12 * |value|``.

    Returns
    -------
    LineSearchResult
        The accepted point, or (``accepted=False``) the last trial when none was.

    Examples
    --------
    >>> import numpy as np
    >>> f = lambda x: -float(np.sum((x - 1.0) ** 2))
    >>> res = step_halving(f, np.zeros(1), np.array([3.0]), f(np.zeros(1)))
    >>> res.x, res.halvings, res.accepted
    (array([1.5]), 1, True)
    """
    x = np.asarray(x, dtype=float)
    step = np.asarray(step, dtype=float)
    floor = value - tolerance * (abs(value) + offset)
    t = 1.0
    trial, new, payload = x, -np.inf, None
    for half in range(max_halvings):
        trial = x + t * step
        out = objective(trial)
        new, payload = out if isinstance(out, tuple) else (out, None)
        new = float(new)
        if np.isfinite(new) and new >= floor:
            return LineSearchResult(trial, new, half, True, payload)
        t /= 2
    return LineSearchResult(trial, new, max(max_halvings - 1, 0), False, payload)
