"""Sampler diagnostics with a one-line verdict: R-hat, bulk/tail ESS, divergences, E-BFMI.

Thresholds follow Vehtari et al. (2021) and the Stan/ArviZ guidance: rank-normalised split
R-hat <= 1.01; bulk and tail ESS >= 100 per chain; no divergent transitions; E-BFMI >= 0.3
in every chain. R-hat and ESS are computed by arviz-stats on the draws of every parameter
of the layout (optimiser scale; both are rank based, so the reporting scale gives the
same values). When ``bayesfmm.bayes.relabel.detect_label_switching`` exists it is asked
about label switching too.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayesfmm.errors import SpecificationError

__all__ = ["Diagnostics", "diagnose", "RHAT_MAX", "ESS_PER_CHAIN", "BFMI_MIN"]

RHAT_MAX = 1.01
ESS_PER_CHAIN = 100
BFMI_MIN = 0.3
TAIL_PROB = 0.05


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of a posterior sample; ``str()`` gives a short report.

    Attributes
    ----------
    table : DataFrame
        ``r_hat``, ``ess_bulk``, ``ess_tail`` per parameter (the layout's index).
    divergences : int
        Divergent transitions after tuning, all chains.
    bfmi : ndarray
        E-BFMI of each chain (NaN when the sampler stored no energy).
    label_switching : object
        What ``bayesfmm.bayes.relabel.detect_label_switching`` reported, or None when that
        check is not available.
    """

    table: pd.DataFrame
    divergences: int
    chains: int
    draws: int
    bfmi: np.ndarray
    label_switching: Any = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def max_rhat(self) -> float:
        return float(self.table["r_hat"].max())

    @property
    def min_ess_bulk(self) -> float:
        return float(self.table["ess_bulk"].min())

    @property
    def min_ess_tail(self) -> float:
        return float(self.table["ess_tail"].min())

    @property
    def ess_required(self) -> int:
        return ESS_PER_CHAIN * self.chains

    def checks(self) -> dict[str, bool]:
        """Each criterion and whether it passed."""
        bfmi = self.bfmi[np.isfinite(self.bfmi)]
        out = {
            "r_hat": self.chains < 2 or self.max_rhat <= RHAT_MAX,
            "ess_bulk": self.min_ess_bulk >= self.ess_required,
            "ess_tail": self.min_ess_tail >= self.ess_required,
            "divergences": self.divergences == 0,
            "bfmi": bool(np.all(bfmi >= BFMI_MIN)) if bfmi.size else True,
        }
        if self.label_switching is not None:
            out["label_switching"] = not _switched(self.label_switching)
        return out

    @property
    def passed(self) -> bool:
        return all(self.checks().values())

    @property
    def verdict(self) -> str:
        """One line: OK, or what failed and what to do."""
        checks = self.checks()
        rhat = f"max R-hat {self.max_rhat:.3f}" if self.chains > 1 else "R-hat n/a (1 chain)"
        bfmi = self.bfmi[np.isfinite(self.bfmi)]
        facts = (
            f"{rhat}, min ESS bulk {self.min_ess_bulk:.0f} / tail {self.min_ess_tail:.0f}, "
            f"{self.divergences} divergences"
            + (f", min E-BFMI {bfmi.min():.2f}" if bfmi.size else "")
        )
        if all(checks.values()):
            return f"OK: {facts}"
        advice = []
        if not checks["r_hat"] or not checks.get("label_switching", True):
            advice.append("chains disagree: check label switching (order=), run longer")
        if not (checks["ess_bulk"] and checks["ess_tail"]):
            advice.append(f"ESS below {self.ess_required}: draw more")
        if not checks["divergences"]:
            advice.append("divergences: raise target_accept (e.g. 0.95) or use stronger priors")
        if not checks["bfmi"]:
            advice.append(f"E-BFMI below {BFMI_MIN}: reparameterise or use stronger priors")
        return f"FAILED: {facts} ({'; '.join(advice)})"

    def __str__(self) -> str:
        lines = [self.verdict, "", self.table.to_string(float_format=lambda v: f"{v:.4g}")]
        lines += list(self.notes)
        return "\n".join(lines)


def _switched(report: Any) -> bool:
    for attr in ("switching", "switched", "detected", "label_switching"):
        if hasattr(report, attr):
            return bool(getattr(report, attr))
    if isinstance(report, dict):
        for key in ("switched", "detected", "label_switching"):
            if key in report:
                return bool(report[key])
    return bool(report)


def _label_switching(results) -> tuple[Any, str | None]:
    """The relabelling module's verdict on label switching, or (None, why not)."""
    try:
        relabel = importlib.import_module("bayesfmm.bayes.relabel")
    except ImportError:
        return None, "label switching not checked (bayesfmm.bayes.relabel is not available)"
    detect = getattr(relabel, "detect_label_switching_idata", None)
    if detect is None:
        return None, "label switching not checked (no detect_label_switching_idata)"
    try:
        report = detect(results.idata, results.built)
    except SpecificationError as exc:  # classes that differ in structure cannot switch
        return None, f"label switching not checked: {exc}"
    if hasattr(report, "warn"):
        report.warn(stacklevel=4)  # IdentificationWarning with what to do
    return report, None


def _energy_bfmi(idata) -> np.ndarray:
    stats = idata.get("sample_stats") if hasattr(idata, "get") else None
    if stats is None or "energy" not in stats:
        return np.array([np.nan])
    import arviz_stats as azs

    energy = stats["energy"].transpose("chain", "draw").to_numpy()
    return np.atleast_1d(np.asarray(azs.bfmi(energy), dtype=float))


def diagnose(results) -> Diagnostics:
    """Diagnostics of a :class:`~bayesfmm.bayes.results.BayesResults`."""
    import arviz_stats as azs

    all_draws = results.theta_draws
    chains, n_draws, p = all_draws.shape
    # parameters fixed at a value by constraints have no draws to diagnose
    moving = ~results.layout.fixed_mask()
    draws = all_draws[:, :, moving]
    rhat, bulk, tail = (np.full(p, np.nan) for _ in range(3))
    if n_draws >= 4:
        if chains > 1:
            rhat[moving] = np.asarray(azs.rhat(draws), dtype=float)
        bulk[moving] = np.asarray(azs.ess(draws, method="bulk"), dtype=float)
        tail[moving] = np.asarray(azs.ess(draws, method="tail", prob=TAIL_PROB), dtype=float)
    table = pd.DataFrame({"r_hat": rhat, "ess_bulk": bulk, "ess_tail": tail}, index=results.layout.index)
    stats = results.idata["sample_stats"] if "sample_stats" in results.idata.children else None
    divergences = 0
    if stats is not None and "diverging" in stats:
        divergences = int(np.asarray(stats["diverging"]).sum())
    notes: list[str] = []
    fixed = table.index[moving & np.asarray(np.ptp(all_draws.reshape(-1, p), axis=0) == 0)]
    if len(fixed):
        notes.append(f"constant draws (R-hat/ESS undefined): {list(fixed)}")
    switching, why_not = _label_switching(results)
    if why_not:
        notes.append(why_not)
    return Diagnostics(
        table=table,
        divergences=divergences,
        chains=chains,
        draws=n_draws,
        bfmi=_energy_bfmi(results.idata),
        label_switching=switching,
        notes=tuple(notes),
    )
