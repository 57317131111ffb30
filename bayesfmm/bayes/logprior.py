"""The log prior of a :class:`~bayesfmm.bayes.priors.PriorTable` as a function of
``theta`` with its analytic gradient and Hessian: the penalty MAP adds to the log
likelihood (re-exported by :mod:`bayesfmm.bayes.priors`). Pure numpy."""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesfmm.bayes.exchangeable import mvn_terms
from bayesfmm.bayes.mvprior import active_covariance_priors
from bayesfmm.ops import Lazy

gammaln = Lazy("scipy.special", "gammaln")  # scipy.special loads on first use

__all__ = ["LogPrior"]


class LogPrior:
    """The log prior of a :class:`PriorTable` as a function of ``theta``, with its analytic
    gradient and (diagonal) Hessian: the penalty MAP adds to the log likelihood in the
    Newton engine (:func:`bayesfmm.ml.newton.newton`).

    Every prior acts on one position of ``theta`` (the optimiser's scale), except the
    exchangeable class-model default (``table.correlated``: one term's non-base logits,
    jointly normal with correlation 1/2) and a ``mvnormal`` covariance's LKJ prior
    (``table.covariance``), so the Hessian is diagonal but for those blocks.
    Under constraints (``theta = T phi + c``) only the free parameters carry
    a prior, as in the PyMC model: a tied parameter's prior is counted once (at its free
    position) and a parameter fixed at a value has none. ``positions`` says which.

    Examples
    --------
    >>> import numpy as np
    >>> import bayesfmm as bf
    >>> from bayesfmm.bayes.builder import problem_for
    >>> problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))
    >>> from bayesfmm.bayes.priors import resolve_priors
    >>> prior = LogPrior(resolve_priors(problem, None, pooled), problem.layout)
    >>> value, grad, hess = prior.derivatives(pooled)
    >>> bool(np.allclose(np.diag(hess), prior.hessian_diagonal(pooled)))
    True
    """

    def __init__(self, table: Any, layout: Any = None) -> None:
        cons = None if layout is None else layout.constraints
        size = len(table.priors)
        self.positions = np.arange(size) if cons is None else np.asarray(cons.free, dtype=int)
        self.size = size
        groups: dict[tuple, list[int]] = {}
        free = set(self.positions.tolist())
        self._joint = [
            (np.asarray(g, dtype=int), np.array([table.priors[p].mu for p in g]), np.array([table.priors[p].sigma for p in g]))
            for g in getattr(table, "correlated", ())
            if set(g) <= free
        ]
        jointly = {int(p) for where, _, _ in self._joint for p in where}
        # mvnormal covariances: the joint prior replaces the per-parameter stand-ins
        self._covariance = active_covariance_priors(table, layout)
        jointly |= {int(p) for block in getattr(table, "covariance", ()) for p in block.positions}
        for pos in self.positions.tolist():
            if pos in jointly:
                continue
            prior = table.priors[pos]
            key = (type(prior).__name__, getattr(prior, "nu", None))
            groups.setdefault(key, []).append(pos)
        # one vectorised prior per (kind, nu): positions, mu, sigma
        self._parts = []
        for (kind, nu), where in groups.items():
            where_arr = np.asarray(where, dtype=int)
            if kind == "Flat":
                continue
            mu = np.array([table.priors[p].mu for p in where])
            sigma = np.array([table.priors[p].sigma for p in where])
            self._parts.append((kind, nu, where_arr, mu, sigma))

    def _terms(self, theta: np.ndarray, order: int):
        theta = np.asarray(theta, dtype=float)
        for kind, nu, where, mu, sigma in self._parts:
            z = (theta[where] - mu) / sigma
            if kind == "Normal":
                value = np.sum(-0.5 * z * z - np.log(sigma)) - 0.5 * np.log(2 * np.pi) * where.size
                grad = -z / sigma if order > 0 else None
                hess = -1.0 / sigma**2 if order > 1 else None
            else:  # StudentT
                const = gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
                value = np.sum(const - np.log(sigma) - 0.5 * (nu + 1) * np.log1p(z * z / nu))
                grad = -(nu + 1) * z / (sigma * (nu + z * z)) if order > 0 else None
                hess = -(nu + 1) * (nu - z * z) / (sigma**2 * (nu + z * z) ** 2) if order > 1 else None
            yield where, float(value), grad, hess
        for where, mu, sigma in self._joint:
            value, grad, hess = mvn_terms(theta[where], mu, sigma)
            yield where, value, grad, hess
        for block in self._covariance:
            grad = block.gradient(theta) if order > 0 else None
            hess = block.hessian(theta) if order > 1 else None
            yield block.positions, block.value(theta), grad, hess

    def value(self, theta: np.ndarray) -> float:
        """The log prior at ``theta``."""
        return float(sum(value for _, value, _, _ in self._terms(theta, 0)))

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """Its gradient (0 at positions without a prior)."""
        return self.derivatives(theta)[1]

    def hessian_diagonal(self, theta: np.ndarray) -> np.ndarray:
        """The diagonal of its Hessian (the Hessian is diagonal)."""
        out = np.zeros(self.size)
        for where, _, _, hess in self._terms(theta, 2):
            out[where] = np.diag(hess) if np.ndim(hess) == 2 else hess
        return out

    def derivatives(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Value, gradient and Hessian (a ``p x p`` matrix) at ``theta``."""
        total, grad, hess = 0.0, np.zeros(self.size), np.zeros((self.size, self.size))
        for where, value, g, h in self._terms(theta, 2):
            total += value
            grad[where] = g
            hess[np.ix_(where, where)] = h if np.ndim(h) == 2 else np.diag(h)
        return total, grad, hess
