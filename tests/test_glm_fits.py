"""One-class fits of the count, binary and binomial families against statsmodels (computed
here), the zero-inflated Poisson and negative binomial against statsmodels' zero-inflated
models, formulas (transforms, interactions, no intercept, categorical terms), the point
mass through the whole ML path, and parameter recovery in simulated mixtures.

Tolerances (issue 3): coefficients 1e-6 relative, standard errors 1e-4 relative, log
likelihood 1e-6 absolute; zero-inflated models: llf 1e-6, coefficients 1e-5.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf

sm = pytest.importorskip("statsmodels.api")
from statsmodels.discrete.count_model import (  # noqa: E402
    ZeroInflatedNegativeBinomialP,
    ZeroInflatedPoisson,
)
from statsmodels.tools.numdiff import approx_hess3  # noqa: E402

COEF_RTOL, SE_RTOL, LLF_ATOL = 1e-6, 1e-4, 1e-6


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20240611)
    n = 600
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    df = pd.DataFrame({"x1": x1, "x2": x2})
    df["expo"] = rng.uniform(0.5, 3.0, n)
    df["off"] = rng.uniform(-0.3, 0.3, n)
    mu = np.exp(0.4 + 0.5 * x1 - 0.3 * x2 + np.log(df["expo"]) + df["off"])
    df["count"] = rng.poisson(mu)
    size = 1 / 0.6
    df["overdispersed"] = rng.negative_binomial(size, size / (size + mu))
    p = 1 / (1 + np.exp(-(-0.4 + 0.9 * x1 - 0.6 * x2)))
    df["trials"] = rng.integers(1, 25, n)
    df["successes"] = rng.binomial(df["trials"], p)
    df["ten"] = rng.binomial(10, p)
    df["binary"] = (rng.random(n) < p).astype(int)
    return df


def _exog(df, cols=("x1", "x2")):
    return sm.add_constant(df[list(cols)]).to_numpy()


def _assert_matches(res, ref, what, params_ref=None, bse_ref=None):
    """Compare a 1-class fit with a statsmodels fit, parameter by parameter in order."""
    ours_p, ours_se = res.params.to_numpy(), res.bse.to_numpy()
    ref_p = np.asarray(ref.params if params_ref is None else params_ref)
    ref_se = np.asarray(ref.bse if bse_ref is None else bse_ref)
    assert res.converged, what
    assert abs(res.llf - ref.llf) < LLF_ATOL, f"{what}: llf {res.llf} vs statsmodels {ref.llf}"
    np.testing.assert_allclose(ours_p, ref_p, rtol=COEF_RTOL, atol=1e-10, err_msg=f"{what} coefficients")
    np.testing.assert_allclose(ours_se, ref_se, rtol=SE_RTOL, err_msg=f"{what} standard errors")


# -- counts --------------------------------------------------------------------------------
def test_poisson_with_exposure_and_offset_equals_statsmodels(data):
    res = bf.FMM([bf.Component("count ~ x1 + x2", family="poisson", exposure="expo", offset="off")], k=1).fit(data)
    ref = sm.Poisson(data["count"], _exog(data), exposure=data["expo"], offset=data["off"]).fit(
        method="newton", tol=1e-12, disp=0
    )
    _assert_matches(res, ref, "poisson")
    assert list(res.params.index.get_level_values("term")) == ["Intercept", "x1", "x2"]


@pytest.mark.parametrize("dispersion, method, aux", [("mean", "nb2", "alpha"), ("constant", "nb1", "delta")])
def test_negative_binomial_equals_statsmodels(data, dispersion, method, aux):
    res = bf.FMM(
        [bf.Component("overdispersed ~ x1 + x2", family="nbreg", dispersion=dispersion, exposure="expo")], k=1
    ).fit(data)
    ref = sm.NegativeBinomial(
        data["overdispersed"], _exog(data), loglike_method=method, exposure=data["expo"]
    ).fit(method="newton", tol=1e-12, maxiter=200, disp=0)
    # statsmodels reports the dispersion on its natural scale (alpha or delta) last, as we do
    _assert_matches(res, ref, f"nbinomial {dispersion}")
    assert res.params.index[-1] == (1, "overdispersed", aux)
    # CI built on the log scale, as Stata's nbreg does for alpha
    ci = res.conf_int().iloc[-1]
    log_se = res.bse.iloc[-1] / res.params.iloc[-1]
    np.testing.assert_allclose(
        [ci["lower"], ci["upper"]], res.params.iloc[-1] * np.exp([-1.959963984540054 * log_se, 1.959963984540054 * log_se]), rtol=1e-9
    )


# -- binomial and binary -------------------------------------------------------------------
LINKS = {"logit": "Logit", "probit": "Probit", "cloglog": "CLogLog"}


@pytest.mark.parametrize("link", LINKS)
def test_binomial_with_trials_column_equals_statsmodels_glm(data, link):
    res = bf.FMM("successes ~ x1 + x2", family="binomial", trials="trials", link=link, k=1).fit(data)
    endog = np.column_stack([data["successes"], data["trials"] - data["successes"]])
    family = sm.families.Binomial(link=getattr(sm.families.links, LINKS[link])())
    # method="newton": standard errors from the observed information, as ours (IRLS would
    # give the expected information, which differs for the probit and cloglog links)
    ref = sm.GLM(endog, _exog(data), family=family).fit(method="newton", tol=1e-13, maxiter=100)
    _assert_matches(res, ref, f"binomial {link}")


def test_binomial_with_constant_trials_equals_statsmodels_glm(data):
    res = bf.FMM("ten ~ x1 + x2", family="binomial", trials=10, k=1).fit(data)
    endog = np.column_stack([data["ten"], 10 - data["ten"]])
    ref = sm.GLM(endog, _exog(data), family=sm.families.Binomial()).fit(method="newton", tol=1e-13)
    _assert_matches(res, ref, "binomial trials=10")
    np.testing.assert_allclose(res.predict(kind="mu")[1], 10 * ref.predict(), rtol=1e-6)


@pytest.mark.parametrize("family", ["logit", "probit"])
def test_bernoulli_equals_statsmodels_discrete(data, family):
    res = bf.FMM("binary ~ x1 + x2", family=family, k=1).fit(data)
    model = sm.Logit if family == "logit" else sm.Probit
    ref = model(data["binary"], _exog(data)).fit(method="newton", tol=1e-12, disp=0)
    _assert_matches(res, ref, family)
    same = bf.FMM("binary ~ x1 + x2", family="bernoulli", link=family, k=1).fit(data)
    assert same.llf == res.llf


def test_cloglog_bernoulli_equals_statsmodels_glm(data):
    res = bf.FMM("binary ~ x1 + x2", family="cloglog", k=1).fit(data)
    family = sm.families.Binomial(link=sm.families.links.CLogLog())
    ref = sm.GLM(data["binary"], _exog(data), family=family).fit(method="newton", tol=1e-13)
    _assert_matches(res, ref, "cloglog")


# -- zero inflation: pointmass + count ----------------------------------------------------
@pytest.fixture(scope="module")
def zip_data():
    rng = np.random.default_rng(7)
    n = 800
    x = rng.standard_normal(n)
    inflated = rng.random(n) < 0.35
    y = np.where(inflated, 0, rng.poisson(np.exp(0.6 + 0.5 * x)))
    size = 2.0
    mu = np.exp(0.6 + 0.5 * x)
    y_nb = np.where(inflated, 0, rng.negative_binomial(size, size / (size + mu)))
    return pd.DataFrame({"y": y, "y_nb": y_nb, "x": x})


def _inflation_mapping(res, ref, response, aux=()):
    """Ours: class 1 = point mass (base), class 2 = count model with logit gamma; statsmodels:
    P(inflated) = logistic(inflate_const), so gamma = -inflate_const."""
    ours = np.r_[-res.params[(2, "Class", "Intercept")], [res.params[(2, response, t)] for t in ("Intercept", "x", *aux)]]
    return ours, ref.params.to_numpy()


def test_zero_inflated_poisson_equals_statsmodels(zip_data):
    model = bf.FMM([bf.Component("y ~ 1", family="pointmass"), bf.Component("y ~ x", family="poisson")])
    res = model.fit(zip_data)
    exog = sm.add_constant(zip_data[["x"]])
    sm_model = ZeroInflatedPoisson(zip_data["y"], exog, exog_infl=np.ones((len(zip_data), 1)), inflation="logit")
    ref = sm_model.fit(method="newton", tol=1e-12, maxiter=200, disp=0)
    assert res.converged
    assert abs(res.llf - ref.llf) < 1e-6
    ours, theirs = _inflation_mapping(res, ref, "y")
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    # statsmodels' analytic ZIP Hessian is approximate; its numerical Hessian is the reference
    se_ref = np.sqrt(np.diag(np.linalg.inv(-approx_hess3(ref.params.to_numpy(), sm_model.loglike))))
    np.testing.assert_allclose(res.bse.to_numpy(), se_ref, rtol=1e-4)
    # the inflation probability is lcprob's class 1
    np.testing.assert_allclose(res.lcprob()["margin"][1], 1 / (1 + np.exp(-ref.params["inflate_const"])), rtol=1e-5)


def test_zero_inflated_negative_binomial_equals_statsmodels(zip_data):
    model = bf.FMM([bf.Component("y_nb ~ 1", family="pointmass"), bf.Component("y_nb ~ x", family="nbreg")])
    res = model.fit(zip_data)
    exog = sm.add_constant(zip_data[["x"]])
    ref = ZeroInflatedNegativeBinomialP(
        zip_data["y_nb"], exog, exog_infl=np.ones((len(zip_data), 1)), inflation="logit", p=2
    ).fit(method="bfgs", maxiter=5000, gtol=1e-10, disp=0)
    assert res.converged
    assert abs(res.llf - ref.llf) < 1e-6
    ours, theirs = _inflation_mapping(res, ref, "y_nb", aux=("alpha",))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_zero_inflation_is_the_same_model_in_either_class_order(zip_data):
    first = bf.FMM([bf.Component("y ~ 1", family="pointmass"), bf.Component("y ~ x", family="poisson")]).fit(zip_data)
    second = bf.FMM([bf.Component("y ~ x", family="poisson"), bf.Component("y ~ 1", family="pointmass")]).fit(zip_data)
    assert abs(first.llf - second.llf) < 1e-8
    np.testing.assert_allclose(second.params[(2, "Class", "Intercept")], -first.params[(2, "Class", "Intercept")], rtol=1e-6)


def test_point_mass_through_the_whole_ml_path(zip_data):
    """Zero parameters in a class: layout, EM, Newton, OIM, summary, lcmean, predict."""
    heavy = zip_data.copy()
    heavy.loc[heavy.index[:500], "y"] = 0  # more than half zeros: the default start splits by rank
    model = bf.FMM([bf.Component("y ~ 1", family="pointmass"), bf.Component("y ~ x", family="poisson")])
    res = model.fit(heavy)
    assert res.converged and res.df_model == 3 and np.all(np.isfinite(res.bse))
    assert set(res.params.index.get_level_values("class")) == {2}
    text = str(res.summary())
    assert "Model          : pointmass" in text and "(no parameters)" in text
    assert res.lcmean().loc[(1, "y"), "margin"] == 0.0
    post = res.predict(kind="classposteriorpr")
    np.testing.assert_array_equal(post.loc[heavy["y"] > 0, 1], 0.0)  # positive counts are never class 1
    assert res.predict(kind="eta")[1].isna().all()
    np.testing.assert_array_equal(res.predict(kind="mu")[1], 0.0)
    density = res.predict(kind="density", marginal=True)
    np.testing.assert_allclose(np.log(density).sum(), res.llf, rtol=1e-12)
    new = res.predict(heavy.head(4), kind="mu")
    np.testing.assert_allclose(new[2], np.exp(res.params[(2, "y", "Intercept")] + res.params[(2, "y", "x")] * heavy["x"].head(4)))


def test_point_mass_rules():
    with pytest.raises(bf.SpecificationError, match="a point mass cannot be the only component"):
        bf.FMM("y ~ 1", family="pointmass", k=2)
    with pytest.raises(bf.SpecificationError, match="a point mass cannot be the only component"):
        bf.FMM([bf.Component("y ~ 1", family="pointmass"), bf.Component("y ~ 1", family="pointmass", value=1)])
    with pytest.raises(bf.SpecificationError, match=r"pointmass takes no regressors: write 'y ~ 1', not 'y ~ x'"):
        bf.FMM([bf.Component("y ~ x", family="pointmass"), bf.Component("y ~ x", family="poisson")])


# -- formulas ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trial_data():
    rng = np.random.default_rng(3)
    n = 500
    day = rng.integers(1, 31, n).astype(float)
    treated = rng.random(n) < 0.5
    site = rng.choice(["north", "south", "west"], n)
    eta = 0.5 + 0.3 * treated + 0.2 * np.log(day) - 0.15 * treated * np.log(day) + np.where(site == "south", 0.4, 0.0)
    return pd.DataFrame(
        {
            "y": rng.poisson(np.exp(eta)),
            "Day": day,
            "Treatment": pd.Categorical(np.where(treated, "Treated", "Control"), categories=["Control", "Treated"]),
            "site": site,
            "g": rng.integers(1, 4, n),
        }
    )


def _poisson_ref(y, X):
    return sm.Poisson(y, X).fit(method="newton", tol=1e-12, disp=0)


def test_log_and_sqrt_work_without_np(trial_data):
    res = bf.FMM("y ~ log(Day)", family="poisson", k=1).fit(trial_data)
    same = bf.FMM("y ~ np.log(Day)", family="poisson", k=1).fit(trial_data)
    np.testing.assert_array_equal(res.params.to_numpy(), same.params.to_numpy())
    assert res.params.index[-1] == (1, "y", "log(Day)")
    ref = _poisson_ref(trial_data["y"], sm.add_constant(np.log(trial_data["Day"].to_numpy())))
    _assert_matches(res, ref, "log(Day)")
    shifted = bf.FMM("y ~ sqrt(Day) + np.log(Day + 10)", family="poisson", k=1).fit(trial_data)
    X = np.column_stack([np.ones(len(trial_data)), np.sqrt(trial_data["Day"]), np.log(trial_data["Day"] + 10)])
    _assert_matches(shifted, _poisson_ref(trial_data["y"], X), "sqrt + np.log(x + 10)")
    # new data are re-encoded through the same transforms
    new = pd.DataFrame({"Day": [1.0, 4.0, 100.0]})
    b = shifted.params.to_numpy()
    expected = np.exp(b[0] + b[1] * np.sqrt(new["Day"]) + b[2] * np.log(new["Day"] + 10))
    np.testing.assert_allclose(shifted.predict(new, kind="mu")[1], expected, rtol=1e-12)


def test_interaction_with_a_transform(trial_data):
    res = bf.FMM("y ~ Treatment * np.log(Day)", family="poisson", k=1).fit(trial_data)
    terms = list(res.params.index.get_level_values("term"))
    assert terms == ["Intercept", "Treatment[T.Treated]", "np.log(Day)", "Treatment[T.Treated]:np.log(Day)"]
    treated = (trial_data["Treatment"] == "Treated").to_numpy(float)
    log_day = np.log(trial_data["Day"].to_numpy())
    X = np.column_stack([np.ones(len(trial_data)), treated, log_day, treated * log_day])
    _assert_matches(res, _poisson_ref(trial_data["y"], X), "interaction")


@pytest.mark.parametrize("formula", ["y ~ log(Day) - 1", "y ~ 0 + log(Day)"])
def test_no_intercept(trial_data, formula):
    res = bf.FMM(formula, family="poisson", k=1).fit(trial_data)
    assert list(res.params.index.get_level_values("term")) == ["log(Day)"]
    _assert_matches(res, _poisson_ref(trial_data["y"], np.log(trial_data["Day"].to_numpy())[:, None]), formula)


def test_categorical_terms(trial_data):
    res = bf.FMM("y ~ site + C(g)", family="poisson", k=1).fit(trial_data)
    terms = list(res.params.index.get_level_values("term"))
    assert terms == ["Intercept", "site[T.south]", "site[T.west]", "C(g)[T.2]", "C(g)[T.3]"]
    X = np.column_stack(
        [np.ones(len(trial_data))]
        + [(trial_data["site"] == s).to_numpy(float) for s in ("south", "west")]
        + [(trial_data["g"] == v).to_numpy(float) for v in (2, 3)]
    )
    _assert_matches(res, _poisson_ref(trial_data["y"], X), "categorical")


# -- mixtures: recovery of simulated parameters ---------------------------------------------
def _by_intercept(res, response):
    classes = sorted({c for c, eq, _ in res.params.index if eq == response}, key=lambda c: res.params[(c, response, "Intercept")])
    return classes


def test_two_class_poisson_regression_recovers_the_truth():
    rng = np.random.default_rng(11)
    n = 3000
    x = rng.standard_normal(n)
    cls = rng.random(n) < 0.4
    truth = {0: (0.2, 0.6), 1: (2.0, -0.4)}
    a = np.where(cls, truth[1][0], truth[0][0])
    b = np.where(cls, truth[1][1], truth[0][1])
    df = pd.DataFrame({"y": rng.poisson(np.exp(a + b * x)), "x": x})
    res = bf.FMM("y ~ x", family="poisson", k=2).fit(df)
    assert res.converged
    for j, c in enumerate(_by_intercept(res, "y")):
        for t, value in zip(("Intercept", "x"), truth[j]):
            z = (res.params[(c, "y", t)] - value) / res.bse[(c, "y", t)]
            assert abs(z) < 4, (c, t, res.params[(c, "y", t)], value)
    high = _by_intercept(res, "y")[1]
    assert abs(res.lcprob()["margin"][high] - 0.4) < 4 * res.lcprob()["se"][high]


def test_two_class_binomial_with_trials_recovers_the_truth():
    rng = np.random.default_rng(5)
    n = 2000
    x = rng.standard_normal(n)
    trials = rng.integers(5, 40, n)
    cls = rng.random(n) < 0.55
    truth = {0: (-1.5, 0.8), 1: (1.0, -0.5)}
    eta = np.where(cls, truth[1][0] + truth[1][1] * x, truth[0][0] + truth[0][1] * x)
    df = pd.DataFrame({"y": rng.binomial(trials, 1 / (1 + np.exp(-eta))), "n": trials, "x": x})
    with warnings.catch_warnings():
        warnings.simplefilter("error", bf.ConvergenceWarning)
        res = bf.FMM("y ~ x", family="binomial", trials="n", k=2).fit(df)
    for j, c in enumerate(_by_intercept(res, "y")):
        for t, value in zip(("Intercept", "x"), truth[j]):
            z = (res.params[(c, "y", t)] - value) / res.bse[(c, "y", t)]
            assert abs(z) < 4, (c, t, res.params[(c, "y", t)], value)


def test_two_class_negative_binomial_recovers_the_truth():
    rng = np.random.default_rng(21)
    n = 3000
    x = rng.standard_normal(n)
    cls = rng.random(n) < 0.5
    truth = {0: (0.3, 0.6, 0.5), 1: (2.5, -0.4, 0.2)}  # intercept, slope, alpha
    mu = np.exp(np.where(cls, truth[1][0] + truth[1][1] * x, truth[0][0] + truth[0][1] * x))
    size = 1 / np.where(cls, truth[1][2], truth[0][2])
    df = pd.DataFrame({"y": rng.negative_binomial(size, size / (size + mu)), "x": x})
    res = bf.FMM("y ~ x", family="nbreg", k=2).fit(df)
    assert res.converged
    for j, c in enumerate(_by_intercept(res, "y")):
        for t, value in zip(("Intercept", "x", "alpha"), truth[j]):
            z = (res.params[(c, "y", t)] - value) / res.bse[(c, "y", t)]
            assert abs(z) < 4, (c, t, res.params[(c, "y", t)], value)
