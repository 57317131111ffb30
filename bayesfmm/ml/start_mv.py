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


def _lloyd(x: np.ndarray, centres: np.ndarray, iterations: int) -> tuple[np.ndarray, float]:
    k = centres.shape[0]
    sq = np.sum(x * x, axis=1)
    labels = np.zeros(x.shape[0], dtype=int)
    for _ in range(iterations):
        dist = sq[:, None] - 2.0 * x @ centres.T + np.sum(centres * centres, axis=1)[None, :]
        new = np.argmin(dist, axis=1)
        if _ > 0 and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = labels == j
            if members.any():
                centres[j] = x[members].mean(axis=0)
    inertia = float(np.sum((x - centres[labels]) ** 2))
    return labels, inertia


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
    for _ in range(n_init):
        labels, inertia = _lloyd(x, _seed_centres(x, k, rng), iterations)
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
