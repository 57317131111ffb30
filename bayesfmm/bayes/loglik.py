"""The pointwise ``log_likelihood`` group of a posterior, from the numpy likelihood core.

LOO and WAIC (``arviz``) read the log likelihood of every observation at every draw from
the DataTree's ``log_likelihood`` group. It is computed here by the package's numpy
likelihood (:func:`bayesfmm.likelihood.pointwise_loglike`) at each draw of ``theta``, so
that it is the same function the ML engine maximises (with ``group=``, a group's log
likelihood sits on its first row and the others hold 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesfmm.bayes.builder import BuiltModel
from bayesfmm.likelihood import evaluate, pointwise_loglike

__all__ = ["pointwise_draws", "add_log_likelihood"]


def pointwise_draws(built: BuiltModel, theta_draws: np.ndarray) -> np.ndarray:
    """The log likelihood of every observation at every draw: ``chains x draws x n``.

    Examples
    --------
    >>> import numpy as np, bayesfmm as bf
    >>> from bayesfmm.bayes.sample import build_model
    >>> built = build_model(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))  # doctest: +SKIP
    >>> pointwise_draws(built, built.pooled[None, None, :]).shape  # doctest: +SKIP
    (1, 1, 485)
    """
    chains, draws, _ = theta_draws.shape
    problem = built.problem
    values = np.empty((chains, draws, problem.n))
    for c in range(chains):
        for d in range(draws):
            values[c, d] = pointwise_loglike(problem, evaluate(problem, theta_draws[c, d]))
    return values


def add_log_likelihood(built: BuiltModel, idata: Any, theta_draws: np.ndarray) -> None:
    """Add the pointwise ``log_likelihood`` group to ``idata`` (in place), one variable
    named after the observed variable, dimensions ``(chain, draw, obs)``."""
    import xarray as xr

    values = pointwise_draws(built, theta_draws)
    posterior = idata.posterior
    coords = {
        "chain": posterior["chain"].to_numpy(),
        "draw": posterior["draw"].to_numpy(),
        "obs": np.asarray(built.problem.design.index),
    }
    data = xr.DataArray(values, dims=("chain", "draw", "obs"), coords=coords)
    idata["log_likelihood"] = xr.DataTree(xr.Dataset({built.observed: data}))
