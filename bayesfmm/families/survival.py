"""Survival regressions with right censoring (Stata ``streg``, ``fmm: streg``).

``streg(distribution=, failure=, metric=)``: the response is the analysis time (``> 0``),
``failure=`` names the failure indicator column (1 = failed, 0 = right-censored; default:
every row failed). A failure contributes the density ``log f(t)``, a censored row the
survivor function ``log S(t)``. The densities are those of the existing families, reused
as they are: ``exponential``, ``weibull``, ``lognormal``, ``loglogistic`` and ``gamma``
(each gives ``logpdf`` and ``logsf``); so are their parameterisations and reported
auxiliary parameters.

Metrics are Stata ``streg``'s: ``exponential`` and ``weibull`` default to proportional
hazards (``metric="ph"``: coefficients are log hazard ratios) and take ``metric="aft"``
(``streg ..., time``: log time ratios); ``lognormal``, ``loglogistic`` and ``gamma`` are
accelerated failure time only.

A mixture cure model is a point mass on the failure indicator beside a survival class::

    bf.FMM([bf.Component("died ~ 1", family="pointmass", value=0),   # cured: never fail
            bf.Component("time ~ x", family="streg", distribution="weibull", failure="died")])

Derivatives are analytic for every distribution but the gamma's survivor function (central
finite differences of ``log S``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import ExtraColumn, Family, finite_difference_derivatives
from bayesfmm.families.gamma import log_scale_start, positive_support
from bayesfmm.families.interval import normal_tail_derivatives
from bayesfmm.families.registry import get_family, register_family
from bayesfmm.families.weibull import log_time_chain
from bayesfmm.ops import (
    Ops,
    special,  # scipy.special, loaded on first use
)

__all__ = ["streg", "SURVIVAL_DISTRIBUTIONS"]

SURVIVAL_DISTRIBUTIONS = ("exponential", "weibull", "lognormal", "loglogistic", "gamma")
PH_CAPABLE = ("exponential", "weibull")


def _exponential_logsf_derivatives(metric: str) -> Callable:
    sign = -1.0 if metric == "aft" else 1.0

    def derivatives(y, etas, extra=None):
        z = np.asarray(y, dtype=float) * np.exp(sign * np.asarray(etas[0], dtype=float))
        return (-sign * z)[None, :], (-z)[None, None, :]

    return derivatives


def _log_time_logsf_derivatives(metric: str, law: str) -> Callable:
    """``log S = g(w)`` in the standardised log time ``w``: Weibull ``g = -e^w``,
    loglogistic ``g = -log(1 + e^w)``."""

    def derivatives(y, etas, extra=None):
        y = np.asarray(y, dtype=float)
        eta, lns = (np.asarray(e, dtype=float) for e in etas)
        p = np.exp(-lns)
        w = (eta + p * np.log(y) if metric == "ph" else (np.log(y) - eta) * p) * np.ones_like(y)
        if law == "weibull":
            g1 = g2 = -np.exp(w)
        else:
            g1 = -special.expit(w)
            g2 = g1 * special.expit(-w)
        d, h = log_time_chain(y, etas, metric, g1, g2)
        d[1] += 1.0  # log_time_chain differentiates -lns + g(w) - log y; log S has no -lns
        return d, h

    return derivatives


def _lognormal_logsf_derivatives(y, etas, extra=None):
    y = np.asarray(y, dtype=float)
    mu, lnvar = (np.asarray(e, dtype=float) * np.ones_like(y) for e in etas)
    return normal_tail_derivatives((np.log(y) - mu) * np.exp(-0.5 * lnvar), lnvar, upper=True)


def _finite_difference_logsf(base: Family) -> Callable:
    survivor = dataclasses.replace(base, logpdf=base.logsf, eta_derivatives=None)

    def derivatives(y, etas, extra=None):
        return finite_difference_derivatives(survivor, y, etas, extra or {})

    return derivatives


def _logsf_derivatives(distribution: str, metric: str, base: Family) -> Callable:
    if distribution == "exponential":
        return _exponential_logsf_derivatives(metric)
    if distribution in ("weibull", "loglogistic"):
        return _log_time_logsf_derivatives(metric, distribution)
    if distribution == "lognormal":
        return _lognormal_logsf_derivatives
    return _finite_difference_logsf(base)


def _log_time_start(y, designs, offsets, weights, extra=None) -> list[np.ndarray]:
    """Least squares of ``log y`` (the lognormal mean's start; censoring ignored)."""
    return [log_scale_start(y, designs[0], offsets[0], weights, 0.0)]


def _check_distribution(distribution: Any, metric: Any) -> tuple[str, str]:
    if not isinstance(distribution, str) or distribution.lower() not in SURVIVAL_DISTRIBUTIONS:
        raise SpecificationError(
            f"streg distribution={distribution!r} is not available; choose from {', '.join(SURVIVAL_DISTRIBUTIONS)}"
        )
    distribution = distribution.lower()
    if metric is None:
        metric = "ph" if distribution in PH_CAPABLE else "aft"
    if not isinstance(metric, str) or metric.lower() not in ("ph", "aft"):
        raise SpecificationError(f"streg metric= must be 'ph' or 'aft', got {metric!r}")
    metric = metric.lower()
    if metric == "ph" and distribution not in PH_CAPABLE:
        raise SpecificationError(
            f"streg distribution={distribution!r} has the accelerated failure time metric only "
            "(metric='aft'); proportional hazards is available for exponential and weibull"
        )
    return distribution, metric


def _failure_column(failure: Any) -> Any:
    if failure is None:
        return 1.0
    if not isinstance(failure, str) or not failure.strip():
        raise SpecificationError(
            f"streg failure= must be the name of the failure indicator column (1 = failed, "
            f"0 = censored), got {failure!r}"
        )
    return ExtraColumn(failure, allowed=(0.0, 1.0), role="failure indicator (failure=)")


def streg(distribution: str = "weibull", failure: Any = None, metric: Any = None) -> Family:
    """A parametric survival regression with right censoring (Stata ``streg``).

    Parameters
    ----------
    distribution
        ``"exponential"``, ``"weibull"`` (default), ``"lognormal"``, ``"loglogistic"`` or
        ``"gamma"``; the parameterisation and reported parameters are those of that family.
    failure
        The failure indicator column (1 = failed, 0 = censored); default: every row failed.
    metric
        ``"ph"`` (default for exponential and weibull, as ``streg``) or ``"aft"`` (the only
        metric of the others; ``streg ..., time``).

    Examples
    --------
    >>> import numpy as np
    >>> import bayesfmm as bf
    >>> fam = bf.get_family("streg", distribution="exponential", failure="died")
    >>> etas, extra = [np.zeros(2)], {"failure": np.array([1.0, 0.0])}
    >>> fam.logpdf_numpy(np.array([2.0, 2.0]), etas, extra).tolist()  # log f(2), log S(2)
    [-2.0, -2.0]
    """
    distribution, metric = _check_distribution(distribution, metric)
    base = get_family(distribution, metric=metric) if distribution in PH_CAPABLE else get_family(distribution)
    survivor_derivatives = _logsf_derivatives(distribution, metric, base)

    def logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any) -> Any:
        failed = np.asarray(extra["failure"]) > 0.5
        return ops.where(failed, base.logpdf(y, etas, ops, extra), base.logsf(y, etas, ops, extra))

    def derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any):
        y = np.asarray(y, dtype=float)
        failed = (np.asarray(extra["failure"]) > 0.5) * np.ones(y.shape, dtype=bool)
        full = [np.asarray(e, dtype=float) * np.ones_like(y) for e in etas]
        d, h = base.derivatives(y, full, extra)
        if not failed.all():
            censored = ~failed
            sub_extra = {key: (np.asarray(v) * np.ones_like(y))[censored] for key, v in extra.items()}
            dc, hc = survivor_derivatives(y[censored], [e[censored] for e in full], sub_extra)
            d, h = np.array(d, dtype=float, copy=True), np.array(h, dtype=float, copy=True)
            d[:, censored] = dc
            h[:, :, censored] = hc
        return d, h

    suffix = ", time" if metric == "aft" and distribution in PH_CAPABLE else ""
    extra_columns = dict(base.extra_columns)
    extra_columns["failure"] = _failure_column(failure)
    return Family(
        name="streg",
        stata_name=f"streg, distribution({distribution}){suffix}",
        slots=base.slots,
        logpdf=logpdf,
        eta_derivatives=derivatives,
        mean=base.mean,
        cdf=base.cdf,
        logsf=base.logsf,
        in_support=positive_support,
        support="a positive (> 0) survival time",
        start_aux=base.start_aux,
        start_linear=base.start_linear or _log_time_start,
        weighted_fit=None,
        options={"distribution": distribution, "failure": failure, "metric": metric},
        extra_columns=extra_columns,
    )


register_family("streg", streg, aliases=("survival",))
