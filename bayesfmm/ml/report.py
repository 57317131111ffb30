"""What the start values did: :class:`StartReport`, ``res.starts`` of an ML fit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesfmm.ml.search import describe_optima

__all__ = ["StartReport"]


@dataclass(frozen=True)
class StartReport:
    """Which start won and what happened to the others.

    Attributes
    ----------
    method
        The start method (``"default"``, ``"randompr"``, ..., or ``"from"`` for ``from_=``).
    draws
        Number of starts run through EM.
    winner
        0-based index of the draw Newton converged from.
    em_llf
        Log likelihood of each draw after EM (``emopts`` iterations; ``-inf`` if it collapsed).
    collapsed
        Why each draw collapsed, or None.
    newton_failed
        Draws whose Newton run collapsed or did not converge (the next best was tried).
    em_iterations
        EM iterations each draw ran (fewer than ``emopts['iterate']``: EM met its tolerance).
    label
        Stata-like description of the method (``"classid g"``, ``"jitter 1 1"``).
    seed
        The seed of random methods.
    newton_llf
        ``(draw, llf)`` where each Newton run ended.
    optima
        The default fit's search (:mod:`bayesfmm.ml.search`): ``(llf, starts)`` of each
        distinct maximum the default start and the search starts reached, best first
        (empty when no search ran: ``startvalues`` other than the default, or a large
        problem).
    search_draws, search_seed
        The search's number of random starts and its seed (0 and None: no search).
    search_winner
        0-based search start whose maximum was kept; None when the default start's was.
    """

    method: str
    draws: int
    winner: int  # 0-based draw index
    em_llf: tuple[float, ...]  # -inf where the draw collapsed
    collapsed: tuple[str | None, ...]
    newton_failed: tuple[int, ...] = ()  # draws whose Newton run collapsed or did not converge
    em_iterations: tuple[int, ...] = ()
    label: str = ""
    seed: int | None = None
    newton_llf: tuple[tuple[int, float], ...] = ()
    optima: tuple[tuple[float, int], ...] = ()
    search_draws: int = 0
    search_seed: int | None = None
    search_winner: int | None = None

    @property
    def n_optima(self) -> int:
        """Distinct maxima the starts reached (1 when no search ran)."""
        return max(1, len(self.optima))

    @property
    def n_collapsed(self) -> int:
        return sum(c is not None for c in self.collapsed)

    def table(self, decimals: int = 1) -> pd.DataFrame:
        """Where the draws ended after EM: one row per distinct log likelihood (rounded to
        ``decimals``), best first, with the number of draws and whether the winner is there;
        collapsed draws are counted on a row of their own (``llf`` = -inf).

        Examples
        --------
        >>> import bayesfmm as bf
        >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"),
        ...                                        startvalues="randomid", draws=4, seed=1)
        >>> int(res.starts.table()["draws"].sum())
        4
        """
        llf = np.round(np.asarray(self.em_llf, dtype=float), decimals)
        values, counts = np.unique(llf, return_counts=True)
        winner = llf[self.winner] if self.draws else np.nan
        frame = pd.DataFrame({"llf": values, "draws": counts, "winner": values == winner})
        return frame.sort_values("llf", ascending=False, ignore_index=True)

    def __str__(self) -> str:
        rows = [f"{int(r.draws)} at {r.llf:.1f}" + (" (winner)" if r.winner else "") for r in self.table().itertuples()]
        seed = f", seed {self.seed}" if self.seed is not None else ""
        text = f"startvalues {self.label or self.method}: {self.draws} draw(s){seed}; EM ended " + ", ".join(rows)
        if self.search_draws:
            kept = "the default start's" if self.search_winner is None else f"search start {self.search_winner + 1}'s"
            text += (f"\nsearch: {self.search_draws} randomid starts (seed {self.search_seed}) and the default start "
                     f"reached {describe_optima(self.optima)}; kept {kept}")
        return text
