"""flexmix's published examples with class structure, fitted with bayesfmm and drawn as the
flexmix regression-examples paper draws them.

Four datasets, five models, each with 20 ``randompr`` starts (seed 1)::

    betablocker   binomial, all rows of a centre in one class, Treatment effect equal
                  flexmix: flexmix(cbind(Deaths, Total - Deaths) ~ 1 | Center, k = 3,
                                   model = FLXMRglmfix(family = "binomial", fixed = ~ Treatment))
                  here:    bf.FMM("Deaths ~ Treatment", family="binomial", trials="Total", k=3,
                                  group="Center", equal="Treatment")
    fabricfault   Poisson, log(Length) effect equal across classes, and the variant with the
                  intercept fixed at 0 in class 1 (flexmix ``nested``)
                  here:    bf.FMM("Faults ~ log(Length)", family="poisson", k=2,
                                  equal="log(Length)"[, constraints="[1]Intercept = 0"])
    patent        Poisson, class probabilities depending on R&D per sales (concomitant RDS)
                  flexmix: flexmix(Patents ~ lgRD, k = 3, model = FLXMRglm(family = "poisson"),
                                   concomitant = FLXPmultinom(~ RDS))
                  here:    bf.FMM("Patents ~ lgRD", family="poisson", k=3, lcprob="~ RDS")
    NregFix       Gaussian, concomitant w, x2 equal across classes, x1 zero in class 1 and
                  shared by classes 2 and 3, one error variance
                  here:    bf.FMM("y ~ x2 + x1", k=3, lcprob="~ w", equal="x2",
                                  nested={"x1": [(2, 3)]}, constraints="[1]x1 = 0",
                                  lcinvariant="errvar")

It prints each fit's Stata-like summary and a table of log likelihood, df and BIC next to
flexmix's published values (../shared/reference/README.md), then draws fitted class means
(``res.predict(kind="mu")``, one column per class) against the data, points coloured by
their most likely class (``kind="classposteriorpr"``), and the patent class probabilities
against RDS (``kind="classpr"``).

Run it with ``python examples/flexmix_structure.py [OUTPUT_DIR]``; the four figures
(``flexmix_betablocker.png``, ``flexmix_fabricfault.png``, ``flexmix_patent.png``,
``flexmix_nregfix.png``) go to ``examples/output/`` next to this script unless a folder is
given. It takes about 10 seconds.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import bayesfmm as bf

OUTPUT = Path(__file__).resolve().parent / "output"
DRAWS: dict[str, Any] = {"startvalues": "randompr", "draws": 20, "seed": 1}

# Published flexmix values (the regression-examples paper, copied in
# ../shared/reference/README.md). None: not printed. NregFix prints only the BIC: its log
# likelihood is implied by BIC = -2 logLik + df log(n). The fabricfault intercept-0 value
# is the paper's local optimum; a better one exists.
FLEXMIX = {
    "betablocker": {"llf": -159.3605, "df": 6, "bic": 341.4262, "note": ""},
    "fabricfault": {"llf": -86.33119, "df": 4, "bic": 186.5253, "note": ""},
    "fabricfault, [1]Intercept = 0": {"llf": -88.990, "df": 3, "bic": None,
                                      "note": "flexmix's is a local optimum"},
    "patent": {"llf": -197.6753, "df": 10, "bic": 437.8355, "note": ""},
    "NregFix": {"llf": None, "df": 10, "bic": 856.9122,
                "note": "flexmix llf implied by its BIC"},
}


def section(title: str) -> None:
    print(f"\n{title}\n{'=' * len(title)}")


def colour(j: int) -> str:
    """One colour per class, the same in every figure."""
    return f"C{j - 1}"


def modal_class(res) -> pd.Series:
    """Each row's most likely class (the largest posterior class probability)."""
    return res.predict(kind="classposteriorpr").idxmax(axis=1)


# --------------------------------------------------------------------------- fits


def fit_all() -> dict[str, tuple[Any, pd.DataFrame]]:
    """The five published models, each with its data."""
    beta = bf.datasets.load("betablocker")
    fabric = bf.datasets.load("fabricfault")
    patent = bf.datasets.load("patent")
    nreg = bf.datasets.load("NregFix")
    fabric_formula = "Faults ~ log(Length)"
    models = {
        "betablocker": (
            bf.FMM("Deaths ~ Treatment", family="binomial", trials="Total", k=3,
                   group="Center", equal="Treatment"),
            beta,
        ),
        "fabricfault": (bf.FMM(fabric_formula, family="poisson", k=2, equal="log(Length)"), fabric),
        "fabricfault, [1]Intercept = 0": (
            bf.FMM(fabric_formula, family="poisson", k=2, equal="log(Length)",
                   constraints="[1]Intercept = 0"),
            fabric,
        ),
        "patent": (bf.FMM("Patents ~ lgRD", family="poisson", k=3, lcprob="~ RDS"), patent),
        "NregFix": (
            bf.FMM("y ~ x2 + x1", k=3, lcprob="~ w", equal="x2", nested={"x1": [(2, 3)]},
                   constraints="[1]x1 = 0", lcinvariant="errvar"),
            nreg,
        ),
    }
    return {name: (model.fit(data, **DRAWS), data) for name, (model, data) in models.items()}


def comparison_table(fits: dict[str, tuple[Any, pd.DataFrame]]) -> pd.DataFrame:
    """Log likelihood, df and BIC: ours next to flexmix's published values."""
    rows = []
    for name, (res, _) in fits.items():
        ref = FLEXMIX[name]
        llf = ref["llf"]
        if llf is None:  # only the BIC was printed
            llf = -(ref["bic"] - ref["df"] * math.log(res.nobs)) / 2
        rows.append({
            "model": name,
            "llf": res.llf, "flexmix llf": llf,
            "df": res.df_model, "flexmix df": ref["df"],
            "BIC": res.bic, "flexmix BIC": ref["bic"],
            "note": ref["note"],
        })
    return pd.DataFrame(rows).set_index("model")


# --------------------------------------------------------------------------- figures


def _new_figure(ncols: int, width: float = 6.0):
    from matplotlib.figure import Figure  # no pyplot: the Agg canvas, no GUI backend needed

    fig = Figure(figsize=(width * ncols, 4.8), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_betablocker(res, data: pd.DataFrame, path: Path) -> Path:
    """Observed death rate per centre and arm, with each class's fitted rate.

    Both rows of a centre share its class (``group="Center"``), so the centre's two points are
    joined and coloured by its most likely class.
    """
    fig, (ax,) = _new_figure(1, width=7.0)
    levels = list(data["Treatment"].cat.categories)  # Control, Treated
    x = data["Treatment"].cat.codes.to_numpy().astype(float)
    rate = (data["Deaths"] / data["Total"]).to_numpy()
    modal = modal_class(res).to_numpy()
    centres = data["Center"].to_numpy()
    rng = np.random.default_rng(0)
    jitter = {c: rng.uniform(-0.04, 0.04) for c in np.unique(centres)}
    for c in np.unique(centres):
        rows = np.flatnonzero(centres == c)
        rows = rows[np.argsort(x[rows])]
        ax.plot(x[rows] + jitter[c], rate[rows], "o-", color=colour(int(modal[rows[0]])),
                alpha=0.45, markersize=5, linewidth=0.8)
    # Fitted class rates: mu is the expected count Total * p, so one trial gives p.
    arms = pd.DataFrame({"Treatment": pd.Categorical(levels, categories=levels), "Total": 1.0})
    fitted = res.predict(arms, kind="mu")
    margins = res.lcprob()["margin"]
    for j in fitted.columns:
        n_centres = len(np.unique(centres[modal == j]))
        ax.plot([0, 1], fitted[j].to_numpy(), "s-", color=colour(j), linewidth=2.5, markersize=7,
                label=f"class {j}: pi = {margins[j]:.2f}, {n_centres} centres")
    ax.set_xticks([0, 1], levels)
    ax.set_xlim(-0.3, 1.3)
    ax.set_xlabel("arm (each centre's two arms joined, coloured by its most likely class)")
    ax.set_ylabel("deaths / patients")
    ax.set_title("betablocker: 3 classes of centres, Treatment effect equal across classes")
    ax.legend(frameon=False, fontsize="small")
    return _save(fig, path)


def plot_fabricfault(fits: list[tuple[str, Any]], data: pd.DataFrame, path: Path) -> Path:
    """Faults against roll length with each class's fitted mean, one panel per model."""
    fig, axes = _new_figure(len(fits))
    grid = pd.DataFrame({"Length": np.linspace(data["Length"].min(), data["Length"].max(), 200)})
    for ax, (title, res) in zip(axes, fits):
        means = res.predict(grid, kind="mu")
        modal = modal_class(res).to_numpy()
        margins = res.lcprob()["margin"]
        for j in means.columns:
            rows = modal == j
            ax.scatter(data["Length"][rows], data["Faults"][rows], color=colour(j), s=22)
            ax.plot(grid["Length"], means[j], color=colour(j),
                    label=f"class {j}: Intercept {res.params[(j, 'Faults', 'Intercept')]:.2f}, "
                          f"pi = {margins[j]:.2f}")
        ax.set_xlabel("roll length (m)")
        ax.set_ylabel("faults")
        ax.set_title(f"{title}\nlog likelihood {res.llf:.3f}, df {res.df_model}", fontsize="medium")
        ax.legend(frameon=False, fontsize="small", loc="upper left")
    fig.suptitle("fabricfault: 2-class Poisson, log(Length) slope equal across classes")
    return _save(fig, path)


def plot_patent(res, data: pd.DataFrame, path: Path) -> Path:
    """Patents against lgRD with the class curves; class probabilities against RDS."""
    fig, (left, right) = _new_figure(2)
    modal = modal_class(res).to_numpy()
    # predict(newdata) encodes the whole model, so the grid carries both covariates: the class
    # means do not depend on RDS, nor the class probabilities on lgRD.
    grid = pd.DataFrame({"lgRD": np.linspace(data["lgRD"].min(), data["lgRD"].max(), 200),
                         "RDS": data["RDS"].median()})
    means = res.predict(grid, kind="mu")
    for j in means.columns:
        rows = modal == j
        left.scatter(data["lgRD"][rows], data["Patents"][rows], color=colour(j), s=20)
        left.plot(grid["lgRD"], means[j], color=colour(j),
                  label=f"class {j}: slope {res.params[(j, 'Patents', 'lgRD')]:.2f}")
    left.set_ylim(-5, data["Patents"].max() * 1.1)
    left.set_xlabel("lgRD (log R&D spending)")
    left.set_ylabel("patents")
    left.set_title("Patents ~ lgRD, points by most likely class", fontsize="medium")
    left.legend(frameon=False, fontsize="small", loc="upper left")

    # RDS is skewed (median 0.04, maximum 3.3): a log axis shows every firm
    rds = pd.DataFrame({"RDS": np.geomspace(data["RDS"].min(), data["RDS"].max(), 200),
                        "lgRD": data["lgRD"].median()})
    prior = res.predict(rds, kind="classpr")
    for j in prior.columns:
        right.plot(rds["RDS"], prior[j], color=colour(j), label=f"class {j}")
    right.plot(data["RDS"], np.full(len(data), -0.02), "|", color="0.4", markersize=8)
    right.set_ylim(-0.05, 1.02)
    right.set_xscale("log")
    right.set_xlabel("RDS (R&D spending / sales, log scale)")
    right.set_ylabel("class probability")
    right.set_title("class model ~ RDS (ticks: observed RDS)", fontsize="medium")
    right.legend(frameon=False, fontsize="small")
    fig.suptitle(f"patent: 3-class Poisson regression, log likelihood {res.llf:.4f}")
    return _save(fig, path)


def plot_nregfix(res, data: pd.DataFrame, path: Path) -> Path:
    """y against x1, one panel per level of x2, with each class's fitted line."""
    levels = list(data["x2"].cat.categories)
    fig, axes = _new_figure(len(levels))
    modal = modal_class(res).to_numpy()
    x1 = np.linspace(data["x1"].min(), data["x1"].max(), 50)
    for ax, level in zip(axes, levels):
        rows = (data["x2"] == level).to_numpy()
        # w enters only the class model; predict(newdata) still needs the column
        grid = pd.DataFrame({"x1": x1, "x2": pd.Categorical([level] * x1.size, categories=levels),
                             "w": data["w"].iloc[0]})
        means = res.predict(grid, kind="mu")
        for j in means.columns:
            here = rows & (modal == j)
            ax.scatter(data["x1"][here], data["y"][here], color=colour(j), s=14)
            ax.plot(x1, means[j], color=colour(j), label=f"class {j}: x1 slope {res.params[(j, 'y', 'x1')]:.2f}")
        ax.set_xlabel("x1")
        ax.set_ylabel("y")
        ax.set_title(f"x2 = {level}", fontsize="medium")
        ax.legend(frameon=False, fontsize="small", loc="upper left")
    fig.suptitle("NregFix: x2 equal across classes, x1 zero in class 1 and shared by classes 2, 3")
    return _save(fig, path)


# --------------------------------------------------------------------------- main


def main(output: str | Path | None = None) -> dict[str, Path]:
    """Fit the five models, print their summaries and the flexmix comparison, draw the figures.

    Parameters
    ----------
    output
        Folder for the PNG files; default ``examples/output`` next to this script.

    Returns
    -------
    dict
        Dataset name -> path of the figure written.
    """
    pd.set_option("display.width", 140)
    output = OUTPUT if output is None else Path(output)
    fits = fit_all()

    for name, (res, _) in fits.items():
        section(name)
        print(res.summary())
        print("\nestat lcprob -> res.lcprob() (class probabilities averaged over the rows):")
        print(res.lcprob().round(4).to_string())

    section("Log likelihood, df and BIC: bayesfmm vs flexmix's published fits")
    table = comparison_table(fits)
    print(table.to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))

    beta, beta_data = fits["betablocker"]
    section("betablocker: most likely class of each centre")
    by_centre = pd.DataFrame({"Center": beta_data["Center"], "class": modal_class(beta)})
    print(by_centre.drop_duplicates("Center").groupby("class")["Center"]
          .apply(lambda c: ", ".join(str(int(v)) for v in sorted(c))).to_string())

    fabric, fabric_data = fits["fabricfault"]
    paths = {
        "betablocker": plot_betablocker(beta, beta_data, output / "flexmix_betablocker.png"),
        "fabricfault": plot_fabricfault(
            [("log(Length) equal", fabric),
             ("log(Length) equal, [1]Intercept = 0", fits["fabricfault, [1]Intercept = 0"][0])],
            fabric_data, output / "flexmix_fabricfault.png"),
        "patent": plot_patent(*fits["patent"], output / "flexmix_patent.png"),
        "NregFix": plot_nregfix(*fits["NregFix"], output / "flexmix_nregfix.png"),
    }
    section("Figures")
    for path in paths.values():
        print(f"wrote {path}")
    return paths


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
