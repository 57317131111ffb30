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
    "BatchedFit",
    "ExtraColumn",
    "Family",
    "LOG_SCALE",
    "RESPONSE_TERM",
    "ResponseHook",
    "Slot",
    "finite_difference_derivatives",
    "rebuild_family",
    "response_term",
    "with_response_terms",
    "without_response_terms",
    "with_recipe",
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


def _as_float(t: Array) -> Array:
    return np.asarray(t, dtype=float)


def _ones(t: Array) -> Array:
    return np.ones_like(np.asarray(t, dtype=float))


# module-level functions only: a scale travels with a fitted layout, so it must pickle
LOG_SCALE = AuxScale(to_report=np.exp, from_report=np.log, derivative=np.exp)
IDENTITY_SCALE = AuxScale(to_report=_as_float, from_report=_as_float, derivative=_ones)


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
    multi_response
        The family takes several responses, written ``"y1 + y2 + y3 ~ x"`` (``mvnormal``):
        ``bind`` then gets the n x d float array of the left-hand side and the tuple of the
        response names, and ``y`` stays n x d.
    """

    bind: Callable[[Any, str, Any], tuple["Family", np.ndarray]]
    drop_intercept: bool = False
    missing_response: bool = False
    multi_response: bool = False


LogPdf = Callable[[Any, Sequence[Any], Ops, Extra], Any]
Derivatives = Callable[[Array, Sequence[Array], Extra], tuple[Array, Array]]


@dataclass(frozen=True)
class BatchedFit:
    """A closed-form weighted fit (a family's ``weighted_fit``) with its batched form.

    Called, it is the single fit ``(y, designs, offsets, weights, extra) -> list of
    coefficient arrays``; ``columns(y, designs, offsets, W, extra)`` gives one such list per
    column of the n x m weight matrix ``W``, computed in one pass over the data. Both
    functions are defined at module level (a family without a recipe pickles field by
    field).
    """

    single: Callable[..., list[Array]]
    columns: Callable[..., list[list[Array]]]

    def __call__(self, y: Array, designs: Sequence[Array], offsets: Sequence[Any], weights: Array, extra: Extra = None):
        return self.single(y, designs, offsets, weights, extra)


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
    weighted_hessian
        Optional ``(y, etas, designs, weights, extra) -> matrix``: the weighted second
        derivatives summed over the rows in the component's coefficients,
        ``sum_i w_i J_i' h_i J_i`` (block ``(s, t)`` is ``X_s' diag(w h[s, t]) X_t``;
        coefficients slot by slot), exactly what ``eta_derivatives``' ``h`` assembles
        (:meth:`curvature`). A family with many slots gives it in closed form (mvnormal:
        weighted moments of the residuals, ``O(n d^2)`` instead of ``O(n S^2)`` for ``S``
        slots); the engine then skips its per-pair assembly.
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
        A :class:`BatchedFit` adds its batched form for several weight vectors at once,
        which the M-step uses when classes share a component's data (the usual
        ``FMM("y ~ x", k=3)``; :meth:`fit_weighted_columns`). The batched form belongs to
        the fit it batches: a family made by ``dataclasses.replace(..., weighted_fit=f)``
        never keeps the batched form of the fit it replaced.
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
    response_terms
        Optional ``response_terms(y, extra, ops) -> {name: values}``: the terms of the log
        density that depend on the response (and per-row data) only, such as
        ``gammaln(y + 1)`` of a count or ``log y`` of a lognormal. The design computes them
        once (:func:`with_response_terms`) into ``extra`` under ``RESPONSE_TERM + name``;
        ``logpdf`` reads them with :func:`response_term` and computes them itself when
        absent (the PyMC model, a direct call), so the density is still written once.
    response_hook
        Optional :class:`ResponseHook` for families whose parameters depend on the
        response's levels (``ologit``, ``mlogit``) or that read it specially (``intreg``).
    recipe
        How to build this family again: ``(function, args, kwargs)`` with ``function``
        defined at module level and picklable arguments. :func:`~bayesfmm.families.get_family`
        sets it (the registry name and options), as do the constructors of families bound to
        their levels. A family pickles as its recipe, so its densities (closures, lambdas)
        are never pickled themselves; without a recipe it pickles field by field, which
        needs every function to be defined at module level. ``dataclasses.replace``
        gives a family without a recipe (it is no longer the one the recipe builds).

    Examples
    --------
    >>> import pickle
    >>> import bayesfmm as bf
    >>> fam = pickle.loads(pickle.dumps(bf.get_family("gaussian")))
    >>> fam.name, fam.n_slots
    ('gaussian', 2)
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
    weighted_hessian: Callable[..., Array] | None = None
    weighted_fit: Callable[..., list[Array]] | None = None
    start_linear: Callable[..., list[Array]] | None = None
    sample: Callable[[Sequence[Array], np.random.Generator, Extra], Array] | None = None
    stata_name: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    extra_columns: Mapping[str, Any] = field(default_factory=dict)
    logsf: Callable[[Any, Sequence[Any], Ops, Extra], Any] | None = None
    response_hook: ResponseHook | None = None
    response_terms: Callable[[Any, Extra, Ops], Mapping[str, Any]] | None = None
    recipe: tuple[Callable[..., "Family"], tuple, Mapping[str, Any]] | None = field(
        default=None, init=False, compare=False, repr=False
    )

    def __reduce_ex__(self, protocol: Any) -> Any:
        if self.recipe is None:
            return super().__reduce_ex__(protocol)
        function, args, kwargs = self.recipe
        return (rebuild_family, (function, tuple(args), dict(kwargs)))

    @property
    def n_slots(self) -> int:
        return len(self.slots)

    def derivatives(self, y: Array, etas: Sequence[Array], extra: Extra) -> tuple[Array, Array]:
        """First and second eta-derivatives, analytic when the family gives them."""
        if self.eta_derivatives is not None:
            return self.eta_derivatives(y, etas, extra)
        return finite_difference_derivatives(self, y, etas, extra)

    def fit_weighted_columns(
        self, y: Array, designs: Sequence[Array], offsets: Sequence[Any], W: Array, extra: Extra
    ) -> list[list[Array]]:
        """The closed-form weighted fit (:attr:`weighted_fit`) under each column of ``W``
        (n x m), in one pass when the fit is a :class:`BatchedFit`.

        Examples
        --------
        >>> import numpy as np, bayesfmm as bf
        >>> fam = bf.get_family("gaussian")
        >>> y, X = np.array([0.0, 1.0, 2.5, 2.0]), np.c_[np.ones(4), [0.0, 1.0, 2.0, 3.0]]
        >>> W = np.array([[1.0, 0.2], [1.0, 0.9], [1.0, 0.5], [1.0, 0.1]])
        >>> fits = fam.fit_weighted_columns(y, [X, np.ones((4, 1))], [0.0, 0.0], W, {})
        >>> one = fam.weighted_fit(y, [X, np.ones((4, 1))], [0.0, 0.0], W[:, 1], {})
        >>> all(np.allclose(a, b) for a, b in zip(fits[1], one))
        True
        """
        if isinstance(self.weighted_fit, BatchedFit):
            return self.weighted_fit.columns(y, designs, offsets, W, extra)
        if self.weighted_fit is None:
            raise TypeError(f"family {self.name!r} has no closed-form weighted fit")
        return [self.weighted_fit(y, designs, offsets, W[:, j], extra) for j in range(W.shape[1])]

    def curvature(
        self, y: Array, etas: Sequence[Array], designs: Sequence[Array], weights: Array, extra: Extra,
        h: Any = None,
    ) -> Array:
        """``sum_i w_i J_i' h_i J_i``: the weighted second derivatives in the coefficients
        (slot by slot), from :attr:`weighted_hessian` when the family has it, else assembled
        pair by pair from the second eta-derivatives ``h`` (computed when not given).

        Examples
        --------
        >>> import numpy as np, bayesfmm as bf
        >>> fam = bf.get_family("gaussian")
        >>> y, X = np.array([0.5, 1.5, 3.0]), np.c_[np.ones(3), [0.0, 1.0, 2.0]]
        >>> H = fam.curvature(y, [X @ [1.0, 1.0], 0.0], [X, np.ones((3, 1))], np.ones(3), {})
        >>> np.allclose(H[:2, :2], -X.T @ X)  # -X'X / sigma^2 with sigma^2 = 1
        True
        """
        if self.weighted_hessian is not None:
            return self.weighted_hessian(y, etas, designs, weights, extra)
        if h is None:
            h = self.derivatives(y, etas, extra)[1]
        edges = np.cumsum([0] + [X.shape[1] for X in designs])
        H = np.zeros((edges[-1], edges[-1]))
        for a, Xa in enumerate(designs):
            for b in range(a + 1):
                block = Xa.T @ ((weights * h[a, b])[:, None] * designs[b])
                H[edges[a] : edges[a + 1], edges[b] : edges[b + 1]] = block
                H[edges[b] : edges[b + 1], edges[a] : edges[a + 1]] = block.T
        return H

    def information(
        self, y: Array, etas: Sequence[Array], designs: Sequence[Array], weights: Array, extra: Extra, d: Array
    ) -> Array:
        """``sum_i w_i (J_i' h_i J_i + D_i D_i')`` with ``D_i`` the row's score in the
        coefficients (``d[s]`` times the row of ``X_s``, slot by slot): a mixture component's
        complete-data block of the Hessian, given the first eta-derivatives ``d`` (one
        symmetric matrix product plus :meth:`curvature`).

        Examples
        --------
        >>> import numpy as np, bayesfmm as bf
        >>> fam, y, ones = bf.get_family("gaussian"), np.array([-1.0, 1.0]), np.ones((2, 1))
        >>> d = fam.derivatives(y, [0.0, 0.0], {})[0]
        >>> fam.information(y, [0.0, 0.0], [ones, ones], np.ones(2), {}, d).round(6).tolist()
        [[0.0, 0.0], [0.0, -1.0]]
        """
        root = np.sqrt(weights)
        edges = np.cumsum([0] + [X.shape[1] for X in designs])
        D = np.empty((root.shape[0], edges[-1]), order="F")
        for s, X in enumerate(designs):
            np.multiply((np.asarray(d[s]) * root)[:, None], X, out=D[:, edges[s] : edges[s + 1]])
        return D.T @ D + self.curvature(y, etas, designs, weights, extra)

    def logpdf_numpy(self, y: Array, etas: Sequence[Array], extra: Extra) -> Array:
        return self.logpdf(y, etas, NUMPY_OPS, extra)


RESPONSE_TERM = "response:"  # prefix of the keys of precomputed response-only terms in ``extra``


def response_term(extra: Extra | None, name: str) -> Any:
    """The precomputed response-only term ``name`` (see :attr:`Family.response_terms`), or
    None when ``extra`` does not hold it (then the log density computes it).

    Examples
    --------
    >>> response_term({"response:log_y": 1.5}, "log_y"), response_term({}, "log_y")
    (1.5, None)
    """
    if not extra:
        return None
    return extra.get(RESPONSE_TERM + name)


def with_response_terms(family: "Family", y: Array, extra: Extra) -> dict[str, Any]:
    """``extra`` with the family's response-only terms of ``y`` added (computed once per
    design, with numpy); ``extra`` itself is not changed.

    Examples
    --------
    >>> import numpy as np, bayesfmm as bf
    >>> out = with_response_terms(bf.get_family("poisson"), np.array([0.0, 3.0]), {})
    >>> np.round(out["response:lgamma_y1"], 6).tolist()
    [0.0, 1.791759]
    """
    out = {k: v for k, v in extra.items() if not k.startswith(RESPONSE_TERM)}
    if family.response_terms is None:
        return out
    with np.errstate(all="ignore"):
        terms = family.response_terms(np.asarray(y, dtype=float), out, NUMPY_OPS)
    out.update({RESPONSE_TERM + name: np.asarray(value, dtype=float) for name, value in terms.items()})
    return out


def without_response_terms(extra: Extra) -> Extra:
    """``extra`` without precomputed response terms: for a log density evaluated at another
    response than the design's (the PyMC model's observed variable)."""
    if not any(k.startswith(RESPONSE_TERM) for k in extra):
        return extra
    return {k: v for k, v in extra.items() if not k.startswith(RESPONSE_TERM)}


def rebuild_family(function: Callable[..., Family], args: tuple, kwargs: Mapping[str, Any]) -> Family:
    """The family of a recipe (what an unpickled :class:`Family` is built by)."""
    return function(*args, **kwargs)


def with_recipe(family: Family, function: Callable[..., Family], *args: Any, **kwargs: Any) -> Family:
    """``family`` with its :attr:`~Family.recipe` set, in place: closures of the family that
    refer to the object itself (a ``bind`` returning it) see the recipe too."""
    object.__setattr__(family, "recipe", (function, args, kwargs))
    return family


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
