"""BayesResults: the posterior of a mixture, reported like MLResults.

Point estimates are posterior means, computed per draw on Stata's reporting scale and then
averaged (``var(e)`` is the mean of the variance draws, not exp of the mean log variance);
standard errors are posterior standard deviations and intervals are equal-tailed
quantiles. ``llf``, ``aic`` and ``bic`` are evaluated at the posterior mean of ``theta``
(the optimiser's scale). ``lcprob``, ``lcmean`` and ``predict`` evaluate the ML
postestimation functions at every draw and summarise across draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from bayesfmm.bayes.builder import BuiltModel, build
from bayesfmm.bayes.checks import as_stored, loo_pit, plot_loo_pit, plot_rootogram
from bayesfmm.bayes.compare import compare_fits
from bayesfmm.bayes.diagnostics import diagnose
from bayesfmm.bayes.predictive import draw_responses, response_columns
from bayesfmm.bayes.relabel import relabel_idata
from bayesfmm.criteria import information_criteria
from bayesfmm.errors import check_alpha
from bayesfmm.likelihood import MixtureProblem, class_log_probs, evaluate
from bayesfmm.margins import margins as margins_table
from bayesfmm.persist import save as save_results
from bayesfmm.postestimation import _class_means, _problem_for, predict
from bayesfmm.results import MLResults, ProblemView
from bayesfmm.summary import WIDTH_LABEL, Summary, format_number

__all__ = ["BayesResults", "MAPResults", "BayesSummary", "RestoredModel", "compare"]


@dataclass(frozen=True, eq=False)
class MAPResults(MLResults):
    """The posterior mode (:meth:`bayesfmm.FMM.map`): MLResults' API, with ``llf`` the log
    likelihood at the mode, ``logp`` the log posterior there, and a Laplace covariance."""

    logp: float = float("nan")
    priors: Any = None

    def __repr__(self) -> str:
        return (
            f"<MAPResults k={self.k} nobs={self.nobs} llf={self.llf:.4f} logp={self.logp:.4f} "
            f"converged={self.converged} df={self.df_model}>"
        )


@dataclass(frozen=True, eq=False)
class _AtTheta(ProblemView):
    """The attributes the ML postestimation functions read, at one parameter vector."""

    problem: MixtureProblem
    theta: np.ndarray


def _report_draws(layout, theta: np.ndarray) -> np.ndarray:
    """Every draw (rows of ``theta``) mapped to Stata's reporting scale."""
    out = np.array(theta, dtype=float, copy=True)
    for block in layout.blocks:
        if not block.linear:
            out[:, block.slice] = block.scale.to_report(theta[:, block.slice])
    return out


def _summarise(values: np.ndarray, alpha: float) -> dict[str, np.ndarray]:
    """Posterior mean, sd and equal-tailed interval over the first axis."""
    alpha = check_alpha(alpha)
    return {
        "margin": values.mean(axis=0),
        "se": values.std(axis=0, ddof=1) if values.shape[0] > 1 else np.full(values.shape[1:], np.nan),
        "lower": np.quantile(values, alpha / 2, axis=0),
        "upper": np.quantile(values, 1 - alpha / 2, axis=0),
    }


class RestoredModel(BuiltModel):
    """A :class:`~bayesfmm.bayes.builder.BuiltModel` read back from a pickle.

    The PyMC model is not stored (its log density and random draws are closures, its graphs
    compiled code): everything else is, and ``.model`` builds the PyMC model again from the
    problem, the prior table and the ordering the first time it is used.
    """

    @classmethod
    def keep(cls, built: BuiltModel) -> "RestoredModel":
        """``built`` without its PyMC model (what a pickled BayesResults stores)."""
        restored = object.__new__(cls)
        restored.__dict__.update({key: value for key, value in vars(built).items() if key not in ("model", "_model")})
        return restored

    @property
    def model(self) -> Any:
        """The ``pm.Model``, built again on first use after unpickling."""
        model = self.__dict__.get("_model")
        if model is None:
            model = build(self.problem, self.pooled, priors=self.priors, order=order_argument(self.order)).model
            self.__dict__["_model"] = model
        return model

    @model.setter
    def model(self, value: Any) -> None:
        self.__dict__["_model"] = value

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_model"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def prior_overrides(table: Any) -> dict:
    """A resolved prior table as the ``priors=`` argument that resolves to it again: the
    table itself (``resolve_priors`` takes a PriorTable of the same model as it is, the
    exchangeable class-model groups included)."""
    return table


def order_argument(order: Any) -> Any:
    """A resolved ordering (OrderSpec or None) as the ``order=`` argument that gives it."""
    if order is None:
        return None
    return "classpr" if order.kind == "classpr" else order.group


@dataclass(frozen=True, eq=False)
class BayesResults(ProblemView):
    """Results of :meth:`bayesfmm.FMM.sample`.

    Attributes
    ----------
    idata : xarray.DataTree
        ``posterior``, ``log_likelihood`` (pointwise, for LOO), ``sample_stats``,
        ``observed_data`` (and ``posterior_predictive`` once drawn).
    theta_draws : ndarray
        Draws of the layout's ``theta`` (optimiser scale), shape (chain, draw, p).
    ml : MLResults or None
        The ML fit the chains started from (``init="ml"``).
    built : BuiltModel
        The PyMC model (``built.model``) and its maps to ``theta``.
    timing : dict
        ``compile_s`` and ``sample_s`` in seconds.
    history : tuple of dict
        With ``target=``: each run (initial, retune, extend) with its draws per chain,
        max R-hat, min ESS, divergences and seconds.
    account : str
        With ``target=``: what the sampling to a target did, in one line.
    """

    built: BuiltModel
    idata: Any
    theta_draws: np.ndarray
    ml: MLResults | None = None
    sampler: str = "nutpie"
    starts: tuple[np.ndarray, ...] | None = None
    timing: Mapping[str, float] = field(default_factory=dict)
    history: tuple = ()
    account: str = ""

    # -- pickling ------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the PyMC model, which is rebuilt on first use (:class:`RestoredModel`)."""
        state = dict(self.__dict__)
        state["built"] = RestoredModel.keep(self.built)
        return state

    def save(self, path: str | Path) -> Path:
        """Save the posterior to ``path`` (load it with ``bf.load``); see docs/saving.md.

        The draws, the inference data and the ML start are stored; the PyMC model is
        built again when it is first needed.

        Examples
        --------
        >>> post = bf.FMM("thickness ~ 1", k=2).sample(stamp, draws=100, tune=100)  # doctest: +SKIP
        >>> bf.load(post.save("post.bfmm")).params.equals(post.params)  # doctest: +SKIP
        True
        """
        return save_results(self, path)

    # -- sizes ---------------------------------------------------------------------------
    @property
    def problem(self) -> MixtureProblem:
        return self.built.problem

    @property
    def model(self):
        """The ``pm.Model``."""
        return self.built.model

    @property
    def chains(self) -> int:
        return self.theta_draws.shape[0]

    @property
    def draws(self) -> int:
        return self.theta_draws.shape[1]

    @cached_property
    def _flat_theta(self) -> np.ndarray:
        return self.theta_draws.reshape(-1, self.theta_draws.shape[-1])

    @cached_property
    def _flat_report(self) -> np.ndarray:
        return _report_draws(self.layout, self._flat_theta)

    # -- estimates -----------------------------------------------------------------------
    @cached_property
    def theta(self) -> np.ndarray:
        """Posterior mean of ``theta`` (optimiser scale): where ``llf`` is evaluated."""
        return self._flat_theta.mean(axis=0)

    @cached_property
    def params(self) -> pd.Series:
        """Posterior means on Stata's reporting scale."""
        return self.layout.series(self._flat_report.mean(axis=0), "params")

    @cached_property
    def bse(self) -> pd.Series:
        """Posterior standard deviations on Stata's reporting scale."""
        return self.layout.series(self._flat_report.std(axis=0, ddof=1), "bse")

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Equal-tailed posterior intervals (columns ``lower``, ``upper``)."""
        alpha = check_alpha(alpha)
        lower = np.quantile(self._flat_report, alpha / 2, axis=0)
        upper = np.quantile(self._flat_report, 1 - alpha / 2, axis=0)
        return pd.DataFrame({"lower": lower, "upper": upper}, index=self.layout.index)

    def cov_params(self) -> pd.DataFrame:
        """Posterior covariance of the parameters on the reporting scale."""
        index = self.layout.index
        return pd.DataFrame(np.cov(self._flat_report, rowvar=False), index=index, columns=index)

    @cached_property
    def llf(self) -> float:
        """Log likelihood at the posterior mean of ``theta``."""
        return evaluate(self.problem, self.theta).llf

    @property
    def aic(self) -> float:
        """Akaike's criterion at the posterior mean (:func:`bayesfmm.criteria.information_criteria`)."""
        return information_criteria(self.llf, self.df_model, self.nobs)["AIC"]

    @property
    def bic(self) -> float:
        """Schwarz's criterion at the posterior mean."""
        return information_criteria(self.llf, self.df_model, self.nobs)["BIC"]

    # -- diagnostics ---------------------------------------------------------------------
    def diagnostics(self):
        """R-hat, bulk/tail ESS, divergences, E-BFMI and a one-line verdict."""

        return diagnose(self)

    @cached_property
    def _diagnostics(self):
        return self.diagnostics()

    @property
    def converged(self) -> bool:
        """Whether the diagnostics passed (see :meth:`diagnostics`)."""
        return self._diagnostics.passed

    # -- postestimation ------------------------------------------------------------------
    def _draw_indices(self, max_draws: int | None) -> np.ndarray:
        total = self._flat_theta.shape[0]
        if max_draws is None or max_draws >= total:
            return np.arange(total)
        return np.linspace(0, total - 1, int(max_draws)).round().astype(int)

    def lcprob(self, alpha: float = 0.05, max_draws: int | None = None) -> pd.DataFrame:
        """Marginal class probabilities: posterior mean (``margin``), sd (``se``) and an
        equal-tailed interval, index class 1..k."""
        problem = self.problem
        values = np.array(
            [np.exp(class_log_probs(problem, self._flat_theta[i])).mean(axis=0) for i in self._draw_indices(max_draws)]
        )
        index = pd.Index(range(1, self.k + 1), name="class")
        return pd.DataFrame(_summarise(values, alpha), index=index)

    def lcmean(self, alpha: float = 0.05, max_draws: int | None = None) -> pd.DataFrame:
        """Marginal mean of each response within each class, summarised over draws."""

        problem = self.problem
        names = None
        rows = []
        for i in self._draw_indices(max_draws):
            means = _class_means(problem, self._flat_theta[i])
            names = names or list(means)
            rows.append(np.concatenate([means[name] for name in names]))
        index = pd.MultiIndex.from_tuples(
            [(j + 1, name) for name in names for j in range(self.k)], names=["class", "equation"]
        )
        frame = pd.DataFrame(_summarise(np.array(rows), alpha), index=index)
        return frame.sort_index(level="class", sort_remaining=False).dropna(subset=["margin"])

    def predict(
        self,
        data: pd.DataFrame | None = None,
        kind: str = "mu",
        marginal: bool = False,
        equation: str | None = None,
        alpha: float | None = None,
        max_draws: int | None = None,
    ):
        """Posterior-mean predictions (kinds as :meth:`MLResults.predict`).

        With ``alpha`` the result also has equal-tailed intervals: a DataFrame whose columns
        are (``mean`` | ``lower`` | ``upper``, class), or ``mean``/``lower``/``upper`` for a
        marginal prediction. ``max_draws`` thins the draws used (evenly spaced).
        """
        alpha = None if alpha is None else check_alpha(alpha)
        need_y = kind in ("density", "distribution", "classposteriorpr")
        problem = self.problem if data is None else _problem_for(_AtTheta(self.problem, self.theta), data, need_y)
        outputs = [
            predict(_AtTheta(problem, self._flat_theta[i]), None, kind=kind, marginal=marginal, equation=equation)
            for i in self._draw_indices(max_draws)
        ]
        template = outputs[0]
        stack = np.stack([np.asarray(o, dtype=float) for o in outputs])
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(stack, axis=0) if np.isnan(stack).any() else stack.mean(axis=0)
        if alpha is None:
            if isinstance(template, pd.Series):
                return pd.Series(mean, index=template.index, name=template.name)
            return pd.DataFrame(mean, index=template.index, columns=template.columns)
        lower = np.quantile(stack, alpha / 2, axis=0)
        upper = np.quantile(stack, 1 - alpha / 2, axis=0)
        if isinstance(template, pd.Series):
            return pd.DataFrame({"mean": mean, "lower": lower, "upper": upper}, index=template.index)
        parts = {"mean": mean, "lower": lower, "upper": upper}
        return pd.concat(
            {name: pd.DataFrame(v, index=template.index, columns=template.columns) for name, v in parts.items()},
            axis=1,
        )

    def relabel(self, method: str = "stephens", **options: Any) -> "BayesResults":
        """A copy with the draws relabelled after sampling (``"stephens"``, ``"ecr"``,
        ``"sort"``, ``"pra"``; see :func:`bayesfmm.bayes.relabel.relabel_idata`)."""
        import dataclasses


        idata = relabel_idata(self.idata, self.built, method, **options)
        theta = self.built.theta_from_posterior(idata["posterior"])
        return dataclasses.replace(self, idata=idata, theta_draws=theta)

    # -- model checking ------------------------------------------------------------------
    def loo(self, **kwargs):
        """PSIS-LOO (arviz-stats ``loo``) from the pointwise log likelihood."""
        import arviz_stats as azs

        return azs.loo(self.idata, **kwargs)

    def posterior_predictive(self, max_draws: int | None = None, random_seed: int | None = None):
        """Draw replicated responses at (up to ``max_draws``) posterior draws and store them
        in ``idata["posterior_predictive"]`` (dims chain, draw, obs); returns that group."""
        import xarray as xr

        rng = np.random.default_rng(random_seed)
        chains, draws, _ = self.theta_draws.shape
        keep = np.arange(draws) if max_draws is None else np.unique(
            np.linspace(0, draws - 1, max(1, int(max_draws) // chains)).round().astype(int)
        )
        responses = response_columns(self.problem)  # d columns for an mvnormal response
        out = np.empty((chains, keep.size, self.nobs, len(responses)))
        for c in range(chains):
            for i, d in enumerate(keep):
                out[c, i] = draw_responses(self.problem, self.theta_draws[c, d], rng)
        out = as_stored(self.problem, out)  # integers for count responses (rootograms need them)
        coords = {"chain": np.arange(chains), "draw": keep, "obs": np.asarray(self.design.index)}
        if len(responses) == 1:
            data = xr.DataArray(out[..., 0], dims=("chain", "draw", "obs"), coords=coords)
        else:
            coords["response"] = list(responses)
            data = xr.DataArray(out, dims=("chain", "draw", "obs", "response"), coords=coords)
        self.idata["posterior_predictive"] = xr.DataTree(xr.Dataset({self.built.observed: data}))
        return self.idata["posterior_predictive"]

    def plot_ppc(self, max_draws: int = 200, random_seed: int | None = None, **kwargs):
        """Posterior predictive check (arviz-plots ``plot_ppc_dist``): observed density over
        replicated ones. Draws the replicates first when there are none."""
        import arviz_plots as azp

        if "posterior_predictive" not in self.idata.children:
            self.posterior_predictive(max_draws=max_draws, random_seed=random_seed)
        group = self.idata["posterior_predictive"]
        kwargs.setdefault("num_samples", min(50, group.sizes["chain"] * group.sizes["draw"]))
        return azp.plot_ppc_dist(self.idata, **kwargs)

    def loo_pit(self, max_draws: int = 400, random_seed: int | None = None, **kwargs):
        """LOO-PIT values (:func:`bayesfmm.bayes.checks.loo_pit`)."""
        return loo_pit(self, max_draws, random_seed, **kwargs)

    def plot_loo_pit(self, max_draws: int = 400, random_seed: int | None = None, **kwargs):
        """LOO-PIT ECDF plot (:func:`bayesfmm.bayes.checks.plot_loo_pit`)."""
        return plot_loo_pit(self, max_draws, random_seed, **kwargs)

    def plot_rootogram(self, max_draws: int = 400, random_seed: int | None = None, **kwargs):
        """Rootogram of a count response (:func:`bayesfmm.bayes.checks.plot_rootogram`)."""
        return plot_rootogram(self, max_draws, random_seed, **kwargs)

    def plot_trace(self, var_names=None, **kwargs):
        """Trace and marginal densities per chain (arviz-plots ``plot_trace_dist``)."""
        import arviz_plots as azp

        return azp.plot_trace_dist(self.idata, var_names=var_names, **kwargs)

    def plot_rank(self, var_names=None, **kwargs):
        """Rank plots per chain (arviz-plots ``plot_rank``): flat when chains agree."""
        import arviz_plots as azp

        return azp.plot_rank(self.idata, var_names=var_names, **kwargs)

    # -- Stata margins (bayesfmm.margins); the habits are ProblemView's ----------------------
    def margins(self, data: pd.DataFrame, at: str | None = None, dydx: str | None = None, over: str | None = None,
                equation: str | None = None, alpha: float = 0.05, max_draws: int | None = 500) -> pd.DataFrame:
        """Posterior summaries of margins and marginal effects (Stata ``margins``)."""
        return margins_table(self, data, at=at, dydx=dydx, over=over, equation=equation, alpha=alpha, max_draws=max_draws)

    # -- reporting -----------------------------------------------------------------------
    def summary(self, alpha: float = 0.05) -> "BayesSummary":
        """A Stata-like table of posterior means, sds, R-hat, ESS and intervals."""
        return BayesSummary.from_bayes(self, alpha)

    def __repr__(self) -> str:
        return (
            f"<BayesResults k={self.k} nobs={self.nobs} chains={self.chains} draws={self.draws} "
            f"sampler={self.sampler} llf(mean)={self.llf:.4f}>"
        )


@dataclass(frozen=True, repr=False)  # Summary's repr: the table
class BayesSummary(Summary):
    """The Stata-like table of :class:`Summary`, with posterior columns."""

    verdict: str = ""
    sampling: str = ""

    @classmethod
    def from_bayes(cls, res: BayesResults, alpha: float = 0.05) -> "BayesSummary":
        ci = res.conf_int(alpha)
        diag = res._diagnostics
        frame = pd.DataFrame(
            {
                "coef": res.params,
                "std_err": res.bse,
                "r_hat": diag.table["r_hat"],
                "ess_bulk": diag.table["ess_bulk"],
                "lower": ci["lower"],
                "upper": ci["upper"],
            }
        )
        order = res.built.order.description if res.built.order is not None else "none"
        return cls(
            frame=frame,
            title="Bayesian finite mixture model",
            **cls.model_fields(res, alpha),
            converged=True,
            vce="posterior",
            verdict=diag.verdict,
            sampling=f"{res.chains} chains x {res.draws} draws ({res.sampler}); ordering: {order}"
            + (f"\n{res.account}" if getattr(res, "account", "") else ""),
        )

    def _header_row(self) -> str:
        level = int(round(100 * (1 - self.alpha)))
        return (
            f"{'':>{WIDTH_LABEL}}|{'Mean':>12}{'Std. dev.':>11}{'R-hat':>9}{'ESS':>8}"
            f"     [{level}% cred. interval]"
        )

    def _row(self, label: str, row: pd.Series, aux: bool = False, fixed: bool = False) -> str:
        if fixed:  # fixed at a value by a constraint: no draws
            return f"{label:>{WIDTH_LABEL - 1}} |{format_number(row['coef'], 11)}  (constrained)"
        rhat = f"{row['r_hat']:.3f}" if np.isfinite(row["r_hat"]) else ""
        ess = f"{row['ess_bulk']:.0f}" if np.isfinite(row["ess_bulk"]) else ""
        return (
            f"{label:>{WIDTH_LABEL - 1}} |{format_number(row['coef'], 11)}{format_number(row['std_err'], 11)}"
            f"{rhat:>9}{ess:>8}{format_number(row['lower'], 12)}{format_number(row['upper'], 12)}"
        )

    def __str__(self) -> str:
        lines = super().__str__().split("\n")
        lines[1] += " (at the posterior mean)"
        lines[2:2] = [f"Posterior: {self.sampling}", f"Diagnostics: {self.verdict}"]
        return "\n".join(lines)


def compare(results: Mapping[str, BayesResults] | list[BayesResults], exclude_failed: bool = True,
            **kwargs) -> pd.DataFrame:
    """Compare fits by PSIS-LOO (arviz-stats ``compare``), e.g. across numbers of classes.

    ``results`` is a dict ``{name: BayesResults}`` or a list (named ``k=2``, ``k=3``, ...).
    Fits whose diagnostics failed are flagged (column ``diagnostics``) and, with
    ``exclude_failed`` (default), left out of the ranking; printing the table shows elpd
    at a precision that separates the fits and the decision rule
    (:mod:`bayesfmm.bayes.compare`).

    Examples
    --------
    >>> import bayesfmm as bf  # doctest: +SKIP
    >>> fits = {f"k={k}": bf.FMM("thickness ~ 1", k=k).sample(stamp) for k in (2, 3)}  # doctest: +SKIP
    >>> bf.bayes.compare(fits)  # doctest: +SKIP
    """
    if not isinstance(results, Mapping):
        named: dict[str, BayesResults] = {}
        for res in results:
            name = f"k={res.k}"
            while name in named:
                name += "'"
            named[name] = res
        results = named
    return compare_fits(results, exclude_failed=exclude_failed, **kwargs)
