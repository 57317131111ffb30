"""Everything a user holds pickles: specs, families, ML, MAP and Bayesian results.

A round trip must give an object that predicts, summarises and tests exactly as the
original: the same ``params``, ``bse``, ``predict()`` and ``summary()`` text, bit for bit.
"""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm.families.gaussian import gaussian, normal_logpdf

PROTOCOLS = [pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL]


def roundtrip(obj, protocol=pickle.HIGHEST_PROTOCOL):
    return pickle.loads(pickle.dumps(obj, protocol=protocol))


# -- a family the user registers at module level -----------------------------------------
def _pickle_test_gaussian(scale: float = 1.0):
    """A user family: the gaussian with its mean multiplied by ``scale`` (module level)."""
    base = gaussian()
    return dataclasses.replace(
        base,
        name="pickle_test_gaussian",
        logpdf=_scaled_logpdf,
        mean=_scaled_mean,
        sample=None,
        eta_derivatives=None,
        weighted_fit=None,
        options={"scale": scale},
        extra_columns={"scale": float(scale)},
    )


def _scaled_logpdf(y, etas, ops, extra):
    mu, lnvar = etas
    return normal_logpdf(y, [extra["scale"] * mu, lnvar], ops)


def _scaled_mean(etas, ops, extra):
    return extra["scale"] * etas[0]


bf.register_family("pickle_test_gaussian", _pickle_test_gaussian)


def _late_registered_family():
    return dataclasses.replace(gaussian(), name="pickle_late_family")


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stamp():
    return bf.datasets.load("stamp")


@pytest.fixture(scope="module")
def stamp3(stamp):
    return bf.FMM("thickness ~ 1", k=3).fit(stamp)


def assert_same_results(a, b, data=None, test=None):
    """``b`` predicts, summarises and tests exactly as ``a``."""
    assert type(a) is type(b)
    pd.testing.assert_series_equal(a.params, b.params, check_exact=True)
    pd.testing.assert_series_equal(a.bse, b.bse, check_exact=True)
    pd.testing.assert_frame_equal(a.conf_int(), b.conf_int(), check_exact=True)
    assert str(a.summary()) == str(b.summary())
    assert a.llf == b.llf and a.nobs == b.nobs and a.df_model == b.df_model
    for kind in ("mu", "classposteriorpr"):
        pa, pb = a.predict(kind=kind), b.predict(kind=kind)
        np.testing.assert_array_equal(np.asarray(pa), np.asarray(pb))
    if data is not None:  # new data go through the stored formulas and families
        np.testing.assert_array_equal(np.asarray(a.predict(data, kind="density")), np.asarray(b.predict(data, kind="density")))
    if test is not None:
        ta, tb = a.test(test), b.test(test)
        assert (ta.statistic, ta.df, ta.pvalue) == (tb.statistic, tb.df, tb.pvalue)
        assert str(ta) == str(tb)


# -- specs ---------------------------------------------------------------------------------
SPECS = {
    "standard": lambda: bf.FMM("thickness ~ 1", k=3),
    "hybrid with options": lambda: bf.FMM(
        [
            bf.Component("y ~ 1", family="pointmass", value=0),
            bf.Component("y ~ x1 + x2", family="poisson", lcprob="~ z", exposure="t"),
        ]
    ),
    "structure": lambda: bf.FMM(
        "y ~ x1 + x2", family="binomial", trials="n", link="probit", k=3, lcprob="~ z",
        lcinvariant=["coef", "cons"], lcbase=2, constraints=["[1]x1 = 0"], group="g",
        equal="x2", nested={"x1": [(2, 3)]}, weights="w", weight_type="pweight",
    ),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", sorted(SPECS))
def test_fmm_roundtrips_to_an_equal_model(name, protocol):
    model = SPECS[name]()
    again = roundtrip(model, protocol)
    assert type(again) is type(model)
    assert again == model
    assert hash(again) == hash(model)
    assert repr(again) == repr(model)
    assert again.structure_options() == model.structure_options()
    for a, b in zip(model.components, again.components):
        assert dict(b.options) == dict(a.options)
        assert b.family.name == a.family.name and b.family.options == a.family.options


def test_component_options_are_read_only_and_roundtrip():
    comp = bf.Component("y ~ x", family="binomial", trials="Total", link="cloglog")
    assert dict(comp.options) == {"trials": "Total", "link": "cloglog"}
    with pytest.raises(TypeError):
        comp.options["link"] = "logit"  # type: ignore[index]
    again = roundtrip(comp)
    assert again == comp and again.options == {"trials": "Total", "link": "cloglog"}
    assert again.family.stata_name == "binomial, link(cloglog)"
    assert repr(again) == "Component('y ~ x', family='binomial', trials='Total', link='cloglog')"


# -- families ------------------------------------------------------------------------------
REQUIRED_OPTIONS = {"intreg": {"upper": "hi"}, "tobit": {"ll": 0.0}, "truncreg": {"ll": 0.0},
                    "ivregress": {"endogenous": "w", "instruments": "z"}}


def _inputs(family, n=7):
    """Responses in the family's support, its etas and extra columns, for a density check."""
    rng = np.random.default_rng(3)
    etas = [np.full(n, 0.3) if slot.linear else np.array(-0.2) for slot in family.slots]
    extra = {}
    for key, source in family.extra_columns.items():
        value = getattr(source, "column", source)
        extra[key] = np.full(n, 1.0) if isinstance(value, str) or value is None else np.full(n, float(value))
    if family.sample is not None:
        y = family.sample([np.broadcast_to(e, (n,)) for e in etas], rng, extra)
    else:
        y = np.abs(rng.normal(size=n)) + 0.5
    return np.asarray(y, dtype=float), etas, extra


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", bf.family_names())
def test_every_builtin_family_roundtrips(name, protocol):
    family = bf.get_family(name, **REQUIRED_OPTIONS.get(name, {}))
    again = roundtrip(family, protocol)
    assert (again.name, again.stata_name, again.support) == (family.name, family.stata_name, family.support)
    assert again.slots == family.slots and dict(again.options) == dict(family.options)
    assert dict(again.extra_columns) == dict(family.extra_columns)
    if family.response_hook is not None and name in ("ologit", "oprobit", "mlogit", "mvnormal"):
        return  # unbound: no density until bound to levels or responses (below; tests/test_mvnormal.py)
    y, etas, extra = _inputs(family)
    expected = family.logpdf_numpy(y, etas, extra)
    assert np.isfinite(expected).any()
    np.testing.assert_array_equal(again.logpdf_numpy(y, etas, extra), expected)


@pytest.mark.parametrize("name", ["ologit", "oprobit", "mlogit"])
def test_families_bound_to_levels_roundtrip_with_their_levels(name):
    column = pd.Series(["low", "mid", "high", "mid", "low"], dtype=pd.CategoricalDtype(["low", "mid", "high"]))
    bound, y = bf.get_family(name).response_hook.bind(column, "y", column.index)
    again = roundtrip(bound)
    assert again.slots == bound.slots and dict(again.options) == dict(bound.options)
    n = y.size
    etas = [np.full(n, 0.2) if s.linear and i == 0 else np.full(n, -0.5 + i) for i, s in enumerate(bound.slots)]
    expected = bound.logpdf_numpy(y, etas, {})
    assert np.all(np.isfinite(expected)) and np.all(expected < 0)
    np.testing.assert_array_equal(again.logpdf_numpy(y, etas, {}), expected)
    refit, y2 = again.response_hook.bind(column, "y", column.index)  # still bound: the same levels
    np.testing.assert_array_equal(y2, y)


def test_a_copy_made_with_replace_is_not_its_original_when_pickled():
    renamed = dataclasses.replace(bf.get_family("gaussian"), name="renamed")
    assert renamed.recipe is None  # pickles field by field: module-level functions only
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(dataclasses.replace(bf.get_family("lognormal"), name="renamed"))  # lambdas
    assert roundtrip(bf.get_family("gaussian")).name == "gaussian"


def test_user_family_registered_at_module_level_roundtrips(stamp):
    family = bf.get_family("pickle_test_gaussian", scale=2.0)
    again = roundtrip(family)
    assert again.name == "pickle_test_gaussian" and again.options == {"scale": 2.0}
    y = np.array([1.0, 2.0, 3.5])
    etas = [np.array([0.5, 1.0, 1.5]), np.array(0.1)]
    np.testing.assert_array_equal(again.logpdf_numpy(y, etas, {"scale": 2.0}), family.logpdf_numpy(y, etas, {"scale": 2.0}))
    res = bf.FMM("thickness ~ 1", family="pickle_test_gaussian", scale=2.0, k=2).fit(stamp)
    # the mean is 2 * eta: the intercepts are half the class means of the plain gaussian fit
    plain = bf.FMM("thickness ~ 1", k=2).fit(stamp)
    means = [fit.params.xs(("thickness", "Intercept"), level=("equation", "term")).to_numpy() for fit in (res, plain)]
    np.testing.assert_allclose(np.sort(means[0]) * 2, np.sort(means[1]), rtol=1e-5)
    assert_same_results(res, roundtrip(res), data=stamp.head(5))


def test_user_family_builder_travels_to_a_fresh_process():
    """A family registered at run time with a module-level builder: unpickling the model in
    a process that never registered it registers it there (what spawned workers rely on)."""
    bf.register_family("pickle_late_family", _late_registered_family)
    model = bf.FMM("thickness ~ 1", family="pickle_late_family", k=2)
    code = (
        "import pickle, sys; import bayesfmm as bf; "
        "assert 'pickle_late_family' not in bf.family_names(); "
        "m = pickle.loads(sys.stdin.buffer.read()); "
        "print(m.components[0].family.name, m.k, 'pickle_late_family' in bf.family_names())"
    )
    tests = str(Path(__file__).parent)
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {tests!r}); " + code],
        input=pickle.dumps(model), capture_output=True, timeout=120, check=True,
    )
    assert out.stdout.decode().split() == ["pickle_late_family", "2", "True"]


# -- ML results ------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ml_results_oim_roundtrip(stamp, stamp3, protocol):
    again = roundtrip(stamp3, protocol)
    assert round(again.llf, 3) == 1518.848  # Stata's optimum
    assert_same_results(stamp3, again, data=stamp.head(20), test="[1]Intercept = [2]Intercept")
    pd.testing.assert_frame_equal(stamp3.lcprob(), again.lcprob(), check_exact=True)
    pd.testing.assert_frame_equal(stamp3.lcmean(), again.lcmean(), check_exact=True)
    assert stamp3.lincom("[2]Intercept - [1]Intercept").estimate == again.lincom("[2]Intercept - [1]Intercept").estimate


def test_results_pickle_again_after_use(stamp3):
    again = roundtrip(stamp3)
    again.summary(), again.predict(), again.params  # fill the caches
    twice = roundtrip(again)
    assert_same_results(stamp3, twice)


def test_ml_results_cluster_vce_roundtrip(stamp):
    data = stamp.assign(batch=np.arange(len(stamp)) % 25)
    res = bf.FMM("thickness ~ 1", k=3).fit(data, vce="cluster", cluster="batch")
    again = roundtrip(res)
    assert again.vce == "cluster" and again.n_clusters == 25 and again.cluster == "batch"
    np.testing.assert_array_equal(again.cov_theta, res.cov_theta)
    assert_same_results(res, again, data=data.head(10), test="[1]Intercept = [3]Intercept")


def test_constrained_model_roundtrip():
    data = bf.datasets.load("fabricfault")
    model = bf.FMM("Faults ~ log(Length)", family="poisson", k=2, equal="log(Length)", constraints="[1]Intercept = 0")
    res = model.fit(data)
    assert res.df_model == 3 and res.params[(1, "Faults", "Intercept")] == 0.0
    again = roundtrip(res)
    assert again.spec == model
    assert again.layout.n_free == 3
    assert_same_results(res, again, data=data.head(8), test="[2]Intercept = 0")


def test_lcinvariant_model_roundtrip(stamp):
    res = bf.FMM("thickness ~ 1", k=2, lcinvariant="errvar").fit(stamp)
    again = roundtrip(res)
    var = again.params.xs("var(e)", level="term").to_numpy()
    assert var[0] == var[1]
    assert_same_results(res, again, test="[1]Intercept = [2]Intercept")


def test_grouped_model_roundtrip():
    data = bf.datasets.load("betablocker")
    model = bf.FMM("Deaths ~ Treatment", family="binomial", trials="Total", k=2, group="Center", equal="Treatment")
    res = model.fit(data)
    assert res.nobs == 44 and res.spec.group == "Center"
    again = roundtrip(res)
    post = again.predict(kind="classposteriorpr")
    spread = post.groupby(data["Center"].to_numpy()).agg(np.ptp).to_numpy()
    assert spread.max() < 1e-12  # still one class per centre
    assert_same_results(res, again, data=data.head(6), test="[1]Intercept = [2]Intercept")


def test_ordinal_results_roundtrip_with_their_levels():
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)
    latent = 1.2 * x + rng.logistic(size=300)
    y = pd.Categorical(np.select([latent < -0.5, latent < 0.8], ["low", "mid"], "high"), ["low", "mid", "high"])
    data = pd.DataFrame({"y": y, "x": x})
    res = bf.FMM("y ~ x", family="ologit", k=1).fit(data)
    again = roundtrip(res)
    assert list(again.params.index.get_level_values("term")) == ["x", "cut1", "cut2"]
    assert_same_results(res, again, data=data.head(10), test="[1]x = 1.2")


def test_map_results_roundtrip(stamp):
    mode = bf.FMM("thickness ~ 1", k=2).map(stamp)
    again = roundtrip(mode)
    assert type(again).__name__ == "MAPResults" and again.logp == mode.logp
    assert_same_results(mode, again)


# -- Bayesian results --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def posterior(stamp):
    start = time.perf_counter()
    post = bf.FMM("thickness ~ 1", k=2).sample(stamp, draws=100, tune=100, chains=2, random_seed=4, progressbar=False)
    return post, time.perf_counter() - start


@pytest.mark.slow
def test_bayes_results_roundtrip_and_rebuild_their_model(posterior, stamp):
    post, _ = posterior
    again = roundtrip(post)
    assert type(again) is type(post)
    np.testing.assert_array_equal(again.theta_draws, post.theta_draws)
    assert_same_results(post, again)
    np.testing.assert_array_equal(np.asarray(again.predict(stamp.head(5))), np.asarray(post.predict(stamp.head(5))))
    pd.testing.assert_frame_equal(again.lcprob(), post.lcprob(), check_exact=True)
    assert again.diagnostics().verdict == post.diagnostics().verdict
    # the PyMC model was not stored: it is built again, with the same variables and density
    assert "_model" not in vars(again.built)
    assert sorted(again.model.named_vars) == sorted(post.model.named_vars)
    theta = post.theta
    assert again.built.theta_logp_function()(theta)[0] == pytest.approx(post.built.theta_logp_function()(theta)[0], rel=1e-12)
    assert again.built.order.description == post.built.order.description
    assert roundtrip(again).params.equals(post.params)  # a restored fit pickles again
