"""Multinomial logit (Stata ``mlogit``): one equation per non-base outcome.

With outcome levels ``l_0, ..., l_(K-1)`` (see :mod:`bayesfmm.families.levels`) and the
base outcome ``b`` (``baseoutcome=``, default the first level, as statsmodels ``MNLogit``
and Stata's factor-variable base), ::

    P(y = l_k) = exp(eta_k) / sum_j exp(eta_j),   eta_b = 0,  eta_k = X b_k (+ offset)

Each non-base outcome is a linear slot reported under its own equation ``"<level>.<y>"``
(``"2.insure"``, ``"Prepaid.insure"``: Stata's factor-variable notation), so the
``(class, equation, term)`` index stays unique. The family is bound to the outcome levels by
the design layer (:class:`~bayesfmm.families.base.ResponseHook`). Derivatives are the
softmax's: ``d_k = [y = l_k] - p_k``, ``h_kj = -p_k ([k = j] - p_j)``.

``predict(kind="mu")`` is ``sum_k l_k p_k`` in the coded units (1..K for non-numeric
levels), rarely meaningful for a nominal outcome: ``predict(kind="density")`` on data with
the response set to a level gives that level's probability.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bayesfmm.errors import DataError, SpecificationError
from bayesfmm.families.base import Family, ResponseHook, Slot, with_recipe
from bayesfmm.families.gamma import _intercept_column
from bayesfmm.families.levels import Levels, find_levels, label_text
from bayesfmm.families.ordinal import _unbound_logpdf, level_indicators
from bayesfmm.families.registry import register_family
from bayesfmm.ops import Ops

__all__ = ["mlogit", "mlogit_family"]

MIN_SHARE = 1e-4


def _full_etas(etas: Sequence[Any], base: int, zero: Any) -> list[Any]:
    full = list(etas)
    full.insert(base, zero)
    return full


def _log_normaliser(full: Sequence[Any], ops: Ops) -> Any:
    """``log sum_k exp(eta_k)``, shifted by the running maximum."""
    top = full[0]
    for e in full[1:]:
        top = ops.where(e > top, e, top)
    return top + ops.log(sum(ops.exp(e - top) for e in full))


def _base_index(levels: Levels, baseoutcome: Any, response: str) -> int:
    if baseoutcome is None:
        return 0
    for i, (label, value) in enumerate(zip(levels.labels, levels.values)):
        if label == baseoutcome or (levels.numeric and _same_number(baseoutcome, value)):
            return i
    raise DataError(
        f"mlogit baseoutcome={baseoutcome!r} is not a level of {response!r}; levels: "
        f"{[label_text(v) for v in levels.labels]}"
    )


def _same_number(a: Any, b: float) -> bool:
    try:
        return float(a) == b
    except (TypeError, ValueError):
        return False


def _equation(label: Any) -> str:
    text = label_text(label).replace("{", "{{").replace("}", "}}")
    return text + ".{response}"


def mlogit_family(levels: Levels, base: int, baseoutcome: Any = None) -> Family:
    """The multinomial logit bound to ``levels`` with base outcome index ``base``."""
    values = tuple(levels.values)
    k = levels.k
    others = [i for i in range(k) if i != base]
    slots = tuple(Slot(f"out{i + 1}", equation=_equation(levels.labels[i])) for i in others)

    def logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        zero = 0.0 * etas[0]
        full = _full_etas(etas, base, zero)
        ind = level_indicators(y, values, ops)
        chosen = sum(ops.where(ind[i], full[i], 0.0) for i in others)
        return chosen - _log_normaliser(full, ops)

    def _probs(etas: Sequence[np.ndarray], n: int) -> np.ndarray:
        full = np.array(_full_etas([np.asarray(e, dtype=float) * np.ones(n) for e in etas], base, np.zeros(n)))
        full -= full.max(axis=0)
        p = np.exp(full)
        return p / p.sum(axis=0)

    def derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any = None):
        y = np.asarray(y, dtype=float)
        n = y.shape[0]
        p = _probs(etas, n)[others]  # (K-1, n)
        chosen = np.array([y == values[i] for i in others], dtype=float)
        d = chosen - p
        h = p[:, None] * p[None, :]
        idx = np.arange(len(others))
        h[idx, idx] -= p
        return d, h

    def probabilities(etas: Sequence[Any], ops: Ops) -> list[Any]:
        full = _full_etas(etas, base, 0.0 * etas[0])
        norm = _log_normaliser(full, ops)
        return [ops.exp(e - norm) for e in full]

    def mean(etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        return sum(v * p for v, p in zip(values, probabilities(etas, ops)))

    def cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        probs = probabilities(etas, ops)
        return sum(ops.where(y >= v, p, 0.0) for v, p in zip(values, probs))

    def in_support(y: np.ndarray, extra: Any = None) -> np.ndarray:
        return np.isin(np.asarray(y, dtype=float), np.asarray(values))

    def start_linear(y, designs, offsets, weights, extra=None) -> list[np.ndarray]:
        y = np.asarray(y, dtype=float)
        shares = np.array([weights[y == v].sum() for v in values], dtype=float)
        shares = np.maximum(shares / max(shares.sum(), 1e-300), MIN_SHARE)
        out = []
        for i, X in zip(others, designs):
            beta = np.zeros(X.shape[1])
            col = _intercept_column(X)
            if col is not None:
                beta[col] = np.log(shares[i] / shares[base])
            out.append(beta)
        return out

    def sample(etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any = None) -> np.ndarray:
        n = int(np.broadcast(*[np.asarray(e) for e in etas]).size)
        p = _probs(etas, n)
        u = rng.random(n)
        chosen = np.minimum((np.cumsum(p, axis=0) < u).sum(axis=0), k - 1)
        return np.asarray(values)[chosen]

    def bind(column, response: str, index: Any = None):
        return family, levels.encode(column, response, "mlogit")

    family = Family(
        name="mlogit",
        stata_name="mlogit",
        slots=slots,
        logpdf=logpdf,
        eta_derivatives=derivatives,
        mean=mean,
        cdf=cdf,
        in_support=in_support,
        support=f"one of its levels {list(levels.labels)}",
        start_aux=lambda y, w: [],
        start_linear=start_linear,
        sample=sample,
        options={"levels": levels.labels, "baseoutcome": levels.labels[base]},
        response_hook=ResponseHook(bind=bind),
    )
    return with_recipe(family, mlogit_family, levels, base, baseoutcome)


def mlogit(baseoutcome: Any = None) -> Family:
    """Multinomial logit (Stata ``mlogit``); ``baseoutcome=`` a level (default: the first).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.get_family("mlogit", baseoutcome=2).options["baseoutcome"]
    2
    """
    if isinstance(baseoutcome, (list, tuple, dict, set)):
        raise SpecificationError(f"mlogit baseoutcome= must be one outcome level, got {baseoutcome!r}")

    def bind(column, response: str, index: Any = None):
        levels = find_levels(column, response, "mlogit")
        bound = mlogit_family(levels, _base_index(levels, baseoutcome, response), baseoutcome)
        return bound, levels.encode(column, response, "mlogit")

    return Family(
        name="mlogit",
        stata_name="mlogit",
        slots=(Slot("mu"),),
        logpdf=_unbound_logpdf,
        mean=_unbound_logpdf,
        cdf=_unbound_logpdf,
        in_support=lambda y, extra=None: np.ones(np.shape(y), dtype=bool),
        support="an outcome level",
        start_aux=lambda y, w: [],
        options={"baseoutcome": baseoutcome},
        response_hook=ResponseHook(bind=bind),
    )


register_family("mlogit", mlogit)
