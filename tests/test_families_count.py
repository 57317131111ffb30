"""Count, binary and binomial families and the point mass: densities against scipy.stats and
closed forms (edge values included), pytensor parity, analytic eta-derivatives against
finite differences, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayesfmm as bf
from bayesfmm.families.base import finite_difference_derivatives
from bayesfmm.ops import NUMPY_OPS, pytensor_ops


def _grid(ys, *etas):
    """Every combination of the responses and the eta values, as flat arrays."""
    mesh = np.meshgrid(np.asarray(ys, dtype=float), *[np.asarray(e, dtype=float) for e in etas], indexing="ij")
    return [m.ravel() for m in mesh]


Y_COUNTS = [0, 1, 2, 7, 50, 1000, 250_000]
ETA_MEAN = [-30.0, -5.0, -0.7, 0.0, 1.3, 4.0, 12.5]  # means from 1e-13 to 2.7e5
# (the negative binomial grids start at -5: at mu = 1e-13 scipy's log(1 - p) loses digits;
# that corner is checked against the closed form in test_count_densities_at_extreme_means)
LN_DISP = [-4.0, -1.2, 0.0, 0.8, 3.0]
ETA_PROB = [-8.0, -3.0, -0.5, 0.0, 0.4, 2.5, 8.0]


def _eta_prob(link):
    # cloglog: 1 - p = exp(-exp(eta)) underflows in scipy's reference beyond eta ~ 6.5;
    # the tails are checked against closed forms below
    return [e for e in ETA_PROB if e < 6] + [5.5] if link == "cloglog" else ETA_PROB


def _p(link, eta):
    return {"logit": special.expit, "probit": special.ndtr, "cloglog": lambda e: -np.expm1(-np.exp(e))}[link](eta)


def _q(link, eta):
    """1 - p computed directly, so that it keeps its digits where p is close to 1."""
    return {"logit": lambda e: special.expit(-e), "probit": lambda e: special.ndtr(-e), "cloglog": lambda e: np.exp(-np.exp(e))}[link](eta)


def _binom_logpmf(y, n, link, eta):
    """scipy's binom.logpmf, given the smaller of p and 1 - p (by the symmetry
    f(y; n, p) = f(n - y; n, 1 - p)): scipy forms log(1 - p), which loses digits as p -> 1."""
    p, q = _p(link, eta), _q(link, eta)
    return np.where(p <= 0.5, stats.binom.logpmf(y, n, p), stats.binom.logpmf(n - y, n, q))


def _binomial_case(link):
    n_values = [1, 2, 10, 60]
    y, eta, n = [], [], []
    for trials in n_values:
        ys = sorted({0, 1, trials // 2, trials - 1, trials})
        yy, ee = _grid(ys, _eta_prob(link))
        y.append(yy)
        eta.append(ee)
        n.append(np.full(yy.size, float(trials)))
    y, eta, n = map(np.concatenate, (y, eta, n))
    return dict(
        family=("binomial", {"trials": "N", "link": link}),
        y=y,
        etas=(eta,),
        extra={"trials": n},
        scipy=lambda y, e: _binom_logpmf(y, n, link, e),
        cdf=lambda y, e: stats.binom.cdf(y, n, _p(link, e)),
        mean=lambda e: n * _p(link, e),
    )


def _bernoulli_case(link):
    y, eta = _grid([0, 1], _eta_prob(link))
    return dict(
        family=(link, {}),
        y=y,
        etas=(eta,),
        extra={},
        scipy=lambda y, e: _binom_logpmf(y, 1.0, link, e),
        cdf=lambda y, e: stats.bernoulli.cdf(y, _p(link, e)),
        mean=lambda e: _p(link, e),
    )


def _nb2(y, eta, lnalpha):
    size = np.exp(-lnalpha)
    return size, size / (size + np.exp(eta))


def _nb1(y, eta, lndelta):
    return np.exp(eta - lndelta), 1.0 / (1.0 + np.exp(lndelta))


CASES = {
    "poisson": dict(
        family=("poisson", {}),
        **dict(zip(("y", "eta"), _grid(Y_COUNTS, ETA_MEAN))),
        extra={},
        scipy=lambda y, e: stats.poisson.logpmf(y, np.exp(e)),
        cdf=lambda y, e: stats.poisson.cdf(y, np.exp(e)),
        mean=lambda e: np.exp(e),
    ),
    "nb2": dict(
        family=("nbinomial", {}),
        **dict(zip(("y", "eta", "aux"), _grid(Y_COUNTS, ETA_MEAN[1:], LN_DISP))),
        extra={},
        scipy=lambda y, e, a: stats.nbinom.logpmf(y, *_nb2(y, e, a)),
        cdf=lambda y, e, a: stats.nbinom.cdf(y, *_nb2(y, e, a)),
        mean=lambda e, a: np.exp(e),
    ),
    "nb1": dict(
        family=("nbreg", {"dispersion": "constant"}),
        **dict(zip(("y", "eta", "aux"), _grid(Y_COUNTS, ETA_MEAN[1:], LN_DISP))),
        extra={},
        scipy=lambda y, e, a: stats.nbinom.logpmf(y, *_nb1(y, e, a)),
        cdf=lambda y, e, a: stats.nbinom.cdf(y, *_nb1(y, e, a)),
        mean=lambda e, a: np.exp(e),
    ),
    **{f"binomial-{link}": _binomial_case(link) for link in ("logit", "probit", "cloglog")},
    **{f"bernoulli-{link}": _bernoulli_case(link) for link in ("logit", "probit", "cloglog")},
}
for _case in CASES.values():
    if "etas" not in _case:
        _case["etas"] = (_case.pop("eta"),) + ((_case.pop("aux"),) if "aux" in _case else ())


def _family(name):
    fam, options = CASES[name]["family"]
    return bf.get_family(fam, **options)


@pytest.mark.parametrize("name", CASES)
def test_numpy_logpdf_equals_scipy(name):
    case = CASES[name]
    ours = _family(name).logpdf(case["y"], case["etas"], NUMPY_OPS, case["extra"])
    reference = case["scipy"](case["y"], *case["etas"])
    assert np.all(np.isfinite(ours))
    # scipy.stats evaluates the same closed forms; 1e-10 relative covers its lgamma sums
    np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", CASES)
def test_cdf_and_mean_equal_scipy(name):
    case = CASES[name]
    family = _family(name)
    cdf = family.cdf(case["y"], case["etas"], NUMPY_OPS, case["extra"])
    np.testing.assert_allclose(cdf, case["cdf"](case["y"], *case["etas"]), rtol=1e-9, atol=1e-14)
    mean = np.asarray(family.mean(case["etas"], NUMPY_OPS, case["extra"])) * np.ones(case["y"].size)
    np.testing.assert_allclose(mean, case["mean"](*case["etas"]), rtol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_pytensor_equals_numpy(name):
    import pytensor
    import pytensor.tensor as pt

    case = CASES[name]
    family = _family(name)
    y = pt.dvector("y")
    etas = [pt.dvector(f"eta{s}") for s in range(family.n_slots)]
    trials = pt.dvector("trials")
    extra = {"trials": trials} if "trials" in case["extra"] else {}
    ops = pytensor_ops()
    outputs = [family.logpdf(y, etas, ops, extra), family.cdf(y, etas, ops, extra)]
    fn = pytensor.function([y, *etas, trials], outputs, on_unused_input="ignore")
    n = case["extra"].get("trials", np.ones_like(case["y"]))
    logpdf, cdf = fn(case["y"], *case["etas"], n)
    # 1e-10: at y = 250000 the lgamma terms (~3e6) cancel to ~10, and pytensor's C lgamma
    # and scipy's gammaln differ in their last digit
    np.testing.assert_allclose(logpdf, family.logpdf(case["y"], case["etas"], NUMPY_OPS, case["extra"]), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(cdf, family.cdf(case["y"], case["etas"], NUMPY_OPS, case["extra"]), rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("name", CASES)
def test_analytic_derivatives_equal_finite_differences(name):
    case = CASES[name]
    family = _family(name)
    # moderate values keep the second differences well conditioned
    keep = (case["y"] <= 1000) & np.all([np.abs(e) <= 8 for e in case["etas"]], axis=0)
    y = case["y"][keep]
    etas = tuple(e[keep] for e in case["etas"])
    extra = {k: v[keep] for k, v in case["extra"].items()}
    d, h = family.derivatives(y, etas, extra)
    # first differences with step 1e-5; second differences with 1e-3, as the log densities
    # reach ~1e4 at y = 1000 and rounding dominates a smaller step
    d_fd, _ = finite_difference_derivatives(family, y, etas, extra, step=1e-5)
    _, h_fd = finite_difference_derivatives(family, y, etas, extra, step=1e-3)
    scale = np.maximum(1.0, np.abs(d))
    np.testing.assert_allclose(d / scale, d_fd / scale, atol=1e-6)
    hscale = np.maximum(1.0, np.abs(h))
    np.testing.assert_allclose(h / hscale, h_fd / hscale, atol=2e-4)
    if family.n_slots == 2:
        np.testing.assert_array_equal(h[0, 1], h[1, 0])


# -- tails: closed forms where scipy.stats loses the digits ----------------------------------
def test_binary_log_densities_stable_in_the_tails():
    """log p and log(1 - p) far in the tails, against closed forms."""
    eta = np.array([-700.0, -60.0, -40.0, 40.0, 60.0, 700.0])
    fams = {link: bf.get_family(link) for link in ("logit", "probit", "cloglog")}
    ones, zeros = np.ones_like(eta), np.zeros_like(eta)
    # logit: log p = -log(1 + exp(-eta)), log(1 - p) = -log(1 + exp(eta))
    np.testing.assert_allclose(fams["logit"].logpdf_numpy(ones, [eta], {}), -np.logaddexp(0, -eta), rtol=1e-15)
    np.testing.assert_allclose(fams["logit"].logpdf_numpy(zeros, [eta], {}), -np.logaddexp(0, eta), rtol=1e-15)
    # probit: log Phi(eta) (scipy's log_ndtr is accurate in both tails)
    np.testing.assert_allclose(fams["probit"].logpdf_numpy(ones, [eta], {}), special.log_ndtr(eta), rtol=1e-14)
    np.testing.assert_allclose(fams["probit"].logpdf_numpy(zeros, [eta], {}), special.log_ndtr(-eta), rtol=1e-14)
    # cloglog: log(1 - p) = -exp(eta); log p = log(1 - exp(-exp(eta))) = eta - exp(eta)/2 + ...
    small = eta[:3]
    np.testing.assert_allclose(fams["cloglog"].logpdf_numpy(ones[:3], [small], {}), small - 0.5 * np.exp(small), rtol=1e-15)
    np.testing.assert_allclose(fams["cloglog"].logpdf_numpy(zeros[:3], [small], {}), -np.exp(small), rtol=1e-15)
    assert fams["cloglog"].logpdf_numpy(np.array([1.0]), [np.array([40.0])], {})[0] == 0.0
    # binomial at y = 0 and y = trials with an extreme eta: finite, equal to n log(1-p), n log p
    binom = bf.get_family("binomial", trials="n")
    n = np.full(2, 25.0)
    out = binom.logpdf_numpy(np.array([0.0, 25.0]), [np.array([50.0, -50.0])], {"trials": n})
    np.testing.assert_allclose(out, 25 * -np.logaddexp(0, 50.0) * np.ones(2), rtol=1e-15)


def test_binary_derivatives_finite_in_the_tails():
    eta = np.array([-700.0, -60.0, -40.0, 40.0, 60.0, 700.0])
    for link in ("logit", "probit", "cloglog"):
        fam = bf.get_family(link)
        for y in (0.0, 1.0):
            d, h = fam.derivatives(np.full(eta.size, y), [eta], {})
            assert np.all(np.isfinite(d)) and np.all(np.isfinite(h)), (link, y)
            assert np.all(h <= 0), (link, y)  # log-concave in eta for all three links


def test_count_densities_at_extreme_means():
    """Poisson: log f(0 | mu) = -mu for a tiny mean; a huge mean at its own mode."""
    pois = bf.get_family("poisson")
    assert pois.logpdf_numpy(np.array([0.0]), [np.array([-30.0])], {})[0] == pytest.approx(-np.exp(-30.0), rel=1e-15)
    mu = 1e9
    value = pois.logpdf_numpy(np.array([mu]), [np.array([np.log(mu)])], {})[0]
    # Stirling: log f(mu | mu) = -0.5 log(2 pi mu) - 1/(12 mu) + O(mu^-3)
    assert value == pytest.approx(-0.5 * np.log(2 * np.pi * mu) - 1 / (12 * mu), abs=1e-6)
    # NB2 and NB1 at a tiny mean (mu = e^-30), where scipy's log(1 - p) loses digits:
    # NB2 log f(1) = eta - (1 + 1/alpha) log(1 + alpha mu); NB1 log f(0) = -(mu/delta) log(1 + delta)
    eta, lnd = np.array([-30.0]), np.array([-1.2])
    a, mu = np.exp(lnd), np.exp(eta)
    nb2 = bf.get_family("nbinomial").logpdf_numpy(np.array([1.0]), [eta, lnd], {})
    np.testing.assert_allclose(nb2, eta - (1 + 1 / a) * np.log1p(a * mu), rtol=1e-14)
    nb1 = bf.get_family("nbinomial", dispersion="constant").logpdf_numpy(np.array([0.0]), [eta, lnd], {})
    np.testing.assert_allclose(nb1, -(mu / a) * np.log1p(a), rtol=1e-14)
    # NB2 with a tiny alpha approaches the Poisson
    nb = bf.get_family("nbinomial")
    y = np.array([0.0, 3.0, 10.0])
    eta = np.full(3, 1.2)
    np.testing.assert_allclose(
        nb.logpdf_numpy(y, [eta, np.full(3, -16.0)], {}), pois.logpdf_numpy(y, [eta], {}), atol=1e-5
    )


# -- the point mass ----------------------------------------------------------------------------
def test_pointmass_density_cdf_mean_and_pytensor():
    import pytensor
    import pytensor.tensor as pt

    fam = bf.get_family("pointmass", value=2)
    y = np.array([2.0, 0.0, 2.0 + 1e-12, 5.0, -3.0])
    expected = np.array([0.0, -np.inf, -np.inf, -np.inf, -np.inf])
    np.testing.assert_array_equal(fam.logpdf_numpy(y, [], {}), expected)
    np.testing.assert_array_equal(fam.cdf(y, [], NUMPY_OPS, {}), [1.0, 0.0, 1.0, 1.0, 0.0])
    assert fam.mean([], NUMPY_OPS, {}) == 2.0
    assert fam.slots == () and fam.n_slots == 0
    d, h = fam.derivatives(y, [], {})
    assert d.shape == (0, 5) and h.shape == (0, 0, 5)
    yt = pt.dvector("y")
    fn = pytensor.function([yt], fam.logpdf(yt, [], pytensor_ops(), {}))
    np.testing.assert_array_equal(fn(y), expected)
    assert bf.get_family("pointmass").options["value"] == 0.0


# -- names, options and bad input --------------------------------------------------------------
def test_names_aliases_and_options():
    assert bf.get_family("nbreg").name == "nbinomial"
    assert bf.get_family("nbreg").slots[1].report_name == "alpha"
    nb1 = bf.get_family("nbinomial", dispersion="constant")
    assert nb1.slots[1].report_name == "delta" and nb1.slots[1].param_class == "scale"
    for link in ("logit", "probit", "cloglog"):
        fam = bf.get_family(link)
        assert fam.name == "bernoulli" and fam.options["link"] == link
        assert bf.get_family("bernoulli", link=link).options["link"] == link
        assert bf.get_family("binomial", trials=3, link=link).options == {"trials": 3, "link": link}
    assert bf.get_family("binomial").extra_columns == {"trials": 1}
    assert {"poisson", "nbinomial", "binomial", "bernoulli", "pointmass"} <= set(bf.family_names())


@pytest.mark.parametrize(
    "family, options, message",
    [
        ("binomial", {"link": "identity"}, r"binomial link='identity' is not available; choose from logit, probit, cloglog"),
        ("bernoulli", {"link": "log"}, r"bernoulli link='log' is not available"),
        ("probit", {"link": "logit"}, r"family 'probit' does not take option\(s\) link"),
        ("binomial", {"trials": 0}, r"trials= must be a column name or a positive integer, got 0"),
        ("binomial", {"trials": 2.5}, r"positive integer, got 2.5"),
        ("binomial", {"trials": True}, r"positive integer, got True"),
        ("nbinomial", {"dispersion": "quadratic"}, r"dispersion='quadratic' is not recognised"),
        ("pointmass", {"value": np.nan}, r"pointmass value= must be a finite number"),
    ],
)
def test_bad_options_are_specification_errors(family, options, message):
    with pytest.raises(bf.SpecificationError, match=message):
        bf.Component("y ~ x", family=family, **options)


BAD = pd.DataFrame(
    {
        "y": [0, 1, -2, 3.5, 4, 5],
        "b": [0, 1, 2, 1, 0.5, 1],
        "x": np.arange(6.0),
        "N": [5, 5, 5, 5, 0, 2.5],
    },
    index=["r1", "r2", "r3", "r4", "r5", "r6"],
)


@pytest.mark.parametrize("family", ["poisson", "nbreg"])
def test_negative_or_fractional_counts_are_data_errors(family):
    with pytest.raises(bf.DataError, match=r"response 'y' must be a non-negative integer count .*rows 'r3', 'r4' hold \[-2.0, 3.5\]"):
        bf.FMM("y ~ x", family=family, k=1).fit(BAD)


def test_binomial_responses_and_trials_are_checked():
    data = BAD.assign(y=[0, 1, 6, 3, 4, 2])
    # y = 6 > trials = 5 (row r3); trials 0 (r5) and 2.5 (r6) are not positive integers
    with pytest.raises(
        bf.DataError,
        match=r"binomial response 'y' must be an integer count from 0 to the number of trials in column 'N', "
        r"and 'N' must hold positive integers; rows 'r3', 'r5', 'r6'",
    ):
        bf.FMM("y ~ x", family="binomial", trials="N", k=1).fit(data)
    with pytest.raises(bf.DataError, match=r"from 0 to trials=5; rows 'r3' hold \[6.0\]"):
        bf.FMM("y ~ x", family="binomial", trials=5, k=1).fit(data)
    with pytest.raises(bf.DataError, match=r"column\(s\) 'Total' named in the model are not in the data"):
        bf.FMM("y ~ x", family="binomial", trials="Total", k=1).fit(data)


def test_bernoulli_response_must_be_zero_or_one():
    with pytest.raises(bf.DataError, match=r"bernoulli response 'b' must be 0 or 1; rows 'r3', 'r5' hold \[2.0, 0.5\]"):
        bf.FMM("b ~ x", family="probit", k=1).fit(BAD)


@pytest.mark.parametrize(
    "family, options, aux, extra, variance",
    [
        ("poisson", {}, [], {}, lambda mu: mu),
        ("nbinomial", {}, [np.log(0.5)], {}, lambda mu: mu * (1 + 0.5 * mu)),
        ("nbinomial", {"dispersion": "constant"}, [np.log(0.5)], {}, lambda mu: mu * 1.5),
        ("binomial", {"trials": "n"}, [], {"trials": np.full(100_000, 7.0)}, lambda mu: mu * (1 - mu / 7)),
        ("cloglog", {}, [], {}, lambda mu: mu * (1 - mu)),
    ],
)
def test_sampler_moments(family, options, aux, extra, variance):
    """Draws have the family's mean and variance (closed forms), within 5 standard errors."""
    fam = bf.get_family(family, **options)
    n = 100_000
    etas = [np.full(n, 0.3)] + [np.full(n, a) for a in aux]
    draws = fam.sample(etas, np.random.default_rng(1), extra)
    mu = float(np.mean(fam.mean(etas, NUMPY_OPS, extra)))
    var = variance(mu)
    assert abs(draws.mean() - mu) < 5 * np.sqrt(var / n)
    assert abs(draws.var() / var - 1) < 0.05
    assert np.all(fam.in_support(draws, extra))
    assert bf.get_family("pointmass", value=3).sample([], np.random.default_rng(1), {}) == 3.0
