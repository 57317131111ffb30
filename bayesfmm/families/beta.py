"""Beta regression (Stata ``betareg``; gsem ``family(beta)``; R ``betareg``; alias ``betareg``).

Mean-precision parameterisation (Ferrari and Cribari-Neto 2004): ``mu = g^-1(eta)`` with
``eta = X b (+ offset)`` and the link ``g`` one of ``logit`` (default), ``probit``,
``cloglog`` or ``loglog`` (Stata ``betareg``'s ``link()``); precision ``phi`` in the
auxiliary slot ``lnphi = ln phi``, reported as ``scale`` = ``phi``::

    f(y) = Gamma(phi) / (Gamma(mu phi) Gamma((1 - mu) phi))
           y^(mu phi - 1) (1 - y)^((1 - mu) phi - 1),        0 < y < 1

``E(y) = mu``, ``Var(y) = mu (1 - mu) / (1 + phi)``. Stata ``betareg`` shows the scale
equation on its log link: its ``scale: _cons`` is ``ln(scale)`` here (the optimiser's
parameter), and its confidence interval maps to ours through ``exp``.

``mu`` and ``1 - mu`` are each computed directly from ``eta`` (no ``1 - mu`` cancellation),
so means within 1e-300 of 0 or 1 keep finite log densities.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import LOG_SCALE, Family, Slot
from bayesfmm.families.gamma import collapse_constant, trigamma
from bayesfmm.families.gaussian import _weighted_least_squares
from bayesfmm.families.registry import register_family
from bayesfmm.ops import (
    NUMPY_OPS,
    Ops,
    special,  # scipy.special, loaded on first use
)

__all__ = ["BETA_LINKS", "INVERSE_LINKS", "beta"]

SLOTS = (
    Slot("mu"),
    Slot("lnphi", linear=False, report_name="scale", param_class="scale", scale=LOG_SCALE, collapses="up"),
)


# Each inverse link gives (mu, 1 - mu, log mu, log(1 - mu)), each computed directly from
# eta. Where a log would underflow, a tail expansion takes over; the second ``where``
# keeps the unused branch finite so pytensor gradients stay free of NaN.
TAIL = 30.0


def _logit(ops: Ops, eta: Any) -> tuple[Any, Any, Any, Any]:
    return (ops.sigmoid(eta), ops.sigmoid(-eta), *ops.log_sigmoid_pair(eta))


def _probit(ops: Ops, eta: Any) -> tuple[Any, Any, Any, Any]:
    return ops.ndtr(eta), ops.ndtr(-eta), ops.log_ndtr(eta), ops.log_ndtr(-eta)


def _log_one_minus_exp_neg_exp(ops: Ops, t: Any) -> Any:
    """``log(1 - exp(-exp(t)))``; ``t - exp(t) / 2`` below ``-TAIL``."""
    tail = t < -TAIL
    safe = ops.where(tail, 0.0, t)
    return ops.where(tail, t - 0.5 * ops.exp(t), ops.log(-ops.expm1(-ops.exp(safe))))


def _cloglog(ops: Ops, eta: Any) -> tuple[Any, Any, Any, Any]:
    cum = ops.exp(eta)
    return -ops.expm1(-cum), ops.exp(-cum), _log_one_minus_exp_neg_exp(ops, eta), -cum


def _loglog(ops: Ops, eta: Any) -> tuple[Any, Any, Any, Any]:
    cum = ops.exp(-eta)
    return ops.exp(-cum), -ops.expm1(-cum), -cum, _log_one_minus_exp_neg_exp(ops, -eta)


def _gammaln_from_log(ops: Ops, value: Any, log_value: Any) -> Any:
    """``gammaln(value)`` that stays finite when ``value`` underflows: ``-log value`` there."""
    tiny = log_value < -700.0
    safe = ops.where(tiny, 1.0, value)
    return ops.where(tiny, -log_value, ops.gammaln(safe))


def _numpy_derivatives(link: str, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``dmu/deta`` and ``d2mu/deta2`` of the inverse link."""
    if link == "logit":
        m1 = special.expit(eta) * special.expit(-eta)
        return m1, m1 * np.tanh(-0.5 * eta)  # (1 - 2 mu) = tanh(-eta / 2)
    if link == "probit":
        m1 = np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi)
        return m1, -eta * m1
    if link == "cloglog":
        e = np.exp(eta)
        m1 = np.exp(eta - e)
        return m1, m1 * (1.0 - e)
    e = np.exp(-eta)  # loglog
    m1 = np.exp(-eta - e)
    return m1, m1 * (e - 1.0)


BETA_LINKS = ("logit", "probit", "cloglog", "loglog")
INVERSE_LINKS: dict[str, Callable[[Ops, Any], tuple[Any, Any, Any, Any]]] = {
    "logit": _logit,
    "probit": _probit,
    "cloglog": _cloglog,
    "loglog": _loglog,
}


def _link_function(link: str, mu: np.ndarray) -> np.ndarray:
    """``g(mu)`` in numpy, for start values."""
    if link == "logit":
        return special.logit(mu)
    if link == "probit":
        return special.ndtri(mu)
    if link == "cloglog":
        return np.log(-np.log1p(-mu))
    return -np.log(-np.log(mu))


def beta(link: str = "logit") -> Family:
    """The beta family: mean ``g^-1(X b)``, precision ``phi`` reported as ``scale``.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> fam = bf.get_family("betareg", link="probit")
    >>> fam.name, fam.options["link"]
    ('beta', 'probit')
    """
    if not isinstance(link, str) or link.lower() not in BETA_LINKS:
        raise SpecificationError(
            f"family 'beta' takes link= one of {', '.join(BETA_LINKS)}, got link={link!r}"
        )
    link = link.lower()
    inverse = INVERSE_LINKS[link]

    def logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        eta, lnphi = etas
        phi = ops.exp(lnphi)
        mu, one_minus, log_mu, log_one_minus = inverse(ops, eta)
        a, b = mu * phi, one_minus * phi
        return (
            ops.gammaln(phi)
            - _gammaln_from_log(ops, a, log_mu + lnphi)
            - _gammaln_from_log(ops, b, log_one_minus + lnphi)
            + (a - 1.0) * ops.log(y)
            + (b - 1.0) * ops.log1p(-y)
        )

    def derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any = None):
        y = np.asarray(y, dtype=float)
        eta = np.asarray(etas[0], dtype=float) * np.ones_like(y)
        phi = np.exp(np.asarray(collapse_constant(etas[1])))
        mu, one_minus, _, _ = inverse(NUMPY_OPS, eta)
        m1, m2 = _numpy_derivatives(link, eta)
        a, b = mu * phi, one_minus * phi
        log_y, log_1my = np.log(y), np.log1p(-y)
        psi_a, psi_b = special.digamma(a), special.digamma(b)
        tri_a, tri_b = trigamma(a), trigamma(b)
        resid = (log_y - log_1my) - (psi_a - psi_b)  # y* - mu*
        dl_dmu = phi * resid
        d2l_dmu2 = -phi * phi * (tri_a + tri_b)
        dl_dphi = special.digamma(phi) - mu * psi_a - one_minus * psi_b + mu * log_y + one_minus * log_1my
        d2l_dphi2 = trigamma(phi) - mu * mu * tri_a - one_minus * one_minus * tri_b
        d2l_dmu_dphi = resid - phi * (mu * tri_a - one_minus * tri_b)
        d = np.stack([m1 * dl_dmu, phi * dl_dphi])
        h = np.empty((2, 2, y.shape[0]))
        h[0, 0] = m2 * dl_dmu + m1 * m1 * d2l_dmu2
        h[0, 1] = h[1, 0] = m1 * phi * d2l_dmu_dphi
        h[1, 1] = phi * dl_dphi + phi * phi * d2l_dphi2
        return d, h

    def cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        eta, lnphi = etas
        phi = ops.exp(lnphi)
        mu, one_minus, _, _ = inverse(ops, eta)
        return ops.betainc(mu * phi, one_minus * phi, y)

    def start_linear(y, designs, offsets, weights, extra=None) -> list[np.ndarray]:
        X = designs[0]
        if X.shape[1] == 0:
            return [np.zeros(0)]
        target = _link_function(link, np.clip(y, 1e-6, 1 - 1e-6)) - offsets[0]
        coef = _weighted_least_squares(X, target, np.maximum(weights, 0.0))
        return [coef if np.all(np.isfinite(coef)) else np.zeros(X.shape[1])]

    def sample(etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any = None) -> np.ndarray:
        eta, lnphi = (np.asarray(e, dtype=float) for e in etas)
        mu, one_minus, _, _ = inverse(NUMPY_OPS, eta)
        return rng.beta(mu * np.exp(lnphi), one_minus * np.exp(lnphi))

    return Family(
        name="beta",
        stata_name="betareg" + (f", link({link})" if link != "logit" else ""),
        slots=SLOTS,
        logpdf=logpdf,
        eta_derivatives=derivatives,
        mean=lambda etas, ops, extra: inverse(ops, etas[0])[0],
        cdf=cdf,
        in_support=lambda y, extra: np.isfinite(y) & (y > 0) & (y < 1),
        support="strictly between 0 and 1",
        start_aux=_start_aux,
        start_linear=start_linear,
        sample=sample,
        options={"link": link},
    )


def _start_aux(y: np.ndarray, weights: np.ndarray) -> list[float]:
    """``ln phi`` by the method of moments: ``phi = m (1 - m) / v - 1`` (kept in [0.5, 1e6])."""
    total = max(float(weights.sum()), 1e-300)
    mean = float(weights @ y) / total
    var = float(weights @ np.square(y - mean)) / total
    phi = mean * (1.0 - mean) / var - 1.0 if var > 0 else 1e6
    return [float(np.log(min(max(phi, 0.5), 1e6)))]


register_family("beta", beta, aliases=("betareg",))
