"""A Stata-like coefficient table for fitted mixtures.

``str(res.summary())`` lays the estimates out as Stata's ``fmm`` output does: the class
model first (base class marked), then one table per class and response, auxiliary
parameters (``var(e)``) below a rule with their log-scale confidence intervals.
Below a multivariate normal (``mvnormal``) component follows its covariance matrix on the
reported scale: variances, covariances and correlations with delta-method standard errors
(:func:`bayesfmm.mvresults.component_covariance_tables`; ``.covariances``).
``.as_frame()`` returns the coefficient table as a DataFrame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesfmm.mvresults import component_covariance_tables, has_mvnormal, iv_covariance_table

__all__ = ["Summary", "format_number"]


def _covariances(res, alpha: float) -> tuple:
    """((class, response), frame) of every mvnormal and ivregress component's error
    covariance on the reported scale (Stata prints ivregress's var(e.y), cov(e.w,e.y))."""
    out = dict(component_covariance_tables(res, alpha)) if has_mvnormal(res.problem) else {}
    ivregress = [(j + 1, comp.response) for j, comps in enumerate(res.problem.design.classes)
                 for comp in comps if comp.family.name == "ivregress"]
    if ivregress and getattr(res, "cov_theta", None) is not None:
        table = iv_covariance_table(res, alpha)
        for j, response in ivregress:
            out[(j, response)] = table.xs(j, level="class")
    return tuple(out.items())

RULE = "-" * 78
# The line Stata prints above "Std. err." for each variance estimator.
SE_PREFIX = {"oim": "", "opg": "OPG", "robust": "Robust", "cluster": "Robust", "linearized": "Linearized"}
WIDTH_LABEL = 13


def _fixed(x: float, decimals: int) -> str:
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text.startswith("0."):
        text = text[1:]
    elif text.startswith("-0."):
        text = "-" + text[2:]
    return text


def format_number(x: float, width: int = 10) -> str:
    """Stata's ``%9.0g``-like display: up to 7 significant digits in at most 8 characters
    (plus the sign), no leading zero; scientific notation for very small or large values."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return " " * width
    if x == 0:
        text = "0"
    elif abs(x) < 1e-4 or abs(x) >= 1e7:
        text = f"{x:.2e}"
    else:
        decimals = max(0, 7 - (int(math.floor(math.log10(abs(x)))) + 1))
        text = _fixed(x, decimals)
        while len(text.lstrip("-")) > 8 and decimals > 0:
            decimals -= 1
            text = _fixed(x, decimals)
    return text.rjust(width)


def _abbrev(name: str, width: int = WIDTH_LABEL - 1) -> str:
    """Stata's middle abbreviation: ``thickness`` -> ``thic~s`` when too long."""
    if len(name) <= width:
        return name
    keep = width - 1
    head = keep - 1
    return name[:head] + "~" + name[-1:]


def _term_label(term: str) -> str:
    return "_cons" if term == "Intercept" else term


@dataclass(frozen=True)
class Summary:
    """The structured summary of a fit; ``str()`` gives the Stata-like text."""

    frame: pd.DataFrame
    title: str
    nobs: int
    llf: float
    k: int
    base: int
    alpha: float
    models: dict
    converged: bool
    vce: str
    cluster_note: str = ""
    aux_terms: frozenset = frozenset()  # (class, equation, term) of auxiliary parameters
    constraints: tuple[str, ...] = ()  # the equations a constrained fit holds, as Stata lists them
    fixed_terms: frozenset = frozenset()  # parameters fixed at a value: "(constrained)"
    equations: tuple = ()  # ((class, response), (equation, ...)) where a component has several (mlogit)
    stat: str = "z"  # "t" after a survey fit (design degrees of freedom)
    survey_lines: tuple[str, ...] = ()  # Stata's svy header: strata, PSUs, population size, design df
    # ((class, response), frame): an mvnormal component's var/cov/corr with delta-method SEs
    covariances: tuple = ()

    @staticmethod
    def model_fields(res, alpha: float) -> dict:
        """The fields every summary takes from a fit's model: sizes, class and response
        layout, and which rows are auxiliary parameters (printed below a rule)."""
        models = {}
        for j, comps in enumerate(res.design.classes):
            for comp in comps:
                models[(j + 1, comp.response)] = comp.family.stata_name or comp.family.name
        equations: dict = {}
        for b in res.layout.blocks:
            if b.kind == "slot":
                key = (b.class_, res.design.classes[b.class_ - 1][b.component].response)
                equations.setdefault(key, dict.fromkeys(()))[b.equation] = None
        return {
            "nobs": res.nobs,
            "llf": res.llf,
            "k": res.k,
            "base": res.design.base + 1,
            "alpha": alpha,
            "models": models,
            "aux_terms": frozenset(t for t, aux in zip(res.layout.index, res.layout.is_aux()) if aux),
            "constraints": res.layout.constraints.descriptions if res.layout.constraints is not None else (),
            "fixed_terms": frozenset(t for t, fixed in zip(res.layout.index, res.layout.fixed_mask()) if fixed),
            "equations": tuple((key, tuple(eqs)) for key, eqs in equations.items()),
        }

    @classmethod
    def from_results(cls, res, alpha: float = 0.05) -> "Summary":
        ci = res.conf_int(alpha)
        frame = pd.DataFrame(
            {
                "coef": res.params,
                "std_err": res.bse,
                "z": res.zvalues,
                "p": res.pvalues,
                "lower": ci["lower"],
                "upper": ci["upper"],
            }
        )
        return cls(
            frame=frame,
            title="Finite mixture model",
            # after svy, subpop(): Stata's "Number of obs" counts the whole design
            **{**cls.model_fields(res, alpha), **({} if res.design.survey is None else {"nobs": res.design.survey.n_obs})},
            converged=res.converged,
            vce=res.vce,
            cluster_note=(
                f"(Std. err. adjusted for {res.n_clusters:,} clusters in {res.cluster})"
                if res.vce == "cluster" and getattr(res, "n_clusters", None)
                else ""
            ),
            stat="z" if res.design.survey is None else "t",
            survey_lines=() if res.design.survey is None else tuple(res.design.survey.header()),
            covariances=_covariances(res, alpha),
        )

    def as_frame(self) -> pd.DataFrame:
        """The table as a DataFrame (columns coef, std_err, z, p, lower, upper)."""
        return self.frame.copy()

    def _header_row(self) -> str:
        level = int(round(100 * (1 - self.alpha)))
        prefix = SE_PREFIX.get(self.vce, "")
        above = f"{'':>{WIDTH_LABEL}}|{'':>12}{prefix:>10}\n" if prefix else ""
        return above + (
            f"{'':>{WIDTH_LABEL}}|{'Coefficient':>12}{'Std. err.':>11}{self.stat:>9}{f'P>|{self.stat}|':>8}"
            f"     [{level}% conf. interval]"
        )

    def _row(self, label: str, row: pd.Series, aux: bool = False, fixed: bool = False) -> str:
        coef = format_number(row["coef"], 11)
        if fixed:
            return f"{label:>{WIDTH_LABEL - 1}} |{coef}  (constrained)"
        se = format_number(row["std_err"], 11)
        if aux:
            z = p = ""
        else:
            z = f"{row['z']:.2f}" if np.isfinite(row["z"]) else ""
            p = f"{row['p']:.3f}" if np.isfinite(row["p"]) else ""
        lo = format_number(row["lower"], 12)
        hi = format_number(row["upper"], 12)
        return f"{label:>{WIDTH_LABEL - 1}} |{coef}{se}{z:>9}{p:>8}{lo}{hi}"

    def _table(self, rows: list[str]) -> list[str]:
        return [RULE, self._header_row(), "-" * WIDTH_LABEL + "+" + "-" * (len(RULE) - WIDTH_LABEL - 1), *rows, RULE]

    def __str__(self) -> str:
        f = self.frame
        lines = [
            f"{self.title:<48}Number of obs     = {self.nobs:>10,}",
            f"Log likelihood = {self.llf:.8g}",
            *self.survey_lines,
            *([self.cluster_note] if self.cluster_note else []),
            "",
        ]
        if self.constraints:
            lines += [f" ({i:>2})  {text}" for i, text in enumerate(self.constraints, start=1)] + [""]
        sep = "-" * WIDTH_LABEL + "+" + "-" * (len(RULE) - WIDTH_LABEL - 1)
        class_rows: list[str] = []
        for j in range(1, self.k + 1):
            if class_rows:
                class_rows.append(sep)
            label = f"{j}.Class"
            if j == self.base:
                class_rows.append(f"{label:<{WIDTH_LABEL}}|  (base outcome)")
                continue
            class_rows.append(f"{label:<{WIDTH_LABEL}}|")
            classes = f.index.get_level_values("class")
            equations = f.index.get_level_values("equation")
            sub = f[(classes == j) & (equations == "Class")]
            for (_, _, term), row in sub.iterrows():
                fixed = (j, "Class", term) in self.fixed_terms
                class_rows.append(self._row(_abbrev(_term_label(term), WIDTH_LABEL - 2), row, fixed=fixed))
        if self.k > 1:
            lines += self._table(class_rows)
        for j in range(1, self.k + 1):
            for (cls, response), model in self.models.items():
                if cls != j:
                    continue
                lines += ["", f"Class          : {j}", f"Response       : {response}", f"Model          : {model}", ""]
                eqs = dict(self.equations).get((j, response), (response,))
                present = (f.index.get_level_values("class") == j) & f.index.get_level_values("equation").isin(eqs)
                if not present.any():  # a family without parameters (pointmass)
                    lines.append("(no parameters)")
                    continue
                linear_rows, aux_rows = [], []
                for eq in eqs:  # one equation per non-base outcome of an mlogit
                    if linear_rows:
                        linear_rows.append(sep)
                    linear_rows.append(f"{_abbrev(eq):<{WIDTH_LABEL}}|")
                    for term, row in f.xs((j, eq), level=("class", "equation")).iterrows():
                        fixed = (j, eq, term) in self.fixed_terms
                        if (j, eq, term) in self.aux_terms:  # auxiliary: var(e), alpha, ...
                            name = term.replace("(e)", f"(e.{eq})")
                            aux_rows.append(self._row(_abbrev(name), row, aux=True, fixed=fixed))
                        else:
                            linear_rows.append(self._row(_abbrev(_term_label(term), WIDTH_LABEL - 2), row, fixed=fixed))
                rows = linear_rows + ([sep] + aux_rows if aux_rows else [])
                lines += self._table(rows)
                if (j, response) in dict(self.covariances):
                    lines += self._covariance_lines(dict(self.covariances)[(j, response)])
        if not self.converged:
            lines += ["", "Warning: convergence not achieved"]
        return "\n".join(lines)

    def _covariance_lines(self, table: pd.DataFrame) -> list[str]:
        """The covariance matrix of an ``mvnormal`` component on the reported scale."""
        width = max(WIDTH_LABEL, min(32, max(len(label) for label in table.index) + 1))
        level = int(round(100 * (1 - self.alpha)))
        head = f"{'Covariance':<{width}}|{'Estimate':>12}{'Std. err.':>11}{'':>17}     [{level}% conf. interval]"
        rule = "-" * (width + 65)
        rows = []
        for label, row in table.iterrows():
            numbers = "".join(format_number(row[c], w) for c, w in (("coef", 11), ("std_err", 11)))
            limits = format_number(row["lower"], 12) + format_number(row["upper"], 12)
            rows.append(f"{str(label)[:width - 1]:>{width - 1}} |{numbers}{'':>17}{limits}")
        return ["", rule, head, "-" * width + "+" + "-" * 64, *rows, rule, "(delta-method std. err.; mvnormal intervals on the log scale for variances, atanh for correlations)"]

    def __repr__(self) -> str:  # a REPL shows the table, as statsmodels' summary does
        return str(self)

    def _repr_html_(self) -> str:  # notebooks
        return "<pre>" + str(self).replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
