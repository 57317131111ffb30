"""The :class:`FMM` facade: a model specification with its two inference modes.

:class:`~bayesfmm.spec.ModelSpec` holds the model as data; ``FMM`` adds the engines that
use it: ``fit`` (ML, :mod:`bayesfmm.ml`), ``sample``, ``map`` and ``build_pymc`` (Bayesian,
:mod:`bayesfmm.bayes`). It sits above both engines, so neither imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bayesfmm.ml.fit import fit_ml
from bayesfmm.ml.partitions import is_dask_frame
from bayesfmm.ops import Lazy
from bayesfmm.spec import ModelSpec

if TYPE_CHECKING:
    from bayesfmm.bayes.prior_predictive import PriorPredictive

# The Bayesian side and the Dask engine load on first use: ``import bayesfmm`` stays the
# price of a maximum-likelihood fit (benchmarks/bench_engine.py, table 5).
map_estimate = Lazy("bayesfmm.bayes.map", "map_estimate")
prior_predictive = Lazy("bayesfmm.bayes.prior_predictive", "prior_predictive")
build_model = Lazy("bayesfmm.bayes.sample", "build_model")
sample = Lazy("bayesfmm.bayes.sample", "sample")
initial_points = Lazy("bayesfmm.bayes.starts", "initial_points")
ml_fits = Lazy("bayesfmm.bayes.starts", "ml_fits")
fit_dask = Lazy("bayesfmm.ml.dask_fit", "fit_dask")

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from bayesfmm.bayes.results import BayesResults
    from bayesfmm.results import MLResults

__all__ = ["FMM"]


@dataclass(frozen=True, init=False, repr=False)  # ModelSpec's repr: a call that can be pasted back
class FMM(ModelSpec):
    """A finite mixture model: latent classes, each with component models.

    Standard syntax (Stata ``fmm 3: regress y x``) gives a formula, a family and ``k``;
    hybrid syntax (Stata ``fmm: (regress y x) (poisson y x)``) gives a list of
    :class:`Component`, one per class. A list together with ``k`` fits every component in
    each of the ``k`` classes (Stata ``fmm 3: (regress y1) (poisson y2)``).

    Parameters
    ----------
    spec
        A formula string, or a sequence of :class:`Component`.
    family
        Family of the standard syntax (default ``"gaussian"``).
    k
        Number of latent classes (standard syntax).
    lcprob
        ``"~ z1 + z2"``: covariates of the class probabilities (multinomial logit).
    lcinvariant
        Stata's ``lcinvariant()``: component parameters constrained equal across classes,
        by parameter class: ``"none"`` (default), ``"cons"`` (intercepts, cutpoints),
        ``"coef"`` (the other regression coefficients), ``"errvar"`` (error variances),
        ``"scale"`` (other auxiliary parameters: ``alpha``, ``scale``), ``"all"``, or a
        list of them.
    lcbase
        Base latent class, 1-based (its logit is fixed at 0).
    constraints
        Linear constraints on named parameters, a string or a list of strings in the
        syntax of ``res.test``: ``"[1]x1 = [2]x1"``, ``"[3]Intercept = 0"``,
        ``"[1]x1 + [2]x1 = 1"``, ``"[1]var(e) = [2]var(e)"`` (auxiliary parameters can be
        set equal or fixed at a value). See docs/structure.md.
    equal
        flexmix's ``fixed`` effects: terms whose coefficient is one parameter shared by every
        class (``["x2"]``, or ``["y:x2"]`` naming the equation).
    nested
        flexmix's ``nested`` effects: ``{"x1": [(2, 3)]}`` shares the coefficient of ``x1``
        within each listed group of classes.
    group
        A column: all rows of a group belong to one class (flexmix ``y ~ x | g``); the
        likelihood is a product over groups and posterior class probabilities are per group.
    weights, weight_type
        A weight column and its kind: ``"fweight"`` (frequency: a row counts ``w`` times),
        ``"pweight"`` (sampling weights; implies ``vce="robust"``), ``"iweight"``
        (importance: the log likelihood of a row is multiplied by ``w``), as in Stata.
    **options
        Family options of the standard syntax.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> model = bf.FMM("thickness ~ 1", family="gaussian", k=3)
    >>> model.k
    3
    >>> res = model.fit(bf.datasets.load("stamp"))  # doctest: +SKIP
    """
    def fit(self, data: "pd.DataFrame", **options: Any) -> "MLResults":
        """Fit by maximum likelihood as Stata ``fmm`` does: start values, EM, then Newton.

        See :func:`bayesfmm.ml.fit.fit_ml` for the options (``startvalues``, ``draws``,
        ``seed``, ``emopts``, ``iterate``, ``tolerance``, ``ltolerance``, ``nrtolerance``,
        ``vce``, ``log``, ``executor``). On a Dask DataFrame the fit runs on its partitions
        (:func:`bayesfmm.ml.dask_fit.fit_dask`, docs/scale.md).

        Examples
        --------
        >>> import bayesfmm as bf
        >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
        >>> round(res.llf, 3)
        1518.848
        """
        if is_dask_frame(data):  # one pass per iteration over the partitions (docs/scale.md)
            return fit_dask(self, data, **options)
        return fit_ml(self, data, **options)

    def build_pymc(self, data: "pd.DataFrame", priors: Any = None, order: Any = "auto") -> Any:
        """The PyMC model (``pm.Model``) of this mixture on ``data``, for users who extend it.

        See ``docs/bayes.md``: one variable per parameter over the ``class`` dimension
        (``thickness_Intercept``, ``thickness_lnvar``, ``Class_Intercept``), the mixture
        marginalised, the pointwise log likelihood on the observed variable.

        Examples
        --------
        >>> import bayesfmm as bf
        >>> m = bf.FMM("thickness ~ 1", k=3).build_pymc(bf.datasets.load("stamp"))  # doctest: +SKIP
        >>> sorted(m.named_vars)  # doctest: +SKIP
        ['Class_Intercept', 'thickness', 'thickness_Intercept', 'thickness_lnvar']
        """
        return build_model(self, data, priors=priors, order=order).model

    def sample(
        self,
        data: "pd.DataFrame",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed: int | None = None,
        sampler: str = "nutpie",
        init: Any = "ml",
        priors: Any = None,
        order: Any = "auto",
        progressbar: bool | None = None,
        **kwargs: Any,
    ) -> "BayesResults":
        """Sample the posterior by NUTS: ``sampler="nutpie"`` (default), ``"pymc"`` or ``"numpyro"``.

        Chains start from the ML fit jittered by its standard errors (``init="ml"``; an
        ``MLResults`` to start from that fit, e.g. one with random starts; ``"pymc"`` for
        PyMC's own start); ``order="auto"`` orders the classes by the first
        component's intercept (``None`` to switch off, ``"classpr"``, or a parameter);
        ``priors`` overrides the default priors. ``target=400`` (or True) samples until
        every parameter has R-hat <= 1.01 and bulk and tail ESS >= 400, up to
        ``max_draws`` per chain, raising ``target_accept`` once on divergences
        (``res.history``, ``res.account``). ``backend="jax"`` compiles nutpie's model with
        JAX. Other keywords go to the sampler (``target_accept``, ``cores``, ...). See
        ``docs/bayes.md``.

        Examples
        --------
        >>> import bayesfmm as bf
        >>> post = bf.FMM("thickness ~ 1", k=3).sample(bf.datasets.load("stamp"), random_seed=1)  # doctest: +SKIP
        >>> post.diagnostics().passed  # doctest: +SKIP
        True
        """
        return sample(
            self, data, draws=draws, tune=tune, chains=chains, random_seed=random_seed, sampler=sampler,
            init=init, priors=priors, order=order, progressbar=progressbar, **kwargs,
        )

    def initial_points(
        self, data: "pd.DataFrame", chains: int = 4, seed: int | None = None, priors: Any = None, order: Any = "auto"
    ) -> list[dict]:
        """Starting points for ``pm.sample(initvals=...)`` on a model from :meth:`build_pymc`
        (extended or not): one ``{variable: value}`` per chain, drawn around the distinct
        ML optima (chosen with probability proportional to their likelihood), relabelled to
        the ordering, on the scale of the variables (PyMC's ``initvals``). Variables you
        added take PyMC's default start. Pass the same ``priors`` and ``order`` as to
        :meth:`build_pymc`.

        Examples
        --------
        >>> import bayesfmm as bf, pymc as pm  # doctest: +SKIP
        >>> stamp = bf.datasets.load("stamp")  # doctest: +SKIP
        >>> model = bf.FMM("thickness ~ 1", k=3)  # doctest: +SKIP
        >>> m = model.build_pymc(stamp)  # doctest: +SKIP
        >>> idata = pm.sample(model=m, initvals=model.initial_points(stamp, chains=4, seed=1), chains=4)  # doctest: +SKIP
        """
        built = build_model(self, data, priors=priors, order=order)
        return initial_points(built, ml_fits(self, data, seed), chains, seed)

    def prior_predictive(
        self, data: "pd.DataFrame", priors: Any = None, draws: int = 500, random_seed: int | None = None
    ) -> PriorPredictive:
        """Datasets drawn from the prior predictive distribution (parameters from the
        priors, responses from the mixture), with a summary against the data, a
        prior-data conflict warning and ``.plot()``. See
        :func:`bayesfmm.bayes.prior_predictive.prior_predictive`."""
        return prior_predictive(self, data, priors=priors, draws=draws, random_seed=random_seed)

    def map(self, data: "pd.DataFrame", priors: Any = None, **options: Any) -> "MLResults":
        """Posterior mode (MAP): the ML Newton engine (exact Hessian, Stata's convergence
        rule) on the log likelihood plus the log prior, from the ML fit; equals ML with
        ``priors="flat"``. Returns MAPResults (MLResults' API, Laplace standard errors from
        the exact Hessian). Options: ``start=`` (a ``theta`` vector), ``gtol=`` (Newton's
        tolerance), ``maxiter=``, ``log=`` (the iteration log). See
        :func:`bayesfmm.bayes.map.map_estimate`.

        Examples
        --------
        >>> import bayesfmm as bf
        >>> mode = bf.FMM("thickness ~ 1", k=3).map(bf.datasets.load("stamp"))
        >>> round(mode.logp, 2)
        1516.72
        """
        return map_estimate(self, data, priors=priors, **options)
