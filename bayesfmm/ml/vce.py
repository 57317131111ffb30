"""Variance estimators of the ML estimates (on the optimiser's scale), as Stata defines them.

With ``H`` the Hessian of the log likelihood at the estimates, ``s_i`` the score of row
``i`` (a row of :func:`~bayesfmm.likelihood.row_scores`), ``n`` the number of rows and
``G`` the number of clusters:

============  ===========================================================  ==================
``vce``       covariance                                                   Stata
============  ===========================================================  ==================
``oim``       ``D = (-H)^-1``                                              ``vce(oim)``
``opg``       ``(sum_i s_i s_i')^-1``                                      ``vce(opg)``
``robust``    ``n/(n-1) * D (sum_i s_i s_i') D``                           ``vce(robust)``
``cluster``   ``G/(G-1) * D (sum_g u_g u_g') D``, ``u_g = sum_{i in g} s_i``  ``vce(cluster c)``
============  ===========================================================  ==================

The small-sample factors are those of Stata's maximum-likelihood commands: ``_robust``
with ``minus(1)`` multiplies the sandwich by ``n/(n-1)`` for independent rows, and by
``G/(G-1)`` when rows are clustered (Stata [P] _robust, Methods and formulas; [R]
vce_option; [U] 20.22 "Obtaining robust variance estimates"). No ``(n-1)/(n-k)`` factor is
applied: that one belongs to ``regress``, not to ML.

Weights (``weights=``) enter as Stata's ``ml`` applies them: with frequency or importance
weights ``w_i`` the outer product is ``sum_i w_i s_i s_i'`` and, for fweights, ``n`` is
``sum_i w_i``; with sampling weights (``pweight``, robust by default, as in Stata) the meat
is ``sum_i (w_i s_i)(w_i s_i)'``; cluster sums are ``u_g = sum_{i in g} w_i s_i``. With
``group=`` the units are the groups (their scores summed over their rows).

Under constraints (``theta = T phi + c``) every formula is applied to the free parameters
(``T' H T``, scores ``S T``) and mapped back as ``T V_phi T'``: a parameter fixed at a value
gets variance 0, tied ones the same variance.

Because the transformation to Stata's reporting scale is applied afterwards by the delta
method (``J V J'``, ``J`` diagonal), the sandwich computed on the optimiser's scale gives the
same reported covariance as a sandwich computed on the reported scale.
"""

from __future__ import annotations

import warnings

import numpy as np

from bayesfmm.errors import IdentificationWarning, SpecificationError
from bayesfmm.likelihood import MixtureProblem, unit_scores
from bayesfmm.ops import cho_factor, cho_solve

__all__ = [
    "VCE_TYPES",
    "covariance",
    "observed_information_covariance",
    "sandwich",
    "cluster_score_sums",
]

VCE_TYPES = ("oim", "opg", "robust", "cluster")


def _inverse(matrix: np.ndarray, what: str) -> tuple[np.ndarray, str]:
    sym = (matrix + matrix.T) / 2
    try:
        return cho_solve(cho_factor(sym), np.eye(sym.shape[0])), ""
    except (np.linalg.LinAlgError, ValueError):
        note = f"{what} is not positive definite: standard errors are not available"
        warnings.warn(
            note + " (a flat likelihood or a degenerate class; the model may not be identified)",
            IdentificationWarning,
            stacklevel=4,
        )
        return np.full_like(sym, np.nan), note


def observed_information_covariance(hessian: np.ndarray) -> tuple[np.ndarray, str]:
    """``(-H)^-1``: Stata's default ``vce(oim)``."""
    return _inverse(-hessian, "the observed information matrix")


def cluster_score_sums(scores: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Scores summed within clusters: ``u_g = sum_{i in g} s_i`` (G x p).

    ``codes`` are integer cluster codes 0..G-1, one per row (``pandas.factorize``).
    """
    codes = np.asarray(codes)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    return np.add.reduceat(scores[order], starts, axis=0)


def sandwich(bread: np.ndarray, scores: np.ndarray, factor: float) -> np.ndarray:
    """``factor * bread (scores' scores) bread``: the robust covariance given ``D``."""
    meat = scores.T @ scores
    cov = factor * bread @ meat @ bread
    return (cov + cov.T) / 2


def covariance(
    problem: MixtureProblem,
    result,
    vce: str,
    clusters: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """Covariance of ``theta`` under ``vce``, and a note (empty, or why it is not available).

    Parameters
    ----------
    problem, result
        The mixture and the Newton result (``theta``, ``hessian``).
    vce
        ``"oim"``, ``"opg"``, ``"robust"`` or ``"cluster"``.
    clusters
        For ``"cluster"``: integer cluster codes 0..G-1 of the estimation rows.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("thickness ~ 1", k=2).fit(bf.datasets.load("stamp"), vce="robust")
    >>> res.vce
    'robust'
    """
    if vce not in VCE_TYPES:
        raise SpecificationError(f"vce={vce!r} is not available; choose from {', '.join(VCE_TYPES)}")
    T = problem.layout.transform
    cov, note = _free_covariance(problem, result, vce, clusters, T)
    if T is None:
        return cov, note
    full = T @ cov @ T.T
    return (full + full.T) / 2, note


def _free_covariance(problem, result, vce, clusters, T) -> tuple[np.ndarray, str]:
    """The covariance of the free parameters (``theta`` itself without constraints)."""
    hessian = result.hessian if T is None else T.T @ result.hessian @ T
    if vce == "oim":
        return observed_information_covariance(hessian)
    scores = unit_scores(problem, result.theta)
    if T is not None:
        scores = scores @ T
    weights = problem.design.unit_weights
    weight_type = problem.design.weight_type
    if vce == "opg":
        if weight_type == "pweight":
            raise SpecificationError("vce='opg' is not allowed with sampling weights (pweight); use vce='robust'")
        weighted = scores if weights is None else scores * np.sqrt(weights)[:, None]
        return _inverse(weighted.T @ weighted, "the outer product of the gradients")
    bread, note = observed_information_covariance(hessian)
    if note:
        return bread, note
    if vce == "robust":
        if weights is None:
            n = scores.shape[0]
            meat_scores = scores
        elif weight_type == "fweight":
            n = float(weights.sum())
            meat_scores = scores * np.sqrt(weights)[:, None]
        else:
            n = int(np.count_nonzero(weights))
            meat_scores = scores * weights[:, None]
        if n < 2:
            raise SpecificationError("vce='robust' needs at least 2 observations")
        return sandwich(bread, meat_scores, n / (n - 1)), ""
    if clusters is None:
        raise SpecificationError("vce='cluster' needs cluster='column'")
    if weights is not None:
        scores = scores * weights[:, None]
    sums = cluster_score_sums(scores, clusters)
    g = sums.shape[0]
    if g < 2:
        raise SpecificationError(f"vce='cluster' needs at least 2 clusters, got {g}")
    return sandwich(bread, sums, g / (g - 1)), ""
