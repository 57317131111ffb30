"""The small math namespace every family's log density is written against.

A family writes its log density once, as a function of ``(y, etas, ops)``; ``NUMPY_OPS``
evaluates it with numpy/scipy for the ML engine and :func:`pytensor_ops` with pytensor for
PyMC. Only functions both backends provide with the same semantics belong here. Besides
the elementwise functions, the namespace has the few array operations the mixture layer
(:mod:`bayesfmm.mixture`) is written against: a matrix-vector product, stacking class values
into columns, the log-softmax, the logsumexp over classes, and sums over groups of rows.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from bayesfmm.errors import environment_switch

__all__ = ["Ops", "NUMPY_OPS", "pytensor_ops", "recurrence_sums", "logsumexp_columns", "exp_in_place", "log_in_place", "log1p_in_place", "VECTOR_EXP", "log_softmax", "expit", "cho_factor", "cho_solve", "Lazy", "special", "linalg"]


class Lazy:
    """A scipy module, or one of its attributes, loaded on first use.

    ``import bayesfmm`` stays as fast as importing numpy, scipy and pandas (scipy loads
    its submodules on demand too): ``scipy.special`` alone takes longer to import than
    the whole of bayesfmm. ``Lazy("scipy.special")`` forwards attribute access to the
    module, ``Lazy("scipy.special", "gammaln")`` calls and attribute access to the function.

    Examples
    --------
    >>> float(Lazy("scipy.special", "gammaln")(4.0).round(6)), float(Lazy("scipy.special").expit(0.0))
    (1.791759, 0.5)
    """

    __slots__ = ("_module", "_name", "_target")

    def __init__(self, module: str, name: str | None = None) -> None:
        self._module, self._name, self._target = module, name, None

    def _load(self) -> Any:
        target = self._target
        if target is None:
            target = importlib.import_module(self._module)
            if self._name is not None:
                target = getattr(target, self._name)
            self._target = target
        return target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._load()(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __reduce__(self):
        return (Lazy, (self._module, self._name))

    def __repr__(self) -> str:
        return f"Lazy({self._module!r}{'' if self._name is None else ', ' + repr(self._name)})"


special = Lazy("scipy.special")
linalg = Lazy("scipy.linalg")

RECURRENCE_TABLE_MAX = 1_000_000  # largest count a recurrence table serves


def recurrence_sums(y: Any, r: Any, *terms: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray] | None:
    """``sum_{m < y_i} term(r + m)`` for each row and each of ``terms``, read from one
    cumulative table per term up to ``max(y)``, when the ``y`` are whole numbers in
    ``[0, RECURRENCE_TABLE_MAX]`` and ``r`` is one value (a scalar, or a vector holding one
    value); None otherwise. The rows are checked once for all the terms.

    The recurrences ``lgamma(r + y) - lgamma(r) = sum log(r + m)``, ``psi(r + y) - psi(r) =
    sum 1 / (r + m)`` and ``psi1(r + y) - psi1(r) = -sum 1 / (r + m)^2`` turn the special
    functions of a count density (the negative binomial's) into a table lookup.

    Examples
    --------
    >>> from math import lgamma
    >>> float(recurrence_sums(np.array([3.0]), 0.5, np.log)[0][0]) - (lgamma(3.5) - lgamma(0.5)) < 1e-12
    True
    >>> recurrence_sums(np.array([1.5]), 0.5, np.log) is None  # not a whole number
    True
    """
    y = np.asarray(y)
    if y.size == 0:
        return None
    if np.ndim(r) != 0:
        r = np.asarray(r)
        if r.size == 0 or r.min() != r.max():
            return None
        r = r.flat[0]
    if not (0 <= y.min() and y.max() <= RECURRENCE_TABLE_MAX):  # False for NaN too
        return None
    idx = y.astype(np.intp)
    if not np.array_equal(idx, y):
        return None
    top = int(idx.max())
    steps = float(r) + np.arange(top)
    out = []
    for term in terms:
        table = np.empty(top + 1)
        table[0] = 0.0
        np.cumsum(term(steps), out=table[1:])
        out.append(table[idx])
    return out


def _np_log_rising(r: Any, y: Any) -> Any:
    """``lgamma(y + r) - lgamma(r)``: a table of ``sum log(r + m)`` for whole-number ``y``
    and one ``r`` (:func:`recurrence_sums`), else scipy's ``gammaln`` twice."""
    sums = recurrence_sums(y, r, np.log)
    if sums is not None:
        return sums[0]
    return special.gammaln(y + r) - special.gammaln(r)

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
    log_rising: Callable[[Any, Any], Any]  # ``log_rising(r, y) = gammaln(y + r) - gammaln(r)``
    erfc: Callable[[Any], Any]
    log_ndtr: Callable[[Any], Any]
    ndtr: Callable[[Any], Any]
    sigmoid: Callable[[Any], Any]
    softplus: Callable[[Any], Any]
    log_sigmoid_pair: Callable[[Any], tuple[Any, Any]]  # ``(log sigmoid(x), log sigmoid(-x))``
    as_float: Callable[[Any], Any]
    gammaincc: Callable[[Any, Any], Any]  # regularised upper incomplete gamma Q(a, x)
    betainc: Callable[[Any, Any, Any], Any]  # regularised incomplete beta I_x(a, b)
    gammainc: Callable[[Any, Any], Any]  # regularised lower incomplete gamma P(a, x)
    # array operations of the mixture layer
    dot: Callable[[np.ndarray, Any], Any]  # ``X @ coef`` with X a numpy design matrix
    stack: Callable[[Sequence[Any]], Any]  # scalars (or same-shape arrays) along a new first axis
    columns: Callable[[Sequence[Any], int], Any]  # n-vectors or scalars as the columns of n x m
    log_softmax: Callable[[Any, int], Any]  # ``log_softmax(x, axis)``
    class_logsumexp: Callable[[Any], tuple[Any, Any]]  # n x k -> (logsumexp over axis 1, softmax)
    group_sum: Callable[[Any, Any], Any]  # per-row values (n x m) summed within groups (design.Groups)
    on_rows: Callable[[Any, np.ndarray, int], Any]  # an n-vector of zeros, ``values`` at ``rows``


def _np_softplus(x):
    """``log(1 + exp(x))`` as ``max(x, 0) + log1p(exp(-|x|))``: ``np.logaddexp(0, x)``'s
    arithmetic, step for step (the same floats with numpy's ``exp`` and ``log1p``; within
    a few ulp with the vector ones, :data:`VECTOR_EXP`), at 1.7x its speed (3x with them).

    Examples
    --------
    >>> x = np.array([-800.0, -1.0, 0.0, 2.5, 800.0])
    >>> bool(np.allclose(_np_softplus(x), np.logaddexp(0.0, x), rtol=1e-15, atol=0.0))
    True
    """
    x = np.asarray(x, dtype=float)
    out = _softplus_tail(x)
    out += np.maximum(x, 0.0)
    return out[()]  # a numpy scalar for a scalar, as np.logaddexp gives


def _softplus_tail(x: np.ndarray) -> np.ndarray:
    """``log1p(exp(-|x|))``: the part ``softplus(x)`` and ``softplus(-x)`` share."""
    with np.errstate(over="ignore", invalid="ignore"):
        return log1p_in_place(exp_in_place(-np.abs(x)))  # in place on the new array


def _np_log_sigmoid_pair(x):
    """``(log sigmoid(x), log sigmoid(-x))`` = ``(-softplus(-x), -softplus(x))`` sharing one
    ``exp`` and one ``log1p`` (the same floats as two :func:`_np_softplus` calls).

    Examples
    --------
    >>> x = np.array([-40.0, 0.0, 3.0])
    >>> lp, lq = _np_log_sigmoid_pair(x)
    >>> bool(np.array_equal(lp, -_np_softplus(-x)) and np.array_equal(lq, -_np_softplus(x)))
    True
    """
    x = np.asarray(x, dtype=float)
    shared = _softplus_tail(x)
    log_p = np.minimum(x, 0.0)
    log_p -= shared
    log_q = np.minimum(-x, 0.0)
    log_q -= shared
    return log_p[()], log_q[()]


try:  # the optional compiled exp, log and log1p (setup.py): absent where installed without a C compiler
    import bayesfmm._vecmath as _vecmath  # a compiled leaf: imports nothing of the package
except ImportError:  # pragma: no cover - depends on the install
    _vecmath = None

# Whether the logsumexp over classes takes its exponentials and logarithms from glibc's
# vector math (libmvec, AVX2: 4 doubles per call, within 4 ulp of libm, the same results
# for infinities, NaN and zero) instead of numpy's, which is scalar on CPUs without
# AVX-512: the logsumexp per row 2.8x faster, warm fits 1.14x (gaussian k = 3) at n = 1e4,
# EM iterations 1.35x (benchmarks/bench_kernels.py, benchmarks/README.md); the binary
# families' softplus and logit derivatives take their exp and log1p from it too (binomial
# fits 1.24x). Decided once at import;
# ``BAYESFMM_VECTOR_EXP=0`` in the environment keeps numpy's functions (bit for bit the
# results of an install without the extension).
VECTOR_EXP = bool(_vecmath is not None and _vecmath.VECTORIZED and environment_switch("BAYESFMM_VECTOR_EXP"))


def _in_place(name: str, numpy_fn, x: Any) -> Any:
    if not isinstance(x, np.ndarray):  # a numpy scalar (what a ufunc gives for a 0-d array)
        return numpy_fn(x)
    if VECTOR_EXP and x.dtype == np.float64 and x.flags.c_contiguous and x.flags.writeable:
        getattr(_vecmath, name)(x)
    else:
        numpy_fn(x, out=x)
    return x


def exp_in_place(x: np.ndarray) -> np.ndarray:
    """``x <- exp(x)`` for a float64 array, returned (a numpy scalar gives a new one):
    libmvec's vector ``exp`` where :data:`VECTOR_EXP` and ``x`` is contiguous (each
    element's result depends on its value alone, not on its place or the array's length),
    numpy's otherwise.

    Examples
    --------
    >>> exp_in_place(np.array([0.0, -np.inf, np.log(2.0)])).round(12).tolist()
    [1.0, 0.0, 2.0]
    """
    return _in_place("exp_inplace", np.exp, x)


def log_in_place(x: np.ndarray) -> np.ndarray:
    """``x <- log(x)`` for a float64 array, as :func:`exp_in_place`."""
    return _in_place("log_inplace", np.log, x)


def log1p_in_place(x: np.ndarray) -> np.ndarray:
    """``x <- log(1 + x)`` for a float64 array, as :func:`exp_in_place` (libmvec's
    ``log1p`` needs glibc 2.35: with an older one the extension runs libm's)."""
    return _in_place("log1p_inplace", np.log1p, x)


def _logsumexp_two_columns(joint: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`logsumexp_columns` of two finite-maximum columns with one ``exp`` per row: the
    larger column's term is ``exp(0) = 1``, so only the smaller one's is computed (the same
    floats as the general loop)."""
    first, second = joint[:, 0], joint[:, 1]
    term = np.minimum(first, second)
    term -= top
    exp_in_place(term)  # the smaller column's term; 1 on ties
    total = term + 1.0
    first_larger = first >= second
    larger = np.divide(1.0, total)
    term /= total
    resp = np.empty_like(joint, order="F")
    np.copyto(resp[:, 0], np.where(first_larger, larger, term))
    np.copyto(resp[:, 1], np.where(first_larger, term, larger))
    log_in_place(total)
    return np.add(top, total, out=top), resp


_NEAR_ZERO = -(2.0**-54)  # exp of it rounds to exactly 1.0, like exp(0)
# glibc's exp takes a separate branch for |x| < 2**-54: the row maximum's exact 0, at an
# unpredictable column in every row, mispredicts it (+2.6 ns per element on the AVX2
# benchmark machine, benchmarks/README.md). Mapping 0 to -2**-54 keeps exp on its main
# path with the same floats; checked once here, so a libm that rounds differently is
# simply not given the shortcut.
_EXP_ONE_BELOW_ZERO = bool(np.exp(np.full(4, _NEAR_ZERO)).min() == 1.0 and np.exp(_NEAR_ZERO) == 1.0)


def logsumexp_columns(joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise logsumexp of an n x k array, and ``exp(joint - lse)`` (column-major).

    Working one class column at a time keeps every pass contiguous: at n = 1e6 this is
    about 9x faster than ``scipy.special.logsumexp(axis=1)`` (benchmarks/README.md). A
    row-major ``joint`` is copied to column-major first.

    Examples
    --------
    >>> lse, post = logsumexp_columns(np.array([[0.0, 0.0], [np.log(3.0), 0.0]]))
    >>> np.round(np.exp(lse), 12).tolist(), np.round(post[1], 12).tolist()
    ([2.0, 4.0], [0.75, 0.25])
    """
    joint = np.asfortranarray(joint)
    k = joint.shape[1]
    top = joint[:, 0].copy()
    for j in range(1, k):
        np.maximum(top, joint[:, j], out=top)
    finite = bool(np.isfinite(top.sum()))  # one reduction, no mask, in the usual all-finite case
    if not finite:
        top[~np.isfinite(top)] = 0.0
    elif k == 2:
        return _logsumexp_two_columns(joint, top)
    resp = np.empty_like(joint, order="F")
    total = None  # the first two classes' terms, then the running sum: no zeros, no copy
    for j in range(k):
        col = resp[:, j]
        np.subtract(joint[:, j], top, out=col)
        if finite and _EXP_ONE_BELOW_ZERO and not VECTOR_EXP:  # (an infinite maximum must stay infinite)
            np.minimum(col, _NEAR_ZERO, out=col)  # the row maximum's 0 off libm exp's slow branch
        exp_in_place(col)
        if j == 1:
            total = col + resp[:, 0]
        elif j > 1:
            total += col
    if total is None:
        total = resp[:, 0].copy()
    for j in range(k):
        resp[:, j] /= total
    log_in_place(total)
    return np.add(top, total, out=top), resp


def log_softmax(x: Any, axis: int) -> np.ndarray:
    """``x - logsumexp(x, axis)``, max-shifted: ``scipy.special.log_softmax``'s arithmetic,
    step for step (the same floats), without importing scipy.special (slower to import
    than a small fit).

    Examples
    --------
    >>> np.round(np.exp(log_softmax(np.array([0.0, np.log(3.0)]), -1)), 12).tolist()
    [0.25, 0.75]
    """
    x = np.asarray(x)
    top = np.max(x, axis=axis, keepdims=True)
    top[~np.isfinite(top)] = 0
    shifted = x - top
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def expit(x: Any) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-x))`` in numpy (scipy.special's ``expit``
    costs its import; the two agree to a few ulp).

    Examples
    --------
    >>> expit(np.array([0.0, 800.0, -800.0])).tolist()
    [0.5, 1.0, 0.0]
    """
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def cho_factor(a: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of a symmetric positive definite matrix, in numpy (the
    fit never imports scipy.linalg, whose import costs more than a small fit); raises
    ``numpy.linalg.LinAlgError`` when ``a`` is not positive definite and ``ValueError``
    when it holds NaN or infinity, as ``scipy.linalg.cho_factor`` does.

    Examples
    --------
    >>> cho_factor(np.array([[4.0, 2.0], [2.0, 5.0]])).tolist()
    [[2.0, 0.0], [1.0, 2.0]]
    """
    a = np.asarray(a, dtype=float)
    if not np.isfinite(a).all():
        raise ValueError("array must not contain infs or NaNs")
    return np.linalg.cholesky(a)


def cho_solve(factor: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` from the lower Cholesky factor of ``a`` (:func:`cho_factor`).

    Examples
    --------
    >>> cho_solve(cho_factor(np.array([[4.0, 2.0], [2.0, 5.0]])), np.array([6.0, 7.0])).tolist()
    [1.0, 1.0]
    """
    return np.linalg.solve(factor.T, np.linalg.solve(factor, b))


def _np_columns(values: Sequence[Any], n: int) -> np.ndarray:
    """Column-major n x m: the layout :func:`logsumexp_columns` reads fastest."""
    out = np.empty((n, len(values)), order="F")
    for j, value in enumerate(values):
        out[:, j] = value
    return out


def _np_on_rows(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[rows] = values
    return out


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
    gammaln=Lazy("scipy.special", "gammaln"),
    log_rising=_np_log_rising,
    erfc=Lazy("scipy.special", "erfc"),
    log_ndtr=Lazy("scipy.special", "log_ndtr"),
    ndtr=Lazy("scipy.special", "ndtr"),
    sigmoid=expit,
    softplus=_np_softplus,
    log_sigmoid_pair=_np_log_sigmoid_pair,
    as_float=lambda x: np.asarray(x, dtype=float),
    gammaincc=Lazy("scipy.special", "gammaincc"),
    betainc=Lazy("scipy.special", "betainc"),
    gammainc=Lazy("scipy.special", "gammainc"),
    dot=np.matmul,
    stack=lambda values: np.array(values, dtype=float),
    columns=_np_columns,
    log_softmax=log_softmax,
    class_logsumexp=logsumexp_columns,
    group_sum=lambda values, groups: groups.sum_rows(values),
    on_rows=_np_on_rows,
)


def pytensor_ops() -> Ops:
    """The pytensor backend (imported lazily: the ML path never touches pytensor)."""
    import pytensor.tensor as pt

    def _normcdf(x):
        return 0.5 * pt.erfc(-x / np.sqrt(2.0))

    from pytensor.tensor.special import log_softmax, logsumexp

    def _float(x):
        return pt.as_tensor_variable(x, dtype="float64")

    def _columns(values, n):
        cols = [_float(v) for v in values]
        return pt.stack([c if c.ndim == 1 else pt.zeros((n,)) + c for c in cols], axis=1)

    def _class_logsumexp(joint):
        lse = logsumexp(joint, axis=1)
        return lse, pt.exp(joint - lse[:, None])  # the softmax: pruned from graphs not using it

    def _group_sum(values, groups):
        m = values.type.shape[1] if values.type.shape[1] is not None else values.shape[1]
        return pt.inc_subtensor(pt.zeros((groups.n_groups, m))[pt.constant(groups.codes)], values)

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
        log_rising=lambda r, y: pt.gammaln(y + r) - pt.gammaln(r),
        erfc=pt.erfc,
        log_ndtr=_log_ndtr,
        ndtr=_normcdf,
        sigmoid=pt.sigmoid,
        softplus=pt.softplus,
        log_sigmoid_pair=lambda x: (-pt.softplus(-x), -pt.softplus(x)),
        as_float=_float,
        gammaincc=pt.gammaincc,
        betainc=pt.betainc,
        gammainc=pt.gammainc,
        dot=lambda X, coef: pt.dot(pt.constant(X), coef),
        stack=lambda values: pt.stack([_float(v) for v in values]),
        columns=_columns,
        log_softmax=log_softmax,
        class_logsumexp=_class_logsumexp,
        group_sum=_group_sum,
        on_rows=lambda values, rows, n: pt.set_subtensor(pt.zeros((n,))[pt.constant(rows)], values),
    )
