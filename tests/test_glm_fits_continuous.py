"""1-class fits of the continuous families against independent fits, and 2-class recovery.

References, all computed in the test:

* gamma: statsmodels ``GLM(family=Gamma(Log()))`` for the coefficients (their ML value does
  not depend on the dispersion); the ML ``scale`` and the llf by maximising the gamma
  likelihood (scipy.stats.gamma) over the scale with scipy; SEs from statsmodels' Newton fit
  (observed information) at that ML scale.
* beta: statsmodels ``BetaModel`` (othermod.betareg), whose precision has a log link.
* exponential, weibull, loglogistic: scipy.optimize maximisation of the log likelihood
  written with scipy.stats densities; SEs from statsmodels' numerical Hessian of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import bayesfmm as bf

N = 400


@pytest.fixture(scope="module")
def regressors():
    rng = np.random.default_rng(11)
    x1, x2 = rng.normal(size=N), rng.uniform(-1, 1, size=N)
    X = np.column_stack([np.ones(N), x1, x2])
    return rng, pd.DataFrame({"x1": x1, "x2": x2, "days": rng.uniform(0.5, 3.0, N)}), X


def _rel(ours, ref):
    return np.max(np.abs(np.asarray(ours) / np.asarray(ref) - 1.0))


@pytest.mark.parametrize("exposure", [False, True])
def test_gamma_equals_statsmodels_glm_and_scipy_ml_scale(regressors, exposure):
    import statsmodels.api as sm

    rng, data, X = regressors
    offset = np.log(data["days"].to_numpy()) if exposure else np.zeros(N)
    mu = np.exp(1.0 + 0.4 * data["x1"] - 0.6 * data["x2"] + offset)
    data = data.assign(y=rng.gamma(3.0, mu / 3.0))
    res = bf.FMM("y ~ x1 + x2", family="gamma", k=1, **({"exposure": "days"} if exposure else {})).fit(data)
    assert res.converged
    family = sm.families.Gamma(sm.families.links.Log())
    glm = sm.GLM(data["y"], X, family=family, offset=offset).fit(tol=1e-13)
    eta = X @ glm.params.to_numpy() + offset

    def negll(lns):
        return -stats.gamma.logpdf(data["y"], a=np.exp(-lns), scale=np.exp(lns + eta)).sum()

    ml = optimize.minimize_scalar(negll, bounds=(-6.0, 4.0), method="bounded", options={"xatol": 1e-12})
    scale = float(np.exp(ml.x))
    newton = sm.GLM(data["y"], X, family=family, offset=offset).fit(method="newton", scale=scale, tol=1e-13)

    coef = res.params.xs((1, "y"))
    assert _rel(coef[["Intercept", "x1", "x2"]], glm.params) < 1e-6
    assert _rel(coef["scale"], scale) < 1e-6
    assert abs(res.llf + ml.fun) < 1e-6
    assert _rel(res.bse.xs((1, "y"))[["Intercept", "x1", "x2"]], newton.bse) < 1e-4
    # statsmodels' own scale is the Pearson estimate, not ML: the two differ
    assert abs(glm.scale / scale - 1.0) > 1e-3


@pytest.mark.parametrize("link", ["logit", "cloglog"])
def test_beta_equals_statsmodels_betamodel(regressors, link):
    import statsmodels.api as sm
    from statsmodels.othermod.betareg import BetaModel

    rng, data, X = regressors
    eta = (0.3 if link == "logit" else -0.5) + 0.5 * data["x1"] - 0.4 * data["x2"]
    mu = stats.logistic.cdf(eta) if link == "logit" else 1 - np.exp(-np.exp(eta))
    data = data.assign(share=rng.beta(mu * 15.0, (1 - mu) * 15.0))
    res = bf.FMM("share ~ x1 + x2", family="betareg", k=1, link=link).fit(data)
    sm_link = sm.families.links.Logit() if link == "logit" else sm.families.links.CLogLog()
    ref = BetaModel(data["share"], X, link=sm_link).fit(method="newton", maxiter=200, disp=0)
    coef = res.params.xs((1, "share"))
    se = res.bse.xs((1, "share"))
    assert _rel(coef[["Intercept", "x1", "x2"]], ref.params.iloc[:3]) < 1e-5
    # BetaModel's precision has a log link: its last parameter is ln(scale)
    assert abs(np.log(coef["scale"]) - ref.params.iloc[3]) < 1e-5
    assert abs(res.llf - ref.llf) < 1e-6
    assert _rel(se[["Intercept", "x1", "x2"]], ref.bse.iloc[:3]) < 1e-4
    assert _rel(se["scale"], coef["scale"] * ref.bse.iloc[3]) < 1e-4  # delta method


def _scipy_cases(X):
    """name, options, simulator, scipy log density of theta (with ln scale last)."""
    eta = lambda th: X @ th[:3]
    return {
        "exponential-aft": (
            "exponential",
            {},
            lambda rng, e: rng.exponential(np.exp(e)),
            lambda th, y: stats.expon.logpdf(y, scale=np.exp(eta(th))),
        ),
        "exponential-ph": (
            "exponential",
            {"metric": "ph"},
            lambda rng, e: rng.exponential(np.exp(e)),
            lambda th, y: stats.expon.logpdf(y, scale=np.exp(-eta(th))),
        ),
        "weibull-ph": (
            "weibull",
            {},
            lambda rng, e: stats.weibull_min.rvs(c=1.5, scale=np.exp(-e / 1.5), random_state=rng),
            lambda th, y: stats.weibull_min.logpdf(y, c=np.exp(-th[3]), scale=np.exp(-eta(th) * np.exp(th[3]))),
        ),
        "weibull-aft": (
            "weibull",
            {"metric": "aft"},
            lambda rng, e: stats.weibull_min.rvs(c=0.8, scale=np.exp(e), random_state=rng),
            lambda th, y: stats.weibull_min.logpdf(y, c=np.exp(-th[3]), scale=np.exp(eta(th))),
        ),
        "loglogistic": (
            "loglogistic",
            {},
            lambda rng, e: stats.fisk.rvs(c=3.0, scale=np.exp(e), random_state=rng),
            lambda th, y: stats.fisk.logpdf(y, c=np.exp(-th[3]), scale=np.exp(eta(th))),
        ),
    }


@pytest.mark.parametrize("key", ["exponential-aft", "exponential-ph", "weibull-ph", "weibull-aft", "loglogistic"])
def test_survival_families_equal_direct_scipy_maximisation(regressors, key):
    from statsmodels.tools.numdiff import approx_hess3

    rng, data, X = regressors
    name, options, simulate, logpdf = _scipy_cases(X)[key]
    y = simulate(rng, 0.5 + 0.4 * data["x1"].to_numpy() - 0.6 * data["x2"].to_numpy())
    data = data.assign(t=y)
    res = bf.FMM("t ~ x1 + x2", family=name, k=1, **options).fit(data)
    assert res.converged

    def negll(theta):
        return -logpdf(theta, y).sum()

    size = 3 if name == "exponential" else 4
    ml = optimize.minimize(negll, np.zeros(size), method="BFGS", options={"gtol": 1e-9})
    ml = optimize.minimize(negll, ml.x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxfev": 40000})
    se = np.sqrt(np.diag(np.linalg.inv(approx_hess3(ml.x, negll))))
    estimate = ml.x.copy()
    if size == 4:  # report the scale as exp(ln scale), its SE by the delta method
        estimate[3] = np.exp(ml.x[3])
        se[3] *= estimate[3]
    assert abs(res.llf + ml.fun) < 1e-6
    assert _rel(res.params.to_numpy(), estimate) < 1e-5
    assert _rel(res.bse.to_numpy(), se) < 1e-4


def test_metrics_are_reparameterisations(regressors):
    """PH and AFT fits reach the same llf; coefficients map as b_aft = -scale * b_ph."""
    rng, data, _ = regressors
    data = data.assign(t=stats.weibull_min.rvs(c=1.3, scale=np.exp(0.2 + 0.5 * data["x1"]), random_state=rng))
    ph_res = bf.FMM("t ~ x1 + x2", family="weibull", k=1).fit(data)
    aft_res = bf.FMM("t ~ x1 + x2", family="weibull", k=1, metric="aft").fit(data)
    ph, aft = ph_res.params.xs((1, "t")), aft_res.params.xs((1, "t"))
    assert abs(ph_res.llf - aft_res.llf) < 1e-8
    np.testing.assert_allclose(aft[["Intercept", "x1", "x2"]], -ph["scale"] * ph[["Intercept", "x1", "x2"]], rtol=1e-6)
    np.testing.assert_allclose(aft["scale"], ph["scale"], rtol=1e-6)


def test_predict_lcmean_and_summary_of_a_gamma_fit(regressors):
    rng, data, X = regressors
    data = data.assign(y=rng.gamma(2.0, np.exp(0.5 + 0.3 * data["x1"]) / 2.0))
    res = bf.FMM("y ~ x1 + x2", family="gamma", k=1).fit(data)
    coef = res.params.xs((1, "y"))[["Intercept", "x1", "x2"]].to_numpy()
    mu = np.exp(X @ coef)
    np.testing.assert_allclose(np.asarray(res.predict(kind="mu")).ravel(), mu, rtol=1e-12)
    np.testing.assert_allclose(res.lcmean()["margin"].iloc[0], mu.mean(), rtol=1e-10)
    text = str(res.summary())
    assert "glm, family(gamma) link(log)" in text and "scale" in text


# --- 2-class recovery (n = 20,000): every estimate within 4 SEs of the truth ----------


def _assert_recovered(res, truth: dict, response: str, probs: np.ndarray) -> None:
    """``truth[class] = {term: value}``; classes matched by the sign/order of the intercept."""
    order = np.argsort([res.params[(j, response, "Intercept")] for j in (1, 2)])
    true_order = np.argsort([truth[j]["Intercept"] for j in (1, 2)])
    mapping = {int(order[i]) + 1: int(true_order[i]) + 1 for i in range(2)}  # fitted -> true
    for fitted, true in mapping.items():
        for term, value in truth[true].items():
            est, se = res.params[(fitted, response, term)], res.bse[(fitted, response, term)]
            assert abs(est - value) < 4 * se, f"class {fitted} {term}: {est} vs {value} (se {se})"
    margins = res.lcprob()
    for fitted, true in mapping.items():
        assert abs(margins.loc[fitted, "margin"] - probs[true - 1]) < 4 * margins.loc[fitted, "se"]


def _two_class_data(seed: int, n: int = 20_000):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    second = rng.random(n) < 0.6
    return rng, x, second, np.array([0.4, 0.6])


def test_two_class_gamma_recovery_and_random_starts():
    rng, x, second, probs = _two_class_data(5)
    truth = {1: {"Intercept": 1.0, "x": 0.8, "scale": 0.25}, 2: {"Intercept": 3.0, "x": -0.5, "scale": 0.125}}
    pick = lambda key: np.where(second, truth[2][key], truth[1][key])
    shape = 1.0 / pick("scale")
    y = rng.gamma(shape, np.exp(pick("Intercept") + pick("x") * x) / shape)
    data = pd.DataFrame({"y": y, "x": x})
    res = bf.FMM("y ~ x", family="gamma", k=2).fit(data)
    assert res.converged
    _assert_recovered(res, truth, "y", probs)
    random = bf.FMM("y ~ x", family="gamma", k=2).fit(data, startvalues="randompr", draws=3, seed=1)
    assert abs(random.llf - res.llf) < 1e-6


def test_two_class_beta_recovery():
    rng, x, second, probs = _two_class_data(6)
    truth = {1: {"Intercept": -1.0, "x": 0.5, "scale": 20.0}, 2: {"Intercept": 1.0, "x": -0.7, "scale": 50.0}}
    pick = lambda key: np.where(second, truth[2][key], truth[1][key])
    mu = stats.logistic.cdf(pick("Intercept") + pick("x") * x)
    y = rng.beta(mu * pick("scale"), (1 - mu) * pick("scale"))
    res = bf.FMM("y ~ x", family="beta", k=2).fit(pd.DataFrame({"y": y, "x": x}))
    assert res.converged
    _assert_recovered(res, truth, "y", probs)


def test_two_class_weibull_recovery():
    rng, x, second, probs = _two_class_data(7)
    truth = {1: {"Intercept": -2.0, "x": 0.7, "scale": 0.5}, 2: {"Intercept": 0.5, "x": -0.4, "scale": 0.8}}
    pick = lambda key: np.where(second, truth[2][key], truth[1][key])
    # PH: hazard p y^(p-1) exp(eta) with p = 1/scale  <=>  y = (E / exp(eta))^(1/p), E ~ Exp(1)
    eta = pick("Intercept") + pick("x") * x
    y = (rng.exponential(size=x.size) * np.exp(-eta)) ** pick("scale")
    res = bf.FMM("y ~ x", family="weibull", k=2).fit(pd.DataFrame({"y": y, "x": x}))
    assert res.converged
    _assert_recovered(res, truth, "y", probs)


def test_loglogistic_mixture_starts_when_the_pooled_mean_is_infinite():
    """With a pooled scale >= 1 the loglogistic mean is infinite; the default start then
    ranks rows by the pooled cdf and reaches the optimum the random starts find."""
    import warnings

    rng = np.random.default_rng(1)
    n = 3000
    second = rng.random(n) < 0.5
    y = np.where(second, rng.exponential(np.exp(0.5), n), rng.exponential(np.exp(3.0), n))
    data = pd.DataFrame({"y": y})
    pooled = bf.FMM("y ~ 1", family="loglogistic", k=1).fit(data)
    assert pooled.params[(1, "y", "scale")] >= 1.0  # the case this test is about
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = bf.FMM("y ~ 1", family="loglogistic", k=2).fit(data)
    random = bf.FMM("y ~ 1", family="loglogistic", k=2).fit(data, startvalues="randompr", draws=5, seed=2)
    assert res.converged and abs(res.llf - random.llf) < 1e-6
