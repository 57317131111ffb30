"""Parameters tied or fixed across classes: one affine map ``theta = T phi + c``.

Every structural restriction of a model is a linear equation in the optimiser's vector
``theta``, so all of them become one affine map from the free parameters ``phi``:

* ``lcinvariant=`` (Stata): a component parameter of the chosen parameter classes is one
  parameter shared by every class that has it;
* ``equal=`` (flexmix ``fixed``): a term shared by every class;
* ``nested=`` (flexmix ``nested``): a term shared within groups of classes;
* ``constraints=``: linear equations on named parameters (``"[1]x1 = [2]x1"``,
  ``"[3]Intercept = 0"``, ``"[1]x1 + [2]x1 = 1"``), in the syntax of ``res.test``, on
  Stata's reporting scale. An auxiliary parameter reported through a transform
  (``var(e)`` is ``exp`` of the optimiser's log variance) can be fixed at a value or set
  equal to another of the same kind, which are linear on both scales; other equations on
  it are refused.

The equations are reduced to row-echelon form, solving each for the *last* parameter it
names, so the first-named parameter of a tie stays free (Stata keeps every parameter in
its table; ours too, the tied ones with equal values). Equations implied by the others are
dropped (reported in ``dropped``, as Stata notes); contradictory ones, or a set that leaves
nothing free, raise :class:`~bayesfmm.errors.SpecificationError`.

The optimiser works on ``phi``: gradient ``T' g``, Hessian ``T' H T``; the covariance of
``theta`` is ``T V_phi T'`` (a parameter fixed at a value has standard error 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import IDENTITY_SCALE
from bayesfmm.names import parse_constraints

if TYPE_CHECKING:  # pragma: no cover
    from bayesfmm.design import Design
    from bayesfmm.params import ParamLayout

__all__ = ["LinearConstraints", "build_constraints", "remap_classes"]


@dataclass(frozen=True, eq=False)
class LinearConstraints:
    """``theta = T @ phi + c`` with ``phi = theta[free]``.

    Attributes
    ----------
    T, c
        The affine map (``p x f`` and ``p``).
    free
        Positions in ``theta`` of the free parameters, in order.
    descriptions
        Every equation kept, written with parameter names (``[2]y:x1 = [1]y:x1``).
    dropped
        Equations implied by the others (dropped, as Stata does).
    """

    T: np.ndarray
    c: np.ndarray
    free: np.ndarray
    descriptions: tuple[str, ...]
    dropped: tuple[str, ...] = ()

    @property
    def n_free(self) -> int:
        return int(self.T.shape[1])

    @property
    def fixed(self) -> np.ndarray:
        """Mask of parameters fixed at a value (no free parameter behind them)."""
        return ~np.any(self.T != 0, axis=1)

    def expand(self, phi: np.ndarray) -> np.ndarray:
        return self.T @ np.asarray(phi, dtype=float) + self.c

    def reduce(self, theta: np.ndarray) -> np.ndarray:
        """The free parameters of a ``theta`` that satisfies the constraints."""
        return np.asarray(theta, dtype=float)[self.free]

    def project(self, theta: np.ndarray) -> np.ndarray:
        """The closest ``theta`` satisfying the constraints (least squares in ``phi``):
        tied parameters take their mean, fixed ones their value."""
        theta = np.asarray(theta, dtype=float)
        phi, *_ = np.linalg.lstsq(self.T, theta - self.c, rcond=None)
        return self.expand(phi)


# -- the equations ------------------------------------------------------------------
def _param_class(block, term: str) -> str:
    if block.linear:
        return "cons" if term == "Intercept" else "coef"
    return block.param_class


def _component_key(design: "Design", block, term: str) -> tuple:
    comp = design.classes[block.class_ - 1][block.component]
    return (block.equation, comp.family.name, block.slot, term)


def _tie(positions: list[int]) -> list[dict[int, float]]:
    first = positions[0]
    return [{first: 1.0, other: -1.0} for other in positions[1:]]


def _invariant_rows(design: "Design", layout: "ParamLayout", chosen: tuple[str, ...]) -> list[dict[int, float]]:
    groups: dict[tuple, list[int]] = {}
    for block in layout.blocks:
        if block.kind != "slot":
            continue
        for i, term in enumerate(block.terms):
            if _param_class(block, term) in chosen:
                groups.setdefault(_component_key(design, block, term), []).append(block.start + i)
    rows = []
    for positions in groups.values():
        rows += _tie(sorted(positions))
    return rows


def _term_positions(design: "Design", layout: "ParamLayout", name: str, what: str) -> dict[int, list[int]]:
    """Positions of a linear term (``x2`` or ``y:x2``; a categorical variable's name stands
    for all its columns ``x2[T.1]``, ...) by 1-based class."""
    equation, term = (name.split(":", 1) if ":" in name else (None, name))
    term = "Intercept" if term == "_cons" else term
    found: dict[int, list[int]] = {}
    for block in layout.blocks:
        if block.kind != "slot" or not block.linear or (equation is not None and block.equation != equation):
            continue
        for i, t in enumerate(block.terms):
            # a variable names all its columns: "x2" is "x2[T.1]" when x2 is categorical
            if t == term or t.startswith(term + "["):
                found.setdefault(block.class_, []).append(block.start + i)
    if not found:
        terms = sorted({t for b in layout.blocks if b.kind == "slot" and b.linear for t in b.terms})
        raise SpecificationError(f"{what} names {name!r}, which is not a term of the model; terms: {', '.join(terms)}")
    return found


def _by_key(design: "Design", layout: "ParamLayout", positions: list[int]) -> dict[tuple, list[int]]:
    """Positions grouped by (equation, family, slot, term) so that ties stay within one kind."""
    where = {}
    for block in layout.blocks:
        for i, term in enumerate(block.terms):
            where[block.start + i] = _component_key(design, block, term)
    out: dict[tuple, list[int]] = {}
    for pos in positions:
        out.setdefault(where[pos], []).append(pos)
    return out


def _equal_rows(design: "Design", layout: "ParamLayout", names: tuple[str, ...]) -> list[dict[int, float]]:
    rows = []
    for name in names:
        found = _term_positions(design, layout, name, "equal")
        every = [p for positions in found.values() for p in positions]
        for positions in _by_key(design, layout, every).values():
            rows += _tie(sorted(positions))
    return rows


def _nested_rows(design: "Design", layout: "ParamLayout", nested) -> list[dict[int, float]]:
    rows = []
    for name, groups in nested:
        found = _term_positions(design, layout, name, "nested")
        for group in groups:
            missing = [c for c in group if c not in found]
            if missing:
                raise SpecificationError(f"nested[{name!r}]: class(es) {missing} have no term {name!r}")
            members = [p for c in group for p in found[c]]
            for positions in _by_key(design, layout, members).values():
                rows += _tie(sorted(positions))
    return rows


def _transformed(layout: "ParamLayout") -> np.ndarray:
    """Positions whose reported value is a non-linear transform of ``theta`` (``var(e)``)."""

    mask = np.zeros(layout.size, dtype=bool)
    for block in layout.blocks:
        if not block.linear and block.scale is not IDENTITY_SCALE:
            mask[block.slice] = True
    return mask


def _scale_of(layout: "ParamLayout", position: int):
    for block in layout.blocks:
        if block.start <= position < block.stop:
            return block.scale
    raise IndexError(position)


def _user_rows(design: "Design", layout: "ParamLayout", texts: tuple[str, ...]) -> list[tuple[dict[int, float], float, str]]:
    transformed = _transformed(layout)
    rows = []
    for text in texts:
        R, r, _ = parse_constraints(layout, text)
        for row, rhs in zip(R, r):
            nonzero = np.flatnonzero(row)
            if nonzero.size == 0:
                if abs(rhs) > 1e-12:
                    raise SpecificationError(f"constraint {text!r} reduces to 0 = {-rhs:g}: it can never hold")
                continue
            special = nonzero[transformed[nonzero]]
            if special.size:
                rows.append(_transformed_row(layout, row, float(rhs), nonzero, special, text))
            else:
                rows.append(({int(i): float(row[i]) for i in nonzero}, float(rhs), text))
    return rows


def _transformed_row(layout, row, rhs, nonzero, special, text):
    """An equation naming a transformed auxiliary parameter, re-expressed on ``theta``."""
    name = "/".join(str(layout.index[int(i)][2]) for i in special)
    if nonzero.size == 1:
        i = int(nonzero[0])
        value = rhs / row[i]
        with np.errstate(all="ignore"):
            theta = float(np.asarray(_scale_of(layout, i).from_report(np.array([value])))[0])
        if not np.isfinite(theta):
            raise SpecificationError(f"constraint {text!r}: {name} cannot take the value {value:g}")
        return ({i: 1.0}, theta, text)
    if (
        nonzero.size == 2
        and special.size == 2
        and abs(rhs) < 1e-12
        and abs(row[nonzero[0]] + row[nonzero[1]]) < 1e-12
        and _scale_of(layout, int(nonzero[0])) is _scale_of(layout, int(nonzero[1]))
    ):
        return ({int(nonzero[0]): 1.0, int(nonzero[1]): -1.0}, 0.0, text)
    raise SpecificationError(
        f"constraint {text!r} is not linear in the estimated parameters: {name} is estimated on the log "
        "scale, so it can only be fixed at a value ('[1]var(e) = 2') or set equal to another of its kind "
        "('[1]var(e) = [2]var(e)')"
    )


def _describe(layout: "ParamLayout", row: dict[int, float], rhs: float, transformed: np.ndarray) -> str:
    names = ["[{}]{}:{}".format(*key) for key in layout.index]
    parts = []
    for i, coef in sorted(row.items()):
        sign = "-" if coef < 0 else "+"
        size = "" if abs(coef) == 1 else f"{abs(coef):g}*"
        name = names[i] if not transformed[i] else f"ln({names[i]})" if len(row) == 1 else names[i]
        parts.append(f"{sign} {size}{name}")
    text = " ".join(parts).lstrip("+ ")
    if text.startswith("- "):
        text = "-" + text[2:]
    return f"{text} = {rhs:g}"


def _echelon(M: np.ndarray, q: np.ndarray, tol: float = 1e-10):
    """Reduced row-echelon form pivoting on the right-most columns first.

    Returns ``(rows, rhs, pivots, leftover)``: each independent row solved for its pivot
    column, and the right-hand sides left on the dependent rows (non-zero: a contradiction).
    """
    A = np.column_stack([M, q]).astype(float)
    m, p = M.shape
    pivots: list[int] = []
    row = 0
    for col in range(p - 1, -1, -1):
        if row >= m:
            break
        candidates = np.abs(A[row:, col])
        best = int(np.argmax(candidates))
        if candidates[best] <= tol:
            continue
        A[[row, row + best]] = A[[row + best, row]]
        A[row] /= A[row, col]
        others = np.arange(m) != row
        A[others] -= np.outer(A[others, col], A[row])
        pivots.append(col)
        row += 1
    return A[:row, :p], A[:row, p], pivots, A[row:, p]


def build_constraints(design: "Design", layout: "ParamLayout") -> LinearConstraints | None:
    """The affine map of every restriction the model's spec states, or None without any."""
    spec = design.spec
    if not spec.has_structure_constraints:
        return None
    transformed = _transformed(layout)
    rows: list[tuple[dict[int, float], float, str]] = []
    rows += [(r, 0.0, "lcinvariant") for r in _invariant_rows(design, layout, spec.invariant_classes)]
    rows += [(r, 0.0, "equal") for r in _equal_rows(design, layout, spec.equal)]
    rows += [(r, 0.0, "nested") for r in _nested_rows(design, layout, spec.nested)]
    rows += _user_rows(design, layout, spec.constraints)
    p = layout.size
    if not rows:
        return None
    M = np.zeros((len(rows), p))
    q = np.zeros(len(rows))
    for i, (row, rhs, _) in enumerate(rows):
        for j, v in row.items():
            M[i, j] += v
        q[i] = rhs
    scale = max(1.0, float(np.max(np.abs(M))))
    reduced, rhs, pivots, leftover = _echelon(M, q, tol=1e-10 * scale)
    if np.any(np.abs(leftover) > 1e-8 * max(1.0, float(np.max(np.abs(q))))):
        users = [text for _, _, text in rows if text not in ("lcinvariant", "equal", "nested")]
        raise SpecificationError(
            "the constraints contradict each other (no parameter vector satisfies them all): "
            + "; ".join(users or [t for _, _, t in rows])
        )
    free = np.array(sorted(set(range(p)) - set(pivots)), dtype=int)
    if free.size == 0:
        raise SpecificationError("the constraints leave no free parameter: every parameter is fixed")
    T = np.zeros((p, free.size))
    c = np.zeros(p)
    T[free, np.arange(free.size)] = 1.0
    for r, col in enumerate(pivots):
        T[col] = -reduced[r, free]
        c[col] = rhs[r]
    T[np.abs(T) < 1e-14] = 0.0
    descriptions = tuple(_describe(layout, row, value, transformed) for row, value, _ in rows)
    n_dropped = len(rows) - len(pivots)
    dropped = (f"{n_dropped} equation(s) implied by the others",) if n_dropped else ()
    return LinearConstraints(T=T, c=c, free=free, descriptions=descriptions, dropped=dropped)


_CLASS_REF = re.compile(r"\[\s*(\d+)(\s*\.Class)?\s*\]")


def remap_classes(spec, perm: list[int]):
    """The class-specific structure options of ``spec`` with classes renumbered:
    new class ``j + 1`` is old class ``perm[j] + 1`` (for relabelling a fit)."""
    new_of_old = {old + 1: new + 1 for new, old in enumerate(perm)}
    def renumber(match: re.Match) -> str:
        old = int(match.group(1))
        return f"[{new_of_old.get(old, old)}{match.group(2) or ''}]"

    constraints = tuple(_CLASS_REF.sub(renumber, text) for text in spec.constraints)
    nested = {term: [sorted(new_of_old[c] for c in group) for group in groups] for term, groups in spec.nested}
    return constraints, nested
