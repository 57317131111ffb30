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

import weakref
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from bayesfmm import mixture
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


def score_hessian(problem: MixtureProblem, theta: np.ndarray):
    """Log likelihood, exact score and exact Hessian (observed information is ``-H``).

    One pass over the data in row chunks (:func:`bayesfmm.mixture.row_chunks`): each
    chunk's densities, derivatives, scores and weighted cross-products are computed while
    it is in cache and added up (:mod:`bayesfmm.hessian`).

    Returns
    -------
    (Evaluation, gradient, hessian)
    """
    if problem.grouped:
        return _grouped_score_hessian(problem, theta)
    return chunked_score_hessian(problem, np.asarray(theta, dtype=float))


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
            elif _hooked(problem, ea, eb):
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
    _add_component_blocks(H, problem, blocks)
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


# -- the exact Hessian in one pass over row chunks ----------------------------------------
HESSIAN_CHUNK = 32_768
Q_MAX_COLUMNS = 8  # designs up to this width use the products-of-columns form


@dataclass(frozen=True)
class _PairGroup:
    """Pairs of etas whose Hessian blocks share a form: ``kind`` "11" (both intercept-only),
    "1X" (one), "XX" (one design), "XY" (two designs); ``ref`` the eta whose design is
    read (the non-intercept one of "1X")."""

    kind: str
    pairs: tuple[tuple[int, int], ...]
    start: int  # first column of the group in the chunk's weight matrix
    ref: int


_PLANS: "weakref.WeakKeyDictionary[MixtureProblem, tuple]" = weakref.WeakKeyDictionary()
_tril = lru_cache(maxsize=64)(np.tril_indices)  # built once per size, read only as an index


def _constant_class_probs(problem: MixtureProblem) -> bool:
    return all(e.intercept_only for e in problem.etas if e.kind == "class")


def _hooked(problem: MixtureProblem, ea: Eta, eb: Eta) -> bool:
    """Two slots of one component whose family has :attr:`~bayesfmm.families.base.Family.weighted_hessian`."""
    if ea.class_ != eb.class_ or ea.component != eb.component or "class" in (ea.kind, eb.kind):
        return False
    return problem.design.classes[ea.class_][ea.component].family.weighted_hessian is not None


def _add_component_blocks(H: np.ndarray, problem: MixtureProblem, blocks: dict) -> None:
    """Add each hooked component's block (keyed by class and component) to ``H``."""
    for (j, c), block in blocks.items():
        cols = np.r_[tuple(e.cols for e in problem.etas if e.kind == "slot" and (e.class_, e.component) == (j, c))]
        H[np.ix_(cols, cols)] += block


def _hessian_plan(problem: MixtureProblem) -> tuple[_PairGroup, ...]:
    """The eta pairs where the complete-data term ``A`` is nonzero and depends on the rows,
    grouped by form. Without class covariates the pairs involving the class model are
    sums of the responsibilities and of the score (:func:`_add_class_terms`): not here."""
    plan = _PLANS.get(problem)
    if plan is not None:
        return plan
    etas = problem.etas
    constant = _constant_class_probs(problem)
    groups: dict[tuple, list[tuple[int, int]]] = {}
    for a, ea in enumerate(etas):
        for b in range(a + 1):
            eb = etas[b]
            if ea.kind == "slot" and eb.kind == "slot" and (ea.class_ != eb.class_ or _hooked(problem, ea, eb)):
                continue
            if constant and "class" in (ea.kind, eb.kind):
                continue
            if ea.intercept_only and eb.intercept_only:
                key: tuple = ("11",)
            elif ea.intercept_only or eb.intercept_only:
                key = ("1X", id((eb if ea.intercept_only else ea).X))
            elif ea.X is eb.X and ea.X.shape[1] <= Q_MAX_COLUMNS:
                key = ("XX", id(ea.X))
            else:
                key = ("XY", a, b)
            groups.setdefault(key, []).append((a, b))
    out, start = [], 0
    for key, pairs in groups.items():
        a, b = pairs[0]
        ref = b if (key[0] == "1X" and etas[a].intercept_only) else a
        out.append(_PairGroup(key[0], tuple(pairs), start, ref))
        start += len(pairs)
    plan = tuple(out)
    _PLANS[problem] = plan
    return plan


def _pair_weight(part: MixtureProblem, a: int, b: int, r, pi, derivs, grads, out: np.ndarray) -> None:
    """Per-row weight of block (a, b) of ``A = sum_j r_j (d2 a_j + d a_j d a_j')``, into ``out``."""
    ea, eb = part.etas[a], part.etas[b]
    if ea.kind == "class" and eb.kind == "class":
        la, m = ea.class_, eb.class_
        w = 2 * pi[:, la] * pi[:, m] - r[:, la] * pi[:, m] - pi[:, la] * r[:, m]
        out[:] = w + (r[:, la] - pi[:, la]) if la == m else w
        return
    if ea.kind == "class" or eb.kind == "class":
        cl, comp = (ea, eb) if ea.kind == "class" else (eb, ea)
        grad = grads[b if ea.kind == "class" else a]
        np.multiply(grad, (1.0 if cl.class_ == comp.class_ else 0.0) - pi[:, cl.class_], out=out)
        return
    m = ea.class_
    np.multiply(derivs[(m, ea.component)][0][ea.slot], derivs[(m, eb.component)][0][eb.slot], out=out)
    if ea.component == eb.component:
        out += derivs[(m, ea.component)][1][ea.slot, eb.slot]
    out *= r[:, m]


def _products(X: np.ndarray) -> np.ndarray:
    """Column products ``X_u X_v`` (u >= v) of a narrow design: rows x m(m+1)/2."""
    m = X.shape[1]
    Q = np.empty((X.shape[0], m * (m + 1) // 2), order="F")
    q = 0
    for u in range(m):
        for v in range(u + 1):
            np.multiply(X[:, u], X[:, v], out=Q[:, q])
            q += 1
    return Q


def _group_products(part: MixtureProblem, plan, W: np.ndarray) -> list[np.ndarray]:
    """Each group's weighted cross-products over one chunk (summed over chunks, then
    scattered into the Hessian once by :func:`_scatter_groups`)."""
    etas = part.etas
    products: dict[int, np.ndarray] = {}
    out = []
    for group in plan:
        Wg = W[:, group.start : group.start + len(group.pairs)]
        if group.kind == "11":
            out.append(Wg.sum(axis=0))
        elif group.kind == "1X":
            out.append(Wg.T @ etas[group.ref].X)
        elif group.kind == "XX":
            X = etas[group.ref].X
            if id(X) not in products:
                products[id(X)] = _products(X)
            out.append(Wg.T @ products[id(X)])
        else:
            (a, b), w = group.pairs[0], Wg[:, 0]
            out.append(etas[a].X.T @ (w[:, None] * etas[b].X))
    return out


def _scatter_groups(H: np.ndarray, problem: MixtureProblem, plan, sums: list[np.ndarray]) -> None:
    """Add ``X_a' diag(w_ab) X_b`` of every planned pair (and its mirror) to ``H``."""
    etas = problem.etas
    for group, total in zip(plan, sums):
        for q, (a, b) in enumerate(group.pairs):
            ea, eb = etas[a], etas[b]
            if group.kind == "11":
                block = np.array([[total[q]]])
            elif group.kind == "1X":
                block = total[q][None, :] if ea.intercept_only else total[q][:, None]
            elif group.kind == "XX":
                m = ea.X.shape[1]
                block = np.empty((m, m))
                block[_tril(m)] = block.T[_tril(m)] = total[q]
            else:
                block = total
            H[ea.cols, eb.cols] += block
            if a != b:
                H[eb.cols, ea.cols] += block.T


def _add_class_terms(H: np.ndarray, problem: MixtureProblem, pi: np.ndarray, g: np.ndarray,
                     resp_sums: np.ndarray, weight_sum: float) -> None:
    """The class-model pairs of ``A`` when the class probabilities ``pi`` do not vary by row:
    class-class ``2 W pi_l pi_m - pi_m R_l - pi_l R_m + [l = m] (R_l - W pi_l)`` (``R``
    the weighted responsibility sums, ``W`` the weight sum), class-component
    ``([l = j] - pi_l)`` times the score of the component's eta."""
    etas = problem.etas
    class_etas = [e for e in etas if e.kind == "class"]
    for ea in class_etas:
        la = ea.class_
        for eb in class_etas:
            m = eb.class_
            value = 2 * weight_sum * pi[la] * pi[m] - pi[m] * resp_sums[la] - pi[la] * resp_sums[m]
            if la == m:
                value += resp_sums[la] - weight_sum * pi[la]
            H[ea.cols.start, eb.cols.start] += value
        for e in etas:
            if e.kind == "slot":
                block = ((1.0 if la == e.class_ else 0.0) - pi[la]) * g[e.cols]
                H[ea.cols.start, e.cols] += block
                H[e.cols, ea.cols.start] += block


def _chunk_terms(part: MixtureProblem, theta: np.ndarray):
    """Mixture terms, family derivatives, per-row scores ``S`` (rows x p) and per-eta
    gradients of one chunk (an intercept-only eta's is its column of ``S``, not a copy)."""
    terms = mixture.mixture_terms(part, theta, NUMPY_OPS)
    derivs = {}
    for j, comps in enumerate(part.design.classes):
        for c, comp in enumerate(comps):
            derivs[(j, c)] = comp.family.derivatives(comp.y, terms.etas[j][c], comp.extra)
    pi = np.exp(terms.log_class_probs)
    if pi.ndim == 1:
        pi = np.broadcast_to(pi, (part.n, part.k))
    r = terms.posterior
    S = np.empty((part.n, part.layout.size), order="F")
    grads = []
    for e in part.etas:
        out = S[:, e.cols.start] if e.intercept_only else None
        if e.kind == "class":
            grads.append(np.subtract(r[:, e.class_], pi[:, e.class_], out=out))
        else:
            grads.append(np.multiply(r[:, e.class_], derivs[(e.class_, e.component)][0][e.slot], out=out))
        if not e.intercept_only:
            np.multiply(grads[-1][:, None], e.X, out=S[:, e.cols])
    return terms, derivs, pi, grads, S


def chunked_score_hessian(problem: MixtureProblem, theta: np.ndarray):
    """:func:`score_hessian` of an ungrouped problem in one pass over row chunks:
    ``H = A - S'WS`` with ``S`` a chunk's per-row scores (one symmetric product per chunk)
    and ``A`` the complete-data terms (one product per group of eta pairs sharing a design,
    summed over chunks and placed once)."""
    p, k, n = problem.layout.size, problem.k, problem.n
    plan = _hessian_plan(problem)
    n_pairs = sum(len(g.pairs) for g in plan)
    g = np.zeros(p)
    H = np.zeros((p, p))
    resp = np.empty((n, k), order="F")
    ll = np.empty(n)
    sums: list | None = None
    blocks: dict = {}
    resp_sums = np.zeros(k)
    log_pi = None
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for rows, part in row_chunks(problem, HESSIAN_CHUNK):
            terms, derivs, pi, grads, S = _chunk_terms(part, theta)
            r = terms.posterior
            resp[rows] = r
            ll[rows] = terms.ll_units
            log_pi = terms.log_class_probs
            w = part.design.weights
            if w is None:
                g += S.sum(axis=0)
                H -= S.T @ S
                resp_sums += r.sum(axis=0)
            else:
                g += w @ S
                Sw = S * np.sqrt(w)[:, None]  # S's columns are the gradients: not in place
                H -= Sw.T @ Sw
                resp_sums += w @ r
            for j, comps in enumerate(part.design.classes):
                for c, comp in enumerate(comps):
                    if comp.family.weighted_hessian is not None:
                        rw = r[:, j] if w is None else r[:, j] * w
                        block = comp.family.information(comp.y, terms.etas[j][c], comp.slot_designs, rw, comp.extra, derivs[(j, c)][0])
                        blocks[(j, c)] = blocks.get((j, c), 0.0) + block
            W = np.empty((part.n, n_pairs), order="F")
            for group in plan:
                for q, (a, b) in enumerate(group.pairs):
                    _pair_weight(part, a, b, r, pi, derivs, grads, W[:, group.start + q])
            if w is not None:
                W *= w[:, None]
            chunk_sums = _group_products(part, plan, W)
            sums = chunk_sums if sums is None else [x + y for x, y in zip(sums, chunk_sums)]
        weights = problem.design.weights
        llf = float(ll.sum() if weights is None else weights @ ll)
    if sums is not None:
        _scatter_groups(H, problem, plan, sums)
    _add_component_blocks(H, problem, blocks)
    if log_pi is not None and log_pi.ndim == 1:
        weight_sum = float(n if weights is None else weights.sum())
        _add_class_terms(H, problem, np.exp(log_pi), g, resp_sums, weight_sum)
        log_pi = np.broadcast_to(log_pi, (n, k))
    else:
        log_pi = None  # per-row class probabilities: not kept (evaluate() has them)
    if not np.isfinite(llf):
        llf = -np.inf
    return Evaluation(llf, ll, log_pi, None, resp, None), g, H
