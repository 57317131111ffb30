"""Start values (Stata startvalues(), from(), noestimate), maximisation options, StartReport.

Reference: Stata's ``fmm 3: regress thickness`` on stamp reaches log likelihood 1518.8484
(tests/reference/stata_fmm_stamp.json); random EM starts often stop at the local maxima
1487.774 or 1484.75, or collapse (tests/reference/README.md). The draws and seeds below
were chosen so that the best draw reaches the global maximum; they are stated per case.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference

import bayesfmm as bf

STATA_LLF = 1518.8484  # tests/reference/stata_fmm_stamp.json, printed to 4 decimals


@pytest.fixture(scope="module")
def stamp_starts(stamp):
    """stamp with start columns: a class id from cut points and three unnormalised
    class-probability columns (Gaussian bumps at 0.07, 0.08, 0.10 mm, times 7)."""
    y = stamp["thickness"]
    data = stamp.assign(cid=1 + np.searchsorted([0.07, 0.09], y))
    for j, centre in enumerate([0.07, 0.08, 0.10]):
        data[f"p{j + 1}"] = 7 * np.exp(-((y - centre) ** 2) / (2 * 0.01**2))
    return data


@pytest.mark.parametrize(
    "startvalues,draws,seed",
    [
        ("default", 1, None),
        ("factor", 1, None),  # Stata's name of the default
        (("classid", "cid"), 1, None),
        (("classpr", "p1", "p2", "p3"), 1, None),
        (("classpr", ["p1", "p2", "p3"]), 1, None),
        ("randomid", 20, 1),
        ("randompr", 50, 1),
        ("jitter", 10, 1),
        (("jitter", 0.5, 0.5), 10, 2),
    ],
)
def test_every_start_method_reaches_statas_optimum(stamp_starts, startvalues, draws, seed):
    res = bf.FMM("thickness ~ 1", k=3).fit(stamp_starts, startvalues=startvalues, draws=draws, seed=seed)
    assert res.converged
    assert abs(res.llf - STATA_LLF) < 1e-3, (startvalues, res.llf, str(res.starts))
    assert res.starts.draws == draws and len(res.starts.em_llf) == draws
    assert res.starts.em_llf[res.starts.winner] == max(v for v in res.starts.em_llf if np.isfinite(v))


def test_a_poor_classid_start_ends_elsewhere(stamp):
    # the same method from a poor partition stops at a local maximum: start values matter
    data = stamp.assign(cid=1 + np.searchsorted([0.08, 0.1], stamp["thickness"]))
    res = bf.FMM("thickness ~ 1", k=3).fit(data, startvalues=("classid", "cid"))
    assert res.llf < STATA_LLF - 20


def test_zero_start_is_statas_zero_and_symmetric(stamp):
    model = bf.FMM("thickness ~ 1", k=3)
    start = model.fit(stamp, startvalues="zero", emopts={"iterate": 0}, noestimate=True)
    y = stamp["thickness"].to_numpy()
    assert (start.xs("Class", level="equation") == 0).all()
    assert (start.xs("Intercept", level="term").xs("thickness", level="equation") == 0).all()
    np.testing.assert_allclose(start.xs("var(e)", level="term"), np.var(y), rtol=1e-10)  # 1-class ML variance
    # all classes identical: EM and Newton cannot separate them (Stata: "zero ... is typically
    # useful only when specified with from()"); we say so instead of returning silently
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = model.fit(stamp, startvalues="zero", iterate=5)
    messages = [str(w.message) for w in caught]
    assert any("all 3 classes identical" in m for m in messages), messages
    assert any("did not converge" in m for m in messages)  # a saddle, not a maximum
    one_class = bf.FMM("thickness ~ 1", k=1).fit(stamp)
    assert np.isclose(res.llf, one_class.llf, rtol=1e-10)


def test_zero_start_with_partial_from_reaches_statas_optimum(stamp):
    # Stata: startvalues(zero) "is typically useful only when specified with from()": the
    # class means from the user, everything else 0 (variances at the 1-class value), then EM
    model = bf.FMM("thickness ~ 1", k=3)
    means = pd.Series(
        [0.07, 0.08, 0.10], index=pd.MultiIndex.from_tuples([(j, "thickness", "Intercept") for j in (1, 2, 3)])
    )
    start = model.fit(stamp, startvalues="zero", from_=means, emopts={"iterate": 0}, noestimate=True)
    assert start.xs("Intercept", level="term").xs("thickness", level="equation").tolist() == [0.07, 0.08, 0.10]
    assert (start.xs("Class", level="equation") == 0).all()
    res = model.fit(stamp, startvalues="zero", from_=means)
    assert res.converged
    assert abs(res.llf - STATA_LLF) < 1e-3
    assert res.starts.method == "zero" and res.starts.label == "zero from"
    with pytest.raises(bf.SpecificationError, match="not in the model"):
        model.fit(stamp, startvalues="zero", from_=pd.Series([0.1], index=pd.MultiIndex.from_tuples([(4, "thickness", "Intercept")])))
    with pytest.raises(bf.SpecificationError, match="does not combine with draws"):
        model.fit(stamp, startvalues="randompr", from_=means)


def test_noestimate_and_from_round_trip(stamp, stamp_normal3):
    model = bf.FMM("thickness ~ 1", k=3)
    start = model.fit(stamp, noestimate=True)
    assert isinstance(start, pd.Series) and start.index.equals(stamp_normal3.params.index)
    assert start.attrs["starts"].method == "default"
    # the start is EM's (20 iterations), below the maximum
    assert start.attrs["llf"] < stamp_normal3.llf
    again = model.fit(stamp, from_=start, noestimate=True)
    pd.testing.assert_series_equal(again, start, check_exact=True)
    # Newton from the returned start is the default fit
    res = model.fit(stamp, from_=start)
    assert res.starts.method == "from" and res.starts.draws == 1
    np.testing.assert_allclose(res.params, stamp_normal3.params, rtol=1e-10)
    assert abs(res.llf - stamp_normal3.llf) < 1e-9
    # from_ in another order, as a one-column frame: same start
    shuffled = start.iloc[::-1].to_frame()
    np.testing.assert_allclose(model.fit(stamp, from_=shuffled, noestimate=True), start, rtol=0)


def test_from_the_estimates_converges_at_once(stamp, stamp_normal3):
    res = bf.FMM("thickness ~ 1", k=3).fit(stamp, from_=stamp_normal3.params)
    assert res.converged and res.iterations <= 1
    # the estimates met Stata's criteria, not machine precision: one more step moves them
    # by about 5e-8 (relative)
    np.testing.assert_allclose(res.params, stamp_normal3.params, rtol=1e-6)


def test_from_with_the_wrong_layout_is_a_clear_error(stamp, stamp_normal3):
    model = bf.FMM("thickness ~ 1", k=3)
    params = stamp_normal3.params
    with pytest.raises(bf.SpecificationError, match=r"missing \[3\]thickness:var\(e\)"):
        model.fit(stamp, from_=params.drop((3, "thickness", "var(e)")))
    extra = pd.concat([params, pd.Series([0.1], index=pd.MultiIndex.from_tuples([(3, "thickness", "Intercep")]))])
    with pytest.raises(bf.SpecificationError, match=r"not in the model \[3\]thickness:Intercep \(close: \[3\]thickness:Intercept"):
        model.fit(stamp, from_=extra.drop((3, "thickness", "Intercept")))
    two = bf.FMM("thickness ~ 1", k=2)
    with pytest.raises(bf.SpecificationError, match=r"not in the model \[3\]Class:Intercept"):
        two.fit(stamp, from_=params)
    with pytest.raises(bf.SpecificationError, match="must be a pandas Series"):
        model.fit(stamp, from_=params.to_numpy())
    with pytest.raises(bf.SpecificationError, match="MultiIndex"):
        model.fit(stamp, from_=params.reset_index(drop=True))
    negative = params.copy()
    negative[(2, "thickness", "var(e)")] = -1.0
    with pytest.raises(bf.SpecificationError, match=r"outside their range.*\[2\]thickness:var\(e\)"):
        model.fit(stamp, from_=negative)
    with pytest.raises(bf.SpecificationError, match="does not combine with draws= or with startvalues="):
        model.fit(stamp, from_=params, startvalues="randompr", draws=3)


def test_start_column_errors(stamp_starts):
    model = bf.FMM("thickness ~ 1", k=3)
    with pytest.raises(bf.SpecificationError, match=r"k=3 but 2 column\(s\) \['p1', 'p2'\]"):
        model.fit(stamp_starts, startvalues=("classpr", "p1", "p2"))
    with pytest.raises(bf.DataError, match=r"classpr column\(s\) 'nope' not in the data"):
        model.fit(stamp_starts, startvalues=("classpr", "p1", "nope", "p3"))
    bad = stamp_starts.assign(cid=stamp_starts["cid"].where(stamp_starts.index != 4, 7))
    with pytest.raises(bf.DataError, match=r"classid column 'cid' must hold class numbers 1..3; rows 4 hold \[7.0\]"):
        model.fit(bad, startvalues=("classid", "cid"))
    missing = stamp_starts.assign(cid=stamp_starts["cid"].where(stamp_starts.index != 9))
    with pytest.raises(bf.DataError, match=r"classid column\(s\) 'cid' have missing values in rows 9"):
        model.fit(missing, startvalues=("classid", "cid"))
    empty = stamp_starts.assign(cid=np.where(stamp_starts["cid"] == 3, 2, stamp_starts["cid"]))
    with pytest.raises(bf.DataError, match=r"no row in class\(es\) \[3\]"):
        model.fit(empty, startvalues=("classid", "cid"))
    negative = stamp_starts.assign(p2=-stamp_starts["p2"])
    with pytest.raises(bf.DataError, match="must be non-negative"):
        model.fit(negative, startvalues=("classpr", "p1", "p2", "p3"))


def test_startvalues_option_errors(stamp):
    model = bf.FMM("thickness ~ 1", k=3)
    with pytest.raises(bf.SpecificationError, match=r"did you mean 'randompr'"):
        model.fit(stamp, startvalues="randpr")
    with pytest.raises(bf.SpecificationError, match=r"needs column name\(s\)"):
        model.fit(stamp, startvalues="classid")
    with pytest.raises(bf.SpecificationError, match="draws=5 applies to the random start methods"):
        model.fit(stamp, draws=5)
    with pytest.raises(bf.SpecificationError, match="magnitude must be a non-negative number"):
        model.fit(stamp, startvalues=("jitter", -1))
    with pytest.raises(bf.SpecificationError, match="takes no arguments"):
        model.fit(stamp, startvalues=("randompr", 3))
    with pytest.raises(bf.SpecificationError, match=r"emopts\['iterate'\] must be a non-negative integer"):
        model.fit(stamp, emopts={"iterate": 2.5})


def test_jitter_does_not_depend_on_the_units_of_the_data(stamp):
    # perturbations are in units of each coefficient's 1-class spread: rescaling y by 1000
    # shifts the log likelihood of every jittered start by exactly -n log(1000). (No EM
    # iterations: EM's stopping rule, Stata's mreldif, is not scale-free.)
    model = bf.FMM("thickness ~ 1", k=3)
    a = model.fit(stamp, startvalues="jitter", draws=6, seed=5, emopts={"iterate": 0}, noestimate=True).attrs["starts"]
    b = model.fit(
        stamp.assign(thickness=stamp["thickness"] * 1000), startvalues="jitter", draws=6, seed=5,
        emopts={"iterate": 0}, noestimate=True,
    ).attrs["starts"]
    shift = len(stamp) * np.log(1000)
    finite = np.isfinite(a.em_llf)
    assert finite.sum() >= 3 and len(set(np.round(np.array(a.em_llf)[finite], 3))) == finite.sum()
    np.testing.assert_allclose(np.array(b.em_llf)[finite] + shift, np.array(a.em_llf)[finite], rtol=1e-10)


def test_start_report_says_which_start_won_and_where_draws_ended(stamp):
    res = bf.FMM("thickness ~ 1", k=3).fit(stamp, startvalues="randompr", draws=12, seed=7, emopts={"iterate": 30})
    report = res.starts
    assert report.method == "randompr" and report.seed == 7 and report.label == "randompr"
    assert len(report.em_iterations) == 12 and all(0 < i <= 30 for i in report.em_iterations)
    table = report.table()
    assert table["draws"].sum() == 12 and table["winner"].sum() == 1
    assert table.loc[table["winner"], "llf"].item() == round(report.em_llf[report.winner], 1)
    assert report.newton_llf[-1] == (report.winner, pytest.approx(res.llf))
    assert "12 draw(s), seed 7" in str(report)
    assert res.starts.label == "randompr"
    assert bf.FMM("thickness ~ 1", k=3).fit(stamp, startvalues=("jitter", 1, 2), draws=2, seed=1).starts.label == "jitter 1 2"


def test_difficult_reaches_the_optimum_from_a_non_concave_start(stamp):
    model = bf.FMM("thickness ~ 1", k=3)
    start = model.fit(stamp, emopts={"iterate": 0}, noestimate=True)  # one M-step, no EM
    plain = model.fit(stamp, from_=start)
    hard = model.fit(stamp, from_=start, difficult=True)
    for res in (plain, hard):
        assert res.converged and abs(res.llf - STATA_LLF) < 1e-3
        assert "(not concave)" in str(res.iteration_log)
    # the two steppers take different paths
    assert str(plain.iteration_log) != str(hard.iteration_log)


def test_reference_file_is_the_one_we_cite():
    assert load_reference("stata_fmm_stamp.json")["models"]["normal3"]["log_likelihood"] == STATA_LLF
