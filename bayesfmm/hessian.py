"""The exact score and Hessian of an ungrouped mixture in one pass over row chunks.

``H = A - S'S`` (:mod:`bayesfmm.likelihood` derives it): per chunk of rows, the mixture
terms, the families' eta derivatives and the per-row scores ``S`` are computed while the
chunk is in cache; ``S'S`` is one symmetric product per chunk, and the complete-data terms
``A`` one product per group of eta pairs sharing a design, summed over chunks and placed
once. :func:`bayesfmm.likelihood.score_hessian` wraps the result in an ``Evaluation``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from bayesfmm import mixture
from bayesfmm.mixture import Eta, MixtureProblem, row_chunks
from bayesfmm.ops import NUMPY_OPS

__all__ = ["chunked_score_hessian", "add_component_blocks", "hooked_pair", "HESSIAN_CHUNK"]

# Rows per chunk: a chunk's arrays (the scores, the pair weights, the derivatives: about
# 150 doubles a row) are the fit's largest, so smaller chunks mean fewer fresh pages in a
# first fit (at n = 1e5: 10.3k page faults with 32768 rows, 7.0k with 16384, 5.6k with
# 8192; first fits 201 ms at 32768, 168-171 ms at 16384 and 8192), but each chunk costs
# about 0.5 ms of overhead, which smaller fits feel: at n = 1e4 one pass takes the same
# time with 32768 or 16384 rows and 18-26% longer with 8192 (gaussian 2.65 -> 3.16 ms,
# Poisson 1.99 -> 2.51, binomial 1.91 -> 2.26; `benchmarks/bench_kernels.py --n 1e4`).
HESSIAN_CHUNK = 16_384
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


def hooked_pair(problem: MixtureProblem, ea: Eta, eb: Eta) -> bool:
    """Two slots of one component whose family has :attr:`~bayesfmm.families.base.Family.weighted_hessian`."""
    if ea.class_ != eb.class_ or ea.component != eb.component or "class" in (ea.kind, eb.kind):
        return False
    return problem.design.classes[ea.class_][ea.component].family.weighted_hessian is not None


def add_component_blocks(H: np.ndarray, problem: MixtureProblem, blocks: dict) -> None:
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
            if ea.kind == "slot" and eb.kind == "slot" and (ea.class_ != eb.class_ or hooked_pair(problem, ea, eb)):
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


def _chunk_terms(part: MixtureProblem, theta: np.ndarray, known: tuple | None = None):
    """Mixture terms, family derivatives, per-row scores ``S`` (rows x p) and per-eta
    gradients of one chunk (an intercept-only eta's is its column of ``S``, not a copy).
    ``known``: the chunk's log likelihood per row and responsibilities at ``theta``
    (EM's last E-step): only the class model and the etas are computed."""
    if known is None:
        terms = mixture.mixture_terms(part, theta, NUMPY_OPS)
    else:
        log_pi = mixture.class_log_softmax(part, theta, NUMPY_OPS)
        terms = mixture.MixtureTerms(log_pi, mixture.component_etas(part, theta, NUMPY_OPS), None, *known)
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


def chunked_score_hessian(problem: MixtureProblem, theta: np.ndarray, known: tuple | None = None):
    """The score and Hessian of an ungrouped problem in one pass over row chunks:
    ``H = A - S'WS`` with ``S`` a chunk's per-row scores (one symmetric product per chunk)
    and ``A`` the complete-data terms (one product per group of eta pairs sharing a design,
    summed over chunks and placed once).

    ``known`` is ``(ll_rows, resp)`` at ``theta`` when the caller has them (EM's last
    E-step): the mixture's densities and logsumexp are then not computed again. Returns
    ``(llf, ll_rows, log_classprob or None, resp, gradient, hessian)``."""
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
            rows_known = None if known is None else (known[0][rows], known[1][rows])
            terms, derivs, pi, grads, S = _chunk_terms(part, theta, rows_known)
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
    add_component_blocks(H, problem, blocks)
    if log_pi is not None and log_pi.ndim == 1:
        weight_sum = float(n if weights is None else weights.sum())
        _add_class_terms(H, problem, np.exp(log_pi), g, resp_sums, weight_sum)
        log_pi = np.broadcast_to(log_pi, (n, k))
    else:
        log_pi = None  # per-row class probabilities: not kept (evaluate() has them)
    if not np.isfinite(llf):
        llf = -np.inf
    return llf, ll, log_pi, resp, g, H
