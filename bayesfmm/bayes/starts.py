"""Where the chains start: the ML fit, relabelled to the ordering and jittered.

Chains start from the ML fit, relabelled to meet the ordering constraint and jittered by
its covariance (``init="ml"``, the default): PyMC's default start (a unit jitter on the
unconstrained scale) lands far from the mass on raw-scale data such as stamp thickness,
where a unit is a hundred posterior standard deviations, and chains then settle in
different modes. That ML fit is the better of Stata's single start
(``startvalues="factor"``) and :data:`ML_RANDOM_STARTS` random ones (:func:`ml_fit`): on
patent the single start stops at a local optimum. MAP (:mod:`bayesfmm.bayes.map`) starts from the same fit.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from bayesfmm.bayes.builder import BuiltModel
from bayesfmm.bayes.identify import classes_exchangeable, relabel_to_order, satisfies_order
from bayesfmm.errors import ConvergenceError, ConvergenceWarning, SpecificationError
from bayesfmm.likelihood import evaluate
from bayesfmm.ml.fit import fit_ml

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from bayesfmm.results import MLResults
    from bayesfmm.spec import ModelSpec

__all__ = [
    "ML_RANDOM_STARTS",
    "ML_START_METHOD",
    "ML_LLF_TOL",
    "ml_start_seed",
    "ml_fit",
    "ml_fits",
    "distinct_optima",
    "optimum_start_for",
    "initial_points",
    "ml_starts",
    "ml_start_for",
]


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


def ml_fit(spec: "ModelSpec", data: "pd.DataFrame", random_seed: int | None = None) -> "MLResults | None":
    """The ML fit the chains start from: the best of Stata's single start
    (``startvalues="factor"``) and :data:`ML_RANDOM_STARTS` ``"randompr"`` starts (seed :func:`ml_start_seed`); the best
    of :func:`ml_fits`.

    A default start can stop at a local optimum (patent, k = 3: -202.76 against -197.675
    from random starts), and chains started there spend their tuning getting out. Converged
    fits are preferred; the random-start fit wins only with a log likelihood higher by more
    than :data:`ML_LLF_TOL`. ``res.starts`` of the fit returned says which won (its
    ``method`` and ``seed``). None (with a warning) when every fit fails.
    """
    fits = ml_fits(spec, data, random_seed)
    return fits[0] if fits else None


def ml_fits(spec: "ModelSpec", data: "pd.DataFrame", random_seed: int | None = None) -> list["MLResults"]:
    """The fits :func:`ml_fit` chooses from, the chosen one first (empty, with a warning,
    when every fit fails)."""
    # the Stata-compatible single start, as before the default fit searched random starts
    # (issue 13): its labelling seeds the chains' start draws; the random starts follow
    runs: list[dict[str, Any]] = [{"startvalues": "factor"} if spec.k > 1 else {}]
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
            if not options or options.get("startvalues") == "factor":
                raise  # the default fit's error is the user's to see
            # a start method this model does not take: the default fit stands
    if not fits:
        warnings.warn(
            f"the ML fit for the starting values failed ({'; '.join(failures)}); chains start "
            "from PyMC's default initialisation instead (init='pymc')",
            ConvergenceWarning,
            stacklevel=5,
        )
        return []
    best = fits[0]
    for fit in fits[1:]:
        if (fit.converged, fit.llf) > (best.converged, best.llf + ML_LLF_TOL):
            best = fit
    return [best] + [fit for fit in fits if fit is not best]


# two maxima whose log likelihoods differ by less than this are one optimum (relabelled)
OPTIMUM_LLF_TOL = 1e-3


def distinct_optima(fits: list["MLResults"]) -> list[tuple["MLResults", float]]:
    """The distinct converged maxima among ``fits`` with their weights: proportional to
    the likelihood, ``exp(llf - max llf)``, summing to 1 (the best first).

    A maximum 5 log-likelihood units below the best gets weight 0.007, so chains start
    there only when it is nearly as good: then the posterior has mass in both, and chains
    started in one mode alone would hide the other.

    Examples
    --------
    >>> from types import SimpleNamespace as F
    >>> [round(w, 3) for _, w in distinct_optima([F(llf=-10.0, converged=True), F(llf=-10.5, converged=True)])]
    [0.622, 0.378]
    """
    kept: list["MLResults"] = []
    for fit in fits:
        if not getattr(fit, "converged", True) or not np.isfinite(fit.llf):
            continue
        if all(abs(fit.llf - other.llf) > OPTIMUM_LLF_TOL for other in kept):
            kept.append(fit)
    if not kept:
        return [(fits[0], 1.0)] if fits else []
    kept.sort(key=lambda f: -f.llf)
    raw = np.exp(np.array([f.llf for f in kept]) - kept[0].llf)
    return [(fit, float(w)) for fit, w in zip(kept, raw / raw.sum())]


def optimum_start_for(
    built: BuiltModel, optima: list[tuple["MLResults", float]], seed: int, jitter: float = 1.0
) -> Callable[[int], np.ndarray]:
    """``start_for(chain_seed) -> theta``: the chain picks an optimum with probability its
    weight (:func:`distinct_optima`) and starts from a :func:`ml_starts` draw around it;
    both drawn from a stream seeded by ``seed`` and the chain's own seed."""
    weights = np.array([w for _, w in optima])

    def start_for(chain_seed: int) -> np.ndarray:
        rng = np.random.default_rng([seed, chain_seed])
        fit = optima[int(rng.choice(len(optima), p=weights))][0] if len(optima) > 1 else optima[0][0]
        return ml_starts(built, fit, 1, rng, jitter)[0]

    return start_for


def initial_points(
    built: BuiltModel, fits: list["MLResults"], chains: int, seed: int | None, jitter: float = 1.0
) -> list[dict[str, np.ndarray]]:
    """One start per chain for ``pm.sample(initvals=...)``: ``{variable: value}`` on the
    scale the priors are written on (PyMC's ``initvals`` scale), drawn around the distinct
    optima of ``fits`` (:func:`optimum_start_for`)."""
    start_for = optimum_start_for(built, distinct_optima(fits), 0 if seed is None else int(seed), jitter)
    return [built.constrained_point(start_for(chain)) for chain in range(chains)]


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


def ml_start_for(
    built: BuiltModel, ml: "MLResults", seed: int, jitter: float = 1.0
) -> Callable[[int], np.ndarray]:
    """``start_for(chain_seed) -> theta``: one :func:`ml_starts` draw from a stream seeded
    by the sampler's ``seed`` and the chain's own seed (for :func:`bayesfmm.bayes.runners.seeded_initial_point`)."""

    def start_for(chain_seed: int) -> np.ndarray:
        return ml_starts(built, ml, 1, np.random.default_rng([seed, chain_seed]), jitter)[0]

    return start_for
