"""ParamLayout: every parameter's name, its place in the vector, and its reporting scale.

The optimiser works on an unconstrained vector ``theta``: class logits (base class fixed at
0, so absent), regression coefficients, and auxiliary parameters on their unconstrained
scale (log error variance). Reports use Stata's scale (``var(e)``) with delta-method
standard errors; the two scales meet only here.

The order follows Stata's output: the class equations (non-base classes), then each class's
component equations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesfmm.constraints import LinearConstraints, build_constraints
from bayesfmm.design import Design
from bayesfmm.families.base import IDENTITY_SCALE, AuxScale
from bayesfmm.names import CLASS_EQUATION

__all__ = ["Block", "ParamLayout", "build_layout", "class_permutation_matrix", "INDEX_NAMES"]

INDEX_NAMES = ("class", "equation", "term")


@dataclass(frozen=True)
class Block:
    """A contiguous run of ``theta`` that multiplies one design matrix.

    ``kind`` is ``"class"`` (class-model equation of ``class_``) or ``"slot"`` (slot
    ``slot`` of component ``component`` in class ``class_``). ``class_`` is 1-based.
    """

    kind: str
    class_: int
    equation: str
    terms: tuple[str, ...]
    start: int
    stop: int
    component: int = -1
    slot: int = -1
    scale: AuxScale = IDENTITY_SCALE
    linear: bool = True
    param_class: str = "coef"
    collapses: str | None = None

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ParamLayout:
    """Names, positions and scales of every parameter of a model on a design."""

    blocks: tuple[Block, ...]
    k: int
    base: int
    constraints: LinearConstraints | None = None

    @property
    def size(self) -> int:
        return self.blocks[-1].stop if self.blocks else 0

    @property
    def n_free(self) -> int:
        """Free parameters: ``size`` less those tied or fixed by constraints."""
        return self.size if self.constraints is None else self.constraints.n_free

    @property
    def transform(self) -> np.ndarray | None:
        """``T`` of ``theta = T phi + c``, or None when every parameter is free."""
        return None if self.constraints is None else self.constraints.T

    def project(self, theta: np.ndarray) -> np.ndarray:
        """``theta`` moved onto the constraints (itself when there are none)."""
        theta = np.asarray(theta, dtype=float)
        return theta if self.constraints is None else self.constraints.project(theta)

    def fixed_mask(self) -> np.ndarray:
        """Parameters fixed at a value by constraints (standard error 0)."""
        if self.constraints is None:
            return np.zeros(self.size, dtype=bool)
        return self.constraints.fixed

    @property
    def class_blocks(self) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.kind == "class")

    def slot_block(self, class_: int, component: int, slot: int) -> Block:
        """The block of slot ``slot`` of component ``component`` in 1-based class ``class_``."""
        return self._slot_index[(class_, component, slot)]

    def __post_init__(self) -> None:
        index = {(b.class_, b.component, b.slot): b for b in self.blocks if b.kind == "slot"}
        object.__setattr__(self, "_slot_index", index)

    @property
    def index(self) -> pd.MultiIndex:
        """The (class, equation, term) index of API.md, in vector order."""
        tuples = [(b.class_, b.equation, t) for b in self.blocks for t in b.terms]
        return pd.MultiIndex.from_tuples(tuples, names=INDEX_NAMES)

    def is_aux(self) -> np.ndarray:
        """Boolean mask of auxiliary (non-linear-slot) parameters."""
        mask = np.zeros(self.size, dtype=bool)
        for b in self.blocks:
            if not b.linear:
                mask[b.slice] = True
        return mask

    def to_report(self, theta: np.ndarray) -> np.ndarray:
        """Map ``theta`` to Stata's reporting scale."""
        out = np.array(theta, dtype=float, copy=True)
        for b in self.blocks:
            if not b.linear:
                out[b.slice] = b.scale.to_report(theta[b.slice])
        return out

    def from_report(self, values: np.ndarray) -> np.ndarray:
        """Map reported values back to ``theta``."""
        out = np.array(values, dtype=float, copy=True)
        for b in self.blocks:
            if not b.linear:
                out[b.slice] = b.scale.from_report(values[b.slice])
        return out

    def report_jacobian(self, theta: np.ndarray) -> np.ndarray:
        """Diagonal of d(report)/d(theta): every transform acts on one parameter."""
        jac = np.ones(self.size)
        for b in self.blocks:
            if not b.linear:
                jac[b.slice] = b.scale.derivative(theta[b.slice])
        return jac

    def series(self, values: np.ndarray, name: str | None = None) -> pd.Series:
        return pd.Series(np.asarray(values, dtype=float), index=self.index, name=name)


def build_layout(design: Design) -> ParamLayout:
    """Lay out the parameters of ``design`` in Stata's order."""
    blocks: list[Block] = []
    pos = 0
    for j, cdesign in enumerate(design.class_designs):
        if cdesign is None:
            continue
        size = cdesign.Z.shape[1]
        blocks.append(
            Block("class", j + 1, CLASS_EQUATION, cdesign.terms, pos, pos + size, param_class="class")
        )
        pos += size
    for j, comps in enumerate(design.classes):
        for c, comp in enumerate(comps):
            for s, slot in enumerate(comp.family.slots):
                terms = comp.slot_terms[s]
                size = len(terms)
                blocks.append(
                    Block(
                        "slot",
                        j + 1,
                        slot.equation.format(response=comp.response) if slot.equation else comp.response,
                        terms,
                        pos,
                        pos + size,
                        component=c,
                        slot=s,
                        scale=slot.scale,
                        linear=slot.linear,
                        param_class=slot.param_class,
                        collapses=slot.collapses,
                    )
                )
                pos += size
    free = ParamLayout(blocks=tuple(blocks), k=design.k, base=design.base)
    constraints = build_constraints(design, free)
    if constraints is None:
        return free
    return ParamLayout(blocks=free.blocks, k=free.k, base=free.base, constraints=constraints)


def class_permutation_matrix(source: ParamLayout, target: ParamLayout, perm: Sequence[int]) -> np.ndarray:
    """The linear map ``A`` with ``A @ theta_source = theta_target`` when target class
    ``j + 1`` is source class ``perm[j] + 1`` (``perm`` 0-based).

    Component blocks are copied from the source class; class logits are re-expressed
    against the base class (``layout.base``, whose logit is fixed at 0):
    ``gamma'_j = gamma_{perm[j]} - gamma_{perm[base]}``. ``source`` and ``target`` are
    parameter layouts (:class:`~bayesfmm.params.ParamLayout`); the same one for a
    relabelling within a model, or the layout of the relabelled design (a fit's
    ``relabel``, whose covariance then maps as ``A V A'``).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.design import build_design
    >>> layout = build_layout(build_design(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp")))
    >>> class_permutation_matrix(layout, layout, [1, 0]).astype(int)
    array([[-1,  0,  0,  0,  0],
           [ 0,  0,  0,  1,  0],
           [ 0,  0,  0,  0,  1],
           [ 0,  1,  0,  0,  0],
           [ 0,  0,  1,  0,  0]])
    """
    base = target.base
    A = np.zeros((target.size, source.size))
    old_class = {b.class_: b for b in source.class_blocks}
    for block in target.blocks:
        rows = np.arange(block.start, block.stop)
        if block.kind == "class":
            plus, minus = old_class.get(perm[block.class_ - 1] + 1), old_class.get(perm[base] + 1)
            for sign, src in ((1.0, plus), (-1.0, minus)):
                if src is not None:
                    A[rows, np.arange(src.start, src.stop)] += sign
        else:
            src = source.slot_block(perm[block.class_ - 1] + 1, block.component, block.slot)
            A[rows, np.arange(src.start, src.stop)] = 1.0
    return A
