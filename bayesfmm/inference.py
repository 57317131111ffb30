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
import difflib
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import chdtrc  # chi-square survival function; scipy.stats costs ~0.6 s to import
from scipy.special import ndtr, ndtri

from bayesfmm.errors import SpecificationError

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

CLASS_EQUATION = "Class"
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _label(key: tuple) -> str:
    return f"[{key[0]}]{key[1]}:{key[2]}"


def parameter_names(res) -> list[str]:
    """Every parameter as ``[class]equation:term``, in ``res.params`` order.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> res = bf.FMM("thickness ~ 1", k=2).fit(bf.datasets.load("stamp"))
    >>> parameter_names(res)[:2]
    ['[2]Class:Intercept', '[1]thickness:Intercept']
    """
    return [_label(key) for key in res.layout.index]


# -- parsing ------------------------------------------------------------------
def _read_name(text: str, i: int) -> int:
    """End of a term name starting at ``i``: stops at an operator or a space outside
    brackets, so ``Treatment[T.b]``, ``np.log(x)`` and ``I(x - 1)`` are single names."""
    depth = 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and (ch in "+-*/=" or ch.isspace()):
            break
        i += 1
    return i


def _tokens(text: str) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "+-*/=":
            out.append(("op", ch))
            i += 1
        elif ch == "[":
            close = text.find("]", i)
            if close < 0:
                raise SpecificationError(f"unclosed '[' in {text!r}: write [class]term, e.g. [2]x1")
            end = _read_name(text, close + 1)
            if end == close + 1:
                raise SpecificationError(f"no term after {text[i:close + 1]!r} in {text!r}: write [class]term")
            out.append(("name", (text[i + 1 : close].strip(), text[close + 1 : end])))
            i = end
        elif ch.isdigit() or ch == ".":
            match = _NUMBER.match(text, i)
            if not match:
                raise SpecificationError(f"cannot read a number at {text[i:]!r} in {text!r}")
            out.append(("num", float(match.group(0))))
            i = match.end()
        elif ch.isalpha() or ch == "_":
            end = _read_name(text, i)
            out.append(("name", (None, text[i:end])))
            i = end
        else:
            raise SpecificationError(f"unexpected {ch!r} in {text!r}")
    return out


def _resolve(res, class_text: str | None, rest: str) -> int:
    """Position of the parameter ``[class_text]rest`` in ``res.params``."""
    index = list(res.layout.index)
    names = [_label(key) for key in index]
    written = f"[{class_text}]{rest}" if class_text is not None else rest
    if class_text is None:
        if res.k != 1:
            raise SpecificationError(f"{rest!r}: name the class, e.g. [1]{rest} (the model has {res.k} classes)")
        class_ = 1
    else:
        text = class_text[:-6] if class_text.endswith(".Class") else class_text
        if not text.isdigit() or not 1 <= int(text) <= res.k:
            raise SpecificationError(f"{written!r}: the class in [ ] must be a number from 1 to {res.k}")
        class_ = int(text)
    equations = list(dict.fromkeys(key[1] for key in index if key[0] == class_))
    equation, term = None, rest
    if ":" in rest:
        head, tail = rest.split(":", 1)
        if head in equations or head == CLASS_EQUATION:
            equation, term = head, tail
    term = "Intercept" if term == "_cons" else term
    positions = {key: i for i, key in enumerate(index)}
    if equation is not None:
        found = [positions[(class_, equation, term)]] if (class_, equation, term) in positions else []
    else:
        responses = [e for e in equations if e != CLASS_EQUATION]
        found = [positions[(class_, e, term)] for e in responses if (class_, e, term) in positions]
        if len(found) > 1:
            options = " or ".join(f"[{class_}]{e}:{term}" for e in responses if (class_, e, term) in positions)
            raise SpecificationError(f"{written!r} is ambiguous: write {options}")
        if not found and (class_, CLASS_EQUATION, term) in positions:
            found = [positions[(class_, CLASS_EQUATION, term)]]
    if found:
        return found[0]
    hint = ""
    if equation == CLASS_EQUATION and class_ == res.design.base + 1:
        hint = f" (class {class_} is the base class: its logit is fixed at 0)"
    target = f"[{class_}]{equation}:{term}" if equation else f"[{class_}]{term}"
    short = [n.split("]", 1)[0] + "]" + n.split(":", 1)[1] for n in names]
    close = difflib.get_close_matches(target, names + short, n=4, cutoff=0.5)
    close = list(dict.fromkeys(close))
    suggestion = f"; close matches: {', '.join(close)}" if close else f"; parameters: {', '.join(names[:12])}"
    raise SpecificationError(f"unknown parameter {written!r}{hint}{suggestion}")


def _side(res, tokens: list, text: str) -> tuple[np.ndarray, float]:
    """``a . b + const`` of one side of an equation."""
    a = np.zeros(res.layout.size)
    const = 0.0
    i = 0
    if not tokens:
        raise SpecificationError(f"an empty side in {text!r}")
    while i < len(tokens):
        sign = 1.0
        while i < len(tokens) and tokens[i][0] == "op" and tokens[i][1] in "+-":
            sign = -sign if tokens[i][1] == "-" else sign
            i += 1
        coef, position, divide = sign, None, False
        expect_factor = True
        while i < len(tokens):
            kind, value = tokens[i]
            if expect_factor:
                if kind == "num":
                    coef = coef / value if divide else coef * value
                elif kind == "name":
                    if position is not None or divide:
                        raise SpecificationError(f"{text!r} is not linear in the parameters")
                    position = _resolve(res, *value)
                else:
                    raise SpecificationError(f"unexpected {value!r} in {text!r}")
                expect_factor = False
                i += 1
            elif kind == "op" and value in "*/":
                divide = value == "/"
                expect_factor = True
                i += 1
            elif kind == "op" and value in "+-":
                break
            else:
                shown = value if kind == "op" else (f"[{value[0]}]{value[1]}" if kind == "name" else value)
                raise SpecificationError(f"expected an operator before {shown!r} in {text!r}")
        if expect_factor:
            raise SpecificationError(f"{text!r} ends with an operator")
        if position is None:
            const += coef
        else:
            a[position] += coef
    return a, const


def parse_constraints(res, expression: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Parse ``"[1]x1 = [2]x1"`` (or ``"lhs = mid = rhs"``) into ``R b = r``.

    Without ``=`` the expression is set equal to 0. Returns ``(R, r, had_equals)``.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise SpecificationError(f"a hypothesis must be a non-empty string such as '[1]x1 = [2]x1', got {expression!r}")
    tokens = _tokens(expression)
    sides: list[list] = [[]]
    for token in tokens:
        if token == ("op", "="):
            sides.append([])
        else:
            sides[-1].append(token)
    parsed = [_side(res, side, expression) for side in sides]
    if len(parsed) == 1:
        a, const = parsed[0]
        return a[None, :], np.array([-const]), False
    rows, rhs = [], []
    for (a1, c1), (a2, c2) in zip(parsed[:-1], parsed[1:]):
        rows.append(a1 - a2)
        rhs.append(c2 - c1)
    return np.array(rows), np.array(rhs), True


def _describe(res, row: np.ndarray, rhs: float) -> str:
    names = [_label(key) for key in res.layout.index]
    parts = []
    for i in np.flatnonzero(row):
        coef = row[i]
        sign = "-" if coef < 0 else "+"
        size = "" if abs(coef) == 1 else f"{abs(coef):g}*"
        parts.append(f"{sign} {size}{names[i]}")
    text = " ".join(parts).lstrip("+ ")
    if text.startswith("- "):
        text = "-" + text[2:]
    return f"{text} = {rhs:g}"


# -- Wald test and lincom -------------------------------------------------------
@dataclass(frozen=True)
class WaldTest:
    """A joint Wald test ``R b = r``: ``chi2 = (Rb - r)' (R V R')^- (Rb - r)`` on ``df`` =
    rank degrees of freedom (dependent constraints are dropped, as Stata does)."""

    statistic: float
    df: int
    pvalue: float
    constraints: tuple[str, ...]
    dropped: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [f" ({i + 1:>2})  {c}" for i, c in enumerate(self.constraints)]
        lines += [f"       Constraint {c} dropped" for c in self.dropped]
        lines += ["", f"           chi2({self.df:>3}) = {self.statistic:>8.2f}", f"         Prob > chi2 = {self.pvalue:>10.4f}"]
        return "\n".join(lines)

    def as_series(self) -> pd.Series:
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
    described = [_describe(res, R[i], r[i]) for i in range(R.shape[0])]
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

    def as_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"coef": [self.estimate], "std_err": [self.se], "z": [self.z], "p": [self.pvalue],
             "lower": [self.lower], "upper": [self.upper]},
            index=pd.Index([self.expression], name="lincom"),
        )

    def __str__(self) -> str:
        level = int(round(100 * (1 - self.alpha)))
        return (
            f" ( 1)  {self.expression} = 0\n\n"
            f"{'Coefficient':>12} {'Std. err.':>10} {'z':>8} {'P>|z|':>7}  [{level}% conf. interval]\n"
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
    crit = ndtri(1 - alpha / 2)
    return Lincom(expression, estimate, se, z, float(2 * ndtr(-abs(z))), estimate - crit * se, estimate + crit * se, alpha)


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
        missing = [_label(key) for key in restricted.layout.index if key not in set(full.layout.index)]
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
    from bayesfmm.criteria import fit_criteria

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
    from bayesfmm.constraints import remap_classes
    from bayesfmm.spec import FMM, Component

    options = spec.structure_options()
    if spec.constraints or spec.nested:
        constraints, nested = remap_classes(spec, perm)
        options.update(constraints=list(constraints) or None, nested=nested or None)
    if not spec.hybrid:
        if not (spec.constraints or spec.nested):
            return spec
        return FMM(list(spec.components), k=spec.k, **options)

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
    return FMM(comps, **options)


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
    from bayesfmm.likelihood import MixtureProblem, score_hessian
    from bayesfmm.params import build_layout

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
    A = np.zeros((new_layout.size, layout.size))
    old_class = {b.class_: b for b in layout.class_blocks}
    for block in new_layout.blocks:
        rows = np.arange(block.start, block.stop)
        if block.kind == "class":
            plus, minus = old_class.get(perm[block.class_ - 1] + 1), old_class.get(perm[base] + 1)
            for sign, src in ((1.0, plus), (-1.0, minus)):
                if src is not None:
                    A[rows, np.arange(src.start, src.stop)] += sign
        else:
            src = layout.slot_block(perm[block.class_ - 1] + 1, block.component, block.slot)
            A[rows, np.arange(src.start, src.stop)] = 1.0
    theta = A @ res.theta
    cov = A @ res.cov_theta @ A.T
    _, gradient, hessian = score_hessian(problem, theta)
    return dataclasses.replace(res, problem=problem, theta=theta, cov_theta=cov, gradient=gradient, hessian=hessian)
