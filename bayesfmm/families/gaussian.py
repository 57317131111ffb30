"""Gaussian (Stata ``regress``): mean ``mu = X b``, auxiliary log error variance.

Reported as ``var(e)`` with delta-method SEs and a CI built on the log scale, as Stata does.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bayesfmm.families.base import LOG_SCALE, BatchedFit, Family, Slot
from bayesfmm.families.registry import register_family
from bayesfmm.ops import LOG_2PI, Ops

__all__ = ["gaussian", "normal_logpdf", "normal_derivatives", "normal_weighted_fit", "normal_weighted_fits", "normal_sample"]

SLOTS = (
    Slot("mu"),
    Slot("lnvar", linear=False, report_name="var(e)", param_class="errvar", scale=LOG_SCALE, collapses="down"),
)


def normal_logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    """log N(y | mu, exp(lnvar)), written once for numpy and pytensor."""
    mu, lnvar = etas
    return -0.5 * (LOG_2PI + lnvar + ops.square(y - mu) * ops.exp(-lnvar))


def normal_derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any = None):
    """First and second derivatives of :func:`normal_logpdf` in (mu, lnvar)."""
    mu, lnvar = etas
    resid = np.asarray(y - mu, dtype=float)
    n = resid.shape[0]
    precision = np.exp(-np.asarray(lnvar, dtype=float))  # a scalar for a constant variance
    d = np.empty((2, n))
    h = np.empty((2, 2, n))
    scaled, sq = d[0], h[1, 1]
    np.multiply(resid, precision, out=scaled)
    np.multiply(resid, scaled, out=sq)
    np.subtract(sq, 1.0, out=d[1])
    d[1] *= 0.5
    np.negative(precision, out=h[0, 0]) if np.ndim(precision) else h[0, 0].fill(-precision)
    np.negative(scaled, out=h[0, 1])
    h[1, 0] = h[0, 1]
    sq *= -0.5
    return d, h


GRAM_CHUNK = 16_384  # rows per block of the weighted cross-products (cache-sized)
GRAM_BLOCK_DOUBLES = 131_072  # a block's buffers hold at most this many doubles (1 MiB: L2)


def _weighted_grams(x: np.ndarray, target: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``[X, t]' diag(w_j) [X, t]`` for every column ``w_j`` of ``W`` (m x (p+1) x (p+1)),
    in one pass over blocks of rows: each block of ``[X, t]`` is copied into cache once,
    scaled by every weight column, and multiplied in one matrix product."""
    n, p = x.shape
    m = W.shape[1]
    q = p + 1
    grams = np.zeros((m * q, q))
    size = max(1, min(n, GRAM_CHUNK, GRAM_BLOCK_DOUBLES // ((m + 1) * q)))
    block = np.empty((size, q), order="F")
    scaled = np.empty((size, m * q), order="F")
    for start in range(0, n, size):
        stop = min(start + size, n)
        b, s = block[: stop - start], scaled[: stop - start]
        b[:, :p] = x[start:stop]
        b[:, p] = target[start:stop]
        for j in range(m):
            np.multiply(b, W[start:stop, j, None], out=s[:, j * q : (j + 1) * q])
        grams += s.T @ b
    return grams.reshape(m, q, q)


def _weighted_gram(x: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``[X, t]' diag(w) [X, t]`` in one pass over blocks of rows, each block in cache."""
    return _weighted_grams(x, target, weights[:, None])[0]


MAX_CONDITION = 1e10  # past this condition number the normal equations give way to an SVD solve


def _well_conditioned(eigenvalues: np.ndarray) -> np.ndarray:
    """Positive definite with condition number ``max / min`` at most :data:`MAX_CONDITION`,
    from the ascending eigenvalues of symmetric matrices (the last axis)."""
    low, high = eigenvalues[..., 0], eigenvalues[..., -1]
    return (low > 0) & (high <= MAX_CONDITION * low)


def _solve_normal_equations(cross: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
    """Scaled normal equations; None when the scaled cross-product is ill-conditioned
    (condition number > 1e10) or not positive definite. The symmetric eigenvalues decide
    that (for a symmetric positive definite matrix they give the 2-norm condition number
    of an SVD, at half its cost) and one LU solve gives the coefficients (Cholesky and two
    triangular solves cost three LAPACK calls)."""
    scale = np.sqrt(np.maximum(np.diag(cross), 1e-300))
    scaled = cross / np.outer(scale, scale)
    try:
        if not _well_conditioned(np.linalg.eigvalsh(scaled)):
            return None
        return np.linalg.solve(scaled, rhs / scale) / scale
    except (np.linalg.LinAlgError, ValueError):
        return None


def _solve_normal_equations_stacked(cross: np.ndarray, rhs: np.ndarray) -> list[np.ndarray | None]:
    """:func:`_solve_normal_equations` for a stack of systems (``m x p x p``, ``m x p``),
    each LAPACK call made once for the whole stack (the same routine per matrix, so the
    same floats); a stack holding a non-finite or singular matrix is solved one system at
    a time."""
    scale = np.sqrt(np.maximum(np.diagonal(cross, axis1=1, axis2=2), 1e-300))
    scaled = cross / (scale[:, :, None] * scale[:, None, :])
    if np.isfinite(scaled).all():
        try:
            good = _well_conditioned(np.linalg.eigvalsh(scaled))
            beta = np.linalg.solve(scaled, (rhs / scale)[:, :, None])[:, :, 0] / scale
            return [b if ok else None for ok, b in zip(good, beta)]
        except np.linalg.LinAlgError:
            pass
    return [_solve_normal_equations(c, r) for c, r in zip(cross, rhs)]


def _lstsq(x: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    sw = np.sqrt(weights)
    return np.linalg.lstsq(x * sw[:, None], target * sw, rcond=None)[0]


def _weighted_least_squares(x: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least squares by scaled normal equations (Cholesky), falling back to an SVD
    solve when the scaled cross-product is ill-conditioned (condition number > 1e10)."""
    gram = _weighted_gram(x, target, weights)
    m = x.shape[1]
    beta = _solve_normal_equations(gram[:m, :m], gram[:m, m])
    return _lstsq(x, target, weights) if beta is None else beta


_UNSOLVED = object()


def _fit_from_gram(
    gram: np.ndarray, x: np.ndarray, target: np.ndarray, weights: np.ndarray, beta: Any = _UNSOLVED
) -> list[np.ndarray]:
    """Coefficients and log variance from ``[X, t]' W [X, t]`` (``beta``: its normal
    equations' solution when already solved, None when that failed): the residual sum of
    squares is ``t'Wt - b'X'Wt`` at the solution, recomputed from the residuals when that
    difference loses more than half the digits (a fit close to perfect)."""
    m = x.shape[1]
    if beta is _UNSOLVED:
        beta = _solve_normal_equations(gram[:m, :m], gram[:m, m])
    total = weights.sum()
    ssr = None
    if beta is not None:
        ssr = gram[m, m] - beta @ gram[:m, m]
        if not ssr > 1e-8 * gram[m, m]:
            ssr = None
    else:
        beta = _lstsq(x, target, weights)
    if ssr is None:
        resid = target - x @ beta
        ssr = weights @ (resid * resid)
    var = float(ssr / total) if total > 0 else 0.0
    return [beta, np.array([np.log(var) if var > 0 else -np.inf])]


def normal_weighted_fit(y, designs, offsets, weights, extra=None):
    """Closed-form weighted ML: weighted least squares and the weighted mean square, from
    one pass over the rows forming ``[X, t]' W [X, t]`` (``t = y - offset``)."""
    x = designs[0]
    target = y - offsets[0]
    return _fit_from_gram(_weighted_gram(x, target, weights), x, target, weights)


def normal_weighted_fits(y, designs, offsets, W, extra=None):
    """:func:`normal_weighted_fit` under each column of ``W``, all cross-products formed in
    one pass over the rows (:func:`_weighted_grams`)."""
    x = designs[0]
    target = y - offsets[0]
    grams = _weighted_grams(x, target, W)
    m = x.shape[1]
    betas = _solve_normal_equations_stacked(grams[:, :m, :m], grams[:, :m, m])
    return [_fit_from_gram(grams[j], x, target, W[:, j], betas[j]) for j in range(W.shape[1])]


def _weighted_log_variance(y: np.ndarray, weights: np.ndarray) -> list[float]:
    total = weights.sum()
    mean = weights @ y / total
    var = weights @ np.square(y - mean) / total
    return [float(np.log(max(var, 1e-300)))]


def normal_sample(etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any = None) -> np.ndarray:
    """One draw per row from N(mu, exp(lnvar))."""
    mu, lnvar = (np.asarray(e, dtype=float) for e in etas)
    return rng.normal(mu, np.exp(0.5 * lnvar))


def gaussian() -> Family:
    """The normal family (Stata ``regress``; flexmix ``FLXMRglm(family="gaussian")``)."""
    return Family(
        name="gaussian",
        stata_name="regress",
        slots=SLOTS,
        logpdf=normal_logpdf,
        eta_derivatives=normal_derivatives,
        mean=lambda etas, ops, extra: etas[0],
        cdf=lambda y, etas, ops, extra: ops.ndtr((y - etas[0]) * ops.exp(-0.5 * etas[1])),
        in_support=lambda y, extra: np.isfinite(y),
        support="finite",
        start_aux=_weighted_log_variance,
        weighted_fit=BatchedFit(normal_weighted_fit, normal_weighted_fits),
        sample=normal_sample,
    )


register_family("gaussian", gaussian, aliases=("regress", "normal"))
