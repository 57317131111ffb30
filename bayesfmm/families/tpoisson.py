"""Truncated Poisson (Stata ``tpoisson``): a Poisson count observed only above ``ll``.

With ``mu = exp(eta)``, ``eta = X b + offset`` and the truncation point ``ll`` (``ll=``, a
non-negative integer or a column; default 0, the zero-truncated Poisson), ::

    log f(y) = y eta - mu - log y! - log P(Y > ll),   y > ll
    P(Y > ll) = P(ll + 1, mu)                         (regularised lower incomplete gamma)

``log P(Y > 0) = log(1 - exp(-mu))`` is computed as ``log(-expm1(-mu))``. A count at or
below ``ll`` has density 0 (log ``-inf``), not a data error: in the hybrid
``fmm: (pointmass y) (tpoisson y x)`` the zeros belong to the point mass, and that mixture
is the logit hurdle Poisson model (the class-1 probability is the probability of a zero).

Derivatives, with ``r = mu P(Y = ll) / P(Y > ll)``: ``d = y - mu - r`` and
``h = -mu - r (ll + 1 - mu - r)``; the mean is ``E(y | y > ll) = mu + r``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import Family, Slot
from bayesfmm.families.gamma import log_scale_start
from bayesfmm.families.poisson import COUNT_SUPPORT, count_response_terms, is_count, poisson_logpdf
from bayesfmm.families.registry import register_family
from bayesfmm.ops import (
    NUMPY_OPS,
    Ops,
    special,  # scipy.special, loaded on first use
)

__all__ = ["tpoisson"]


def _log_tail(mu: Any, ll: np.ndarray, ops: Ops) -> Any:
    """``log P(Y > ll)`` for ``Y ~ Poisson(mu)``; ``log(-expm1(-mu))`` where ``ll = 0``."""
    zero = ll == 0
    general = ops.log(ops.gammainc(ll + 1.0, mu)) if not np.all(zero) else 0.0
    return ops.where(zero, ops.log(-ops.expm1(-mu)), general)


def _ratio(eta: np.ndarray, ll: np.ndarray) -> np.ndarray:
    """``r = mu P(Y = ll) / P(Y > ll)`` (numpy)."""
    mu = np.exp(eta)
    log_r = (ll + 1.0) * eta - mu - special.gammaln(ll + 1.0) - _log_tail(mu, ll, NUMPY_OPS)
    return np.exp(log_r)


def tpoisson(ll: Any = 0) -> Family:
    """The truncated Poisson; ``ll=`` the truncation point (``y > ll``), an integer or a column.

    Examples
    --------
    >>> import numpy as np
    >>> import bayesfmm as bf
    >>> fam = bf.get_family("tpoisson")
    >>> float(np.exp(fam.logpdf_numpy(np.array([1.0]), [np.array([0.0])], {"ll": np.zeros(1)})[0])).__round__(6)
    0.581977
    """
    if isinstance(ll, str):
        if not ll.strip():
            raise SpecificationError("tpoisson ll= must be a non-negative integer or a column name, got ''")
    elif (
        isinstance(ll, bool)
        or not isinstance(ll, (int, float, np.integer, np.floating))
        or not np.isfinite(ll)
        or ll != int(ll)
        or ll < 0
    ):
        raise SpecificationError(f"tpoisson ll= must be a non-negative integer or a column name, got {ll!r}")
    else:
        ll = int(ll)

    def logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any) -> Any:
        limit = np.asarray(extra["ll"], dtype=float)
        value = poisson_logpdf(y, etas, ops, extra) - _log_tail(ops.exp(etas[0]), limit, ops)
        return ops.where(y > limit, value, -np.inf)

    def derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any):
        y = np.asarray(y, dtype=float)
        eta = np.asarray(etas[0], dtype=float) * np.ones_like(y)
        limit = np.asarray(extra["ll"], dtype=float) * np.ones_like(y)
        mu = np.exp(eta)
        r = _ratio(eta, limit)
        d = y - mu - r
        h = -mu - r * (limit + 1.0 - mu - r)
        return d[None, :], h[None, None, :]

    def mean(etas: Sequence[Any], ops: Ops, extra: Any) -> Any:
        eta = etas[0]
        limit = np.asarray(extra["ll"], dtype=float)
        mu = ops.exp(eta)
        log_r = (limit + 1.0) * eta - mu - special.gammaln(limit + 1.0) - _log_tail(mu, limit, ops)
        return mu + ops.exp(log_r)

    def cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any) -> Any:
        # P(Y <= y | Y > ll) = 1 - P(y + 1, mu) / P(ll + 1, mu)
        limit = np.asarray(extra["ll"], dtype=float)
        mu = ops.exp(etas[0])
        with np.errstate(divide="ignore"):
            value = 1.0 - ops.exp(ops.log(ops.gammainc(y + 1.0, mu)) - _log_tail(mu, limit, ops))
        return ops.where(y > limit, value, 0.0)

    def in_support(y: np.ndarray, extra: Any) -> np.ndarray:
        limit = np.asarray(extra["ll"], dtype=float)
        return is_count(y) & is_count(limit)

    def start_linear(y, designs, offsets, weights, extra=None) -> list[np.ndarray]:
        above = y > np.asarray(extra["ll"]) if extra is not None else y > 0
        w = np.where(above, weights, 0.0)
        return [log_scale_start(np.where(above, y, 1.0), designs[0], offsets[0], w, 0.0)]

    def sample(etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any) -> np.ndarray:
        from scipy import stats

        mu = np.exp(np.asarray(etas[0], dtype=float))
        limit = np.asarray(extra["ll"], dtype=float)
        below = stats.poisson.cdf(limit, mu)
        u = below + rng.random(np.broadcast(mu, limit).shape) * (1.0 - below)
        draws = stats.poisson.ppf(np.clip(u, 0.0, 1.0 - 1e-16), mu)
        return np.maximum(draws, limit + 1.0)

    support = f"{COUNT_SUPPORT}; counts <= ll = {ll!r} have density 0 (a pointmass class may take them)"
    return Family(
        name="tpoisson",
        stata_name="tpoisson" + (f", ll({ll})" if ll != 0 else ""),
        slots=(Slot("mu"),),
        logpdf=logpdf,
        eta_derivatives=derivatives,
        mean=mean,
        cdf=cdf,
        in_support=in_support,
        support=support,
        start_aux=lambda y, w: [],
        start_linear=start_linear,
        sample=sample,
        response_terms=count_response_terms,
        options={"ll": ll},
        extra_columns={"ll": ll},
    )


register_family("tpoisson", tpoisson)
