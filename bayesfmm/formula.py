"""Formulas read and encoded: plain ones (``y ~ x1 + x2``) in numpy, the rest by formulaic.

Importing formulaic (and the scipy.sparse it pulls in) costs more than a whole fit of a
small model, so a formula whose terms are all bare column names, on numeric columns, is
read and encoded here without it: the same design matrix (values and column layout),
the same column names (``Intercept`` first), the same missing values (kept as NaN, as
formulaic's ``na_action="ignore"``) and the same variables as formulaic gives. Anything
else (``C(g)``, ``x:z``, ``np.log(x)``, a categorical, text or bool column, a pandas
nullable dtype) goes to formulaic unchanged.

A plain formula is ``lhs ~ rhs`` where ``lhs`` is empty or names joined by ``+`` (several
responses, as ``mvnormal`` reads them) and ``rhs`` is names joined by ``+`` with at most one
intercept term (``1``, ``+ 1``, ``0``, ``+ 0``, ``- 1``). Names are ASCII identifiers that are
no Python keyword and none of the names formulaic or the formula context give a meaning.
"""

from __future__ import annotations

import functools
import keyword
import re
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "PlainFormula",
    "PlainSpec",
    "plain_formula",
    "formula_has_lhs",
    "formula_sides",
    "response_terms",
    "rhs_terms",
    "model_matrices",
    "plain_arrays",
    "PlainArrays",
    "formulaic_matrices",
    "lhs_matrix",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIGNS = re.compile(r"\s*([+-])\s*")
# Names that mean something besides a column (formulaic's transforms and constants, the
# formula context of bayesfmm.design, the intercept's column name): formulaic reads them.
RESERVED = frozenset(
    {"C", "I", "Q", "T", "np", "log", "exp", "sqrt", "center", "scale", "standardize", "poly", "bs",
     "cs", "cc", "cr", "te", "ns", "lag", "hashed", "contr", "Intercept", "True", "False", "None"}
)


@dataclass(frozen=True)
class PlainFormula:
    """A formula of bare names: responses, regressors (in order, without repeats) and
    whether the right-hand side has an intercept."""

    lhs: tuple[str, ...]
    rhs: tuple[str, ...]
    intercept: bool

    @property
    def columns(self) -> tuple[str, ...]:
        """The design's column names, as formulaic names them."""
        return ("Intercept",) * self.intercept + self.rhs


def _is_name(text: str) -> bool:
    return bool(_NAME.fullmatch(text)) and not keyword.iskeyword(text) and text not in RESERVED


def _plain_rhs(text: str) -> tuple[tuple[str, ...], bool] | None:
    parts = _SIGNS.split(text.strip())
    if parts[0] == "" and len(parts) > 1:  # a leading sign: "-1 + x"
        parts = parts[1:]
    else:
        parts = ["+", *parts]
    names: dict[str, None] = {}
    intercept, constants = True, 0
    for sign, item in zip(parts[::2], parts[1::2]):
        if item in ("0", "1"):
            constants += 1
            if item == "0" and sign == "-":
                return None
            intercept = item == "1" and sign == "+"
        elif sign == "+" and _is_name(item):
            names.setdefault(item, None)
        else:
            return None
    if constants > 1 or len(parts) % 2:
        return None
    return tuple(names), intercept


@functools.lru_cache(maxsize=512)
def plain_formula(formula: str) -> PlainFormula | None:
    """The formula's names when it is plain (see the module's docstring), else None.

    Examples
    --------
    >>> plain_formula("y ~ x1 + x2 - 1")
    PlainFormula(lhs=('y',), rhs=('x1', 'x2'), intercept=False)
    >>> plain_formula("y ~ np.log(x)") is None, plain_formula("~ z").columns
    (True, ('Intercept', 'z'))
    """
    if not isinstance(formula, str) or formula.count("~") != 1:
        return None
    left, right = formula.split("~")
    lhs = tuple(part.strip() for part in left.split("+")) if left.strip() else ()
    if not all(_is_name(name) for name in lhs) or len(set(lhs)) < len(lhs):
        return None
    rhs = _plain_rhs(right)
    return None if rhs is None else PlainFormula(lhs, rhs[0], rhs[1])


def formula_has_lhs(formula: str) -> bool:
    """Whether ``formula`` has a response; formulaic's parser errors when it is invalid.

    Examples
    --------
    >>> formula_has_lhs("y ~ x"), formula_has_lhs("~ z1 + z2")
    (True, False)
    """
    plain = plain_formula(formula)
    if plain is not None:
        return bool(plain.lhs)
    from formulaic import Formula

    return hasattr(Formula(formula), "lhs")


def formula_sides(formula: str, context: Any = ()) -> tuple[list[str], list[str]]:
    """The variables of the left- and right-hand side, sorted, names of ``context`` left out.

    Examples
    --------
    >>> formula_sides("y ~ x2 + x1")
    (['y'], ['x1', 'x2'])
    """
    plain = plain_formula(formula)
    if plain is not None:
        return sorted(set(plain.lhs)), sorted(set(plain.rhs))
    from formulaic import Formula

    parsed, ctx = Formula(formula), set(context)
    lhs = sorted(set(parsed.lhs.required_variables) - ctx) if hasattr(parsed, "lhs") else []
    rhs = parsed.rhs if hasattr(parsed, "lhs") else parsed
    return lhs, sorted(set(rhs.required_variables) - ctx)


def response_terms(formula: str) -> tuple[str, ...]:
    """The left-hand side's terms as formulaic writes them (several for ``y1 + y2 ~ x``).

    Examples
    --------
    >>> response_terms("y1 + y2 ~ x")
    ('y1', 'y2')
    """
    plain = plain_formula(formula)
    if plain is not None:
        return plain.lhs
    from formulaic import Formula

    return tuple(str(t) for t in Formula(formula).lhs)


def rhs_terms(formula: str) -> tuple[str, ...]:
    """The right-hand side's terms as formulaic writes them (``'1'`` for the intercept).

    Examples
    --------
    >>> rhs_terms("y ~ 1"), rhs_terms("y ~ x - 1")
    (('1',), ('x',))
    """
    plain = plain_formula(formula)
    if plain is not None:
        return ("1",) * plain.intercept + plain.rhs
    from formulaic import Formula

    return tuple(str(t) for t in Formula(formula).rhs)


def _plain_values(data: pd.DataFrame, names: tuple[str, ...], intercept: bool, allow_bool: bool = False) -> np.ndarray | None:
    """The columns as floats in one column-major block (formulaic's layout), the intercept
    first, missing values left NaN; None unless every column is present once with a numpy
    integer or float dtype (``bool`` too with ``allow_bool``): the columns formulaic
    encodes as plain numbers."""
    kinds = "iufb" if allow_bool else "iuf"
    columns = []
    for name in names:
        if name not in data.columns:
            return None
        column = data[name]
        if not isinstance(column, pd.Series) or not isinstance(column.dtype, np.dtype) or column.dtype.kind not in kinds:
            return None
        columns.append(column.to_numpy())
    values = np.empty((len(data), intercept + len(names)), order="F")
    if intercept:
        values[:, 0] = 1.0
    for j, column in enumerate(columns, start=int(intercept)):
        values[:, j] = column
    return values


def _frame(values: np.ndarray, columns: tuple[str, ...], index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame(values, columns=list(columns), index=index, copy=False)


class PlainArrays(NamedTuple):
    """A plain formula encoded on numeric columns, in numpy (what :func:`model_matrices`
    wraps in data frames): the responses (None for a one-sided formula), the design, their
    column names and the spec that encodes new data the same way."""

    lhs: np.ndarray | None
    rhs: np.ndarray
    lhs_columns: tuple[str, ...]
    rhs_columns: tuple[str, ...]
    spec: "PlainSpec"


def plain_arrays(formula: str, data: pd.DataFrame) -> PlainArrays | None:
    """``formula`` on ``data`` in numpy when the formula is plain and its columns numeric
    (no data frame built: the design reads the arrays); None when formulaic must encode it.

    Examples
    --------
    >>> enc = plain_arrays("y ~ x", pd.DataFrame({"y": [1.0, 2.0], "x": [3, 4]}))
    >>> enc.rhs_columns, enc.rhs.tolist(), enc.lhs[:, 0].tolist()
    (('Intercept', 'x'), [[1.0, 3.0], [1.0, 4.0]], [1.0, 2.0])
    """
    plain = plain_formula(formula)
    if plain is None:
        return None
    lhs = _plain_values(data, plain.lhs, False) if plain.lhs else None
    if plain.lhs and lhs is None:
        return None
    rhs = _plain_values(data, plain.rhs, plain.intercept)
    if rhs is None:
        return None
    spec = PlainSpec(formula.split("~", 1)[1].strip(), plain.rhs, plain.intercept)
    return PlainArrays(lhs, rhs, plain.lhs, plain.columns, spec)


@dataclass(frozen=True)
class PlainSpec:
    """What formulaic's ``ModelSpec`` is to a design, for a plain right-hand side: encodes
    new data the same way (numbers and bools as floats; other columns to formulaic, which
    refuses them as it refuses them with its own spec).

    Examples
    --------
    >>> spec = PlainSpec("x", ("x",), True)
    >>> spec.get_model_matrix(pd.DataFrame({"x": [2, 3]})).to_numpy().tolist()
    [[1.0, 2.0], [1.0, 3.0]]
    """

    rhs: str
    names: tuple[str, ...]
    intercept: bool
    factor_contrasts: Mapping[str, Any] = None  # no factors (bayesfmm.frame.fitted_levels)

    def get_model_matrix(self, data: pd.DataFrame, na_action: str = "ignore", context: Any = None) -> pd.DataFrame:
        values = _plain_values(data, self.names, self.intercept, allow_bool=True)
        if values is not None:
            return _frame(values, PlainFormula((), self.names, self.intercept).columns, data.index)
        from formulaic import model_matrix

        matrix = model_matrix(self.rhs, data, na_action=na_action, context=context or {})
        expected = list(PlainFormula((), self.names, self.intercept).columns)
        if list(matrix.columns) != expected:
            raise ValueError(
                f"the terms of {self.rhs!r} give the columns {list(matrix.columns)} on these data, "
                f"not {expected} as in the fit (a numeric column became text or categorical?)"
            )
        return matrix


def model_matrices(formula: str, data: pd.DataFrame, context: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """``(lhs, rhs, model_spec)`` of ``formula`` on ``data`` with ``na_action="ignore"``
    (``lhs`` None for a one-sided formula): in numpy for a plain formula on numeric
    columns, else by formulaic.

    Examples
    --------
    >>> lhs, rhs, spec = model_matrices("y ~ x", pd.DataFrame({"y": [1.0, 2.0], "x": [3, 4]}), {})
    >>> list(rhs.columns), rhs.to_numpy().tolist(), type(spec).__name__
    (['Intercept', 'x'], [[1.0, 3.0], [1.0, 4.0]], 'PlainSpec')
    """
    plain = plain_arrays(formula, data)
    if plain is not None:
        lhs = None if plain.lhs is None else _frame(plain.lhs, plain.lhs_columns, data.index)
        return lhs, _frame(plain.rhs, plain.rhs_columns, data.index), plain.spec
    return formulaic_matrices(formula, data, context)


def formulaic_matrices(formula: str, data: pd.DataFrame, context: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """:func:`model_matrices` by formulaic alone (for a formula :func:`plain_arrays` left
    to it)."""
    from formulaic import ModelMatrices, model_matrix

    matrices = model_matrix(formula, data, na_action="ignore", context=context)
    if isinstance(matrices, ModelMatrices):
        return matrices.lhs, matrices.rhs, matrices.rhs.model_spec
    return None, matrices, matrices.model_spec


def lhs_matrix(formula: str, data: pd.DataFrame, context: Mapping[str, Any]) -> Any:
    """The response columns of ``formula`` on ``data`` (new data encoded with a fitted spec).

    Examples
    --------
    >>> lhs_matrix("y ~ x", pd.DataFrame({"y": [1.0, 2.0]}), {}).to_numpy().ravel().tolist()
    [1.0, 2.0]
    """
    return model_matrices(formula.split("~", 1)[0] + "~ 1", data, context)[0]
