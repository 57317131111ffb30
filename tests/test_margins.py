"""margins (bayesfmm/margins.py): Stata's predictive margins and average marginal effects.

Oracles: statsmodels ``Poisson(...).get_margeff(at="overall")`` on a 1-class Poisson
(average marginal effects and delta-method SEs to 1e-6); on 2-class models a computation
written here: the AME from finite differences of ``res.predict`` on shifted data, and for
a Poisson mixture with constant class probabilities the closed form
``mean_i sum_j pi_j mu_ij b_j`` with its delta-method SE from a numerical gradient.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import bayesfmm as bf


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    n = 500
    df = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n), "g": rng.choice(["a", "b", "c"], n)})
    df["y"] = rng.poisson(np.exp(0.5 + 0.3 * df.x - 0.2 * df.z + (df.g == "b") * 0.4))
    return df


@pytest.fixture(scope="module")
def mixture():
    rng = np.random.default_rng(5)
    n = 800
    df = pd.DataFrame({"x": rng.normal(size=n), "g": rng.choice(["a", "b"], n)})
    second = rng.random(n) < 0.4
    df["y"] = rng.poisson(np.exp(np.where(second, 2.0 + 0.5 * df.x, 0.2 - 0.4 * df.x)))
    return df


def test_one_class_poisson_equals_statsmodels_get_margeff(counts):
    res = bf.FMM("y ~ x + z", family="poisson", k=1).fit(counts)
    sres = sm.Poisson(counts.y, sm.add_constant(counts[["x", "z"]])).fit(disp=0, tol=1e-12)
    me = sres.get_margeff(at="overall")
    ours = res.margins(counts, dydx="x"), res.margins(counts, dydx="z")
    ame = np.array([o.loc[(name, "marginal"), "margin"] for o, name in zip(ours, "xz")])
    se = np.array([o.loc[(name, "marginal"), "std_err"] for o, name in zip(ours, "xz")])
    np.testing.assert_allclose(ame, me.margeff, rtol=1e-6)
    np.testing.assert_allclose(se, me.margeff_se, rtol=1e-6)
    # one class: the class-1 row is the marginal one
    np.testing.assert_allclose(ours[0].loc[("x", 1)].to_numpy(), ours[0].loc[("x", "marginal")].to_numpy())


def test_two_class_poisson_ame_and_se_against_the_closed_form(mixture):
    res = bf.FMM("y ~ x", family="poisson", k=2).fit(mixture)
    table = res.margins(mixture, dydx="x")

    def ame(theta):
        r = dataclasses.replace(res, theta=theta)
        mu = r.predict(kind="mu").to_numpy()
        pi = r.predict(kind="classpr").to_numpy()
        b = np.array([r.params[(j, "y", "x")] for j in (1, 2)])
        per_class = (mu * b).mean(axis=0)
        return np.concatenate([[(pi * mu * b).sum(axis=1).mean()], per_class])

    value = ame(res.theta)
    grad = np.empty((3, res.theta.size))
    for i in range(res.theta.size):
        step = np.zeros_like(res.theta)
        step[i] = 1e-5
        grad[:, i] = (ame(res.theta + step) - ame(res.theta - step)) / 2e-5
    se = np.sqrt(np.einsum("ij,jk,ik->i", grad, res.cov_theta, grad))
    np.testing.assert_allclose(table["margin"].to_numpy(), value, rtol=1e-7)
    np.testing.assert_allclose(table["std_err"].to_numpy(), se, rtol=1e-5)
    assert list(table.index.get_level_values("class")) == ["marginal", 1, 2]


def test_class_model_covariate_enters_the_marginal_effect(mixture):
    """With lcprob="~ x", d/dx of the marginal mean includes the class probabilities'
    slope; checked against finite differences of res.predict on shifted data."""
    res = bf.FMM("y ~ x", family="poisson", k=2, lcprob="~ x").fit(mixture)
    h = 1e-5
    up, down = mixture.assign(x=mixture.x + h), mixture.assign(x=mixture.x - h)
    fd_marginal = ((res.predict(up, marginal=True) - res.predict(down, marginal=True)) / (2 * h)).mean()
    fd_classes = ((res.predict(up) - res.predict(down)) / (2 * h)).mean().to_numpy()
    table = res.margins(mixture, dydx="x")
    np.testing.assert_allclose(table["margin"].to_numpy(), np.r_[fd_marginal, fd_classes], rtol=1e-6)
    assert np.all(table["std_err"] > 0)


def test_factor_levels_and_discrete_changes(counts):
    res = bf.FMM("y ~ x + C(g)", family="poisson", k=1).fit(counts)
    at = res.margins(counts, at="g")
    for level in "abc":
        expected = res.predict(counts.assign(g=level), marginal=True).mean()
        assert at.loc[(f"g={level}", "marginal"), "margin"] == pytest.approx(expected, rel=1e-10)
    change = res.margins(counts, dydx="g")
    assert list(change.index.get_level_values("term").unique()) == ["b.g", "c.g"]
    diff = at.loc[("g=b", "marginal"), "margin"] - at.loc[("g=a", "marginal"), "margin"]
    assert change.loc[("b.g", "marginal"), "margin"] == pytest.approx(diff, rel=1e-10)


def test_over_groups_average_within_each_group(counts):
    res = bf.FMM("y ~ x + C(g)", family="poisson", k=1).fit(counts)
    table = res.margins(counts, over="g")
    for level in "abc":
        rows = counts[counts.g == level]
        expected = res.predict(rows, marginal=True).mean()
        assert table.loc[(level, "_margin", "marginal"), "margin"] == pytest.approx(expected, rel=1e-10)
    overall = res.margins(counts)
    assert overall.loc[("_margin", "marginal"), "margin"] == pytest.approx(counts.y.mean(), rel=1e-6)  # Poisson with intercept


def test_refusals(counts):
    res = bf.FMM("y ~ x", family="poisson", k=1).fit(counts)
    with pytest.raises(bf.DataError, match="nope"):
        res.margins(counts, dydx="nope")
    with pytest.raises(bf.SpecificationError, match="not both"):
        res.margins(counts, at="g", dydx="x")
    with pytest.raises(bf.SpecificationError, match="response"):
        res.margins(counts, dydx="x", equation="w")


@pytest.mark.slow
def test_bayes_margins_summarise_draws(mixture):
    post = bf.FMM("y ~ x", family="poisson", k=2).sample(mixture, draws=150, tune=150, chains=2, random_seed=1,
                                                        progressbar=False)
    table = post.margins(mixture, dydx="x", max_draws=60)
    ml = post.ml.margins(mixture, dydx="x")
    assert list(table.columns) == ["margin", "std_err", "lower", "upper"]
    # the posterior mean is within 3 ML standard errors of the ML estimate
    assert np.all(np.abs(table["margin"] - ml["margin"]) < 3 * ml["std_err"])
    assert np.all(table["lower"] < table["margin"]) and np.all(table["margin"] < table["upper"])
