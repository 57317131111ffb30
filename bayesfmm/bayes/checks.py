"""Posterior predictive checks that need more than the draws: LOO-PIT and rootograms.

* :func:`discrete_responses` says whether every response is a count (or another
  integer-valued family); then posterior predictive draws are stored as integers, which
  arviz-plots' rootogram needs (``BayesResults.posterior_predictive``).
* :func:`check_tree` is the DataTree the checks read: the posterior predictive draws with
  the ``log_likelihood`` and ``posterior`` restricted to the same (thinned) draws, and the
  observed data (as integers for discrete responses). LOO-PIT on the full
  ``log_likelihood`` next to a thinned posterior predictive group fails; here they match.
* :func:`loo_pit`, :func:`plot_loo_pit` and :func:`plot_rootogram` run arviz-stats and
  arviz-plots on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesfmm.likelihood import MixtureProblem
from bayesfmm.simulate import _is_discrete

__all__ = ["discrete_responses", "as_stored", "check_tree", "loo_pit", "plot_loo_pit", "plot_rootogram"]


def discrete_responses(problem: MixtureProblem) -> bool:
    """Whether every component's response takes integer values only (counts, binary,
    ordinal)."""
    return all(_is_discrete(comp.family, np.asarray(comp.y, dtype=float), comp.extra)
               for comps in problem.design.classes for comp in comps)


def as_stored(problem: MixtureProblem, values: np.ndarray) -> np.ndarray:
    """Predictive draws as stored: int64 for discrete responses, float otherwise."""
    if discrete_responses(problem) and np.all(np.isfinite(values)):
        return np.rint(values).astype(np.int64)
    return values


def check_tree(res: Any, max_draws: int = 400, random_seed: int | None = None):
    """The DataTree of the checks (see the module docstring); draws the posterior
    predictive first when ``res`` has none."""
    import xarray as xr

    if "posterior_predictive" not in res.idata.children:
        res.posterior_predictive(max_draws=max_draws, random_seed=random_seed)
    pp = res.idata["posterior_predictive"].to_dataset()
    keep = {"draw": pp["draw"].to_numpy()}
    name = res.built.observed
    observed = res.idata["observed_data"].to_dataset()
    if discrete_responses(res.problem):
        observed = observed.assign({name: observed[name].astype(np.int64)})
    groups = {
        "posterior_predictive": pp,
        "observed_data": observed,
        "log_likelihood": res.idata["log_likelihood"].to_dataset().sel(keep),
        "posterior": res.idata["posterior"].to_dataset().sel(keep),
    }
    return xr.DataTree.from_dict({key: xr.DataTree(dataset=value) for key, value in groups.items()})


def loo_pit(res: Any, max_draws: int = 400, random_seed: int | None = None, **kwargs: Any):
    """LOO-PIT values of every observation (arviz-stats ``loo_pit``): uniform when the
    model's leave-one-out predictive distributions are calibrated."""
    import arviz_stats as azs

    return azs.loo_pit(check_tree(res, max_draws, random_seed), **kwargs)


def plot_loo_pit(res: Any, max_draws: int = 400, random_seed: int | None = None, **kwargs: Any):
    """The LOO-PIT ECDF with its envelope (arviz-plots ``plot_loo_pit``)."""
    import arviz_plots as azp

    return azp.plot_loo_pit(check_tree(res, max_draws, random_seed), **kwargs)


def plot_rootogram(res: Any, max_draws: int = 400, random_seed: int | None = None, **kwargs: Any):
    """A rootogram of a count response (arviz-plots ``plot_ppc_rootogram``): observed and
    replicated frequencies of each count on a square-root scale."""
    import arviz_plots as azp

    return azp.plot_ppc_rootogram(check_tree(res, max_draws, random_seed), **kwargs)
