"""NUTS on stamp: chains agree with each other and with the ML fit; the results API.

Oracles: the ML fit of ``fmm 3: regress thickness`` (Stata's estimates, checked in
tests/test_stata_stamp.py), relabelled to the ordering the sampler uses; PyMC's own
pointwise log likelihood (``pm.compute_log_likelihood``) for the ``log_likelihood`` group.
With 485 rows and weakly informative priors the posterior mean should sit within a few
posterior standard deviations of the ML estimate: within 3 sd in the quick test (2 chains
x 300 draws), within 2 sd in the slow one (4 x 1000 after 1000 tuning, 10 seeds).
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm.bayes.identify import relabel_to_order
from bayesfmm.likelihood import evaluate, loglike

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pymc.*")


def ml_in_posterior_labels(post, ml) -> pd.Series:
    """The ML estimates with their classes relabelled to the sampler's ordering."""
    built = post.built
    theta = relabel_to_order(built.problem, built.order_group, built.order, ml.theta)
    return built.problem.layout.series(built.problem.layout.to_report(theta))


@pytest.fixture(scope="module")
def quick(stamp):
    return bf.FMM("thickness ~ 1", k=3).sample(
        stamp, draws=300, tune=300, chains=2, random_seed=20, progressbar=False
    )


def test_quick_chains_agree_and_match_ml(quick, stamp_normal3):
    diag = quick.diagnostics()
    assert diag.table["r_hat"].max() < 1.05, diag
    ml = ml_in_posterior_labels(quick, stamp_normal3)
    z = (quick.params - ml) / quick.bse
    assert np.all(np.abs(z) < 3), z
    assert quick.idata.posterior.sizes["chain"] == 2 and quick.idata.posterior.sizes["draw"] == 300
    # init="ml" also tried 10 random starts; none beats Stata's optimum, so the default fit is used
    assert quick.ml.starts.method == "default" and quick.ml.llf == pytest.approx(stamp_normal3.llf, abs=1e-9)
    assert quick.timing["ml_s"] > 0


def test_ordering_holds_in_every_draw(quick):
    mu = quick.idata.posterior["thickness_Intercept"].transpose("chain", "draw", "class").to_numpy()
    assert np.all(np.diff(mu, axis=-1) > 0)
    for start in quick.starts:  # the jittered ML starts satisfied it too
        assert np.all(np.diff(start[quick.built.order_group.positions]) > 0)


def test_idata_groups_and_pointwise_log_likelihood(quick, stamp):
    import pymc as pm

    assert {"posterior", "log_likelihood", "sample_stats", "observed_data"} <= set(quick.idata.children)
    np.testing.assert_array_equal(quick.idata.observed_data["thickness"].to_numpy(), stamp["thickness"].to_numpy())
    subset = quick.idata.isel(draw=slice(0, 3))
    ours = subset.log_likelihood["thickness"].to_numpy()
    pymc_ll = pm.compute_log_likelihood(subset, model=quick.model, extend_inferencedata=False, progressbar=False)
    np.testing.assert_allclose(ours, pymc_ll["thickness"].to_numpy(), rtol=1e-10, atol=1e-10)


def test_shared_results_api(quick, stamp_normal3):
    assert (quick.nobs, quick.k, quick.df_model) == (485, 3, 8)
    assert quick.params.index.equals(stamp_normal3.params.index)
    draws = quick.theta_draws.reshape(-1, 8)
    report = np.column_stack([draws[:, i] if i not in (3, 5, 7) else np.exp(draws[:, i]) for i in range(8)])
    np.testing.assert_allclose(quick.params.to_numpy(), report.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(quick.bse.to_numpy(), report.std(axis=0, ddof=1), rtol=1e-12)
    ci = quick.conf_int(0.1)
    np.testing.assert_allclose(ci["lower"], np.quantile(report, 0.05, axis=0), rtol=1e-12)
    assert np.all(ci["lower"] < quick.params) and np.all(quick.params < ci["upper"])
    np.testing.assert_allclose(np.diag(quick.cov_params()), quick.bse.to_numpy() ** 2, rtol=1e-10)
    assert quick.llf == pytest.approx(loglike(quick.problem, draws.mean(axis=0)), abs=1e-9)
    assert quick.aic == pytest.approx(-2 * quick.llf + 16)
    assert quick.bic == pytest.approx(-2 * quick.llf + np.log(485) * 8)
    assert quick.llf == pytest.approx(stamp_normal3.llf, abs=5)  # near the maximum
    assert quick.converged == quick.diagnostics().passed


def test_lcprob_lcmean_and_predict(quick, stamp):
    lcprob = quick.lcprob()
    assert list(lcprob.columns) == ["margin", "se", "lower", "upper"]
    assert lcprob["margin"].sum() == pytest.approx(1.0, abs=1e-12)
    lcmean = quick.lcmean()
    intercepts = quick.params.xs(("thickness", "Intercept"), level=("equation", "term"))
    np.testing.assert_allclose(lcmean["margin"].to_numpy(), intercepts.to_numpy(), rtol=1e-12)

    post = quick.predict(kind="classposteriorpr", max_draws=40)
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-12)
    flat = quick.theta_draws.reshape(-1, 8)
    picks = np.linspace(0, flat.shape[0] - 1, 40).round().astype(int)
    manual = np.mean([evaluate(quick.problem, flat[i]).resp for i in picks], axis=0)
    np.testing.assert_allclose(post.to_numpy(), manual, rtol=1e-12)
    band = quick.predict(kind="classposteriorpr", alpha=0.1, max_draws=40)
    assert set(band.columns.get_level_values(0)) == {"mean", "lower", "upper"}
    # the band is the 5% and 95% quantiles over the same draws (the mean may lie below the
    # 5% quantile when a few draws are far off, so the band is checked against the draws)
    per_draw = np.array([evaluate(quick.problem, flat[i]).resp for i in picks])
    np.testing.assert_allclose(band["mean"].to_numpy(), manual, rtol=1e-12)
    np.testing.assert_allclose(band["lower"].to_numpy(), np.quantile(per_draw, 0.05, axis=0), rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(band["upper"].to_numpy(), np.quantile(per_draw, 0.95, axis=0), rtol=1e-9, atol=1e-300)
    new = quick.predict(data=stamp.head(5), kind="classposteriorpr", max_draws=40)
    np.testing.assert_allclose(new.to_numpy(), post.head(5).to_numpy(), rtol=1e-12)
    mixed = quick.predict(kind="density", marginal=True, alpha=0.05, max_draws=40)
    assert list(mixed.columns) == ["mean", "lower", "upper"] and len(mixed) == 485


def test_diagnostics_and_summary(quick):
    diag = quick.diagnostics()
    assert diag.table.index.equals(quick.layout.index)
    assert diag.divergences >= 0 and diag.chains == 2 and diag.draws == 300
    assert diag.verdict.startswith(("OK", "FAILED"))
    assert diag.label_switching is not None and not diag.label_switching.switching
    text = str(quick.summary())
    assert "Bayesian finite mixture model" in text and "R-hat" in text and "(base outcome)" in text
    assert "thickness_Intercept increasing" in text
    # auxiliary parameters sit below the rule, as in the ML table: "var(e.thic~)" follows a separator
    lines = text.splitlines()
    aux = [i for i, line in enumerate(lines) if line.startswith("var(e.")]
    assert len(aux) == 3 and all(lines[i - 1].startswith("-------------+") for i in aux)
    assert quick.summary().aux_terms == frozenset(
        t for t, a in zip(quick.layout.index, quick.layout.is_aux()) if a
    )


def test_loo_compare_and_posterior_predictive(quick, stamp):
    loo = quick.loo()
    assert np.isfinite(loo.elpd)
    assert loo.elpd < quick.llf  # out-of-sample fit is below the in-sample likelihood
    table = bf.bayes.compare({"a": quick, "b": quick})
    assert np.allclose(table["elpd_diff"], 0.0)
    group = quick.posterior_predictive(max_draws=40, random_seed=3)
    reps = group["thickness"].to_numpy()
    assert reps.shape == (2, 20, 485)
    # the replicated sample means scatter around the observed mean
    observed = stamp["thickness"].mean()
    means = reps.mean(axis=-1).ravel()
    assert abs(means.mean() - observed) < 3 * means.std() + 1e-4


def test_plots(quick):
    import matplotlib

    matplotlib.use("Agg")
    assert quick.plot_trace(var_names=["thickness_Intercept"]) is not None
    assert quick.plot_rank(var_names=["thickness_Intercept"]) is not None
    assert quick.plot_ppc(max_draws=20, random_seed=1) is not None


def test_bad_sampling_options(stamp):
    model = bf.FMM("thickness ~ 1", k=2)
    with pytest.raises(bf.SpecificationError, match="sampler"):
        model.sample(stamp, sampler="stan")
    with pytest.raises(bf.SpecificationError, match="init"):
        model.sample(stamp, init="zeros")
    with pytest.raises(bf.SpecificationError, match="draws"):
        model.sample(stamp, draws=0)


@pytest.mark.skipif(importlib.util.find_spec("numpyro") is not None, reason="numpyro is installed")
def test_numpyro_without_jax_says_what_to_install(stamp):
    with pytest.raises(bf.SpecificationError, match="pip install numpyro"):
        bf.FMM("thickness ~ 1", k=2).sample(stamp, sampler="numpyro", draws=10, tune=10, chains=1)


@pytest.mark.slow
def test_pymc_sampler_from_ml_starts(stamp, stamp_normal3):
    post = bf.FMM("thickness ~ 1", k=3).sample(
        stamp, draws=300, tune=500, chains=2, random_seed=4, sampler="pymc", progressbar=False, cores=1
    )
    assert post.diagnostics().table["r_hat"].max() < 1.05
    z = (post.params - ml_in_posterior_labels(post, stamp_normal3)) / post.bse
    assert np.all(np.abs(z) < 3), z


@pytest.mark.slow
def test_stamp_ten_seeds(stamp, stamp_normal3):
    """The issue's acceptance run: 4 chains x 1000 draws after 1000 tuning, seeds 1..10:
    R-hat <= 1.01, no divergences, posterior means within 2 posterior sd of ML, every seed."""
    model = bf.FMM("thickness ~ 1", k=3)
    failures = []
    start = time.perf_counter()
    for seed in range(1, 11):
        post = model.sample(stamp, draws=1000, tune=1000, chains=4, random_seed=seed, progressbar=False)
        diag = post.diagnostics()
        z = (post.params - ml_in_posterior_labels(post, stamp_normal3)) / post.bse
        if diag.max_rhat > 1.01 or diag.divergences > 0 or np.abs(z).max() > 2:
            failures.append(f"seed {seed}: {diag.verdict}; max |z| {np.abs(z).max():.2f}")
    elapsed = time.perf_counter() - start
    print(f"10 seeds in {elapsed:.0f} s")
    assert not failures, failures


def test_chain_start_depends_on_the_chain_seed_not_the_call_order(quick, stamp, monkeypatch):
    """nutpie asks each chain's thread for its start with the chain's seed, in whatever
    order the threads run: the start must be a function of that seed (handing starts out
    in call order swapped them between chains now and then, and a seed's draws changed)."""
    import nutpie

    class Stop(Exception):
        pass

    seen = []

    def fake_sample(compiled, **kwargs):
        order = seen.pop()
        seen.append({seed: compiled.initial_point_func(seed) for seed in order})
        raise Stop

    monkeypatch.setattr(nutpie, "sample", fake_sample)
    results = []
    for order in ([11, 22, 33], [33, 11, 22]):
        seen.append(order)
        with pytest.raises(Stop):
            bf.FMM("thickness ~ 1", k=3).sample(stamp, draws=300, tune=300, chains=2, random_seed=20, progressbar=False)
        results.append(seen.pop())
    for seed in (11, 22, 33):
        np.testing.assert_array_equal(results[0][seed], results[1][seed])
    assert not np.array_equal(results[0][11], results[0][22])


def test_same_seed_same_draws_and_compiled_model_reused(quick, stamp):
    """Sampling the same model, data and options again reuses the compiled nutpie model
    (no compile time) and, with the same seed, gives the same draws."""
    again = bf.FMM("thickness ~ 1", k=3).sample(
        stamp, draws=300, tune=300, chains=2, random_seed=20, progressbar=False
    )
    assert again.timing["compile_s"] < 1.0
    np.testing.assert_array_equal(again.theta_draws, quick.theta_draws)
