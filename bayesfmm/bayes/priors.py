"""Priors: weakly informative defaults scaled to the data, overridable by name, class or kind.

Every parameter of the layout (``theta``, the optimiser's scale: class logits, regression
coefficients, log error variances) gets one prior. The defaults (documented in
``docs/bayes.md``) are centred on the pooled (1-class) fit and scaled by the spread of the
data in each linear predictor, so they are weak whatever the units of the response:

========================================  =============================================
parameter                                 default prior
========================================  =============================================
class model intercept (``Class``)         Normal(0, 1.5)
class model covariate ``z``               Normal(0, 2.5 / spread(z))
component intercept (``cons``)            Normal(pooled intercept, 2.5 s)
component coefficient of ``x`` (``coef``)  Normal(0, 2.5 s / spread(x))
auxiliary, optimiser scale (``errvar``)   Normal(pooled value, 2)
========================================  =============================================

``s`` is the standard deviation of the working response ``eta + d / (-h)`` of the slot at
the pooled fit (``d``, ``h``: the family's first and second eta-derivatives); for a
gaussian mean it is ``sd(y)``, so the coefficient prior is the familiar
``2.5 sd(y) / sd(x)`` for an ``x`` without outliers. It needs no family by name.

``spread(x)`` is the smaller of ``sd(x)`` and ``IQR(x) / 1.349`` (the normal distribution's
ratio, so both estimate the sd on normal data; quartiles as order statistics, so a 0/1
indicator's IQR is 0 or 1; the sd alone when the IQR is 0, as for a rare 0/1
indicator). A change of one spread of a covariate thus moves the linear predictor (the
class logit, or the response's eta in units of ``s``) by 2.5 at one prior sd. The robust
half keeps a few outlying values from inflating the spread and so shrinking a coefficient
that the bulk of the data identifies: patent's ``RDS`` has sd 0.40 but IQR / 1.349 = 0.033
(two firms at 0.72 and 3.33), and its ML class-model coefficient (-40, SE 16) sits 0.5
prior sd from 0 under the robust scale (74.6) and 6.4 under the sd's (6.3).

This module is pure numpy: it does not import pytensor or PyMC.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from bayesfmm.bayes.exchangeable import CORRELATION, mvn_terms, within_class_shift
from bayesfmm.errors import SpecificationError
from bayesfmm.likelihood import MixtureProblem, component_etas
from bayesfmm.ops import Lazy

gammaln = Lazy("scipy.special", "gammaln")  # scipy.special loads on first use

__all__ = [
    "Normal",
    "StudentT",
    "Flat",
    "Prior",
    "PriorTable",
    "LogPrior",
    "PARAM_CLASSES",
    "param_classes",
    "default_priors",
    "resolve_priors",
    "column_spread",
    "optimiser_terms",
]

CLASS_INTERCEPT_SD = 1.5
CLASS_COEF_SCALE = 2.5
COEF_SCALE = 2.5
AUX_SD = 2.0
PARAM_CLASSES = ("class", "cons", "coef", "errvar", "scale", "alpha", "cut")


@dataclass(frozen=True)
class Normal:
    """``Normal(mu, sigma)`` prior on a parameter's optimiser scale.

    Examples
    --------
    >>> from bayesfmm.bayes import Normal
    >>> Normal(0.0, 2.0).logpdf(0.0).round(4)
    np.float64(-1.6121)
    """

    mu: float = 0.0
    sigma: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mu) and np.isfinite(self.sigma) and self.sigma > 0):
            raise SpecificationError(f"Normal prior needs a finite mu and sigma > 0, got {self}")

    def logpdf(self, x):
        """Log density at ``x`` (elementwise)."""
        z = (np.asarray(x, dtype=float) - self.mu) / self.sigma
        return -0.5 * z * z - np.log(self.sigma) - 0.5 * np.log(2 * np.pi)

    def grad(self, x):
        """First derivative of the log density: ``-(x - mu) / sigma^2``."""
        return -(np.asarray(x, dtype=float) - self.mu) / self.sigma**2

    def hess(self, x):
        """Second derivative of the log density: ``-1 / sigma^2``."""
        return np.full(np.shape(x), -1.0 / self.sigma**2)


@dataclass(frozen=True)
class StudentT:
    """``StudentT(nu, mu, sigma)`` prior (heavier tails than the normal)."""

    nu: float = 3.0
    mu: float = 0.0
    sigma: float = 1.0

    def __post_init__(self) -> None:
        if not (self.nu > 0 and np.isfinite(self.mu) and np.isfinite(self.sigma) and self.sigma > 0):
            raise SpecificationError(f"StudentT prior needs nu > 0, a finite mu and sigma > 0, got {self}")

    def logpdf(self, x):
        """Log density at ``x`` (elementwise).

        Examples
        --------
        >>> from bayesfmm.bayes import StudentT
        >>> float(StudentT(3.0, 0.0, 1.0).logpdf(0.0).round(4))
        -1.0009
        """
        nu, z = self.nu, (np.asarray(x, dtype=float) - self.mu) / self.sigma
        const = gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi) - np.log(self.sigma)
        return const - 0.5 * (nu + 1) * np.log1p(z * z / nu)

    def grad(self, x):
        """First derivative of the log density: ``-(nu + 1) z / (sigma (nu + z^2))``."""
        z = (np.asarray(x, dtype=float) - self.mu) / self.sigma
        return -(self.nu + 1) * z / (self.sigma * (self.nu + z * z))

    def hess(self, x):
        """Second derivative: ``-(nu + 1) (nu - z^2) / (sigma^2 (nu + z^2)^2)`` (positive in
        the tails, where ``|z| > sqrt(nu)``: the log density is not concave there)."""
        z = (np.asarray(x, dtype=float) - self.mu) / self.sigma
        return -(self.nu + 1) * (self.nu - z * z) / (self.sigma**2 * (self.nu + z * z) ** 2)


@dataclass(frozen=True)
class Flat:
    """An improper flat prior (the posterior mode is then the ML estimate); its log density
    is 0, as PyMC's ``pm.Flat``."""

    def logpdf(self, x):
        return np.zeros(np.shape(x))

    def grad(self, x):
        return np.zeros(np.shape(x))

    def hess(self, x):
        return np.zeros(np.shape(x))


Prior = Normal | StudentT | Flat


@dataclass(frozen=True)
class PriorTable:
    """One prior per position of ``theta``, with where each came from."""

    priors: tuple[Prior, ...]
    sources: tuple[str, ...]
    index: pd.MultiIndex = field(repr=False)
    param_classes: tuple[str, ...] = field(repr=False)
    # groups of positions (one class-model term over the non-base classes) whose Normal
    # priors are jointly normal with correlation CORRELATION: the exchangeable default
    correlated: tuple[tuple[int, ...], ...] = ()

    def frame(self) -> pd.DataFrame:
        """The table as a DataFrame: distribution, its parameters, the source, and the
        correlation with the same term's prior in the other non-base classes (``corr``, 0.5
        for the exchangeable class-model default, else 0)."""
        rows = []
        joint = {pos for group in self.correlated for pos in group}
        for pos, (prior, source, pclass) in enumerate(zip(self.priors, self.sources, self.param_classes)):
            rows.append(
                {
                    "param_class": pclass,
                    "dist": type(prior).__name__,
                    "mu": getattr(prior, "mu", np.nan),
                    "sigma": getattr(prior, "sigma", np.nan),
                    "nu": getattr(prior, "nu", np.nan),
                    "corr": CORRELATION if pos in joint else 0.0,
                    "source": source,
                }
            )
        return pd.DataFrame(rows, index=self.index)


class LogPrior:
    """The log prior of a :class:`PriorTable` as a function of ``theta``, with its analytic
    gradient and (diagonal) Hessian: the penalty MAP adds to the log likelihood in the
    Newton engine (:func:`bayesfmm.ml.newton.newton`).

    Every prior acts on one position of ``theta`` (the optimiser's scale), except the
    exchangeable class-model default (``table.correlated``: one term's non-base logits,
    jointly normal with correlation 1/2), so the Hessian is diagonal but for those blocks.
    Under constraints (``theta = T phi + c``) only the free parameters carry
    a prior, as in the PyMC model: a tied parameter's prior is counted once (at its free
    position) and a parameter fixed at a value has none. ``positions`` says which.

    Examples
    --------
    >>> import numpy as np
    >>> import bayesfmm as bf
    >>> from bayesfmm.bayes.builder import problem_for
    >>> problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))
    >>> prior = LogPrior(resolve_priors(problem, None, pooled), problem.layout)
    >>> value, grad, hess = prior.derivatives(pooled)
    >>> bool(np.allclose(np.diag(hess), prior.hessian_diagonal(pooled)))
    True
    """

    def __init__(self, table: PriorTable, layout: Any = None) -> None:
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


def param_classes(problem: MixtureProblem) -> tuple[str, ...]:
    """Stata's parameter class of each position of ``theta``.

    ``"class"`` for the class model; a linear slot's ``Intercept`` is ``"cons"`` and its
    other terms ``"coef"``; an auxiliary slot gives its family's class (``"errvar"``, ...).
    """
    out: list[str] = []
    for block in problem.layout.blocks:
        for term in block.terms:
            if block.kind == "class":
                out.append("class")
            elif block.linear:
                out.append("cons" if term == "Intercept" else "coef")
            else:
                out.append(block.param_class)
    return tuple(out)


def _working_response_sd(problem: MixtureProblem, pooled: np.ndarray, j: int, c: int, s: int) -> float:
    """sd of the working response ``eta + d / (-h)`` of slot ``s`` at the pooled fit."""
    comp = problem.design.classes[j][c]
    etas = component_etas(problem, pooled)[j][c]
    n = problem.n
    full = [np.asarray(e, dtype=float) * np.ones(n) for e in etas]
    with np.errstate(all="ignore"):
        d, h = comp.family.derivatives(comp.y, full, comp.extra)
        curvature = -np.asarray(h[s, s], dtype=float)
        keep = np.isfinite(curvature) & (curvature > 0) & np.isfinite(d[s])
        if keep.sum() < 2:
            return 1.0
        working = full[s][keep] + d[s][keep] / curvature[keep]
        spread = float(np.std(working))
    return spread if np.isfinite(spread) and spread > 0 else 1.0


def _errvar_centre_shift(problem: MixtureProblem, pooled: np.ndarray, j: int, c: int) -> float:
    """How far a within-class log variance sits below the pooled one, estimated from the
    working residuals ``d / (-h)`` of the component's first slot at the pooled fit
    (:func:`bayesfmm.bayes.exchangeable.within_class_shift`; for a gaussian mean, ``y - mu``)."""
    comp = problem.design.classes[j][c]
    etas = component_etas(problem, pooled)[j][c]
    full = [np.asarray(e, dtype=float) * np.ones(problem.n) for e in etas]
    with np.errstate(all="ignore"):
        d, h = comp.family.derivatives(comp.y, full, comp.extra)
        curvature = -np.asarray(h[0, 0], dtype=float)
        keep = np.isfinite(curvature) & (curvature > 0) & np.isfinite(d[0])
        residuals = d[0][keep] / curvature[keep]
    return within_class_shift(residuals, problem.k)


IQR_TO_SD = 1.349  # interquartile range of the standard normal distribution


def column_spread(x: np.ndarray) -> float:
    """The spread a coefficient prior is scaled by: ``min(sd(x), IQR(x) / 1.349)``.

    The quartiles are order statistics (the wider pair, no interpolation), so a 0/1
    indicator's IQR is 0 or 1 and its spread is its sd. The sd alone when the IQR is 0 (a
    rare indicator, a mostly constant column); 1.0 for a constant column. The smaller
    spread gives the wider (weaker) prior.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesfmm.bayes.priors import column_spread
    >>> round(column_spread(np.array([0.0, 1.0, 2.0, 3.0])), 4)  # the sd: IQR / 1.349 = 2.22
    1.118
    >>> round(column_spread(np.array([0.01, 0.02, 0.03, 0.04, 5.0])), 4)  # an outlier inflates the sd
    0.0148
    """
    x = np.asarray(x, dtype=float)
    sd = float(np.std(x))
    if not np.isfinite(sd) or sd <= 0:
        return 1.0
    # order statistics, not interpolated: a 0/1 column's IQR is then 0 or 1, never a fraction
    iqr = float(np.percentile(x, 75, method="higher") - np.percentile(x, 25, method="lower"))
    robust = iqr / IQR_TO_SD
    return min(sd, robust) if robust > 0 else sd


def default_priors(problem: MixtureProblem, pooled: np.ndarray) -> list[Prior]:
    """The default prior of every position of ``theta`` (see the module docstring)."""
    layout = problem.layout
    design = problem.design
    priors: list[Prior] = [Normal()] * layout.size
    spreads: dict[tuple[int, int, int], float] = {}
    for block in layout.blocks:
        if block.kind == "class":
            Z = design.class_designs[block.class_ - 1].Z
            for i, _term in enumerate(block.terms):
                constant = np.ptp(Z[:, i]) == 0
                sd = CLASS_INTERCEPT_SD if constant else CLASS_COEF_SCALE / column_spread(Z[:, i])
                priors[block.start + i] = Normal(0.0, sd)
            continue
        j = block.class_ - 1
        comp = design.classes[j][block.component]
        if not block.linear:
            # a log error variance: centred on the within-class scale, not the total one
            shift = _errvar_centre_shift(problem, pooled, j, block.component) if block.param_class == "errvar" else 0.0
            for i in range(block.size):
                priors[block.start + i] = Normal(float(pooled[block.start + i]) + shift, AUX_SD)
            continue
        key = (id(comp), block.component, block.slot)
        if key not in spreads:
            spreads[key] = _working_response_sd(problem, pooled, j, block.component, block.slot)
        spread = spreads[key]
        X = comp.slot_designs[block.slot]
        for i in range(block.size):
            if np.ptp(X[:, i]) == 0:  # intercept (or a constant column): centred on the pooled fit
                value = float(X[0, i])
                centre = float(pooled[block.start + i])
                priors[block.start + i] = Normal(centre, COEF_SCALE * spread / max(abs(value), 1e-12))
            else:
                priors[block.start + i] = Normal(0.0, COEF_SCALE * spread / column_spread(X[:, i]))
    return priors


def _as_prior(value: Any, default: Prior, key: Any) -> Prior:
    """Turn a user's prior value into a Prior; dict fields left out keep the default's."""
    if isinstance(value, (Normal, StudentT, Flat)):
        return value
    if isinstance(value, str) and value.lower() == "flat":
        return Flat()
    if isinstance(value, Mapping):
        unknown = set(value) - {"mu", "sigma", "nu"}
        if unknown:
            raise SpecificationError(f"prior for {key!r}: unknown field(s) {sorted(unknown)}; use mu, sigma, nu")
        mu = value.get("mu", getattr(default, "mu", 0.0))
        sigma = value.get("sigma", getattr(default, "sigma", 1.0))
        if "nu" in value:
            return StudentT(float(value["nu"]), float(mu), float(sigma))
        return Normal(float(mu), float(sigma))
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return Normal(float(value[0]), float(value[1]))
    raise SpecificationError(
        f"prior for {key!r} must be bayesfmm.bayes.Normal(mu, sigma), StudentT(nu, mu, sigma), "
        f"Flat(), 'flat', a dict such as {{'mu': 0, 'sigma': 2}} or a (mu, sigma) pair; got {value!r}"
    )


def _reported_as_is(block: Any) -> bool:
    probe = np.array([0.5, 2.0])
    with np.errstate(all="ignore"):
        return bool(np.allclose(np.asarray(block.scale.to_report(probe), dtype=float), probe))


def optimiser_terms(problem: MixtureProblem) -> tuple[str, ...]:
    """The name of each position of ``theta`` on the scale its prior is written on (the
    optimiser's): the layout's term, except an auxiliary parameter reported on another
    scale, which takes its slot's name (``lnvar`` for ``var(e)``, as the PyMC variable
    ``thickness_lnvar``).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.bayes.builder import problem_for
    >>> optimiser_terms(problem_for(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))[0])
    ('Intercept', 'Intercept', 'lnvar', 'Intercept', 'lnvar')
    """
    out: list[str] = []
    for block in problem.layout.blocks:
        if block.kind == "class" or block.linear or _reported_as_is(block):
            out.extend(block.terms)
            continue
        comp = problem.design.classes[block.class_ - 1][block.component]
        name = comp.family.slots[block.slot].name
        out.extend([name] if block.size == 1 else [f"{name}:{t}" for t in block.terms])
    return tuple(out)


def _key_positions(problem: MixtureProblem, key: Any, pclasses: tuple[str, ...]) -> tuple[int, list[int]]:
    """Specificity rank and theta positions a priors key refers to (terms on the optimiser
    scale, :func:`optimiser_terms`)."""
    index = problem.layout.index
    classes = index.get_level_values("class")
    equations = index.get_level_values("equation")
    reported = index.get_level_values("term")
    terms = optimiser_terms(problem)
    if isinstance(key, tuple) and len(key) in (2, 3) and key[-1] not in terms and key[-1] in set(reported):
        name = terms[list(reported).index(key[-1])]
        raise SpecificationError(
            f"priors key {key!r}: priors are written on the optimiser's scale, where {key[-1]!r} is "
            f"sampled as {name!r}; write the key with {name!r} and the value on that scale "
            f"(e.g. {(*key[:-1], name)!r})"
        )
    if isinstance(key, str):
        if key in pclasses:
            return 1, [i for i, pc in enumerate(pclasses) if pc == key]
        if key in PARAM_CLASSES:  # a prior that would apply to nothing: not silently
            text = f"priors key {key!r}: the model has no {key!r} parameters; its parameter classes are {sorted(set(pclasses))}"
            if key in ("alpha", "scale", "cut"):  # a family's own parameter: a mistake
                raise SpecificationError(text)
            warnings.warn(text + " (the prior applies to nothing)", UserWarning, stacklevel=5)
            return 1, []
        raise SpecificationError(
            f"priors key {key!r} is not a parameter class; use one of {sorted(set(pclasses))}, "
            "a class number, (equation, term) or (class, equation, term)"
        )
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        # the regression coefficients of that class, never its auxiliary parameters
        if not 1 <= key <= problem.k:
            raise SpecificationError(f"priors key {key!r}: the model has classes 1 to {problem.k}")
        hits = [i for i in range(len(index)) if classes[i] == key and pclasses[i] in ("cons", "coef")]
        if not hits:
            raise SpecificationError(
                f"priors key {key!r}: class {key} has no regression coefficients; name an auxiliary "
                "parameter as (class, equation, term)"
            )
        return 2, hits
    if isinstance(key, tuple) and len(key) == 2:
        hits = [i for i in range(len(index)) if (equations[i], terms[i]) == key]
        rank = 3
    elif isinstance(key, tuple) and len(key) == 3:
        hits = [i for i in range(len(index)) if (classes[i], equations[i], terms[i]) == key]
        rank = 4
    else:
        raise SpecificationError(
            f"priors key {key!r} not understood: use a parameter class ('coef', 'cons', 'errvar', "
            "'class', ...), a class number, (equation, term) or (class, equation, term)"
        )
    if not hits:
        known = ", ".join(sorted({f"({e!r}, {t!r})" for e, t in zip(equations, terms)}))
        raise SpecificationError(f"priors key {key!r} names no parameter of the model; parameters: {known}")
    return rank, hits


def resolve_priors(problem: MixtureProblem, priors: Any, pooled: np.ndarray) -> PriorTable:
    """One prior per position of ``theta``: defaults, then the user's overrides by specificity.

    ``priors`` is None (defaults), ``"flat"`` (every prior flat), a resolved
    :class:`PriorTable` of this model, or a dict whose keys are a parameter class
    (``"coef"``, ``"cons"``, ``"errvar"``, ``"class"``), a latent class number (the
    intercepts and coefficients of that class's components, never their auxiliary
    parameters), ``(equation, term)`` (that parameter in every class) or ``(class,
    equation, term)``; a more specific key wins. Keys and values are on the optimiser's
    scale: an auxiliary parameter is named as sampled (``lnvar``, not ``var(e)``; see
    :func:`optimiser_terms`). The default class-model priors are exchangeable
    (``PriorTable.correlated``; :mod:`bayesfmm.bayes.exchangeable`); a class-model prior
    you set applies to each non-base logit on its own.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> from bayesfmm.bayes.builder import problem_for
    >>> from bayesfmm.bayes.priors import resolve_priors
    >>> problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))
    >>> table = resolve_priors(problem, {"errvar": {"sigma": 1.0}}, pooled)
    >>> table.frame()["sigma"].tolist()[-1]
    1.0
    """
    if isinstance(priors, PriorTable) and priors.index.equals(problem.layout.index):
        return priors
    defaults = default_priors(problem, pooled)
    pclasses = param_classes(problem)
    sources = ["default"] * len(defaults)
    resolved = list(defaults)
    if priors is None:
        pass
    elif isinstance(priors, str):
        if priors.lower() != "flat":
            raise SpecificationError(f"priors={priors!r}: use None (defaults), 'flat' or a dict of overrides")
        resolved = [Flat()] * len(defaults)
        sources = ["flat"] * len(defaults)
    elif isinstance(priors, Mapping):
        ranked = sorted(((*_key_positions(problem, key, pclasses), key) for key in priors), key=lambda t: t[0])
        for _rank, positions, key in ranked:
            for pos in positions:
                resolved[pos] = _as_prior(priors[key], defaults[pos], key)
                sources[pos] = f"priors[{key!r}]"
    else:
        raise SpecificationError(f"priors must be None, 'flat' or a dict, got {type(priors).__name__}")
    return PriorTable(tuple(resolved), tuple(sources), problem.layout.index, pclasses, _exchangeable_groups(problem, sources))


def _exchangeable_groups(problem: MixtureProblem, sources: list[str]) -> tuple[tuple[int, ...], ...]:
    """Each class-model term's positions over the non-base classes, when there are two or
    more and every one keeps its default prior."""
    groups: dict[str, list[int]] = {}
    for block in problem.layout.class_blocks:
        for i, term in enumerate(block.terms):
            groups.setdefault(term, []).append(block.start + i)
    return tuple(
        tuple(g) for g in groups.values() if len(g) == problem.k - 1 >= 2 and all(sources[p] == "default" for p in g)
    )
