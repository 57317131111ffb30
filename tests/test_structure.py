"""Class structure: constraints (lcinvariant, equal, nested, fixed values, linear
equations), weights and groups: their algebra, their standard errors, their errors, and
recovery of a simulated concomitant-variable mixture."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm.design import build_design
from bayesfmm.likelihood import MixtureProblem, loglike, score_hessian
from bayesfmm.params import build_layout


def _layout(model, data):
    design = build_design(model, data)
    return build_layout(design)


@pytest.fixture(scope="module")
def regression_data():
    rng = np.random.default_rng(5)
    n = 400
    x = rng.standard_normal(n)
    z = rng.standard_normal(n)
    cls = rng.integers(0, 2, size=n)
    y = np.where(cls == 0, -3 + 1.0 * x, 3 + 1.0 * x) + rng.standard_normal(n)
    counts = rng.poisson(np.exp(np.where(cls == 0, 0.2, 1.5) + 0.3 * x))
    return pd.DataFrame({"y": y, "x": x, "z": z, "c": counts, "g": np.arange(n) // 4})


# -- the constraint map ---------------------------------------------------------------
def test_lcinvariant_classes_tie_what_stata_says(regression_data):
    def free(**options):
        return _layout(bf.FMM("y ~ x + z", k=3, **options), regression_data).n_free

    full = free()  # 2 logits + 3 x (Intercept, x, z, var(e))
    assert full == 2 + 3 * 4
    assert free(lcinvariant="cons") == full - 2
    assert free(lcinvariant="coef") == full - 4  # x and z
    assert free(lcinvariant="errvar") == full - 2
    assert free(lcinvariant="scale") == full  # a gaussian has no scale parameter
    assert free(lcinvariant="all") == 2 + 4
    assert free(lcinvariant=["cons", "errvar"]) == full - 4
    nb = _layout(bf.FMM("c ~ x", family="nbinomial", k=2, lcinvariant="scale"), regression_data)
    assert nb.n_free == 1 + 2 * 3 - 1  # alpha shared


def test_constraint_map_solves_for_the_last_named_parameter(regression_data):
    layout = _layout(bf.FMM("y ~ x", k=3, constraints=["[1]x = [2]x", "[3]Intercept = 0", "[1]x + [3]x = 1"]), regression_data)
    cons = layout.constraints
    names = ["[{}]{}:{}".format(*key) for key in layout.index]
    free = [names[i] for i in cons.free]
    assert "[1]y:x" in free and "[2]y:x" not in free and "[3]y:x" not in free
    theta = cons.expand(np.arange(1.0, cons.n_free + 1))
    value = dict(zip(names, theta))
    assert value["[1]y:x"] == value["[2]y:x"]
    assert value["[3]y:Intercept"] == 0.0
    assert value["[1]y:x"] + value["[3]y:x"] == pytest.approx(1.0)
    assert layout.fixed_mask()[names.index("[3]y:Intercept")]
    # projection moves any vector onto the constraints, and leaves feasible ones alone
    rng = np.random.default_rng(0)
    projected = layout.project(rng.standard_normal(layout.size))
    assert np.allclose(layout.project(projected), projected)


def test_variance_constraints_act_on_the_reported_scale(regression_data):
    layout = _layout(bf.FMM("y ~ x", k=2, constraints=["[1]var(e) = 2", "[1]var(e) = [2]var(e)"]), regression_data)
    theta = layout.constraints.expand(np.zeros(layout.n_free))
    report = layout.series(layout.to_report(theta))
    assert report[(1, "y", "var(e)")] == pytest.approx(2.0)
    assert report[(2, "y", "var(e)")] == pytest.approx(2.0)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"constraints": "[1]w = 0"}, "unknown parameter '\\[1\\]w'"),
        ({"constraints": "[5]x = 0"}, "class in \\[ \\] must be a number from 1 to 2"),
        ({"constraints": ["[1]x = 1", "[1]x = 2"]}, "contradict each other"),
        ({"constraints": ["[1]x = [2]x", "[1]x = 1", "[2]x = 2"]}, "contradict each other"),
        ({"constraints": "[1]var(e) + [2]var(e) = 2"}, "not linear in the estimated parameters"),
        ({"constraints": "[1]var(e) = -1"}, "cannot take the value -1"),
        ({"equal": "w"}, "equal names 'w', which is not a term"),
        ({"nested": {"x": [(1, 2)]}, "k": 3, "constraints": None}, None),
    ],
)
def test_constraint_errors_name_the_rule(regression_data, options, message):
    options = dict(options)
    k = options.pop("k", 2)
    model = bf.FMM("y ~ x", k=k, **options)
    if message is None:
        assert _layout(model, regression_data).n_free == 2 + 3 * 3 - 1
        return
    with pytest.raises(bf.SpecificationError, match=message):
        _layout(model, regression_data)


def test_constraints_leaving_nothing_free(regression_data):
    fixed = ["[2]Class:Intercept = 0"] + [f"[{j}]{t} = 1" for j in (1, 2) for t in ("Intercept", "x", "var(e)")]
    with pytest.raises(bf.SpecificationError, match="no free parameter"):
        _layout(bf.FMM("y ~ x", k=2, constraints=fixed), regression_data)


# -- estimation under constraints -------------------------------------------------------
def test_lcinvariant_coef_equals_equal_on_every_slope(regression_data):
    a = bf.FMM("y ~ x + z", k=2, lcinvariant="coef").fit(regression_data)
    b = bf.FMM("y ~ x + z", k=2, equal=["x", "z"]).fit(regression_data)
    assert a.llf == pytest.approx(b.llf, abs=1e-8)
    assert a.df_model == b.df_model == 1 + 2 * 2 + 2
    assert np.allclose(a.params, b.params, atol=1e-6)


def test_standard_errors_under_constraints_equal_the_numerical_hessian_in_the_free_parameters():
    data = bf.datasets.load("fabricfault")
    model = bf.FMM("Faults ~ log(Length)", family="poisson", k=2, equal="log(Length)", constraints="[1]Intercept = 0")
    res = model.fit(data, startvalues="randompr", draws=10, seed=1)
    cons = res.layout.constraints
    phi = cons.reduce(res.theta)
    h = 1e-4
    f = len(phi)
    H = np.zeros((f, f))
    for a in range(f):
        for b in range(f):
            ea, eb = np.eye(f)[a] * h, np.eye(f)[b] * h
            H[a, b] = (
                loglike(res.problem, cons.expand(phi + ea + eb)) - loglike(res.problem, cons.expand(phi + ea - eb))
                - loglike(res.problem, cons.expand(phi - ea + eb)) + loglike(res.problem, cons.expand(phi - ea - eb))
            ) / (4 * h * h)
    cov = cons.T @ np.linalg.inv(-H) @ cons.T.T
    se = np.sqrt(np.diag(cov))
    assert np.allclose(res.bse.to_numpy(), se, rtol=1e-4, atol=1e-10)
    # delta-method postestimation keeps working
    assert np.all(np.isfinite(res.lcprob()["se"])) and np.all(np.isfinite(res.lcmean()["se"]))


def test_relabel_carries_class_specific_constraints():
    data = bf.datasets.load("fabricfault")
    model = bf.FMM("Faults ~ log(Length)", family="poisson", k=2, equal="log(Length)", constraints="[1]Intercept = 0")
    res = model.fit(data, startvalues="randompr", draws=10, seed=1)
    swapped = res.relabel([2, 1])
    assert swapped.params[(2, "Faults", "Intercept")] == 0.0
    assert swapped.bse[(2, "Faults", "Intercept")] == 0.0
    assert swapped.llf == pytest.approx(res.llf, abs=1e-9)
    assert swapped.layout.constraints.descriptions[-1].startswith("[2]Faults:Intercept")


# -- weights ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def weighted_counts():
    rng = np.random.default_rng(11)
    n = 300
    x = rng.standard_normal(n)
    y = rng.poisson(np.exp(0.5 + 0.4 * x))
    w = rng.integers(1, 5, size=n).astype(float)
    return pd.DataFrame({"y": y, "x": x, "w": w})


def test_one_class_fweights_equal_statsmodels_freq_weights(weighted_counts):
    import statsmodels.api as sm

    data = weighted_counts
    res = bf.FMM("y ~ x", family="poisson", k=1, weights="w").fit(data)
    glm = sm.GLM(data["y"], sm.add_constant(data["x"]), family=sm.families.Poisson(), freq_weights=data["w"]).fit(tol=1e-12)
    assert res.llf == pytest.approx(glm.llf, abs=1e-6)
    assert np.allclose(res.params.to_numpy(), glm.params.to_numpy(), rtol=1e-5)
    assert np.allclose(res.bse.to_numpy(), glm.bse.to_numpy(), rtol=1e-6)
    assert res.nobs == int(data["w"].sum())


def test_one_class_iweights_equal_statsmodels_var_weights(weighted_counts):
    import statsmodels.api as sm

    data = weighted_counts.assign(w=weighted_counts["w"] / 3.0)
    res = bf.FMM("y ~ x", family="poisson", k=1, weights="w", weight_type="iweight").fit(data)
    glm = sm.GLM(data["y"], sm.add_constant(data["x"]), family=sm.families.Poisson(), var_weights=data["w"]).fit(tol=1e-12)
    assert res.llf == pytest.approx(glm.llf, abs=1e-6)
    assert np.allclose(res.params.to_numpy(), glm.params.to_numpy(), rtol=1e-5)
    assert np.allclose(res.bse.to_numpy(), glm.bse.to_numpy(), rtol=1e-6)
    assert res.nobs == len(data)


def test_pweights_imply_robust_and_weight_each_score(weighted_counts):
    data = weighted_counts
    res = bf.FMM("y ~ x", family="poisson", k=1, weights="w", weight_type="pweight").fit(data)
    assert res.vce == "robust"
    # the sandwich written out: D (sum (w s)(w s)') D n/(n-1), D = (sum w x x' mu)^-1
    X = np.column_stack([np.ones(len(data)), data["x"]])
    beta = res.params.to_numpy()
    mu = np.exp(X @ beta)
    w = data["w"].to_numpy()
    bread = np.linalg.inv(X.T @ ((w * mu)[:, None] * X))
    scores = (w * (data["y"].to_numpy() - mu))[:, None] * X
    n = len(data)
    cov = n / (n - 1) * bread @ scores.T @ scores @ bread
    assert np.allclose(res.bse.to_numpy(), np.sqrt(np.diag(cov)), rtol=1e-6)
    with pytest.raises(bf.SpecificationError, match="pweight"):
        bf.FMM("y ~ x", family="poisson", k=1, weights="w", weight_type="pweight").fit(data, vce="oim")


def test_fweights_equal_row_replication_in_a_mixture(regression_data):
    rng = np.random.default_rng(3)
    data = regression_data.assign(w=rng.integers(1, 4, size=len(regression_data)).astype(float))
    replicated = data.loc[data.index.repeat(data["w"].astype(int))].reset_index(drop=True)
    weighted = bf.FMM("y ~ x", k=2, lcprob="~ z", weights="w").fit(data)
    for vce in ("oim", "robust", "opg"):
        a = bf.FMM("y ~ x", k=2, lcprob="~ z", weights="w").fit(data, vce=vce, from_=weighted.params)
        b = bf.FMM("y ~ x", k=2, lcprob="~ z").fit(replicated, vce=vce, from_=weighted.params)
        assert a.llf == pytest.approx(b.llf, abs=1e-8)
        assert np.allclose(a.params, b.params, rtol=1e-7, atol=1e-9)
        assert np.allclose(a.bse, b.bse, rtol=1e-7), vce
        assert a.nobs == b.nobs == len(replicated)


def test_weight_errors(weighted_counts):
    data = weighted_counts.copy()
    data.loc[3, "w"] = -1.0
    with pytest.raises(bf.DataError, match="weights column 'w' must be non-negative; rows 3"):
        bf.FMM("y ~ x", family="poisson", k=1, weights="w").fit(data)
    data.loc[3, "w"] = 1.5
    with pytest.raises(bf.DataError, match="fweight column 'w' must hold whole numbers"):
        bf.FMM("y ~ x", family="poisson", k=1, weights="w").fit(data)


# -- groups -----------------------------------------------------------------------------
def test_singleton_groups_equal_the_ungrouped_model(regression_data):
    data = regression_data.assign(row=np.arange(len(regression_data)))
    a = bf.FMM("y ~ x", k=2, lcprob="~ z").fit(data)
    b = bf.FMM("y ~ x", k=2, lcprob="~ z", group="row").fit(data)
    assert a.llf == pytest.approx(b.llf, abs=1e-8)
    assert np.allclose(a.params, b.params, atol=1e-6)
    assert np.allclose(a.bse, b.bse, rtol=1e-6)


def test_grouped_score_and_hessian_equal_finite_differences(regression_data):
    rng = np.random.default_rng(2)
    data = regression_data.assign(zg=np.repeat(rng.standard_normal(100), 4), wg=np.repeat(rng.integers(1, 3, 100), 4).astype(float))
    model = bf.FMM("y ~ x", k=2, lcprob="~ zg", group="g", weights="wg")
    design = build_design(model, data)
    problem = MixtureProblem.build(design, build_layout(design))
    theta = rng.standard_normal(problem.layout.size) * 0.3
    _, g, H = score_hessian(problem, theta)
    h = 1e-5
    eye = np.eye(theta.size) * h
    g_num = np.array([(loglike(problem, theta + e) - loglike(problem, theta - e)) / (2 * h) for e in eye])
    H_num = np.array([(score_hessian(problem, theta + e)[1] - score_hessian(problem, theta - e)[1]) / (2 * h) for e in eye])
    assert np.allclose(g, g_num, rtol=1e-6, atol=1e-6)
    assert np.allclose(H, H_num, rtol=1e-5, atol=1e-5)


def test_group_errors(regression_data):
    with pytest.raises(bf.DataError, match="class-model covariates .* vary within groups of 'g'"):
        bf.FMM("y ~ x", k=2, lcprob="~ z", group="g").fit(regression_data)
    data = regression_data.assign(cl=np.arange(len(regression_data)) % 3)
    with pytest.raises(bf.DataError, match="cluster column 'cl' varies within groups of 'g'"):
        bf.FMM("y ~ x", k=2, group="g").fit(data, vce="cluster", cluster="cl")


# -- recovery ---------------------------------------------------------------------------
def _simulate_concomitant_poisson(n: int, common_slope: bool, seed: int):
    rng = np.random.default_rng(seed)
    z1, z2, x = rng.standard_normal((3, n))
    gamma = np.array([[0.0, 0.0, 0.0], [0.3, 0.8, -0.5], [-0.2, -0.6, 0.9]])  # Intercept, z1, z2
    logits = np.column_stack([np.ones(n), z1, z2]) @ gamma.T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    cls = (p.cumsum(axis=1) > rng.random(n)[:, None]).argmax(axis=1)
    beta = np.array([[0.0, 0.5], [1.5, 0.5 if common_slope else -0.3], [3.0, 0.5 if common_slope else 0.2]])
    y = rng.poisson(np.exp(beta[cls, 0] + beta[cls, 1] * x))
    truth = {}
    for j in range(3):
        if j:
            for t, name in enumerate(("Intercept", "z1", "z2")):
                truth[(j + 1, "Class", name)] = gamma[j, t]
        truth[(j + 1, "y", "Intercept")] = beta[j, 0]
        truth[(j + 1, "y", "x")] = beta[j, 1]
    return pd.DataFrame({"y": y, "x": x, "z1": z1, "z2": z2}), truth


@pytest.mark.parametrize("invariant", ["none", "coef"])
def test_concomitant_poisson_recovers_every_parameter(invariant):
    data, truth = _simulate_concomitant_poisson(20_000, common_slope=invariant == "coef", seed=7)
    res = bf.FMM("y ~ x", family="poisson", k=3, lcprob="~ z1 + z2", lcinvariant=invariant).fit(data)
    assert res.converged
    res = res.relabel(("y", "Intercept"))
    for key, value in truth.items():
        z = (res.params[key] - value) / res.bse[key]
        assert abs(z) < 3, f"{key}: estimate {res.params[key]:.4f}, truth {value}, se {res.bse[key]:.4f}"
    if invariant == "coef":
        assert np.ptp(res.params.xs("x", level="term").to_numpy()) == 0.0
        assert res.df_model == 6 + 3 + 1


def test_simulate_draws_one_class_per_group():
    data = bf.datasets.load("betablocker")
    res = bf.FMM("Deaths ~ Treatment", family="binomial", trials="Total", k=2, group="Center", equal="Treatment").fit(data)
    shares = []
    for seed in range(200):
        _, classes = bf.simulate(res, rng=seed, return_class=True)
        per_center = classes.groupby(data["Center"].to_numpy())
        assert per_center.nunique().max() == 1  # both arms of a centre in one class
        shares.append((per_center.first() == 1).mean())
    p1 = res.lcprob()["margin"].iloc[0]
    # 200 x 22 centre draws: the share of class 1 within 4 binomial standard errors
    assert abs(np.mean(shares) - p1) < 4 * np.sqrt(p1 * (1 - p1) / (200 * 22))


def test_grouped_posteriors_on_new_data_need_the_group_column():
    data = bf.datasets.load("betablocker")
    res = bf.FMM("Deaths ~ Treatment", family="binomial", trials="Total", k=2, group="Center", equal="Treatment").fit(data)
    same = res.predict(data, kind="classposteriorpr")
    assert np.allclose(same.to_numpy(), res.predict(kind="classposteriorpr").to_numpy(), atol=1e-12)
    with pytest.raises(bf.DataError, match="grouped by 'Center'"):
        res.predict(data.drop(columns="Center"), kind="classposteriorpr")
    assert res.predict(data.drop(columns="Center"), kind="mu").shape == (len(data), 2)
