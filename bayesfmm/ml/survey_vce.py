"""The linearized (Taylor) variance of survey fits, as Stata's ``svy: fmm`` computes it.

With ``D = (-H)^-1`` (``H`` the Hessian of the sampling-weighted log likelihood) and
``z_hi = sum_{j in PSU i of stratum h} w_j s_j`` the weighted score totals of the PSUs
(``s_j`` the score of likelihood unit ``j``; zero for units outside the subpopulation, whose
PSUs still count), Stata's [SVY] Variance estimation gives

    V = D G D,   G = sum_h (1 - f_h) m_h / (m_h - 1) sum_i (z_hi - zbar_h)(z_hi - zbar_h)'

where ``m_h`` is the number of PSUs in stratum ``h`` (of the whole design), ``zbar_h`` their
mean total and ``f_h`` the sampling fraction of the fpc (0 without one). No other
small-sample factor is applied; R's ``survey`` package (``svyrecvar``, behind ``svyglm``)
uses the same formula. Strata with one PSU (``m_h = 1``), by ``singleunit``:

- ``"certainty"``: they contribute nothing (R's ``survey.lonely.psu = "certainty"``);
- ``"scaled"``: they contribute nothing and ``G`` is multiplied by ``H / (H - H_1)``,
  ``H`` strata of which ``H_1`` hold one PSU: each lonely stratum takes the average
  contribution of the others (R's ``"average"``);
- ``"centered"``: the PSU total is centred at the grand mean of all PSU totals instead of its
  stratum mean, with factor ``(1 - f_h)`` (R's ``"adjust"``).

Under constraints (``theta = T phi + c``) the formula is applied to the free parameters and
mapped back as ``T V_phi T'``, as :mod:`bayesfmm.ml.vce` does.
"""

from __future__ import annotations

import numpy as np

from bayesfmm.likelihood import MixtureProblem, unit_scores
from bayesfmm.ml.vce import observed_information_covariance
from bayesfmm.survey import SurveySample

__all__ = ["psu_totals", "linearized_meat", "survey_covariance"]


def psu_totals(weighted_scores: np.ndarray, psu: np.ndarray, n_psu: int) -> np.ndarray:
    """Weighted score totals of every PSU of the design (``n_psu x p``; zero rows for PSUs
    without estimation units)."""
    totals = np.zeros((n_psu, weighted_scores.shape[1]))
    np.add.at(totals, psu, weighted_scores)
    return totals


def linearized_meat(totals: np.ndarray, psu_stratum: np.ndarray, fraction: np.ndarray, singleunit: str) -> np.ndarray:
    """``G``: the between-PSU covariance of the score totals within strata (module notes).

    Examples
    --------
    >>> import numpy as np
    >>> totals = np.array([[1.0], [3.0], [-2.0], [2.0]])
    >>> linearized_meat(totals, np.array([0, 0, 1, 1]), np.zeros(2), "fail")
    array([[20.]])
    """
    n_strata = fraction.size
    m = np.bincount(psu_stratum, minlength=n_strata)
    means = np.zeros((n_strata, totals.shape[1]))
    np.add.at(means, psu_stratum, totals)
    means /= np.maximum(m, 1)[:, None]
    centred = totals - means[psu_stratum]
    lonely = m == 1
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(m > 1, m / (m - 1.0), 0.0) * (1.0 - fraction)
    if singleunit == "centered" and lonely.any():
        lonely_psu = lonely[psu_stratum]
        centred[lonely_psu] = totals[lonely_psu] - totals.mean(axis=0)
        scale = np.where(lonely, 1.0 - fraction, scale)
    meat = (centred * scale[psu_stratum][:, None]).T @ centred
    if singleunit == "scaled" and lonely.any() and lonely.sum() < n_strata:
        meat = meat * n_strata / (n_strata - lonely.sum())
    return (meat + meat.T) / 2


def survey_covariance(problem: MixtureProblem, result) -> tuple[np.ndarray, str]:
    """The linearized covariance of ``theta`` under the survey design of ``problem``, and a
    note (empty, or why it is not available).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import bayesfmm as bf
    >>> rng = np.random.default_rng(1)
    >>> df = pd.DataFrame({"y": rng.normal(size=40), "s": np.repeat([1, 2], 20),
    ...                    "c": np.repeat(np.arange(8), 5), "w": rng.uniform(1, 3, 40)})
    >>> res = bf.FMM("y ~ 1", k=1).fit(df, survey=bf.SurveyDesign(weights="w", strata="s", psu="c"))
    >>> res.vce, res.design.survey.df
    ('linearized', 6)
    """
    sample: SurveySample = problem.design.survey
    T = problem.layout.transform
    hessian = result.hessian if T is None else T.T @ result.hessian @ T
    bread, note = observed_information_covariance(hessian)
    if note:
        cov = bread
    else:
        scores = unit_scores(problem, result.theta)
        if T is not None:
            scores = scores @ T
        w = problem.design.unit_weights
        totals = psu_totals(scores * w[:, None], sample.psu, sample.n_psu)
        meat = linearized_meat(totals, sample.psu_stratum, sample.fraction, sample.design.singleunit)
        cov = bread @ meat @ bread
        cov = (cov + cov.T) / 2
    if T is None:
        return cov, note
    full = T @ cov @ T.T
    return (full + full.T) / 2, note
