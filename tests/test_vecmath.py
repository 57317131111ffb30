"""The compiled vector exp, log and log1p (``bayesfmm._vecmath``, glibc's libmvec on AVX2)
that the logsumexp over classes and the families' densities use where the install has
them: within 4 ulp of numpy's (libmvec's
stated accuracy), numpy's results for every special value, each element's result fixed by
its value alone (not by its place in the buffer or the buffer's length, so row chunks of
any size give the same floats), and fits that reach numpy's log likelihood."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import bayesfmm as bf
from bayesfmm import ops

vecmath = pytest.importorskip("bayesfmm._vecmath", reason="installed without the optional C extension")
ULP = 2.0**-52
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 709.78, 709.79, -708.39, -745.13, -745.2,
                    1e-310, -1e-310, 5e-324, 1e308, -(2.0**-54), 2.0**-54])


def _apply(name: str, x: np.ndarray) -> np.ndarray:
    out = np.array(x, dtype=float, order="C")
    getattr(vecmath, name)(out)
    return out


@pytest.mark.parametrize("name,ref,values", [
    ("exp_inplace", np.exp, np.linspace(-746.0, 710.0, 200_001)),
    ("exp_inplace", np.exp, np.random.default_rng(0).normal(-3.0, 4.0, 100_000)),
    ("log_inplace", np.log, np.geomspace(5e-324, 1e308, 200_001)),
    ("log_inplace", np.log, np.random.default_rng(1).uniform(1.0, 3.0, 100_000)),  # a logsumexp's totals
    ("log1p_inplace", np.log1p, np.random.default_rng(2).uniform(0.0, 1.0, 100_000)),  # a softplus's exp(-|x|)
    ("log1p_inplace", np.log1p, np.concatenate([-np.geomspace(0.999999, 1e-300, 1000), np.geomspace(1e-300, 1e300, 2000)])),
])
def test_within_four_ulp_of_numpy(name, ref, values):
    with np.errstate(over="ignore"):
        want = ref(values)
    got = _apply(name, values)
    finite = np.isfinite(want)
    assert np.array_equal(got[~finite], want[~finite])  # overflow to inf where numpy's does
    got, want = got[finite], want[finite]
    normal = np.abs(want) >= np.finfo(float).tiny
    assert np.all(np.abs(got[normal] - want[normal]) <= 4 * ULP * np.abs(want[normal]))
    assert np.all(np.abs(got[~normal] - want[~normal]) <= 4 * 5e-324)  # subnormal results: absolute ulps


@pytest.mark.parametrize("name,ref", [("exp_inplace", np.exp), ("log_inplace", np.log), ("log1p_inplace", np.log1p)])
def test_special_values_are_numpys(name, ref):
    with np.errstate(all="ignore"):
        want = ref(SPECIAL)
    got = _apply(name, SPECIAL)
    # exactly numpy's: infinities, NaN, 0 and 1 (exp of tiny arguments, log of 1), overflow and underflow
    exact = ~np.isfinite(want) | (want == 0.0) | (want == 1.0)
    assert np.array_equal(got[exact], want[exact], equal_nan=True)
    np.testing.assert_allclose(got[~exact], want[~exact], rtol=4 * ULP, atol=4 * 5e-324)


@pytest.mark.parametrize("name", ["exp_inplace", "log_inplace", "log1p_inplace"])
def test_each_result_depends_on_the_value_alone(name):
    rng = np.random.default_rng(2)
    values = rng.normal(0.0, 3.0, 23) if name == "exp_inplace" else rng.uniform(0.1, 3.0, 23)
    alone = np.array([_apply(name, values[i : i + 1])[0] for i in range(values.size)])
    for length in range(1, values.size + 1):  # every tail length after the 4-wide blocks
        for start in (0, 1, 3):
            piece = values[start : start + length]
            assert np.array_equal(_apply(name, piece), alone[start : start + piece.size])


def test_refuses_what_it_cannot_write_in_place():
    with pytest.raises(TypeError, match="exp_inplace needs a writable contiguous float64 buffer"):
        vecmath.exp_inplace(np.ones(4, dtype=np.float32))
    with pytest.raises((ValueError, BufferError, TypeError)):
        vecmath.log_inplace(np.ones((4, 4))[:, 0])  # strided
    frozen = np.ones(4)
    frozen.flags.writeable = False
    with pytest.raises((ValueError, BufferError, TypeError)):
        vecmath.exp_inplace(frozen)
    vecmath.exp_inplace(np.empty(0))  # nothing to do


def test_logsumexp_falls_back_to_numpy_on_a_strided_vector(monkeypatch):
    monkeypatch.setattr(ops, "VECTOR_EXP", True)
    col = np.linspace(-5.0, 0.0, 40).reshape(20, 2)[:, 1]  # not contiguous
    want = np.exp(col)
    ops.exp_in_place(col)
    assert np.array_equal(col, want)


def test_in_place_helpers_keep_numpys_shapes_and_types(monkeypatch):
    monkeypatch.setattr(ops, "VECTOR_EXP", bool(vecmath.VECTORIZED))
    x = np.linspace(-3.0, 3.0, 40).reshape(5, 8)
    for value in (x.copy(), x.T.copy(), x[:, ::2].copy(), np.arange(20.0), x.astype(np.float32)):
        want = np.exp(value)
        got = ops.exp_in_place(value)
        assert got is value and got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=4 * ULP)
    assert ops.exp_in_place(np.float64(0.0)) == 1.0  # a numpy scalar: a new value
    assert ops.log1p_in_place(np.float64(0.0)) == 0.0


def test_the_environment_switches_it_off():
    code = "import bayesfmm.ops as o; print(o.VECTOR_EXP)"
    env = dict(os.environ, BAYESFMM_VECTOR_EXP="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    env["BAYESFMM_VECTOR_EXP"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(bool(vecmath.VECTORIZED))
    env["BAYESFMM_VECTOR_EXP"] = "off"  # a typo must not leave it silently on
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "SpecificationError" in out.stderr
    assert "BAYESFMM_VECTOR_EXP='off': expected 0 (off) or 1 (on)" in out.stderr


def _data(kind: str, n: int = 3000) -> "bf.pd.DataFrame":  # noqa: F821
    import pandas as pd

    rng = np.random.default_rng(5)
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    z = rng.integers(0, 3 if kind == "gaussian" else 2, n)
    if kind == "gaussian":
        y = np.array([-4.0, 0.0, 4.0])[z] + 0.8 * x1 - 0.3 * x2 + rng.standard_normal(n)
    elif kind == "poisson":
        y = rng.poisson(np.exp(np.array([0.3, 1.8])[z] + 0.4 * x1))
    else:
        y = rng.binomial(10, 1 / (1 + np.exp(-(np.array([-1.0, 1.2])[z] + 0.5 * x1))))
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "n": 10})


@pytest.mark.parametrize("kind,model", [
    ("gaussian", lambda: bf.FMM("y ~ x1 + x2", k=3)),
    ("poisson", lambda: bf.FMM("y ~ x1", family="poisson", k=2)),
    ("binomial", lambda: bf.FMM("y ~ x1", family="binomial", trials="n", k=2)),
])
def test_fits_reach_numpys_maximum(kind, model, monkeypatch):
    if not vecmath.VECTORIZED:
        pytest.skip("this CPU has no AVX2: the extension runs libm's scalar functions")
    df = _data(kind)
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for flag in (False, True):
            monkeypatch.setattr(ops, "VECTOR_EXP", flag)
            fits[flag] = model().fit(df, search=0)
    assert fits[True].converged and fits[False].converged
    assert abs(fits[True].llf - fits[False].llf) <= 1e-9 * abs(fits[False].llf)
    np.testing.assert_allclose(fits[True].theta, fits[False].theta, rtol=1e-6, atol=1e-8)
