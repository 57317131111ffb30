"""MLResults: the fitted model, reported on Stata's scale.

A results object holds the estimates on the optimiser's scale and converts at the edge:
``params``/``bse``/``conf_int``/``cov_params`` are on Stata's reporting scale (``var(e)``
rather than its log), with delta-method standard errors and confidence intervals built on
the optimiser's scale, as Stata does for variances.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from bayesfmm.likelihood import MixtureProblem
from bayesfmm.ml.iterlog import IterationLog

__all__ = ["MLResults", "ProblemView"]


class ProblemView:
    """The names a fitted object derives from its ``problem`` (a MixtureProblem):
    shared by MLResults, BayesResults and the postestimation helpers."""

    @property
    def spec(self):
        return self.problem.design.spec

    @property
    def design(self):
        return self.problem.design

    @property
    def layout(self):
        return self.problem.layout

    @property
    def nobs(self) -> int:
        """Observations: rows used, or the sum of frequency weights (Stata's N)."""
        return self.design.nobs

    @property
    def k(self) -> int:
        return self.design.k

    @property
    def df_model(self) -> int:
        """Free parameters: those tied or fixed by constraints count once or not at all."""
        return self.layout.n_free


@dataclass(frozen=True, eq=False)
class MLResults(ProblemView):
    """Results of :meth:`bayesfmm.FMM.fit`.

    Attributes
    ----------
    llf : float
        Maximised log likelihood.
    nobs, k, df_model : int
        Observations used, classes, free parameters.
    converged : bool
        Whether Newton met Stata's convergence criteria.
    params, bse : pandas.Series
        Estimates and standard errors indexed by (``class``, ``equation``, ``term``).
    starts : StartReport
        Which start won, and how many collapsed.
    iteration_log : IterationLog
        The Stata-like log (``print(res.iteration_log)``).
    """

    problem: MixtureProblem
    theta: np.ndarray
    cov_theta: np.ndarray
    llf: float
    converged: bool
    iterations: int
    vce: str
    vce_note: str
    starts: Any
    iteration_log: IterationLog
    gradient: np.ndarray
    hessian: np.ndarray
    n_clusters: int | None = None  # vce="cluster": number of clusters
    cluster: str | None = None  # vce="cluster": the cluster column

    # -- estimates -----------------------------------------------------------
    @cached_property
    def params(self) -> pd.Series:
        """Estimates on Stata's reporting scale."""
        return self.layout.series(self.layout.to_report(self.theta), "params")

    @cached_property
    def _jacobian(self) -> np.ndarray:
        return self.layout.report_jacobian(self.theta)

    @cached_property
    def bse(self) -> pd.Series:
        """Standard errors (delta method for transformed parameters)."""
        se = np.sqrt(np.clip(np.diag(self.cov_theta), 0, None)) * np.abs(self._jacobian)
        return self.layout.series(se, "bse")

    def cov_params(self) -> pd.DataFrame:
        """Covariance of the reported estimates (delta method)."""
        jac = self._jacobian
        cov = self.cov_theta * np.outer(jac, jac)
        index = self.layout.index
        return pd.DataFrame(cov, index=index, columns=index)

    @cached_property
    def zvalues(self) -> pd.Series:
        """z statistics of the linear parameters (NaN for auxiliary ones, as Stata prints none)."""
        se_theta = np.sqrt(np.clip(np.diag(self.cov_theta), 0, None))
        with np.errstate(divide="ignore", invalid="ignore"):  # fixed by a constraint: se 0, no z
            z = np.where(self.layout.is_aux() | self.layout.fixed_mask(), np.nan, self.theta / se_theta)
        return self.layout.series(z, "z")

    @cached_property
    def pvalues(self) -> pd.Series:
        return self.layout.series(2 * ndtr(-np.abs(self.zvalues.to_numpy())), "P>|z|")

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Confidence intervals; auxiliary parameters' are built on the optimiser's scale.

        Examples
        --------
        >>> import bayesfmm as bf
        >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
        >>> list(res.conf_int().columns)
        ['lower', 'upper']
        """
        z = ndtri(1 - alpha / 2)
        se = np.sqrt(np.clip(np.diag(self.cov_theta), 0, None))
        lo = self.layout.to_report(self.theta - z * se)
        hi = self.layout.to_report(self.theta + z * se)
        lower, upper = np.minimum(lo, hi), np.maximum(lo, hi)
        return pd.DataFrame({"lower": lower, "upper": upper}, index=self.layout.index)

    # -- information criteria ----------------------------------------------
    @property
    def aic(self) -> float:
        """Akaike's information criterion, ``-2 llf + 2 df``."""
        return -2 * self.llf + 2 * self.df_model

    @property
    def bic(self) -> float:
        """Schwarz's criterion, ``-2 llf + log(nobs) df``."""
        return -2 * self.llf + np.log(self.nobs) * self.df_model

    # -- postestimation ----------------------------------------------------
    def lcprob(self, alpha: float = 0.05) -> pd.DataFrame:
        """Latent class marginal probabilities (Stata ``estat lcprob``)."""
        from bayesfmm.postestimation import lcprob

        return lcprob(self, alpha)

    def lcmean(self, alpha: float = 0.05) -> pd.DataFrame:
        """Marginal mean of each response within each class (Stata ``estat lcmean``)."""
        from bayesfmm.postestimation import lcmean

        return lcmean(self, alpha)

    def predict(self, data: pd.DataFrame | None = None, kind: str = "mu", marginal: bool = False, equation: str | None = None):
        """Predictions: ``mu``, ``eta``, ``density``, ``distribution``, ``classpr``, ``classposteriorpr``."""
        from bayesfmm.postestimation import predict

        return predict(self, data, kind=kind, marginal=marginal, equation=equation)

    # -- inference (bayesfmm.inference) -------------------------------------
    def test(self, hypotheses):
        """Wald test of linear hypotheses on named parameters (Stata ``test``):
        ``res.test("[1]x1 = [2]x1")`` or a list of them for a joint test."""
        from bayesfmm.inference import wald_test

        return wald_test(self, hypotheses)

    def lincom(self, expression: str, alpha: float = 0.05):
        """A linear combination with SE, z, p and CI (Stata ``lincom``): ``res.lincom("[2]x1 - [1]x1")``."""
        from bayesfmm.inference import lincom

        return lincom(self, expression, alpha)

    def lrtest(self, other, force: bool = False):
        """Likelihood-ratio test against a nested fit (Stata ``lrtest``)."""
        from bayesfmm.inference import lrtest

        return lrtest(self, other, force=force)

    def ic(self) -> pd.Series:
        """llf, df, nobs and AIC, AICc, BIC, CAIC, ICL, ICL-BIC, entropy (smaller is better)."""
        from bayesfmm.inference import ic

        return ic(self)

    def relabel(self, by, descending: bool = False) -> "MLResults":
        """A copy with the classes permuted: ``by=("y", "Intercept")``, ``"lcprob"`` or ``[3, 1, 2]``."""
        from bayesfmm.inference import relabel

        return relabel(self, by, descending)

    def summary(self, alpha: float = 0.05):
        """A Stata-like table; ``str()`` it, or ``.as_frame()``."""
        from bayesfmm.summary import Summary

        return Summary.from_results(self, alpha)

    def __repr__(self) -> str:
        return (
            f"<MLResults k={self.k} nobs={self.nobs} llf={self.llf:.4f} "
            f"converged={self.converged} df={self.df_model}>"
        )
