"""Issue-4 families (ologit, oprobit, mlogit, tobit, intreg, truncreg, tpoisson, streg):
log densities against scipy.stats and closed forms on grids with censored and truncated
edges, pytensor parity, analytic eta-derivatives against finite differences, bad input.

Sources of every reference: scipy.stats and scipy.special, evaluated here. Tolerances:
log densities 1e-10 relative (1e-12 absolute); pytensor 1e-10; derivatives 1e-5 relative
to the finite differences' own scale (step 1e-4 central differences, error ~1e-8).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayesfmm as bf
from bayesfmm.families.base import finite_difference_derivatives
from bayesfmm.families.interval import LOGISTIC, NORMAL
from bayesfmm.families.levels import find_levels
from bayesfmm.families.mlogit import mlogit_family
from bayesfmm.families.ordinal import ordinal_family
from bayesfmm.ops import NUMPY_OPS, pytensor_ops

RTOL, ATOL = 1e-10, 1e-12


def _close(ours, ref, rtol=RTOL, atol=ATOL, what=""):
    ours, ref = np.asarray(ours, dtype=float), np.asarray(ref, dtype=float)
    assert ours.shape == ref.shape, what
    both_inf = np.isneginf(ours) & np.isneginf(ref)
    ok = both_inf | (np.abs(ours - ref) <= atol + rtol * np.abs(ref))
    assert ok.all(), f"{what}: worst {np.abs(ours - ref)[~ok][:5]} at {np.flatnonzero(~ok)[:5]}; ours {ours[~ok][:3]} ref {ref[~ok][:3]}"


def _log_diff_reference(law, a, b):
    """log(F(b) - F(a)) from scipy, through the survivor function in the upper half."""
    upper = a > 0
    with np.errstate(divide="ignore"):
        lower_val = np.log(law.cdf(b) - law.cdf(a))
        upper_val = np.log(law.sf(a) - law.sf(b))
    return np.where(upper, upper_val, lower_val)


# -- ordinal -------------------------------------------------------------------------------
ORDINAL_LEVELS = (1.0, 2.0, 4.0, 7.0)  # unequal gaps: y is the level's value
CUTS = np.array([-1.5, 0.2, 2.5])
ETAS = np.array([-40.0, -8.0, -1.0, 0.0, 0.7, 3.0, 9.0, 40.0])


def _ordinal(dist):
    levels = find_levels(pd.Series(ORDINAL_LEVELS), "y", "ologit")
    return ordinal_family(dist, levels)


def _ordinal_grid():
    y, eta = (m.ravel() for m in np.meshgrid(ORDINAL_LEVELS, ETAS, indexing="ij"))
    return y, eta


@pytest.mark.parametrize("dist,law", [(LOGISTIC, stats.logistic), (NORMAL, stats.norm)])
def test_ordinal_logpdf_cdf_mean_equal_scipy(dist, law):
    family = _ordinal(dist)
    y, eta = _ordinal_grid()
    etas = [eta, *CUTS]
    code = np.searchsorted(ORDINAL_LEVELS, y)
    full = np.concatenate([[-np.inf], CUTS, [np.inf]])
    a, b = full[code] - eta, full[code + 1] - eta
    ref = _log_diff_reference(law, a, b)
    ours = family.logpdf_numpy(y, etas, {})
    finite = np.isfinite(ref) & (ref > -700)
    assert finite.mean() > 0.8
    _close(ours[finite], ref[finite], what="ordinal logpdf")
    assert np.all(np.isfinite(ours)), "far tails stay finite"
    probs = np.exp(np.array([family.logpdf_numpy(np.full(ETAS.size, lev), [ETAS, *CUTS], {}) for lev in ORDINAL_LEVELS]))
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(
        family.mean([ETAS, *CUTS], NUMPY_OPS, {}), np.asarray(ORDINAL_LEVELS) @ probs, rtol=1e-10, atol=1e-12
    )
    cdf = family.cdf(y, etas, NUMPY_OPS, {})
    np.testing.assert_allclose(cdf, np.where(code == 3, 1.0, law.cdf(full[np.minimum(code + 1, 3)] - eta)), atol=1e-14)


def test_two_level_ologit_is_the_logit_family():
    levels = find_levels(pd.Series([0, 1]), "y", "ologit")
    family = ordinal_family(LOGISTIC, levels)
    y, eta = (m.ravel() for m in np.meshgrid([0.0, 1.0], ETAS, indexing="ij"))
    cut = 0.4
    ours = family.logpdf_numpy(y, [eta, cut], {})
    logit = bf.get_family("logit").logpdf_numpy(y, [eta - cut], {})
    _close(ours, logit, what="ologit(2 levels) = logit with intercept -cut1")


def test_non_increasing_cutpoints_give_no_finite_density():
    family = _ordinal(LOGISTIC)
    with np.errstate(all="ignore"):
        value = family.logpdf_numpy(np.array([2.0]), [np.zeros(1), 0.5, 0.5, 1.0], {})
    assert not np.isfinite(value[0]) or value[0] < -30


def test_ordinal_levels_sorted_or_categorical_order():
    numbers = find_levels(pd.Series([3, 1, 2, 3]), "y", "ologit")
    assert numbers.labels == (1.0, 2.0, 3.0) and numbers.values == (1.0, 2.0, 3.0)
    words = find_levels(pd.Series(["mid", "low", "high"]), "y", "ologit")
    assert words.labels == ("high", "low", "mid")  # sorted, as documented
    ordered = pd.Series(pd.Categorical(["hi", "lo"], categories=["lo", "mid", "hi"], ordered=True))
    levels = find_levels(ordered, "y", "ologit")
    assert levels.labels == ("lo", "hi"), "categories with no row are left out"
    np.testing.assert_array_equal(levels.encode(ordered, "y", "ologit"), [2.0, 1.0])


# -- mlogit --------------------------------------------------------------------------------
def test_mlogit_logpdf_cdf_mean_equal_log_softmax():
    levels = find_levels(pd.Series([0, 1, 5]), "y", "mlogit")
    for base in range(3):
        family = mlogit_family(levels, base)
        rng = np.random.default_rng(base)
        n = 60
        etas = [rng.normal(0, 6, n), rng.normal(0, 6, n)]
        etas[0][:3] = [700.0, -700.0, 0.0]
        full = np.insert(np.array(etas), base, 0.0, axis=0)
        ref_all = special.log_softmax(full, axis=0)
        for k, level in enumerate(levels.values):
            y = np.full(n, level)
            _close(family.logpdf_numpy(y, etas, {}), ref_all[k], what=f"mlogit base {base} level {level}")
        p = np.exp(ref_all)
        np.testing.assert_allclose(family.mean(etas, NUMPY_OPS, {}), np.array(levels.values) @ p, rtol=1e-12)
        np.testing.assert_allclose(family.cdf(np.full(n, 1.0), etas, NUMPY_OPS, {}), p[0] + p[1], rtol=1e-12)


# -- censored and truncated normal ---------------------------------------------------------
MUS = np.array([-30.0, -2.0, 0.0, 0.5, 3.0, 30.0])
LNVARS = np.array([-4.0, 0.0, 2.0])


def _normal_grid(ys):
    y, mu, lnvar = (m.ravel() for m in np.meshgrid(ys, MUS, LNVARS, indexing="ij"))
    return y, mu, lnvar, np.exp(0.5 * lnvar)


def test_tobit_logpdf_equals_scipy_on_both_censoring_edges():
    y, mu, lnvar, s = _normal_grid([-1.0, -0.999, 0.0, 1.3, 2.0, 2.5])
    ll, ul = np.full(y.size, -1.0), np.where(np.arange(y.size) % 2 == 0, 2.0, np.inf)
    family = bf.get_family("tobit", ll="lower", ul="upper")
    extra = {"ll": ll, "ul": ul}
    ours = family.logpdf_numpy(y, [mu, lnvar], extra)
    ref = np.where(
        y <= ll,
        stats.norm.logcdf((ll - mu) / s),
        np.where(y >= ul, stats.norm.logsf((ul - mu) / s), stats.norm.logpdf(y, mu, s)),
    )
    _close(ours, ref, what="tobit")
    assert (y <= ll).any() and (y >= ul).any() and ((y > ll) & (y < ul)).any()
    cdf = family.cdf(y, [mu, lnvar], NUMPY_OPS, extra)
    np.testing.assert_allclose(cdf, np.where(y >= ul, 1.0, stats.norm.cdf(y, mu, s)), atol=1e-14)


def test_intreg_logpdf_equals_scipy_for_points_intervals_and_open_ends():
    lo = np.array([0.5, 0.5, -np.inf, 1.0, -3.0, 40.0, -41.0])
    hi = np.array([0.5, 1.5, 2.0, np.inf, 3.0, 41.0, -40.0])
    y, mu, lnvar = (m.ravel() for m in np.meshgrid(np.arange(lo.size), MUS, LNVARS, indexing="ij"))
    lo_r, hi_r = lo[y], hi[y]
    s = np.exp(0.5 * lnvar)
    family = bf.get_family("intreg", upper="hi")
    ours = family.logpdf_numpy(lo_r, [mu, lnvar], {"upper": hi_r})
    with np.errstate(divide="ignore"):
        ref = np.where(
            lo_r == hi_r,
            stats.norm.logpdf(lo_r, mu, s),
            _log_diff_reference(stats.norm, (lo_r - mu) / s, (hi_r - mu) / s),
        )
    finite = np.isfinite(ref)
    assert finite.mean() > 0.75
    _close(ours[finite], ref[finite], what="intreg")
    assert np.all(np.isfinite(ours)), "intervals 40 sds out keep a finite log probability"


def test_truncreg_logpdf_equals_scipy_truncnorm():
    y, mu, lnvar, s = _normal_grid([0.0, 0.3, 1.0, 2.9, 3.0])
    family = bf.get_family("truncreg", ll=0, ul="upper")
    for ul in (3.0, np.inf):
        upper = np.full(y.size, ul)
        ours = family.logpdf_numpy(y, [mu, lnvar], {"ll": np.zeros(y.size), "ul": upper})
        ref = stats.truncnorm.logpdf(y, (0.0 - mu) / s, (upper - mu) / s, loc=mu, scale=s)
        finite = np.isfinite(ref) & (np.abs((y - mu) / s) < 30)
        assert finite.mean() > 0.6
        _close(ours[finite], ref[finite], rtol=1e-9, what=f"truncreg ul={ul}")
        cdf = family.cdf(y, [mu, lnvar], NUMPY_OPS, {"ll": np.zeros(y.size), "ul": upper})
        ref_cdf = stats.truncnorm.cdf(y, (0.0 - mu) / s, (upper - mu) / s, loc=mu, scale=s)
        np.testing.assert_allclose(cdf[finite], ref_cdf[finite], rtol=1e-7, atol=1e-10)


# -- truncated Poisson ---------------------------------------------------------------------
@pytest.mark.parametrize("ll", [0, 2])
def test_tpoisson_logpdf_mean_cdf_equal_scipy(ll):
    y, eta = (m.ravel() for m in np.meshgrid([0, 1, 2, 3, 7, 60, 500], [-25.0, -3.0, 0.0, 1.5, 6.0], indexing="ij"))
    y = y.astype(float)
    mu = np.exp(eta)
    family = bf.get_family("tpoisson", ll=ll)
    extra = {"ll": np.full(y.size, float(ll))}
    ours = family.logpdf_numpy(y, [eta], extra)
    with np.errstate(divide="ignore"):
        ref = np.where(y > ll, stats.poisson.logpmf(y, mu) - stats.poisson.logsf(ll, mu), -np.inf)
    finite = np.isfinite(ref)
    _close(ours[finite], ref[finite], rtol=1e-9, what="tpoisson logpdf")
    assert np.all(np.isneginf(ours[y <= ll])), "counts at or below ll have density 0"
    assert np.all(np.isfinite(ours[y > ll])), "finite even where P(Y > ll) ~ mu^(ll+1)"
    ok = mu > 1e-6  # scipy's truncated mean loses digits below
    ref_mean = mu * stats.poisson.sf(ll - 1, mu) / stats.poisson.sf(ll, mu)
    np.testing.assert_allclose(family.mean([eta], NUMPY_OPS, extra)[ok], ref_mean[ok], rtol=1e-9)
    if ll == 0:  # E(y | y > 0) -> 1 as mu -> 0
        assert family.mean([np.array([-25.0])], NUMPY_OPS, {"ll": np.zeros(1)})[0] == pytest.approx(1.0, abs=1e-10)
    ref_cdf = (stats.poisson.cdf(y, mu) - stats.poisson.cdf(ll, mu)) / stats.poisson.sf(ll, mu)
    safe = (y > ll) & (mu > 1e-3) & (mu < 100)
    np.testing.assert_allclose(family.cdf(y, [eta], NUMPY_OPS, extra)[safe], ref_cdf[safe], rtol=1e-8, atol=1e-12)


# -- survival ------------------------------------------------------------------------------
TIMES = np.array([1e-8, 0.01, 0.5, 1.0, 3.0, 40.0, 1e4])


def _scipy_survival(distribution, metric, t, eta, lns):
    """scipy frozen-law arguments of the family's documented parameterisation."""
    s = np.exp(lns)
    if distribution == "exponential":
        scale = np.exp(eta) if metric == "aft" else np.exp(-eta)
        return stats.expon, dict(scale=scale)
    if distribution == "weibull":
        scale = np.exp(eta) if metric == "aft" else np.exp(-eta * s)
        return stats.weibull_min, dict(c=1 / s, scale=scale)
    if distribution == "lognormal":  # lns is ln var(e) here
        return stats.lognorm, dict(s=np.exp(0.5 * lns), scale=np.exp(eta))
    if distribution == "loglogistic":
        return stats.fisk, dict(c=1 / s, scale=np.exp(eta))
    return stats.gamma, dict(a=1 / s, scale=s * np.exp(eta))


SURVIVAL = [
    ("exponential", "ph"),
    ("exponential", "aft"),
    ("weibull", "ph"),
    ("weibull", "aft"),
    ("lognormal", "aft"),
    ("loglogistic", "aft"),
    ("gamma", "aft"),
]


def _streg(distribution, metric):
    return bf.get_family("streg", distribution=distribution, metric=metric, failure="d")


def _survival_grid(family):
    aux = np.array([-1.0, 0.0, 0.7]) if family.n_slots == 2 else np.zeros(1)
    t, eta, lns = (m.ravel() for m in np.meshgrid(TIMES, [-3.0, 0.0, 0.4, 2.0], aux, indexing="ij"))
    failure = (np.arange(t.size) % 2).astype(float)
    return t, eta, lns, failure


@pytest.mark.parametrize("distribution,metric", SURVIVAL)
def test_streg_logpdf_equals_scipy_density_and_survivor(distribution, metric):
    family = _streg(distribution, metric)
    t, eta, lns, failure = _survival_grid(family)
    etas = [eta, lns] if family.n_slots == 2 else [eta]
    law, args = _scipy_survival(distribution, metric, t, eta, lns)
    with np.errstate(all="ignore"):
        ref_sf = law.logsf(t, **args)
        if distribution == "loglogistic":  # scipy's fisk.logsf is log(1 - cdf): closed form instead
            ref_sf = -np.logaddexp(0.0, args["c"] * (np.log(t) - np.log(args["scale"])))
        ref = np.where(failure == 1, law.logpdf(t, **args), ref_sf)
    ours = family.logpdf_numpy(t, etas, {"failure": failure})
    finite = np.isfinite(ref) & (ref > -600)
    assert finite.mean() > 0.7
    _close(ours[finite], ref[finite], rtol=1e-9, atol=1e-11, what=f"{distribution} {metric}")
    with np.errstate(all="ignore"):
        logsf = family.logsf(t, etas, NUMPY_OPS, {})
    ok = np.isfinite(ref_sf) & (ref_sf > -600)
    _close(logsf[ok], ref_sf[ok], rtol=1e-9, atol=1e-11, what=f"{distribution} logsf")


def test_streg_default_metrics_are_statas():
    assert bf.get_family("streg", distribution="weibull").options["metric"] == "ph"
    assert bf.get_family("streg", distribution="exponential").options["metric"] == "ph"
    assert bf.get_family("streg", distribution="lognormal").options["metric"] == "aft"
    with pytest.raises(bf.SpecificationError, match="accelerated failure time metric only"):
        bf.get_family("streg", distribution="loglogistic", metric="ph")
    with pytest.raises(bf.SpecificationError, match="not available"):
        bf.get_family("streg", distribution="gompertz")


# -- pytensor parity -----------------------------------------------------------------------
def _parity_cases():
    rng = np.random.default_rng(5)
    n = 24
    lev = np.array(ORDINAL_LEVELS)[rng.integers(0, 4, n)]
    yield "ologit", _ordinal(LOGISTIC), lev, [rng.normal(0, 2, n), *CUTS], {}
    yield "oprobit", _ordinal(NORMAL), lev, [rng.normal(0, 2, n), *CUTS], {}
    levels = find_levels(pd.Series([0, 1, 5]), "y", "mlogit")
    yield "mlogit", mlogit_family(levels, 1), np.array([0.0, 1.0, 5.0])[rng.integers(0, 3, n)], [rng.normal(0, 3, n), rng.normal(0, 3, n)], {}
    y = rng.normal(1, 2, n)
    ll, ul = np.full(n, 0.0), np.full(n, 2.5)
    yc = np.clip(y, 0.0, 2.5)
    yield "tobit", bf.get_family("tobit", ll=0, ul=2.5), yc, [rng.normal(1, 1, n), rng.normal(0, 0.5, n)], {"ll": ll, "ul": ul}
    lo = np.where(rng.random(n) < 0.3, -np.inf, np.floor(y))
    hi = np.where(rng.random(n) < 0.3, np.inf, np.floor(y) + 1)
    hi[:3] = lo[:3] = [0.5, 1.0, 2.0]
    yield "intreg", bf.get_family("intreg", upper="hi"), lo, [rng.normal(1, 1, n), rng.normal(0, 0.5, n)], {"upper": hi}
    yt = np.abs(y) + 0.1
    yield "truncreg", bf.get_family("truncreg", ll=0.1), yt, [rng.normal(1, 1, n), rng.normal(0, 0.5, n)], {"ll": np.full(n, 0.1), "ul": np.full(n, np.inf)}
    counts = rng.integers(0, 9, n).astype(float)
    yield "tpoisson", bf.get_family("tpoisson"), counts, [rng.normal(0, 1, n)], {"ll": np.zeros(n)}
    t = rng.gamma(2.0, 1.0, n)
    fail = (rng.random(n) < 0.6).astype(float)
    for distribution, metric in SURVIVAL:
        fam = _streg(distribution, metric)
        etas = [rng.normal(0, 1, n), rng.normal(0, 0.4, n)][: fam.n_slots]
        yield f"streg-{distribution}-{metric}", fam, t, etas, {"failure": fail}


PARITY = {case[0]: case for case in _parity_cases()}


@pytest.mark.parametrize("name", list(PARITY))
def test_pytensor_equals_numpy(name):
    import pytensor
    import pytensor.tensor as pt

    _, family, y, etas, extra = PARITY[name]
    yv = pt.dvector("y")
    ev = [pt.dvector(f"e{i}") for i in range(len(etas))]
    ops = pytensor_ops()
    logp = family.logpdf(yv, ev, ops, extra)
    outputs = [logp, family.cdf(yv, ev, ops, extra), family.mean(ev, ops, extra) * pt.ones_like(yv)]
    outputs.append(pt.grad(logp.sum(), ev))
    fn = pytensor.function([yv, *ev], [*outputs[:3], *outputs[3]], on_unused_input="ignore")
    full = [np.asarray(e, dtype=float) * np.ones_like(y) for e in etas]
    got = fn(y, *full)
    with np.errstate(all="ignore"):
        want = [
            family.logpdf(y, full, NUMPY_OPS, extra),
            family.cdf(y, full, NUMPY_OPS, extra),
            family.mean(full, NUMPY_OPS, extra) * np.ones_like(y),
        ]
    for g, w, what in zip(got[:3], want, ("logpdf", "cdf", "mean")):
        finite = np.isfinite(w)
        assert np.array_equal(finite, np.isfinite(g)), (name, what)
        np.testing.assert_allclose(g[finite], w[finite], rtol=1e-10, atol=1e-12, err_msg=f"{name} {what}")
    d, _ = family.derivatives(y, full, extra)
    rows = np.isfinite(want[0])
    for s, grad in enumerate(got[3:]):
        assert np.all(np.isfinite(grad[rows])), f"{name}: pytensor gradient has NaN/inf"
        np.testing.assert_allclose(grad[rows], d[s][rows], rtol=1e-8, atol=1e-10, err_msg=f"{name} gradient {s}")


# -- analytic derivatives vs finite differences --------------------------------------------
@pytest.mark.parametrize("name", list(PARITY))
def test_eta_derivatives_equal_finite_differences(name):
    _, family, y, etas, extra = PARITY[name]
    full = [np.asarray(e, dtype=float) * np.ones_like(y) for e in etas]
    rows = np.isfinite(family.logpdf_numpy(y, full, extra))
    y, full = y[rows], [e[rows] for e in full]
    extra = {k: np.asarray(v)[rows] for k, v in extra.items()}
    d, h = family.derivatives(y, full, extra)
    fd, fh = finite_difference_derivatives(family, y, full, extra)
    np.testing.assert_allclose(d, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(fd).max()), err_msg=f"{name} d")
    np.testing.assert_allclose(h, fh, rtol=1e-4, atol=2e-5 * max(1.0, np.abs(fh).max()), err_msg=f"{name} h")


def test_derivatives_stay_finite_in_the_tails():
    """Ordinal and tobit rows 30 sds into a tail: analytic derivatives finite, score right sign."""
    fam = _ordinal(NORMAL)
    d, h = fam.derivatives(np.array([1.0, 7.0]), [np.array([40.0, -40.0]), *CUTS], {})
    assert np.all(np.isfinite(d)) and np.all(np.isfinite(h))
    assert d[0, 0] < 0 < d[0, 1]
    tob = bf.get_family("tobit", ll=0)
    d, h = tob.derivatives(np.array([0.0]), [np.array([40.0]), np.array([0.0])], {"ll": np.zeros(1), "ul": np.full(1, np.inf)})
    assert np.all(np.isfinite(d)) and np.all(np.isfinite(h)) and d[0, 0] < -30


# -- bad input -----------------------------------------------------------------------------
def _fit(spec, data):
    return bf.FMM(spec, k=1).fit(data) if isinstance(spec, list) else spec.fit(data)


def test_ordinal_outcome_with_one_level_is_a_data_error():
    data = pd.DataFrame({"y": [2, 2, 2, 2], "x": [0.1, 0.5, 0.2, 0.9]})
    with pytest.raises(bf.DataError, match=r"ologit response 'y' has 1 level\(s\) \['2'\].*at least 2"):
        bf.FMM("y ~ x", family="ologit", k=1).fit(data)
    with pytest.raises(bf.DataError, match=r"mlogit response 'y' has 1 level"):
        bf.FMM("y ~ x", family="mlogit", k=1).fit(data)


def test_categorical_response_must_be_a_column():
    data = pd.DataFrame({"y": [1, 2, 3, 1], "x": [0.1, 0.5, 0.2, 0.9]})
    with pytest.raises(bf.DataError, match="must be a column of the data, not an expression"):
        bf.FMM("np.round(y) ~ x", family="ologit", k=1).fit(data)


def test_mlogit_baseoutcome_must_be_a_level():
    data = pd.DataFrame({"y": ["a", "b", "c", "a"], "x": [0.1, 0.5, 0.2, 0.9]})
    with pytest.raises(bf.DataError, match=r"baseoutcome='z' is not a level of 'y'; levels: \['a', 'b', 'c'\]"):
        bf.FMM("y ~ x", family="mlogit", baseoutcome="z", k=1).fit(data)


def test_censoring_limits_that_contradict_the_data():
    data = pd.DataFrame({"y": [0.0, 1.0, -0.5, 2.0], "x": [0.1, 0.5, 0.2, 0.9], "lim": [0.0, 0.0, 0.0, 3.0]})
    data.index = ["a", "b", "c", "d"]
    with pytest.raises(bf.DataError, match=r"tobit response 'y' must be within its censoring limits.*rows 'c' hold \[-0.5\]"):
        bf.FMM("y ~ x", family="tobit", ll=0, k=1).fit(data)
    with pytest.raises(bf.DataError, match=r"rows 'd' hold \[2.0\]"):  # lower limit above the value
        bf.FMM("y ~ x", family="tobit", ll="lim", k=1).fit(data.drop(index="c"))
    with pytest.raises(bf.DataError, match=r"with ll < ul"):
        bf.FMM("y ~ x", family="tobit", ll=1.5, ul=1.0, k=1).fit(data)
    with pytest.raises(bf.SpecificationError, match="tobit needs a censoring limit"):
        bf.FMM("y ~ x", family="tobit", k=1)


def test_intreg_limits_that_contradict_each_other():
    data = pd.DataFrame({"lo": [0.0, 2.0, np.nan, 1.0], "hi": [1.0, 1.0, 3.0, np.nan], "x": [0.1, 0.5, 0.2, 0.9]})
    with pytest.raises(bf.DataError, match=r"intreg response 'lo' must be a lower limit no greater than the upper limit in column 'hi'.*rows 1 hold \[2.0\]"):
        bf.FMM([bf.Component("lo ~ x", family="intreg", upper="hi")], k=1).fit(data)
    both = data.assign(lo=[0.0, np.nan, np.nan, 1.0], hi=[1.0, np.nan, 3.0, np.nan])
    with pytest.raises(bf.DataError, match=r"at least one of the two limits present; rows 1"):
        bf.FMM([bf.Component("lo ~ x", family="intreg", upper="hi")], k=1).fit(both)
    with pytest.raises(bf.SpecificationError, match="intreg needs upper="):
        bf.Component("lo ~ x", family="intreg")


def test_truncation_with_observations_outside_the_range():
    data = pd.DataFrame({"y": [0.5, 1.0, -0.5, 2.0, 7.0], "x": [0.1, 0.5, 0.2, 0.9, 0.3]})
    with pytest.raises(bf.DataError, match=r"truncreg response 'y' must be within its truncation limits.*rows 2, 4 hold \[-0.5, 7.0\]"):
        bf.FMM("y ~ x", family="truncreg", ll=0, ul=5, k=1).fit(data)


def test_survival_times_and_failure_indicator_are_checked():
    data = pd.DataFrame({"t": [1.0, 0.0, 2.0, -1.0], "d": [1, 0, 1, 1], "x": [0.1, 0.5, 0.2, 0.9]})
    with pytest.raises(bf.DataError, match=r"streg response 't' must be a positive \(> 0\) survival time; rows 1, 3 hold \[0.0, -1.0\]"):
        bf.FMM("t ~ x", family="streg", failure="d", k=1).fit(data)
    data = data.assign(t=[1.0, 2.0, 3.0, 4.0], d=[1, 2, 0, -1])
    with pytest.raises(bf.DataError, match=r"failure indicator \(failure=\) column 'd' must hold 0 or 1; rows 1, 3 hold \[2.0, -1.0\]"):
        bf.FMM("t ~ x", family="streg", failure="d", k=1).fit(data)
    with pytest.raises(bf.DataError, match=r"column\(s\) 'dead' named in the model are not in the data"):
        bf.FMM("t ~ x", family="streg", failure="dead", k=1).fit(data)


def test_new_data_with_an_unseen_level_is_a_data_error():
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"y": rng.choice(["lo", "mid", "hi"], 200), "x": rng.normal(size=200)})
    res = bf.FMM("y ~ x", family="ologit", k=1).fit(data)
    with pytest.raises(bf.DataError, match=r"must be one of its fitted levels \['hi', 'lo', 'mid'\]; rows 0 hold \['top'\]"):
        res.predict(pd.DataFrame({"y": ["top"], "x": [0.0]}), kind="density")
