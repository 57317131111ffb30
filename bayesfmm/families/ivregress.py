"""Stata's ``ivregress`` component: a linear regression with endogenous regressors.

Within a class the outcome ``y`` and its endogenous regressors ``w_1..w_p`` share one
multivariate normal error::

    y   = X b + W g + e.y            (the structural equation)
    w_j = X p_j + Z q_j + e.w_j      (the first stages: exogenous X and instruments Z)
    (e.y, e.w_1, ..., e.w_p) ~ N(0, Sigma)

The map from ``(y, W)`` to the errors is triangular with a unit diagonal, so the density of
``(y, W)`` given ``X`` and ``Z`` is the multivariate normal density of the errors. With one
class its maximum is LIML (the full-information ML of this triangular system, the first
stages unrestricted). Stata writes it ``fmm 2: ivregress y x (w = z1 z2)``; here::

    bf.FMM("y ~ x", family="ivregress", endogenous="w", instruments="z1 + z2", k=2)

Parameters: the equation of ``y`` (``[1]y:x``, ``[1]y:w``), one equation per endogenous
regressor (``[1]w:x``, ``[1]w:z1``), and ``Sigma`` by the log-Cholesky parameterisation of
``mvnormal`` over ``(y, w_1, ..., w_p)`` (:mod:`bayesfmm.families.mvnormal`): ``[1]y:var(e)``
is ``var(e.y)`` itself; :func:`covariance_table` gives ``var(e.y)``, ``var(e.w)``,
``cov(e.w,e.y)`` and the correlations on their natural scale with delta-method standard
errors. The endogenous regressors and the instruments are plain numeric columns (the
family reads them as per-row data: a missing value drops the row); the linear slots' designs
are the component's ``X`` with those columns appended (``options["slot_columns"]``, read by
:mod:`bayesfmm.design`). The M-step is closed form: weighted LIML for ``(b, g)``, then each
first stage by weighted least squares on ``X``, ``Z`` and the structural residual, which is
the ML of the first stages given ``(b, g)``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from bayesfmm.errors import DataError, SpecificationError
from bayesfmm.families.base import ExtraColumn, Family, ResponseHook, Slot, with_recipe
from bayesfmm.families.mvnormal import (
    _Density as _MvDensity,
)
from bayesfmm.families.mvnormal import (
    _slots as _mv_slots,
)
from bayesfmm.families.mvnormal import (
    cholesky_pairs,
    covariance_from_theta,
    theta_from_covariance,
)
from bayesfmm.families.registry import register_family
from bayesfmm.ops import LOG_2PI, NUMPY_OPS, Ops, linalg

__all__ = ["ivregress", "ivregress_family", "split_iv_formula", "iv_covariance", "covariance_entries"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_GROUP = re.compile(r"\(([^()~]*)~([^()]*)\)")


def endogenous_key(name: str) -> str:
    """The key of an endogenous regressor's values in a component's ``extra``."""
    return f"endogenous:{name}"


def instrument_key(name: str) -> str:
    """The key of an instrument's values in a component's ``extra``."""
    return f"instrument:{name}"


def _names(value: Any, what: str) -> tuple[str, ...]:
    """Column names from ``"z1 + z2"``, ``"z1 z2"`` or a list; plain names only."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = [v for v in re.split(r"[\s+,]+", value.strip()) if v]
    elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise SpecificationError(f"ivregress {what} must be column names ('z1 + z2' or ['z1', 'z2']), got {value!r}")
    bad = [v for v in items if not _NAME.match(v)]
    if bad:
        raise SpecificationError(
            f"ivregress {what} must be plain column names, not expressions: {bad} (create the columns first)"
        )
    dup = sorted({v for v in items if items.count(v) > 1})
    if dup:
        raise SpecificationError(f"ivregress {what} names {dup} more than once")
    return tuple(items)


def _check_identified(endogenous: tuple[str, ...], instruments: tuple[str, ...]) -> None:
    if not endogenous:
        raise SpecificationError(
            "ivregress needs its endogenous regressor(s): endogenous='w' (with instruments='z1 + z2'); "
            "without one it is family='gaussian'"
        )
    both = sorted(set(endogenous) & set(instruments))
    if both:
        raise SpecificationError(f"ivregress: {both} are given both as endogenous regressors and as instruments")
    if len(instruments) < len(endogenous):
        raise SpecificationError(
            f"ivregress is under-identified: {len(endogenous)} endogenous regressor(s) {list(endogenous)} but "
            f"{len(instruments)} instrument(s) {list(instruments)}; each endogenous regressor needs at least "
            "one excluded instrument (instruments='z1 + z2')"
        )


def split_iv_formula(formula: str, family: str, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Stata-like ``"y ~ x + (w ~ z1 + z2)"`` -> ``("y ~ x", options with endogenous and
    instruments)``; a formula without a parenthesised ``(... ~ ...)`` part comes back as is.

    Examples
    --------
    >>> split_iv_formula("y ~ x + (w ~ z1 + z2)", "ivregress", {})
    ('y ~ x', {'endogenous': ('w',), 'instruments': ('z1', 'z2')})
    >>> split_iv_formula("y ~ (w1 + w2 ~ z1 + z2 + z3)", "ivregress", {})[0]
    'y ~ 1'
    """
    found = _GROUP.findall(formula)
    if not found:
        return formula, dict(options)
    if family != "ivregress":
        raise SpecificationError(
            f"the parenthesised '(w ~ z)' part of {formula!r} names endogenous regressors and instruments: "
            f"it is for family='ivregress', not {family!r}"
        )
    if len(found) > 1:
        raise SpecificationError(f"{formula!r}: write all endogenous regressors in one group, '(w1 + w2 ~ z1 + z2)'")
    given = sorted(set(options) & {"endogenous", "instruments"})
    if given:
        raise SpecificationError(f"{formula!r} names the endogenous regressors and instruments; do not also give {given}")
    rest = _GROUP.sub("", formula)
    lhs, _, rhs = rest.partition("~")
    terms = [t.strip() for t in rhs.split("+") if t.strip()]
    out = dict(options)
    out["endogenous"], out["instruments"] = _names(found[0][0], "endogenous"), _names(found[0][1], "instruments")
    return f"{lhs.strip()} ~ {' + '.join(terms) or '1'}", out


class _IVDensity:
    """Density, derivatives, mean, cdf and M-step for one set of endogenous regressors
    (a plain object of module-level code: a family pickles as its recipe)."""

    def __init__(self, endogenous: tuple[str, ...]) -> None:
        self.endogenous = endogenous
        self.d = 1 + len(endogenous)
        self.pairs = cholesky_pairs(self.d, "full")
        self.mv = _MvDensity(self.d, "full")

    def responses(self, y: Any, extra: Mapping[str, Any]) -> list[Any]:
        return [y] + [extra[endogenous_key(w)] for w in self.endogenous]

    def logpdf(self, y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        """The normal log density of the errors ``(e.y, e.w)``, written once for numpy and pytensor."""
        e = [v - m for v, m in zip(self.responses(y, extra), etas[: self.d])]
        U = dict(zip(self.pairs, etas[self.d :]))
        total = -0.5 * self.d * LOG_2PI
        for i in range(self.d):
            z = ops.exp(U[(i, i)]) * e[i]
            for j in range(i):
                z = z + U[(i, j)] * e[j]
            total = total + U[(i, i)] - 0.5 * z * z
        return total

    def matrix(self, y: Any, extra: Mapping[str, Any]) -> np.ndarray:
        return np.column_stack([np.asarray(v, dtype=float) for v in self.responses(y, extra)])

    def derivatives(self, y: np.ndarray, etas: Sequence[Any], extra: Any = None):
        """Exact derivatives: those of the multivariate normal in its means and covariance
        parameters (the means are this family's linear slots)."""
        return self.mv.derivatives(self.matrix(y, extra), etas)

    def mean(self, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        """``X b + W g``: the structural mean at the observed endogenous regressors (Stata's ``mu``)."""
        return etas[0]

    def _given_w(self, e_w: Sequence[Any], etas: Sequence[Any], ops: Ops) -> tuple[Any, Any]:
        """``y`` given the first-stage errors ``e_w``: ``(shift, P00)`` with the precision
        ``P = U'U``, conditional mean ``X b + W g - shift / P00`` and variance ``1 / P00``."""
        U = {p: (ops.exp(t) if p[0] == p[1] else t) for p, t in zip(self.pairs, etas[self.d :])}
        p00 = sum(U[(i, 0)] * U[(i, 0)] for i in range(self.d))
        shift = 0.0
        for a in range(1, self.d):
            shift = shift + sum(U[(i, 0)] * U[(i, a)] for i in range(a, self.d)) * e_w[a - 1]
        return shift, p00

    def cdf(self, y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        """The distribution of ``y`` given ``X``, ``Z`` and the observed ``W`` (the
        conditional normal given the first-stage errors)."""
        e = [v - m for v, m in zip(self.responses(y, extra), etas[: self.d])]
        shift, p00 = self._given_w(e[1:], etas, ops)
        return ops.ndtr((e[0] + shift / p00) * ops.sqrt(p00))

    def sample(self, etas: Sequence[np.ndarray], rng: np.random.Generator, extra: Any = None) -> np.ndarray:
        """``y`` drawn from its normal distribution given ``X``, ``Z`` and the observed
        ``W`` (the distribution :meth:`cdf` gives)."""
        n = max(int(np.size(m)) for m in etas[: self.d])
        etas = [np.asarray(t, dtype=float) for t in etas]
        e_w = [np.asarray(v, dtype=float) - m for v, m in zip(self.responses(np.zeros(n), extra)[1:], etas[1 : self.d])]
        shift, p00 = self._given_w(e_w, etas, NUMPY_OPS)
        return etas[0] - shift / p00 + rng.standard_normal(n) / np.sqrt(p00)

    def weighted_fit(self, y, designs, offsets, weights, extra=None) -> list[np.ndarray]:
        """Weighted ML of one class: LIML for the structural equation, then the first
        stages and the error covariance given it (closed form)."""
        if any(np.any(np.asarray(o) != 0) for o in offsets):
            raise SpecificationError("ivregress takes no offset or exposure (it would enter every equation)")
        w = np.asarray(weights, dtype=float)
        p = self.d - 1
        R, F = designs[0], designs[1]
        kx = R.shape[1] - p
        X = R[:, :kx]
        Y = self.matrix(y, extra)
        try:
            beta = weighted_liml(Y[:, 0], Y[:, 1:], X, F[:, kx:], w)
            u = Y[:, 0] - R @ beta
            Q = np.column_stack([F, u])
            coef = np.linalg.solve(Q.T @ (w[:, None] * Q), Q.T @ (w[:, None] * Y[:, 1:]))[: F.shape[1]]
            E = np.column_stack([u, Y[:, 1:] - F @ coef])
            sigma = E.T @ (w[:, None] * E) / w.sum()
            theta = theta_from_covariance(sigma, "full")
        except (np.linalg.LinAlgError, ValueError):
            beta, coef = np.full(R.shape[1], np.nan), np.full((F.shape[1], p), np.nan)
            theta = np.full(len(self.pairs), np.inf)
        return [beta] + [coef[:, j] for j in range(p)] + [np.array([t]) for t in theta]

    def start_aux(self, y: np.ndarray, weights: np.ndarray) -> list[float]:
        """``Sigma`` diagonal, ``var(e.y)`` the outcome's weighted variance, the others 1
        (the closed-form M-step replaces them at once)."""
        w = np.asarray(weights, dtype=float)
        y = np.asarray(y, dtype=float)
        mean = float(w @ y / w.sum())
        var = float(w @ (y - mean) ** 2 / w.sum())
        sigma = np.eye(self.d)
        sigma[0, 0] = var if var > 0 else 1.0
        return [float(t) for t in theta_from_covariance(sigma, "full")]


def _cross(G: np.ndarray, a: list[int], b: list[int], by: list[int]) -> np.ndarray:
    """``A' M B`` from the weighted Gram ``G``, ``M`` the residual maker of the columns ``by``."""
    out = G[np.ix_(a, b)]
    if by:
        out = out - G[np.ix_(a, by)] @ np.linalg.solve(G[np.ix_(by, by)], G[np.ix_(by, b)])
    return out


def weighted_liml(
    y: np.ndarray, W: np.ndarray, X: np.ndarray, Z: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Weighted LIML of ``y = X b + W g + e`` with instruments ``Z``: the coefficients
    ``(b, g)``. ``kappa`` is the smallest root of ``|A - kappa B| = 0``, ``A`` and ``B`` the
    weighted cross-products of ``[y, W]`` after projecting off ``X`` and ``[X, Z]``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> z, v = rng.normal(size=(2, 500))
    >>> w = z + v
    >>> y = 1 + 2 * w + v + rng.normal(size=500)
    >>> weighted_liml(y, w[:, None], np.ones((500, 1)), z[:, None]).round(1).tolist()
    [1.0, 2.0]
    """
    n = len(y)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    C = np.column_stack([X, Z, y, W])
    G = C.T @ (w[:, None] * C)
    kx, kz, p = X.shape[1], Z.shape[1], W.shape[1]
    xs, fs = list(range(kx)), list(range(kx + kz))
    ys = list(range(kx + kz, kx + kz + 1 + p))
    A = _cross(G, ys, ys, xs)
    B = _cross(G, ys, ys, fs)
    kappa = float(linalg.eigh(A, B, eigvals_only=True)[0])
    rs = xs + ys[1:]  # the structural regressors [X, W]
    lhs = G[np.ix_(rs, rs)] - kappa * _cross(G, rs, rs, fs)
    rhs = G[np.ix_(rs, ys[:1])] - kappa * _cross(G, rs, ys[:1], fs)
    return np.linalg.solve(lhs, rhs)[:, 0]


def _in_support(y: np.ndarray, extra: Any = None) -> np.ndarray:
    return np.isfinite(np.asarray(y, dtype=float))


def _slots(response: str, endogenous: tuple[str, ...]) -> tuple[Slot, ...]:
    """The outcome's equation, one per endogenous regressor, and the covariance
    parameters named as ``mvnormal``'s over ``(y, w_1, ..., w_p)``."""
    slots = list(_mv_slots((response, *endogenous), "full"))  # equations named by the responses
    slots[0] = Slot("mu")
    return tuple(slots)


def _options(response: str | None, endogenous: tuple[str, ...], instruments: tuple[str, ...]) -> dict[str, Any]:
    appended = (
        tuple((w, endogenous_key(w)) for w in endogenous),
        *[tuple((z, instrument_key(z)) for z in instruments)] * len(endogenous),
    )
    options: dict[str, Any] = {"endogenous": endogenous, "instruments": instruments, "slot_columns": appended}
    if response is not None:
        options.update(responses=(response, *endogenous), covariance="full")
    return options


def _extra_columns(endogenous: tuple[str, ...], instruments: tuple[str, ...]) -> dict[str, ExtraColumn]:
    out = {endogenous_key(w): ExtraColumn(w, role="ivregress endogenous regressor") for w in endogenous}
    out.update({instrument_key(z): ExtraColumn(z, role="ivregress instrument") for z in instruments})
    return out


def _response(values: Any, name: str, index: Any = None) -> np.ndarray:
    raw = pd.Series(values) if not isinstance(values, pd.Series) else values
    y = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        where = raw.index[bad[:5]].tolist()
        raise DataError(f"ivregress response {name!r} must be numeric; rows {where} hold {raw.iloc[bad[:5]].tolist()}")
    return y


class _Bind:
    """Bind the family to its outcome's name (the covariance parameters name it)."""

    def __init__(self, endogenous: tuple[str, ...], instruments: tuple[str, ...]) -> None:
        self.endogenous, self.instruments = endogenous, instruments

    def __call__(self, values: Any, name: Any, index: Any = None):
        family = ivregress_family(str(name), self.endogenous, self.instruments)
        return family, _response(values, str(name), index)


def ivregress_family(response: str | None, endogenous: tuple[str, ...], instruments: tuple[str, ...]) -> Family:
    """The ivregress family for ``endogenous`` regressors and ``instruments``, bound to its
    outcome ``response`` (None: not yet bound; the design binds it)."""
    endogenous, instruments = tuple(endogenous), tuple(instruments)
    _check_identified(endogenous, instruments)
    density = _IVDensity(endogenous)
    family = Family(
        name="ivregress",
        stata_name="ivregress",
        slots=_slots(response or "y", endogenous),  # the design binds the outcome's name
        logpdf=density.logpdf,
        eta_derivatives=density.derivatives,
        mean=density.mean,
        cdf=density.cdf,
        sample=density.sample,
        in_support=_in_support,
        support="finite",
        start_aux=density.start_aux,
        weighted_fit=density.weighted_fit,
        options=_options(response, endogenous, instruments),
        extra_columns=_extra_columns(endogenous, instruments),
        response_hook=ResponseHook(bind=_Bind(endogenous, instruments)),
    )
    return with_recipe(family, ivregress_family, response, endogenous, instruments)


def ivregress(endogenous: Any = None, instruments: Any = None) -> Family:
    """Linear regression with endogenous regressors (Stata's ``ivregress`` component).

    ``endogenous``: the endogenous regressor column(s); ``instruments``: the excluded
    instruments (at least as many as endogenous regressors), as ``"z1 + z2"`` or a list.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> comp = bf.Component("y ~ x", family="ivregress", endogenous="w", instruments="z1 + z2")
    >>> comp.family.options["instruments"]
    ('z1', 'z2')
    """
    return ivregress_family(None, _names(endogenous, "endogenous"), _names(instruments, "instruments"))


def iv_covariance(family: Family, aux: Sequence[float]) -> pd.DataFrame:
    """``Sigma`` of the errors ``(e.y, e.w_1, ...)`` from a bound family's covariance parameters.

    Examples
    --------
    >>> fam = ivregress_family("y", ("w",), ("z",))
    >>> iv_covariance(fam, [0.0, 0.5, 0.0]).round(2).to_numpy().tolist()
    [[1.0, -0.5], [-0.5, 1.25]]
    """
    names = list(family.options["responses"])
    sigma = covariance_from_theta(aux, len(names), "full")
    return pd.DataFrame(sigma, index=names, columns=names)


def covariance_entries(names: list[str], sigma: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Stata's order: the variances, the covariances, then (ours) the correlations."""
    labels = [f"var(e.{name})" for name in names]
    values = list(np.diag(sigma))
    for i in range(len(names)):
        for m in range(i):
            labels.append(f"cov(e.{names[i]},e.{names[m]})")
            values.append(sigma[i, m])
    for i in range(len(names)):
        for m in range(i):
            labels.append(f"corr(e.{names[i]},e.{names[m]})")
            values.append(sigma[i, m] / np.sqrt(sigma[i, i] * sigma[m, m]))
    return labels, np.array(values)


register_family("ivregress", ivregress, aliases=("ivreg",))
