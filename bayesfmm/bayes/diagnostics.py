"""Sampler diagnostics with a one-line verdict: R-hat, bulk/tail ESS, divergences, E-BFMI.

Thresholds follow Vehtari et al. (2021) and the Stan/ArviZ guidance: rank-normalised split
R-hat <= 1.01; bulk and tail ESS >= 100 per chain; no divergent transitions; E-BFMI >= 0.3
in every chain. R-hat and ESS are computed by arviz-stats on the draws of every parameter
of the layout on Stata's reporting scale (``var(e)``, not ``lnvar``: the folded R-hat
depends on the scale), as ``az.summary(res.idata)`` computes them. Label switching is checked by
:func:`bayesfmm.bayes.relabel_idata.detect_label_switching_idata`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesfmm.bayes.relabel_core import LabelSwitchingReport
from bayesfmm.bayes.relabel_idata import detect_label_switching_idata
from bayesfmm.bayes.reporting import report_draws
from bayesfmm.errors import SpecificationError
from bayesfmm.ops import Lazy

chi2 = Lazy("scipy.stats", "chi2")  # scipy.stats is slow to import: loaded on first use

__all__ = ["Diagnostics", "diagnose", "draw_diagnostics", "moved_share", "RHAT_MAX", "ESS_PER_CHAIN", "BFMI_MIN"]

RHAT_MAX = 1.01
ESS_PER_CHAIN = 100
BFMI_MIN = 0.3
# a chain whose draws change in fewer than this share of its iterations is stuck: NUTS moves
# at nearly every iteration, so a chain that does not has met a region it cannot leave
MOVED_MIN = 0.5
TAIL_PROB = 0.05
# R-hat's own noise: for chains that mix, split R-hat - 1 is about (m / 2 ESS) chi2_{m-1} / (m - 1)
# with m = 2 x chains split chains. Above the RHAT_NOISE_LEVEL quantile of that (at the
# smaller of bulk and tail ESS) the chains disagree beyond chance.
RHAT_NOISE_LEVEL = 0.999


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
    label_switching : LabelSwitchingReport or None
        What :func:`~bayesfmm.bayes.relabel_idata.detect_label_switching_idata` reported, or
        None when the classes cannot switch (they differ in structure).
    """

    table: pd.DataFrame
    divergences: int
    chains: int
    draws: int
    bfmi: np.ndarray
    label_switching: LabelSwitchingReport | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    moved: np.ndarray | None = None

    @property
    def stuck_chains(self) -> list[int]:
        """The chains (numbered from 1) whose draws changed in fewer than
        :data:`MOVED_MIN` of their iterations."""
        if self.moved is None:
            return []
        return [i + 1 for i, share in enumerate(np.asarray(self.moved)) if share < MOVED_MIN]

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

    @property
    def rhat_noise(self) -> float:
        """How far above 1 R-hat goes by chance at this ESS when the chains mix: the
        :data:`RHAT_NOISE_LEVEL` quantile of ``(m / 2 ESS) chi2_{m-1} / (m - 1)``, ``m``
        split chains, ESS the smaller of the min bulk and tail ESS."""
        ess = min(self.min_ess_bulk, self.min_ess_tail)
        ess = max(ess, 1.0) if np.isfinite(ess) else 1.0
        m = 2 * self.chains
        return float(chi2.ppf(RHAT_NOISE_LEVEL, m - 1) / (m - 1) * m / (2 * ess))

    @property
    def chains_disagree(self) -> bool:
        """R-hat above 1.01 by more than its noise at this ESS: chains in different modes."""
        return self.chains > 1 and self.max_rhat - 1 > max(self.rhat_noise, RHAT_MAX - 1)

    def draws_needed(self, ess: float | None = None, rhat: float = RHAT_MAX) -> int:
        """Draws per chain expected to reach a bulk and tail ESS of ``ess`` (default
        :attr:`ess_required`) and R-hat <= ``rhat``: ESS grows with the draws, and R-hat's
        noise shrinks as 1 / ESS (rounded up to 100, with a 20% margin)."""
        ess = self.ess_required if ess is None else float(ess)
        factors = [1.0]
        for value in (self.min_ess_bulk, self.min_ess_tail):
            factors.append(ess / max(value, 1.0) if np.isfinite(value) else 1.0)
        if self.chains > 1 and np.isfinite(self.max_rhat) and self.max_rhat > rhat:
            factors.append((self.max_rhat - 1) / (rhat - 1))
        need = 1.2 * self.draws * max(factors)
        return int(np.ceil(need / 100) * 100)

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
            out["label_switching"] = not self.label_switching.switching
        if self.moved is not None:
            out["moving"] = not self.stuck_chains
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
        switching = not checks.get("label_switching", True)
        stuck = self.stuck_chains
        if stuck:
            shares = ", ".join(f"chain {c} moved in {100 * self.moved[c - 1]:.0f}%" for c in stuck)
            advice.append(
                f"stuck chains: {shares} of its iterations; more draws will not "
                "fix it: raise target_accept (e.g. 0.95), check the starts (init=) and priors, or fit "
                "fewer classes (a class may have collapsed)"
            )
        elif switching:
            advice.append("label switching: the relabelling finds chains in permuted labellings; use order= or res.relabel()")
        elif self.chains_disagree:
            advice.append(
                f"chains in different modes (R-hat {self.max_rhat:.3f} is beyond its noise at this ESS, "
                "and not by label switching): more draws will not fix it; check minor modes "
                "(res.diagnostics().table), starts (init=) and priors"
            )
        elif not (checks["r_hat"] and checks["ess_bulk"] and checks["ess_tail"]):
            what = "R-hat within its noise at this ESS" if not checks["r_hat"] else f"ESS below {self.ess_required}"
            advice.append(
                f"draw more: {what}; about {self.draws_needed()} draws per chain "
                f"(sample(target={self.ess_required}) does it)"
            )
        if not checks["divergences"]:
            advice.append("divergences: raise target_accept (e.g. 0.95) or use stronger priors")
        if not checks["bfmi"]:
            advice.append(f"E-BFMI below {BFMI_MIN}: reparameterise or use stronger priors")
        return f"FAILED: {facts} ({'; '.join(advice)})"

    def __str__(self) -> str:
        lines = [self.verdict, "", self.table.to_string(float_format=lambda v: f"{v:.4g}")]
        lines += list(self.notes)
        return "\n".join(lines)


def moved_share(draws: np.ndarray) -> np.ndarray:
    """For draws (chain, draw, parameter), the share of each chain's iterations at which
    any parameter changed.

    Examples
    --------
    >>> draws = np.zeros((2, 5, 1)); draws[0, :, 0] = np.arange(5)
    >>> moved_share(draws)
    array([1., 0.])
    """
    return np.any(np.diff(draws, axis=1) != 0, axis=2).mean(axis=1)


def _label_switching(results) -> tuple[LabelSwitchingReport | None, str | None]:
    """The verdict on label switching, or (None, why not)."""
    try:
        report = detect_label_switching_idata(results.idata, results.built)
    except SpecificationError as exc:  # classes that differ in structure cannot switch
        return None, f"label switching not checked: {exc}"
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
    switching, why_not = _label_switching(results)
    return draw_diagnostics(results.layout, results.theta_draws, results.idata, switching, (why_not,) if why_not else ())


def draw_diagnostics(layout, all_draws: np.ndarray, idata, switching: LabelSwitchingReport | None = None,
                     notes: tuple[str, ...] = ()) -> Diagnostics:
    """Diagnostics of draws of ``theta`` (chain, draw, p) and the sampler statistics in
    ``idata``; label switching as given (not detected here)."""
    import arviz_stats as azs

    chains, n_draws, p = all_draws.shape
    # on the reporting scale, as res.summary() and az.summary(res.idata) show them: rank-
    # normalised R-hat and the ESS do not depend on the scale, the folded R-hat does
    all_draws = report_draws(layout, all_draws)
    # parameters fixed at a value by constraints have no draws to diagnose
    moving = ~layout.fixed_mask()
    draws = all_draws[:, :, moving]
    rhat, bulk, tail = (np.full(p, np.nan) for _ in range(3))
    if n_draws >= 4:
        if chains > 1:
            rhat[moving] = np.asarray(azs.rhat(draws), dtype=float)
        bulk[moving] = np.asarray(azs.ess(draws, method="bulk"), dtype=float)
        tail[moving] = np.asarray(azs.ess(draws, method="tail", prob=TAIL_PROB), dtype=float)
    table = pd.DataFrame({"r_hat": rhat, "ess_bulk": bulk, "ess_tail": tail}, index=layout.index)
    stats = idata["sample_stats"] if "sample_stats" in idata.children else None
    divergences = 0
    if stats is not None and "diverging" in stats:
        divergences = int(np.asarray(stats["diverging"]).sum())
    notes = list(notes)
    fixed = table.index[moving & np.asarray(np.ptp(all_draws.reshape(-1, p), axis=0) == 0)]
    moved = moved_share(draws) if n_draws >= 2 and draws.shape[2] else None
    if len(fixed):
        notes.insert(0, f"constant draws (R-hat/ESS undefined): {list(fixed)}")
    return Diagnostics(
        table=table,
        divergences=divergences,
        chains=chains,
        draws=n_draws,
        bfmi=_energy_bfmi(idata),
        label_switching=switching,
        notes=tuple(notes),
        moved=moved,
    )
