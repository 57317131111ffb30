"""Start values for components with several responses (``mvnormal``): k-means++.

The default start of a model whose first component has an n x d response splits the rows
by k-means on the residuals of the 1-class fit (each column scaled to unit variance):
k-means++ seeding (Arthur & Vassilvitskii 2007) and Lloyd iterations, the best of
``n_init`` seedings by within-cluster sum of squares, from a fixed seed so the default
start stays deterministic (as Stata's). scikit-learn's ``GaussianMixture`` starts the same
way (``init_params="kmeans"``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["kmeans_labels", "kmeans_weights"]


def _seed_centres(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = x.shape[0]
    centres = [x[rng.integers(n)]]
    dist = np.sum((x - centres[0]) ** 2, axis=1)
    for _ in range(1, k):
        total = dist.sum()
        pick = rng.integers(n) if total <= 0 else rng.choice(n, p=dist / total)
        centres.append(x[pick])
        dist = np.minimum(dist, np.sum((x - x[pick]) ** 2, axis=1))
    return np.array(centres)


def _nearest(dist: np.ndarray) -> np.ndarray:
    """``argmin`` over the last axis (the first of equal minima, as ``np.argmin``), by
    comparing whole columns: much faster than ``argmin`` along an axis of a few entries."""
    best = dist[..., 0].copy()
    labels = np.zeros(best.shape, dtype=int)
    for j in range(1, dist.shape[-1]):
        closer = dist[..., j] < best
        labels[closer] = j
        np.copyto(best, dist[..., j], where=closer)
    return labels


def _lloyd(x: np.ndarray, seeds: list[np.ndarray], iterations: int) -> list[tuple[np.ndarray, float]]:
    """Lloyd iterations from every seeding at once, each run stopping when its labels repeat:
    one product ``x C'`` with the centres of all running seedings per iteration, and the
    centres as per-cluster sums by ``bincount`` (rows in order, as ``x[members].mean``), so
    each run computes exactly what it would alone."""
    runs, (k, d) = len(seeds), seeds[0].shape
    n = x.shape[0]
    centres = np.array(seeds, dtype=float)  # runs x k x d
    sq = np.sum(x * x, axis=1)
    xt = np.ascontiguousarray(x.T)
    labels = np.zeros((runs, n), dtype=int)
    active = np.arange(runs)
    for it in range(iterations):
        C = centres[active]
        dist = x @ C.reshape(-1, d).T  # sq - 2 x c' + c'c, in place
        dist *= 2.0
        np.subtract(sq[:, None], dist, out=dist)
        dist += np.sum(C * C, axis=2).reshape(1, -1)
        new = _nearest(dist.reshape(n, active.size, k)).T  # active x n
        moved = np.ones(active.size, dtype=bool) if it == 0 else np.any(new != labels[active], axis=1)
        active, new = active[moved], new[moved]
        if active.size == 0:
            break
        labels[active] = new
        counts = np.array([np.bincount(row, minlength=k) for row in new])
        sums = np.array([[np.bincount(row, weights=col, minlength=k) for col in xt] for row in new]).transpose(0, 2, 1)
        filled = counts > 0  # an empty cluster keeps its centre
        update = centres[active]
        update[filled] = sums[filled] / counts[filled][:, None]
        centres[active] = update
    return [(labels[r], float(np.sum((x - centres[r][labels[r]]) ** 2))) for r in range(runs)]


def kmeans_labels(x: np.ndarray, k: int, n_init: int = 10, iterations: int = 100, seed: int = 0) -> np.ndarray:
    """0-based cluster labels of the rows of ``x`` (n x d) by k-means with k-means++ seeds.

    Examples
    --------
    >>> x = np.r_[np.zeros((5, 2)), np.ones((5, 2)) * 10]
    >>> sorted(np.bincount(kmeans_labels(x, 2)).tolist())
    [5, 5]
    """
    x = np.asarray(x, dtype=float)
    rng = np.random.default_rng(seed)
    best, best_inertia = None, np.inf
    seeds = [_seed_centres(x, k, rng) for _ in range(n_init)]
    for labels, inertia in _lloyd(x, seeds, iterations):
        if inertia < best_inertia and np.bincount(labels, minlength=k).min() > 0:
            best, best_inertia = labels, inertia
    if best is None:  # every seeding left a cluster empty (fewer distinct rows than k)
        best = np.arange(x.shape[0]) * k // x.shape[0]
    return best


def kmeans_weights(residuals: np.ndarray, k: int) -> np.ndarray:
    """One-hot class weights (n x k) by k-means on the standardised residuals."""
    r = np.asarray(residuals, dtype=float)
    scale = r.std(axis=0)
    r = r / np.where(scale > 0, scale, 1.0)
    return np.eye(k)[kmeans_labels(r, k)]
