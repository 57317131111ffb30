"""Postestimation, simulation, correlations and the Bayes prior of ``mvnormal`` mixtures
(issue 18): predict kinds on n x d responses, the simulator's multivariate draws, the
summary's correlations with delta-method SEs, and the LKJ + log-normal covariance prior."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesfmm as bf
from bayesfmm import mvresults
from bayesfmm.bayes.mvprior import CovariancePrior, lkj_draw, lkj_log_normaliser
from bayesfmm.bayes.priors import LogPrior, resolve_priors
from bayesfmm.errors import SpecificationError
from bayesfmm.families.mvnormal import covariance_from_theta, theta_from_covariance

FORMULA = "eruptions + waiting ~ 1"
NAMES = ["eruptions", "waiting"]
RESPONSE = "eruptions + waiting"


@pytest.fixture(scope="module")
def faithful():
    return bf.datasets.load("faithful")


@pytest.fixture(scope="module")
def fit2(faithful):
    return bf.FMM(FORMULA, family="mvnormal", k=2).fit(faithful)


# -- predict ---------------------------------------------------------------------------
def test_one_class_predict_mu_is_the_sample_mean(faithful):
    res = bf.FMM(FORMULA, family="mvnormal", k=1).fit(faithful)
    mu = res.predict(kind="mu", marginal=True)
    assert list(mu.columns) == NAMES and mu.shape == (272, 2)
    np.testing.assert_allclose(mu.to_numpy(), np.tile(faithful[NAMES].mean().to_numpy(), (272, 1)), rtol=1e-9)
    lcmean = res.lcmean()
    np.testing.assert_allclose(lcmean["margin"].to_numpy(), faithful[NAMES].mean().to_numpy(), rtol=1e-9)


def test_predict_shapes_names_and_values(fit2, faithful):
    res = fit2
    mu = res.predict(kind="mu")
    assert mu.shape == (272, 4) and mu.columns.names == ["class", "response"]
    assert list(mu.columns) == [(1, "eruptions"), (1, "waiting"), (2, "eruptions"), (2, "waiting")]
    for j in (1, 2):
        for name in NAMES:
            np.testing.assert_allclose(mu[(j, name)], res.params.loc[(j, name, "Intercept")], rtol=1e-12)
    np.testing.assert_allclose(res.predict(kind="eta").to_numpy(), mu.to_numpy(), rtol=1e-12)
    # the mixture mean by hand: sum_j pi_j mu_j
    pi = res.predict(kind="classpr").to_numpy()
    marginal = res.predict(kind="mu", marginal=True)
    for name in NAMES:
        expected = pi[:, 0] * mu[(1, name)] + pi[:, 1] * mu[(2, name)]
        np.testing.assert_allclose(marginal[name], expected, rtol=1e-12)
    # one column of the response: n x k, or the marginal Series
    waiting = res.predict(kind="mu", equation="waiting")
    assert waiting.shape == (272, 2) and list(waiting.columns) == [1, 2]
    np.testing.assert_allclose(waiting.to_numpy(), mu.xs("waiting", axis=1, level="response").to_numpy())
    series = res.predict(kind="mu", marginal=True, equation="waiting")
    assert isinstance(series, pd.Series)
    np.testing.assert_allclose(series.to_numpy(), marginal["waiting"].to_numpy())
    # posterior classification: rows sum to one, the modal class is mvresults.classify's
    post = res.predict(kind="classposteriorpr")
    np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-12)
    assert (post.to_numpy().argmax(axis=1) + 1).tolist() == mvresults.classify(res)["class"].tolist()
    assert res.clusters().tolist() == mvresults.classify(res)["class"].tolist()
    # class means (lcmean) per response column
    lcmean = res.lcmean()
    assert list(lcmean.index) == [(1, "eruptions"), (1, "waiting"), (2, "eruptions"), (2, "waiting")]
    # new data
    fresh = res.predict(faithful.iloc[:5], kind="mu", marginal=True)
    np.testing.assert_allclose(fresh.to_numpy(), marginal.iloc[:5].to_numpy(), rtol=1e-12)


def test_predict_errors_name_the_equation(fit2):
    with pytest.raises(SpecificationError, match="joint over its columns"):
        fit2.predict(kind="density", equation="waiting")
    with pytest.raises(SpecificationError, match="'eruptions', 'waiting'"):
        fit2.predict(kind="mu", equation="height")


# -- simulation ------------------------------------------------------------------------
def test_simulate_names_the_response_columns(fit2, faithful):
    fake = bf.simulate(fit2, rng=1)
    assert list(fake.columns) == NAMES and fake.shape == (272, 2)
    fake, classes = bf.simulate(fit2, rng=1, data=faithful, return_class=True)
    assert fake.shape == faithful.shape and set(classes.unique()) == {1, 2}
    refit = bf.FMM(FORMULA, family="mvnormal", k=2).fit(fake)  # the parametric bootstrap's path
    assert refit.converged


def test_simulated_class_moments_match_the_fit(fit2, faithful):
    """Draws on faithful stacked 40 times (n = 10880): in each drawn class the sample mean
    and covariance of the draws against the fitted ones, within 4 standard errors of the
    sample moments (mean: sqrt(S_aa / n_j); covariance: sqrt((S_aa S_bb + S_ab^2) / n_j),
    the normal-theory SE); the class shares within 4 binomial SEs. The seed is fixed, so the
    test is deterministic; 4 SE keeps a correct simulator from failing by chance (p < 1e-4
    per comparison)."""
    big = pd.concat([faithful] * 40, ignore_index=True)
    fake, classes = bf.simulate(fit2, rng=7, data=big, return_class=True)
    covs = mvresults.covariance_matrices(fit2)
    pi = fit2.lcprob()["margin"].to_numpy()
    n = len(big)
    for j in (1, 2):
        draws = fake.loc[classes == j, NAMES].to_numpy()
        nj = draws.shape[0]
        assert abs(nj / n - pi[j - 1]) < 4 * np.sqrt(pi[j - 1] * (1 - pi[j - 1]) / n)
        sigma = covs[j].to_numpy()
        mean = np.array([fit2.params.loc[(j, name, "Intercept")] for name in NAMES])
        assert np.all(np.abs(draws.mean(axis=0) - mean) < 4 * np.sqrt(np.diag(sigma) / nj))
        sample = np.cov(draws.T, bias=True)
        se = np.sqrt((np.outer(np.diag(sigma), np.diag(sigma)) + sigma**2) / nj)
        assert np.all(np.abs(sample - sigma) < 4 * se), (j, sample, sigma)


def test_predictive_draws_have_one_column_per_response(fit2):
    from bayesfmm.bayes.predictive import custom_dist_random, predictive_draws

    draws = predictive_draws(fit2.problem, np.tile(fit2.theta, (3, 1)), np.random.default_rng(0))
    assert draws.shape == (3, 272, 2)
    random = custom_dist_random(fit2.problem)
    assert random(fit2.theta[None, :], rng=np.random.default_rng(0), size=(2, 272)).shape == (2, 272, 2)


# -- correlations ----------------------------------------------------------------------
def test_one_class_correlation_and_fisher_se(faithful):
    """k = 1: the correlation is the sample correlation (exactly: the ML covariance is the
    sample one); its delta-method SE equals Fisher's asymptotic (1 - r^2) / sqrt(n), since
    at the MLE of a normal model the observed information (vce oim) equals the expected
    one. Tolerance 1e-5: the central-difference Jacobian of the delta method."""
    res = bf.FMM(FORMULA, family="mvnormal", k=1).fit(faithful)
    r = np.corrcoef(faithful["eruptions"], faithful["waiting"])[0, 1]
    row = mvresults.covariance_table(res).loc[(1, "corr(eruptions,waiting)")]
    assert row["coef"] == pytest.approx(r, rel=1e-10)
    assert row["std_err"] == pytest.approx((1 - r**2) / np.sqrt(len(faithful)), rel=1e-5)
    assert row["lower"] < r < row["upper"] < 1


def test_summary_shows_correlations_with_delta_method_se(fit2):
    summary = fit2.summary()
    tables = dict(summary.covariances)
    assert set(tables) == {(1, RESPONSE), (2, RESPONSE)}
    text = str(summary)
    assert text.count("corr(eruptions,waiting)") == 2
    assert "var(e.erup~)" in text and "cvar(e.wai~)" in text  # aux rows name their equation
    table = mvresults.covariance_table(fit2)
    for j in (1, 2):
        frame = tables[(j, RESPONSE)]
        pd.testing.assert_frame_equal(frame, table.loc[j])
        # var(eruptions) is also a reported parameter: the layout's analytic Jacobian
        # against the numerical one of the delta method
        assert frame.loc["var(eruptions)", "std_err"] == pytest.approx(fit2.bse.loc[(j, "eruptions", "var(e)")], rel=1e-6)
        # corr by hand from the covariance matrix
        sigma = mvresults.covariance_matrices(fit2)[j].to_numpy()
        assert frame.loc["corr(eruptions,waiting)", "coef"] == pytest.approx(sigma[0, 1] / np.sqrt(sigma[0, 0] * sigma[1, 1]))
        assert f"{frame.loc['corr(eruptions,waiting)', 'coef']:.7f}"[:6].lstrip("0") in text


# -- the LKJ + log-normal covariance prior ------------------------------------------------
@pytest.mark.parametrize("d,eta", [(2, 2.0), (3, 1.0), (3, 2.0), (4, 0.7), (5, 3.5)])
def test_lkj_normaliser_matches_pymc(d, eta):
    """PyMC's LKJCorr logp is on the Cholesky factor L of R: p(L) = p(R) prod_i L_ii^(d-i)."""
    pm = pytest.importorskip("pymc")
    R = lkj_draw(d, eta, np.random.default_rng(d))
    L = np.linalg.cholesky(R)
    on_l = float(pm.logp(pm.LKJCorr.dist(n=d, eta=eta), L).eval())
    on_r = on_l - sum((d - i) * np.log(L[i - 1, i - 1]) for i in range(1, d + 1))
    assert lkj_log_normaliser(d, eta) + (eta - 1) * np.log(np.linalg.det(R)) == pytest.approx(on_r, abs=1e-9)


def _log_s_and_r(t, d):
    sigma = covariance_from_theta(t, d, "full")
    s = np.sqrt(np.diag(sigma))
    corr = sigma / np.outer(s, s)
    return np.r_[np.log(s), corr[np.triu_indices(d, 1)]]


@pytest.mark.parametrize("d", [2, 3])
def test_covariance_prior_density_is_lkj_times_lognormal(d):
    """The prior on theta against an independent computation: the density of (log s, R)
    (log s_i ~ Normal(c_i, tau); R ~ LKJ(eta): for d = 2 scipy's Beta(eta, eta) of
    (r + 1) / 2, for d = 3 PyMC's LKJCorr) times |d(log s, r) / d theta| by central
    differences (tolerance 1e-6: the finite-difference Jacobian)."""
    rng = np.random.default_rng(4)
    eta, tau = 2.0, 0.8
    centre = rng.normal(size=d)
    prior = CovariancePrior(np.arange(d * (d + 1) // 2), d, centre, eta, tau)
    a = rng.normal(size=(d, d))
    sigma = a @ a.T + 0.5 * np.eye(d)
    t = theta_from_covariance(sigma, "full")
    h = 1e-6
    jac = np.column_stack([(_log_s_and_r(t + h * e, d) - _log_s_and_r(t - h * e, d)) / (2 * h) for e in np.eye(t.size)])
    log_s, r = _log_s_and_r(t, d)[:d], _log_s_and_r(t, d)[d:]
    if d == 2:
        lkj = stats.beta(eta, eta).logpdf((r[0] + 1) / 2) - np.log(2)
    else:
        pm = pytest.importorskip("pymc")
        R = sigma / np.sqrt(np.outer(np.diag(sigma), np.diag(sigma)))
        L = np.linalg.cholesky(R)
        lkj = float(pm.logp(pm.LKJCorr.dist(n=d, eta=eta), L).eval()) - sum((d - i) * np.log(L[i - 1, i - 1]) for i in range(1, d + 1))
    expected = stats.norm(centre, tau).logpdf(log_s).sum() + lkj + np.log(abs(np.linalg.det(jac)))
    assert prior.value(t) == pytest.approx(expected, abs=1e-6)
    # exact gradient against central differences of the value
    numeric = np.array([(prior.value(t + 1e-6 * e) - prior.value(t - 1e-6 * e)) / 2e-6 for e in np.eye(t.size)])
    np.testing.assert_allclose(prior.gradient(t), numeric, atol=1e-6)
    # the pytensor graph of the PyMC model is the same function
    pytensor = pytest.importorskip("pytensor")
    assert float(prior.graph(pytensor.tensor.constant(t)).eval()) == pytest.approx(prior.value(t), rel=1e-12)


def test_prior_draws_have_the_stated_marginals():
    """LKJ(eta) in d dimensions: every correlation's (r + 1) / 2 is Beta(eta - 1 + d / 2)
    (LKJ 2009); log s_i ~ Normal(c_i, tau). KS tests at level 0.001 on 3000 draws with a
    fixed seed (a wrong parameterisation, e.g. eta off by 1, is rejected at p < 1e-10)."""
    rng = np.random.default_rng(11)
    d, eta, tau = 3, 2.0, 0.7
    prior = CovariancePrior(np.arange(6), d, np.array([0.0, 1.0, -1.0]), eta, tau)
    draws = prior.draw(3000, rng)
    values = np.array([_log_s_and_r(t, d) for t in draws])
    b = eta - 1 + d / 2
    for col in range(d, d + 3):
        assert stats.kstest((values[:, col] + 1) / 2, stats.beta(b, b).cdf).pvalue > 1e-3
    for i in range(d):
        assert stats.kstest(values[:, i], stats.norm(prior.centre[i], tau).cdf).pvalue > 1e-3


def test_default_table_has_joint_covariance_priors(faithful):
    from bayesfmm.bayes.builder import problem_for

    problem, pooled = problem_for(bf.FMM(FORMULA, family="mvnormal", k=2), faithful)
    table = resolve_priors(problem, None, pooled)
    assert len(table.covariance) == 2 and all(b.eta == 2.0 and b.sd == 1.0 for b in table.covariance)
    assert (table.frame()["dist"] == "LKJ(2)").sum() == 6
    # the centre: half the log within-class variance estimate, below the pooled log sd
    pooled_log_sd = 0.5 * np.log(faithful[NAMES].var(ddof=0).to_numpy())
    assert np.all(table.covariance[0].centre < pooled_log_sd)
    assert resolve_priors(problem, {"lkj": 4}, pooled).covariance[0].eta == 4.0
    assert resolve_priors(problem, {"lkj": False}, pooled).covariance == ()
    # a prior of your own on one covariance parameter of class 1 leaves class 1 without the joint prior
    own = resolve_priors(problem, {(1, "waiting", "u22"): {"mu": 0.0, "sigma": 1.0}}, pooled)
    assert [b.label for b in own.covariance] == [f"class 2: {RESPONSE}"]
    with pytest.raises(SpecificationError, match="lkj"):
        resolve_priors(problem, {"lkj": {"nu": 3}}, pooled)
    for bad in (0, -1.0, float("nan"), "two", True, {"eta": 2.0, "sigma": 0.0}):
        with pytest.raises(SpecificationError, match=r"priors\['lkj'\]"):
            resolve_priors(problem, {"lkj": bad}, pooled)
    # MAP's log prior: the joint density replaces the stand-ins
    theta = pooled + 0.05
    logprior = LogPrior(table, problem.layout)
    others = LogPrior(resolve_priors(problem, {"lkj": False}, pooled), problem.layout)
    cov_positions = np.concatenate([b.positions for b in table.covariance])
    stand_ins = sum(table.priors[p].logpdf(theta[p]) for p in cov_positions)
    assert logprior.value(theta) == pytest.approx(
        others.value(theta) - stand_ins + sum(b.value(theta) for b in table.covariance), rel=1e-12
    )


def test_pymc_model_carries_the_prior(faithful):
    """The PyMC model's log density is the numpy log likelihood plus LogPrior (order=None:
    no ordering transform), also with a tied covariance (one joint prior, the free class's)."""
    pytest.importorskip("pymc")
    from bayesfmm.bayes.builder import build, problem_for
    from bayesfmm.likelihood import loglike

    for invariant, blocks in (("none", 2), ("errvar", 1)):
        problem, pooled = problem_for(bf.FMM(FORMULA, family="mvnormal", k=2, lcinvariant=invariant), faithful)
        built = build(problem, pooled, order=None)
        assert [p.name for p in built.model.potentials] == [f"covariance_prior_{b + 1}" for b in range(blocks)]
        theta = pooled + 0.1
        cons = problem.layout.constraints
        if cons is not None:
            theta = cons.T @ theta[cons.free] + cons.c
        expected = loglike(problem, theta) + LogPrior(built.priors, problem.layout).value(theta)
        assert float(built.theta_logp_function()(theta)[0]) == pytest.approx(expected, rel=1e-12)


def test_map_shrinks_correlations_towards_zero(faithful, fit2):
    """LKJ(2) puts less mass near |r| = 1 than the flat prior: the posterior mode's
    correlations lie between 0 and the ML ones, within one ML standard error of them."""
    res = bf.FMM(FORMULA, family="mvnormal", k=2).map(faithful)
    ml = mvresults.covariance_table(fit2)
    mode = mvresults.covariance_table(res)
    label = "corr(eruptions,waiting)"
    for j in (1, 2):
        r_ml, r_map = ml.loc[(j, label), "coef"], mode.loc[(j, label), "coef"]
        assert 0 < r_map < r_ml
        assert r_ml - r_map < ml.loc[(j, label), "std_err"]
    assert np.isfinite(mode["std_err"]).all()


@pytest.mark.slow
def test_sample_faithful_two_classes(faithful, fit2):
    """A short NUTS run (2 chains x 300 draws, 17-45 s on 2 shared cores): the posterior means of the class
    means lie within 4 posterior sds of the ML estimates, and posterior predict works."""
    post = bf.FMM(FORMULA, family="mvnormal", k=2).sample(faithful, draws=300, tune=300, chains=2, random_seed=3,
                                                           progressbar=False)
    for j in (1, 2):
        for name in NAMES:
            key = (j, name, "Intercept")
            assert abs(post.params.loc[key] - fit2.params.loc[key]) < 4 * post.bse.loc[key]
    assert post.predict(kind="mu", marginal=True).shape == (272, 2)
    group = post.posterior_predictive(max_draws=20, random_seed=1)
    replicated = next(iter(group.to_dataset().data_vars.values()))
    assert replicated.sizes["response"] == 2 and list(replicated["response"].values) == NAMES
    assert replicated.sizes["obs"] == 272


def test_prior_predictive_draws_both_responses_from_the_lkj_prior(faithful):
    """The prior predictive of an mvnormal model: n x 2 replicates beside the data's two
    columns, the covariance drawn from the joint LKJ x log-normal prior (bayes/mvprior.py)."""
    pp = bf.FMM(FORMULA, family="mvnormal", k=2).prior_predictive(faithful, draws=50, random_seed=1)
    assert pp.y.shape == (50, 272, 2) and pp.responses == tuple(NAMES)
    np.testing.assert_array_equal(pp.observed, faithful[NAMES].to_numpy())
    assert set(pp.table().index.get_level_values("response")) == set(NAMES)


def test_fittedvalues_and_resid_have_a_column_per_response(fit2, faithful):
    """statsmodels' habits on an mvnormal fit: fittedvalues is predict(mu, marginal) and
    resid the data less it, one column per response."""
    fitted = fit2.fittedvalues
    fitted = fitted() if callable(fitted) else fitted
    resid = fit2.resid
    resid = resid() if callable(resid) else resid
    assert list(fitted.columns) == NAMES and list(resid.columns) == NAMES
    np.testing.assert_allclose(resid.to_numpy(), faithful[NAMES].to_numpy() - fitted.to_numpy(), rtol=0, atol=1e-12)
