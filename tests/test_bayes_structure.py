"""The PyMC model under class structure (constraints, groups, weights) is the same model
as the numpy likelihood: its log density equals ``loglike`` plus the log prior of the free
parameters (tied and fixed ones are not random variables), to 1e-8 relative."""

from __future__ import annotations

import numpy as np
import pytest
from test_bayes_model import priors_by_hand, random_points, scipy_log_prior

import bayesfmm as bf
from bayesfmm.bayes.sample import build_model
from bayesfmm.likelihood import evaluate, loglike


def _cases():
    nreg = bf.datasets.load("NregFix")
    rng = np.random.default_rng(4)
    beta = bf.datasets.load("betablocker")
    beta["w"] = beta["Center"].map(dict(zip(range(1, 23), rng.integers(1, 4, size=22)))).astype(float)
    return {
        "nregfix restricted": (
            bf.FMM("y ~ x2 + x1", k=3, lcprob="~ w", equal="x2", nested={"x1": [(2, 3)]},
                   constraints="[1]x1 = 0", lcinvariant="errvar"),
            nreg, "y",
        ),
        "grouped, weighted binomial": (
            bf.FMM("Deaths ~ Treatment", family="binomial", trials="Total", k=3, group="Center",
                   equal="Treatment", weights="w"),
            beta, "Deaths",
        ),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_structured_pymc_logp_equals_numpy_likelihood_plus_free_prior(case):
    spec, data, response = _cases()[case]
    priors = priors_by_hand(data, response)
    priors["errvar"] = {"mu": 0.0, "sigma": 2.0}
    built = build_model(spec, data, priors=priors, order=None)
    layout = built.problem.layout
    free = layout.constraints.free
    logp = built.model.compile_logp(jacobian=False)
    rng = np.random.default_rng(2)
    for raw in random_points(layout.index, priors, rng, 4):
        theta = layout.project(raw)
        ours = float(logp(built.value_point(theta)))
        reference = loglike(built.problem, theta) + scipy_log_prior(layout.index[free], theta[free], priors)
        assert np.isfinite(reference)
        assert abs(ours - reference) <= 1e-8 * max(1.0, abs(reference)), (case, ours, reference)


def test_grouped_pointwise_log_likelihood_sits_on_each_groups_first_row():
    spec, data, _ = _cases()["grouped, weighted binomial"]
    built = build_model(spec, data, order=None)
    import pymc as pm

    theta = built.problem.layout.project(built.pooled + 0.1)
    point = built.value_point(theta)
    rows = pm.compile(built.model.value_vars, built.model.logp(vars=[built.model.observed_RVs[0]], sum=False)[0])(**point)
    groups = built.problem.design.groups
    ev = evaluate(built.problem, theta)
    expected = np.zeros(len(data))
    expected[groups.first] = ev.ll_rows * built.problem.design.unit_weights
    assert np.allclose(rows, expected, rtol=1e-10, atol=1e-10)
    assert rows.sum() == pytest.approx(ev.llf, rel=1e-10)


def test_map_with_flat_priors_equals_ml_under_constraints():
    data = bf.datasets.load("fabricfault")
    model = bf.FMM("Faults ~ log(Length)", family="poisson", k=2, equal="log(Length)", constraints="[1]Intercept = 0")
    ml = model.fit(data, startvalues="randompr", draws=10, seed=1)
    mode = model.map(data, priors="flat", start=ml.theta)
    assert mode.converged
    assert mode.llf == pytest.approx(ml.llf, abs=1e-8)
    assert np.allclose(mode.params, ml.params, rtol=1e-4, atol=1e-10)
    assert np.allclose(mode.bse, ml.bse, rtol=1e-4, atol=1e-10)
