"""The numerics behind two default priors: the exchangeable class-model prior and the
within-class centre of a log error variance.

**Exchangeable class-model prior.** The class model is a multinomial logit with the base
class's logit fixed at 0. Independent priors on the ``k - 1`` free logits are not
exchangeable for ``k >= 3``: the base class's implied share differs from the others'
(with iid Normal(0, 1.5) logits its expected share is 0.29 against 0.35 at k = 3). Giving
all ``k`` logits iid Normal(0, tau^2) priors and then subtracting the base class's one
makes every class's share exchangeable; the free logits (differences) are then Normal
with sd ``sqrt(2) tau`` and correlation 1/2 (:data:`CORRELATION`). The default keeps the
marginal sd of each free logit (1.5 for an intercept), so ``k = 2`` models are unchanged.

**Within-class log variance.** The variance of the pooled (1-class) residuals is the
total variance, which every within-class variance lies below. :func:`within_class_shift`
estimates how far below from the data alone: the residuals of the pooled fit, sorted and
cut into ``k`` equal-count bins (what ``k`` well-separated classes would look like), give
the mean log within-bin variance; the shift is that minus the log total variance.

Pure numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CORRELATION", "mvn_terms", "within_class_shift"]

CORRELATION = 0.5  # corr of two free logits a_i - a_b, a_j - a_b when all k are iid


def _precision(m: int, rho: float = CORRELATION) -> np.ndarray:
    """Inverse of the equicorrelation matrix ``(1 - rho) I + rho J`` of size ``m``."""
    return (np.eye(m) - rho / (1 + (m - 1) * rho) * np.ones((m, m))) / (1 - rho)


def mvn_terms(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray, rho: float = CORRELATION):
    """Log density, gradient and Hessian of ``x ~ MvNormal(mu, S R S)`` with ``S =
    diag(sigma)`` and ``R`` the equicorrelation matrix with correlation ``rho``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import stats
    >>> x, mu, s = np.array([0.3, -1.0]), np.zeros(2), np.array([1.5, 1.5])
    >>> cov = np.outer(s, s) * np.array([[1, 0.5], [0.5, 1]])
    >>> bool(np.isclose(mvn_terms(x, mu, s)[0], stats.multivariate_normal(mu, cov).logpdf(x)))
    True
    """
    x, mu, sigma = (np.asarray(v, dtype=float) for v in (x, mu, sigma))
    m = x.size
    precision = _precision(m, rho)
    z = (x - mu) / sigma
    logdet = (m - 1) * np.log(1 - rho) + np.log(1 + (m - 1) * rho)
    value = -0.5 * z @ precision @ z - np.sum(np.log(sigma)) - 0.5 * logdet - 0.5 * m * np.log(2 * np.pi)
    grad = -(precision @ z) / sigma
    hess = -precision / np.outer(sigma, sigma)
    return float(value), grad, hess


def within_class_shift(residuals: np.ndarray, k: int) -> float:
    """``mean_b log var(bin b) - log var(all)``: the residuals sorted into ``k`` equal-count
    bins (0 for ``k = 1`` or too few values to cut).

    Examples
    --------
    >>> import numpy as np
    >>> r = np.concatenate([np.zeros(50), np.ones(50)]) + np.random.default_rng(0).normal(0, 0.1, 100)
    >>> round(within_class_shift(r, 2), 1)   # two tight groups: within = total / 26
    -3.3
    """
    r = np.sort(np.asarray(residuals, dtype=float)[np.isfinite(residuals)])
    if k < 2 or r.size < 3 * k:
        return 0.0
    total = np.var(r)
    if not total > 0:
        return 0.0
    logs = [np.log(np.var(part)) for part in np.array_split(r, k) if np.var(part) > 0]
    return float(np.mean(logs) - np.log(total)) if logs else 0.0
