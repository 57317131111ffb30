"""Poisson (Stata ``poisson``; flexmix ``FLXMRglm(family = "poisson")``): log link.

``log f(y) = y eta - exp(eta) - log y!`` with ``eta = X b + offset`` (``exposure=`` adds
the log of its column to the offset). There is no auxiliary parameter.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from bayesfmm.families.base import Family, Slot, response_term
from bayesfmm.families.registry import register_family
from bayesfmm.ops import NUMPY_OPS, Ops

__all__ = ["poisson", "poisson_logpdf", "poisson_derivatives", "is_count", "COUNT_SUPPORT", "log_factorial", "count_response_terms"]

SLOTS = (Slot("mu"),)
COUNT_SUPPORT = "a non-negative integer count (0, 1, 2, ...)"


def is_count(y: np.ndarray) -> np.ndarray:
    """Mask of finite, non-negative, integer-valued responses."""
    y = np.asarray(y, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(y) & (y >= 0) & (y == np.floor(y))


def poisson_logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    """log Poisson(y | exp(eta)), written once for numpy and pytensor."""
    (eta,) = etas
    return y * eta - ops.exp(eta) - log_factorial(y, ops, extra)


def log_factorial(y: Any, ops: Ops, extra: Any = None) -> Any:
    """``log y!``: precomputed by the design (:func:`count_response_terms`) when present."""
    term = response_term(extra, "lgamma_y1")
    return ops.gammaln(y + 1.0) if term is None else term


# counts up to this size take log y! from a table of math.lgamma (no scipy.special import)
LOG_FACTORIAL_TABLE_MAX = 100_000


def count_log_factorial(y: np.ndarray) -> np.ndarray | None:
    """``log y!`` of integer counts from a table of :func:`math.lgamma` over
    ``0..max(y)``, or None when ``y`` is not such a count vector (then ``gammaln``).
    Importing ``scipy.special`` costs more than a small fit; a table of the distinct
    counts agrees with ``gammaln(y + 1)`` to the last bit or two.

    Examples
    --------
    >>> count_log_factorial(np.array([0.0, 1.0, 4.0])).round(6).tolist()
    [0.0, 0.0, 3.178054]
    >>> count_log_factorial(np.array([0.5])) is None
    True
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0 or not np.all(is_count(y)):
        return None
    top = int(np.max(y))
    if top > LOG_FACTORIAL_TABLE_MAX:
        return None
    table = np.array([math.lgamma(v + 1.0) for v in range(top + 1)])
    return table[y.astype(np.int64)]


def count_response_terms(y: Any, extra: Any, ops: Ops) -> dict[str, Any]:
    """The response-only term of a count density: ``log y!``."""
    if ops is NUMPY_OPS:
        table = count_log_factorial(y)
        if table is not None:
            return {"lgamma_y1": table}
    return {"lgamma_y1": ops.gammaln(y + 1.0)}


def poisson_derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any = None):
    """``d = y - mu`` and ``h = -mu`` in ``eta`` (``mu = exp(eta)``)."""
    (eta,) = etas
    y = np.asarray(y, dtype=float)
    mu = np.exp(eta) * np.ones_like(y)
    return (y - mu)[None, :], (-mu)[None, None, :]


def poisson_sample(etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any = None) -> np.ndarray:
    """One Poisson draw per row."""
    return rng.poisson(np.exp(np.asarray(etas[0], dtype=float))).astype(float)


def _cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    # P(Y <= y) = Q(y + 1, mu), the regularised upper incomplete gamma function
    return ops.gammaincc(y + 1.0, ops.exp(etas[0]))


def poisson() -> Family:
    """The Poisson family with log link; ``offset=``/``exposure=`` enter ``eta``.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> fam = bf.get_family("poisson")
    >>> [s.name for s in fam.slots]
    ['mu']
    """
    return Family(
        name="poisson",
        stata_name="poisson",
        slots=SLOTS,
        logpdf=poisson_logpdf,
        eta_derivatives=poisson_derivatives,
        mean=lambda etas, ops, extra: ops.exp(etas[0]),
        cdf=_cdf,
        in_support=lambda y, extra: is_count(y),
        support=COUNT_SUPPORT,
        start_aux=lambda y, w: [],
        sample=poisson_sample,
        response_terms=count_response_terms,
    )


register_family("poisson", poisson)
