"""Plain formulas encoded without formulaic (issue 14: the first fit pays no formulaic import).

Reference: formulaic itself. Every design the fast path builds is compared with
``formulaic.model_matrix(formula, data, na_action="ignore")`` on the same data: column
names and order, values bit for bit (NaN where formulaic keeps NaN), and the layout
(column-major) the fit then reads. Formulas or columns the fast path does not cover must
come back from formulaic itself (its ModelSpec, not bayesfmm's stand-in).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from formulaic import Formula, ModelSpec, model_matrix

import bayesfmm as bf
from bayesfmm.design import FORMULA_CONTEXT
from bayesfmm.formula import (
    PlainSpec,
    formula_has_lhs,
    formula_sides,
    model_matrices,
    plain_arrays,
    plain_formula,
    response_terms,
    rhs_terms,
)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(14)
    n = 50
    frame = pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "y2": rng.normal(size=n),
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "count": rng.integers(0, 9, size=n),  # int64
            "small": rng.integers(0, 9, size=n).astype(np.uint8),
            "f32": rng.normal(size=n).astype(np.float32),
            "flag": rng.random(n) < 0.5,
            "g": rng.choice(["a", "b", "c"], size=n).astype(object),
            "cat": pd.Categorical(rng.choice(["u", "v"], size=n)),
            "nullable": pd.array(rng.integers(0, 5, size=n), dtype="Int64"),
        }
    )
    frame.loc[[3, 17], "x1"] = np.nan
    frame.loc[[5], "y"] = np.nan
    frame.loc[[8], "y2"] = np.nan
    return frame


PLAIN = [
    "y ~ x1 + x2",
    "y ~ x2 + x1",
    "y ~ x1 + x2 - 1",
    "y ~ 0 + x1",
    "y ~ x1 + 0",
    "y ~ -1 + x1 + x2",
    "y ~ 1 + x1",
    "y ~ x1 + 1",
    "y ~ 1",
    "y ~ 0",
    "y ~ -1",
    "y ~ x1 + x1",
    "y ~ count + x1",
    "y ~ small + f32",
    "y~x1+x2",
    "count ~ x1 + x2",
    "y + y2 ~ x1 + x2",
    "y2 + y ~ x2",
    "~ x1 + count",
    "~ x2 - 1",
]


def _same(ours, theirs) -> None:
    assert list(map(str, ours.columns)) == list(map(str, theirs.columns))
    a, b = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a, b)  # NaN where formulaic has NaN, else bit for bit
    assert a.flags["F_CONTIGUOUS"] == b.flags["F_CONTIGUOUS"]


@pytest.mark.parametrize("formula", PLAIN)
def test_plain_formula_equals_formulaic(data, formula):
    assert plain_formula(formula) is not None
    lhs, rhs, spec = model_matrices(formula, data, FORMULA_CONTEXT)
    assert isinstance(spec, PlainSpec)
    theirs = model_matrix(formula, data, na_action="ignore", context=FORMULA_CONTEXT)
    if formula.strip().startswith("~"):
        assert lhs is None
        _same(rhs, theirs)
    else:
        _same(lhs, theirs.lhs)
        _same(rhs, theirs.rhs)
        # new data encoded with the stored spec, as predict does: the same as formulaic's spec
        new = data.iloc[::3].assign(x2=(data["x2"].iloc[::3] > 0))  # a bool column in new data
        _same(spec.get_model_matrix(new, na_action="ignore", context=FORMULA_CONTEXT),
              theirs.rhs.model_spec.get_model_matrix(new, na_action="ignore", context=FORMULA_CONTEXT))


@pytest.mark.parametrize("formula", PLAIN)
def test_plain_arrays_are_formulaics_values(data, formula):
    """The design reads the plain path's arrays without data frames: the same values bit for
    bit (NaN kept), column names and column-major layout as formulaic's matrices."""
    enc = plain_arrays(formula, data)
    theirs = model_matrix(formula, data, na_action="ignore", context=FORMULA_CONTEXT)
    rhs = theirs if formula.strip().startswith("~") else theirs.rhs
    assert enc.rhs_columns == tuple(rhs.columns)
    _same(pd.DataFrame(enc.rhs, columns=list(enc.rhs_columns)), rhs)
    assert enc.rhs.flags["F_CONTIGUOUS"]
    if formula.strip().startswith("~"):
        assert enc.lhs is None and enc.lhs_columns == ()
    else:
        assert enc.lhs_columns == tuple(theirs.lhs.columns)
        _same(pd.DataFrame(enc.lhs, columns=list(enc.lhs_columns)), theirs.lhs)


@pytest.mark.parametrize("formula", ["y ~ flag + x1", "y ~ g", "y ~ nullable", "flag ~ x1", "y ~ C(g) + x1", "y ~ absent"])
def test_plain_arrays_leave_other_columns_to_formulaic(data, formula):
    assert plain_arrays(formula, data) is None


def test_missing_mask_equals_pandas_isna_for_every_dtype():
    """drop_missing's mask per column (numpy for numpy float, int and bool columns) is
    pandas' ``isna`` for every dtype a frame can hold."""
    from bayesfmm.frame import _missing

    frame = pd.DataFrame({
        "f": [1.0, np.nan, 3.0, np.inf], "f32": np.array([np.nan, 1, 2, 3], dtype=np.float32),
        "i": [1, 2, 3, 4], "u": np.array([1, 2, 3, 4], dtype=np.uint8), "b": [True, False, True, True],
        "nullable": pd.array([1, None, 3, 4], dtype="Int64"), "fnull": pd.array([1.0, None, 3.0, 4.0], dtype="Float64"),
        "o": ["a", None, "c", np.nan], "s": pd.array(["a", None, "c", "d"], dtype="string"),
        "cat": pd.Categorical(["a", None, "a", "b"]), "t": pd.to_datetime(["2020-01-01", None, "2020-01-03", "2020-01-04"]),
    })
    for name in frame.columns:
        mask = _missing(frame[name])
        assert isinstance(mask, np.ndarray) and mask.dtype == bool, name
        np.testing.assert_array_equal(mask, frame[name].isna().to_numpy(), err_msg=name)


@pytest.mark.parametrize("formula", PLAIN)
def test_plain_formula_reads_like_formulaic(formula):
    parsed = Formula(formula)
    assert formula_has_lhs(formula) == hasattr(parsed, "lhs")
    rhs = parsed.rhs if hasattr(parsed, "lhs") else parsed
    assert rhs_terms(formula) == tuple(str(t) for t in rhs)
    if hasattr(parsed, "lhs"):
        assert response_terms(formula) == tuple(str(t) for t in parsed.lhs)
        assert formula_sides(formula) == (
            sorted(parsed.lhs.required_variables), sorted(rhs.required_variables)
        )


@pytest.mark.parametrize(
    "formula",
    ["y ~ C(g)", "y ~ x1:x2", "y ~ x1 * x2", "y ~ np.log(count + 1)", "y ~ log(count + 1)",
     "y ~ I(x1 ** 2)", "y ~ x1 - x2", "y ~ 0 + 1 + x1", "y ~ `x1`", "y ~", "y ~ x1 +",
     "y ~ Intercept", "y + y ~ x1", "y ~ x1 | x2", "np ~ x1", "y ~ (x1 + x2)"],
)
def test_formulas_that_are_not_plain_go_to_formulaic(formula):
    assert plain_formula(formula) is None


@pytest.mark.parametrize("formula", ["y ~ flag + x1", "y ~ g", "y ~ cat + x2", "y ~ nullable", "flag ~ x1", "y ~ C(g) + x1"])
def test_columns_that_are_not_plain_numbers_go_to_formulaic(data, formula):
    lhs, rhs, spec = model_matrices(formula, data, FORMULA_CONTEXT)
    assert isinstance(spec, ModelSpec)
    theirs = model_matrix(formula, data, na_action="ignore", context=FORMULA_CONTEXT)
    _same(rhs, theirs.rhs)
    _same(lhs, theirs.lhs)


def test_stored_plain_spec_refuses_text_where_the_fit_had_numbers(data):
    _, _, spec = model_matrices("y ~ x1", data, FORMULA_CONTEXT)
    with pytest.raises(ValueError, match="not \\['Intercept', 'x1'\\] as in the fit"):
        spec.get_model_matrix(pd.DataFrame({"x1": ["a", "b", "a"]}))


def test_fit_with_plain_formula_equals_fit_with_formulaic(data):
    """The same model through both encodings: ``y ~ x1 + x2`` (fast path) and
    ``y ~ x1 + I(x2)`` (formulaic; I() is the identity) give the same fit to 1e-10."""
    frame = data[["y", "x1", "x2"]].dropna().reset_index(drop=True)
    frame = pd.concat([frame, frame.assign(y=frame["y"] + 4.0)], ignore_index=True)
    fast = bf.FMM("y ~ x1 + x2", k=2).fit(frame, search=0)
    slow = bf.FMM("y ~ x1 + I(x2)", k=2).fit(frame, search=0)
    assert isinstance(fast.design.classes[0][0].model_spec, PlainSpec)
    assert isinstance(slow.design.classes[0][0].model_spec, ModelSpec)
    assert abs(fast.llf - slow.llf) < 1e-10
    np.testing.assert_allclose(fast.params.to_numpy(), slow.params.to_numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast.predict(frame.iloc[:5]), slow.predict(frame.iloc[:5]), rtol=1e-12)


@pytest.mark.parametrize("family", ["gaussian", "poisson", "binomial"])
def test_a_gaussian_poisson_or_binomial_fit_imports_neither_formulaic_nor_scipy_special(family):
    """A fresh process (``import bayesfmm``, one gaussian, Poisson or binomial (logit)
    fit) leaves formulaic, scipy.special, scipy.sparse and scipy.linalg unimported: their
    imports cost more than the fit (issue 14). log y! and log C(n, y) come from a table
    of math.lgamma, the logistic function from numpy."""
    code = textwrap.dedent(
        """
        import sys, warnings
        import numpy as np, pandas as pd
        import bayesfmm as bf
        rng = np.random.default_rng(0)
        n = 400
        df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
        df["y"] = df.x1 + rng.normal(size=n) + np.where(rng.random(n) < 0.5, 0.0, 4.0)
        options = {}
        if FAMILY == "poisson":
            df["y"] = rng.poisson(np.exp(0.5 + 0.3 * df.x1 + np.where(rng.random(n) < 0.5, 0.0, 1.5)))
        if FAMILY == "binomial":
            df["t"] = rng.integers(5, 20, size=n)
            df["y"] = rng.binomial(df.t, 1 / (1 + np.exp(-(0.5 * df.x1 + np.where(rng.random(n) < 0.4, -1, 1)))))
            options = {"trials": "t"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = bf.FMM("y ~ x1 + x2", family=FAMILY, k=2, **options).fit(df, search=0)
        assert np.isfinite(res.llf)
        heavy = ("formulaic", "scipy.special", "scipy.sparse", "scipy.linalg")
        print(sorted(m for m in sys.modules if m.startswith(heavy)))
        """
    ).replace("FAMILY", repr(family))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_count_log_factorial_table_equals_gammaln():
    """log y! from the math.lgamma table equals scipy's gammaln(y + 1) to 1e-15 relative
    over 0..100000; non-counts and larger counts fall back to gammaln (None)."""
    from scipy.special import gammaln

    from bayesfmm.families.poisson import LOG_FACTORIAL_TABLE_MAX, count_log_factorial

    y = np.arange(0, LOG_FACTORIAL_TABLE_MAX + 1, dtype=float)
    np.testing.assert_allclose(count_log_factorial(y), gammaln(y + 1), rtol=1e-15, atol=0)
    assert count_log_factorial(np.array([1.0, 2.5])) is None
    assert count_log_factorial(np.array([LOG_FACTORIAL_TABLE_MAX + 1.0])) is None


def test_binomial_log_choose_and_expit_equal_scipy():
    """log C(n, y) from the lgamma table and numpy's logistic function equal scipy's
    gammaln / expit to 1e-15 relative (the response term) and 1e-15 (expit)."""
    from scipy.special import expit as scipy_expit
    from scipy.special import gammaln

    from bayesfmm.families.binomial import _log_choose
    from bayesfmm.ops import NUMPY_OPS, expit

    rng = np.random.default_rng(2)
    n = rng.integers(1, 500, size=2000).astype(float)
    y = np.floor(rng.random(2000) * (n + 1))
    got = _log_choose(y, {"trials": n}, NUMPY_OPS)["log_choose"]
    want = gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    x = np.linspace(-700, 700, 20001)
    np.testing.assert_allclose(expit(x), scipy_expit(x), rtol=1e-15, atol=0)
