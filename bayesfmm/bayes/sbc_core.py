"""Simulation-based calibration (SBC): the numerical core, on plain arrays and callables.

Talts, S., Betancourt, M., Simpson, D., Vehtari, A. & Gelman, A. (2018), "Validating
Bayesian inference algorithms with simulation-based calibration", arXiv:1804.06788.

For each replicate: draw parameters ``theta~`` from the prior, simulate data ``y~`` from
the model at ``theta~``, sample the posterior given ``y~``, thin it to ``L`` draws, and
record the rank of ``theta~`` among them (the number of draws below it, ``0..L``). When the
sampler draws from the exact posterior of the model the data came from, every rank is
uniform on ``0..L``; an overconfident posterior piles ranks at the ends (a U), an
underconfident one in the middle, a biased one on one side.

The numerical core (:func:`sbc_ranks`, :func:`rank_histogram`, :func:`uniformity_pvalue`,
:func:`run_sbc`) works on plain arrays and callables, so it is testable on a conjugate
problem whose exact posterior is known; :func:`bayesfmm.bayes.sbc.sbc` wires it to a
:class:`~bayesfmm.FMM` through its PyMC model.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from bayesfmm.errors import SpecificationError
from bayesfmm.ops import Lazy
from bayesfmm.progress import show_progress, track
from bayesfmm.tasks import run_on_executor

stats = Lazy("scipy.stats")  # loaded on first use: scipy.stats is slow to import

__all__ = [
    "SBCResult",
    "sbc_ranks",
    "thin",
    "choose_bins",
    "rank_histogram",
    "uniformity_pvalue",
    "run_sbc",
]

Draws = Mapping[str, np.ndarray]


# -- numerical core ----------------------------------------------------------------------
def thin(draws: np.ndarray, n_keep: int) -> np.ndarray:
    """Keep ``n_keep`` evenly spaced draws along axis 0 (Talts et al. thin to cut autocorrelation).

    Examples
    --------
    >>> thin(np.arange(10.0), 3)
    array([1., 4., 7.])
    """
    draws = np.asarray(draws)
    total = draws.shape[0]
    if n_keep > total:
        raise SpecificationError(f"cannot keep {n_keep} draws out of {total}; sample more draws")
    step = total // n_keep
    start = (total - step * (n_keep - 1) - 1) // 2
    return draws[start : start + step * n_keep : step]


def sbc_ranks(truth: np.ndarray, draws: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Rank of each true value among posterior draws: ``#{draws < truth}`` in ``0..L``.

    Ties (discrete parameters, or a draw equal to the truth) are broken uniformly at
    random, so ranks stay uniform.

    Parameters
    ----------
    truth
        True values, shape ``(...)``.
    draws
        Posterior draws, shape ``(L, ...)``.

    Examples
    --------
    >>> sbc_ranks(np.array([0.5, 3.0]), np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 4.0]]))
    array([1, 2])
    """
    truth = np.asarray(truth, dtype=float)
    draws = np.asarray(draws, dtype=float)
    if draws.shape[1:] != truth.shape:
        raise SpecificationError(f"draws {draws.shape} do not match the truth {truth.shape} after the draw axis")
    below = np.sum(draws < truth, axis=0)
    ties = np.sum(draws == truth, axis=0)
    if np.any(ties):
        rng = rng if rng is not None else np.random.default_rng()
        below = below + rng.integers(0, ties + 1)
    return below.astype(np.intp)


def choose_bins(n_replicates: int, n_draws: int, max_bins: int = 20) -> int:
    """Histogram bins: a divisor of ``n_draws + 1`` (equal-width bins of ranks), at most
    ``max_bins``, with at least 5 expected replicates per bin (Cochran's rule for the
    chi-square test)."""
    candidates = [b for b in range(1, max_bins + 1) if (n_draws + 1) % b == 0 and n_replicates / b >= 5]
    return max(candidates) if candidates else 1


def rank_histogram(ranks: np.ndarray, n_draws: int, bins: int) -> np.ndarray:
    """Counts of ranks (``0..n_draws``) in ``bins`` equal-width bins; ``bins`` must divide ``n_draws + 1``."""
    ranks = np.asarray(ranks)
    if (n_draws + 1) % bins:
        raise SpecificationError(f"bins={bins} must divide the {n_draws + 1} possible ranks")
    if ranks.size and (ranks.min() < 0 or ranks.max() > n_draws):
        raise SpecificationError(f"ranks must lie in 0..{n_draws}")
    width = (n_draws + 1) // bins
    return np.bincount(ranks // width, minlength=bins)


def uniformity_pvalue(ranks: np.ndarray, n_draws: int, bins: int) -> float:
    """Pearson chi-square test of uniform ranks over ``bins`` bins (``bins - 1`` df)."""
    counts = rank_histogram(ranks, n_draws, bins)
    if bins < 2:
        return float("nan")
    return float(stats.chisquare(counts).pvalue)


# -- the result --------------------------------------------------------------------------
@dataclass(frozen=True)
class SBCResult:
    """Ranks of the true parameters over the replicates of :func:`run_sbc` / :func:`sbc`.

    Attributes
    ----------
    ranks : pandas.DataFrame
        One row per replicate, one column per scalar parameter (``"mu[1]"``); ranks in
        ``0..n_draws``.
    n_draws : int
        ``L``: the thinned posterior draws each rank is taken among.
    bins : int
        Histogram bins (a divisor of ``L + 1``).
    seconds : float
        Wall time of the whole run.
    failures : tuple of str
        Replicates that raised, with the error (they have no ranks).
    """

    ranks: pd.DataFrame
    n_draws: int
    bins: int
    seconds: float = 0.0
    failures: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def n_replicates(self) -> int:
        return int(self.ranks.shape[0])

    def histograms(self) -> pd.DataFrame:
        """Counts per bin (rows) and parameter (columns)."""
        width = (self.n_draws + 1) // self.bins
        counts = {c: rank_histogram(self.ranks[c].to_numpy(), self.n_draws, self.bins) for c in self.ranks}
        index = pd.Index([f"{b * width}-{(b + 1) * width - 1}" for b in range(self.bins)], name="ranks")
        return pd.DataFrame(counts, index=index)

    @property
    def pvalues(self) -> pd.Series:
        """Chi-square p-value of uniform ranks, per parameter."""
        return pd.Series(
            {c: uniformity_pvalue(self.ranks[c].to_numpy(), self.n_draws, self.bins) for c in self.ranks},
            name="p-value",
        )

    def uniform(self, alpha: float = 0.01) -> bool:
        """True when no parameter's chi-square p-value is below ``alpha``."""
        return bool(np.all(self.pvalues.to_numpy() >= alpha))

    def summary(self) -> pd.DataFrame:
        """Per parameter: mean rank / L (0.5 when calibrated), the chi-square p-value."""
        return pd.DataFrame(
            {"mean rank / L": self.ranks.mean() / self.n_draws, "chi2 p-value": self.pvalues}
        )

    def __str__(self) -> str:
        head = (
            f"SBC: {self.n_replicates} replicates, ranks among L = {self.n_draws} posterior draws, "
            f"{self.bins} bins, {self.seconds:.0f} s"
        )
        if self.failures:
            head += f", {len(self.failures)} replicate(s) failed"
        return head + "\n" + self.summary().to_string(float_format=lambda v: f"{v:.3f}")

    def plot(self, parameters: list[str] | None = None, ncols: int = 4, band: float = 0.99):
        """Rank histograms with the ``band`` interval of a bin count under uniformity.

        Returns a matplotlib ``Figure`` (no pyplot state is touched).
        """
        from matplotlib.figure import Figure

        names = list(self.ranks.columns) if parameters is None else list(parameters)
        counts = self.histograms()
        ncols = min(ncols, len(names))
        nrows = -(-len(names) // ncols)
        fig = Figure(figsize=(3.0 * ncols, 2.4 * nrows), layout="constrained")
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        p = 1.0 / self.bins
        lo, hi = stats.binom.interval(band, self.n_replicates, p)
        pvals = self.pvalues
        for ax, name in zip(axes, names):
            ax.axhspan(lo, hi, color="0.85", zorder=0)
            ax.axhline(self.n_replicates * p, color="0.5", lw=0.8)
            ax.bar(np.arange(self.bins), counts[name].to_numpy(), width=1.0, color="C0", edgecolor="white")
            ax.set_title(f"{name}  (p = {pvals[name]:.2f})", fontsize=9)
            ax.set_xticks([])
        for ax in axes[len(names) :]:
            ax.set_visible(False)
        fig.suptitle(f"SBC rank histograms: {self.n_replicates} replicates, L = {self.n_draws}, {band:.0%} band")
        return fig


# -- the generic driver ------------------------------------------------------------------
def _flatten(values: Draws, leading: int) -> dict[str, np.ndarray]:
    """``{"mu": (..., 2)}`` -> ``{"mu[1]": ..., "mu[2]": ...}`` (1-based element labels)."""
    out: dict[str, np.ndarray] = {}
    for name, value in values.items():
        value = np.asarray(value, dtype=float)
        shape = value.shape[leading:]
        if not shape:
            out[name] = value
            continue
        for idx in np.ndindex(*shape):
            label = ",".join(str(i + 1) for i in idx)
            out[f"{name}[{label}]"] = value[(slice(None),) * leading + idx]
    return out


def _one_replicate(simulate, fit, n_draws: int, seed, replicate: int) -> tuple[dict[str, int] | None, str | None]:
    rng = np.random.default_rng(seed)
    try:
        truth, data = simulate(rng, replicate)
        posterior = fit(data, rng)
    except Exception as exc:  # a failed fit is recorded, not fatal to the whole run
        return None, f"{type(exc).__name__}: {exc}"
    truth_flat = _flatten(truth, 0)
    draws_flat = _flatten({name: posterior[name] for name in truth}, 1)
    ranks = {}
    for name, value in truth_flat.items():
        kept = thin(draws_flat[name], n_draws)
        ranks[name] = int(sbc_ranks(value, kept, rng))
    return ranks, None


def run_sbc(
    simulate: Callable[[np.random.Generator, int], tuple[Draws, Any]],
    fit: Callable[[Any, np.random.Generator], Draws],
    n_replicates: int = 100,
    n_draws: int = 99,
    *,
    bins: int | None = None,
    seed: int | None = None,
    n_jobs: int | None = None,
    progress: bool | None = None,
    executor: Any = None,
) -> SBCResult:
    """Simulation-based calibration for any prior simulator and posterior sampler.

    Parameters
    ----------
    simulate
        ``simulate(rng, replicate) -> (truth, data)``: parameters drawn from the prior (a
        dict of arrays) and data simulated from them; ``replicate`` is the 0-based index
        (for simulators that pre-draw the prior).
    fit
        ``fit(data, rng) -> draws``: posterior draws for each parameter of ``truth``, with
        the draw axis first (chains flattened); at least ``n_draws`` of them.
    n_replicates
        Number of prior draws / fits.
    n_draws
        ``L``: posterior draws kept (evenly thinned) per fit; ranks run ``0..L``. Thin to
        roughly the effective sample size so the draws are nearly independent.
    bins
        Histogram bins; by default the largest divisor of ``L + 1`` up to 20 with at least
        5 expected replicates per bin.
    seed
        Seed of the replicate seeds (``numpy.random.SeedSequence.spawn``).
    n_jobs
        Replicates run in parallel processes (joblib) when > 1.
    progress
        Progress bar; by default when running serially in a terminal.
    executor
        Run the replicates on this ``concurrent.futures.Executor`` or Dask ``Client``
        (``simulate`` and ``fit`` must pickle; Dask pickles closures). The ranks equal the
        serial run's for the same ``seed``; a replicate lost with its worker is named in a
        :class:`~bayesfmm.tasks.TaskError`.

    Returns
    -------
    SBCResult
        ``.ranks``, ``.pvalues``, ``.histograms()``, ``.plot()``.

    Examples
    --------
    Normal mean with known unit variance, prior N(0, 1), 5 observations, exact posterior:

    >>> def simulate(rng, replicate):
    ...     mu = rng.normal()
    ...     return {"mu": mu}, rng.normal(mu, 1.0, size=5)
    >>> def fit(y, rng):
    ...     v = 1.0 / (1.0 + len(y))
    ...     return {"mu": rng.normal(v * y.sum(), np.sqrt(v), size=99)}
    >>> res = run_sbc(simulate, fit, n_replicates=100, seed=1)
    >>> res.uniform()
    True
    """
    for name, value, low in (("n_replicates", n_replicates, 1), ("n_draws", n_draws, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SpecificationError(f"{name} must be an integer >= {low}, got {value!r}")
    bins = choose_bins(n_replicates, n_draws) if bins is None else bins
    if (n_draws + 1) % bins:
        raise SpecificationError(f"bins={bins} must divide the {n_draws + 1} possible ranks (n_draws + 1)")
    seeds = np.random.SeedSequence(seed).spawn(n_replicates)
    start = time.perf_counter()
    if executor is not None:
        tasks = [(simulate, fit, n_draws, s, i) for i, s in enumerate(seeds)]
        labels = [f"replicate {i + 1} (seed={seed}, spawn key {s.spawn_key})" for i, s in enumerate(seeds)]
        results = run_on_executor(_one_replicate, tasks, executor, labels=labels, progress=progress,
                                  description=f"SBC: {n_replicates} replicates")
    elif n_jobs is not None and n_jobs > 1:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs)(delayed(_one_replicate)(simulate, fit, n_draws, s, i) for i, s in enumerate(seeds))
    else:
        show = show_progress(progress)
        results = [
            _one_replicate(simulate, fit, n_draws, s, i)
            for i, s in track(list(enumerate(seeds)), show, f"SBC: {n_replicates} replicates")
        ]
    failures = tuple(f"replicate {i + 1}: {err}" for i, (_, err) in enumerate(results) if err is not None)
    rows = [r for r, err in results if err is None]
    if not rows:
        raise RuntimeError("every SBC replicate failed:\n  " + "\n  ".join(failures[:5]))
    if failures:
        warnings.warn(
            f"{len(failures)} of {n_replicates} SBC replicates failed and were left out "
            f"(first: {failures[0]}); the ranks of the rest may be biased",
            RuntimeWarning,
            stacklevel=2,
        )
    ranks = pd.DataFrame(rows)
    ranks.index = pd.RangeIndex(1, len(rows) + 1, name="replicate")
    return SBCResult(
        ranks=ranks, n_draws=n_draws, bins=bins, seconds=time.perf_counter() - start, failures=failures
    )
