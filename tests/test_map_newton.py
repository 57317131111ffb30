"""MAP on the ML Newton engine: the log prior's analytic derivatives, the penalised Newton
run, the shared step-halving line search, and MAP against ML and independent oracles."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import optimize, stats

import bayesfmm as bf
from bayesfmm.bayes.builder import problem_for
from bayesfmm.bayes.map import map_estimate
from bayesfmm.bayes.priors import Flat, LogPrior, Normal, StudentT, resolve_priors
from bayesfmm.likelihood import loglike, score_hessian
from bayesfmm.ml.linesearch import step_halving
from bayesfmm.ml.newton import NewtonOptions, newton

CONSTRAINT = "[1]var(e) = [2]var(e)"


@pytest.fixture(scope="module")
def constrained():
    return bf.FMM("thickness ~ 1", k=3, constraints=CONSTRAINT)


@pytest.fixture(scope="module")
def constrained_ml(constrained, stamp):
    return constrained.fit(stamp)


# -- the priors' derivatives ---------------------------------------------------------------
@pytest.mark.parametrize(
    "prior, oracle",
    [
        (Normal(0.3, 1.7), stats.norm(0.3, 1.7)),
        (StudentT(3.0, -0.5, 2.0), stats.t(3.0, -0.5, 2.0)),
        (StudentT(0.7, 1.0, 0.4), stats.t(0.7, 1.0, 0.4)),
    ],
)
def test_prior_log_density_and_derivatives_match_scipy_and_differences(prior, oracle):
    x = np.linspace(-6.0, 6.0, 25)
    np.testing.assert_allclose(prior.logpdf(x), oracle.logpdf(x), rtol=1e-12, atol=1e-12)
    h = 1e-5
    np.testing.assert_allclose(prior.grad(x), (oracle.logpdf(x + h) - oracle.logpdf(x - h)) / (2 * h), rtol=1e-6, atol=1e-8)
    fd_hess = (prior.grad(x + h) - prior.grad(x - h)) / (2 * h)
    np.testing.assert_allclose(prior.hess(x), fd_hess, rtol=1e-6, atol=1e-8)


def test_flat_prior_is_zero():
    assert np.all(Flat().logpdf(np.arange(3.0)) == 0) and np.all(Flat().hess(np.arange(3.0)) == 0)


def test_log_prior_sums_the_table_and_its_hessian_is_the_diagonal(stamp):
    problem, pooled = problem_for(bf.FMM("thickness ~ 1", k=3), stamp)
    # issue 15: keys on the optimiser's scale (lnvar); the default class prior is exchangeable
    overrides = {"cons": {"mu": 0.1, "sigma": 0.05, "nu": 4.0}, (1, "thickness", "lnvar"): "flat"}
    table = resolve_priors(problem, overrides, pooled)
    prior = LogPrior(table, problem.layout)
    rng = np.random.default_rng(3)
    theta = pooled + 0.3 * rng.standard_normal(pooled.size)
    expected = scipy_log_prior(table, theta, range(theta.size))
    value, grad, hess = prior.derivatives(theta)
    assert value == pytest.approx(expected, rel=1e-13)
    assert prior.value(theta) == pytest.approx(expected, rel=1e-13)
    fd = np.array([(prior.value(theta + e) - prior.value(theta - e)) / 2e-6 for e in 1e-6 * np.eye(theta.size)])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)
    block = np.ix_([0, 1], [0, 1])  # the exchangeable class-model block; diagonal elsewhere
    off = hess - np.diag(np.diag(hess))
    off[block] = 0.0
    assert np.count_nonzero(off) == 0 and table.correlated == ((0, 1),)
    kinds = {type(p).__name__ for p in table.priors}
    assert kinds == {"Normal", "StudentT", "Flat"}


def test_log_prior_counts_a_tied_parameter_once(constrained, stamp):
    problem, pooled = problem_for(constrained, stamp)
    table = resolve_priors(problem, None, pooled)
    prior = LogPrior(table, problem.layout)
    free = problem.layout.constraints.free
    assert prior.positions.tolist() == free.tolist()
    assert prior.positions.size == problem.layout.size - 1  # [2]var(e) follows [1]var(e)
    theta = problem.layout.project(pooled)
    expected = scipy_log_prior(table, theta, free)
    assert prior.value(theta) == pytest.approx(expected, rel=1e-13)


# -- the line search -----------------------------------------------------------------------------
def test_step_halving_takes_the_first_step_that_does_not_fall():
    f = lambda x: -float(np.sum((x - 1.0) ** 2))  # noqa: E731
    res = step_halving(f, np.zeros(2), np.array([8.0, 8.0]), f(np.zeros(2)))  # f = -2 at 0
    assert res.accepted and res.halvings == 2  # 8 and 4 fall (-98, -18); 2 ties (-2)
    np.testing.assert_array_equal(res.x, [2.0, 2.0])
    assert res.value == -2.0
    res = step_halving(f, np.zeros(2), np.array([3.0, 3.0]), f(np.zeros(2)))  # 3 falls (-8)
    assert res.halvings == 1 and res.value == -0.5 and res.x.tolist() == [1.5, 1.5]


def test_step_halving_reports_failure_and_passes_payloads():
    calls = []

    def f(x):
        calls.append(x.copy())
        return (np.nan if x[0] > 0 else -1.0), {"at": float(x[0])}

    res = step_halving(f, np.zeros(1), np.array([1.0]), 0.0, max_halvings=5)
    assert not res.accepted and len(calls) == 5
    assert res.payload == {"at": 1.0 / 16}
    ok = step_halving(lambda x: (float(-x[0] ** 2), "p"), np.ones(1), np.array([-1.0]), -1.0)
    assert ok.accepted and ok.halvings == 0 and ok.payload == "p"


def test_step_halving_slack_is_relative_plus_offset():
    # a fall of 1e-12 * (|value| + 1) is tolerated, one twice that is not
    value = 1000.0
    tiny = 1e-12 * (abs(value) + 1)
    assert step_halving(lambda x: value - tiny, np.zeros(1), np.ones(1), value, max_halvings=1).accepted
    assert not step_halving(lambda x: value - 3 * tiny, np.zeros(1), np.ones(1), value, max_halvings=1).accepted
    assert not step_halving(lambda x: value - tiny, np.zeros(1), np.ones(1), value, max_halvings=1, offset=0.0).accepted


# -- the penalised Newton engine ---------------------------------------------------------------
class _Quadratic:
    """``-0.5 * s * |theta - c|^2``: a penalty whose pull dominates for large ``s``."""

    def __init__(self, centre, strength):
        self.c, self.s = np.asarray(centre, dtype=float), float(strength)

    def value(self, theta):
        return -0.5 * self.s * float(np.sum((theta - self.c) ** 2))

    def derivatives(self, theta):
        return self.value(theta), -self.s * (theta - self.c), -self.s * np.eye(theta.size)


def test_newton_with_a_penalty_finds_the_penalised_optimum(stamp_normal3):
    ml = stamp_normal3
    problem = ml.problem
    centre = ml.theta + 0.05
    penalty = _Quadratic(centre, 1e3)
    res = newton(problem, ml.theta, NewtonOptions(nrtolerance=1e-12), penalty=penalty)
    assert res.converged
    # first-order condition of loglike + penalty, checked with the likelihood's own score
    # (the gradient is large in units of theta: compare the Newton step left to take)
    _, g, H = score_hessian(problem, res.theta)
    total_g = g - 1e3 * (res.theta - centre)
    left = np.linalg.solve(-(H - 1e3 * np.eye(H.shape[0])), total_g)
    assert np.max(np.abs(left)) < 1e-6
    assert np.max(np.abs(res.theta - ml.theta)) > 1e-3  # the penalty moved the optimum
    assert res.objective == pytest.approx(loglike(problem, res.theta) + penalty.value(res.theta), rel=1e-14)
    assert res.llf == pytest.approx(loglike(problem, res.theta), rel=1e-14)


def test_newton_without_a_penalty_reproduces_the_ml_fit(stamp_normal3):
    ml = stamp_normal3
    res = newton(ml.problem, ml.theta, NewtonOptions())
    assert res.converged and res.objective == res.llf
    assert res.llf == pytest.approx(ml.llf, abs=1e-9)
    np.testing.assert_allclose(res.theta, ml.theta, atol=1e-6)


# -- MAP ------------------------------------------------------------------------------------------
def test_map_flat_equals_ml_on_stamp_to_1e6(stamp, stamp_normal3):
    mode = bf.FMM("thickness ~ 1", k=3).map(stamp, priors="flat")
    assert mode.converged
    assert np.max(np.abs(mode.theta - stamp_normal3.theta)) < 1e-6
    assert np.max(np.abs(mode.params.to_numpy() - stamp_normal3.params.to_numpy())) < 1e-6
    assert mode.llf == pytest.approx(stamp_normal3.llf, abs=1e-9)
    assert mode.logp == mode.llf  # flat priors: the log posterior is the log likelihood
    np.testing.assert_allclose(mode.bse.to_numpy(), stamp_normal3.bse.to_numpy(), rtol=1e-5)


def test_map_flat_equals_ml_under_a_constraint_to_1e6(constrained, constrained_ml, stamp):
    ml = constrained_ml
    mode = map_estimate(constrained, stamp, priors="flat")
    assert mode.converged
    assert np.max(np.abs(mode.theta - ml.theta)) < 1e-6
    assert np.max(np.abs(mode.params.to_numpy() - ml.params.to_numpy())) < 1e-6
    np.testing.assert_allclose(mode.bse.to_numpy(), ml.bse.to_numpy(), rtol=1e-5)
    index = mode.params.index
    assert mode.params[(1, "thickness", "var(e)")] == mode.params[(2, "thickness", "var(e)")]
    assert index.equals(ml.params.index)


def test_map_flat_from_a_far_start_returns_to_ml_under_a_constraint(constrained, constrained_ml, stamp):
    ml = constrained_ml
    se = np.sqrt(np.diag(ml.cov_theta))
    start = ml.theta + 2 * se * np.where(np.arange(se.size) % 2, 1.0, -1.0)
    mode = map_estimate(constrained, stamp, priors="flat", start=start)
    assert mode.converged
    assert np.max(np.abs(mode.theta - ml.theta)) < 1e-6


def scipy_log_prior(table, theta, positions) -> float:
    """The log prior by scipy: independent normal / Student-t / flat densities, except the
    exchangeable class-model default (issue 15: ``table.correlated``, jointly normal with
    correlation 1/2), a multivariate normal."""
    positions = [int(i) for i in positions]
    joint = [list(g) for g in table.correlated if set(g) <= set(positions)]
    inside = {i for g in joint for i in g}
    total = 0.0
    for i in positions:
        p = table.priors[i]
        if i in inside or isinstance(p, Flat):
            continue
        total += float(stats.t.logpdf(theta[i], p.nu, p.mu, p.sigma) if isinstance(p, StudentT)
                       else stats.norm.logpdf(theta[i], p.mu, p.sigma))
    for g in joint:
        s = np.array([table.priors[i].sigma for i in g])
        cov = 0.5 * (np.eye(len(g)) + 1) * np.outer(s, s)
        total += float(stats.multivariate_normal([table.priors[i].mu for i in g], cov).logpdf(theta[g]))
    return total


def _penalised_oracle(problem, table, start):
    """The mode by scipy BFGS on numpy loglike + scipy log densities, in the free parameters."""
    cons = problem.layout.constraints
    positions = np.arange(problem.layout.size) if cons is None else cons.free

    def expand(phi):
        return phi if cons is None else cons.expand(phi)

    def negative(phi):
        theta = expand(phi)
        return -(loglike(problem, theta) + scipy_log_prior(table, theta, positions))

    phi0 = start if cons is None else cons.reduce(start)
    res = optimize.minimize(negative, phi0, method="BFGS", options={"gtol": 1e-9})
    return expand(res.x), -res.fun


@pytest.mark.parametrize("constraints", [None, CONSTRAINT])
def test_map_default_priors_is_the_mode_and_laplace_uses_the_exact_hessian(stamp, constraints):
    model = bf.FMM("thickness ~ 1", k=3, constraints=constraints)
    mode = map_estimate(model, stamp)
    assert mode.converged
    problem, table = mode.problem, mode.priors
    theta_oracle, logp_oracle = _penalised_oracle(problem, table, mode.theta)
    assert mode.logp >= logp_oracle - 1e-9
    assert mode.logp == pytest.approx(logp_oracle, abs=1e-6)
    se = np.sqrt(np.diag(mode.cov_theta))
    assert np.all(np.abs(mode.theta - theta_oracle) <= 1e-3 * np.maximum(se, 1e-12))
    # logp is the log likelihood plus the log prior of the free parameters
    positions = np.arange(problem.layout.size) if constraints is None else problem.layout.constraints.free
    prior = scipy_log_prior(table, mode.theta, positions)
    assert mode.logp == pytest.approx(mode.llf + prior, rel=1e-13)
    # the Laplace covariance is the inverse of minus the Hessian in the free parameters
    T = problem.layout.transform
    H = mode.hessian if T is None else T.T @ mode.hessian @ T
    cov_free = np.linalg.inv(-H)
    cov = cov_free if T is None else T @ cov_free @ T.T
    np.testing.assert_allclose(mode.cov_theta, cov, rtol=1e-8, atol=1e-14)
    # that Hessian is the log posterior's: differences of the analytic gradient agree
    prior_fn = LogPrior(table, problem.layout)

    def grad(theta):
        return score_hessian(problem, theta)[1] + prior_fn.derivatives(theta)[1]

    free = positions
    fd = np.column_stack([(grad(mode.theta + e) - grad(mode.theta - e)) / 2e-6 for e in 1e-6 * np.eye(mode.theta.size)[free]])
    np.testing.assert_allclose(mode.hessian[:, free], fd, rtol=1e-4, atol=1e-3)


def test_map_default_priors_on_stamp_keeps_todays_mode(stamp):
    """The mode under the default priors (log posterior 1516.7241, constrained 1517.2116).
    Issue 15 changed the default priors on purpose (exchangeable class-model prior, log
    variance centred on a within-class scale); under issue 12's priors the modes were
    1513.4822 and 1515.9642."""
    assert map_estimate(bf.FMM("thickness ~ 1", k=3), stamp).logp == pytest.approx(1516.7241, abs=1e-4)
    constrained = bf.FMM("thickness ~ 1", k=3, constraints=CONSTRAINT)
    assert map_estimate(constrained, stamp).logp == pytest.approx(1517.2116, abs=1e-4)


def test_map_with_student_t_priors_matches_an_oracle(stamp, stamp_normal3):
    model = bf.FMM("thickness ~ 1", k=3)
    priors = {"cons": StudentT(3.0, 0.08, 0.01)}
    mode = map_estimate(model, stamp, priors=priors)
    assert mode.converged
    table = mode.priors

    def negative(theta):
        return -(loglike(mode.problem, theta) + scipy_log_prior(table, theta, range(theta.size)))

    oracle = optimize.minimize(negative, mode.theta + 1e-3, method="BFGS", options={"gtol": 1e-9})
    assert mode.logp >= -oracle.fun - 1e-9
    assert mode.logp == pytest.approx(-oracle.fun, abs=1e-6)


def test_map_iteration_log_and_options(stamp):
    with pytest.warns(bf.ConvergenceWarning, match="MAP optimisation did not converge"):
        mode = map_estimate(bf.FMM("thickness ~ 1", k=2), stamp, maxiter=1, gtol=1e-30)
    assert not mode.converged
    assert "log posterior" in str(mode.iteration_log)
    with pytest.raises(bf.SpecificationError, match="maxiter"):
        map_estimate(bf.FMM("thickness ~ 1", k=2), stamp, maxiter=0)
    with pytest.raises(bf.SpecificationError, match="start must be a vector of 5"):
        map_estimate(bf.FMM("thickness ~ 1", k=2), stamp, start=np.zeros(3))


def test_map_does_not_import_pymc():
    code = (
        "import sys, bayesfmm as bf\n"
        "bf.FMM('thickness ~ 1', k=2).map(bf.datasets.load('stamp'))\n"
        "print(any(m.startswith(('pytensor', 'pymc')) for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
