"""Each family's density: numpy equals scipy.stats and pytensor; derivatives equal finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bayesfmm as bf
from bayesfmm.families.base import finite_difference_derivatives
from bayesfmm.ops import NUMPY_OPS, pytensor_ops

RNG = np.random.default_rng(42)
N = 60

CASES = {
    "gaussian": dict(
        y=np.concatenate([RNG.normal(0, 3, N - 4), [0.0, -1e3, 1e3, 1e-12]]),
        etas=(RNG.normal(0, 2, N), RNG.normal(0, 1.5, N)),
        scipy=lambda y, mu, lnvar: stats.norm.logpdf(y, mu, np.exp(0.5 * lnvar)),
        cdf=lambda y, mu, lnvar: stats.norm.cdf(y, mu, np.exp(0.5 * lnvar)),
        mean=lambda mu, lnvar: mu,
    ),
    "lognormal": dict(
        y=np.concatenate([RNG.lognormal(0, 1, N - 3), [1e-8, 1.0, 1e6]]),
        etas=(RNG.normal(0, 2, N), RNG.normal(0, 1.5, N)),
        scipy=lambda y, mu, lnvar: stats.lognorm.logpdf(y, s=np.exp(0.5 * lnvar), scale=np.exp(mu)),
        cdf=lambda y, mu, lnvar: stats.lognorm.cdf(y, s=np.exp(0.5 * lnvar), scale=np.exp(mu)),
        mean=lambda mu, lnvar: stats.lognorm.mean(s=np.exp(0.5 * lnvar), scale=np.exp(mu)),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_numpy_logpdf_equals_scipy(name):
    case = CASES[name]
    family = bf.get_family(name)
    ours = family.logpdf(case["y"], case["etas"], NUMPY_OPS, {})
    np.testing.assert_allclose(ours, case["scipy"](case["y"], *case["etas"]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_cdf_and_mean_equal_scipy(name):
    case = CASES[name]
    family = bf.get_family(name)
    np.testing.assert_allclose(
        family.cdf(case["y"], case["etas"], NUMPY_OPS, {}), case["cdf"](case["y"], *case["etas"]), rtol=1e-10, atol=1e-14
    )
    np.testing.assert_allclose(family.mean(case["etas"], NUMPY_OPS, {}), case["mean"](*case["etas"]), rtol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_pytensor_logpdf_equals_numpy(name):
    import pytensor
    import pytensor.tensor as pt

    case = CASES[name]
    family = bf.get_family(name)
    y, mu, lnvar = pt.dvector("y"), pt.dvector("mu"), pt.dvector("lnvar")
    graph = family.logpdf(y, (mu, lnvar), pytensor_ops(), {})
    fn = pytensor.function([y, mu, lnvar], graph)
    np.testing.assert_allclose(
        fn(case["y"], *case["etas"]), family.logpdf(case["y"], case["etas"], NUMPY_OPS, {}), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("name", CASES)
def test_analytic_derivatives_equal_finite_differences(name):
    case = CASES[name]
    family = bf.get_family(name)
    keep = np.abs(case["y"]) < 100  # keep second differences well conditioned
    y = case["y"][keep]
    etas = tuple(e[keep] for e in case["etas"])
    d, h = family.derivatives(y, etas, {})
    d_fd, h_fd = finite_difference_derivatives(family, y, etas, {}, step=1e-4)
    scale = np.maximum(1.0, np.abs(d))
    np.testing.assert_allclose(d / scale, d_fd / scale, atol=1e-6)
    hscale = np.maximum(1.0, np.abs(h))
    np.testing.assert_allclose(h / hscale, h_fd / hscale, atol=1e-4)
    assert np.allclose(h[0, 1], h[1, 0])


def test_aliases_and_registry():
    assert bf.get_family("regress").name == "gaussian"
    assert bf.get_family("Gaussian").name == "gaussian"
    assert {"gaussian", "lognormal"} <= set(bf.family_names())
    assert "regress" not in bf.family_names()
    from bayesfmm.families.registry import family_aliases

    assert family_aliases()["regress"] == "gaussian"
    with pytest.raises(bf.SpecificationError, match="unknown family 'nosuch'.*gaussian"):
        bf.get_family("nosuch")
    with pytest.raises(bf.SpecificationError, match="does not take option.*link"):
        bf.get_family("gaussian", link="log")


def test_user_registered_family_without_derivatives_fits():
    """A family registered by a user, with no analytic derivatives, works in ML."""
    from bayesfmm.families.gaussian import gaussian

    base = gaussian()
    custom = bf.Family(
        name="mynormal",
        slots=base.slots,
        logpdf=base.logpdf,
        mean=base.mean,
        cdf=base.cdf,
        in_support=base.in_support,
        support=base.support,
        start_aux=base.start_aux,
    )
    bf.register_family("mynormal", lambda: custom)
    stamp = bf.datasets.load("stamp")
    res = bf.FMM("thickness ~ 1", family="mynormal", k=3).fit(stamp)
    assert abs(res.llf - 1518.848325) < 1e-4
