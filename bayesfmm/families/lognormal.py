"""Lognormal (Stata ``glm, family(lognormal)``): ``log y ~ N(X b, var(e))``.

The density is the normal density of ``log y`` times the Jacobian ``1/y``: it reuses the
gaussian family's functions rather than writing the density again.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bayesfmm.families.base import BatchedFit, Family, response_term
from bayesfmm.families.gaussian import (
    SLOTS,
    _weighted_log_variance,
    normal_derivatives,
    normal_logpdf,
    normal_sample,
    normal_weighted_fit,
    normal_weighted_fits,
)
from bayesfmm.families.registry import register_family
from bayesfmm.ops import Ops

__all__ = ["lognormal"]


def _logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    log_y = response_term(extra, "log_y")
    if log_y is None:
        log_y = ops.log(y)
    return normal_logpdf(log_y, etas, ops) - log_y


def _log_y(y: np.ndarray, extra: Any) -> np.ndarray:
    log_y = response_term(extra, "log_y")
    return np.log(y) if log_y is None else log_y


def log_response(y: Any, extra: Any, ops: Ops) -> dict[str, Any]:
    """The response-only term of a density in ``log y``."""
    return {"log_y": ops.log(y)}


def _cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    mu, lnvar = etas
    return ops.ndtr((ops.log(y) - mu) * ops.exp(-0.5 * lnvar))


def _logsf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    mu, lnvar = etas
    return ops.log_ndtr((mu - ops.log(y)) * ops.exp(-0.5 * lnvar))


def _weighted_fit(y, designs, offsets, weights, extra=None):
    return normal_weighted_fit(_log_y(y, extra), designs, offsets, weights)


def _weighted_fits(y, designs, offsets, W, extra=None):
    return normal_weighted_fits(_log_y(y, extra), designs, offsets, W)


def lognormal() -> Family:
    """The lognormal family; ``mu`` is the mean of ``log y``, reported with ``var(e)``."""
    return Family(
        name="lognormal",
        stata_name="lognormal",
        slots=SLOTS,
        logpdf=_logpdf,
        eta_derivatives=lambda y, etas, extra: normal_derivatives(_log_y(y, extra), etas),
        mean=lambda etas, ops, extra: ops.exp(etas[0] + 0.5 * ops.exp(etas[1])),
        cdf=_cdf,
        logsf=_logsf,
        in_support=lambda y, extra: np.isfinite(y) & (y > 0),
        support="positive",
        start_aux=lambda y, w: _weighted_log_variance(np.log(y), w),
        weighted_fit=BatchedFit(_weighted_fit, _weighted_fits),
        sample=lambda etas, rng, extra=None: np.exp(normal_sample(etas, rng)),
        response_terms=log_response,
    )


register_family("lognormal", lognormal)
