"""Hand-fused numba kernels of one gaussian mixture (k classes, one design, constant class
probabilities): the yardstick ``bench_compiled.py`` times against the package's numpy
engine. They are NOT part of bayesfmm: each writes the gaussian density and its
derivatives a second time, which the package's one-likelihood rule forbids; they exist to
measure what a compiled kernel would buy, and at what cost.

Every row is read once: the k densities, the logsumexp and the responsibilities, then
either the M-step's weighted cross-products of ``[X, y]`` (:func:`em_pass`) or the score
and the exact Hessian ``H = A - S'S`` (:func:`newton_pass`, ``S'S`` accumulated row by
row in the lower triangle).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

LOG_2PI = math.log(2 * math.pi)


@nb.njit(cache=True, fastmath=True, inline="always")
def _responsibilities(lj, top, resp_sums):
    """``lj <- exp(lj - top) / sum``, the row's responsibilities, added to ``resp_sums``;
    returns the row's log likelihood."""
    total = 0.0
    for j in range(lj.size):
        lj[j] = math.exp(lj[j] - top)
        total += lj[j]
    for j in range(lj.size):
        lj[j] /= total
        resp_sums[j] += lj[j]
    return top + math.log(total)


@nb.njit(cache=True, fastmath=True, inline="always")
def _residual(X, y, beta, i, j):
    """``y_i - x_i' beta_j``."""
    mu = 0.0
    for u in range(X.shape[1]):
        mu += X[i, u] * beta[j, u]
    return y[i] - mu


@nb.njit(cache=True, fastmath=True)
def em_pass(X, y, beta, lnvar, log_pi):
    """One E-step and the M-step's sufficient statistics: ``(llf, resp sums, grams)`` with
    ``grams[j] = [X, y]' diag(r_j) [X, y]`` (lower triangle)."""
    n, p = X.shape
    k = beta.shape[0]
    q = p + 1
    prec = np.exp(-lnvar)
    const = log_pi - 0.5 * (LOG_2PI + lnvar)
    grams = np.zeros((k, q, q))
    resp_sums = np.zeros(k)
    lj = np.empty(k)
    z = np.empty(q)
    llf = 0.0
    for i in range(n):
        for u in range(p):
            z[u] = X[i, u]
        z[p] = y[i]
        top = -np.inf
        for j in range(k):
            r = _residual(X, y, beta, i, j)
            lj[j] = const[j] - 0.5 * r * r * prec[j]
            top = max(top, lj[j])
        llf += _responsibilities(lj, top, resp_sums)
        for j in range(k):
            rj = lj[j]
            for u in range(q):
                a = rj * z[u]
                for v in range(u + 1):
                    grams[j, u, v] += a * z[v]
    return llf, resp_sums, grams


@nb.njit(cache=True, fastmath=True)
def newton_pass(X, y, beta, lnvar, pi, mu_cols, lv_col, cls_col, size, blas=True):
    """``(llf, g, H)`` of the mixture at its parameters; ``mu_cols[j]``, ``lv_col[j]`` and
    ``cls_col[j]`` (-1 for the base class) place class j's parameters in the layout."""
    n, p = X.shape
    k = beta.shape[0]
    prec = np.exp(-lnvar)
    const = np.log(pi) - 0.5 * (LOG_2PI + lnvar)
    g = np.zeros(size)
    H = np.zeros((size, size))
    s = np.zeros(size)
    lj = np.empty(k)
    dmu = np.empty(k)
    dlv = np.empty(k)
    resp_sums = np.zeros(k)
    block = np.empty((256, size))  # rows of S awaiting their BLAS product (blas=True)
    filled = 0
    llf = 0.0
    for i in range(n):
        top = -np.inf
        for j in range(k):
            r = _residual(X, y, beta, i, j)
            sc = r * prec[j]
            dmu[j] = sc
            dlv[j] = 0.5 * (r * sc - 1.0)
            lj[j] = const[j] - 0.5 * r * sc
            top = max(top, lj[j])
        llf += _responsibilities(lj, top, resp_sums)
        for j in range(k):
            rj = lj[j]
            if cls_col[j] >= 0:
                s[cls_col[j]] = rj - pi[j]
            a = rj * dmu[j]
            for u in range(p):
                s[mu_cols[j, u]] = a * X[i, u]
            s[lv_col[j]] = rj * dlv[j]
            # complete-data terms of class j: r_j (d2 l_j + d l_j d l_j')
            w_mm = rj * (dmu[j] * dmu[j] - prec[j])
            w_ml = rj * (dmu[j] * dlv[j] - dmu[j])
            w_ll = rj * (dlv[j] * dlv[j] - (dlv[j] + 0.5))
            lv = lv_col[j]
            for u in range(p):
                cu = mu_cols[j, u]
                xu = X[i, u]
                for v in range(u + 1):
                    cv = mu_cols[j, v]
                    if cu >= cv:
                        H[cu, cv] += w_mm * xu * X[i, v]
                    else:
                        H[cv, cu] += w_mm * xu * X[i, v]
                if lv >= cu:
                    H[lv, cu] += w_ml * xu
                else:
                    H[cu, lv] += w_ml * xu
            H[lv, lv] += w_ll
        for a_ in range(size):
            g[a_] += s[a_]
            if blas:
                block[filled, a_] = s[a_]
        if blas:
            filled += 1
            if filled == block.shape[0] or i == n - 1:
                part = block[:filled]
                H -= np.tril(part.T @ part)  # the S'S of a block of rows: one BLAS product
                filled = 0
        else:
            for a_ in range(size):
                sa = s[a_]
                for b in range(a_ + 1):
                    H[a_, b] -= sa * s[b]
    # the class-model pairs from sums (constant class probabilities)
    for la in range(k):
        ca = cls_col[la]
        if ca < 0:
            continue
        for m in range(k):
            cm = cls_col[m]
            if cm < 0 or cm > ca:
                continue
            value = 2 * n * pi[la] * pi[m] - pi[m] * resp_sums[la] - pi[la] * resp_sums[m]
            if la == m:
                value += resp_sums[la] - n * pi[la]
            H[ca, cm] += value
        for j in range(k):
            ind = (1.0 if la == j else 0.0) - pi[la]
            cols = [lv_col[j]]
            for u in range(p):
                cols.append(mu_cols[j, u])
            for c in cols:
                if ca >= c:
                    H[ca, c] += ind * g[c]
                else:
                    H[c, ca] += ind * g[c]
    for a_ in range(size):
        for b in range(a_):
            H[b, a_] = H[a_, b]
    return llf, g, H


def gaussian_layout(problem, theta: np.ndarray):
    """The kernels' arguments for a gaussian ``bayesfmm`` problem (one shared design,
    intercept-only class model) at ``theta``: ``(X, y, beta, lnvar, pi, mu_cols, lv_col,
    cls_col)``, X row-major."""
    k = problem.k
    X = None
    mu_cols, lv_col, cls_col = [None] * k, [0] * k, [-1] * k
    logits = np.zeros(k)
    for e in problem.etas:
        if e.kind == "class":
            cls_col[e.class_] = e.cols.start
            logits[e.class_] = theta[e.cols.start]
        elif e.slot == 0:
            X = e.X
            mu_cols[e.class_] = np.arange(e.cols.start, e.cols.stop)
        else:
            lv_col[e.class_] = e.cols.start
    pi = np.exp(logits - logits.max())
    pi /= pi.sum()
    mu_cols = np.array(mu_cols, dtype=np.int64)
    beta = theta[mu_cols]
    lnvar = theta[np.array(lv_col)]
    y = np.ascontiguousarray(problem.design.classes[0][0].y, dtype=float)
    return (np.ascontiguousarray(X), y, beta, lnvar, pi, mu_cols, np.array(lv_col, dtype=np.int64),
            np.array(cls_col, dtype=np.int64))
