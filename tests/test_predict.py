"""predict(): every kind, marginal forms, and new data re-encoded with the fitted design."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import simulate_regression_mixture
from scipy import stats

import bayesfmm as bf


@pytest.fixture(scope="module")
def regression_fit():
    data, _ = simulate_regression_mixture(600, seed=4)
    data["g"] = pd.Categorical(np.where(data["x1"] > 0, "hi", "lo"), categories=["lo", "hi"])
    res = bf.FMM("y ~ x1 + x2 + C(g)", k=3, lcprob="~ x2").fit(data)
    return res, data


def test_classwise_kinds_have_one_column_per_class(stamp_normal3):
    for kind in ("mu", "eta", "density", "distribution", "classpr", "classposteriorpr"):
        out = stamp_normal3.predict(kind=kind)
        assert list(out.columns) == [1, 2, 3], kind
        assert len(out) == 485


def test_density_and_distribution_equal_scipy(stamp_normal3, stamp):
    p = stamp_normal3.params
    y = stamp["thickness"].to_numpy()
    dens = stamp_normal3.predict(kind="density")
    cdf = stamp_normal3.predict(kind="distribution")
    for j in (1, 2, 3):
        mu, sd = p[(j, "thickness", "Intercept")], np.sqrt(p[(j, "thickness", "var(e)")])
        np.testing.assert_allclose(dens[j], stats.norm.pdf(y, mu, sd), rtol=1e-8, atol=1e-300)
        np.testing.assert_allclose(cdf[j], stats.norm.cdf(y, mu, sd), rtol=1e-10)
        np.testing.assert_allclose(stamp_normal3.predict(kind="mu")[j], mu)


def test_marginal_forms_mix_over_class_probabilities(stamp_normal3):
    pi = stamp_normal3.predict(kind="classpr")
    np.testing.assert_allclose(pi.iloc[0], stamp_normal3.lcprob()["margin"], rtol=1e-10)
    for kind in ("mu", "density", "distribution"):
        marginal = stamp_normal3.predict(kind=kind, marginal=True)
        np.testing.assert_allclose(marginal, (pi * stamp_normal3.predict(kind=kind)).sum(axis=1), rtol=1e-12)
    # the marginal log density sums to the log likelihood
    assert np.isclose(np.log(stamp_normal3.predict(kind="density", marginal=True)).sum(), stamp_normal3.llf)


def test_posterior_probabilities_by_bayes_rule(stamp_normal3):
    post = stamp_normal3.predict(kind="classposteriorpr")
    joint = stamp_normal3.predict(kind="classpr") * stamp_normal3.predict(kind="density")
    np.testing.assert_allclose(post, joint.div(joint.sum(axis=1), axis=0), rtol=1e-10)


def test_lognormal_mean_and_eta(stamp_lognormal3):
    p = stamp_lognormal3.params
    mu = stamp_lognormal3.predict(kind="mu")
    eta = stamp_lognormal3.predict(kind="eta")
    for j in (1, 2, 3):
        b, v = p[(j, "thickness", "Intercept")], p[(j, "thickness", "var(e)")]
        np.testing.assert_allclose(eta[j], b)
        np.testing.assert_allclose(mu[j], np.exp(b + v / 2))
    lcmean = stamp_lognormal3.lcmean()
    np.testing.assert_allclose(lcmean["margin"].to_numpy(), mu.iloc[0].to_numpy())


def test_new_data_is_encoded_with_the_fitted_design(regression_fit):
    res, data = regression_fit
    subset = data.iloc[[5, 17, 200, 333]]
    for kind in ("mu", "eta", "classpr", "classposteriorpr", "density"):
        in_sample = res.predict(kind=kind).loc[subset.index]
        fresh = res.predict(subset, kind=kind)
        np.testing.assert_allclose(fresh.to_numpy(), in_sample.to_numpy(), rtol=1e-12)
    # a single level of the categorical still encodes against both fitted levels
    one_level = subset[subset["g"] == "hi"]
    assert res.predict(one_level, kind="eta").shape == (len(one_level), 3)


def test_new_data_without_the_response_for_mu(regression_fit):
    res, data = regression_fit
    newdata = data[["x1", "x2", "g"]].iloc[:5]
    np.testing.assert_allclose(res.predict(newdata, kind="mu"), res.predict(kind="mu").iloc[:5])


def test_lcprob_with_covariates_averages_rows(regression_fit):
    res, _ = regression_fit
    assert np.allclose(res.lcprob()["margin"], res.predict(kind="classpr").mean(axis=0))
    assert np.isclose(res.lcprob()["margin"].sum(), 1.0)
    assert (res.lcprob()["se"] > 0).all()


def test_lcmean_standard_errors_by_delta_method(stamp_normal3):
    # for an intercept-only gaussian the class mean is the intercept: same SE
    lcmean = stamp_normal3.lcmean()
    for j in (1, 2, 3):
        key = (j, "thickness", "Intercept")
        assert np.isclose(lcmean.loc[(j, "thickness"), "se"], stamp_normal3.bse[key], rtol=1e-5)
