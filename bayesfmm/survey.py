"""Survey designs: Stata's ``svyset`` as a frozen spec, read on the data by ``build_design``.

:class:`SurveyDesign` names the sampling weights, strata, primary sampling units (PSUs) and
finite population correction of a complex sample, and what to do with strata holding a
single PSU. :func:`survey_rows` reads those columns (the one place they are read, called by
:func:`bayesfmm.design.build_design`) into a :class:`SurveySample`: the design over every
row of the sample, and the strata and PSUs of the estimation rows (the subpopulation).

Which rows belong to the design, as Stata's ``svy`` decides it:

- rows with a missing weight, stratum, PSU or fpc leave the design (a DataWarning);
- rows of the subpopulation (every row without ``subpop=``) with a missing model variable
  leave the design too (listwise deletion, a DataWarning);
- rows outside the subpopulation stay in the design whatever their model variables hold:
  they contribute zero scores, but their PSUs and strata count.

The variance itself is :mod:`bayesfmm.ml.survey_vce`; the design degrees of freedom
(PSUs minus strata) give the t and F reference distributions of
:mod:`bayesfmm.inference` and :class:`bayesfmm.results.MLResults`.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from bayesfmm.errors import DataError, DataWarning, SpecificationError, check_alpha, rows_text
from bayesfmm.frame import Groups, check_columns, drop_missing
from bayesfmm.ops import Lazy

fdtrc, ndtr, ndtri, stdtr, stdtrit = (Lazy("scipy.special", f) for f in ("fdtrc", "ndtr", "ndtri", "stdtr", "stdtrit"))

__all__ = [
    "SINGLEUNIT",
    "SurveyDesign",
    "SurveySample",
    "survey_rows",
    "design_df",
    "critical_value",
    "two_sided_p",
    "adjusted_wald",
    "refuse_under_survey",
]

SINGLEUNIT = ("fail", "certainty", "scaled", "centered")
_COLUMN_OPTIONS = ("weights", "strata", "psu", "fpc")


@dataclass(frozen=True)
class SurveyDesign:
    """A survey design, as Stata's ``svyset psu [pweight=weights], strata() fpc() singleunit()``.

    Parameters
    ----------
    weights
        Sampling weights (Stata's ``pweight``): inverse selection probabilities. None gives
        every row weight 1.
    strata
        The stratum column; None: one stratum.
    psu
        The primary sampling unit (cluster) column; None: every row is its own PSU
        (Stata's ``svyset _n``). PSU labels are nested within strata (the same label in two
        strata names two PSUs), as Stata and R's ``svydesign(nest=TRUE)`` treat them.
    fpc
        Finite population correction: per stratum, either the number of PSUs in the
        population (values above 1) or the sampling fraction (values in (0, 1]), constant
        within a stratum. None: sampling with replacement (no correction).
    singleunit
        Strata with a single PSU (Stata's ``singleunit()``): ``"fail"`` (a DataError naming
        them), ``"certainty"`` (they contribute no variance), ``"scaled"`` (the variance of
        the other strata scaled up by ``H / (H - H1)``) or ``"centered"`` (their PSU total
        centred at the grand mean of the PSU totals).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> design = bf.SurveyDesign(weights="pw", strata="str", psu="psu")
    >>> print(design)
    svyset psu [pweight=pw], strata(str) singleunit(fail)
    """

    weights: str | None = None
    strata: str | None = None
    psu: str | None = None
    fpc: str | None = None
    singleunit: str = "fail"

    def __post_init__(self) -> None:
        for option in _COLUMN_OPTIONS:
            value = getattr(self, option)
            if value is not None and (not isinstance(value, str) or not value):
                raise SpecificationError(f"SurveyDesign({option}=) must be a column name or None, got {value!r}")
        if not isinstance(self.singleunit, str) or self.singleunit not in SINGLEUNIT:
            raise SpecificationError(
                f"SurveyDesign(singleunit={self.singleunit!r}) is not recognised; choose from {', '.join(SINGLEUNIT)}"
            )
        named = [c for c in self.columns().values()]
        twice = sorted({c for c in named if named.count(c) > 1})
        if twice:
            options = [o for o, c in self.columns().items() if c in twice]
            raise SpecificationError(f"SurveyDesign options {options} name the same column {twice[0]!r}")

    def columns(self) -> dict[str, str]:
        """``{option: column}`` of the options that name a column."""
        return {o: getattr(self, o) for o in _COLUMN_OPTIONS if getattr(self, o) is not None}

    def __str__(self) -> str:
        weight = f" [pweight={self.weights}]" if self.weights else ""
        strata = f" strata({self.strata})" if self.strata else ""
        fpc = f" fpc({self.fpc})" if self.fpc else ""
        return f"svyset {self.psu or '_n'}{weight},{strata}{fpc} singleunit({self.singleunit})"


@dataclass(frozen=True, eq=False)
class SurveySample:
    """A survey design read on the data: the whole design, and the estimation units in it.

    ``weights`` are the sampling weights of the estimation rows; ``strata`` and ``psu`` the
    0-based stratum and PSU codes of each likelihood unit (row, or group with ``group=``),
    PSU codes running over every PSU of the design; ``psu_stratum`` the stratum of each PSU
    and ``fraction`` the sampling fraction ``f_h`` of each stratum (0 without ``fpc``).
    """

    design: SurveyDesign
    subpop: str | None
    weights: np.ndarray
    strata: np.ndarray
    psu: np.ndarray
    psu_stratum: np.ndarray
    fraction: np.ndarray
    strata_labels: pd.Index
    n_obs: int  # rows in the design
    population: float  # sum of the weights over the design
    subpop_obs: int  # rows of the subpopulation that were used
    subpop_size: float  # their weights' sum
    n_dropped: int = 0

    @property
    def n_strata(self) -> int:
        return int(self.fraction.size)

    @property
    def n_psu(self) -> int:
        return int(self.psu_stratum.size)

    @property
    def df(self) -> int:
        """Stata's design degrees of freedom: PSUs minus strata."""
        return self.n_psu - self.n_strata

    @property
    def psu_per_stratum(self) -> np.ndarray:
        return np.bincount(self.psu_stratum, minlength=self.n_strata)

    def for_units(self, groups: Groups | None, index: pd.Index) -> "SurveySample":
        """The codes per likelihood unit: with ``group=`` a group must lie in one PSU."""
        if groups is None:
            return self
        varies = np.flatnonzero(self.psu[groups.first][groups.codes] != self.psu)
        if varies.size:
            raise DataError(
                f"the PSUs (SurveyDesign(psu={self.design.psu!r})) vary within groups of {groups.column!r} "
                f"(rows {rows_text(index, varies)}): a group is one likelihood unit, so it must lie in one PSU"
            )
        return dataclasses.replace(self, strata=self.strata[groups.first], psu=self.psu[groups.first])

    def header(self) -> list[str]:
        """Stata's survey header lines."""
        lines = [
            f"Number of strata = {self.n_strata:>10,}",
            f"Number of PSUs   = {self.n_psu:>10,}",
            f"Population size  = {self.population:>14,.4f}",
            f"Design df        = {self.df:>10,}",
        ]
        if self.subpop is not None:
            lines += [f"Subpop. no. obs  = {self.subpop_obs:>10,}", f"Subpop. size     = {self.subpop_size:>14,.4f}"]
        return lines


def survey_rows(
    survey: Any, subpop: Any, data: pd.DataFrame, variables: Sequence[str]
) -> tuple[pd.DataFrame, SurveySample]:
    """The estimation rows of ``data`` and the design they lie in (see the module notes).

    ``variables`` are the model's columns (missing values there drop a subpopulation row).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "s": [1, 1, 2, 2], "c": [1, 2, 1, 2]})
    >>> rows, sample = survey_rows(SurveyDesign(strata="s", psu="c"), None, df, ["y"])
    >>> sample.n_strata, sample.n_psu, sample.df
    (2, 4, 2)
    """
    if not isinstance(survey, SurveyDesign):
        raise SpecificationError(f"survey= takes a bf.SurveyDesign, got {type(survey).__name__}")
    if subpop is not None and (not isinstance(subpop, str) or not subpop):
        raise SpecificationError(f"subpop= must be a column name (1/True in the subpopulation), got {subpop!r}")
    for option, column in survey.columns().items():
        check_columns(data, [column], f"SurveyDesign({option}=)")
    if subpop is not None:
        check_columns(data, [subpop], "subpop=")
    n_total = len(data)
    data, _ = drop_missing(data, list(survey.columns().values()))
    in_sub = _subpop_mask(data, subpop)
    data, in_sub = _drop_incomplete(data, in_sub, list(variables), subpop)
    weights = _weights(data, survey.weights)
    strata, labels = _codes(data, survey.strata)
    psu, psu_stratum = _psu_codes(data, survey.psu, strata)
    fraction = _fraction(data, survey.fpc, strata, np.bincount(psu_stratum, minlength=len(labels)))
    _check_single_units(survey, data, strata, labels, psu_stratum, fraction)
    if weights[in_sub].sum() <= 0:
        raise DataError("the sampling weights are 0 in every row of the subpopulation: nothing to fit")
    sample = SurveySample(
        design=survey,
        subpop=subpop,
        weights=weights[in_sub],
        strata=strata[in_sub],
        psu=psu[in_sub],
        psu_stratum=psu_stratum,
        fraction=fraction,
        strata_labels=labels,
        n_obs=len(data),
        population=float(weights.sum()),
        subpop_obs=int(in_sub.sum()),
        subpop_size=float(weights[in_sub].sum()),
        n_dropped=n_total - len(data),
    )
    if sample.df < 1:
        raise DataError(
            f"the design has {sample.n_psu} PSU(s) in {sample.n_strata} stratum/strata: no degrees of freedom "
            "are left for the variance (Stata's design df = PSUs - strata)"
        )
    return data.loc[in_sub], sample


def _subpop_mask(data: pd.DataFrame, subpop: str | None) -> np.ndarray:
    if subpop is None:
        return np.ones(len(data), dtype=bool)
    raw = data[subpop]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isin(values, (0.0, 1.0)))
    if bad.size:
        raise DataError(
            f"subpop column {subpop!r} must hold 1/True (in the subpopulation) or 0/False; rows "
            f"{rows_text(data.index, bad)} hold {raw.iloc[bad[:5]].tolist()}"
        )
    mask = values == 1.0
    if not mask.any():
        raise DataError(f"subpop column {subpop!r} is 0 in every row: the subpopulation is empty")
    return mask


def _drop_incomplete(data, in_sub, variables, subpop):
    """Drop the subpopulation's rows with a missing model variable from the design."""
    if subpop is None:
        data, _ = drop_missing(data, variables)
        return data, np.ones(len(data), dtype=bool)
    bad = in_sub & data[variables].isna().any(axis=1).to_numpy()
    if bad.all() or not (in_sub & ~bad).any():
        raise DataError(f"every row of the subpopulation has a missing value in {', '.join(variables)}")
    if bad.any():
        positions = np.flatnonzero(bad)
        warnings.warn(
            f"{positions.size} rows of the subpopulation {subpop!r} dropped from the design for missing "
            f"values in the model's variables; rows {rows_text(data.index, positions)}",
            DataWarning,
            stacklevel=5,
        )
    return data.loc[~bad], in_sub[~bad]


def _weights(data: pd.DataFrame, column: str | None) -> np.ndarray:
    if column is None:
        return np.ones(len(data))
    w = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        raise DataError(
            f"weights column {column!r} (SurveyDesign(weights=)) must hold non-negative numbers; rows "
            f"{rows_text(data.index, bad)} hold {data[column].iloc[bad[:5]].tolist()}"
        )
    return w


def _codes(data: pd.DataFrame, column: str | None) -> tuple[np.ndarray, pd.Index]:
    if column is None:
        return np.zeros(len(data), dtype=int), pd.Index([1])
    codes, labels = pd.factorize(data[column], sort=True)
    return codes, pd.Index(labels, name=column)


def _psu_codes(data: pd.DataFrame, column: str | None, strata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSU codes nested in strata, and the stratum of each PSU."""
    if column is None:
        return np.arange(len(data)), strata.copy()
    pairs = pd.MultiIndex.from_arrays([strata, pd.factorize(data[column], sort=True)[0]])
    codes, uniques = pd.factorize(pairs, sort=True)
    return codes, np.asarray(uniques.get_level_values(0), dtype=int)


def _fraction(data: pd.DataFrame, column: str | None, strata: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The sampling fraction ``f_h`` of each stratum from the fpc column."""
    if column is None:
        return np.zeros(m.size)
    fpc = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(fpc) | (fpc <= 0))
    if bad.size:
        raise DataError(
            f"fpc column {column!r} must hold positive numbers (PSUs in the population, or a sampling "
            f"fraction in (0, 1]); rows {rows_text(data.index, bad)} hold {data[column].iloc[bad[:5]].tolist()}"
        )
    per_stratum = np.zeros(m.size)
    per_stratum[strata] = fpc
    varies = np.flatnonzero(per_stratum[strata] != fpc)
    if varies.size:
        raise DataError(
            f"fpc column {column!r} must be constant within each stratum; rows {rows_text(data.index, varies)} differ"
        )
    rates = per_stratum <= 1
    if rates.any() and not rates.all():
        raise DataError(
            f"fpc column {column!r} mixes sampling fractions (<= 1) and population sizes (> 1) across strata"
        )
    if rates.all():
        return per_stratum
    small = np.flatnonzero(per_stratum < m)
    if small.size:
        rows = np.flatnonzero(np.isin(strata, small))
        raise DataError(
            f"fpc column {column!r} gives fewer PSUs in the population than in the sample (rows "
            f"{rows_text(data.index, rows)}: population {per_stratum[small[:5]].tolist()}, sampled {m[small[:5]].tolist()})"
        )
    return m / per_stratum


def _check_single_units(survey, data, strata, labels, psu_stratum, fraction) -> None:
    m = np.bincount(psu_stratum, minlength=len(labels))
    single = np.flatnonzero((m == 1) & (fraction < 1))
    if single.size and survey.singleunit == "fail":
        rows = np.flatnonzero(np.isin(strata, single))
        which = f"strata {labels[single[:5]].tolist()} of {survey.strata!r} have" if survey.strata else "the sample has"
        raise DataError(
            f"{which} a single PSU (rows "
            f"{rows_text(data.index, rows)}): their variance cannot be estimated; choose "
            "SurveyDesign(singleunit='certainty', 'scaled' or 'centered'), as Stata's singleunit()"
        )


# -- reference distributions under a survey design ------------------------------
def design_df(res) -> int | None:
    """The design degrees of freedom of a fit (None: not a survey fit, normal reference)."""
    design = getattr(res, "design", None)
    sample = getattr(design, "survey", None)
    return None if sample is None else sample.df


def critical_value(alpha: float, df: float | None) -> float:
    """``z_{1-alpha/2}``, or ``t_{df, 1-alpha/2}`` under a survey design.

    Examples
    --------
    >>> round(critical_value(0.05, None), 4), round(critical_value(0.05, 10), 4)
    (1.96, 2.2281)
    """
    alpha = check_alpha(alpha)  # a user typing 95 gets a clear error, not NaN
    return float(ndtri(1 - alpha / 2)) if df is None else float(stdtrit(df, 1 - alpha / 2))


def two_sided_p(stat: np.ndarray | float, df: float | None):
    """Two-sided p-value of a z (``df`` None) or t statistic."""
    stat = np.abs(stat)
    return 2 * ndtr(-stat) if df is None else 2 * stdtr(df, -stat)


def adjusted_wald(chi2: float, k: int, d: int) -> tuple[float, int, int, float]:
    """Stata's adjusted Wald test under ``svy`` (Korn and Graubard):
    ``F = (d - k + 1) / (k d) * chi2`` on ``(k, d - k + 1)`` degrees of freedom.

    Returns ``(F, df1, df2, pvalue)``; NaN when ``d - k + 1 < 1`` (too few PSUs).

    Examples
    --------
    >>> F, df1, df2, p = adjusted_wald(6.0, 2, 20)
    >>> round(F, 4), df1, df2
    (2.85, 2, 19)
    """
    df2 = d - k + 1
    if df2 < 1:
        return np.nan, k, df2, np.nan
    F = (d - k + 1) / (k * d) * chi2
    return float(F), k, df2, float(fdtrc(k, df2, F))


def refuse_under_survey(res, what: str) -> None:
    """Stata refuses likelihood-ratio tests and information criteria after ``svy``."""
    if design_df(res) is not None:
        raise SpecificationError(
            f"{what} is not available after a survey fit (survey=): with sampling weights and a complex "
            "design the log likelihood is a pseudo-likelihood, not a likelihood, so likelihood-ratio tests "
            "and information criteria do not apply (Stata refuses them after svy too); use res.test() "
            "(the adjusted Wald F test) instead"
        )
