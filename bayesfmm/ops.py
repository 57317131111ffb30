"""The small math namespace every family's log density is written against.

A family writes its log density once, as a function of ``(y, etas, ops)``; ``NUMPY_OPS``
evaluates it with numpy/scipy for the ML engine and :func:`pytensor_ops` with pytensor for
PyMC. Only functions both backends provide with the same semantics belong here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import special

__all__ = ["Ops", "NUMPY_OPS", "pytensor_ops"]

LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class Ops:
    """Elementwise math functions for one backend (numpy or pytensor)."""

    name: str
    log: Callable[[Any], Any]
    exp: Callable[[Any], Any]
    log1p: Callable[[Any], Any]
    expm1: Callable[[Any], Any]
    sqrt: Callable[[Any], Any]
    square: Callable[[Any], Any]
    abs: Callable[[Any], Any]
    where: Callable[[Any, Any, Any], Any]
    gammaln: Callable[[Any], Any]
    erfc: Callable[[Any], Any]
    log_ndtr: Callable[[Any], Any]
    ndtr: Callable[[Any], Any]
    sigmoid: Callable[[Any], Any]
    softplus: Callable[[Any], Any]
    as_float: Callable[[Any], Any]
    gammaincc: Callable[[Any, Any], Any]  # regularised upper incomplete gamma Q(a, x)
    betainc: Callable[[Any, Any, Any], Any]  # regularised incomplete beta I_x(a, b)
    gammainc: Callable[[Any, Any], Any]  # regularised lower incomplete gamma P(a, x)


def _np_softplus(x):
    return np.logaddexp(0.0, x)


NUMPY_OPS = Ops(
    name="numpy",
    log=np.log,
    exp=np.exp,
    log1p=np.log1p,
    expm1=np.expm1,
    sqrt=np.sqrt,
    square=np.square,
    abs=np.abs,
    where=np.where,
    gammaln=special.gammaln,
    erfc=special.erfc,
    log_ndtr=special.log_ndtr,
    ndtr=special.ndtr,
    sigmoid=special.expit,
    softplus=_np_softplus,
    as_float=lambda x: np.asarray(x, dtype=float),
    gammaincc=special.gammaincc,
    betainc=special.betainc,
    gammainc=special.gammainc,
)


def pytensor_ops() -> Ops:
    """The pytensor backend (imported lazily: the ML path never touches pytensor)."""
    import pytensor.tensor as pt

    def _normcdf(x):
        return 0.5 * pt.erfc(-x / np.sqrt(2.0))

    def _log_ndtr(x):
        # log Phi(x), stable in both tails: erfcx in the lower tail, log1p above.
        z = x / np.sqrt(2.0)
        lower = pt.log(0.5 * pt.erfcx(-z)) - pt.sqr(z)
        upper = pt.log1p(-0.5 * pt.erfc(z))
        return pt.switch(pt.lt(x, -1.0), lower, upper)

    return Ops(
        name="pytensor",
        log=pt.log,
        exp=pt.exp,
        log1p=pt.log1p,
        expm1=pt.expm1,
        sqrt=pt.sqrt,
        square=pt.sqr,
        abs=pt.abs,
        where=pt.switch,
        gammaln=pt.gammaln,
        erfc=pt.erfc,
        log_ndtr=_log_ndtr,
        ndtr=_normcdf,
        sigmoid=pt.sigmoid,
        softplus=pt.softplus,
        as_float=lambda x: pt.as_tensor_variable(x, dtype="float64"),
        gammaincc=pt.gammaincc,
        betainc=pt.betainc,
        gammainc=pt.gammainc,
    )
