"""Gaussian (Stata ``regress``): mean ``mu = X b``, auxiliary log error variance.

Reported as ``var(e)`` with delta-method SEs and a CI built on the log scale, as Stata does.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import linalg

from bayesfmm.families.base import LOG_SCALE, Family, Slot
from bayesfmm.families.registry import register_family
from bayesfmm.ops import LOG_2PI, Ops

__all__ = ["gaussian", "normal_logpdf", "normal_derivatives", "normal_weighted_fit", "normal_sample"]

SLOTS = (
    Slot("mu"),
    Slot("lnvar", linear=False, report_name="var(e)", param_class="errvar", scale=LOG_SCALE, collapses="down"),
)


def normal_logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    """log N(y | mu, exp(lnvar)), written once for numpy and pytensor."""
    mu, lnvar = etas
    return -0.5 * (LOG_2PI + lnvar + ops.square(y - mu) * ops.exp(-lnvar))


def normal_derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any = None):
    """First and second derivatives of :func:`normal_logpdf` in (mu, lnvar)."""
    mu, lnvar = etas
    resid = np.asarray(y - mu, dtype=float)
    precision = np.exp(-lnvar) * np.ones_like(resid)
    scaled = resid * precision
    sq = resid * scaled
    d = np.stack([scaled, 0.5 * (sq - 1.0)])
    h = np.empty((2, 2, resid.shape[0]))
    h[0, 0] = -precision
    h[0, 1] = h[1, 0] = -scaled
    h[1, 1] = -0.5 * sq
    return d, h


def _weighted_least_squares(x: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least squares by scaled normal equations (Cholesky), falling back to an SVD
    solve when the scaled cross-product is ill-conditioned (condition number > 1e10)."""
    xw = x.T * weights
    cross = xw @ x
    scale = np.sqrt(np.maximum(np.diag(cross), 1e-300))
    scaled = cross / np.outer(scale, scale)
    try:
        if np.linalg.cond(scaled) > 1e10:
            raise linalg.LinAlgError("ill-conditioned")
        factor = linalg.cho_factor(scaled, lower=True)
        return linalg.cho_solve(factor, (xw @ target) / scale) / scale
    except (linalg.LinAlgError, ValueError):
        sw = np.sqrt(weights)
        return np.linalg.lstsq(x * sw[:, None], target * sw, rcond=None)[0]


def normal_weighted_fit(y, designs, offsets, weights, extra=None):
    """Closed-form weighted ML: weighted least squares and the weighted mean square."""
    x = designs[0]
    target = y - offsets[0]
    beta = _weighted_least_squares(x, target, weights)
    resid = target - x @ beta
    total = weights.sum()
    var = float(weights @ (resid * resid) / total) if total > 0 else 0.0
    return [beta, np.array([np.log(var) if var > 0 else -np.inf])]


def _weighted_log_variance(y: np.ndarray, weights: np.ndarray) -> list[float]:
    total = weights.sum()
    mean = weights @ y / total
    var = weights @ np.square(y - mean) / total
    return [float(np.log(max(var, 1e-300)))]


def normal_sample(etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any = None) -> np.ndarray:
    """One draw per row from N(mu, exp(lnvar))."""
    mu, lnvar = (np.asarray(e, dtype=float) for e in etas)
    return rng.normal(mu, np.exp(0.5 * lnvar))


def gaussian() -> Family:
    """The normal family (Stata ``regress``; flexmix ``FLXMRglm(family="gaussian")``)."""
    return Family(
        name="gaussian",
        stata_name="regress",
        slots=SLOTS,
        logpdf=normal_logpdf,
        eta_derivatives=normal_derivatives,
        mean=lambda etas, ops, extra: etas[0],
        cdf=lambda y, etas, ops, extra: ops.ndtr((y - etas[0]) * ops.exp(-0.5 * etas[1])),
        in_support=lambda y, extra: np.isfinite(y),
        support="finite",
        start_aux=_weighted_log_variance,
        weighted_fit=normal_weighted_fit,
        sample=normal_sample,
    )


register_family("gaussian", gaussian, aliases=("regress", "normal"))
