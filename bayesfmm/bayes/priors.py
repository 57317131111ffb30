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
``mvnormal`` full covariance              LKJ(2) on R, LogNormal(c_i, 1) on sd s_i
``mvnormal`` diag / spherical ``-log s``  Normal(-c_i, 1) (the same log-normal sd prior)
========================================  =============================================

A multivariate normal component's full covariance ``Sigma = S R S`` takes a joint prior
(:mod:`bayesfmm.bayes.mvprior`): ``R ~ LKJ(eta = 2)``, ``log s_i ~ Normal(c_i, 1)`` with
``c_i`` half the log within-class variance of response ``i`` (the pooled one shifted as a
gaussian response's ``lnvar`` is), written on the sampled ``theta`` with the Jacobian of
the change of variables (``PriorTable.covariance``; the per-parameter entries of those
positions are then only stand-ins, shown as ``LKJ`` in ``frame()``). ``priors={"lkj":
4.0}`` sets ``eta``, ``{"lkj": {"eta": 4.0, "sigma": 0.5}}`` also ``tau``; ``{"lkj":
False}`` or a prior of your own on any of a class's covariance parameters leaves that
covariance with per-parameter normal priors.

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

from bayesfmm.bayes.exchangeable import CORRELATION, within_class_shift
from bayesfmm.bayes.logprior import LogPrior
from bayesfmm.bayes.mvprior import LKJ_ETA, SCALE_SD, CovariancePrior, covariance_priors, default_scale_priors
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
    # joint LKJ + log-normal priors of mvnormal covariances (bayesfmm.bayes.mvprior); their
    # positions' entries in ``priors`` are per-parameter stand-ins
    covariance: tuple[CovariancePrior, ...] = ()

    def frame(self) -> pd.DataFrame:
        """The table as a DataFrame: distribution, its parameters, the source, and the
        correlation with the same term's prior in the other non-base classes (``corr``, 0.5
        for the exchangeable class-model default, else 0)."""
        rows = []
        joint = {pos for group in self.correlated for pos in group}
        lkj = {int(pos): block for block in self.covariance for pos in block.positions}
        for pos, (prior, source, pclass) in enumerate(zip(self.priors, self.sources, self.param_classes)):
            rows.append(
                {
                    "param_class": pclass,
                    "dist": f"LKJ({lkj[pos].eta:g})" if pos in lkj else type(prior).__name__,
                    "mu": getattr(prior, "mu", np.nan),
                    "sigma": getattr(prior, "sigma", np.nan),
                    "nu": getattr(prior, "nu", np.nan),
                    "corr": CORRELATION if pos in joint else 0.0,
                    "source": f"{source} (joint: LKJ on corr, LogNormal on sd)" if pos in lkj else source,
                }
            )
        return pd.DataFrame(rows, index=self.index)


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
    scales = default_scale_priors(problem, pooled)  # mvnormal covariances
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
        if not block.linear and block.start in scales:
            for i in range(block.size):
                priors[block.start + i] = Normal(*scales[block.start + i])
            continue
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
    you set applies to each non-base logit on its own. The key ``"lkj"`` sets the joint
    prior of ``mvnormal`` full covariances (``PriorTable.covariance``;
    :mod:`bayesfmm.bayes.mvprior`): ``eta`` (a number), ``{"eta": ..., "sigma": ...}``
    (``sigma`` the sd of ``log s_i``), or ``False`` for per-parameter normal priors.

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
    lkj: Any = {}
    if isinstance(priors, Mapping) and "lkj" in priors:
        lkj = _lkj_options(priors["lkj"])
        priors = {key: value for key, value in priors.items() if key != "lkj"}
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
    joint = () if lkj is None else covariance_priors(problem, pooled, sources, **lkj)
    return PriorTable(
        tuple(resolved), tuple(sources), problem.layout.index, pclasses, _exchangeable_groups(problem, sources), joint
    )


def _lkj_options(value: Any) -> dict | None:
    """``priors["lkj"]`` as ``covariance_priors`` options (None: no joint prior)."""
    if value is False or value is None:
        return None
    if isinstance(value, Mapping):
        unknown = set(value) - {"eta", "sigma"}
        if unknown:
            raise SpecificationError(f"priors['lkj']: unknown field(s) {sorted(unknown)}; use eta, sigma")
        eta, sd = value.get("eta", LKJ_ETA), value.get("sigma", SCALE_SD)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        eta, sd = value, SCALE_SD
    else:
        raise SpecificationError(f"priors['lkj'] must be eta (a number > 0), {{'eta': ..., 'sigma': ...}} or False; got {value!r}")
    if not (np.isfinite(eta) and eta > 0 and np.isfinite(sd) and sd > 0):
        raise SpecificationError(f"priors['lkj'] needs eta > 0 and sigma > 0; got eta={eta!r}, sigma={sd!r}")
    return {"eta": float(eta), "sd": float(sd)}


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
