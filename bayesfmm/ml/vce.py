"""Variance estimators of the ML estimates (internal scale)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from bayesfmm.errors import IdentificationWarning
from bayesfmm.likelihood import MixtureProblem, row_scores

__all__ = ["VCE_TYPES", "covariance", "observed_information_covariance"]

VCE_TYPES = ("oim", "opg")


def _inverse(matrix: np.ndarray, what: str) -> tuple[np.ndarray, str]:
    sym = (matrix + matrix.T) / 2
    try:
        factor = linalg.cho_factor(sym, lower=True)
        return linalg.cho_solve(factor, np.eye(sym.shape[0])), ""
    except linalg.LinAlgError:
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


def covariance(problem: MixtureProblem, result, vce: str) -> tuple[np.ndarray, str]:
    """Covariance of ``theta`` under ``vce``, and a note if it could not be computed."""
    if vce == "oim":
        return observed_information_covariance(result.hessian)
    scores = row_scores(problem, result.theta)
    return _inverse(scores.T @ scores, "the outer product of the gradients")
