"""Simulation from a fitted model (bayesfmm.simulate) and the families' samplers.

Oracle: the fitted model itself. With many rows, the drawn classes' frequencies match the
model's class probabilities (per covariate pattern when the class model has covariates),
and within each drawn class the responses match the component: an OLS fit (statsmodels)
recovers its coefficients, and the residual variance its error variance, each within 5
standard errors of the estimate from the simulated sample (a false alarm about once in 1.7
million checks per comparison).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import bayesfmm as bf
from bayesfmm.families.gaussian import gaussian
from bayesfmm.simulate import draw_classes

Z = 5.0


@pytest.fixture(scope="module")
def nregfix():
    return bf.datasets.load("NregFix")


@pytest.fixture(scope="module")
def concomitant_fit(nregfix):
    return bf.FMM("y ~ x2 + x1", k=3, lcprob="~ w").fit(nregfix)


def _assert_share(observed_count: int, n: int, p: float, what: str) -> None:
    se = math.sqrt(p * (1 - p) / n)
    assert abs(observed_count / n - p) <= Z * se, f"{what}: {observed_count / n:.4f} vs {p:.4f} (se {se:.4f})"


def test_regression_mixture_with_class_covariates(nregfix, concomitant_fit):
    res = concomitant_fit
    big = nregfix.sample(n=60_000, replace=True, random_state=3).reset_index(drop=True)
    fake, cls = bf.simulate(res, rng=11, data=big, return_class=True)
    assert fake.shape == big.shape and (fake.index == big.index).all()
    assert fake[["x1", "x2", "w"]].equals(big[["x1", "x2", "w"]])  # covariates untouched
    classpr = res.predict(big, kind="classpr")
    for level in big["w"].cat.categories:
        rows = (big["w"] == level).to_numpy()
        expected = classpr[rows].iloc[0]  # the class model depends on w only
        for j in (1, 2, 3):
            _assert_share(int((cls[rows] == j).sum()), int(rows.sum()), float(expected[j]), f"w={level} class {j}")
    params = res.params
    for j in (1, 2, 3):
        rows = (cls == j).to_numpy()
        X = sm.add_constant(pd.get_dummies(big.loc[rows, "x2"], drop_first=True, dtype=float).join(big.loc[rows, "x1"]))
        ols = sm.OLS(fake.loc[rows, "y"], X).fit()
        truth = {term: params[(j, "y", term)] for term in ("Intercept", "x2[T.1]", "x1", "var(e)")}
        for ours, term in zip(ols.params.index, ("Intercept", "x2[T.1]", "x1")):
            assert abs(ols.params[ours] - truth[term]) <= Z * ols.bse[ours], (j, term)
        var = truth["var(e)"]
        se_var = var * math.sqrt(2.0 / ols.df_resid)
        assert abs(ols.scale - var) <= Z * se_var, (j, ols.scale, var)


def test_lognormal_mixture(stamp_lognormal3):
    res = stamp_lognormal3
    n = 200_000
    frame = pd.DataFrame({"thickness": np.ones(n)})
    fake, cls = bf.simulate(res, rng=np.random.default_rng(5), data=frame, return_class=True)
    assert (fake["thickness"] > 0).all()
    margins = res.lcprob()["margin"]
    params = res.params
    for j in (1, 2, 3):
        rows = (cls == j).to_numpy()
        _assert_share(int(rows.sum()), n, float(margins[j]), f"class {j}")
        logs = np.log(fake.loc[rows, "thickness"].to_numpy())
        mu, var = params[(j, "thickness", "Intercept")], params[(j, "thickness", "var(e)")]
        assert abs(logs.mean() - mu) <= Z * math.sqrt(var / rows.sum())
        assert abs(logs.var(ddof=1) - var) <= Z * var * math.sqrt(2.0 / (rows.sum() - 1))


def test_reproducible_and_estimation_sample_by_default(stamp_normal3):
    a = bf.simulate(stamp_normal3, rng=3)
    b = bf.simulate(stamp_normal3, rng=np.random.default_rng(3))
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["thickness"] and len(a) == stamp_normal3.nobs
    assert not a.equals(bf.simulate(stamp_normal3, rng=4))


def test_rows_with_missing_values_are_left_out(nregfix):
    res = bf.FMM("y ~ x2 + x1", k=2).fit(nregfix)
    holes = nregfix.copy()
    holes.loc[[3, 7], "x1"] = np.nan
    with pytest.warns(bf.DataWarning, match="2 of 200 rows dropped"):
        fake = bf.simulate(res, rng=1, data=holes)
    assert len(fake) == 198 and 3 not in fake.index and 7 not in fake.index
    assert fake["y"].notna().all()


def test_draw_classes_follows_the_probabilities():
    rng = np.random.default_rng(0)
    prob = np.tile([0.2, 0.5, 0.3], (100_000, 1))
    counts = np.bincount(draw_classes(prob, rng), minlength=3)
    for j, p in enumerate((0.2, 0.5, 0.3)):
        _assert_share(int(counts[j]), 100_000, p, f"class {j + 1}")
    assert draw_classes(np.array([[0.0, 1.0], [1.0, 0.0]]), rng).tolist() == [1, 0]


def _gaussian_without_sampler():
    return dataclasses.replace(gaussian(), name="nosampler", sample=None)


def test_family_without_sampler_says_so(stamp):
    bf.register_family("nosampler", _gaussian_without_sampler)
    res = bf.FMM("thickness ~ 1", family="nosampler", k=2).fit(stamp)
    with pytest.raises(bf.SpecificationError, match="family 'nosampler' cannot simulate"):
        bf.simulate(res, rng=1)


def test_response_must_be_a_column(stamp):
    res = bf.FMM("np.log(thickness) ~ 1", k=2).fit(stamp)
    with pytest.raises(bf.SpecificationError, match="plain column"):
        bf.simulate(res, rng=1, data=stamp)
    assert list(bf.simulate(res, rng=1).columns) == ["np.log(thickness)"]  # estimation sample: fine


def test_data_must_be_a_frame(stamp_normal3):
    with pytest.raises(bf.SpecificationError, match="DataFrame"):
        bf.simulate(stamp_normal3, rng=1, data=np.ones(3))


def test_duplicated_index_with_dropped_rows_is_refused(nregfix):
    res = bf.FMM("y ~ x2 + x1", k=2).fit(nregfix)
    holes = nregfix.copy()
    holes.index = [0] * len(holes)
    holes.iloc[5, holes.columns.get_loc("x1")] = np.nan
    with pytest.warns(bf.DataWarning), pytest.raises(bf.DataError, match="duplicated index"):
        bf.simulate(res, rng=1, data=holes)


def test_integer_responses_stay_integers():
    rng = np.random.default_rng(0)
    n = 400
    cls = rng.choice(2, size=n)
    data = pd.DataFrame({"y": rng.poisson(np.where(cls == 0, 1.0, 8.0))})
    res = bf.FMM("y ~ 1", family="poisson", k=2).fit(data)
    fake = bf.simulate(res, rng=2, data=data)
    assert fake["y"].dtype == data["y"].dtype
    assert abs(fake["y"].mean() - data["y"].mean()) < 5 * data["y"].std() / np.sqrt(n)
