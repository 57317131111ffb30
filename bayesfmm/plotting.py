"""Plots of a fitted mixture: the density over a histogram, and posterior class probabilities.

Every number drawn comes from the results object (``res.predict``): no density is written
again here. Matplotlib is imported only when a plot is made. When no axes are given a new
figure is made with :mod:`matplotlib.pyplot`; on a machine without a display (no
``DISPLAY``/``WAYLAND_DISPLAY`` on Linux, no ``MPLBACKEND`` set, pyplot not yet imported) the
non-interactive Agg backend is selected first, so plotting on a server never fails for want of
a GUI. Pass ``ax=`` to draw into your own figure and leave the backend alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from bayesfmm.classplots import (  # noqa: F401  (the helpers live with the newer plots)
    _components_of,
    _equation,
    _headless,
    _new_axes,
    plot_class_profiles,
    plot_coefficients,
    plot_fitted_lines,
    plot_predictive_density,
    plot_rootogram,
)
from bayesfmm.errors import DataError, SpecificationError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "plot_mixture_density", "plot_class_posterior", "plot_rootogram", "plot_coefficients", "plot_class_profiles",
    "plot_fitted_lines", "plot_predictive_density",
]

_GRID_POINTS = 400
_PAD = 0.05  # fraction of the data range added on each side of the density grid


def _is_constant(X: np.ndarray) -> bool:
    return X.shape[1] == 0 or bool(np.all(X == X[:1]))


def _require_intercept_only(res: Any, equation: str, what: str) -> None:
    """Refuse a model whose class probabilities or ``equation`` densities vary by row."""
    covariates: list[str] = []
    for cd in res.design.class_designs:
        if cd is not None and not _is_constant(cd.Z):
            names = ", ".join(t for t in cd.terms if t != "Intercept")
            covariates.append(f"class probabilities ({names})")
            break
    seen: set[str] = set()
    for _, comp in _components_of(res, equation):
        terms = {
            term
            for X, names, slot in zip(comp.slot_designs, comp.slot_terms, comp.family.slots)
            if slot.linear and not _is_constant(X)
            for term in names
            if term != "Intercept"
        }
        if np.ptp(comp.offset) > 0:
            terms.add(f"offset {comp.component.offset}")
        formula = comp.component.formula
        if terms and formula not in seen:
            seen.add(formula)
            covariates.append(f"component {formula!r} ({', '.join(sorted(terms))})")
    if covariates:
        raise SpecificationError(
            f"{what} needs an intercept-only model (such as FMM('{equation} ~ 1', k=...)): "
            f"with covariates each row has its own mixture density, so one curve over the "
            f"histogram would not describe the data. Covariates found in: {'; '.join(covariates)}. "
            "Use plot_predictive_density(res, data) for the density averaged over the rows, or "
            "res.predict(kind='density') for row-wise densities."
        )


def _column_name(res: Any, equation: str) -> str:
    """The data column of ``equation``; the response must be a plain column name."""
    from formulaic import Formula

    comp = _components_of(res, equation)[0][1]
    variables = set(Formula(comp.component.formula).lhs.required_variables)
    if variables != {equation}:
        raise SpecificationError(
            f"the response {equation!r} is an expression of {sorted(variables)}; the density "
            "plot needs a response that is a column of the data (transform the column first)"
        )
    return equation


def _grid_frame(res: Any, equation: str, values: np.ndarray) -> pd.DataFrame:
    """A frame holding ``values`` as the response, other responses at an observed value."""
    column = _column_name(res, equation)
    frame = {column: values}
    for comps in res.design.classes:
        for comp in comps:
            if comp.response != equation and comp.response not in frame:
                frame[comp.response] = np.full(values.size, comp.y[0])
    return pd.DataFrame(frame)


def _default_grid(y: np.ndarray, points: int) -> list[np.ndarray]:
    """Grids to try, best first: the data range padded by 5% a side, then the bare range."""
    lo, hi = float(np.min(y)), float(np.max(y))
    pad = _PAD * (hi - lo) if hi > lo else max(abs(lo), 1.0) * _PAD
    padded_lo = lo - pad
    if lo > 0 and padded_lo <= 0:  # a positive response: stay inside the support
        padded_lo = lo / 2
    return [np.linspace(padded_lo, hi + pad, points), np.linspace(lo, hi, points)]


def _default_bins(y: np.ndarray) -> np.ndarray | int:
    """About ``max(auto, 2 sqrt(n))`` bins, whole steps wide when the data sit on a lattice.

    numpy's ``"auto"`` rule is tuned for unimodal data and smooths narrow mixture peaks
    away, hence the floor of ``2 sqrt(n)`` bins. Measurements recorded to a fixed precision
    (stamp's thickness, to 0.001 mm) give spiky histograms when a bin holds sometimes two
    recorded values and sometimes one; bins centred on the recorded values, a whole number
    of steps wide, avoid that.
    """
    count = max(np.histogram_bin_edges(y, "auto").size - 1, int(np.ceil(2 * np.sqrt(y.size))))
    values = np.unique(y)
    if values.size < 3:
        return count
    step = float(np.min(np.diff(values)))
    ratio = (values - values[0]) / step
    if not np.allclose(ratio, np.round(ratio), atol=1e-6) or ratio[-1] > 2000:
        return count
    width = step * max(1, int(np.ceil((values[-1] - values[0]) / (count * step) - 1e-9)))
    start = values[0] - step / 2
    return np.arange(start, values[-1] + width, width)


def plot_mixture_density(
    res: Any,
    ax: "Axes | None" = None,
    bins: int | Sequence[float] | str | None = None,
    equation: str | None = None,
    show_components: bool = True,
    label: str | None = None,
    *,
    grid: int | Sequence[float] | np.ndarray | None = None,
) -> "Axes":
    """Histogram of the response with the fitted mixture density drawn over it.

    The marginal density ``sum_j pi_j f_j(y)`` (``res.predict(kind="density",
    marginal=True)``) is drawn as a solid line and, with ``show_components``, each class's
    weighted density ``pi_j f_j(y)`` (``kind="classpr"`` times ``kind="density"``) as a
    dashed line, so the dashed lines add up to the solid one. The histogram is normalised
    to integrate to 1, on the density's scale.

    Parameters
    ----------
    res
        Results of :meth:`bayesfmm.FMM.fit` for an intercept-only model (no covariates
        in the class probabilities or in ``equation``'s components).
    ax
        Axes to draw into; default a new figure's axes.
    bins
        Histogram bins as :func:`numpy.histogram` takes them. Default: numpy's ``"auto"``
        rule, widened to whole steps and centred on the recorded values when the data are
        recorded to a fixed precision.
    equation
        Which response to plot (default: the first).
    show_components
        Also draw each class's weighted component density.
    label
        Legend label of the mixture density (default ``"3-class mixture"`` etc.).
    grid
        Where the densities are evaluated: a number of points (default 400) spread over
        the data range widened by 5% on each side, or an array of response values.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on: ``1 + k`` lines with components (mixture first), 1 without.

    Raises
    ------
    SpecificationError
        For a model with covariates, or an unknown ``equation``.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.plotting import plot_mixture_density
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
    >>> ax = plot_mixture_density(res)
    >>> len(ax.lines)
    4
    >>> ax.figure.savefig("stamp_density.png")  # doctest: +SKIP
    """
    equation = _equation(res, equation)
    _require_intercept_only(res, equation, "plot_mixture_density")
    y = _components_of(res, equation)[0][1].y

    if grid is None or isinstance(grid, (int, np.integer)):
        points = _GRID_POINTS if grid is None else int(grid)
        if points < 2:
            raise SpecificationError(f"grid must be at least 2 points, got {grid!r}")
        candidates = _default_grid(y, points)
    else:
        values = np.asarray(grid, dtype=float).ravel()
        if values.size < 2 or not np.all(np.isfinite(values)):
            raise SpecificationError("grid must hold at least 2 finite response values")
        candidates = [np.sort(values)]

    for i, values in enumerate(candidates):
        frame = _grid_frame(res, equation, values)
        try:
            mixture = res.predict(data=frame, kind="density", marginal=True, equation=equation)
        except DataError:
            # the padded grid left the family's support: fall back to the data range
            if i + 1 < len(candidates):
                continue
            raise
        break
    x = values
    mixture = mixture.to_numpy()

    if ax is None:
        ax = _new_axes()
    ax.hist(
        y,
        bins=_default_bins(y) if bins is None else bins,
        density=True,
        color="0.85",
        edgecolor="0.6",
        linewidth=0.5,
        label=f"{equation} (n = {y.size})",
    )
    ax.plot(x, mixture, color="C0", linewidth=2, label=label or f"{res.k}-class mixture")
    if show_components:
        density = res.predict(data=frame, kind="density", equation=equation)
        weights = res.predict(data=frame, kind="classpr")
        for n, j in enumerate(density.columns):
            column = density[j].to_numpy()
            if np.all(np.isnan(column)):
                continue  # this class does not model `equation` (hybrid syntax)
            pi = float(weights[j].iloc[0])
            ax.plot(
                x,
                pi * column,
                color=f"C{n + 1}",
                linewidth=1.2,
                linestyle="--",
                label=f"class {j}: $\\pi_{{{j}}} f_{{{j}}}(y)$, $\\pi_{{{j}}}$ = {pi:.3f}",
            )
    ax.set_xlabel(equation)
    ax.set_ylabel("Density")
    if not ax.get_title():
        ax.set_title(f"{res.k}-class mixture of {equation}")
    ax.legend(fontsize="small", frameon=False)
    return ax


def plot_class_posterior(res: Any, ax: "Axes | None" = None, equation: str | None = None) -> "Axes":
    """Posterior class probabilities (``classposteriorpr``) against the response.

    One line per class over the estimation sample, sorted by the response. In an
    intercept-only model the posterior is a function of the response alone, so the lines
    are smooth; with covariates each row has its own curve, so points are drawn instead.

    Parameters
    ----------
    res
        Results of :meth:`bayesfmm.FMM.fit`.
    ax
        Axes to draw into; default a new figure's axes.
    equation
        Which response goes on the x axis (default: the first).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on, with ``k`` lines.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.plotting import plot_class_posterior
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
    >>> len(plot_class_posterior(res).lines)
    3
    """
    equation = _equation(res, equation)
    try:
        _require_intercept_only(res, equation, "a line plot")
        style: dict[str, Any] = {"linestyle": "-", "linewidth": 1.5}
    except SpecificationError:
        style = {"linestyle": "none", "marker": ".", "markersize": 3}
    y = _components_of(res, equation)[0][1].y
    posterior = res.predict(kind="classposteriorpr")
    order = np.argsort(y, kind="stable")
    if ax is None:
        ax = _new_axes()
    for n, j in enumerate(posterior.columns):
        ax.plot(y[order], posterior[j].to_numpy()[order], color=f"C{n + 1}", label=f"class {j}", **style)
    ax.set_xlabel(equation)
    ax.set_ylabel("Posterior class probability")
    ax.set_ylim(-0.02, 1.02)
    if not ax.get_title():
        ax.set_title(f"Posterior class probabilities given {equation}")
    ax.legend(fontsize="small", frameon=False)
    return ax
