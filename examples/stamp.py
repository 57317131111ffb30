"""Stata's [FMM] fmm intro with bayesfmm: mixtures of normal and lognormal densities on the
thickness of the 1872 Hidalgo stamps (Izenman & Sommer 1988).

Stata commands and their bayesfmm equivalents::

    use stamp                                  df = bf.datasets.load("stamp")
    fmm 3: regress thickness                   res = bf.FMM("thickness ~ 1", k=3).fit(df, log=True)
                                               print(res.summary())
    estat lcprob                               res.lcprob()
    estat lcmean                               res.lcmean()
    predict pr*, classposteriorpr              res.predict(kind="classposteriorpr")
    predict den, density marginal              res.predict(kind="density", marginal=True)
    fmm 3: glm thickness, family(lognormal)    bf.FMM("thickness ~ 1", family="lognormal", k=3)

    bayesmh-like posterior                     post = bf.FMM("thickness ~ 1", k=3).sample(df, target=400)

It ends with the Bayesian fit of the same model (NUTS until R-hat <= 1.01 and ESS >= 400):
the posterior table beside the ML one, the diagnostics verdict and a figure of the class
means' posterior draws. Run it with ``make demo`` or ``python examples/stamp.py``; the
figures go to ``examples/output/`` next to this script.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import bayesfmm as bf
from bayesfmm.plotting import plot_mixture_density

OUTPUT = Path(__file__).resolve().parent / "output"

# Stata's printed results for `fmm 3: regress thickness` (Stata 19 [FMM] fmm intro,
# "Mixture of normal distributions"). Stata labels the classes thin -> thick, as the
# default start values here do; class 1 is the base class of the class logits.
STATA = {
    "source": "Stata 19 [FMM] fmm intro",
    "llf": 1518.8484,
    "class logit 2": 0.6410696,
    "class logit 3": 0.8101538,
    "mean 1": 0.0712183,
    "mean 2": 0.0786016,
    "mean 3": 0.0988789,
    "lcprob 1": 0.1942968,
    "lcprob 2": 0.3688746,
    "lcprob 3": 0.4368286,
}


def section(title: str) -> None:
    print(f"\n{title}\n{'=' * len(title)}")


def posterior_table(res, data: pd.DataFrame, response: str = "thickness") -> pd.DataFrame:
    """Posterior class probabilities by distinct response value, rounded to 3 decimals.

    As the manual does, the trailing run of values with identical rounded probabilities is
    collapsed into one row labelled with its range (".09-.131").
    """
    posterior = res.predict(kind="classposteriorpr")
    posterior.columns = [f"pr{j}" for j in posterior.columns]
    posterior.insert(0, response, data.loc[posterior.index, response])
    table = posterior.groupby(response, sort=True).first().round(3)
    rows = table.to_numpy()
    start = len(rows) - 1
    while start > 0 and np.array_equal(rows[start - 1], rows[-1]):
        start -= 1

    def label(value: float) -> str:
        return f"{value:.3f}".rstrip("0").removeprefix("0") or "0"

    labels = [label(v) for v in table.index]
    if start < len(rows) - 1:
        labels = labels[:start] + [f"{labels[start]}-{labels[-1]}"]
        table = table.iloc[: start + 1]
    table.index = pd.Index(labels, name=response)
    return table


def compare_with_stata(res, res32) -> pd.DataFrame:
    """Our estimates next to Stata's printed ones (float64 data, and float32 as Stata stores it)."""
    params, lcprob = res.params, res.lcprob()["margin"]
    params32, lcprob32 = res32.params, res32.lcprob()["margin"]

    def ours(p, lc, llf):
        return {
            "llf": llf,
            "class logit 2": p[(2, "Class", "Intercept")],
            "class logit 3": p[(3, "Class", "Intercept")],
            "mean 1": p[(1, "thickness", "Intercept")],
            "mean 2": p[(2, "thickness", "Intercept")],
            "mean 3": p[(3, "thickness", "Intercept")],
            "lcprob 1": lc[1],
            "lcprob 2": lc[2],
            "lcprob 3": lc[3],
        }

    a, b = ours(params, lcprob, res.llf), ours(params32, lcprob32, res32.llf)
    rows = []
    for name, value in a.items():
        stata = STATA[name]
        rows.append(
            {
                "quantity": name,
                "Stata": stata,
                "bayesfmm": value,
                "rel. diff": abs(value - stata) / abs(stata),
                "bayesfmm (float32 data)": b[name],
                "rel. diff (float32)": abs(b[name] - stata) / abs(stata),
            }
        )
    return pd.DataFrame(rows).set_index("quantity")


def save_figure(normal, lognormal, path: Path) -> Path:
    """Two panels, each the histogram with the fitted mixture and its weighted components."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend needed

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    plot_mixture_density(normal, ax=left, label="normal mixture")
    left.set_title("fmm 3: regress thickness")
    plot_mixture_density(lognormal, ax=right, label="lognormal mixture")
    right.set_title("fmm 3: glm thickness, family(lognormal)")
    for ax in (left, right):
        ax.set_xlabel("thickness (mm)")
    fig.suptitle("1872 Hidalgo stamps: histogram of thickness and fitted 3-class mixtures")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def main() -> None:
    pd.set_option("display.width", 120)
    stamp = bf.datasets.load("stamp")

    section("fmm 3: regress thickness")
    normal = bf.FMM("thickness ~ 1", family="gaussian", k=3).fit(stamp, log=True)
    print()
    print(normal.summary())

    section("estat lcprob  ->  res.lcprob()")
    print(normal.lcprob().round(7).to_string())

    section("estat lcmean  ->  res.lcmean()")
    print(normal.lcmean().round(7).to_string())

    section("predict pr*, classposteriorpr  ->  res.predict(kind='classposteriorpr')")
    print(posterior_table(normal, stamp).to_string())

    section(f"Comparison with Stata's printed results ({STATA['source']})")
    # Stata stores thickness as a 4-byte float; fitting those float32 values gives its
    # printed digits, the float64 values give the exact optimum about 1e-5 away.
    normal32 = bf.FMM("thickness ~ 1", family="gaussian", k=3).fit(stamp.astype("float32"))
    comparison = compare_with_stata(normal, normal32)
    print(
        comparison.to_string(
            formatters={
                "Stata": lambda v: str(float(v)),  # as printed
                "bayesfmm": "{:.8g}".format,
                "bayesfmm (float32 data)": "{:.8g}".format,
                "rel. diff": "{:.1e}".format,
                "rel. diff (float32)": "{:.1e}".format,
            }
        )
    )
    worst = comparison["rel. diff"].max()
    print(f"\nlargest relative difference from Stata: {worst:.1e} (float32 data: "
          f"{comparison['rel. diff (float32)'].max():.1e})")

    section("fmm 3: glm thickness, family(lognormal)")
    lognormal = bf.FMM("thickness ~ 1", family="lognormal", k=3).fit(stamp)
    print(lognormal.summary())

    section("lognormal: predict pr*, classposteriorpr")
    print(posterior_table(lognormal, stamp).to_string())

    section("Figure")
    path = save_figure(normal, lognormal, OUTPUT / "stamp_densities.png")
    print(f"wrote {path}")

    bayesian_fit(normal, stamp)


def ml_beside_bayes(ml, post) -> pd.DataFrame:
    """The ML estimates and standard errors next to the posterior means, sds and R-hat."""
    summary = post.summary().frame
    return pd.DataFrame(
        {
            "ML": ml.params,
            "ML s.e.": ml.bse,
            "posterior mean": post.params,
            "posterior sd": post.bse,
            "R-hat": summary["r_hat"],
            "ESS": summary["ess_bulk"].round(0),
        }
    )


def bayesian_fit(ml, stamp: pd.DataFrame) -> None:
    """The same model in Bayesian mode: NUTS (nutpie) until R-hat <= 1.01 and ESS >= 400,
    chains started from the ML optimum, default priors (docs/bayes.md)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    section("Bayesian mode: model.sample(stamp, target=400)  (nutpie; compiling takes 10-60 s)")
    post = bf.FMM("thickness ~ 1", family="gaussian", k=3).sample(stamp, random_seed=1, target=400, progressbar=False)
    print(post.account)
    print(f"Diagnostics: {post.diagnostics().verdict}")
    table = ml_beside_bayes(ml, post)
    print(table.to_string(float_format=lambda v: f"{v:.6g}"))

    draws = post.idata["posterior"]["thickness_Intercept"].to_numpy().reshape(-1, post.k)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for j in range(post.k):
        ax.hist(draws[:, j], bins=60, density=True, alpha=0.6, label=f"class {j + 1}")
        ax.axvline(ml.params[(j + 1, "thickness", "Intercept")], color="k", lw=0.8)
    ax.set_xlabel("class mean of thickness (posterior draws; black lines: ML)")
    ax.legend()
    fig.tight_layout()
    path = OUTPUT / "stamp_posterior_means.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
