"""Negative binomial (Stata ``nbreg``): log link for the mean, a dispersion on the log scale.

* ``dispersion="mean"`` (NB2, Stata's default): ``Var(y) = mu (1 + alpha mu)``; the
  auxiliary slot is ``ln(alpha)``, reported as ``alpha``.
* ``dispersion="constant"`` (NB1): ``Var(y) = mu (1 + delta)``; the slot is
  ``ln(delta)``, reported as ``delta``.

As in Stata's ``nbreg`` output the reported value is ``exp`` of the log-scale parameter,
with a delta-method standard error and a confidence interval built on the log scale. The
dispersion belongs to the ``"scale"`` parameter class (for ``lcinvariant``): it is not an
error variance, and ``"errvar"`` is kept for the variances of gaussian-type errors.

NB2 is ``NegBin(size = 1/alpha, prob = 1/(1 + alpha mu))`` and NB1 is
``NegBin(size = mu/delta, prob = 1/(1 + delta))`` (statsmodels'
``NegativeBinomial(loglike_method="nb2" | "nb1")``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import LOG_SCALE, Family, Slot
from bayesfmm.families.poisson import COUNT_SUPPORT, count_response_terms, is_count, log_factorial
from bayesfmm.families.registry import register_family
from bayesfmm.ops import (
    Ops,
    recurrence_sums,
    special,  # scipy.special, loaded on first use
)

__all__ = ["nbinomial", "DISPERSIONS", "digamma_trigamma_gaps"]

DISPERSIONS = ("mean", "constant")
MIN_START_DISPERSION = 0.05


def _nb2_logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    """log NB2(y | mu = exp(eta), alpha = exp(lnalpha)), stable for large ``alpha mu``."""
    eta, lnalpha = etas
    r = ops.exp(-lnalpha)  # size 1/alpha
    s = eta + lnalpha  # log(alpha mu)
    log1p_am = ops.softplus(s)  # log(1 + alpha mu)
    return (
        ops.log_rising(r, y) - log_factorial(y, ops, extra)
        - r * log1p_am
        + y * (s - log1p_am)
    )


def _nb1_logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    """log NB1(y | mu = exp(eta), delta = exp(lndelta))."""
    eta, lndelta = etas
    m = ops.exp(eta - lndelta)  # size mu/delta
    log1p_d = ops.softplus(lndelta)  # log(1 + delta)
    return (
        ops.log_rising(m, y) - log_factorial(y, ops, extra)
        - m * log1p_d
        + y * (lndelta - log1p_d)
    )


def _reciprocal(x: np.ndarray) -> np.ndarray:
    return 1.0 / x


def _minus_inverse_square(x: np.ndarray) -> np.ndarray:
    return -1.0 / np.square(x)


def digamma_trigamma_gaps(y: np.ndarray, r: Any) -> tuple[np.ndarray, np.ndarray]:
    """``psi(y + r) - psi(r)`` and ``psi1(y + r) - psi1(r)``: for whole-number counts and one
    size ``r``, ``sum_{m < y} 1 / (r + m)`` and ``-sum_{m < y} 1 / (r + m)^2`` from tables
    (:func:`~bayesfmm.ops.recurrence_sums`; the trigamma difference otherwise costs two
    Hurwitz zeta calls per row, about 50x slower); else scipy's functions.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import polygamma
    >>> y = np.array([0.0, 1.0, 7.0, 250.0])
    >>> tri = digamma_trigamma_gaps(y, 0.7)[1]
    >>> bool(np.allclose(tri, polygamma(1, y + 0.7) - polygamma(1, 0.7), rtol=1e-12))
    True
    """
    sums = recurrence_sums(y, r, _reciprocal, _minus_inverse_square)
    if sums is not None:
        return sums[0], sums[1]
    return special.digamma(y + r) - special.digamma(r), special.polygamma(1, y + r) - special.polygamma(1, r)


def _nb2_derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any = None):
    """First and second derivatives of :func:`_nb2_logpdf` in (eta, lnalpha)."""
    eta, lnalpha = etas
    y = np.asarray(y, dtype=float)
    ones = np.ones_like(y)
    a = np.exp(lnalpha) * ones
    r = 1.0 / a
    dig, tri = digamma_trigamma_gaps(y, r)  # tables when the dispersion is one value
    mu = np.exp(eta) * ones
    am = a * mu
    q = 1.0 / (1.0 + am)
    resid_q = (y - mu) * q
    gap = r * (np.log1p(am) - dig)
    d = np.stack([resid_q, gap + resid_q])
    h = np.empty((2, 2, y.shape[0]))
    h[0, 0] = -mu * (1.0 + a * y) * q * q
    h[0, 1] = h[1, 0] = -resid_q * am * q
    h[1, 1] = -gap + r * r * tri + mu * q - resid_q * am * q
    return d, h


def _nb1_derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any = None):
    """First and second derivatives of :func:`_nb1_logpdf` in (eta, lndelta)."""
    eta, lndelta = etas
    y = np.asarray(y, dtype=float)
    ones = np.ones_like(y)
    m = np.exp(eta - lndelta) * ones
    c = np.logaddexp(0.0, lndelta) * ones  # log(1 + delta)
    qd = special.expit(lndelta) * ones  # delta / (1 + delta)
    dig = special.digamma(y + m) - special.digamma(m) - c
    tri = special.polygamma(1, y + m) - special.polygamma(1, m)
    md, m2t = m * dig, m * m * tri
    d = np.stack([md, -md - m * qd + y * (1.0 - qd)])
    h = np.empty((2, 2, y.shape[0]))
    h[0, 0] = md + m2t
    h[0, 1] = h[1, 0] = -md - m2t - m * qd
    h[1, 1] = md + m2t + 2.0 * m * qd - (m + y) * qd * (1.0 - qd)
    return d, h


def _nb2_sample(etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any = None) -> np.ndarray:
    eta, lnalpha = (np.asarray(e, dtype=float) for e in etas)
    return rng.negative_binomial(np.exp(-lnalpha), special.expit(-(eta + lnalpha))).astype(float)


def _nb1_sample(etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any = None) -> np.ndarray:
    eta, lndelta = (np.asarray(e, dtype=float) for e in etas)
    return rng.negative_binomial(np.exp(eta - lndelta), special.expit(-lndelta) * np.ones_like(eta)).astype(float)


def _nb2_cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    eta, lnalpha = etas
    # P(Y <= y) = I_p(size, y + 1), p = 1 / (1 + alpha mu)
    return ops.betainc(ops.exp(-lnalpha), y + 1.0, ops.sigmoid(-(eta + lnalpha)))


def _nb1_cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    eta, lndelta = etas
    return ops.betainc(ops.exp(eta - lndelta), y + 1.0, ops.sigmoid(-lndelta))


def _moments(y: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    total = max(float(weights.sum()), 1e-300)
    mean = float(weights @ y) / total
    var = float(weights @ np.square(y - mean)) / total
    return mean, var


def _start_lnalpha(y: np.ndarray, weights: np.ndarray) -> list[float]:
    """Moment start ``alpha = (var - mean) / mean^2``, floored (overdispersion assumed)."""
    mean, var = _moments(y, weights)
    alpha = (var - mean) / mean**2 if mean > 0 else 1.0
    return [float(np.log(max(alpha, MIN_START_DISPERSION)))]


def _start_lndelta(y: np.ndarray, weights: np.ndarray) -> list[float]:
    """Moment start ``delta = var / mean - 1``, floored."""
    mean, var = _moments(y, weights)
    delta = var / mean - 1.0 if mean > 0 else 1.0
    return [float(np.log(max(delta, MIN_START_DISPERSION)))]


def nbinomial(dispersion: str = "mean") -> Family:
    """The negative binomial family (Stata ``nbreg``), log link.

    Parameters
    ----------
    dispersion
        ``"mean"`` (NB2, default): variance ``mu (1 + alpha mu)``, reports ``alpha``;
        ``"constant"`` (NB1): variance ``mu (1 + delta)``, reports ``delta``.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> [s.report_name for s in bf.get_family("nbreg").slots]
    [None, 'alpha']
    >>> bf.get_family("nbinomial", dispersion="constant").slots[1].report_name
    'delta'
    """
    if dispersion not in DISPERSIONS:
        raise SpecificationError(
            f"nbinomial dispersion={dispersion!r} is not recognised; choose 'mean' (NB2, "
            "variance mu(1 + alpha mu)) or 'constant' (NB1, variance mu(1 + delta))"
        )
    mean = lambda etas, ops, extra: ops.exp(etas[0])  # noqa: E731
    if dispersion == "mean":
        aux = Slot("lnalpha", linear=False, report_name="alpha", param_class="scale", scale=LOG_SCALE)
        return Family(
            name="nbinomial",
            stata_name="nbreg",
            slots=(Slot("mu"), aux),
            logpdf=_nb2_logpdf,
            eta_derivatives=_nb2_derivatives,
            mean=mean,
            cdf=_nb2_cdf,
            in_support=lambda y, extra: is_count(y),
            support=COUNT_SUPPORT,
            start_aux=_start_lnalpha,
            sample=_nb2_sample,
            options={"dispersion": "mean"},
            response_terms=count_response_terms,
        )
    aux = Slot("lndelta", linear=False, report_name="delta", param_class="scale", scale=LOG_SCALE)
    return Family(
        name="nbinomial",
        stata_name="nbreg, dispersion(constant)",
        slots=(Slot("mu"), aux),
        logpdf=_nb1_logpdf,
        eta_derivatives=_nb1_derivatives,
        mean=mean,
        cdf=_nb1_cdf,
        in_support=lambda y, extra: is_count(y),
        support=COUNT_SUPPORT,
        start_aux=_start_lndelta,
        sample=_nb1_sample,
        options={"dispersion": "constant"},
        response_terms=count_response_terms,
    )


register_family("nbinomial", nbinomial, aliases=("nbreg",))
