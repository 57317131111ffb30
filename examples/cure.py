"""A mixture cure model: a point mass on the failure indicator beside a Weibull survival class.

Simulated trial (the data are generated here, so the truth is known): 3,000 patients, half
treated; a patient is cured (never relapses) with probability 25% untreated and 45% treated;
the others relapse after a Weibull time with proportional hazards in age and treatment;
follow-up ends at a uniform time between 1 and 10 years (right censoring).

In a cure model the cured class never fails, so its failure indicator is 0 with probability
1: a ``pointmass`` at 0 on ``relapse``. The other class is a ``streg`` Weibull regression of
the follow-up time with ``relapse`` as the failure indicator, and the class probability
depends on treatment::

    Stata: fmm, lcprob(treat): (pointmass relapse) (streg treat age, distribution(weibull))
           (after stset years, failure(relapse))
    here:  bf.FMM([bf.Component("relapse ~ 1", family="pointmass", value=0),
                   bf.Component("years ~ treat + age", family="streg", distribution="weibull",
                                failure="relapse", lcprob="~ treat")])

The figure shows, by arm, the Kaplan-Meier estimate against the fitted population survival
(which levels off at the cure fraction) and a plain Weibull fit (which cannot), and the
survival curves of each latent class (``predict(kind="survival")``: the cured class at 1).

Run it with ``python examples/cure.py``; the figure goes to ``examples/output/cure.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import bayesfmm as bf

OUTPUT = Path(__file__).resolve().parent / "output"
TRUTH = {"cure logit": (-1.0986, 0.8979), "Intercept": -2.0, "treat": -0.5, "age": 0.03, "scale": 0.8}


def simulate(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    treat = rng.integers(0, 2, n)
    age = rng.normal(60, 8, n).round()
    cured_prob = 1 / (1 + np.exp(-(TRUTH["cure logit"][0] + TRUTH["cure logit"][1] * treat)))  # 25% / 45%
    cured = rng.random(n) < cured_prob
    eta = TRUTH["Intercept"] + TRUTH["treat"] * treat + TRUTH["age"] * (age - 60)
    relapse_time = (rng.exponential(size=n) * np.exp(-eta)) ** TRUTH["scale"]  # H(t) = exp(eta) t^(1/scale)
    relapse_time[cured] = np.inf
    follow_up = rng.uniform(1.0, 10.0, n)
    return pd.DataFrame({
        "years": np.minimum(relapse_time, follow_up),
        "relapse": (relapse_time <= follow_up).astype(int),
        "treat": treat,
        "age": age - 60,  # centred at 60
    })


def kaplan_meier(times: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Product-limit estimate at the distinct event times (a step function)."""
    order = np.argsort(times)
    times, events = times[order], events[order]
    at_risk = len(times) - np.arange(len(times))
    factors = np.where(events == 1, 1.0 - 1.0 / at_risk, 1.0)
    return np.r_[0.0, times], np.r_[1.0, np.cumprod(factors)]


def population_survival(res, arm: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """Fitted marginal survival, averaged over the arm's patients, at each time of ``grid``."""
    return np.array([res.predict(arm.assign(years=t), kind="survival", marginal=True).mean() for t in grid])


def save_figure(cure, weibull, data: pd.DataFrame, path: Path) -> Path:
    from matplotlib.figure import Figure  # no pyplot: no GUI backend needed

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    grid = np.linspace(0.02, 10.0, 80)
    colours = {0: "tab:red", 1: "tab:blue"}
    for treat, label in ((0, "control"), (1, "treated")):
        arm = data[data["treat"] == treat]
        km_t, km_s = kaplan_meier(arm["years"].to_numpy(), arm["relapse"].to_numpy())
        left.step(km_t, km_s, where="post", color=colours[treat], alpha=0.5, label=f"Kaplan-Meier, {label}")
        left.plot(grid, population_survival(cure, arm, grid), color=colours[treat], label=f"cure model, {label}")
        left.plot(grid, population_survival(weibull, arm, grid), "--", color=colours[treat], label=f"Weibull, {label}")
        cured = cure.predict(arm.head(1), kind="classpr").iloc[0, 0]
        left.axhline(cured, color=colours[treat], linestyle=":", linewidth=0.8)
    left.set_xlabel("years since treatment")
    left.set_ylabel("relapse-free proportion")
    left.set_ylim(0, 1.02)
    left.set_title("population survival (dotted: fitted cure fraction)")
    left.legend(frameon=False, fontsize=8)

    # class-wise survival of a 60-year-old in each arm
    for treat, style in ((0, "-"), (1, "--")):
        patient = pd.DataFrame({"years": grid, "treat": treat, "age": 0.0})
        curves = cure.predict(patient, kind="survival")
        right.plot(grid, curves[1], style, color="tab:green", label=f"class 1 (cured), treat={treat}")
        right.plot(grid, curves[2], style, color="tab:purple", label=f"class 2 (Weibull), treat={treat}")
    right.set_xlabel("years since treatment")
    right.set_ylabel("survival within the class")
    right.set_ylim(0, 1.02)
    right.set_title("survival curves by latent class, age 60")
    right.legend(frameon=False, fontsize=8)

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main(output: Path = OUTPUT) -> Path:
    pd.set_option("display.width", 120)
    data = simulate()
    print(f"{len(data)} patients, {data['relapse'].mean():.1%} relapses observed")

    model = bf.FMM([
        bf.Component("relapse ~ 1", family="pointmass", value=0),
        bf.Component("years ~ treat + age", family="streg", distribution="weibull", failure="relapse", lcprob="~ treat"),
    ])
    cure = model.fit(data)
    weibull = bf.FMM("years ~ treat + age", family="streg", distribution="weibull", failure="relapse", k=1).fit(data)
    print(cure.summary())
    estimates = pd.DataFrame({"estimate": cure.params, "se": cure.bse})
    truth = [-TRUTH["cure logit"][0], -TRUTH["cure logit"][1], TRUTH["Intercept"], TRUTH["treat"], TRUTH["age"], TRUTH["scale"]]
    estimates["truth"] = truth  # class 2 (uncured) is not the base: its logit is minus the cure logit
    print(estimates.round(4))
    print(f"\nlog likelihood: cure model {cure.llf:.2f} (df {cure.df_model}), Weibull {weibull.llf:.2f} "
          f"(df {weibull.df_model}); BIC {cure.bic:.1f} vs {weibull.bic:.1f}")
    path = save_figure(cure, weibull, data, output / "cure.png")
    print(f"\nFigure: {path}")
    return path


if __name__ == "__main__":
    main()
