"""Ordinal regression (Stata ``ologit``, ``oprobit``): cutpoints ``cut1 < ... < cut(K-1)``.

With outcome levels ``l_0 < ... < l_(K-1)`` (see :mod:`bayesfmm.families.levels`) and
``eta = X b`` *without a constant* (the cutpoints take its place: the design drops the
``Intercept`` column), ::

    P(y = l_k) = F(cut_(k+1) - eta) - F(cut_k - eta),   cut_0 = -inf, cut_K = +inf

with ``F`` the logistic (``ologit``) or standard normal (``oprobit``) distribution
function. Each cutpoint is an auxiliary slot reported as ``cut1``, ``cut2``, ... on its own
scale (no transform); it is a ``cons`` parameter for ``lcinvariant``. The cutpoints are not
forced to increase: where they do not, the log density is ``-inf``/NaN and the optimiser's
line search backs off; start values come from the weighted cumulative proportions of the
levels (``cut_k = F^-1(P(y <= l_(k-1)))``), which are increasing.

The family is bound to its levels by the design layer (:class:`~bayesfmm.families.base.
ResponseHook`): ``bf.get_family("ologit")`` alone has no cutpoints yet. The log density
is written once (numpy and pytensor) through indicator sums over the levels; the
eta-derivatives are analytic (:func:`~bayesfmm.families.interval.interval_derivatives`).
``predict(kind="mu")`` is ``E(y) = sum_k l_k P(y = l_k)`` (in the coded units, 1..K for
non-numeric levels); ``predict(kind="density")`` with the response set to a level gives
that level's probability.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import Family, ResponseHook, Slot, with_recipe
from bayesfmm.families.interval import (
    LOGISTIC,
    NORMAL,
    Cumulative,
    chain_interval,
    interval_derivatives,
    log_interval,
)
from bayesfmm.families.levels import Levels, find_levels
from bayesfmm.families.registry import register_family
from bayesfmm.ops import NUMPY_OPS, Ops

__all__ = ["ologit", "oprobit", "ordinal_family", "bound_ordinal", "level_indicators"]

MIN_SHARE = 1e-4  # floor of a level's share in the start values (keeps cutpoints apart)


def level_indicators(y: Any, values: Sequence[float], ops: Ops) -> list[Any]:
    """``[y == l_k]`` for each level, as comparisons both backends overload."""
    gaps = np.diff(np.asarray(values, dtype=float))
    half = 0.5 * float(gaps.min()) if gaps.size else 0.5
    return [ops.abs(y - value) < half for value in values]


def _cut_rows(y: Any, cuts: Sequence[Any], values: Sequence[float], ops: Ops) -> tuple[Any, Any, Any, Any]:
    """Per-row lower and upper cutpoints and the masks of the open first/last levels."""
    ind = level_indicators(y, values, ops)
    weights = [ops.where(i, 1.0, 0.0) for i in ind]
    k = len(values)
    lower = sum(weights[j] * cuts[j - 1] for j in range(1, k))
    upper = sum(weights[j] * cuts[j] for j in range(k - 1))
    return lower, upper, ind[0], ind[-1]


def _unbound_logpdf(*args: Any, **kwargs: Any) -> Any:
    raise SpecificationError(
        "an ordinal family has no cutpoints until it is bound to its outcome levels: use it in "
        "bf.FMM / bf.Component, which bind it to the data"
    )


def ordinal_family(dist: Cumulative, levels: Levels) -> Family:
    """The ordinal family of ``dist`` bound to ``levels`` (one ``cut`` slot per cutpoint)."""
    values = tuple(levels.values)
    k = levels.k
    name = "ologit" if dist is LOGISTIC else "oprobit"
    slots = (Slot("mu"),) + tuple(
        Slot(f"cut{j}", linear=False, report_name=f"cut{j}", param_class="cons") for j in range(1, k)
    )

    def logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        eta, cuts = etas[0], etas[1:]
        lower, upper, first, last = _cut_rows(y, cuts, values, ops)
        return log_interval(lower - eta, upper - eta, first, last, dist, ops)

    def derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any = None):
        y = np.asarray(y, dtype=float)
        n = y.shape[0]
        eta = np.asarray(etas[0], dtype=float) * np.ones(n)
        cuts = np.array([np.asarray(c, dtype=float) * np.ones(n) for c in etas[1:]])  # (K-1, n)
        code = np.searchsorted(np.asarray(values), y)
        rows = np.arange(n)
        first, last = code == 0, code == k - 1
        lower = np.where(first, 0.0, cuts[np.maximum(code - 1, 0), rows])
        upper = np.where(last, 0.0, cuts[np.minimum(code, k - 2), rows])
        _, *parts = interval_derivatives(lower - eta, upper - eta, first, last, dist)
        ja = np.zeros((k, n))
        jb = np.zeros((k, n))
        ja[0] = jb[0] = -1.0
        ja[np.maximum(code, 1)[~first], rows[~first]] = 1.0  # slot of cut_k is k
        jb[(code + 1)[~last], rows[~last]] = 1.0
        ja[:, first] = 0.0
        jb[:, last] = 0.0
        return chain_interval(parts, ja, jb)

    def mean(etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        # E y = l_(K-1) - sum_k (l_(k+1) - l_k) F(cut_(k+1) - eta)
        eta, cuts = etas[0], etas[1:]
        total = values[-1]
        for j in range(k - 1):
            total = total - (values[j + 1] - values[j]) * dist.cdf(cuts[j] - eta, ops)
        return total

    def cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        eta, cuts = etas[0], etas[1:]
        value = 0.0 * eta + 0.0 * y
        for j in range(k - 1):
            value = ops.where(y >= values[j], dist.cdf(cuts[j] - eta, ops), value)
        return ops.where(y >= values[-1], 1.0, value)

    def in_support(y: np.ndarray, extra: Any = None) -> np.ndarray:
        return np.isin(np.asarray(y, dtype=float), np.asarray(values))

    def start_aux(y: np.ndarray, weights: np.ndarray) -> list[float]:
        y = np.asarray(y, dtype=float)
        shares = np.array([weights[y == v].sum() for v in values], dtype=float)
        shares = np.maximum(shares / max(shares.sum(), 1e-300), MIN_SHARE)
        cumulative = np.cumsum(shares / shares.sum())[:-1]
        return [float(c) for c in dist.ppf(np.clip(cumulative, 1e-10, 1 - 1e-10))]

    def sample(etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any = None) -> np.ndarray:
        eta = np.asarray(etas[0], dtype=float)
        shape = np.broadcast(eta, *[np.asarray(c) for c in etas[1:]]).shape
        u = rng.random(shape)
        below = sum((u > dist.cdf(np.asarray(c, dtype=float) - eta, NUMPY_OPS)).astype(int) for c in etas[1:])
        return np.asarray(values)[below]

    def bind(column, response: str, index: Any = None):
        return family, levels.encode(column, response, name)

    family = Family(
        name=name,
        stata_name=name,
        slots=slots,
        logpdf=logpdf,
        eta_derivatives=derivatives,
        mean=mean,
        cdf=cdf,
        in_support=in_support,
        support=f"one of its levels {list(levels.labels)}",
        start_aux=start_aux,
        sample=sample,
        options={"levels": levels.labels},
        response_hook=ResponseHook(bind=bind, drop_intercept=True),
    )
    return with_recipe(family, bound_ordinal, name, levels)


def bound_ordinal(name: str, levels: Levels) -> Family:
    """``ologit``/``oprobit`` bound to ``levels`` (the recipe an unpickled family is built by)."""
    return ordinal_family(LOGISTIC if name == "ologit" else NORMAL, levels)


def _unbound(dist: Cumulative) -> Family:
    name = "ologit" if dist is LOGISTIC else "oprobit"

    def bind(column, response: str, index: Any = None):
        levels = find_levels(column, response, name)
        bound = ordinal_family(dist, levels)
        return bound, levels.encode(column, response, name)

    return Family(
        name=name,
        stata_name=name,
        slots=(Slot("mu"),),
        logpdf=_unbound_logpdf,
        mean=_unbound_logpdf,
        cdf=_unbound_logpdf,
        in_support=lambda y, extra=None: np.ones(np.shape(y), dtype=bool),
        support="an outcome level",
        start_aux=lambda y, w: [],
        response_hook=ResponseHook(bind=bind, drop_intercept=True),
    )


def ologit() -> Family:
    """Ordered logit (Stata ``ologit``): ``P(y <= l_k) = logistic(cut_(k+1) - X b)``.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.get_family("ologit").response_hook.drop_intercept
    True
    """
    return _unbound(LOGISTIC)


def oprobit() -> Family:
    """Ordered probit (Stata ``oprobit``): ``P(y <= l_k) = Phi(cut_(k+1) - X b)``."""
    return _unbound(NORMAL)


register_family("ologit", ologit)
register_family("oprobit", oprobit)
