"""Log probabilities of intervals, ``log(F(b) - F(a))``: the shared piece of the ordinal,
censored and truncated families.

``F`` is a standard logistic or normal distribution function (:class:`Cumulative`). An
interval may be open on either side (``a = -inf``: ``log F(b)``; ``b = +inf``:
``log(1 - F(a))``); the caller says which rows are open through boolean masks and keeps
``a``/``b`` finite there (their values are then ignored), so that every branch of the
``where`` stays finite and pytensor gradients carry no NaN.

``log(F(b) - F(a))`` is computed as ``log F(b) + log(1 - exp(log F(a) - log F(b)))`` in
the lower half (``a <= 0``) and, by symmetry, through the survivor functions in the upper
half, so neither tail cancels. Its first and second derivatives in ``(a, b)``
(:func:`interval_derivatives`) and the chain rule to the linear predictors
(:func:`chain_interval`) are numpy only.

Users of this module:

* ordinal (``ologit``/``oprobit``): ``a = cut_k - eta``, ``b = cut_(k+1) - eta``;
* ``tobit``: ``log F((ll - mu)/s)`` left-censored, ``log(1 - F((ul - mu)/s))`` right;
* ``intreg``: ``log(F((hi - mu)/s) - F((lo - mu)/s))``;
* ``truncreg``: the normal density minus ``log(F((ul - mu)/s) - F((ll - mu)/s))``;
* the lognormal survivor function of ``streg``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from bayesfmm.ops import LOG_2PI, NUMPY_OPS, Lazy, Ops

__all__ = [
    "Cumulative",
    "LOGISTIC",
    "NORMAL",
    "log_interval",
    "interval_derivatives",
    "chain_interval",
    "standardised_jacobian",
    "normal_tail_derivatives",
]


@dataclass(frozen=True)
class Cumulative:
    """A symmetric standard distribution: ``log F``, ``log(1 - F)`` and ``F`` for any
    backend; log density, score ``f'/f`` and quantile function in numpy."""

    name: str
    log_cdf: Callable[[Any, Ops], Any]
    log_sf: Callable[[Any, Ops], Any]
    cdf: Callable[[Any, Ops], Any]
    log_pdf: Callable[[np.ndarray], np.ndarray]
    score: Callable[[np.ndarray], np.ndarray]
    ppf: Callable[[np.ndarray], np.ndarray]


LOGISTIC = Cumulative(
    "logit",
    log_cdf=lambda x, ops: -ops.softplus(-x),
    log_sf=lambda x, ops: -ops.softplus(x),
    cdf=lambda x, ops: ops.sigmoid(x),
    log_pdf=lambda x: -np.logaddexp(0.0, x) - np.logaddexp(0.0, -x),
    score=lambda x: -np.tanh(0.5 * x),
    ppf=Lazy("scipy.special", "logit"),
)

NORMAL = Cumulative(
    "probit",
    log_cdf=lambda x, ops: ops.log_ndtr(x),
    log_sf=lambda x, ops: ops.log_ndtr(-x),
    cdf=lambda x, ops: ops.ndtr(x),
    log_pdf=lambda x: -0.5 * (x * x + LOG_2PI),
    score=lambda x: -x,
    ppf=Lazy("scipy.special", "ndtri"),
)


def _mask(value: Any) -> Any:
    """Python booleans as numpy booleans (pytensor's switch takes no Python bool)."""
    return np.asarray(value) if isinstance(value, (bool, np.bool_)) else value


def _placeholders(a: Any, b: Any, lower_open: Any, upper_open: Any, ops: Ops) -> tuple[Any, Any]:
    """``a < b`` finite everywhere: open ends replaced by a unit interval beside the other."""
    a1 = ops.where(lower_open, ops.where(upper_open, 0.0, b - 1.0), a)
    b1 = ops.where(upper_open, a1 + 1.0, b)
    return a1, b1


def log_interval(a: Any, b: Any, lower_open: Any, upper_open: Any, dist: Cumulative, ops: Ops) -> Any:
    """``log(F(b) - F(a))``, with ``a = -inf`` where ``lower_open`` and ``b = +inf`` where
    ``upper_open`` (both open: 0). ``a >= b`` on a closed row gives NaN or ``-inf``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesfmm.ops import NUMPY_OPS
    >>> value = log_interval(np.array([-1.0]), np.array([1.0]), False, False, NORMAL, NUMPY_OPS)
    >>> float(np.exp(value[0])).__round__(6)
    0.682689
    """
    lower_open, upper_open = _mask(lower_open), _mask(upper_open)
    a1, b1 = _placeholders(a, b, lower_open, upper_open, ops)
    lcb, lca = dist.log_cdf(b1, ops), dist.log_cdf(a1, ops)
    lsa, lsb = dist.log_sf(a1, ops), dist.log_sf(b1, ops)
    with np.errstate(divide="ignore", invalid="ignore"):  # the branch not taken may be log(0)
        lower_half = lcb + ops.log(-ops.expm1(lca - lcb))
        upper_half = lsa + ops.log(-ops.expm1(lsb - lsa))
    closed = ops.where(a1 > 0.0, upper_half, lower_half)
    return ops.where(
        lower_open,
        ops.where(upper_open, 0.0, lcb),
        ops.where(upper_open, lsa, closed),
    )


def interval_derivatives(
    a: np.ndarray, b: np.ndarray, lower_open: Any, upper_open: Any, dist: Cumulative
) -> tuple[np.ndarray, ...]:
    """``(L, L_a, L_b, L_aa, L_ab, L_bb)`` of ``L = log(F(b) - F(a))`` (numpy, per row).

    With ``P = F(b) - F(a)``, ``r_a = f(a)/P``, ``r_b = f(b)/P`` and the score
    ``s = f'/f``: ``L_a = -r_a``, ``L_b = r_b``, ``L_aa = -r_a s(a) - r_a^2``,
    ``L_bb = r_b s(b) - r_b^2``, ``L_ab = r_a r_b``; an open end contributes 0.
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    lower_open = np.broadcast_to(np.asarray(lower_open, dtype=bool), a.shape)
    upper_open = np.broadcast_to(np.asarray(upper_open, dtype=bool), a.shape)
    a1, b1 = _placeholders(a, b, lower_open, upper_open, NUMPY_OPS)
    value = log_interval(a, b, lower_open, upper_open, dist, NUMPY_OPS)
    ra = np.where(lower_open, 0.0, np.exp(dist.log_pdf(a1) - value))
    rb = np.where(upper_open, 0.0, np.exp(dist.log_pdf(b1) - value))
    la, lb = -ra, rb
    laa = -ra * dist.score(a1) - ra * ra
    lbb = rb * dist.score(b1) - rb * rb
    lab = ra * rb
    return value, la, lb, laa, lab, lbb


def chain_interval(
    parts: Sequence[np.ndarray],
    ja: np.ndarray,
    jb: np.ndarray,
    ha: np.ndarray | None = None,
    hb: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Eta-derivatives of ``L(a(eta), b(eta))`` by the chain rule.

    ``parts`` are ``(L_a, L_b, L_aa, L_ab, L_bb)``; ``ja``/``jb`` (S x n) the first
    derivatives of ``a``/``b`` in the S linear predictors, ``ha``/``hb`` (S x S x n) their
    second derivatives (None: ``a``, ``b`` linear in the etas).
    """
    la, lb, laa, lab, lbb = parts
    d = la * ja + lb * jb
    h = (
        laa * ja[:, None] * ja[None, :]
        + lab * (ja[:, None] * jb[None, :] + jb[:, None] * ja[None, :])
        + lbb * jb[:, None] * jb[None, :]
    )
    if ha is not None:
        h = h + la * ha
    if hb is not None:
        h = h + lb * hb
    return d, h


def standardised_jacobian(z: np.ndarray, lnvar: Any) -> tuple[np.ndarray, np.ndarray]:
    """Derivatives of ``z = (A - mu) exp(-lnvar / 2)`` in ``(mu, lnvar)`` (A fixed).

    ``z_mu = -1/s``, ``z_lnvar = -z/2``, ``z_mu,mu = 0``, ``z_mu,lnvar = 1/(2 s)``,
    ``z_lnvar,lnvar = z/4`` with ``s = exp(lnvar / 2)``.
    """
    z = np.asarray(z, dtype=float)
    inv_s = np.exp(-0.5 * np.asarray(lnvar, dtype=float)) * np.ones_like(z)
    j = np.stack([-inv_s, -0.5 * z])
    h = np.empty((2, 2, z.shape[0]))
    h[0, 0] = 0.0
    h[0, 1] = h[1, 0] = 0.5 * inv_s
    h[1, 1] = 0.25 * z
    return j, h


def normal_tail_derivatives(z: np.ndarray, lnvar: Any, upper: bool) -> tuple[np.ndarray, np.ndarray]:
    """Derivatives in ``(mu, lnvar)`` of ``log Phi(z)`` (``upper=False``) or
    ``log(1 - Phi(z))`` (``upper=True``) with ``z = (A - mu) exp(-lnvar / 2)``: a censored
    normal observation, or the lognormal survivor function in ``log y``."""
    z = np.asarray(z, dtype=float)
    j, h = standardised_jacobian(z, lnvar)
    zeros_j, zeros_h = np.zeros_like(j), np.zeros_like(h)
    if upper:
        _, *parts = interval_derivatives(z, z, False, True, NORMAL)
        return chain_interval(parts, j, zeros_j, h, zeros_h)
    _, *parts = interval_derivatives(z, z, True, False, NORMAL)
    return chain_interval(parts, zeros_j, j, zeros_h, h)
