"""Weibull regression (gsem/``fmm`` ``glm, family(weibull)``; ``streg, distribution(weibull)``).

Uncensored responses only here (survival versions with a failure indicator come later).
The auxiliary slot ``lns = ln s`` is reported as ``scale`` = ``s``, the scale of ``log y``
(R ``survreg``'s ``Scale``, Stata ``streg``'s ``1/p``); the Weibull shape is ``p = 1/s``.
With ``eta = X b (+ offset)`` the two metrics are

* ``metric="ph"`` (default; proportional hazards, as ``streg``): hazard
  ``h(y) = p y^(p-1) exp(eta)``::

      f(y) = p exp(eta) y^(p-1) exp(-exp(eta) y^p),    E(y) = Gamma(1 + s) exp(-s eta)

  ``exp(b)`` are hazard ratios; Stata's ``ln_p`` is ``-ln(scale)``.
* ``metric="aft"`` (accelerated failure time, ``streg ..., time``):
  ``log y = eta + s e`` with ``e`` standard minimum extreme value::

      f(y) = (p / y) w exp(-w),  w = (y exp(-eta))^p,    E(y) = Gamma(1 + s) exp(eta)

  The coefficients are ``-s`` times the PH ones; the likelihood is the same.

Both are written as ``log f = -ln s + w - log y - exp(w)`` in the standardised log time
``w`` (``eta + p log y`` for PH, ``p (log y - eta)`` for AFT), and the eta-derivatives
follow by the chain rule through ``w`` (:func:`log_time_chain`), which the loglogistic
family shares.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bayesfmm.families.base import Family, Slot
from bayesfmm.families.exponential import EULER_GAMMA, check_metric
from bayesfmm.families.gamma import SCALE_SLOT, log_scale_start, positive_support, weighted_log_moments
from bayesfmm.families.registry import register_family
from bayesfmm.ops import Ops

__all__ = ["log_time_chain", "standardised_log_time", "weibull"]

SLOTS = (Slot("mu"), SCALE_SLOT)
SD_EXTREME_VALUE = float(np.pi / np.sqrt(6.0))  # sd of the standard extreme-value law


def standardised_log_time(y: Any, eta: Any, lns: Any, ops: Ops, metric: str) -> Any:
    """``w``: ``eta + exp(-lns) log y`` (PH) or ``exp(-lns) (log y - eta)`` (AFT)."""
    if metric == "ph":
        return eta + ops.exp(-lns) * ops.log(y)
    return (ops.log(y) - eta) * ops.exp(-lns)


def log_time_chain(
    y: np.ndarray, etas: Sequence[np.ndarray], metric: str, l_w: np.ndarray, l_ww: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Eta-derivatives of ``log f = -lns + g(w) - log y`` from ``g'(w)`` and ``g''(w)``.

    ``w`` is :func:`standardised_log_time`; its derivatives in ``(eta, lns)`` are, for PH,
    ``w_eta = 1``, ``w_lns = -p log y``, ``w_lns,lns = p log y``; for AFT ``w_eta = -p``,
    ``w_lns = -w``, ``w_eta,lns = p``, ``w_lns,lns = w`` (``p = exp(-lns)``).
    """
    y = np.asarray(y, dtype=float)
    eta, lns = (np.asarray(e, dtype=float) * np.ones_like(y) for e in etas)
    p = np.exp(-lns)
    zeros = np.zeros_like(y)
    if metric == "ph":
        u = p * np.log(y)
        w_eta, w_lns = np.ones_like(y), -u
        w_ee, w_el, w_ll = zeros, zeros, u
    else:
        w = (np.log(y) - eta) * p
        w_eta, w_lns = -p, -w
        w_ee, w_el, w_ll = zeros, p, w
    d = np.stack([l_w * w_eta, l_w * w_lns - 1.0])
    h = np.empty((2, 2, y.shape[0]))
    h[0, 0] = l_ww * w_eta * w_eta + l_w * w_ee
    h[0, 1] = h[1, 0] = l_ww * w_eta * w_lns + l_w * w_el
    h[1, 1] = l_ww * w_lns * w_lns + l_w * w_ll
    return d, h


def weibull(metric: str = "ph") -> Family:
    """The Weibull family; ``metric="ph"`` (default, as ``streg``) or ``"aft"``; ``scale`` = 1/p.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.get_family("weibull", metric="aft").options["metric"]
    'aft'
    """
    metric = check_metric(metric, "weibull")

    def logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        eta, lns = etas
        w = standardised_log_time(y, eta, lns, ops, metric)
        return -lns + w - ops.log(y) - ops.exp(w)

    def derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any = None):
        y = np.asarray(y, dtype=float)
        eta, lns = (np.asarray(e, dtype=float) for e in etas)
        p = np.exp(-lns)
        w = eta + p * np.log(y) if metric == "ph" else (np.log(y) - eta) * p
        z = np.exp(w) * np.ones_like(y)
        return log_time_chain(y, etas, metric, 1.0 - z, -z)

    def cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        w = standardised_log_time(y, etas[0], etas[1], ops, metric)
        return -ops.expm1(-ops.exp(w))

    def logsf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        return -ops.exp(standardised_log_time(y, etas[0], etas[1], ops, metric))

    def mean(etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        eta, lns = etas
        s = ops.exp(lns)
        return ops.exp(ops.gammaln(1.0 + s) + (eta if metric == "aft" else -s * eta))

    def sample(etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any = None) -> np.ndarray:
        # w = log E with E ~ Exp(1): invert the standardised log time for y
        eta, lns = (np.asarray(e, dtype=float) for e in etas)
        log_e = np.log(rng.exponential(size=np.broadcast(eta, lns).shape))
        s = np.exp(lns)
        return np.exp((log_e - eta) * s if metric == "ph" else eta + s * log_e)

    def start_aux(y: np.ndarray, weights: np.ndarray) -> list[float]:
        _, sd = weighted_log_moments(y, weights)
        return [float(np.log(sd / SD_EXTREME_VALUE))]

    def start_linear(y, designs, offsets, weights, extra=None) -> list[np.ndarray]:
        # AFT: E(log y) = eta - Euler's gamma * s; PH coefficients are -AFT / s
        s = float(np.exp(start_aux(y, weights)[0]))
        if metric == "aft":
            return [log_scale_start(y, designs[0], offsets[0], weights, EULER_GAMMA * s)]
        # PH: log y + s * offset = -s X b + s * error
        return [-log_scale_start(y, designs[0], -s * offsets[0], weights, EULER_GAMMA * s) / s]

    return Family(
        name="weibull",
        stata_name="glm, family(weibull) link(log)" + (", aft" if metric == "aft" else ""),
        slots=SLOTS,
        logpdf=logpdf,
        eta_derivatives=derivatives,
        mean=mean,
        cdf=cdf,
        logsf=logsf,
        in_support=positive_support,
        support="positive (> 0)",
        start_aux=start_aux,
        start_linear=start_linear,
        sample=sample,
        options={"metric": metric},
    )


register_family("weibull", weibull)
