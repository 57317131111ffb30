"""Relabelling (ECR, Stephens, sort, PRA) and label-switching detection on synthetic draws.

The draws are built so that the truth is known: "posterior draws" scatter tightly around
the parameters of a simulated mixture, then each draw's class labels are scrambled by a
known permutation. A method is right when, after relabelling, every draw equals its
unscrambled version up to one global permutation (labels are arbitrary, but must be the
same in all draws).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

import bayesfmm as bf
from bayesfmm.bayes.relabel import (
    apply_permutations,
    detect_label_switching,
    inverse_permutations,
    permute_probs,
    relabel,
)

K = 3


def posterior_like_draws(mu, sd, w, n_draws, seed, n=300, jitter=0.05):
    """Draws near (mu, sd, w), their classification probabilities for simulated data."""
    rng = np.random.default_rng(seed)
    cls = rng.choice(len(mu), size=n, p=w)
    y = rng.normal(np.asarray(mu)[cls], np.asarray(sd)[cls])
    mu_d = np.asarray(mu) + jitter * rng.standard_normal((n_draws, len(mu)))
    logsd_d = np.log(sd) + jitter * rng.standard_normal((n_draws, len(mu)))
    w_d = rng.dirichlet(np.asarray(w) * 2000, size=n_draws)
    logf = norm.logpdf(y[None, :, None], mu_d[:, None, :], np.exp(logsd_d)[:, None, :]) + np.log(w_d)[:, None, :]
    probs = np.exp(logf - logsumexp(logf, axis=2, keepdims=True))
    return {"mu": mu_d, "logsd": logsd_d, "logw": np.log(w_d)}, probs


def scramble(draws, probs, perms):
    """Labels as a sampler with these switches would report them (inverse of relabelling)."""
    inv = inverse_permutations(perms)
    return {k: apply_permutations(v, inv) for k, v in draws.items()}, permute_probs(probs, inv)


def assert_recovered(result, truth, what):
    """Every relabelled draw equals the truth under one and the same global permutation."""
    mu = result.draws["mu"]
    target = truth["mu"]
    matches = [g for g in itertools.permutations(range(K)) if np.allclose(mu, target[:, list(g)])]
    assert len(matches) == 1, f"{what}: relabelled draws do not match the truth under one permutation"
    for name in truth:
        assert np.allclose(result.draws[name], truth[name][:, list(matches[0])]), f"{what}: {name}"


@pytest.fixture(scope="module")
def separated():
    truth, probs = posterior_like_draws([-4.0, 0.0, 4.0], [1.0, 1.0, 1.0], [0.3, 0.3, 0.4], 600, seed=1)
    rng = np.random.default_rng(2)
    all_perms = np.array(list(itertools.permutations(range(K))))
    perms = all_perms[rng.integers(0, len(all_perms), size=600)]  # every draw scrambled at random
    draws, scrambled_probs = scramble(truth, probs, perms)
    return truth, probs, draws, scrambled_probs, perms


@pytest.mark.parametrize("method", ["ecr", "stephens", "sort", "pra"])
def test_each_method_recovers_random_permutations(separated, method):
    truth, _, draws, probs, perms = separated
    assert np.mean(np.any(perms != np.arange(K), axis=1)) > 0.7  # most draws really scrambled
    result = relabel(draws, method, probs=probs, by="mu")
    assert result.converged
    assert_recovered(result, truth, method)
    # the probabilities move with the parameters
    if method in ("ecr", "stephens"):
        g = [int(np.argmin(np.abs(truth["mu"][0] - m))) for m in result.draws["mu"][0]]
        assert np.allclose(result.probs[0], separated[1][0][:, g])


def test_ecr_with_allocations_and_a_fixed_pivot(separated):
    truth, _, draws, probs, _ = separated
    alloc = probs.argmax(axis=2)
    assert_recovered(relabel(draws, "ecr", allocations=alloc), truth, "ecr allocations")
    assert_recovered(relabel(draws, "ecr", allocations=alloc, pivot=5), truth, "ecr pivot draw 5")


def test_ecr_hand_example():
    # pivot (0,0,1,1,2); the draw calls pivot class 0 "1" and pivot class 1 "0":
    # new class 0 is old class 1, so the permutation is (1, 0, 2), with 0 disagreements.
    alloc = np.array([[1, 1, 0, 0, 2]])
    result = relabel({"mu": np.array([[5.0, 1.0, 9.0]])}, "ecr", allocations=alloc, pivot=np.array([0, 0, 1, 1, 2]))
    np.testing.assert_array_equal(result.permutations, [[1, 0, 2]])
    np.testing.assert_array_equal(result.draws["mu"], [[1.0, 5.0, 9.0]])
    assert result.objective == (0.0,)


def test_stephens_objective_never_increases_and_is_kl_of_the_average(separated):
    _, _, draws, probs, _ = separated
    result = relabel(draws, "stephens", probs=probs)
    obj = np.array(result.objective)
    assert np.all(np.diff(obj) <= 1e-9 * np.abs(obj[:-1]))
    # the final criterion is sum_t KL(p_t || q) against the average q of the relabelled p
    p = result.probs
    q = p.mean(axis=0)
    kl = np.sum(p * (np.log(np.maximum(p, 1e-300)) - np.log(q)[None]))
    assert obj[-1] == pytest.approx(kl, rel=1e-10)


def test_equal_means_sort_fails_where_stephens_and_pra_succeed():
    # two classes with the same mean and different spreads: ordering by the mean cannot
    # identify them, the classification probabilities (and the sds) can
    truth, probs = posterior_like_draws([0.0, 0.0, 6.0], [0.5, 3.0, 1.0], [0.4, 0.3, 0.3], 400, seed=3)
    perms = np.tile([1, 0, 2], (400, 1))
    perms[::2] = np.arange(K)  # every other draw has classes 1 and 2 swapped
    draws, scrambled = scramble(truth, probs, perms)
    assert_recovered(relabel(draws, "stephens", probs=scrambled), truth, "stephens")
    assert_recovered(relabel(draws, "ecr", probs=scrambled), truth, "ecr")
    assert_recovered(relabel(draws, "pra"), truth, "pra")
    by_mean = relabel(draws, "sort", by="mu")
    assert not np.allclose(by_mean.draws["logsd"][:, :2].std(axis=0), truth["logsd"][:, :2].std(axis=0), rtol=0.5)


def test_sort_by_element_and_descending():
    beta = np.array([[[1.0, 7.0], [0.0, 3.0]], [[0.0, 2.0], [1.0, 8.0]]])  # draws x k x terms
    out = relabel({"beta": beta}, "sort", by=("beta", 1), descending=True)
    np.testing.assert_array_equal(out.draws["beta"][:, 0, 1], [7.0, 8.0])
    np.testing.assert_array_equal(out.permutations, [[0, 1], [1, 0]])
    assert out.n_relabelled == 1


def test_bad_input_is_explained():
    mu = np.zeros((10, 2))
    with pytest.raises(bf.SpecificationError, match="choose from"):
        relabel(mu, "kmeans")
    with pytest.raises(bf.SpecificationError, match="needs probs"):
        relabel(mu, "stephens")
    with pytest.raises(bf.SpecificationError, match="needs probs"):
        relabel(mu, "ecr")
    with pytest.raises(bf.SpecificationError, match="by="):
        relabel({"a": mu, "b": mu}, "sort")
    with pytest.raises(bf.SpecificationError, match="disagree"):
        relabel({"a": mu, "b": np.zeros((9, 2))}, "pra")
    with pytest.raises(bf.SpecificationError, match="draws x n x k"):
        relabel(mu, "stephens", probs=np.ones((10, 5, 3)) / 3)
    with pytest.raises(bf.SpecificationError, match="integers"):
        relabel(mu, "ecr", allocations=np.full((10, 4), 2))


# -- detection ------------------------------------------------------------------------
CHAINS, PER_CHAIN = 3, 400


@pytest.fixture(scope="module")
def clean():
    truth, probs = posterior_like_draws([-4.0, 0.0, 4.0], [1.0, 1.0, 1.0], [0.3, 0.3, 0.4], CHAINS * PER_CHAIN, seed=4)
    return truth, probs, np.repeat(np.arange(CHAINS), PER_CHAIN)


def test_clean_draws_raise_nothing(clean):
    truth, probs, chain = clean
    for kwargs in ({}, {"probs": probs}, {"allocations": probs.argmax(axis=2)}):
        report = detect_label_switching(truth, chain, **kwargs)
        assert not report.switching, report
        assert report.chains["share_other"].max() == 0.0
        assert report.chains["switches"].sum() == 0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert report.warn() is False
        assert report.message().startswith("No label switching")


def test_across_chain_switching(clean):
    truth, probs, chain = clean
    perms = np.tile(np.arange(K), (len(chain), 1))
    perms[chain == 1] = [1, 0, 2]  # chain 1 labels classes 1 and 2 the other way round
    draws, scrambled = scramble(truth, probs, perms)
    for kwargs in ({}, {"probs": scrambled}):
        report = detect_label_switching(draws, chain, **kwargs)
        assert report.across_chains and not report.within_chains
        assert report.chains.loc[1, "labelling"] != report.chains.loc[0, "labelling"]
        assert report.chains.loc[2, "labelling"] == report.chains.loc[0, "labelling"]
        assert "chain 1 labels the classes differently from chain 0: its classes (2, 1, 3)" in report.message()
        with pytest.warns(bf.IdentificationWarning, match="order="):
            assert report.warn()


def test_within_chain_switching(clean):
    truth, probs, chain = clean
    perms = np.tile(np.arange(K), (len(chain), 1))
    idx = np.flatnonzero(chain == 2)
    perms[idx[250:]] = [2, 0, 1]  # chain 2 switches at its 251st draw
    perms[idx[300:320]] = [1, 0, 2]  # ... visits a third labelling for 20 draws and returns
    draws, scrambled = scramble(truth, probs, perms)
    report = detect_label_switching(draws, chain, probs=scrambled)
    assert report.within_chains and not report.across_chains
    row = report.chains.loc[2]
    assert row["switching"] and row["switches"] == 3
    assert row["labelling"] == report.chains.loc[0, "labelling"]  # its majority agrees with chain 0
    assert row["share_other"] == pytest.approx(150 / 400)  # 130 + 20 draws in other labellings
    assert not report.chains.loc[[0, 1], "switching"].any()
    assert "chain 2 changes labelling within the chain (38% of its draws" in report.message()
    # the pooled relabelling undoes the switches
    assert_recovered(report.relabelling, truth, "detection relabelling")


def test_threshold_tolerates_a_few_stray_draws(clean):
    truth, probs, chain = clean
    perms = np.tile(np.arange(K), (len(chain), 1))
    perms[[10, 500, 900]] = [1, 0, 2]  # three isolated stray draws
    draws, _ = scramble(truth, probs, perms)
    report = detect_label_switching(draws, chain)
    assert not report.switching
    assert report.chains["switches"].tolist() == [2, 2, 2]
    strict = detect_label_switching(draws, chain, threshold=0.0)
    assert strict.within_chains


# -- the DataTree layer on a real model's variables --------------------------------------
@pytest.fixture(scope="module")
def two_class_posterior():
    """A fake posterior of a 2-class gaussian mixture in the builder's variables, chain 1
    switching labels halfway: draws near the ML fit, then relabelled by permute_classes."""
    import pandas as pd
    import xarray as xr

    from bayesfmm.bayes.builder import build, problem_for
    from bayesfmm.bayes.identify import permute_classes

    rng = np.random.default_rng(5)
    n = 150
    z = rng.random(n) < 0.4
    data = pd.DataFrame({"y": rng.normal(np.where(z, 4.0, 0.0), 1.0)})
    model = bf.FMM("y ~ 1", k=2)
    ml = model.fit(data)
    problem, pooled = problem_for(model, data)
    built = build(problem, pooled, order=None)
    chains, draws = 2, 200
    sd = np.sqrt(np.diag(ml.cov_theta))
    truth = ml.theta + sd * rng.standard_normal((chains, draws, ml.theta.size))
    observed = truth.copy()
    for t in range(100, draws):  # chain 1 switches at its 101st draw
        observed[1, t] = permute_classes(problem, truth[1, t], [1, 0])

    def dataset(theta):
        variables = {}
        for g in built.groups:
            variables[g.name] = (("chain", "draw", g.dim), theta[:, :, g.positions])
        coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
        coords.update({g.dim: np.array(g.classes) for g in built.groups})
        return xr.Dataset(variables, coords=coords)

    idata = xr.DataTree.from_dict({"posterior": dataset(observed)})
    return built, idata, truth, dataset


@pytest.mark.parametrize("method", ["stephens", "ecr", "sort", "pra"])
def test_relabel_idata_undoes_the_switch(two_class_posterior, method):
    from bayesfmm.bayes.relabel import relabel_idata

    built, idata, truth, dataset = two_class_posterior
    new, rel = relabel_idata(idata, built, method, return_relabelling=True)
    expected = dataset(truth)
    post = new["posterior"].to_dataset()
    # one global labelling: either the truth's, or the truth's with the classes swapped
    same = np.allclose(post["y_Intercept"].values, expected["y_Intercept"].values)
    from bayesfmm.bayes.identify import permute_classes

    if not same:
        swapped = np.apply_along_axis(lambda t: permute_classes(built.problem, t, [1, 0]), 2, truth)
        expected = dataset(swapped)
    for name in ("y_Intercept", "y_lnvar", "Class_Intercept"):
        np.testing.assert_allclose(post[name].values, expected[name].values, rtol=1e-12, atol=1e-12, err_msg=name)
    assert rel.permutations.shape == (400, 2)
    assert post.attrs["relabelled"] == method
    assert "posterior" in idata.children and idata["posterior"]["y_Intercept"].shape == (2, 200, 2)  # input untouched


def test_detection_on_the_datatree(two_class_posterior):
    from bayesfmm.bayes.relabel import detect_label_switching_idata

    built, idata, truth, dataset = two_class_posterior
    report = detect_label_switching_idata(idata, built)
    assert report.relabelling.method == "stephens"
    assert report.within_chains and not report.across_chains
    assert report.chains.loc[1, "switches"] == 1 and report.chains.loc[1, "share_other"] == pytest.approx(0.5)
    clean = xr_tree(dataset(truth))
    assert not detect_label_switching_idata(clean, built).switching
    assert not detect_label_switching_idata(clean, built, method="pra").switching


def xr_tree(ds):
    import xarray as xr

    return xr.DataTree.from_dict({"posterior": ds})


def test_pra_with_a_fixed_pivot_draw(separated):
    truth, _, draws, _, _ = separated
    result = relabel(draws, "pra", pivot=7)  # draw 7 is the first reference, then refreshed
    assert_recovered(result, truth, "pra pivot 7")
    # the pivot draw itself keeps its labels
    np.testing.assert_array_equal(result.permutations[7], np.arange(K))
