"""The mixture layer, written once against :class:`bayesfmm.ops.Ops`.

For likelihood unit ``u`` (a row, or a group of rows sharing one class with ``group=``)
the log likelihood is ``logsumexp_j(log pi_uj + sum_{i in u} sum_c log f_cj(y_ci))``, where
``log pi`` is the log-softmax of the class logits (base class at 0; with ``group=`` read on
a group's first row), and each unit counts ``weights=`` times. The same functions build it
with numpy (``NUMPY_OPS``: :func:`bayesfmm.likelihood.evaluate`, the ML engine) and as a
pytensor graph (:func:`bayesfmm.ops.pytensor_ops`: the PyMC model of
:mod:`bayesfmm.bayes.builder`), so the two cannot drift apart.

:class:`MixtureProblem` indexes every linear predictor ("eta") of a design and its
parameter layout once; everything else depends on the parameters only through the etas.

Examples
--------
>>> import numpy as np, bayesfmm as bf
>>> from bayesfmm.design import build_design
>>> from bayesfmm.params import build_layout
>>> from bayesfmm.ops import NUMPY_OPS
>>> design = build_design(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))
>>> problem = MixtureProblem.build(design, build_layout(design))
>>> terms = mixture_terms(problem, np.array([0.0, 0.07, -12.0, 0.1, -12.0]), NUMPY_OPS)
>>> terms.log_class_probs.round(4).tolist(), terms.ll_units.shape
([-0.6931, -0.6931], (485,))
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from typing import Any, Mapping, NamedTuple

import numpy as np

from bayesfmm.design import ComponentDesign, Design
from bayesfmm.families.base import without_response_terms
from bayesfmm.ops import NUMPY_OPS, Ops
from bayesfmm.params import ParamLayout

__all__ = [
    "Eta",
    "MixtureProblem",
    "MixtureTerms",
    "linear_predictor",
    "class_log_softmax",
    "component_etas",
    "component_log_density",
    "mixture_terms",
    "pointwise_loglike",
    "row_chunks",
    "impossible_rows",
    "ROW_CHUNK",
]


@dataclass(frozen=True, eq=False)
class Eta:
    """One linear predictor: its design, its parameter slice, and where it belongs."""

    kind: str  # "class" or "slot"
    class_: int  # 0-based
    component: int
    slot: int
    X: np.ndarray
    cols: slice
    intercept_only: bool
    offset: np.ndarray | None


@dataclass(frozen=True, eq=False)
class MixtureProblem:
    """A design and its layout, with every eta indexed once."""

    design: Design
    layout: ParamLayout
    etas: tuple[Eta, ...]

    @classmethod
    def build(cls, design: Design, layout: ParamLayout) -> "MixtureProblem":
        etas: list[Eta] = []
        for block in layout.class_blocks:
            Z = design.class_designs[block.class_ - 1].Z
            etas.append(Eta("class", block.class_ - 1, -1, -1, Z, block.slice, _is_ones(Z), None))
        for j, comps in enumerate(design.classes):
            for c, comp in enumerate(comps):
                for s, X in enumerate(comp.slot_designs):
                    block = layout.slot_block(j + 1, c, s)
                    linear = comp.family.slots[s].linear
                    offset = comp.offset if linear and np.any(comp.offset) else None
                    etas.append(Eta("slot", j, c, s, X, block.slice, _is_ones(X), offset))
        return cls(design=design, layout=layout, etas=tuple(etas))

    @property
    def n(self) -> int:
        return self.design.n

    @property
    def k(self) -> int:
        return self.design.k

    @property
    def grouped(self) -> bool:
        return self.design.groups is not None

    @property
    def row_weights(self) -> np.ndarray | None:
        """Per-row weights of the log likelihood (None: every row counts once)."""
        return self.design.weights

    def class_row_factor(self) -> np.ndarray | None:
        """Per-row factor of the class-model terms: the weight, divided by the group size
        with ``group=`` so that summing over a group's rows counts its class term once."""
        groups = self.design.groups
        w = self.design.weights
        if groups is None:
            return w
        factor = 1.0 / groups.sizes[groups.codes]
        return factor if w is None else factor * w


def _is_ones(X: np.ndarray) -> bool:
    return X.shape[1] == 1 and bool(np.all(X[:, 0] == 1.0))


def linear_predictor(eta: Eta, theta: Any, ops: Ops = NUMPY_OPS) -> Any:
    """``X beta (+ offset)``; a scalar for intercept-only designs without offset."""
    value = theta[eta.cols.start] if eta.intercept_only else ops.dot(eta.X, theta[eta.cols])
    if eta.offset is not None:
        value = value + eta.offset
    return value


def class_log_softmax(problem: MixtureProblem, theta: Any, ops: Ops = NUMPY_OPS) -> Any:
    """``log pi`` by log-softmax of the class logits, base class at 0: a vector of length
    ``k`` when no class has covariates (every row has the same probabilities), else n x k."""
    logits: list[Any] = [0.0] * problem.k
    class_etas = [e for e in problem.etas if e.kind == "class"]
    for e in class_etas:
        logits[e.class_] = linear_predictor(e, theta, ops)
    if all(e.intercept_only for e in class_etas):
        return ops.log_softmax(ops.stack(logits), -1)
    return ops.log_softmax(ops.columns(logits, problem.n), 1)


def component_etas(problem: MixtureProblem, theta: Any, ops: Ops = NUMPY_OPS) -> list[list[list]]:
    """Etas per class, component and slot (a family without parameters has none)."""
    out: list[list[list]] = [
        [[None] * len(comp.slot_designs) for comp in comps] for comps in problem.design.classes
    ]
    for e in problem.etas:
        if e.kind == "slot":
            out[e.class_][e.component][e.slot] = linear_predictor(e, theta, ops)
    return out


def component_log_density(
    problem: MixtureProblem, etas: list, ops: Ops = NUMPY_OPS, y: Mapping[str, Any] | None = None
) -> Any:
    """``sum_c log f_cj(y_ci)`` for each class ``j`` (n x k; column-major with numpy).

    ``y`` maps each response to its values (the observed variable of the PyMC model);
    ``None`` reads them from the design.
    """
    columns = []
    for j, comps in enumerate(problem.design.classes):
        total: Any = None
        for c, comp in enumerate(comps):
            if y is None:
                values, extra = comp.y, comp.extra
            else:  # another response than the design's: its response-only terms do not apply
                values, extra = y[comp.response], without_response_terms(comp.extra)
            logf = comp.family.logpdf(values, etas[j][c], ops, extra)
            total = logf if total is None else total + logf
        columns.append(0.0 if total is None else total)
    return ops.columns(columns, problem.n)


class MixtureTerms(NamedTuple):
    """The pieces of the mixture at one parameter vector, in one backend's arrays.

    ``log_class_probs`` is :func:`class_log_softmax`'s (k, or n x k); ``log_density`` the
    per-row class log densities (n x k); ``ll_units`` the unweighted log likelihood of each
    unit (rows, or groups with ``group=``); ``posterior`` the posterior class
    probabilities of each unit (units x k). (A named tuple: the ML engine builds one per
    likelihood evaluation.)
    """

    log_class_probs: Any
    etas: list
    log_density: Any
    ll_units: Any
    posterior: Any


def mixture_terms(
    problem: MixtureProblem, theta: Any, ops: Ops = NUMPY_OPS, y: Mapping[str, Any] | None = None
) -> MixtureTerms:
    """Class model, component densities, group sums and logsumexp over the classes."""
    log_pi = class_log_softmax(problem, theta, ops)
    etas = component_etas(problem, theta, ops)
    logf = component_log_density(problem, etas, ops, y)
    groups = problem.design.groups
    if groups is None:
        joint = logf + log_pi
    else:  # a group's rows share one class; its class probabilities are its first row's
        joint = ops.group_sum(logf, groups) + (log_pi if log_pi.ndim == 1 else log_pi[groups.first])
    ll_units, posterior = ops.class_logsumexp(joint)
    return MixtureTerms(log_pi, etas, logf, ll_units, posterior)


def pointwise_loglike(problem: MixtureProblem, ll_units: Any, ops: Ops = NUMPY_OPS) -> Any:
    """The log likelihood per row as the PyMC model records it: each unit's, times its
    ``weights=``; with ``group=`` a group's value on its first row and 0 on its other rows.
    Sums to the log likelihood."""
    w = problem.design.unit_weights
    units = ll_units if w is None else ll_units * w
    groups = problem.design.groups
    if groups is None:
        return units
    return ops.on_rows(units, groups.first, problem.n)


# -- row chunks ---------------------------------------------------------------------------
ROW_CHUNK = 16_384  # rows per chunk: a chunk's working set (a few dozen vectors) stays in cache
_CHUNKS: "weakref.WeakKeyDictionary[MixtureProblem, dict]" = weakref.WeakKeyDictionary()


def _rows_of(value: Any, rows: slice, n: int) -> Any:
    """Per-row arrays sliced to ``rows`` (views); anything else as it is."""
    if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n:
        return value[rows]
    return value


def _component_rows(comp: ComponentDesign, rows: slice, n: int) -> ComponentDesign:
    return replace(
        comp,
        y=comp.y[rows],
        slot_designs=tuple(X[rows] for X in comp.slot_designs),
        offset=comp.offset[rows],
        extra={key: _rows_of(value, rows, n) for key, value in comp.extra.items()},
    )


def _problem_rows(problem: MixtureProblem, rows: slice) -> MixtureProblem:
    """The rows ``rows`` of an ungrouped problem as a problem of their own (views: no copy)."""
    design, n = problem.design, problem.n
    comps: dict[int, ComponentDesign] = {}  # a component shared by classes stays shared
    classes = tuple(
        tuple(comps.setdefault(id(c), _component_rows(c, rows, n)) for c in cls) for cls in design.classes
    )
    class_designs = tuple(None if cd is None else replace(cd, Z=cd.Z[rows]) for cd in design.class_designs)
    size = len(range(*rows.indices(n)))
    part = replace(
        design, n=size, index=design.index[rows], classes=classes, class_designs=class_designs,
        weights=None if design.weights is None else design.weights[rows],
        clusters=None, start_columns=None, survey=None,
    )
    etas = tuple(
        replace(e, X=e.X[rows], offset=None if e.offset is None else e.offset[rows]) for e in problem.etas
    )
    return MixtureProblem(design=part, layout=problem.layout, etas=etas)


def row_chunks(problem: MixtureProblem, size: int = ROW_CHUNK) -> tuple[tuple[slice, MixtureProblem], ...]:
    """``(rows, part)`` for consecutive blocks of ``size`` rows; built once per problem.

    Evaluating the mixture block by block keeps every intermediate in cache; an ungrouped
    likelihood is a sum over rows, so the blocks' results add up to the whole. A grouped
    problem (``group=``) or one of at most ``size`` rows is one block: itself.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.design import build_design
    >>> from bayesfmm.params import build_layout
    >>> design = build_design(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))
    >>> parts = row_chunks(MixtureProblem.build(design, build_layout(design)), size=200)
    >>> [part.n for _, part in parts]
    [200, 200, 85]
    """
    if problem.grouped or problem.n <= size:
        return ((slice(0, problem.n), problem),)
    cached = _CHUNKS.setdefault(problem, {})
    if size in cached:
        return cached[size]
    parts = tuple(
        (slice(start, min(start + size, problem.n)), _problem_rows(problem, slice(start, min(start + size, problem.n))))
        for start in range(0, problem.n, size)
    )
    cached[size] = parts
    return parts


def impossible_rows(problem: MixtureProblem, theta: np.ndarray) -> np.ndarray:
    """Rows whose density is 0 in every class at ``theta`` (log density -inf in each column),
    from the component densities alone, in row chunks (no mixture is formed).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("thickness ~ 1", k=2).fit(bf.datasets.load("stamp"))
    >>> impossible_rows(res.problem, res.theta).tolist()
    []
    """
    theta = np.asarray(theta, dtype=float)
    found = []
    with np.errstate(all="ignore"):
        for rows, part in row_chunks(problem):
            logf = component_log_density(part, component_etas(part, theta, NUMPY_OPS), NUMPY_OPS)
            best = np.max(np.broadcast_to(logf, (part.n, part.k)), axis=1)
            found.append(np.flatnonzero(np.isneginf(best)) + rows.start)
    return np.concatenate(found)
