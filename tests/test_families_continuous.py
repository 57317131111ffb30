"""The continuous GLM families (gamma, exponential, weibull, loglogistic, beta).

Each log density equals scipy.stats on a grid with edge values (y from 1e-300 to 1e300,
y within 1e-16 of 1 for beta, means e^-30..e^30, shapes e^-10..e^10); the pytensor
evaluation equals numpy; analytic eta-derivatives equal central finite differences.
Source of every reference: scipy.stats, evaluated here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesfmm as bf
from bayesfmm.families.base import finite_difference_derivatives
from bayesfmm.families.beta import INVERSE_LINKS
from bayesfmm.ops import NUMPY_OPS, pytensor_ops

POSITIVE_Y = np.array([1e-300, 1e-12, 1e-3, 0.5, 1.0, 3.0, 1e3, 1e12, 1e300])
UNIT_Y = np.array([1e-300, 1e-12, 1e-3, 0.5, 0.999, 1 - 1e-12, np.nextafter(1.0, 0.0)])
ETAS = np.array([-30.0, -5.0, 0.0, 2.0, 30.0])
LN_SCALES = np.array([-10.0, -3.0, 0.0, 1.0, 5.0])


def _grid(ys, etas, aux):
    y, eta, lns = (a.ravel() for a in np.meshgrid(ys, etas, aux, indexing="ij"))
    return y, eta, lns


def _scipy_positive(name, metric, y, eta, lns):
    """(frozen-free) scipy logpdf, cdf and mean in the family's documented parameterisation,
    and the standardised log distance that scipy must handle without over/underflow."""
    s = np.exp(lns)
    p = 1.0 / s
    if name == "gamma":
        args = dict(a=p, scale=s * np.exp(eta))
        law, z = stats.gamma, np.log(y) - eta
    elif name == "exponential":
        scale = np.exp(eta) if metric == "aft" else np.exp(-eta)
        args, law, z = dict(scale=scale), stats.expon, np.log(y) - np.log(scale)
    elif name == "weibull":
        scale = np.exp(eta) if metric == "aft" else np.exp(-eta * s)
        args, law = dict(c=p, scale=scale), stats.weibull_min
        z = p * (np.log(y) - np.log(scale))
    else:  # loglogistic: Stata streg's AFT form, S = 1 / (1 + (y exp(-eta))^(1/g))
        args, law = dict(c=p, scale=np.exp(eta)), stats.fisk
        z = p * (np.log(y) - eta)
    return law.logpdf(y, **args), law.cdf(y, **args), law.mean(**args), z, args


POSITIVE = [
    ("gamma", None),
    ("exponential", "aft"),
    ("exponential", "ph"),
    ("weibull", "ph"),
    ("weibull", "aft"),
    ("loglogistic", None),
]


def _family(name, metric):
    return bf.get_family(name, **({"metric": metric} if metric else {}))


def _etas(family, eta, lns):
    return (eta, lns) if family.n_slots == 2 else (eta,)


@pytest.mark.parametrize("name,metric", POSITIVE)
def test_positive_logpdf_cdf_mean_equal_scipy(name, metric):
    family = _family(name, metric)
    y, eta, lns = _grid(POSITIVE_Y, ETAS, LN_SCALES if family.n_slots == 2 else np.zeros(1))
    etas = _etas(family, eta, lns)
    with np.errstate(all="ignore"):
        ref_logpdf, ref_cdf, ref_mean, z, args = _scipy_positive(name, metric, y, eta, lns)
        ours = family.logpdf(y, etas, NUMPY_OPS, {})
        cdf = family.cdf(y, etas, NUMPY_OPS, {})
        mean = family.mean(etas, NUMPY_OPS, {})
    # never NaN or +inf; -inf only where the true value is below -1.8e308 (an exponent such
    # as (y / scale)^p past the float range); finite wherever scipy is finite. scipy
    # over/underflows where its own scale or the standardised distance leaves the float
    # range, so the values are compared where scipy is safe.
    assert not np.any(np.isnan(ours) | (ours == np.inf))
    assert np.all(np.isfinite(ours[np.isfinite(ref_logpdf)]))
    params_ok = np.all([np.isfinite(v) & (v > 1e-300) & (v < 1e300) for v in args.values()], axis=0)
    safe = params_ok & np.isfinite(ref_logpdf) & (np.abs(z) < 600)
    assert safe.mean() > 0.5, "the grid must mostly be comparable"
    tol = 1e-10 * np.maximum(1.0, np.abs(ref_logpdf))
    np.testing.assert_array_less(np.abs(ours[safe] - ref_logpdf[safe]), tol[safe] + 1e-300)
    np.testing.assert_allclose(cdf[safe], ref_cdf[safe], rtol=1e-9, atol=1e-14)
    finite_mean = safe & np.isfinite(ref_mean)
    np.testing.assert_allclose(mean[finite_mean], ref_mean[finite_mean], rtol=1e-10)


def test_loglogistic_mean_is_infinite_for_scale_at_least_one():
    family = bf.get_family("loglogistic")
    means = family.mean((np.zeros(3), np.log(np.array([0.5, 1.0, 2.0]))), NUMPY_OPS, {})
    assert np.isfinite(means[0]) and np.all(np.isinf(means[1:]))
    np.testing.assert_allclose(means[0], stats.fisk.mean(c=2.0), rtol=1e-12)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog", "loglog"])
def test_beta_logpdf_cdf_mean_equal_scipy(link):
    family = bf.get_family("beta", link=link)
    y, eta, lnphi = _grid(UNIT_Y, ETAS, np.array([-5.0, -1.0, 0.0, 3.0, 10.0]))
    mu, one_minus, _, _ = INVERSE_LINKS[link](NUMPY_OPS, eta)
    phi = np.exp(lnphi)
    with np.errstate(all="ignore"):
        ours = family.logpdf(y, (eta, lnphi), NUMPY_OPS, {})
        ref = stats.beta.logpdf(y, mu * phi, one_minus * phi)
        cdf = family.cdf(y, (eta, lnphi), NUMPY_OPS, {})
        ref_cdf = stats.beta.cdf(y, mu * phi, one_minus * phi)
    assert np.all(np.isfinite(ours)), "means within 1e-300 of 0 or 1 keep finite densities"
    safe = np.isfinite(ref)
    assert safe.mean() >= 0.8
    np.testing.assert_array_less(np.abs(ours - ref)[safe], 1e-10 * np.maximum(1.0, np.abs(ref[safe])))
    np.testing.assert_allclose(cdf[safe], ref_cdf[safe], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(family.mean((eta, lnphi), NUMPY_OPS, {}), mu, rtol=1e-15)
    # the links themselves: mu and 1 - mu computed separately still add up to 1
    np.testing.assert_allclose(mu + one_minus, 1.0, rtol=1e-15)


def test_beta_links_equal_scipy_distributions():
    eta = np.linspace(-4, 4, 9)
    cases = {
        "logit": stats.logistic.cdf(eta),
        "probit": stats.norm.cdf(eta),
        "cloglog": 1 - np.exp(-np.exp(eta)),
        "loglog": np.exp(-np.exp(-eta)),
    }
    for link, expected in cases.items():
        mu, one_minus, log_mu, log_one_minus = INVERSE_LINKS[link](NUMPY_OPS, eta)
        np.testing.assert_allclose(mu, expected, rtol=1e-13, err_msg=link)
        np.testing.assert_allclose(np.exp(log_mu), mu, rtol=1e-13, err_msg=link)
        np.testing.assert_allclose(np.exp(log_one_minus), one_minus, rtol=1e-13, err_msg=link)


PYTENSOR_CASES = [(name, metric) for name, metric in POSITIVE] + [("beta", "logit"), ("beta", "cloglog")]


@pytest.mark.parametrize("name,option", PYTENSOR_CASES)
def test_pytensor_equals_numpy(name, option):
    """One compiled function per family: log density, cdf and mean together."""
    import pytensor
    import pytensor.tensor as pt

    if name == "beta":
        family = bf.get_family("beta", link=option)
        y_values, aux = UNIT_Y, np.array([-5.0, 0.0, 3.0, 10.0])
    else:
        family = _family(name, option)
        y_values, aux = POSITIVE_Y[1:-1], np.array([-3.0, 0.0, 1.0]) if family.n_slots == 2 else np.zeros(1)
    y, eta, lns = _grid(y_values, ETAS, aux)
    yv, ev, lv = pt.dvector("y"), pt.dvector("eta"), pt.dvector("lns")
    sym = _etas(family, ev, lv)
    ops = pytensor_ops()
    outputs = [family.logpdf(yv, sym, ops, {}), family.cdf(yv, sym, ops, {}), family.mean(sym, ops, {})]
    inputs = [yv, ev, lv] if family.n_slots == 2 else [yv, ev]
    fn = pytensor.function(inputs, outputs, on_unused_input="ignore")
    values = _etas(family, eta, lns)
    got = fn(y, *values)
    with np.errstate(all="ignore"):
        want = [
            family.logpdf(y, values, NUMPY_OPS, {}),
            family.cdf(y, values, NUMPY_OPS, {}),
            family.mean(values, NUMPY_OPS, {}) * np.ones_like(y),
        ]
    np.testing.assert_allclose(got[0], want[0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-11)


def test_pytensor_gradient_of_beta_is_finite_at_extreme_means():
    """The tail branches keep the gradient free of NaN where 1 - mu underflows."""
    import pytensor
    import pytensor.tensor as pt

    family = bf.get_family("beta", link="cloglog")
    yv, ev, lv = pt.dvector("y"), pt.dvector("eta"), pt.dvector("lns")
    logp = family.logpdf(yv, (ev, lv), pytensor_ops(), {}).sum()
    fn = pytensor.function([yv, ev, lv], pt.grad(logp, [ev, lv]))
    eta = np.array([-800.0, -40.0, 0.0, 6.0])
    grads = fn(np.full(4, 0.3), eta, np.zeros(4))
    assert all(np.all(np.isfinite(g)) for g in grads)


def _derivative_cases():
    rng = np.random.default_rng(7)
    n = 40
    positive_y = np.concatenate([rng.gamma(2.0, 1.5, n - 4), [1e-3, 0.2, 5.0, 40.0]])
    etas = rng.normal(0.5, 1.0, n)
    lns = rng.uniform(-1.5, 1.0, n)
    for name, metric in POSITIVE:
        yield f"{name}-{metric}", _family(name, metric), positive_y, (etas, lns)
    unit_y = np.concatenate([rng.beta(2, 3, n - 4), [1e-4, 0.02, 0.98, 1 - 1e-4]])
    for link in ("logit", "probit", "cloglog", "loglog"):
        yield f"beta-{link}", bf.get_family("beta", link=link), unit_y, (rng.normal(0, 1, n), rng.uniform(0, 4, n))


DERIVATIVE_CASES = list(_derivative_cases())


@pytest.mark.parametrize("case", DERIVATIVE_CASES, ids=[c[0] for c in DERIVATIVE_CASES])
def test_analytic_derivatives_equal_finite_differences(case):
    _, family, y, etas = case
    etas = etas[: family.n_slots]
    d, h = family.derivatives(y, etas, {})
    d_fd, h_fd = finite_difference_derivatives(family, y, etas, {}, step=1e-4)
    assert d.shape == (family.n_slots, y.size) and h.shape == (family.n_slots, family.n_slots, y.size)
    scale = np.maximum(1.0, np.abs(d))
    np.testing.assert_allclose(d / scale, d_fd / scale, atol=1e-6)
    hscale = np.maximum(1.0, np.abs(h))
    np.testing.assert_allclose(h / hscale, h_fd / hscale, atol=1e-4)
    np.testing.assert_array_equal(h, np.swapaxes(h, 0, 1))


@pytest.mark.parametrize("name,metric", [c for c in POSITIVE if c[0] != "exponential"] + [("beta", None)])
def test_derivatives_accept_scalar_etas(name, metric):
    """Intercept-only classes pass scalar etas; derivatives still come per row."""
    family = bf.get_family(name, **({"metric": metric} if metric else {}))
    y = np.array([0.2, 0.5, 0.7])
    d, h = family.derivatives(y, (0.3, -0.2), {})
    d_rows, h_rows = family.derivatives(y, (np.full(3, 0.3), np.full(3, -0.2)), {})
    np.testing.assert_allclose(d, d_rows)
    np.testing.assert_allclose(h, h_rows)


def test_gamma_large_shape_derivatives_stay_accurate():
    """psi(k) - ln k and k^2 psi'(k) - k use series for large k: the lns derivatives at
    shape 1e8 equal their limits (the normal approximation) instead of rounding noise."""
    family = bf.get_family("gamma")
    y = np.array([1.0])
    d, h = family.derivatives(y, (np.zeros(1), np.array([-np.log(1e8)])), {})
    # at y = mu: d_lns = k (psi(k) - ln k) -> -1/2 and h_lns,lns = -d_lns - (k^2 psi' - k) -> 0
    np.testing.assert_allclose(d[1], -0.5, atol=1e-7)
    np.testing.assert_allclose(h[1, 1], 0.0, atol=1e-7)


def test_fast_special_functions_equal_scipy():
    from scipy import special

    from bayesfmm.families.gamma import digamma_minus_log, trigamma, trigamma_excess

    x = np.concatenate([np.logspace(-150, -1, 60), np.linspace(0.1, 30, 300), np.logspace(1, 300, 60)])
    np.testing.assert_allclose(trigamma(x), special.polygamma(1, x), rtol=1e-14)
    k = np.linspace(1.0, 400.0, 200)  # both sides of the series switch at 100
    np.testing.assert_allclose(digamma_minus_log(k), special.digamma(k) - np.log(k), rtol=1e-11)
    np.testing.assert_allclose(trigamma_excess(k), k * k * special.polygamma(1, k) - k, rtol=1e-9)


def test_relations_between_families():
    """exponential = weibull at scale 1; PH and AFT metrics give the same density."""
    rng = np.random.default_rng(3)
    y, eta, lns = rng.gamma(2, 1, 30), rng.normal(0, 1, 30), rng.normal(0, 0.5, 30)
    lp = lambda name, metric, etas: _family(name, metric).logpdf(y, etas, NUMPY_OPS, {})
    np.testing.assert_allclose(lp("exponential", "aft", (eta,)), lp("weibull", "aft", (eta, 0 * eta)), rtol=1e-13)
    np.testing.assert_allclose(lp("exponential", "ph", (eta,)), lp("weibull", "ph", (eta, 0 * eta)), rtol=1e-13)
    np.testing.assert_allclose(lp("exponential", "ph", (-eta,)), lp("exponential", "aft", (eta,)), rtol=1e-13)
    # Weibull: AFT eta = -s * PH eta
    np.testing.assert_allclose(lp("weibull", "aft", (-np.exp(lns) * eta, lns)), lp("weibull", "ph", (eta, lns)), rtol=1e-12)
    # gamma at scale 1 is the exponential with the same mean
    np.testing.assert_allclose(lp("gamma", None, (eta, 0 * eta)), lp("exponential", "aft", (eta,)), rtol=1e-13)


def test_registry_names_aliases_and_reporting():
    assert {"gamma", "exponential", "weibull", "loglogistic", "beta"} <= set(bf.family_names())
    assert bf.get_family("betareg").name == "beta"
    assert bf.get_family("llogistic").name == "loglogistic"
    for name in ("gamma", "weibull", "loglogistic", "beta"):
        family = bf.get_family(name)
        aux = [s for s in family.slots if not s.linear]
        assert [s.report_name for s in aux] == ["scale"] and aux[0].param_class == "scale"
        np.testing.assert_allclose(aux[0].scale.to_report(np.log(2.5)), 2.5)
    assert bf.get_family("exponential").n_slots == 1
    assert bf.get_family("weibull").options["metric"] == "ph"
    assert bf.get_family("exponential").options["metric"] == "aft"
    assert bf.get_family("beta").options["link"] == "logit"


@pytest.mark.parametrize(
    "name,options,match",
    [
        ("gamma", {"link": "identity"}, "supports only link='log'"),
        ("gamma", {"link": "inverse"}, "supports only link='log'"),
        ("beta", {"link": "log"}, "logit, probit, cloglog, loglog"),
        ("weibull", {"metric": "pha"}, "metric='aft'.*metric='ph'"),
        ("exponential", {"metric": 1}, "metric='aft'.*metric='ph'"),
        ("loglogistic", {"metric": "ph"}, "does not take option"),
        ("beta", {"trials": 3}, "does not take option"),
    ],
)
def test_bad_options_raise_specification_error(name, options, match):
    with pytest.raises(bf.SpecificationError, match=match):
        bf.FMM("y ~ x", family=name, k=2, **options)


POSITIVE_NAMES = ["gamma", "exponential", "weibull", "loglogistic"]


@pytest.mark.parametrize("name", POSITIVE_NAMES)
def test_non_positive_response_is_a_data_error(name):
    index = pd.Index([f"r{i}" for i in range(8)])
    data = pd.DataFrame({"cost": [1.0, 2.0, 0.0, 3.0, -1.5, 2.0, 1.0, 4.0], "x": np.arange(8.0)}, index=index)
    with pytest.raises(bf.DataError) as err:
        bf.FMM("cost ~ x", family=name, k=2).fit(data)
    message = str(err.value)
    assert "'cost'" in message and "'r2'" in message and "'r4'" in message
    assert "positive" in message and "0.0" in message and "-1.5" in message


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.2, -0.1])
def test_beta_response_outside_unit_interval_is_a_data_error(bad):
    data = pd.DataFrame({"share": [0.2, 0.5, bad, 0.7, 0.3], "x": np.arange(5.0)}, index=[10, 11, 12, 13, 14])
    with pytest.raises(bf.DataError, match=r"beta response 'share' must be strictly between 0 and 1; rows 12 hold"):
        bf.FMM("share ~ x", family="betareg", k=2).fit(data)


def test_non_finite_response_is_a_data_error():
    data = pd.DataFrame({"y": [1.0, np.inf, 2.0, 3.0], "x": np.arange(4.0)})
    with pytest.raises(bf.DataError, match="'y'"):
        bf.FMM("y ~ x", family="gamma", k=1).fit(data)


SAMPLE_CASES = POSITIVE + [("beta", "logit"), ("beta", "loglog")]


@pytest.mark.parametrize("name,option", SAMPLE_CASES)
def test_sample_draws_follow_the_family_cdf(name, option):
    """``sample`` (used by bf.simulate and the bootstrap) draws from the documented law:
    a Kolmogorov-Smirnov test of 20,000 draws against the family's own cdf, per-row etas."""
    family = bf.get_family("beta", link=option) if name == "beta" else _family(name, option)
    rng = np.random.default_rng(17)
    n = 20_000
    eta = rng.choice([-0.5, 0.3, 1.2], size=n)
    etas = (eta, np.full(n, -0.4 if name != "beta" else 2.5))[: family.n_slots]
    draws = family.sample(etas, rng, {})
    assert draws.shape == (n,) and np.all(family.in_support(draws, {}))
    # probability integral transform: F(y) is uniform when y follows F
    pit = family.cdf(draws, etas, NUMPY_OPS, {})
    assert stats.kstest(pit, "uniform").pvalue > 1e-3
