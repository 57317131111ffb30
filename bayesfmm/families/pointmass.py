"""Point mass (Stata ``pointmass``): all probability at one value, no parameters.

``log f(y) = 0`` where ``y == value`` and ``-inf`` elsewhere. A class holding only point
masses has no component parameters; its probability comes from the class model alone. With
a count component beside it the mixture is a zero-inflated model:
``FMM([Component("y ~ 1", family="pointmass"), Component("y ~ x", family="poisson")])`` is
a zero-inflated Poisson with a constant inflation probability (Stata
``fmm: (pointmass y) (poisson y x)``).

Stata's rule holds: a model whose every class is a point mass is refused
(:class:`~bayesfmm.FMM` raises a :class:`~bayesfmm.errors.SpecificationError`), and a point
mass takes no regressors (write ``"y ~ 1"``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import Family
from bayesfmm.families.registry import register_family
from bayesfmm.ops import Ops

__all__ = ["pointmass"]


def _derivatives(y: np.ndarray, etas: Sequence[np.ndarray], extra: Any = None):
    n = np.shape(y)[0]
    return np.zeros((0, n)), np.zeros((0, 0, n))


def pointmass(value: float = 0) -> Family:
    """A degenerate distribution at ``value`` (default 0).

    Examples
    --------
    >>> import numpy as np
    >>> import bayesfmm as bf
    >>> fam = bf.get_family("pointmass", value=0)
    >>> fam.logpdf_numpy(np.array([0.0, 2.0]), [], {}).tolist()
    [0.0, -inf]
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(value)
    ):
        raise SpecificationError(f"pointmass value= must be a finite number, got {value!r}")
    value = float(value)

    def logpdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        return ops.where(ops.abs(y - value) > 0, -np.inf, 0.0)

    def cdf(y: Any, etas: Sequence[Any], ops: Ops, extra: Any = None) -> Any:
        return ops.where(y - value < 0, 0.0, 1.0)

    shown = int(value) if value.is_integer() else value
    return Family(
        name="pointmass",
        stata_name=f"pointmass, value({shown})" if value != 0 else "pointmass",
        slots=(),
        logpdf=logpdf,
        eta_derivatives=_derivatives,
        mean=lambda etas, ops, extra: value,
        cdf=cdf,
        in_support=lambda y, extra: np.isfinite(y),
        support="finite",
        start_aux=lambda y, w: [],
        weighted_fit=lambda y, designs, offsets, weights, extra=None: [],
        sample=lambda etas, rng, extra=None: value,
        options={"value": value},
    )


register_family("pointmass", pointmass)
