"""Bad input gets a clear error naming the column/option, the rows and what was expected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"y": rng.normal(size=40), "x": rng.normal(size=40), "pos": rng.lognormal(size=40)})


def test_missing_values_are_dropped_listwise_with_a_count(data):
    data = data.copy()
    data.loc[[3, 7], "y"] = np.nan
    data.loc[[7, 11], "x"] = np.nan
    with pytest.warns(bf.DataWarning, match=r"3 of 40 rows dropped.*'y' \(2\).*'x' \(2\).*rows 3, 7, 11"):
        res = bf.FMM("y ~ x", k=2).fit(data)
    assert res.nobs == 37
    assert res.design.n_dropped == 3
    full = bf.FMM("y ~ x", k=2).fit(data.drop(index=[3, 7, 11]))
    assert np.isclose(res.llf, full.llf)


def test_missing_values_in_unused_columns_are_ignored(data):
    data = data.assign(unused=np.nan)
    res = bf.FMM("y ~ x", k=1).fit(data)
    assert res.nobs == 40


def test_all_rows_missing_is_refused(data):
    data = data.assign(y=np.nan)
    with pytest.raises(bf.DataError, match="every row has a missing value"):
        bf.FMM("y ~ x", k=2).fit(data)


def test_nonpositive_lognormal_response_names_rows(data):
    data = data.copy()
    data.loc[[2, 5], "pos"] = [0.0, -1.0]
    with pytest.raises(bf.DataError, match=r"lognormal response 'pos' must be positive; rows 2, 5 hold \[0.0, -1.0\]"):
        bf.FMM("pos ~ 1", family="lognormal", k=2).fit(data)


@pytest.mark.parametrize("k", [0, -1, 1.5, "3", True])
def test_bad_k(k):
    with pytest.raises(bf.SpecificationError, match="k .*integer >= 1"):
        bf.FMM("y ~ 1", k=k)


def test_standard_syntax_needs_k():
    with pytest.raises(bf.SpecificationError, match="number of classes"):
        bf.FMM("y ~ 1", family="gaussian")


def test_k_above_distinct_responses(data):
    data = data.assign(y=np.repeat([1.0, 2.0], 20))
    with pytest.raises(bf.DataError, match="'y' has 2 distinct value.*k=3"):
        bf.FMM("y ~ 1", k=3).fit(data)


def test_unknown_family_and_option():
    with pytest.raises(bf.SpecificationError, match="unknown family 'gausian'"):
        bf.FMM("y ~ 1", family="gausian", k=2)
    with pytest.raises(bf.SpecificationError, match="does not take option.*trials"):
        bf.FMM("y ~ 1", family="gaussian", k=2, trials=5)
    with pytest.raises(bf.SpecificationError, match="fit\\(\\) does not take option.*iterations"):
        bf.FMM("y ~ 1", k=2).fit(pd.DataFrame({"y": [1.0, 2, 3]}), iterations=5)
    with pytest.raises(bf.SpecificationError, match="startvalues='kmeans'"):
        bf.FMM("y ~ 1", k=2).fit(pd.DataFrame({"y": [1.0, 2, 3]}), startvalues="kmeans")
    with pytest.raises(bf.SpecificationError, match="vce='bootstrap'"):
        bf.FMM("y ~ 1", k=2).fit(pd.DataFrame({"y": [1.0, 2, 3]}), vce="bootstrap")
    with pytest.raises(bf.SpecificationError, match="emopts does not take"):
        bf.FMM("y ~ 1", k=2).fit(pd.DataFrame({"y": [1.0, 2, 3]}), emopts={"iter": 3})


def test_formula_naming_a_missing_column(data):
    with pytest.raises(bf.DataError, match=r"column\(s\) 'z' named in the model are not in the data; available columns: y, x, pos"):
        bf.FMM("y ~ x + z", k=2).fit(data)
    with pytest.raises(bf.DataError, match="'w'"):
        bf.FMM("y ~ x", k=2, lcprob="~ w").fit(data)


def test_bad_formula():
    with pytest.raises(bf.SpecificationError, match="not a valid formula"):
        bf.FMM("y ~ x +", k=2)
    with pytest.raises(bf.SpecificationError, match="needs a response"):
        bf.FMM("~ x", k=2)
    with pytest.raises(bf.SpecificationError, match="must have no response"):
        bf.FMM("y ~ x", k=2, lcprob="z ~ w")


def test_non_numeric_response_names_rows(data):
    data = data.astype({"y": object})
    data.loc[[4, 9], "y"] = ["abc", "n/a"]
    with pytest.raises(bf.DataError, match=r"response column 'y'.*must be numeric; rows 4, 9 hold \['abc', 'n/a'\]"):
        bf.FMM("y ~ x", k=2).fit(data)
    strings = pd.DataFrame({"y": list("abcabc"), "x": range(6)})
    with pytest.raises(bf.DataError, match="must be numeric"):
        bf.FMM("y ~ x", k=2).fit(strings)


def test_non_finite_transform_names_rows(data):
    data = data.copy()
    data.loc[6, "x"] = -1.0
    with pytest.raises(bf.DataError, match=r"np.log\(x\).*not finite in rows 6"):
        bf.FMM("y ~ np.log(x)", k=1).fit(data.assign(x=data["x"].abs().where(data.index != 6, -1.0)))


def test_non_finite_response(data):
    data = data.copy()
    data.loc[8, "y"] = np.inf
    with pytest.raises(bf.DataError, match="not finite in rows 8"):
        bf.FMM("y ~ x", k=2).fit(data)


def test_collinear_design(data):
    data = data.assign(x2=2 * data["x"])
    with pytest.raises(bf.DataError, match="rank deficient"):
        bf.FMM("y ~ x + x2", k=2).fit(data)


def test_data_must_be_a_dataframe():
    with pytest.raises(bf.DataError, match="pandas DataFrame"):
        bf.FMM("y ~ 1", k=2).fit({"y": [1, 2, 3]})


def test_lcbase_and_lcprob_rules():
    with pytest.raises(bf.SpecificationError, match="lcbase"):
        bf.FMM("y ~ 1", k=2, lcbase=3)
    with pytest.raises(bf.SpecificationError, match="one level only"):
        bf.FMM([bf.Component("y ~ 1", lcprob="~ x"), bf.Component("y ~ 1")], lcprob="~ x")
    with pytest.raises(bf.SpecificationError, match="hybrid syntax"):
        bf.FMM([bf.Component("y ~ 1", lcprob="~ x")], k=2)


def test_structure_options_are_checked_when_the_model_is_written():
    with pytest.raises(bf.SpecificationError, match="needs '='"):
        bf.FMM("y ~ x", k=2, constraints="[1]x + [2]x")
    with pytest.raises(bf.SpecificationError, match="nested.*class 4 is not a class"):
        bf.FMM("y ~ x", k=3, nested={"x": [(1, 4)]})
    with pytest.raises(bf.SpecificationError, match="weight_type"):
        bf.FMM("y ~ x", k=2, weights="w", weight_type="aweight")
    with pytest.raises(bf.SpecificationError, match="'none' does not combine"):
        bf.FMM("y ~ x", k=2, lcinvariant=["none", "coef"])
    with pytest.raises(bf.SpecificationError, match="lcinvariant.*not recognised"):
        bf.FMM("y ~ x", k=2, lcinvariant="slopes")


def test_predict_errors(stamp_normal3):
    with pytest.raises(bf.SpecificationError, match="predict kind='means'"):
        stamp_normal3.predict(kind="means")
    with pytest.raises(bf.SpecificationError, match="marginal=True applies"):
        stamp_normal3.predict(kind="classpr", marginal=True)
    with pytest.raises(bf.SpecificationError, match="equation 'depth'"):
        stamp_normal3.predict(equation="depth")
    with pytest.raises(bf.DataError, match="'thickness'"):
        stamp_normal3.predict(pd.DataFrame({"x": [1.0]}), kind="density")


def test_rows_no_class_can_produce_are_a_data_error():
    rng = np.random.default_rng(1)
    data = pd.DataFrame({"y": rng.poisson(2, 200), "x": rng.normal(size=200)})
    with pytest.raises(bf.DataError, match=r"probability 0 in every class .*'y': \[0\.0"):
        bf.FMM("y ~ x", family="tpoisson", k=2).fit(data)
