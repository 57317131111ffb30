"""The default prior of a multivariate normal component's covariance: LKJ on the
correlations, log-normal on the standard deviations.

A full covariance ``Sigma = S R S`` (``S = diag(s)``) of a ``mvnormal`` component
(:mod:`bayesfmm.families.mvnormal`) gets, in every class,

* ``R ~ LKJ(eta)``, density ``c_d(eta) det(R)^(eta - 1)`` (Lewandowski, Kurowicka & Joe
  2009), :data:`LKJ_ETA` = 2 by default: it shrinks gently towards independence (with
  ``d = 2``, ``(r + 1) / 2 ~ Beta(eta, eta)``: sd of ``r`` = 0.45 at ``eta = 2``, uniform at
  ``eta = 1``) and vanishes at singular ``R``, so a degenerate class has no posterior mode;
* ``log s_i ~ Normal(c_i, tau)``, i.e. ``s_i ~ LogNormal(c_i, tau)``, with
  :data:`SCALE_SD` ``tau = 1`` (``log var = 2 log s`` then has sd 2, the gaussian
  family's ``lnvar`` default) and ``c_i`` half the log of response ``i``'s within-class
  variance estimated as for a gaussian response (the pooled variance shifted by
  :func:`~bayesfmm.bayes.exchangeable.within_class_shift` of its pooled residuals).

The sampled parameters stay the family's ``theta`` (``log U_ii`` and ``U_ij``, ``U`` the
inverse Cholesky factor of ``Sigma``), so the prior density on ``theta`` is the density of
``(log s, R)`` times the Jacobian of the change of variables::

    log p(theta) = log c_d(eta) + (eta - 1) log det R + sum_i log N(log s_i; c_i, tau)
                   + sum_m (m - 2d - 1) theta_mm - (d + 1) sum_i log s_i

(``m = 1..d``; from ``|dSigma/dtheta| = 2^d prod_m U_mm^(m + 1) |Sigma|^(d + 1)`` and
``|dSigma/d(s, R)| = 2^d prod_i s_i^d``). With ``log det R = log det Sigma - 2 sum log
s_i`` and ``log det Sigma = -2 sum theta_mm`` the whole density depends on ``theta`` through
the ``theta_mm`` (linearly) and ``log s_i = log Sigma_ii / 2``; :class:`CovariancePrior`
gives it in numpy (value, exact gradient, Hessian by central differences of that gradient:
MAP) and in pytensor (the PyMC model's ``pm.Potential``), and draws from it (C-vine
onion method for ``R``).

Diagonal and spherical covariances have no correlations: their ``theta = -log s`` take
per-parameter normal priors, which are the same log-normal scale prior
(:func:`scale_centres`). Pure numpy; pytensor is imported by :meth:`CovariancePrior.graph`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bayesfmm.bayes.exchangeable import within_class_shift
from bayesfmm.families.mvnormal import cholesky_pairs, covariance_from_theta, precision_factor, theta_from_covariance
from bayesfmm.likelihood import MixtureProblem, component_etas
from bayesfmm.ops import NUMPY_OPS, Lazy

betaln = Lazy("scipy.special", "betaln")

__all__ = ["LKJ_ETA", "SCALE_SD", "CovariancePrior", "lkj_log_normaliser", "lkj_draw", "covariance_priors",
           "default_scale_priors", "scale_centres", "mv_aux_blocks", "draw_covariance_priors", "active_covariance_priors"]

LKJ_ETA = 2.0
SCALE_SD = 1.0


def lkj_log_normaliser(d: int, eta: float) -> float:
    """``log c_d(eta)``: LKJ's ``p(R) = c_d(eta) det(R)^(eta - 1)`` (their eq. 16).

    Examples
    --------
    >>> from scipy import stats
    >>> # d = 2: (r + 1) / 2 ~ Beta(eta, eta), so p(r = 0) = beta.pdf(0.5) / 2
    >>> bool(np.isclose(np.exp(lkj_log_normaliser(2, 2.0)), stats.beta(2, 2).pdf(0.5) / 2))
    True
    """
    total = 0.0
    for k in range(1, d):
        b = eta + (d - k - 1) / 2.0
        total += (2 * eta - 2 + d - k) * (d - k) * np.log(2.0) + (d - k) * float(betaln(b, b))
    return -total


def lkj_draw(d: int, eta: float, rng: np.random.Generator) -> np.ndarray:
    """One correlation matrix from LKJ(eta) by the C-vine method (LKJ 2009, section 2.4):
    partial correlations at level ``k`` are ``2 Beta(b_k, b_k) - 1``, ``b_k = eta + (d - 2 -
    k) / 2``, turned into correlations by the recursion of partial correlations."""
    P = np.zeros((d, d))
    R = np.eye(d)
    beta = eta + (d - 1) / 2.0
    for k in range(d - 1):
        beta -= 0.5
        for i in range(k + 1, d):
            P[k, i] = 2.0 * rng.beta(beta, beta) - 1.0
            p = P[k, i]
            for m in range(k - 1, -1, -1):
                p = p * np.sqrt((1 - P[m, i] ** 2) * (1 - P[m, k] ** 2)) + P[m, i] * P[m, k]
            R[k, i] = R[i, k] = p
    return R


@dataclass(frozen=True, eq=False)
class CovariancePrior:
    """LKJ(eta) on the correlations and LogNormal(centre_i, sd) on the standard deviations
    of one class's full covariance (see the module docstring); ``positions`` are its
    parameters in ``theta``, in the family's slot order (:func:`cholesky_pairs`)."""

    positions: np.ndarray
    d: int
    centre: np.ndarray
    eta: float = LKJ_ETA
    sd: float = SCALE_SD
    label: str = ""

    def _diag(self) -> np.ndarray:
        pairs = cholesky_pairs(self.d, "full")
        return np.array([s for s, (i, j) in enumerate(pairs) if i == j])

    def value(self, theta: np.ndarray) -> float:
        """The log prior density of ``theta[positions]``."""
        t = np.asarray(theta, dtype=float)[self.positions]
        sigma = covariance_from_theta(t, self.d, "full")
        return self._from_parts(t[self._diag()], 0.5 * np.log(np.diag(sigma)))

    def _from_parts(self, tdiag, log_s):
        d, eta, tau = self.d, self.eta, self.sd
        m = np.arange(1, d + 1)
        logdet_r = -2.0 * tdiag.sum() - 2.0 * log_s.sum()
        z = (log_s - self.centre) / tau
        scale = -0.5 * z * z - np.log(tau) - 0.5 * np.log(2 * np.pi)
        jacobian = ((m - 2 * d - 1) * tdiag).sum() - (d + 1) * log_s.sum()
        return lkj_log_normaliser(d, eta) + (eta - 1.0) * logdet_r + scale.sum() + jacobian

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """Its exact gradient in ``theta[positions]``."""
        d, eta, tau = self.d, self.eta, self.sd
        t = np.asarray(theta, dtype=float)[self.positions]
        U = precision_factor(t, d, "full")
        A = np.linalg.inv(U)
        sigma = A @ A.T
        log_s = 0.5 * np.log(np.diag(sigma))
        # f = const + sum_m a_m theta_mm + sum_i g(log s_i)
        g = -2.0 * (eta - 1.0) - (log_s - self.centre) / tau**2 - (d + 1)
        out = np.empty(t.size)
        for s, (p, q) in enumerate(cholesky_pairs(d, "full")):
            # d log s_i / d U_pq = -A_ip Sigma_qi / Sigma_ii
            dlog = -A[:, p] * sigma[q, :] / np.diag(sigma)
            out[s] = g @ dlog * (U[p, p] if p == q else 1.0)
            if p == q:
                out[s] += -2.0 * (eta - 1.0) + (p + 1 - 2 * d - 1)
        return out

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """Its Hessian in ``theta[positions]``: central differences of the exact gradient."""
        t = np.asarray(theta, dtype=float)
        size = self.positions.size
        out = np.empty((size, size))
        for a, pos in enumerate(self.positions):
            h = 1e-5 * (1.0 + abs(t[pos]))
            up, down = t.copy(), t.copy()
            up[pos] += h
            down[pos] -= h
            out[:, a] = (self.gradient(up) - self.gradient(down)) / (2 * h)
        return 0.5 * (out + out.T)

    def graph(self, theta: Any) -> Any:
        """The log prior density as a pytensor graph of the full ``theta`` vector."""
        import pytensor.tensor as pt

        d = self.d
        t = theta[self.positions]
        U = pt.zeros((d, d))
        diag = []
        for s, (i, j) in enumerate(cholesky_pairs(d, "full")):
            U = pt.set_subtensor(U[i, j], pt.exp(t[s]) if i == j else t[s])
            if i == j:
                diag.append(t[s])
        A = pt.linalg.solve_triangular(U, pt.eye(d), lower=True)
        log_s = 0.5 * pt.log(pt.sum(A * A, axis=1))
        tdiag = pt.stack(diag)
        eta, tau = self.eta, self.sd
        m = np.arange(1, d + 1)
        z = (log_s - self.centre) / tau
        scale = -0.5 * z * z - np.log(tau) - 0.5 * np.log(2 * np.pi)
        logdet_r = -2.0 * tdiag.sum() - 2.0 * log_s.sum()
        jacobian = ((m - 2 * d - 1) * tdiag).sum() - (d + 1) * log_s.sum()
        return lkj_log_normaliser(d, eta) + (eta - 1.0) * logdet_r + scale.sum() + jacobian

    def draw(self, draws: int, rng: np.random.Generator) -> np.ndarray:
        """``draws x len(positions)`` parameter values from the prior."""
        out = np.empty((draws, self.positions.size))
        for r in range(draws):
            s = np.exp(self.centre + self.sd * rng.standard_normal(self.d))
            out[r] = theta_from_covariance(lkj_draw(self.d, self.eta, rng) * np.outer(s, s), "full")
        return out


def mv_aux_blocks(problem: MixtureProblem):
    """``(class index, component index, component, [theta positions of its covariance
    parameters])`` of every ``mvnormal`` component, in slot order."""
    out = []
    for j, comps in enumerate(problem.design.classes):
        for c, comp in enumerate(comps):
            if comp.family.name != "mvnormal" or "responses" not in comp.family.options:
                continue
            positions = [
                problem.layout.slot_block(j + 1, c, s).start
                for s, slot in enumerate(comp.family.slots)
                if not slot.linear
            ]
            out.append((j, c, comp, positions))
    return out


def _log_variances(problem: MixtureProblem, pooled: np.ndarray, j: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Log variance of each response's pooled residuals and its within-class shift."""
    comp = problem.design.classes[j][c]
    y = np.asarray(comp.y, dtype=float)
    mu = np.asarray(comp.family.mean(component_etas(problem, pooled)[j][c], NUMPY_OPS, comp.extra), dtype=float)
    resid = y - mu * np.ones_like(y)
    shifts = np.array([within_class_shift(resid[:, i], problem.k) for i in range(y.shape[1])])
    return np.log(np.var(resid, axis=0)), shifts


def scale_centres(problem: MixtureProblem, pooled: np.ndarray, j: int, c: int) -> np.ndarray:
    """``c_i``: half the log within-class variance of each response of the ``mvnormal``
    component ``(j, c)``, the pooled variance shifted by
    :func:`~bayesfmm.bayes.exchangeable.within_class_shift` of the pooled residuals."""
    log_var, shifts = _log_variances(problem, pooled, j, c)
    return 0.5 * (log_var + shifts)


def covariance_priors(problem: MixtureProblem, pooled: np.ndarray, sources: list[str], eta: float = LKJ_ETA,
                      sd: float = SCALE_SD) -> tuple[CovariancePrior, ...]:
    """The joint prior of every full ``mvnormal`` covariance whose parameters all keep their
    default priors (a user's prior on one of them turns the joint prior of that class off)."""
    out = []
    for j, c, comp, positions in mv_aux_blocks(problem):
        d = len(comp.family.options["responses"])
        if comp.family.options["covariance"] != "full" or d < 2:
            continue
        if any(sources[p] != "default" for p in positions):
            continue
        label = f"class {j + 1}: {comp.response}"
        centre = scale_centres(problem, pooled, j, c)
        out.append(CovariancePrior(np.asarray(positions, dtype=int), d, centre, float(eta), float(sd), label))
    return tuple(out)


def default_scale_priors(problem: MixtureProblem, pooled: np.ndarray) -> dict[int, tuple[float, float]]:
    """``position -> (mu, sigma)`` of the normal prior on every ``mvnormal`` covariance
    parameter: ``theta_ii = log U_ii`` centred where the within-class scale puts it
    (``-c_i`` for a diagonal or spherical covariance, where ``theta_ii = -log s_i``: the
    log-normal scale prior; for a full one, its conditional analogue), sd :data:`SCALE_SD`;
    an off-diagonal ``U_ij`` at its pooled value, sd 2. Under the joint LKJ prior these are
    only its per-parameter stand-ins (the prior-data conflict check and prior tables)."""
    out: dict[int, tuple[float, float]] = {}
    for j, c, comp, positions in mv_aux_blocks(problem):
        covariance = comp.family.options["covariance"]
        d = len(comp.family.options["responses"])
        half_shift = 0.5 * _log_variances(problem, pooled, j, c)[1]
        pairs = cholesky_pairs(d, covariance)
        for pos, (i, m) in zip(positions, pairs):
            if i != m:
                out[pos] = (float(pooled[pos]), 2.0)
            elif covariance == "spherical":
                out[pos] = (float(pooled[pos]) - float(np.mean(half_shift)), SCALE_SD)
            else:
                out[pos] = (float(pooled[pos]) - float(half_shift[i]), SCALE_SD)
    return out


def active_covariance_priors(table: Any, layout: Any = None) -> tuple[CovariancePrior, ...]:
    """The joint covariance priors of ``table`` that apply: every position free under the
    layout's constraints (with ``lcinvariant="errvar"`` the one free class's) and none
    made flat (a table restricted to other variables)."""
    cons = None if layout is None else layout.constraints
    free = None if cons is None else set(np.asarray(cons.free).tolist())
    out = []
    for block in getattr(table, "covariance", ()):
        positions = block.positions.tolist()
        if free is not None and not set(positions) <= free:
            continue
        if any(type(table.priors[p]).__name__ == "Flat" for p in positions):
            continue
        out.append(block)
    return tuple(out)


def draw_covariance_priors(table: Any, out: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Overwrite the columns of ``out`` (draws x p, drawn position by position) that a joint
    covariance prior covers with draws from that prior (in place; returns ``out``)."""
    for block in getattr(table, "covariance", ()):
        out[:, block.positions] = block.draw(out.shape[0], rng)
    return out
