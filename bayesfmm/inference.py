"""Inference after an ML fit: Wald tests, linear combinations, likelihood-ratio tests,
information criteria, and relabelling classes (Stata ``test``, ``lincom``, ``lrtest``,
``estat ic``; flexmix ``ICL``).

Parameters are named as ``[class]term``, ``[class]equation:term`` (needed when a class has
several responses with the same term) and ``[class]Class:term`` for the class model
(multinomial logit; the base class has none). ``_cons`` is accepted for ``Intercept``.
A bare ``[class]term`` looks in the class's response equations first, then in its class
equation, so ``[2]Intercept`` is the intercept of class 2's response and ``[2]Class:Intercept``
its logit. In a 1-class model the ``[1]`` may be left out.

Tests and combinations use the estimates and covariance on Stata's reporting scale
(``res.params``, ``res.cov_params()``: ``var(e)`` rather than its log), as Stata's ``test``
and ``lincom`` use ``e(b)`` and ``e(V)``; the covariance is whatever ``vce=`` the fit used.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesfmm.constraints import remap_classes
from bayesfmm.criteria import fit_criteria
from bayesfmm.errors import SpecificationError
from bayesfmm.likelihood import MixtureProblem, score_hessian
from bayesfmm.names import describe_equation, param_label
from bayesfmm.names import parse_constraints as parse_layout_constraints
from bayesfmm.ops import Lazy
from bayesfmm.params import build_layout, class_permutation_matrix
from bayesfmm.spec import Component
from bayesfmm.survey import adjusted_wald, critical_value, design_df, refuse_under_survey, two_sided_p

chdtrc = Lazy("scipy.special", "chdtrc")  # chi-square survival function, scipy loaded on first use

__all__ = [
    "parameter_names",
    "parse_constraints",
    "WaldTest",
    "Lincom",
    "LRTest",
    "wald_test",
    "lincom",
    "lrtest",
    "ic",
    "relabel",
]



def parameter_names(res) -> list[str]:
    """Every parameter as ``[class]equation:term``, in ``res.params`` order.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("thickness ~ 1", k=2).fit(bf.datasets.load("stamp"))
    >>> parameter_names(res)[:2]
    ['[2]Class:Intercept', '[1]thickness:Intercept']
    """
    return [param_label(key) for key in res.layout.index]


def parse_constraints(res, expression: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """``R b = r`` of ``"[1]x1 = [2]x1"`` on the parameters of the fit ``res``
    (:func:`bayesfmm.names.parse_constraints` on its layout)."""
    return parse_layout_constraints(res.layout, expression)


# -- Wald test and lincom -------------------------------------------------------
@dataclass(frozen=True)
class WaldTest:
    """A joint Wald test ``R b = r``: ``chi2 = (Rb - r)' (R V R')^- (Rb - r)`` on ``df`` =
    rank degrees of freedom (dependent constraints are dropped, as Stata does).

    After a survey fit ``F`` is Stata's adjusted Wald statistic ``(d - df + 1) / (df d) chi2``
    on ``(df, df_r)`` = ``(df, d - df + 1)`` degrees of freedom (``d`` the design df), and
    ``pvalue`` is its F tail probability."""

    statistic: float
    df: int
    pvalue: float
    constraints: tuple[str, ...]
    dropped: tuple[str, ...] = ()
    F: float | None = None  # survey fits: the adjusted Wald F
    df_r: int | None = None  # its denominator degrees of freedom

    def __str__(self) -> str:
        lines = [f" ({i + 1:>2})  {c}" for i, c in enumerate(self.constraints)]
        lines += [f"       Constraint {c} dropped" for c in self.dropped]
        if self.df_r is not None:
            lines += ["", f"       F({self.df:>3},{self.df_r:>6}) = {self.F:>8.2f}", f"            Prob > F = {self.pvalue:>10.4f}"]
            return "\n".join(lines)
        lines += ["", f"           chi2({self.df:>3}) = {self.statistic:>8.2f}", f"         Prob > chi2 = {self.pvalue:>10.4f}"]
        return "\n".join(lines)

    def as_series(self) -> pd.Series:
        if self.df_r is not None:
            return pd.Series({"F": self.F, "df": self.df, "df_r": self.df_r, "pvalue": self.pvalue, "chi2": self.statistic})
        return pd.Series({"chi2": self.statistic, "df": self.df, "pvalue": self.pvalue})


def wald_test(res, hypotheses: str | list[str]) -> WaldTest:
    """Stata ``test``: a joint Wald test of linear hypotheses on named parameters.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
    >>> t = wald_test(res, "[1]Intercept = [2]Intercept")
    >>> t.df, t.pvalue < 1e-6
    (1, True)
    """
    items = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
    if not items:
        raise SpecificationError("test() needs at least one hypothesis")
    blocks = [parse_constraints(res, h) for h in items]
    R = np.vstack([b[0] for b in blocks])
    r = np.concatenate([b[1] for b in blocks])
    described = [describe_equation(res.layout, R[i], r[i]) for i in range(R.shape[0])]
    keep: list[int] = []
    dropped: list[str] = []
    for i in range(R.shape[0]):  # drop constraints implied by the ones kept (Stata's note)
        trial = R[keep + [i]]
        if np.linalg.matrix_rank(trial, tol=1e-10 * max(1.0, np.abs(trial).max())) > len(keep):
            keep.append(i)
        else:
            dropped.append(f"({i + 1})")
    if not keep:
        raise SpecificationError(f"no testable constraint in {items}: every coefficient cancels")
    R, r = R[keep], r[keep]
    b = res.params.to_numpy()
    V = res.cov_params().to_numpy()
    diff = R @ b - r
    S = R @ V @ R.T
    if not np.all(np.isfinite(S)):
        return WaldTest(np.nan, len(keep), np.nan, tuple(described), tuple(dropped))
    statistic = float(diff @ np.linalg.solve(S, diff))
    df = len(keep)
    if design_df(res) is not None:  # survey fit: Stata's adjusted Wald F
        F, _, df_r, p = adjusted_wald(statistic, df, design_df(res))
        return WaldTest(statistic, df, p, tuple(described), tuple(dropped), F=F, df_r=df_r)
    return WaldTest(statistic, df, float(chdtrc(df, statistic)), tuple(described), tuple(dropped))


@dataclass(frozen=True)
class Lincom:
    """A linear combination of parameters with its delta-method (linear) standard error."""

    expression: str
    estimate: float
    se: float
    z: float
    pvalue: float
    lower: float
    upper: float
    alpha: float = 0.05
    df: int | None = None  # survey fits: ``z`` is a t statistic on ``df`` (design) degrees of freedom

    def as_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"coef": [self.estimate], "std_err": [self.se], "z": [self.z], "p": [self.pvalue],
             "lower": [self.lower], "upper": [self.upper]},
            index=pd.Index([self.expression], name="lincom"),
        )

    def __str__(self) -> str:
        level = int(round(100 * (1 - self.alpha)))
        stat = "z" if self.df is None else "t"
        return (
            f" ( 1)  {self.expression} = 0\n\n"
            f"{'Coefficient':>12} {'Std. err.':>10} {stat:>8} {f'P>|{stat}|':>7}  [{level}% conf. interval]\n"
            f"{self.estimate:>12.7g} {self.se:>10.7g} {self.z:>8.2f} {self.pvalue:>7.3f} "
            f"{self.lower:>10.7g} {self.upper:>10.7g}"
        )


def lincom(res, expression: str, alpha: float = 0.05) -> Lincom:
    """Stata ``lincom``: estimate, standard error, z, p and CI of a linear combination.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
    >>> round(lincom(res, "[2]Intercept - [1]Intercept").estimate, 4)
    0.0074
    """
    R, r, had_equals = parse_constraints(res, expression)
    if had_equals:
        raise SpecificationError(f"lincom takes an expression, not an equation: {expression!r} (use test() for equations)")
    a, const = R[0], -r[0]
    estimate = float(a @ res.params.to_numpy() + const)
    se = float(np.sqrt(max(a @ res.cov_params().to_numpy() @ a, 0.0)))
    z = estimate / se if se > 0 else np.nan
    df = design_df(res)  # survey fits: t on the design df, as Stata's lincom after svy
    crit = critical_value(alpha, df)
    p = float(two_sided_p(z, df))
    return Lincom(expression, estimate, se, z, p, estimate - crit * se, estimate + crit * se, alpha, df)


# -- likelihood-ratio test ----------------------------------------------------
@dataclass(frozen=True)
class LRTest:
    """``LR = 2 (llf_full - llf_restricted)`` against chi2 on ``df_full - df_restricted``."""

    statistic: float
    df: int
    pvalue: float
    llf_restricted: float
    llf_full: float

    def __str__(self) -> str:
        return (
            "Likelihood-ratio test\n"
            f"Assumption: restricted nested within full\n\n"
            f" LR chi2({self.df}) = {self.statistic:>8.2f}\n Prob > chi2 = {self.pvalue:>8.4f}"
        )


def lrtest(first, second, force: bool = False) -> LRTest:
    """Stata ``lrtest``: likelihood-ratio test between two nested ML fits (either order).

    Refuses fits on different samples or responses, fits with the same number of
    parameters, and (unless ``force=True``) robust/cluster fits (the LR statistic assumes
    the model is right), fits with different numbers of classes (the chi2 reference is
    invalid on the boundary: use a bootstrap LR test) and models whose parameter names are
    not nested.
    """
    for r in (first, second):
        if not hasattr(r, "llf") or not hasattr(r, "df_model") or not hasattr(r, "design"):
            raise SpecificationError(f"lrtest compares two ML fits (MLResults), got {type(r).__name__}")
    for r in (first, second):
        refuse_under_survey(r, "lrtest")
    if first.nobs != second.nobs or not first.design.index.equals(second.design.index):
        raise SpecificationError(
            f"lrtest needs both fits on the same observations; they use {first.nobs} and {second.nobs} rows"
        )
    if first.spec.responses != second.spec.responses:
        raise SpecificationError(
            f"lrtest needs the same responses; got {first.spec.responses} and {second.spec.responses}"
        )
    y1 = [c.y for c in first.design.classes[0]]
    y2 = [c.y for c in second.design.classes[0]]
    if len(y1) == len(y2) and not all(np.array_equal(a, b) for a, b in zip(y1, y2)):
        raise SpecificationError("lrtest needs both fits on the same response data")
    if first.df_model == second.df_model:
        raise SpecificationError(
            f"both models have {first.df_model} parameters: they are not nested (or are the same model)"
        )
    restricted, full = (first, second) if first.df_model < second.df_model else (second, first)
    if not force:
        robust = [r.vce for r in (first, second) if r.vce in ("robust", "cluster")]
        if robust:
            raise SpecificationError(
                f"LR test is likely invalid after vce='{robust[0]}' (Stata refuses it too); "
                "use a Wald test (res.test) or force=True"
            )
        if restricted.k != full.k:
            raise SpecificationError(
                f"models with {restricted.k} and {full.k} classes: the LR statistic does not have a chi2 "
                "distribution when the smaller model lies on the boundary; use a parametric bootstrap LR test, "
                "or force=True"
            )
        missing = [param_label(key) for key in restricted.layout.index if key not in set(full.layout.index)]
        if missing:
            raise SpecificationError(
                f"the models are not nested: the restricted model has {', '.join(missing[:5])}, which the "
                "full model lacks (force=True to test anyway)"
            )
    statistic = 2.0 * (full.llf - restricted.llf)
    if statistic < -1e-6 * (abs(full.llf) + 1):
        warnings.warn(
            f"the larger model has the lower log likelihood ({full.llf:.6g} < {restricted.llf:.6g}): the models "
            "are not nested or a fit did not reach its maximum",
            UserWarning,
            stacklevel=3,
        )
    df = int(full.df_model - restricted.df_model)
    return LRTest(statistic, df, float(chdtrc(df, max(statistic, 0.0))), restricted.llf, full.llf)


# -- information criteria -----------------------------------------------------
def ic(res) -> pd.Series:
    """``llf``, ``df``, ``nobs`` and the criteria of :mod:`bayesfmm.criteria` (AIC, AICc,
    BIC, CAIC, ICL, ICL-BIC, entropy), smaller is better.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
    >>> list(ic(res).index[:4])
    ['llf', 'df', 'nobs', 'AIC']
    """
    refuse_under_survey(res, "ic() (AIC, BIC and the other information criteria)")
    values = {"llf": res.llf, "df": res.df_model, "nobs": res.nobs}
    values.update(fit_criteria(res))
    return pd.Series(values, name="ic", dtype=float)


# -- relabelling --------------------------------------------------------------
def _permutation(res, by, descending: bool) -> list[int]:
    k = res.k
    if isinstance(by, (list, tuple, np.ndarray)) and len(by) == k and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in by
    ):
        order = [int(v) for v in by]
        if sorted(order) != list(range(1, k + 1)):
            raise SpecificationError(f"relabel order must be a permutation of 1..{k}, got {order}")
        return [v - 1 for v in order]
    if isinstance(by, str) and by == "lcprob":
        values = res.lcprob()["margin"].to_numpy()
    else:
        if isinstance(by, str):
            by = (res.spec.responses[0], by)
        if not (isinstance(by, tuple) and len(by) == 2 and all(isinstance(v, str) for v in by)):
            raise SpecificationError(
                "relabel(by=...) takes (equation, term) such as ('thickness', 'Intercept'), a term, "
                f"'lcprob', or a permutation of 1..{k}; got {by!r}"
            )
        equation, term = by[0], "Intercept" if by[1] == "_cons" else by[1]
        values = []
        for j in range(1, k + 1):
            if (j, equation, term) not in res.params.index:
                raise SpecificationError(f"relabel: class {j} has no parameter {equation}:{term}")
            values.append(res.params[(j, equation, term)])
        values = np.asarray(values)
    order = np.argsort(-values if descending else values, kind="stable")
    return [int(v) for v in order]


def _relabelled_spec(spec, perm: list[int], formula: str | None):
    """The spec with its classes permuted: hybrid components reordered (when the base class
    changes, every non-base component takes the (shared) class-model formula), and
    class-specific constraints (``constraints=``, ``nested=``) renumbered."""
    changes = {}
    if spec.constraints or spec.nested:
        constraints, nested = remap_classes(spec, perm)
        changes.update(constraints=list(constraints) or None, nested=nested or None)
    if not spec.hybrid:
        return spec.rebuild(**changes) if changes else spec

    base = spec.lcbase - 1
    comps = []
    for j, old in enumerate(perm):
        c = spec.components[old]
        if spec.lcprob is not None:
            lcprob = None
        elif perm[base] == base:
            lcprob = c.lcprob
        else:
            lcprob = None if j == base else formula
        comps.append(Component(c.formula, c.family_name, lcprob=lcprob, offset=c.offset, exposure=c.exposure, **c.options))
    return spec.rebuild(components=comps, **changes)


def relabel(res, by, descending: bool = False):
    """Permute the classes of a fit; every table follows (Stata users sort classes by hand).

    ``by`` is ``(equation, term)`` (sort classes by that parameter, ascending unless
    ``descending``), a term of the first response, ``"lcprob"`` (by class probability), or
    a permutation ``[3, 1, 2]`` (new class 1 is old class 3, ...). The base class keeps its
    number (``lcbase``); the class logits are re-expressed against the new base class
    (``gamma'_j = gamma_{old(j)} - gamma_{old(base)}``), a linear map ``A`` applied to the
    estimates and, as ``A V A'``, to their covariance (any ``vce``).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
    >>> new = relabel(res, ("thickness", "Intercept"), descending=True)
    >>> bool(new.params[(1, "thickness", "Intercept")] > new.params[(3, "thickness", "Intercept")])
    True
    """
    perm = _permutation(res, by, descending)
    design, layout = res.design, res.layout
    base = design.base
    designs = design.class_designs
    non_base = [d for d in designs if d is not None]
    if perm[base] != base and non_base:
        first = non_base[0]
        if any(d.terms != first.terms or not np.array_equal(d.Z, first.Z) for d in non_base[1:]):
            raise SpecificationError(
                f"the classes have different class-model covariates: relabel can only permute classes that keep "
                f"class {base + 1} as the base class (or refit with another lcbase=)"
            )
    shared = non_base[0] if non_base else None
    new_designs = tuple(None if j == base else (designs[old] if designs[old] is not None else shared)
                        for j, old in enumerate(perm))
    formula = None
    if design.spec.hybrid and shared is not None:
        formula = next(design.spec.class_lcprob(j) for j in range(res.k) if j != base)
    new_design = dataclasses.replace(
        design,
        spec=_relabelled_spec(design.spec, perm, formula),
        classes=tuple(design.classes[old] for old in perm),
        class_designs=new_designs,
    )
    new_layout = build_layout(new_design)
    problem = MixtureProblem.build(new_design, new_layout)
    A = class_permutation_matrix(layout, new_layout, perm)
    theta = A @ res.theta
    cov = A @ res.cov_theta @ A.T
    _, gradient, hessian = score_hessian(problem, theta)
    return dataclasses.replace(res, problem=problem, theta=theta, cov_theta=cov, gradient=gradient, hessian=hessian)
