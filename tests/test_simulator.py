"""The one response simulator (bayesfmm.simulate.simulate_responses) and its users.

Oracles: with ``group=`` the classes are drawn once per group, so every row of a group has
the same class in every draw, and the share of groups in class j estimates pi_j with a
binomial standard error over *groups* (a per-row draw would put a group of 4 rows in one
class only 1 time in 8 at pi = 1/2). ``bf.simulate``, ``draw_responses`` and the batched
predictive draws are the same function, so one seed gives identical arrays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm.bayes.predictive import custom_dist_random, predictive_draws
from bayesfmm.design import build_design
from bayesfmm.errors import SpecificationError
from bayesfmm.likelihood import MixtureProblem
from bayesfmm.params import build_layout
from bayesfmm.simulate import draw_responses, simulate_responses


def _problem(spec, data) -> MixtureProblem:
    design = build_design(spec, data)
    return MixtureProblem.build(design, build_layout(design))


def grouped_data(n_groups: int = 60, size: int = 4, seed: int = 0) -> pd.DataFrame:
    """Two well-separated classes (means -8 and 8, sd 1), one class per group of ``size``."""
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, 2, n_groups)
    y = np.where(np.repeat(cls, size) == 0, -8.0, 8.0) + rng.standard_normal(n_groups * size)
    return pd.DataFrame({"y": y, "g": np.repeat(np.arange(n_groups), size), "x": rng.standard_normal(n_groups * size)})


def test_class_draws_are_per_group():
    data = grouped_data()
    problem = _problem(bf.FMM("y ~ 1", k=2, group="g"), data)
    groups = problem.design.groups
    theta = np.array([np.log(0.3 / 0.7), -8.0, 0.0, 8.0, 0.0])  # pi = (0.7, 0.3)
    rng = np.random.default_rng(4)
    shares = []
    for _ in range(200):
        y, classes = simulate_responses(problem, theta, rng)
        np.testing.assert_array_equal(classes, classes[groups.first][groups.codes])
        # the responses come from the drawn class: |y - mean| < 6 sd
        assert np.all(np.abs(y[:, 0] - np.where(classes == 0, -8.0, 8.0)) < 6.0)
        shares.append(np.mean(classes[groups.first] == 1))
    se = np.sqrt(0.3 * 0.7 / (groups.n_groups * 200))
    assert abs(np.mean(shares) - 0.3) < 4 * se


def test_posterior_predictive_draws_of_a_grouped_model_share_a_class_per_group():
    """The batched draws (posterior and prior predictive, PyMC's random) at several
    parameter vectors: every row of a group is in one class in every draw."""
    data = grouped_data(seed=1)
    problem = _problem(bf.FMM("y ~ 1", k=2, group="g"), data)
    codes, first = problem.design.groups.codes, problem.design.groups.first
    rng = np.random.default_rng(2)
    thetas = np.column_stack([rng.normal(0, 0.5, 40), np.full(40, -8.0), np.zeros(40), np.full(40, 8.0), np.zeros(40)])
    draws = predictive_draws(problem, thetas.reshape(2, 20, 5), rng)
    assert draws.shape == (2, 20, len(data), 1)
    positive = draws[..., 0] > 0
    assert np.array_equal(positive, positive[..., first][..., codes])
    # both classes occur (a draw that ignored the classes would not be tested at all)
    assert 0.2 < positive.mean() < 0.8
    random = custom_dist_random(problem)
    batched = random(thetas[:1], rng=np.random.default_rng(3), size=(len(data),))
    assert batched.shape == (len(data),)
    assert np.array_equal(batched > 0, (batched > 0)[first][codes])


def test_one_stream_serves_simulate_draw_responses_and_predictive(stamp_normal3):
    a = bf.simulate(stamp_normal3, rng=7)
    b = draw_responses(stamp_normal3.problem, stamp_normal3.theta, np.random.default_rng(7))
    c = predictive_draws(stamp_normal3.problem, stamp_normal3.theta[None, :], np.random.default_rng(7))
    np.testing.assert_array_equal(a["thickness"].to_numpy(), b[:, 0])
    np.testing.assert_array_equal(b, c[0])


def test_simulate_returns_group_constant_classes():
    data = grouped_data(seed=5)
    res = bf.FMM("y ~ x", k=2, group="g").fit(data)
    codes = res.problem.design.groups.codes
    first = res.problem.design.groups.first
    for seed in range(5):
        _, classes = bf.simulate(res, rng=seed, return_class=True)
        cls = classes.to_numpy()
        np.testing.assert_array_equal(cls, cls[first][codes])


def test_family_without_sampler_draws_by_inverting_its_cdf(stamp):
    """The simulator's fallback: a gaussian family stripped of ``sample`` still draws, from
    the same law (class shares and means within 4 standard errors)."""
    import dataclasses

    problem = _problem(bf.FMM("thickness ~ 1", k=2), stamp)
    comp = problem.design.classes[0][0]
    bare = dataclasses.replace(comp.family, sample=None)
    classes = tuple(tuple(dataclasses.replace(c, family=bare) for c in comps) for comps in problem.design.classes)
    problem = MixtureProblem.build(dataclasses.replace(problem.design, classes=classes), problem.layout)
    theta = np.array([np.log(0.25 / 0.75), 0.07, np.log(1e-6), 0.10, np.log(4e-6)])
    rng = np.random.default_rng(8)
    y, classes = zip(*(simulate_responses(problem, theta, rng) for _ in range(20)))
    y, classes = np.concatenate(y)[:, 0], np.concatenate(classes)
    assert abs(np.mean(classes == 1) - 0.25) < 4 * np.sqrt(0.25 * 0.75 / y.size)
    assert abs(y[classes == 0].mean() - 0.07) < 4 * 1e-3 / np.sqrt((classes == 0).sum())
    assert abs(y[classes == 1].std() - 2e-3) < 4 * 2e-3 / np.sqrt(2 * (classes == 1).sum())


def test_two_components_on_one_response_cannot_simulate(stamp):
    problem = _problem(bf.FMM([bf.Component("thickness ~ 1"), bf.Component("thickness ~ 1", "lognormal")], k=2), stamp)
    with pytest.raises(SpecificationError, match="two components for response 'thickness'"):
        simulate_responses(problem, np.zeros(problem.layout.size), np.random.default_rng(0))
