"""Censored, interval and truncated normal regressions (Stata ``tobit``, ``intreg``,
``truncreg``).

All three have the gaussian family's slots (mean ``mu = X b (+ offset)`` and the log error
variance, reported as ``var(e)``) and reuse its density for exact observations; the
probability of an interval is :func:`~bayesfmm.families.interval.log_interval` with the
normal distribution function, in the standardised limits ``(limit - mu) / s``.

* ``tobit(ll=, ul=)``: ``y <= ll`` is left-censored (``log Phi((ll - mu)/s)``), ``y >= ul``
  right-censored (``log(1 - Phi((ul - mu)/s))``), otherwise the normal density.
* ``intreg(upper=)``: the response is the lower limit and ``upper=`` names the upper-limit
  column; a missing lower (upper) limit means ``-inf`` (``+inf``), equal limits an exact
  value. Rows are never dropped for a missing limit.
* ``truncreg(ll=, ul=)``: the normal density divided by ``Phi((ul - mu)/s) -
  Phi((ll - mu)/s)``; every observation must lie within the limits.

Limits are numbers or column names (per-row limits). ``predict(kind="mu")`` and ``lcmean``
report the regression mean ``mu`` (Stata's linear prediction), not the mean of the
censored or truncated response. Eta-derivatives are analytic.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from bayesfmm.errors import DataError, SpecificationError
from bayesfmm.families.base import ExtraColumn, Family, ResponseHook
from bayesfmm.families.gaussian import (
    SLOTS,
    _weighted_least_squares,
    _weighted_log_variance,
    normal_derivatives,
    normal_logpdf,
)
from bayesfmm.families.interval import (
    NORMAL,
    chain_interval,
    interval_derivatives,
    log_interval,
    normal_tail_derivatives,
    standardised_jacobian,
)
from bayesfmm.families.registry import register_family
from bayesfmm.ops import NUMPY_OPS, Ops

__all__ = ["tobit", "intreg", "truncreg"]


def _limit(value: Any, option: str, family: str, default: float) -> Any:
    """A limit option: None (unbounded), a finite number, or a column name."""
    if value is None:
        return default
    if isinstance(value, str):
        if not value.strip():
            raise SpecificationError(f"{family} {option}= must be a number or a column name, got ''")
        return value
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not number or not np.isfinite(value):
        raise SpecificationError(f"{family} {option}= must be a finite number or a column name, got {value!r}")
    return float(value)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"column {value!r}"
    return f"{value:g}"


def _safe(limit: Any) -> tuple[np.ndarray, np.ndarray]:
    """A per-row limit with its infinite entries replaced by 0, and the mask of those."""
    limit = np.asarray(limit, dtype=float)
    infinite = ~np.isfinite(limit)
    return np.where(infinite, 0.0, limit), infinite


def _start_linear(y, designs, offsets, weights, extra=None) -> list[np.ndarray]:
    finite = np.isfinite(y)
    X = designs[0][finite]
    beta = _weighted_least_squares(X, (y - offsets[0])[finite], np.maximum(weights[finite], 0.0))
    return [beta if np.all(np.isfinite(beta)) else np.zeros(X.shape[1])]


def _start_aux(y: np.ndarray, weights: np.ndarray) -> list[float]:
    finite = np.isfinite(y)
    return _weighted_log_variance(y[finite], weights[finite])


def _normal_sample(etas, rng: np.random.Generator) -> np.ndarray:
    mu, lnvar = (np.asarray(e, dtype=float) for e in etas)
    return rng.normal(mu, np.exp(0.5 * lnvar))


def _mean(etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    return etas[0]


def tobit(ll: Any = None, ul: Any = None) -> Family:
    """Censored normal regression (Stata ``tobit``): ``ll=``/``ul=`` a number or a column.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.get_family("tobit", ll=0).extra_columns["ll"]
    0.0
    """
    if ll is None and ul is None:
        raise SpecificationError("tobit needs a censoring limit: ll= (left) and/or ul= (right), a number or a column")
    lower = _limit(ll, "ll", "tobit", -np.inf)
    upper = _limit(ul, "ul", "tobit", np.inf)

    def logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any) -> Any:
        mu, lnvar = etas
        ll_safe, _ = _safe(extra["ll"])
        ul_safe, _ = _safe(extra["ul"])
        inv_s = ops.exp(-0.5 * lnvar)
        left = NORMAL.log_cdf((ll_safe - mu) * inv_s, ops)
        right = NORMAL.log_sf((ul_safe - mu) * inv_s, ops)
        return ops.where(y <= extra["ll"], left, ops.where(y >= extra["ul"], right, normal_logpdf(y, etas, ops)))

    def derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any):
        y = np.asarray(y, dtype=float)
        mu, lnvar = (np.asarray(e, dtype=float) * np.ones_like(y) for e in etas)
        d, h = normal_derivatives(y, (mu, lnvar))
        inv_s = np.exp(-0.5 * lnvar)
        ll_safe, _ = _safe(extra["ll"])
        ul_safe, _ = _safe(extra["ul"])
        left = y <= extra["ll"]
        right = y >= extra["ul"]
        if left.any():
            dl, hl = normal_tail_derivatives((ll_safe - mu) * inv_s, lnvar, upper=False)
            d, h = np.where(left, dl, d), np.where(left, hl, h)
        if right.any():
            dr, hr = normal_tail_derivatives((ul_safe - mu) * inv_s, lnvar, upper=True)
            d, h = np.where(right, dr, d), np.where(right, hr, h)
        return d, h

    def cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any) -> Any:
        mu, lnvar = etas
        value = ops.ndtr((y - mu) * ops.exp(-0.5 * lnvar))
        return ops.where(y >= extra["ul"], 1.0, ops.where(y < extra["ll"], 0.0, value))

    def in_support(y: np.ndarray, extra: Any) -> np.ndarray:
        lo, hi = np.asarray(extra["ll"], dtype=float), np.asarray(extra["ul"], dtype=float)
        with np.errstate(invalid="ignore"):
            return np.isfinite(y) & (lo <= y) & (y <= hi) & (lo < hi)

    def sample(etas, rng, extra):
        return np.clip(_normal_sample(etas, rng), extra["ll"], extra["ul"])

    return Family(
        name="tobit",
        stata_name="tobit",
        slots=SLOTS,
        logpdf=logpdf,
        eta_derivatives=derivatives,
        mean=_mean,
        cdf=cdf,
        in_support=in_support,
        support=(
            f"within its censoring limits (ll = {_describe(lower)} <= y <= ul = {_describe(upper)}, "
            "with ll < ul): a value beyond a censoring limit contradicts it"
        ),
        start_aux=_start_aux,
        start_linear=_start_linear,
        sample=sample,
        options={"ll": lower, "ul": upper},
        extra_columns={"ll": lower, "ul": upper},
    )


def _intreg_bind(column: pd.Series, response: str, index: Any = None) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(column.notna().to_numpy() & ~np.isfinite(values))
    if bad.size:
        raise DataError(
            f"intreg lower-limit column {response!r} must be numeric (missing: no lower limit); rows "
            f"{list(column.index[bad[:5]])} hold {column.iloc[bad[:5]].tolist()}"
        )
    return np.where(np.isnan(values), -np.inf, values)


def intreg(upper: Any = None) -> Family:
    """Interval regression (Stata ``intreg lo hi x``): ``Component("lo ~ x", family="intreg",
    upper="hi")``; missing ``lo`` means no lower limit, missing ``hi`` no upper limit.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.get_family("intreg", upper="hi").extra_columns["upper"].missing
    inf
    """
    if not isinstance(upper, str) or not upper.strip():
        raise SpecificationError(
            "intreg needs upper= the column of upper limits (the response is the lower-limit "
            f"column): Component('lo ~ x', family='intreg', upper='hi'); got upper={upper!r}"
        )

    def parts(y: Any, mu: Any, lnvar: Any, hi: np.ndarray, ops: Ops):
        hi_safe, upper_open = _safe(hi)
        lower_open = y <= -np.inf
        lo_safe = ops.where(lower_open, 0.0, y)
        point = y >= hi
        inv_s = ops.exp(-0.5 * lnvar)
        a = (lo_safe - mu) * inv_s
        b = ops.where(point, a + 1.0, (hi_safe - mu) * inv_s)
        return lo_safe, a, b, lower_open, upper_open, point

    def logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any) -> Any:
        mu, lnvar = etas
        lo_safe, a, b, lower_open, upper_open, point = parts(y, mu, lnvar, extra["upper"], ops)
        interval = log_interval(a, b, lower_open, upper_open, NORMAL, ops)
        return ops.where(point, normal_logpdf(lo_safe, etas, ops), interval)

    def derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any):
        y = np.asarray(y, dtype=float)
        mu, lnvar = (np.asarray(e, dtype=float) * np.ones_like(y) for e in etas)
        with np.errstate(invalid="ignore"):
            lo_safe, a, b, lower_open, upper_open, point = parts(y, mu, lnvar, extra["upper"], NUMPY_OPS)
        d, h = normal_derivatives(lo_safe, (mu, lnvar))
        interval = ~point
        if interval.any():
            ja, ha = standardised_jacobian(a, lnvar)
            jb, hb = standardised_jacobian(b, lnvar)
            _, *pieces = interval_derivatives(a, b, lower_open, upper_open, NORMAL)
            di, hi = chain_interval(pieces, ja, jb, ha, hb)
            d, h = np.where(interval, di, d), np.where(interval, hi, h)
        return d, h

    def cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any) -> Any:
        mu, lnvar = etas
        lower_open = y <= -np.inf
        lo_safe = ops.where(lower_open, 0.0, y)
        return ops.where(lower_open, 0.0, ops.ndtr((lo_safe - mu) * ops.exp(-0.5 * lnvar)))

    def in_support(y: np.ndarray, extra: Any) -> np.ndarray:
        hi = np.asarray(extra["upper"], dtype=float)
        with np.errstate(invalid="ignore"):
            return (y <= hi) & (y < np.inf) & (hi > -np.inf) & ~((y == -np.inf) & (hi == np.inf))

    def bind(column, response: str, index: Any = None):
        return family, _intreg_bind(column, response, index)

    family = Family(
        name="intreg",
        stata_name="intreg",
        slots=SLOTS,
        logpdf=logpdf,
        eta_derivatives=derivatives,
        mean=_mean,
        cdf=cdf,
        in_support=in_support,
        support=(
            f"a lower limit no greater than the upper limit in column {upper!r} "
            "(missing: unbounded), with at least one of the two limits present"
        ),
        start_aux=lambda y, w: _start_aux(_midpoints(y, w), w),
        start_linear=lambda y, designs, offsets, weights, extra=None: _start_linear(
            _midpoints(y, weights, extra), designs, offsets, weights
        ),
        options={"upper": upper},
        extra_columns={"upper": ExtraColumn(upper, missing=np.inf, role="upper limit (upper=)")},
        response_hook=ResponseHook(bind=bind, missing_response=True),
    )
    return family


def _midpoints(y: np.ndarray, weights: np.ndarray, extra: Any = None) -> np.ndarray:
    """A stand-in exact value per row for start values: the interval's midpoint, the finite
    limit of a half-open interval (``start_aux`` has no upper limits: the lower, or NaN)."""
    y = np.asarray(y, dtype=float)
    if extra is None or "upper" not in extra:
        return np.where(np.isfinite(y), y, np.nan)
    hi = np.asarray(extra["upper"], dtype=float)
    both = np.isfinite(y) & np.isfinite(hi)
    return np.where(both, 0.5 * (y + hi), np.where(np.isfinite(y), y, np.where(np.isfinite(hi), hi, np.nan)))


def truncreg(ll: Any = None, ul: Any = None) -> Family:
    """Truncated normal regression (Stata ``truncreg``): ``ll=``/``ul=`` a number or a column.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.get_family("truncreg", ll=0).extra_columns["ul"]
    inf
    """
    if ll is None and ul is None:
        raise SpecificationError("truncreg needs a truncation limit: ll= and/or ul=, a number or a column")
    lower = _limit(ll, "ll", "truncreg", -np.inf)
    upper = _limit(ul, "ul", "truncreg", np.inf)

    def standardised(mu: Any, lnvar: Any, extra: Any, ops: Ops):
        ll_safe, lower_open = _safe(extra["ll"])
        ul_safe, upper_open = _safe(extra["ul"])
        inv_s = ops.exp(-0.5 * lnvar)
        return (ll_safe - mu) * inv_s, (ul_safe - mu) * inv_s, lower_open, upper_open

    def logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any) -> Any:
        a, b, lower_open, upper_open = standardised(*etas, extra, ops)
        return normal_logpdf(y, etas, ops) - log_interval(a, b, lower_open, upper_open, NORMAL, ops)

    def derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any):
        y = np.asarray(y, dtype=float)
        mu, lnvar = (np.asarray(e, dtype=float) * np.ones_like(y) for e in etas)
        d, h = normal_derivatives(y, (mu, lnvar))
        a, b, lower_open, upper_open = standardised(mu, lnvar, extra, NUMPY_OPS)
        a, b = a * np.ones_like(y), b * np.ones_like(y)
        ja, ha = standardised_jacobian(a, lnvar)
        jb, hb = standardised_jacobian(b, lnvar)
        _, *pieces = interval_derivatives(a, b, lower_open, upper_open, NORMAL)
        dn, hn = chain_interval(pieces, ja, jb, ha, hb)
        return d - dn, h - hn

    def cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any) -> Any:
        mu, lnvar = etas
        # P(ll < Y <= y) / P(ll < Y < ul), both as stable log interval probabilities
        a, b, lower_open, upper_open = standardised(mu, lnvar, extra, ops)
        inside = (y > extra["ll"]) * (y < extra["ul"])
        z = ops.where(inside, (y - mu) * ops.exp(-0.5 * lnvar), a + 1.0)
        log_part = log_interval(a, z, lower_open, False, NORMAL, ops)
        value = ops.exp(log_part - log_interval(a, b, lower_open, upper_open, NORMAL, ops))
        return ops.where(y >= extra["ul"], 1.0, ops.where(y <= extra["ll"], 0.0, value))

    def in_support(y: np.ndarray, extra: Any) -> np.ndarray:
        lo, hi = np.asarray(extra["ll"], dtype=float), np.asarray(extra["ul"], dtype=float)
        with np.errstate(invalid="ignore"):
            return np.isfinite(y) & (lo <= y) & (y <= hi) & (lo < hi)

    def sample(etas, rng, extra):
        from scipy import stats

        mu, lnvar = (np.asarray(e, dtype=float) for e in etas)
        s = np.exp(0.5 * lnvar)
        lo = (np.asarray(extra["ll"], dtype=float) - mu) / s
        hi = (np.asarray(extra["ul"], dtype=float) - mu) / s
        return stats.truncnorm.rvs(lo, hi, loc=mu, scale=s, random_state=rng)

    return Family(
        name="truncreg",
        stata_name="truncreg",
        slots=SLOTS,
        logpdf=logpdf,
        eta_derivatives=derivatives,
        mean=_mean,
        cdf=cdf,
        in_support=in_support,
        support=(
            f"within its truncation limits (ll = {_describe(lower)} <= y <= ul = {_describe(upper)}, "
            "with ll < ul): truncated data hold no observation outside them"
        ),
        start_aux=_start_aux,
        start_linear=_start_linear,
        sample=sample,
        options={"ll": lower, "ul": upper},
        extra_columns={"ll": lower, "ul": upper},
    )


register_family("tobit", tobit)
register_family("intreg", intreg)
register_family("truncreg", truncreg)
