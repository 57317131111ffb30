"""The ML engine in row chunks (issue 14): the same numbers as the whole-array formulas."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm import hessian, mixture
from bayesfmm.design import build_design
from bayesfmm.families.base import RESPONSE_TERM, BatchedFit, with_response_terms, without_response_terms
from bayesfmm.families.gaussian import gaussian, normal_weighted_fit
from bayesfmm.likelihood import MixtureProblem, evaluate, loglike, score_hessian
from bayesfmm.ml.chunks import component_newton_fit, e_step
from bayesfmm.ops import NUMPY_OPS, Lazy
from bayesfmm.params import build_layout


def _data(n: int = 3000, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2, z = rng.standard_normal((3, n))
    cls = rng.integers(0, 2, n)
    y = np.where(cls == 0, -2 + x1, 2 - 0.5 * x2) + rng.standard_normal(n)
    counts = rng.poisson(np.exp(np.where(cls == 0, 0.3 + 0.5 * x1, 1.8 - 0.3 * x2)))
    return pd.DataFrame({"y": y, "c": counts, "x1": x1, "x2": x2, "z": z, "w": rng.integers(1, 4, n).astype(float),
                         "t": rng.integers(counts.max(), counts.max() + 5, n)})


MODELS = {
    "gaussian": bf.FMM("y ~ x1 + x2", k=3),
    "weighted": bf.FMM("y ~ x1 + x2", k=2, weights="w"),
    "lcprob": bf.FMM("y ~ x1 + x2", k=2, lcprob="~ z"),
    "poisson": bf.FMM("c ~ x1 + x2", k=2, family="poisson"),
    "nbinomial": bf.FMM("c ~ x1", k=2, family="nbinomial"),
    "binomial": bf.FMM("c ~ x1", k=2, family="binomial", trials="t"),
}


def _problem(name: str) -> tuple[MixtureProblem, np.ndarray]:
    design = build_design(MODELS[name], _data())
    problem = MixtureProblem.build(design, build_layout(design))
    theta = np.random.default_rng(len(name)).normal(0.0, 0.3, problem.layout.size)
    return problem, theta


@pytest.mark.parametrize("name", list(MODELS))
def test_chunked_score_and_hessian_match_one_chunk(name, monkeypatch):
    problem, theta = _problem(name)
    monkeypatch.setattr(hessian, "HESSIAN_CHUNK", 10**9)  # the whole data as one chunk
    ev1, g1, H1 = score_hessian(problem, theta)
    monkeypatch.setattr(hessian, "HESSIAN_CHUNK", 257)  # 12 chunks, the last one short
    ev2, g2, H2 = score_hessian(problem, theta)
    assert len(mixture.row_chunks(problem, 257)) == 12
    assert ev2.llf == pytest.approx(ev1.llf, rel=1e-13)
    np.testing.assert_allclose(g2, g1, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(H2, H1, rtol=1e-10, atol=1e-8 * np.abs(H1).max())
    np.testing.assert_allclose(ev2.resp, evaluate(problem, theta).resp, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", ["gaussian", "weighted", "lcprob", "poisson"])
def test_chunked_derivatives_are_the_likelihoods(name, monkeypatch):
    """The score is the gradient of the log likelihood and the Hessian its Jacobian
    (central differences), with the data cut into many chunks."""
    monkeypatch.setattr(hessian, "HESSIAN_CHUNK", 500)
    problem, theta = _problem(name)
    _, g, H = score_hessian(problem, theta)
    step = 1e-5
    for i in range(theta.size):
        e = np.zeros(theta.size)
        e[i] = step
        fd = (loglike(problem, theta + e) - loglike(problem, theta - e)) / (2 * step)
        assert fd == pytest.approx(g[i], rel=1e-5, abs=1e-4)
        fd_row = (score_hessian(problem, theta + e)[1] - score_hessian(problem, theta - e)[1]) / (2 * step)
        np.testing.assert_allclose(fd_row, H[i], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name", list(MODELS))
def test_e_step_and_chunked_loglike_match_evaluate(name):
    problem, theta = _problem(name)
    full = evaluate(problem, theta)
    parts = mixture.row_chunks(problem, 1000)
    assert [p.n for _, p in parts] == [1000, 1000, 1000]
    ev = e_step(problem, theta)
    assert ev.llf == pytest.approx(full.llf, rel=1e-13)
    assert loglike(problem, theta) == pytest.approx(full.llf, rel=1e-13)
    np.testing.assert_array_equal(ev.resp, full.resp)


def _dense_newton_fit(comp, weights, coefs, steps=25):
    """Plain Newton on the whole arrays (no line search needed from a near start)."""
    for _ in range(steps):
        etas = [X @ b for X, b in zip(comp.slot_designs, coefs)]
        d, h = comp.family.derivatives(comp.y, etas, comp.extra)
        X = comp.slot_designs[0]
        coefs = [coefs[0] - np.linalg.solve(X.T @ ((weights * h[0, 0])[:, None] * X), X.T @ (weights * d[0]))]
    return coefs


def test_component_newton_fit_finds_the_weighted_maximum():
    design = build_design(MODELS["poisson"], _data())
    comp = design.classes[0][0]
    weights = np.random.default_rng(2).random(design.n)
    ours = component_newton_fit(comp, weights, [np.zeros(3)], steps=25)
    np.testing.assert_allclose(ours[0], _dense_newton_fit(comp, weights, [np.array([0.5, 0.0, 0.0])])[0], rtol=1e-9)


def test_gaussian_weighted_fit_is_weighted_least_squares():
    rng = np.random.default_rng(3)
    n = 40_000  # three blocks of the cross-products
    X = np.column_stack([np.ones(n), rng.standard_normal((n, 2))])
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(n)
    w = rng.random(n)
    beta, lnvar = normal_weighted_fit(y, [X, np.ones((n, 1))], [np.zeros(n), np.zeros(n)], w)
    sw = np.sqrt(w)
    ref = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
    np.testing.assert_allclose(beta, ref, rtol=1e-10)
    assert np.exp(lnvar[0]) == pytest.approx(w @ (y - X @ ref) ** 2 / w.sum(), rel=1e-9)


@pytest.mark.parametrize("family, options, y", [
    ("poisson", {}, [0.0, 1.0, 7.0]),
    ("nbinomial", {}, [0.0, 1.0, 7.0]),
    ("tpoisson", {}, [1.0, 2.0, 7.0]),
    ("binomial", {"trials": 10}, [0.0, 3.0, 10.0]),
    ("lognormal", {}, [0.5, 1.0, 7.0]),
])
def test_response_terms_give_the_same_density(family, options, y):
    fam = bf.get_family(family, **options)
    y = np.asarray(y)
    extra = {"trials": np.full(3, 10.0), "ll": np.zeros(3)} if family in ("binomial", "tpoisson") else {}
    etas = [np.array([0.3, -0.2, 1.1])] + [np.array([-0.4])] * (fam.n_slots - 1)
    with_terms = with_response_terms(fam, y, extra)
    assert any(k.startswith(RESPONSE_TERM) for k in with_terms)
    np.testing.assert_array_equal(fam.logpdf(y, etas, NUMPY_OPS, with_terms), fam.logpdf(y, etas, NUMPY_OPS, extra))
    assert without_response_terms(with_terms) == extra or set(without_response_terms(with_terms)) == set(extra)


def test_design_holds_the_response_terms_once():
    design = build_design(MODELS["poisson"], _data())
    comp = design.classes[0][0]
    from scipy.special import gammaln

    # log y! from the math.lgamma table (families/poisson.count_log_factorial): gammaln's to the last bits
    np.testing.assert_allclose(comp.extra[RESPONSE_TERM + "lgamma_y1"], gammaln(comp.y + 1.0), rtol=1e-15, atol=0)
    # another response than the design's (the PyMC model's observed variable) ignores them
    problem = MixtureProblem.build(design, build_layout(design))
    etas = mixture.component_etas(problem, np.zeros(problem.layout.size))
    other = {"c": comp.y + 1.0}
    logf = mixture.component_log_density(problem, etas, NUMPY_OPS, other)
    np.testing.assert_allclose(logf[:, 0], (comp.y + 1.0) * 0.0 - 1.0 - gammaln(comp.y + 2.0))


def test_lazy_scipy_attribute_pickles_and_calls():
    import pickle

    lazy = pickle.loads(pickle.dumps(Lazy("scipy.special", "gammaln")))
    assert float(lazy(5.0)) == pytest.approx(np.log(24.0))


def test_import_loads_no_heavy_module():
    code = (
        "import sys, bayesfmm; heavy = ['scipy.stats', 'scipy.optimize', 'scipy.special', 'scipy.linalg', "
        "'scipy.sparse', 'pytensor', 'pymc', 'arviz', 'xarray', 'rich', 'matplotlib', 'numba', 'formulaic']; "
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_batched_m_step_equals_the_class_by_class_fits():
    """The M-step's batched closed form (gaussian ``BatchedFit``) gives each class's own
    weighted fit; a family replacing ``weighted_fit`` does not keep the batched form."""
    rng = np.random.default_rng(3)
    n = 40_000  # several blocks of the one-pass cross-products
    X = np.c_[np.ones(n), rng.standard_normal((n, 2))]
    y = X @ [1.0, -0.5, 2.0] + rng.standard_normal(n)
    W = rng.random((n, 3))
    fam = gaussian()
    assert isinstance(fam.weighted_fit, BatchedFit)
    assert pickle.loads(pickle.dumps(fam.weighted_fit)) == fam.weighted_fit
    batched = fam.fit_weighted_columns(y, [X, np.ones((n, 1))], [0.0, 0.0], W, {})
    for j in range(3):
        single = fam.weighted_fit(y, [X, np.ones((n, 1))], [0.0, 0.0], W[:, j], {})
        for a, b in zip(batched[j], single):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    replaced = dataclasses.replace(fam, weighted_fit=lambda y, designs, offsets, weights, extra=None: ["mine"])
    assert replaced.fit_weighted_columns(y, [X, np.ones((n, 1))], [0.0, 0.0], W, {}) == [["mine"]] * 3
