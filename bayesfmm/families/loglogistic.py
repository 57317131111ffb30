"""Loglogistic regression (gsem/``fmm`` ``glm, family(loglogistic)``; ``streg, distribution(loglogistic)``).

Accelerated failure time metric (the only one Stata has for this law): ``log y = eta + g e``
with ``e`` standard logistic, ``eta = X b (+ offset)``, and the auxiliary slot
``lns = ln g`` reported as ``scale`` = ``g`` (Stata ``streg``'s ``gamma``; R ``survreg``'s
``Scale``). With ``w = (log y - eta) / g``::

    f(y) = exp(w) / (g y (1 + exp(w))^2),    F(y) = 1 / (1 + exp(-w))

    S(y) = 1 / (1 + (lambda y)^(1/g)),  lambda = exp(-eta)   (Stata's form)

The median of ``y`` is ``exp(eta)``; the mean ``exp(eta) g pi / sin(g pi)`` exists only for
``g < 1`` (``inf`` otherwise). Coefficients are log time ratios. Eta-derivatives use the
chain rule through ``w`` shared with the Weibull AFT metric.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bayesfmm.families.base import Family, Slot
from bayesfmm.families.gamma import SCALE_SLOT, log_scale_start, positive_support, weighted_log_moments
from bayesfmm.families.registry import register_family
from bayesfmm.families.weibull import log_time_chain, standardised_log_time
from bayesfmm.ops import (
    Ops,
    special,  # scipy.special, loaded on first use
)

__all__ = ["loglogistic"]

SLOTS = (Slot("mu"), SCALE_SLOT)
SD_LOGISTIC = float(np.pi / np.sqrt(3.0))  # sd of the standard logistic law


def _logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    eta, lns = etas
    w = standardised_log_time(y, eta, lns, ops, "aft")
    return w - lns - ops.log(y) - 2.0 * ops.softplus(w)


def _derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any = None):
    y = np.asarray(y, dtype=float)
    eta, lns = (np.asarray(e, dtype=float) for e in etas)
    w = (np.log(y) - eta) * np.exp(-lns) * np.ones_like(y)
    prob = special.expit(w)
    return log_time_chain(y, etas, "aft", 1.0 - 2.0 * prob, -2.0 * prob * special.expit(-w))


def _cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    return ops.sigmoid(standardised_log_time(y, etas[0], etas[1], ops, "aft"))


def _logsf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    return -ops.softplus(standardised_log_time(y, etas[0], etas[1], ops, "aft"))


def _mean(etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    # exp(eta) Gamma(1 + g) Gamma(1 - g) = exp(eta) g pi / sin(g pi), finite for g < 1
    eta, lns = etas
    g = ops.exp(lns)
    finite = g < 1.0
    safe = ops.where(finite, g, 0.5)
    value = ops.exp(eta + ops.gammaln(1.0 + safe) + ops.gammaln(1.0 - safe))
    return ops.where(finite, value, np.inf)


def _sample(etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any = None) -> np.ndarray:
    """One draw per row: ``exp(eta + g e)`` with ``e`` standard logistic."""
    eta, lns = (np.asarray(e, dtype=float) for e in etas)
    return np.exp(eta + np.exp(lns) * rng.logistic(size=np.broadcast(eta, lns).shape))


def _start_aux(y: np.ndarray, weights: np.ndarray) -> list[float]:
    _, sd = weighted_log_moments(y, weights)
    return [float(np.log(sd / SD_LOGISTIC))]


def _start_linear(y, designs, offsets, weights, extra=None) -> list[np.ndarray]:
    return [log_scale_start(y, designs[0], offsets[0], weights, 0.0)]  # E(log y) = eta


def loglogistic() -> Family:
    """The loglogistic family (AFT metric); ``scale`` is Stata ``streg``'s ``gamma``.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.get_family("llogistic").name
    'loglogistic'
    """
    return Family(
        name="loglogistic",
        stata_name="glm, family(loglogistic) link(log)",
        slots=SLOTS,
        logpdf=_logpdf,
        eta_derivatives=_derivatives,
        mean=_mean,
        cdf=_cdf,
        logsf=_logsf,
        in_support=positive_support,
        support="positive (> 0)",
        start_aux=_start_aux,
        start_linear=_start_linear,
        sample=_sample,
    )


register_family("loglogistic", loglogistic, aliases=("llogistic",))
