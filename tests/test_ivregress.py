"""Stata's ``ivregress`` component (issue 18): LIML with one class (checked against
linearmodels' ``IVLIML``, an independent implementation), recovery of a simulated 2-class
mixture with endogeneity where a plain gaussian regression mixture is biased, exact
derivatives against finite differences, the PyMC density, pickling and bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_mvnormal import _numeric_derivatives

import bayesfmm as bf
from bayesfmm.errors import DataError, SpecificationError
from bayesfmm.families.ivregress import ivregress_family, split_iv_formula, weighted_liml
from bayesfmm.likelihood import loglike, score_hessian
from bayesfmm.mvresults import iv_covariance_table

IV = {"family": "ivregress", "endogenous": "w", "instruments": "z1 + z2"}


def _one_class_data(seed=1, n=500, endogenous=1):
    """y = 1 + 0.5 x + 2 w1 (- w2) + u; the w's depend on x and z1..z3 and share errors with u."""
    rng = np.random.default_rng(seed)
    x, z1, z2, z3 = rng.normal(size=(4, n))
    cov = np.array([[1.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 1.5]])[: endogenous + 1, : endogenous + 1]
    err = rng.multivariate_normal(np.zeros(endogenous + 1), cov, size=n)
    data = pd.DataFrame({"x": x, "z1": z1, "z2": z2, "z3": z3})
    data["w"] = 0.5 + 0.3 * x + 0.8 * z1 - 0.5 * z2 + err[:, 1]
    y = 1 + 0.5 * x + 2 * data["w"] + err[:, 0]
    if endogenous == 2:
        data["w2"] = -0.2 * x + 0.4 * z2 + 0.9 * z3 + err[:, 2]
        y = y - data["w2"]
    data["y"] = y
    return data


def _liml(data, endogenous, instruments):
    linearmodels = pytest.importorskip("linearmodels.iv")
    exog = data[["x"]].assign(const=1.0)[["const", "x"]]
    fit = linearmodels.IVLIML(data["y"], exog, data[list(endogenous)], data[list(instruments)]).fit(cov_type="unadjusted")
    return fit.params


@pytest.mark.parametrize(
    "endogenous,instruments",
    [(("w",), ("z1",)), (("w",), ("z1", "z2")), (("w", "w2"), ("z1", "z2", "z3"))],
    ids=["just-identified", "over-identified", "two-endogenous"],
)
def test_one_class_is_liml(endogenous, instruments):
    """k=1 equals linearmodels 7.1 ``IVLIML(...).fit()`` to 1e-6 in every structural
    coefficient (the FIML of the triangular system with unrestricted first stages)."""
    data = _one_class_data(endogenous=len(endogenous))
    res = bf.FMM("y ~ x", family="ivregress", endogenous=list(endogenous), instruments=list(instruments), k=1).fit(data)
    assert res.converged
    reference = _liml(data, endogenous, instruments)
    ours = [res.params.loc[(1, "y", term)] for term in ("Intercept", "x", *endogenous)]
    np.testing.assert_allclose(ours, reference.to_numpy(), atol=1e-6, rtol=0)
    # the closed form of the M-step is LIML itself
    X = np.c_[np.ones(len(data)), data["x"]]
    direct = weighted_liml(data["y"].to_numpy(), data[list(endogenous)].to_numpy(), X, data[list(instruments)].to_numpy())
    np.testing.assert_allclose(direct, reference.to_numpy(), atol=1e-8, rtol=0)
    # the first stages at the ML estimate: the score is 0
    _, gradient, _ = score_hessian(res.problem, res.theta)
    assert np.max(np.abs(gradient)) < 1e-4


def test_covariance_table_is_the_residual_covariance():
    data = _one_class_data()
    res = bf.FMM("y ~ x", k=1, **IV).fit(data)
    table = iv_covariance_table(res).loc[1]
    u = data["y"] - (res.params.loc[(1, "y", "Intercept")] + res.params.loc[(1, "y", "x")] * data["x"]
                     + res.params.loc[(1, "y", "w")] * data["w"])
    assert table.loc["var(e.y)", "coef"] == pytest.approx(np.mean(u**2), rel=1e-6)
    assert table.loc["var(e.y)", "coef"] == pytest.approx(res.params.loc[(1, "y", "var(e)")], rel=1e-12)
    assert list(table.index) == ["var(e.y)", "var(e.w)", "cov(e.w,e.y)", "corr(e.w,e.y)"]
    assert np.all(table["std_err"] > 0)


def _two_class_data(seed=3, n=1200):
    """Class 1 (40%): y = 4 + x + w; class 2: y = -2 + 0.5 x - w; corr(e.y, e.w) = 0.7 in both."""
    rng = np.random.default_rng(seed)
    first = rng.random(n) < 0.4
    x, z1, z2 = rng.normal(size=(3, n))
    u, v = rng.multivariate_normal([0, 0], [[1, 0.7], [0.7, 1]], size=n).T
    w = np.where(first, 1 + 0.5 * x + z1 - 0.5 * z2, -1 + 0.2 * x + 0.8 * z1 + 0.6 * z2) + v
    y = np.where(first, 4 + x + w, -2 + 0.5 * x - w) + u
    truth = {4.0: {"Intercept": 4.0, "x": 1.0, "w": 1.0}, -2.0: {"Intercept": -2.0, "x": 0.5, "w": -1.0}}
    return pd.DataFrame({"y": y, "x": x, "w": w, "z1": z1, "z2": z2}), truth


def _matched(res, truth):
    """Class number of each true class, by the closest intercept."""
    fitted = {j: res.params.loc[(j, "y", "Intercept")] for j in (1, 2)}
    return {key: min(fitted, key=lambda j: abs(fitted[j] - key)) for key in truth}


def test_two_class_mixture_recovers_the_structural_coefficients():
    """The ivregress mixture's structural coefficients lie within 3 SE of the truth; a
    2-class gaussian regression mixture on the same data misses the endogenous
    coefficient by more than 5 of its SEs in each class."""
    data, truth = _two_class_data()
    res = bf.FMM("y ~ x", k=2, **IV).fit(data)
    assert res.converged
    plain = bf.FMM("y ~ x + w", k=2).fit(data)
    matched, matched_plain = _matched(res, truth), _matched(plain, truth)
    assert sorted(matched.values()) == [1, 2] and sorted(matched_plain.values()) == [1, 2]
    for key, coefs in truth.items():
        for term, value in coefs.items():
            idx = (matched[key], "y", term)
            assert abs(res.params.loc[idx] - value) < 3 * res.bse.loc[idx], idx
        idx = (matched_plain[key], "y", "w")
        assert abs(plain.params.loc[idx] - coefs["w"]) > 5 * plain.bse.loc[idx], idx
    corr = iv_covariance_table(res).xs("corr(e.w,e.y)", level="parameter")
    assert np.all(np.abs(corr["coef"] - 0.7) < 3 * corr["std_err"])


def test_eta_derivatives_match_finite_differences():
    rng = np.random.default_rng(4)
    family = ivregress_family("y", ("w1", "w2"), ("z1", "z2"))
    n = 8
    extra = {"endogenous:w1": rng.normal(size=n), "endogenous:w2": 2 * rng.normal(size=n)}
    y = rng.normal(size=n)
    etas = [rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)] + [0.4 * rng.normal() for _ in family.slots[3:]]
    d, h = family.eta_derivatives(y, etas, extra)
    d_num, h_num = _numeric_derivatives(family, y, etas, extra=extra)
    np.testing.assert_allclose(d, d_num, atol=1e-5)
    np.testing.assert_allclose(np.asarray(h), h_num, atol=5e-5)


def test_mixture_score_and_hessian_match_finite_differences():
    """The exact score and Hessian of a 2-class ivregress log likelihood at a point away
    from the optimum against central differences of the log likelihood (and of the score)."""
    data, _ = _two_class_data(n=150)
    res = bf.FMM("y ~ x", k=2, **IV).fit(data)
    problem = res.problem
    theta = res.theta + 0.05 * np.random.default_rng(5).normal(size=res.theta.size)
    _, g, H = score_hessian(problem, theta)
    step = 1e-5
    eye = np.eye(theta.size)
    g_num = np.array([(loglike(problem, theta + step * e) - loglike(problem, theta - step * e)) / (2 * step) for e in eye])
    np.testing.assert_allclose(g, g_num, rtol=1e-5, atol=1e-4)
    H_num = np.array([(score_hessian(problem, theta + step * e)[1] - score_hessian(problem, theta - step * e)[1]) / (2 * step) for e in eye])
    np.testing.assert_allclose(H, H_num, rtol=1e-5, atol=1e-3)


def test_fit_pickles_summarises_and_predicts():
    data, _ = _two_class_data(n=400)
    res = bf.FMM("y ~ x", k=2, **IV).fit(data)
    back = pickle.loads(pickle.dumps(res))
    pd.testing.assert_series_equal(back.params, res.params)
    pd.testing.assert_series_equal(back.bse, res.bse)
    assert str(back.summary()) == str(res.summary())
    text = str(res.summary())
    assert "ivregress" in text and "z2" in text
    # Stata's var(e.y), var(e.w), cov(e.w,e.y) printed under each class, as covariance_table has them
    assert text.count("cov(e.w,e.y)") == 2 and text.count(" var(e.w) |") == 2
    table = iv_covariance_table(res)
    assert f"{table.loc[(1, 'cov(e.w,e.y)'), 'coef']:.6g}".lstrip("0")[:5] in text  # Stata's .6306
    mu = res.predict()
    # the default prediction: each class's structural mean X b + W g at the observed w
    first = mu.iloc[:, 0].to_numpy()
    p = res.params.loc[1].loc["y"]
    np.testing.assert_allclose(first, p["Intercept"] + p["x"] * data["x"] + p["w"] * data["w"], rtol=1e-12)
    again = res.predict(data=data.iloc[:10])
    np.testing.assert_allclose(again.to_numpy(), mu.iloc[:10].to_numpy(), rtol=1e-12)
    density = res.predict(kind="density")
    assert density.shape == (400, 2) and np.all(density.to_numpy() > 0)
    cdf = res.predict(kind="distribution")
    assert np.all((cdf.to_numpy() >= 0) & (cdf.to_numpy() <= 1)) and cdf.shape == (400, 2)


def test_distribution_is_the_conditional_normal_given_w():
    family = ivregress_family("y", ("w",), ("z",))
    aux = [np.log(0.8), -0.6, np.log(1.3)]
    sigma = np.linalg.inv(np.array([[0.8, 0], [-0.6, 1.3]]).T @ np.array([[0.8, 0], [-0.6, 1.3]]))
    y, w, mu_y, mu_w = 0.7, 1.5, 0.2, 0.4
    etas = [np.array([mu_y]), np.array([mu_w]), *aux]
    cond_mean = mu_y + sigma[0, 1] / sigma[1, 1] * (w - mu_w)
    cond_sd = np.sqrt(sigma[0, 0] - sigma[0, 1] ** 2 / sigma[1, 1])
    from bayesfmm.ops import NUMPY_OPS

    value = family.cdf(np.array([y]), etas, NUMPY_OPS, {"endogenous:w": np.array([w])})
    assert float(value[0]) == pytest.approx(stats.norm.cdf(y, cond_mean, cond_sd), rel=1e-12)


def test_pymc_logp_equals_numpy_likelihood_plus_prior():
    pytest.importorskip("pymc")
    from bayesfmm.bayes import Normal
    from bayesfmm.bayes.sample import build_model

    data, _ = _two_class_data(n=200)
    priors = {"cons": Normal(0, 10), "coef": Normal(0, 5), "errvar": Normal(0, 2), "class": Normal(0, 1.5)}
    built = build_model(bf.FMM("y ~ x", k=2, **IV), data, priors=priors, order=None)
    logp = built.model.compile_logp(jacobian=False)
    index = built.problem.layout.index
    sds = {"Intercept": 10.0, "var(e)": 2.0, "cvar(e)": 2.0, "chol(y)": 2.0}
    rng = np.random.default_rng(6)
    for _ in range(3):
        theta = built.pooled + 0.1 * rng.normal(size=built.pooled.size)
        prior = 0.0
        for (_cls, eq, term), value in zip(index, theta):
            sd = 1.5 if eq == "Class" else sds.get(term, 5.0)
            prior += stats.norm.logpdf(value, 0, sd)
        reference = loglike(built.problem, theta) + prior
        assert float(logp(built.value_point(theta))) == pytest.approx(reference, rel=1e-9)


def test_bad_input_is_named():
    with pytest.raises(SpecificationError, match=r"under-identified.*\['w1', 'w2'\].*\['z1'\]"):
        bf.Component("y ~ x", family="ivregress", endogenous="w1 + w2", instruments="z1")
    with pytest.raises(SpecificationError, match="endogenous regressor"):
        bf.Component("y ~ x", family="ivregress", instruments="z1")
    with pytest.raises(SpecificationError, match=r"\['z1'\] are given both"):
        bf.Component("y ~ x", family="ivregress", endogenous="z1", instruments="z1 + z2")
    with pytest.raises(SpecificationError, match="plain column names"):
        bf.Component("y ~ x", family="ivregress", endogenous="log(w)", instruments="z1")
    data, _ = _two_class_data(n=50)
    with pytest.raises(DataError, match="'z3'"):
        bf.FMM("y ~ x", family="ivregress", endogenous="w", instruments="z1 + z3", k=1).fit(data)
    collinear = data.assign(z3=2 * data["x"])
    with pytest.raises(DataError, match="rank deficient.*z3"):
        bf.FMM("y ~ x", family="ivregress", endogenous="w", instruments="z3", k=1).fit(collinear)
    with pytest.raises(DataError, match="must be numeric"):
        bf.FMM("y ~ x", k=1, **IV).fit(data.assign(z2="a"))


def test_parenthesised_syntax_fits_as_the_options_do():
    """Stata's "y ~ x + (w ~ z1 + z2)" reaches the same fit as endogenous=/instruments=."""
    data, _ = _two_class_data(n=400)
    a = bf.FMM("y ~ x + (w ~ z1 + z2)", family="ivregress", k=1).fit(data)
    b = bf.FMM("y ~ x", k=1, **IV).fit(data)
    pd.testing.assert_series_equal(a.params, b.params, rtol=1e-12)


def test_parenthesised_syntax_splits_into_options():
    assert split_iv_formula("y ~ x + (w ~ z1 + z2)", "ivregress", {}) == (
        "y ~ x", {"endogenous": ("w",), "instruments": ("z1", "z2")}
    )
    assert split_iv_formula("y ~ x1 + (w1 + w2 ~ z1 z2 z3) + x2", "ivregress", {})[0] == "y ~ x1 + x2"
    assert split_iv_formula("y ~ x", "gaussian", {}) == ("y ~ x", {})
    with pytest.raises(SpecificationError, match="family='ivregress'"):
        split_iv_formula("y ~ x + (w ~ z)", "gaussian", {})
    with pytest.raises(SpecificationError, match="do not also give"):
        split_iv_formula("y ~ x + (w ~ z)", "ivregress", {"instruments": "z"})


def test_lcinvariant_errvar_ties_the_error_covariance():
    data, _ = _two_class_data(n=400)
    res = bf.FMM("y ~ x", k=2, lcinvariant="errvar", **IV).fit(data)
    assert res.converged
    table = iv_covariance_table(res)
    np.testing.assert_allclose(table.loc[1, "coef"].to_numpy(), table.loc[2, "coef"].to_numpy(), rtol=1e-10)
    assert res.params.loc[(1, "y", "w")] != pytest.approx(res.params.loc[(2, "y", "w")], abs=0.5)


def test_simulate_draws_y_from_its_distribution_given_w():
    """bf.simulate draws y given x, z and the observed w: the fitted distribution function
    at the simulated y is uniform (KS p > 0.001 at n = 4000; seed fixed), and a one-class
    refit on simulated data recovers the structural coefficients within 4 SE."""
    from scipy import stats

    rng = np.random.default_rng(1)
    n = 4000
    x, z1, z2 = rng.normal(size=(3, n))
    u, v = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], size=n).T
    w = 0.5 * x + z1 + 0.7 * z2 + v
    data = pd.DataFrame({"y": 1 + x + 2 * w + u, "x": x, "w": w, "z1": z1, "z2": z2})
    res = bf.FMM("y ~ x + (w ~ z1 + z2)", family="ivregress", k=1).fit(data)
    sim = bf.simulate(res, rng=np.random.default_rng(3))
    replicated = data.assign(y=sim["y"].to_numpy())
    pit = res.predict(kind="distribution", data=replicated).iloc[:, 0].to_numpy()
    assert stats.kstest(pit, "uniform").pvalue > 1e-3
    refit = bf.FMM("y ~ x + (w ~ z1 + z2)", family="ivregress", k=1).fit(replicated)
    for term in ("Intercept", "x", "w"):
        key = (1, "y", term)
        assert abs(refit.params[key] - res.params[key]) < 4 * refit.bse[key]
