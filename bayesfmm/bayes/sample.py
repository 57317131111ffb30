"""NUTS sampling (nutpie, PyMC's sampler or numpyro) of a mixture specification.

This module orchestrates a run: it builds the PyMC model (:func:`build_model`), finds the
chains' starts from the ML fit (:mod:`bayesfmm.bayes.starts`), runs the sampler
(:mod:`bayesfmm.bayes.runners`, with its cache of compiled nutpie models), adds the
pointwise log likelihood (:mod:`bayesfmm.bayes.loglik`) and wraps the draws in
:class:`~bayesfmm.bayes.results.BayesResults`. The posterior mode is
:func:`bayesfmm.bayes.map.map_estimate` (re-exported here).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesfmm.bayes.builder import BuiltModel, build, problem_for
from bayesfmm.bayes.conflict import warn_prior_conflict
from bayesfmm.bayes.loglik import add_log_likelihood
from bayesfmm.bayes.map import map_estimate
from bayesfmm.bayes.options import check_random_seed, check_sampler_options
from bayesfmm.bayes.reporting import add_log_prior, add_reporting_variables
from bayesfmm.bayes.results import BayesResults
from bayesfmm.bayes.runners import (
    clear_compile_cache,
    compile_nutpie,
    model_key,
    seeded_initial_point,
)
from bayesfmm.bayes.starts import (
    distinct_optima,
    ml_fit,
    ml_fits,
    ml_start_for,
    ml_start_seed,
    ml_starts,
    optimum_start_for,
)
from bayesfmm.bayes.target import Runner, resolve_target, sample_to_target
from bayesfmm.errors import SpecificationError
from bayesfmm.progress import show_progress
from bayesfmm.results import MLResults

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from bayesfmm.spec import ModelSpec as FMM

__all__ = [
    "SAMPLERS",
    "INITS",
    "sample",
    "build_model",
    "map_estimate",
    "ml_starts",
    "ml_start_for",
    "ml_start_seed",
    "clear_compile_cache",
    "model_key",
    "seeded_initial_point",
]

SAMPLERS = ("nutpie", "pymc", "numpyro")
BACKENDS = ("numba", "jax")  # nutpie's
INITS = ("ml", "pymc")
_ml_fit = ml_fit  # the name tests and benchmarks know


def build_model(spec: "FMM", data: "pd.DataFrame", priors: Any = None, order: Any = "auto") -> BuiltModel:
    """The PyMC model of ``spec`` on ``data`` with its maps to ``theta`` (see builder)."""
    problem, pooled = problem_for(spec, data)
    return build(problem, pooled, priors=priors, order=order)


def _positive_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SpecificationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def sample(
    spec: "FMM",
    data: "pd.DataFrame",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    sampler: str = "nutpie",
    init: "str | MLResults" = "ml",
    priors: Any = None,
    order: Any = "auto",
    progressbar: bool | None = None,
    cores: int | None = None,
    jitter: float = 1.0,
    target: Any = None,
    max_draws: int | None = None,
    backend: str = "numba",
    **kwargs: Any,
) -> "BayesResults":
    """Sample the posterior of ``spec`` on ``data`` by NUTS; see :meth:`bayesfmm.FMM.sample`.

    ``target`` (an ESS, or True for 400) keeps sampling until every parameter has R-hat
    <= 1.01 and bulk and tail ESS >= target, up to ``max_draws`` per chain (default 10 x
    ``draws``; :mod:`bayesfmm.bayes.target`). ``backend`` is nutpie's: ``"numba"``
    (default) or ``"jax"``.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = sample(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"), draws=200, tune=200)  # doctest: +SKIP
    >>> res.diagnostics().passed  # doctest: +SKIP
    True
    """
    draws = _positive_int("draws", draws, 1)
    tune = _positive_int("tune", tune, 0)
    chains = _positive_int("chains", chains, 1)
    if sampler not in SAMPLERS:
        raise SpecificationError(f"sampler={sampler!r} unknown; choose from {', '.join(SAMPLERS)}")
    check_random_seed(random_seed)
    check_sampler_options(sampler, kwargs)  # before the model is built and compiled
    given_ml = init if isinstance(init, MLResults) else None
    if given_ml is None and init not in INITS:
        raise SpecificationError(
            f"init={init!r} unknown; choose from {', '.join(INITS)} or pass an ML fit (MLResults)"
        )
    ess = resolve_target(target)
    max_draws = 10 * draws if max_draws is None else _positive_int("max_draws", max_draws, draws)
    if backend not in BACKENDS:
        raise SpecificationError(f"backend={backend!r} unknown; nutpie's backends are {', '.join(BACKENDS)}")
    cores = min(chains, os.cpu_count() or 1) if cores is None else _positive_int("cores", cores, 1)
    built = build_model(spec, data, priors=priors, order=order)
    rng = np.random.default_rng(random_seed)
    seed = int(rng.integers(2**31 - 1))
    t0 = time.perf_counter()
    fits = [given_ml] if given_ml is not None else (ml_fits(spec, data, random_seed) if init == "ml" else [])
    ml = fits[0] if fits else None
    ml_s = time.perf_counter() - t0
    if given_ml is not None and not given_ml.layout.index.equals(built.problem.layout.index):
        raise SpecificationError("init= was given an ML fit of another model: its parameters differ")
    optima = distinct_optima(fits)
    # each chain's start drawn from its own seed (see runners.seeded_initial_point), around
    # an optimum chosen with probability proportional to its likelihood
    start_for = optimum_start_for(built, optima, seed, jitter) if optima else None
    show = show_progress(progressbar)
    compiled, compile_s, starts = None, 0.0, None
    if sampler == "nutpie":
        compiled, compile_s = compile_nutpie(built.model, model_key(spec, data, priors, order, backend), backend=backend,
                                             message=show)
    elif len(optima) == 1:  # PyMC's samplers: the starts drawn here, in chain order
        starts = ml_starts(built, ml, chains, rng, jitter)
        start_for = None
    runner = Runner(built, sampler, compiled, chains, cores, show, dict(kwargs))
    history: list[dict[str, Any]] = []
    account = ""
    if ess is None:
        idata, sample_s, run_starts = runner.run(start_for, draws, tune, seed,
                                                 ordered_starts=starts if start_for is None and optima else None)
    else:
        t1 = time.perf_counter()
        if start_for is None and optima:
            start_for = optimum_start_for(built, optima, seed, jitter)
        idata, run_starts, history, account = sample_to_target(runner, start_for, draws, tune, seed, ess, max_draws, rng)
        sample_s = time.perf_counter() - t1
    return finish(built, idata, ml, sampler, run_starts, {"ml_s": ml_s, "compile_s": compile_s, "sample_s": sample_s},
                  history, account)


def finish(built: BuiltModel, idata: Any, ml: Any, sampler: str, starts: Any, timing: dict, history: list,
           account: str) -> "BayesResults":
    """The BayesResults of a run: pointwise log likelihood, the reporting-scale variables
    and the ``log_prior`` group added to ``idata``; a prior-data conflict warned about."""
    theta_draws = built.theta_from_posterior(idata["posterior"].to_dataset())
    add_log_likelihood(built, idata, theta_draws)
    add_log_prior(built, idata, theta_draws)
    add_reporting_variables(built, idata, theta_draws)
    warn_prior_conflict(built, theta_draws)
    return BayesResults(
        built=built,
        idata=idata,
        theta_draws=theta_draws,
        ml=ml,
        sampler=sampler,
        starts=tuple(starts) if starts is not None else None,
        timing=timing,
        history=tuple(history),
        account=account,
    )
