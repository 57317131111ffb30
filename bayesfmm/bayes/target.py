"""Sampling to a target: more draws until R-hat and ESS say the posterior is summarised.

``sample(..., target=400)`` runs the first ``draws`` and then, while some parameter has
R-hat above 1.01 or a bulk or tail ESS below the target, continues every chain from its
last draw (a short retune, :data:`RETUNE`, then the extra draws, appended to the chain) up
to ``max_draws`` per chain, reusing the compiled model. The extra draws are what the
diagnostics ask for (:meth:`~bayesfmm.bayes.diagnostics.Diagnostics.draws_needed`: ESS
grows with the draws and R-hat's noise shrinks as 1 / ESS). On divergences it raises
``target_accept`` (to at least :data:`RAISED_ACCEPT`, then 0.99: :data:`RAISED_ACCEPTS`;
nutpie's adaptation becomes ``"diag"`` unless given) and starts again, at most twice
(a continuation that diverges is first redone with the full tuning, up to
:data:`EXTENSION_REDOS` times). It stops
early when the chains disagree beyond R-hat's noise (different modes: more draws will
not help). Each step is recorded in ``res.history``.

The nutpie chains are matched across runs by the order in which nutpie asks for their
initial points, which is the order of its chains (checked: the i-th request starts chain
i); PyMC's samplers take the starts as a list in chain order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from bayesfmm.bayes.builder import BuiltModel
from bayesfmm.bayes.diagnostics import Diagnostics, draw_diagnostics
from bayesfmm.bayes.runners import run_nutpie, run_pymc
from bayesfmm.errors import SpecificationError

__all__ = ["RETUNE", "RAISED_ACCEPT", "DEFAULT_ESS", "Runner", "sample_to_target", "resolve_target", "concat_draws"]

RETUNE = 250  # tuning steps before the extra draws of a continued chain
RAISED_ACCEPT = 0.95
# target_accept at the first and the second restart after divergences
RAISED_ACCEPTS = (RAISED_ACCEPT, 0.99)
DEFAULT_ESS = 400
MIN_EXTRA = 200
EXTENSION_REDOS = 2  # a continuation that diverges is redone this often, with the full tuning


def resolve_target(target: Any) -> float | None:
    """``target=`` as an ESS (None: sample ``draws`` once). True and ``"auto"`` mean
    :data:`DEFAULT_ESS`."""
    if target is None or target is False:
        return None
    if target is True or target == "auto":
        return float(DEFAULT_ESS)
    if isinstance(target, (int, float)) and not isinstance(target, bool) and target > 0:
        return float(target)
    raise SpecificationError(f"target={target!r}: use None, True, or a bulk/tail ESS such as 400")


@dataclass
class Runner:
    """One sampler with its compiled model: ``run(start_for, draws, tune)``."""

    built: BuiltModel
    sampler: str
    compiled: Any
    chains: int
    cores: int
    progressbar: bool
    kwargs: dict[str, Any] = field(default_factory=dict)

    def run(self, start_for: Callable[[int], np.ndarray] | None, draws: int, tune: int, seed: int,
            ordered_starts: list[np.ndarray] | None = None):
        """Sample; returns (idata, seconds, starts). ``ordered_starts`` (one ``theta`` per
        chain, in chain order) overrides ``start_for``."""
        if ordered_starts is not None:
            start_for = _in_call_order(ordered_starts)
        if self.sampler == "nutpie":
            run = run_nutpie(self.compiled, self.built.model, flat_for(self.compiled, self.built), start_for, draws, tune,
                             self.chains, self.cores, seed, self.progressbar, **dict(self.kwargs))
            return run.idata, run.sample_s, list(run.starts) if run.starts else None
        starts = ordered_starts
        if starts is None and start_for is not None:
            starts = [start_for(chain) for chain in range(self.chains)]
        idata, seconds = run_pymc(self.built, starts, draws, tune, self.chains, self.cores, seed, self.progressbar,
                                  self.sampler, dict(self.kwargs))
        return idata, seconds, starts


def flat_for(compiled: Any, built: BuiltModel) -> Callable[[np.ndarray], np.ndarray]:
    """``theta -> nutpie's unconstrained vector`` for ``compiled``: the numba backend keeps
    PyMC's order of the free variables (``built.flat_value``); the jax backend has its own,
    listed in ``compiled._variables`` (name, start, end)."""
    variables = getattr(compiled, "_variables", None)
    if not variables or not hasattr(variables[0], "start_idx"):
        return built.flat_value
    values = {built.model.rvs_to_values[rv].name for rv in built.model.free_RVs}
    layout = [(v.name, v.start_idx, v.end_idx) for v in variables if v.name in values]

    def flat(theta: np.ndarray) -> np.ndarray:
        point = built.value_point(theta)
        out = np.empty(compiled.n_dim)
        for name, start, end in layout:
            out[start:end] = point[name]
        return out

    return flat


def _in_call_order(starts: list[np.ndarray]) -> Callable[[int], np.ndarray]:
    """``start_for(chain_seed)``: the i-th distinct seed asked for gets ``starts[i]``."""
    seen: dict[int, int] = {}

    def start_for(chain_seed: int) -> np.ndarray:
        index = seen.setdefault(int(chain_seed), len(seen))
        return starts[index % len(starts)]

    return start_for


def concat_draws(first: Any, second: Any) -> Any:
    """``first`` with the draws of ``second`` appended along ``draw`` (posterior and
    sample_stats; variables without a draw dimension keep ``first``'s values)."""
    import xarray as xr

    out = first.copy()
    for group in ("posterior", "sample_stats"):
        if group not in first.children or group not in second.children:
            continue
        a, b = first[group].to_dataset(), second[group].to_dataset()
        b = b.assign_coords(draw=b["draw"].to_numpy() + a.sizes["draw"])
        drawn = [name for name in a.data_vars if "draw" in a[name].dims and name in b.data_vars]
        merged = xr.concat([a[drawn], b[drawn]], dim="draw")
        for name in a.data_vars:
            if name not in drawn:
                merged[name] = a[name]
        merged.attrs = dict(a.attrs)
        out[group] = xr.DataTree(dataset=merged)
    return out


def _diagnose(built: BuiltModel, idata: Any) -> tuple[np.ndarray, Diagnostics]:
    theta = built.theta_from_posterior(idata["posterior"].to_dataset())
    return theta, draw_diagnostics(built.problem.layout, theta, idata)


def _record(stage: str, diag: Diagnostics, seconds: float, accept: float | None) -> dict[str, Any]:
    return {
        "stage": stage,
        "draws": diag.draws,
        "max_rhat": diag.max_rhat,
        "min_ess_bulk": diag.min_ess_bulk,
        "min_ess_tail": diag.min_ess_tail,
        "divergences": diag.divergences,
        "target_accept": accept,
        "seconds": seconds,
    }


def _met(diag: Diagnostics, ess: float) -> bool:
    rhat_ok = diag.chains < 2 or diag.max_rhat <= 1.01
    return rhat_ok and diag.min_ess_bulk >= ess and diag.min_ess_tail >= ess


def sample_to_target(runner: Runner, start_for, draws: int, tune: int, seed: int, ess: float,
                     max_draws: int, rng: np.random.Generator) -> tuple[Any, list, list[dict[str, Any]], str]:
    """Run, then continue the chains until ``ess`` and R-hat <= 1.01 are met or
    ``max_draws`` per chain are spent (see the module docstring). Returns the DataTree,
    the chains' first starts, the history and a one-line account."""
    accept = runner.kwargs.get("target_accept")
    t0 = time.perf_counter()
    idata, seconds, starts = runner.run(start_for, draws, tune, seed)
    _, diag = _diagnose(runner.built, idata)
    history = [_record("initial", diag, seconds, accept)]
    reason = "target met"
    retunes = 0
    while not _met(diag, ess) or diag.divergences > 0:
        if diag.divergences > 0:
            if retunes == len(RAISED_ACCEPTS):
                reason = "divergences after raising target_accept"
                break
            # divergences, also in a continuation's short retune: start again, more carefully
            accept = max(RAISED_ACCEPTS[retunes], 1 - (1 - (accept or 0.8)) / 2)
            retunes += 1
            runner.kwargs["target_accept"] = accept
            if runner.sampler == "nutpie":  # the diagonal mass matrix diverged less on patent (docs/bayes.md)
                runner.kwargs.setdefault("adaptation", "diag")
            idata, seconds, starts = runner.run(start_for, draws, tune, int(rng.integers(2**31 - 1)))
            _, diag = _diagnose(runner.built, idata)
            history.append(_record("retune", diag, seconds, accept))
            continue
        if diag.stuck_chains:
            reason = f"stuck chains {diag.stuck_chains}"
            break
        if diag.chains_disagree and diag.draws >= draws:
            reason = "chains in different modes"
            break
        room = max_draws - diag.draws
        if room <= 0:
            reason = f"budget of {max_draws} draws per chain spent"
            break
        extra = int(min(room, max(MIN_EXTRA, diag.draws_needed(ess) - diag.draws)))
        theta, _ = _diagnose(runner.built, idata)
        last = [theta[c, -1] for c in range(theta.shape[0])]
        # a continuation whose short retune diverges is redone (its draws dropped) with the
        # full tuning, rather than restarting every chain: patent seed 4 had one divergence
        # in a continuation, and the restart at 0.99 then mixed far worse (R-hat 1.07 at
        # 10000 draws)
        for attempt in range(1 + EXTENSION_REDOS):
            retune = RETUNE if attempt == 0 else tune
            more, seconds, _ = runner.run(None, extra, retune, int(rng.integers(2**31 - 1)), ordered_starts=last)
            extended = concat_draws(idata, more)
            _, extended_diag = _diagnose(runner.built, extended)
            history.append(_record("extend" if attempt == 0 else "redo extension", extended_diag, seconds, accept))
            if extended_diag.divergences == 0:
                break
        idata, diag = extended, extended_diag
    account = (
        f"target ESS {ess:.0f}, R-hat <= 1.01: {reason} after {diag.draws} draws per chain "
        f"({len(history)} run{'s' if len(history) > 1 else ''}, {time.perf_counter() - t0:.0f} s)"
    )
    return idata, starts, history, account
