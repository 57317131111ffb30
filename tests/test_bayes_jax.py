"""The JAX path (issue 15): sampler="numpyro" and nutpie's backend="jax", on CPU JAX.

Skipped when jax or numpyro is not installed (the optional extra ``bayesfmm[jax]``).
Both must reproduce the default sampler's posterior of stamp k = 2 within Monte Carlo
error and start their chains where the package says (nutpie's jax backend orders its
unconstrained vector differently from the numba one: bayesfmm.bayes.target.flat_for).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import bayesfmm as bf

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("jax") is None or importlib.util.find_spec("numpyro") is None,
        reason="jax/numpyro not installed (pip install 'bayesfmm[jax]')",
    ),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

ML_MEANS = np.array([0.0761, 0.1014])  # stamp k = 2: ML class means (flexmix and Stata agree)


@pytest.fixture(scope="module")
def stamp():
    return bf.datasets.load("stamp")


@pytest.mark.parametrize("options", [{"backend": "jax"}, {"sampler": "numpyro"}], ids=["nutpie-jax", "numpyro"])
def test_jax_paths_sample_stamp(stamp, options):
    res = bf.FMM("thickness ~ 1", k=2).sample(stamp, draws=300, tune=300, chains=2, random_seed=1, progressbar=False,
                                              **options)
    means = res.params.xs("Intercept", level="term").xs("thickness", level="equation").to_numpy()
    sds = res.bse.xs("Intercept", level="term").xs("thickness", level="equation").to_numpy()
    assert np.all(np.abs(means - ML_MEANS) < 4 * sds + 2e-4)
    diag = res.diagnostics()
    assert diag.max_rhat < 1.05 and diag.divergences == 0


def test_jax_backend_starts_chains_at_the_given_points(stamp):
    from bayesfmm.bayes.runners import compile_nutpie
    from bayesfmm.bayes.sample import build_model
    from bayesfmm.bayes.target import flat_for

    built = build_model(bf.FMM("thickness ~ 1", k=2), stamp)
    compiled, _ = compile_nutpie(built.model, None, backend="jax")
    theta = built.pooled + np.array([0.2, -0.01, -2.0, 0.01, -1.0])
    flat = flat_for(compiled, built)(theta)
    point = built.value_point(theta)
    for v in compiled._variables:
        if v.name in point:
            np.testing.assert_allclose(flat[v.start_idx:v.end_idx], point[v.name])
