"""Issue 15's priors: exchangeable class-model default, a within-class log-variance centre,
keys and values on the optimiser's scale, class-number keys that never reach auxiliary
parameters, the prior predictive and its conflict warning. No sampling here."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bayesfmm as bf
from bayesfmm.bayes import Normal
from bayesfmm.bayes.builder import problem_for
from bayesfmm.bayes.conflict import PriorDataConflictWarning
from bayesfmm.bayes.exchangeable import mvn_terms, within_class_shift
from bayesfmm.bayes.prior_predictive import draw_from_priors
from bayesfmm.bayes.priors import LogPrior, resolve_priors
from bayesfmm.bayes.sample import build_model
from bayesfmm.likelihood import evaluate


@pytest.fixture(scope="module")
def stamp():
    return bf.datasets.load("stamp")


def _implied_shares(problem, table, draws=40_000, seed=0):
    theta = draw_from_priors(table, draws, np.random.default_rng(seed))
    logits = np.insert(theta[:, [b.start for b in problem.layout.class_blocks]], problem.layout.base, 0.0, axis=1)
    shares = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shares / shares.sum(axis=1, keepdims=True)).mean(axis=0)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_default_class_prior_gives_every_class_the_same_expected_share(stamp, k):
    """By simulation from the default prior: every class's expected share is 1/k (Monte
    Carlo sd of a share's mean over 40000 draws is below 0.002); the old iid logits gave
    the base class 0.29 against 0.35 at k = 3."""
    problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=k), stamp)
    shares = _implied_shares(problem, resolve_priors(problem, None, pooled))
    np.testing.assert_allclose(shares, 1 / k, atol=0.006)
    old = resolve_priors(problem, {"class": Normal(0, 1.5)}, pooled)  # iid, set by hand
    if k >= 3:
        assert _implied_shares(problem, old)[0] < 1 / k - 0.03  # the base class was short-changed


def test_exchangeable_default_keeps_each_logit_marginal_and_k2_unchanged(stamp):
    problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=3), stamp)
    table = resolve_priors(problem, None, pooled)
    frame = table.frame()
    assert table.correlated == ((0, 1),)
    assert frame.loc[(2, "Class", "Intercept"), "sigma"] == 1.5 and frame.loc[(2, "Class", "Intercept"), "corr"] == 0.5
    problem2, pooled2 = problem_for(bf.FMM("thickness ~ 1", k=2), stamp)
    assert resolve_priors(problem2, None, pooled2).correlated == ()


def test_log_prior_of_the_exchangeable_block_matches_scipy_and_its_derivatives(stamp):
    problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=4), stamp)
    table = resolve_priors(problem, None, pooled)
    prior = LogPrior(table, problem.layout)
    theta = pooled + np.random.default_rng(3).normal(0, 0.7, pooled.size)
    cov = 1.5**2 * (0.5 * np.eye(3) + 0.5)
    expected = stats.multivariate_normal(np.zeros(3), cov).logpdf(theta[:3]) + sum(
        stats.norm.logpdf(theta[i], table.priors[i].mu, table.priors[i].sigma) for i in range(3, theta.size)
    )
    value, grad, hess = prior.derivatives(theta)
    assert value == pytest.approx(expected, rel=1e-12)
    eps = 1e-6
    fd = np.array([(prior.value(theta + eps * e) - prior.value(theta - eps * e)) / (2 * eps) for e in np.eye(theta.size)])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)
    fd_h = np.column_stack([(prior.gradient(theta + eps * e) - prior.gradient(theta - eps * e)) / (2 * eps) for e in np.eye(theta.size)])
    np.testing.assert_allclose(hess, fd_h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(prior.hessian_diagonal(theta), np.diag(hess))
    assert mvn_terms(theta[:3], np.zeros(3), np.full(3, 1.5))[0] == pytest.approx(
        stats.multivariate_normal(np.zeros(3), cov).logpdf(theta[:3]), rel=1e-12
    )


@pytest.mark.parametrize("order", [None, "auto", "classpr"])
def test_pymc_density_equals_likelihood_plus_log_prior_under_the_default_prior(stamp, order):
    from bayesfmm.bayes.identify import relabel_to_order

    built = build_model(bf.FMM("thickness ~ 1", k=3), stamp, order=order)
    theta = built.pooled + np.array([-0.5, 0.7, -0.01, -4, 0.0, -3, 0.01, 0])
    if built.order is not None:
        theta = relabel_to_order(built.problem, built.order_group, built.order, theta)
    ours = float(built.model.compile_logp(jacobian=False)(built.value_point(theta)))
    reference = evaluate(built.problem, theta).llf + LogPrior(built.priors, built.problem.layout).value(theta)
    assert ours == pytest.approx(reference, abs=1e-8)


def test_log_variance_prior_is_centred_on_a_within_class_scale(stamp):
    """Stamp k = 3: the pooled log variance (-8.41) sat 2.4 prior sds above class 1's ML
    value (-13.28); the within-class centre (-10.87) sits between the classes, every ML
    log variance within 1.3 prior sds of it."""
    problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=3), stamp)
    frame = resolve_priors(problem, None, pooled).frame()
    centre = frame.xs("var(e)", level="term")["mu"].to_numpy()
    y = stamp["thickness"].to_numpy()
    expected = np.log(np.var(y)) + within_class_shift(y - y.mean(), 3)
    np.testing.assert_allclose(centre, expected, rtol=1e-10)
    ml = np.log(bf.FMM("thickness ~ 1", k=3).fit(stamp).params.xs("var(e)", level="term").to_numpy())
    assert np.all(np.abs(ml - centre) / 2.0 < 1.3)
    assert abs(ml[0] - np.log(np.var(y))) / 2.0 > 2.3  # where the old centre left it


def test_class_number_key_reaches_only_regression_coefficients(stamp):
    """docs/bayes.md's `{2: Normal(0.08, 0.01)}` is class 2's mean: it used to put
    Normal(0.08, 0.01) on class 2's log variance too (the fit then collapsed)."""
    problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=3), stamp)
    default = resolve_priors(problem, None, pooled).frame()
    frame = resolve_priors(problem, {2: Normal(0.08, 0.01)}, pooled).frame()
    assert frame.loc[(2, "thickness", "Intercept"), "sigma"] == 0.01
    assert frame.loc[(2, "thickness", "var(e)"), "sigma"] == default.loc[(2, "thickness", "var(e)"), "sigma"] == 2.0
    assert frame.loc[(2, "thickness", "var(e)"), "source"] == "default"


def test_keys_and_values_on_the_optimiser_scale(stamp):
    problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=3), stamp)
    frame = resolve_priors(problem, {(3, "thickness", "lnvar"): (-9.0, 1.0)}, pooled).frame()
    assert tuple(frame.loc[(3, "thickness", "var(e)"), ["mu", "sigma"]]) == (-9.0, 1.0)
    with pytest.raises(bf.SpecificationError, match="sampled as 'lnvar'"):
        resolve_priors(problem, {(3, "thickness", "var(e)"): (-9.0, 1.0)}, pooled)
    with pytest.raises(bf.SpecificationError, match="sampled as 'lnvar'"):
        resolve_priors(problem, {("thickness", "var(e)"): (-9.0, 1.0)}, pooled)


def test_docs_prior_example_does_what_its_text_says(stamp):
    """docs/bayes.md's override example (the dict, without sampling): each key lands on
    the parameters its comment names."""
    from bayesfmm.bayes import StudentT

    problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=3), stamp)
    priors = {
        "errvar": {"sigma": 1.0},
        2: Normal(0.08, 0.01),
        ("thickness", "Intercept"): StudentT(4, 0.09, 0.02),
        (3, "thickness", "lnvar"): (-9.0, 1.0),
    }
    frame = resolve_priors(problem, priors, pooled).frame()
    assert frame.xs("var(e)", level="term")["sigma"].tolist() == [1.0, 1.0, 1.0]  # errvar everywhere, class 3 set
    assert frame.xs("var(e)", level="term")["mu"].iloc[2] == -9.0
    intercepts = frame.xs(("thickness", "Intercept"), level=("equation", "term"))
    assert intercepts["dist"].tolist() == ["StudentT"] * 3  # (equation, term) beats a class number
    assert frame.loc[(2, "Class", "Intercept"), "source"] == "default"


def test_prior_predictive_shapes_and_no_conflict_on_stamp(stamp):
    pp = bf.FMM("thickness ~ 1", k=3).prior_predictive(stamp, draws=300, random_seed=1)
    assert pp.y.shape == (300, 485, 1)
    table = pp.table()
    assert table.loc[("thickness", "mean"), "observed"] == pytest.approx(stamp["thickness"].mean())
    assert 0.2 < table.loc[("thickness", "mean"), "quantile"] < 0.8
    assert pp.conflicts().empty
    fig = pp.plot()
    assert len(fig.axes) == 2


def test_prior_data_conflict_warns(stamp):
    """A prior that puts every class mean near 1 (the data's mean is 0.086)."""
    with pytest.warns(PriorDataConflictWarning, match="thickness mean"):
        pp = bf.FMM("thickness ~ 1", k=2).prior_predictive(stamp, priors={"cons": Normal(1.0, 0.01)}, draws=200,
                                                           random_seed=2)
    assert pp.table().loc[("thickness", "mean"), "quantile"] == 0.0
