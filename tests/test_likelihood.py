"""The mixture core: exact score and observed information, EM monotonicity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import simulate_regression_mixture

import bayesfmm as bf
from bayesfmm.design import build_design
from bayesfmm.likelihood import MixtureProblem, evaluate, loglike, row_scores, score_hessian
from bayesfmm.ml.em import m_step
from bayesfmm.params import build_layout


def _problem(spec, data):
    design = build_design(spec, data)
    return MixtureProblem.build(design, build_layout(design))


def _data(n=150, seed=3):
    rng = np.random.default_rng(seed)
    data, _ = simulate_regression_mixture(n, seed)
    data["z"] = rng.standard_normal(n)
    data["g"] = pd.Categorical(rng.choice(["a", "b", "c"], n))
    data["pos"] = np.exp(data["y"] / 8)
    return data


MODELS = {
    "stamp-like": lambda: bf.FMM("y ~ 1", family="gaussian", k=3),
    "regression": lambda: bf.FMM("y ~ x1 + x2", family="gaussian", k=3),
    "lcprob": lambda: bf.FMM("y ~ x1 + C(g)", family="gaussian", k=3, lcprob="~ z + x2", lcbase=2),
    "lognormal": lambda: bf.FMM("pos ~ x1", family="lognormal", k=2, lcprob="~ z"),
    "hybrid": lambda: bf.FMM([
        bf.Component("pos ~ x1", family="lognormal", lcprob="~ z"),
        bf.Component("pos ~ 1", family="lognormal"),
        bf.Component("pos ~ x2", family="lognormal", lcprob="~ x1"),
    ]),
    "two responses": lambda: bf.FMM([bf.Component("y ~ x1"), bf.Component("pos ~ 1", family="lognormal")], k=2),
}


def _random_theta(problem, seed):
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 0.5, problem.layout.size)
    theta[problem.layout.is_aux()] = rng.normal(0.5, 0.3, problem.layout.is_aux().sum())
    return theta


def _fd_gradient(problem, theta, h=1e-6):
    g = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        g[i] = (loglike(problem, theta + e) - loglike(problem, theta - e)) / (2 * h)
    return g


@pytest.mark.parametrize("name", MODELS)
def test_score_equals_finite_differences(name):
    problem = _problem(MODELS[name](), _data())
    theta = _random_theta(problem, 1)
    _, g, _ = score_hessian(problem, theta)
    np.testing.assert_allclose(g, _fd_gradient(problem, theta), rtol=1e-5, atol=1e-5)
    # the per-row scores add up to the score
    np.testing.assert_allclose(row_scores(problem, theta).sum(axis=0), g, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("name", MODELS)
def test_observed_information_equals_finite_difference_hessian(name):
    problem = _problem(MODELS[name](), _data())
    theta = _random_theta(problem, 2)
    _, _, H = score_hessian(problem, theta)
    h = 1e-5
    H_fd = np.empty_like(H)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        H_fd[:, i] = (score_hessian(problem, theta + e)[1] - score_hessian(problem, theta - e)[1]) / (2 * h)
    np.testing.assert_allclose(H, H_fd, rtol=1e-5, atol=1e-4 * np.max(np.abs(H)) * 1e-2)
    np.testing.assert_allclose(H, H.T, atol=1e-10 * np.max(np.abs(H)))


@pytest.mark.parametrize("name", MODELS)
def test_em_step_never_lowers_the_likelihood(name):
    problem = _problem(MODELS[name](), _data())
    for seed in range(5):
        theta = _random_theta(problem, seed)
        ev = evaluate(problem, theta)
        for _ in range(15):
            theta = m_step(problem, ev.resp, theta)
            new = evaluate(problem, theta)
            assert new.llf >= ev.llf - 1e-8 * abs(ev.llf), (seed, ev.llf, new.llf)
            ev = new


def test_responsibilities_are_posterior_probabilities():
    problem = _problem(MODELS["lcprob"](), _data())
    theta = _random_theta(problem, 4)
    ev = evaluate(problem, theta)
    np.testing.assert_allclose(ev.resp.sum(axis=1), 1.0)
    joint = np.exp(ev.log_classprob + ev.log_density)
    np.testing.assert_allclose(ev.resp, joint / joint.sum(axis=1, keepdims=True), rtol=1e-10)
    np.testing.assert_allclose(ev.llf, np.log(joint.sum(axis=1)).sum(), rtol=1e-12)
