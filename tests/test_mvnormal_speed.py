"""The fast exact paths of mvnormal fits (issue 18's benchmark): the family's closed-form
weighted Hessian (``Family.weighted_hessian``) against finite differences and against the
generic per-pair assembly, the engine's Hessian with it against finite differences of the
exact score, and the batched k-means start against one-seeding-at-a-time Lloyd iterations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm.design import build_design
from bayesfmm.families.mvnormal import mvnormal_family
from bayesfmm.likelihood import MixtureProblem, complete_data_score_hessian, score_hessian
from bayesfmm.ml import start_mv
from bayesfmm.ops import NUMPY_OPS
from bayesfmm.params import build_layout


def _component(covariance, shared, n=60, seed=4):
    rng = np.random.default_rng(seed)
    family = mvnormal_family(("a", "b", "c"), covariance)
    x = rng.normal(size=(n, 2))
    X = np.c_[np.ones(n), x]
    means = [X, X, X] if shared else [X, np.ones((n, 1)), X[:, :2]]
    designs = means + [np.ones((n, 1))] * (family.n_slots - 3)
    coefs = [0.5 * rng.normal(size=D.shape[1]) for D in designs]
    y = 1.5 * rng.normal(size=(n, 3))
    return family, y, designs, coefs, rng.uniform(0.1, 2.0, size=n)


def _weighted_logf(family, y, designs, coefs, w):
    etas = [D @ c if D.shape[1] > 1 or i < 3 else float(c[0]) for i, (D, c) in enumerate(zip(designs, coefs))]
    return float(w @ family.logpdf(y, etas, NUMPY_OPS, None)), etas


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
@pytest.mark.parametrize("shared", [True, False])
def test_weighted_hessian_matches_finite_differences_and_pairwise_sum(covariance, shared):
    # exact: the second derivatives of sum_i w_i log f(y_i) in the coefficients; central
    # differences of the exact coefficient score (first derivatives X_s' (w d_s)) agree to 1e-6
    family, y, designs, coefs, w = _component(covariance, shared)
    edges = np.cumsum([0] + [c.size for c in coefs])
    flat = np.concatenate(coefs)

    def score(v):
        parts = [v[edges[s] : edges[s + 1]] for s in range(len(coefs))]
        _, etas = _weighted_logf(family, y, designs, parts, w)
        d = family.derivatives(y, etas, None)[0]
        return np.concatenate([D.T @ (w * d[s]) for s, D in enumerate(designs)])

    _, etas = _weighted_logf(family, y, designs, coefs, w)
    H = family.weighted_hessian(y, etas, designs, w, None)
    step = 1e-5
    numeric = np.column_stack([(score(flat + step * u) - score(flat - step * u)) / (2 * step) for u in np.eye(flat.size)])
    np.testing.assert_allclose(H, numeric, rtol=1e-6, atol=1e-6 * np.abs(H).max())
    pairwise = dataclasses.replace(family, weighted_hessian=None).curvature(y, etas, designs, w, None)
    np.testing.assert_allclose(H, pairwise, rtol=1e-12, atol=1e-12 * np.abs(H).max())
    np.testing.assert_array_equal(H, H.T)


def _problem(lcinvariant="none", covariance="full", n=400):
    rng = np.random.default_rng(9)
    z = rng.integers(0, 2, size=n)
    y = rng.normal(size=(n, 3)) + np.c_[3.0 * z, -2.0 * z, z]
    data = pd.DataFrame(y, columns=["a", "b", "c"]).assign(x=rng.normal(size=n))
    data["a"] += data["x"]
    model = bf.FMM("a + b + c ~ x", family="mvnormal", k=2, covariance=covariance, lcinvariant=lcinvariant)
    res = model.fit(data)
    design = build_design(model, data)
    return MixtureProblem.build(design, build_layout(design)), res.theta


@pytest.mark.parametrize("covariance", ["full", "spherical"])
def test_engine_hessian_with_family_blocks_matches_score_differences(covariance):
    # the observed-data Hessian assembled with the family's blocks equals central differences
    # of the exact observed-data score, away from the maximum (the score is not 0 there)
    problem, theta = _problem(covariance=covariance)
    theta = theta + 0.01 * np.random.default_rng(1).normal(size=theta.size)
    _, g, H = score_hessian(problem, theta)
    step = 1e-6
    numeric = np.column_stack(
        [(score_hessian(problem, theta + step * u)[1] - score_hessian(problem, theta - step * u)[1]) / (2 * step)
         for u in np.eye(theta.size)]
    )
    np.testing.assert_allclose(H, numeric, rtol=1e-5, atol=1e-5 * np.abs(H).max())


def test_complete_data_hessian_with_family_blocks_matches_score_differences():
    # EM's Q (tied covariances use it in the constrained M-step): Hessian against its score
    problem, theta = _problem(lcinvariant="errvar")
    resp = np.random.default_rng(2).dirichlet([1.0, 1.0], size=problem.n)
    _, g, H = complete_data_score_hessian(problem, theta, resp)
    step = 1e-6
    numeric = np.column_stack(
        [(complete_data_score_hessian(problem, theta + step * u, resp)[1]
          - complete_data_score_hessian(problem, theta - step * u, resp)[1]) / (2 * step)
         for u in np.eye(theta.size)]
    )
    np.testing.assert_allclose(H, numeric, rtol=1e-5, atol=1e-5 * np.abs(H).max())


def _lloyd_one(x, centres, iterations):
    """Lloyd iterations from one seeding, as start_mv ran them before batching (reference)."""
    k = centres.shape[0]
    sq = np.sum(x * x, axis=1)
    labels = np.zeros(x.shape[0], dtype=int)
    for it in range(iterations):
        dist = sq[:, None] - 2.0 * x @ centres.T + np.sum(centres * centres, axis=1)[None, :]
        new = np.argmin(dist, axis=1)
        if it > 0 and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = labels == j
            if members.any():
                centres[j] = x[members].mean(axis=0)
    return labels, float(np.sum((x - centres[labels]) ** 2))


@pytest.mark.parametrize("k", [2, 3, 5])
def test_batched_lloyd_equals_one_seeding_at_a_time(k):
    rng = np.random.default_rng(k)
    x = np.r_[rng.normal(size=(300, 3)), rng.normal(size=(200, 3)) + 2.5, np.round(rng.normal(size=(100, 3)), 1)]
    seeds = [start_mv._seed_centres(x, k, rng) for _ in range(6)]
    batched = start_mv._lloyd(x, [s.copy() for s in seeds], 100)
    for (labels, inertia), seed in zip(batched, seeds):
        ref_labels, ref_inertia = _lloyd_one(x, seed.copy(), 100)
        np.testing.assert_array_equal(labels, ref_labels)
        assert inertia == ref_inertia
