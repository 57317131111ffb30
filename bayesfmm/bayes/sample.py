"""NUTS sampling (nutpie, PyMC's sampler or numpyro) and MAP for a mixture specification.

Chains start from the ML fit, relabelled to meet the ordering constraint and jittered by
its standard errors (``init="ml"``, the default): PyMC's default start (a unit jitter on
the unconstrained scale) lands far from the mass on raw-scale data such as stamp
thickness, where a unit is a hundred posterior standard deviations, and chains then
settle in different modes. That ML fit is the better of the default start and
:data:`ML_RANDOM_STARTS` random ones (:func:`_ml_fit`): on patent the default start stops
at a local optimum. BLAS and OpenMP thread pools are limited to one thread while
sampling (threadpoolctl): the chains already run in parallel, and nested BLAS threads
oversubscribe the cores (measured at n = 1e5: 156 s with the limit, 314 s without).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesfmm.bayes.builder import BuiltModel, build, problem_for
from bayesfmm.bayes.identify import classes_exchangeable, relabel_to_order, satisfies_order
from bayesfmm.errors import ConvergenceError, ConvergenceWarning, SpecificationError
from bayesfmm.likelihood import evaluate, pointwise_loglike

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from bayesfmm.bayes.results import BayesResults
    from bayesfmm.results import MLResults
    from bayesfmm.spec import FMM

__all__ = [
    "SAMPLERS", "INITS", "sample", "map_estimate", "ml_starts", "build_model", "clear_compile_cache",
    "ml_start_for", "seeded_initial_point",
]

SAMPLERS = ("nutpie", "pymc", "numpyro")
INITS = ("ml", "pymc")


def build_model(spec: "FMM", data: "pd.DataFrame", priors: Any = None, order: Any = "auto") -> BuiltModel:
    """The PyMC model of ``spec`` on ``data`` with its maps to ``theta`` (see builder)."""
    problem, pooled = problem_for(spec, data)
    return build(problem, pooled, priors=priors, order=order)


def _positive_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SpecificationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


ML_RANDOM_STARTS = 10
ML_START_METHOD = "randompr"
# a random-start fit replaces the default one only when its log likelihood is higher by more
# than this, so that the same optimum reached from both keeps the default fit's numbers
ML_LLF_TOL = 1e-6


def ml_start_seed(random_seed: int | None) -> int:
    """The seed of the random ML starts behind ``init="ml"``: derived from ``random_seed``
    (its own stream, apart from the sampler's), fixed (0) when that is None."""
    entropy = 0 if random_seed is None else int(random_seed)
    return int(np.random.SeedSequence(entropy, spawn_key=(1,)).generate_state(1)[0])


def _ml_fit(spec: "FMM", data: "pd.DataFrame", random_seed: int | None = None) -> "MLResults | None":
    """The ML fit the chains start from: the best of the default start and
    :data:`ML_RANDOM_STARTS` ``"randompr"`` starts (seed :func:`ml_start_seed`).

    A default start can stop at a local optimum (patent, k = 3: -202.76 against -197.675
    from random starts), and chains started there spend their tuning getting out. Converged
    fits are preferred; the random-start fit wins only with a log likelihood higher by more
    than :data:`ML_LLF_TOL`. ``res.starts`` of the fit returned says which won (its
    ``method`` and ``seed``). None (with a warning) when every fit fails.
    """
    from bayesfmm.ml.fit import fit_ml

    runs: list[dict[str, Any]] = [{}]
    if spec.k > 1:
        runs.append({"startvalues": ML_START_METHOD, "draws": ML_RANDOM_STARTS, "seed": ml_start_seed(random_seed)})
    fits: list[MLResults] = []
    failures: list[str] = []
    for options in runs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits.append(fit_ml(spec, data, progress=False, **options))
        except ConvergenceError as exc:
            failures.append(f"{options.get('startvalues', 'default')}: {exc}")
        except SpecificationError:
            if not options:
                raise  # the default fit's error is the user's to see
            # a start method this model does not take: the default fit stands
    if not fits:
        warnings.warn(
            f"the ML fit for the starting values failed ({'; '.join(failures)}); chains start "
            "from PyMC's default initialisation instead (init='pymc')",
            ConvergenceWarning,
            stacklevel=4,
        )
        return None
    best = fits[0]
    for fit in fits[1:]:
        if (fit.converged, fit.llf) > (best.converged, best.llf + ML_LLF_TOL):
            best = fit
    return best


def _jitter_factor(ml: "MLResults", theta: np.ndarray) -> np.ndarray:
    """A square root ``L`` of the ML covariance (``L L' = cov``, eigenvalues clipped at 0),
    so that ``theta + L z`` follows the fit's correlations; the diagonal of standard
    errors (0.1 max(|theta|, 1) where one is not finite) when the covariance is not."""
    cov = np.asarray(ml.cov_theta, dtype=float)
    p = theta.size
    if cov.shape == (p, p) and np.all(np.isfinite(cov)):
        values, vectors = np.linalg.eigh(0.5 * (cov + cov.T))
        return vectors * np.sqrt(np.clip(values, 0, None))
    se = np.sqrt(np.clip(np.diag(cov), 0, None)) if cov.shape == (p, p) else np.full(p, np.nan)
    se = np.where(np.isfinite(se), se, 0.1 * np.maximum(np.abs(theta), 1.0))
    return np.diag(se)


def ml_starts(
    built: BuiltModel, ml: "MLResults", chains: int, rng: np.random.Generator, jitter: float = 1.0
) -> list[np.ndarray]:
    """Per-chain starting ``theta``: draws from ``Normal(ML, jitter^2 cov)`` (the ML
    estimates and their covariance), relabelled to the ordering.

    Each parameter moves by ``jitter`` standard errors at one sd, along the fit's
    correlations: jittering each parameter on its own by its standard error ignores them,
    and on patent (each class's intercept and slope correlated -0.95 to -0.99) put starts 15-45 log
    likelihood units below the optimum, from where a chain now and then settled in a minor
    mode. The draw is made in the fit's own labelling (its covariance's) and relabelled
    afterwards. A draw whose log likelihood is not finite, or that breaks the ordering
    after relabelling, is redrawn with half the jitter (the ML point itself as the last
    resort).
    """
    problem = built.problem
    group, spec = built.order_group, built.order
    exchangeable = classes_exchangeable(problem)
    centre = np.asarray(ml.theta, dtype=float)
    theta0 = centre
    if spec is not None and not satisfies_order(problem, group, spec, theta0):
        if not exchangeable:
            raise SpecificationError(
                f"the ML estimates violate the ordering ({spec.description}) and these classes "
                "differ in structure, so they cannot be relabelled: use order=None or init='pymc'"
            )
        theta0 = relabel_to_order(problem, group, spec, theta0)
    factor = _jitter_factor(ml, centre)
    starts = []
    for _ in range(chains):
        scale = jitter
        for _attempt in range(8):
            theta = centre + scale * (factor @ rng.standard_normal(centre.size))
            if spec is not None and exchangeable:
                theta = relabel_to_order(problem, group, spec, theta)
            ok = np.isfinite(evaluate(problem, theta).llf)
            if ok and (spec is None or satisfies_order(problem, group, spec, theta)):
                break
            scale /= 2
        else:
            theta = theta0
        starts.append(theta)
    return starts


def _thread_limit():
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _show_progress(progressbar: bool | None) -> bool:
    return bool(sys.stderr.isatty()) if progressbar is None else bool(progressbar)


COMPILED_CACHE_SIZE = 4
_COMPILED: dict[tuple, Any] = {}  # nutpie models compiled in this session, by model_key()


def model_key(spec: "FMM", data: "pd.DataFrame", priors: Any, order: Any) -> tuple | None:
    """A key identifying the PyMC model built from these inputs (None if not hashable):
    sampling the same model, data, priors and ordering again reuses nutpie's compiled
    model instead of compiling it again (10-30 s)."""
    import pandas as pd

    try:
        digest = pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes()
    except (TypeError, ValueError):
        return None
    return (repr(spec), tuple(map(str, data.columns)), tuple(map(str, data.dtypes)), digest, repr(priors), repr(order))


def clear_compile_cache() -> None:
    """Forget the nutpie models compiled in this session (the next sample() compiles anew)."""
    _COMPILED.clear()


def ml_start_for(built: BuiltModel, ml: "MLResults", seed: int, jitter: float = 1.0):
    """``start_for(chain_seed) -> theta``: one :func:`ml_starts` draw from a stream seeded
    by the sampler's ``seed`` and the chain's own seed (for :func:`seeded_initial_point`)."""

    def start_for(chain_seed: int) -> np.ndarray:
        return ml_starts(built, ml, 1, np.random.default_rng([seed, chain_seed]), jitter)[0]

    return start_for


def seeded_initial_point(start_for, flat) -> tuple[Any, dict[int, np.ndarray]]:
    """nutpie's ``initial_point_func`` from ``start_for(chain_seed) -> theta``.

    nutpie's chain threads ask for their initial points with their own seeds, in whatever
    order they run: a start that is a function of the seed alone (not of the order of the
    calls) keeps a seed's draws the same from run to run. ``flat(theta)`` maps ``theta`` to
    the unconstrained vector nutpie samples. Returns the function and the dict of starts
    it handed out (``theta`` by chain seed), filled as the chains start.
    """
    used: dict[int, np.ndarray] = {}
    lock = threading.Lock()

    def initial_point(chain_seed=None) -> np.ndarray:
        key = 0 if chain_seed is None else int(chain_seed)
        with lock:
            if key not in used:
                used[key] = start_for(key)
            return np.asarray(flat(used[key]), dtype=float).copy()

    return initial_point, used


def _run_nutpie(built, start_for, draws, tune, chains, cores, seed, progressbar, kwargs, cache_key=None):
    """Sample with nutpie; ``start_for(chain_seed)`` gives a chain's starting ``theta``.

    nutpie asks each chain's thread for its initial point with that chain's seed, in
    whatever order the threads run; a start that is a function of the seed (not of the
    order of the calls) keeps a seed's draws the same from run to run. Returns the idata,
    compile and sampling seconds, and the starts used (ordered by chain seed).
    """
    if importlib.util.find_spec("nutpie") is None:
        raise SpecificationError(
            "sampler='nutpie' needs the nutpie package: pip install nutpie (or use sampler='pymc')"
        )
    import nutpie
    from pymc.backends.arviz import patch_nutpie_idata

    model = built.model
    t0 = time.perf_counter()
    compiled = _COMPILED.get(cache_key) if cache_key is not None else None
    if compiled is None:
        compiled = nutpie.compile_pymc_model(model, backend="numba")
        if cache_key is not None:
            _COMPILED[cache_key] = compiled
            while len(_COMPILED) > COMPILED_CACHE_SIZE:
                _COMPILED.pop(next(iter(_COMPILED)))
    compile_s = time.perf_counter() - t0
    used: dict[int, np.ndarray] = {}
    if start_for is not None:
        initial_point, used = seeded_initial_point(start_for, built.flat_value)
        compiled = dataclasses.replace(compiled, initial_point_func=initial_point)
    if "max_treedepth" in kwargs:
        kwargs["maxdepth"] = kwargs.pop("max_treedepth")
    # mixture posteriors correlate class probabilities with component parameters: nutpie's
    # low-rank mass matrix gave 3x the min ESS/s of its diagonal one on stamp (docs/bayes.md)
    kwargs.setdefault("adaptation", "low_rank")
    t1 = time.perf_counter()
    idata = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        seed=seed,
        save_warmup=False,
        progress_bar=progressbar,
        **kwargs,
    )
    sample_s = time.perf_counter() - t1
    patch_nutpie_idata(idata, model, sampling_time=sample_s)
    return idata, compile_s, sample_s, tuple(used[key] for key in sorted(used))


def _run_pymc(built, starts, draws, tune, chains, cores, seed, progressbar, sampler, kwargs):
    import pymc as pm

    if sampler == "numpyro" and (importlib.util.find_spec("numpyro") is None or importlib.util.find_spec("jax") is None):
        raise SpecificationError(
            "sampler='numpyro' needs jax and numpyro: pip install numpyro (or use sampler='nutpie')"
        )
    initvals = None if starts is None else [built.constrained_point(theta) for theta in starts]
    options: dict[str, Any] = dict(kwargs)
    if sampler == "pymc":
        options.setdefault("init", "adapt_diag" if starts is not None else "jitter+adapt_diag")
        options.setdefault("cores", cores)
    elif initvals is not None:
        options.setdefault("nuts", {}).setdefault("jitter", False)
    t1 = time.perf_counter()
    idata = pm.sample(
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        initvals=initvals,
        nuts_sampler=sampler,
        progressbar=progressbar,
        compute_convergence_checks=False,
        model=built.model,
        **options,
    )
    return idata, 0.0, time.perf_counter() - t1


def add_log_likelihood(built: BuiltModel, idata, theta_draws: np.ndarray) -> None:
    """Add the pointwise ``log_likelihood`` group, computed by the numpy likelihood core."""
    import xarray as xr

    chains, draws, _ = theta_draws.shape
    problem = built.problem
    values = np.empty((chains, draws, problem.n))
    for c in range(chains):
        for d in range(draws):
            values[c, d] = pointwise_loglike(problem, evaluate(problem, theta_draws[c, d]))
    posterior = idata.posterior
    coords = {"chain": posterior["chain"].to_numpy(), "draw": posterior["draw"].to_numpy(), "obs": np.asarray(problem.design.index)}
    data = xr.DataArray(values, dims=("chain", "draw", "obs"), coords=coords)
    idata["log_likelihood"] = xr.DataTree(xr.Dataset({built.observed: data}))


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
    **kwargs: Any,
) -> "BayesResults":
    """Sample the posterior of ``spec`` on ``data`` by NUTS; see :meth:`bayesfmm.FMM.sample`."""
    from bayesfmm.bayes.results import BayesResults

    draws = _positive_int("draws", draws, 1)
    tune = _positive_int("tune", tune, 0)
    chains = _positive_int("chains", chains, 1)
    if sampler not in SAMPLERS:
        raise SpecificationError(f"sampler={sampler!r} unknown; choose from {', '.join(SAMPLERS)}")
    from bayesfmm.results import MLResults

    given_ml = init if isinstance(init, MLResults) else None
    if given_ml is None and init not in INITS:
        raise SpecificationError(
            f"init={init!r} unknown; choose from {', '.join(INITS)} or pass an ML fit (MLResults)"
        )
    cores = min(chains, os.cpu_count() or 1) if cores is None else _positive_int("cores", cores, 1)
    built = build_model(spec, data, priors=priors, order=order)
    rng = np.random.default_rng(random_seed)
    seed = int(rng.integers(2**31 - 1))
    t0 = time.perf_counter()
    ml = given_ml if given_ml is not None else (_ml_fit(spec, data, random_seed) if init == "ml" else None)
    ml_s = time.perf_counter() - t0
    if given_ml is not None and not given_ml.layout.index.equals(built.problem.layout.index):
        raise SpecificationError("init= was given an ML fit of another model: its parameters differ")
    starts = ml_starts(built, ml, chains, rng, jitter) if ml is not None else None
    show = _show_progress(progressbar)
    with _thread_limit():
        if sampler == "nutpie":
            key = model_key(spec, data, priors, order)
            # each chain's start drawn from its own seed (see seeded_initial_point)
            start_for = ml_start_for(built, ml, seed, jitter) if ml is not None else None
            idata, compile_s, sample_s, used = _run_nutpie(
                built, start_for, draws, tune, chains, cores, seed, show, kwargs, key
            )
            starts = list(used) if used else starts
        else:
            idata, compile_s, sample_s = _run_pymc(built, starts, draws, tune, chains, cores, seed, show, sampler, kwargs)
    theta_draws = built.theta_from_posterior(idata.posterior)
    add_log_likelihood(built, idata, theta_draws)
    timing = {"ml_s": ml_s, "compile_s": compile_s, "sample_s": sample_s}
    return BayesResults(
        built=built,
        idata=idata,
        theta_draws=theta_draws,
        ml=ml,
        sampler=sampler,
        starts=tuple(starts) if starts is not None else None,
        timing=timing,
    )


def _fd_hessian(grad_fn, theta: np.ndarray) -> np.ndarray:
    """Hessian by central differences of the compiled gradient, symmetrised."""
    p = theta.size
    hess = np.empty((p, p))
    for i in range(p):
        h = 1e-5 * (abs(theta[i]) + 1e-2)
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        hess[:, i] = (grad_fn(up) - grad_fn(down)) / (2 * h)
    return 0.5 * (hess + hess.T)


NEWTON_DECREMENT_TOL = 1e-10


def _newton_polish(fn, grad_only, theta: np.ndarray, steps: int = 20) -> tuple[np.ndarray, float]:
    """Newton steps on the log density from ``theta`` (step halving), until the Newton
    decrement ``g' (-H)^-1 g`` (Stata's ``nrtolerance`` criterion) is below 1e-10.

    Returns the point and its decrement (inf where minus the Hessian is not positive definite).
    """
    from scipy import linalg

    value = float(fn(theta)[0])
    decrement = np.inf
    for _ in range(steps):
        grad = np.asarray(fn(theta)[1])
        try:
            factor = linalg.cho_factor(-_fd_hessian(grad_only, theta))
        except linalg.LinAlgError:
            return theta, np.inf
        step = linalg.cho_solve(factor, grad)
        decrement = float(grad @ step)
        if decrement < NEWTON_DECREMENT_TOL:
            break
        for _half in range(30):
            trial = theta + step
            new = float(fn(trial)[0])
            if np.isfinite(new) and new >= value - 1e-12 * abs(value):
                theta, value = trial, new
                break
            step = step / 2
        else:
            break
    return theta, decrement


def map_estimate(
    spec: "FMM",
    data: "pd.DataFrame",
    priors: Any = None,
    start: np.ndarray | None = None,
    gtol: float = 1e-8,
    maxiter: int = 500,
):
    """Posterior mode by scipy on the PyMC model's compiled log density and gradient.

    The optimiser is scipy's ``trust-exact`` with the Hessian taken by central differences
    of the compiled gradient; it starts from the ML estimates unless ``start`` (a ``theta``
    vector) is given. The covariance is the inverse of minus that Hessian (the Laplace
    approximation). With ``priors="flat"`` the mode is the ML estimate. No ordering is
    imposed: a mode is a mode under any labelling.
    """
    from scipy import optimize

    from bayesfmm.bayes.results import MAPResults
    from bayesfmm.ml.iterlog import IterationLog
    from bayesfmm.ml.vce import observed_information_covariance

    built = build_model(spec, data, priors=priors, order=None)
    problem = built.problem
    if start is None:
        ml = _ml_fit(spec, data)
        start = ml.theta if ml is not None else built.pooled
    start = np.asarray(start, dtype=float)
    if start.shape != (problem.layout.size,):
        raise SpecificationError(f"start must be a vector of {problem.layout.size} parameters, got shape {start.shape}")
    theta_fn = built.theta_logp_function()
    cons = problem.layout.constraints
    if cons is None:
        fn = theta_fn
    else:  # constraints: optimise the free parameters phi, theta = T phi + c

        def fn(phi):
            value, grad = theta_fn(cons.expand(phi))
            return value, cons.T.T @ np.asarray(grad)

        start = cons.reduce(problem.layout.project(start))

    def negative(theta):
        value, grad = fn(theta)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(theta)
        return -float(value), -np.asarray(grad)

    def grad_only(theta):
        return np.asarray(fn(theta)[1])

    def neg_hess(theta):
        return -_fd_hessian(grad_only, theta)

    result = optimize.minimize(
        negative, start, jac=True, hess=neg_hess, method="trust-exact", options={"gtol": gtol, "maxiter": maxiter}
    )
    theta, decrement = _newton_polish(fn, grad_only, result.x)
    logp, grad = fn(theta)
    hessian = _fd_hessian(grad_only, theta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cov, note = observed_information_covariance(hessian)
    if cons is not None:  # back to the full parameter vector
        theta = cons.expand(theta)
        cov = cons.T @ cov @ cons.T.T
        grad = theta_fn(theta)[1]
    converged = bool(np.isfinite(decrement) and decrement < NEWTON_DECREMENT_TOL)
    if not converged:
        warnings.warn(
            f"MAP optimisation did not converge ({result.message}; Newton decrement {decrement:.3g}): "
            "try another start= or proper priors",
            ConvergenceWarning,
            stacklevel=3,
        )
    return MAPResults(
        problem=problem,
        theta=theta,
        cov_theta=cov,
        llf=evaluate(problem, theta).llf,
        converged=converged,
        iterations=int(result.nit),
        vce="oim",
        vce_note=note or "Laplace approximation: inverse of minus the Hessian of the log posterior at the mode",
        starts=None,
        iteration_log=IterationLog(echo=False),
        gradient=np.asarray(grad),
        hessian=hessian,
        logp=float(logp),
        priors=built.priors,
    )
