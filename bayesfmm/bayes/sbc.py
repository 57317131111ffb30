"""Simulation-based calibration (SBC) of a :class:`~bayesfmm.FMM` and its sampler.

Talts, S., Betancourt, M., Simpson, D., Vehtari, A. & Gelman, A. (2018), "Validating
Bayesian inference algorithms with simulation-based calibration", arXiv:1804.06788.

For each replicate: draw parameters ``theta~`` from the prior of the model's PyMC model,
simulate data ``y~`` at ``theta~``, sample the posterior given ``y~``, thin it to ``L``
draws, and record the rank of ``theta~`` among them. The generic driver and the rank
statistics live in :mod:`bayesfmm.bayes.sbc_core` (re-exported here); this module wires
them to a mixture: the prior draws, the simulated responses, and the fits, which run on
the same nutpie runner as :meth:`bayesfmm.FMM.sample` (:mod:`bayesfmm.bayes.runners`)
with the model compiled once per SBC run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from bayesfmm.bayes.builder import build, problem_for
from bayesfmm.bayes.identify import satisfies_order
from bayesfmm.bayes.predictive import draw_responses
from bayesfmm.bayes.priors import Flat
from bayesfmm.bayes.runners import compile_nutpie, pymc_log_level, run_nutpie
from bayesfmm.bayes.sbc_core import (
    SBCResult,
    choose_bins,
    rank_histogram,
    run_sbc,
    sbc_ranks,
    thin,
    uniformity_pvalue,
)
from bayesfmm.bayes.starts import ml_start_for
from bayesfmm.errors import ConvergenceError, SpecificationError

__all__ = [
    "SBCResult",
    "sbc_ranks",
    "thin",
    "choose_bins",
    "rank_histogram",
    "uniformity_pvalue",
    "run_sbc",
    "sbc",
]


# -- SBC of an FMM through its PyMC model --------------------------------------------------
def _fixed_priors(built: Any) -> dict:
    """Every parameter's prior by its full name, so each replicate's fit uses the same prior.

    The default priors are scaled to the data; left to default, each simulated data set
    would get its own prior and the ranks would not test anything.
    """
    table = built.priors
    flat = [name for name, prior in zip(table.index, table.priors) if isinstance(prior, Flat)]
    if flat:
        raise SpecificationError(
            f"SBC draws parameters from the prior, which must be proper; {flat[:3]} have flat priors"
        )
    return dict(zip(table.index, table.priors))


def _prior_thetas(built: Any, n_replicates: int, seed: Any) -> np.ndarray:
    """``n_replicates`` prior draws of ``theta`` from the PyMC model (``pm.sample_prior_predictive``).

    Forward sampling ignores an ordering transform, while NUTS samples the prior restricted
    to the ordered set; draws violating the ordering are rejected, which samples exactly
    that restricted prior (acceptance ``1/k!`` for exchangeable classes).
    """
    import pymc as pm

    names = [g.name for g in built.groups]
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    total = 0
    batch = n_replicates * (math.factorial(built.problem.k) if built.order is not None else 1) * 2
    while total < n_replicates:
        prior = pm.sample_prior_predictive(
            draws=batch, model=built.model, var_names=names, random_seed=rng
        )
        theta = built.theta_from_posterior(prior["prior"].to_dataset()).reshape(batch, -1)
        if built.order is not None:
            ok = [satisfies_order(built.problem, built.order_group, built.order, t) for t in theta]
            theta = theta[np.asarray(ok, dtype=bool)]
        kept.append(theta)
        total += theta.shape[0]
        if total == 0 and len(kept) > 20:
            raise RuntimeError("no prior draw satisfies the ordering constraint")
    return np.concatenate(kept)[:n_replicates]


def _labels(built: Any) -> list[tuple[str, Any, int]]:
    """(label, group, column) for every scalar parameter: ``thickness_Intercept[2]``."""
    return [(f"{g.name}[{c}]", g, i) for g in built.groups for i, c in enumerate(g.classes)]


def _response_columns(model: Any, data_template: pd.DataFrame) -> list[str]:
    """The response columns SBC overwrites with simulated values (they must be columns)."""
    responses = list(model.responses)
    missing = [r for r in responses if r not in data_template.columns]
    if missing:
        raise SpecificationError(
            f"SBC writes simulated responses into columns {missing}; the response must be a plain "
            "column of data_template, not an expression"
        )
    return responses


def _compiled_once(built: Any, model: Any, sampler: str | None, n_jobs: int | None) -> "_CompiledOnce | None":
    """The model compiled once for nutpie, or None (another sampler, parallel replicates, or
    a graph the rewrite does not take: each replicate then runs ``model.sample``)."""
    if not _CompiledOnce.wanted(sampler, n_jobs):
        return None
    try:
        return _CompiledOnce(built, model)
    except Exception as exc:  # an unusual graph: fall back to model.sample per replicate
        warnings.warn(
            f"sbc could not compile the model once for nutpie ({type(exc).__name__}: {exc}); "
            "each replicate runs model.sample instead (slower)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def _fit_function(model, reuse, responses, labels, sizes, fixed, order, options):
    """``fit(data, rng) -> draws by label`` for :func:`run_sbc`: the compiled-once nutpie
    model when there is one, ``model.sample`` under the fixed priors otherwise; PyMC's
    log level is raised to ERROR during a fit only (:func:`~bayesfmm.bayes.runners.pymc_log_level`)."""
    draws, tune, chains = sizes

    def fit(data: pd.DataFrame, rng: np.random.Generator):
        with pymc_log_level(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if reuse:
                post = reuse.sample(data, responses, draws, tune, chains, rng)
            else:
                seed = int(rng.integers(2**31))
                res = model.sample(data, draws=draws, tune=tune, chains=chains, random_seed=seed, priors=fixed,
                                   order=order, progressbar=False, **options)
                post = _posterior_dataset(res)
        out = {}
        for label, g, i in labels:
            values = post[g.name].transpose("chain", "draw", g.dim).to_numpy()[..., i]
            out[label] = values.reshape(-1)  # chains one after another
        return out

    return fit


def sbc(
    model: Any,
    data_template: pd.DataFrame,
    n_replicates: int = 100,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    n_draws: int = 99,
    *,
    seed: int | None = None,
    sampler: str | None = None,
    priors: Any = None,
    order: Any = "auto",
    bins: int | None = None,
    n_jobs: int | None = None,
    progress: bool | None = None,
    executor: Any = None,
    **sample_options: Any,
) -> SBCResult:
    """Simulation-based calibration of ``model`` on the covariates of ``data_template``.

    Each replicate draws ``theta`` from the prior of the PyMC model
    (``model.build_pymc(data_template)``, ``pm.sample_prior_predictive``), simulates every
    response at ``theta`` keeping the template's covariates, samples the posterior with
    ``model.sample`` under the *same* priors, and ranks the true value of every parameter
    among ``n_draws`` evenly thinned posterior draws (Talts et al. 2018).

    Parameters
    ----------
    model
        A :class:`~bayesfmm.FMM`.
    data_template
        Data whose covariates (and number of rows) the replicates reuse; the response
        columns are replaced by simulated values.
    n_replicates
        Number of prior draws and fits (100 or more for a meaningful test).
    draws, tune, chains
        Each fit's sampler settings; ``draws * chains`` must be at least ``n_draws``.
    n_draws
        ``L``: posterior draws kept per fit; ranks run ``0..L``.
    seed
        Seed of the whole run (prior draws and every fit).
    sampler
        Passed to ``model.sample`` (``"nutpie"``, ``"pymc"``, ...); None for its default.
    priors, order
        As for ``model.sample``. The priors are resolved once on ``data_template`` and
        passed explicitly to every fit, so the data-scaled defaults stay fixed.
    bins
        Histogram bins for the chi-square test (default: see :func:`choose_bins`).
    n_jobs, progress
        Parallel replicates (joblib processes) and a progress bar.
    executor
        Run the replicates on this ``concurrent.futures.Executor`` or Dask ``Client``
        (see :func:`~bayesfmm.bayes.sbc_core.run_sbc`); each replicate then compiles its own
        model, as with ``n_jobs > 1``, and the ranks equal those of an ``n_jobs > 1`` run
        with the same ``seed``.
    **sample_options
        Further options of ``model.sample``.

    Returns
    -------
    SBCResult
        Ranks per replicate and parameter, ``.pvalues``, ``.plot()``.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> rng = np.random.default_rng(0)
    >>> template = pd.DataFrame({"y": rng.normal(size=200)})
    >>> res = bf.sbc(bf.FMM("y ~ 1", k=2), template, n_replicates=100, seed=1)  # doctest: +SKIP
    >>> res.uniform()  # doctest: +SKIP
    True
    """
    if draws * chains < n_draws:
        raise SpecificationError(f"draws * chains = {draws * chains} is fewer than n_draws = {n_draws}")
    problem, pooled = problem_for(model, data_template)
    built = build(problem, pooled, priors=priors, order=order)
    fixed = _fixed_priors(built)
    responses = _response_columns(model, data_template)
    start = time.perf_counter()
    prior_seed, fit_seed = np.random.SeedSequence(seed).spawn(2)
    thetas = _prior_thetas(built, n_replicates, prior_seed)
    template = data_template.loc[problem.design.index]
    labels = _labels(built)
    options = dict(sample_options)
    if sampler is not None:
        options["sampler"] = sampler

    def simulate(rng: np.random.Generator, replicate: int):
        theta = thetas[replicate]
        y = draw_responses(problem, theta, rng)
        data = template.copy()
        for r, name in enumerate(responses):
            data[name] = y[:, r]
        truth = {label: theta[g.positions[i]] for label, g, i in labels}
        return truth, data

    reuse = _compiled_once(built, model, sampler, n_jobs if executor is None else 2)  # no compiled model to ship
    fit = _fit_function(model, reuse, responses, labels, (draws, tune, chains), fixed, order, options)
    seed_int = int(fit_seed.generate_state(1)[0])
    result = run_sbc(simulate, fit, n_replicates, n_draws, bins=bins, seed=seed_int, n_jobs=n_jobs, progress=progress,
                     executor=executor)
    result = dataclasses.replace(result, seconds=time.perf_counter() - start)  # compile included
    used = "nutpie (compiled once)" if reuse else sampler or "model.sample default"
    result.extra.update({"model": repr(model), "draws": draws, "tune": tune, "chains": chains, "sampler": used})
    return result


def _posterior_dataset(res: Any):
    idata = getattr(res, "idata", res)
    post = idata["posterior"]
    return post.to_dataset() if hasattr(post, "to_dataset") else post


class _CompiledOnce:
    """nutpie's compiled model, built once, with the response swapped for each replicate.

    ``model.sample`` compiles the PyMC model for each new data set (numba: seconds), which
    would dominate an SBC run whose fits each take a fraction of a second. Here the
    observed response of the template's PyMC model becomes a shared variable (a graph
    rewrite through ``pymc.model.fgraph``; the priors are the template's, i.e. the fixed
    ones), the model is compiled once, and each replicate calls ``compiled.with_data`` and
    samples on the same runner as ``model.sample`` (:func:`bayesfmm.bayes.runners.run_nutpie`).
    Chains start as in ``model.sample``: from the replicate's ML fit jittered by its
    covariance, relabelled to the ordering (:func:`bayesfmm.bayes.starts.ml_start_for`).
    """

    SHARED = "sbc_response"

    @staticmethod
    def wanted(sampler: str | None, n_jobs: int | None) -> bool:
        import importlib.util

        serial = n_jobs is None or n_jobs <= 1
        return serial and sampler in (None, "nutpie") and importlib.util.find_spec("nutpie") is not None

    def __init__(self, built: Any, spec: Any) -> None:
        import pytensor
        from pymc.model.fgraph import (
            ModelObservedRV,
            fgraph_from_model,
            model_from_fgraph,
        )

        graph, _ = fgraph_from_model(built.model, inlined_views=True)
        observed = [node for node in graph.apply_nodes if isinstance(node.op, ModelObservedRV)]
        data = observed[0].inputs[1]
        graph.replace(data, pytensor.shared(np.asarray(data.data), name=self.SHARED), import_missing=True)
        self.model = model_from_fgraph(graph, mutate_fgraph=True)
        # not kept in the session's cache: a replicate's data is swapped in by with_data
        self.compiled, _ = compile_nutpie(self.model, key=None)
        self.built, self.spec = built, spec

    def _flat(self, theta: np.ndarray) -> np.ndarray:
        point = self.built.value_point(theta)
        return np.concatenate([np.ravel(point[self.model.rvs_to_values[rv].name]) for rv in self.model.free_RVs])

    def sample(self, data: pd.DataFrame, responses: list[str], draws: int, tune: int, chains: int, rng):
        y = data[responses[0]].to_numpy(dtype=float) if len(responses) == 1 else data[responses].to_numpy(dtype=float)
        compiled = self.compiled.with_data(**{self.SHARED: y})
        seed = int(rng.integers(2**31))
        try:
            ml = self.spec.fit(data)
        except ConvergenceError:
            ml = None  # nutpie's default initialisation
        # each chain's start a function of its own seed, as in model.sample
        start_for = ml_start_for(self.built, ml, seed) if ml is not None else None
        cores = min(chains, os.cpu_count() or 1)
        run = run_nutpie(compiled, self.model, self._flat, start_for, draws, tune, chains, cores, seed, False)
        return run.idata.posterior
