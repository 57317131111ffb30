"""Identification by ordering: which parameter is ordered across classes, and how.

Mixture likelihoods are invariant to relabelling the classes, so an unconstrained
posterior has ``k!`` symmetric modes and chains may switch labels. ``order=`` removes the
symmetry with an ordering constraint across classes, written as a reparameterisation that
NUTS sees as smooth: the ordered values are a cumulative sum of positive (exponentiated)
increments.

* A component parameter (default: the first component's intercept): PyMC's ``Ordered``
  transform, ``x_1 = u_1``, ``x_j = x_{j-1} + exp(u_j)``.
* Both map tied values (PyMC's default start: every class at its prior mean) to a finite
  point by flooring the increments at :data:`MIN_INCREMENT`, so PyMC's and nutpie's own
  initialisation work on the model as built.
* The class probabilities (``order="classpr"``): the class-model intercepts, with the base
  class's logit fixed at 0, ordered by :class:`AnchoredOrdered`: above the base
  ``x_j = x_{j-1} + exp(u_j)``, below it ``x_j = x_{j+1} - exp(u_j)``. Without covariates
  this orders the class probabilities; with covariates, the logits at ``z = 0``.

The ML estimates used as starting values are relabelled to satisfy the ordering with
:func:`relabel_to_order`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from bayesfmm.errors import SpecificationError
from bayesfmm.likelihood import MixtureProblem
from bayesfmm.params import class_permutation_matrix

__all__ = [
    "OrderSpec",
    "CLASSPR_NAMES",
    "resolve_order",
    "ordered_forward",
    "anchored_forward",
    "anchored_transform",
    "ordered_transform",
    "class_permutation_matrix",
    "permute_classes",
    "classes_exchangeable",
    "relabel_to_order",
    "order_values",
    "satisfies_order",
]

CLASSPR_NAMES = ("classpr", "lcprob", "class")


@dataclass(frozen=True)
class OrderSpec:
    """An ordering constraint: ``kind`` is ``"param"`` or ``"classpr"``; ``group`` the RV name."""

    kind: str
    group: str
    description: str


# -- transforms ---------------------------------------------------------------------------
def ordered_forward(x: np.ndarray) -> np.ndarray:
    """numpy forward map of PyMC's ``Ordered`` transform (ordered values -> unconstrained)."""
    x = np.asarray(x, dtype=float)
    return np.concatenate([x[:1], np.log(np.diff(x))])


def anchored_forward(x: np.ndarray, base: int) -> np.ndarray:
    """numpy forward map of :class:`AnchoredOrdered`: ``x`` holds the non-base logits."""
    x = np.asarray(x, dtype=float)
    lower = np.log(np.diff(np.concatenate([x[:base], [0.0]])))
    upper = np.log(np.diff(np.concatenate([[0.0], x[base:]])))
    return np.concatenate([lower, upper])


# Increments below this are floored when mapping ordered values to the unconstrained scale,
# so that a start with tied values (PyMC's default: every class at the prior mean) maps to
# a finite point instead of log(0). Exact for any strictly ordered input above it.
MIN_INCREMENT = 1e-8


def ordered_transform():
    """PyMC's ``Ordered`` transform with :data:`MIN_INCREMENT` floored in ``forward``."""
    import pytensor.tensor as pt
    from pymc.distributions.transforms import Ordered

    class FlooredOrdered(Ordered):
        name = "ordered"

        def forward(self, value, *inputs):
            steps = pt.maximum(pt.diff(value, axis=-1), MIN_INCREMENT)
            return pt.concatenate([value[..., :1], pt.log(steps)], axis=-1)

    return FlooredOrdered()


def anchored_transform(base: int):
    """An ``AnchoredOrdered`` transform instance (imports PyMC)."""
    import pytensor.tensor as pt
    from pymc.logprob.transforms import Transform

    class AnchoredOrdered(Transform):
        """Ordered logits around the base class's fixed 0 (``base``: its position, 0-based)."""

        name = "anchored_ordered"
        ndim_supp = 1

        def backward(self, value, *inputs):
            steps = pt.exp(value)
            lower = -pt.cumsum(steps[..., :base][..., ::-1], axis=-1)[..., ::-1]
            upper = pt.cumsum(steps[..., base:], axis=-1)
            return pt.concatenate([lower, upper], axis=-1)

        def forward(self, value, *inputs):
            zero = pt.zeros_like(value[..., :1])
            lower = pt.diff(pt.concatenate([value[..., :base], zero], axis=-1), axis=-1)
            upper = pt.diff(pt.concatenate([zero, value[..., base:]], axis=-1), axis=-1)
            steps = pt.maximum(pt.concatenate([lower, upper], axis=-1), MIN_INCREMENT)
            return pt.log(steps)

        def log_jac_det(self, value, *inputs):
            return pt.sum(value, axis=-1)

    return AnchoredOrdered()


# -- which parameter ----------------------------------------------------------------------
def _group_of_position(groups: Sequence[Any], pos: int):
    for group in groups:
        if pos in group.positions:
            return group
    raise AssertionError(f"theta position {pos} belongs to no RV")  # pragma: no cover


def _first_component_group(problem: MixtureProblem, groups: Sequence[Any]):
    """The RV of the first component's intercept (or first term) in the first class that
    has parameters; None when no component has any."""
    slots = [b for b in problem.layout.blocks if b.kind == "slot" and b.linear]
    if not slots:
        return None
    block = slots[0]
    term = "Intercept" if "Intercept" in block.terms else block.terms[0]
    return _group_of_position(groups, block.start + block.terms.index(term))


def resolve_order(problem: MixtureProblem, groups: Sequence[Any], order: Any) -> OrderSpec | None:
    """The ordering constraint ``order=`` asks for, or None.

    ``order`` is ``"auto"`` (the first component's intercept, or its first term, when it
    exists in every class, k > 1 and the classes share one structure), None or False (no ordering), ``"classpr"`` (class
    probabilities), an RV name such as ``"thickness_Intercept"``, or ``(equation, term)``
    such as ``("thickness", "var(e)")``.
    """
    k = problem.k
    if order is None or order is False:
        return None
    names = {g.name: g for g in groups}
    if isinstance(order, str) and order == "auto":
        if k < 2 or not classes_exchangeable(problem):
            return None  # classes that differ in structure are labelled by it
        spec = problem.design.spec
        if spec.constraints or spec.nested:
            return None  # class-specific constraints label the classes
        group = _first_component_group(problem, groups)
        if group is None or len(group.classes) != k:
            return None
        return OrderSpec("param", group.name, f"{group.name} increasing across classes")
    if k < 2:
        raise SpecificationError(f"order={order!r}: with k=1 there is nothing to order; use order=None")
    if isinstance(order, str) and order in CLASSPR_NAMES:
        group = names.get("Class_Intercept")
        if group is None or len(group.classes) != k - 1:
            raise SpecificationError(
                "order='classpr' orders the class-model intercepts, which every non-base class "
                "must have; this model's class equations lack a common intercept"
            )
        return OrderSpec("classpr", group.name, "class logits (intercepts) increasing across classes")
    if isinstance(order, str):
        group = names.get(order)
        if group is None:
            raise SpecificationError(
                f"order={order!r} is not a parameter of the model; choose 'auto', None, 'classpr', "
                f"(equation, term) or one of {sorted(names)}"
            )
    elif isinstance(order, tuple) and len(order) == 2:
        index = problem.layout.index
        hits = [i for i, (c, e, t) in enumerate(index) if (e, t) == tuple(order)]
        if not hits:
            raise SpecificationError(f"order={order!r} names no (equation, term) of the model")
        group = _group_of_position(groups, hits[0])
    else:
        raise SpecificationError(
            f"order={order!r} not understood: use 'auto', None, 'classpr', an RV name or (equation, term)"
        )
    if group.kind == "class":
        raise SpecificationError(f"order={order!r}: to order the class probabilities use order='classpr'")
    if len(group.classes) != k:
        raise SpecificationError(
            f"order={order!r}: {group.name} exists in classes {list(group.classes)} only; an ordering "
            f"needs a parameter present in all {k} classes"
        )
    return OrderSpec("param", group.name, f"{group.name} increasing across classes")


# -- relabelling the classes of a parameter vector ----------------------------------------
def _class_signature(problem: MixtureProblem, j: int) -> list:
    comps = problem.design.classes[j]
    families = [comp.family.name for comp in comps]
    blocks = [
        (b.equation, b.component, b.slot, b.terms)
        for b in problem.layout.blocks
        if b.kind == "slot" and b.class_ == j + 1
    ]
    return [families, blocks]


def classes_exchangeable(problem: MixtureProblem) -> bool:
    """Whether all classes share one structure (families, terms, class-model terms), so
    that their labels can be permuted (standard syntax, or hybrid with equal components)."""
    signatures = [_class_signature(problem, j) for j in range(problem.k)]
    terms = {b.terms for b in problem.layout.class_blocks}
    return all(sig == signatures[0] for sig in signatures) and len(terms) <= 1


def permute_classes(problem: MixtureProblem, theta: np.ndarray, perm: Sequence[int]) -> np.ndarray:
    """``theta`` with class ``j`` taking the parameters of class ``perm[j]`` (0-based).

    The class model is re-expressed against the base class (its logits stay 0): the map
    is :func:`class_permutation_matrix`. Needs the classes to share one structure
    (standard syntax); otherwise SpecificationError.

    Examples
    --------
    >>> import numpy as np, bayesfmm as bf
    >>> from bayesfmm.bayes.builder import problem_for
    >>> problem, _ = problem_for(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))
    >>> permute_classes(problem, np.array([0.5, 1.0, -3.0, 2.0, -4.0]), [1, 0])
    array([-0.5,  2. , -4. ,  1. , -3. ])
    """
    perm = [int(p) for p in perm]
    k = problem.k
    if sorted(perm) != list(range(k)):
        raise SpecificationError(f"{perm} is not a permutation of the classes 0..{k - 1}")
    if perm == list(range(k)):
        return np.array(theta, dtype=float, copy=True)
    if not classes_exchangeable(problem):
        raise SpecificationError(
            "the classes differ in structure (hybrid syntax), so their labels cannot be permuted"
        )
    layout = problem.layout
    theta = np.asarray(theta, dtype=float)
    return class_permutation_matrix(layout, layout, perm) @ theta


def order_values(problem: MixtureProblem, group: Any, spec: OrderSpec, theta: np.ndarray) -> np.ndarray:
    """The k values the ordering constrains (class logits with the base class's 0 inserted)."""
    values = np.asarray(theta, dtype=float)[..., group.positions]
    if spec.kind == "classpr":
        return np.insert(values, problem.layout.base, 0.0, axis=-1)
    return values


def satisfies_order(problem: MixtureProblem, group: Any, spec: OrderSpec, theta: np.ndarray) -> bool:
    """Whether ``theta`` meets the ordering strictly."""
    return bool(np.all(np.diff(order_values(problem, group, spec, theta)) > 0))


def relabel_to_order(problem: MixtureProblem, group: Any, spec: OrderSpec, theta: np.ndarray) -> np.ndarray:
    """``theta`` with its classes relabelled so that the ordering holds (ties stay unordered)."""
    values = order_values(problem, group, spec, theta)
    perm = np.argsort(values, kind="stable")
    return permute_classes(problem, theta, perm)
