"""Postestimation: class probabilities, class means, predictions (Stata's ``estat``/``predict``).

Margins are averages over the estimation sample of per-row predictions, with delta-method
standard errors from a numerical Jacobian of the margin in the optimiser's parameters.
``lcprob`` builds its confidence intervals on the logit scale, as Stata does.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from bayesfmm.design import design_for_new_data
from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import ExtraColumn
from bayesfmm.likelihood import MixtureProblem, class_log_probs, component_etas, evaluate
from bayesfmm.ops import NUMPY_OPS, Lazy
from bayesfmm.simulate import component_columns
from bayesfmm.survey import critical_value, design_df

expit, logit = Lazy("scipy.special", "expit"), Lazy("scipy.special", "logit")  # loaded on first use

__all__ = ["PREDICT_KINDS", "predict", "lcprob", "lcmean", "delta_method"]

PREDICT_KINDS = ("mu", "eta", "density", "distribution", "survival", "classpr", "classposteriorpr")
_MARGINAL_KINDS = ("mu", "density", "distribution", "survival")


def numerical_jacobian(func: Callable[[np.ndarray], np.ndarray], theta: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian of a vector function of ``theta``."""
    base = np.atleast_1d(func(theta))
    jac = np.empty((base.size, theta.size))
    for i in range(theta.size):
        h = 1e-6 * (abs(theta[i]) + 1.0)
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        jac[:, i] = (np.atleast_1d(func(up)) - np.atleast_1d(func(down))) / (2 * h)
    return jac


def delta_method(func, theta: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value of ``func`` at ``theta`` and its delta-method standard errors."""
    value = np.atleast_1d(func(theta))
    jac = numerical_jacobian(func, theta)
    var = np.einsum("ij,jk,ik->i", jac, cov, jac)
    return value, np.sqrt(np.clip(var, 0, None))


def lcprob(res, alpha: float = 0.05) -> pd.DataFrame:
    """Marginal latent class probabilities with delta-method SEs; CIs on the logit scale.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
    >>> res.lcprob()["margin"].round(4).tolist()
    [0.1943, 0.3689, 0.4368]
    """
    problem = res.problem

    def margins(theta):
        return np.exp(class_log_probs(problem, theta)).mean(axis=0)

    margin, se = delta_method(margins, res.theta, res.cov_theta)
    z = critical_value(alpha, design_df(res))  # t on the design df after a survey fit
    with np.errstate(divide="ignore", invalid="ignore"):
        se_logit = se / (margin * (1 - margin))
        lower = expit(logit(margin) - z * se_logit)
        upper = expit(logit(margin) + z * se_logit)
    index = pd.Index(range(1, res.k + 1), name="class")
    return pd.DataFrame({"margin": margin, "se": se, "lower": lower, "upper": upper}, index=index)


def _class_means(problem: MixtureProblem, theta: np.ndarray) -> dict[str, np.ndarray]:
    """Mean of each response in each class, averaged over rows (NaN where absent); a
    response of several columns (``mvnormal``) gives one entry per column."""
    etas = component_etas(problem, theta)
    out: dict[str, np.ndarray] = {}
    for j, comps in enumerate(problem.design.classes):
        for c, comp in enumerate(comps):
            mu = np.asarray(comp.family.mean(etas[j][c], NUMPY_OPS, comp.extra), dtype=float)
            columns = component_columns(comp)
            mu = mu if mu.ndim == 2 else np.atleast_1d(mu)[:, None]
            for i, name in enumerate(columns):
                values = out.setdefault(name, np.full(problem.k, np.nan))
                values[j] = float(np.mean(mu[:, i] * np.ones(problem.n)))
    return out


def lcmean(res, alpha: float = 0.05) -> pd.DataFrame:
    """Marginal mean of each response within each class (Stata ``estat lcmean``).

    Returns a frame indexed by (``class``, ``equation``) with columns ``margin``, ``se``,
    ``lower``, ``upper`` (normal-theory interval).
    """
    problem = res.problem
    names = list(_class_means(problem, res.theta))

    def flat(theta):
        means = _class_means(problem, theta)
        return np.concatenate([means[name] for name in names])

    value, se = delta_method(flat, res.theta, res.cov_theta)
    z = critical_value(alpha, design_df(res))  # t on the design df after a survey fit
    index = pd.MultiIndex.from_tuples(
        [(j + 1, name) for name in names for j in range(res.k)], names=["class", "equation"]
    )
    frame = pd.DataFrame({"margin": value, "se": se, "lower": value - z * se, "upper": value + z * se}, index=index)
    return frame.sort_index(level="class", sort_remaining=False).dropna(subset=["margin"])


def _problem_for(res, data: pd.DataFrame | None, need_response: bool) -> MixtureProblem:
    if data is None:
        return res.problem
    design = design_for_new_data(res.design, data, need_response)
    return MixtureProblem.build(design, res.layout)


def predict(
    res,
    data: pd.DataFrame | None = None,
    kind: str = "mu",
    marginal: bool = False,
    equation: str | None = None,
):
    """Predictions for the estimation sample or new ``data``.

    Parameters
    ----------
    kind
        ``"mu"`` (class-wise mean of the response), ``"eta"`` (linear predictor),
        ``"density"``, ``"distribution"`` (CDF), ``"survival"`` (``P(Y > y)``, the
        family's log survivor function where it has one, else ``1 - cdf``),
        ``"classpr"`` (prior class probabilities), ``"classposteriorpr"`` (posterior class
        probabilities).
    marginal
        For ``mu``, ``density``, ``distribution`` and ``survival``: the mixture over
        classes, one Series.
    equation
        Which response (default: the first; for ``"survival"`` the first survival-time
        response). In a mixture cure model the cured class (a ``pointmass`` at 0 on the
        failure indicator) has survival 1; new data for ``"survival"`` need no failure
        column. For a response of several columns (``"y1 + y2 ~ x"``, family
        ``mvnormal``) also one of its columns (``"y2"``): ``mu`` and ``eta`` of that column.

    Returns
    -------
    DataFrame with one column per class (named 1..k), or a Series when ``marginal``. For
    ``mu`` and ``eta`` of a response of ``d`` columns (``mvnormal``): columns (``class``,
    ``response``), ``k x d`` of them, or with ``marginal`` the ``d`` columns of the mixture
    mean ``sum_j pi_ij mu_ij``; ``density`` is then the joint density of the ``d`` columns.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> stamp = bf.datasets.load("stamp")
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(stamp)
    >>> res.predict(kind="classposteriorpr").shape
    (485, 3)
    >>> mv = bf.FMM("eruptions + waiting ~ 1", family="mvnormal", k=2).fit(bf.datasets.load("faithful"))
    >>> mv.predict(kind="mu", marginal=True).columns.tolist()
    ['eruptions', 'waiting']
    """
    if kind not in PREDICT_KINDS:
        raise SpecificationError(f"predict kind={kind!r} unknown; choose from {', '.join(PREDICT_KINDS)}")
    if marginal and kind not in _MARGINAL_KINDS:
        raise SpecificationError(f"marginal=True applies to {', '.join(_MARGINAL_KINDS)}, not {kind!r}")
    responses = res.spec.responses
    if kind == "survival":
        equation = _survival_equation(res, equation)
        data = _with_failure_placeholders(res, data)
    equation = responses[0] if equation is None else equation
    parent, names, position = _split_equation(res, equation, kind)
    need_y = kind in ("density", "distribution", "survival", "classposteriorpr")
    problem = _problem_for(res, data, need_y)
    theta = res.theta
    columns = pd.Index(range(1, problem.k + 1), name="class")
    index = problem.design.index
    if kind in ("classpr", "classposteriorpr"):
        values = np.exp(class_log_probs(problem, theta)) if kind == "classpr" else evaluate(problem, theta).resp
        return pd.DataFrame(np.asarray(values), index=index, columns=columns)
    if len(names) > 1 and kind in ("mu", "eta"):
        return _predict_columns(problem, theta, kind, marginal, parent, names, position)
    etas = component_etas(problem, theta)
    out = np.full((problem.n, problem.k), np.nan)
    for j, comps in enumerate(problem.design.classes):
        for c, comp in enumerate(comps):
            if comp.response != equation:
                continue
            family, e = comp.family, etas[j][c]
            if kind == "eta":
                value = e[0] if e else np.nan  # a family without parameters has no eta
            elif kind == "mu":
                value = family.mean(e, NUMPY_OPS, comp.extra)
            elif kind == "density":
                value = np.exp(family.logpdf_numpy(comp.y, e, comp.extra))
            elif kind == "survival":
                value = _survival(family, comp, e)
            else:
                value = family.cdf(comp.y, e, NUMPY_OPS, comp.extra)
            out[:, j] = np.asarray(value) * np.ones(problem.n)
    if kind == "survival":
        for j in _cured_classes(problem, equation):
            out[:, j] = 1.0
    if marginal:
        pi = np.exp(class_log_probs(problem, theta))
        present = ~np.isnan(out)
        weights = np.where(present, pi, 0.0)
        mixed = np.nansum(weights * np.nan_to_num(out), axis=1) / weights.sum(axis=1)
        return pd.Series(mixed, index=index, name=f"{kind}({equation})")
    return pd.DataFrame(out, index=index, columns=columns)


# -- responses of several columns (mvnormal) ----------------------------------------------
def _response_columns(res) -> dict[str, tuple[str, ...]]:
    """Each response of the model -> its data columns (itself, or ``mvnormal``'s names)."""
    out: dict[str, tuple[str, ...]] = {}
    for comps in res.design.classes:
        for comp in comps:
            out.setdefault(comp.response, component_columns(comp))
    return out


def _split_equation(res, equation: str, kind: str) -> tuple[str, tuple[str, ...], int | None]:
    """``(response, its columns, the column's position)`` of ``equation``: a response of the
    model (position None) or one column of a response of several columns."""
    columns = _response_columns(res)
    if equation in res.spec.responses:
        return equation, columns.get(equation, (equation,)), None
    for response, names in columns.items():
        if len(names) > 1 and equation in names:
            if kind in ("density", "distribution", "survival"):
                raise SpecificationError(
                    f"predict kind={kind!r}: the density of response {response!r} is joint over its "
                    f"columns {list(names)}; use equation={response!r}, not one column ({equation!r})"
                )
            return response, names, names.index(equation)
    known = list(res.spec.responses) + [n for names in columns.values() if len(names) > 1 for n in names]
    raise SpecificationError(f"equation {equation!r} is not a response of the model; responses: {known}")


def _predict_columns(problem: MixtureProblem, theta: np.ndarray, kind: str, marginal: bool, response: str,
                     names: tuple[str, ...], position: int | None):
    """``mu``/``eta`` of a response of ``d`` columns: (class, response) columns, the mixture
    mean's ``d`` columns when ``marginal``, or one column's ``n x k`` (Series) when
    ``position`` picks it."""
    n, k, d = problem.n, problem.k, len(names)
    etas = component_etas(problem, theta)
    out = np.full((n, k, d), np.nan)
    for j, comps in enumerate(problem.design.classes):
        for c, comp in enumerate(comps):
            if comp.response != response:
                continue
            e = etas[j][c]
            if kind == "mu":
                value = np.asarray(comp.family.mean(e, NUMPY_OPS, comp.extra), dtype=float)
            else:  # the linear predictors of the d mean equations
                value = np.column_stack([np.asarray(e[i], dtype=float) * np.ones(n) for i in range(d)])
            out[:, j, :] = value * np.ones((n, d))
    index = problem.design.index
    if marginal:
        pi = np.exp(class_log_probs(problem, theta))
        present = ~np.isnan(out[:, :, 0])
        weights = np.where(present, pi, 0.0)
        mixed = np.einsum("nk,nkd->nd", weights, np.nan_to_num(out)) / weights.sum(axis=1)[:, None]
        if position is not None:
            return pd.Series(mixed[:, position], index=index, name=f"{kind}({names[position]})")
        return pd.DataFrame(mixed, index=index, columns=pd.Index(list(names), name="response"))
    if position is not None:
        return pd.DataFrame(out[:, :, position], index=index, columns=pd.Index(range(1, k + 1), name="class"))
    columns = pd.MultiIndex.from_tuples([(j + 1, name) for j in range(k) for name in names], names=["class", "response"])
    return pd.DataFrame(out.reshape(n, k * d), index=index, columns=columns)


# -- survival (predict(kind="survival")) ---------------------------------------------------
def _survival(family, comp, etas) -> np.ndarray:
    """``P(Y > y)``: the family's log survivor function when it has one, else ``1 - cdf``."""
    with np.errstate(divide="ignore", over="ignore", under="ignore"):
        if family.logsf is not None:
            return np.exp(family.logsf(comp.y, etas, NUMPY_OPS, comp.extra))
        return 1.0 - np.asarray(family.cdf(comp.y, etas, NUMPY_OPS, comp.extra))


def _failure_columns(res) -> dict[str, str]:
    """Survival-time response -> its failure indicator column, for every survival component."""
    out = {}
    for comp in res.spec.components:
        source = comp.family.extra_columns.get("failure")
        if isinstance(source, ExtraColumn) and isinstance(source.column, str):
            out.setdefault(comp.response, source.column)
    return out


def _survival_equation(res, equation: str | None) -> str | None:
    if equation is not None:
        return equation
    for comp in res.spec.components:
        if comp.family.logsf is not None:
            return comp.response
    return None


def _with_failure_placeholders(res, data: pd.DataFrame | None) -> pd.DataFrame | None:
    """New data without the failure column(s): survival probabilities do not use them."""
    if data is None:
        return None
    absent = [col for col in _failure_columns(res).values() if col not in data.columns]
    return data.assign(**{col: 1.0 for col in absent}) if absent else data


def _cured_classes(problem: MixtureProblem, equation: str) -> list[int]:
    """Classes with no model for the time ``equation`` whose failure indicator is a point
    mass at 0: the cured class of a mixture cure model (survival 1)."""
    failure = None
    for comps in problem.design.classes:
        for comp in comps:
            if comp.response == equation and "failure" in comp.component.family.extra_columns:

                source = comp.component.family.extra_columns["failure"]
                failure = source.column if isinstance(source, ExtraColumn) else None
    if failure is None:
        return []
    cured = []
    for j, comps in enumerate(problem.design.classes):
        if any(comp.response == equation for comp in comps):
            continue
        if any(
            comp.response == failure and comp.family.name == "pointmass" and comp.family.options.get("value") == 0.0
            for comp in comps
        ):
            cured.append(j)
    return cured
