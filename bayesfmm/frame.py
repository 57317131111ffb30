"""Reading the user's data frame: columns present, rows with missing values, numeric
columns, weights, groups and clusters.

Every check names the column, the rows and what was expected (:func:`bayesfmm.errors.rows_text`).
:mod:`bayesfmm.design` calls these while it builds the ``Design``; nothing after the design
reads the raw frame again.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from bayesfmm.errors import DataError, DataWarning, SpecificationError, rows_text
from bayesfmm.spec import ModelSpec

__all__ = ["Groups", "as_frame", "check_rows", "check_unique_columns", "check_regressor_columns", "drop_unused_categories", "check_new_levels", "check_model_names", "check_outcome_levels", "factor_variables", "fitted_levels", "numeric_response", "plain_dtypes", "check_rank", "design_rank", "extra_column_values", "check_columns", "drop_missing", "numeric_column", "numeric_columns", "row_weights", "row_groups", "sample_columns", "unit_clusters"]


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
        from scipy import sparse  # scipy.sparse costs import time: only grouped models need it

        codes, labels = pd.factorize(values, sort=False)
        n, g = codes.size, len(labels)
        sizes = np.bincount(codes, minlength=g)
        first = np.full(g, n, dtype=int)
        np.minimum.at(first, codes, np.arange(n))
        matrix = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(g, n))
        return cls(column, codes, pd.Index(labels, name=column), first, sizes, matrix)



def check_columns(data: pd.DataFrame, variables: Sequence[str], what: str | None = None) -> None:
    """Refuse names that are not columns of ``data`` (``what``: the option that named them)."""
    missing = [v for v in variables if v not in data.columns]
    if missing:
        available = ", ".join(map(str, list(data.columns)[:20]))
        named = "named in the model" if what is None else f"given as {what}"
        raise DataError(
            f"column(s) {', '.join(map(repr, missing))} {named} are not in the data; "
            f"available columns: {available}"
        )


def _missing(column: pd.Series) -> np.ndarray:
    """``column.isna()`` as numpy: NaN of a numpy float column by ``np.isnan`` (a fifth of
    pandas' time), integers and bools never missing, anything else by pandas."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return np.isnan(column.to_numpy())
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return np.zeros(len(column), dtype=bool)
    return column.isna().to_numpy()


def drop_missing(data: pd.DataFrame, variables: list[str]) -> tuple[pd.DataFrame, int]:
    """``data`` without the rows missing a value in ``variables`` (with a DataWarning
    naming the columns and rows), and how many rows were dropped."""
    # column by column: a quarter of the time of data[variables].isna().any(axis=1), which
    # builds two frames (the same mask)
    na = {col: _missing(data[col]) for col in dict.fromkeys(variables)}
    bad = np.logical_or.reduce(list(na.values())) if na else np.zeros(len(data), dtype=bool)
    if not bad.any():
        return data, 0
    if bad.all():
        raise DataError(
            f"every row has a missing value in {', '.join(variables)}: no observations left"
        )
    counts = {col: int(mask.sum()) for col, mask in na.items() if mask.any()}
    detail = ", ".join(f"{col!r} ({cnt})" for col, cnt in counts.items())
    positions = np.flatnonzero(bad)
    warnings.warn(
        f"{positions.size} of {len(data)} rows dropped for missing values in {detail}; "
        f"rows {rows_text(data.index, positions)}",
        DataWarning,
        stacklevel=5,
    )
    return data.loc[~bad], int(positions.size)


def numeric_column(data: pd.DataFrame, column: str, what: str) -> np.ndarray:
    if _is_datetime(data[column]):  # pandas would turn dates into nanoseconds
        raise DataError(f"{what} column {column!r} holds dates or times ({data[column].dtype}); it must be numeric")
    values = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{what} column {column!r} must be numeric; rows {rows_text(data.index, bad)} are not")
    return values



def numeric_columns(frame: pd.DataFrame, what: str) -> np.ndarray:
    """The columns of ``frame`` as a float array; a missing or non-numeric value is a DataError."""
    values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        raise DataError(
            f"{what} column(s) {list(frame.columns)} must be numeric; rows "
            f"{rows_text(frame.index, bad)} are not"
        )
    return values


def row_weights(spec: ModelSpec, data: pd.DataFrame) -> np.ndarray | None:
    if spec.weights is None:
        return None
    w = numeric_column(data, spec.weights, "weights")
    bad = np.flatnonzero(w < 0)
    if bad.size:
        raise DataError(
            f"weights column {spec.weights!r} must be non-negative; rows {rows_text(data.index, bad)} hold {w[bad[:5]].tolist()}"
        )
    if spec.weight_type == "fweight":
        bad = np.flatnonzero(w != np.round(w))
        if bad.size:
            raise DataError(
                f"fweight column {spec.weights!r} must hold whole numbers (frequencies); rows "
                f"{rows_text(data.index, bad)} hold {w[bad[:5]].tolist()}; use weight_type='iweight' or 'pweight'"
            )
    if not np.any(w > 0):
        raise DataError(f"weights column {spec.weights!r} is 0 in every row: nothing to fit")
    return w


def row_groups(spec: ModelSpec, data: pd.DataFrame, class_designs, weights: np.ndarray | None) -> Groups | None:
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
                f"(groups {bad_groups}; rows {rows_text(data.index, rows)}): with group= a whole group "
                "is in one class, so its class probabilities must be one per group"
            )
    if weights is not None:
        varies = weights != weights[groups.first][codes]
        if varies.any():
            rows = np.flatnonzero(varies)
            raise DataError(
                f"weights column {spec.weights!r} varies within groups of {spec.group!r} (rows "
                f"{rows_text(data.index, rows)}): with group= the weight is one per group"
            )
    return groups



def sample_columns(data: pd.DataFrame, columns: Sequence[str], what: str) -> pd.DataFrame:
    """Columns outside the model, on the estimation rows ``data``; a missing value is a DataError.

    Stata drops such rows; here the estimation sample must not depend on ``vce=`` or the
    start method, so the user decides (drop or fill them).
    """
    columns = list(columns)
    absent = [c for c in columns if c not in data.columns]
    if absent:
        available = ", ".join(map(str, list(data.columns)[:20]))
        raise DataError(f"{what} column(s) {', '.join(map(repr, absent))} not in the data; available columns: {available}")
    frame = data[columns]
    na = frame.isna().any(axis=1).to_numpy()
    if na.any():
        positions = np.flatnonzero(na)
        raise DataError(
            f"{what} column(s) {', '.join(map(repr, columns))} have missing values in rows "
            f"{rows_text(frame.index, positions)} of the estimation sample ({positions.size} rows); drop those "
            f"rows (data.dropna(subset={columns!r})) or fill them"
        )
    return frame


def unit_clusters(data: pd.DataFrame, column: str, groups: Groups | None) -> tuple[np.ndarray, int]:
    """Cluster codes per likelihood unit (rows, or groups with ``group=``: a group must lie
    within one cluster) and the number of clusters, from ``data`` (the estimation rows)."""
    codes, uniques = pd.factorize(sample_columns(data, [column], "cluster")[column])
    if groups is None:
        return codes, len(uniques)
    per_group = codes[groups.first]
    varies = np.flatnonzero(per_group[groups.codes] != codes)
    if varies.size:
        raise DataError(
            f"cluster column {column!r} varies within groups of {groups.column!r} (rows "
            f"{rows_text(data.index, varies)}): a group is one likelihood unit, so it must lie in one cluster"
        )
    return per_group, len(uniques)


# -- what a frame may be, and what its columns may hold -----------------------------------
def as_frame(data: Any, what: str = "data") -> pd.DataFrame:
    """``data`` as a pandas DataFrame: pandas itself, or any frame with ``to_pandas()``
    (polars, pyarrow, cudf, ...) or the dataframe interchange protocol (``__dataframe__``).

    Examples
    --------
    >>> import pandas as pd, pyarrow as pa
    >>> as_frame(pa.table({"y": [1.0, 2.0]})).columns.tolist()
    ['y']
    """
    if isinstance(data, pd.DataFrame):
        return data
    kind = f"{type(data).__module__.split('.')[0]}.{type(data).__name__}"
    for method in ("to_pandas", "__dataframe__"):
        if not hasattr(data, method):
            continue
        try:
            with warnings.catch_warnings():  # pandas deprecates the protocol; it still works
                warnings.simplefilter("ignore")
                out = data.to_pandas() if method == "to_pandas" else pd.api.interchange.from_dataframe(data)
        except Exception as exc:  # the other library's own error, named
            raise DataError(f"{what}: could not convert the {kind} to a pandas DataFrame with {method}(): {exc}") from None
        if isinstance(out, pd.DataFrame):
            return out
    raise DataError(
        f"{what} must be a pandas DataFrame or a frame that converts to one (polars, or any frame with "
        f"to_pandas() or the dataframe interchange protocol), got {kind}"
    )


def check_rows(data: pd.DataFrame, what: str = "data") -> None:
    """An empty frame is an error of its own (not "rank deficient" or "every row missing")."""
    if len(data) == 0:
        raise DataError(f"{what} has no rows (columns: {', '.join(map(str, list(data.columns)[:20]))})")


def check_unique_columns(data: pd.DataFrame, variables: Sequence[str]) -> None:
    """Refuse a column name the model reads that the frame holds more than once."""
    duplicated = set(data.columns[data.columns.duplicated()])
    clash = [v for v in dict.fromkeys(variables) if v in duplicated]
    if clash:
        where = {v: np.flatnonzero(data.columns == v).tolist() for v in clash}
        raise DataError(
            "column name(s) used by the model appear more than once in the data: "
            + ", ".join(f"{v!r} (at positions {pos})" for v, pos in where.items())
            + "; rename or drop the duplicates (pandas would silently pick one)"
        )


def _is_datetime(column: pd.Series) -> bool:
    dtype = column.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return True
    if isinstance(dtype, pd.PeriodDtype):
        return True
    if pd.api.types.is_object_dtype(dtype):
        sample = column.dropna().head(20)
        return len(sample) > 0 and all(isinstance(v, (pd.Timestamp, np.datetime64, pd.Timedelta)) or hasattr(v, "isoformat") for v in sample)
    return False


def check_regressor_columns(data: pd.DataFrame, variables: Sequence[str], as_factor: Sequence[str] = ()) -> None:
    """Refuse dates and numeric columns with a stray non-number, naming column and rows.

    A date is no number a model can use; a column whose values are numbers except in a
    few rows (a typo, a "n/a" from a spreadsheet) would otherwise become a factor with one
    level per distinct number. ``as_factor``: variables the formula wraps in ``C()`` (the
    user asked for a factor).
    """
    for var in dict.fromkeys(variables):
        column = data[var]
        if isinstance(column, pd.DataFrame):
            continue  # duplicated name: check_unique_columns has refused it
        if _is_datetime(column):
            raise DataError(
                f"column {var!r} holds dates or times ({column.dtype}); a regressor must be numeric or "
                f"categorical: convert it, e.g. (data[{var!r}] - data[{var!r}].min()).dt.days, or its year"
            )
        if var in as_factor or isinstance(column.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(column):
            continue
        if pd.api.types.is_numeric_dtype(column):
            continue
        present = column.notna().to_numpy()
        if not present.any():
            continue
        numbers = pd.to_numeric(column, errors="coerce").notna().to_numpy()
        stray = np.flatnonzero(present & ~numbers)
        if stray.size and numbers.sum() >= 0.5 * present.sum():
            raise DataError(
                f"column {var!r} holds numbers except in rows {rows_text(data.index, stray)}, which hold "
                f"{column.iloc[stray[:5]].tolist()}: fix or drop those rows (pd.to_numeric(data[{var!r}], "
                f"errors='coerce') makes them missing), or write C({var}) to treat the column as categorical"
            )


def drop_unused_categories(data: pd.DataFrame, variables: Sequence[str]) -> pd.DataFrame:
    """Categorical columns with levels no row holds (the usual state after filtering) lose
    those levels, with a :class:`DataWarning` (they would give all-zero dummy columns)."""
    notes, changed = [], {}
    for var in dict.fromkeys(variables):
        column = data[var]
        if isinstance(column, pd.Series) and isinstance(column.dtype, pd.CategoricalDtype):
            used = column.cat.remove_unused_categories()
            unused = [c for c in column.cat.categories if c not in set(used.cat.categories)]
            if unused:
                changed[var] = used
                notes.append(f"{var!r}: {unused[:10]}")
    if not changed:
        return data
    warnings.warn(
        "unused categories dropped (no row of the estimation sample holds them): " + "; ".join(notes),
        DataWarning,
        stacklevel=5,
    )
    return data.assign(**changed)


def check_new_levels(data: pd.DataFrame, factors: Mapping[str, Sequence[Any]]) -> None:
    """Refuse levels of a categorical regressor that the fit never saw (``predict`` on new
    data): they would be coded as the reference level. ``factors``: column -> fitted levels."""
    for var, levels in factors.items():
        if var not in data.columns or isinstance(data[var], pd.DataFrame):
            continue
        column = data[var]
        new = np.flatnonzero(column.notna().to_numpy() & ~column.isin(list(levels)).to_numpy())
        if new.size:
            unseen = pd.unique(column.iloc[new]).tolist()
            raise DataError(
                f"column {var!r} holds level(s) {unseen[:10]} not seen in the fit (rows "
                f"{rows_text(data.index, new)}); the fitted levels are {list(levels)[:20]}: a coefficient "
                "for a new level does not exist, so drop those rows or refit with them"
            )


# Names the parameter layout gives a meaning of its own: a column so named would replace
# (Intercept, _cons) or shadow (Class, the class-model equation) a parameter.
RESERVED_COLUMNS = {"Intercept": "the constant term", "_cons": "the constant term (Stata's name)"}
RESERVED_RESPONSES = {"Class": "the class-model equation ([2]Class:Intercept)"}
MAX_OUTCOME_LEVELS = 50


def factor_variables(formula: str) -> list[str]:
    """Variables a formula wraps in ``C()`` (asked for as categorical)."""
    return re.findall(r"\bC\(\s*([A-Za-z_][\w.]*)", formula)


def check_model_names(roles: Sequence[tuple[str, Sequence[str], Sequence[str]]]) -> None:
    """Refuse a response that is also its own regressor (``y ~ y``) or a class-model
    covariate, and column names the layout reserves. ``roles``: ``(formula, responses,
    right-hand-side variables)`` of each component and class-model formula."""
    responses = {v for _, lhs, _ in roles for v in lhs}
    for formula, lhs, rhs in roles:
        both = sorted(set(lhs) & set(rhs))
        if both:
            raise SpecificationError(
                f"{both[0]!r} is both the response and a regressor of {formula!r}: a response cannot "
                "explain itself (write e.g. 'y ~ x' or 'y ~ 1')"
            )
        if not lhs and responses & set(rhs):
            used = sorted(responses & set(rhs))
            raise SpecificationError(
                f"the class model {formula!r} uses the response(s) {used}: class probabilities must not "
                "depend on the outcome they classify; use covariates measured before it"
            )
        for var in (*lhs, *rhs):
            role = RESERVED_COLUMNS.get(var) or (RESERVED_RESPONSES.get(var) if var in lhs else None)
            if role:
                raise DataError(
                    f"column {var!r} in {formula!r} has the name bayesfmm gives {role}, so its parameters "
                    f"would be confused with it; rename the column, e.g. data.rename(columns={{{var!r}: "
                    f"{var.strip('_').lower() + '_'!r}}})"
                )


def check_outcome_levels(family: Any, response: str) -> None:
    """An ordinal or multinomial response with very many levels (a continuous variable
    given to ologit/mlogit) would fit one cutpoint or equation per level for minutes."""
    levels = family.options.get("levels")
    count = getattr(levels, "k", None) if not isinstance(levels, (tuple, list)) else len(levels)
    if count is not None and count > MAX_OUTCOME_LEVELS:
        raise DataError(
            f"{family.name} response {response!r} has {count} distinct levels (more than "
            f"{MAX_OUTCOME_LEVELS}): a categorical outcome with so many levels needs {count - 1} cutpoints "
            "or equations per class; model it as continuous (gaussian, lognormal, ...) or group its "
            "values first (pd.cut)"
        )


def fitted_levels(model_specs: Sequence[Any]) -> dict[str, list]:
    """Column -> the levels a fitted formulaic ModelSpec coded it with (plain ``g`` or
    ``C(g, ...)`` factors), for :func:`check_new_levels`."""
    out: dict[str, list] = {}
    for spec in model_specs:
        for factor, state in (getattr(spec, "factor_contrasts", None) or {}).items():
            expr = str(getattr(factor, "expr", factor))
            inner = factor_variables(expr) if expr.startswith("C(") else [expr]
            if inner:
                known = out.setdefault(inner[0], [])
                known.extend(v for v in state.levels if v not in known)
    return out


def numeric_response(data: pd.DataFrame, name: str, variables: set[str]) -> None:
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
            f"{rows_text(data.index, bad if bad.size else np.arange(min(5, len(column))))} "
            f"hold {values}"
        )


def plain_dtypes(data: pd.DataFrame, variables: Sequence[str]) -> pd.DataFrame:
    """Text columns of pandas' ``string`` (or Arrow) dtype as plain objects, which formulaic
    codes as categorical (it would pass the strings on as numbers)."""
    changed = {
        var: data[var].astype(object).where(data[var].notna(), None)
        for var in dict.fromkeys(variables)
        if var in data.columns and isinstance(data[var], pd.Series)
        and pd.api.types.is_string_dtype(data[var].dtype) and not pd.api.types.is_object_dtype(data[var].dtype)
        and not isinstance(data[var].dtype, pd.CategoricalDtype)
    }
    return data.assign(**changed) if changed else data


FULL_RANK_EIGEN_RATIO = 1e-4  # Gram eigenvalues min/max above this: full rank without an SVD


def design_rank(matrix: np.ndarray) -> int:
    """``numpy.linalg.matrix_rank(matrix)`` (an SVD of the n x p matrix, 28 ms at n = 1e6),
    skipped when the p x p Gram matrix proves full rank: its eigenvalues are the squared
    singular values to within ``n p eps`` of the largest, so ``min / max`` above
    :data:`FULL_RANK_EIGEN_RATIO` puts the smallest singular value a factor 100 within the
    largest, far from the SVD's cutoff ``max(n, p) eps``; anything less goes to the SVD.

    Examples
    --------
    >>> x = np.arange(6.0)
    >>> design_rank(np.column_stack([np.ones(6), x])), design_rank(np.column_stack([x, 2 * x]))
    (2, 1)
    """
    n, p = matrix.shape
    if 0 < p <= n and n * p * np.finfo(float).eps < 1e-6:  # the error bound is 1% of the ratio
        gram = matrix.T @ matrix
        if np.isfinite(gram).all():
            eigenvalues = np.linalg.eigvalsh(gram)
            if eigenvalues[0] > FULL_RANK_EIGEN_RATIO * eigenvalues[-1] > 0:
                return p
    return int(np.linalg.matrix_rank(matrix))


def check_rank(matrix: np.ndarray, terms: Sequence[str], formula: str, what: str = "the design") -> None:
    """Refuse collinear columns (their coefficients would not be identified)."""
    if matrix.shape[1] > 0 and matrix.shape[0] > 0:
        rank = design_rank(matrix)
        if rank < matrix.shape[1]:
            raise DataError(
                f"{what} of {formula!r} is rank deficient (rank {rank} for {matrix.shape[1]} terms "
                f"{list(terms)}): drop a collinear or constant term"
            )


def extra_column_values(
    comp: Any, key: str, source: Any, data: pd.DataFrame, need_response: bool
) -> np.ndarray:
    """The values of a family's extra column (an ``ExtraColumn``: trials, failure indicator...)
    on ``data``: numeric, ``missing`` filled, ``allowed`` values checked."""
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
            f"{role} column {column!r} must be numeric; rows {rows_text(data.index, bad)} hold "
            f"{raw.iloc[bad[:5]].tolist()}"
        )
    if source.missing is not None:
        values = np.where(np.isnan(values), float(source.missing), values)
    if source.allowed is not None:
        bad = np.flatnonzero(~np.isin(values, np.asarray(source.allowed, dtype=float)))
        if bad.size:
            allowed = " or ".join(f"{v:g}" for v in source.allowed)
            raise DataError(
                f"{role} column {column!r} must hold {allowed}; rows {rows_text(data.index, bad)} "
                f"hold {values[bad[:5]].tolist()}"
            )
    return values
