"""The engine's small kernels that issue 14 rewrote for speed give the numbers of the
formulas they replace: the same floats where the arithmetic is the same (stacked normal
equations, two-class and general logsumexp, softplus pairs), within an ulp where it is not (the logit
derivatives), and a component's Newton fit at the same maximum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm import ops
from bayesfmm.families.binomial import _logit_derivatives
from bayesfmm.families.gaussian import _solve_normal_equations, _solve_normal_equations_stacked
from bayesfmm.likelihood import score_hessian
from bayesfmm.ops import _np_log_sigmoid_pair, _np_softplus, expit, logsumexp_columns


def _systems(seed: int, m: int, p: int, collinear: bool):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((60, p))
    if collinear:  # condition number past 1e10: the solver must report None, as one at a time
        X[:, -1] = X[:, 0] * (1 + 1e-9 * rng.standard_normal(60))
    W = rng.random((60, m))
    cross = np.stack([X.T @ (W[:, j, None] * X) for j in range(m)])
    return cross, rng.standard_normal((m, p))


@pytest.mark.parametrize("collinear", [False, True])
@pytest.mark.parametrize("m,p", [(1, 1), (2, 3), (3, 3), (5, 7)])
def test_stacked_normal_equations_are_the_one_at_a_time_floats(m, p, collinear):
    cross, rhs = _systems(m * 10 + p, m, p, collinear and p > 1)
    stacked = _solve_normal_equations_stacked(cross, rhs)
    for j in range(m):
        one = _solve_normal_equations(cross[j], rhs[j])
        assert (one is None) == (stacked[j] is None)
        if one is not None:
            assert np.array_equal(one, stacked[j])


def test_stacked_normal_equations_fall_back_on_a_bad_matrix():
    cross, rhs = _systems(1, 3, 2, False)
    cross[1] = [[1.0, 2.0], [2.0, 1.0]]  # indefinite: Cholesky fails for this one only
    stacked = _solve_normal_equations_stacked(cross, rhs)
    assert stacked[1] is None
    for j in (0, 2):
        assert np.array_equal(stacked[j], _solve_normal_equations(cross[j], rhs[j]))


def _general_logsumexp(joint: np.ndarray):
    """The k-column loop of logsumexp_columns, for a k = 2 array (a third column of -inf
    adds 0 to every row's total and keeps the general path)."""
    lse, resp = logsumexp_columns(np.column_stack([joint, np.full(joint.shape[0], -np.inf)]))
    return lse, resp[:, :2]


@pytest.mark.parametrize("scale", [0.1, 5.0, 400.0])
def test_two_class_logsumexp_is_the_general_loops_floats(scale, exp_log):
    rng = np.random.default_rng(3)
    joint = np.asfortranarray(rng.standard_normal((2000, 2)) * scale)
    joint[::7, 1] = joint[::7, 0]  # ties
    joint[::11, 0] = -np.inf  # a class whose density is 0 on the row
    lse, resp = logsumexp_columns(joint)
    ref_lse, ref_resp = _general_logsumexp(joint)
    assert np.array_equal(lse, ref_lse) and np.array_equal(resp, ref_resp)
    # and the numbers themselves (numpy's logaddexp as the oracle)
    np.testing.assert_allclose(lse, np.logaddexp(joint[:, 0], joint[:, 1]), rtol=1e-15, atol=1e-12)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-15)


def test_two_class_logsumexp_keeps_the_non_finite_rules(exp_log):
    joint = np.array([[-np.inf, -np.inf], [np.inf, 0.0], [np.nan, 1.0], [0.0, 0.0]])
    with np.errstate(all="ignore"):
        lse, resp = logsumexp_columns(joint)
        ref_lse, ref_resp = _general_logsumexp(joint)
    assert np.array_equal(lse, ref_lse, equal_nan=True)
    assert np.array_equal(resp, ref_resp, equal_nan=True)


def _vector(fn_name: str):
    def apply(a):
        out = np.array(a, dtype=float, order="C")  # a C-contiguous copy, any shape
        getattr(ops._vecmath, fn_name)(out)
        return out

    return apply


@pytest.fixture(params=["numpy", "vector"])
def exp_log(request, monkeypatch):
    """Each logsumexp path (numpy's exp and log, or the compiled vector ones, where the
    install has them), with the matching exp and log for the reference arithmetic."""
    if request.param == "numpy":
        monkeypatch.setattr(ops, "VECTOR_EXP", False)
        return np.exp, np.log
    if ops._vecmath is None or not ops._vecmath.VECTORIZED:
        pytest.skip("no vectorised bayesfmm._vecmath in this install")
    monkeypatch.setattr(ops, "VECTOR_EXP", True)
    return _vector("exp_inplace"), _vector("log_inplace")


def _plain_logsumexp(joint: np.ndarray, exp=np.exp, log=np.log):
    """The general loop's arithmetic without the shortcut: ``exp(joint - top)`` as is."""
    top = joint.max(axis=1)
    top = np.where(np.isfinite(top), top, 0.0)
    terms = exp(joint - top[:, None])
    total = terms[:, 0].copy()
    for j in range(1, joint.shape[1]):
        total += terms[:, j]
    return top + log(total), terms / total[:, None]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_general_logsumexp_gives_exps_floats_off_its_zero_branch(k, exp_log):
    # numpy's path: the row maximum's exact 0 goes to exp as -2**-54 (same result, exp's
    # main path); the vector path: exp and log from libmvec, element by element the same
    rng = np.random.default_rng(k)
    joint = np.asfortranarray(rng.standard_normal((3000, k)) * 4.0)
    if k > 1:
        joint[::5, 1] = joint[::5, 0]  # ties at the maximum
        joint[::7, 0] = -np.inf
        joint[::9, -1] = joint[::9, 0] - 2.0**-60  # just below the maximum
    with np.errstate(all="ignore"):
        lse, resp = logsumexp_columns(joint)
        ref_lse, ref_resp = _plain_logsumexp(joint, *exp_log)
    assert np.array_equal(lse, ref_lse) and np.array_equal(resp, ref_resp)


def test_general_logsumexp_keeps_the_non_finite_rules(exp_log):
    joint = np.array([[-np.inf] * 3, [np.inf, 0.0, 1.0], [np.nan, 1.0, 2.0], [0.0, 0.0, 0.0], [1e308, 1e308, 0.0]])
    with np.errstate(all="ignore"):
        lse, resp = logsumexp_columns(joint)
        ref_lse, ref_resp = _plain_logsumexp(joint, *exp_log)
    assert np.array_equal(lse, ref_lse, equal_nan=True)
    assert np.array_equal(resp, ref_resp, equal_nan=True)
    assert lse[1] == np.inf and np.isnan(lse[2]) and lse[3] == exp_log[1](np.array([3.0]))[0]  # log(3)


def _logaddexp0(x, exp_log):
    """``np.logaddexp(0, x)``'s arithmetic with the path's exp and numpy's or libmvec's log1p."""
    exp, _ = exp_log
    log1p = np.log1p if exp is np.exp else _vector("log1p_inplace")
    return np.maximum(x, 0.0) + log1p(exp(-np.abs(x)))


def test_softplus_and_log_sigmoid_pair_are_logaddexps_floats(exp_log):
    x = np.concatenate([np.linspace(-800, 800, 4001), [0.0, -0.0, np.inf, -np.inf, 1e-300, -1e-300]])
    if exp_log[0] is np.exp:  # numpy's path: logaddexp's own floats
        assert np.array_equal(_np_softplus(x), np.logaddexp(0.0, x))
    else:  # the vector path: within 4 ulp of them
        np.testing.assert_allclose(_np_softplus(x), np.logaddexp(0.0, x), rtol=4 * 2.0**-52, atol=0.0)
    assert np.array_equal(_np_softplus(x), _logaddexp0(x, exp_log))
    log_p, log_q = _np_log_sigmoid_pair(x)
    assert np.array_equal(log_p, -_logaddexp0(-x, exp_log))
    assert np.array_equal(log_q, -_logaddexp0(x, exp_log))
    assert isinstance(_np_softplus(2.0), np.floating)  # a scalar stays a scalar


def test_logit_derivatives_within_an_ulp_of_expit(exp_log):
    eta = np.concatenate([np.random.default_rng(0).standard_normal(20000) * 15, [0.0, 745.0, -745.0, 800.0, -800.0]])
    q, pq, minus_p, _ = _logit_derivatives(eta)
    p_ref, q_ref = expit(eta), expit(-eta)
    # atol: for 709.8 < |eta| < 745.2 the tail is subnormal here, where expit's exp(|eta|)
    # overflows and rounds it to 0; rtol: libmvec's exp adds up to 4 ulp on the vector path
    rtol, rtol_pq = (5e-16, 2e-15) if exp_log[0] is np.exp else (1.2e-15, 4e-15)
    np.testing.assert_allclose(-minus_p, p_ref, rtol=rtol, atol=1e-307)
    np.testing.assert_allclose(q, q_ref, rtol=rtol, atol=1e-307)
    np.testing.assert_allclose(pq, -p_ref * q_ref, rtol=rtol_pq, atol=1e-307)
    assert q[-2] == 0.0 and minus_p[-1] == 0.0 and q[-1] == 1.0  # past 745.2: exactly 0 and 1


def test_binomial_mixture_reaches_the_same_maximum_as_a_tight_newton():
    """The logit M-step's shortcuts (one exp, the last Newton step taken without Q) leave
    the fit at the maximum: Newton from the fit moves the llf by less than 1e-9."""
    rng = np.random.default_rng(11)
    n = 3000
    x = rng.standard_normal(n)
    cls = rng.random(n) < 0.4
    trials = rng.integers(5, 15, n)
    y = rng.binomial(trials, expit(np.where(cls, -1.0 + 0.8 * x, 1.5 - 0.6 * x)))
    df = pd.DataFrame({"y": y, "n": trials, "x": x})
    res = bf.FMM("y ~ x", family="binomial", trials="n", k=2).fit(df, search=0)
    assert res.converged
    _, g, H = score_hessian(res.problem, res.theta)
    step = np.linalg.solve(-H, g)
    assert 0.5 * g @ step < 1e-9  # the quadratic model's gain at the fit
    assert np.max(np.abs(g)) < 1e-3


def test_log_sigmoid_pair_is_the_same_function_in_pytensor():
    pytensor = pytest.importorskip("pytensor")
    import pytensor.tensor as pt

    from bayesfmm.ops import pytensor_ops

    x = np.linspace(-60, 60, 241)
    xt = pt.dvector("x")
    graph = pytensor.function([xt], list(pytensor_ops().log_sigmoid_pair(xt)))
    for got, want in zip(graph(x), _np_log_sigmoid_pair(x)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)


def _count_mixtures():
    """A Poisson, a binomial and a negative binomial 2-class regression mixture (no
    closed-form M-step: each class's fit is weighted Newton steps)."""
    rng = np.random.default_rng(5)
    n = 2000
    x = rng.standard_normal(n)
    cls = rng.random(n) < 0.4
    trials = rng.integers(5, 15, n)
    eta = np.where(cls, -1.0 + 0.8 * x, 1.5 - 0.6 * x)
    df = pd.DataFrame({
        "c": rng.poisson(np.exp(np.where(cls, 0.3 + 0.7 * x, 2.0 - 0.4 * x))),
        "y": rng.binomial(trials, expit(eta)), "n": trials, "x": x,
        "m": rng.poisson(rng.gamma(2.0, 0.5, n) * np.exp(np.where(cls, 0.5 + 0.5 * x, 2.5 - 0.3 * x))),
    })
    return df, [
        bf.FMM("c ~ x", family="poisson", k=2),
        bf.FMM("y ~ x", family="binomial", trials="n", k=2),
        bf.FMM("m ~ x", family="nbinomial", k=2),
    ]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_one_newton_step_m_step_is_monotone_and_ends_at_the_full_m_steps_maximum(which, monkeypatch):
    """EM's M-step takes one weighted Newton step per component (``EM_COMPONENT_STEPS``, a
    generalised EM step): the log likelihood never falls from one EM iteration to the next,
    and the fit ends at the maximum that full M-steps (5 Newton steps, Q maximised to
    1e-10) reach: llf to 1e-10 relative, parameters to 1e-5."""
    from bayesfmm.ml import em as em_module
    from bayesfmm.ml.chunks import e_step

    df, models = _count_mixtures()
    model = models[which]
    one = model.fit(df, search=0)
    problem = one.problem
    rng = np.random.default_rng(0)
    theta = one.theta + 0.1 * rng.standard_normal(one.theta.size)  # away from the maximum
    ev = e_step(problem, theta)
    for _ in range(15):
        theta = em_module.m_step(problem, ev.resp, theta, em_module.EM_COMPONENT_STEPS)
        new = e_step(problem, theta)
        assert new.llf >= ev.llf - 1e-9 * abs(ev.llf)
        ev = new
    monkeypatch.setattr(em_module, "EM_COMPONENT_STEPS", 5)
    full = model.fit(df, search=0)
    assert one.converged and full.converged
    assert one.llf == pytest.approx(full.llf, rel=1e-10)
    np.testing.assert_allclose(one.theta, full.theta, rtol=0, atol=1e-5)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_m_step_starts_newton_from_the_e_steps_densities(which, monkeypatch):
    """EM keeps the E-step's n x k log densities (``e_step(..., log_density=True)``: those
    of :func:`~bayesfmm.likelihood.evaluate`) and the M-step reads each Newton-fitted
    class's starting Q from them instead of another pass over the data: the same fit as
    recomputing Q (llf to 1e-12 relative, parameters to 1e-8)."""
    from bayesfmm.likelihood import evaluate
    from bayesfmm.ml import em as em_module
    from bayesfmm.ml.chunks import component_newton_fit, e_step

    df, models = _count_mixtures()
    model = models[which]
    res = model.fit(df, search=0)
    problem = res.problem
    assert em_module._reads_log_density(problem)
    theta = res.theta * 0.9
    kept = e_step(problem, theta, log_density=True)
    np.testing.assert_allclose(kept.log_density, evaluate(problem, theta).log_density, rtol=1e-13, atol=0)
    assert e_step(problem, theta).log_density is None
    comp, w = problem.design.classes[0][0], kept.resp[:, 0]
    blocks = [problem.layout.slot_block(1, 0, s) for s in range(len(comp.slot_designs))]
    current = [theta[b.slice] for b in blocks]
    given = component_newton_fit(comp, w, current, 1, float(w @ kept.log_density[:, 0]))
    for a, b in zip(given, component_newton_fit(comp, w, current, 1)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    monkeypatch.setattr(em_module, "_reads_log_density", lambda problem: False)
    recomputed = model.fit(df, search=0)
    assert res.llf == pytest.approx(recomputed.llf, rel=1e-12)
    np.testing.assert_allclose(res.theta, recomputed.theta, rtol=0, atol=1e-8)


@pytest.mark.parametrize("which", [0, 1, 2], ids=["poisson", "binomial", "nbinomial"])
def test_m_step_carries_the_densities_to_the_next_e_step(which, monkeypatch):
    """Where every class is one Newton-fitted component, the M-step brings the E-step's log
    densities to its new theta in place (from each fit's accepted trial, or one pass after
    a step taken without evaluating Q) and the next E-step reads them: the densities equal
    evaluate()'s at the new theta (1e-13), the E-step reading them equals one computing
    them, and a fit with the carry equals one without (llf 1e-12, parameters 1e-8)."""
    from bayesfmm.likelihood import evaluate
    from bayesfmm.ml import em as em_module
    from bayesfmm.ml.chunks import e_step

    df, models = _count_mixtures()
    model = models[which]
    res = model.fit(df, search=0)
    problem = res.problem
    assert em_module._updates_log_density(problem)
    for scale, steps in ((0.9, 1), (0.7, 5), (1.0, 1)):  # (1.0: at the maximum, the step without Q)
        theta = res.theta * scale
        ev = e_step(problem, theta, log_density=True)
        logf = ev.log_density
        new_theta = em_module.m_step(problem, ev.resp, theta, steps, logf, update_density=True)
        assert not np.array_equal(new_theta, theta)
        truth = evaluate(problem, new_theta)
        np.testing.assert_allclose(logf, truth.log_density, rtol=1e-13, atol=0)
        carried = e_step(problem, new_theta, True, known=logf)
        assert carried.log_density is logf
        assert carried.llf == pytest.approx(truth.llf, rel=1e-13)
        np.testing.assert_allclose(carried.resp, e_step(problem, new_theta).resp, rtol=1e-12, atol=1e-15)
    monkeypatch.setattr(em_module, "_updates_log_density", lambda problem: False)
    recomputed = model.fit(df, search=0)
    assert res.llf == pytest.approx(recomputed.llf, rel=1e-12)
    np.testing.assert_allclose(res.theta, recomputed.theta, rtol=0, atol=1e-8)


def test_m_step_newton_fit_applies_the_exposure():
    """A component with ``exposure=`` (an offset of log t): the M-step's Newton fits add it
    to the linear predictor (one without offset skips the pass adding zeros), so the
    densities they carry equal evaluate()'s (1e-13) and the fit matches the offset-free
    model on the rescaled rate (Poisson: log t moves into the intercept when t is constant)."""
    from bayesfmm.likelihood import evaluate
    from bayesfmm.ml import em as em_module
    from bayesfmm.ml.chunks import e_step

    df, _ = _count_mixtures()
    df["t"] = np.random.default_rng(2).uniform(0.5, 3.0, len(df))
    res = bf.FMM("c ~ x", family="poisson", k=2, exposure="t").fit(df, search=0)
    theta = res.theta * 0.9
    ev = e_step(res.problem, theta, log_density=True)
    new_theta = em_module.m_step(res.problem, ev.resp, theta, 1, ev.log_density, update_density=True)
    np.testing.assert_allclose(ev.log_density, evaluate(res.problem, new_theta).log_density, rtol=1e-13, atol=0)
    df["t"] = 2.0
    scaled = bf.FMM("c ~ x", family="poisson", k=2, exposure="t").fit(df, search=0)
    plain = bf.FMM("c ~ x", family="poisson", k=2).fit(df, search=0)
    assert scaled.llf == pytest.approx(plain.llf, rel=1e-10)
    terms = list(plain.problem.layout.index.get_level_values("term"))
    slope = [i for i, term in enumerate(terms) if term == "x"]
    intercept = [i for i, name in enumerate(plain.problem.layout.index) if name[1] == "c" and name[2] == "Intercept"]
    assert len(slope) == len(intercept) == 2
    np.testing.assert_allclose(scaled.theta[slope], plain.theta[slope], rtol=1e-6)
    np.testing.assert_allclose(scaled.theta[intercept] + np.log(2.0), plain.theta[intercept], rtol=1e-6)


def test_m_step_carries_densities_only_where_every_class_is_one_newton_component():
    """A closed-form class (gaussian), a constrained model or a grouped one: the next
    E-step evaluates the families."""
    from bayesfmm.ml import em as em_module

    df, models = _count_mixtures()
    df["g"] = np.arange(len(df)) // 4
    assert em_module._updates_log_density(models[0].fit(df, search=0).problem)
    gaussian = bf.FMM("x ~ 1", k=2).fit(df, search=0, minprior=0).problem
    assert not em_module._updates_log_density(gaussian)
    grouped = bf.FMM("c ~ x", family="poisson", k=2, group="g").fit(df, search=0).problem
    assert not em_module._updates_log_density(grouped)
    constrained = bf.FMM("c ~ x", family="poisson", k=2, equal="x").fit(df, search=0).problem
    assert not em_module._updates_log_density(constrained)


@pytest.mark.parametrize("which", ["gaussian", "poisson", "weighted"])
def test_newton_reads_ems_last_evaluation(which, monkeypatch):
    """Newton's first score and Hessian read the log likelihood per row and the
    responsibilities of EM's last E-step at its start instead of evaluating the mixture
    again: the same floats as computing them (score and Hessian equal exactly), and the
    same fit as a Newton that ignores them."""
    from bayesfmm.likelihood import score_hessian
    from bayesfmm.ml import fit as fit_module
    from bayesfmm.ml.chunks import e_step

    df, models = _count_mixtures()
    df["w"] = np.random.default_rng(4).integers(1, 4, len(df)).astype(float)
    model = {"gaussian": bf.FMM("x ~ c", k=2), "poisson": models[0],
             "weighted": bf.FMM("c ~ x", family="poisson", k=2, weights="w")}[which]
    res = model.fit(df, search=0)
    problem, theta = res.problem, res.theta * 0.95
    computed = score_hessian(problem, theta)
    read = score_hessian(problem, theta, e_step(problem, theta))
    assert read[0].llf == computed[0].llf
    np.testing.assert_array_equal(read[1], computed[1])
    np.testing.assert_array_equal(read[2], computed[2])
    np.testing.assert_array_equal(read[0].resp, computed[0].resp)
    calls = []
    plain_newton = fit_module.newton

    def without_start(*args, start=None, **kwargs):
        calls.append(start is not None)
        return plain_newton(*args, **kwargs)

    monkeypatch.setattr(fit_module, "newton", without_start)
    again = model.fit(df, search=0)
    assert calls == [True]  # the fit hands EM's evaluation to Newton
    assert again.llf == res.llf
    np.testing.assert_array_equal(again.theta, res.theta)


def _rank_cases():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((500, 4))
    yield X
    yield np.column_stack([np.ones(500), X])
    yield X[:, :1]
    yield np.ones((500, 1))
    yield np.zeros((500, 2))
    yield X[:3]  # fewer rows than columns
    yield X * np.array([1e-8, 1.0, 1e6, 1.0])  # scales far apart: the SVD decides
    for gap in (1e-1, 1e-3, 1e-6, 1e-9, 1e-12, 1e-15, 0.0):
        near = X.copy()
        near[:, 3] = X[:, 0] + gap * rng.standard_normal(500)  # nearly (or exactly) collinear
        yield near
    dummies = np.eye(3)[rng.integers(0, 3, 500)]
    yield np.column_stack([np.ones(500), dummies])  # the dummy trap: rank 3 of 4


def test_design_rank_is_matrix_ranks_answer():
    from bayesfmm.frame import design_rank

    for matrix in _rank_cases():
        assert design_rank(matrix) == np.linalg.matrix_rank(matrix), matrix.shape
