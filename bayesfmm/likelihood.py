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
family's first and second eta-derivatives. The code assembles the same Hessian as
``A - S'S``: ``S`` holds the per-row scores (built in row chunks), and ``A`` the
complete-data terms, which vanish between components of different classes. A family
with :attr:`~bayesfmm.families.base.Family.weighted_hessian` gives a component's block of
``A`` as matrix products (:meth:`~bayesfmm.families.base.Family.information`).
No family appears by name here. The log likelihood itself is the mixture layer,
:mod:`bayesfmm.mixture` (shared with the PyMC model), evaluated with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesfmm import mixture
from bayesfmm.hessian import add_component_blocks, chunked_score_hessian, hooked_pair
from bayesfmm.mixture import Eta, MixtureProblem, linear_predictor, row_chunks
from bayesfmm.ops import NUMPY_OPS

__all__ = [
    "Eta", "MixtureProblem", "Evaluation", "evaluate", "score_hessian", "row_scores", "unit_scores",
    "complete_data_score_hessian", "linear_predictor", "loglike",
]


def class_log_probs(problem: MixtureProblem, theta: np.ndarray) -> np.ndarray:
    """``log pi`` (n x k) by log-softmax of the class logits, base class at 0; a broadcast
    view of one row when the class model has no covariates."""
    log_pi = mixture.class_log_softmax(problem, np.asarray(theta, dtype=float), NUMPY_OPS)
    return np.broadcast_to(log_pi, (problem.n, problem.k)) if log_pi.ndim == 1 else log_pi


def component_etas(problem: MixtureProblem, theta: np.ndarray) -> list[list[list]]:
    """Etas per class, component and slot."""
    return mixture.component_etas(problem, np.asarray(theta, dtype=float), NUMPY_OPS)


def component_log_density(problem: MixtureProblem, etas: list) -> np.ndarray:
    """``sum_c log f_cj(y_ci)`` for each class ``j`` (n x k, column-major)."""
    return mixture.component_log_density(problem, etas, NUMPY_OPS)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The mixture at one parameter vector.

    ``ll_rows`` holds the unweighted log likelihood of each unit (a row, or a group with
    ``group=``); ``llf`` is its weighted sum. ``resp`` holds the posterior class
    probabilities per row (a group's, broadcast to its rows).
    """

    llf: float
    ll_rows: np.ndarray
    log_classprob: np.ndarray
    log_density: np.ndarray  # n x k, summed over a class's components
    resp: np.ndarray  # posterior class probabilities
    etas: list
    resp_units: np.ndarray | None = None  # per group with group=


def evaluate(problem: MixtureProblem, theta: np.ndarray) -> Evaluation:
    """Log likelihood, class log probabilities, densities and responsibilities at ``theta``
    (the mixture layer, :func:`bayesfmm.mixture.mixture_terms`, with numpy)."""
    theta = np.asarray(theta, dtype=float)
    # non-finite values (a trial step far out) become llf = -inf, handled by the callers
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        terms = mixture.mixture_terms(problem, theta, NUMPY_OPS)
        log_pi = terms.log_class_probs
        if log_pi.ndim == 1:
            log_pi = np.broadcast_to(log_pi, (problem.n, problem.k))
        groups = problem.design.groups
        if groups is None:
            resp, resp_units = terms.posterior, None
        else:
            resp_units = terms.posterior
            resp = np.asfortranarray(resp_units[groups.codes])
        ll_rows = terms.ll_units
        w = problem.design.unit_weights
        llf = float(ll_rows.sum() if w is None else w @ ll_rows)
    if not np.isfinite(llf):
        llf = -np.inf
    return Evaluation(llf, ll_rows, log_pi, terms.log_density, resp, terms.etas, resp_units)


def pointwise_loglike(problem: MixtureProblem, ev: Evaluation) -> np.ndarray:
    """The log likelihood per row as the PyMC model records it: weighted by ``weights=``;
    with ``group=`` a group's value on its first row and 0 on its other rows. Sums to
    ``ev.llf``."""
    return mixture.pointwise_loglike(problem, ev.ll_rows, NUMPY_OPS)


def loglike(problem: MixtureProblem, theta: np.ndarray) -> float:
    """The log likelihood alone, in row chunks (nothing of size n is kept)."""
    if problem.grouped:
        return evaluate(problem, theta).llf
    theta = np.asarray(theta, dtype=float)
    total = 0.0
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for _, part in row_chunks(problem):
            ll = mixture.mixture_terms(part, theta, NUMPY_OPS).ll_units
            w = part.design.weights
            total += float(ll.sum() if w is None else w @ ll)
    return total if np.isfinite(total) else -np.inf


def _eta_derivatives(problem: MixtureProblem, ev: Evaluation):
    """Family derivatives per (class, component): ``d`` (S x n), ``h`` (S x S x n)."""
    out = {}
    for j, comps in enumerate(problem.design.classes):
        for c, comp in enumerate(comps):
            out[(j, c)] = comp.family.derivatives(comp.y, ev.etas[j][c], comp.extra)
    return out


def _class_probs(ev: Evaluation) -> np.ndarray:
    """Class probabilities n x k; a broadcast view when they do not vary by row."""
    log_pi = ev.log_classprob
    if log_pi.strides[0] == 0:  # intercept-only class model: one row broadcast
        return np.broadcast_to(np.exp(log_pi[0]), log_pi.shape)
    return np.exp(log_pi)


def _eta_gradient(problem: MixtureProblem, ev: Evaluation, derivs) -> list[np.ndarray]:
    """Per-row derivative of the log likelihood in each eta, in ``problem.etas`` order."""
    pi = _class_probs(ev)
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


def _add_block(H: np.ndarray, ea: "Eta", eb: "Eta", w: np.ndarray) -> None:
    """Add ``X_a' diag(w) X_b`` to the Hessian block (a, b) and its mirror (b, a)."""
    block = _cross(ea, eb, w)
    H[ea.cols, eb.cols] += block
    if ea is not eb:
        H[eb.cols, ea.cols] += block.T


def _score_matrix(problem: MixtureProblem, grads: list[np.ndarray], rows: slice) -> np.ndarray:
    """Per-row scores for a block of rows (rows x p)."""
    size = len(range(*rows.indices(problem.n)))
    S = np.empty((size, problem.layout.size), order="F")
    for a, e in enumerate(problem.etas):
        g = grads[a][rows]
        if e.intercept_only:
            S[:, e.cols.start] = g
        else:
            np.multiply(g[:, None], e.X[rows], out=S[:, e.cols])
    return S


def score_hessian(problem: MixtureProblem, theta: np.ndarray, known: Evaluation | None = None):
    """Log likelihood, exact score and exact Hessian (observed information is ``-H``).

    One pass over the data in row chunks (:func:`bayesfmm.mixture.row_chunks`): each
    chunk's densities, derivatives, scores and weighted cross-products are computed while
    it is in cache and added up (:mod:`bayesfmm.hessian`). ``known``, an evaluation at
    ``theta`` (EM's last E-step), gives an ungrouped problem its log likelihood per row and
    responsibilities without computing the densities again.

    Returns
    -------
    (Evaluation, gradient, hessian)
    """
    if problem.grouped:
        return _grouped_score_hessian(problem, theta)
    rows = None if known is None else (known.ll_rows, known.resp)
    llf, ll, log_pi, resp, g, H = chunked_score_hessian(problem, np.asarray(theta, dtype=float), rows)
    return Evaluation(llf, ll, log_pi, None, resp, None), g, H


def _class_scores_of(problem: MixtureProblem, pi: np.ndarray, j: int, factor: np.ndarray | None) -> list:
    """Per-row derivative of ``log pi_j`` in each class eta, times the class-row factor."""
    out = []
    for e in problem.etas:
        if e.kind != "class":
            out.append(None)
            continue
        w = (1.0 if e.class_ == j else 0.0) - pi[:, e.class_]
        out.append(w if factor is None else w * factor)
    return out


def _grouped_score_hessian(problem: MixtureProblem, theta: np.ndarray):
    """Score and Hessian when whole groups share a class (``group=``).

    For group ``g`` with ``a_gj = log pi_gj + sum_{i in g} log f_ij`` the log likelihood is
    ``logsumexp_j a_gj``; its Hessian is ``sum_j r_gj (d2 a_gj + d a_gj d a_gj') - s_g s_g'``.
    ``d a_gj`` sums row terms over the group, so the outer products are taken on group sums
    ``U_j`` (G x p per class) rather than per row; the second derivatives stay per row.
    This dense path costs ``k`` matrices of ``n x p``; grouped data are small.
    """
    ev = evaluate(problem, theta)
    derivs = _eta_derivatives(problem, ev)
    groups = problem.design.groups
    unit_w = problem.design.unit_weights
    count_once = 1.0 / groups.sizes[groups.codes]
    pi = _class_probs(ev)
    r_units = ev.resp_units
    n, p, k = problem.n, problem.layout.size, problem.k
    wu = np.ones(groups.n_groups) if unit_w is None else unit_w
    H = np.zeros((p, p))
    S_units = np.zeros((groups.n_groups, p))
    for j in range(k):
        C = np.zeros((n, p))
        class_terms = _class_scores_of(problem, pi, j, count_once)
        for a, e in enumerate(problem.etas):
            if e.kind == "class":
                w = class_terms[a]
            elif e.class_ == j:
                w = derivs[(j, e.component)][0][e.slot] * np.ones(n)
            else:
                continue
            C[:, e.cols] = w[:, None] * e.X if not e.intercept_only else w[:, None]
        U = groups.sum_rows(C)
        rj = r_units[:, j]
        H += U.T @ ((wu * rj)[:, None] * U)
        S_units += rj[:, None] * U
    H -= S_units.T @ (wu[:, None] * S_units)
    g = wu @ S_units
    # second derivatives: class-model curvature once per group, component curvature per row
    H += _expected_curvature(problem, derivs, pi, ev.resp, ev.etas)
    return ev, g, H


def unit_scores(problem: MixtureProblem, theta: np.ndarray) -> np.ndarray:
    """Unweighted scores of each likelihood unit (rows, or groups with ``group=``):
    ``units x p``; the gradient is their weighted sum."""
    if not problem.grouped:
        return row_scores(problem, theta)
    ev = evaluate(problem, theta)
    derivs = _eta_derivatives(problem, ev)
    groups = problem.design.groups
    count_once = 1.0 / groups.sizes[groups.codes]
    pi = _class_probs(ev)
    r = ev.resp
    grads = []
    for e in problem.etas:
        if e.kind == "class":
            grads.append((r[:, e.class_] - pi[:, e.class_]) * count_once)
        else:
            grads.append(r[:, e.class_] * derivs[(e.class_, e.component)][0][e.slot])
    return groups.sum_rows(_score_matrix(problem, grads, slice(0, problem.n)))


def _expected_curvature(problem: MixtureProblem, derivs, pi: np.ndarray, resp: np.ndarray, etas) -> np.ndarray:
    """``sum_i sum_j r_ij (d2 log pi_ij + d2 log f_ij)`` (p x p), weighted like the log
    likelihood: the class-model term by :meth:`MixtureProblem.class_row_factor` (once per
    group), the component terms by the row weights. Nothing else survives in the second
    derivatives of EM's ``Q``; the grouped Hessian adds its outer products to it."""
    n, p = problem.n, problem.layout.size
    row_w = problem.row_weights
    factor = problem.class_row_factor()
    class_w = resp.sum(axis=1) if factor is None else resp.sum(axis=1) * factor
    H = np.zeros((p, p))
    for a, ea in enumerate(problem.etas):
        for b in range(a + 1):
            eb = problem.etas[b]
            if ea.kind == "class" and eb.kind == "class":
                la, m = ea.class_, eb.class_
                w = (pi[:, la] * pi[:, m] - (pi[:, la] if la == m else 0.0)) * class_w
            elif hooked_pair(problem, ea, eb):
                continue  # the family's own sum, below
            elif ea.kind == "slot" and eb.kind == "slot" and ea.class_ == eb.class_ and ea.component == eb.component:
                w = resp[:, ea.class_] * derivs[(ea.class_, ea.component)][1][ea.slot, eb.slot]
                if row_w is not None:
                    w = w * row_w
            else:
                continue
            _add_block(H, ea, eb, w * np.ones(n))
    blocks = {(j, c): comp.family.curvature(comp.y, etas[j][c], comp.slot_designs,
                                            resp[:, j] if row_w is None else resp[:, j] * row_w, comp.extra)
              for j, comps in enumerate(problem.design.classes) for c, comp in enumerate(comps)
              if comp.family.weighted_hessian is not None}
    add_component_blocks(H, problem, blocks)
    return H


def complete_data_score_hessian(problem: MixtureProblem, theta: np.ndarray, resp: np.ndarray):
    """Gradient and Hessian of EM's ``Q(theta) = sum_i w_i sum_j r_ij (log pi_ij + log f_ij)``
    with the responsibilities ``resp`` (per row) held fixed; the class-model term counts
    once per group with ``group=``. Returns ``(Q, gradient, hessian)``."""
    ev = evaluate(problem, theta)
    derivs = _eta_derivatives(problem, ev)
    pi = _class_probs(ev)
    n, p = problem.n, problem.layout.size
    row_w = problem.row_weights
    factor = problem.class_row_factor()
    comp_w = np.ones(n) if row_w is None else row_w
    class_w = np.ones(n) if factor is None else factor
    total = resp.sum(axis=1)
    q_rows = (resp * ev.log_density).sum(axis=1) * comp_w + (resp * ev.log_classprob).sum(axis=1) * class_w
    g = np.zeros(p)
    for ea in problem.etas:
        if ea.kind == "class":
            wa = (resp[:, ea.class_] - pi[:, ea.class_] * total) * class_w
        else:
            wa = resp[:, ea.class_] * derivs[(ea.class_, ea.component)][0][ea.slot] * comp_w
        g[ea.cols] += (wa @ ea.X) if not ea.intercept_only else wa.sum()
    H = _expected_curvature(problem, derivs, pi, resp, ev.etas)
    value = float(q_rows.sum())
    return (value if np.isfinite(value) else -np.inf), g, H


def row_scores(problem: MixtureProblem, theta: np.ndarray) -> np.ndarray:
    """Per-row scores (n x p): the outer-product-of-gradients building block."""
    ev = evaluate(problem, theta)
    grads = _eta_gradient(problem, ev, _eta_derivatives(problem, ev))
    return _score_matrix(problem, grads, slice(0, problem.n))
