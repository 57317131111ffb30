"""The mixture likelihood core, written once for every family.

For row ``i`` the log likelihood is ``logsumexp_j(log pi_ij + sum_c log f_cj(y_ci))`` where
``log pi`` is the log-softmax of the class logits (base class 0). Everything depends on the
parameters only through linear predictors ("etas"): the class logits ``Z gamma_l`` and each
component slot's ``X beta``. So the score and the observed information are assembled from
per-row derivatives in eta space and the design matrices, as ``X_a' diag(w) X_b``:

* gradient, class eta ``l``: ``r_l - pi_l``; component eta ``(m, s)``: ``r_m d_ms``
* Hessian, ``(l, l')``: ``(r_l - pi_l) [l = l'] - r_l r_l' + pi_l pi_l'``
* ``(l, (m, s))``: ``r_m d_ms ([l = m] - r_l)``
* ``((m, s), (m', s'))``: ``[m = m'] r_m (h_ss' + d_ms d_ms') - r_m d_ms r_m' d_m's'``

with ``r`` the posterior class probabilities (responsibilities) and ``d``, ``h`` the
family's first and second eta-derivatives. No family appears by name here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax, logsumexp

from bayesfmm.design import Design
from bayesfmm.params import ParamLayout

__all__ = ["Eta", "MixtureProblem", "Evaluation", "evaluate", "score_hessian", "row_scores"]


@dataclass(frozen=True, eq=False)
class Eta:
    """One linear predictor: its design, its parameter slice, and where it belongs."""

    kind: str  # "class" or "slot"
    class_: int  # 0-based
    component: int
    slot: int
    X: np.ndarray
    cols: slice
    intercept_only: bool
    offset: np.ndarray | None


@dataclass(frozen=True, eq=False)
class MixtureProblem:
    """A design and its layout, with every eta indexed once."""

    design: Design
    layout: ParamLayout
    etas: tuple[Eta, ...]

    @classmethod
    def build(cls, design: Design, layout: ParamLayout) -> "MixtureProblem":
        etas: list[Eta] = []
        for block in layout.class_blocks:
            Z = design.class_designs[block.class_ - 1].Z
            etas.append(Eta("class", block.class_ - 1, -1, -1, Z, block.slice, _is_ones(Z), None))
        for j, comps in enumerate(design.classes):
            for c, comp in enumerate(comps):
                for s, X in enumerate(comp.slot_designs):
                    block = layout.slot_block(j + 1, c, s)
                    linear = comp.family.slots[s].linear
                    offset = comp.offset if linear and np.any(comp.offset) else None
                    etas.append(Eta("slot", j, c, s, X, block.slice, _is_ones(X), offset))
        return cls(design=design, layout=layout, etas=tuple(etas))

    @property
    def n(self) -> int:
        return self.design.n

    @property
    def k(self) -> int:
        return self.design.k


def _is_ones(X: np.ndarray) -> bool:
    return X.shape[1] == 1 and bool(np.all(X[:, 0] == 1.0))


def linear_predictor(eta: Eta, theta: np.ndarray) -> np.ndarray | float:
    """``X beta (+ offset)``; a scalar for intercept-only designs without offset."""
    coef = theta[eta.cols]
    if eta.intercept_only:
        value: np.ndarray | float = float(coef[0])
    else:
        value = eta.X @ coef
    if eta.offset is not None:
        value = value + eta.offset
    return value


def class_log_probs(problem: MixtureProblem, theta: np.ndarray) -> np.ndarray:
    """``log pi`` (n x k) by log-softmax of the class logits, base class at 0."""
    n, k = problem.n, problem.k
    cls_etas = [e for e in problem.etas if e.kind == "class"]
    if all(e.intercept_only for e in cls_etas):
        logits = np.zeros(k)
        for e in cls_etas:
            logits[e.class_] = theta[e.cols][0]
        return np.broadcast_to(log_softmax(logits), (n, k))
    logits = np.zeros((n, k))
    for e in cls_etas:
        logits[:, e.class_] = linear_predictor(e, theta)
    return log_softmax(logits, axis=1)


def component_etas(problem: MixtureProblem, theta: np.ndarray) -> list[list[list]]:
    """Etas per class, component and slot."""
    out: list[list[list]] = [
        [[None] * len(comp.slot_designs) for comp in comps] for comps in problem.design.classes
    ]
    for e in problem.etas:
        if e.kind == "slot":
            out[e.class_][e.component][e.slot] = linear_predictor(e, theta)
    return out


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The mixture at one parameter vector."""

    llf: float
    ll_rows: np.ndarray
    log_classprob: np.ndarray
    log_density: np.ndarray  # n x k, summed over a class's components
    resp: np.ndarray  # posterior class probabilities
    etas: list


def component_log_density(problem: MixtureProblem, etas: list) -> np.ndarray:
    """``sum_c log f_cj(y_ci)`` for each class ``j`` (n x k)."""
    n, k = problem.n, problem.k
    logf = np.zeros((n, k))
    for j, comps in enumerate(problem.design.classes):
        for c, comp in enumerate(comps):
            logf[:, j] += comp.family.logpdf_numpy(comp.y, etas[j][c], comp.extra)
    return logf


def evaluate(problem: MixtureProblem, theta: np.ndarray) -> Evaluation:
    """Log likelihood, class log probabilities, densities and responsibilities at ``theta``."""
    theta = np.asarray(theta, dtype=float)
    # non-finite values (a trial step far out) become llf = -inf, handled by the callers
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        etas = component_etas(problem, theta)
        log_pi = class_log_probs(problem, theta)
        logf = component_log_density(problem, etas)
        joint = log_pi + logf
        ll_rows = logsumexp(joint, axis=1)
        resp = np.exp(joint - ll_rows[:, None])
    llf = float(ll_rows.sum())
    if not np.isfinite(llf):
        llf = -np.inf
    return Evaluation(llf, ll_rows, log_pi, logf, resp, etas)


def loglike(problem: MixtureProblem, theta: np.ndarray) -> float:
    """The log likelihood alone."""
    return evaluate(problem, theta).llf


def _eta_derivatives(problem: MixtureProblem, ev: Evaluation):
    """Family derivatives per (class, component): ``d`` (S x n), ``h`` (S x S x n)."""
    out = {}
    for j, comps in enumerate(problem.design.classes):
        for c, comp in enumerate(comps):
            out[(j, c)] = comp.family.derivatives(comp.y, ev.etas[j][c], comp.extra)
    return out


def _eta_gradient(problem: MixtureProblem, ev: Evaluation, derivs) -> list[np.ndarray]:
    """Per-row derivative of the log likelihood in each eta, in ``problem.etas`` order."""
    pi = np.exp(ev.log_classprob)
    r = ev.resp
    grads = []
    for e in problem.etas:
        if e.kind == "class":
            grads.append(r[:, e.class_] - pi[:, e.class_])
        else:
            grads.append(r[:, e.class_] * derivs[(e.class_, e.component)][0][e.slot])
    return grads


def _cross(a: "Eta", b: "Eta", w: np.ndarray) -> np.ndarray:
    """``X_a' diag(w) X_b`` with shortcuts for intercept-only designs."""
    if a.intercept_only and b.intercept_only:
        return np.array([[w.sum()]])
    if a.intercept_only:
        return (w @ b.X)[None, :]
    if b.intercept_only:
        return (a.X.T @ w)[:, None]
    return a.X.T @ (w[:, None] * b.X)


def _project(e: "Eta", w: np.ndarray) -> np.ndarray:
    return np.array([w.sum()]) if e.intercept_only else e.X.T @ w


def _hessian_weight(problem, ev, derivs, grads, a: int, b: int) -> np.ndarray:
    """Per-row second derivative of the log likelihood in etas ``a`` and ``b``."""
    ea, eb = problem.etas[a], problem.etas[b]
    r = ev.resp
    if ea.kind == "class" and eb.kind == "class":
        pi = np.exp(ev.log_classprob)
        l, m = ea.class_, eb.class_
        w = -r[:, l] * r[:, m] + pi[:, l] * pi[:, m]
        if l == m:
            w = w + r[:, l] - pi[:, l]
        return w
    if ea.kind == "class" or eb.kind == "class":
        cl, comp = (ea, eb) if ea.kind == "class" else (eb, ea)
        w = grads[problem.etas.index(comp)] * (-r[:, cl.class_])
        if cl.class_ == comp.class_:
            w = w + grads[problem.etas.index(comp)]
        return w
    w = -grads[a] * grads[b]
    if ea.class_ == eb.class_:
        m = ea.class_
        rm = r[:, m]
        da = derivs[(m, ea.component)][0][ea.slot]
        db = derivs[(m, eb.component)][0][eb.slot]
        inner = da * db
        if ea.component == eb.component:
            inner = inner + derivs[(m, ea.component)][1][ea.slot, eb.slot]
        w = w + rm * inner
    return w


def score_hessian(problem: MixtureProblem, theta: np.ndarray):
    """Log likelihood, exact score and exact Hessian (observed information is ``-H``).

    Returns
    -------
    (Evaluation, gradient, hessian)
    """
    ev = evaluate(problem, theta)
    derivs = _eta_derivatives(problem, ev)
    grads = _eta_gradient(problem, ev, derivs)
    p = problem.layout.size
    g = np.zeros(p)
    H = np.zeros((p, p))
    for a, ea in enumerate(problem.etas):
        g[ea.cols] += _project(ea, grads[a])
        for b in range(a + 1):
            eb = problem.etas[b]
            block = _cross(ea, eb, _hessian_weight(problem, ev, derivs, grads, a, b))
            H[ea.cols, eb.cols] += block
            if a != b:
                H[eb.cols, ea.cols] += block.T
    return ev, g, H


def row_scores(problem: MixtureProblem, theta: np.ndarray) -> np.ndarray:
    """Per-row scores (n x p): the outer-product-of-gradients building block."""
    ev = evaluate(problem, theta)
    derivs = _eta_derivatives(problem, ev)
    grads = _eta_gradient(problem, ev, derivs)
    S = np.zeros((problem.n, problem.layout.size))
    for a, e in enumerate(problem.etas):
        S[:, e.cols] += grads[a][:, None] * e.X
    return S
