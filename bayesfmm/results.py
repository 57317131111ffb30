"""MLResults: the fitted model, reported on Stata's scale.

A results object holds the estimates on the optimiser's scale and converts at the edge:
``params``/``bse``/``conf_int``/``cov_params`` are on Stata's reporting scale (``var(e)``
rather than its log), with delta-method standard errors and confidence intervals built on
the optimiser's scale, as Stata does for variances.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesfmm import habits
from bayesfmm.criteria import information_criteria
from bayesfmm.inference import ic, lincom, lrtest, relabel, wald_test
from bayesfmm.iterlog import IterationLog
from bayesfmm.likelihood import MixtureProblem
from bayesfmm.margins import margins as margins_table
from bayesfmm.persist import save as save_results
from bayesfmm.postestimation import lcmean, lcprob, predict
from bayesfmm.summary import Summary
from bayesfmm.survey import critical_value, design_df, refuse_under_survey, two_sided_p

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

    # -- statsmodels and flexmix habits (bayesfmm.habits; Bayes: posterior summaries) ------
    @property
    def df_resid(self) -> float:
        """``nobs - df_model`` (statsmodels)."""
        return self.nobs - self.df_model

    @cached_property
    def fittedvalues(self) -> pd.Series:
        """Marginal mean of the (first) response per row, ``sum_j pi_ij mu_ij`` (Bayes: at
        the posterior means)."""
        return habits.fittedvalues(self)

    @property
    def resid(self) -> pd.Series:
        """Response residuals ``y - fittedvalues``."""
        return habits.resid(self)

    def clusters(self, data: pd.DataFrame | None = None) -> pd.Series:
        """Modal class of each row, 1..k (flexmix ``clusters()``)."""
        return habits.clusters(self, data)

    def parameters(self, which: str = "model") -> pd.DataFrame:
        """Estimates (Bayes: posterior means) with one column per class (flexmix ``parameters()``)."""
        return habits.parameters(self, which)

    def eform(self, alpha: float = 0.05) -> pd.DataFrame:
        """Exponentiated coefficients with their CIs (Stata ``eform``; Bayes: posterior summaries)."""
        return habits.eform(self, alpha)

    def nlcom(self, expressions, alpha: float = 0.05) -> pd.DataFrame:
        """Nonlinear combinations (Stata ``nlcom``): ``res.nlcom("exp([2]x)")``; delta method
        for ML, posterior summaries for Bayes."""
        return habits.nlcom(self, expressions, alpha)


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
        # survey fits (survey=): t on the design degrees of freedom, as Stata's svy
        return self.layout.series(two_sided_p(self.zvalues.to_numpy(), design_df(self)), "P>|z|")

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Confidence intervals; auxiliary parameters' are built on the optimiser's scale.

        Examples
        --------
        >>> import bayesfmm as bf
        >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
        >>> list(res.conf_int().columns)
        ['lower', 'upper']
        """
        z = critical_value(alpha, design_df(self))  # t quantile for survey fits
        se = np.sqrt(np.clip(np.diag(self.cov_theta), 0, None))
        lo = self.layout.to_report(self.theta - z * se)
        hi = self.layout.to_report(self.theta + z * se)
        lower, upper = np.minimum(lo, hi), np.maximum(lo, hi)
        return pd.DataFrame({"lower": lower, "upper": upper}, index=self.layout.index)

    # -- information criteria ----------------------------------------------
    @property
    def aic(self) -> float:
        """Akaike's information criterion, ``-2 llf + 2 df``."""
        refuse_under_survey(self, "AIC")
        return information_criteria(self.llf, self.df_model, self.nobs)["AIC"]

    @property
    def bic(self) -> float:
        """Schwarz's criterion, ``-2 llf + log(nobs) df``."""
        refuse_under_survey(self, "BIC")
        return information_criteria(self.llf, self.df_model, self.nobs)["BIC"]

    # -- postestimation ----------------------------------------------------
    def lcprob(self, alpha: float = 0.05) -> pd.DataFrame:
        """Latent class marginal probabilities (Stata ``estat lcprob``)."""
        return lcprob(self, alpha)

    def lcmean(self, alpha: float = 0.05) -> pd.DataFrame:
        """Marginal mean of each response within each class (Stata ``estat lcmean``)."""
        return lcmean(self, alpha)

    def predict(self, data: pd.DataFrame | None = None, kind: str = "mu", marginal: bool = False, equation: str | None = None):
        """Predictions: ``mu``, ``eta``, ``density``, ``distribution``, ``classpr``, ``classposteriorpr``."""
        return predict(self, data, kind=kind, marginal=marginal, equation=equation)

    # -- inference (bayesfmm.inference) -------------------------------------
    def test(self, hypotheses):
        """Wald test of linear hypotheses on named parameters (Stata ``test``):
        ``res.test("[1]x1 = [2]x1")`` or a list of them for a joint test."""
        return wald_test(self, hypotheses)

    def lincom(self, expression: str, alpha: float = 0.05):
        """A linear combination with SE, z, p and CI (Stata ``lincom``): ``res.lincom("[2]x1 - [1]x1")``."""
        return lincom(self, expression, alpha)

    def lrtest(self, other, force: bool = False):
        """Likelihood-ratio test against a nested fit (Stata ``lrtest``)."""
        return lrtest(self, other, force=force)

    def ic(self) -> pd.Series:
        """llf, df, nobs and AIC, AICc, BIC, CAIC, ICL, ICL-BIC, entropy (smaller is better)."""
        return ic(self)

    def relabel(self, by, descending: bool = False) -> "MLResults":
        """A copy with the classes permuted: ``by=("y", "Intercept")``, ``"lcprob"`` or ``[3, 1, 2]``."""
        return relabel(self, by, descending)

    def summary(self, alpha: float = 0.05):
        """A Stata-like table; ``str()`` it, or ``.as_frame()``."""
        return Summary.from_results(self, alpha)

    # -- statsmodels, flexmix and Stata habits (bayesfmm.habits, bayesfmm.margins) ----------
    @property
    def model(self):
        """The fitted model, an ``FMM`` (statsmodels ``res.model``)."""
        return self.spec

    @property
    def tvalues(self) -> pd.Series:
        """Alias of ``zvalues`` (statsmodels' name)."""
        return self.zvalues

    @cached_property
    def llnull(self) -> float:
        """Log likelihood of the one-class, intercepts-only model (NaN when none exists)."""
        return habits.llnull(self)

    def lrtest_null(self):
        """LR test against the null model (``llr``, ``llr_pvalue`` in statsmodels)."""
        return habits.lrtest_null(self)

    @property
    def llr(self) -> float:
        """``2 (llf - llnull)``."""
        return 2.0 * (self.llf - self.llnull)

    @property
    def llr_pvalue(self) -> float:
        """chi2 p-value of ``llr`` (a guide only for k > 1: the null is on the boundary)."""
        return self.lrtest_null().pvalue

    def margins(self, data: pd.DataFrame, at: str | None = None, dydx: str | None = None,
                over: str | None = None, equation: str | None = None, alpha: float = 0.05) -> pd.DataFrame:
        """Predictive margins and average marginal effects (Stata ``margins``); see
        :func:`bayesfmm.margins.margins`."""
        return margins_table(self, data, at=at, dydx=dydx, over=over, equation=equation, alpha=alpha)

    def save(self, path: str | Path) -> Path:
        """Save the fit to ``path`` (load it with ``bf.load``); see docs/saving.md.

        Results also pickle directly (``pickle``, ``joblib``): families travel as their
        registry name and options.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> import bayesfmm as bf
        >>> from bayesfmm.persist import load
        >>> res = bf.FMM("thickness ~ 1", k=2).fit(bf.datasets.load("stamp"))
        >>> path = res.save(pathlib.Path(tempfile.mkdtemp()) / "fit.bfmm")
        >>> load(path).params.equals(res.params)
        True
        """
        return save_results(self, path)

    def __repr__(self) -> str:
        return (
            f"<MLResults k={self.k} nobs={self.nobs} llf={self.llf:.4f} "
            f"converged={self.converged} df={self.df_model}>"
        )
