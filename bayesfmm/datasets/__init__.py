"""Datasets bundled with bayesfmm: the examples of Stata's ``fmm`` manual and R's flexmix.

Each dataset is a CSV file under ``bayesfmm/datasets/data/``; ``datasets.json`` next to
them records where it comes from and the type of every column, including the order of
factor levels (which fixes the reference level of a categorical variable, as in R).

Examples
--------
>>> import bayesfmm as bf
>>> "stamp" in bf.datasets.names()
True
>>> df = bf.datasets.load("stamp")
>>> df.shape
(485, 1)
>>> bf.datasets.describe("stamp")["rows"]
485
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import pandas as pd

from bayesfmm.errors import DataError

__all__ = ["names", "load", "describe"]

# How each column type of datasets.json is read from the CSV file. Factors are read as
# strings and then given their listed levels; "character" columns stay strings, exactly
# as written (patent's Company keeps its right padding).
_READ_DTYPE: dict[str, Any] = {
    "numeric": "float64",
    "integer": "int64",
    "factor": str,
    "character": str,
}

_CITATIONS: dict[str, str] = {
    "stamp": (
        "Izenman, A. J. and Sommer, C. J. (1988). Philatelic mixtures and multimodal "
        "densities. Journal of the American Statistical Association 83(404), 941-953. "
        "The same values as Stata's stamp.dta."
    ),
    "NregFix": (
        "Simulated. Gruen, B. and Leisch, F. (2008). FlexMix version 2: finite mixtures "
        "with concomitant variables and varying and constant parameters. Journal of "
        "Statistical Software 28(4), 1-35."
    ),
    "betablocker": (
        "Aitkin, M. (1999). A general maximum likelihood analysis of variance components "
        "in generalized linear models. Biometrics 55(1), 117-128 (22-centre beta-blocker "
        "trial)."
    ),
    "fabricfault": (
        "Aitkin, M. (1996). A general maximum likelihood analysis of overdispersion in "
        "generalized linear models. Statistics and Computing 6(3), 251-262."
    ),
    "patent": (
        "Wang, P., Cockburn, I. M. and Puterman, M. L. (1998). Analysis of patent data: "
        "a mixed-Poisson-regression-model approach. Journal of Business & Economic "
        "Statistics 16(1), 27-41."
    ),
    "NPreg": (
        "Simulated. Leisch, F. (2004). FlexMix: a general framework for finite mixture "
        "models and latent class regression in R. Journal of Statistical Software 11(8), "
        "1-18."
    ),
    "bioChemists": (
        "Long, J. S. (1990). The origins of sex differences in science. Social Forces "
        "68(4), 1297-1315."
    ),
    "faithful": (
        "Haerdle, W. (1991). Smoothing Techniques with Implementation in S. Springer; "
        "Azzalini, A. and Bowman, A. W. (1990). A look at some data on the Old Faithful "
        "geyser. Applied Statistics 39(3), 357-365. (R datasets::faithful.)"
    ),
    "galaxies": (
        "Roeder, K. (1990). Density estimation with confidence sets exemplified by "
        "superclusters and voids in the galaxies. Journal of the American Statistical "
        "Association 85(411), 617-624. (R MASS::galaxies.)"
    ),
}

_USED_FOR: dict[str, str] = {
    "stamp": "Stata fmm intro example: fmm 3: regress thickness",
    "NregFix": "Gaussian regression mixture, concomitant w, fixed/nested effects",
    "betablocker": "binomial mixture, class constant within Center",
    "fabricfault": "Poisson mixture with a fixed effect (log Length)",
    "patent": "Poisson mixture with concomitant RDS",
    "NPreg": "Gaussian / Poisson / binary responses, grouping ids",
    "bioChemists": "count mixtures, zero inflation",
    "faithful": "univariate density mixtures",
    "galaxies": "univariate density mixtures",
}


def _data_dir() -> Traversable:
    return resources.files(__name__) / "data"


@cache
def _catalogue() -> dict[str, dict[str, Any]]:
    """The entries of datasets.json, keyed by dataset name (the CSV file's stem)."""
    text = (_data_dir() / "datasets.json").read_text(encoding="utf-8")
    return {entry["file"].removesuffix(".csv"): entry for entry in json.loads(text)}


def _resolve(name: str) -> str:
    """Return the canonical spelling of ``name`` (matched case-insensitively)."""
    if isinstance(name, str):
        by_lower = {key.lower(): key for key in _catalogue()}
        key = by_lower.get(name.lower())
        if key is not None:
            return key
    raise DataError(
        f"unknown dataset {name!r}; available datasets: {', '.join(names())}"
    )


def names() -> list[str]:
    """List the bundled datasets.

    Returns
    -------
    list of str
        Dataset names (the CSV file stems), sorted case-insensitively.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.datasets.names()[:3]
    ['betablocker', 'bioChemists', 'fabricfault']
    """
    return sorted(_catalogue(), key=str.lower)


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a DataFrame with the column types of ``datasets.json``.

    Parameters
    ----------
    name : str
        Dataset name, matched case-insensitively (``"stamp"``, ``"NPreg"``, ...); see
        :func:`names`.

    Returns
    -------
    pandas.DataFrame
        A fresh copy. ``factor`` columns are unordered categoricals whose categories are
        the listed levels (strings) in the listed order, so the first level is the
        reference level; ``integer`` columns are int64, ``numeric`` columns float64 and
        ``character`` columns strings kept exactly as stored.

    Raises
    ------
    bayesfmm.errors.DataError
        If no dataset has this name; the message lists the available names.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> df = bf.datasets.load("betablocker")
    >>> df.shape
    (44, 4)
    >>> list(df["Treatment"].cat.categories)
    ['Control', 'Treated']
    """
    key = _resolve(name)
    entry = _catalogue()[key]
    columns = entry["columns"]
    numeric = [c["name"] for c in columns if c["type"] in ("numeric", "integer")]
    with (_data_dir() / entry["file"]).open("r", encoding="utf-8", newline="") as handle:
        frame = pd.read_csv(
            handle,
            dtype={c["name"]: _READ_DTYPE[c["type"]] for c in columns},
            keep_default_na=False,
            na_values={column: ["NA", ""] for column in numeric},
        )
    expected = [c["name"] for c in columns]
    if list(frame.columns) != expected or len(frame) != entry["nrow"]:
        raise DataError(
            f"bundled dataset {key!r} is damaged: expected {entry['nrow']} rows and "
            f"columns {expected}, found {len(frame)} rows and columns {list(frame.columns)}"
        )
    for column in columns:
        if column["type"] != "factor":
            continue
        values = frame[column["name"]]
        codes = pd.Categorical(values, categories=column["levels"])
        unknown = values[codes.isna()]
        if len(unknown):
            raise DataError(
                f"bundled dataset {key!r} is damaged: column {column['name']!r} has "
                f"values {sorted(set(unknown))} outside its levels {column['levels']}"
            )
        frame[column["name"]] = codes
    return frame


def describe(name: str) -> dict[str, Any]:
    """Describe where a bundled dataset comes from and what its columns are.

    Parameters
    ----------
    name : str
        Dataset name, matched case-insensitively; see :func:`names`.

    Returns
    -------
    dict
        ``name`` (canonical spelling), ``file``, ``source``, ``note`` (empty string
        where there is none), ``rows``, ``columns`` (a list of ``{"name", "type"}``
        dicts, with ``"levels"`` for factors), ``citation`` and ``used_for`` (what the
        project uses it for).

    Raises
    ------
    bayesfmm.errors.DataError
        If no dataset has this name; the message lists the available names.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> info = bf.datasets.describe("patent")
    >>> info["rows"], [c["name"] for c in info["columns"]]
    (70, ['Company', 'Patents', 'RDS', 'lgRD'])
    """
    key = _resolve(name)
    entry = _catalogue()[key]
    return {
        "name": key,
        "file": entry["file"],
        "source": entry["source"],
        "note": entry.get("note", ""),
        "rows": entry["nrow"],
        "columns": copy.deepcopy(entry["columns"]),
        "citation": _CITATIONS[key],
        "used_for": _USED_FOR[key],
    }
