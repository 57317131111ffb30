"""Issue-4 families fitted: 1-class fits against independent fits, the logit hurdle, the
mixture cure model, a 2-class ordinal mixture, predict(kind="survival") and the PyMC model.

References, all computed in the test:

* ``ologit``/``oprobit``: statsmodels ``OrderedModel`` (its thresholds are the first cutpoint
  and log increments; mapped to cutpoints here).
* ``mlogit``: statsmodels ``MNLogit`` (first level as base).
* ``tobit``, ``truncreg``, ``intreg``, ``tpoisson``, ``streg`` (5 distributions, both
  metrics): scipy.optimize maximisation of the likelihood written here with scipy.stats.
* ``streg`` Weibull/lognormal/loglogistic AFT: lifelines' AFT fitters when lifelines is
  installed (skipped otherwise; lifelines pins pandas < 3, so it is not a test dependency).
* ``pointmass`` + ``tpoisson``: the logit hurdle Poisson likelihood written here, maximised
  with scipy.

Tolerances (issue 4): llf 1e-6 absolute, coefficients 1e-5 relative (1e-8 absolute).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats
from test_families_issue4 import SURVIVAL, _scipy_survival  # one scipy oracle for both files

import bayesfmm as bf
from bayesfmm.likelihood import loglike

LLF_ATOL, COEF_RTOL, COEF_ATOL = 1e-6, 1e-5, 1e-8
N = 500


def _assert_fit(res, llf, params, what):
    assert res.converged, what
    assert abs(res.llf - llf) < LLF_ATOL, f"{what}: llf {res.llf!r} vs reference {llf!r}"
    np.testing.assert_allclose(res.params.to_numpy(), np.asarray(params), rtol=COEF_RTOL, atol=COEF_ATOL, err_msg=what)


def _scipy_ml(negll, start):
    """BFGS then a Nelder-Mead polish: the reference optimum, to ~1e-8."""
    def safe(p):
        value = negll(p)
        return value if np.isfinite(value) else 1e300

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = optimize.minimize(safe, start, method="BFGS", options={"gtol": 1e-10, "maxiter": 5000})
        fit = optimize.minimize(
            safe, fit.x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxfev": 20000}
        )
        fit = optimize.minimize(safe, fit.x, method="BFGS", options={"gtol": 1e-10})
    return fit.x, -fit.fun


@pytest.fixture(scope="module")
def covariates():
    rng = np.random.default_rng(404)
    return rng, pd.DataFrame({"x1": rng.normal(size=N), "x2": rng.uniform(-1, 1, N)})


# -- ordinal and multinomial ---------------------------------------------------------------
@pytest.mark.parametrize("family,distr", [("ologit", "logit"), ("oprobit", "probit")])
def test_ordinal_equals_statsmodels_ordered_model(covariates, family, distr):
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    rng, data = covariates
    noise = rng.logistic(size=N) if distr == "logit" else rng.normal(size=N)
    latent = 0.9 * data["x1"] - 0.7 * data["x2"] + noise
    data = data.assign(rating=np.digitize(latent, [-1.2, 0.0, 1.1]) * 2 + 1)  # levels 1, 3, 5, 7
    res = bf.FMM("rating ~ x1 + x2", family=family, k=1).fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bfgs reports gtol=1e-10 as not reached; its optimum is kept
        ref = OrderedModel(data["rating"], data[["x1", "x2"]], distr=distr).fit(
            method="bfgs", disp=False, maxiter=5000, gtol=1e-10
        )
    thresholds = np.cumsum(np.r_[ref.params.iloc[2], np.exp(ref.params.iloc[3:])])
    expected = np.r_[ref.params.iloc[:2], thresholds]
    assert list(res.params.index.get_level_values("term")) == ["x1", "x2", "cut1", "cut2", "cut3"]
    _assert_fit(res, ref.llf, expected, family)
    np.testing.assert_allclose(res.bse.to_numpy()[:2], ref.bse.iloc[:2], rtol=1e-4)
    # fitted levels kept with the design; predicted mean in the response's units
    assert res.design.classes[0][0].levels == (1.0, 3.0, 5.0, 7.0)
    mu = res.predict(kind="mu")[1]
    assert 1 < mu.min() and mu.max() < 7
    probs = sum(res.predict(data.assign(rating=float(v)), kind="density")[1] for v in (1, 3, 5, 7))
    np.testing.assert_allclose(probs, 1.0, rtol=1e-12)


def test_ordinal_categorical_response_keeps_its_order(covariates):
    rng, data = covariates
    latent = data["x1"] + rng.logistic(size=N)
    codes = np.digitize(latent, [-1.0, 1.0])
    labels = np.array(["low", "mid", "high"])[codes]
    ordered = data.assign(q=pd.Categorical(labels, categories=["low", "mid", "high"], ordered=True), c=codes)
    res_cat = bf.FMM("q ~ x1", family="ologit", k=1).fit(ordered)
    res_num = bf.FMM("c ~ x1", family="ologit", k=1).fit(ordered)
    np.testing.assert_allclose(res_cat.params.to_numpy(), res_num.params.to_numpy(), rtol=1e-9)
    assert res_cat.design.classes[0][0].levels == ("low", "mid", "high")
    assert res_cat.params[(1, "q", "x1")] > 0


def test_mlogit_equals_statsmodels_mnlogit(covariates):
    import statsmodels.api as sm

    rng, data = covariates
    eta = np.column_stack([np.zeros(N), 0.4 + 0.8 * data["x1"], -0.3 - 0.6 * data["x1"] + 0.9 * data["x2"]])
    prob = special.softmax(eta, axis=1)
    choice = (rng.random(N)[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    data = data.assign(choice=np.array([2, 5, 9])[choice])
    res = bf.FMM("choice ~ x1 + x2", family="mlogit", k=1).fit(data)
    ref = sm.MNLogit(data["choice"], sm.add_constant(data[["x1", "x2"]])).fit(method="newton", tol=1e-12, disp=0)
    expected = ref.params.to_numpy().T.ravel()  # outcome by outcome, as our equations
    equations = list(dict.fromkeys(res.params.index.get_level_values("equation")))
    assert equations == ["5.choice", "9.choice"]
    _assert_fit(res, ref.llf, expected, "mlogit")
    np.testing.assert_allclose(res.bse.to_numpy(), ref.bse.to_numpy().T.ravel(), rtol=1e-4)
    # string outcomes with another base: the same model, re-expressed against "nine"
    named = data.assign(choice=data["choice"].map({2: "two", 5: "five", 9: "nine"}))
    other = bf.FMM("choice ~ x1 + x2", family="mlogit", baseoutcome="nine", k=1).fit(named)
    assert other.llf == pytest.approx(res.llf, abs=1e-7)
    b = res.params.to_numpy().reshape(2, 3)  # five - two, nine - two
    expected_other = np.r_[b[0] - b[1], -b[1]]  # five - nine, two - nine (sorted: five, two)
    np.testing.assert_allclose(other.params.to_numpy(), expected_other, rtol=1e-5, atol=1e-8)


# -- censored, interval, truncated ---------------------------------------------------------
def _normal_params(p):
    return p[:-1], np.exp(0.5 * p[-1])


def test_tobit_equals_scipy(covariates):
    rng, data = covariates
    X = np.column_stack([np.ones(N), data["x1"], data["x2"]])
    latent = X @ [0.5, 1.0, -0.8] + 1.2 * rng.normal(size=N)
    data = data.assign(y=np.clip(latent, 0.0, 2.0), upper=2.0)
    res = bf.FMM("y ~ x1 + x2", family="tobit", ll=0, ul="upper", k=1).fit(data)
    y = data["y"].to_numpy()

    def negll(p):
        beta, s = _normal_params(p)
        mu = X @ beta
        return -np.sum(
            np.where(
                y <= 0,
                stats.norm.logcdf(-mu / s),
                np.where(y >= 2, stats.norm.logsf((2 - mu) / s), stats.norm.logpdf(y, mu, s)),
            )
        )

    p, llf = _scipy_ml(negll, np.zeros(4))
    _assert_fit(res, llf, np.r_[p[:3], np.exp(p[3])], "tobit")
    assert ((y == 0).mean() > 0.2) and ((y == 2).mean() > 0.1)


def test_intreg_equals_scipy(covariates):
    rng, data = covariates
    X = np.column_stack([np.ones(N), data["x1"], data["x2"]])
    latent = X @ [1.0, 0.7, 0.5] + rng.normal(size=N)
    lo, hi = np.floor(latent), np.floor(latent) + 1.0
    kind = rng.integers(0, 4, N)
    lo = np.where(kind == 0, latent, np.where(kind == 1, np.nan, lo))  # exact, left-open
    hi = np.where(kind == 0, latent, np.where(kind == 2, np.nan, hi))  # exact, right-open
    data = data.assign(lo=lo, hi=hi)
    res = bf.FMM([bf.Component("lo ~ x1 + x2", family="intreg", upper="hi")], k=1).fit(data)
    assert res.nobs == N, "a missing limit is not a missing value"

    def negll(p):
        beta, s = _normal_params(p)
        mu = X @ beta
        point = lo == hi
        lo_, hi_ = np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)
        with np.errstate(divide="ignore"):
            interval = np.log(stats.norm.cdf((hi_ - mu) / s) - stats.norm.cdf((lo_ - mu) / s))
        return -np.sum(np.where(point, stats.norm.logpdf(lo_, mu, s), interval))

    p, llf = _scipy_ml(negll, np.zeros(4))
    _assert_fit(res, llf, np.r_[p[:3], np.exp(p[3])], "intreg")


def test_truncreg_equals_scipy(covariates):
    rng, data = covariates
    X = np.column_stack([np.ones(N), data["x1"], data["x2"]])
    latent = X @ [0.8, 1.0, -0.5] + rng.normal(size=N)
    keep = (latent > 0) & (latent < 2.5)
    data, X = data.assign(y=latent)[keep], X[keep]
    res = bf.FMM("y ~ x1 + x2", family="truncreg", ll=0, ul=2.5, k=1).fit(data)
    y = data["y"].to_numpy()

    def negll(p):
        beta, s = _normal_params(p)
        mu = X @ beta
        return -np.sum(stats.truncnorm.logpdf(y, -mu / s, (2.5 - mu) / s, loc=mu, scale=s))

    p, llf = _scipy_ml(negll, np.r_[1.0, 0.0, 0.0, 0.0])
    _assert_fit(res, llf, np.r_[p[:3], np.exp(p[3])], "truncreg")


@pytest.mark.parametrize("ll", [0, 1])
def test_tpoisson_equals_scipy(covariates, ll):
    rng, data = covariates
    X = np.column_stack([np.ones(N), data["x1"], data["x2"]])
    counts = rng.poisson(np.exp(X @ [0.7, 0.5, -0.4]))
    data, X = data.assign(n=counts)[counts > ll], X[counts > ll]
    res = bf.FMM("n ~ x1 + x2", family="tpoisson", ll=ll, k=1).fit(data)
    y = data["n"].to_numpy()

    def negll(beta):
        mu = np.exp(X @ beta)
        return -np.sum(stats.poisson.logpmf(y, mu) - stats.poisson.logsf(ll, mu))

    p, llf = _scipy_ml(negll, np.zeros(3))
    _assert_fit(res, llf, p, f"tpoisson ll={ll}")


def test_pointmass_plus_tpoisson_is_the_logit_hurdle(covariates):
    rng, data = covariates
    X = np.column_stack([np.ones(N), data["x1"]])
    Z = np.column_stack([np.ones(N), data["x2"]])
    positive = rng.random(N) < special.expit(Z @ [0.3, 1.2])
    mu = np.exp(X @ [0.6, 0.5])
    u = stats.poisson.cdf(0, mu) + rng.random(N) * stats.poisson.sf(0, mu)
    data = data.assign(y=np.where(positive, stats.poisson.ppf(u, mu), 0.0))
    model = bf.FMM(
        [bf.Component("y ~ 1", family="pointmass"), bf.Component("y ~ x1", family="tpoisson", lcprob="~ x2")]
    )
    res = model.fit(data)
    y = data["y"].to_numpy()

    def negll(p):
        gamma, beta = p[:2], p[2:]
        log_pos, log_zero = -np.logaddexp(0, -Z @ gamma), -np.logaddexp(0, Z @ gamma)
        m = np.exp(X @ beta)
        with np.errstate(divide="ignore"):
            count = stats.poisson.logpmf(y, m) - np.log(-np.expm1(-m))
        return -np.sum(np.where(y == 0, log_zero, log_pos + count))

    p, llf = _scipy_ml(negll, np.zeros(4))
    _assert_fit(res, llf, p, "logit hurdle")
    # the hurdle separates: the class model is the logit of y > 0
    import statsmodels.api as sm

    logit = sm.Logit((y > 0).astype(float), Z).fit(disp=0, tol=1e-12)
    np.testing.assert_allclose(res.params.xs((2, "Class")).to_numpy(), logit.params, rtol=1e-5)


# -- survival ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def survival_data():
    rng = np.random.default_rng(77)
    x = rng.normal(size=N)
    event = rng.weibull(1.4, N) * np.exp(0.3 + 0.4 * x)
    censor = rng.uniform(0.3, 3.0, N)
    return pd.DataFrame({"x": x, "t": np.minimum(event, censor), "died": (event <= censor).astype(int)})


@pytest.mark.parametrize("distribution,metric", SURVIVAL)
def test_streg_equals_scipy(survival_data, distribution, metric):
    data = survival_data
    res = bf.FMM("t ~ x", family="streg", distribution=distribution, metric=metric, failure="died", k=1).fit(data)
    t, died = data["t"].to_numpy(), data["died"].to_numpy()
    X = np.column_stack([np.ones(N), data["x"]])
    has_aux = distribution != "exponential"

    def negll(p):
        law, args = _scipy_survival(distribution, metric, None, X @ p[:2], p[2] if has_aux else 0.0)
        sf = law.logsf(t, **args)
        if distribution == "loglogistic":  # scipy's fisk.logsf is log(1 - cdf)
            sf = -np.logaddexp(0.0, args["c"] * (np.log(t) - np.log(args["scale"])))
        return -np.sum(np.where(died == 1, law.logpdf(t, **args), sf))

    start = np.zeros(3 if has_aux else 2)
    p, llf = _scipy_ml(negll, start)
    expected = np.r_[p[:2], np.exp(p[2])] if has_aux else p
    _assert_fit(res, llf, expected, f"streg {distribution} {metric}")
    assert 0.3 < died.mean() < 0.9


@pytest.mark.parametrize("distribution", ["weibull", "lognormal", "loglogistic"])
def test_streg_aft_equals_lifelines(survival_data, distribution):
    """lifelines' optimum agrees to its own precision (its BFGS stops at a gradient of ~1e-5
    of the mean log likelihood); its log likelihood at our estimates equals ours to 1e-8,
    and ours is at least as high as its optimum."""
    lifelines = pytest.importorskip("lifelines")
    data = survival_data
    fitter = {
        "weibull": lifelines.WeibullAFTFitter,
        "lognormal": lifelines.LogNormalAFTFitter,
        "loglogistic": lifelines.LogLogisticAFTFitter,
    }[distribution]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter.fit(data[["t", "died", "x"]], "t", "died")
    res = bf.FMM("t ~ x", family="streg", distribution=distribution, metric="aft", failure="died", k=1).fit(data)
    params = fitter.params_
    first, second = dict.fromkeys(params.index.get_level_values(0))
    coef = [params[(first, "Intercept")], params[(first, "x")]]
    log_shape = params[(second, "Intercept")]  # rho_ / sigma_ / beta_: log of the shape
    to_aux = {"weibull": lambda v: np.exp(-v), "lognormal": lambda v: np.exp(2 * v), "loglogistic": lambda v: np.exp(-v)}
    assert abs(res.llf - fitter.log_likelihood_) < 1e-5
    np.testing.assert_allclose(res.params.to_numpy(), np.r_[coef, to_aux[distribution](log_shape)], rtol=2e-3, atol=1e-3)
    # lifelines' likelihood at our estimates
    ours = res.params.xs((1, "t"))
    aux = {"weibull": -np.log(ours.iloc[2]), "lognormal": 0.5 * np.log(ours.iloc[2]), "loglogistic": -np.log(ours.iloc[2])}
    values = {(first, "Intercept"): ours["Intercept"], (first, "x"): ours["x"], (second, "Intercept"): aux[distribution]}
    fitter.params_ = pd.Series([values[key] for key in params.index], index=params.index)
    at_ours = fitter.score(data[["t", "died", "x"]]) * len(data)
    assert at_ours == pytest.approx(res.llf, abs=1e-8)
    assert res.llf >= fitter.log_likelihood_ - 1e-9


def test_predict_survival_kind(survival_data):
    data = survival_data
    res = bf.FMM("t ~ x", family="streg", distribution="weibull", failure="died", k=1).fit(data)
    grid = pd.DataFrame({"t": [0.1, 1.0, 2.5], "x": [0.0, 0.5, -1.0]})  # no failure column needed
    surv = res.predict(grid, kind="survival")[1].to_numpy()
    b0, b1, scale = res.params.to_numpy()
    expected = np.exp(-np.exp(b0 + b1 * grid["x"]) * grid["t"] ** (1 / scale))
    np.testing.assert_allclose(surv, expected, rtol=1e-12)
    cdf = res.predict(grid.assign(died=1), kind="distribution")[1].to_numpy()
    np.testing.assert_allclose(surv, 1 - cdf, rtol=1e-12)
    marginal = res.predict(grid, kind="survival", marginal=True)
    np.testing.assert_allclose(marginal.to_numpy(), surv, rtol=1e-12)


# -- mixtures ------------------------------------------------------------------------------
def _within(res, key, truth, sds=3.0):
    est, se = res.params[key], res.bse[key]
    assert abs(est - truth) < sds * se, f"{key}: {est:.4f} (se {se:.4f}) vs truth {truth}"


def test_mixture_cure_model_recovers_its_parameters():
    """n = 5000, 30% cured, Weibull PH survival in the uncured, random censoring."""
    rng = np.random.default_rng(2024)
    n = 5000
    x = rng.normal(size=n)
    cured = rng.random(n) < 0.3
    scale = 0.7  # p = 1/scale
    b0, b1 = -0.5, 0.6
    event = (rng.exponential(size=n) * np.exp(-(b0 + b1 * x))) ** scale  # H(t) = exp(eta) t^p
    event[cured] = np.inf
    censor = rng.uniform(0.5, 8.0, n)
    data = pd.DataFrame({"x": x, "time": np.minimum(event, censor), "died": (event <= censor).astype(int)})
    model = bf.FMM([
        bf.Component("died ~ 1", family="pointmass", value=0),
        bf.Component("time ~ x", family="streg", distribution="weibull", failure="died"),
    ])
    res = model.fit(data)
    assert res.converged
    share = res.lcprob().loc[1]
    assert abs(share["margin"] - 0.3) < 3 * share["se"], share
    _within(res, (2, "time", "Intercept"), b0)
    _within(res, (2, "time", "x"), b1)
    _within(res, (2, "time", "scale"), scale)
    # survival curves by class: the cured class never fails
    grid = pd.DataFrame({"time": [1.0, 5.0], "x": [0.0, 0.0]})
    curves = res.predict(grid, kind="survival")
    np.testing.assert_allclose(curves[1], 1.0)
    assert curves[2].iloc[1] < curves[2].iloc[0] < 1


def test_two_class_ordinal_mixture_recovers_its_parameters():
    rng = np.random.default_rng(99)
    n = 4000
    x = rng.normal(size=n)
    cls = rng.random(n) < 0.4
    truth = {True: (2.0, [-1.0, 0.5, 2.0]), False: (-1.5, [-2.0, -0.5, 1.0])}
    y = np.empty(n)
    for c, (beta, cuts) in truth.items():
        rows = cls == c
        latent = beta * x[rows] + rng.logistic(size=rows.sum())
        y[rows] = np.digitize(latent, cuts)
    data = pd.DataFrame({"y": y, "x": x})
    res = bf.FMM("y ~ x", family="ologit", k=2).fit(data, startvalues="randompr", draws=5, seed=3)
    assert res.converged
    pos = 1 if res.params[(1, "y", "x")] > 0 else 2  # the class with the positive slope
    neg = 3 - pos
    for j, c in ((pos, True), (neg, False)):
        beta, cuts = truth[c]
        _within(res, (j, "y", "x"), beta)
        for i, cut in enumerate(cuts, start=1):
            _within(res, (j, "y", f"cut{i}"), cut)
    share = res.lcprob().loc[pos]
    assert abs(share["margin"] - 0.4) < 3 * share["se"]


def test_lcinvariant_cons_ties_the_cutpoints():
    rng = np.random.default_rng(5)
    n = 1500
    x = rng.normal(size=n)
    first = rng.random(n) < 0.4
    latent = np.where(first, 2.0 * x, -1.5 * x) + rng.logistic(size=n)
    data = pd.DataFrame({"y": np.digitize(latent, [-1.0, 0.5, 2.0]), "x": x})
    res = bf.FMM("y ~ x", family="ologit", k=2, lcinvariant="cons").fit(data, startvalues="randompr", draws=3, seed=1)
    cuts = [[res.params[(j, "y", f"cut{i}")] for i in (1, 2, 3)] for j in (1, 2)]
    np.testing.assert_allclose(cuts[0], cuts[1], rtol=1e-12)
    assert res.df_model == 1 + 2 + 3  # class logit, two slopes, three shared cutpoints
    assert abs(res.params[(1, "y", "x")] - res.params[(2, "y", "x")]) > 2


# -- the PyMC model ------------------------------------------------------------------------
def _bayes_cases():
    rng = np.random.default_rng(8)
    n = 120
    x = rng.normal(size=n)
    latent = x + rng.logistic(size=n)
    frame = pd.DataFrame({"x": x, "r": np.digitize(latent, [-1, 0.5, 1.5])})
    frame["c"] = np.array(["a", "b", "c"])[np.digitize(latent, [-0.5, 0.8])]
    frame["y"] = np.clip(latent, -1.0, 2.0)
    frame["lo"] = np.where(rng.random(n) < 0.2, np.nan, np.floor(latent))
    frame["hi"] = np.where((rng.random(n) < 0.2) & frame["lo"].notna(), np.nan, np.floor(latent) + 1)
    frame["tr"] = np.abs(latent) + 0.05
    frame["n"] = rng.poisson(np.exp(0.3 + 0.3 * x))
    frame["t"] = rng.weibull(1.3, n) * np.exp(0.2 * x)
    frame["d"] = (rng.random(n) < 0.7).astype(int)
    comp = bf.Component
    return frame, {
        "ologit": [comp("r ~ x", family="ologit"), comp("r ~ x", family="ologit")],
        "oprobit": [comp("r ~ x", family="oprobit"), comp("r ~ 1", family="oprobit")],
        "mlogit": [comp("c ~ x", family="mlogit"), comp("c ~ x", family="mlogit", baseoutcome="b")],
        "tobit": [comp("y ~ x", family="tobit", ll=-1, ul=2), comp("y ~ x", family="tobit", ll=-1, ul=2)],
        "intreg": [comp("lo ~ x", family="intreg", upper="hi"), comp("lo ~ 1", family="intreg", upper="hi")],
        "truncreg": [comp("tr ~ x", family="truncreg", ll=0), comp("tr ~ x", family="truncreg", ll=0)],
        "hurdle": [comp("n ~ 1", family="pointmass"), comp("n ~ x", family="tpoisson")],
        "cure": [comp("d ~ 1", family="pointmass"), comp("t ~ x", family="streg", distribution="weibull", failure="d")],
        "streg-gamma": [comp("t ~ x", family="streg", distribution="gamma", failure="d"),
                        comp("t ~ 1", family="streg", distribution="lognormal", failure="d")],
    }


BAYES_DATA, BAYES_CASES = _bayes_cases()


@pytest.mark.parametrize("case", list(BAYES_CASES))
def test_pymc_logp_equals_numpy_likelihood_plus_prior(case):
    from bayesfmm.bayes.sample import build_model

    built = build_model(bf.FMM(BAYES_CASES[case]), BAYES_DATA, order=None)
    logp = built.model.compile_logp(jacobian=False)
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = built.pooled + 0.05 * rng.standard_normal(built.pooled.size)
        reference = loglike(built.problem, theta)
        reference += sum(float(stats.norm.logpdf(v, p.mu, p.sigma)) for v, p in zip(theta, built.priors.priors))
        assert np.isfinite(reference), case
        ours = float(logp(built.value_point(theta)))
        assert abs(ours - reference) <= 1e-8 * max(1.0, abs(reference)), (case, ours, reference)


def test_pytensor_mixture_graph_of_the_cure_model():
    """The builder's pointwise mixture log likelihood (two responses: time and failure
    indicator) equals the numpy rows."""
    import pytensor
    import pytensor.tensor as pt

    from bayesfmm.bayes.builder import mixture_loglike_graph, problem_for
    from bayesfmm.likelihood import evaluate

    problem, pooled = problem_for(bf.FMM(BAYES_CASES["cure"]), BAYES_DATA)
    responses = problem.design.spec.responses
    assert responses == ("d", "t")
    theta, value = pt.dvector("theta"), pt.dmatrix("value")
    graph = mixture_loglike_graph(problem, theta, value, responses)
    fn = pytensor.function([theta, value], [graph, pt.grad(graph.sum(), theta)])
    columns = {comp.response: comp.y for comps in problem.design.classes for comp in comps}
    observed = np.column_stack([columns[r] for r in responses])
    for shift in (0.0, 0.1):
        point = pooled + shift
        rows, grad = fn(point, observed)
        np.testing.assert_allclose(rows, evaluate(problem, point).ll_rows, rtol=1e-10, atol=1e-12)
        assert np.all(np.isfinite(grad))


# -- the examples --------------------------------------------------------------------------
@pytest.mark.parametrize("name, words", [("hurdle", ["logit hurdle Poisson", "BIC"]), ("cure", ["cure model", "truth"])])
def test_examples_run_and_write_their_figure(tmp_path, capsys, name, words):
    """examples/hurdle.py and examples/cure.py end to end (about 3 and 6 s)."""
    import importlib.util
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figure = module.main(output=tmp_path)
    out = capsys.readouterr().out
    assert figure == tmp_path / f"{name}.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
    for word in words:
        assert word in out
