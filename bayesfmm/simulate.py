"""Simulate responses from a fitted mixture: the engine of the parametric bootstrap.

Each row first draws its latent class from the fitted class probabilities (per row when the
class model has covariates; per group, shared by its rows, with ``group=``), then each
response from its component in that class, through
the family's ``sample(etas, rng, extra)``. Covariates stay as they are: the simulation is
conditional on the design, as in flexmix's ``rflexmix`` and Stata's parametric bootstrap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayesfmm.design import design_for_new_data
from bayesfmm.errors import DataError, SpecificationError
from bayesfmm.likelihood import MixtureProblem, class_log_probs, component_etas

__all__ = ["simulate", "draw_classes"]


def draw_classes(class_prob: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 0-based class per row from an ``n x k`` matrix of class probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> draw_classes(np.array([[1.0, 0.0], [0.0, 1.0]]), np.random.default_rng(0)).tolist()
    [0, 1]
    """
    prob = np.asarray(class_prob, dtype=float)
    cumulative = np.cumsum(prob, axis=1)
    u = rng.random(prob.shape[0]) * cumulative[:, -1]
    return np.minimum((u[:, None] >= cumulative).sum(axis=1), prob.shape[1] - 1)


def _problem(res, data: pd.DataFrame | None) -> MixtureProblem:
    if data is None:
        return res.problem
    design = design_for_new_data(res.design, data, need_response=False)
    return MixtureProblem.build(design, res.layout)


def _check_simulable(problem: MixtureProblem, data: pd.DataFrame | None) -> None:
    for j, comps in enumerate(problem.design.classes):
        seen: set[str] = set()
        for comp in comps:
            if comp.family.sample is None:
                raise SpecificationError(
                    f"family {comp.family.name!r} cannot simulate: it has no sample() function; "
                    "give its Family a sample=(etas, rng, extra) -> draws to simulate or bootstrap it"
                )
            if comp.response in seen:
                raise SpecificationError(
                    f"class {j + 1} has two components for response {comp.response!r}: cannot simulate it"
                )
            seen.add(comp.response)
            if data is not None and comp.response not in data.columns:
                raise SpecificationError(
                    f"simulate writes the draws of response {comp.response!r} into a column of that "
                    "name; the response must be a plain column, not an expression "
                    "(transform the column first)"
                )


def simulate(
    res: Any,
    rng: np.random.Generator | int | None = None,
    data: pd.DataFrame | None = None,
    *,
    return_class: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.Series]:
    """Draw a data set from a fitted model, keeping the covariates fixed.

    Parameters
    ----------
    res
        A fitted model (``MLResults``); its estimates are the truth of the simulation.
    rng
        A ``numpy.random.Generator``, or a seed for one.
    data
        Covariates to simulate on. ``None`` uses the estimation sample and returns only the
        response columns; a DataFrame returns a copy of its rows (those the model can use)
        with every response column replaced by draws.
    return_class
        Also return the drawn classes (1..k) as a Series named ``"class"``.

    Returns
    -------
    DataFrame, or ``(DataFrame, Series)`` with ``return_class=True``.

    Raises
    ------
    SpecificationError
        A family of the model has no ``sample`` function, or a response is an expression.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> stamp = bf.datasets.load("stamp")
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(stamp)
    >>> fake = bf.simulate(res, rng=1, data=stamp)
    >>> fake.shape == stamp.shape
    True
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if data is not None and not isinstance(data, pd.DataFrame):
        raise SpecificationError(f"data must be a pandas DataFrame or None, got {type(data).__name__}")
    problem = _problem(res, data)
    _check_simulable(problem, data)
    n = problem.n
    with np.errstate(under="ignore"):
        prob = np.exp(class_log_probs(problem, res.theta))
    groups = problem.design.groups
    if groups is None:
        classes = draw_classes(prob, rng)
    else:  # group=: one class per group, shared by its rows
        classes = draw_classes(prob[groups.first], rng)[groups.codes]
    etas = component_etas(problem, res.theta)
    draws: dict[str, np.ndarray] = {name: np.full(n, np.nan) for name in problem.design.spec.responses}
    for j, comps in enumerate(problem.design.classes):
        rows = np.flatnonzero(classes == j)
        if rows.size == 0:
            continue
        for c, comp in enumerate(comps):
            row_etas = [np.broadcast_to(np.asarray(e, dtype=float), (n,))[rows] for e in etas[j][c]]
            row_extra = {key: np.asarray(value)[rows] for key, value in comp.extra.items()}
            values = np.asarray(comp.family.sample(row_etas, rng, row_extra), dtype=float)
            draws[comp.response][rows] = values
    index = problem.design.index
    if data is None:
        out = pd.DataFrame(draws, index=index)
    else:
        if len(index) != len(data) and not data.index.is_unique:
            raise DataError(
                "data has rows with missing model variables and a duplicated index: "
                "drop those rows first (data.dropna(subset=[...])) or reset the index"
            )
        out = data.loc[index].copy() if len(index) != len(data) else data.copy()
        for name, values in draws.items():
            integral = np.all(np.isfinite(values)) and np.all(values == np.round(values))
            keep_dtype = pd.api.types.is_integer_dtype(data[name]) and integral
            out[name] = values.astype(data[name].dtype) if keep_dtype else values  # counts stay integers
    if return_class:
        return out, pd.Series(classes + 1, index=index, name="class")
    return out
