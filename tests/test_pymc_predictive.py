"""PyMC's predictive sampling on ``build_pymc`` models, and the mixture layer shared by the
numpy likelihood and the PyMC model.

Oracles:

* The numpy and pytensor mixture layers are the same code (bayesfmm.mixture) run on two
  backends: their pointwise log likelihoods and posterior class probabilities agree to
  1e-10 (rounding only) for a standard, an ``lcprob``, a grouped and a weighted model.
* ``pm.sample_posterior_predictive`` and ``BayesResults.posterior_predictive()`` draw
  replicates at the same posterior draws, each with its own random stream. Given the
  draws, the two grand means (over chains, draws and rows) are independent estimates of
  one number; the standard error of their difference is at most
  ``sqrt(var_a / N + var_b / N)`` with ``var`` the variance of all replicated values (an
  overestimate: it includes the spread between posterior draws, which the two share).
  The test allows 4 such standard errors (a false alarm about once in 16,000 runs); the
  share of draws below 0.085 (the thin stamp class) is compared the same way with its
  binomial standard error.
* With ``group=`` the classes (means -8 and 8, sd 1: a draw's class is its sign) are
  drawn per group in every draw, in PyMC's draws as in the package's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm.bayes.builder import mixture_loglike_graph
from bayesfmm.design import build_design
from bayesfmm.likelihood import MixtureProblem, evaluate, pointwise_loglike
from bayesfmm.mixture import mixture_terms
from bayesfmm.ops import pytensor_ops
from bayesfmm.params import build_layout

pm = pytest.importorskip("pymc")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _problem(spec, data) -> MixtureProblem:
    design = build_design(spec, data)
    return MixtureProblem.build(design, build_layout(design))


def _data(n: int = 240, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = n // 4
    data = pd.DataFrame({
        "x": rng.standard_normal(n),
        "z": rng.standard_normal(n),
        "g": np.repeat(np.arange(groups), 4),
        "zg": np.repeat(rng.standard_normal(groups), 4),
        "w": rng.integers(1, 4, n).astype(float),
        "wg": np.repeat(rng.integers(1, 4, groups), 4).astype(float),
    })
    data["y"] = np.where(rng.random(n) < 0.4, -2 + data["x"], 2 - data["x"]) + 0.5 * rng.standard_normal(n)
    return data


MIXTURES = {
    "standard": lambda: bf.FMM("y ~ x", k=3),
    "lcprob": lambda: bf.FMM("y ~ x", k=3, lcprob="~ z"),
    "grouped": lambda: bf.FMM("y ~ x", k=2, lcprob="~ zg", group="g"),
    "weighted": lambda: bf.FMM("y ~ x", k=2, lcprob="~ z", weights="w"),
    "grouped and weighted": lambda: bf.FMM("y ~ x", k=2, group="g", weights="wg"),
}


@pytest.mark.parametrize("name", MIXTURES)
def test_numpy_and_pytensor_mixture_layers_agree(name):
    import pytensor
    import pytensor.tensor as pt

    problem = _problem(MIXTURES[name](), _data())
    theta = pt.dvector("theta")
    y = problem.design.classes[0][0].y
    pointwise = mixture_loglike_graph(problem, theta, pt.as_tensor_variable(y), ("y",))
    posterior = mixture_terms(problem, theta, pytensor_ops(), {"y": y}).posterior
    f = pytensor.function([theta], [pointwise, posterior])
    rng = np.random.default_rng(5)
    for _ in range(3):
        point = rng.normal(0.0, 0.5, problem.layout.size)
        ev = evaluate(problem, point)
        rows, post = f(point)
        np.testing.assert_allclose(rows, pointwise_loglike(problem, ev), rtol=1e-10, atol=1e-10)
        assert abs(rows.sum() - ev.llf) <= 1e-10 * abs(ev.llf)
        units = ev.resp if ev.resp_units is None else ev.resp_units
        np.testing.assert_allclose(post, units, rtol=1e-10, atol=1e-12)


def _values(group, name: str) -> np.ndarray:
    return group[name].transpose("chain", "draw", ...).to_numpy()


@pytest.fixture(scope="module")
def stamp_posterior(stamp):
    return bf.FMM("thickness ~ 1", k=2).sample(stamp, draws=200, tune=200, chains=2, random_seed=3, progressbar=False)


def test_pymc_posterior_predictive_matches_ours(stamp_posterior):
    res = stamp_posterior
    theirs = _values(pm.sample_posterior_predictive(res.idata, model=res.built.model, random_seed=4,
                                                    progressbar=False)["posterior_predictive"], "thickness")
    ours = _values(res.posterior_predictive(random_seed=5), "thickness")
    assert theirs.shape == ours.shape == (2, 200, res.nobs)
    se = np.sqrt(theirs.var() / theirs.size + ours.var() / ours.size)
    assert abs(theirs.mean() - ours.mean()) < 4 * se, (theirs.mean(), ours.mean(), se)
    p_theirs, p_ours = (theirs < 0.085).mean(), (ours < 0.085).mean()
    p = 0.5 * (p_theirs + p_ours)
    assert abs(p_theirs - p_ours) < 4 * np.sqrt(2 * p * (1 - p) / ours.size), (p_theirs, p_ours)
    # the draws are replicates of the data: the observed mean sits inside their spread
    assert abs(ours.mean() - res.design.classes[0][0].y.mean()) < 3 * ours.mean(axis=2).std()


def test_pymc_prior_predictive_shapes(stamp):
    model = bf.FMM("thickness ~ 1", k=2).build_pymc(stamp)
    prior = pm.sample_prior_predictive(draws=7, model=model, random_seed=1)
    draws = _values(prior["prior_predictive"], "thickness")
    assert draws.shape == (1, 7, len(stamp))
    assert np.all(np.isfinite(draws))
    assert np.unique(draws[0, :, 0]).size == 7  # each draw its own data set


def test_pymc_prior_predictive_of_two_responses():
    npreg = bf.datasets.load("NPreg")
    spec = bf.FMM([bf.Component("yn ~ x"), bf.Component("yp ~ x", family="poisson")], k=2, group="id1")
    model = spec.build_pymc(npreg)
    prior = pm.sample_prior_predictive(draws=5, model=model, random_seed=2)["prior_predictive"]
    draws = prior["responses"].transpose("chain", "draw", "obs", "response")
    assert draws.shape == (1, 5, len(npreg), 2)
    assert list(draws["response"].to_numpy()) == ["yn", "yp"]
    counts = draws.sel(response="yp").to_numpy()
    assert np.all(counts >= 0) and np.all(counts == np.round(counts))


@pytest.fixture(scope="module")
def grouped_posterior():
    rng = np.random.default_rng(0)
    cls = rng.integers(0, 2, 40)
    data = pd.DataFrame({"y": np.where(np.repeat(cls, 4) == 0, -8.0, 8.0) + rng.standard_normal(160),
                         "g": np.repeat(np.arange(40), 4)})
    return bf.FMM("y ~ 1", k=2, group="g").sample(data, draws=100, tune=100, chains=2, random_seed=1, progressbar=False)


def test_posterior_predictive_of_a_grouped_model_keeps_each_group_in_one_class(grouped_posterior):
    res = grouped_posterior
    groups = res.problem.design.groups
    pymc_draws = pm.sample_posterior_predictive(res.idata, model=res.built.model, random_seed=2,
                                                progressbar=False)["posterior_predictive"]
    for draws in (_values(res.posterior_predictive(random_seed=3), "y"), _values(pymc_draws, "y")):
        assert draws.shape == (2, 100, 160)
        positive = draws > 0
        np.testing.assert_array_equal(positive, positive[..., groups.first][..., groups.codes])
        assert 0.2 < positive.mean() < 0.8
