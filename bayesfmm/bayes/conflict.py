"""Prior-data conflict: a warning when the data pull a parameter far into its prior's tail.

After sampling, every parameter with a proper prior is checked: when its posterior mean
lies more than :data:`CONFLICT_Z` prior standard deviations from the prior's centre, the
prior and the data disagree (the prior is then shaping the estimate, or it is centred in
the wrong place), and :class:`PriorDataConflictWarning` names the parameters. Before
sampling, :func:`bayesfmm.bayes.prior_predictive.prior_predictive` checks the data's
mean and sd against the prior predictive distribution.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from bayesfmm.bayes.builder import BuiltModel
from bayesfmm.bayes.priors import Flat

__all__ = ["CONFLICT_Z", "PriorDataConflictWarning", "prior_conflicts", "warn_prior_conflict"]

CONFLICT_Z = 3.0


class PriorDataConflictWarning(UserWarning):
    """The posterior (or the data) sits far in the tail of the prior (or prior predictive)."""


def prior_conflicts(built: BuiltModel, theta_draws: np.ndarray, z_max: float = CONFLICT_Z) -> pd.DataFrame:
    """Parameters whose posterior mean is more than ``z_max`` prior sds from the prior's
    centre: columns ``posterior_mean``, ``prior_mu``, ``prior_sigma``, ``z``
    (optimiser scale)."""
    cons = built.problem.layout.constraints
    free = set(range(len(built.priors.priors))) if cons is None else set(np.asarray(cons.free).tolist())
    mean = np.asarray(theta_draws, dtype=float).reshape(-1, theta_draws.shape[-1]).mean(axis=0)
    rows = {}
    for pos, prior in enumerate(built.priors.priors):
        if isinstance(prior, Flat) or pos not in free:
            continue
        z = (mean[pos] - prior.mu) / prior.sigma
        if abs(z) > z_max:
            rows[built.priors.index[pos]] = {"posterior_mean": mean[pos], "prior_mu": prior.mu,
                                             "prior_sigma": prior.sigma, "z": z}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["posterior_mean", "prior_mu", "prior_sigma", "z"])
    return frame


def warn_prior_conflict(built: BuiltModel, theta_draws: np.ndarray, stacklevel: int = 4) -> pd.DataFrame:
    """:func:`prior_conflicts`, with a :class:`PriorDataConflictWarning` when there are any."""
    conflicts = prior_conflicts(built, theta_draws)
    if len(conflicts):
        names = ", ".join(f"{'/'.join(map(str, key))} ({z:+.1f} prior sd)" for key, z in conflicts["z"].items())
        warnings.warn(
            f"prior-data conflict: the posterior mean of {names} lies more than {CONFLICT_Z:g} prior sds "
            "from the prior's centre (optimiser scale); the prior shapes these estimates: check it "
            "(res.built.priors.frame()) or widen it with priors=",
            PriorDataConflictWarning,
            stacklevel=stacklevel,
        )
    return conflicts
