"""Exponential regression (Stata ``glm, family(exponential) link(log)``; gsem ``exponential``).

No auxiliary parameter. With ``eta = X b (+ offset)`` the two metrics are

* ``metric="aft"`` (default; the log link for the mean): ``E(y) = mu = exp(eta)``,
  ``f(y) = exp(-y / mu) / mu``. Coefficients are log time ratios, as in
  ``streg, distribution(exponential) time``.
* ``metric="ph"`` (proportional hazards, ``streg, distribution(exponential)``): hazard
  ``lambda = exp(eta)``, ``f(y) = lambda exp(-lambda y)``, ``E(y) = exp(-eta)``. The
  coefficients are those of ``"aft"`` with the sign flipped; the likelihood is the same.

``exponential`` equals ``weibull`` with ``scale`` fixed at 1 in the same metric.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import Family, Slot
from bayesfmm.families.gamma import log_scale_start, positive_support
from bayesfmm.families.registry import register_family
from bayesfmm.ops import Ops

__all__ = ["METRICS", "check_metric", "exponential"]

METRICS = ("aft", "ph")
EULER_GAMMA = float(np.euler_gamma)


def check_metric(metric: Any, family: str) -> str:
    """The metric name in lower case, or a SpecificationError naming the choices."""
    if not isinstance(metric, str) or metric.lower() not in METRICS:
        raise SpecificationError(
            f"family {family!r} takes metric='aft' (accelerated failure time, log link for "
            f"the time scale) or metric='ph' (proportional hazards), got metric={metric!r}"
        )
    return metric.lower()


def _sign(metric: str) -> float:
    """``eta`` enters the log hazard with this sign: -1 for AFT, +1 for PH."""
    return -1.0 if metric == "aft" else 1.0


def exponential(metric: str = "aft") -> Family:
    """The exponential family; ``metric="aft"`` (mean ``exp(eta)``) or ``"ph"`` (hazard ``exp(eta)``).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.get_family("exponential").n_slots
    1
    """
    metric = check_metric(metric, "exponential")
    sign = _sign(metric)

    def logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        log_hazard = sign * etas[0]
        return log_hazard - y * ops.exp(log_hazard)

    def derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any = None):
        y = np.asarray(y, dtype=float)
        z = y * np.exp(sign * np.asarray(etas[0], dtype=float))  # cumulative hazard
        d = (sign * (1.0 - z))[None, :]
        h = (-z)[None, None, :]
        return d, h

    def cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        return -ops.expm1(-y * ops.exp(sign * etas[0]))

    def logsf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        return -y * ops.exp(sign * etas[0])  # minus the cumulative hazard

    def start_linear(y, designs, offsets, weights, extra=None) -> list[np.ndarray]:
        # E(log y) = eta - Euler's gamma in the AFT metric
        if metric == "aft":
            return [log_scale_start(y, designs[0], offsets[0], weights, EULER_GAMMA)]
        # PH: log y + offset = -X b + error
        return [-log_scale_start(y, designs[0], -offsets[0], weights, EULER_GAMMA)]

    return Family(
        name="exponential",
        stata_name="glm, family(exponential) link(log)" + (", ph" if metric == "ph" else ""),
        slots=(Slot("mu"),),
        logpdf=logpdf,
        eta_derivatives=derivatives,
        mean=lambda etas, ops, extra: ops.exp(-sign * etas[0]),
        cdf=cdf,
        logsf=logsf,
        in_support=positive_support,
        support="positive (> 0)",
        start_aux=lambda y, w: [],
        start_linear=start_linear,
        sample=lambda etas, rng, extra=None: rng.exponential(np.exp(-sign * np.asarray(etas[0], dtype=float))),
        options={"metric": metric},
    )


register_family("exponential", exponential)
