"""Information criteria (bayesfmm.criteria).

Oracles:
* hand computation in the test from a fit's llf, df, n and posterior class probabilities,
  the posteriors recomputed here with scipy.stats from the reported parameters (not with
  the package's likelihood code);
* R flexmix 2.3-18 on NregFix (tests/reference/flexmix_nregfix.json, produced by
  tests/reference/flexmix_nregfix.R): its ``AIC``, ``BIC``, ``ICL`` and ``clogLik`` from its
  own logLik, df and posterior matrix, to 1e-9 relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import load_reference
from scipy import stats

import bayesfmm as bf
from bayesfmm.criteria import (
    CRITERIA,
    classification_entropy,
    fit_criteria,
    information_criteria,
    map_log_posterior,
)


@pytest.fixture(scope="module")
def flexmix():
    return load_reference("flexmix_nregfix.json")


def _stamp_posteriors(res, y):
    """Posterior class probabilities from the reported parameters, with scipy.stats."""
    params = res.params
    prior = res.lcprob()["margin"].to_numpy()
    dens = np.column_stack([
        prior[j - 1]
        * stats.norm.pdf(y, params[(j, "thickness", "Intercept")], math.sqrt(params[(j, "thickness", "var(e)")]))
        for j in (1, 2, 3)
    ])
    return dens / dens.sum(axis=1, keepdims=True), float(np.log(dens.sum(axis=1)).sum())


def test_criteria_of_a_fit_by_hand(stamp, stamp_normal3):
    res = stamp_normal3
    y = stamp["thickness"].to_numpy()
    post, llf = _stamp_posteriors(res, y)
    assert llf == pytest.approx(res.llf, abs=1e-8)  # the scipy posteriors belong to this fit
    n, df = 485, 8  # 2 class logits + 3 means + 3 variances
    assert (res.nobs, res.df_model) == (n, df)
    entropy = -sum(p * math.log(p) for p in post.ravel() if p > 0)
    map_term = sum(math.log(row.max()) for row in post)
    bic = -2 * llf + df * math.log(n)
    expected = {
        "AIC": -2 * llf + 2 * df,
        "AICc": -2 * llf + 2 * df + 2 * df * (df + 1) / (n - df - 1),
        "BIC": bic,
        "CAIC": -2 * llf + df * (math.log(n) + 1),
        "ICL": bic - 2 * map_term,
        "ICL-BIC": bic + 2 * entropy,
        "entropy": entropy,
    }
    ours = fit_criteria(res)
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, rel=1e-9, abs=1e-6), name
    assert ours["AIC"] == pytest.approx(res.aic, rel=1e-12)
    assert ours["BIC"] == pytest.approx(res.bic, rel=1e-12)
    # the soft entropy is never below the MAP term: ICL-BIC >= ICL >= BIC
    assert ours["ICL-BIC"] >= ours["ICL"] >= ours["BIC"]


def test_icl_and_bic_equal_flexmix_from_its_own_posteriors(flexmix):
    """flexmix ICL = -2 clogLik + df log n, clogLik the MAP classification likelihood."""
    ref = flexmix["by_k"]["3"]
    post = np.asarray(flexmix["k3"]["posterior"])
    ours = information_criteria(ref["logLik"], ref["df"], ref["nobs"], post)
    for name in ("AIC", "BIC", "ICL"):
        assert ours[name] == pytest.approx(ref[name], rel=1e-9), name
    assert ref["logLik"] + map_log_posterior(post) == pytest.approx(ref["clogLik"], rel=1e-9)


def test_flexmix_criteria_without_posteriors(flexmix):
    for k, ref in flexmix["by_k"].items():
        ours = information_criteria(ref["logLik"], ref["df"], ref["nobs"])
        assert ours["AIC"] == pytest.approx(ref["AIC"], rel=1e-12), k
        assert ours["BIC"] == pytest.approx(ref["BIC"], rel=1e-12), k
        assert math.isnan(ours["ICL"]) and math.isnan(ours["entropy"])
    # one class: no classification uncertainty, ICL = BIC (flexmix prints the same)
    one = flexmix["by_k"]["1"]
    ours = information_criteria(one["logLik"], one["df"], one["nobs"], np.ones((one["nobs"], 1)))
    assert ours["ICL"] == pytest.approx(one["ICL"], rel=1e-12)
    assert ours["entropy"] == 0.0 and math.copysign(1.0, ours["entropy"]) == 1.0


def test_hard_posteriors_make_icl_equal_bic():
    resp = np.eye(3)[[0, 1, 2, 2, 1]]
    ic = information_criteria(-10.0, 2, 5, resp)
    assert ic["ICL"] == ic["BIC"] == ic["ICL-BIC"] == pytest.approx(20.0 + 2 * math.log(5))


def test_entropy_and_map_term_by_hand():
    resp = np.array([[0.5, 0.5], [0.9, 0.1], [0.0, 1.0]])
    assert classification_entropy(resp) == pytest.approx(
        -(2 * 0.5 * math.log(0.5) + 0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    )
    assert map_log_posterior(resp) == pytest.approx(math.log(0.5) + math.log(0.9))


def test_aicc_undefined_when_too_few_observations():
    assert math.isnan(information_criteria(-5.0, 4, 5)["AICc"])
    assert information_criteria(-5.0, 4, 6)["AICc"] == pytest.approx(10 + 8 + 2 * 4 * 5 / 1)


def test_bad_input():
    with pytest.raises(ValueError, match="df"):
        information_criteria(-1.0, -1, 10)
    with pytest.raises(ValueError, match="nobs"):
        information_criteria(-1.0, 1, 0)
    with pytest.raises(ValueError, match="sum to 1"):
        information_criteria(-1.0, 1, 2, np.array([[0.5, 0.2], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="rows"):
        information_criteria(-1.0, 1, 3, np.array([[0.5, 0.5], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="n x k"):
        information_criteria(-1.0, 1, 2, np.array([0.5, 0.5]))


def test_criteria_names_are_the_documented_ones():
    assert CRITERIA == ("AIC", "AICc", "BIC", "CAIC", "ICL", "ICL-BIC")
    assert set(CRITERIA) < set(information_criteria(0.0, 1, 10))
    assert bf.select is not None  # the public entry point that tabulates them
