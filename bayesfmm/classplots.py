"""More plots of a fitted mixture: rootogram, coefficients by class, class profiles, fitted
lines by class, and the marginal predictive density of a model with covariates.

Like :mod:`bayesfmm.plotting` (which re-exports these), every number drawn comes from the
results object (``predict``, ``params``, ``conf_int``, ``lcmean``); matplotlib is imported
only when a plot is made, and ``ax=`` draws into your own figure. Each function returns the
Axes. They take ML and Bayesian results alike.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from bayesfmm.errors import DataError, SpecificationError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "plot_rootogram", "plot_coefficients", "plot_class_profiles", "plot_fitted_lines", "plot_predictive_density",
]

def _headless() -> bool:
    if os.environ.get("MPLBACKEND"):
        return False
    if sys.platform.startswith("linux") or sys.platform.startswith("freebsd"):
        return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return False


def _new_axes() -> "Axes":
    """A fresh figure's axes; Agg when there is no display and pyplot is not yet loaded."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and _headless():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(7, 4.5))
    return ax


def _equation(res: Any, equation: str | None) -> str:
    responses = tuple(res.spec.responses)
    if equation is None:
        return responses[0]
    if equation not in responses:
        raise SpecificationError(
            f"equation {equation!r} is not a response of the model; responses: {responses}"
        )
    return equation


def _components_of(res: Any, equation: str) -> list[tuple[int, Any]]:
    """(0-based class, ComponentDesign) of every class that models ``equation``."""
    out = []
    for j, comps in enumerate(res.design.classes):
        for comp in comps:
            if comp.response == equation:
                out.append((j, comp))
    return out


_COUNT_FAMILIES = ("poisson", "nbinomial", "tpoisson", "binomial", "bernoulli", "logit", "probit", "cloglog", "pointmass")


def _data_or_sample(res: Any, data: pd.DataFrame | None, equation: str, what: str) -> pd.DataFrame:
    """The estimation data: ``data``, or (intercept-only models) a frame of the responses."""
    if data is not None:
        return data.loc[res.design.index] if data.index.isin(res.design.index).all() else data
    frame = {}
    for comps in res.design.classes:
        for comp in comps:
            frame.setdefault(comp.response, np.asarray(comp.y))
    names = [t for cd in res.design.class_designs if cd is not None for t in cd.terms if t != "Intercept"]
    names += [t for comps in res.design.classes for c in comps for terms in c.slot_terms for t in terms
              if t != "Intercept" and not t.startswith(("var(", "cut", "scale", "alpha", "delta"))]
    if names:
        raise SpecificationError(f"{what} of a model with covariates needs data=: the estimation data frame")
    return pd.DataFrame(frame, index=res.design.index)


def _response_values(res: Any, equation: str) -> np.ndarray:
    return np.asarray(_components_of(res, equation)[0][1].y, dtype=float)


def plot_rootogram(
    res: Any, data: pd.DataFrame | None = None, ax: "Axes | None" = None, equation: str | None = None,
    max_count: int | None = None,
) -> "Axes":
    """Hanging rootogram of a count response (flexmix/countreg ``rootogram``).

    For each count ``c = 0..max_count`` the expected frequency ``sum_i P(Y_i = c)`` under
    the fitted mixture is a red line with points on the square-root scale; the observed
    frequency is a bar hanging from it, so a bar that does not reach 0 (or crosses it)
    shows a misfit at that count.

    Parameters
    ----------
    res
        A fit whose ``equation`` is a count response.
    data
        The estimation data (needed when the model has covariates).
    max_count
        Largest count drawn (default: the largest observed count).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.plotting import plot_rootogram
    >>> fabric = bf.datasets.load("fabricfault")
    >>> res = bf.FMM("Faults ~ 1", family="poisson", k=2).fit(fabric)
    >>> ax = plot_rootogram(res)
    >>> len(ax.patches) == int(fabric.Faults.max()) + 1
    True
    """
    equation = _equation(res, equation)
    families = {comp.family.name for _, comp in _components_of(res, equation)}
    if not families <= set(_COUNT_FAMILIES):
        raise SpecificationError(f"a rootogram is for count responses; {equation!r} is modelled by {sorted(families)}")
    frame = _data_or_sample(res, data, equation, "plot_rootogram")
    y = _response_values(res, equation)
    top = int(np.max(y)) if max_count is None else int(max_count)
    counts = np.arange(top + 1)
    big = pd.concat([frame.assign(**{equation: c}) for c in counts], ignore_index=True)
    density = res.predict(data=big, kind="density", marginal=True, equation=equation).to_numpy()
    expected = density.reshape(counts.size, -1).sum(axis=1)
    observed = np.array([(y == c).sum() for c in counts], dtype=float)
    if ax is None:
        ax = _new_axes()
    root_e, root_o = np.sqrt(expected), np.sqrt(observed)
    ax.bar(counts, root_o, bottom=root_e - root_o, width=0.8, color="0.8", edgecolor="0.5", label="observed")
    ax.plot(counts, root_e, color="C3", marker="o", markersize=3, linewidth=1.5, label="expected")
    ax.axhline(0, color="0.2", linewidth=0.8)
    ax.set_xlabel(equation)
    ax.set_ylabel("sqrt(Frequency)")
    if not ax.get_title():
        ax.set_title(f"Hanging rootogram: {res.k}-class mixture of {equation}")
    ax.legend(fontsize="small", frameon=False)
    return ax


def plot_coefficients(
    res: Any, ax: "Axes | None" = None, terms: Sequence[str] | None = None, alpha: float = 0.05,
    include_intercept: bool = False,
) -> "Axes":
    """Coefficients of the component models by class, with their intervals.

    One row per (equation, term) on the y axis, one point with an interval per class
    (shifted slightly so classes do not overlap); auxiliary parameters are left out.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.plotting import plot_coefficients
    >>> res = bf.FMM("Faults ~ log(Length)", family="poisson", k=2).fit(bf.datasets.load("fabricfault"))
    >>> [t.get_text() for t in plot_coefficients(res).get_yticklabels()]
    ['Faults: log(Length)']
    """
    params, ci = res.params, res.conf_int(alpha)
    aux = np.asarray(res.layout.is_aux())
    keep = [
        i for i, (_, eq, term) in enumerate(params.index)
        if not aux[i] and eq != "Class" and (include_intercept or term != "Intercept") and (terms is None or term in terms)
    ]
    if not keep:
        raise SpecificationError("no coefficients to plot: the model has no regressors (include_intercept=True shows intercepts)")
    rows = list(dict.fromkeys((params.index[i][1], params.index[i][2]) for i in keep))
    if ax is None:
        ax = _new_axes()
    offsets = np.linspace(-0.2, 0.2, res.k) if res.k > 1 else np.zeros(1)
    for n, j in enumerate(range(1, res.k + 1)):
        mine = [i for i in keep if params.index[i][0] == j]
        if not mine:
            continue
        pos = np.array([rows.index((params.index[i][1], params.index[i][2])) for i in mine]) + offsets[n]
        value = params.iloc[mine].to_numpy()
        lower, upper = ci["lower"].iloc[mine].to_numpy(), ci["upper"].iloc[mine].to_numpy()
        ax.errorbar(value, pos, xerr=[value - lower, upper - value], fmt="o", color=f"C{n + 1}", capsize=3,
                    label=f"class {j}")
    ax.axvline(0, color="0.5", linewidth=0.8, linestyle=":")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{eq}: {term}" for eq, term in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"Coefficient ({int(round(100 * (1 - alpha)))}% interval)")
    if not ax.get_title():
        ax.set_title("Coefficients by class")
    ax.legend(fontsize="small", frameon=False)
    return ax


def plot_class_profiles(res: Any, ax: "Axes | None" = None, standardize: bool = False) -> "Axes":
    """Class profiles: the mean of each response within each class (``lcmean()``), one
    line per class across the responses (latent profile analysis).

    ``standardize=True`` divides each response's class means by the response's sample
    standard deviation, for responses on different scales.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.plotting import plot_class_profiles
    >>> model = bf.FMM([bf.Component("eruptions ~ 1"), bf.Component("waiting ~ 1")], k=2)
    >>> res = model.fit(bf.datasets.load("faithful"))
    >>> len(plot_class_profiles(res, standardize=True).lines)
    2
    """
    means = res.lcmean()["margin"]
    responses = list(dict.fromkeys(means.index.get_level_values("equation")))
    scale = {r: 1.0 for r in responses}
    if standardize:
        for r in responses:
            scale[r] = float(np.std(_response_values(res, r), ddof=1)) or 1.0
    if ax is None:
        ax = _new_axes()
    for n, j in enumerate(range(1, res.k + 1)):
        values = [means.get((j, r), np.nan) / scale[r] for r in responses]
        ax.plot(range(len(responses)), values, marker="o", color=f"C{n + 1}", label=f"class {j}")
    ax.set_xticks(range(len(responses)))
    ax.set_xticklabels(responses)
    ax.set_ylabel("Class mean / sd" if standardize else "Class mean")
    if not ax.get_title():
        ax.set_title("Class profiles")
    ax.legend(fontsize="small", frameon=False)
    return ax


def plot_fitted_lines(
    res: Any, data: pd.DataFrame, x: str | None = None, ax: "Axes | None" = None, equation: str | None = None,
    points: int = 200,
) -> "Axes":
    """The response against its one regressor, points coloured by modal class, with each
    class's fitted mean ``mu_j(x)`` drawn over the data's range of ``x``.

    For models with one continuous regressor (it may appear through transformations such
    as ``log(x)``, and in the class model too).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.plotting import plot_fitted_lines
    >>> npreg = bf.datasets.load("NPreg")
    >>> res = bf.FMM("yn ~ x", k=2).fit(npreg)
    >>> len(plot_fitted_lines(res, npreg).lines)
    2
    """
    from formulaic import Formula

    equation = _equation(res, equation)
    formulas = [c.formula for c in res.spec.components] + [c.lcprob for c in res.spec.components if c.lcprob]
    formulas += [res.spec.lcprob] if res.spec.lcprob else []
    variables = set()
    for f in formulas:
        parsed = Formula(f)
        variables |= set(parsed.rhs.required_variables if hasattr(parsed, "rhs") else parsed.required_variables)
    variables -= {"np", "log", "exp", "sqrt"}
    if x is None:
        if len(variables) != 1:
            raise SpecificationError(
                f"plot_fitted_lines is for one-regressor models; this one uses {sorted(variables) or 'none'}"
            )
        x = next(iter(variables))
    elif variables - {x}:
        raise SpecificationError(f"the model uses {sorted(variables - {x})} besides {x!r}: fitted lines need one regressor")
    if x not in data.columns:
        raise DataError(f"column {x!r} is not in the data")
    frame = data.loc[res.design.index]
    grid = np.linspace(float(frame[x].min()), float(frame[x].max()), points)
    curve = res.predict(data=pd.DataFrame({x: grid}), kind="mu", equation=equation)
    modal = res.predict(kind="classposteriorpr").to_numpy().argmax(axis=1)
    if ax is None:
        ax = _new_axes()
    y = _response_values(res, equation)
    for n, j in enumerate(range(1, res.k + 1)):
        rows = modal == n
        ax.scatter(frame[x].to_numpy()[rows], y[rows], s=8, alpha=0.5, color=f"C{n + 1}")
        column = curve[j].to_numpy()
        if not np.all(np.isnan(column)):
            ax.plot(grid, column, color=f"C{n + 1}", linewidth=2, label=f"class {j}")
    ax.set_xlabel(x)
    ax.set_ylabel(equation)
    if not ax.get_title():
        ax.set_title(f"Fitted {equation} by class")
    ax.legend(fontsize="small", frameon=False)
    return ax


def plot_predictive_density(
    res: Any, data: pd.DataFrame | None = None, ax: "Axes | None" = None, equation: str | None = None,
    grid: int | Sequence[float] = 120, bins: int | str = "auto",
) -> "Axes":
    """The marginal predictive density of the response, averaged over the rows,
    ``f(y) = mean_i sum_j pi_ij f_j(y | x_i)``, over a density histogram of the data.

    This is the density plot for models with covariates (each row has its own mixture
    density; their average is what the histogram estimates).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.plotting import plot_predictive_density
    >>> npreg = bf.datasets.load("NPreg")
    >>> res = bf.FMM("yn ~ x", k=2).fit(npreg)
    >>> len(plot_predictive_density(res, npreg).lines)
    1
    """
    equation = _equation(res, equation)
    frame = _data_or_sample(res, data, equation, "plot_predictive_density") if data is None else data.loc[res.design.index]
    y = _response_values(res, equation)
    if isinstance(grid, (int, np.integer)):
        lo, hi = float(np.min(y)), float(np.max(y))
        pad = 0.05 * (hi - lo)
        values = np.linspace(lo - pad if lo - pad > 0 or lo <= 0 else lo / 2, hi + pad, int(grid))
    else:
        values = np.sort(np.asarray(grid, dtype=float))
    big = pd.concat([frame.assign(**{equation: v}) for v in values], ignore_index=True)
    density = res.predict(data=big, kind="density", marginal=True, equation=equation).to_numpy()
    curve = density.reshape(values.size, -1).mean(axis=1)
    if ax is None:
        ax = _new_axes()
    ax.hist(y, bins=bins, density=True, color="0.85", edgecolor="0.6", linewidth=0.5, label=f"{equation} (n = {y.size})")
    ax.plot(values, curve, color="C0", linewidth=2, label="marginal predictive density")
    ax.set_xlabel(equation)
    ax.set_ylabel("Density")
    if not ax.get_title():
        ax.set_title(f"{res.k}-class mixture of {equation}, averaged over the rows")
    ax.legend(fontsize="small", frameon=False)
    return ax
