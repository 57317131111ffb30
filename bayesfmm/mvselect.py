"""Model-based clustering: choose the number of classes and the covariance structure of
``mvnormal`` mixtures by an information criterion (mclust's ``Mclust``, scikit-learn's
BIC loop over ``covariance_type``).

Structures, with mclust's and scikit-learn's names:

==================  ==========================  =========  ============
``structure``       bayesfmm                    mclust     scikit-learn
==================  ==========================  =========  ============
``"full"``          ``covariance="full"``       ``VVV``    ``full``
``"tied"``          full, ``lcinvariant``       ``EEE``    ``tied``
``"diag"``          ``covariance="diag"``       ``VVI``    ``diag``
``"tied-diag"``     diag, ``lcinvariant``       ``EEI``    --
``"spherical"``     ``covariance="spherical"``  ``VII``    ``spherical``
``"tied-spherical"``  spherical, ``lcinvariant``  ``EII``  --
==================  ==========================  =========  ============
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import pandas as pd

from bayesfmm.errors import SpecificationError
from bayesfmm.model import FMM
from bayesfmm.selection import select

__all__ = ["STRUCTURES", "select_mvnormal", "mvnormal_model"]

STRUCTURES = {
    "full": ("full", "none"),
    "tied": ("full", "errvar"),
    "diag": ("diag", "none"),
    "tied-diag": ("diag", "errvar"),
    "spherical": ("spherical", "none"),
    "tied-spherical": ("spherical", "errvar"),
}


def mvnormal_model(formula: str, structure: str, k: int) -> FMM:
    """The ``mvnormal`` mixture of ``structure`` (a key of :data:`STRUCTURES`).

    Examples
    --------
    >>> mvnormal_model("y1 + y2 ~ 1", "tied", 2).lcinvariant
    'errvar'
    """
    if structure not in STRUCTURES:
        raise SpecificationError(f"structure {structure!r} unknown; choose from {', '.join(STRUCTURES)}")
    covariance, invariant = STRUCTURES[structure]
    return FMM(formula, family="mvnormal", k=k, covariance=covariance, lcinvariant=invariant)


def select_mvnormal(
    formula: str,
    data: pd.DataFrame,
    k: int | Iterable[int] = range(1, 6),
    structures: Sequence[str] = ("full", "tied", "diag", "spherical"),
    criterion: str = "BIC",
    **select_options: Any,
) -> tuple[pd.DataFrame, Any]:
    """Fit every structure for every ``k`` (:func:`bayesfmm.select`, its ``nrep`` starts
    each) and return ``(table, best)``: the criterion by ``structure`` (rows) and ``k``
    (columns), smaller is better, and the best fit.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> faithful = bf.datasets.load("faithful")
    >>> table, best = select_mvnormal("eruptions + waiting ~ 1", faithful, k=[1, 2],
    ...                               structures=("full", "spherical"), nrep=1, n_jobs=1, seed=1)
    >>> table.shape, best.k
    ((2, 2), 2)
    """
    rows, best, best_value = {}, None, float("inf")
    ks = [k] if isinstance(k, int) else list(k)
    for structure in structures:
        found = select(mvnormal_model(formula, structure, max(ks)), data, k=ks, **select_options)
        values = {}
        for kk, fit in found.fits.items():
            if fit is None:
                continue
            value = float(fit.ic()[criterion])
            values[kk] = value
            if value < best_value:
                best, best_value = fit, value
        rows[structure] = values
    table = pd.DataFrame(rows).T.reindex(columns=ks)
    table.index.name, table.columns.name = "structure", "k"
    return table, best
