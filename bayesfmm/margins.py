"""Stata ``margins`` after ``fmm``: predictive margins and average marginal effects.

Every quantity is an average over the rows of the data (weighted by the fit's weights) of a
prediction of the response's mean: the marginal mean ``sum_j pi_ij mu_ij`` (row
``"marginal"``) and each class's mean ``mu_ij`` (rows ``1..k``).

* ``res.margins(df)``: the predictive margins (Stata ``margins``);
* ``res.margins(df, at="g")``: the predictive margins with the factor ``g`` set to each of
  its levels in every row (Stata ``margins g``);
* ``res.margins(df, dydx="x")``: the average marginal effect of ``x`` (Stata ``margins,
  dydx(x)``): for a continuous ``x`` the mean over rows of ``d mean / d x`` (a central
  difference in ``x`` with Richardson extrapolation, through every formula term and the class
  model); for a factor the discrete change from its first level to each other level;
* ``over="col"``: the same within each subgroup of rows defined by the column (Stata
  ``over()``).

ML results get delta-method standard errors from a numerical Jacobian in the optimiser's
parameters (``cov_theta``), z, p and a normal interval, as Stata does; Bayesian results
the posterior mean, sd and equal-tailed interval over (up to ``max_draws``) draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from bayesfmm.errors import DataError, SpecificationError, check_alpha
from bayesfmm.likelihood import MixtureProblem, class_log_probs
from bayesfmm.ops import Lazy
from bayesfmm.postestimation import _problem_for, numerical_jacobian, predict

ndtr, ndtri = Lazy("scipy.special", "ndtr"), Lazy("scipy.special", "ndtri")  # loaded on first use

__all__ = ["margins"]

_STEP = 1e-2  # x step of the derivative, in standard deviations of x (Richardson: error ~ step^4)


@dataclass(frozen=True, eq=False)
class _At:
    """What the postestimation functions read from a fit, at one parameter vector."""

    problem: MixtureProblem
    theta: np.ndarray

    @property
    def design(self):
        return self.problem.design

    @property
    def spec(self):
        return self.problem.design.spec

    @property
    def layout(self):
        return self.problem.layout

    @property
    def k(self) -> int:
        return self.problem.k


def _means(problem: MixtureProblem, theta: np.ndarray, equation: str) -> np.ndarray:
    """Weighted row averages of the marginal mean and of each class's mean: k + 1 values."""
    mu = np.asarray(predict(_At(problem, theta), None, kind="mu", equation=equation), dtype=float)
    pi = np.exp(class_log_probs(problem, theta)) * np.ones_like(mu)
    present = ~np.isnan(mu)
    weights = np.where(present, pi, 0.0)
    marginal = np.sum(weights * np.nan_to_num(mu), axis=1) / weights.sum(axis=1)
    w = problem.design.weights
    w = np.ones(problem.n) if w is None else np.asarray(w, dtype=float)
    table = np.column_stack([marginal, mu])
    return (w @ np.nan_to_num(table)) / w.sum() + np.where(np.isnan(table).all(axis=0), np.nan, 0.0)


def _is_factor(res: Any, data: pd.DataFrame, name: str) -> bool:
    column = data[name]
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return True
    formulas = [c.formula for c in res.spec.components] + [c.lcprob or "" for c in res.spec.components]
    formulas.append(res.spec.lcprob or "")
    return any(f"C({name})" in f.replace(" ", "") for f in formulas)


def _levels(data: pd.DataFrame, name: str) -> list:
    column = data[name]
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [c for c in column.cat.categories if (column == c).any()]
    return sorted(column.dropna().unique().tolist())


def _plan(res: Any, data: pd.DataFrame, at: str | None, dydx: str | None) -> tuple[list[pd.DataFrame], list, Callable]:
    """Counterfactual data sets, the labels of the results, and how to combine the data
    sets' averages (a list of (k+1)-vectors) into the results (one (k+1)-vector each)."""
    if at is not None and dydx is not None:
        raise SpecificationError("give at= or dydx=, not both")
    name = at or dydx
    if name is not None and name not in data.columns:
        raise DataError(f"column {name!r} is not in the data")
    if name is None:
        return [data], ["_margin"], lambda m: [m[0]]
    if at is not None or _is_factor(res, data, name):
        levels = _levels(data, name)
        frames = [data.assign(**{name: pd.Series([lev] * len(data), index=data.index, dtype=data[name].dtype)})
                  for lev in levels]
        if at is not None:
            return frames, [f"{name}={lev}" for lev in levels], lambda m: list(m)
        return frames, [f"{lev}.{name}" for lev in levels[1:]], lambda m: [v - m[0] for v in m[1:]]
    x = data[name].astype(float)
    sd = float(x.std()) if len(x) > 1 and float(x.std()) > 0 else 1.0
    h = _STEP * sd
    frames = [data.assign(**{name: x + s * h}) for s in (1.0, -1.0, 0.5, -0.5)]

    def derivative(m):
        coarse, fine = (m[0] - m[1]) / (2 * h), (m[2] - m[3]) / h
        return [(4 * fine - coarse) / 3]  # Richardson: error O(h^4)

    return frames, [name], derivative


def _frame(values: dict[str, np.ndarray], labels: list, k: int, by: list | None, over: str | None) -> pd.DataFrame:
    classes = ["marginal", *range(1, k + 1)]
    tuples = [(*(() if by is None else (b,)), label, c) for b in (by or [None]) for label in labels for c in classes]
    names = ([over] if over else []) + ["term", "class"]
    if by is None:
        tuples = [t[-2:] for t in tuples]
    index = pd.MultiIndex.from_tuples(tuples, names=names)
    frame = pd.DataFrame(values, index=index)
    return frame.dropna(subset=["margin"])


def margins(
    res: Any,
    data: pd.DataFrame,
    at: str | None = None,
    dydx: str | None = None,
    over: str | None = None,
    equation: str | None = None,
    alpha: float = 0.05,
    max_draws: int | None = 500,
) -> pd.DataFrame:
    """Predictive margins or average marginal effects (Stata ``margins``).

    Parameters
    ----------
    res
        A fit (MLResults or BayesResults).
    data
        The estimation data (bayesfmm keeps no copy of it, Stata keeps it in memory).
    at
        A factor: margins with it set to each level in every row (Stata ``margins g``).
    dydx
        A covariate: its average marginal effect (Stata ``margins, dydx(x)``).
    over
        A column: the same within each of its groups of rows (Stata ``over()``).
    equation
        The response (default: the first).
    alpha
        1 - the interval's level.
    max_draws
        Bayes: the number of posterior draws used (evenly spaced).

    Returns
    -------
    DataFrame indexed by ([over,] ``term``, ``class``), ``class`` being ``"marginal"`` or
    1..k; columns ``margin``, ``std_err``, ``z``, ``p``, ``lower``, ``upper`` (ML) or
    ``margin``, ``std_err``, ``lower``, ``upper`` (Bayes).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import bayesfmm as bf
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"x": rng.normal(size=300)})
    >>> df["y"] = rng.poisson(np.exp(0.5 + 0.3 * df.x))
    >>> res = bf.FMM("y ~ x", family="poisson", k=1).fit(df)
    >>> ame = res.margins(df, dydx="x").loc[("x", "marginal"), "margin"]
    >>> bool(abs(ame - res.params[(1, "y", "x")] * res.predict(kind="mu", marginal=True).mean()) < 1e-8)
    True
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be the estimation DataFrame, got {type(data).__name__}")
    alpha = check_alpha(alpha)
    equation = res.spec.responses[0] if equation is None else equation
    if equation not in res.spec.responses:
        raise SpecificationError(f"equation {equation!r} is not a response of the model; responses: {res.spec.responses}")
    if over is not None and over not in data.columns:
        raise DataError(f"over={over!r} is not a column of the data")
    groups = [(None, data)] if over is None else [(lev, data[data[over] == lev]) for lev in _levels(data, over)]
    problems, combiners, labels = [], [], None
    for _, part in groups:
        frames, labels, combine = _plan(res, part, at, dydx)
        problems.append([_problem_for(res, frame, False) for frame in frames])
        combiners.append(combine)

    def stats(theta: np.ndarray) -> np.ndarray:
        out = []
        for probs, combine in zip(problems, combiners):
            out.extend(combine([_means(p, theta, equation) for p in probs]))
        return np.concatenate(out)

    by = None if over is None else [lev for lev, _ in groups]
    if hasattr(res, "theta_draws"):
        draws = res._flat_theta
        if max_draws is not None and draws.shape[0] > max_draws:
            draws = draws[np.linspace(0, draws.shape[0] - 1, int(max_draws)).round().astype(int)]
        values = np.array([stats(t) for t in draws])
        summary = {
            "margin": values.mean(axis=0), "std_err": values.std(axis=0, ddof=1),
            "lower": np.quantile(values, alpha / 2, axis=0), "upper": np.quantile(values, 1 - alpha / 2, axis=0),
        }
        return _frame(summary, labels, res.k, by, over)
    value = stats(res.theta)
    jac = numerical_jacobian(stats, np.asarray(res.theta, dtype=float))
    se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", jac, res.cov_theta, jac), 0, None))
    z = ndtri(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = value / se
    summary = {"margin": value, "std_err": se, "z": stat, "p": 2 * ndtr(-np.abs(stat)),
               "lower": value - z * se, "upper": value + z * se}
    return _frame(summary, labels, res.k, by, over)
