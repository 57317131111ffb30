"""Multivariate normal components (model-based clustering; mclust, scikit-learn
``GaussianMixture``, flexmix ``FLXMCmvnorm``).

``Component("y1 + y2 + y3 ~ x", family="mvnormal", covariance="full")``: the ``d``
responses of a class share a multivariate normal with means linear in the covariates (one
mean equation per response, all with the same regressors; ``~ 1`` is plain clustering) and a
covariance matrix ``Sigma`` that is

* ``"full"``: unrestricted, ``d (d + 1) / 2`` parameters;
* ``"diag"``: diagonal (the responses are independent within a class);
* ``"spherical"``: ``sigma^2 I``, one parameter.

``FMM(..., lcinvariant="errvar")`` ties the covariance across classes (scikit-learn's
``"tied"``, mclust's ``EEE``/``EEI``/``EII``).

Parameterisation (log-Cholesky)
-------------------------------
With ``Sigma = V V'`` (``V`` the lower Cholesky factor) the parameters are the entries of
``U = V^{-1}``, lower triangular, so that the precision is ``Sigma^{-1} = U'U`` and, with
``e = y - mu`` and ``z = U e``, ::

    log f = -d/2 log(2 pi) + sum_i log U_ii - 1/2 z'z.

The diagonal enters through ``theta_i = log U_ii`` (unconstrained). ``1 / U_ii^2`` is the
variance of ``y_i`` given ``y_1, ..., y_(i-1)`` within the class: it is reported as
``var(e)`` (``i = 1``, and every ``i`` of a diagonal covariance) or ``cvar(e)``
(conditional variance, ``i > 1``), with the usual collapse check, so a near-singular
covariance matrix is caught and named (``class 2: cvar(e) of y3 collapsed to ...``). The
off-diagonal ``U_ij`` are reported as they are (``chol(y_j)`` in equation ``y_i``). The
variances, covariances and correlations with delta-method standard errors are
:func:`bayesfmm.mvresults.covariance_table`'s. The density is linear in ``U`` inside the
square, so the eta-derivatives are simple products of ``e`` and ``z`` (exact, below), the
closed-form weighted M-step is weighted least squares plus the weighted residual covariance,
and the same ``logpdf`` serves numpy and pytensor.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bayesfmm.errors import DataError, SpecificationError
from bayesfmm.families.base import AuxScale, Family, ResponseHook, Slot, with_recipe
from bayesfmm.families.gaussian import _weighted_least_squares
from bayesfmm.families.registry import register_family
from bayesfmm.ops import LOG_2PI, Ops

__all__ = ["mvnormal", "mvnormal_family", "COVARIANCES", "cholesky_pairs", "theta_from_covariance", "covariance_from_theta"]

COVARIANCES = ("full", "diag", "spherical")
MAX_CONDITION = 1e12


def _neg2exp(t):
    return np.exp(-2.0 * np.asarray(t, dtype=float))


def _neg_half_log(v):
    return -0.5 * np.log(np.asarray(v, dtype=float))


def _neg2exp_derivative(t):
    return -2.0 * np.exp(-2.0 * np.asarray(t, dtype=float))


# theta = log U_ii  ->  1 / U_ii^2, a (conditional) variance; module level: it pickles
VARIANCE_SCALE = AuxScale(to_report=_neg2exp, from_report=_neg_half_log, derivative=_neg2exp_derivative)


def cholesky_pairs(d: int, covariance: str) -> tuple[tuple[int, int], ...]:
    """The ``(i, j)`` entries of ``U`` that are parameters, in slot order (row by row,
    ``j <= i``); spherical has the one pair ``(0, 0)`` standing for every diagonal entry."""
    if covariance == "full":
        return tuple((i, j) for i in range(d) for j in range(i + 1))
    if covariance == "diag":
        return tuple((i, i) for i in range(d))
    return ((0, 0),)


def theta_from_covariance(sigma: np.ndarray, covariance: str) -> np.ndarray:
    """The covariance parameters (slot order) of the covariance matrix ``sigma``; non-finite
    when ``sigma`` is singular (condition number above 1e12), which the degeneracy check
    reports.

    Examples
    --------
    >>> theta_from_covariance(np.diag([4.0, 1.0]), "diag").round(4).tolist()
    [-0.6931, -0.0]
    """
    sigma = np.asarray(sigma, dtype=float)
    d = sigma.shape[0]
    pairs = cholesky_pairs(d, covariance)
    diag = np.diag(sigma)
    if covariance == "spherical":
        v = float(np.trace(sigma)) / d
        return np.array([-0.5 * np.log(v) if v > 0 else np.inf])
    if covariance == "diag":
        with np.errstate(divide="ignore"):
            return np.where(diag > 0, -0.5 * np.log(np.maximum(diag, 1e-300)), np.inf)
    scale = np.sqrt(np.maximum(diag, 1e-300))
    corr = sigma / np.outer(scale, scale)
    if not np.all(diag > 0) or np.linalg.cond(corr) > MAX_CONDITION:
        return np.full(len(pairs), np.inf)
    try:
        V = np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        return np.full(len(pairs), np.inf)
    U = np.linalg.inv(V)
    return np.array([np.log(U[i, i]) if i == j else U[i, j] for i, j in pairs])


def precision_factor(theta: Sequence[float], d: int, covariance: str) -> np.ndarray:
    """``U`` (d x d, lower triangular) from the covariance parameters."""
    theta = [float(np.ravel(t)[0]) for t in theta]
    if covariance == "spherical":
        return np.exp(theta[0]) * np.eye(d)
    U = np.zeros((d, d))
    for t, (i, j) in zip(theta, cholesky_pairs(d, covariance)):
        U[i, j] = np.exp(t) if i == j else t
    return U


def covariance_from_theta(theta: Sequence[float], d: int, covariance: str) -> np.ndarray:
    """``Sigma = (U'U)^{-1}`` from the covariance parameters.

    Examples
    --------
    >>> s = np.array([[2.0, 0.5], [0.5, 1.0]])
    >>> np.allclose(covariance_from_theta(theta_from_covariance(s, "full"), 2, "full"), s)
    True
    """
    U = precision_factor(theta, d, covariance)
    Uinv = np.linalg.inv(U)
    return Uinv @ Uinv.T


def _escape(name: str) -> str:
    return name.replace("{", "{{").replace("}", "}}")


def _slots(names: tuple[str, ...], covariance: str) -> tuple[Slot, ...]:
    d = len(names)
    means = tuple(Slot(f"mu{i + 1}", equation=_escape(names[i])) for i in range(d))
    aux = []
    for i, j in cholesky_pairs(d, covariance):
        if covariance == "spherical":
            term = "var(e.all)" if d > 1 else "var(e)"
        elif i == j:
            term = "var(e)" if (i == 0 or covariance == "diag") else "cvar(e)"
        else:
            term = f"chol({names[j]})"
        aux.append(
            Slot(
                f"u{i + 1}{j + 1}",
                linear=False,
                report_name=term,
                param_class="errvar",
                scale=VARIANCE_SCALE if i == j else AuxScale(
                    to_report=_identity, from_report=_identity, derivative=_ones
                ),
                collapses="down" if i == j else None,
                equation=_escape(names[i]),
            )
        )
    return means + tuple(aux)


def _identity(t):
    return np.asarray(t, dtype=float)


def _ones(t):
    return np.ones_like(np.asarray(t, dtype=float))


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays are views of the same memory with the same layout (the one design
    of every mean equation, sliced to a chunk of rows per slot)."""
    return a is b or (
        a.shape == b.shape and a.strides == b.strides
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


def _weighted_moments(y, designs, offsets, weights):
    """Weighted least squares of every response on the shared design, and the weighted
    residual covariance (the multivariate regression's ML, identical regressors)."""
    X = designs[0]
    target = y - np.asarray(offsets[0], dtype=float)[:, None]
    w = np.asarray(weights, dtype=float)
    if X.shape[1] == 1 and np.all(X[:, 0] == 1.0):
        B = (w @ target / max(w.sum(), 1e-300))[None, :]
    else:
        B = np.column_stack([_weighted_least_squares(X, target[:, i], w) for i in range(y.shape[1])])
    resid = target - X @ B
    total = w.sum()
    sigma = (resid * w[:, None]).T @ resid / total if total > 0 else np.full((y.shape[1],) * 2, np.nan)
    return B, sigma


class RowHessian:
    """Per-row second derivatives of the mvnormal log density: ``h[a, b]`` is the n-vector
    of slot pair ``(a, b)``, computed when asked for (a dense S x S x n array would take
    gigabytes at n = 1e5 and d = 10); ``np.asarray(h)`` gives the dense array."""

    def __init__(self, density: "_Density", e: np.ndarray, z: np.ndarray, U: np.ndarray) -> None:
        self.density, self.e, self.z, self.U = density, e, z, U
        size = density.d + len(density.pairs)
        self.shape = (size, size, e.shape[0])

    def __getitem__(self, key: tuple[int, int]) -> np.ndarray:
        a, b = (int(key[0]), int(key[1]))
        d, e, z, U = self.density.d, self.e, self.z, self.U
        n = e.shape[0]
        if a < d and b < d:
            return np.full(n, -float(U[:, a] @ U[:, b]))
        if a < d or b < d:
            mean, other = (a, b) if a < d else (b, a)
            if self.density.covariance == "spherical":
                return 2.0 * U[0, 0] ** 2 * e[:, mean]
            i, j = self.density.pairs[other - d]
            factor = U[i, i] if i == j else 1.0
            value = factor * e[:, j] * U[i, mean]
            return value + factor * z[:, i] if mean == j else value
        if self.density.covariance == "spherical":
            return -2.0 * U[0, 0] ** 2 * np.einsum("ij,ij->i", e, e)
        i, j = self.density.pairs[a - d]
        k, m = self.density.pairs[b - d]
        if i != k:
            return np.zeros(n)
        value = -e[:, j] * e[:, m] * (U[i, i] if i == j else 1.0) * (U[k, k] if k == m else 1.0)
        if a == b and i == j:
            value = value - z[:, i] * e[:, i] * U[i, i]
        return value

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        size = self.shape[0]
        out = np.empty(self.shape)
        for a in range(size):
            for b in range(size):
                out[a, b] = self[a, b]
        return out if dtype is None else out.astype(dtype)


class _Density:
    """The density and its derivatives for ``d`` responses and one covariance structure
    (a plain object of module-level code: a bound family pickles as its recipe)."""

    def __init__(self, d: int, covariance: str) -> None:
        self.d = d
        self.covariance = covariance
        self.pairs = cholesky_pairs(d, covariance)

    def logpdf(self, y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        d = self.d
        mus, aux = etas[:d], etas[d:]
        e = [y[:, i] - mus[i] for i in range(d)]
        const = -0.5 * d * LOG_2PI
        if self.covariance == "spherical":
            sq = e[0] * e[0]
            for ei in e[1:]:
                sq = sq + ei * ei
            return const + d * aux[0] - 0.5 * ops.exp(2.0 * aux[0]) * sq
        U = dict(zip(self.pairs, aux))
        total = const
        for i in range(d):
            z = ops.exp(U[(i, i)]) * e[i]
            for j in range(i):
                if (i, j) in U:
                    z = z + U[(i, j)] * e[j]
            total = total + U[(i, i)] - 0.5 * z * z
        return total

    def residuals(self, y: np.ndarray, etas: Sequence[Any]) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        means = [np.asarray(m, dtype=float) for m in etas[: self.d]]
        if all(m.ndim == 0 for m in means):  # intercept-only means: one row, broadcast
            return y - np.array(means)[None, :]
        n = y.shape[0]
        return y - np.column_stack([m * np.ones(n) for m in means])

    def derivatives(self, y: np.ndarray, etas: Sequence[Any], extra: Any = None):
        """Exact first and second derivatives in (means, covariance parameters); the second
        as a :class:`RowHessian` (entries computed when indexed: memory O(n d))."""
        d = self.d
        e = self.residuals(y, etas)
        n = e.shape[0]
        U = precision_factor(etas[d:], d, self.covariance)
        S = d + len(self.pairs)
        D = np.empty((S, n))
        z = e @ U.T
        D[:d] = (z @ U).T
        if self.covariance == "spherical":
            D[d] = d - U[0, 0] ** 2 * np.einsum("ij,ij->i", e, e)
        else:  # -z_i e_j for every pair, then 1 - U_ii z_i e_i on the diagonal
            rows, cols = (np.array(v) for v in zip(*self.pairs))
            zt, et = np.ascontiguousarray(z.T), np.ascontiguousarray(e.T)
            np.multiply(-zt[rows], et[cols], out=D[d:])
            diag = np.flatnonzero(rows == cols)
            D[d + diag] = 1.0 + U[rows[diag], rows[diag]][:, None] * D[d + diag]
        return D, RowHessian(self, e, z, U)

    def weighted_hessian(self, y, etas, designs, weights, extra=None) -> np.ndarray:
        """``sum_i w_i J_i' h_i J_i`` (the family's ``weighted_hessian``) from the weighted
        moments ``X_a'WX_b``, ``X_a'We`` and ``C = e'We``: every entry of
        :class:`RowHessian` is a constant, linear or quadratic in ``e``, so its sum over the
        rows is one of these moments times entries of ``U`` (``O(n d^2)`` for intercept-only
        means, not ``O(n S^2)``). The covariance slots are intercept-only (a scalar each)."""
        d, pairs = self.d, self.pairs
        e = self.residuals(y, etas)
        U = precision_factor(etas[d:], d, self.covariance)
        w = np.asarray(weights, dtype=float) * np.ones(e.shape[0])
        X = designs[:d]
        shared = all(_same_array(Xa, X[0]) for Xa in X)  # one design for every mean (clustering)
        edges = np.cumsum([0] + [Xa.shape[1] for Xa in X])
        m = edges[-1]
        we = e * w[:, None]
        V = np.concatenate([X[0].T @ we] * d if shared else [Xa.T @ we for Xa in X])  # m x d: X_a'We
        C = e.T @ we
        P = -(U.T @ U)
        H = np.zeros((m + len(pairs),) * 2)
        if shared:
            H[:m, :m] = np.kron(P, X[0].T @ (w[:, None] * X[0]))
        else:
            for a in range(d):
                for b in range(d):
                    H[edges[a] : edges[a + 1], edges[b] : edges[b + 1]] = P[a, b] * (X[a].T @ (w[:, None] * X[b]))
        slot_of = np.repeat(np.arange(d), np.diff(edges))
        if self.covariance == "spherical":
            u2 = U[0, 0] ** 2
            H[:m, m] = 2.0 * u2 * V[np.arange(m), slot_of]
            H[m, m] = -2.0 * u2 * np.trace(C)
        else:
            UC = U @ C
            factor = np.array([U[i, i] if i == j else 1.0 for i, j in pairs])
            for s, (i, j) in enumerate(pairs):
                column = factor[s] * (U[i, slot_of] * V[:, j])
                column[edges[j] : edges[j + 1]] += factor[s] * (V[edges[j] : edges[j + 1]] @ U.T)[:, i]  # X_j'Wz_i
                H[:m, m + s] = column
                for t, (i2, j2) in enumerate(pairs[: s + 1]):
                    if i2 == i:
                        H[m + s, m + t] = -factor[s] * factor[t] * C[j, j2]
                if i == j:
                    H[m + s, m + s] -= U[i, i] * UC[i, i]
        H[m:, :m] = H[:m, m:].T
        return np.tril(H) + np.tril(H, -1).T  # exactly symmetric, as the pairwise assembly

    def weighted_fit(self, y, designs, offsets, weights, extra=None) -> list[np.ndarray]:
        B, sigma = _weighted_moments(np.asarray(y, dtype=float), designs, offsets, weights)
        theta = theta_from_covariance(sigma, self.covariance) if np.all(np.isfinite(sigma)) else None
        if theta is None:
            theta = np.full(len(self.pairs), np.inf)
        return [B[:, i] for i in range(self.d)] + [np.array([t]) for t in theta]

    def start_aux(self, y: np.ndarray, weights: np.ndarray) -> list[float]:
        y = np.asarray(y, dtype=float)
        n = y.shape[0]
        ones = np.ones((n, 1))
        _, sigma = _weighted_moments(y, [ones], [np.zeros(n)], weights)
        return [float(t) for t in theta_from_covariance(sigma, self.covariance)]

    def mean(self, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        """The class means, n x d (numpy) or the list of the d means (pytensor)."""
        if ops.name == "numpy":
            n = max((np.size(m) for m in etas[: self.d]), default=1)
            return np.column_stack([np.asarray(m, dtype=float) * np.ones(n) for m in etas[: self.d]])
        return list(etas[: self.d])

    def sample(self, etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any = None) -> np.ndarray:
        d = self.d
        n = max(int(np.size(m)) for m in etas[:d])
        M = np.column_stack([np.asarray(m, dtype=float) * np.ones(n) for m in etas[:d]])
        U = precision_factor(etas[d:], d, self.covariance)
        # e = U^{-1} z with z standard normal
        return M + np.linalg.solve(U, rng.standard_normal((n, d)).T).T


def _in_support(y: np.ndarray, extra: Any = None) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    return np.all(np.isfinite(y), axis=1) if y.ndim == 2 else np.isfinite(y)


def _no_cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
    raise SpecificationError(
        "mvnormal has no (univariate) distribution function: use predict(kind='density') or "
        "bayesfmm.mvresults.class_means / posterior classification"
    )


def mvnormal_family(names: tuple[str, ...], covariance: str = "full") -> Family:
    """The multivariate normal bound to the responses ``names`` (see the module docstring)."""
    names = tuple(names)
    density = _Density(len(names), covariance)
    family = Family(
        name="mvnormal",
        stata_name="mvnormal",
        slots=_slots(names, covariance),
        logpdf=density.logpdf,
        eta_derivatives=density.derivatives,
        weighted_hessian=density.weighted_hessian,
        mean=density.mean,
        cdf=_no_cdf,
        in_support=_in_support,
        support="finite in every response",
        start_aux=density.start_aux,
        weighted_fit=density.weighted_fit,
        sample=density.sample,
        options={"covariance": covariance, "responses": names},
        response_hook=ResponseHook(bind=_bind_again(names, covariance), multi_response=True),
    )
    return with_recipe(family, mvnormal_family, names, covariance)


class _bind_again:
    """Binding a bound family to new data keeps it (the same responses)."""

    def __init__(self, names: tuple[str, ...], covariance: str) -> None:
        self.names, self.covariance = names, covariance

    def __call__(self, values: Any, names: Any, index: Any = None):
        return mvnormal_family(self.names, self.covariance), _matrix(values, self.names)


def _matrix(values: Any, names: Sequence[str]) -> np.ndarray:
    y = np.asarray(values, dtype=float)
    if y.ndim != 2 or y.shape[1] != len(names):
        raise DataError(f"mvnormal needs the responses {list(names)} as columns; got an array of shape {y.shape}")
    return y


class _Bind:
    def __init__(self, covariance: str) -> None:
        self.covariance = covariance

    def __call__(self, values: Any, names: Any, index: Any = None):
        names = (names,) if isinstance(names, str) else tuple(names)
        if len(names) < 2:
            raise SpecificationError(
                f"mvnormal takes two or more responses, written 'y1 + y2 ~ x'; got {list(names)} "
                "(one response: family='gaussian')"
            )
        return mvnormal_family(names, self.covariance), _matrix(values, names)


def _unbound(*args: Any, **kwargs: Any) -> Any:
    raise SpecificationError("the mvnormal family is bound to its responses when the design is built")


def mvnormal(covariance: str = "full") -> Family:
    """Multivariate normal over several responses (``"y1 + y2 ~ x"``); ``covariance=``
    ``"full"``, ``"diag"`` or ``"spherical"``.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.Component("y1 + y2 ~ 1", family="mvnormal", covariance="diag").family.options["covariance"]
    'diag'
    """
    if covariance not in COVARIANCES:
        raise SpecificationError(f"mvnormal covariance={covariance!r}; choose from {', '.join(COVARIANCES)}")
    return Family(
        name="mvnormal",
        stata_name="mvnormal",
        slots=(Slot("mu"),),
        logpdf=_unbound,
        mean=_unbound,
        cdf=_unbound,
        in_support=_in_support,
        support="finite in every response",
        start_aux=lambda y, w: [],
        options={"covariance": covariance},
        response_hook=ResponseHook(bind=_Bind(covariance), multi_response=True),
    )


register_family("mvnormal", mvnormal, aliases=("mvnorm", "mvn"))
