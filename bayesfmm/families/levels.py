"""Outcome levels of categorical responses (``ologit``, ``oprobit``, ``mlogit``).

The levels are the distinct values of the response column in sorted order, or a pandas
categorical's own category order (categories with no row are left out). The family works
on a numeric ``y``: the values themselves for a numeric column (so ``predict(kind="mu")``
is in the response's units), the positions 1..K otherwise (strings, categoricals).
The levels found when fitting are kept with the family, so new data for ``predict`` are
coded the same way and an unseen level is a :class:`~bayesfmm.errors.DataError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayesfmm.errors import DataError, rows_text

__all__ = ["Levels", "find_levels", "label_text"]


def label_text(label: Any) -> str:
    """A level as text: ``2`` for 2.0, the string itself otherwise."""
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return str(int(label))
    return str(label)


@dataclass(frozen=True)
class Levels:
    """The outcome levels of a fitted response: ``labels`` as in the data, ``values`` the
    numeric ``y`` each level is coded as (increasing)."""

    labels: tuple[Any, ...]
    values: tuple[float, ...]
    numeric: bool

    @property
    def k(self) -> int:
        return len(self.labels)

    def encode(self, column: pd.Series, name: str, family: str) -> np.ndarray:
        """``y`` for a response column, with these levels; unseen levels are a DataError."""
        if self.numeric:
            raw = _as_numbers(column, name, family)
            ok = np.isin(raw, np.asarray(self.values))
            y = raw
        else:
            mapping = {label: value for label, value in zip(self.labels, self.values)}
            mapped = column.map(lambda v: mapping.get(v, np.nan)).to_numpy(dtype=float)
            ok = np.isfinite(mapped)
            y = mapped
        bad = np.flatnonzero(~ok)
        if bad.size:
            shown = column.iloc[bad[:5]].tolist()
            raise DataError(
                f"{family} response {name!r} must be one of its fitted levels "
                f"{[label_text(v) for v in self.labels]}; rows {rows_text(column.index, bad)} hold {shown}"
            )
        return np.asarray(y, dtype=float)


def _as_numbers(column: pd.Series, name: str, family: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(
            f"{family} response {name!r} must hold finite numbers or categories; rows "
            f"{rows_text(column.index, bad)} hold {column.iloc[bad[:5]].tolist()}"
        )
    return values


def find_levels(column: pd.Series, name: str, family: str) -> Levels:
    """The outcome levels of ``column`` (see the module docstring); fewer than two levels
    is a DataError.

    Examples
    --------
    >>> import pandas as pd
    >>> find_levels(pd.Series([3, 1, 3, 2]), "y", "ologit").values
    (1.0, 2.0, 3.0)
    >>> rating = pd.Series(pd.Categorical(["hi", "lo", "mid"], categories=["lo", "mid", "hi"], ordered=True))
    >>> find_levels(rating, "rating", "ologit").labels
    ('lo', 'mid', 'hi')
    """
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        present = set(column.dropna().unique())
        labels = tuple(c for c in dtype.categories if c in present)
        levels = Levels(labels, tuple(float(i + 1) for i in range(len(labels))), numeric=False)
    elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        values = np.unique(_as_numbers(column.astype(float), name, family))
        levels = Levels(tuple(float(v) for v in values), tuple(float(v) for v in values), numeric=True)
    else:
        distinct = list(pd.unique(column.dropna()))
        try:
            labels = tuple(sorted(distinct))
        except TypeError:  # mixed types: sort by their text
            labels = tuple(sorted(distinct, key=str))
        levels = Levels(labels, tuple(float(i + 1) for i in range(len(labels))), numeric=False)
    if levels.k < 2:
        shown = [label_text(v) for v in levels.labels]
        raise DataError(
            f"{family} response {name!r} has {levels.k} level(s) {shown} in the estimation sample: "
            "a categorical outcome needs at least 2 levels"
        )
    return levels
