"""The response simulator: draws from the mixture at a parameter vector.

:func:`simulate_responses` is the one simulator of the package. Each likelihood unit first
draws its latent class from the class probabilities (per row when the class model has
covariates; per group, shared by its rows, with ``group=``), then each response from its
component in that class. A family that defines ``sample(etas, rng, extra)`` (the optional
hook of :class:`~bayesfmm.families.base.Family`, one draw per row) is used as is; otherwise
the draw inverts the family's ``cdf`` (which every family has) by bisection: over the
integers when the family's support rejects half-integers of the observed responses (a
count or binary family), over the reals otherwise. No family is named here.

It serves :func:`simulate` (``bf.simulate``, the parametric bootstrap), the posterior and
prior predictive draws and the ``random`` of the PyMC model (:mod:`bayesfmm.bayes.predictive`)
and simulation-based calibration (:mod:`bayesfmm.bayes.sbc`). Covariates stay as they are:
the simulation is conditional on the design, as in flexmix's ``rflexmix`` and Stata's
parametric bootstrap.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from bayesfmm.design import design_for_new_data
from bayesfmm.errors import DataError, SpecificationError
from bayesfmm.likelihood import MixtureProblem, class_log_probs, component_etas
from bayesfmm.ops import NUMPY_OPS

__all__ = [
    "simulate",
    "simulate_responses",
    "draw_responses",
    "draw_classes",
    "inverse_cdf_draw",
    "response_columns",
]

MAX_BRACKET_STEPS = 80
MAX_BISECTIONS = 200


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


def _rows_of(value: Any, rows: np.ndarray, n: int) -> Any:
    arr = np.asarray(value)
    return arr[rows] if arr.ndim >= 1 and arr.shape[0] == n else value


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

    Examples
    --------
    >>> import bayesfmm as bf
    >>> fam = bf.get_family("gaussian")
    >>> u = np.array([0.025, 0.975])
    >>> inverse_cdf_draw(fam, [np.zeros(2), np.zeros(2)], {}, u, np.array([-1.0, 1.0]), False).round(4).tolist()
    [-1.96, 1.96]
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


def component_columns(comp) -> tuple[str, ...]:
    """The data columns of a component's response: its name, or for a response of several
    columns (``"y1 + y2 ~ 1"``, family ``mvnormal``) the family's response names (else
    ``response[i]``)."""
    y = np.asarray(comp.y)
    if y.ndim < 2:
        return (comp.response,)
    names = tuple(comp.family.options.get("responses", ())) if hasattr(comp.family, "options") else ()
    return names if len(names) == y.shape[1] else tuple(f"{comp.response}[{i}]" for i in range(y.shape[1]))


def response_columns(problem: MixtureProblem) -> tuple[str, ...]:
    """The columns of a simulated data set, in ``spec.responses`` order: one per response,
    ``d`` for a response of ``d`` columns (``mvnormal``: the response names).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.design import build_design
    >>> from bayesfmm.params import build_layout
    >>> design = build_design(bf.FMM("eruptions + waiting ~ 1", family="mvnormal", k=2), bf.datasets.load("faithful"))
    >>> response_columns(MixtureProblem.build(design, build_layout(design)))
    ('eruptions', 'waiting')
    """
    found: dict[str, tuple[str, ...]] = {}
    for comps in problem.design.classes:
        for comp in comps:
            found.setdefault(comp.response, component_columns(comp))
    return tuple(col for name in problem.design.spec.responses for col in found.get(name, (name,)))


def _column_slices(problem: MixtureProblem) -> dict[str, slice]:
    """Response name -> its columns in :func:`response_columns`."""
    out, start = {}, 0
    found = {comp.response: len(component_columns(comp)) for comps in problem.design.classes for comp in comps}
    for name in problem.design.spec.responses:
        width = found.get(name, 1)
        out[name] = slice(start, start + width)
        start += width
    return out


def _component_draws(comp, etas: list, rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """One draw of ``comp``'s response for each of ``rows`` (its ``sample``, or its CDF
    inverted): ``rows.size`` values, or ``rows.size x d`` for a response of ``d`` columns."""
    row_etas = [np.broadcast_to(np.asarray(e, dtype=float), (n,))[rows] for e in etas]
    row_extra = {key: _rows_of(value, rows, n) for key, value in comp.extra.items()}
    family = comp.family
    if callable(family.sample):
        values = family.sample(row_etas, rng, row_extra)
    else:
        u = np.clip(rng.random(rows.size), 1e-300, 1.0)
        discrete = _is_discrete(family, comp.y, comp.extra)
        values = inverse_cdf_draw(family, row_etas, row_extra, u, comp.y, discrete)
    values = np.asarray(values, dtype=float)
    if values.ndim == 2:  # several responses (mvnormal): one row of d draws per unit
        return np.broadcast_to(values, (rows.size, values.shape[1]))
    return np.broadcast_to(values, (rows.size,))


def _check_one_component_per_response(problem: MixtureProblem) -> None:
    for j, comps in enumerate(problem.design.classes):
        seen: set[str] = set()
        for comp in comps:
            if comp.response in seen:
                raise SpecificationError(
                    f"class {j + 1} has two components for response {comp.response!r}: cannot simulate it"
                )
            seen.add(comp.response)


def simulate_responses(
    problem: MixtureProblem, theta: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One draw of every response for every row at ``theta``, and the classes drawn.

    Parameters
    ----------
    problem
        The mixture problem (design and layout); its covariates are held fixed.
    theta
        A parameter vector in the layout's order.
    rng
        The random generator; the draws are a function of ``(problem, theta, rng)`` only.

    Returns
    -------
    (y, classes)
        ``y`` an array (n, responses), the columns in ``problem.design.spec.responses``
        order; ``classes`` the 0-based class of each row (with ``group=``, the same for all
        rows of a group).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.design import build_design
    >>> from bayesfmm.params import build_layout
    >>> design = build_design(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))
    >>> problem = MixtureProblem.build(design, build_layout(design))
    >>> theta = np.array([0.0, 0.07, -12.0, 0.1, -12.0])
    >>> y, classes = simulate_responses(problem, theta, np.random.default_rng(0))
    >>> y.shape, bool(np.all((y[:, 0] > 0.085) == (classes == 1)))
    ((485, 1), True)
    """
    theta = np.asarray(theta, dtype=float)
    _check_one_component_per_response(problem)
    n = problem.n
    with np.errstate(under="ignore"):
        prob = np.exp(class_log_probs(problem, theta))
    groups = problem.design.groups
    if groups is None:
        classes = draw_classes(prob, rng)
    else:  # group=: one class per group, shared by its rows
        classes = draw_classes(prob[groups.first], rng)[groups.codes]
    etas = component_etas(problem, theta)
    where = _column_slices(problem)
    out = np.full((n, where[problem.design.spec.responses[-1]].stop), np.nan)
    for j, comps in enumerate(problem.design.classes):
        rows = np.flatnonzero(classes == j)
        if rows.size == 0:
            continue
        for c, comp in enumerate(comps):
            draws = _component_draws(comp, etas[j][c], rows, n, rng)
            out[rows, where[comp.response]] = draws if draws.ndim == 2 else draws[:, None]
    return out, classes


def draw_responses(problem: MixtureProblem, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of every response for every row at ``theta``: an array (n, responses)
    (:func:`simulate_responses` without the classes).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.design import build_design
    >>> from bayesfmm.params import build_layout
    >>> design = build_design(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))
    >>> problem = MixtureProblem.build(design, build_layout(design))
    >>> draw_responses(problem, np.array([0.0, 0.07, -12.0, 0.1, -12.0]), np.random.default_rng(0)).shape
    (485, 1)
    """
    return simulate_responses(problem, theta, rng)[0]


def _problem(res, data: pd.DataFrame | None) -> MixtureProblem:
    if data is None:
        return res.problem
    design = design_for_new_data(res.design, data, need_response=False)
    return MixtureProblem.build(design, res.layout)


def _check_simulable(problem: MixtureProblem, data: pd.DataFrame | None) -> None:
    """``bf.simulate`` asks for a family's ``sample``: the CDF fallback needs observed
    responses to bracket its search, which new covariate data need not have."""
    _check_one_component_per_response(problem)
    for comps in problem.design.classes:
        for comp in comps:
            if comp.family.sample is None:
                raise SpecificationError(
                    f"family {comp.family.name!r} cannot simulate: it has no sample() function; "
                    "give its Family a sample=(etas, rng, extra) -> draws to simulate or bootstrap it"
                )
            absent = [col for col in component_columns(comp) if data is not None and col not in data.columns]
            if absent:
                raise SpecificationError(
                    f"simulate writes the draws of response {absent[0]!r} into a column of that "
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
    y, classes = simulate_responses(problem, res.theta, rng)
    draws = {name: y[:, r] for r, name in enumerate(response_columns(problem))}
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
