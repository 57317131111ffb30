"""Comparing Bayesian fits by PSIS-LOO, honest about fits whose sampling failed.

An elpd from chains that did not converge (R-hat above 1.01, divergences, label switching)
estimates nothing, so :func:`compare_fits` ranks only the fits whose diagnostics passed
(``exclude_failed=True``, the default) and lists the others below the ranking, flagged with
their verdict. The table prints elpd with as many decimals as it takes to tell the fits
apart (:func:`separating_decimals`) and states the decision rule underneath.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = ["RULE", "Comparison", "separating_decimals", "compare_fits"]

RULE = (
    "Rule: fits ranked by elpd_loo (higher is better); a difference smaller than about 2 x its "
    "standard error (dse) does not separate two fits, and then the simpler one is preferred. "
    "Fits whose diagnostics failed are flagged and {excluded}."
)


def separating_decimals(values: Any, most: int = 6) -> int:
    """The fewest decimals (at least 1) at which the distinct finite ``values`` stay
    distinct when rounded.

    Examples
    --------
    >>> separating_decimals([1510.34, 1510.21, 1490.0])
    1
    >>> separating_decimals([1510.341, 1510.344])
    3
    """
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    distinct = np.unique(finite)
    for decimals in range(1, most + 1):
        if np.unique(np.round(distinct, decimals)).size == distinct.size:
            return decimals
    return most


class Comparison(pd.DataFrame):
    """The comparison table (a DataFrame, arviz-stats ``compare``'s columns plus
    ``diagnostics``); ``str()`` prints elpd at a separating precision and the rule."""

    _metadata = ["rule"]

    @property
    def _constructor(self):
        return Comparison

    def __str__(self) -> str:
        decimals = separating_decimals(self["elpd"]) if "elpd" in self else 2
        formats = {c: (lambda v, d=decimals: f"{v:.{d}f}") for c in ("elpd", "elpd_diff", "p", "se", "dse")
                   if c in self}
        formats.update({c: (lambda v: f"{v:.3f}") for c in ("weight", "p_worse") if c in self})
        shown = self.copy()
        for column, fmt in formats.items():
            shown[column] = [fmt(v) if isinstance(v, (int, float, np.floating)) and np.isfinite(v) else "" for v in shown[column]]
        return pd.DataFrame(shown).to_string() + "\n" + getattr(self, "rule", "")

    def __repr__(self) -> str:
        return self.__str__()


def _loo(res: Any) -> tuple[Any, str | None]:
    """PSIS-LOO of one fit (pointwise, for ``compare``), or None and why it failed: a
    chain that never moved gives identical log-likelihood draws, and PSIS then has no tail
    to fit (arviz-stats: "All tail values are the same")."""
    try:
        return res.loo(pointwise=True), None
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        return None, f"PSIS-LOO failed ({exc})"


def _flag(verdict: Any, loo_error: str | None) -> str:
    """``ok``, or ``FAILED:`` with why (the PSIS-LOO error, the verdict's facts)."""
    reasons = ([] if loo_error is None else [loo_error]) + ([] if verdict.passed else [verdict.verdict.split(" (")[0][8:]])
    return "FAILED: " + "; ".join(reasons) if reasons else "ok"


def compare_fits(results: Mapping[str, Any], exclude_failed: bool = True, **kwargs: Any) -> Comparison:
    """:func:`bayesfmm.bayes.results.compare` (see the module docstring)."""
    import arviz_stats as azs

    verdicts = {name: res.diagnostics() for name, res in results.items()}
    loos = {name: _loo(res) for name, res in results.items()}
    # a fit without a PSIS-LOO has no elpd to rank, whatever exclude_failed says
    scored = {name: res for name, res in results.items() if loos[name][0] is not None}
    passed = {name: res for name, res in scored.items() if verdicts[name].passed}
    # with fewer than two fits that passed there is nothing to rank them against: all are
    # ranked, and the flags say which to distrust
    ranked = passed if exclude_failed and len(passed) >= 2 else scored
    kwargs.setdefault("round_to", "none")  # arviz rounds elpd itself; __str__ picks the decimals
    if len(ranked) >= 2:
        table = azs.compare({name: loos[name][0] for name in ranked}, **kwargs)
    else:
        table = pd.DataFrame(
            [{"rank": 0, "elpd": float(loos[name][0].elpd), "elpd_diff": 0.0} for name in ranked],
            index=list(ranked),
        )
    others = [name for name in results if name not in ranked]
    if others:
        extra = pd.DataFrame(
            [{"rank": np.nan, "elpd": float(loos[name][0].elpd) if loos[name][0] is not None else np.nan}
             for name in others],
            index=others,
        )
        table = pd.concat([table, extra]) if len(table) else extra
    table["diagnostics"] = [_flag(verdicts[name], loos[name][1]) for name in table.index]
    out = Comparison(table)
    if len(ranked) < len(results) and len(ranked) == len(passed):
        excluded = "left out of the ranking"
    elif len(ranked) < len(results):
        excluded = ("ranked all the same, as fewer than two fits passed: trust no elpd flagged FAILED; "
                    "fits without a PSIS-LOO are left out")
    elif exclude_failed and len(passed) < len(results):
        excluded = "ranked all the same, as fewer than two fits passed: trust no elpd flagged FAILED"
    else:
        excluded = "ranked all the same (exclude_failed=False)" if not exclude_failed else "ranked (none failed)"
    out.rule = RULE.format(excluded=excluded)
    return out
