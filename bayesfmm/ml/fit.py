"""``FMM.fit``: start values -> EM -> Newton -> covariance, as Stata ``fmm`` does it.

Starts that collapse (an empty class, a variance shrinking to 0 on a few points, where the
likelihood is unbounded) are discarded and counted; if the best start collapses during
Newton the next best is tried; if none survives a :class:`~bayesfmm.errors.ConvergenceError`
says what happened and what to try.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from bayesfmm.design import build_design, estimation_rows
from bayesfmm.errors import ConvergenceError, ConvergenceWarning, DataError, IdentificationWarning, SpecificationError
from bayesfmm.likelihood import MixtureProblem, evaluate, loglike
from bayesfmm.ml.em import EMOptions, EMResult, degeneracy, em
from bayesfmm.ml.iterlog import IterationLog
from bayesfmm.ml.newton import NewtonOptions, newton
from bayesfmm.ml.start import one_class_fit, parse_startvalues, start_points, theta_from_params, zero_start
from bayesfmm.ml.vce import VCE_TYPES, covariance
from bayesfmm.params import build_layout
from bayesfmm.spec import FMM

__all__ = ["fit_ml", "StartReport"]

FIT_OPTIONS = (
    "startvalues, draws, seed, from_, noestimate, emopts, iterate, tolerance, ltolerance, "
    "nrtolerance, difficult, vce, cluster, collapse_tol, log, progress"
)


@dataclass(frozen=True)
class StartReport:
    """Which start won and what happened to the others.

    Attributes
    ----------
    method
        The start method (``"default"``, ``"randompr"``, ..., or ``"from"`` for ``from_=``).
    draws
        Number of starts run through EM.
    winner
        0-based index of the draw Newton converged from.
    em_llf
        Log likelihood of each draw after EM (``emopts`` iterations; ``-inf`` if it collapsed).
    collapsed
        Why each draw collapsed, or None.
    newton_failed
        Draws whose Newton run collapsed or did not converge (the next best was tried).
    em_iterations
        EM iterations each draw ran (fewer than ``emopts['iterate']``: EM met its tolerance).
    label
        Stata-like description of the method (``"classid g"``, ``"jitter 1 1"``).
    seed
        The seed of random methods.
    newton_llf
        ``(draw, llf)`` where each Newton run ended.
    """

    method: str
    draws: int
    winner: int  # 0-based draw index
    em_llf: tuple[float, ...]  # -inf where the draw collapsed
    collapsed: tuple[str | None, ...]
    newton_failed: tuple[int, ...] = ()  # draws whose Newton run collapsed or did not converge
    em_iterations: tuple[int, ...] = ()
    label: str = ""
    seed: int | None = None
    newton_llf: tuple[tuple[int, float], ...] = ()

    @property
    def n_collapsed(self) -> int:
        return sum(c is not None for c in self.collapsed)

    def table(self, decimals: int = 1) -> pd.DataFrame:
        """Where the draws ended after EM: one row per distinct log likelihood (rounded to
        ``decimals``), best first, with the number of draws and whether the winner is there;
        collapsed draws are counted on a row of their own (``llf`` = -inf).

        Examples
        --------
        >>> import bayesfmm as bf
        >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"),
        ...                                        startvalues="randomid", draws=4, seed=1)
        >>> int(res.starts.table()["draws"].sum())
        4
        """
        llf = np.round(np.asarray(self.em_llf, dtype=float), decimals)
        values, counts = np.unique(llf, return_counts=True)
        winner = llf[self.winner] if self.draws else np.nan
        frame = pd.DataFrame({"llf": values, "draws": counts, "winner": values == winner})
        return frame.sort_values("llf", ascending=False, ignore_index=True)

    def __str__(self) -> str:
        rows = [f"{int(r.draws)} at {r.llf:.1f}" + (" (winner)" if r.winner else "") for r in self.table().itertuples()]
        seed = f", seed {self.seed}" if self.seed is not None else ""
        return f"startvalues {self.label or self.method}: {self.draws} draw(s){seed}; EM ended " + ", ".join(rows)


def _progress(items: Iterable, show: bool, description: str, total: int):
    """Iterate ``items``, with a rich progress bar on standard error when ``show``."""
    if not show:
        yield from items
        return
    from rich.progress import track

    yield from track(items, description=description, total=total, transient=True, console=None)


def _em_options(emopts: Mapping[str, Any] | None) -> EMOptions:
    if emopts is None:
        return EMOptions()
    if not isinstance(emopts, Mapping):
        raise SpecificationError(f"emopts must be a dict such as {{'iterate': 20}}, got {emopts!r}")
    allowed = {"iterate", "tolerance", "ltolerance"}
    unknown = sorted(set(emopts) - allowed)
    if unknown:
        raise SpecificationError(f"emopts does not take {unknown}; it takes {sorted(allowed)}")
    for name, value in emopts.items():
        _check_positive(f"emopts[{name!r}]", value, integer=name == "iterate")
    return EMOptions(**emopts)


def _check_positive(name: str, value: Any, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < (0 if integer else 0.0):
        what = "a non-negative integer" if integer else "a non-negative number"
        raise SpecificationError(f"{name} must be {what}, got {value!r}")


def _rows(index: pd.Index, positions: np.ndarray, limit: int = 5) -> str:
    shown = [repr(v) for v in index[positions[:limit]]]
    more = f" and {positions.size - limit} more" if positions.size > limit else ""
    return ", ".join(shown) + more


def _sample_columns(data: pd.DataFrame, kept: np.ndarray, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    """Columns outside the model, on the estimation rows; a missing value is a DataError.

    Stata drops such rows; here the estimation sample must not depend on ``vce=`` or the
    start method, so the user decides (drop or fill them).
    """
    absent = [c for c in columns if c not in data.columns]
    if absent:
        available = ", ".join(map(str, list(data.columns)[:20]))
        raise DataError(f"{what} column(s) {', '.join(map(repr, absent))} not in the data; available columns: {available}")
    frame = data.loc[kept, list(columns)]
    na = frame.isna().any(axis=1).to_numpy()
    if na.any():
        positions = np.flatnonzero(na)
        raise DataError(
            f"{what} column(s) {', '.join(map(repr, columns))} have missing values in rows "
            f"{_rows(frame.index, positions)} of the estimation sample ({positions.size} rows); drop those "
            f"rows (data.dropna(subset={list(columns)!r})) or fill them"
        )
    return frame


def _numeric(frame: pd.DataFrame, what: str) -> np.ndarray:
    values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        raise DataError(
            f"{what} column(s) {list(frame.columns)} must be numeric; rows {_rows(frame.index, bad)} are not"
        )
    return values


def _identical_classes(problem: MixtureProblem, theta: np.ndarray) -> bool:
    """Whether every class has the same component parameters and class probability."""
    layout = problem.layout
    if problem.k < 2 or any(len(c) != len(problem.design.classes[0]) for c in problem.design.classes):
        return False
    for b in layout.class_blocks:
        if np.any(np.abs(theta[b.slice]) > 1e-12):
            return False
    first = [theta[layout.slot_block(1, c, s).slice] for c, comp in enumerate(problem.design.classes[0])
             for s in range(len(comp.slot_designs))]
    for j in range(2, problem.k + 1):
        other = [theta[layout.slot_block(j, c, s).slice] for c, comp in enumerate(problem.design.classes[j - 1])
                 for s in range(len(comp.slot_designs))]
        if any(a.shape != b.shape or not np.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(first, other)):
            return False
    return True


def _resolve_vce(vce: str | None, cluster: str | None, spec: FMM | None = None) -> str:
    pweighted = spec is not None and spec.weights is not None and spec.weight_type == "pweight"
    if vce is None:
        vce = "cluster" if cluster is not None else ("robust" if pweighted else "oim")
    if pweighted and vce in ("oim", "opg"):
        raise SpecificationError(
            f"vce={vce!r} is not allowed with sampling weights (weight_type='pweight'): they imply "
            "vce='robust' (or 'cluster'), as in Stata"
        )
    if vce not in VCE_TYPES:
        raise SpecificationError(f"vce={vce!r} is not available; choose from {', '.join(VCE_TYPES)}")
    if vce == "cluster" and cluster is None:
        raise SpecificationError("vce='cluster' needs the cluster column: fit(data, vce='cluster', cluster='id')")
    if cluster is not None and vce != "cluster":
        raise SpecificationError(f"cluster={cluster!r} goes with vce='cluster', not vce={vce!r}")
    if cluster is not None and not isinstance(cluster, str):
        raise SpecificationError(f"cluster must be a column name, got {cluster!r}")
    return vce


def _check_reachable(problem: MixtureProblem, theta: np.ndarray) -> None:
    """Rows no class can produce (density 0 in every class, e.g. zeros under a zero-truncated
    count in every class) make the likelihood 0 everywhere: say which, before fitting."""
    with np.errstate(all="ignore"):
        logf = evaluate(problem, theta).log_density
    impossible = np.flatnonzero(np.all(np.isneginf(logf), axis=1))
    if impossible.size:
        design = problem.design
        responses = {comp.response: comp.y for comps in design.classes for comp in comps}
        values = {name: y[impossible[:5]].tolist() for name, y in responses.items()}
        raise DataError(
            f"rows {_rows(design.index, impossible)} have probability 0 in every class (responses {values}): "
            "no component can produce them (a zero under a zero-truncated count, a value outside every "
            "component's range); add a component that can, such as (pointmass y) for a hurdle model"
        )


def _unit_clusters(design, clusters: np.ndarray, column: str, index: pd.Index) -> np.ndarray:
    """Cluster codes per likelihood unit: rows, or groups with ``group=`` (a group must lie
    within one cluster)."""
    groups = design.groups
    if groups is None:
        return clusters
    per_group = clusters[groups.first]
    varies = np.flatnonzero(per_group[groups.codes] != clusters)
    if varies.size:
        raise DataError(
            f"cluster column {column!r} varies within groups of {groups.column!r} (rows "
            f"{_rows(index, varies)}): a group is one likelihood unit, so it must lie in one cluster"
        )
    return per_group


def fit_ml(
    spec: FMM,
    data: pd.DataFrame,
    *,
    startvalues: Any = "default",
    draws: int = 1,
    seed: int | None = None,
    from_: pd.Series | None = None,
    noestimate: bool = False,
    emopts: Mapping[str, Any] | None = None,
    iterate: int = 300,
    tolerance: float = 1e-6,
    ltolerance: float = 1e-7,
    nrtolerance: float = 1e-5,
    difficult: bool = False,
    vce: str | None = None,
    cluster: str | None = None,
    collapse_tol: float = 1e-8,
    log: bool = False,
    progress: bool | None = None,
    **unknown: Any,
):
    """Fit ``spec`` to ``data`` by maximum likelihood.

    Parameters
    ----------
    spec
        The model.
    data
        A DataFrame holding every column the model names.
    startvalues
        Stata's ``startvalues()``: ``"default"`` (alias ``"factor"``; a deterministic
        quantile split), ``"randomid"``, ``"randompr"``, ``"zero"``, ``"jitter"`` or
        ``("jitter", c, v)``, ``("classid", "col")``, ``("classpr", "p1", ..., "pk")``.
        See :mod:`bayesfmm.ml.start` and docs/inference.md.
    draws, seed
        Number of random starts (``randomid``, ``randompr``, ``jitter``) and the seed; EM
        runs from each, the draw with the best EM log likelihood goes on to Newton.
    from_
        Starting values: a Series in ``res.params``' layout on the reported scale (Stata
        ``from()``). They go to Newton directly (no start method, no EM). With
        ``startvalues="zero"`` the Series may give some parameters only (say the class
        means); the others start at 0 (auxiliary parameters at their 1-class values) and EM
        refines the start, as Stata's ``startvalues(zero)`` with ``from()``.
    noestimate
        Do not fit: return the starting values Newton would begin from, as a Series in the
        params layout (``.attrs`` holds ``"starts"`` and the start's ``"llf"``).
    emopts
        EM options: ``{"iterate": 20, "tolerance": 1e-4, "ltolerance": 1e-6}`` (Stata's).
    iterate, tolerance, ltolerance, nrtolerance
        Newton's iteration limit and Stata's convergence criteria.
    difficult
        Stata's ``difficult``: where the Hessian is not negative definite, step by Newton in
        its concave eigen-directions and by steepest ascent in the others (the default
        reflects the non-concave eigenvalues).
    vce
        ``"oim"`` (observed information, the default), ``"opg"``, ``"robust"`` or
        ``"cluster"`` (see :mod:`bayesfmm.ml.vce` for the formulas).
    cluster
        The cluster column of ``vce="cluster"`` (implies it when ``vce`` is not given).
    collapse_tol
        An error variance below this fraction of its 1-class value counts as collapsed.
    log
        Print a Stata-like iteration log.
    progress
        Show a progress bar over the start draws; by default when ``draws > 1`` and
        standard error is a terminal.

    Returns
    -------
    MLResults, or a Series of starting values when ``noestimate``.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"), log=False)
    >>> res.converged
    True
    """
    if unknown:
        raise SpecificationError(
            f"fit() does not take option(s) {', '.join(sorted(unknown))}; it takes {FIT_OPTIONS}"
        )
    if not isinstance(spec, FMM):
        raise SpecificationError(f"expected a bf.FMM, got {type(spec).__name__}")
    start = parse_startvalues(startvalues)
    vce = _resolve_vce(vce, cluster, spec)
    _check_positive("draws", draws, integer=True)
    if draws < 1:
        raise SpecificationError(f"draws must be at least 1, got {draws}")
    if draws > 1 and not start.random:
        raise SpecificationError(
            f"draws={draws} applies to the random start methods randomid, randompr and jitter, "
            f"not startvalues={start.label!r}"
        )
    zero_from = from_ is not None and start.method == "zero"
    if from_ is not None and (start.method not in ("default", "zero") or draws != 1):
        raise SpecificationError(
            "from_ gives every starting value; it does not combine with draws= or with startvalues= "
            "other than 'zero' (which sets the parameters from_ leaves out to 0, as Stata's "
            "startvalues(zero) with from())"
        )
    for name, value in (("tolerance", tolerance), ("ltolerance", ltolerance), ("nrtolerance", nrtolerance)):
        _check_positive(name, value)
    _check_positive("iterate", iterate, integer=True)
    em_options = _em_options(emopts)
    newton_options = NewtonOptions(
        iterate=iterate,
        tolerance=tolerance,
        ltolerance=ltolerance,
        nrtolerance=nrtolerance,
        difficult=bool(difficult),
    )

    design = build_design(spec, data)
    kept = estimation_rows(spec, data)
    clusters, n_clusters = None, None
    if vce == "cluster":
        frame = _sample_columns(data, kept, (cluster,), "cluster")
        clusters, uniques = pd.factorize(frame[cluster])
        n_clusters = len(uniques)
        clusters = _unit_clusters(design, clusters, cluster, frame.index)
    columns = None
    if start.columns and spec.k > 1:
        columns = _numeric(_sample_columns(data, kept, start.columns, start.method), start.method)
        columns = columns[:, 0] if start.method == "classid" else columns
    layout = build_layout(design)
    problem = MixtureProblem.build(design, layout)
    if from_ is not None and not zero_from:
        theta_user = layout.project(theta_from_params(layout, from_))
    iterlog = IterationLog(echo=log)
    rng = np.random.default_rng(seed)

    pooled = one_class_fit(problem)
    _check_reachable(problem, pooled)
    reference = layout.to_report(pooled)
    if spec.k == 1:
        pooled = layout.project(pooled)
    n_draws = draws if start.random else 1

    method = "from" if from_ is not None and not zero_from else start.method
    if zero_from:
        # Stata's startvalues(zero) with from(): the given values, 0 elsewhere (auxiliary
        # parameters at their 1-class values), refined by EM like any start
        theta_user = layout.project(theta_from_params(layout, from_, fill=zero_start(problem, pooled)))
        iterlog.write("Refining starting values:")
        iterlog.write("")
        runs = [em(problem, theta_user, em_options, reference, iterlog, collapse_tol)]
    elif from_ is not None:
        runs = [EMResult(theta_user, loglike(problem, theta_user), 0, None, None)]
    elif spec.k == 1:
        runs = [EMResult(pooled, -np.inf, 0, None, None)]
    else:
        iterlog.write("Refining starting values:")
        runs = []
        show = progress if progress is not None else (n_draws > 1 and sys.stderr.isatty() and not log)
        points = start_points(problem, start, n_draws, rng, pooled, columns)
        for theta0 in _progress(points, show, f"EM from {n_draws} {start.method} starts", n_draws):
            iterlog.write("")
            runs.append(em(problem, layout.project(theta0), em_options, reference, iterlog, collapse_tol))
    order = sorted(range(len(runs)), key=lambda i: -runs[i].llf if runs[i].collapsed is None else np.inf)

    def report(winner: int, newton_failed=(), newton_llf=()) -> StartReport:
        return StartReport(
            method=method,
            draws=len(runs),
            winner=winner,
            em_llf=tuple(r.llf for r in runs),
            collapsed=tuple(r.collapsed for r in runs),
            newton_failed=tuple(newton_failed),
            em_iterations=tuple(r.iterations for r in runs),
            label="zero from" if zero_from else ("from" if from_ is not None else start.label),
            seed=seed if start.random and from_ is None else None,
            newton_llf=tuple(newton_llf),
        )

    failures: list[str] = [f"start {i + 1}: {r.collapsed}" for i, r in enumerate(runs) if r.collapsed]
    if noestimate:
        if from_ is not None and not zero_from:
            values = layout.series(layout.to_report(theta_user), "params")
        else:
            best = order[0]
            if runs[best].collapsed is not None:
                raise ConvergenceError("no start survived EM; every one collapsed:\n  " + "\n  ".join(failures))
            values = layout.series(layout.to_report(runs[best].theta), "params")
        values.attrs["starts"] = report(0 if from_ is not None and not zero_from else order[0])
        values.attrs["llf"] = float(loglike(problem, layout.from_report(values.to_numpy())))
        return values

    def check(theta, ev):
        return degeneracy(problem, theta, ev.resp, reference, collapse_tol)

    result, fallback = None, None
    newton_failed: list[int] = []
    newton_llf: list[tuple[int, float]] = []
    for i in order:
        if runs[i].collapsed is not None:
            continue
        if _identical_classes(problem, runs[i].theta):
            warnings.warn(
                f"start {i + 1} ({method}) has all {spec.k} classes identical: EM and Newton cannot "
                "separate them from a symmetric start; give from_= or use a random start method",
                IdentificationWarning,
                stacklevel=3,
            )
        iterlog.write("")
        iterlog.write("Fitting full model:")
        iterlog.write("")
        attempt = newton(problem, runs[i].theta, newton_options, iterlog, check)
        newton_llf.append((i, float(attempt.llf)))
        if attempt.collapsed is not None:
            failures.append(f"start {i + 1} in Newton: {attempt.collapsed}")
            newton_failed.append(i)
            continue
        if attempt.converged:
            result, winner = attempt, i
            break
        failures.append(f"start {i + 1} in Newton: {attempt.message}")
        newton_failed.append(i)
        if fallback is None or attempt.llf > fallback[0].llf:
            fallback = (attempt, i)
        iterlog.write(f"Newton did not converge from start {i + 1}: {attempt.message}; trying the next start")
    if result is None and fallback is not None:
        result, winner = fallback
    if result is None:
        raise ConvergenceError(
            "no start reached a proper maximum; every one collapsed:\n  "
            + "\n  ".join(failures)
            + "\nTry more random starts (startvalues='randompr', draws=20), fewer classes, "
            "or a model with fewer free variances."
        )
    if not result.converged:
        warnings.warn(
            f"Newton did not converge: {result.message}. The estimates may not be a maximum; "
            "try more iterations (iterate=), other start values, difficult=True, or fewer classes.",
            ConvergenceWarning,
            stacklevel=3,
        )
    cov, vce_note = covariance(problem, result, vce, clusters)
    from bayesfmm.results import MLResults

    return MLResults(
        problem=problem,
        theta=result.theta,
        cov_theta=cov,
        llf=result.llf,
        converged=result.converged,
        iterations=result.iterations,
        vce=vce,
        vce_note=vce_note,
        starts=report(winner, newton_failed, newton_llf),
        iteration_log=iterlog,
        gradient=result.gradient,
        hessian=result.hessian,
        n_clusters=n_clusters,
        cluster=cluster,
    )
