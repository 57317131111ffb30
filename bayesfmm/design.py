"""From a specification and a DataFrame to arrays: responses, design matrices, class model.

Missing values are dropped listwise over every variable the model uses (as Stata does),
with a :class:`~bayesfmm.errors.DataWarning` giving the count. Every data problem raises a
:class:`~bayesfmm.errors.DataError` naming the column, the rows and what was expected.
The formulaic ``ModelSpec`` of each design is kept so new data can be re-encoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from bayesfmm.errors import DataError, rows_text
from bayesfmm.families.base import ExtraColumn, Family, with_response_terms
from bayesfmm.formula import formula_sides, formulaic_matrices, lhs_matrix, plain_arrays, response_terms
from bayesfmm.frame import (
    Groups,
    as_frame,
    check_columns,
    check_model_names,
    check_new_levels,
    check_outcome_levels,
    check_rank,
    check_regressor_columns,
    check_rows,
    check_unique_columns,
    design_rank,
    drop_missing,
    drop_unused_categories,
    extra_column_values,
    factor_variables,
    fitted_levels,
    numeric_column,
    numeric_columns,
    numeric_response,
    plain_dtypes,
    row_groups,
    row_weights,
    sample_columns,
    unit_clusters,
)
from bayesfmm.spec import Component, ModelSpec
from bayesfmm.survey import SurveySample, survey_rows

__all__ = ["ComponentDesign", "ClassDesign", "Design", "Groups", "build_design", "encode_component"]


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
class Design:
    """Everything the likelihood needs, for ``n`` rows kept after dropping missing values.

    The likelihood is a product over *units*: rows, or groups of rows when ``groups`` is
    set. ``weights`` (per row, None for unweighted) multiply each unit's log likelihood;
    with groups they are constant within a group and ``unit_weights`` holds one per group.
    """

    spec: ModelSpec
    n: int
    index: pd.Index
    classes: tuple[tuple[ComponentDesign, ...], ...]
    class_designs: tuple[ClassDesign | None, ...]
    n_dropped: int = 0
    weights: np.ndarray | None = None
    groups: Groups | None = None
    cluster: str | None = None  # the cluster column of vce="cluster"
    clusters: np.ndarray | None = None  # its codes, one per likelihood unit
    n_clusters: int | None = None
    start_columns: np.ndarray | None = None  # columns a start method reads (classid, classpr)
    survey: SurveySample | None = None  # fit(survey=): the design the estimation units lie in

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
        if self.weights is None:
            return None
        return "pweight" if self.survey is not None else self.spec.weight_type

    @property
    def nobs(self) -> int:
        """Observations as Stata counts them: the sum of frequency weights, else rows."""
        if self.weight_type == "fweight":
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
    lhs, rhs = formula_sides(formula, FORMULA_CONTEXT)
    return lhs + sorted(set(rhs) - set(lhs))


def _model_variables(spec: ModelSpec) -> list[str]:
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


def _missing_allowed_responses(spec: ModelSpec) -> set[tuple[str, str]]:
    """``(formula, variable)`` of responses whose missing values are information (intreg's
    unbounded lower limit): they must not drop rows."""
    out = set()
    for comp in spec.components:
        hook = comp.family.response_hook
        if hook is not None and hook.missing_response:
            for var in formula_sides(comp.formula, FORMULA_CONTEXT)[0]:
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


def _extra_arrays(comp: Component, data: pd.DataFrame, need_response: bool = True) -> dict[str, np.ndarray]:
    """Resolve the family's extra columns (names, constants or ExtraColumn) into arrays.

    An :class:`ExtraColumn` whose ``missing`` is set may be absent from new data when the
    response is not needed (``predict`` of means): its rows then take that value.
    """
    out = {}
    for key, source in comp.family.extra_columns.items():
        if isinstance(source, ExtraColumn):
            out[key] = extra_column_values(comp, key, source, data, need_response)
        elif isinstance(source, str):
            out[key] = numeric_column(data, source, f"{key}")
        else:
            out[key] = np.full(len(data), float(source))
    return out


def _structure_variables(spec: ModelSpec) -> list[str]:
    """The group and weight columns, which drop rows like model variables."""
    return [c for c in (spec.group, spec.weights) if c is not None]


def _all_variables(spec: ModelSpec) -> list[str]:
    return list(dict.fromkeys(_model_variables(spec) + _structure_variables(spec)))


def _read_frame(spec: ModelSpec, data: Any, variables: list[str], extra: Sequence[str] = ()) -> pd.DataFrame:
    """The frame as pandas, its columns checked: present, unique, not reserved, no dates
    and no stray strings among the regressors (:mod:`bayesfmm.frame`)."""
    data = as_frame(data)
    check_rows(data)
    check_columns(data, variables)
    check_unique_columns(data, [*variables, *extra])
    roles = []  # (formula, responses, right-hand-side variables)
    for formula in [c.formula for c in spec.components] + [f for f in (spec.lcprob, *(c.lcprob for c in spec.components)) if f]:
        roles.append((formula, *formula_sides(formula, FORMULA_CONTEXT)))
    check_model_names(roles)
    factors = [v for formula, _, _ in roles for v in factor_variables(formula)]
    regressors = [v for _, _, rhs in roles for v in rhs if v in data.columns]
    check_regressor_columns(data, regressors, factors)
    return plain_dtypes(data, regressors)


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
            f"{rows_text(index, bad)} hold {y[bad[:5]].tolist()}"
        )


def _finite_values(values: np.ndarray, columns: Sequence[str], formula: str, index: pd.Index) -> np.ndarray:
    """``values`` when every entry is finite; else a DataError naming the terms and rows."""
    finite = np.isfinite(values)
    if finite.all():
        return values
    bad = np.flatnonzero(~finite.all(axis=1))
    cols = [str(c) for c, ok in zip(columns, finite[bad].all(axis=0)) if not ok]
    raise DataError(
        f"terms {cols} of {formula!r} are not finite in rows {rows_text(index, bad)} "
        "(a transform such as log of a non-positive value?)"
    )


def _finite_design(matrix: pd.DataFrame, formula: str, index: pd.Index) -> np.ndarray:
    return _finite_values(np.asarray(matrix, dtype=float), list(matrix.columns), formula, index)


def _encoded(formula: str, data: pd.DataFrame):
    """``(lhs, lhs names, rhs, rhs names, model_spec)`` of ``formula`` on ``data``: in numpy
    for a plain formula on numeric columns (no data frame built), else by formulaic
    (``lhs`` None for a one-sided formula)."""
    plain = plain_arrays(formula, data)
    if plain is not None:
        return plain.lhs, plain.lhs_columns, plain.rhs, plain.rhs_columns, plain.spec
    with np.errstate(all="ignore"):  # non-finite transforms are reported by _finite_values
        lhs, rhs, model_spec = formulaic_matrices(formula, data, FORMULA_CONTEXT)
    lhs_values = None if lhs is None else np.asarray(lhs, dtype=float)
    lhs_names = () if lhs is None else tuple(map(str, lhs.columns))
    return lhs_values, lhs_names, np.asarray(rhs, dtype=float), tuple(map(str, rhs.columns)), model_spec


def encode_component(comp: Component, data: pd.DataFrame, model_spec: Any = None, multi: bool = False):
    """Encode one component on ``data``: ``(y, X, terms, offset, model_spec)``; with
    ``multi`` (a family of several responses) ``y`` is n x d, one column per response."""
    try:
        if model_spec is None:
            lhs, lhs_names, rhs, terms, model_spec = _encoded(comp.formula, data)
        else:
            matrix = model_spec.get_model_matrix(data, na_action="ignore", context=FORMULA_CONTEXT)
            response = lhs_matrix(comp.formula, data, FORMULA_CONTEXT)
            lhs, lhs_names = np.asarray(response, dtype=float), tuple(map(str, response.columns))
            rhs, terms = np.asarray(matrix, dtype=float), tuple(map(str, matrix.columns))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"could not build the design of {comp.formula!r}: {exc}") from None
    if lhs.shape[1] != 1 and not multi:
        raise DataError(
            f"the response of {comp.formula!r} must be one numeric column, got {list(lhs_names)}"
        )
    y = _finite_values(lhs, lhs_names, comp.formula, data.index)
    y = y if multi else y[:, 0]
    X = _finite_values(rhs, terms, comp.formula, data.index)
    offset = np.zeros(len(data))
    if comp.offset is not None:
        offset = offset + numeric_column(data, comp.offset, "offset")
    if comp.exposure is not None:
        exposure = numeric_column(data, comp.exposure, "exposure")
        bad = np.flatnonzero(exposure <= 0)
        if bad.size:
            raise DataError(
                f"exposure column {comp.exposure!r} must be positive; rows {rows_text(data.index, bad)} "
                f"hold {exposure[bad[:5]].tolist()}"
            )
        offset = offset + np.log(exposure)
    return y, X, terms, offset, model_spec


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
    family = comp.family
    hook = family.response_hook
    if hook is None or hook.multi_response:
        lhs_vars = set(formula_sides(comp.formula, FORMULA_CONTEXT)[0])
        numeric_response(data, comp.formula, lhs_vars)
        y, X, terms, offset, model_spec = encode_component(comp, data, multi=hook is not None)
        if hook is not None:  # several responses: the family is bound to their number and names
            family, y = hook.bind(y, response_terms(comp.formula), data.index)
    else:
        response, X, terms, offset, model_spec = _encode_hooked(comp, family, data)
        family, y = hook.bind(data[response], response, data.index)
        check_outcome_levels(family, comp.response)
    extra = _extra_arrays(comp, data)
    check_support(family, y, comp.response, data.index, extra)
    designs, names = _slot_designs(family, X, terms, extra)
    for D, T in {id(D): (D, T) for D, T, s in zip(designs, names, family.slots) if s.linear}.values():
        rank = design_rank(D) if D.shape[1] > 0 else 0
        if rank < D.shape[1]:
            raise DataError(
                f"the design of {comp.formula!r} is rank deficient (rank {rank} for "
                f"{D.shape[1]} terms {list(T)}): drop a collinear term"
            )
    return ComponentDesign(
        component=comp,
        family=family,
        response=comp.response,
        y=y,
        slot_designs=tuple(designs),
        slot_terms=tuple(names),
        offset=offset,
        extra=with_response_terms(family, y, extra),  # log y!, log y, ...: once per design
        model_spec=model_spec,
        levels=family.options.get("levels") if hook is not None else None,
    )


def _slot_designs(family: Family, X: np.ndarray, terms: tuple[str, ...], extra: Mapping[str, np.ndarray]):
    """Each slot's design and term names: a linear slot's is ``X`` with the family's own
    per-row columns appended (``family.options["slot_columns"]``: per slot, ``(term, key of
    extra)`` pairs; ivregress's endogenous regressors and instruments), an auxiliary
    slot's a column of ones."""
    added = tuple(family.options.get("slot_columns", ())) + ((),) * family.n_slots
    designs, names = [], []
    ones = np.ones((X.shape[0], 1))  # one array for every auxiliary slot (mvnormal has dozens)
    for slot, more in zip(family.slots, added):
        if slot.linear:
            designs.append(np.column_stack([X, *(extra[key] for _, key in more)]) if more else X)
            names.append(tuple(terms) + tuple(term for term, _ in more))
        else:
            designs.append(ones)
            names.append((slot.report_name or slot.name,))
    return designs, names


def _class_design(formula: str | None, data: pd.DataFrame) -> ClassDesign:
    if formula is None:
        return ClassDesign(Z=np.ones((len(data), 1)), terms=("Intercept",))
    try:
        _, _, rhs, terms, model_spec = _encoded(formula, data)
    except Exception as exc:
        raise DataError(f"could not build the class model {formula!r}: {exc}") from None
    Z = _finite_values(rhs, terms, formula, data.index)
    check_rank(Z, terms, formula, "the class model")
    return ClassDesign(Z=Z, terms=terms, model_spec=model_spec)


def _distinct_up_to(y: np.ndarray, k: int) -> int:
    """The number of distinct values of ``y``, counted up to ``k`` (k passes at most, no
    sort: only whether there are fewer than ``k`` is needed)."""
    seen, rest = 0, y
    while rest.size and seen < k:
        rest = rest[rest != rest[0]]
        seen += 1
    return seen


def build_design(
    spec: ModelSpec,
    data: pd.DataFrame,
    *,
    cluster: str | None = None,
    start_columns: Sequence[str] = (),
    survey: Any = None,
    subpop: str | None = None,
) -> Design:
    """Validate ``data`` against ``spec`` and encode it: the one place the data frame is read.

    ``cluster`` (the column of ``vce="cluster"``) and ``start_columns`` (the columns of
    ``startvalues=("classid", col)`` or ``("classpr", ...)``) are read too, on the estimation
    rows; a missing value there is an error rather than a dropped row, so the estimation
    sample does not depend on ``vce=`` or the start method. ``survey`` (a
    :class:`~bayesfmm.survey.SurveyDesign`) and ``subpop`` are read by
    :func:`bayesfmm.survey.survey_rows`: the estimation rows are the subpopulation's, the
    survey weights become the (sampling) weights.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.design import build_design
    >>> d = build_design(bf.FMM("thickness ~ 1", k=3), bf.datasets.load("stamp"))
    >>> d.n, d.k
    (485, 3)
    """
    variables = _all_variables(spec)
    data = _read_frame(spec, data, variables, [c for c in (cluster, *start_columns) if c is not None])
    sample = None
    if survey is not None:
        data, sample = survey_rows(survey, subpop, data, variables)
    data, n_dropped = drop_missing(data, variables)
    if len(data) < 2:
        raise DataError(f"{len(data)} observation(s) (rows {list(data.index)}): a model needs more observations than parameters")
    data = drop_unused_categories(data, variables)
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
        distinct = _distinct_up_to(cdesign.y, spec.k) if cdesign.y.ndim == 1 else len(np.unique(cdesign.y, axis=0))
        if spec.k > distinct and not spec.hybrid:
            raise DataError(
                f"response {cdesign.response!r} has {distinct} distinct value(s) but k={spec.k} "
                "classes were asked for: each class needs distinct responses to be identified"
            )
    n = len(data)
    weights = row_weights(spec, data) if sample is None else sample.weights
    groups = row_groups(spec, data, class_designs, weights)
    sample = None if sample is None else sample.for_units(groups, data.index)
    clusters, n_clusters = unit_clusters(data, cluster, groups) if cluster is not None else (None, None)
    starts = None
    if start_columns:
        method = "classid" if len(start_columns) == 1 else "classpr"
        starts = numeric_columns(sample_columns(data, start_columns, method), method)
    return Design(
        spec=spec,
        n=n,
        index=data.index,
        classes=classes,
        class_designs=tuple(class_designs),
        n_dropped=n_dropped + (0 if sample is None else sample.n_dropped),
        weights=weights,
        groups=groups,
        cluster=cluster,
        clusters=clusters,
        n_clusters=n_clusters,
        start_columns=starts,
        survey=sample,
    )


def design_for_new_data(design: Design, data: pd.DataFrame, need_response: bool) -> Design:
    """Encode new rows with the fitted design's formulaic ModelSpecs (for ``predict``).

    Columns must be present; when ``need_response`` is false a missing response column is
    filled with a placeholder (only densities and posterior probabilities need ``y``).
    """
    spec = design.spec
    data = as_frame(data).copy()
    if not need_response:
        for comps in design.classes:
            for comp in comps:
                for var in formula_sides(comp.component.formula, FORMULA_CONTEXT)[0]:
                    if var not in data.columns:
                        data[var] = np.ravel(comp.y)[0]
    variables = _model_variables(spec)
    data = _read_frame(spec, data, variables)
    grouped = spec.group is not None and spec.group in data.columns
    if spec.group is not None and need_response and not grouped:
        raise DataError(
            f"the model is grouped by {spec.group!r} (a group's rows share one class), so posterior "
            f"class probabilities and densities on new data need the column {spec.group!r}"
        )
    data, n_dropped = drop_missing(data, variables + ([spec.group] if grouped else []))
    specs = [c.model_spec for comps in design.classes for c in comps] + [c.model_spec for c in design.class_designs if c]
    check_new_levels(data, fitted_levels(specs))
    built: dict[int, ComponentDesign] = {}
    for comps in design.classes:
        for comp in comps:
            if id(comp) in built:
                continue
            hook = comp.family.response_hook
            if hook is None or hook.multi_response:
                y, X, terms, offset, _ = encode_component(
                    comp.component, data, comp.model_spec, multi=hook is not None
                )
            else:  # the fitted family keeps its levels: new data are coded the same way
                response, X, terms, offset, _ = _encode_hooked(comp.component, comp.family, data, comp.model_spec)
                if need_response:
                    y = hook.bind(data[response], response, data.index)[1]
                else:
                    y = np.full(len(data), comp.y[0])
            extra = _extra_arrays(comp.component, data, need_response)
            if need_response:
                check_support(comp.family, y, comp.response, data.index, extra)
            designs = tuple(_slot_designs(comp.family, X, terms, extra)[0])
            built[id(comp)] = ComponentDesign(
                component=comp.component,
                family=comp.family,
                response=comp.response,
                y=y,
                slot_designs=designs,
                slot_terms=comp.slot_terms,
                offset=offset,
                extra=with_response_terms(comp.family, y, extra),
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
        groups=row_groups(spec, data, class_designs, None) if grouped else None,
    )
