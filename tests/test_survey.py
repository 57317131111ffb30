"""Survey fits (``fit(survey=bf.SurveyDesign(...), subpop=)``), as Stata's ``svy: fmm``.

Oracles: R's survey package (``svyglm``, linearized variance; tests/reference/survey/, made by
make_survey_reference.R) for 1-class gaussian, poisson and logit models under a stratified
cluster design with an fpc, with singleton strata (each ``singleunit``), and with a
subpopulation; for 2-class models a sandwich computed here, independently, from per-row
scores and the design by the textbook formula.
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesfmm as bf
from bayesfmm.likelihood import evaluate, pointwise_loglike, row_scores, unit_scores

REFERENCE = Path(__file__).parent / "reference" / "survey"
DATA = pd.read_csv(REFERENCE / "survey_data.csv")
R = json.loads((REFERENCE / "survey_reference.json").read_text())

FAMILIES = {"gaussian": ("yg", "gaussian"), "poisson": ("yp", "poisson"), "logit": ("yb", "logit")}
DESIGNS = {
    "full": (dict(weights="w", strata="str", psu="psu", fpc="N_psu"), None),
    "fraction": (dict(weights="w", strata="str", psu="psu", fpc="f_psu"), None),
    "cluster": (dict(weights="w", psu="psu_unique"), None),
    "subpop": (dict(weights="w", strata="str", psu="psu", fpc="N_psu"), "sub"),
    "single_certainty": (dict(weights="w", strata="str1", psu="psu", singleunit="certainty"), None),
    "single_scaled": (dict(weights="w", strata="str1", psu="psu", singleunit="scaled"), None),
    "single_centered": (dict(weights="w", strata="str1", psu="psu", singleunit="centered"), None),
}
FULL = bf.SurveyDesign(weights="w", strata="str", psu="psu", fpc="N_psu")


# -- 1 class: R's svyglm --------------------------------------------------------------------
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("design", list(DESIGNS))
def test_one_class_equals_svyglm(design, family):
    options, subpop = DESIGNS[design]
    y, name = FAMILIES[family]
    ref = R[f"{design}/{family}"]
    res = bf.FMM(f"{y} ~ x1 + x2", family=name, k=1).fit(DATA, survey=bf.SurveyDesign(**options), subpop=subpop)
    keys = [(1, y, t) for t in ref["terms"]]
    np.testing.assert_allclose(res.params[keys].to_numpy(), ref["coef"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.bse[keys].to_numpy(), ref["se"], rtol=0, atol=1e-8)
    assert res.design.survey.df == ref["df"]
    assert res.vce == "linearized"


def test_singleunit_options_differ_and_fpc_shrinks():
    """The R references are distinct, so each singleunit branch is checked for itself."""
    ses = {d: R[f"{d}/gaussian"]["se"][1] for d in ("single_certainty", "single_scaled", "single_centered")}
    assert len({round(v, 6) for v in ses.values()}) == 3
    without_fpc = bf.FMM("yg ~ x1 + x2", k=1).fit(DATA, survey=bf.SurveyDesign(weights="w", strata="str", psu="psu"))
    assert without_fpc.bse[(1, "yg", "x1")] > R["full/gaussian"]["se"][1] + 1e-4


# -- 2 classes: an independent sandwich -----------------------------------------------------
def _textbook_sandwich(res, data, weights, strata, psu, fpc=None, singleunit="fail", scores=None):
    """``D G D`` written from Stata's [SVY] formula with pandas, one stratum at a time."""
    scores = row_scores(res.problem, res.theta) if scores is None else scores
    rows = pd.DataFrame(0.0, index=data.index, columns=range(scores.shape[1]))
    rows.loc[res.design.index] = scores * data.loc[res.design.index, weights].to_numpy()[:, None]
    rows["h"], rows["i"] = data[strata], data[psu]
    totals = rows.groupby(["h", "i"]).sum()
    grand = totals.to_numpy().mean(axis=0)
    n_strata = totals.index.get_level_values("h").nunique()
    G = np.zeros((scores.shape[1], scores.shape[1]))
    lonely = 0
    for h, z in totals.groupby(level="h"):
        m = len(z)
        f = 0.0 if fpc is None else m / data.loc[data[strata] == h, fpc].iloc[0]
        if m > 1:
            dev = z.to_numpy() - z.to_numpy().mean(axis=0)
            G += (1 - f) * m / (m - 1) * dev.T @ dev
        elif singleunit == "centered":
            dev = z.to_numpy() - grand
            G += (1 - f) * dev.T @ dev
        else:
            lonely += 1
    if singleunit == "scaled":
        G *= n_strata / (n_strata - lonely)
    D = np.linalg.inv(-res.hessian)
    return D @ G @ D


@pytest.fixture(scope="module")
def two_class():
    return bf.FMM("yg ~ x1 + x2", k=2).fit(DATA, survey=FULL, subpop="sub")


def test_two_class_equals_textbook_sandwich(two_class):
    res = two_class
    V = _textbook_sandwich(res, DATA, "w", "str", "psu", fpc="N_psu")
    np.testing.assert_allclose(res.cov_theta, V, rtol=1e-8, atol=1e-14)
    jac = res.layout.report_jacobian(res.theta)
    np.testing.assert_allclose(res.bse.to_numpy(), np.sqrt(np.diag(V)) * np.abs(jac), rtol=1e-8, atol=1e-14)
    assert res.design.survey.n_obs == len(DATA) and res.design.n == int(DATA["sub"].sum())


@pytest.mark.parametrize("singleunit", ["certainty", "scaled", "centered"])
def test_two_class_singleunit_equals_textbook_sandwich(singleunit):
    design = bf.SurveyDesign(weights="w", strata="str1", psu="psu", singleunit=singleunit)
    res = bf.FMM("yp ~ x1", family="poisson", k=2).fit(DATA, survey=design, seed=1)
    V = _textbook_sandwich(res, DATA, "w", "str1", "psu", singleunit=singleunit)
    np.testing.assert_allclose(res.cov_theta, V, rtol=1e-8, atol=1e-14)


def test_row_scores_are_the_derivatives_of_the_row_loglikelihood(two_class):
    """The sandwich's scores checked against central differences of each row's log likelihood."""
    res = two_class
    problem, theta = res.problem, res.theta
    w = problem.design.weights
    numeric = np.empty((problem.n, theta.size))
    for k in range(theta.size):
        step = 1e-6 * max(1.0, abs(theta[k]))
        up, down = theta.copy(), theta.copy()
        up[k] += step
        down[k] -= step
        diff = pointwise_loglike(problem, evaluate(problem, up)) - pointwise_loglike(problem, evaluate(problem, down))
        numeric[:, k] = diff / (2 * step) / w
    np.testing.assert_allclose(row_scores(problem, theta), numeric, rtol=1e-5, atol=1e-5)


def test_grouped_model_uses_group_scores():
    data = DATA.copy()
    data["pair"] = data["psu_unique"].astype(str) + "-" + (data.groupby("psu_unique").cumcount() // 2).astype(str)
    data["w_pair"] = data.groupby("pair")["w"].transform("first")
    design = bf.SurveyDesign(weights="w_pair", strata="str", psu="psu", fpc="N_psu")
    res = bf.FMM("yg ~ x1", k=2, group="pair").fit(data, survey=design)
    scores = unit_scores(res.problem, res.theta)
    firsts = res.design.index[res.design.groups.first]
    expanded = np.zeros((res.design.n, scores.shape[1]))
    expanded[res.design.groups.first] = scores
    V = _textbook_sandwich(res, data.assign(w=np.where(data.index.isin(firsts), data["w_pair"], 0.0)),
                           "w", "str", "psu", fpc="N_psu", scores=expanded)
    np.testing.assert_allclose(res.cov_theta, V, rtol=1e-8, atol=1e-14)
    data.loc[data.index[1], "psu"] = data.loc[data.index[1], "psu"] + 1  # a pair split over two PSUs
    with pytest.raises(bf.DataError, match="vary within groups of 'pair'"):
        bf.FMM("yg ~ x1", k=2, group="pair").fit(data, survey=design)


# -- t, F, lincom, postestimation, refusals -------------------------------------------------
def test_t_reference_and_adjusted_wald(two_class):
    res = two_class
    d = res.design.survey.df
    assert d == 44
    t = res.zvalues.dropna()
    np.testing.assert_allclose(res.pvalues[t.index], 2 * stats.t.sf(np.abs(t), d), rtol=1e-10)
    key = (2, "yg", "x1")
    ci = res.conf_int(0.1).loc[key]
    q = stats.t.ppf(0.95, d)
    np.testing.assert_allclose(ci.to_numpy(), res.params[key] + np.array([-q, q]) * res.bse[key], rtol=1e-10)

    test = res.test(["[1]x1 = [2]x1", "[1]x2 = [2]x2"])
    keys = [(1, "yg", "x1"), (2, "yg", "x1"), (1, "yg", "x2"), (2, "yg", "x2")]
    b = res.params[keys].to_numpy()
    V = res.cov_params().loc[keys, keys].to_numpy()
    Rm = np.array([[1.0, -1, 0, 0], [0, 0, 1, -1]])
    chi2 = (Rm @ b) @ np.linalg.solve(Rm @ V @ Rm.T, Rm @ b)
    F = (d - 2 + 1) / (2 * d) * chi2
    assert test.df == 2 and test.df_r == d - 1
    np.testing.assert_allclose([test.statistic, test.F, test.pvalue], [chi2, F, stats.f.sf(F, 2, d - 1)], rtol=1e-10)
    assert "F(  2,    43)" in str(test)

    lc = res.lincom("[2]x1 - [1]x1", alpha=0.1)
    est = res.params[(2, "yg", "x1")] - res.params[(1, "yg", "x1")]
    se = np.sqrt(V[1, 1] + V[0, 0] - 2 * V[0, 1])
    np.testing.assert_allclose([lc.estimate, lc.se, lc.pvalue, lc.upper],
                               [est, se, 2 * stats.t.sf(abs(est / se), d), est + q * se], rtol=1e-10)
    assert lc.df == d and "P>|t|" in str(lc)


def test_postestimation_uses_the_linearized_covariance(two_class):
    res = two_class
    lp = res.lcprob()
    np.testing.assert_allclose(lp["margin"].sum(), 1.0, rtol=1e-12)
    sub = DATA[DATA["sub"] == 1]
    plain = bf.FMM("yg ~ x1 + x2", k=2, weights="w", weight_type="pweight").fit(sub)
    np.testing.assert_allclose(plain.params.to_numpy(), res.params.to_numpy(), rtol=1e-6, atol=1e-8)
    assert np.all(np.abs(lp["se"].to_numpy() - plain.lcprob()["se"].to_numpy()) > 1e-6)
    q = stats.t.ppf(0.975, res.design.survey.df)
    logit_m = np.log(lp["margin"] / (1 - lp["margin"]))
    upper = 1 / (1 + np.exp(-(logit_m + q * lp["se"] / (lp["margin"] * (1 - lp["margin"])))))
    np.testing.assert_allclose(lp["upper"], upper, rtol=1e-10)
    lm = res.lcmean()
    np.testing.assert_allclose(lm["upper"] - lm["margin"], q * lm["se"], rtol=1e-10)
    assert res.predict(kind="classposteriorpr").shape == (len(sub), 2)
    assert res.predict(DATA.head(7)).shape[0] == 7
    text = str(res.summary())
    for piece in ("Linearized", "P>|t|", "Design df        =         44", f"Number of obs     = {len(DATA):>10,}",
                  f"Subpop. no. obs  = {len(sub):>10,}"):
        assert piece in text


@pytest.mark.parametrize("call", ["aic", "bic", "ic", "lrtest", "bf.lrtest"])
def test_likelihood_ratio_and_criteria_are_refused(two_class, call):
    res = two_class
    actions = {
        "aic": lambda: res.aic,
        "bic": lambda: res.bic,
        "ic": res.ic,
        "lrtest": lambda: res.lrtest(res, force=True),
        "bf.lrtest": lambda: bf.lrtest(res, res),
    }
    with pytest.raises(bf.SpecificationError, match="not available after a survey fit"):
        actions[call]()


def test_results_pickle(two_class):
    back = pickle.loads(pickle.dumps(two_class))
    assert back.bse.equals(two_class.bse) and back.pvalues.equals(two_class.pvalues)
    assert str(back.summary()) == str(two_class.summary())


# -- which rows are in the design -----------------------------------------------------------
def test_missing_values_follow_stata():
    data = DATA.copy()
    outside = data.index[data["sub"] == 0][:3]
    inside = data.index[data["sub"] == 1][:2]
    data.loc[outside, "yg"] = np.nan  # outside the subpopulation: stay in the design
    data.loc[inside, "yg"] = np.nan  # inside: leave the design
    data.loc[data.index[-1], "w"] = np.nan  # a missing weight: leaves the design
    with pytest.warns(bf.DataWarning) as caught:
        res = bf.FMM("yg ~ x1 + x2", k=1).fit(data, survey=FULL, subpop="sub")
    messages = " ".join(str(w.message) for w in caught)
    assert "subpopulation 'sub' dropped" in messages and "'w' (1)" in messages
    survey = res.design.survey
    assert survey.n_obs == len(data) - 3 and survey.subpop_obs == res.design.n
    assert res.design.n == int((DATA["sub"] == 1).sum()) - 2 - int(DATA["sub"].iloc[-1] == 1)


# -- wrong input ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, match",
    [
        (dict(weights=3), r"SurveyDesign\(weights=\)"),
        (dict(strata=""), r"SurveyDesign\(strata=\)"),
        (dict(psu=["a"]), r"SurveyDesign\(psu=\)"),
        (dict(fpc=1.0), r"SurveyDesign\(fpc=\)"),
        (dict(singleunit="missing"), r"singleunit='missing'"),
        (dict(weights="w", strata="w"), r"name the same column 'w'"),
    ],
)
def test_bad_survey_design_options(options, match):
    with pytest.raises(bf.SpecificationError, match=match):
        bf.SurveyDesign(**options)


def test_survey_design_is_frozen_and_picklable():
    assert pickle.loads(pickle.dumps(FULL)) == FULL
    with pytest.raises(AttributeError):
        FULL.psu = "other"
    assert str(FULL) == "svyset psu [pweight=w], strata(str) fpc(N_psu) singleunit(fail)"


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(survey="str"), "survey= takes a bf.SurveyDesign"),
        (dict(subpop="sub"), "subpop= goes with a survey design"),
        (dict(survey=FULL, subpop=1), "subpop= must be a column name"),
        (dict(survey=FULL, vce="robust"), "vce='robust'"),
        (dict(survey=FULL, cluster="psu"), "cluster='psu'"),
    ],
)
def test_bad_fit_options(options, match):
    with pytest.raises(bf.SpecificationError, match=match):
        bf.FMM("yg ~ x1", k=1).fit(DATA, **options)


def test_weights_twice_refused():
    with pytest.raises(bf.SpecificationError, match=r"SurveyDesign\(weights=\), not FMM\(weights='w'\)"):
        bf.FMM("yg ~ x1", k=1, weights="w", weight_type="pweight").fit(DATA, survey=FULL)


def _edit(column, rows, value):
    data = DATA.copy()
    data[column] = data[column].astype(object if isinstance(value, str) else float)
    data.loc[rows, column] = value
    return data


@pytest.mark.parametrize(
    "data, design, subpop, match",
    [
        (DATA, dict(weights="pw", strata="str", psu="psu"), None, r"'pw' given as SurveyDesign\(weights=\)"),
        (DATA, dict(strata="stratum", psu="psu"), None, r"'stratum' given as SurveyDesign\(strata=\)"),
        (DATA, dict(weights="w", psu="cluster"), None, r"'cluster' given as SurveyDesign\(psu=\)"),
        (DATA, dict(weights="w", strata="str", psu="psu", fpc="N"), None, r"'N' given as SurveyDesign\(fpc=\)"),
        (DATA, dict(weights="w", strata="str", psu="psu"), "in_sub", r"'in_sub' given as subpop="),
        (_edit("w", [3, 4], -1.0), dict(weights="w", strata="str", psu="psu"), None,
         r"weights column 'w' \(SurveyDesign\(weights=\)\) must hold non-negative numbers; rows 3, 4 hold"),
        (_edit("w", [5], "heavy"), dict(weights="w", strata="str", psu="psu"), None, r"weights column 'w'.*rows 5 hold \['heavy'\]"),
        (_edit("N_psu", [0], 999.0), dict(weights="w", strata="str", psu="psu", fpc="N_psu"), None,
         r"fpc column 'N_psu' must be constant within each stratum; rows 0"),
        (_edit("N_psu", [0], 0.0), dict(weights="w", strata="str", psu="psu", fpc="N_psu"), None,
         r"fpc column 'N_psu' must hold positive numbers .* rows 0"),
        (_edit("N_psu", DATA.index[DATA["str"] == 1], 0.5), dict(weights="w", strata="str", psu="psu", fpc="N_psu"), None,
         r"mixes sampling fractions"),
        (_edit("N_psu", DATA.index[DATA["str"] == 1], 2.0), dict(weights="w", strata="str", psu="psu", fpc="N_psu"), None,
         r"fewer PSUs in the population than in the sample \(rows 0, 1"),
        (DATA, dict(weights="w", strata="str1", psu="psu"), None, r"strata \[9, 10\] of 'str1' have a single PSU \(rows 0, 1"),
        (_edit("sub", [2], 2), dict(weights="w", strata="str", psu="psu"), "sub", r"subpop column 'sub' must hold 1/True .* rows 2 hold \[2\.0\]"),
        (DATA.assign(sub=0), dict(weights="w", strata="str", psu="psu"), "sub", r"the subpopulation is empty"),
        (DATA.assign(w=np.where(DATA["sub"] == 1, 0.0, DATA["w"])), dict(weights="w", strata="str", psu="psu"), "sub",
         r"sampling weights are 0 in every row of the subpopulation"),
        (DATA.assign(one=1), dict(weights="w", psu="one", singleunit="certainty"), None, r"1 PSU\(s\) in 1 stratum/strata: no degrees"),
        (DATA.assign(one=1), dict(weights="w", psu="one"), None, r"the sample has a single PSU"),
    ],
)
def test_bad_survey_data(data, design, subpop, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bf.DataWarning)
        with pytest.raises(bf.DataError, match=match):
            bf.FMM("yg ~ x1", k=1).fit(data, survey=bf.SurveyDesign(**design), subpop=subpop)


# -- coverage ---------------------------------------------------------------------------------
def _simulated_survey(rng, n_strata=10, m=6, size=20):
    """A stratified two-stage sample from a 2-class mixture: x and the response share PSU
    effects, the weights differ by stratum and PSU (non-informative)."""
    h = np.repeat(np.arange(n_strata), m * size)
    psu = np.repeat(np.arange(n_strata * m), size)
    x = rng.normal(size=h.size) + rng.normal(size=n_strata * m)[psu]
    cls = rng.random(h.size) < 0.35
    u = rng.normal(scale=0.5, size=n_strata * m)[psu]
    y = np.where(cls, 1.0 + 0.5 * x, 5.0 - 0.5 * x) + u + rng.normal(size=h.size)
    w = (1 + h) * rng.uniform(0.8, 1.2, size=n_strata * m)[psu]
    return pd.DataFrame({"y": y, "x": x, "h": h, "psu": psu % m, "w": w})


@pytest.mark.slow
def test_coverage_of_linearized_intervals():
    rng = np.random.default_rng(20240919)
    design = bf.SurveyDesign(weights="w", strata="h", psu="psu")
    truth = {(1, "y", "Intercept"): 1.0, (1, "y", "x"): 0.5, (2, "y", "Intercept"): 5.0, (2, "y", "x"): -0.5}
    hits = {key: 0 for key in truth}
    naive = {key: 0 for key in truth}  # pweights alone, the PSUs ignored: intervals too short
    for _ in range(200):
        data = _simulated_survey(rng)
        res = bf.FMM("y ~ x", k=2).fit(data, survey=design).relabel(("y", "Intercept"))
        plain = bf.FMM("y ~ x", k=2, weights="w", weight_type="pweight").fit(data).relabel(("y", "Intercept"))
        for key, value in truth.items():
            hits[key] += res.conf_int().loc[key, "lower"] <= value <= res.conf_int().loc[key, "upper"]
            naive[key] += plain.conf_int().loc[key, "lower"] <= value <= plain.conf_int().loc[key, "upper"]
    coverage = {key: n / 200 for key, n in hits.items()}
    assert all(0.91 <= c <= 0.99 for c in coverage.values()), coverage
    assert min(naive.values()) / 200 < 0.85, naive


@pytest.mark.parametrize("caller", ["select", "bootstrap_lrt"])
def test_model_comparison_refuses_survey_fits(caller):
    model = bf.FMM("yg ~ x1", k=2)
    with pytest.raises(bf.SpecificationError, match=f"{caller}\\(\\) compares log likelihoods"):
        if caller == "select":
            bf.select(model, DATA, k=[1, 2], survey=FULL)
        else:
            bf.bootstrap_lrt(model, DATA, k=1, survey=FULL)
