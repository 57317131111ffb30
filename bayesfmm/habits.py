"""The habits statsmodels, flexmix and Stata users bring to a results object.

statsmodels: ``fittedvalues``, ``resid``, ``tvalues``, ``df_resid``, ``llnull`` and the
likelihood-ratio test against it (``llr``, ``llr_pvalue``). flexmix: ``clusters()`` (the
modal class of each row), ``parameters()`` (a wide table, one column per class). Stata:
``eform`` (exponentiated coefficients with their intervals) and ``nlcom`` (delta-method
nonlinear combinations of named parameters).

Each function takes a fitted results object (:class:`~bayesfmm.results.MLResults` or
:class:`~bayesfmm.bayes.results.BayesResults`; the methods of the same names call them).
ML results get delta-method standard errors; Bayesian results summarise the quantity over
the posterior draws (mean, sd, equal-tailed interval).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayesfmm.errors import SpecificationError, check_alpha
from bayesfmm.likelihood import evaluate
from bayesfmm.names import _read_name, _resolve
from bayesfmm.ops import Lazy
from bayesfmm.postestimation import numerical_jacobian
from bayesfmm.simulate import component_columns

minimize = Lazy("scipy.optimize", "minimize")  # scipy submodules load on first use
expit, logit, ndtr, ndtri = (Lazy("scipy.special", f) for f in ("expit", "logit", "ndtr", "ndtri"))
chi2 = Lazy("scipy.stats", "chi2")

__all__ = [
    "fittedvalues", "resid", "llnull", "NullTest", "lrtest_null", "clusters", "parameters",
    "eform", "nlcom", "report_draws",
]


def _is_bayes(res: Any) -> bool:
    return hasattr(res, "theta_draws")


def report_draws(res: Any, max_draws: int | None = None) -> np.ndarray:
    """Posterior draws on the reporting scale (draws x parameters), thinned evenly to
    ``max_draws``."""
    draws = res._flat_report
    if max_draws is not None and draws.shape[0] > max_draws:
        draws = draws[np.linspace(0, draws.shape[0] - 1, int(max_draws)).round().astype(int)]
    return draws


def _summarise(values: np.ndarray, alpha: float) -> pd.DataFrame:
    """Posterior mean, sd and equal-tailed interval of each column of ``values``."""
    alpha = check_alpha(alpha)
    return pd.DataFrame({
        "coef": values.mean(axis=0),
        "std_err": values.std(axis=0, ddof=1),
        "lower": np.quantile(values, alpha / 2, axis=0),
        "upper": np.quantile(values, 1 - alpha / 2, axis=0),
    })


def _wald_frame(value: np.ndarray, se: np.ndarray, alpha: float) -> pd.DataFrame:
    z = ndtri(1 - check_alpha(alpha) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = value / se
    return pd.DataFrame({
        "coef": value, "std_err": se, "z": stat, "p": 2 * ndtr(-np.abs(stat)),
        "lower": value - z * se, "upper": value + z * se,
    })


# -- statsmodels ------------------------------------------------------------------------
def _equation(res: Any, equation: str | None) -> str:
    responses = tuple(res.spec.responses)
    if equation is None:
        return responses[0]
    if equation not in responses:
        raise SpecificationError(f"equation {equation!r} is not a response of the model; responses: {responses}")
    return equation


def fittedvalues(res: Any, equation: str | None = None) -> pd.Series | pd.DataFrame:
    """The fitted marginal mean of the response, ``sum_j pi_ij mu_ij`` per row
    (statsmodels ``fittedvalues``; Stata ``predict, mu marginal``); a DataFrame with a
    column per response for a response of several columns (``mvnormal``)."""
    equation = _equation(res, equation)
    fitted = res.predict(kind="mu", marginal=True, equation=equation)
    if isinstance(fitted, pd.DataFrame):
        return fitted
    return fitted.rename("fittedvalues")


def observed(res: Any, equation: str | None = None) -> pd.Series | pd.DataFrame:
    """The response as the fit used it (rows kept after dropping missing values); a
    DataFrame for a response of several columns (``mvnormal``)."""
    equation = _equation(res, equation)
    for comps in res.design.classes:
        for comp in comps:
            if comp.response == equation:
                y = np.asarray(comp.y, dtype=float)
                if y.ndim == 2:
                    return pd.DataFrame(y, index=res.design.index, columns=list(component_columns(comp)))
                return pd.Series(y, index=res.design.index, name=equation)
    raise SpecificationError(f"no component models {equation!r}")  # pragma: no cover


def resid(res: Any, equation: str | None = None) -> pd.Series | pd.DataFrame:
    """Response residuals ``y - fittedvalues`` (statsmodels ``resid``); a DataFrame for a
    response of several columns (``mvnormal``)."""
    difference = observed(res, equation) - fittedvalues(res, equation)
    return difference if isinstance(difference, pd.DataFrame) else difference.rename("resid")


def _null_keys(res: Any) -> list[tuple[int, int, str]] | None:
    """(component, slot, term) of the null model's free parameters: every auxiliary
    parameter and every intercept, shared by all classes; None when the classes differ
    in their families (no one-class null model)."""
    classes = res.design.classes
    signature = [tuple((c.response, c.family.name, tuple(c.component.options.items())) for c in comps) for comps in classes]
    if any(sig != signature[0] for sig in signature):
        return None
    keys = []
    for block in res.layout.blocks:
        if block.kind == "slot" and block.class_ == 1:
            for term in block.terms:
                if not block.linear or term == "Intercept":
                    keys.append((block.component, block.slot, term))
    return keys


def llnull(res: Any) -> float:
    """Log likelihood of the null model: one class, the same component families with
    intercepts only (offsets and exposures kept), fitted by ML (statsmodels ``llnull``).

    NaN when the classes have different families (hybrid syntax such as a point mass next
    to a Poisson): there is no one-class model with the same components.
    """
    keys = _null_keys(res)
    if keys is None:
        return float("nan")
    positions: dict[tuple[int, int, str], list[int]] = {key: [] for key in keys}
    for block in res.layout.blocks:
        if block.kind == "slot":
            for i, term in enumerate(block.terms):
                key = (block.component, block.slot, term)
                if key in positions:
                    positions[key].append(block.start + i)
    start = np.array([res.theta[positions[key][0]] for key in keys])
    problem = res.problem

    def theta_of(phi: np.ndarray) -> np.ndarray:
        theta = np.zeros(res.layout.size)
        for value, key in zip(phi, keys):
            theta[positions[key]] = value
        return theta

    def objective(phi: np.ndarray) -> float:
        llf = evaluate(problem, theta_of(phi)).llf
        return -llf if np.isfinite(llf) else 1e300

    best = minimize(objective, start, method="BFGS", options={"gtol": 1e-8})
    polished = minimize(objective, best.x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
    return float(-min(best.fun, polished.fun))


@dataclass(frozen=True)
class NullTest:
    """Likelihood-ratio test of the fit against its null model (statsmodels ``llr``).

    With ``k > 1`` the null sits on the boundary of the mixture's parameter space, so the
    chi2 p-value is only a guide (use :func:`bayesfmm.bootstrap_lrt` to test classes).
    """

    statistic: float
    df: int
    pvalue: float
    llnull: float
    llf: float

    def __str__(self) -> str:
        return (
            "Likelihood-ratio test against the null model (one class, intercepts only)\n"
            f" LR chi2({self.df}) = {self.statistic:>8.2f}\n Prob > chi2 = {self.pvalue:>8.4f}"
        )


def lrtest_null(res: Any) -> NullTest:
    """``LR = 2 (llf - llnull)`` on ``df_model - df_null`` degrees of freedom."""
    null = llnull(res)
    keys = _null_keys(res) or []
    df = int(res.df_model - len(keys))
    stat = 2.0 * (res.llf - null)
    return NullTest(statistic=stat, df=df, pvalue=float(chi2.sf(stat, df)) if df > 0 else float("nan"), llnull=null, llf=res.llf)


# -- flexmix ---------------------------------------------------------------------------
def clusters(res: Any, data: pd.DataFrame | None = None) -> pd.Series:
    """The modal class of each row (flexmix ``clusters()``): the class with the largest
    posterior probability, 1..k."""
    post = res.predict(data, kind="classposteriorpr")
    return pd.Series(np.asarray(post).argmax(axis=1) + 1, index=post.index, name="class")


def parameters(res: Any, which: str = "model") -> pd.DataFrame:
    """The estimates as a wide table, one column per class (flexmix ``parameters()``).

    ``which="model"`` gives the component parameters (index equation, term);
    ``"concomitant"`` the class model (index term; the base class's column is 0).
    """
    params = res.params
    if which == "model":
        part = params[params.index.get_level_values("equation") != "Class"]
        wide = part.unstack("class")
        order = list(dict.fromkeys((e, t) for _, e, t in part.index))
        return wide.reindex(order)
    if which == "concomitant":
        part = params.xs("Class", level="equation")
        wide = part.unstack("class").reindex(columns=range(1, res.k + 1)).fillna({res.spec.lcbase: 0.0})
        wide.columns.name = "class"
        return wide
    raise SpecificationError(f"which={which!r}: choose 'model' or 'concomitant'")


# -- Stata -----------------------------------------------------------------------------
def eform(res: Any, alpha: float = 0.05) -> pd.DataFrame:
    """Exponentiated coefficients (Stata ``eform``): odds ratios, incidence-rate ratios,
    hazard ratios, relative-risk ratios of the class model.

    ML: ``exp(b)``, its standard error ``exp(b) se(b)`` (delta method, as Stata) and
    ``exp()`` of the interval of ``b``; z and p are those of ``b``. Bayes: the posterior
    mean, sd and equal-tailed interval of ``exp(b)``. Auxiliary parameters (``var(e)``,
    cutpoints, ...) are left out, as Stata does.
    """
    linear = ~np.asarray(res.layout.is_aux())
    index = res.layout.index[linear]
    if _is_bayes(res):
        frame = _summarise(np.exp(report_draws(res)[:, linear]), alpha)
        frame.index = index
        return frame.rename(columns={"coef": "exp(b)"})
    b = res.params.to_numpy()[linear]
    se = res.bse.to_numpy()[linear]
    frame = _wald_frame(b, se, alpha)
    out = pd.DataFrame({
        "exp(b)": np.exp(b), "std_err": np.exp(b) * se, "z": frame["z"].to_numpy(), "p": frame["p"].to_numpy(),
        "lower": np.exp(frame["lower"].to_numpy()), "upper": np.exp(frame["upper"].to_numpy()),
    }, index=index)
    return out


_FUNCTIONS = {
    "exp": np.exp, "log": np.log, "ln": np.log, "sqrt": np.sqrt, "abs": np.abs, "invlogit": expit,
    "logit": logit, "normal": ndtr, "invnormal": ndtri, "pi": np.pi,
}


def _compile_expression(res: Any, expression: str) -> tuple[str, list[int]]:
    """``exp([2]x) / [1]x`` -> ``exp(_b[0]) / _b[1]`` and the parameters' positions."""
    out, used, i = [], [], 0
    while i < len(expression):
        ch = expression[i]
        if ch == "[":
            close = expression.find("]", i)
            if close < 0:
                raise SpecificationError(f"unclosed '[' in {expression!r}: write [class]term, e.g. [2]x1")
            end = _read_name(expression, close + 1)
            position = _resolve(res.layout, expression[i + 1:close].strip(), expression[close + 1:end])
            if position not in used:
                used.append(position)
            out.append(f"_b[{used.index(position)}]")
            i = end
        else:
            out.append(ch)
            i += 1
    code = "".join(out)
    for name in re.findall(r"[A-Za-z_]\w*", re.sub(r"_b\[\d+\]", "", code)):
        if name not in _FUNCTIONS:
            raise SpecificationError(
                f"nlcom: {name!r} is neither a parameter ([class]term) nor a function "
                f"({', '.join(sorted(_FUNCTIONS))})"
            )
    return code, used


def nlcom(res: Any, expressions: str | dict[str, str] | list[str], alpha: float = 0.05) -> pd.DataFrame:
    """Nonlinear combinations of named parameters (Stata ``nlcom``), on the reporting scale.

    ``expressions`` is one expression, a list, or ``{name: expression}``: parameters as in
    ``res.test`` (``[2]x``, ``[1]y:x``, ``[2]Class:Intercept``, ``[1]var(e)``), numbers,
    ``+ - * / **`` and ``exp``, ``log``, ``sqrt``, ``invlogit``, ``logit``, ``normal``.
    ML: delta-method standard errors from ``cov_params()``, z, p and a normal interval.
    Bayes: the expression evaluated at every draw and summarised.
    """
    if isinstance(expressions, str):
        expressions = {expressions: expressions}
    elif not isinstance(expressions, dict):
        expressions = {e: e for e in expressions}
    rows = []
    for name, text in expressions.items():
        code, used = _compile_expression(res, text)
        compiled = compile(code, f"nlcom({text})", "eval")

        def func(b, compiled=compiled):
            return np.asarray(eval(compiled, {"__builtins__": {}, **_FUNCTIONS}, {"_b": b}), dtype=float)

        if _is_bayes(res):
            values = np.array([func(draw[used]) for draw in report_draws(res)]).reshape(-1, 1)
            frame = _summarise(values, alpha)
        else:
            b = res.params.to_numpy()[used]
            cov = res.cov_params().to_numpy()[np.ix_(used, used)]
            jac = numerical_jacobian(lambda v: np.atleast_1d(func(v)), b)
            value = np.atleast_1d(func(b))
            se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", jac, cov, jac), 0, None))
            frame = _wald_frame(value, se, alpha)
        frame.index = [name]
        rows.append(frame)
    out = pd.concat(rows)
    out.index.name = "expression"
    return out
