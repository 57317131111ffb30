"""vce: oim, opg, robust and cluster, against statsmodels and independently computed scores.

How the 1-class fits line up with statsmodels' OLS: our gaussian model is ML with the log
error variance a parameter. At the ML estimates the Hessian is block diagonal between the
coefficients and the log variance (``X'r = 0``), so the coefficient block of the sandwich
``D (sum s_i s_i') D`` is ``(X'X)^-1 (sum x_i x_i' r_i^2) (X'X)^-1``, which is statsmodels'
HC0 (and, with scores summed within clusters, its uncorrected cluster sandwich). Stata's ML
small-sample factors are then applied: ``n/(n-1)`` for robust, ``G/(G-1)`` for cluster
(Stata [P] _robust, minus(1); bayesfmm/ml/vce.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import simulate_regression_mixture
from scipy import stats
from scipy.special import logsumexp

import bayesfmm as bf

sm = pytest.importorskip("statsmodels.api")

COEFS = ["Intercept", "x1", "x2"]


def _coef_cov(res, equation="y", terms=COEFS):
    keys = [(1, equation, t) for t in terms]
    return res.cov_params().loc[keys, keys].to_numpy()


@pytest.fixture(scope="module")
def heteroskedastic():
    data, _ = simulate_regression_mixture(400, seed=21)
    rng = np.random.default_rng(21)
    data["y"] = data["y"] + np.abs(data["x1"]) * rng.standard_normal(400)  # heteroskedastic noise
    data["g"] = rng.permutation(np.repeat([f"c{i}" for i in range(37)], 11)[:400])  # unsorted string labels
    return data


def test_robust_equals_statsmodels_hc0_times_n_over_n_minus_1(heteroskedastic):
    data = heteroskedastic
    n = len(data)
    res = bf.FMM("y ~ x1 + x2", k=1).fit(data, vce="robust")
    ols = sm.OLS(data["y"], sm.add_constant(data[["x1", "x2"]])).fit(cov_type="HC0")
    expected = ols.cov_params().to_numpy() * n / (n - 1)
    np.testing.assert_allclose(_coef_cov(res), expected, rtol=1e-6, atol=0)
    assert res.vce == "robust" and res.n_clusters is None
    # robust differs from oim here (heteroskedastic data): the option did something
    oim = bf.FMM("y ~ x1 + x2", k=1).fit(data)
    assert not np.allclose(_coef_cov(oim), expected, rtol=1e-2)


def test_robust_lognormal_equals_ols_on_log_y(heteroskedastic):
    data = heteroskedastic.assign(w=np.exp(heteroskedastic["y"] / 5))
    n = len(data)
    res = bf.FMM("w ~ x1 + x2", family="lognormal", k=1).fit(data, vce="robust")
    ols = sm.OLS(np.log(data["w"]), sm.add_constant(data[["x1", "x2"]])).fit(cov_type="HC0")
    np.testing.assert_allclose(_coef_cov(res, "w"), ols.cov_params().to_numpy() * n / (n - 1), rtol=1e-6)


def test_robust_variance_parameter_matches_an_analytic_sandwich(heteroskedastic):
    # the var(e) row, computed here from the analytic scores of the normal log density in
    # (beta, log variance), then mapped to var(e) by the delta method (d var / d lnvar = var)
    data = heteroskedastic
    n = len(data)
    res = bf.FMM("y ~ x1 + x2", k=1).fit(data, vce="robust")
    X = sm.add_constant(data[["x1", "x2"]]).to_numpy()
    y = data["y"].to_numpy()
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    r = y - X @ beta
    s2 = r @ r / n
    scores = np.column_stack([X * (r / s2)[:, None], 0.5 * (r**2 / s2 - 1)])
    H = np.zeros((4, 4))
    H[:3, :3] = -X.T @ X / s2
    H[3, 3] = -0.5 * np.sum(r**2) / s2
    D = np.linalg.inv(-H)
    V = n / (n - 1) * D @ scores.T @ scores @ D
    assert np.isclose(res.bse[(1, "y", "var(e)")], s2 * np.sqrt(V[3, 3]), rtol=1e-6)
    np.testing.assert_allclose(res.bse[[(1, "y", t) for t in COEFS]], np.sqrt(np.diag(V[:3, :3])), rtol=1e-6)


def test_cluster_equals_statsmodels_cluster_times_G_over_G_minus_1(heteroskedastic):
    data = heteroskedastic
    res = bf.FMM("y ~ x1 + x2", k=1).fit(data, vce="cluster", cluster="g")
    groups = pd.factorize(data["g"])[0]
    ols = sm.OLS(data["y"], sm.add_constant(data[["x1", "x2"]])).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False}
    )
    G = 37
    assert res.n_clusters == G and res.cluster == "g" and res.vce == "cluster"
    np.testing.assert_allclose(_coef_cov(res), ols.cov_params().to_numpy() * G / (G - 1), rtol=1e-6)
    # cluster= alone implies vce="cluster"
    implied = bf.FMM("y ~ x1 + x2", k=1).fit(data, cluster="g")
    np.testing.assert_allclose(implied.cov_theta, res.cov_theta, rtol=1e-12)


def test_cluster_lines_up_with_rows_dropped_for_missing_model_variables(heteroskedastic):
    data = heteroskedastic.copy()
    data.index = data.index[::-1] * 10  # labels that are not positions
    data.loc[data.index[[3, 50]], "x1"] = np.nan
    data.loc[data.index[3], "g"] = np.nan  # dropped anyway (x1 is missing): no error
    with pytest.warns(bf.DataWarning, match="2 of 400 rows dropped"):
        res = bf.FMM("y ~ x1 + x2", k=1).fit(data, vce="cluster", cluster="g")
    kept = data.dropna(subset=["x1"])
    groups = pd.factorize(kept["g"])[0]
    G = groups.max() + 1
    ols = sm.OLS(kept["y"], sm.add_constant(kept[["x1", "x2"]])).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False}
    )
    assert res.nobs == 398 and res.n_clusters == G
    np.testing.assert_allclose(_coef_cov(res), ols.cov_params().to_numpy() * G / (G - 1), rtol=1e-6)


def test_one_row_per_cluster_is_robust(heteroskedastic):
    data = heteroskedastic.assign(id=np.arange(len(heteroskedastic)))
    robust = bf.FMM("y ~ x1 + x2", k=2).fit(data, vce="robust")
    cluster = bf.FMM("y ~ x1 + x2", k=2).fit(data, vce="cluster", cluster="id")
    np.testing.assert_allclose(cluster.cov_theta, robust.cov_theta, rtol=1e-10)


# -- mixtures: scores computed here from scipy's normal density --------------------------
def _stamp_row_loglik(theta: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row log likelihood of the 3-class normal mixture in our theta order
    (logit2, logit3, mu1, lnvar1, mu2, lnvar2, mu3, lnvar3), written with scipy."""
    logits = np.array([0.0, theta[0], theta[1]])
    log_pi = logits - logsumexp(logits)
    mu, lnvar = theta[2::2], theta[3::2]
    dens = stats.norm.logpdf(y[:, None], mu[None, :], np.exp(lnvar / 2)[None, :])
    return logsumexp(dens + log_pi[None, :], axis=1)


def _finite_difference_scores(theta: np.ndarray, y: np.ndarray) -> np.ndarray:
    S = np.empty((y.size, theta.size))
    for i in range(theta.size):
        h = 1e-5 * (abs(theta[i]) + 1e-2)
        up, dn = theta.copy(), theta.copy()
        up[i] += h
        dn[i] -= h
        S[:, i] = (_stamp_row_loglik(up, y) - _stamp_row_loglik(dn, y)) / (2 * h)
    return S


@pytest.fixture(scope="module")
def stamp_scores(stamp_normal3, stamp):
    res = stamp_normal3
    y = stamp["thickness"].to_numpy(dtype=float)
    assert np.isclose(_stamp_row_loglik(res.theta, y).sum(), res.llf, rtol=1e-12)
    return _finite_difference_scores(res.theta, y)


def test_opg_is_the_inverse_outer_product_of_independent_scores(stamp, stamp_scores):
    res = bf.FMM("thickness ~ 1", k=3).fit(stamp, vce="opg")
    expected = np.linalg.inv(stamp_scores.T @ stamp_scores)
    np.testing.assert_allclose(res.cov_theta, expected, rtol=1e-5)


def test_robust_mixture_is_the_sandwich_of_independent_scores(stamp, stamp_normal3, stamp_scores):
    res = bf.FMM("thickness ~ 1", k=3).fit(stamp, vce="robust")
    n = res.nobs
    D = stamp_normal3.cov_theta  # oim, checked against Stata in test_stata_stamp.py
    expected = n / (n - 1) * D @ (stamp_scores.T @ stamp_scores) @ D
    np.testing.assert_allclose(res.cov_theta, expected, rtol=1e-5)
    np.testing.assert_allclose(res.params, stamp_normal3.params, rtol=1e-12)


def test_cluster_mixture_sums_scores_within_clusters(stamp, stamp_normal3, stamp_scores):
    data = stamp.assign(batch=np.arange(len(stamp)) % 25)
    res = bf.FMM("thickness ~ 1", k=3).fit(data, vce="cluster", cluster="batch")
    sums = np.vstack([stamp_scores[data["batch"].to_numpy() == g].sum(axis=0) for g in range(25)])
    D = stamp_normal3.cov_theta
    np.testing.assert_allclose(res.cov_theta, 25 / 24 * D @ sums.T @ sums @ D, rtol=1e-5)


# -- bad input ---------------------------------------------------------------------------
def test_cluster_column_with_missing_values_is_a_clear_error(heteroskedastic):
    data = heteroskedastic.copy()
    data.loc[[5, 17], "g"] = None
    with pytest.raises(bf.DataError, match=r"cluster column\(s\) 'g' have missing values in rows 5, 17"):
        bf.FMM("y ~ x1 + x2", k=1).fit(data, vce="cluster", cluster="g")


def test_vce_option_errors(heteroskedastic):
    model = bf.FMM("y ~ x1 + x2", k=1)
    with pytest.raises(bf.SpecificationError, match="needs the cluster column"):
        model.fit(heteroskedastic, vce="cluster")
    with pytest.raises(bf.SpecificationError, match="goes with vce='cluster'"):
        model.fit(heteroskedastic, vce="robust", cluster="g")
    with pytest.raises(bf.SpecificationError, match="not available; choose from oim, opg, robust, cluster"):
        model.fit(heteroskedastic, vce="bootstrap")
    with pytest.raises(bf.DataError, match=r"cluster column\(s\) 'nope' not in the data"):
        model.fit(heteroskedastic, cluster="nope")
    with pytest.raises(bf.SpecificationError, match="at least 2 clusters"):
        model.fit(heteroskedastic.assign(one=1), cluster="one")
