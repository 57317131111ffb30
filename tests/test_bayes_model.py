"""The PyMC model: its log density equals the numpy likelihood plus the log prior; priors,
ordering transforms and MAP.

Oracles: ``bayesfmm.likelihood.loglike`` (the numpy core that reproduces Stata's stamp
fit, tests/test_stata_stamp.py) and log priors computed here with ``scipy.stats`` from
the prior values this file sets, not from the package's prior table. Tolerance for the log
density: 1e-8 relative (the issue's "to 1e-8"); for MAP = ML: 1e-4 relative in every
parameter on Stata's reporting scale.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import simulate_regression_mixture
from scipy import optimize, stats

import bayesfmm as bf
from bayesfmm.bayes import Flat, Normal, StudentT
from bayesfmm.bayes.builder import problem_for
from bayesfmm.bayes.identify import ordered_forward, permute_classes, relabel_to_order
from bayesfmm.bayes.sample import build_model
from bayesfmm.likelihood import evaluate, loglike


def regression_data(n: int = 240, seed: int = 3) -> pd.DataFrame:
    data, truth = simulate_regression_mixture(n, seed)
    rng = np.random.default_rng(seed + 100)
    data["z"] = rng.normal(size=n) + (truth["class"] == 2)  # a class-model covariate
    return data


def priors_by_hand(data: pd.DataFrame, response: str) -> dict:
    """Explicit priors by parameter class, in units of the response."""
    y = data[response].to_numpy(dtype=float)
    return {
        "class": Normal(0.2, 1.3),
        "cons": {"mu": float(np.mean(y)), "sigma": float(2 * np.std(y))},
        "coef": (0.1, 3.0),
        "errvar": {"mu": float(np.log(np.var(y))), "sigma": 1.5},
    }



def scipy_log_prior(index: pd.MultiIndex, theta: np.ndarray, priors: dict) -> float:
    """The log prior of ``theta`` under ``priors``, classified here from the index names."""
    total = 0.0
    for (_cls, equation, term), value in zip(index, theta, strict=True):
        if equation == "Class":
            p = priors["class"]
            total += stats.norm.logpdf(value, p.mu, p.sigma)
        elif term == "Intercept":
            p = priors["cons"]
            total += stats.norm.logpdf(value, p["mu"], p["sigma"])
        elif term.startswith("var("):
            p = priors["errvar"]
            total += stats.norm.logpdf(value, p["mu"], p["sigma"])
        else:
            mu, sigma = priors["coef"]
            total += stats.norm.logpdf(value, mu, sigma)
    return float(total)


def random_points(index: pd.MultiIndex, priors: dict, rng: np.random.Generator, size: int) -> np.ndarray:
    """Parameter vectors drawn from the priors (a spread of points, not just the optimum)."""
    out = np.empty((size, len(index)))
    for i, (_cls, equation, term) in enumerate(index):
        if equation == "Class":
            mu, sigma = priors["class"].mu, priors["class"].sigma
        elif term == "Intercept":
            mu, sigma = priors["cons"]["mu"], priors["cons"]["sigma"]
        elif term.startswith("var("):
            mu, sigma = priors["errvar"]["mu"], priors["errvar"]["sigma"]
        else:
            mu, sigma = priors["coef"]
        out[:, i] = rng.normal(mu, 0.5 * sigma, size)
    return out


def CASES():
    stamp = bf.datasets.load("stamp")
    reg = regression_data()
    return {
        "stamp gaussian": (bf.FMM("thickness ~ 1", family="gaussian", k=3), stamp, "thickness"),
        "stamp lognormal": (bf.FMM("thickness ~ 1", family="lognormal", k=3), stamp, "thickness"),
        "regression with lcprob": (bf.FMM("y ~ x1 + x2", k=3, lcprob="~ z"), reg, "y"),
        "hybrid": (
            bf.FMM([bf.Component("y ~ x1", "gaussian"), bf.Component("y ~ x1 + x2", "gaussian", lcprob="~ z")]),
            reg,
            "y",
        ),
    }


@pytest.mark.parametrize("case", list(CASES()))
def test_pymc_logp_equals_numpy_likelihood_plus_prior(case):
    spec, data, response = CASES()[case]
    priors = priors_by_hand(data, response)
    built = build_model(spec, data, priors=priors, order=None)
    logp = built.model.compile_logp(jacobian=False)
    index = built.problem.layout.index
    rng = np.random.default_rng(11)
    for theta in random_points(index, priors, rng, 5):
        ours = float(logp(built.value_point(theta)))
        reference = loglike(built.problem, theta) + scipy_log_prior(index, theta, priors)
        assert np.isfinite(reference)
        assert abs(ours - reference) <= 1e-8 * max(1.0, abs(reference)), (case, ours, reference)


def test_pointwise_log_likelihood_from_pymc_equals_numpy_rows():
    stamp = bf.datasets.load("stamp")
    built = build_model(bf.FMM("thickness ~ 1", k=2), stamp, order=None)
    theta = built.pooled + np.array([0.4, -0.01, 0.3, 0.012, -0.2])
    point = built.model.compile_fn(built.model.logp(vars=[built.model[built.observed]], sum=False)[0])
    rows = np.asarray(point(built.value_point(theta)))
    np.testing.assert_allclose(rows, evaluate(built.problem, theta).ll_rows, rtol=1e-10, atol=1e-10)


def test_model_structure_and_coords():
    stamp = bf.datasets.load("stamp")
    model = bf.FMM("thickness ~ 1", k=3).build_pymc(stamp)
    assert {rv.name for rv in model.free_RVs} == {"Class_Intercept", "thickness_Intercept", "thickness_lnvar"}
    assert [rv.name for rv in model.observed_RVs] == ["thickness"]
    assert list(model.coords["class"]) == [1, 2, 3]
    assert list(model.coords["nonbase_class"]) == [2, 3]
    assert len(model.coords["obs"]) == 485
    assert model.named_vars_to_dims["thickness_Intercept"] == ("class",)
    assert model.named_vars_to_dims["thickness"] == ("obs",)


def test_hybrid_variables_get_class_subset_dimensions():
    reg = regression_data()
    spec = bf.FMM([bf.Component("y ~ x1", "gaussian"), bf.Component("y ~ x1 + x2", "gaussian", lcprob="~ z")])
    built = build_model(spec, reg)
    dims = {g.name: g.dim for g in built.groups}
    assert dims == {
        "Class_Intercept": "nonbase_class",
        "Class_z": "nonbase_class",
        "y_Intercept": "class",
        "y_x1": "class",
        "y_lnvar": "class",
        "y_x2": "class_2",
    }
    assert built.order is None  # classes that differ in structure are labelled by it
    assert build_model(spec, reg, order="y_Intercept").order.group == "y_Intercept"


def test_ordering_transform_adds_its_log_jacobian():
    """With order=, the density (no Jacobian) is unchanged on the ordered set; the Jacobian
    of x_j = x_{j-1} + exp(u_j) is sum(u_2..u_k)."""
    stamp = bf.datasets.load("stamp")
    priors = priors_by_hand(stamp, "thickness")
    built = build_model(bf.FMM("thickness ~ 1", k=3), stamp, priors=priors, order="auto")
    assert built.order.group == "thickness_Intercept"
    index = built.problem.layout.index
    theta = random_points(index, priors, np.random.default_rng(5), 1)[0]
    theta = relabel_to_order(built.problem, built.order_group, built.order, theta)
    reference = loglike(built.problem, theta) + scipy_log_prior(index, theta, priors)
    point = built.value_point(theta)
    no_jac = float(built.model.compile_logp(jacobian=False)(point))
    with_jac = float(built.model.compile_logp(jacobian=True)(point))
    assert abs(no_jac - reference) <= 1e-8 * abs(reference)
    u = ordered_forward(theta[built.order_group.positions])
    assert with_jac - no_jac == pytest.approx(u[1:].sum(), abs=1e-9)


@pytest.mark.parametrize("lcbase", [1, 2])
def test_class_probability_ordering_is_anchored_at_the_base(lcbase):
    stamp = bf.datasets.load("stamp")
    priors = priors_by_hand(stamp, "thickness")
    built = build_model(bf.FMM("thickness ~ 1", k=3, lcbase=lcbase), stamp, priors=priors, order="classpr")
    group = built.order_group
    assert built.order.kind == "classpr" and group.name == "Class_Intercept"
    index = built.problem.layout.index
    theta = random_points(index, priors, np.random.default_rng(7), 1)[0]
    theta = relabel_to_order(built.problem, group, built.order, theta)
    full = np.insert(theta[group.positions], lcbase - 1, 0.0)
    assert np.all(np.diff(full) > 0)
    point = built.value_point(theta)
    no_jac = float(built.model.compile_logp(jacobian=False)(point))
    reference = loglike(built.problem, theta) + scipy_log_prior(index, theta, priors)
    assert abs(no_jac - reference) <= 1e-8 * abs(reference)
    # log Jacobian: the log increments away from the anchor
    with_jac = float(built.model.compile_logp(jacobian=True)(point))
    steps = np.diff(full)
    assert with_jac - no_jac == pytest.approx(np.log(steps).sum(), abs=1e-9)


def test_permuting_classes_keeps_the_likelihood():
    reg = regression_data()
    problem, pooled = problem_for(bf.FMM("y ~ x1 + x2", k=3, lcprob="~ z"), reg)
    theta = pooled + np.random.default_rng(2).normal(0, 0.5, pooled.size)
    for perm in ([1, 0, 2], [2, 0, 1]):
        moved = permute_classes(problem, theta, perm)
        assert loglike(problem, moved) == pytest.approx(loglike(problem, theta), abs=1e-8)
        assert not np.allclose(moved, theta)


# -- priors ----------------------------------------------------------------------------------
def spread_by_hand(values) -> float:
    """docs/bayes.md's spread(x): min(sd, IQR / 1.349), quartiles as order statistics
    (the 25th percentile's lower and the 75th's upper neighbour in the sorted values)."""
    v = np.sort(np.asarray(values, dtype=float))
    n = v.size
    lower, upper = v[int(np.floor(0.25 * (n - 1)))], v[int(np.ceil(0.75 * (n - 1)))]
    sd = np.sqrt(np.mean((v - v.mean()) ** 2))
    return min(sd, (upper - lower) / 1.349) if upper > lower else sd


def test_default_priors_follow_the_documented_table():
    """docs/bayes.md: cons Normal(pooled, 2.5 sd(y)), coef Normal(0, 2.5 sd(y)/spread(x)),
    errvar Normal(pooled log variance, 2), class intercept Normal(0, 1.5), class covariate
    Normal(0, 2.5/spread(z)); the pooled fit is OLS here (statsmodels-free: numpy lstsq).
    On these normal covariates spread(x) is within 10% of sd(x)."""
    reg = regression_data()
    built = build_model(bf.FMM("y ~ x1 + x2", k=3, lcprob="~ z"), reg)
    table = built.priors.frame()
    y = reg["y"].to_numpy()
    X = np.column_stack([np.ones(len(y)), reg["x1"], reg["x2"]])
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    resid_var = np.mean((y - X @ beta) ** 2)
    for cls in (1, 2, 3):
        rows = table.xs((cls, "y"), level=("class", "equation"))
        assert rows.loc["Intercept", "mu"] == pytest.approx(beta[0], rel=1e-8)
        assert rows.loc["Intercept", "sigma"] == pytest.approx(2.5 * np.std(y), rel=1e-8)
        for term in ("x1", "x2"):
            assert rows.loc[term, "mu"] == 0.0
            assert rows.loc[term, "sigma"] == pytest.approx(2.5 * np.std(y) / spread_by_hand(reg[term]), rel=1e-8)
            assert spread_by_hand(reg[term]) == pytest.approx(np.std(reg[term]), rel=0.1)
        # issue 15: centred on a within-class scale, the pooled log residual variance plus
        # the mean log variance of the sorted residuals in k equal-count bins less their log variance
        resid = np.sort(y - X @ beta)
        shift = np.mean([np.log(np.var(part)) for part in np.array_split(resid, 3)]) - np.log(np.var(resid))
        assert rows.loc["var(e)", "mu"] == pytest.approx(np.log(resid_var) + shift, rel=1e-8)
        assert rows.loc["var(e)", "sigma"] == 2.0
    for cls in (2, 3):
        rows = table.xs((cls, "Class"), level=("class", "equation"))
        assert rows.loc["Intercept", "sigma"] == 1.5
        assert rows.loc["z", "sigma"] == pytest.approx(2.5 / spread_by_hand(reg["z"]), rel=1e-8)


def test_prior_overrides_by_specificity():
    stamp = bf.datasets.load("stamp")
    built = build_model(
        bf.FMM("thickness ~ 1", k=3),
        stamp,
        priors={
            "errvar": {"sigma": 1.0},
            2: Normal(0.08, 0.01),
            ("thickness", "Intercept"): StudentT(4, 0.09, 0.02),
            (2, "thickness", "Intercept"): StudentT(5, 0.07, 0.03),
        },
    )
    frame = built.priors.frame()
    # issue 15: a class-number key reaches that class's intercepts and coefficients only
    assert (frame.xs("var(e)", level="term")["sigma"] == [1.0, 1.0, 1.0]).all()
    intercepts = frame.xs("Intercept", level="term").xs("thickness", level="equation")
    assert intercepts["dist"].tolist() == ["StudentT"] * 3
    assert intercepts["nu"].tolist() == [4, 5, 4]
    assert frame.loc[(2, "Class", "Intercept"), "dist"] == "Normal"  # class 2's component keys only


def test_student_t_and_flat_priors_in_the_density():
    stamp = bf.datasets.load("stamp")
    priors = {"cons": StudentT(3, 0.08, 0.02), "errvar": Flat(), "class": Normal(0, 1)}
    built = build_model(bf.FMM("thickness ~ 1", k=2), stamp, priors=priors, order=None)
    theta = built.pooled + np.array([0.3, -0.008, 0.1, 0.015, -0.3])
    expected = (
        loglike(built.problem, theta)
        + stats.norm.logpdf(theta[0], 0, 1)
        + stats.t.logpdf(theta[[1, 3]], 3, 0.08, 0.02).sum()
    )
    assert float(built.model.compile_logp(jacobian=False)(built.value_point(theta))) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    "priors, message",
    [
        ({"slope": Normal()}, "not a parameter class"),
        ({("thickness", "x9"): Normal()}, "names no parameter"),
        ({"cons": "wide"}, "must be"),
        ({"cons": {"scale": 1}}, "unknown field"),
        ({"cons": Normal(), 2: Flat()}, "mix"),
        ("weak", "flat"),
        ({7: Normal()}, "classes 1 to 3"),
    ],
)
def test_bad_priors_are_explained(priors, message):
    stamp = bf.datasets.load("stamp")
    with pytest.raises(bf.SpecificationError, match=message):
        build_model(bf.FMM("thickness ~ 1", k=3), stamp, priors=priors, order=None)


@pytest.mark.parametrize(
    "order, message",
    [("sigma", "not a parameter"), (("thickness", "x"), "names no"), ("Class_Intercept", "classpr"), (3, "not understood")],
)
def test_bad_orderings_are_explained(order, message):
    stamp = bf.datasets.load("stamp")
    with pytest.raises(bf.SpecificationError, match=message):
        build_model(bf.FMM("thickness ~ 1", k=3), stamp, order=order)


def test_importing_the_bayes_package_does_not_import_pymc():
    code = (
        "import sys, bayesfmm, bayesfmm.bayes\n"
        "print(any(m.startswith(('pytensor', 'pymc')) for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- MAP ---------------------------------------------------------------------------------------
def test_map_with_flat_priors_equals_ml_on_stamp(stamp, stamp_normal3):
    """From a start 2 standard errors away in every parameter, MAP with flat priors returns
    to the ML optimum (Stata's estimates, tests/test_stata_stamp.py) to 1e-4 relative."""
    ml = stamp_normal3
    se = np.sqrt(np.diag(ml.cov_theta))
    start = ml.theta + 2 * se * np.where(np.arange(se.size) % 2, 1.0, -1.0)
    mode = bf.FMM("thickness ~ 1", k=3).map(stamp, priors="flat", start=start)
    assert mode.converged
    assert mode.llf == pytest.approx(ml.llf, abs=1e-6)
    np.testing.assert_allclose(mode.params.to_numpy(), ml.params.to_numpy(), rtol=1e-4, atol=0)
    np.testing.assert_allclose(mode.bse.to_numpy(), ml.bse.to_numpy(), rtol=1e-3)


def test_map_under_default_priors_is_the_mode_of_likelihood_times_prior(stamp, stamp_normal3):
    """The oracle optimises numpy loglike + scipy log prior (values from the prior table)."""
    mode = bf.FMM("thickness ~ 1", k=3).map(stamp)
    table = mode.priors.frame()
    mu, sigma = table["mu"].to_numpy(), table["sigma"].to_numpy()
    problem = mode.problem

    joint = list(mode.priors.correlated[0])  # issue 15: the exchangeable class-model default
    cov = 0.5 * (np.eye(len(joint)) + 1) * np.outer(sigma[joint], sigma[joint])
    rest = [i for i in range(mu.size) if i not in joint]

    def negative(theta):
        prior = stats.norm.logpdf(theta[rest], mu[rest], sigma[rest]).sum()
        prior += stats.multivariate_normal(mu[joint], cov).logpdf(theta[joint])
        return -(loglike(problem, theta) + prior)

    oracle = optimize.minimize(negative, stamp_normal3.theta, method="Nelder-Mead",
                               options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000, "maxfev": 40000})
    assert -oracle.fun == pytest.approx(mode.logp, abs=1e-6)
    assert mode.logp >= -oracle.fun - 1e-9
    se = np.sqrt(np.diag(mode.cov_theta))
    assert np.all(np.abs(mode.theta - oracle.x) < 1e-2 * se)


# -- predictive draws ----------------------------------------------------------------------------
def test_inverse_cdf_draws_are_the_family_quantiles():
    """Without a ``sample`` hook, draws invert the family's CDF: they equal scipy's
    quantiles at the same uniforms (continuous to 1e-9; counts exactly)."""
    import dataclasses

    from bayesfmm.bayes.predictive import _is_discrete, inverse_cdf_draw

    rng = np.random.default_rng(0)
    u = rng.random(400)
    gaussian = dataclasses.replace(bf.get_family("gaussian"), sample=None)
    y_obs = rng.normal(0.3, 2.0, 50)
    draws = inverse_cdf_draw(gaussian, [np.full(400, 0.3), np.full(400, np.log(4.0))], {}, u, y_obs, False)
    np.testing.assert_allclose(draws, stats.norm.ppf(u, 0.3, 2.0), atol=1e-9)
    assert not _is_discrete(gaussian, y_obs, {})

    poisson = dataclasses.replace(bf.get_family("poisson"), sample=None)
    counts = rng.poisson(6.0, 50).astype(float)
    assert _is_discrete(poisson, counts, {})
    mu = rng.uniform(0.5, 30, 400)
    draws = inverse_cdf_draw(poisson, [np.log(mu)], {}, u, counts, True)
    np.testing.assert_array_equal(draws, stats.poisson.ppf(u, mu))


def test_posterior_predictive_draws_follow_the_mixture():
    """draw_responses at a fixed theta: class shares and class means of the draws match
    the mixture (binomial and normal standard errors, 4 se)."""
    from bayesfmm.bayes.predictive import draw_responses

    stamp = bf.datasets.load("stamp")
    problem, _ = problem_for(bf.FMM("thickness ~ 1", k=2), stamp)
    theta = np.array([np.log(0.25 / 0.75), 0.07, np.log(1e-6), 0.10, np.log(4e-6)])
    rng = np.random.default_rng(1)
    draws = np.concatenate([draw_responses(problem, theta, rng)[:, 0] for _ in range(40)])
    low = draws < 0.085
    assert abs(low.mean() - 0.75) < 4 * np.sqrt(0.75 * 0.25 / draws.size)
    assert abs(draws[low].mean() - 0.07) < 4 * 1e-3 / np.sqrt(low.sum())
    assert abs(draws[~low].mean() - 0.10) < 4 * 2e-3 / np.sqrt((~low).sum())
