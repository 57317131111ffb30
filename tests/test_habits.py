"""statsmodels / flexmix / Stata habits on the results (bayesfmm/habits.py).

Oracles: statsmodels Poisson's ``llnull``/``llr``/``tvalues``/``fittedvalues``; the closed
form of a normal sample's log likelihood for the null model of stamp; ``exp`` of the
estimates and their intervals by hand for ``eform``; the delta method with an analytic
gradient for ``nlcom``; ``argmax`` of the posterior class probabilities for ``clusters``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.stats import chi2, norm

import bayesfmm as bf
from bayesfmm import FMM, Component


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    df["y"] = rng.poisson(np.exp(0.5 + 0.3 * df.x - 0.2 * df.z))
    return df


@pytest.fixture(scope="module")
def poisson(counts):
    res = bf.FMM("y ~ x + z", family="poisson", k=1).fit(counts)
    sres = sm.Poisson(counts.y, sm.add_constant(counts[["x", "z"]])).fit(disp=0, tol=1e-12)
    return res, sres


@pytest.fixture(scope="module")
def stamp_fit():
    return bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))


def test_statsmodels_names_on_a_one_class_poisson(poisson, counts):
    res, sres = poisson
    np.testing.assert_allclose(res.tvalues.to_numpy(), sres.tvalues.to_numpy(), rtol=1e-5)
    assert res.tvalues.equals(res.zvalues)
    np.testing.assert_allclose(res.fittedvalues.to_numpy(), sres.predict(), rtol=1e-6)
    np.testing.assert_allclose(res.resid.to_numpy(), counts.y - sres.predict(), atol=1e-6)
    assert res.df_resid == sres.df_resid == 397
    assert res.llnull == pytest.approx(sres.llnull, abs=1e-6)
    assert res.llr == pytest.approx(sres.llr, abs=1e-5)
    assert res.llr_pvalue == pytest.approx(sres.llr_pvalue, rel=1e-4)
    test = res.lrtest_null()
    assert test.df == 2 and "LR chi2(2)" in str(test)
    assert res.model == bf.FMM("y ~ x + z", family="poisson", k=1)


def test_llnull_of_a_normal_mixture_is_the_normal_sample_loglik(stamp_fit):
    y = bf.datasets.load("stamp").thickness.to_numpy()
    closed = norm.logpdf(y, y.mean(), y.std()).sum()
    assert stamp_fit.llnull == pytest.approx(closed, abs=1e-6)
    test = stamp_fit.lrtest_null()
    assert test.df == 8 - 2
    assert test.pvalue == pytest.approx(chi2.sf(2 * (stamp_fit.llf - closed), 6), rel=1e-6)


def test_llnull_is_nan_when_classes_have_different_families():
    bio = bf.datasets.load("bioChemists")
    res = FMM([Component("art ~ 1", family="pointmass"), Component("art ~ fem", family="poisson")]).fit(bio)
    assert np.isnan(res.llnull)


def test_clusters_and_wide_parameters(stamp_fit):
    post = stamp_fit.predict(kind="classposteriorpr")
    modal = stamp_fit.clusters()
    assert modal.tolist() == (post.to_numpy().argmax(axis=1) + 1).tolist()
    wide = stamp_fit.parameters()
    assert list(wide.columns) == [1, 2, 3]
    assert wide.loc[("thickness", "Intercept"), 2] == stamp_fit.params[(2, "thickness", "Intercept")]
    conc = stamp_fit.parameters("concomitant")
    assert conc.loc["Intercept", 1] == 0.0 and conc.loc["Intercept", 3] == stamp_fit.params[(3, "Class", "Intercept")]
    with pytest.raises(bf.SpecificationError):
        stamp_fit.parameters("other")


def test_eform_by_hand(poisson):
    res, _ = poisson
    table = res.eform()
    b, se, ci = res.params, res.bse, res.conf_int()
    np.testing.assert_allclose(table["exp(b)"], np.exp(b), rtol=1e-12)
    np.testing.assert_allclose(table["std_err"], np.exp(b) * se, rtol=1e-12)
    np.testing.assert_allclose(table["lower"], np.exp(ci["lower"]), rtol=1e-10)
    np.testing.assert_allclose(table["upper"], np.exp(ci["upper"]), rtol=1e-10)


def test_eform_leaves_out_auxiliary_parameters(stamp_fit):
    assert not any(term == "var(e)" for term in stamp_fit.eform().index.get_level_values("term"))
    assert len(stamp_fit.eform()) == 5


def test_nlcom_by_hand(stamp_fit):
    p, V = stamp_fit.params, stamp_fit.cov_params()
    a, b = (3, "thickness", "Intercept"), (1, "thickness", "Intercept")
    ratio = p[a] / p[b]
    grad = np.array([1 / p[b], -p[a] / p[b] ** 2])
    cov = V.loc[[a, b], [a, b]].to_numpy()
    se = np.sqrt(grad @ cov @ grad)
    out = stamp_fit.nlcom({"ratio": "[3]thickness:Intercept / [1]_cons", "odds": "exp([2]Class:Intercept)"})
    assert out.loc["ratio", "coef"] == pytest.approx(ratio, rel=1e-12)
    assert out.loc["ratio", "std_err"] == pytest.approx(se, rel=1e-6)
    g = p[(2, "Class", "Intercept")]
    assert out.loc["odds", "coef"] == pytest.approx(np.exp(g), rel=1e-12)
    assert out.loc["odds", "std_err"] == pytest.approx(np.exp(g) * stamp_fit.bse[(2, "Class", "Intercept")], rel=1e-6)
    with pytest.raises(bf.SpecificationError, match="unknown parameter"):
        stamp_fit.nlcom("[1]nothing")
    with pytest.raises(bf.SpecificationError, match="neither a parameter"):
        stamp_fit.nlcom("__import__('os')")


def test_summary_displays_as_the_table(stamp_fit):
    summary = stamp_fit.summary()
    assert repr(summary) == str(summary)
    assert str(summary).startswith("Finite mixture model")
    html = summary._repr_html_()
    assert html.startswith("<pre>") and "Number of obs" in html


@pytest.mark.slow
def test_bayes_habits():
    stamp = bf.datasets.load("stamp")
    post = bf.FMM("thickness ~ 1", k=2).sample(stamp, draws=150, tune=150, chains=2, random_seed=1, progressbar=False)
    assert post.fittedvalues.shape == (485,)
    assert post.clusters().nunique() == 2
    assert post.parameters().shape == (2, 2)
    e = post.eform()
    draws = post._flat_report[:, 0]
    assert e.iloc[0]["exp(b)"] == pytest.approx(np.exp(draws).mean(), rel=1e-12)
    n = post.nlcom("exp([2]Class:Intercept)")
    assert n.iloc[0]["coef"] == pytest.approx(e.iloc[0]["exp(b)"], rel=1e-12)
    assert repr(post.summary()).startswith("Bayesian finite mixture model")
