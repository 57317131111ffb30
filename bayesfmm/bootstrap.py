"""Parametric bootstrap likelihood-ratio test of k against k + 1 classes.

The likelihood-ratio statistic ``LR = 2 (llf_{k+1} - llf_k)`` of mixtures with different
numbers of classes has no chi-squared reference distribution (the null sits on the boundary
of the parameter space), so its distribution under the k-class model is simulated
(McLachlan 1987; R flexmix ``LR_test``, mclust ``mclustBootstrapLRT``):

1. Fit k and k + 1 classes to the data, each from ``nrep`` starts (as :func:`~bayesfmm.select`).
2. For ``b = 1..nboot``: simulate a data set from the fitted k-class model
   (:func:`~bayesfmm.simulate.simulate`, covariates fixed), refit the k-class model starting
   from the true parameters (``from_=``; if that fails, from the default start), refit the
   k + 1-class model from ``nrep`` starts (the default start and ``nrep - 1`` random ones)
   and record ``LR_b``.
3. ``p = (1 + #{LR_b >= LR_obs}) / (B + 1)`` with ``B`` the replicates whose fits all
   succeeded (``B = nboot`` when none failed).

The k + 1-class model contains the k-class one (a class may repeat another), so its maximum
is at least the k-class maximum: an ``LR`` below 0 means the k + 1-class search missed that
maximum. Such statistics are set to 0 (as if the nested solution had been one of the starts)
and counted in ``n_floored``; a large count says ``nrep`` is too small.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pandas as pd

from bayesfmm.errors import ConvergenceError, DataWarning, SpecificationError
from bayesfmm.model import FMM
from bayesfmm.parallel import run_tasks
from bayesfmm.plotting import _new_axes
from bayesfmm.selection import (
    FAILED_START_ERRORS,
    ModelArg,
    SelectionResult,
    best_outcome,
    check_fit_options,
    fit_start,
    model_for,
    run_entropy,
    select,
    start_seed,
)
from bayesfmm.simulate import simulate

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from bayesfmm.results import MLResults

__all__ = ["bootstrap_lrt", "BootstrapLRT"]


@dataclass(frozen=True, eq=False)
class BootstrapLRT:
    """Result of :func:`bootstrap_lrt`.

    Attributes
    ----------
    k : int
        Classes under the null; the alternative has ``k + 1``.
    statistic : float
        Observed ``LR = 2 (llf_{k+1} - llf_k)`` (floored at 0).
    pvalue : float
        ``(1 + #{LR_b >= statistic}) / (B + 1)`` over the ``B`` successful replicates.
    boot_statistics : ndarray
        ``LR_b`` of each replicate (NaN where a fit failed).
    null, alternative : MLResults
        The fits of k and k + 1 classes to the data; ``alternative`` is None when no
        k + 1-class start gave an admissible fit (the statistic is then 0).
    observed : SelectionResult
        The search behind those two fits (criteria table, every start).
    n_failed : int
        Replicates left out because the k-class refit failed.
    n_floored : int
        Replicates where no admissible k + 1-class fit beat the k-class fit (statistic
        set to 0).
    seed : int
        Entropy of the run (pass it as ``seed=`` to repeat it).
    """

    k: int
    statistic: float
    pvalue: float
    boot_statistics: np.ndarray
    null: "MLResults"
    alternative: "MLResults | None"
    observed: SelectionResult
    n_failed: int
    n_floored: int
    nboot: int
    nrep: int
    seed: int

    @property
    def n_valid(self) -> int:
        return int(np.isfinite(self.boot_statistics).sum())

    def plot(self, ax: "Axes | None" = None, bins: int | str = "auto") -> "Axes":
        """Histogram of the bootstrap statistics, the observed one as a vertical line."""
        if ax is None:
            ax = _new_axes()
        values = self.boot_statistics[np.isfinite(self.boot_statistics)]
        ax.hist(values, bins=bins, color="0.75", edgecolor="0.4", label=f"bootstrap LR ({values.size} replicates)")
        ax.axvline(self.statistic, color="C3", linewidth=2, label=f"observed LR = {self.statistic:.3f}")
        ax.set_xlabel(f"LR = 2 (llf[k={self.k + 1}] - llf[k={self.k}])")
        ax.set_ylabel("replicates")
        ax.set_title(f"Bootstrap LR test, k = {self.k} vs {self.k + 1}: p = {self.pvalue:.4f}")
        ax.legend()
        return ax

    def __repr__(self) -> str:
        return (
            f"Bootstrap likelihood-ratio test: k = {self.k} vs k = {self.k + 1}\n"
            f"  LR = {self.statistic:.4f}, p = {self.pvalue:.4f} "
            f"({self.n_valid} of {self.nboot} replicates; {self.n_failed} failed, {self.n_floored} floored at 0)\n"
            f"  llf: {self.null.llf:.4f} (k = {self.k}), "
            + (f"{self.alternative.llf:.4f}" if self.alternative is not None else "no admissible fit")
            + f" (k = {self.k + 1})"
        )


def _null_fit(spec: FMM, data: pd.DataFrame, truth: pd.Series, fit_options: Mapping[str, Any]) -> float:
    """llf of the k-class refit from the true parameters; the default start if that fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = spec.fit(data, from_=truth, progress=False, **fit_options)
            if res.converged:
                return float(res.llf)
        except FAILED_START_ERRORS:
            pass
    outcome = fit_start(spec, data, spec.k, 0, "default", None, fit_options, 0.0, keep_result=False)
    return outcome.llf if outcome.ok and outcome.converged else math.nan


def bootstrap_replicate(
    null_spec: FMM,
    alt_spec: FMM,
    data: pd.DataFrame,
    truth: pd.Series,
    b: int,
    nrep: int,
    startvalues: Any,
    entropy: int,
    fit_options: Mapping[str, Any],
    minprior: float,
) -> tuple[float, float]:
    """``(llf_k, llf_{k+1})`` of one simulated data set (module level: runs in workers).

    ``llf_k`` is NaN when the k-class refit failed (the replicate is left out);
    ``llf_{k+1}`` is ``-inf`` when no k + 1-class start gave an admissible fit.
    """
    llf0 = _null_fit(null_spec, data, truth, fit_options)
    k1 = alt_spec.k
    outcomes = []
    for rep in range(nrep):
        method = "default" if rep == 0 else startvalues
        seed = None if rep == 0 else start_seed(entropy, 2, b, rep)
        outcomes.append(fit_start(alt_spec, data, k1, rep, method, seed, fit_options, minprior, keep_result=False))
    best = best_outcome([o for o in outcomes if o.ok and o.converged])
    return llf0, (best.llf if best is not None else -math.inf)


def bootstrap_lrt(
    model: ModelArg,
    data: pd.DataFrame,
    k: int,
    nboot: int = 199,
    seed: int | None = None,
    n_jobs: int | None = None,
    progress: bool | None = None,
    *,
    nrep: int = 10,
    startvalues: Any = "randompr",
    minprior: float = 0.05,
    start_method: str | None = None,
    executor: Any = None,
    **fit_options: Any,
) -> BootstrapLRT:
    """Parametric bootstrap test of ``k`` classes (null) against ``k + 1``.

    R flexmix: ``LR_test(fit_k, R = 199)``; mclust: ``mclustBootstrapLRT``. Stata has no
    built-in equivalent.

    Parameters
    ----------
    model
        A standard-syntax :class:`~bayesfmm.FMM` (its ``k`` is ignored) or a function
        ``k -> FMM``.
    data
        The data frame.
    k
        Number of classes under the null.
    nboot
        Bootstrap replicates (199 gives p-values on a grid of 1/200).
    seed
        Seed of the simulation and of the random starts (``None``: fresh, recorded).
    n_jobs, progress, start_method
        As in :func:`~bayesfmm.select`: worker processes (``1``: serial), progress bar,
        multiprocessing start method.
    executor
        A ``concurrent.futures.Executor`` or Dask ``Client`` for the fits to the data and
        the replicates (as in :func:`~bayesfmm.select`; results equal the serial run's for
        the same ``seed``; a failed or lost replicate is named with its index and seed in a
        :class:`~bayesfmm.tasks.TaskError`).
    nrep
        Starts of each k + 1 fit (the default start plus ``nrep - 1`` random ones) and of
        the two fits to the data.
    startvalues
        The random start method.
    minprior
        Fits with a class below this share of the sample are spurious and not kept, in the
        fits to the data and to every replicate (see :func:`~bayesfmm.select`).
    **fit_options
        Passed to every fit.

    Returns
    -------
    BootstrapLRT

    Examples
    --------
    >>> import bayesfmm as bf
    >>> test = bf.bootstrap_lrt(bf.FMM("thickness ~ 1", k=1), bf.datasets.load("stamp"),
    ...                         k=1, nboot=19, nrep=2, seed=1)  # doctest: +SKIP
    >>> test.pvalue  # doctest: +SKIP
    0.05
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise SpecificationError(f"k must be an integer >= 1 (the null's classes), got {k!r}")
    if isinstance(nboot, bool) or not isinstance(nboot, (int, np.integer)) or nboot < 1:
        raise SpecificationError(f"nboot must be a positive integer, got {nboot!r}")
    if isinstance(nrep, bool) or not isinstance(nrep, (int, np.integer)) or nrep < 1:
        raise SpecificationError(f"nrep must be a positive integer, got {nrep!r}")
    options = check_fit_options(fit_options, "bootstrap_lrt")
    entropy = run_entropy(seed)
    k = int(k)
    observed = select(model, data, k=[k, k + 1], nrep=nrep, seed=entropy, n_jobs=n_jobs, progress=progress,
                      startvalues=startvalues, minprior=minprior, start_method=start_method, executor=executor,
                      **options)
    if k not in observed.fits:
        raise ConvergenceError(f"could not fit k = {k} to the data: {observed.table.loc[k, 'note']}")
    null, alternative = observed.fits[k], observed.fits.get(k + 1)
    statistic = 0.0 if alternative is None else max(0.0, 2.0 * (alternative.llf - null.llf))
    alt_spec = model_for(model, k + 1)
    truth = null.params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # shown once by the fits to the data
        samples = [simulate(null, np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(1, b))), data)
                   for b in range(nboot)]
    tasks = [
        (null.spec, alt_spec, sample, truth, b, int(nrep), startvalues, entropy, options, minprior)
        for b, sample in enumerate(samples)
    ]
    llfs = run_tasks(
        bootstrap_replicate,
        tasks,
        n_jobs=n_jobs,
        progress=progress,
        description=f"bootstrap k = {k} vs {k + 1}",
        start_method=start_method,
        executor=executor,
        labels=[f"replicate b={b} (seed={entropy}, spawn key (1, {b}))" for b in range(nboot)],
    )
    llf0, llf1 = (np.array(v, dtype=float) for v in zip(*llfs))
    valid = np.isfinite(llf0)
    with np.errstate(invalid="ignore"):
        raw = 2.0 * (llf1 - llf0)  # -inf where no k + 1 start was admissible
    n_floored = int(np.sum(valid & (raw < 0)))
    boot = np.where(valid, np.maximum(raw, 0.0), np.nan)
    pvalue = (1 + int(np.sum(boot[valid] >= statistic))) / (int(valid.sum()) + 1)
    return BootstrapLRT(
        k=k,
        statistic=float(statistic),
        pvalue=float(pvalue),
        boot_statistics=boot,
        null=null,
        alternative=alternative,
        observed=observed,
        n_failed=int((~valid).sum()),
        n_floored=n_floored,
        nboot=int(nboot),
        nrep=int(nrep),
        seed=entropy,
    )
