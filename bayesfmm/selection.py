"""Choosing the number of classes: fit every k from several starts (flexmix ``stepFlexmix``).

For each k, :func:`select` fits the model from ``nrep`` starts: ``fit()``'s deterministic
default start, then ``nrep - 1`` random starts (``startvalues="randompr"`` by default, each
with its own seed). Each start is a complete fit (EM, then Newton to convergence), and the
converged fit with the highest log likelihood is kept. A start that collapses or fails is
counted, never fatal; a k whose every start fails gets a row of NaN and a note. The fits
run in worker processes (:mod:`bayesfmm.parallel`), with identical results for any
``n_jobs`` given the same ``seed``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from bayesfmm.criteria import CRITERIA, information_criteria
from bayesfmm.design import Design, build_design
from bayesfmm.errors import (
    ConvergenceError,
    ConvergenceWarning,
    DataError,
    DataWarning,
    IdentificationWarning,
    SpecificationError,
)
from bayesfmm.likelihood import evaluate
from bayesfmm.model import FMM
from bayesfmm.parallel import run_tasks
from bayesfmm.params import build_layout
from bayesfmm.plotting import _new_axes
from bayesfmm.results import MLResults

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes


__all__ = ["select", "SelectionResult", "StartOutcome", "with_k", "model_for", "start_seed"]

RESERVED_FIT_OPTIONS = ("startvalues", "draws", "seed", "from_", "noestimate", "log", "progress")
# What a start may die of without stopping the search: every start collapsing
# (ConvergenceError) or numerical trouble far from the optimum. Anything else (a bad model,
# bad data, a bug) is raised.
FAILED_START_ERRORS = (ConvergenceError, ArithmeticError, np.linalg.LinAlgError)
ModelArg = FMM | Callable[[int], FMM]


def with_k(model: FMM, k: int) -> FMM:
    """The same standard-syntax model with ``k`` classes.

    Hybrid syntax (one :class:`~bayesfmm.Component` per class) fixes k by its list: pass a
    function ``k -> FMM`` to :func:`select` instead.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> with_k(bf.FMM("y ~ x", family="poisson", k=3), 2).k
    2
    """
    if not isinstance(model, FMM):
        raise SpecificationError(f"expected a bf.FMM, got {type(model).__name__}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise SpecificationError(f"k (the number of classes) must be an integer >= 1, got {k!r}")
    if model.hybrid:
        raise SpecificationError(
            "hybrid syntax fixes k by its list of Components (one per class); to vary k, "
            "pass a function k -> bf.FMM(...) instead of the model"
        )
    if model.lcbase > k:
        raise SpecificationError(f"lcbase={model.lcbase} is not a class of a model with k={k} classes")
    return model.rebuild(k=int(k))


def model_for(model: ModelArg, k: int) -> FMM:
    """``with_k(model, k)`` for a model, ``model(k)`` for a model factory (checked)."""
    if isinstance(model, FMM):
        return with_k(model, k)
    if callable(model):
        built = model(int(k))
        if not isinstance(built, FMM):
            raise SpecificationError(f"the model factory returned {type(built).__name__} for k={k}, not a bf.FMM")
        if built.k != k:
            raise SpecificationError(f"the model factory returned a model with k={built.k} when asked for k={k}")
        return built
    raise SpecificationError(f"model must be a bf.FMM or a function k -> bf.FMM, got {type(model).__name__}")


def start_seed(entropy: int, *key: int) -> int:
    """A 32-bit seed for one start, from the run's entropy and the start's key (k, rep, ...)."""
    return int(np.random.SeedSequence(entropy, spawn_key=tuple(int(v) for v in key)).generate_state(1)[0])


def run_entropy(seed: int | None) -> int:
    """The entropy of a run: ``seed`` itself, or fresh entropy when ``None`` (recorded)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise SpecificationError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(np.random.SeedSequence(seed).entropy)


def check_minprior(minprior: Any, k_max: int) -> float:
    if isinstance(minprior, bool) or not isinstance(minprior, (int, float)) or not 0 <= minprior < 1 / k_max:
        raise SpecificationError(
            f"minprior must be a number from 0 to below 1/k = {1 / k_max:.3g} (k up to {k_max}), got {minprior!r}"
        )
    return float(minprior)


def check_fit_options(fit_options: Mapping[str, Any], caller: str) -> dict[str, Any]:
    clash = sorted(set(fit_options) & set(RESERVED_FIT_OPTIONS))
    if clash:
        raise SpecificationError(
            f"{caller}() chooses the start of every fit itself: drop {', '.join(clash)} "
            "(its own nrep=, startvalues= and seed= set the starts)"
        )
    if fit_options.get("survey") is not None or fit_options.get("subpop") is not None:
        raise SpecificationError(
            f"{caller}() compares log likelihoods, which are pseudo-likelihoods under survey= (Stata refuses "
            "lrtest and information criteria after svy); compare survey fits with res.test()"
        )
    return dict(fit_options)


# -- one start, in a worker ---------------------------------------------------


@dataclass(frozen=True)
class StartOutcome:
    """What one start gave: its log likelihood, or why it failed."""

    k: int
    start: int  # 0-based; 0 is the deterministic default start
    method: str
    seed: int | None
    llf: float
    converged: bool
    error: str | None
    messages: tuple[str, ...]
    result: MLResults | None  # the fit (kept starts only; results pickle back from workers)
    min_share: float = math.nan  # the smallest class's share of the sample (mean posterior)

    @property
    def ok(self) -> bool:
        return self.error is None


def fit_start(
    spec: FMM,
    data: pd.DataFrame,
    k: int,
    start: int,
    method: str,
    seed: int | None,
    fit_options: Mapping[str, Any],
    minprior: float = 0.0,
    keep_result: bool = True,
) -> StartOutcome:
    """Fit one start (module level: runs in worker processes).

    A fit with a class holding less than ``minprior`` of the sample (its mean posterior
    probability) is a spurious maximum: it is returned as failed, with its llf for the
    record.
    """
    options = dict(fit_options)
    # rep 0 is Stata's single start: the nrep starts are this search (not fit()'s own)
    options.update(startvalues="factor" if method == "default" else method, progress=False)
    if method != "default":
        options["seed"] = seed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", DataWarning)  # the caller's own design warns once
        try:
            res = spec.fit(data, **options)
        except FAILED_START_ERRORS as exc:  # a failed start is counted, not fatal; other errors raise
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = lines[1] if isinstance(exc, ConvergenceError) and len(lines) > 1 else (lines or [""])[0]
            return StartOutcome(k, start, method, seed, math.nan, False, f"{type(exc).__name__}: {reason}", (), None)
    messages = tuple(
        str(w.message) for w in caught if issubclass(w.category, (ConvergenceWarning, IdentificationWarning))
    )
    shares = evaluate(res.problem, res.theta).resp.mean(axis=0)
    smallest = int(np.argmin(shares))
    error = None
    if shares[smallest] < minprior:
        error = (
            f"spurious: class {smallest + 1} holds {shares[smallest]:.2%} of the sample "
            f"({shares[smallest] * res.nobs:.1f} observations), below minprior={minprior:g}"
        )
    kept = res if keep_result and error is None else None
    return StartOutcome(
        k, start, method, seed, float(res.llf), bool(res.converged), error, messages, kept, float(shares[smallest])
    )


def start_tasks(
    specs: Mapping[int, FMM],
    data: pd.DataFrame,
    nrep: int,
    method: str,
    entropy: int,
    fit_options: Mapping[str, Any],
    minprior: float,
) -> list[tuple]:
    """Argument tuples of :func:`fit_start`: k = 1 gets one start, other k ``nrep``."""
    tasks = []
    for k, spec in specs.items():
        for rep in range(1 if k == 1 else nrep):
            if rep == 0:
                tasks.append((spec, data, k, 0, "default", None, fit_options, minprior))
            else:
                seed = start_seed(entropy, 0, k, rep)
                tasks.append((spec, data, k, rep, method, seed, fit_options, minprior))
    return tasks


def start_label(task: tuple) -> str:
    """``k=3 start=2 method=randompr seed=123``: a start task named in an error."""
    _, _, k, start, method, seed = task[:6]
    return f"k={k} start={start} method={method} seed={seed}"


def best_outcome(outcomes: Sequence[StartOutcome]) -> StartOutcome | None:
    """The converged start with the highest llf (earliest on ties); else the best non-converged."""
    for pool in ([o for o in outcomes if o.ok and o.converged], [o for o in outcomes if o.ok]):
        if pool:
            return max(pool, key=lambda o: (o.llf, -o.start))
    return None


# -- the result ---------------------------------------------------------------


def _criterion_name(criterion: str) -> str:
    names = {name.lower(): name for name in CRITERIA}
    if not isinstance(criterion, str) or criterion.lower() not in names:
        raise SpecificationError(f"criterion {criterion!r} unknown; choose from {', '.join(CRITERIA)}")
    return names[criterion.lower()]


@dataclass(frozen=True, eq=False)
class SelectionResult:
    """Fits of a model for several numbers of classes, with their information criteria.

    Attributes
    ----------
    table : DataFrame
        Indexed by ``k``: ``llf``, ``df``, ``nobs``, ``AIC``, ``AICc``, ``BIC``, ``CAIC``,
        ``ICL``, ``ICL-BIC``, ``entropy`` (see :mod:`bayesfmm.criteria`), ``min_share``
        (the smallest class's share of the sample), ``converged``, ``n_starts``,
        ``n_failed`` (starts that failed, collapsed, did not converge or were spurious),
        ``n_at_best`` (starts that reached the best llf, a check that ``nrep`` was enough)
        and ``note``.
    fits : dict
        ``k -> MLResults``, the best fit of each k (k whose every start failed are absent).
    starts : DataFrame
        One row per start: ``k``, ``start``, ``method``, ``seed``, ``llf``, ``converged``,
        ``min_share``, ``error`` (why a start was not kept).
    seed : int
        The entropy the start seeds were drawn from (pass it as ``seed=`` to repeat a run).
    """

    table: pd.DataFrame
    fits: Mapping[int, MLResults]
    starts: pd.DataFrame
    seed: int
    nrep: int
    startvalues: Any
    minprior: float

    def best_k(self, criterion: str = "BIC") -> int:
        """The k minimising ``criterion`` (among k with a value)."""
        name = _criterion_name(criterion)
        values = self.table[name].dropna()
        if values.empty:
            raise ConvergenceError(f"no k has a {name}: every fit failed (see .table['note'])")
        return int(values.idxmin())

    def best(self, criterion: str = "BIC") -> MLResults:
        """The fit of the k minimising ``criterion`` (``"AIC"``, ``"BIC"``, ``"ICL"``, ...).

        Examples
        --------
        >>> import bayesfmm as bf
        >>> sel = bf.select(bf.FMM("y ~ x2 + x1", k=1), bf.datasets.load("NregFix"),
        ...                 k=range(1, 5), nrep=3, seed=1, n_jobs=1)
        >>> sel.best("BIC").k
        3
        """
        return self.fits[self.best_k(criterion)]

    def plot(self, criteria: Sequence[str] = ("AIC", "BIC", "ICL"), ax: "Axes | None" = None) -> "Axes":
        """Each criterion against k; a star marks each minimum. Returns the axes."""
        names = [_criterion_name(c) for c in ([criteria] if isinstance(criteria, str) else criteria)]
        if ax is None:
            ax = _new_axes()
        for name in names:
            values = self.table[name]
            (line,) = ax.plot(values.index, values.to_numpy(), marker="o", label=name)
            finite = values.dropna()
            if not finite.empty:
                k_min = finite.idxmin()
                ax.plot([k_min], [finite[k_min]], marker="*", markersize=16, color=line.get_color(),
                        linestyle="none", label=f"min {name}: k = {k_min}")
        ax.set_xticks(list(self.table.index))
        ax.set_xlabel("number of classes k")
        ax.set_ylabel("criterion (smaller is better)")
        ax.legend()
        return ax

    def __repr__(self) -> str:
        shown = self.table[["llf", "df", "AIC", "BIC", "ICL", "converged", "n_failed"]]
        return f"SelectionResult(nrep={self.nrep}, seed={self.seed})\n{shown.to_string()}"


def _row(k: int, design: Design, outcomes: Sequence[StartOutcome], fits: dict) -> dict:
    best = best_outcome(outcomes)
    failed = [o for o in outcomes if not (o.ok and o.converged)]
    row: dict[str, Any] = {"n_starts": len(outcomes), "n_failed": len(failed)}
    if best is None:
        df = build_layout(design).n_free
        row.update(llf=math.nan, df=df, nobs=design.n, converged=False, n_at_best=0, min_share=math.nan)
        row.update(information_criteria(math.nan, df, design.n))
        row["note"] = f"all {len(outcomes)} starts failed; first: {failed[0].error if failed else ''}"
        return row
    res = best.result
    fits[k] = res
    resp = evaluate(res.problem, res.theta).resp
    row.update(llf=res.llf, df=res.df_model, nobs=res.nobs, converged=bool(res.converged))
    row.update(information_criteria(res.llf, res.df_model, res.nobs, resp))
    row["min_share"] = float(resp.mean(axis=0).min())
    tol = 1e-6 * (1.0 + abs(res.llf))
    row["n_at_best"] = sum(o.ok and o.converged and abs(o.llf - res.llf) <= tol for o in outcomes)
    row["note"] = "" if res.converged else "no start converged; best non-converged fit shown"
    return row


COLUMNS = (
    "llf", "df", "nobs", *CRITERIA, "entropy", "min_share", "converged", "n_starts", "n_failed", "n_at_best", "note",
)


def summarise(
    designs: Mapping[int, Design], outcomes: Sequence[StartOutcome]
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """The criteria table, the best fit per k, and the per-start table (``designs`` give
    the free parameters and observations of a k whose every start failed)."""
    fits: dict[int, MLResults] = {}
    rows = {}
    for k, design in designs.items():
        mine = [o for o in outcomes if o.k == k]
        rows[k] = _row(k, design, mine, fits)
    table = pd.DataFrame.from_dict(rows, orient="index")[list(COLUMNS)]
    table.index.name = "k"
    starts = pd.DataFrame(
        [(o.k, o.start, str(o.method), o.seed, o.llf, o.converged, o.min_share, o.error) for o in outcomes],
        columns=["k", "start", "method", "seed", "llf", "converged", "min_share", "error"],
    ).astype({"seed": "Int64"})
    return table, fits, starts


def _k_values(k: int | Iterable[int]) -> list[int]:
    values = [k] if isinstance(k, (int, np.integer)) and not isinstance(k, bool) else list(k)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise SpecificationError(f"k must be integers >= 1 (such as range(1, 6)), got {k!r}")
    if len(set(values)) != len(values):
        raise SpecificationError(f"k values must be distinct, got {values}")
    return sorted(int(v) for v in values)


def select(
    model: ModelArg,
    data: pd.DataFrame,
    k: int | Iterable[int] = range(1, 6),
    nrep: int = 10,
    seed: int | None = None,
    n_jobs: int | None = None,
    progress: bool | None = None,
    *,
    startvalues: str = "randompr",
    minprior: float = 0.05,
    start_method: str | None = None,
    executor: Any = None,
    **fit_options: Any,
) -> SelectionResult:
    """Fit ``model`` for each number of classes in ``k`` from ``nrep`` starts each.

    The R flexmix equivalent is ``stepFlexmix(..., k = 1:5, nrep = 10)``; in Stata, a loop
    of ``fmm #: ...`` fits followed by ``estimates stats``.

    Parameters
    ----------
    model
        A standard-syntax :class:`~bayesfmm.FMM` (its own ``k`` is ignored), or a function
        ``k -> FMM`` (for hybrid syntax or anything else that changes with k).
    data
        The data frame.
    k
        The numbers of classes to fit.
    nrep
        Starts per k: the deterministic default start plus ``nrep - 1`` random starts
        (k = 1 needs one). Each start is a full fit; the best converged one is kept.
    seed
        Seed of the random starts (``None``: fresh entropy, recorded in ``.seed``).
    n_jobs
        Worker processes; ``None``: every CPU; ``1``: serial, in this process.
    progress
        Progress bar over the starts; ``None``: when standard error is a terminal.
    startvalues
        The random start method (``"randompr"`` or ``"randomid"``).
    minprior
        A fit with a class holding less than this share of the sample (mean posterior
        probability) is a spurious maximum and is not kept: such fits (a regression
        through a handful of points with a variance near 0) have a high likelihood that
        says nothing about k. The default 0.05 is flexmix's ``minprior``; unlike flexmix,
        the class is not dropped to give a fit with fewer classes: the start is counted in
        ``n_failed`` and its reason shown in ``.starts``. ``0`` keeps every fit.
    start_method
        Multiprocessing start method (``"fork"``, ``"spawn"``, ``"forkserver"``);
        ``None``: the platform's default.
    executor
        Run the starts on this ``concurrent.futures.Executor`` or Dask ``Client`` instead
        of local processes (``n_jobs`` is then ignored); the results equal the serial
        run's for the same ``seed``. A start that raises something other than a failed fit
        (or is lost with its worker) is named by its k, start and seed in a
        :class:`~bayesfmm.tasks.TaskError`, raised after the other starts finished. See
        docs/scale.md.
    **fit_options
        Passed to every :meth:`~bayesfmm.FMM.fit` (``vce``, ``emopts``, ``iterate``, ...).

    Returns
    -------
    SelectionResult

    Examples
    --------
    >>> import bayesfmm as bf
    >>> sel = bf.select(bf.FMM("y ~ x2 + x1", k=1), bf.datasets.load("NregFix"),
    ...                 k=range(1, 5), nrep=3, seed=1, n_jobs=1)
    >>> sel.best_k("BIC")
    3
    """
    ks = _k_values(k)
    if isinstance(nrep, bool) or not isinstance(nrep, (int, np.integer)) or nrep < 1:
        raise SpecificationError(f"nrep must be a positive integer, got {nrep!r}")
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    options = check_fit_options(fit_options, "select")
    minprior = check_minprior(minprior, max(ks))
    entropy = run_entropy(seed)
    specs = {kk: model_for(model, kk) for kk in ks}
    designs = {kk: build_design(spec, data) for kk, spec in specs.items()}  # bad data fail here
    tasks = start_tasks(specs, data, int(nrep), startvalues, entropy, options, minprior)
    outcomes = run_tasks(
        fit_start,
        tasks,
        n_jobs=n_jobs,
        progress=progress,
        description=f"fitting k = {ks[0]}..{ks[-1]}, {nrep} starts",
        start_method=start_method,
        cost=[task[2] for task in tasks],  # more classes, longer fits: start them first
        executor=executor,
        labels=[start_label(task) for task in tasks],
    )
    table, fits, starts = summarise(designs, outcomes)
    return SelectionResult(
        table=table, fits=fits, starts=starts, seed=entropy, nrep=int(nrep), startvalues=startvalues, minprior=minprior
    )
