"""What a family is: one log density in its linear predictors, plus optional derivatives.

A family has one or more *slots*. A linear slot is a linear predictor ``X @ beta`` (the
mean of a regression); an auxiliary slot is a single scalar on an unconstrained scale (the
log of the error variance), reported on Stata's scale through :class:`AuxScale`.

The log density ``logpdf(y, etas, ops, extra)`` is written once against an
:class:`~bayesfmm.ops.Ops` namespace, so the same function serves EM, Newton (numpy) and
PyMC (pytensor). ``eta_derivatives`` returns first and second derivatives of the log density
with respect to each slot's eta; families that omit it get central finite differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from bayesfmm.ops import NUMPY_OPS, Ops

__all__ = [
    "AuxScale",
    "ExtraColumn",
    "Family",
    "LOG_SCALE",
    "ResponseHook",
    "Slot",
    "finite_difference_derivatives",
]

Array = np.ndarray
Extra = Mapping[str, Any]


@dataclass(frozen=True)
class AuxScale:
    """Map between an auxiliary parameter's optimiser scale and its reported scale.

    ``to_report(theta)`` gives the reported value, ``derivative(theta)`` its derivative
    (for the delta method); confidence intervals are built on the optimiser scale and
    mapped through ``to_report``, as Stata does for variances.
    """

    to_report: Callable[[Array], Array]
    from_report: Callable[[Array], Array]
    derivative: Callable[[Array], Array]


LOG_SCALE = AuxScale(to_report=np.exp, from_report=np.log, derivative=np.exp)
IDENTITY_SCALE = AuxScale(
    to_report=lambda t: np.asarray(t, dtype=float),
    from_report=lambda t: np.asarray(t, dtype=float),
    derivative=lambda t: np.ones_like(np.asarray(t, dtype=float)),
)


@dataclass(frozen=True)
class Slot:
    """One linear predictor of a family.

    Parameters
    ----------
    name
        Internal name (``"mu"``, ``"lnvar"``).
    linear
        True for a regression slot (design matrix from the formula); False for an
        auxiliary scalar (intercept only).
    report_name
        For auxiliary slots, the ``term`` it is reported under (``"var(e)"``).
    param_class
        Stata's parameter class for ``lcinvariant`` (``"errvar"``, ``"scale"``, ...);
        linear slots split into ``"cons"`` and ``"coef"`` by term.
    scale
        Optimiser scale -> reported scale, for auxiliary slots.
    collapses
        ``"down"`` when the likelihood is unbounded as the reported value goes to 0 on a few
        points (an error variance, a gamma or Weibull scale), ``"up"`` when it is unbounded
        as the value grows (beta's precision); the EM/Newton degeneracy check watches it.
    equation
        The equation this slot's parameters are reported under when it is not the
        response's own (a multinomial logit has one equation per outcome); ``{response}``
        in it is replaced by the response name.
    """

    name: str
    linear: bool = True
    report_name: str | None = None
    param_class: str = "coef"
    scale: AuxScale = IDENTITY_SCALE
    collapses: str | None = None
    equation: str | None = None


@dataclass(frozen=True)
class ExtraColumn:
    """Per-row data of a family with rules of its own (an ``extra_columns`` value).

    Parameters
    ----------
    column
        A column name, or a constant.
    missing
        ``None`` (default): a missing entry drops the row, as any model variable does. A
        number: missing entries stand for it and the row is kept (intreg's missing upper
        limit is ``inf``, unbounded).
    allowed
        The values the column may hold (a failure indicator: ``(0.0, 1.0)``); others are a
        :class:`~bayesfmm.errors.DataError` naming the rows.
    role
        What the column is, for error messages (``"failure indicator (failure=)"``).

    Examples
    --------
    >>> ExtraColumn("died", allowed=(0.0, 1.0), role="failure indicator").column
    'died'
    """

    column: Any
    missing: float | None = None
    allowed: tuple[float, ...] | None = None
    role: str = ""


@dataclass(frozen=True)
class ResponseHook:
    """How a data-dependent family reads its response column (ordinal levels, multinomial
    outcomes, interval bounds). The response must then be a plain column name.

    Attributes
    ----------
    bind
        ``bind(values, name, index) -> (family, y)``: from the raw response column (a pandas
        Series, any dtype) the family with its levels fixed, and ``y`` as floats. Binding a
        bound family again keeps its levels (new data for ``predict``), raising
        :class:`~bayesfmm.errors.DataError` for a level it has not seen.
    drop_intercept
        The family's own constants replace the design's intercept (ordinal cutpoints): the
        design drops the ``Intercept`` column.
    missing_response
        A missing response is information, not a missing value (intreg: an unbounded lower
        limit), so its rows are not dropped.
    """

    bind: Callable[[Any, str, Any], tuple["Family", np.ndarray]]
    drop_intercept: bool = False
    missing_response: bool = False


LogPdf = Callable[[Any, Sequence[Any], Ops, Extra], Any]
Derivatives = Callable[[Array, Sequence[Array], Extra], tuple[Array, Array]]


@dataclass(frozen=True)
class Family:
    """A component distribution written once in its linear predictors.

    Attributes
    ----------
    name
        Canonical name (``"gaussian"``); ``stata_name`` is what Stata's output calls it.
    slots
        The linear predictors; the first is the mean equation.
    logpdf
        ``logpdf(y, etas, ops, extra)`` -> per-row log density.
    eta_derivatives
        Optional ``(y, etas, extra) -> (d, h)`` with ``d[s]`` the first derivative in slot
        ``s`` and ``h[s, t]`` the second derivatives, each per row.
    mean
        ``mean(etas, ops, extra)`` -> the response mean in this class.
    cdf
        ``cdf(y, etas, ops, extra)`` -> the distribution function.
    in_support
        ``in_support(y, extra)`` -> boolean mask of responses the family accepts; the design layer
        turns a False into a :class:`~bayesfmm.errors.DataError` naming the rows.
    support
        What the family expects, for that message (``"positive"``).
    weighted_fit
        Optional closed-form weighted ML fit used by the EM M-step:
        ``(y, designs, offsets, weights, extra) -> list of coefficient arrays``.
    start_aux
        Start values of the auxiliary slots from a weighted sample:
        ``(y, weights) -> list of floats`` (one per auxiliary slot).
    start_linear
        Optional start values of the linear slots from a weighted sample:
        ``(y, designs, offsets, weights, extra) -> list of coefficient arrays`` (one per
        linear slot), e.g. least squares of ``log y`` for a log-link family; without it the
        1-class fit starts its linear slots at 0.
    sample
        Optional random draws of the response: ``(etas, rng, extra) -> array`` with one
        draw per row (``rng`` a ``numpy.random.Generator``); used by
        :func:`bayesfmm.simulate.simulate` and the parametric bootstrap. Without it the
        family cannot simulate.
    extra_columns
        Per-row data the density needs besides ``y``: ``{"trials": "Total"}`` (a column
        name) or ``{"trials": 10}`` (a constant). The design layer resolves each into a
        float array under that key of ``extra``, dropping rows where a named column is
        missing, like the model's other variables; an :class:`ExtraColumn` sets its own
        rules for missing and allowed values.
    logsf
        Optional ``logsf(y, etas, ops, extra)`` -> the log survivor function
        ``log P(Y > y)``, written stably in the tail (censored survival times use it;
        ``predict(kind="survival")`` prefers it to ``1 - cdf``).
    response_hook
        Optional :class:`ResponseHook` for families whose parameters depend on the
        response's levels (``ologit``, ``mlogit``) or that read it specially (``intreg``).
    """

    name: str
    slots: tuple[Slot, ...]
    logpdf: LogPdf
    mean: Callable[[Sequence[Any], Ops, Extra], Any]
    cdf: Callable[[Any, Sequence[Any], Ops, Extra], Any]
    in_support: Callable[[Array, Extra], Array]
    support: str
    start_aux: Callable[[Array, Array], list[float]]
    eta_derivatives: Derivatives | None = None
    weighted_fit: Callable[..., list[Array]] | None = None
    start_linear: Callable[..., list[Array]] | None = None
    sample: Callable[[Sequence[Array], np.random.Generator, Extra], Array] | None = None
    stata_name: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    extra_columns: Mapping[str, Any] = field(default_factory=dict)
    logsf: Callable[[Any, Sequence[Any], Ops, Extra], Any] | None = None
    response_hook: ResponseHook | None = None

    @property
    def n_slots(self) -> int:
        return len(self.slots)

    def derivatives(self, y: Array, etas: Sequence[Array], extra: Extra) -> tuple[Array, Array]:
        """First and second eta-derivatives, analytic when the family gives them."""
        if self.eta_derivatives is not None:
            return self.eta_derivatives(y, etas, extra)
        return finite_difference_derivatives(self, y, etas, extra)

    def logpdf_numpy(self, y: Array, etas: Sequence[Array], extra: Extra) -> Array:
        return self.logpdf(y, etas, NUMPY_OPS, extra)


def finite_difference_derivatives(
    family: Family, y: Array, etas: Sequence[Array], extra: Extra, step: float = 1e-4
) -> tuple[Array, Array]:
    """Central finite differences of the log density in each eta (rows are independent)."""
    etas = [np.asarray(e, dtype=float) * np.ones_like(np.asarray(y, dtype=float)) for e in etas]
    s = len(etas)
    n = etas[0].shape[0]

    def f(shifted):
        return family.logpdf(y, shifted, NUMPY_OPS, extra)

    d = np.empty((s, n))
    h = np.empty((s, s, n))
    base = f(etas)
    for a in range(s):
        up = list(etas)
        dn = list(etas)
        up[a] = etas[a] + step
        dn[a] = etas[a] - step
        fu, fd = f(up), f(dn)
        d[a] = (fu - fd) / (2 * step)
        h[a, a] = (fu - 2 * base + fd) / step**2
        for b in range(a):
            pp, pm, mp, mm = list(etas), list(etas), list(etas), list(etas)
            pp[a], pp[b] = etas[a] + step, etas[b] + step
            pm[a], pm[b] = etas[a] + step, etas[b] - step
            mp[a], mp[b] = etas[a] - step, etas[b] + step
            mm[a], mm[b] = etas[a] - step, etas[b] - step
            h[a, b] = h[b, a] = (f(pp) - f(pm) - f(mp) + f(mm)) / (4 * step**2)
    return d, h
