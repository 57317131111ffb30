"""Start values (Stata ``startvalues()``): class-membership weights or a parameter vector per
draw, from which EM starts.

=============================  ===========================================  ==============================
``startvalues=``               what it does                                 Stata
=============================  ===========================================  ==============================
``"default"`` (``"factor"``)   rows split into ``k`` equal groups by        ``startvalues(factor)`` (a
                               quantiles of the first response's residual   deterministic stand-in)
                               from a 1-class fit, then one M-step
``("classid", "col")``         class of each row from a column of labels    ``startvalues(classid col)``
                               1..k, then one M-step
``("classpr", "p1", ...)``     class probabilities from k columns           ``startvalues(classpr p1 ...)``
                               (row-normalised), then one M-step
``"randomid"``                 each row in a class drawn uniformly          ``startvalues(randomid)``
``"randompr"``                 each row's class probabilities drawn         ``startvalues(randompr)``
                               uniformly on the simplex
``("jitter", c, v)``           the default start, randomly perturbed        ``startvalues(jitter c v)``
``"zero"``                     class logits and coefficients 0, auxiliary   ``startvalues(zero)``
                               parameters at their 1-class values
=============================  ===========================================  ==============================

Random methods (``randomid``, ``randompr``, ``jitter``) take ``draws=`` and ``seed=``; the
caller runs EM from each draw and keeps the one with the best EM log likelihood.
``"default"`` and ``"factor"`` are the same start here; ``fit()`` follows ``"default"``
(only) with its search for a better maximum (:mod:`bayesfmm.ml.search`).

``jitter`` perturbation (Stata documents the magnitudes, not the distribution; this is
ours): with ``z ~ N(0, 1)`` independently for every parameter, a regression coefficient
moves by ``c * z * scale`` where ``scale`` is its standard deviation in a 1-class fit times
``sqrt(n)`` (the spread of the response in the coefficient's own units, so the result does
not depend on how variables are scaled), a class logit by ``c * z``, and an auxiliary
parameter (log variance, log scale) by ``v * z`` on its unconstrained scale, that is, a
variance is multiplied by ``exp(v z)``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from bayesfmm.errors import DataError, SpecificationError, rows_text
from bayesfmm.likelihood import MixtureProblem, component_etas
from bayesfmm.ml.em import _slot_offsets, m_step, weighted_component_fit
from bayesfmm.ml.start_mv import kmeans_weights
from bayesfmm.names import param_label
from bayesfmm.ops import NUMPY_OPS

__all__ = [
    "START_METHODS",
    "RANDOM_METHODS",
    "StartSpec",
    "parse_startvalues",
    "one_class_fit",
    "start_points",
    "start_weights",
    "theta_from_weights",
    "theta_from_params",
    "param_label",
]

START_METHODS = ("default", "factor", "classid", "classpr", "randomid", "randompr", "jitter", "zero")
RANDOM_METHODS = ("randomid", "randompr", "jitter")
COLUMN_METHODS = ("classid", "classpr")


@dataclass(frozen=True)
class StartSpec:
    """A parsed ``startvalues=`` option."""

    method: str
    columns: tuple[str, ...] = ()
    jitter: tuple[float, float] = (1.0, 1.0)

    @property
    def random(self) -> bool:
        return self.method in RANDOM_METHODS

    @property
    def label(self) -> str:
        """Stata-like description: ``classid g``, ``jitter 1 1``."""
        if self.method in COLUMN_METHODS:
            return f"{self.method} {' '.join(self.columns)}"
        if self.method == "jitter":
            return f"jitter {self.jitter[0]:g} {self.jitter[1]:g}"
        return self.method


_USAGE = (
    "startvalues takes 'default', 'randomid', 'randompr', 'zero', 'jitter', "
    "('jitter', c, v), ('classid', 'column') or ('classpr', 'p1', 'p2', ...)"
)


def _magnitude(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise SpecificationError(f"startvalues jitter {what} magnitude must be a non-negative number, got {value!r}")
    return float(value)


def parse_startvalues(value: Any) -> StartSpec:
    """Parse ``startvalues=``: a method name, or a tuple ``(method, arguments...)``.

    Examples
    --------
    >>> parse_startvalues(("classid", "g")).label
    'classid g'
    >>> parse_startvalues(("jitter", 0.5)).jitter
    (0.5, 1.0)
    """
    if isinstance(value, str):
        method, args = value, ()
    elif isinstance(value, (tuple, list)) and value and isinstance(value[0], str):
        method, args = value[0], tuple(value[1:])
    else:
        raise SpecificationError(f"{_USAGE}; got {value!r}")
    if method == "factor":
        method = "default"
    if method not in START_METHODS:
        close = difflib.get_close_matches(method, START_METHODS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecificationError(
            f"startvalues={method!r} is not a start method{hint}; choose from {', '.join(START_METHODS)}"
        )
    if method in COLUMN_METHODS:
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = tuple(args[0])
        if not args or not all(isinstance(a, str) for a in args):
            example = "('classid', 'g')" if method == "classid" else "('classpr', 'p1', 'p2', 'p3')"
            raise SpecificationError(f"startvalues {method!r} needs column name(s): startvalues={example}")
        if method == "classid" and len(args) != 1:
            raise SpecificationError(f"startvalues 'classid' takes one column, got {list(args)}")
        return StartSpec(method, columns=tuple(args))
    if method == "jitter":
        if len(args) > 2:
            raise SpecificationError(f"startvalues ('jitter', c, v) takes at most two magnitudes, got {list(args)}")
        c = _magnitude(args[0], "coefficient") if len(args) > 0 else 1.0
        v = _magnitude(args[1], "variance") if len(args) > 1 else 1.0
        return StartSpec(method, jitter=(c, v))
    if args:
        raise SpecificationError(f"startvalues {method!r} takes no arguments, got {list(args)}")
    return StartSpec(method)


def one_class_fit(problem: MixtureProblem) -> np.ndarray:
    """Every class set to the pooled (1-class) fit and equal class probabilities."""
    theta = np.zeros(problem.layout.size)
    ones = np.ones(problem.n) if problem.row_weights is None else problem.row_weights
    cache: dict[int, list[np.ndarray]] = {}
    for j, comps in enumerate(problem.design.classes):
        for c, comp in enumerate(comps):
            blocks = [problem.layout.slot_block(j + 1, c, s) for s in range(len(comp.slot_designs))]
            if id(comp) not in cache:
                current = [np.zeros(b.size) for b in blocks]
                if comp.family.start_linear is not None:
                    linear = iter(comp.family.start_linear(comp.y, comp.slot_designs, _slot_offsets(comp), ones, comp.extra))
                    for b, slot in enumerate(comp.family.slots):
                        if slot.linear:
                            current[b] = np.asarray(next(linear), dtype=float)
                aux = iter(comp.family.start_aux(comp.y, ones))
                for b, slot in zip(range(len(blocks)), comp.family.slots):
                    if not slot.linear:
                        current[b] = np.array([next(aux)])
                cache[id(comp)] = weighted_component_fit(comp, ones, current, steps=25)
            for b, value in zip(blocks, cache[id(comp)]):
                theta[b.slice] = value
    return theta


def _quantile_weights(problem: MixtureProblem, pooled: np.ndarray) -> np.ndarray:
    comp = problem.design.classes[0][0]
    etas = component_etas(problem, pooled)[0][0]
    if np.ndim(comp.y) == 2:  # several responses (mvnormal): k-means++ on the residuals
        return kmeans_weights(comp.y - comp.family.mean(etas, NUMPY_OPS, comp.extra), problem.k)
    fitted = np.asarray(comp.family.mean(etas, NUMPY_OPS, comp.extra)) * np.ones(problem.n)
    residual = comp.y - fitted
    if not np.all(np.isfinite(residual)):
        # no finite mean (a loglogistic with scale >= 1): rank by the pooled fit's cdf
        residual = np.asarray(comp.family.cdf(comp.y, etas, NUMPY_OPS, comp.extra)) * np.ones(problem.n)
    k = problem.k
    cuts = np.quantile(residual, np.arange(1, k) / k)
    if np.isnan(cuts).any():
        labels = np.searchsorted(cuts, residual, side="right")
    else:  # the same labels (the number of cuts <= each residual) in k - 1 passes, no search
        labels = np.zeros(problem.n, dtype=np.intp)
        for cut in cuts:
            labels += residual >= cut
    if np.bincount(labels, minlength=k).min() == 0:
        # Tied residuals (counts with many zeros, a point mass) can leave a class empty:
        # split by rank instead, ties kept in row order, into k groups of equal size.
        ranks = np.empty(problem.n, dtype=int)
        ranks[np.argsort(residual, kind="stable")] = np.arange(problem.n)
        labels = ranks * k // problem.n
    return np.eye(k)[labels]


def classid_weights(values: np.ndarray, k: int, column: str, index: pd.Index) -> np.ndarray:
    """One-hot weights (n x k) from class labels 1..k; every class must appear."""
    values = np.asarray(values, dtype=float)
    bad = np.flatnonzero(~np.isin(values, np.arange(1, k + 1)))
    if bad.size:
        raise DataError(
            f"classid column {column!r} must hold class numbers 1..{k}; rows {rows_text(index, bad)} "
            f"hold {values[bad[:5]].tolist()}"
        )
    labels = values.astype(int) - 1
    absent = sorted(set(range(1, k + 1)) - set((labels + 1).tolist()))
    if absent:
        raise DataError(f"classid column {column!r} has no row in class(es) {absent}: every class needs rows to start")
    return np.eye(k)[labels]


def classpr_weights(values: np.ndarray, k: int, columns: Sequence[str], index: pd.Index) -> np.ndarray:
    """Class probabilities (n x k) from k non-negative columns, normalised within each row."""
    if len(columns) != k:
        raise SpecificationError(
            f"startvalues 'classpr' needs one column per class: k={k} but {len(columns)} column(s) "
            f"{list(columns)} were given"
        )
    values = np.asarray(values, dtype=float)
    bad = np.flatnonzero(np.any(values < 0, axis=1))
    if bad.size:
        raise DataError(
            f"classpr columns {list(columns)} must be non-negative; rows {rows_text(index, bad)} hold negative values"
        )
    totals = values.sum(axis=1)
    bad = np.flatnonzero(totals <= 0)
    if bad.size:
        raise DataError(f"classpr columns {list(columns)} sum to 0 in rows {rows_text(index, bad)}: nothing to normalise")
    return values / totals[:, None]


def zero_start(problem: MixtureProblem, pooled: np.ndarray) -> np.ndarray:
    """Class logits and coefficients 0; auxiliary parameters at their 1-class values."""
    theta = np.zeros(problem.layout.size)
    aux = problem.layout.is_aux()
    theta[aux] = pooled[aux]
    return theta


def jitter_scales(problem: MixtureProblem, pooled: np.ndarray) -> np.ndarray:
    """Per-parameter perturbation scale of ``jitter``: a coefficient's 1-class standard
    deviation times ``sqrt(n)``; 1 for class logits and auxiliary parameters."""
    scale = np.ones(problem.layout.size)
    etas = component_etas(problem, pooled)
    cache: dict[tuple[int, int], np.ndarray] = {}
    for j, comps in enumerate(problem.design.classes):
        for c, comp in enumerate(comps):
            derivs = None
            for s, slot in enumerate(comp.family.slots):
                if not slot.linear:
                    continue
                key = (id(comp), s)
                if key not in cache:
                    if derivs is None:
                        with np.errstate(all="ignore"):
                            derivs = comp.family.derivatives(comp.y, etas[j][c], comp.extra)
                    X = comp.slot_designs[s]
                    weight = -np.asarray(derivs[1][s, s], dtype=float) * np.ones(problem.n)
                    info = X.T @ (weight[:, None] * X)
                    try:
                        var = np.diag(np.linalg.inv(info)) * problem.n
                        ok = bool(np.all(np.isfinite(var)) and np.all(var > 0))
                    except np.linalg.LinAlgError:
                        ok = False
                    cache[key] = np.sqrt(var) if ok else np.ones(X.shape[1])
                scale[problem.layout.slot_block(j + 1, c, s).slice] = cache[key]
    return scale


def start_weights(
    problem: MixtureProblem, method: str, draws: int, rng: np.random.Generator, pooled: np.ndarray
) -> list[np.ndarray]:
    """Class-membership weights (n x k) of ``default``, ``randomid`` or ``randompr``, per draw."""
    n, k = problem.n, problem.k
    if method in ("default", "factor"):
        return [_quantile_weights(problem, pooled)]
    if method == "randomid":
        return [np.eye(k)[rng.integers(0, k, size=n)] for _ in range(draws)]
    if method == "randompr":
        return [rng.dirichlet(np.ones(k), size=n) for _ in range(draws)]
    raise SpecificationError(f"start_weights does not handle startvalues={method!r}")


def _per_unit(problem: MixtureProblem, weights: np.ndarray) -> np.ndarray:
    """With ``group=``, class-membership weights averaged within each group (a group is in
    one class); the rows' own weights otherwise."""
    groups = problem.design.groups
    if groups is None:
        return weights
    means = groups.sum_rows(weights) / groups.sizes[:, None]
    return means[groups.codes]


def _random_units(problem: MixtureProblem, draw) -> np.ndarray:
    """Random class-membership weights drawn per likelihood unit (row or group)."""
    groups = problem.design.groups
    values = draw(problem.design.n_units)
    return values if groups is None else values[groups.codes]


def theta_from_weights(problem: MixtureProblem, weights: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """One M-step from class-membership weights, starting from the pooled fit."""
    return m_step(problem, _per_unit(problem, weights), pooled)


def start_points(
    problem: MixtureProblem,
    spec: StartSpec,
    draws: int,
    rng: np.random.Generator,
    pooled: np.ndarray,
    columns: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Starting parameter vectors, one per draw (lazily: EM runs between two draws).

    ``columns`` holds the estimation rows of the ``classid`` column (n,) or the ``classpr``
    columns (n x k).
    """
    k = problem.k
    index = problem.design.index
    method = spec.method
    if method == "default":
        yield theta_from_weights(problem, _quantile_weights(problem, pooled), pooled)
    elif method == "classid":
        yield theta_from_weights(problem, classid_weights(columns, k, spec.columns[0], index), pooled)
    elif method == "classpr":
        yield theta_from_weights(problem, classpr_weights(columns, k, spec.columns, index), pooled)
    elif method == "zero":
        yield zero_start(problem, pooled)
    elif method == "randomid":
        for _ in range(draws):
            weights = _random_units(problem, lambda size: np.eye(k)[rng.integers(0, k, size=size)])
            yield theta_from_weights(problem, weights, pooled)
    elif method == "randompr":
        for _ in range(draws):
            weights = _random_units(problem, lambda size: rng.dirichlet(np.ones(k), size=size))
            yield theta_from_weights(problem, weights, pooled)
    elif method == "jitter":
        base = theta_from_weights(problem, _quantile_weights(problem, pooled), pooled)
        aux = problem.layout.is_aux()
        scale = jitter_scales(problem, pooled)
        magnitude = np.where(aux, spec.jitter[1], spec.jitter[0])
        for _ in range(draws):
            yield base + magnitude * scale * rng.standard_normal(base.size)
    else:  # pragma: no cover - parse_startvalues rejects the rest
        raise SpecificationError(f"startvalues={method!r} is not a start method")




def theta_from_params(layout, values: Any, fill: np.ndarray | None = None) -> np.ndarray:
    """``from_=``: a params Series (reported scale, ``res.params`` layout) -> ``theta``.

    With ``fill`` (a ``theta``; ``startvalues="zero"``) the Series may give some parameters
    only; the others take their value in ``fill``.

    Raises :class:`~bayesfmm.errors.SpecificationError` naming missing and unknown
    parameters, or values outside a parameter's range (a variance <= 0).
    """
    if isinstance(values, pd.DataFrame) and values.shape[1] == 1:
        values = values.iloc[:, 0]
    if not isinstance(values, pd.Series):
        raise SpecificationError(
            "from_ must be a pandas Series indexed like res.params (class, equation, term); "
            f"got {type(values).__name__}"
        )
    expected = list(layout.index)
    if not isinstance(values.index, pd.MultiIndex) or values.index.nlevels != 3:
        raise SpecificationError(
            "from_ must be indexed like res.params: a (class, equation, term) MultiIndex, e.g. "
            f"{param_label(expected[0])}; got an index of {values.index.nlevels} level(s)"
        )
    given = list(values.index)
    duplicated = sorted({param_label(g) for g in given if given.count(g) > 1})
    if duplicated:
        raise SpecificationError(f"from_ names parameters more than once: {', '.join(duplicated)}")
    missing = [param_label(e) for e in expected if e not in set(given)] if fill is None else []
    extra = [param_label(g) for g in given if g not in set(expected)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            names = [param_label(e) for e in expected]
            hints = [f"{x} (close: {', '.join(difflib.get_close_matches(x, names, n=2)) or 'none'})" for x in extra]
            parts.append(f"not in the model {', '.join(hints)}")
        raise SpecificationError(
            "from_ does not have the model's parameter layout: " + "; ".join(parts)
            + ". Start from res.params of the same model, or fit(noestimate=True)."
        )
    reported = values.reindex(layout.index).to_numpy(dtype=float, copy=True)
    if fill is not None:
        absent = ~layout.index.isin(values.index)
        reported[absent] = layout.to_report(fill)[absent]
    bad = [param_label(expected[i]) for i in np.flatnonzero(~np.isfinite(reported))]
    if bad:
        raise SpecificationError(f"from_ values must be finite; {', '.join(bad)} are not")
    with np.errstate(all="ignore"):
        theta = layout.from_report(reported)
    bad = [param_label(expected[i]) for i in np.flatnonzero(~np.isfinite(theta))]
    if bad:
        raise SpecificationError(f"from_ values outside their range (a variance or scale must be > 0): {', '.join(bad)}")
    return theta
