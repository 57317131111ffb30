"""The posterior on the reporting scale, and the ``log_prior`` group.

The sampler's variables are the layout's ``theta`` on the optimiser's scale
(``thickness_lnvar``, the log error variance). :func:`add_reporting_variables` adds to the
posterior one variable per ``(equation, term)`` of ``res.params``, named
``<equation>_<term>`` (``thickness_var(e)``) with the ``class`` dimension (or the classes
that have it), holding every draw on Stata's reporting scale: ``az.summary(res.idata)``
then shows the rows of ``res.summary()`` with the same means, sds, R-hat and ESS, and
trace plots carry class labels. Where the sampled variable already is on the reporting
scale under that name (``thickness_Intercept``, ``Class_Intercept``) nothing is added.
The optimiser-scale variables stay (PyMC's ``sample_posterior_predictive`` reads them).

:func:`add_log_prior` stores the log prior density of every draw, one variable per
sampled variable, in a ``log_prior`` group (what power-scaling sensitivity checks read).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from bayesfmm.bayes.builder import BuiltModel
from bayesfmm.bayes.priors import Flat, LogPrior

__all__ = ["reporting_names", "report_draws", "add_reporting_variables", "add_log_prior"]


def report_draws(layout: Any, theta: np.ndarray) -> np.ndarray:
    """Draws of ``theta`` (any leading shape) mapped to Stata's reporting scale."""
    out = np.array(theta, dtype=float, copy=True)
    for block in layout.blocks:
        if not block.linear:
            out[..., block.slice] = block.scale.to_report(theta[..., block.slice])
    return out


def reporting_names(built: BuiltModel) -> dict[str, tuple[list[int], list[int]]]:
    """``{variable name: (classes, theta positions)}``, one per ``(equation, term)``."""
    out: dict[str, tuple[list[int], list[int]]] = {}
    for pos, (cls, equation, term) in enumerate(built.problem.layout.index):
        classes, positions = out.setdefault(f"{equation}_{term}", ([], []))
        classes.append(int(cls))
        positions.append(pos)
    return out


def _same_as_sampled(built: BuiltModel, name: str, positions: list[int]) -> bool:
    for g in built.groups:
        if g.name == name:
            return list(g.positions) == positions and all(
                b.linear or b.kind == "class" for b in built.problem.layout.blocks if set(positions) & set(range(b.start, b.start + b.size))
            )
    return False


def add_reporting_variables(built: BuiltModel, idata: Any, theta_draws: np.ndarray) -> list[str]:
    """Add the reporting-scale variables to ``idata["posterior"]`` (in place); returns the
    names added."""
    import xarray as xr

    post = idata["posterior"].to_dataset()
    report = report_draws(built.problem.layout, theta_draws)
    k = built.problem.k
    added = []
    for name, (classes, positions) in reporting_names(built).items():
        if _same_as_sampled(built, name, positions):
            continue
        dim = "class" if classes == list(range(1, k + 1)) else "class_" + "_".join(map(str, classes))
        if name in post.data_vars:
            name = f"{name}_report"
        post[name] = xr.DataArray(
            report[:, :, positions],
            dims=("chain", "draw", dim),
            coords={"chain": post["chain"], "draw": post["draw"], dim: np.array(classes)},
        )
        added.append(name)
    idata["posterior"] = xr.DataTree(dataset=post)
    return added


def add_log_prior(built: BuiltModel, idata: Any, theta_draws: np.ndarray) -> None:
    """Add the ``log_prior`` group (in place): per sampled variable, its log prior density
    at every draw, dims ``(chain, draw)`` (flat priors give 0; the ordering's restriction
    to the ordered set is a constant and left out)."""
    import xarray as xr

    chains, draws, _ = theta_draws.shape
    flat = theta_draws.reshape(chains * draws, -1)
    post = idata["posterior"]
    data = {}
    for g in built.groups:
        prior = LogPrior(_restricted(built.priors, g.positions), None)
        values = np.array([prior.value(theta) for theta in flat]).reshape(chains, draws)
        data[g.name] = xr.DataArray(values, dims=("chain", "draw"), coords={"chain": post["chain"], "draw": post["draw"]})
    idata["log_prior"] = xr.DataTree(xr.Dataset(data))


def _restricted(table: Any, positions: np.ndarray):
    """``table`` with flat priors outside ``positions`` (so LogPrior counts one variable)."""
    keep = set(np.asarray(positions).tolist())
    priors = tuple(p if i in keep else Flat() for i, p in enumerate(table.priors))
    groups = tuple(g for g in table.correlated if set(g) <= keep)
    return dataclasses.replace(table, priors=priors, correlated=groups)
