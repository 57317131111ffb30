"""Start values (Stata ``startvalues()``): each method gives class-membership weights per
row, and one M-step turns them into a parameter vector.

* ``"default"``: deterministic. Rows are split into ``k`` equal groups by quantiles of the
  first response's residual from a 1-class fit (lowest residuals in class 1), a stand-in
  for Stata's factor-score start that needs no randomness.
* ``"randomid"``: each row assigned to a class uniformly at random.
* ``"randompr"``: each row given random class probabilities (uniform on the simplex).

Random methods take ``draws=`` and ``seed=``; the caller runs EM from each draw and keeps
the best.
"""

from __future__ import annotations

import numpy as np

from bayesfmm.errors import SpecificationError
from bayesfmm.likelihood import MixtureProblem
from bayesfmm.ml.em import m_step, weighted_component_fit
from bayesfmm.ops import NUMPY_OPS

__all__ = ["START_METHODS", "one_class_fit", "start_weights", "theta_from_weights"]

START_METHODS = ("default", "randomid", "randompr")


def one_class_fit(problem: MixtureProblem) -> np.ndarray:
    """Every class set to the pooled (1-class) fit and equal class probabilities."""
    theta = np.zeros(problem.layout.size)
    ones = np.ones(problem.n)
    cache: dict[int, list[np.ndarray]] = {}
    for j, comps in enumerate(problem.design.classes):
        for c, comp in enumerate(comps):
            blocks = [problem.layout.slot_block(j + 1, c, s) for s in range(len(comp.slot_designs))]
            if id(comp) not in cache:
                current = [np.zeros(b.size) for b in blocks]
                aux = iter(comp.family.start_aux(comp.y, ones))
                for b, slot in zip(range(len(blocks)), comp.family.slots):
                    if not slot.linear:
                        current[b] = np.array([next(aux)])
                cache[id(comp)] = weighted_component_fit(comp, ones, current, steps=25)
            for b, value in zip(blocks, cache[id(comp)]):
                theta[b.slice] = value
    return theta


def _quantile_weights(problem: MixtureProblem, pooled: np.ndarray) -> np.ndarray:
    from bayesfmm.likelihood import component_etas

    comp = problem.design.classes[0][0]
    etas = component_etas(problem, pooled)[0][0]
    fitted = np.asarray(comp.family.mean(etas, NUMPY_OPS, comp.extra)) * np.ones(problem.n)
    residual = comp.y - fitted
    k = problem.k
    cuts = np.quantile(residual, np.arange(1, k) / k)
    labels = np.searchsorted(cuts, residual, side="right")
    return np.eye(k)[labels]


def start_weights(
    problem: MixtureProblem, method: str, draws: int, rng: np.random.Generator, pooled: np.ndarray
) -> list[np.ndarray]:
    """Class-membership weights (n x k) for each draw of ``method``."""
    n, k = problem.n, problem.k
    if method == "default":
        return [_quantile_weights(problem, pooled)]
    if method == "randomid":
        return [np.eye(k)[rng.integers(0, k, size=n)] for _ in range(draws)]
    if method == "randompr":
        return [rng.dirichlet(np.ones(k), size=n) for _ in range(draws)]
    raise SpecificationError(
        f"startvalues={method!r} is not a start method; choose from {', '.join(START_METHODS)}"
    )


def theta_from_weights(problem: MixtureProblem, weights: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """One M-step from class-membership weights, starting from the pooled fit."""
    return m_step(problem, weights, pooled)
