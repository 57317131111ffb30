"""Postestimation inference: test, lincom, lrtest, ic, relabel, lcmean's delta method.

Oracles: the Wald statistic and lincom are recomputed here with numpy from ``params`` and
``cov_params()``; the test's size is checked by simulation (p-values uniform under the
null, Kolmogorov-Smirnov); criteria are recomputed from their published formulas
(flexmix's ICL: ``-2 clogLik + df log n``, R/infocrit.R); a relabelled fit is checked
against a fresh fit started at the relabelled estimates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesfmm as bf
from bayesfmm.likelihood import loglike


def simulate_two_class(n: int, slope2: float, rng: np.random.Generator, z_effect: float = 0.0) -> pd.DataFrame:
    """``y = a_c + b_c x + e``: class 1 (a=-3, b=1), class 2 (a=3, b=slope2), sd 1, P(2)=0.5
    (logit ``z_effect * z`` when given)."""
    x = rng.standard_normal(n)
    z = rng.standard_normal(n)
    cls = rng.uniform(size=n) < 1 / (1 + np.exp(-z_effect * z))
    y = np.where(cls, 3 + slope2 * x, -3 + 1.0 * x) + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "x2": rng.standard_normal(n), "z": z})


@pytest.fixture(scope="module")
def different_slopes():
    data = simulate_two_class(300, 2.0, np.random.default_rng(1))
    return bf.FMM("y ~ x + x2", k=2).fit(data)


# -- Wald test -----------------------------------------------------------------------
def test_wald_rejects_equal_slopes_when_they_differ(different_slopes):
    res = different_slopes
    t = res.test("[1]x = [2]x")
    assert t.df == 1 and t.pvalue < 1e-6
    b, V = res.params, res.cov_params()
    k1, k2 = (1, "y", "x"), (2, "y", "x")
    diff = b[k1] - b[k2]
    var = V.loc[k1, k1] + V.loc[k2, k2] - 2 * V.loc[k1, k2]
    assert np.isclose(t.statistic, diff**2 / var, rtol=1e-10)
    assert np.isclose(t.pvalue, stats.chi2.sf(diff**2 / var, 1), rtol=1e-10)


def test_joint_wald_test_matches_the_matrix_formula(different_slopes):
    res = different_slopes
    t = res.test(["[1]x = [2]x", "[1]x2 = 0", "[2]y:x2 = 0"])
    names = [(1, "y", "x"), (2, "y", "x"), (1, "y", "x2"), (2, "y", "x2")]
    R = np.array([[1, -1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
    b = res.params[names].to_numpy()
    V = res.cov_params().loc[names, names].to_numpy()
    expected = (R @ b) @ np.linalg.solve(R @ V @ R.T, R @ b)
    assert t.df == 3 and np.isclose(t.statistic, expected, rtol=1e-10)
    assert t.constraints[0] == "[1]y:x - [2]y:x = 0"
    assert "chi2(  3)" in str(t)


def test_test_syntax_scales_constants_and_dropped_constraints(different_slopes):
    res = different_slopes
    b = res.params
    one = res.test("2*[1]x - [2]x/0.5 = 0")  # the same hypothesis as [1]x = [2]x
    assert np.isclose(one.statistic, res.test("[1]x = [2]x").statistic, rtol=1e-10)
    shifted = res.test("[2]x = 2")
    assert np.isclose(shifted.statistic, ((b[(2, "y", "x")] - 2) / res.bse[(2, "y", "x")]) ** 2, rtol=1e-10)
    assert np.isclose(res.test("[2]_cons = 3").statistic, res.test("[2]y:Intercept - 3 = 0").statistic)
    chained = res.test("[1]x = [2]x = 1")
    assert chained.df == 2
    redundant = res.test(["[1]x = [2]x", "2*[1]x = 2*[2]x"])
    assert redundant.df == 1 and redundant.dropped == ("(2)",)
    assert np.isclose(res.test("[2]Class:Intercept").statistic, res.zvalues[(2, "Class", "Intercept")] ** 2)


def test_lincom_is_the_linear_combination_with_its_standard_error(different_slopes):
    res = different_slopes
    out = res.lincom("[2]x - [1]x")
    b, V = res.params, res.cov_params()
    k1, k2 = (1, "y", "x"), (2, "y", "x")
    se = np.sqrt(V.loc[k1, k1] + V.loc[k2, k2] - 2 * V.loc[k1, k2])
    assert np.isclose(out.estimate, b[k2] - b[k1], rtol=1e-12)
    assert np.isclose(out.se, se, rtol=1e-10)
    assert np.isclose(out.z**2, res.test("[1]x = [2]x").statistic, rtol=1e-10)
    assert np.isclose(out.lower, out.estimate - stats.norm.ppf(0.975) * se)
    assert list(out.as_frame().columns) == ["coef", "std_err", "z", "p", "lower", "upper"]
    with pytest.raises(bf.SpecificationError, match="not an equation"):
        res.lincom("[2]x = [1]x")


def test_unknown_and_ambiguous_parameter_names_are_clear_errors(different_slopes):
    res = different_slopes
    with pytest.raises(bf.SpecificationError, match=r"unknown parameter '\[1\]xx'; close matches: \[1\]x"):
        res.test("[1]xx = [2]x")
    with pytest.raises(bf.SpecificationError, match="from 1 to 2"):
        res.test("[3]x = 0")
    with pytest.raises(bf.SpecificationError, match="class 1 is the base class"):
        res.test("[1]Class:Intercept = 0")
    with pytest.raises(bf.SpecificationError, match="name the class"):
        res.test("x = 0")
    with pytest.raises(bf.SpecificationError, match="not linear"):
        res.test("[1]x * [2]x = 0")
    with pytest.raises(bf.SpecificationError, match="expected an operator"):
        res.test("[1]x [2]x")
    data = simulate_two_class(200, 1.0, np.random.default_rng(3)).assign(w=lambda d: d["y"] + d["x2"])
    two = bf.FMM([bf.Component("y ~ x"), bf.Component("w ~ x")], k=2).fit(data)
    with pytest.raises(bf.SpecificationError, match=r"ambiguous: write \[1\]y:x or \[1\]w:x"):
        two.test("[1]x = 0")
    assert two.test("[1]w:x = [2]w:x").df == 1


@pytest.mark.slow  # 200 default fits, each with its search for a better maximum (issue 13): ~30 s
def test_wald_p_values_are_uniform_under_the_null():
    # 200 data sets where the slope is the same in both classes (n = 300 each)
    rng = np.random.default_rng(2024)
    pvalues = []
    for _ in range(200):
        res = bf.FMM("y ~ x", k=2).fit(simulate_two_class(300, 1.0, rng))
        assert res.converged
        pvalues.append(res.test("[1]x = [2]x").pvalue)
    ks = stats.kstest(pvalues, "uniform")
    assert ks.pvalue > 0.01, ks
    assert 0.02 < np.mean(np.array(pvalues) < 0.05) < 0.09


# -- likelihood-ratio test -----------------------------------------------------------
def test_lrtest_between_nested_fits(different_slopes):
    data = simulate_two_class(300, 2.0, np.random.default_rng(1))
    small = bf.FMM("y ~ x", k=2).fit(data)
    big = different_slopes
    out = big.lrtest(small)
    assert out.df == 2 and np.isclose(out.statistic, 2 * (big.llf - small.llf), rtol=1e-12)
    assert np.isclose(out.pvalue, stats.chi2.sf(out.statistic, 2))
    same = small.lrtest(big)  # either order
    assert same.statistic == out.statistic and "LR chi2(2)" in str(same)


def test_lrtest_refusals(different_slopes):
    data = simulate_two_class(300, 2.0, np.random.default_rng(1))
    big = different_slopes
    with pytest.raises(bf.SpecificationError, match="not nested"):
        big.lrtest(bf.FMM("y ~ z", k=2).fit(data))
    with pytest.raises(bf.SpecificationError, match="same observations"):
        big.lrtest(bf.FMM("y ~ x", k=2).fit(data.iloc[:250]))
    with pytest.raises(bf.SpecificationError, match="likely invalid after vce='robust'"):
        big.lrtest(bf.FMM("y ~ x", k=2).fit(data, vce="robust"))
    one = bf.FMM("y ~ x + x2", k=1).fit(data)
    with pytest.raises(bf.SpecificationError, match="boundary"):
        big.lrtest(one)
    assert big.lrtest(one, force=True).df == big.df_model - one.df_model
    with pytest.raises(bf.SpecificationError, match="are not nested"):
        big.lrtest(big)


# -- information criteria ------------------------------------------------------------
def test_ic_formulas(stamp_normal3):
    res = stamp_normal3
    ic = res.ic()
    n, p, llf = res.nobs, res.df_model, res.llf
    post = res.predict(kind="classposteriorpr").to_numpy()
    assert ic["llf"] == llf and ic["df"] == p and ic["nobs"] == n
    assert np.isclose(ic["AIC"], -2 * llf + 2 * p) and np.isclose(ic["AIC"], res.aic)
    assert np.isclose(ic["BIC"], -2 * llf + np.log(n) * p) and np.isclose(ic["BIC"], res.bic)
    assert np.isclose(ic["CAIC"], -2 * llf + p * (np.log(n) + 1))  # Bozdogan (1987)
    assert np.isclose(ic["AICc"], -2 * llf + 2 * p + 2 * p * (p + 1) / (n - p - 1))  # Hurvich & Tsai (1989)
    # flexmix ICL = -2 clogLik + df log n, clogLik = sum_i log(pi_c f_c(y_i)) at the MAP class c
    y = res.design.classes[0][0].y
    comp = res.params.xs("thickness", level="equation")
    mu = comp.xs("Intercept", level="term").to_numpy()
    var = comp.xs("var(e)", level="term").to_numpy()
    pi = res.lcprob()["margin"].to_numpy()
    joint = np.log(pi) + stats.norm.logpdf(y[:, None], mu, np.sqrt(var))
    clog = joint[np.arange(n), post.argmax(axis=1)].sum()
    assert np.isclose(ic["ICL"], -2 * clog + p * np.log(n), rtol=1e-10)
    entropy = -np.sum(post[post > 0] * np.log(post[post > 0]))  # 0 log 0 = 0
    assert np.isclose(ic["ICL-BIC"], ic["BIC"] + 2 * entropy, rtol=1e-10)


# -- relabel -------------------------------------------------------------------------
def test_relabel_by_parameter_keeps_every_table_consistent(stamp, stamp_normal3):
    res = stamp_normal3
    new = res.relabel(by=("thickness", "Intercept"), descending=True)
    old_means = res.params.xs("Intercept", level="term").xs("thickness", level="equation")
    order = np.argsort(-old_means.to_numpy(), kind="stable") + 1  # new class j is old class order[j-1]
    assert list(order) != [1, 2, 3]
    assert np.isclose(loglike(new.problem, new.theta), res.llf, rtol=1e-13)
    for j, old in enumerate(order, start=1):
        for term in ("Intercept", "var(e)"):
            assert np.isclose(new.params[(j, "thickness", term)], res.params[(old, "thickness", term)], rtol=1e-12)
            assert np.isclose(new.bse[(j, "thickness", term)], res.bse[(old, "thickness", term)], rtol=1e-10)
    lc_old, lc_new = res.lcprob(), new.lcprob()
    np.testing.assert_allclose(lc_new["margin"], lc_old["margin"].to_numpy()[order - 1], rtol=1e-10)
    np.testing.assert_allclose(lc_new["se"], lc_old["se"].to_numpy()[order - 1], rtol=1e-5)
    for kind in ("classposteriorpr", "classpr", "mu", "density"):
        np.testing.assert_allclose(new.predict(kind=kind).to_numpy(), res.predict(kind=kind).to_numpy()[:, order - 1], rtol=1e-10)
    np.testing.assert_allclose(new.lcmean()["margin"], res.lcmean()["margin"].to_numpy()[order - 1], rtol=1e-10)
    # the class logits are re-expressed against the base class, and the covariance with them:
    # A V A' equals the inverse observed information of the relabelled model at the
    # relabelled estimates, and a fresh fit started there lands on the same estimates (up to
    # the one Newton step it takes: about 1e-7 relative)
    np.testing.assert_allclose(new.cov_theta, np.linalg.inv(-new.hessian), rtol=1e-8, atol=1e-16)
    fresh = bf.FMM("thickness ~ 1", k=3).fit(stamp, from_=new.params)
    np.testing.assert_allclose(fresh.params, new.params, rtol=1e-6)
    np.testing.assert_allclose(fresh.cov_params(), new.cov_params(), rtol=1e-4, atol=1e-14)
    assert "Class          : 3" in str(new.summary())
    assert np.isclose(new.ic()["ICL"], res.ic()["ICL"], rtol=1e-12)


def test_relabel_with_class_covariates_robust_vce_and_a_permutation():
    data = simulate_two_class(400, 1.5, np.random.default_rng(9), z_effect=1.0)
    data["cl"] = np.arange(len(data)) // 4
    model = bf.FMM("y ~ x", k=2, lcprob="~ z")
    res = model.fit(data, vce="cluster", cluster="cl")
    new = res.relabel([2, 1])
    # class 1 stays the base: the logit of new class 2 is minus the old one, for every term
    np.testing.assert_allclose(new.params.xs("Class", level="equation"), -res.params.xs("Class", level="equation"))
    fresh = model.fit(data, from_=new.params, vce="cluster", cluster="cl")
    np.testing.assert_allclose(fresh.params, new.params, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fresh.cov_params(), new.cov_params(), rtol=1e-4, atol=1e-10)
    assert new.n_clusters == res.n_clusters == 100
    np.testing.assert_allclose(new.predict(kind="classposteriorpr").to_numpy(), res.predict(kind="classposteriorpr").to_numpy()[:, ::-1])
    assert new.relabel([2, 1]).params.equals(res.params) or np.allclose(new.relabel([2, 1]).params, res.params, rtol=1e-12)


def test_relabel_hybrid_model_moves_components_with_their_class(stamp):
    res = bf.FMM([bf.Component("thickness ~ 1", "gaussian"), bf.Component("thickness ~ 1", "lognormal")]).fit(stamp)
    new = res.relabel([2, 1])
    assert new.summary().models[(1, "thickness")] == "lognormal"
    assert np.isclose(loglike(new.problem, new.theta), res.llf, rtol=1e-12)
    np.testing.assert_allclose(new.predict(kind="mu").to_numpy(), res.predict(kind="mu").to_numpy()[:, ::-1], rtol=1e-12)


def test_relabel_bad_input(stamp_normal3):
    with pytest.raises(bf.SpecificationError, match=r"permutation of 1..3"):
        stamp_normal3.relabel([1, 1, 2])
    with pytest.raises(bf.SpecificationError, match="has no parameter thickness:slope"):
        stamp_normal3.relabel(("thickness", "slope"))
    by_prob = stamp_normal3.relabel("lcprob")
    assert np.all(np.diff(by_prob.lcprob()["margin"]) >= 0)


# -- lcmean's delta method -----------------------------------------------------------
def test_lcmean_delta_method_is_xbar_v_xbar(different_slopes):
    res = different_slopes
    out = res.lcmean()
    X = np.column_stack([np.ones(res.nobs), res.design.classes[0][0].slot_designs[0][:, 1:]])
    xbar = X.mean(axis=0)
    for j in (1, 2):
        keys = [(j, "y", t) for t in ("Intercept", "x", "x2")]
        b = res.params[keys].to_numpy()
        V = res.cov_params().loc[keys, keys].to_numpy()
        assert np.isclose(out.loc[(j, "y"), "margin"], xbar @ b, rtol=1e-10)
        assert np.isclose(out.loc[(j, "y"), "se"], np.sqrt(xbar @ V @ xbar), rtol=1e-5)
