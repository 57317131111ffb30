"""Identifiability of finite mixtures: what goes wrong and what bayesfmm does about it.

Four lessons, each with a figure in ``examples/output/`` (next to this script):

1. **Label switching** (``identifiability_switching.png``). The likelihood of a mixture is
   the same for every relabelling of its classes, so an unconstrained posterior has ``k!``
   copies of each mode. Chains started apart settle on different labellings, and a chain
   can jump between them: class-wise means and R-hat become meaningless.
2. **The fixes** (same figure): an ordering constraint in the model (``order=``, the
   default orders the first component's intercept), or relabelling the unconstrained draws
   after sampling (ECR, Stephens, sort: :func:`bayesfmm.bayes.relabel.relabel`).
3. **A collapsed-variance "optimum"** (``identifiability_collapse.png``). Put one class's
   mean on a data value and let its variance shrink: the likelihood grows without bound.
   The maximum likelihood estimate is a local maximum in the interior; EM and Newton can
   slide into the degenerate corner. bayesfmm detects the collapse, discards that start,
   and raises ``bf.ConvergenceError`` if every start collapses.
4. **Overlapping classes, flat likelihood** (``identifiability_profile.png``). When two
   classes overlap, the data hardly tell how the mass splits between them: the profile
   likelihood of a mixing proportion is nearly flat, and its likelihood-ratio interval
   spans most of (0, 1).

Parts 1-2 sample with NUTS (``model.sample``); parts 3-4 need only the ML engine. Run::

    python examples/identifiability.py            # everything
    python examples/identifiability.py --ml-only  # parts 3-4 only (seconds)

Run time, measured on the 2-core development machine (shared with other jobs): 38 s wall
clock (22 s of CPU) once the sampler's compiled code is cached; the first run in a fresh
environment also compiles the PyMC/nutpie models and took about 4 minutes.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, logit

import bayesfmm as bf
from bayesfmm.likelihood import MixtureProblem, score_hessian

OUTPUT = Path(__file__).resolve().parent / "output"
LR_CUT = 1.920729  # chi-square(1) 95% quantile / 2: the likelihood-ratio interval


def section(title: str) -> None:
    print(f"\n{title}\n{'=' * len(title)}")


def new_figure(ncols: int, width: float = 5.0, height: float = 3.8):
    from matplotlib.figure import Figure  # no pyplot: no GUI backend needed

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig, np.atleast_1d(fig.subplots(1, ncols))


def save(fig, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / name
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")
    return path


# -- a profile likelihood through the ML core ------------------------------------------------
def profile_loglike(problem: MixtureProblem, theta: np.ndarray, fixed: list[int], grid: np.ndarray) -> np.ndarray:
    """max over the other parameters of the log likelihood, with ``theta[fixed] = row`` of ``grid``.

    Continuation: each point starts from the previous optimum; the exact score and Hessian
    of the likelihood core drive a trust-region Newton method.
    """
    free = np.ones(theta.size, dtype=bool)
    free[fixed] = False
    current = np.array(theta, dtype=float)
    out = []
    for values in np.atleast_2d(grid.T).T:
        current[fixed] = values

        def negative(x, current=current):
            point = current.copy()
            point[free] = x
            ev, g, H = score_hessian(problem, point)
            if not np.isfinite(ev.llf):
                return np.inf, np.zeros(free.sum()), np.eye(free.sum())
            return -ev.llf, -g[free], -H[np.ix_(free, free)]

        with np.errstate(all="ignore"):
            fit = minimize(
                lambda x: negative(x)[0],
                current[free],
                jac=lambda x: negative(x)[1],
                hess=lambda x: negative(x)[2],
                method="trust-exact",
            )
        current[free] = fit.x
        out.append(-fit.fun)
    return np.array(out)


def position(res, class_: int, equation: str, term: str) -> int:
    """Where a named parameter sits in ``theta``."""
    return res.layout.index.get_loc((class_, equation, term))


# -- part 3 -------------------------------------------------------------------------------------
def collapse(stamp: pd.DataFrame) -> dict:
    section("3. A collapsed-variance optimum: the likelihood is unbounded")
    res = bf.FMM("thickness ~ 1", k=3).fit(stamp)
    tied_value, ties = stamp["thickness"].value_counts().index[0], int(stamp["thickness"].value_counts().iloc[0])
    print(f"ML fit (Stata's optimum): log likelihood {res.llf:.4f}")
    print(f"{ties} stamps share the thickness {tied_value}; put class 1's mean there and shrink its variance:")
    mean1 = position(res, 1, "thickness", "Intercept")
    var1 = position(res, 1, "thickness", "var(e)")
    lnvar = np.linspace(res.theta[var1], -40.0, 40)
    start = res.theta.copy()
    start[mean1] = tied_value
    path = profile_loglike(res.problem, start, [mean1, var1], np.column_stack([np.full_like(lnvar, tied_value), lnvar]))
    slope = (path[-1] - path[-2]) / (lnvar[-2] - lnvar[-1])
    print(pd.DataFrame({"var(e) class 1": np.exp(lnvar[::8]), "max log likelihood": path[::8]}).to_string(index=False))
    print(
        f"beyond var(e) = {np.exp(lnvar[np.argmax(path > res.llf)]):.1e} the degenerate fit beats the ML "
        f"estimate, and it keeps rising by {slope:.1f} per unit of -log var(e) (= {ties}/2): no maximum."
    )

    fig, (ax,) = new_figure(1, width=6.5)
    ax.plot(np.exp(lnvar), path, color="C3", label=f"class-1 mean at {tied_value} ({ties} tied stamps)")
    ax.axhline(res.llf, color="k", ls="--", lw=1, label=f"ML estimate ({res.llf:.2f})")
    ax.axvline(np.exp(res.theta[var1]), color="0.6", lw=1)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("class-1 var(e) (shrinking to the right)")
    ax.set_ylabel("log likelihood, maximised over the rest")
    ax.set_title("fmm 3: regress thickness: a collapsing component")
    ax.legend(fontsize=8)
    save(fig, "identifiability_collapse.png")

    print("\nbayesfmm refuses such solutions. Three tied values, three classes, every start collapses:")
    tied = pd.DataFrame({"y": np.repeat([1.0, 2.0, 3.0], 10)})
    try:
        bf.FMM("y ~ 1", k=3).fit(tied)
    except bf.ConvergenceError as exc:
        print(f"  bf.ConvergenceError: {exc}")
    return {"llf": res.llf, "slope": slope, "ties": ties, "path_max": float(path[-1])}


# -- part 4 -------------------------------------------------------------------------------------
def simulate_two_classes(delta: float, n: int = 300, seed: int = 1) -> pd.DataFrame:
    """Half the rows N(0, 1), half N(delta, 1)."""
    rng = np.random.default_rng(seed)
    in_second = rng.random(n) < 0.5
    return pd.DataFrame({"y": rng.normal(np.where(in_second, delta, 0.0), 1.0)})


def flat_likelihood() -> dict:
    section("4. Overlapping classes: a flat likelihood")
    grid = np.linspace(0.06, 0.94, 45)
    fig, (ax,) = new_figure(1, width=6.5)
    found = {}
    for delta, colour in ((4.0, "C0"), (1.0, "C3")):
        data = simulate_two_classes(delta)
        res = bf.FMM("y ~ 1", k=2).fit(data)
        gamma = position(res, 2, "Class", "Intercept")
        # continue outwards from the ML estimate in both directions
        p_hat = float(expit(res.theta[gamma]))
        up, down = grid[grid >= p_hat], grid[grid < p_hat][::-1]
        prof_up = profile_loglike(res.problem, res.theta, [gamma], logit(up)[:, None])
        prof_down = profile_loglike(res.problem, res.theta, [gamma], logit(down)[:, None])
        p = np.concatenate([down[::-1], up])
        prof = np.concatenate([prof_down[::-1], prof_up]) - res.llf
        inside = p[prof >= -LR_CUT]
        found[delta] = (inside.min(), inside.max())
        print(
            f"means 0 and {delta:g} (sd 1), n = {len(data)}: ML class-2 probability {p_hat:.3f}; "
            f"95% likelihood-ratio interval {inside.min():.2f} to {inside.max():.2f}"
            + (" (the whole grid)" if len(inside) == len(p) else "")
            + f"; the profile falls at most {-prof.min():.1f} below the maximum on {grid[0]:.2f}-{grid[-1]:.2f}"
        )
        ax.plot(p, prof, color=colour, label=f"means 0 and {delta:g}")
        ax.plot([p_hat], [0.0], "o", color=colour)
    ax.axhline(-LR_CUT, color="k", ls="--", lw=1, label="95% likelihood-ratio cut")
    ax.set_ylim(-15, 1)
    ax.set_xlabel("class-2 probability (fixed)")
    ax.set_ylabel("profile log likelihood - max")
    ax.set_title("2-class normal mixtures, n = 300: well separated vs overlapping")
    ax.legend(fontsize=8)
    save(fig, "identifiability_profile.png")
    print(
        "With overlapping classes the data barely inform the split; ML standard errors are then "
        "unreliable, and a posterior reflects the prior there. Fewer classes, or a class model "
        "with covariates, identify it better."
    )
    return found


# -- parts 1-2: sampling ------------------------------------------------------------------------
def _sampler() -> str:
    import importlib.util

    return "nutpie" if importlib.util.find_spec("nutpie") else "pymc"


def plot_traces(ax, idata, name: str, title: str) -> None:
    """Trace of class 1's value of a class-indexed variable, one colour per chain."""
    values = idata["posterior"][name].transpose("chain", "draw", ...).to_numpy()
    for chain in range(values.shape[0]):
        ax.plot(values[chain, :, 0], color=f"C{chain}", lw=0.7, alpha=0.85, label=f"chain {chain}")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("draw")


def label_switching(quick: bool) -> dict:
    from bayesfmm.bayes.relabel import detect_label_switching_idata, relabel_idata

    section("1. Label switching without an ordering constraint")
    rng = np.random.default_rng(11)
    in_second = rng.random(150) < 0.5
    data = pd.DataFrame({"y": rng.normal(np.where(in_second, 3.0, 0.0), 1.0)})
    model = bf.FMM("y ~ 1", k=2)
    draws = 300 if quick else 600
    settings = dict(draws=draws, tune=draws, chains=4, random_seed=5, sampler=_sampler(), progressbar=False)
    print(f"2-class normal mixture, means 0 and 3 (sd 1), n = 150; 4 chains, {settings['sampler']}")
    # PyMC's default start instead of the ML fit, so that chains start apart
    raw = model.sample(data, order=None, init="pymc", **settings)
    report = detect_label_switching_idata(raw.idata, raw.built)
    print(report)
    print("\ndiagnostics():", raw.diagnostics().verdict)

    section("2a. The fix by ordering: order='auto' (the default) orders the class means")
    ordered = model.sample(data, **settings)  # the defaults: ordering, chains started from the ML fit
    print(detect_label_switching_idata(ordered.idata, ordered.built).message())
    print("diagnostics():", ordered.diagnostics().verdict)

    section("2b. The fix by relabelling the unconstrained draws (Stephens 2000)")
    relabelled = relabel_idata(raw.idata, raw.built, "stephens")
    after = detect_label_switching_idata(relabelled, raw.built)
    print(after.message())
    means = relabelled["posterior"]["y_Intercept"].mean(("chain", "draw")).to_numpy()
    print(f"posterior means of the class means after relabelling: {np.round(means, 3)}"
          "  (consistent labels, in an arbitrary order)")
    print(f"with the ordering constraint:                         "
          f"{np.round(ordered.idata['posterior']['y_Intercept'].mean(('chain', 'draw')).to_numpy(), 3)}")

    fig, axes = new_figure(3, width=4.6)
    plot_traces(axes[0], raw.idata, "y_Intercept", "no ordering: labels switch")
    plot_traces(axes[1], ordered.idata, "y_Intercept", "order='auto': means ordered")
    plot_traces(axes[2], relabelled, "y_Intercept", "no ordering, relabelled (Stephens)")
    axes[0].set_ylabel("mean of class 1")
    axes[0].legend(fontsize=7, loc="center right")
    save(fig, "identifiability_switching.png")
    return {"raw": report, "relabelled": after}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ml-only", action="store_true", help="skip the sampling parts (1-2)")
    parser.add_argument("--quick", action="store_true", help="shorter chains")
    args = parser.parse_args(argv)
    pd.set_option("display.width", 120)
    stamp = bf.datasets.load("stamp")
    if not args.ml_only:
        label_switching(args.quick)
    collapse(stamp)
    flat_likelihood()


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        main()
