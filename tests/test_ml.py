"""ML fitting: OLS equivalence, recovery, start methods, collapse detection, logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import simulate_regression_mixture

import bayesfmm as bf


def test_one_class_gaussian_equals_ols_with_ml_variance():
    sm = pytest.importorskip("statsmodels.api")
    data, _ = simulate_regression_mixture(500, seed=11)
    res = bf.FMM("y ~ x1 + x2", family="gaussian", k=1).fit(data)
    ols = sm.OLS(data["y"], sm.add_constant(data[["x1", "x2"]])).fit()
    coefs = res.params.xs((1, "y"), level=("class", "equation"))
    np.testing.assert_allclose(coefs[["Intercept", "x1", "x2"]].to_numpy(), ols.params.to_numpy(), rtol=1e-10)
    sigma2_ml = ols.ssr / ols.nobs
    assert np.isclose(coefs["var(e)"], sigma2_ml, rtol=1e-10)
    assert np.isclose(res.llf, ols.llf, rtol=1e-12)
    X = sm.add_constant(data[["x1", "x2"]]).to_numpy()
    se_ml = np.sqrt(np.diag(sigma2_ml * np.linalg.inv(X.T @ X)))
    se = res.bse.xs((1, "y"), level=("class", "equation"))[["Intercept", "x1", "x2"]].to_numpy()
    np.testing.assert_allclose(se, se_ml, rtol=1e-8)
    # OIM variance of the ML variance: 2 sigma^4 / n
    assert np.isclose(res.bse[(1, "y", "var(e)")], np.sqrt(2 * sigma2_ml**2 / ols.nobs), rtol=1e-8)
    assert res.df_model == 4
    assert np.isclose(res.aic, -2 * ols.llf + 8)
    assert np.isclose(res.bic, -2 * ols.llf + np.log(500) * 4)


def _match_by_intercept(res, equation="y"):
    intercepts = [res.params[(j, equation, "Intercept")] for j in range(1, res.k + 1)]
    return np.argsort(intercepts) + 1


def test_recovery_of_three_class_regression_n20000():
    data, truth = simulate_regression_mixture(20_000, seed=5)
    res = bf.FMM("y ~ x1 + x2", family="gaussian", k=3).fit(data)
    assert res.converged
    order = _match_by_intercept(res)
    for true_j, j in enumerate(order):
        for t, term in enumerate(["Intercept", "x1", "x2"]):
            est, se = res.params[(j, "y", term)], res.bse[(j, "y", term)]
            assert abs(est - truth["beta"][true_j, t]) < 4 * se, (j, term, est, se)
        var, se = res.params[(j, "y", "var(e)")], res.bse[(j, "y", "var(e)")]
        assert abs(var - truth["sd"][true_j] ** 2) < 4 * se
    probs = res.lcprob()["margin"].to_numpy()[order - 1]
    se = res.lcprob()["se"].to_numpy()[order - 1]
    assert np.all(np.abs(probs - truth["probs"]) < 4 * se)


def test_recovery_of_lognormal_mixture_with_class_covariate():
    rng = np.random.default_rng(8)
    n = 20_000
    z = rng.standard_normal(n)
    p2 = 1 / (1 + np.exp(-(0.3 + 1.2 * z)))
    cls = (rng.uniform(size=n) < p2).astype(int)
    mu = np.where(cls == 0, 0.0, 2.0)
    sd = np.where(cls == 0, 0.3, 0.5)
    data = pd.DataFrame({"y": np.exp(mu + sd * rng.standard_normal(n)), "z": z})
    res = bf.FMM("y ~ 1", family="lognormal", k=2, lcprob="~ z").fit(data)
    assert res.converged
    assert res.params[(1, "y", "Intercept")] < res.params[(2, "y", "Intercept")]
    truth = {
        (2, "Class", "Intercept"): 0.3,
        (2, "Class", "z"): 1.2,
        (1, "y", "Intercept"): 0.0,
        (2, "y", "Intercept"): 2.0,
        (1, "y", "var(e)"): 0.09,
        (2, "y", "var(e)"): 0.25,
    }
    for key, value in truth.items():
        assert abs(res.params[key] - value) < 4 * res.bse[key], key


@pytest.mark.parametrize("method,draws", [("randomid", 20), ("randompr", 50)])
def test_random_starts_keep_the_best_and_are_reproducible(stamp, method, draws):
    # The reference README: random EM starts often land on local maxima (1487.774) or
    # collapse; with enough draws the best reaches Stata's optimum.
    model = bf.FMM("thickness ~ 1", family="gaussian", k=3)
    res = model.fit(stamp, startvalues=method, draws=draws, seed=1)
    assert res.starts.method == method and res.starts.draws == draws
    assert abs(res.llf - 1518.8484) < 1e-3
    assert res.converged
    # Newton's answer comes from the best EM draw, skipping draws that collapsed in EM or
    # failed in Newton
    eligible = [
        v for i, v in enumerate(res.starts.em_llf) if np.isfinite(v) and i not in res.starts.newton_failed
    ]
    assert res.starts.em_llf[res.starts.winner] == max(eligible)
    assert res.starts.winner not in res.starts.newton_failed
    again = model.fit(stamp, startvalues=method, draws=draws, seed=1)
    assert again.llf == res.llf and again.starts.em_llf == res.starts.em_llf
    other = model.fit(stamp, startvalues=method, draws=draws, seed=2)
    assert other.starts.em_llf != res.starts.em_llf


def test_few_random_starts_can_end_on_a_local_maximum(stamp):
    res = bf.FMM("thickness ~ 1", k=3).fit(stamp, startvalues="randompr", draws=8, seed=1)
    assert res.converged and abs(res.llf - 1487.774) < 1e-3


def test_collapsed_start_is_detected_never_returned():
    # three distinct values and k = 3: every class collapses onto one value
    data = pd.DataFrame({"y": np.repeat([1.0, 2.0, 3.0], 20)})
    with pytest.raises(bf.ConvergenceError, match="collapsed"):
        bf.FMM("y ~ 1", k=3).fit(data)


def test_collapse_is_reported_among_random_starts():
    rng = np.random.default_rng(0)
    # a spike of ties next to two smooth groups: some starts collapse onto the spike
    y = np.concatenate([rng.normal(0, 1, 200), rng.normal(6, 1, 200), np.full(12, 3.0)])
    res = bf.FMM("y ~ 1", k=3).fit(pd.DataFrame({"y": y}), startvalues="randomid", draws=10, seed=3)
    variances = res.params.xs("var(e)", level="term")
    assert variances.min() > 1e-3  # the answer is never a collapsed component
    assert res.starts.n_collapsed == sum(c is not None for c in res.starts.collapsed)


def test_iteration_log_like_stata(stamp, capsys):
    res = bf.FMM("thickness ~ 1", k=3).fit(stamp, log=True)
    printed = capsys.readouterr().out
    assert "Refining starting values:" in printed and "Fitting full model:" in printed
    assert "(EM) log likelihood =" in printed
    assert printed.count("(EM)") == 20  # Stata's default emopts(iterate(20))
    assert "\n".join(res.iteration_log.lines) in printed
    quiet = bf.FMM("thickness ~ 1", k=3).fit(stamp, emopts={"iterate": 5})
    assert quiet.converged and str(quiet.iteration_log).count("(EM)") == 5


def test_non_convergence_warns(stamp):
    with pytest.warns(bf.ConvergenceWarning, match="did not converge"):
        res = bf.FMM("thickness ~ 1", k=3).fit(stamp, iterate=1)
    assert not res.converged


def test_opg_vce(stamp_normal3, stamp):
    res = bf.FMM("thickness ~ 1", k=3).fit(stamp, vce="opg")
    from bayesfmm.likelihood import row_scores

    S = row_scores(res.problem, res.theta)
    np.testing.assert_allclose(res.cov_theta, np.linalg.inv(S.T @ S), rtol=1e-8)
    np.testing.assert_allclose(res.params, stamp_normal3.params)


def test_newton_reaches_stata_criteria(stamp_normal3):
    g = stamp_normal3.gradient
    H = stamp_normal3.hessian
    assert g @ np.linalg.solve(-H, g) < 1e-5


def test_fit_does_not_compile_pytensor(stamp):
    import subprocess
    import sys

    code = (
        "import sys, bayesfmm as bf\n"
        "bf.FMM('thickness ~ 1', k=3).fit(bf.datasets.load('stamp'))\n"
        "print(any(m.startswith(('pytensor', 'pymc')) for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_offset_and_exposure_enter_the_linear_predictor():
    sm = pytest.importorskip("statsmodels.api")
    data, _ = simulate_regression_mixture(300, seed=12)
    data["off"] = np.linspace(-1, 1, 300)
    data["expo"] = np.exp(data["off"])
    X = sm.add_constant(data[["x1"]])
    ols = sm.OLS(data["y"] - data["off"], X).fit()
    for kwargs in ({"offset": "off"}, {"exposure": "expo"}):
        res = bf.FMM([bf.Component("y ~ x1", **kwargs)], k=1).fit(data)
        coefs = res.params.xs((1, "y"), level=("class", "equation"))[["Intercept", "x1"]]
        np.testing.assert_allclose(coefs.to_numpy(), ols.params.to_numpy(), rtol=1e-10)
    with pytest.raises(bf.DataError, match=r"exposure column 'off' must be positive; rows 0, 1"):
        bf.FMM([bf.Component("y ~ x1", exposure="off")], k=1).fit(data)


def test_progress_bar_does_not_change_the_fit(stamp):
    quiet = bf.FMM("thickness ~ 1", k=3).fit(stamp, startvalues="randomid", draws=3, seed=4, progress=False)
    shown = bf.FMM("thickness ~ 1", k=3).fit(stamp, startvalues="randomid", draws=3, seed=4, progress=True)
    assert quiet.llf == shown.llf and quiet.starts.em_llf == shown.starts.em_llf


def test_scale_collapse_of_a_gamma_class_is_detected():
    # 30% of the responses tied at 5.0: a gamma class can sit on the ties with its scale
    # going to 0 (unbounded likelihood); such a fit must never be returned
    rng = np.random.default_rng(2)
    y = np.concatenate([rng.gamma(2.0, 2.0, 700), np.full(300, 5.0)])
    data = pd.DataFrame({"y": y})
    try:
        res = bf.FMM("y ~ 1", family="gamma", k=2).fit(data, startvalues="randompr", draws=5, seed=1)
    except bf.ConvergenceError as err:
        assert "collapsed" in str(err)
    else:
        scales = res.params.xs("scale", level="term")
        assert scales.min() > 1e-6
    from bayesfmm.design import build_design
    from bayesfmm.likelihood import MixtureProblem
    from bayesfmm.ml.em import degeneracy
    from bayesfmm.params import build_layout

    spec = bf.FMM("y ~ 1", family="gamma", k=2)
    design = build_design(spec, data)
    layout = build_layout(design)
    problem = MixtureProblem.build(design, layout)
    reference = np.ones(layout.size)
    theta = np.zeros(layout.size)
    theta[layout.slot_block(2, 0, 1).slice] = np.log(1e-10)  # class 2 scale far below 1
    assert "collapsed to" in degeneracy(problem, theta, None, reference)
    theta[layout.slot_block(2, 0, 1).slice] = 0.0
    assert degeneracy(problem, theta, None, reference) is None
