"""The prior predictive distribution: datasets the priors consider plausible.

:func:`prior_predictive` draws parameter vectors from the resolved priors (the exchangeable
class-model default jointly) and one dataset at each (the package's one simulator, one
class per group with ``group=``). :class:`PriorPredictive` compares each response's mean
and sd across those datasets with the data's (``table()``) and draws a figure
(``plot()``); when the data's statistic lies outside the central
:data:`CONFLICT_LEVEL` of the prior predictive one, a
:class:`~bayesfmm.bayes.conflict.PriorDataConflictWarning` says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesfmm.bayes.builder import problem_for
from bayesfmm.bayes.conflict import PriorDataConflictWarning
from bayesfmm.bayes.mvprior import draw_covariance_priors
from bayesfmm.bayes.predictive import predictive_draws, response_columns
from bayesfmm.bayes.priors import Flat, PriorTable, StudentT, resolve_priors
from bayesfmm.errors import SpecificationError
from bayesfmm.mixture import MixtureProblem

if TYPE_CHECKING:  # pragma: no cover
    from bayesfmm.spec import ModelSpec

__all__ = ["CONFLICT_LEVEL", "PriorPredictive", "draw_from_priors", "prior_predictive"]

CONFLICT_LEVEL = 0.99


def draw_from_priors(table: PriorTable, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws x p`` parameter vectors from the priors (flat priors cannot be drawn)."""
    p = len(table.priors)
    out = np.empty((draws, p))
    for pos, prior in enumerate(table.priors):
        if isinstance(prior, Flat):
            raise SpecificationError(f"a flat prior ({table.index[pos]}) has no draws: the prior predictive needs proper priors")
        if isinstance(prior, StudentT):
            out[:, pos] = prior.mu + prior.sigma * rng.standard_t(prior.nu, size=draws)
        else:
            out[:, pos] = rng.normal(prior.mu, prior.sigma, size=draws)
    for group in table.correlated:  # the exchangeable default: iid logits, less the base's
        sigma = np.array([table.priors[g].sigma for g in group])
        mu = np.array([table.priors[g].mu for g in group])
        tau = sigma / np.sqrt(2.0)
        out[:, list(group)] = mu + tau * (rng.standard_normal((draws, len(group))) - rng.standard_normal((draws, 1)))
    return draw_covariance_priors(table, out, rng)  # the LKJ prior of mvnormal covariances


@dataclass(frozen=True, eq=False)
class PriorPredictive:
    """Prior draws (``theta``, optimiser scale) and the datasets drawn at them (``y``:
    draws x n x responses), with the data (``observed``: n x responses)."""

    problem: MixtureProblem
    table_: PriorTable
    theta: np.ndarray
    y: np.ndarray
    observed: np.ndarray

    @property
    def responses(self) -> tuple[str, ...]:
        return response_columns(self.problem)

    def table(self) -> pd.DataFrame:
        """Per response and statistic (``mean``, ``sd``): the data's value, the prior
        predictive median and 1%/99% quantiles, and the share of datasets below the data's
        value (``quantile``; near 0 or 1 is a prior-data conflict)."""
        rows = {}
        with np.errstate(all="ignore"):
            for r, name in enumerate(self.responses):
                for stat, fn in (("mean", np.nanmean), ("sd", np.nanstd)):
                    sims = fn(self.y[:, :, r], axis=1)
                    obs = float(fn(self.observed[:, r]))
                    sims = sims[np.isfinite(sims)]
                    rows[(name, stat)] = {
                        "observed": obs,
                        "median": float(np.median(sims)),
                        "q01": float(np.quantile(sims, 0.01)),
                        "q99": float(np.quantile(sims, 0.99)),
                        "quantile": float(np.mean(sims < obs)),
                    }
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["response", "statistic"])

    def conflicts(self) -> pd.DataFrame:
        """Rows of :meth:`table` whose data value is outside the central 99% of the prior
        predictive distribution."""
        table = self.table()
        tail = (1 - CONFLICT_LEVEL) / 2
        return table[(table["quantile"] < tail) | (table["quantile"] > 1 - tail)]

    def plot(self, response: str | None = None, ax: Any = None):
        """Histograms of the prior predictive datasets' mean and sd (log axis when the
        values are positive) with the data's as a vertical line; returns the figure."""
        import matplotlib.pyplot as plt

        r = 0 if response is None else self.responses.index(response)
        if ax is None:
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        else:
            axes, fig = np.atleast_1d(ax), np.atleast_1d(ax)[0].figure
        with np.errstate(all="ignore"):
            for axis, (stat, fn) in zip(axes, (("mean", np.nanmean), ("sd", np.nanstd))):
                sims = fn(self.y[:, :, r], axis=1)
                sims = sims[np.isfinite(sims)]
                obs = fn(self.observed[:, r])
                positive = sims.size and np.all(sims > 0) and obs > 0
                bins = np.geomspace(sims.min(), sims.max(), 40) if positive and sims.max() > sims.min() else 40
                axis.hist(sims, bins=bins, color="0.7")
                axis.axvline(obs, color="C3", label="data")
                if positive:
                    axis.set_xscale("log")
                axis.set_xlabel(f"{stat} of {self.responses[r]} per prior dataset")
        axes[0].legend()
        fig.tight_layout()
        return fig


def prior_predictive(
    spec: "ModelSpec", data: pd.DataFrame, priors: Any = None, draws: int = 500, random_seed: int | None = None,
    warn: bool = True,
) -> PriorPredictive:
    """Draw ``draws`` datasets from the prior predictive distribution of ``spec`` on
    ``data``'s design (see the module docstring); warns on a prior-data conflict.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> pp = prior_predictive(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"), draws=200, random_seed=1)
    >>> pp.y.shape
    (200, 485, 1)
    >>> bool(pp.conflicts().empty)
    True
    """
    problem, pooled = problem_for(spec, data)
    table = resolve_priors(problem, priors, pooled)
    rng = np.random.default_rng(random_seed)
    theta = draw_from_priors(table, int(draws), rng)
    cons = problem.layout.constraints
    if cons is not None:  # tied and fixed parameters from the free ones
        theta = theta[:, cons.free] @ cons.T.T + cons.c
    with np.errstate(all="ignore"):
        y = predictive_draws(problem, theta, rng)
    observed = np.column_stack([_responses(problem, name) for name in problem.design.spec.responses])
    result = PriorPredictive(problem, table, theta, y, observed)
    if warn:
        conflicts = result.conflicts()
        if len(conflicts):
            described = "; ".join(
                f"{name} {stat} {row["observed"]:.4g} at prior predictive quantile {row["quantile"]:.3f}"
                for (name, stat), row in conflicts.iterrows()
            )
            warnings.warn(
                f"prior-data conflict: {described} (outside the central {CONFLICT_LEVEL:.0%}); the priors "
                "consider data like these implausible: check them (PriorPredictive.plot())",
                PriorDataConflictWarning,
                stacklevel=3,
            )
    return result


def _responses(problem: MixtureProblem, name: str) -> np.ndarray:
    """Every column of response ``name``: n x 1, or n x d for ``mvnormal``."""
    for comps in problem.design.classes:
        for comp in comps:
            if comp.response == name:
                return np.asarray(comp.y, dtype=float).reshape(len(comp.y), -1)
    raise KeyError(name)  # pragma: no cover


