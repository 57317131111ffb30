"""Binomial and Bernoulli (Stata ``glm, family(binomial n)``, ``logit``, ``probit``,
``cloglog``; flexmix ``cbind(y, n - y) ~ x``): links logit, probit, cloglog.

``log f(y) = log C(n, y) + y log p + (n - y) log(1 - p)`` with ``p = F(eta)``. Each link
gives ``log p`` and ``log(1 - p)`` directly in ``eta``, stable in both tails (softplus for
logit, ``log_ndtr`` for probit, ``-exp(eta)`` and ``log(-expm1(-exp(eta)))`` for cloglog),
so the density never forms ``p`` and then takes its log.

``binomial(trials=...)`` takes the number of trials as a column name or a positive integer
(default 1); ``bernoulli`` is the ``trials=1`` case with 0/1 responses, also registered as
``logit``, ``probit`` and ``cloglog`` (each fixing its link).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import Family, Slot, response_term
from bayesfmm.families.poisson import count_log_factorial
from bayesfmm.families.registry import register_family
from bayesfmm.ops import (
    LOG_2PI,
    NUMPY_OPS,
    Ops,
    exp_in_place,
    special,  # scipy.special, loaded on first use
)

__all__ = ["binomial", "bernoulli", "LINKS", "Link"]

SLOTS = (Slot("mu"),)
CLOGLOG_SMALL = -30.0  # below, log(1 - exp(-exp(eta))) = eta - exp(eta)/2 to 1e-27


@dataclass(frozen=True)
class Link:
    """A binary-response link written in ``eta``.

    ``log_p``/``log_q`` give ``log p`` and ``log(1 - p)`` (any backend); ``p`` the success
    probability; ``derivatives(eta)`` (numpy) gives the first and second derivatives of
    ``log p`` and ``log(1 - p)`` in ``eta``; ``log_pq`` (optional) both logs at once, sharing
    their work (the same values as ``log_p`` and ``log_q``).
    """

    name: str
    log_p: Callable[[Any, Ops], Any]
    log_q: Callable[[Any, Ops], Any]
    p: Callable[[Any, Ops], Any]
    derivatives: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    log_pq: Callable[[Any, Ops], tuple[Any, Any]] | None = None


def _logit_derivatives(eta):
    """``p = expit(eta)`` and ``q = expit(-eta)`` from one ``exp(-|eta|)``: ``1 / (1 + e)``
    on the side of the larger one and ``e / (1 + e)`` on the other, each within an ulp of
    ``expit`` (tests/test_engine_kernels.py), and the tails (``|eta|`` past 745.2) exactly 0
    and 1 as there (between 709.8 and 745.2 a subnormal where ``expit`` rounds to 0)."""
    eta = np.asarray(eta, dtype=float)
    e = exp_in_place(-np.abs(eta))  # in place on the new array
    large = 1.0 / (1.0 + e)
    small = e * large
    positive = eta >= 0
    p = np.where(positive, large, small)
    q = np.where(positive, small, large)
    pq = -p * q
    return q, pq, -p, pq


def _mills(x: np.ndarray) -> np.ndarray:
    """phi(x) / Phi(x), stable in both tails."""
    return np.exp(-0.5 * (x * x + LOG_2PI) - special.log_ndtr(x))


def _probit_derivatives(eta):
    lam_p = _mills(eta)
    lam_q = _mills(-eta)
    return lam_p, -lam_p * (eta + lam_p), -lam_q, -lam_q * (lam_q - eta)


def _cloglog_log_p(eta, ops):
    clipped = ops.where(eta < CLOGLOG_SMALL, CLOGLOG_SMALL, eta)
    return ops.where(
        eta < CLOGLOG_SMALL,
        eta - 0.5 * ops.exp(eta),
        ops.log(-ops.expm1(-ops.exp(clipped))),
    )


def _cloglog_derivatives(eta):
    u = np.exp(eta)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        t = np.where(u > 1e-10, u / np.expm1(u), 1.0 - 0.5 * u)  # d log p / d eta
        t = np.where(np.isfinite(t), t, 0.0)  # u/expm1(u) -> 0 as u -> inf
        t2 = np.where(u > 1e-8, t * (1.0 - t - u), -0.5 * u)
    return t, t2, -u, -u


LINKS: dict[str, Link] = {
    "logit": Link(
        "logit",
        log_p=lambda eta, ops: -ops.softplus(-eta),
        log_q=lambda eta, ops: -ops.softplus(eta),
        p=lambda eta, ops: ops.sigmoid(eta),
        derivatives=_logit_derivatives,
        log_pq=lambda eta, ops: ops.log_sigmoid_pair(eta),
    ),
    "probit": Link(
        "probit",
        log_p=lambda eta, ops: ops.log_ndtr(eta),
        log_q=lambda eta, ops: ops.log_ndtr(-eta),
        p=lambda eta, ops: ops.ndtr(eta),
        derivatives=_probit_derivatives,
    ),
    "cloglog": Link(
        "cloglog",
        log_p=_cloglog_log_p,
        log_q=lambda eta, ops: -ops.exp(eta),
        p=lambda eta, ops: -ops.expm1(-ops.exp(eta)),
        derivatives=_cloglog_derivatives,
    ),
}


def _link(link: Any, family: str) -> Link:
    if not isinstance(link, str) or link.lower() not in LINKS:
        raise SpecificationError(
            f"{family} link={link!r} is not available; choose from {', '.join(LINKS)}"
        )
    return LINKS[link.lower()]


def _kernel(y: Any, eta: Any, n: Any, link: Link, ops: Ops) -> Any:
    """``y log p + (n - y) log(1 - p)``: the binomial log density without ``log C(n, y)``."""
    if link.log_pq is not None:
        log_p, log_q = link.log_pq(eta, ops)
        return y * log_p + (n - y) * log_q
    return y * link.log_p(eta, ops) + (n - y) * link.log_q(eta, ops)


def _kernel_derivatives(y: np.ndarray, eta: np.ndarray, n: Any, link: Link):
    y = np.asarray(y, dtype=float)
    eta = np.asarray(eta, dtype=float) * np.ones_like(y)
    lp1, lp2, lq1, lq2 = link.derivatives(eta)
    fail = n - y
    return (y * lp1 + fail * lq1)[None, :], (y * lp2 + fail * lq2)[None, None, :]


def _is_integer(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(x) & (x == np.floor(x))


def _check_trials(trials: Any) -> Any:
    if isinstance(trials, str):
        if not trials.strip():
            raise SpecificationError("binomial trials= must be a column name or a positive integer, got ''")
        return trials
    if (
        isinstance(trials, bool)
        or not isinstance(trials, (int, float, np.integer, np.floating))
        or not np.isfinite(trials)
        or trials != int(trials)
        or trials < 1
    ):
        raise SpecificationError(
            f"binomial trials= must be a column name or a positive integer, got {trials!r}"
        )
    return int(trials)


def _log_choose(y: Any, extra: Any, ops: Ops) -> dict[str, Any]:
    """The response-only term of the binomial density: ``log C(trials, y)``."""
    n = extra["trials"]
    if ops is NUMPY_OPS:  # integer counts: from a table of math.lgamma, no scipy import
        y_ = np.asarray(y, dtype=float)
        n_ = np.broadcast_to(np.asarray(n, dtype=float), y_.shape)
        table = count_log_factorial(np.concatenate([n_, y_, n_ - y_]))  # one table for n, y, n - y
        if table is not None:
            log_n, log_y, log_rest = np.split(table, 3)
            return {"log_choose": log_n - log_y - log_rest}
    return {"log_choose": ops.gammaln(n + 1.0) - ops.gammaln(y + 1.0) - ops.gammaln(n - y + 1.0)}


def binomial(trials: Any = 1, link: str = "logit") -> Family:
    """The binomial family: ``y`` successes out of ``trials``.

    Parameters
    ----------
    trials
        The number of trials: a column name (``trials="Total"``, flexmix's
        ``cbind(Deaths, Total - Deaths)``) or a positive integer (default 1).
    link
        ``"logit"`` (default), ``"probit"`` or ``"cloglog"``.

    The mean reported by ``predict``/``lcmean`` is the expected count ``trials * p``.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.get_family("binomial", trials="Total").extra_columns["trials"]
    'Total'
    """
    trials = _check_trials(trials)
    chosen = _link(link, "binomial")

    def logpdf(y, etas, ops, extra):
        n = extra["trials"]
        log_choose = response_term(extra, "log_choose")
        if log_choose is None:
            log_choose = _log_choose(y, extra, ops)["log_choose"]
        return log_choose + _kernel(y, etas[0], n, chosen, ops)

    def derivatives(y, etas, extra):
        return _kernel_derivatives(y, etas[0], extra["trials"], chosen)

    def cdf(y, etas, ops, extra):
        # P(Y <= y) = I_{1-p}(n - y, y + 1) for y < n, and 1 at y = n
        n = extra["trials"]
        full = y >= n
        a = ops.where(full, 1.0, n - y)
        value = ops.betainc(a, y + 1.0, ops.exp(chosen.log_q(etas[0], ops)))
        return ops.where(full, 1.0, value)

    def in_support(y, extra):
        n = np.asarray(extra["trials"], dtype=float)
        with np.errstate(invalid="ignore"):
            good_n = _is_integer(n) & (n >= 1)
            return _is_integer(y) & (y >= 0) & good_n & (y <= n)

    if isinstance(trials, str):
        support = (
            f"an integer count from 0 to the number of trials in column {trials!r}, "
            f"and {trials!r} must hold positive integers"
        )
    else:
        support = f"an integer count from 0 to trials={trials}"
    suffix = "" if chosen.name == "logit" else f", link({chosen.name})"
    return Family(
        name="binomial",
        stata_name=f"binomial{suffix}",
        slots=SLOTS,
        logpdf=logpdf,
        eta_derivatives=derivatives,
        mean=lambda etas, ops, extra: extra["trials"] * chosen.p(etas[0], ops),
        cdf=cdf,
        in_support=in_support,
        support=support,
        start_aux=lambda y, w: [],
        options={"trials": trials, "link": chosen.name},
        sample=lambda etas, rng, extra: rng.binomial(
            np.asarray(extra["trials"]).astype(np.int64), chosen.p(np.asarray(etas[0], dtype=float), NUMPY_OPS)
        ).astype(float),
        extra_columns={"trials": trials},
        response_terms=_log_choose,
    )


def bernoulli(link: str = "logit") -> Family:
    """The Bernoulli family for 0/1 responses (Stata ``logit``, ``probit``, ``cloglog``).

    Parameters
    ----------
    link
        ``"logit"`` (default), ``"probit"`` or ``"cloglog"``. The family names ``"logit"``,
        ``"probit"`` and ``"cloglog"`` are this family with that link.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.get_family("probit").options["link"]
    'probit'
    """
    chosen = _link(link, "bernoulli")
    return Family(
        name="bernoulli",
        stata_name=chosen.name,
        slots=SLOTS,
        logpdf=lambda y, etas, ops, extra=None: _kernel(y, etas[0], 1.0, chosen, ops),
        eta_derivatives=lambda y, etas, extra=None: _kernel_derivatives(y, etas[0], 1.0, chosen),
        mean=lambda etas, ops, extra: chosen.p(etas[0], ops),
        cdf=lambda y, etas, ops, extra: ops.where(y >= 1.0, 1.0, ops.exp(chosen.log_q(etas[0], ops))),
        in_support=lambda y, extra: (y == 0) | (y == 1),
        support="0 or 1",
        start_aux=lambda y, w: [],
        options={"link": chosen.name},
        sample=lambda etas, rng, extra=None: (
            rng.random(np.shape(etas[0])) < chosen.p(np.asarray(etas[0], dtype=float), NUMPY_OPS)
        ).astype(float),
    )


def _fixed_link(link: str) -> Callable[[], Family]:
    def builder() -> Family:
        return bernoulli(link=link)

    builder.__name__ = link
    builder.__doc__ = f"The Bernoulli family with the {link} link (Stata ``{link}``)."
    return builder


register_family("binomial", binomial)
register_family("bernoulli", bernoulli)
for _name in ("logit", "probit", "cloglog"):
    # The registry's aliases carry no options, so each Stata command name is its own
    # builder: the Bernoulli family with that link (``link=`` is then not accepted).
    register_family(_name, _fixed_link(_name))
