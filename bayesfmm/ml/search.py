"""The default fit's search for the best maximum: more starts, when they are cheap.

A mixture likelihood has local maxima, and the one a single deterministic start climbs to
need not be the best: on flexmix's published examples (betablocker, fabricfault, patent)
Stata's ``startvalues(factor)`` stops at a lower maximum in four of the models. So after
the Stata-like fit from the default start, :func:`search_maxima` runs EM and Newton from
``randomid`` starts (every row put in a random class) and keeps the best proper maximum
found. The number of starts follows the size of the problem (``search="auto"``): up to
:data:`SEARCH_STARTS` while ``units x parameters x starts`` stays under
:data:`SEARCH_BUDGET`, none on large problems (there the default start is kept, as Stata
would). The search stops early once the best maximum so far has been reached by
:data:`SEARCH_CONFIRM` starts (the default start counted): on a problem with one maximum
that is after 4 random starts. ``startvalues="factor"`` is Stata's single start without
the search.

A search maximum replaces the default start's when it is higher by more than
:data:`SEARCH_MARGIN` (0.5); closer maxima are reported and the default start's (Stata's)
is kept. What the starts reached is reported as the distinct maxima (log likelihoods
grouped to :func:`same_maximum`'s tolerance) with the number of starts that reached each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from bayesfmm.errors import SpecificationError
from bayesfmm.iterlog import IterationLog
from bayesfmm.likelihood import MixtureProblem
from bayesfmm.ml.em import EMOptions, em
from bayesfmm.ml.newton import NewtonOptions, NewtonResult, newton
from bayesfmm.ml.start import StartSpec, start_points
from bayesfmm.progress import show_progress, track

__all__ = ["SEARCH_STARTS", "SEARCH_BUDGET", "SEARCH_SEED", "SEARCH_CONFIRM", "SEARCH_MARGIN", "SearchOutcome", "search_size", "search_maxima", "same_maximum"]

SEARCH_STARTS = 20  # at most this many extra starts
SEARCH_MIN = 5  # fewer than this is not worth running: no search
SEARCH_BUDGET = 200_000  # likelihood units x parameters x starts
SEARCH_CONFIRM = 5  # stop once the best maximum has been reached by this many starts
SEARCH_SEED = 0  # the search's seed when fit() is given none: the default fit is reproducible
# A search maximum replaces the default start's only when higher by more than this: the data
# hardly prefer one of two maxima closer than a likelihood ratio of exp(0.5) = 1.65, and the
# default start's is Stata's (stamp's lognormal k=3: Stata's maximum 1511.311, another at
# 1511.389). Both are reported in res.starts.optima and the iteration log.
SEARCH_MARGIN = 0.5


def search_size(problem: MixtureProblem, search: Any) -> int:
    """Extra starts of the default fit: ``search="auto"`` by problem size, or a count.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.design import build_design
    >>> from bayesfmm.likelihood import MixtureProblem
    >>> from bayesfmm.params import build_layout
    >>> d = build_design(bf.FMM("thickness ~ 1", k=3), bf.datasets.load("stamp"))
    >>> search_size(MixtureProblem.build(d, build_layout(d)), "auto")
    20
    """
    if search == "auto":
        if problem.k < 2:
            return 0
        cost = max(1, problem.design.n_units * problem.layout.size)
        count = int(min(SEARCH_STARTS, SEARCH_BUDGET // cost))
        return count if count >= SEARCH_MIN else 0
    if isinstance(search, (bool, np.bool_)) or not isinstance(search, (int, np.integer)) or search < 0:
        raise SpecificationError(
            f"search must be 'auto' or a number of extra random starts >= 0 (0: none), got {search!r}"
        )
    return int(search) if problem.k > 1 else 0


def same_maximum(a: float, b: float) -> bool:
    """Whether two Newton end points' log likelihoods are one maximum (relative 1e-7,
    absolute 1e-6: Newton stops within Stata's ``ltolerance`` of it)."""
    return abs(a - b) <= max(1e-6, 1e-7 * max(abs(a), abs(b)))


def distinct_maxima(values: list[float]) -> tuple[tuple[float, int], ...]:
    """``(llf, starts)`` of each distinct maximum among ``values``, best first."""
    groups: list[list[float]] = []
    for value in sorted(values, reverse=True):
        if groups and same_maximum(groups[-1][0], value):
            groups[-1].append(value)
        else:
            groups.append([value])
    return tuple((g[0], len(g)) for g in groups)


@dataclass(frozen=True)
class SearchOutcome:
    """What the search found: the best result, which start gave it, the distinct maxima."""

    result: NewtonResult | None  # the best proper maximum (None: none found)
    winner: int | None  # 0-based search start whose maximum is kept; None: the first fit's
    optima: tuple[tuple[float, int], ...]  # (llf, starts reaching it), best first
    draws: int  # starts run (fewer than planned when the search stopped early)
    seed: int
    collapsed: int
    failed: int
    planned: int = 0


def search_maxima(
    problem: MixtureProblem,
    first: NewtonResult | None,
    draws: int,
    seed: int | None,
    pooled: np.ndarray,
    reference: np.ndarray,
    em_options: EMOptions,
    newton_options: NewtonOptions,
    check: Callable,
    collapse_tol: float,
    progress: bool | None = None,
) -> SearchOutcome:
    """EM then Newton from ``draws`` ``randomid`` starts; keep the best proper maximum.

    ``first`` is the maximum of the default start (None when it failed). A search start
    replaces it only when its maximum is higher by more than :data:`SEARCH_MARGIN`, so
    where the default start reaches the best maximum (or one within 0.5 of it), the fit is
    Stata's.
    """
    seed = SEARCH_SEED if seed is None else int(seed)
    rng = np.random.default_rng([seed, 17])  # a stream of its own, not the start draws'
    layout = problem.layout
    best, winner = first, None
    found = [] if first is None else [float(first.llf)]
    collapsed = failed = 0
    show = show_progress(progress, default=False)
    points = start_points(problem, StartSpec("randomid"), draws, rng, pooled)
    for i, theta0 in enumerate(track(points, show, f"searching {draws} random starts", draws)):
        run = em(problem, layout.project(theta0), em_options, reference, None, collapse_tol)
        if run.collapsed is not None:
            collapsed += 1
            continue
        attempt = newton(problem, run.theta, newton_options, None, check, start=run.evaluation)
        if attempt.collapsed is not None or not attempt.converged or not np.isfinite(attempt.llf):
            failed += 1
            continue
        found.append(float(attempt.llf))
        # a later start replaces the kept one only at a higher maximum, not at the same one
        # reached again (its llf may differ in the last digits): the earliest start reaching
        # the best maximum is kept, whatever the rounding of the machine
        if best is None or (attempt.llf > best.llf + SEARCH_MARGIN if winner is None
                            else attempt.llf > best.llf and not same_maximum(attempt.llf, best.llf)):
            best, winner = attempt, i
        top = max(found)
        if sum(same_maximum(top, value) for value in found) >= SEARCH_CONFIRM:
            return SearchOutcome(best, winner, distinct_maxima(found), i + 1, seed, collapsed, failed, draws)
    return SearchOutcome(best, winner, distinct_maxima(found), draws, seed, collapsed, failed, draws)


def log_search(iterlog: IterationLog, outcome: SearchOutcome, first_llf: float | None) -> None:
    """The search's lines in the iteration log, after Stata's."""
    iterlog.write("")
    iterlog.write(f"Searching for a better maximum ({outcome.planned} randomid starts, seed {outcome.seed}; "
                  "startvalues='factor' skips this):")
    lost = [f"stopped after {outcome.draws}: the best maximum was reached by {SEARCH_CONFIRM} starts"] if (
        outcome.draws < outcome.planned) else []
    lost += [f"{outcome.collapsed} collapsed"] if outcome.collapsed else []
    lost += [f"{outcome.failed} did not converge"] if outcome.failed else []
    iterlog.write(f"  EM then Newton from each start{'; ' + ', '.join(lost) if lost else ''}")
    iterlog.write("  " + describe_optima(outcome.optima))
    if outcome.result is None:
        iterlog.write("  no start reached a proper maximum")
    elif outcome.winner is None:
        best = outcome.optima[0][0] if outcome.optima else outcome.result.llf
        within = "" if same_maximum(best, outcome.result.llf) else f", within {SEARCH_MARGIN:g} of the best found"
        iterlog.write(f"  kept: the default start's maximum{within or ' (the best found)'}")
    else:
        gain = "" if first_llf is None else f", {outcome.result.llf - first_llf:.4f} above the default start's"
        iterlog.write(f"  kept: the maximum of search start {outcome.winner + 1} (log likelihood "
                      f"{outcome.result.llf:.4f}{gain})")


def describe_optima(optima: tuple[tuple[float, int], ...]) -> str:
    """``"3 distinct maxima: 1518.848 (14 starts), 1487.774 (5), ...; spread 34.1"``."""
    if not optima:
        return "no maximum reached"
    shown = ", ".join(f"{llf:.4f} ({count} start{'s' if count > 1 else ''})" for llf, count in optima[:6])
    more = f" and {len(optima) - 6} more" if len(optima) > 6 else ""
    spread = f"; best - worst = {optima[0][0] - optima[-1][0]:.4g}" if len(optima) > 1 else ""
    return f"{len(optima)} distinct maxim{'a' if len(optima) > 1 else 'um'}: {shown}{more}{spread}"
