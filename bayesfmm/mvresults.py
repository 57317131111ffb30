"""Results of multivariate normal components (``family="mvnormal"``): each class's
covariance matrix on the reported scale, per-class means, and the classification.

The parameters of a ``mvnormal`` component are the entries of the inverse Cholesky factor
of its covariance (see :mod:`bayesfmm.families.mvnormal`); :func:`covariance_table` maps
them to the variances, covariances and correlations with delta-method standard errors
(confidence intervals built on the log scale for variances and on Fisher's ``atanh``
scale for correlations, so they stay in range).
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pandas as pd

from bayesfmm.errors import SpecificationError
from bayesfmm.families.ivregress import covariance_entries
from bayesfmm.families.mvnormal import covariance_from_theta
from bayesfmm.likelihood import component_etas, evaluate
from bayesfmm.ops import NUMPY_OPS
from bayesfmm.postestimation import _problem_for, delta_method
from bayesfmm.survey import critical_value, design_df

__all__ = ["iv_covariance_table", "covariance_table", "component_covariance_tables", "covariance_matrices", "class_means", "classify", "has_mvnormal"]


def _mv_components(problem) -> Iterator[tuple[int, int, Any]]:
    found = False
    for j, comps in enumerate(problem.design.classes):
        for c, comp in enumerate(comps):
            if comp.family.name == "mvnormal" and "responses" in comp.family.options:
                found = True
                yield j, c, comp
    if not found:
        raise SpecificationError("the model has no mvnormal component (family='mvnormal', 'y1 + y2 ~ x')")


def _sigma(problem, theta: np.ndarray, j: int, c: int, comp) -> np.ndarray:
    family = comp.family
    d = len(family.options["responses"])
    aux = [
        theta[problem.layout.slot_block(j + 1, c, s).slice]
        for s, slot in enumerate(family.slots)
        if not slot.linear
    ]
    return covariance_from_theta(aux, d, family.options["covariance"])


def covariance_matrices(res, theta: np.ndarray | None = None) -> dict[int, pd.DataFrame]:
    """Each class's covariance matrix (class number -> DataFrame over the responses).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> faithful = bf.datasets.load("faithful")
    >>> res = bf.FMM("eruptions + waiting ~ 1", family="mvnormal", k=1).fit(faithful)
    >>> round(float(covariance_matrices(res)[1].loc["waiting", "waiting"]), 2)
    184.14
    """
    theta = res.theta if theta is None else theta
    out = {}
    for j, c, comp in _mv_components(res.problem):
        names = list(comp.family.options["responses"])
        out[j + 1] = pd.DataFrame(_sigma(res.problem, theta, j, c, comp), index=names, columns=names)
    return out


def _entries(names: list[str], sigma: np.ndarray) -> tuple[list[str], list[str], np.ndarray]:
    d = len(names)
    labels, kinds, values = [], [], []
    for i in range(d):
        for m in range(i + 1):
            if i == m:
                labels.append(f"var({names[i]})")
                kinds.append("var")
                values.append(sigma[i, i])
            else:
                labels.append(f"cov({names[m]},{names[i]})")
                kinds.append("cov")
                values.append(sigma[m, i])
    for i in range(d):
        for m in range(i):
            labels.append(f"corr({names[m]},{names[i]})")
            kinds.append("corr")
            values.append(sigma[m, i] / np.sqrt(sigma[i, i] * sigma[m, m]))
    return labels, kinds, np.array(values)


def _entry_intervals(kinds: list[str], value: np.ndarray, se: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Confidence limits: normal for covariances, log scale for variances, Fisher's
    ``atanh`` scale for correlations (so both stay in range)."""
    kinds_arr = np.array(kinds)
    lower, upper = value - z * se, value + z * se
    with np.errstate(divide="ignore", invalid="ignore"):
        var = kinds_arr == "var"
        lower[var] = value[var] * np.exp(-z * se[var] / value[var])
        upper[var] = value[var] * np.exp(z * se[var] / value[var])
        cor = kinds_arr == "corr"
        fz, fse = np.arctanh(value[cor]), se[cor] / (1 - value[cor] ** 2)
        lower[cor], upper[cor] = np.tanh(fz - z * fse), np.tanh(fz + z * fse)
    return lower, upper


def component_covariance_tables(res, alpha: float = 0.05) -> dict[tuple[int, str], pd.DataFrame]:
    """:func:`covariance_table` split by component: ``(class, response) -> frame`` indexed
    by ``parameter`` (what ``res.summary()`` prints below each ``mvnormal`` component).

    The standard errors are the delta method's, ``sqrt(J V J')`` with ``V = res.cov_theta``
    and ``J`` the central-difference Jacobian of the entries in ``theta``; correlations
    ``Sigma_ab / sqrt(Sigma_aa Sigma_bb)`` included.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("eruptions + waiting ~ 1", family="mvnormal", k=1).fit(bf.datasets.load("faithful"))
    >>> list(component_covariance_tables(res)[(1, "eruptions + waiting")].index)
    ['var(eruptions)', 'cov(eruptions,waiting)', 'var(waiting)', 'corr(eruptions,waiting)']
    """
    problem = res.problem
    z = critical_value(alpha, design_df(res))
    out = {}
    for j, c, comp in _mv_components(problem):
        names = list(comp.family.options["responses"])
        labels, kinds, _ = _entries(names, _sigma(problem, res.theta, j, c, comp))

        def values(theta, j=j, c=c, comp=comp, names=names):
            return _entries(names, _sigma(problem, theta, j, c, comp))[2]

        value, se = delta_method(values, res.theta, res.cov_theta)
        lower, upper = _entry_intervals(kinds, value, se, z)
        index = pd.Index(labels, name="parameter")
        out[(j + 1, comp.response)] = pd.DataFrame({"coef": value, "std_err": se, "lower": lower, "upper": upper}, index=index)
    return out


def covariance_table(res, alpha: float = 0.05) -> pd.DataFrame:
    """Variances, covariances and correlations of each class with delta-method standard
    errors and confidence intervals, indexed by (``class``, ``parameter``).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> faithful = bf.datasets.load("faithful")
    >>> res = bf.FMM("eruptions + waiting ~ 1", family="mvnormal", k=1).fit(faithful)
    >>> covariance_table(res).loc[(1, "corr(eruptions,waiting)"), "coef"].round(4)
    np.float64(0.9008)
    """
    tables = component_covariance_tables(res, alpha)
    return pd.concat([table for table in tables.values()], keys=[cls for cls, _ in tables], names=["class", "parameter"])


def iv_covariance_table(res, alpha: float = 0.05) -> pd.DataFrame:
    """Stata's ``var(e.y)``, ``var(e.w)``, ``cov(e.w,e.y)`` (and the correlations) of each
    class's ``ivregress`` component, with delta-method standard errors (:func:`delta_method`
    on ``res.cov_theta``) and normal intervals, indexed by (``class``, ``parameter``).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> rng = np.random.default_rng(1)
    >>> z, v = rng.normal(size=(2, 300))
    >>> df = pd.DataFrame({"z": z, "w": z + v, "y": z + v + v + rng.normal(size=300)})
    >>> res = bf.FMM("y ~ 1 + (w ~ z)", family="ivregress", k=1).fit(df)
    >>> iv_covariance_table(res).index.get_level_values("parameter").tolist()
    ['var(e.y)', 'var(e.w)', 'cov(e.w,e.y)', 'corr(e.w,e.y)']
    """
    z = critical_value(alpha, design_df(res))
    layout = res.problem.layout
    frames = []
    for j, comps in enumerate(res.problem.design.classes):
        for c, comp in enumerate(comps):
            if comp.family.name != "ivregress":
                continue
            pos = np.array([layout.slot_block(j + 1, c, s).start
                            for s, slot in enumerate(comp.family.slots) if not slot.linear])
            names = list(comp.family.options["responses"])

            def values(theta, pos=pos, names=names):
                return covariance_entries(names, covariance_from_theta(theta[pos], len(names), "full"))[1]

            labels = covariance_entries(names, covariance_from_theta(res.theta[pos], len(names), "full"))[0]
            value, se = delta_method(values, np.asarray(res.theta, dtype=float), res.cov_theta)
            index = pd.MultiIndex.from_tuples([(j + 1, label) for label in labels], names=["class", "parameter"])
            frames.append(pd.DataFrame({"coef": value, "std_err": se, "lower": value - z * se,
                                        "upper": value + z * se}, index=index))
    if not frames:
        raise SpecificationError("the model has no ivregress component (family='ivregress')")
    return pd.concat(frames)


def has_mvnormal(problem) -> bool:
    """Whether the model has an ``mvnormal`` component."""
    return any(
        comp.family.name == "mvnormal" and "responses" in comp.family.options for comps in problem.design.classes for comp in comps
    )


def class_means(res, data: pd.DataFrame | None = None) -> pd.DataFrame:
    """The mean of every response in every class, per row: columns (``class``, response).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> faithful = bf.datasets.load("faithful")
    >>> res = bf.FMM("eruptions + waiting ~ 1", family="mvnormal", k=1).fit(faithful)
    >>> class_means(res).iloc[0].round(2).tolist()
    [3.49, 70.9]
    """
    problem = _problem_for(res, data, False)
    etas = component_etas(problem, res.theta)
    columns, blocks = [], []
    for j, c, comp in _mv_components(problem):
        blocks.append(np.asarray(comp.family.mean(etas[j][c], NUMPY_OPS, comp.extra)) * np.ones((problem.n, 1)))
        columns += [(j + 1, name) for name in comp.family.options["responses"]]
    index = pd.MultiIndex.from_tuples(columns, names=["class", "response"])
    return pd.DataFrame(np.hstack(blocks), index=problem.design.index, columns=index)


def classify(res, data: pd.DataFrame | None = None) -> pd.DataFrame:
    """Posterior class probabilities and the modal class (``"class"`` column, 1-based)
    of each row (of ``data``, which then needs the responses).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> faithful = bf.datasets.load("faithful")
    >>> res = bf.FMM("eruptions + waiting ~ 1", family="mvnormal", k=2).fit(faithful)
    >>> sorted(classify(res)["class"].value_counts().tolist())
    [97, 175]
    """
    problem = _problem_for(res, data, True)
    resp = np.asarray(evaluate(problem, res.theta).resp)
    frame = pd.DataFrame(resp, index=problem.design.index, columns=[f"pr{j + 1}" for j in range(problem.k)])
    frame["class"] = resp.argmax(axis=1) + 1
    return frame
