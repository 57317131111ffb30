"""``FMM.fit``: start values -> EM -> Newton -> covariance, as Stata ``fmm`` does it.

Starts that collapse (an empty class, a variance shrinking to 0 on a few points, where the
likelihood is unbounded) are discarded and counted; if the best start collapses during
Newton the next best is tried; if none survives a :class:`~bayesfmm.errors.ConvergenceError`
says what happened and what to try.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from bayesfmm.design import build_design
from bayesfmm.errors import ConvergenceError, ConvergenceWarning, DataError, IdentificationWarning, SpecificationError, rows_text
from bayesfmm.iterlog import IterationLog
from bayesfmm.likelihood import MixtureProblem, loglike
from bayesfmm.memory import keep_freed_pages
from bayesfmm.mixture import impossible_rows
from bayesfmm.ml.em import EMOptions, EMResult, degeneracy, em
from bayesfmm.ml.identification import check_minprior, small_classes, warn_identification, without_classes
from bayesfmm.ml.multistart import em_from_starts
from bayesfmm.ml.newton import NewtonOptions, newton
from bayesfmm.ml.report import StartReport
from bayesfmm.ml.search import log_search, search_maxima, search_size
from bayesfmm.ml.start import one_class_fit, parse_startvalues, start_points, theta_from_params, zero_start
from bayesfmm.ml.survey_vce import survey_covariance
from bayesfmm.ml.vce import VCE_TYPES, covariance
from bayesfmm.params import build_layout
from bayesfmm.progress import show_progress, track
from bayesfmm.results import MLResults
from bayesfmm.spec import ModelSpec
from bayesfmm.survey import SurveyDesign

__all__ = ["fit_ml", "StartReport"]

FIT_OPTIONS = (
    "startvalues, draws, seed, from_, noestimate, emopts, iterate, tolerance, ltolerance, "
    "nrtolerance, difficult, vce, cluster, survey, subpop, collapse_tol, search, minprior, log, progress, executor"
)


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
    kind = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kind) or value < (0 if integer else 0.0):
        what = "a non-negative integer" if integer else "a non-negative number"
        raise SpecificationError(f"{name} must be {what}, got {value!r}")


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


def _resolve_vce(vce: str | None, cluster: str | None, spec: ModelSpec | None = None) -> str:
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


def _survey_vce(vce: str | None, cluster: str | None, spec: ModelSpec, survey: Any) -> str:
    """``survey=``: the variance is the linearized one; the weights come from the design."""
    if survey is None:
        raise SpecificationError("subpop= goes with a survey design: fit(data, survey=bf.SurveyDesign(...), subpop='col')")
    if not isinstance(survey, SurveyDesign):
        raise SpecificationError(f"survey= takes a bf.SurveyDesign, got {type(survey).__name__}")
    if vce not in (None, "linearized") or cluster is not None:
        raise SpecificationError(
            f"with survey= the variance is linearized from the design (Stata's svy: fmm); vce={vce!r} and "
            f"cluster={cluster!r} do not apply: give the PSUs as SurveyDesign(psu=)"
        )
    if spec.weights is not None:
        raise SpecificationError(
            f"with survey= the sampling weights come from SurveyDesign(weights=), not FMM(weights={spec.weights!r})"
        )
    return "linearized"


def _check_reachable(problem: MixtureProblem, theta: np.ndarray) -> None:
    """Rows no class can produce (density 0 in every class, e.g. zeros under a zero-truncated
    count in every class) make the likelihood 0 everywhere: say which, before fitting."""
    impossible = impossible_rows(problem, theta)
    if impossible.size:
        design = problem.design
        responses = {comp.response: comp.y for comps in design.classes for comp in comps}
        values = {name: y[impossible[:5]].tolist() for name, y in responses.items()}
        raise DataError(
            f"rows {rows_text(design.index, impossible)} have probability 0 in every class (responses {values}): "
            "no component can produce them (a zero under a zero-truncated count, a value outside every "
            "component's range); add a component that can, such as (pointmass y) for a hurdle model"
        )


def fit_ml(
    spec: ModelSpec,
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
    survey: SurveyDesign | None = None,
    subpop: str | None = None,
    collapse_tol: float = 1e-8,
    search: Any = "auto",
    minprior: float | None = None,
    log: bool = False,
    progress: bool | None = None,
    executor: Any = None,
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
        Stata's ``startvalues()``: ``"default"`` (the ``"factor"`` start, then on small
        problems a search of random starts for a better maximum: ``search=``),
        ``"factor"`` (Stata-compatible: the deterministic quantile split alone, Stata's
        iteration log), ``"randomid"``, ``"randompr"``, ``"zero"``, ``"jitter"`` or
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
    survey
        A :class:`~bayesfmm.survey.SurveyDesign` (Stata's ``svyset``, then ``svy: fmm``): the
        estimates weight the rows by its sampling weights, the covariance is the linearized
        one (``vce="linearized"``, :mod:`bayesfmm.ml.survey_vce`), and tests, p-values and
        confidence intervals use t and F on the design degrees of freedom. See docs/survey.md.
    subpop
        With ``survey``: a 0/1 (or boolean) column; the fit is for the rows where it is 1,
        keeping the whole design for the variance (Stata's ``svy, subpop()``).
    collapse_tol
        An error variance below this fraction of its 1-class value counts as collapsed
        (in a class of a few rows; see :func:`bayesfmm.ml.em.degeneracy`).
    search
        With the default ``startvalues``: after the Stata-like fit from the default start,
        EM and Newton from this many ``randomid`` starts, keeping the best maximum and
        reporting the distinct maxima found (``res.starts.optima``, the iteration log).
        ``"auto"`` (default): up to 20 starts on small problems, none on large ones
        (:func:`bayesfmm.ml.search.search_size`); 0 for none. ``startvalues="factor"`` is
        Stata's single start with no search. See docs/inference.md.
    minprior
        flexmix's ``minprior``: classes whose share of the observations falls below it are
        dropped and the model is refitted with fewer classes (with a warning). By default
        (None) nothing is dropped and an :class:`~bayesfmm.errors.IdentificationWarning`
        names any class below 0.05.
    log
        Print a Stata-like iteration log.
    progress
        Show a progress bar over the start draws; by default when ``draws > 1`` and
        standard error is a terminal.
    executor
        Run EM from the ``draws`` starts on this ``concurrent.futures.Executor`` or Dask
        ``Client`` (results equal the serial run's for the same ``seed``; docs/scale.md).

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
    if not isinstance(spec, ModelSpec):
        raise SpecificationError(f"expected a bf.FMM, got {type(spec).__name__}")
    keep_freed_pages()  # freed arrays are reused by later iterations and fits (bayesfmm.memory)
    start = parse_startvalues(startvalues)
    _check_seed(seed)
    minprior = check_minprior(minprior)
    surveyed = survey is not None or subpop is not None
    vce = _survey_vce(vce, cluster, spec, survey) if surveyed else _resolve_vce(vce, cluster, spec)
    _check_start_options(start, draws, from_)
    em_options = _em_options(emopts)
    newton_options = _newton_options(iterate, tolerance, ltolerance, nrtolerance, difficult)
    design = build_design(
        spec, data, cluster=cluster if vce == "cluster" else None, start_columns=start.columns if spec.k > 1 else (),
        survey=survey, subpop=subpop,
    )
    problem = MixtureProblem.build(design, build_layout(design))
    if design.nobs < problem.layout.n_free:
        raise DataError(f"{design.nobs} observations for {problem.layout.n_free} free parameters: too few to "
                        "estimate the model; use more data, fewer classes or fewer regressors")
    iterlog = IterationLog(echo=log)
    plan = _StartPlan(start, from_, seed, draws if start.random else 1)
    pooled = one_class_fit(problem)
    _check_reachable(problem, pooled)
    reference = problem.layout.to_report(pooled)  # the 1-class values collapse is judged against
    rng = np.random.default_rng(seed)
    runs = _em_runs(problem, plan, pooled, reference, em_options, iterlog, collapse_tol, progress, log, rng, executor)
    if noestimate:
        return _starting_values(problem, plan, runs)
    n_search = search_size(problem, search) if plan.searches(startvalues) else 0
    searched = (n_search, pooled, em_options, progress)
    result, report = _fit_with_search(problem, plan, runs, reference, newton_options, iterlog, collapse_tol, searched)
    resp = result.evaluation.resp  # Newton's evaluation is at its theta
    dropped = [j for j, _, _ in small_classes(problem, result.theta, minprior or 0.0, resp)]
    if dropped:
        warnings.warn(f"classes {dropped} fell below minprior={minprior:g}: refitting with {spec.k - len(dropped)} classes",
                      IdentificationWarning, stacklevel=3)
        options = dict(startvalues=startvalues if start.method not in ("classid", "classpr") else "default",
                       draws=draws, seed=seed, emopts=emopts, iterate=iterate, tolerance=tolerance, ltolerance=ltolerance,
                       nrtolerance=nrtolerance, difficult=difficult, vce=vce, cluster=cluster, survey=survey, subpop=subpop,
                       collapse_tol=collapse_tol, search=search, minprior=minprior, log=log, progress=progress,
                       executor=executor)
        return fit_ml(without_classes(spec, dropped), data, **options)
    if design.survey is not None:
        cov, vce_note = survey_covariance(problem, result)
    else:
        cov, vce_note = covariance(problem, result, vce, design.clusters)
    warn_identification(problem, result.theta, cov, result.llf, minprior, resp)
    return MLResults(
        problem=problem,
        theta=result.theta,
        cov_theta=cov,
        llf=result.llf,
        converged=result.converged,
        iterations=result.iterations,
        vce=vce,
        vce_note=vce_note,
        starts=report,
        iteration_log=iterlog,
        gradient=result.gradient,
        hessian=result.hessian,
        n_clusters=design.n_clusters,
        cluster=cluster,
    )


def _check_seed(seed: Any) -> None:
    if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise SpecificationError(f"seed must be a non-negative integer or None, got {seed!r}")


def _check_start_options(start, draws: Any, from_: pd.Series | None) -> None:
    _check_positive("draws", draws, integer=True)
    if draws < 1:
        raise SpecificationError(f"draws must be at least 1, got {draws}")
    if draws > 1 and not start.random:
        raise SpecificationError(
            f"draws={draws} applies to the random start methods randomid, randompr and jitter, "
            f"not startvalues={start.label!r}"
        )
    if from_ is not None and (start.method not in ("default", "zero") or draws != 1):
        raise SpecificationError(
            "from_ gives every starting value; it does not combine with draws= or with startvalues= "
            "other than 'zero' (which sets the parameters from_ leaves out to 0, as Stata's "
            "startvalues(zero) with from())"
        )


def _newton_options(iterate, tolerance, ltolerance, nrtolerance, difficult) -> NewtonOptions:
    for name, value in (("tolerance", tolerance), ("ltolerance", ltolerance), ("nrtolerance", nrtolerance)):
        _check_positive(name, value)
    _check_positive("iterate", iterate, integer=True)
    return NewtonOptions(
        iterate=iterate, tolerance=tolerance, ltolerance=ltolerance, nrtolerance=nrtolerance, difficult=bool(difficult)
    )


@dataclass(frozen=True)
class _StartPlan:
    """Where the fit starts: a start method, or the user's values (``from_``)."""

    start: Any  # ml.start.StartSpec
    from_: pd.Series | None
    seed: int | None
    n_draws: int

    @property
    def zero_from(self) -> bool:
        """Stata's ``startvalues(zero)`` with ``from()``: the given values, 0 elsewhere."""
        return self.from_ is not None and self.start.method == "zero"

    @property
    def user_start(self) -> bool:
        """``from_`` alone: the values go to Newton directly."""
        return self.from_ is not None and not self.zero_from

    @property
    def method(self) -> str:
        return "from" if self.user_start else self.start.method

    def searches(self, startvalues: Any) -> bool:
        """Whether the default fit's search runs: the default start (not Stata's
        ``"factor"``, its single-start name) without user values."""
        return self.start.method == "default" and self.from_ is None and startvalues != "factor"

    def report(self, runs: list[EMResult], winner: int, newton_failed=(), newton_llf=()) -> StartReport:
        return StartReport(
            method=self.method,
            draws=len(runs),
            winner=winner,
            em_llf=tuple(r.llf for r in runs),
            collapsed=tuple(r.collapsed for r in runs),
            newton_failed=tuple(newton_failed),
            em_iterations=tuple(r.iterations for r in runs),
            label="zero from" if self.zero_from else ("from" if self.from_ is not None else self.start.label),
            seed=self.seed if self.start.random and self.from_ is None else None,
            newton_llf=tuple(newton_llf),
        )


def _em_runs(
    problem, plan: _StartPlan, pooled, reference, em_options, iterlog, collapse_tol, progress, log, rng, executor=None
) -> list[EMResult]:
    """EM from each start (or the user's values as they are), as Stata's "Refining starting values"."""
    layout, k = problem.layout, problem.k
    if plan.zero_from:
        theta_user = layout.project(theta_from_params(layout, plan.from_, fill=zero_start(problem, pooled)))
        iterlog.write("Refining starting values:")
        iterlog.write("")
        return [em(problem, theta_user, em_options, reference, iterlog, collapse_tol)]
    if plan.user_start:
        theta_user = layout.project(theta_from_params(layout, plan.from_))
        return [EMResult(theta_user, loglike(problem, theta_user), 0, None, None)]
    if k == 1:
        return [EMResult(layout.project(pooled), -np.inf, 0, None, None)]
    columns = problem.design.start_columns
    if columns is not None and plan.start.method == "classid":
        columns = columns[:, 0]
    iterlog.write("Refining starting values:")
    runs = []
    n = plan.n_draws
    show = show_progress(progress, default=n > 1 and not log)
    points = start_points(problem, plan.start, n, rng, pooled, columns)
    if executor is not None and n > 1:  # the starts drawn here, in order; EM from each on the executor
        points = [layout.project(theta0) for theta0 in points]
        return em_from_starts(problem, points, em_options, reference, iterlog, collapse_tol, executor, show, plan.seed)
    for theta0 in track(points, show, f"EM from {n} {plan.start.method} starts", n):
        iterlog.write("")
        runs.append(em(problem, layout.project(theta0), em_options, reference, iterlog, collapse_tol))
    return runs


def _best_first(runs: list[EMResult]) -> list[int]:
    return sorted(range(len(runs)), key=lambda i: -runs[i].llf if runs[i].collapsed is None else np.inf)


def _failures(runs: list[EMResult]) -> list[str]:
    return [f"start {i + 1}: {r.collapsed}" for i, r in enumerate(runs) if r.collapsed]


def _starting_values(problem, plan: _StartPlan, runs: list[EMResult]) -> pd.Series:
    """``noestimate=True``: the values Newton would start from."""
    layout = problem.layout
    best = 0 if plan.user_start else _best_first(runs)[0]
    if runs[best].collapsed is not None:
        raise ConvergenceError("no start survived EM; every one collapsed:\n  " + "\n  ".join(_failures(runs)))
    values = layout.series(layout.to_report(runs[best].theta), "params")
    values.attrs["starts"] = plan.report(runs, best)
    values.attrs["llf"] = float(loglike(problem, layout.from_report(values.to_numpy())))
    return values


def _newton_from_best(problem, plan: _StartPlan, runs, reference, newton_options, iterlog, collapse_tol):
    """Newton from the best EM result; from the next best when it collapses or does not
    converge. Returns the Newton result and the start report."""

    def check(theta, ev):
        return degeneracy(problem, theta, ev.resp, reference, collapse_tol)

    failures = _failures(runs)
    result, fallback, winner = None, None, 0
    newton_failed: list[int] = []
    newton_llf: list[tuple[int, float]] = []
    for i in _best_first(runs):
        if runs[i].collapsed is not None:
            continue
        if _identical_classes(problem, runs[i].theta):
            warnings.warn(
                f"start {i + 1} ({plan.method}) has all {problem.k} classes identical: EM and Newton cannot "
                "separate them from a symmetric start; give from_= or use a random start method",
                IdentificationWarning,
                stacklevel=4,
            )
        for line in ("", "Fitting full model:", ""):
            iterlog.write(line)
        attempt = newton(problem, runs[i].theta, newton_options, iterlog, check, start=runs[i].evaluation)
        newton_llf.append((i, float(attempt.llf)))
        if attempt.collapsed is None and attempt.converged:
            result, winner = attempt, i
            break
        newton_failed.append(i)
        if attempt.collapsed is not None:
            failures.append(f"start {i + 1} in Newton: {attempt.collapsed}")
            continue
        failures.append(f"start {i + 1} in Newton: {attempt.message}")
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
            stacklevel=4,
        )
    return result, plan.report(runs, winner, newton_failed, newton_llf)


def _fit_with_search(problem, plan: _StartPlan, runs, reference, newton_options, iterlog, collapse_tol, searched):
    """Newton from the best EM start, then (default start) the search for a better maximum
    (:mod:`bayesfmm.ml.search`); the search also rescues a default start that collapsed."""
    n_search, pooled, em_options, progress = searched
    try:
        result, report = _newton_from_best(problem, plan, runs, reference, newton_options, iterlog, collapse_tol)
    except ConvergenceError as error:
        if not n_search:
            raise
        result, report, failure = None, None, error
    if not n_search:
        return result, report

    def check(theta, ev):
        return degeneracy(problem, theta, ev.resp, reference, collapse_tol)

    outcome = search_maxima(
        problem, result, n_search, plan.seed, pooled, reference, em_options, newton_options, check, collapse_tol, progress
    )
    log_search(iterlog, outcome, None if result is None else result.llf)
    if outcome.result is None:
        raise failure
    if report is None:
        report = plan.report(runs, _best_first(runs)[0])
    report = dataclasses.replace(
        report, optima=outcome.optima, search_draws=outcome.draws, search_seed=outcome.seed, search_winner=outcome.winner
    )
    return outcome.result, report

