"""Awkward inputs (issue 13): each gives a clear bayesfmm error naming the column, option
or rows, a warning, or the right answer; never a foreign exception or a silent wrong answer.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm.frame import as_frame


@pytest.fixture(scope="module")
def two_groups():
    rng = np.random.default_rng(3)
    n = 200
    x = rng.normal(size=n)
    cls = np.arange(n) % 2
    y = np.where(cls == 0, 1.0 + 0.5 * x, 6.0 - 0.5 * x) + rng.normal(0, 0.7, n)
    g = np.array(["a", "b", "c", "d"])[np.arange(n) % 4]
    return pd.DataFrame({"y": y, "x": x, "g": g})


@pytest.fixture(scope="module")
def factor_fit(two_groups):
    return bf.FMM("y ~ x + g", k=2).fit(two_groups, startvalues="factor")


# -- names the layout uses ---------------------------------------------------------------
def test_a_response_called_class_is_refused(two_groups):
    data = two_groups.rename(columns={"y": "Class"})
    with pytest.raises(bf.DataError, match=r"column 'Class' in 'Class ~ x'.*class-model equation.*rename"):
        bf.FMM("Class ~ x", k=2).fit(data)


@pytest.mark.parametrize("name", ["Intercept", "_cons"])
def test_a_regressor_named_like_the_constant_is_refused(two_groups, name):
    data = two_groups.assign(**{name: two_groups["x"] * 2})
    with pytest.raises(bf.DataError, match=rf"column '{name}' in 'y ~ {name}'.*constant term.*rename"):
        bf.FMM(f"y ~ {name}", k=2).fit(data)


def test_a_regressor_called_class_is_still_its_own_parameter(two_groups):
    res = bf.FMM("y ~ Class", k=2).fit(two_groups.assign(Class=two_groups["x"]), startvalues="factor")
    assert res.params.index.is_unique
    assert res.lincom("[1]y:Class").estimate == pytest.approx(res.params[(1, "y", "Class")])
    assert res.lincom("[2]Class:Intercept").estimate == pytest.approx(res.params[(2, "Class", "Intercept")])


def test_duplicate_column_names_are_refused(two_groups):
    data = pd.concat([two_groups, two_groups[["x"]] * 10], axis=1)
    with pytest.raises(bf.DataError, match=r"'x' \(at positions \[1, 3\]\).*more than once|more than once.*'x'"):
        bf.FMM("y ~ x", k=2).fit(data)
    # a duplicate of a column the model does not use is harmless
    res = bf.FMM("y ~ x", k=2).fit(pd.concat([two_groups, two_groups[["g"]]], axis=1), startvalues="factor")
    assert res.converged


def test_response_on_both_sides_is_refused(two_groups):
    with pytest.raises(bf.SpecificationError, match=r"'y' is both the response and a regressor of 'y ~ y'"):
        bf.FMM("y ~ y", k=2).fit(two_groups)
    with pytest.raises(bf.SpecificationError, match=r"class model '~ y' uses the response"):
        bf.FMM("y ~ x", k=2, lcprob="~ y").fit(two_groups)


# -- predict on new data -------------------------------------------------------------------
def test_unseen_level_in_predict_is_a_data_error(factor_fit):
    new = pd.DataFrame({"y": [1.0, 2.0, 3.0], "x": [0.0, 1.0, 2.0], "g": ["a", "zz", "b"]}, index=[10, 11, 12])
    with pytest.raises(bf.DataError, match=r"column 'g' holds level\(s\) \['zz'\] not seen in the fit \(rows 11\)"):
        factor_fit.predict(new)
    # known levels predict as before
    ok = factor_fit.predict(new.assign(g=["a", "c", "b"]))
    assert ok.shape == (3, 2) and np.all(np.isfinite(ok.to_numpy()))


def test_unseen_level_of_a_c_wrapped_numeric(two_groups):
    data = two_groups.assign(h=np.arange(len(two_groups)) % 3)
    res = bf.FMM("y ~ C(h)", k=2).fit(data, startvalues="factor")
    with pytest.raises(bf.DataError, match=r"column 'h' holds level\(s\) \[7\]"):
        res.predict(pd.DataFrame({"h": [0, 7]}))


# -- alpha ---------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [95, 0, 1, -0.1, "0.05"])
def test_alpha_outside_zero_one_is_refused_everywhere(factor_fit, alpha):
    calls = [
        lambda: factor_fit.conf_int(alpha=alpha),
        lambda: factor_fit.lcprob(alpha=alpha),
        lambda: factor_fit.lcmean(alpha=alpha),
        lambda: factor_fit.summary(alpha=alpha),
        lambda: factor_fit.lincom("[1]x - [2]x", alpha=alpha),
        lambda: factor_fit.eform(alpha=alpha),
        lambda: factor_fit.nlcom("exp([1]x)", alpha=alpha),
    ]
    for call in calls:
        with pytest.raises(bf.SpecificationError, match="alpha must be a number between 0 and 1"):
            call()


def test_alpha_95_gets_a_hint(factor_fit):
    with pytest.raises(bf.SpecificationError, match=r"got 95 \(for a 95% interval write alpha=0.05\)"):
        factor_fit.conf_int(alpha=95)


def test_alpha_is_checked_in_bayes_results_before_any_work():
    from bayesfmm.bayes import results as bres

    with pytest.raises(bf.SpecificationError, match="alpha must be"):
        bres._summarise(np.zeros((4, 2)), 95)
    with pytest.raises(bf.SpecificationError, match="alpha must be"):
        bres.BayesResults.conf_int(type("R", (), {"_flat_report": np.zeros((4, 2))})(), alpha=95)


# -- clear errors instead of foreign ones --------------------------------------------------
def test_empty_frame(two_groups):
    with pytest.raises(bf.DataError, match=r"data has no rows \(columns: y, x, g\)"):
        bf.FMM("y ~ x", k=2).fit(two_groups.iloc[:0])


def test_one_row_frame(two_groups):
    with pytest.raises(bf.DataError, match=r"1 observation\(s\) \(rows \[0\]\)"):
        bf.FMM("y ~ x", k=2).fit(two_groups.iloc[:1])
    with pytest.raises(bf.DataError, match=r"1 observation\(s\)"):
        bf.FMM("y ~ 1", k=1).fit(two_groups.iloc[:1])


def test_fewer_rows_than_parameters(two_groups):
    with pytest.raises(bf.DataError, match=r"4 observations for 7 free parameters"):
        bf.FMM("y ~ x", k=2).fit(two_groups.iloc[:4])


@pytest.mark.parametrize("seed", ["a", 1.5, -1, True])
def test_bad_seed(two_groups, seed):
    with pytest.raises(bf.SpecificationError, match=r"seed must be a non-negative integer or None, got"):
        bf.FMM("y ~ x", k=2).fit(two_groups, seed=seed)


def test_numpy_integers_are_integers(two_groups):
    res = bf.FMM("y ~ x", k=np.int64(2), lcbase=np.int32(2)).fit(two_groups, seed=np.int64(3), iterate=np.int64(50))
    assert res.k == 2 and res.design.base == 1 and res.converged


def test_datetime_regressor_names_the_column(two_groups):
    data = two_groups.assign(when=pd.date_range("2020-01-01", periods=len(two_groups)))
    with pytest.raises(bf.DataError, match=r"column 'when' holds dates or times"):
        bf.FMM("y ~ when", k=2).fit(data)
    with pytest.raises(bf.DataError, match=r"weights column 'when' holds dates"):
        bf.FMM("y ~ x", k=2, weights="when").fit(data)


def test_numeric_column_with_a_stray_string(two_groups):
    x = two_groups["x"].astype(object)
    x.iloc[7] = "n/a"
    with pytest.raises(bf.DataError, match=r"column 'x' holds numbers except in rows 7, which hold \['n/a'\]"):
        bf.FMM("y ~ x", k=2).fit(two_groups.assign(x=x))
    # read from a csv, the whole column is strings: the same error
    with pytest.raises(bf.DataError, match=r"column 'x' holds numbers except in rows 7"):
        bf.FMM("y ~ x", k=2).fit(two_groups.assign(x=x.astype(str)))


def test_stray_strings_are_fine_when_the_user_asks_for_a_factor(two_groups):
    h = pd.Series(np.arange(len(two_groups)) % 3, dtype=object)
    h.iloc[5:25] = "other"
    res = bf.FMM("y ~ C(h)", k=2).fit(two_groups.assign(h=h), startvalues="factor")
    assert any("other" in t for t in res.params.index.get_level_values("term"))


def test_a_plain_categorical_column_still_works(factor_fit):
    terms = set(factor_fit.params.index.get_level_values("term"))
    assert {"g[T.b]", "g[T.c]", "g[T.d]"} <= terms


# -- valid input accepted -----------------------------------------------------------------
def test_unused_categories_are_dropped_with_a_note(two_groups, factor_fit):
    data = two_groups.assign(g=pd.Categorical(two_groups["g"], categories=["a", "b", "c", "d", "e", "f"]))
    with pytest.warns(bf.DataWarning, match=r"unused categories dropped.*'g': \['e', 'f'\]"):
        res = bf.FMM("y ~ x + g", k=2).fit(data, startvalues="factor")
    assert res.llf == pytest.approx(factor_fit.llf, abs=1e-8)
    np.testing.assert_allclose(res.params.to_numpy(), factor_fit.params.to_numpy(), rtol=1e-8)


def test_categories_emptied_by_missing_rows_are_dropped(two_groups):
    data = two_groups.assign(g=pd.Categorical(two_groups["g"]), y=two_groups["y"].where(two_groups["g"] != "d"))
    with pytest.warns(bf.DataWarning, match=r"'g': \['d'\]"):
        res = bf.FMM("y ~ x + g", k=2).fit(data, startvalues="factor")
    assert "g[T.d]" not in set(res.params.index.get_level_values("term"))


class _ToPandas:
    """A frame from another library: only ``to_pandas()``."""

    def __init__(self, frame):
        self.frame = frame

    def to_pandas(self):
        return self.frame


def test_frames_from_other_libraries(two_groups, factor_fit):
    pa = pytest.importorskip("pyarrow")
    table = pa.Table.from_pandas(two_groups, preserve_index=False)
    for data in (table, _ToPandas(two_groups)):
        res = bf.FMM("y ~ x + g", k=2).fit(data, startvalues="factor")
        assert res.llf == pytest.approx(factor_fit.llf, abs=1e-8)
    # the dataframe interchange protocol alone
    proto = type("Proto", (), {"__dataframe__": lambda self, *a, **k: table.__dataframe__(*a, **k)})()
    assert as_frame(proto).shape == two_groups.shape
    # predict takes them too
    assert factor_fit.predict(table).shape == (len(two_groups), 2)


def test_polars_frame(two_groups, factor_fit):
    pl = pytest.importorskip("polars")
    res = bf.FMM("y ~ x + g", k=2).fit(pl.from_pandas(two_groups), startvalues="factor")
    assert res.llf == pytest.approx(factor_fit.llf, abs=1e-8)


def test_something_that_is_no_frame():
    with pytest.raises(bf.DataError, match=r"pandas DataFrame or a frame that converts to one.*got builtins.list"):
        bf.FMM("y ~ 1", k=2).fit([1.0, 2.0, 3.0])


def test_ordinal_with_hundreds_of_levels_is_refused_up_front(two_groups):
    data = two_groups.assign(score=np.round(two_groups["y"] * 40))
    with pytest.raises(bf.DataError, match=r"ologit response 'score' has \d{3} distinct levels"):
        bf.FMM("score ~ x", family="ologit", k=2).fit(data)
    # a handful of levels is fine
    few = two_groups.assign(score=pd.cut(two_groups["y"], 4, labels=False))
    assert bf.FMM("score ~ x", family="ologit", k=1).fit(few).converged


# -- priors and sampler options (Bayes) ---------------------------------------------------
def test_prior_for_a_parameter_class_the_model_lacks():
    from bayesfmm.bayes.builder import problem_for
    from bayesfmm.bayes.priors import resolve_priors

    problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=2), bf.datasets.load("stamp"))
    with pytest.raises(bf.SpecificationError, match=r"priors key 'alpha': the model has no 'alpha' parameters"):
        resolve_priors(problem, {"alpha": {"sigma": 1.0}}, pooled)
    assert resolve_priors(problem, {"errvar": {"sigma": 1.0}}, pooled).frame()["sigma"].iloc[-1] == 1.0


@pytest.mark.parametrize("sampler", ["nutpie", "pymc"])
def test_misspelled_sampler_option_is_refused_before_compiling(sampler):
    import time

    t0 = time.perf_counter()
    with pytest.raises(bf.SpecificationError, match=r"'target_acept' is not an option.*did you mean 'target_accept'"):
        bf.FMM("thickness ~ 1", k=2).sample(bf.datasets.load("stamp"), sampler=sampler, target_acept=0.9)
    assert time.perf_counter() - t0 < 20  # no compile, no ML fit


def test_sampler_options_sample_sets_itself():
    with pytest.raises(bf.SpecificationError, match=r"sample\(\) sets 'progress_bar' itself.*progressbar="):
        bf.FMM("thickness ~ 1", k=2).sample(bf.datasets.load("stamp"), progress_bar=False)


def test_bad_random_seed_for_sample():
    with pytest.raises(bf.SpecificationError, match=r"random_seed must be a non-negative integer or None, got 'a'"):
        bf.FMM("thickness ~ 1", k=2).sample(bf.datasets.load("stamp"), random_seed="a")


def test_no_foreign_exception_on_the_whole_list(two_groups):
    """Every awkward input of this file raises a bayesfmm error, never numpy's or pandas'."""
    cases = [
        lambda: bf.FMM("y ~ x", k=2).fit(two_groups.iloc[:0]),
        lambda: bf.FMM("y ~ when", k=2).fit(two_groups.assign(when=pd.Timestamp("2020-01-01"))),
        lambda: bf.FMM("y ~ x", k=2).fit(two_groups, seed="a"),
        lambda: bf.FMM("y ~ x", k=2).fit(two_groups, draws=np.float64(2.5)),
    ]
    for case in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises((bf.DataError, bf.SpecificationError)):
                case()


def test_pandas_string_dtype_is_categorical(two_groups, factor_fit):
    res = bf.FMM("y ~ x + g", k=2).fit(two_groups.assign(g=two_groups["g"].astype("string")), startvalues="factor")
    assert res.llf == pytest.approx(factor_fit.llf, abs=1e-8)


def test_collinear_or_constant_class_model_covariates_are_refused(two_groups):
    with pytest.raises(bf.DataError, match=r"class model of '~ c' is rank deficient \(rank 1 for 2 terms \['Intercept', 'c'\]\)"):
        bf.FMM("y ~ x", k=2, lcprob="~ c").fit(two_groups.assign(c=1.0))
    with pytest.raises(bf.DataError, match=r"class model of '~ x \+ x2' is rank deficient"):
        bf.FMM("y ~ 1", k=2, lcprob="~ x + x2").fit(two_groups.assign(x2=2 * two_groups["x"]))


@pytest.mark.parametrize("values", [
    pd.to_timedelta(np.arange(200), unit="D"),
    pd.period_range("2020-01", periods=200, freq="M"),
])
def test_other_time_types_are_refused(two_groups, values):
    with pytest.raises(bf.DataError, match=r"column 't' holds dates or times"):
        bf.FMM("y ~ t", k=2).fit(two_groups.assign(t=values))


def test_mlogit_with_many_levels_is_refused(two_groups):
    with pytest.raises(bf.DataError, match=r"mlogit response 'yy' has \d+ distinct levels"):
        bf.FMM("yy ~ x", family="mlogit", k=1).fit(two_groups.assign(yy=np.round(two_groups["y"] * 20)))
