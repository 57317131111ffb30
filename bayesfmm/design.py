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
from bayesfmm.families.base import ExtraColumn, Family
from bayesfmm.spec import FMM, Component

__all__ = ["ComponentDesign", "ClassDesign", "Design", "Groups", "build_design", "encode_component", "estimation_rows"]


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
    levels: tuple[Any, ...] | None = None  # outcome levels of a categorical response (ologit, mlogit)


@dataclass(frozen=True, eq=False)
class ClassDesign:
    """Design of one non-base class's multinomial-logit equation."""

    Z: np.ndarray
    terms: tuple[str, ...]
    model_spec: Any = None


@dataclass(frozen=True, eq=False)
class Groups:
    """Rows grouped into likelihood units (``group=``): all rows of a group share one class.

    ``codes[i]`` is the 0-based group of row ``i``; ``first[g]`` the first row of group ``g``
    (where its class-model covariates are read); ``sizes[g]`` its row count; ``matrix`` the
    sparse ``G x n`` indicator that sums rows into groups.
    """

    column: str
    codes: np.ndarray
    labels: pd.Index
    first: np.ndarray
    sizes: np.ndarray
    matrix: Any

    @property
    def n_groups(self) -> int:
        return int(self.sizes.size)

    def sum_rows(self, values: np.ndarray) -> np.ndarray:
        """Sum per-row values (n or n x m) within groups."""
        return np.asarray(self.matrix @ values)

    @classmethod
    def from_labels(cls, column: str, values: pd.Series) -> "Groups":
        from scipy import sparse

        codes, labels = pd.factorize(values, sort=False)
        n, g = codes.size, len(labels)
        sizes = np.bincount(codes, minlength=g)
        first = np.full(g, n, dtype=int)
        np.minimum.at(first, codes, np.arange(n))
        matrix = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(g, n))
        return cls(column, codes, pd.Index(labels, name=column), first, sizes, matrix)


@dataclass(frozen=True, eq=False)
class Design:
    """Everything the likelihood needs, for ``n`` rows kept after dropping missing values.

    The likelihood is a product over *units*: rows, or groups of rows when ``groups`` is
    set. ``weights`` (per row, None for unweighted) multiply each unit's log likelihood;
    with groups they are constant within a group and ``unit_weights`` holds one per group.
    """

    spec: FMM
    n: int
    index: pd.Index
    classes: tuple[tuple[ComponentDesign, ...], ...]
    class_designs: tuple[ClassDesign | None, ...]
    n_dropped: int = 0
    weights: np.ndarray | None = None
    groups: Groups | None = None

    @property
    def n_units(self) -> int:
        return self.n if self.groups is None else self.groups.n_groups

    @property
    def unit_weights(self) -> np.ndarray | None:
        if self.weights is None or self.groups is None:
            return self.weights
        return self.weights[self.groups.first]

    @property
    def weight_type(self) -> str | None:
        return None if self.weights is None else self.spec.weight_type

    @property
    def nobs(self) -> int:
        """Observations as Stata counts them: the sum of frequency weights, else rows."""
        if self.weights is not None and self.spec.weight_type == "fweight":
            return int(round(float(self.weights.sum())))
        return self.n

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
    kept = _missing_allowed_responses(spec)
    for formula in formulas:
        for var in _formula_variables(formula):
            if (formula, var) not in kept:
                names.setdefault(var, None)
    for comp in spec.components:
        for column in (comp.offset, comp.exposure, *_extra_column_names(comp)):
            if column:
                names.setdefault(column, None)
    return list(names)


def _missing_allowed_responses(spec: FMM) -> set[tuple[str, str]]:
    """``(formula, variable)`` of responses whose missing values are information (intreg's
    unbounded lower limit): they must not drop rows."""
    from formulaic import Formula

    out = set()
    for comp in spec.components:
        hook = comp.family.response_hook
        if hook is not None and hook.missing_response:
            for var in set(Formula(comp.formula).lhs.required_variables) - set(FORMULA_CONTEXT):
                out.add((comp.formula, var))
    return out


def _extra_column_names(comp: Component) -> list[str]:
    """Extra columns that drop rows where missing (plain names, ExtraColumn without ``missing``)."""
    names = []
    for source in comp.family.extra_columns.values():
        if isinstance(source, ExtraColumn):
            if isinstance(source.column, str) and source.missing is None:
                names.append(source.column)
        elif isinstance(source, str):
            names.append(source)
    return names


def _numeric_column(data: pd.DataFrame, column: str, what: str) -> np.ndarray:
    values = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{what} column {column!r} must be numeric; rows {_rows(data.index, bad)} are not")
    return values


def _extra_arrays(comp: Component, data: pd.DataFrame, need_response: bool = True) -> dict[str, np.ndarray]:
    """Resolve the family's extra columns (names, constants or ExtraColumn) into arrays.

    An :class:`ExtraColumn` whose ``missing`` is set may be absent from new data when the
    response is not needed (``predict`` of means): its rows then take that value.
    """
    out = {}
    for key, source in comp.family.extra_columns.items():
        if isinstance(source, ExtraColumn):
            out[key] = _extra_column_values(comp, key, source, data, need_response)
        elif isinstance(source, str):
            out[key] = _numeric_column(data, source, f"{key}")
        else:
            out[key] = np.full(len(data), float(source))
    return out


def _extra_column_values(
    comp: Component, key: str, source: ExtraColumn, data: pd.DataFrame, need_response: bool
) -> np.ndarray:
    role = source.role or key
    if not isinstance(source.column, str):
        return np.full(len(data), float(source.column))
    column = source.column
    if column not in data.columns:
        if source.missing is not None and not need_response:
            return np.full(len(data), float(source.missing))
        raise DataError(
            f"{role} column {column!r} of {comp.family_name} component {comp.formula!r} is not in the data"
        )
    raw = data[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values) & raw.notna().to_numpy())
    if source.missing is None:
        bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(
            f"{role} column {column!r} must be numeric; rows {_rows(data.index, bad)} hold "
            f"{raw.iloc[bad[:5]].tolist()}"
        )
    if source.missing is not None:
        values = np.where(np.isnan(values), float(source.missing), values)
    if source.allowed is not None:
        bad = np.flatnonzero(~np.isin(values, np.asarray(source.allowed, dtype=float)))
        if bad.size:
            allowed = " or ".join(f"{v:g}" for v in source.allowed)
            raise DataError(
                f"{role} column {column!r} must hold {allowed}; rows {_rows(data.index, bad)} "
                f"hold {values[bad[:5]].tolist()}"
            )
    return values


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


def _structure_variables(spec: FMM) -> list[str]:
    """The group and weight columns, which drop rows like model variables."""
    return [c for c in (spec.group, spec.weights) if c is not None]


def _all_variables(spec: FMM) -> list[str]:
    return list(dict.fromkeys(_model_variables(spec) + _structure_variables(spec)))


def estimation_rows(spec: FMM, data: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the rows :func:`build_design` keeps (no missing model variable), so
    that columns outside the model (``cluster=``, ``classid``) line up with the design."""
    return ~data[_all_variables(spec)].isna().any(axis=1).to_numpy()


def _weights(spec: FMM, data: pd.DataFrame) -> np.ndarray | None:
    if spec.weights is None:
        return None
    w = _numeric_column(data, spec.weights, "weights")
    bad = np.flatnonzero(w < 0)
    if bad.size:
        raise DataError(
            f"weights column {spec.weights!r} must be non-negative; rows {_rows(data.index, bad)} hold {w[bad[:5]].tolist()}"
        )
    if spec.weight_type == "fweight":
        bad = np.flatnonzero(w != np.round(w))
        if bad.size:
            raise DataError(
                f"fweight column {spec.weights!r} must hold whole numbers (frequencies); rows "
                f"{_rows(data.index, bad)} hold {w[bad[:5]].tolist()}; use weight_type='iweight' or 'pweight'"
            )
    if not np.any(w > 0):
        raise DataError(f"weights column {spec.weights!r} is 0 in every row: nothing to fit")
    return w


def _groups(spec: FMM, data: pd.DataFrame, class_designs, weights: np.ndarray | None) -> Groups | None:
    """Group structure of ``group=``, checking what must be constant within a group."""
    if spec.group is None:
        return None
    groups = Groups.from_labels(spec.group, data[spec.group])
    codes = groups.codes
    for cdesign in dict.fromkeys(d for d in class_designs if d is not None):
        varies = np.any(cdesign.Z != cdesign.Z[groups.first][codes], axis=1)
        if varies.any():
            rows = np.flatnonzero(varies)
            bad_groups = pd.unique(groups.labels[codes[rows]])[:5].tolist()
            raise DataError(
                f"class-model covariates {list(cdesign.terms)} vary within groups of {spec.group!r} "
                f"(groups {bad_groups}; rows {_rows(data.index, rows)}): with group= a whole group "
                "is in one class, so its class probabilities must be one per group"
            )
    if weights is not None:
        varies = weights != weights[groups.first][codes]
        if varies.any():
            rows = np.flatnonzero(varies)
            raise DataError(
                f"weights column {spec.weights!r} varies within groups of {spec.group!r} (rows "
                f"{_rows(data.index, rows)}): with group= the weight is one per group"
            )
    return groups


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


def _plain_response(comp: Component, data: pd.DataFrame) -> str:
    """The response column of a family that reads it itself (ResponseHook)."""
    name = comp.response
    if name not in data.columns:
        raise DataError(
            f"the {comp.family_name} response must be a column of the data, not an expression: "
            f"{name!r} in {comp.formula!r} (create the column first)"
        )
    return name


def _encode_hooked(comp: Component, family: Family, data: pd.DataFrame, model_spec: Any = None):
    """Encode a component whose family reads the response itself: the right-hand side on
    the data with a placeholder response, the intercept dropped where the family says so."""
    response = _plain_response(comp, data)
    placeholder = data.assign(**{response: 0.0})
    _, X, terms, offset, model_spec = encode_component(comp, placeholder, model_spec)
    if family.response_hook.drop_intercept and "Intercept" in terms:
        keep = [i for i, t in enumerate(terms) if t != "Intercept"]
        X, terms = X[:, keep], tuple(terms[i] for i in keep)
    return response, X, terms, offset, model_spec


def _component_design(comp: Component, data: pd.DataFrame) -> ComponentDesign:
    from formulaic import Formula

    family = comp.family
    hook = family.response_hook
    if hook is None:
        lhs_vars = set(Formula(comp.formula).lhs.required_variables) - set(FORMULA_CONTEXT)
        _numeric_response(data, comp.formula, lhs_vars)
        y, X, terms, offset, model_spec = encode_component(comp, data)
    else:
        response, X, terms, offset, model_spec = _encode_hooked(comp, family, data)
        family, y = hook.bind(data[response], response, data.index)
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
        levels=family.options.get("levels") if hook is not None else None,
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
    variables = _all_variables(spec)
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
    weights = _weights(spec, data)
    return Design(
        spec=spec,
        n=n,
        index=data.index,
        classes=classes,
        class_designs=tuple(class_designs),
        n_dropped=n_dropped,
        weights=weights,
        groups=_groups(spec, data, class_designs, weights),
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
    grouped = spec.group is not None and spec.group in data.columns
    if spec.group is not None and need_response and not grouped:
        raise DataError(
            f"the model is grouped by {spec.group!r} (a group's rows share one class), so posterior "
            f"class probabilities and densities on new data need the column {spec.group!r}"
        )
    data, n_dropped = _drop_missing(data, variables + ([spec.group] if grouped else []))
    built: dict[int, ComponentDesign] = {}
    for comps in design.classes:
        for comp in comps:
            if id(comp) in built:
                continue
            hook = comp.family.response_hook
            if hook is None:
                y, X, terms, offset, _ = encode_component(comp.component, data, comp.model_spec)
            else:  # the fitted family keeps its levels: new data are coded the same way
                response, X, terms, offset, _ = _encode_hooked(comp.component, comp.family, data, comp.model_spec)
                if need_response:
                    y = hook.bind(data[response], response, data.index)[1]
                else:
                    y = np.full(len(data), comp.y[0])
            extra = _extra_arrays(comp.component, data, need_response)
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
                levels=comp.levels,
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
        # new rows are unweighted; with the group column present they are grouped as in the
        # fit (posterior class probabilities per group), else each row stands alone
        groups=_groups(spec, data, class_designs, None) if grouped else None,
    )
