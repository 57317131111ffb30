"""EM for any mixture: a generic E-step and an M-step that asks each family for a weighted fit.

The M-step maximises the expected complete-data log likelihood block by block: the class
model (a multinomial logit on the responsibilities; closed form without covariates) and
each component (the family's closed-form weighted fit, or weighted Newton steps built from
its eta-derivatives). No family appears by name here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesfmm.design import ComponentDesign
from bayesfmm.families.base import BatchedFit
from bayesfmm.iterlog import IterationLog, mreldif, reldif
from bayesfmm.likelihood import Evaluation, MixtureProblem, complete_data_score_hessian
from bayesfmm.ml.chunks import component_newton_fit, e_step
from bayesfmm.ml.linesearch import step_halving
from bayesfmm.ml.newton import reflected_newton_step
from bayesfmm.ops import log_softmax

__all__ = ["EMOptions", "EMResult", "m_step", "em", "degeneracy", "weighted_component_fit"]

TINY_WEIGHT = 1e-300
# Newton steps per component without a closed form in an EM iteration's M-step: one step
# (with step halving, so Q never falls) is a generalised EM step. EM only brings the fit
# near the maximum, which Newton then finds; maximising Q to 1e-10 in every iteration took
# 3-4 passes per step and most of a Poisson or binomial fit (issue 14).
EM_COMPONENT_STEPS = 1


@dataclass(frozen=True)
class EMOptions:
    """Stata's ``emopts()``: iterations, parameter tolerance, log-likelihood tolerance."""

    iterate: int = 20
    tolerance: float = 1e-4
    ltolerance: float = 1e-6


@dataclass(frozen=True)
class EMResult:
    theta: np.ndarray
    llf: float
    iterations: int
    collapsed: str | None
    evaluation: Evaluation | None


def _slot_offsets(comp: ComponentDesign) -> list[np.ndarray]:
    zeros = np.zeros_like(comp.offset)  # one array for every auxiliary slot (mvnormal has dozens)
    return [comp.offset if slot.linear else zeros for slot in comp.family.slots]


def weighted_component_fit(
    comp: ComponentDesign, weights: np.ndarray, current: list[np.ndarray], steps: int = 5,
    value: float | None = None, density: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Weighted ML fit of one component: closed form if the family has one, else Newton
    (``value``: the weighted log likelihood at ``current``, when known; ``density``: each
    row's log density at ``current``, brought to the fit in place, see
    :func:`~bayesfmm.ml.chunks.component_newton_fit`)."""
    family = comp.family
    if family.weighted_fit is not None:
        return family.weighted_fit(comp.y, comp.slot_designs, _slot_offsets(comp), weights, comp.extra)
    return component_newton_fit(comp, weights, current, steps, value, density)  # in row chunks (ml/chunks.py)


def _newton_fitted_alone(comps: tuple[ComponentDesign, ...]) -> bool:
    """Whether a class is one component fitted by Newton steps: its column of the E-step's
    log densities is that component's, the starting ``Q`` of its fit."""
    return len(comps) == 1 and comps[0].family.weighted_fit is None


def _reads_log_density(problem: MixtureProblem) -> bool:
    """Whether an M-step can start a component's Newton fit from the E-step's log
    densities: an ungrouped problem with a class of one Newton-fitted component."""
    return not problem.grouped and any(_newton_fitted_alone(comps) for comps in problem.design.classes)


def _updates_log_density(problem: MixtureProblem) -> bool:
    """Whether the M-step brings every column of the E-step's log densities to its new
    ``theta`` (the next E-step then reads them): an ungrouped problem without constraints
    whose every class is one Newton-fitted component (each fit's accepted trial has them)."""
    return (
        not problem.grouped
        and problem.layout.constraints is None
        and all(_newton_fitted_alone(comps) for comps in problem.design.classes)
    )


def _batched_components(problem: MixtureProblem, totals: np.ndarray) -> list[tuple[ComponentDesign, list[tuple[int, int]]]]:
    """Components with a batched closed-form fit (:class:`~bayesfmm.families.base.BatchedFit`) that several
    non-empty classes share, each with its ``(class, component)`` places."""
    shared: dict[int, tuple[ComponentDesign, list[tuple[int, int]]]] = {}
    for j, comps in enumerate(problem.design.classes):
        if totals[j] <= 0.5:
            continue
        for c, comp in enumerate(comps):
            if isinstance(comp.family.weighted_fit, BatchedFit):
                shared.setdefault(id(comp), (comp, []))[1].append((j, c))
    return [(comp, places) for comp, places in shared.values() if len(places) > 1]


def _class_m_step(problem: MixtureProblem, resp: np.ndarray, theta: np.ndarray, totals: np.ndarray | None = None) -> None:
    """Update the class-model blocks of ``theta`` in place.

    ``resp`` are the class-model weights per row: responsibilities times the row weight
    (divided by the group size with ``group=``), so rows need not sum to 1; ``totals``
    their column sums when already known."""
    etas = [e for e in problem.etas if e.kind == "class"]
    if not etas:
        return
    base = problem.design.base
    if all(e.intercept_only for e in etas):
        totals = np.maximum(resp.sum(axis=0) if totals is None else totals, TINY_WEIGHT)
        for e in etas:
            theta[e.cols] = np.log(totals[e.class_]) - np.log(totals[base])
        return
    k = problem.k
    n = problem.n
    total = resp.sum(axis=1)

    def q_value(th):
        logits = np.zeros((n, k))
        for e in etas:
            logits[:, e.class_] = e.X @ th[e.cols]
        log_pi = log_softmax(logits, axis=1)
        return float(np.sum(resp * log_pi)), np.exp(log_pi)

    value, pi = q_value(theta)
    cols = np.concatenate([np.arange(e.cols.start, e.cols.stop) for e in etas])
    for _ in range(10):
        g_parts, H = [], np.zeros((cols.size, cols.size))
        offsets = np.cumsum([0] + [e.cols.stop - e.cols.start for e in etas])
        for a, ea in enumerate(etas):
            g_parts.append(ea.X.T @ (resp[:, ea.class_] - pi[:, ea.class_] * total))
            for b, eb in enumerate(etas):
                w = pi[:, ea.class_] * pi[:, eb.class_]
                if a == b:
                    w = w - pi[:, ea.class_]
                w = w * total
                H[offsets[a] : offsets[a + 1], offsets[b] : offsets[b + 1]] = ea.X.T @ (w[:, None] * eb.X)
        g = np.concatenate(g_parts)
        step = reflected_newton_step(g, H)

        def q_of(sub):
            trial = theta.copy()
            trial[cols] = sub
            return q_value(trial)

        # the last trial is kept even when none is accepted (a step this small changes nothing)
        found = step_halving(q_of, theta[cols], step, value, max_halvings=30, offset=0.0)
        gain = found.value - value
        theta[cols] = found.x
        value, pi = found.value, found.payload
        if gain < 1e-10 * (abs(value) + 1):
            break


def m_step(
    problem: MixtureProblem, resp: np.ndarray, theta: np.ndarray, component_steps: int = 5,
    log_density: np.ndarray | None = None, update_density: bool = False,
) -> np.ndarray:
    """One M-step: class model and every component, each on its own block.

    A component without a closed-form fit takes up to ``component_steps`` weighted Newton
    steps from its current coefficients (:func:`weighted_component_fit`): the default
    maximises ``Q`` (start values); EM's iterations take :data:`EM_COMPONENT_STEPS`.
    ``log_density`` (n x k, the E-step's at ``theta``, ungrouped problems) gives such a
    fit of a one-component class its starting ``Q`` without another pass over the data;
    with ``update_density`` those fits also bring their columns of it to the returned
    ``theta`` in place (where :func:`_updates_log_density` holds, every column: EM's next
    E-step reads them instead of evaluating the families).

    ``resp`` holds the responsibilities per row; row weights (``weights=``) and groups
    (``group=``: the class model counts a group once) are applied here. Under constraints
    (``lcinvariant``, ``equal``, ``constraints``, ...) the blockwise maximiser is moved onto
    the constraints and refined by Newton steps on ``Q`` in the free parameters, which
    never lower ``Q`` below its value at the incoming ``theta`` (a generalised EM step).
    """
    theta_in = np.array(theta, dtype=float, copy=True)
    theta = theta_in.copy()
    row_w = problem.row_weights
    layout = problem.layout
    W = resp if row_w is None else resp * row_w[:, None]
    totals = W.sum(axis=0)
    if problem.grouped:  # the class model counts a group once
        _class_m_step(problem, resp * problem.class_row_factor()[:, None], theta)
    else:  # the class-row factor is the row weight: the class model's weights are W
        _class_m_step(problem, W, theta, totals)
    groups = _batched_components(problem, totals)
    for comp, places in groups:
        # classes sharing one component's data: every class's closed form in one pass
        with np.errstate(divide="ignore", invalid="ignore"):
            fits = comp.family.fit_weighted_columns(
                comp.y, comp.slot_designs, _slot_offsets(comp), W[:, [j for j, _ in places]], comp.extra
            )
        for (j, c), fitted in zip(places, fits):
            for s, value in enumerate(fitted):
                theta[layout.slot_block(j + 1, c, s).slice] = value
    batched = {place for _, places in groups for place in places}
    for j, comps in enumerate(problem.design.classes):
        if totals[j] <= 0.5:
            continue  # an empty class: degeneracy() reports it
        for c, comp in enumerate(comps):
            if (j, c) in batched:
                continue
            blocks = [layout.slot_block(j + 1, c, s) for s in range(len(comp.slot_designs))]
            current = [theta[b.slice] for b in blocks]
            with np.errstate(divide="ignore", invalid="ignore"):
                known = log_density is not None and _newton_fitted_alone(comps)
                q_start = float(W[:, j] @ log_density[:, j]) if known else None
                density = log_density[:, j] if known and update_density else None
                fitted = weighted_component_fit(comp, W[:, j], current, component_steps, q_start, density)
            for b, value in zip(blocks, fitted):
                theta[b.slice] = value
    if layout.constraints is not None:
        theta = constrained_m_step(problem, resp, theta_in, layout.project(theta))
    return theta


def constrained_m_step(
    problem: MixtureProblem, resp: np.ndarray, current: np.ndarray, proposal: np.ndarray, steps: int = 10
) -> np.ndarray:
    """Maximise ``Q`` over the free parameters: from the better of ``current`` (projected)
    and ``proposal``, Newton steps in ``phi`` with step halving."""
    T = problem.layout.transform
    best_value, best = -np.inf, None
    for candidate in (problem.layout.project(current), proposal):
        with np.errstate(all="ignore"):
            value = complete_data_score_hessian(problem, candidate, resp)[0]
        if np.isfinite(value) and value > best_value:
            best_value, best = value, candidate
    if best is None:
        return proposal
    theta, value = best, best_value
    for _ in range(steps):
        with np.errstate(all="ignore"):
            _, g, H = complete_data_score_hessian(problem, theta, resp)
        if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
            break
        step = T @ reflected_newton_step(T.T @ g, T.T @ H @ T)

        def q_at(trial):
            with np.errstate(all="ignore"):
                return complete_data_score_hessian(problem, trial, resp)[0]

        found = step_halving(q_at, theta, step, value, max_halvings=30, offset=0.0)
        if not found.accepted:
            break
        gain = found.value - value
        theta, value = found.x, found.value
        if gain < 1e-10 * (abs(value) + 1):
            break
    return theta


def _assigned_fit_is_perfect(problem: MixtureProblem, block, resp: np.ndarray) -> bool:
    """Whether the rows assigned to the block's class hold no more distinct (y, X) points
    than the component has mean parameters: its variance is then driven to 0."""
    comp = problem.design.classes[block.class_ - 1][block.component]
    rows = resp[:, block.class_ - 1] > 0.5
    linear = [X for X, slot in zip(comp.slot_designs, comp.family.slots) if slot.linear]
    n_mean = sum(X.shape[1] for X in linear)
    points = np.column_stack([comp.y[rows], *[X[rows] for X in linear]])
    return 0 < np.unique(points, axis=0).shape[0] <= n_mean  # no row at all: emptying, not collapsing


def _few_rows(problem: MixtureProblem, block, resp: np.ndarray) -> bool:
    """Whether the block's class holds so few rows (posterior weight) that a tiny variance
    there is a collapse onto them rather than a narrow class."""
    comp = problem.design.classes[block.class_ - 1][block.component]
    n_mean = sum(X.shape[1] for X, slot in zip(comp.slot_designs, comp.family.slots) if slot.linear)
    weights = resp[:, block.class_ - 1]
    return bool(np.any(weights > 0.5)) and float(weights.sum()) <= max(5.0, 2.0 * n_mean)


def degeneracy(
    problem: MixtureProblem,
    theta: np.ndarray,
    resp: np.ndarray | None,
    reference: np.ndarray,
    collapse_tol: float = 1e-8,
    small_tol: float = 1e-4,
) -> str | None:
    """Why this point is degenerate (an empty class, a collapsed variance), or None.

    ``reference`` holds the reported value of each parameter in a 1-class fit. An auxiliary
    parameter whose slot ``collapses`` (an error variance or a scale going down, beta's
    precision going up) collapses when it moves past ``collapse_tol`` times (or 1 /
    ``collapse_tol`` times) its 1-class value while its class holds only a few rows (posterior
    weight at most ``max(5, 2 p)``, ``p`` the component's mean parameters, and some row
    assigned to it: a class losing every row is emptying, not collapsing), or past
    ``small_tol`` while the rows assigned to its class (posterior > 0.5) hold no more
    distinct points than the component has mean parameters (a perfect fit on a few tied
    values, where the likelihood is unbounded). The class size matters: one extreme
    outlier inflates the 1-class variance a millionfold, and a class of 199 ordinary rows
    is then far below it without being degenerate.
    """
    if not np.all(np.isfinite(theta)):
        bad = [
            "[{}]{}:{}".format(*map(str, problem.layout.index[int(i)]))
            for i in np.flatnonzero(~np.isfinite(theta))[:3]
        ]
        return f"parameters {', '.join(bad)} are not finite (a variance collapsed to 0)"
    if resp is not None:
        totals = resp.sum(axis=0)
        for j in np.flatnonzero(totals < 0.5):
            return f"class {j + 1} is empty (posterior weight {totals[j]:.3g} observations)"
    layout = problem.layout
    report = layout.to_report(theta)
    for b in layout.blocks:
        if b.linear or b.collapses is None:
            continue
        ratio = report[b.slice] / reference[b.slice]
        # how far the parameter has gone in its collapsing direction (small = far)
        toward = float(np.min(ratio)) if b.collapses == "down" else float(np.min(1.0 / ratio))
        collapsed = toward < collapse_tol and (resp is None or _few_rows(problem, b, resp))
        if not collapsed and toward < small_tol and resp is not None:
            collapsed = _assigned_fit_is_perfect(problem, b, resp)
        if collapsed:
            where = f" on {int(np.sum(resp[:, b.class_ - 1] > 0.5))} rows" if resp is not None else ""
            direction = "collapsed to" if b.collapses == "down" else "diverged to"
            return (
                f"class {b.class_}: {b.terms[0]} of {b.equation} {direction} "
                f"{report[b.slice][0]:.3g} ({float(np.min(ratio)):.2g} times the 1-class value){where}; "
                "the likelihood is unbounded there"
            )
    return None


def em(
    problem: MixtureProblem,
    theta: np.ndarray,
    options: EMOptions,
    reference: np.ndarray,
    log: IterationLog | None = None,
    collapse_tol: float = 1e-8,
) -> EMResult:
    """Run EM from ``theta`` for at most ``options.iterate`` iterations."""
    reason = degeneracy(problem, theta, None, reference, collapse_tol) if not np.all(np.isfinite(theta)) else None
    if reason:
        return EMResult(theta, -np.inf, 0, reason, None)
    keep = _reads_log_density(problem)  # the densities start the M-step's Newton fits
    carry = _updates_log_density(problem)  # ... which bring them to the new theta
    with np.errstate(all="ignore"):
        ev = e_step(problem, theta, keep)  # row chunks: responsibilities and llf (and densities)
    reason = degeneracy(problem, theta, ev.resp, reference, collapse_tol)
    if reason:
        return EMResult(theta, -np.inf, 0, reason, None)
    it = -1
    for it in range(options.iterate):
        if log is not None:
            log.iteration(it, ev.llf, "EM")
        logf = ev.log_density if keep else None  # with carry: updated in place to new_theta
        new_theta = m_step(problem, ev.resp, theta, EM_COMPONENT_STEPS, logf, update_density=carry)
        reason = degeneracy(problem, new_theta, ev.resp, reference, collapse_tol)
        if reason:
            return EMResult(new_theta, -np.inf, it + 1, reason, None)
        new_ev = e_step(problem, new_theta, keep, known=logf if carry else None)
        done = mreldif(new_theta, theta) < options.tolerance or reldif(new_ev.llf, ev.llf) < options.ltolerance
        theta, ev = new_theta, new_ev
        if done:
            break
    reason = degeneracy(problem, theta, ev.resp, reference, collapse_tol)
    return EMResult(theta, ev.llf if reason is None else -np.inf, it + 1, reason, ev)
