"""Draws of the responses from the mixture at a parameter vector (posterior predictive).

For each row a class is drawn from its class probabilities, then each response from its
family in that class. A family that defines ``sample(etas, rng, extra)`` (the optional
hook of :class:`~bayesfmm.families.base.Family`, one draw per row) is used as is. Otherwise the draw inverts the family's ``cdf``
(which every family has) by bisection: over the integers when the family's support rejects
half-integers of the observed responses (a count or binary family), over the reals
otherwise. So a family registered with only a density and a CDF still gets predictive
draws, and no family is named here.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from bayesfmm.likelihood import MixtureProblem, class_log_probs, component_etas
from bayesfmm.ops import NUMPY_OPS

__all__ = ["draw_responses", "inverse_cdf_draw"]

MAX_BRACKET_STEPS = 80
MAX_BISECTIONS = 200


def _rows_of(value: Any, mask: np.ndarray) -> Any:
    arr = np.asarray(value)
    return arr[mask] if arr.ndim >= 1 and arr.shape[0] == mask.shape[0] else value


def _is_discrete(family, y: np.ndarray, extra: Mapping[str, Any]) -> bool:
    with np.errstate(all="ignore"):
        shifted = np.asarray(family.in_support(y + 0.5, extra), dtype=bool)
    return not shifted.any()


def inverse_cdf_draw(
    family, etas: list, extra: Mapping[str, Any], u: np.ndarray, y_obs: np.ndarray, discrete: bool
) -> np.ndarray:
    """The ``u``-quantiles of the family at ``etas`` (one per row), by bisection on its CDF.

    ``y_obs`` (the observed responses) seeds the search bracket; values where the CDF is
    not defined (NaN) count as below the support left of the observed median, above it
    to the right.
    """
    centre = float(np.median(y_obs))
    spread = float(np.ptp(y_obs)) or 1.0

    def cdf(x):
        with np.errstate(all="ignore"):
            value = np.asarray(family.cdf(x, etas, NUMPY_OPS, extra), dtype=float) * np.ones_like(x)
        return np.where(np.isnan(value), np.where(x < centre, 0.0, 1.0), value)

    m = u.shape[0]
    lo = np.full(m, float(np.min(y_obs)) - (1.0 if discrete else 0.0))
    hi = np.full(m, float(np.max(y_obs)))
    width = np.full(m, spread)
    for _ in range(MAX_BRACKET_STEPS):
        low_bad = cdf(lo) >= u
        high_bad = cdf(hi) < u
        if not (low_bad.any() or high_bad.any()):
            break
        lo = np.where(low_bad, lo - width, lo)
        hi = np.where(high_bad, hi + width, hi)
        width = width * 2
    if discrete:
        lo, hi = np.floor(lo), np.ceil(hi)
        for _ in range(MAX_BISECTIONS):
            open_ = hi - lo > 1
            if not open_.any():
                break
            mid = np.floor((lo + hi) / 2)
            above = cdf(mid) >= u
            hi = np.where(open_ & above, mid, hi)
            lo = np.where(open_ & ~above, mid, lo)
        return hi
    for _ in range(MAX_BISECTIONS):
        mid = 0.5 * (lo + hi)
        above = cdf(mid) >= u
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
        if np.all(hi - lo <= 1e-12 * (1.0 + np.abs(hi))):
            break
    return 0.5 * (lo + hi)


def draw_responses(problem: MixtureProblem, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of every response for every row at ``theta``: an array (n, responses).

    Examples
    --------
    >>> import numpy as np, bayesfmm as bf
    >>> from bayesfmm.bayes.builder import problem_for
    >>> problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))
    >>> draw_responses(problem, pooled, np.random.default_rng(0)).shape
    (485, 1)
    """
    theta = np.asarray(theta, dtype=float)
    n, k = problem.n, problem.k
    responses = problem.design.spec.responses
    pi = np.exp(class_log_probs(problem, theta))
    cum = np.cumsum(pi, axis=1)
    classes = np.minimum((cum < rng.random(n)[:, None] * cum[:, -1:]).sum(axis=1), k - 1)
    etas = component_etas(problem, theta)
    out = np.full((n, len(responses)), np.nan)
    for j, comps in enumerate(problem.design.classes):
        rows = classes == j
        if not rows.any():
            continue
        for c, comp in enumerate(comps):
            family = comp.family
            r = responses.index(comp.response)
            row_etas = [_rows_of(np.asarray(e) * np.ones(n), rows) for e in etas[j][c]]
            extra = {key: _rows_of(value, rows) for key, value in comp.extra.items()}
            hook = getattr(family, "sample", None)
            if callable(hook):
                values = hook(row_etas, rng, extra)
            else:
                u = np.clip(rng.random(int(rows.sum())), 1e-300, 1.0)
                discrete = _is_discrete(family, comp.y, comp.extra)
                values = inverse_cdf_draw(family, row_etas, extra, u, comp.y, discrete)
            out[rows, r] = np.asarray(values, dtype=float) * np.ones(int(rows.sum()))
    return out
