"""Issue 15: sampling to a target, the verdict that tells noise from modes from label
switching, and chain starts from the ML optima (also for a user's extended PyMC model).

Quick tests use synthetic diagnostics and one stamp run; the acceptance runs are ``slow``.
Measured on the 2 shared cores of the development machine (2026-12-03, other jobs
running): patent with target defaults, seeds 1..10, took 323 s: R-hat 1.0040-1.0097, bulk
ESS 481-1066, no divergences, 1300-4400 draws per chain in 3-4 runs (seed 4: one
divergence in a continuation, which was redone with the full tuning). The extended-model
run gave R-hat 1.0018-1.0077 over its 5 seeds. These acceptance runs are marked
``acceptance``: `make test` leaves them out (with the rest of the suite they would take CI
past its 30 minutes); run them with `make test-acceptance`.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm.bayes.diagnostics import Diagnostics
from bayesfmm.bayes.relabel_core import LabelSwitchingReport, Relabelling
from bayesfmm.bayes.target import concat_draws, resolve_target

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pymc.*")


def _diag(rhat: float, ess: float, divergences: int = 0, switching: bool | None = None, chains: int = 4,
          draws: int = 1000) -> Diagnostics:
    index = pd.MultiIndex.from_tuples([(1, "y", "Intercept"), (2, "y", "Intercept")], names=["class", "equation", "term"])
    table = pd.DataFrame({"r_hat": [1.001, rhat], "ess_bulk": [5000, ess], "ess_tail": [5000, ess]}, index=index)
    report = None
    if switching is not None:
        rel = Relabelling("stephens", np.zeros((1, 2), dtype=int), {})
        report = LabelSwitchingReport(pd.DataFrame(), switching, False, rel, 0.05)
    return Diagnostics(table, divergences, chains, draws, np.array([0.9]), report)


# -- the verdict ----------------------------------------------------------------------------
def test_verdict_says_draw_more_when_rhat_is_within_its_noise():
    """Patent's numbers at 4 x 1000: R-hat 1.019 with a bulk ESS of 210."""
    diag = _diag(1.019, 210, switching=False)
    assert "draw more" in diag.verdict and "label switching" not in diag.verdict
    assert diag.draws_needed() == 2300  # 1.2 x 1000 x max(400/210, 0.019/0.01), rounded up to 100
    assert "2300 draws per chain" in diag.verdict


def test_verdict_says_label_switching_only_when_the_relabelling_shows_it():
    assert "label switching" in _diag(1.6, 30, switching=True).verdict
    modes = _diag(1.2, 900, switching=False).verdict
    assert "different modes" in modes and "label switching" not in modes.split("(")[1].split(";")[0].replace("not by label switching", "")


def test_verdict_separates_divergences():
    verdict = _diag(1.002, 900, divergences=3, switching=False).verdict
    assert "divergences" in verdict and "draw more" not in verdict and "modes" not in verdict


def test_verdict_names_a_stuck_chain_not_draw_more():
    """Stamp k = 4 at 4 x 1000, seed 1 (issue 15's compare run): one chain never left its
    start (log-likelihood sd 1e-16), ESS 7 and R-hat 1.55 — within R-hat's noise at ESS 7,
    so the verdict said 'draw more: about 119100 draws per chain'. A chain that does not
    move is named instead, and more draws are not advised."""
    from bayesfmm.bayes.diagnostics import moved_share

    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4, 200, 2))
    draws[2] = draws[2, :1]  # chain 3 repeats its first draw
    diag = _diag(1.55, 7, divergences=0, switching=False)
    moved = moved_share(draws)
    np.testing.assert_array_equal(moved, [1, 1, 0, 1])
    stuck = Diagnostics(diag.table, 0, 4, 200, diag.bfmi, diag.label_switching, moved=moved)
    assert stuck.stuck_chains == [3] and not stuck.passed
    assert "stuck chains: chain 3 moved in 0%" in stuck.verdict and "draw more" not in stuck.verdict


def test_resolve_target():
    assert resolve_target(None) is None and resolve_target(True) == 400 and resolve_target(1000) == 1000
    with pytest.raises(bf.SpecificationError, match="target"):
        resolve_target("lots")


def test_concat_draws_appends_along_draw():
    import xarray as xr

    def tree(values):
        ds = xr.Dataset({"a": (("chain", "draw"), values)}, coords={"chain": [0, 1], "draw": np.arange(values.shape[1])})
        return xr.DataTree.from_dict({"posterior": xr.DataTree(dataset=ds), "sample_stats": xr.DataTree(dataset=ds)})

    out = concat_draws(tree(np.zeros((2, 3))), tree(np.ones((2, 2))))
    np.testing.assert_array_equal(out["posterior"]["a"].to_numpy(), [[0, 0, 0, 1, 1]] * 2)
    np.testing.assert_array_equal(out["posterior"]["draw"].to_numpy(), np.arange(5))


# -- stamp with target defaults ---------------------------------------------------------------
@pytest.fixture(scope="module")
def stamp():
    return bf.datasets.load("stamp")


@pytest.fixture(scope="module")
def stamp_target(stamp):
    start = time.perf_counter()
    res = bf.FMM("thickness ~ 1", k=3).sample(stamp, random_seed=1, progressbar=False, target=400)
    print(f"\nstamp, target=400: {time.perf_counter() - start:.1f} s ({res.timing}); {res.account}")
    return res


def test_stamp_target_meets_it_within_todays_draws(stamp_target):
    diag = stamp_target.diagnostics()
    assert diag.max_rhat <= 1.01 and diag.min_ess_bulk >= 400 and diag.min_ess_tail >= 400
    assert diag.divergences == 0
    assert stamp_target.draws <= 1000 and stamp_target.chains == 4
    assert stamp_target.history[-1]["draws"] == stamp_target.draws
    assert "target met" in stamp_target.account and stamp_target.account in str(stamp_target.summary())


def test_chain_starts_come_from_the_weighted_optima(stamp):
    from types import SimpleNamespace

    from bayesfmm.bayes.starts import distinct_optima

    fits = [SimpleNamespace(llf=-10.0, converged=True), SimpleNamespace(llf=-10.0 + 1e-5, converged=True),
            SimpleNamespace(llf=-15.0, converged=True), SimpleNamespace(llf=-9.0, converged=False)]
    optima = distinct_optima(fits)
    assert [f.llf for f, _ in optima] == [-10.0, -15.0]  # one per optimum (the first met); unconverged left out
    assert optima[1][1] == pytest.approx(np.exp(-5) / (1 + np.exp(-5)))


def test_initial_points_are_pymc_initvals(stamp):
    model = bf.FMM("thickness ~ 1", k=3)
    points = model.initial_points(stamp, chains=3, seed=4)
    m = model.build_pymc(stamp)
    assert len(points) == 3 and set(points[0]) == {"Class_Intercept", "thickness_Intercept", "thickness_lnvar"}
    assert all(np.all(np.diff(p["thickness_Intercept"]) > 0) for p in points)  # the ordering holds
    logp = m.compile_logp()
    for p in points:  # finite log density at each start, and near the ML optimum
        value = logp(m.initial_point() | {m.rvs_to_values[m[name]].name: v for name, v in _unconstrained(m, p).items()})
        assert np.isfinite(value)
    np.testing.assert_allclose(np.mean([p["thickness_Intercept"] for p in points], axis=0), [0.0712, 0.0786, 0.0989], atol=0.003)
    assert model.initial_points(stamp, chains=3, seed=4)[2]["thickness_lnvar"] == pytest.approx(points[2]["thickness_lnvar"])


def _unconstrained(m, point):
    out = {}
    for name, value in point.items():
        rv = m[name]
        transform = m.rvs_to_transforms.get(rv)
        out[name] = value if transform is None else transform.forward(value).eval()
    return out


# -- acceptance (slow) --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def patent():
    return bf.datasets.load("patent")


PATENT = bf.FMM("Patents ~ lgRD", family="poisson", k=3, lcprob="~ RDS")


@pytest.mark.slow
@pytest.mark.acceptance
def test_patent_fixed_length_verdict_says_draw_more_not_label_switching(patent):
    res = PATENT.sample(patent, draws=1000, tune=1000, chains=4, random_seed=1, progressbar=False,
                        target_accept=0.95, adaptation="diag")
    diag = res.diagnostics()
    print("\n" + diag.verdict)
    assert not diag.passed  # R-hat 1.0105-1.023 or ESS below 400 at 4 x 1000 (docs/bayes.md)
    assert "draw more" in diag.verdict
    assert "label switching:" not in diag.verdict


@pytest.mark.slow
@pytest.mark.acceptance
def test_stamp_without_ordering_from_pymc_starts_says_label_switching(stamp):
    res = bf.FMM("thickness ~ 1", k=3).sample(stamp, random_seed=3, progressbar=False, order=None, init="pymc")
    with pytest.warns(bf.IdentificationWarning):
        verdict = res.diagnostics().verdict
    print("\n" + verdict)
    assert "label switching:" in verdict


@pytest.mark.slow
@pytest.mark.acceptance
def test_pm_sample_on_an_extended_model_from_initial_points(stamp):
    """The issue's extended stamp model: a deterministic and a soft constraint added by the
    user, sampled by pm.sample from initial_points: R-hat <= 1.01 in 5 of 5 seeds."""
    import arviz_stats as azs
    import pymc as pm

    model = bf.FMM("thickness ~ 1", k=3)
    rhats = []
    for seed in range(1, 6):
        m = model.build_pymc(stamp)
        with m:
            sd = pm.Deterministic("thickness_sd", pm.math.exp(0.5 * m["thickness_lnvar"]), dims="class")
            pm.Potential("sd_floor", pm.math.sum(pm.math.log(sd)) * 0.0)
            idata = pm.sample(draws=1000, tune=1000, chains=4, cores=2, random_seed=seed, progressbar=False,
                              initvals=model.initial_points(stamp, chains=4, seed=seed), compute_convergence_checks=False)
        rhat = azs.rhat(idata["posterior"].to_dataset()[["Class_Intercept", "thickness_Intercept", "thickness_lnvar"]])
        rhats.append(max(float(rhat[v].max()) for v in rhat.data_vars))
    print("\nR-hat by seed:", np.round(rhats, 4))
    assert max(rhats) <= 1.01


@pytest.mark.slow
@pytest.mark.acceptance
def test_patent_target_defaults_ten_seeds(patent):
    """R-hat <= 1.01, bulk ESS >= 400, no divergences, every seed; the draws it needed
    are printed (res.account / res.history)."""
    rows = []
    start = time.perf_counter()
    for seed in range(1, 11):
        res = PATENT.sample(patent, random_seed=seed, progressbar=False, target=400)
        diag = res.diagnostics()
        rows.append({"seed": seed, "draws": res.draws, "r_hat": diag.max_rhat, "ess_bulk": diag.min_ess_bulk,
                     "divergences": diag.divergences, "runs": len(res.history)})
    print(f"\npatent, target defaults, 10 seeds in {time.perf_counter() - start:.0f} s")
    print(pd.DataFrame(rows).to_string())
    failures = [r for r in rows if r["r_hat"] > 1.01 or r["ess_bulk"] < 400 or r["divergences"] > 0]
    assert not failures, failures
