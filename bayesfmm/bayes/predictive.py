"""Predictive draws for the Bayesian mode: the package's one response simulator
(:func:`bayesfmm.simulate.simulate_responses`) at many parameter vectors.

* :func:`predictive_draws` draws replicated responses at a batch of parameter vectors (the
  posterior draws of ``BayesResults.posterior_predictive``, prior draws for SBC).
* :func:`custom_dist_random` is the ``random`` of the PyMC model's observed ``CustomDist``:
  it takes the batched parameter vector and the ``size`` PyMC passes, so
  ``pm.sample_prior_predictive`` and ``pm.sample_posterior_predictive`` work on a model from
  ``build_pymc`` and draw from the same mixture (one class per group with ``group=``).

``draw_responses`` and ``inverse_cdf_draw`` live in :mod:`bayesfmm.simulate` and are
re-exported here.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from bayesfmm.likelihood import MixtureProblem
from bayesfmm.simulate import _is_discrete, draw_responses, inverse_cdf_draw, response_columns  # noqa: F401  (re-exported)

__all__ = ["draw_responses", "inverse_cdf_draw", "response_columns", "predictive_draws", "custom_dist_random"]


def predictive_draws(problem: MixtureProblem, thetas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One replicate of the responses at each parameter vector of ``thetas`` (shape
    ``batch + (p,)``): an array ``batch + (n, columns)``, drawn in C order of the batch; the
    columns are :func:`bayesfmm.simulate.response_columns` (one per response, ``d`` for an
    ``mvnormal`` response of ``d`` columns).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.bayes.builder import problem_for
    >>> problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))
    >>> predictive_draws(problem, np.tile(pooled, (2, 3, 1)), np.random.default_rng(0)).shape
    (2, 3, 485, 1)
    """
    thetas = np.asarray(thetas, dtype=float)
    batch = thetas.shape[:-1]
    flat = thetas.reshape(-1, thetas.shape[-1])
    out = np.empty((flat.shape[0], problem.n, len(response_columns(problem))))
    for i, theta in enumerate(flat):
        out[i] = draw_responses(problem, theta, rng)
    return out.reshape(batch + out.shape[1:])


def custom_dist_random(problem: MixtureProblem) -> Callable[..., np.ndarray]:
    """The ``random(theta, *support, rng=, size=)`` of the PyMC model's observed variable.

    PyMC passes the parameter vector with batch dimensions (``(1, p)`` in
    ``pm.sample_prior_predictive``) and ``size``, the batch shape of the draw, whose last
    axis is the observations. With one response the draw has shape ``size``; with several
    (signature ``(p),(r)->(r)``), ``size + (r,)``. The parameter does not vary over the
    observations, so it is read on the first one and one data set is drawn per leading
    index.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.bayes.builder import problem_for
    >>> problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))
    >>> random = custom_dist_random(problem)
    >>> random(pooled[None, :], rng=np.random.default_rng(0), size=(4, 485)).shape
    (4, 485)
    """
    n = problem.n
    several = len(response_columns(problem)) > 1

    def random(theta: Any, *support: Any, rng: np.random.Generator | None = None, size: Any = None) -> np.ndarray:
        theta = np.asarray(theta)
        if not np.issubdtype(theta.dtype, np.number):  # PyMC's probe with symbolic inputs
            raise TypeError("the mixture's random takes numeric parameters")
        theta = theta.astype(float)
        batch = theta.shape[:-1][:-1] + (n,) if size is None else tuple(int(s) for s in size)
        if not batch or batch[-1] != n:
            raise ValueError(f"the draw's last batch axis must be the {n} observations, got size {batch}")
        thetas = np.broadcast_to(theta, batch + theta.shape[-1:])[..., 0, :]
        draws = predictive_draws(problem, thetas, rng if rng is not None else np.random.default_rng())
        return draws if several else draws[..., 0]

    return random
