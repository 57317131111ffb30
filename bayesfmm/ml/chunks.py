"""The EM engine's passes over the data in row chunks sized to the cache.

EM's E-step is :func:`e_step`: the mixture layer (:func:`bayesfmm.mixture.mixture_terms`)
evaluated block by block of rows (:func:`bayesfmm.mixture.row_chunks`), keeping only the
responsibilities and the per-unit log likelihood. The M-step of a component without a
closed form is :func:`component_newton_fit`: weighted Newton steps whose objective, score
and Hessian (``X_a' diag(w h_ab) X_b``) are each accumulated in one pass over row chunks
of the component, with step halving. Both compute exactly what the whole-array code
computes (up to the order of floating-point sums); nothing here names a family.
"""

from __future__ import annotations

import weakref
from typing import Any, Sequence

import numpy as np

from bayesfmm.design import ComponentDesign
from bayesfmm.likelihood import Evaluation, MixtureProblem, evaluate
from bayesfmm.mixture import ROW_CHUNK, _component_rows, class_log_softmax, mixture_terms, row_chunks
from bayesfmm.ml.linesearch import step_halving
from bayesfmm.ml.newton import reflected_newton_step
from bayesfmm.ops import NUMPY_OPS

__all__ = ["e_step", "component_newton_fit", "component_chunks"]

_COMPONENT_CHUNKS: "weakref.WeakKeyDictionary[ComponentDesign, tuple]" = weakref.WeakKeyDictionary()


def e_step(
    problem: MixtureProblem, theta: np.ndarray, log_density: bool = False, known: np.ndarray | None = None
) -> Evaluation:
    """The log likelihood and the responsibilities at ``theta`` (an :class:`Evaluation`
    without the etas, which EM does not read, and with the n x k log densities only when
    ``log_density``), in row chunks. A grouped problem is evaluated whole
    (:func:`bayesfmm.likelihood.evaluate`).

    ``known`` (n x k, ungrouped problems) holds every class's log densities at ``theta``
    (EM's M-step brought them there): only the class model and the logsumexp over the
    classes are computed, and ``known`` is the evaluation's ``log_density``.

    Examples
    --------
    >>> import numpy as np, bayesfmm as bf
    >>> from bayesfmm.likelihood import evaluate
    >>> res = bf.FMM("thickness ~ 1", k=2).fit(bf.datasets.load("stamp"))
    >>> bool(np.isclose(e_step(res.problem, res.theta).llf, evaluate(res.problem, res.theta).llf))
    True
    """
    if problem.grouped:
        return evaluate(problem, theta)
    theta = np.asarray(theta, dtype=float)
    n, k = problem.n, problem.k
    resp = np.empty((n, k), order="F")
    ll = np.empty(n)
    logf = known if known is not None else np.empty((n, k), order="F") if log_density else None
    log_pi: Any = None
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for rows, part in row_chunks(problem):
            if known is not None:  # mixture_terms' sum, with the densities it would compute
                log_pi = class_log_softmax(part, theta, NUMPY_OPS)
                ll[rows], resp[rows] = NUMPY_OPS.class_logsumexp(known[rows] + log_pi)
                continue
            terms = mixture_terms(part, theta, NUMPY_OPS)
            resp[rows] = terms.posterior
            ll[rows] = terms.ll_units
            if logf is not None:
                logf[rows] = terms.log_density
            log_pi = terms.log_class_probs
        w = problem.design.weights
        llf = float(ll.sum() if w is None else w @ ll)
    if not np.isfinite(llf):
        llf = -np.inf
    log_pi = np.broadcast_to(log_pi, (n, k)) if log_pi is not None and log_pi.ndim == 1 else None
    return Evaluation(llf, ll, log_pi, logf, resp, None)


def component_chunks(comp: ComponentDesign, size: int = ROW_CHUNK) -> tuple[tuple[slice, ComponentDesign], ...]:
    """``(rows, part)`` blocks of a component's rows (views), built once per component."""
    n = comp.y.shape[0]
    if n <= size:
        return ((slice(0, n), comp),)
    cached = _COMPONENT_CHUNKS.get(comp)
    if cached is None or cached[0] != size:
        parts = tuple(
            (slice(s, min(s + size, n)), _component_rows(comp, slice(s, min(s + size, n)), n))
            for s in range(0, n, size)
        )
        cached = (size, parts)
        _COMPONENT_CHUNKS[comp] = cached
    return cached[1]


def _offsets(comp: ComponentDesign) -> list[np.ndarray | None]:
    """Each slot's offset; None where it adds nothing (an auxiliary slot, or a component
    without ``offset=``/``exposure=``, whose offset is zeros): no pass adding zeros."""
    spec = comp.component
    if spec.offset is None and spec.exposure is None:
        return [None] * len(comp.family.slots)
    return [comp.offset if slot.linear else None for slot in comp.family.slots]


def _etas(comp: ComponentDesign, coefs: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [X @ b if o is None else X @ b + o for X, b, o in zip(comp.slot_designs, coefs, _offsets(comp))]


def _objective(chunks, weights: np.ndarray, coefs: Sequence[np.ndarray], out: np.ndarray | None = None) -> float:
    """``sum_i w_i log f(y_i)`` at ``coefs``, chunk by chunk (``out``: receives each row's
    ``log f(y_i)``)."""
    total = 0.0
    for rows, part in chunks:
        logf = part.family.logpdf(part.y, _etas(part, coefs), NUMPY_OPS, part.extra)
        total += float(weights[rows] @ logf)
        if out is not None:
            out[rows] = logf
    return total


def _score_hessian(chunks, weights: np.ndarray, coefs: Sequence[np.ndarray], edges: np.ndarray):
    """Weighted score ``X_a' (w d_a)`` and Hessian ``X_a' diag(w h_ab) X_b`` of one
    component, accumulated over its row chunks."""
    p = int(edges[-1])
    g = np.zeros(p)
    H = np.zeros((p, p))
    for rows, part in chunks:
        w = weights[rows]
        etas = _etas(part, coefs)
        d, h = part.family.derivatives(part.y, etas, part.extra)
        designs = part.slot_designs
        for a, Xa in enumerate(designs):
            g[edges[a] : edges[a + 1]] += Xa.T @ (w * d[a])
        H += part.family.curvature(part.y, etas, designs, w, part.extra, h)
    return g, H


def component_newton_fit(
    comp: ComponentDesign, weights: np.ndarray, current: Sequence[np.ndarray], steps: int = 5,
    value: float | None = None, density: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Weighted ML fit of a component without a closed form: up to ``steps`` Newton steps
    (eigenvalue-reflected where the Hessian is not negative definite) with step halving,
    stopping when a step gains less than ``1e-10 (|Q| + 1)``, or, without evaluating ``Q``
    again, after a step whose quadratic model ``g's / 2`` gains less than ``1e-12 (|Q| + 1)``.
    ``value`` is ``Q = sum_i w_i log f(y_i)`` at ``current`` when the caller has it (EM's
    E-step computed the densities there); otherwise it is computed. ``density`` (rows), when
    given, holds ``log f(y_i)`` at ``current`` and is brought in place to the returned
    coefficients: from the accepted trial's pass over the data, so that EM's next E-step
    need not evaluate the family again.

    Examples
    --------
    >>> import numpy as np, bayesfmm as bf
    >>> from bayesfmm.design import build_design
    >>> d = build_design(bf.FMM("Patents ~ lgRD", family="poisson", k=1), bf.datasets.load("patent"))
    >>> comp, w = d.classes[0][0], np.ones(d.n)
    >>> coefs = component_newton_fit(comp, w, [np.zeros(2)], steps=25)
    >>> X, mu = comp.slot_designs[0], np.exp(comp.slot_designs[0] @ coefs[0])
    >>> bool(np.max(np.abs(X.T @ (comp.y - mu))) < 1e-6)  # the score vanishes at the fit
    True
    """
    chunks = component_chunks(comp)
    coefs = [np.array(c, dtype=float) for c in current]
    sizes = [c.size for c in coefs]
    edges = np.cumsum([0] + sizes)

    def split(flat):
        return [flat[edges[a] : edges[a + 1]] for a in range(len(sizes))]

    def objective(flat):
        if density is None:
            return _objective(chunks, weights, split(flat)), None
        logf = np.empty_like(density)  # a trial's densities: kept only if it is accepted
        return _objective(chunks, weights, split(flat), logf), logf

    if value is None:
        value = _objective(chunks, weights, coefs)
    for _ in range(steps):
        g, H = _score_hessian(chunks, weights, coefs, edges)
        step = reflected_newton_step(g, H)
        if 0.0 <= 0.5 * float(g @ step) < 1e-12 * (abs(value) + 1):
            # the quadratic model gains less than the stopping rule's 1e-10 (|Q| + 1) by a
            # factor of 100: take the step without another pass over the data for Q there
            # (with ``density``, the pass that brings it to the step is that pass)
            coefs = split(np.concatenate(coefs) + step)
            if density is not None:
                _objective(chunks, weights, coefs, density)
            break
        found = step_halving(objective, np.concatenate(coefs), step, value, max_halvings=30, offset=0.0)
        if not found.accepted:
            break
        improved = found.value - value
        coefs, value = split(found.x), found.value
        if density is not None:
            density[:] = found.payload
        if improved < 1e-10 * (abs(value) + 1):
            break
    return coefs
