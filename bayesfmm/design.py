"""From a specification and a DataFrame to arrays: responses, design matrices, class model.

Missing values are dropped listwise over every variable the model uses (as Stata does),
with a :class:`~bayesfmm.errors.DataWarning` giving the count. Every data problem raises a
:class:`~bayesfmm.errors.DataError` naming the column, the rows and what was expected.
The formulaic ``ModelSpec`` of each design is kept so new data can be re-encoded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from bayesfmm.errors import DataError, DataWarning
from bayesfmm.families.base import Family
from bayesfmm.spec import FMM, Component

__all__ = ["ComponentDesign", "ClassDesign", "Design", "build_design", "encode_component", "estimation_rows"]


# Names a formula may call besides formulaic's own transforms (log, exp, center, C, ...):
# ``log(x)``, ``sqrt(x)`` and ``np.log(x + 10)`` work with no import in the user's code.
# An explicit context (rather than the caller's frame) keeps ModelSpec re-encoding of new
# data (predict) evaluating the same names.
FORMULA_CONTEXT: Mapping[str, Any] = {"np": np, "log": np.log, "exp": np.exp, "sqrt": np.sqrt}


@dataclass(frozen=True, eq=False)
class ComponentDesign:
    """Arrays of one component: response, one design per family slot, offset."""

    component: Component
    family: Family
    response: str
    y: np.ndarray
    slot_designs: tuple[np.ndarray, ...]
    slot_terms: tuple[tuple[str, ...], ...]
    offset: np.ndarray
    extra: Mapping[str, Any] = field(default_factory=dict)
    model_spec: Any = None


@dataclass(frozen=True, eq=False)
class ClassDesign:
    """Design of one non-base class's multinomial-logit equation."""

    Z: np.ndarray
    terms: tuple[str, ...]
    model_spec: Any = None


@dataclass(frozen=True, eq=False)
class Design:
    """Everything the likelihood needs, for ``n`` rows kept after dropping missing values."""

    spec: FMM
    n: int
    index: pd.Index
    classes: tuple[tuple[ComponentDesign, ...], ...]
    class_designs: tuple[ClassDesign | None, ...]
    n_dropped: int = 0

    @property
    def k(self) -> int:
        return len(self.classes)

    @property
    def base(self) -> int:
        """0-based index of the base class."""
        return self.spec.lcbase - 1


def _formula_variables(formula: str) -> list[str]:
    """Variables a formula uses: the response's first, then the right-hand side's."""
    from formulaic import Formula

    parsed = Formula(formula)
    lhs = sorted(set(parsed.lhs.required_variables) - set(FORMULA_CONTEXT)) if hasattr(parsed, "lhs") else []
    rhs = sorted(set(parsed.required_variables) - set(lhs) - set(FORMULA_CONTEXT))
    return lhs + rhs


def _model_variables(spec: FMM) -> list[str]:
    names: dict[str, None] = {}
    formulas = [c.formula for c in spec.components]
    formulas += [c.lcprob for c in spec.components if c.lcprob]
    if spec.lcprob:
        formulas.append(spec.lcprob)
    for formula in formulas:
        for var in _formula_variables(formula):
            names.setdefault(var, None)
    for comp in spec.components:
        for column in (comp.offset, comp.exposure, *_extra_column_names(comp)):
            if column:
                names.setdefault(column, None)
    return list(names)


def _extra_column_names(comp: Component) -> list[str]:
    return [v for v in comp.family.extra_columns.values() if isinstance(v, str)]


def _numeric_column(data: pd.DataFrame, column: str, what: str) -> np.ndarray:
    values = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{what} column {column!r} must be numeric; rows {_rows(data.index, bad)} are not")
    return values


def _extra_arrays(comp: Component, data: pd.DataFrame) -> dict[str, np.ndarray]:
    """Resolve the family's extra columns (names or constants) into arrays."""
    out = {}
    for key, source in comp.family.extra_columns.items():
        if isinstance(source, str):
            out[key] = _numeric_column(data, source, f"{key}")
        else:
            out[key] = np.full(len(data), float(source))
    return out


def _rows(index: pd.Index, positions: np.ndarray, limit: int = 5) -> str:
    shown = [repr(v) for v in index[positions[:limit]]]
    more = f" and {positions.size - limit} more" if positions.size > limit else ""
    return ", ".join(shown) + more


def _check_columns(data: pd.DataFrame, variables: list[str]) -> None:
    missing = [v for v in variables if v not in data.columns]
    if missing:
        available = ", ".join(map(str, list(data.columns)[:20]))
        raise DataError(
            f"column(s) {', '.join(map(repr, missing))} named in the model are not in the data; "
            f"available columns: {available}"
        )


def _drop_missing(data: pd.DataFrame, variables: list[str]) -> tuple[pd.DataFrame, int]:
    na = data[variables].isna()
    bad = na.any(axis=1).to_numpy()
    if not bad.any():
        return data, 0
    if bad.all():
        raise DataError(
            f"every row has a missing value in {', '.join(variables)}: no observations left"
        )
    counts = {col: int(na[col].sum()) for col in variables if na[col].any()}
    detail = ", ".join(f"{col!r} ({cnt})" for col, cnt in counts.items())
    positions = np.flatnonzero(bad)
    warnings.warn(
        f"{positions.size} of {len(data)} rows dropped for missing values in {detail}; "
        f"rows {_rows(data.index, positions)}",
        DataWarning,
        stacklevel=5,
    )
    return data.loc[~bad], int(positions.size)


def estimation_rows(spec: FMM, data: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the rows :func:`build_design` keeps (no missing model variable), so
    that columns outside the model (``cluster=``, ``classid``) line up with the design."""
    return ~data[_model_variables(spec)].isna().any(axis=1).to_numpy()


def _numeric_response(data: pd.DataFrame, name: str, variables: set[str]) -> None:
    """Refuse a response column that is not numeric, naming the offending rows."""
    for var in sorted(variables):
        column = data[var]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            continue
        as_number = pd.to_numeric(column, errors="coerce")
        bad = np.flatnonzero(as_number.isna().to_numpy() & column.notna().to_numpy())
        if bad.size == 0 and not isinstance(column.dtype, pd.CategoricalDtype):
            raise DataError(
                f"response column {var!r} of {name!r} has dtype {column.dtype}; expected numbers"
            )
        values = column.iloc[bad[:5]].tolist() if bad.size else column.iloc[:5].tolist()
        raise DataError(
            f"response column {var!r} of {name!r} must be numeric; rows "
            f"{_rows(data.index, bad if bad.size else np.arange(min(5, len(column))))} "
            f"hold {values}"
        )


def check_support(
    family: Family, y: np.ndarray, name: str, index: pd.Index, extra: Mapping[str, np.ndarray] | None = None
) -> None:
    """Refuse responses outside the family's support, naming the rows by their labels.

    ``family.in_support(y, extra)`` gives the mask of accepted rows (``extra`` for supports
    that depend on per-row data, such as ``y <= trials``).
    """
    bad = np.flatnonzero(~np.asarray(family.in_support(y, extra or {}), dtype=bool))
    if bad.size:
        raise DataError(
            f"{family.name} response {name!r} must be {family.support}; rows "
            f"{_rows(index, bad)} hold {y[bad[:5]].tolist()}"
        )


def _finite_design(matrix: pd.DataFrame, formula: str, index: pd.Index) -> np.ndarray:
    values = np.asarray(matrix, dtype=float)
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        cols = [c for c, ok in zip(matrix.columns, np.isfinite(values[bad]).all(axis=0)) if not ok]
        raise DataError(
            f"terms {cols} of {formula!r} are not finite in rows {_rows(index, bad)} "
            "(a transform such as log of a non-positive value?)"
        )
    return values


def encode_component(comp: Component, data: pd.DataFrame, model_spec: Any = None):
    """Encode one component on ``data``: ``(y, X, terms, offset, model_spec)``."""
    from formulaic import model_matrix

    try:
        if model_spec is None:
            with np.errstate(all="ignore"):  # non-finite transforms are reported below
                matrices = model_matrix(comp.formula, data, na_action="ignore", context=FORMULA_CONTEXT)
            lhs, rhs = matrices.lhs, matrices.rhs
            model_spec = rhs.model_spec
        else:
            rhs = model_spec.get_model_matrix(data, na_action="ignore", context=FORMULA_CONTEXT)
            lhs = model_matrix(
                comp.formula.split("~", 1)[0] + "~ 1", data, na_action="ignore", context=FORMULA_CONTEXT
            ).lhs
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"could not build the design of {comp.formula!r}: {exc}") from None
    if lhs.shape[1] != 1:
        raise DataError(
            f"the response of {comp.formula!r} must be one numeric column, got {list(lhs.columns)}"
        )
    y = _finite_design(lhs, comp.formula, data.index)[:, 0]
    X = _finite_design(rhs, comp.formula, data.index)
    offset = np.zeros(len(data))
    if comp.offset is not None:
        offset = offset + _numeric_column(data, comp.offset, "offset")
    if comp.exposure is not None:
        exposure = _numeric_column(data, comp.exposure, "exposure")
        bad = np.flatnonzero(exposure <= 0)
        if bad.size:
            raise DataError(
                f"exposure column {comp.exposure!r} must be positive; rows {_rows(data.index, bad)} "
                f"hold {exposure[bad[:5]].tolist()}"
            )
        offset = offset + np.log(exposure)
    return y, X, tuple(map(str, rhs.columns)), offset, model_spec


def _component_design(comp: Component, data: pd.DataFrame) -> ComponentDesign:
    from formulaic import Formula

    lhs_vars = set(Formula(comp.formula).lhs.required_variables) - set(FORMULA_CONTEXT)
    _numeric_response(data, comp.formula, lhs_vars)
    y, X, terms, offset, model_spec = encode_component(comp, data)
    family = comp.family
    extra = _extra_arrays(comp, data)
    check_support(family, y, comp.response, data.index, extra)
    designs, names = [], []
    ones = np.ones((len(y), 1))
    for slot in family.slots:
        if slot.linear:
            designs.append(X)
            names.append(terms)
        else:
            designs.append(ones)
            names.append((slot.report_name or slot.name,))
    if X.shape[1] > 0:
        rank = np.linalg.matrix_rank(X)
        if rank < X.shape[1]:
            raise DataError(
                f"the design of {comp.formula!r} is rank deficient (rank {rank} for "
                f"{X.shape[1]} terms {list(terms)}): drop a collinear term"
            )
    return ComponentDesign(
        component=comp,
        family=family,
        response=comp.response,
        y=y,
        slot_designs=tuple(designs),
        slot_terms=tuple(names),
        offset=offset,
        extra=extra,
        model_spec=model_spec,
    )


def _class_design(formula: str | None, data: pd.DataFrame) -> ClassDesign:
    from formulaic import model_matrix

    if formula is None:
        return ClassDesign(Z=np.ones((len(data), 1)), terms=("Intercept",))
    try:
        rhs = model_matrix(formula, data, na_action="ignore", context=FORMULA_CONTEXT)
    except Exception as exc:
        raise DataError(f"could not build the class model {formula!r}: {exc}") from None
    Z = _finite_design(rhs, formula, data.index)
    return ClassDesign(Z=Z, terms=tuple(map(str, rhs.columns)), model_spec=rhs.model_spec)


def build_design(spec: FMM, data: pd.DataFrame) -> Design:
    """Validate ``data`` against ``spec`` and encode it.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.design import build_design
    >>> d = build_design(bf.FMM("thickness ~ 1", k=3), bf.datasets.load("stamp"))
    >>> d.n, d.k
    (485, 3)
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    variables = _model_variables(spec)
    _check_columns(data, variables)
    data, n_dropped = _drop_missing(data, variables)
    built: dict[int, ComponentDesign] = {}
    for i, comp in enumerate(spec.components):
        built[i] = _component_design(comp, data)
    classes = tuple(
        tuple(built[spec.components.index(c)] for c in spec.class_components(j))
        for j in range(spec.k)
    )
    shared: dict[str | None, ClassDesign] = {}
    class_designs = []
    for j in range(spec.k):
        formula = spec.class_lcprob(j)
        if j == spec.lcbase - 1:
            class_designs.append(None)
            continue
        if formula not in shared:
            shared[formula] = _class_design(formula, data)
        class_designs.append(shared[formula])
    for cdesign in dict.fromkeys(built.values()):
        distinct = len(pd.unique(cdesign.y))
        if spec.k > distinct and not spec.hybrid:
            raise DataError(
                f"response {cdesign.response!r} has {distinct} distinct value(s) but k={spec.k} "
                "classes were asked for: each class needs distinct responses to be identified"
            )
    n = len(data)
    if n < 1:
        raise DataError("no observations")
    return Design(
        spec=spec,
        n=n,
        index=data.index,
        classes=classes,
        class_designs=tuple(class_designs),
        n_dropped=n_dropped,
    )


def design_for_new_data(design: Design, data: pd.DataFrame, need_response: bool) -> Design:
    """Encode new rows with the fitted design's formulaic ModelSpecs (for ``predict``).

    Columns must be present; when ``need_response`` is false a missing response column is
    filled with a placeholder (only densities and posterior probabilities need ``y``).
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    spec = design.spec
    data = data.copy()
    if not need_response:
        from formulaic import Formula

        for comps in design.classes:
            for comp in comps:
                for var in set(Formula(comp.component.formula).lhs.required_variables) - set(FORMULA_CONTEXT):
                    if var not in data.columns:
                        data[var] = comp.y[0]
    variables = _model_variables(spec)
    _check_columns(data, variables)
    data, n_dropped = _drop_missing(data, variables)
    built: dict[int, ComponentDesign] = {}
    for comps in design.classes:
        for comp in comps:
            if id(comp) in built:
                continue
            y, X, terms, offset, _ = encode_component(comp.component, data, comp.model_spec)
            extra = _extra_arrays(comp.component, data)
            if need_response:
                check_support(comp.family, y, comp.response, data.index, extra)
            ones = np.ones((len(y), 1))
            designs = tuple(X if slot.linear else ones for slot in comp.family.slots)
            built[id(comp)] = ComponentDesign(
                component=comp.component,
                family=comp.family,
                response=comp.response,
                y=y,
                slot_designs=designs,
                slot_terms=comp.slot_terms,
                offset=offset,
                extra=extra,
                model_spec=comp.model_spec,
            )
    classes = tuple(tuple(built[id(c)] for c in comps) for comps in design.classes)
    class_designs = []
    for cd in design.class_designs:
        if cd is None or cd.model_spec is None:
            class_designs.append(
                None if cd is None else ClassDesign(Z=np.ones((len(data), 1)), terms=cd.terms)
            )
            continue
        Z = _finite_design(cd.model_spec.get_model_matrix(data, na_action="ignore", context=FORMULA_CONTEXT), "lcprob", data.index)
        class_designs.append(ClassDesign(Z=Z, terms=cd.terms, model_spec=cd.model_spec))
    return Design(
        spec=spec,
        n=len(data),
        index=data.index,
        classes=classes,
        class_designs=tuple(class_designs),
        n_dropped=n_dropped,
    )
