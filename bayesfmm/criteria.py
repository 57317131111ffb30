"""Information criteria of a mixture fit, as pure functions of its numbers.

Every criterion is "smaller is better" and uses ``n`` = the number of observations used
(``res.nobs``) and ``df`` = the number of free parameters (``res.df_model``):

==========  ===========================================================  =====================
AIC         ``-2 llf + 2 df``                                            Akaike (1974)
AICc        ``AIC + 2 df (df + 1) / (n - df - 1)`` (NaN if ``n <= df+1``)  Hurvich & Tsai (1989)
BIC         ``-2 llf + df log n``                                        Schwarz (1978)
CAIC        ``-2 llf + df (log n + 1)``                                  Bozdogan (1987)
ICL         ``BIC - 2 sum_i log r_{i, c_i}``, ``c_i = argmax_j r_ij``    Biernacki, Celeux &
                                                                         Govaert (2000)
ICL-BIC     ``BIC + 2 EN``, ``EN = -sum_i sum_j r_ij log r_ij``          McLachlan & Peel
                                                                         (2000, sec. 6.10.3)
==========  ===========================================================  =====================

``r`` are the posterior class probabilities (responsibilities) at the estimates.

**Which ICL.** ``ICL`` is the integrated *classification* likelihood with the maximum a
posteriori classification, as Biernacki et al. (2000) define it and as R's flexmix
(``ICL()``: ``-2 clogLik + df log n``) and mclust (``icl()``, with the opposite sign)
compute it. ``ICL-BIC`` replaces the hard classification by the soft entropy ``EN``; the
two agree when the posteriors are 0/1 and ``ICL-BIC >= ICL`` otherwise (the entropy of a
row is at least minus the log of its largest posterior). ``entropy`` is ``EN`` itself.

Examples
--------
>>> import numpy as np
>>> from bayesfmm.criteria import information_criteria
>>> ic = information_criteria(-100.0, 1, 2, np.array([[1.0, 0.0], [0.5, 0.5]]))
>>> round(ic["BIC"], 4), round(ic["ICL"] - ic["BIC"], 4), round(ic["ICL-BIC"] - ic["BIC"], 4)
(200.6931, 1.3863, 1.3863)
"""

from __future__ import annotations

import math

import numpy as np

from bayesfmm.likelihood import evaluate

__all__ = [
    "CRITERIA",
    "information_criteria",
    "fit_criteria",
    "classification_entropy",
    "map_log_posterior",
]

CRITERIA = ("AIC", "AICc", "BIC", "CAIC", "ICL", "ICL-BIC")


def _responsibilities(resp: np.ndarray) -> np.ndarray:
    r = np.asarray(resp, dtype=float)
    if r.ndim != 2 or r.shape[1] < 1:
        raise ValueError(f"responsibilities must be an n x k array, got shape {r.shape}")
    if not np.all(np.isfinite(r)) or np.any(r < 0) or not np.allclose(r.sum(axis=1), 1.0, atol=1e-8):
        raise ValueError("responsibilities must be finite, non-negative, and sum to 1 in every row")
    return r


def classification_entropy(resp: np.ndarray) -> float:
    """``EN = -sum_i sum_j r_ij log r_ij`` (with ``0 log 0 = 0``).

    Examples
    --------
    >>> import numpy as np
    >>> round(classification_entropy(np.array([[0.5, 0.5], [1.0, 0.0]])), 6)
    0.693147
    """
    r = _responsibilities(resp)
    positive = r > 0
    return float(-np.sum(r[positive] * np.log(r[positive]))) + 0.0  # + 0.0: no -0.0


def map_log_posterior(resp: np.ndarray) -> float:
    """``sum_i log max_j r_ij``: the log posterior of each row's most probable class.

    ``llf + map_log_posterior(resp)`` is the classification log likelihood of the MAP
    partition (flexmix's ``clogLik``).
    """
    r = _responsibilities(resp)
    with np.errstate(divide="ignore"):
        return float(np.sum(np.log(r.max(axis=1))))


def information_criteria(llf: float, df: int, nobs: int, resp: np.ndarray | None = None) -> dict[str, float]:
    """AIC, AICc, BIC, CAIC and, given the responsibilities, ICL, ICL-BIC and the entropy.

    Parameters
    ----------
    llf
        Maximised log likelihood.
    df
        Number of free parameters.
    nobs
        Number of observations used in the fit.
    resp
        Posterior class probabilities at the estimates (``nobs`` x ``k``), e.g.
        ``res.predict(kind="classposteriorpr")``. Without them the ICL keys are NaN.

    Returns
    -------
    dict
        Keys ``AIC``, ``AICc``, ``BIC``, ``CAIC``, ``ICL``, ``ICL-BIC``, ``entropy``; the
        module docstring gives the formulas and their sources.

    Examples
    --------
    >>> ic = information_criteria(-451.6885, 14, 200)
    >>> round(ic["BIC"], 3), round(ic["CAIC"] - ic["BIC"], 3)
    (977.553, 14.0)
    """
    if isinstance(df, bool) or int(df) != df or df < 0:
        raise ValueError(f"df must be a non-negative integer, got {df!r}")
    if isinstance(nobs, bool) or int(nobs) != nobs or nobs < 1:
        raise ValueError(f"nobs must be a positive integer, got {nobs!r}")
    llf, df, nobs = float(llf), int(df), int(nobs)
    deviance = -2.0 * llf
    log_n = math.log(nobs)
    aic = deviance + 2.0 * df
    bic = deviance + df * log_n
    out = {
        "AIC": aic,
        "AICc": aic + 2.0 * df * (df + 1) / (nobs - df - 1) if nobs - df - 1 > 0 else math.nan,
        "BIC": bic,
        "CAIC": deviance + df * (log_n + 1.0),
        "ICL": math.nan,
        "ICL-BIC": math.nan,
        "entropy": math.nan,
    }
    if resp is not None:
        r = _responsibilities(resp)
        if r.shape[0] != nobs:
            raise ValueError(f"responsibilities have {r.shape[0]} rows but nobs={nobs}")
        entropy = classification_entropy(r)
        out["ICL"] = bic - 2.0 * map_log_posterior(r)
        out["ICL-BIC"] = bic + 2.0 * entropy
        out["entropy"] = entropy
    return out


def fit_criteria(res) -> dict[str, float]:
    """:func:`information_criteria` of a fitted model (``MLResults``), from its
    ``llf``, ``df_model``, ``nobs`` and in-sample posterior class probabilities.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
    >>> bool(abs(fit_criteria(res)["BIC"] - res.bic) < 1e-9)
    True
    """
    resp = evaluate(res.problem, res.theta).resp
    return information_criteria(res.llf, res.df_model, res.nobs, resp)
