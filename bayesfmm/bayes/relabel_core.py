"""Post-hoc relabelling of mixture draws, and detection of label switching: the numpy core.

The likelihood of a mixture is unchanged when classes swap labels, so an unconstrained
sampler may visit the ``k!`` relabelled copies of a mode: within one chain (the trace of a
class mean jumps between levels) or across chains (each chain settles on its own
labelling). Class-specific summaries then mix classes. The cure is an ordering constraint
in the model, or a *relabelling* of the draws after sampling: one permutation of the class
labels per draw, chosen so that all draws share one labelling.

The numerics here are plain numpy functions on arrays whose axis 1 is the class axis
(``draws x k x ...``), in the arviz-stats style; the DataTree layer lives at the edge
(:mod:`bayesfmm.bayes.relabel_idata`), and :mod:`bayesfmm.bayes.relabel` gathers both.

Permutation convention: ``perm[t, j] = a`` means that class ``j`` *after* relabelling is
class ``a`` of draw ``t`` before it, so ``new[t, j] = old[t, perm[t, j]]``.

Methods
-------
``"sort"``
    Order the classes of each draw by one parameter (an identifiability constraint imposed
    after the fact).
``"ecr"``
    Equivalence classes representatives: Papastamoulis, P. & Iliopoulos, G. (2010), "An
    artificial allocations based solution to the label switching problem in Bayesian
    analysis of mixtures of distributions", *Journal of Computational and Graphical
    Statistics* 19(2), 313-331. Each draw's permutation maximises agreement between its
    allocation vector and a pivot allocation; iterated with the pivot updated to the
    per-observation mode of the relabelled allocations (the ``ECR-ITERATIVE-1`` variant of
    Papastamoulis 2016, *J. Statistical Software* 69(1)).
``"stephens"``
    Stephens, M. (2000), "Dealing with label switching in mixture models", *Journal of the
    Royal Statistical Society B* 62(4), 795-809, Algorithm 2: permutations minimising the
    Kullback-Leibler divergence between each draw's classification probabilities and their
    average, by alternating the average and the per-draw assignments.
``"pra"``
    Pivotal reordering on the parameters themselves: Marin, J.-M., Mengersen, K. & Robert,
    C. P. (2005), "Bayesian modelling and inference on mixtures of distributions",
    *Handbook of Statistics* 25, with the reference refreshed to the mean of the relabelled
    draws as in the k-means-type algorithm of Celeux, G. (1998), "Bayesian inference for
    mixtures: the label-switching problem", *COMPSTAT 98*. It needs no classification
    probabilities, which makes it the default for detection on parameters alone.

Each per-draw assignment is a linear assignment problem, solved exactly by
:func:`scipy.optimize.linear_sum_assignment`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from bayesfmm.errors import IdentificationWarning, SpecificationError
from bayesfmm.ops import Lazy

linear_sum_assignment = Lazy("scipy.optimize", "linear_sum_assignment")  # loaded on first use

__all__ = [
    "METHODS",
    "Relabelling",
    "LabelSwitchingReport",
    "relabel",
    "apply_permutations",
    "permute_probs",
    "inverse_permutations",
    "detect_label_switching",
]

METHODS = ("ecr", "stephens", "sort", "pra")
_TINY = 1e-300

DrawsByClass = Mapping[str, np.ndarray] | np.ndarray


# -- small helpers -----------------------------------------------------------------------
def _as_dict(draws_by_class: DrawsByClass) -> dict[str, np.ndarray]:
    if isinstance(draws_by_class, np.ndarray):
        return {"x": draws_by_class}
    if not isinstance(draws_by_class, Mapping) or not draws_by_class:
        raise SpecificationError(
            "draws_by_class must be a numpy array (draws x k x ...) or a non-empty dict of them, "
            f"got {type(draws_by_class).__name__}"
        )
    return {str(name): np.asarray(value) for name, value in draws_by_class.items()}


def _shape(arrays: dict[str, np.ndarray], probs: np.ndarray | None, alloc: np.ndarray | None) -> tuple[int, int]:
    """The common number of draws and classes, checked across every input."""
    shapes = {name: a.shape[:2] for name, a in arrays.items()}
    for name, a in arrays.items():
        if a.ndim < 2:
            raise SpecificationError(f"draws_by_class[{name!r}] must be draws x k x ..., got shape {a.shape}")
    if len(set(shapes.values())) > 1:
        raise SpecificationError(f"arrays disagree on (draws, k): {shapes}")
    n_draws, k = next(iter(shapes.values()))
    if probs is not None and (probs.ndim != 3 or probs.shape[0] != n_draws or probs.shape[2] != k):
        raise SpecificationError(f"probs must be draws x n x k = ({n_draws}, n, {k}), got {probs.shape}")
    if alloc is not None and (alloc.ndim != 2 or alloc.shape[0] != n_draws):
        raise SpecificationError(f"allocations must be draws x n = ({n_draws}, n), got {alloc.shape}")
    if k < 2:
        raise SpecificationError("relabelling needs at least 2 classes")
    return n_draws, k


def apply_permutations(values: np.ndarray, permutations: np.ndarray) -> np.ndarray:
    """Permute axis 1 (classes) of ``values`` (draws x k x ...) draw by draw.

    Examples
    --------
    >>> import numpy as np
    >>> apply_permutations(np.array([[10.0, 20.0]]), np.array([[1, 0]]))
    array([[20., 10.]])
    """
    values = np.asarray(values)
    index = permutations.reshape(permutations.shape + (1,) * (values.ndim - 2))
    return np.take_along_axis(values, index, axis=1)


def permute_probs(probs: np.ndarray, permutations: np.ndarray) -> np.ndarray:
    """Permute the class axis (last) of classification probabilities (draws x n x k)."""
    return np.take_along_axis(probs, permutations[:, None, :], axis=2)


def inverse_permutations(permutations: np.ndarray) -> np.ndarray:
    """Row-wise inverse: ``inv[t, perm[t, j]] = j``."""
    inv = np.empty_like(permutations)
    rows = np.arange(permutations.shape[0])[:, None]
    inv[rows, permutations] = np.arange(permutations.shape[1])[None, :]
    return inv


def _assign(cost: np.ndarray, maximize: bool = False) -> np.ndarray:
    """One linear assignment per draw: ``cost[t, j, a]`` of giving old class ``a`` label ``j``."""
    perms = np.empty(cost.shape[:2], dtype=np.intp)
    for t in range(cost.shape[0]):
        _, cols = linear_sum_assignment(cost[t], maximize=maximize)
        perms[t] = cols
    return perms


# -- the result --------------------------------------------------------------------------
@dataclass(frozen=True)
class Relabelling:
    """Permutations found by :func:`relabel` and the draws they relabel.

    Attributes
    ----------
    method : str
        ``"ecr"``, ``"stephens"``, ``"sort"`` or ``"pra"``.
    permutations : numpy.ndarray
        ``draws x k``; ``permutations[t, j]`` is the old label of new class ``j`` in draw ``t``.
    draws : dict of numpy.ndarray
        The input arrays with their class axis permuted.
    probs : numpy.ndarray or None
        The classification probabilities, permuted, when given.
    iterations : int
        Iterations of the alternating algorithms (1 for ``"sort"``).
    converged : bool
        Whether the permutations stopped changing within ``max_iter``.
    objective : tuple of float
        The criterion after each iteration (disagreements for ECR, KL divergence for
        Stephens, squared distance for PRA); it never increases.
    """

    method: str
    permutations: np.ndarray
    draws: dict[str, np.ndarray]
    probs: np.ndarray | None = None
    iterations: int = 1
    converged: bool = True
    objective: tuple[float, ...] = field(default_factory=tuple)

    @property
    def n_relabelled(self) -> int:
        """Number of draws whose permutation is not the identity."""
        identity = np.arange(self.permutations.shape[1])
        return int(np.sum(np.any(self.permutations != identity, axis=1)))


# -- the methods -------------------------------------------------------------------------
def _sort_key(arrays: dict[str, np.ndarray], by: Any) -> np.ndarray:
    if by is None:
        if len(arrays) != 1:
            raise SpecificationError(f"method='sort' needs by= naming one of {sorted(arrays)}")
        by = next(iter(arrays))
    name, index = (by[0], tuple(by[1:])) if isinstance(by, tuple) else (by, ())
    if name not in arrays:
        raise SpecificationError(f"by={by!r}: no array {name!r}; available: {sorted(arrays)}")
    key = arrays[name]
    key = key[(slice(None), slice(None)) + index] if index else key
    if key.ndim != 2:
        raise SpecificationError(
            f"by={by!r} selects an array of shape {key.shape}; give an element index for the "
            f"extra axes, e.g. by=({name!r}, 0)"
        )
    return key


def _sort(key: np.ndarray, descending: bool) -> np.ndarray:
    perms = np.argsort(-key if descending else key, axis=1, kind="stable")
    return perms.astype(np.intp)


def _ecr(alloc: np.ndarray, k: int, pivot: np.ndarray | None, max_iter: int):
    """ECR with an updated pivot; returns permutations, iterations, converged, objective."""
    n_draws, n = alloc.shape
    iterate = pivot is None
    pivot = alloc[0] if pivot is None else pivot
    offsets = (np.arange(n_draws) * k * k)[:, None]
    perms, history = None, []
    for it in range(1, max_iter + 1):
        flat = offsets + pivot[None, :] * k + alloc
        counts = np.bincount(flat.ravel(), minlength=n_draws * k * k).reshape(n_draws, k, k)
        new = _assign(counts, maximize=True)
        agree = np.take_along_axis(counts, new[:, :, None], axis=2).sum()
        history.append(float(n_draws * n - agree))
        if perms is not None and np.array_equal(new, perms):
            return new, it, True, history
        perms = new
        if not iterate:
            return perms, it, True, history
        relabelled = np.take_along_axis(inverse_permutations(perms), alloc, axis=1)
        pivot = _column_mode(relabelled, k)
    return perms, max_iter, False, history


def _column_mode(labels: np.ndarray, k: int) -> np.ndarray:
    """The most frequent label of each column (ties to the smallest)."""
    n = labels.shape[1]
    counts = np.zeros((k, n), dtype=np.intp)
    for j in range(k):
        counts[j] = np.sum(labels == j, axis=0)
    return counts.argmax(axis=0)


def _stephens(probs: np.ndarray, start: np.ndarray, max_iter: int):
    """Stephens (2000) Algorithm 2 by alternating minimisation."""
    logp = np.log(np.maximum(probs, _TINY))
    entropy = np.einsum("tia,tia->ta", probs, logp)  # sum_i p log p, per old class
    perms, history = start, []
    for it in range(1, max_iter + 1):
        q = permute_probs(probs, perms).mean(axis=0)  # n x k, the current average
        logq = np.log(np.maximum(q, _TINY))
        cost = entropy[:, None, :] - np.matmul(logq.T[None, :, :], probs)  # t, j (new), a (old)
        new = _assign(cost)
        history.append(float(np.take_along_axis(cost, new[:, :, None], axis=2).sum()))
        if np.array_equal(new, perms):
            return new, it, True, history
        perms = new
    return perms, max_iter, False, history


def _pra(arrays: dict[str, np.ndarray], n_draws: int, k: int, pivot: int | None, max_iter: int):
    """Pivotal reordering on scaled parameters, reference refreshed each iteration."""
    columns = [a.reshape(n_draws, k, -1).astype(float) for a in arrays.values()]
    X = np.concatenate(columns, axis=2)
    # scale each feature by a label-free estimate of its within-class posterior sd: the sd
    # over draws of its order statistics across classes (the median over the k of them),
    # so a feature that separates the classes outweighs one that only adds noise
    scale = np.median(np.sort(X, axis=1).std(axis=0), axis=0)
    X = X / np.where(scale > 0, scale, 1.0)
    if pivot is not None:
        ref = X[pivot]
    else:  # start from the draws sorted by the first parameter, then refine
        ref = apply_permutations(X, _sort(X[:, :, 0], False)).mean(axis=0)
    sq = np.sum(X * X, axis=2)  # t, a
    perms, history = None, []
    for it in range(1, max_iter + 1):
        cost = sq[:, None, :] - 2.0 * np.einsum("tad,jd->tja", X, ref) + np.sum(ref * ref, axis=1)[None, :, None]
        new = _assign(cost)
        history.append(float(np.take_along_axis(cost, new[:, :, None], axis=2).sum()))
        if perms is not None and np.array_equal(new, perms):
            return new, it, True, history
        perms = new
        ref = apply_permutations(X, perms).mean(axis=0)
    return perms, max_iter, False, history


def _permutations(method, arrays, probs, alloc, n_draws, k, *, by, descending, pivot, max_iter):
    """The permutations of one method; returns them, iterations, converged, objective."""
    iterations, converged, history = 1, True, []
    if method == "sort":
        perms = _sort(_sort_key(arrays, by), descending)
    elif method == "ecr":
        if alloc is None:
            if probs is None:
                raise SpecificationError("method='ecr' needs probs= (draws x n x k) or allocations= (draws x n)")
            alloc = probs.argmax(axis=2)
        if not np.issubdtype(alloc.dtype, np.integer) or alloc.min() < 0 or alloc.max() >= k:
            raise SpecificationError(f"allocations must be integers in 0..{k - 1}")
        fixed = None
        if pivot is not None:
            fixed = alloc[int(pivot)] if np.ndim(pivot) == 0 else np.asarray(pivot, dtype=np.intp)
            if fixed.shape != (alloc.shape[1],):
                raise SpecificationError(f"pivot must be a draw index or {alloc.shape[1]} allocations")
        perms, iterations, converged, history = _ecr(alloc, k, fixed, max_iter)
    elif method == "stephens":
        if probs is None:
            raise SpecificationError("method='stephens' needs probs= (draws x n x k classification probabilities)")
        start = np.tile(np.arange(k), (n_draws, 1))
        perms, iterations, converged, history = _stephens(probs, start, max_iter)
    else:
        if pivot is not None and np.ndim(pivot) != 0:
            raise SpecificationError("for method='pra', pivot is a draw index")
        perms, iterations, converged, history = _pra(arrays, n_draws, k, None if pivot is None else int(pivot), max_iter)
    return perms, iterations, converged, history


def relabel(
    draws_by_class: DrawsByClass,
    method: str = "ecr",
    *,
    probs: np.ndarray | None = None,
    allocations: np.ndarray | None = None,
    by: str | tuple | None = None,
    descending: bool = False,
    pivot: int | np.ndarray | None = None,
    max_iter: int = 100,
) -> Relabelling:
    """Relabel the classes of every draw so that all draws share one labelling.

    Parameters
    ----------
    draws_by_class
        One array or a dict of arrays, each ``draws x k x ...`` (axis 1 is the class).
        Class-model logits must be given for all ``k`` classes (the base class as 0) or as
        log class probabilities; :func:`relabel_idata` does that for a DataTree.
    method
        ``"ecr"`` (Papastamoulis & Iliopoulos 2010), ``"stephens"`` (Stephens 2000),
        ``"sort"`` (order by one parameter) or ``"pra"`` (pivotal reordering on the
        parameters, Marin, Mengersen & Robert 2005; Celeux 1998). See the module docstring
        for the references.
    probs
        Per-draw classification probabilities, ``draws x n x k`` (posterior class
        probabilities of each observation). Required by ``"stephens"``; ``"ecr"`` takes
        their row-wise argmax when ``allocations`` is not given.
    allocations
        Per-draw class allocations, ``draws x n`` integers in ``0..k-1`` (for ``"ecr"``).
    by, descending
        For ``"sort"``: the array to order by (its name, or ``(name, index...)`` for an
        element of a multi-dimensional array) and the direction.
    pivot
        ``"ecr"``: a pivot allocation (length n) or a draw index whose allocation is the
        pivot; fixed when given, otherwise started from draw 0 and updated to the
        per-observation mode until the permutations settle. ``"pra"``: a draw index
        whose parameters are the first reference (e.g. the draw of highest posterior
        density; default: the draws sorted by the first parameter, averaged), refreshed to
        the mean of the relabelled draws until the permutations settle.
    max_iter
        Iterations of the alternating algorithms.

    Returns
    -------
    Relabelling
        ``permutations`` (draws x k) and the relabelled ``draws`` (and ``probs``).

    Examples
    --------
    >>> import numpy as np
    >>> mu = np.array([[0.0, 5.0], [5.1, 0.1], [0.2, 4.9]])  # draw 1 switched
    >>> relabel({"mu": mu}, "sort", by="mu").draws["mu"][1]
    array([0.1, 5.1])
    """
    if method not in METHODS:
        raise SpecificationError(f"method={method!r} is not a relabelling method; choose from {', '.join(METHODS)}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise SpecificationError(f"max_iter must be a positive integer, got {max_iter!r}")
    arrays = _as_dict(draws_by_class)
    probs = None if probs is None else np.asarray(probs, dtype=float)
    alloc = None if allocations is None else np.asarray(allocations)
    n_draws, k = _shape(arrays, probs, alloc)
    perms, iterations, converged, history = _permutations(
        method, arrays, probs, alloc, n_draws, k, by=by, descending=descending, pivot=pivot, max_iter=max_iter
    )
    if not converged:
        warnings.warn(
            f"relabel(method={method!r}) did not settle within max_iter={max_iter} iterations; "
            "raise max_iter or try another method",
            IdentificationWarning,
            stacklevel=2,
        )
    return Relabelling(
        method=method,
        permutations=perms,
        draws={name: apply_permutations(a, perms) for name, a in arrays.items()},
        probs=None if probs is None else permute_probs(probs, perms),
        iterations=iterations,
        converged=converged,
        objective=tuple(history),
    )



# -- detection -------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelSwitchingReport:
    """What :func:`detect_label_switching` found.

    Attributes
    ----------
    chains : pandas.DataFrame
        One row per chain: ``draws``, ``labelling`` (the chain's majority permutation
        relative to the pooled relabelling, 1-based), ``share_other`` (share of its draws
        in another labelling), ``switches`` (changes of labelling between consecutive
        draws) and ``switching`` (``share_other > threshold``).
    within_chains : bool
        Some chain changes labelling partway (more than ``threshold`` of its draws).
    across_chains : bool
        The chains' majority labellings differ.
    relabelling : Relabelling
        The pooled relabelling the report was computed from; its ``draws`` are the
        relabelled arrays.
    threshold : float
        Share of draws in another labelling above which a chain counts as switching.
    """

    chains: pd.DataFrame
    within_chains: bool
    across_chains: bool
    relabelling: Relabelling
    threshold: float

    @property
    def switching(self) -> bool:
        """True when labels switch within or across chains."""
        return self.within_chains or self.across_chains

    def message(self) -> str:
        """A plain-language verdict and what to do."""
        if not self.switching:
            return "No label switching: every chain keeps one labelling, the same in all chains."
        parts = []
        for chain, row in self.chains.iterrows():
            if row["switching"]:
                parts.append(
                    f"chain {chain} changes labelling within the chain ({row['share_other']:.0%} of its "
                    f"draws in another labelling, {row['switches']} switches)"
                )
        if self.across_chains:
            first = self.chains.iloc[0]
            ref = np.asarray(first["labelling"]) - 1
            inv_ref = np.argsort(ref)
            for chain, row in self.chains.iloc[1:].iterrows():
                own = np.asarray(row["labelling"]) - 1
                if not np.array_equal(own, ref):
                    mapping = own[inv_ref] + 1  # chain-1 class a is this chain's class mapping[a]
                    parts.append(
                        f"chain {chain} labels the classes differently from chain {self.chains.index[0]}: "
                        f"its classes {tuple(int(m) for m in mapping)} are classes "
                        f"{tuple(range(1, len(mapping) + 1))} there"
                    )
        return (
            "Label switching: "
            + "; ".join(parts)
            + ". Class-specific summaries (means, intervals, R-hat) mix classes. Refit with an "
            "ordering constraint (order=..., e.g. on the first component's intercept), or relabel "
            "the draws after sampling: bayesfmm.bayes.relabel.relabel_idata(res.idata, res.built, "
            "method='stephens') (or 'ecr', 'sort')."
        )

    def warn(self, stacklevel: int = 2) -> bool:
        """Issue :class:`~bayesfmm.errors.IdentificationWarning` when labels switch; return whether."""
        if self.switching:
            warnings.warn(self.message(), IdentificationWarning, stacklevel=stacklevel + 1)
        return self.switching

    def __str__(self) -> str:
        return self.message() + "\n" + self.chains.to_string()


def detect_label_switching(
    draws_by_class: DrawsByClass,
    chain_index: Sequence[int] | np.ndarray | None = None,
    *,
    probs: np.ndarray | None = None,
    allocations: np.ndarray | None = None,
    method: str | None = None,
    threshold: float = 0.05,
    **options: Any,
) -> LabelSwitchingReport:
    """Detect label switching within and across chains.

    All draws are relabelled together (so that one reference labelling serves every
    chain); then each chain's permutations are inspected: a chain whose draws do not
    share one permutation switches labels within the chain, and chains whose majority
    permutations differ use different labellings.

    Parameters
    ----------
    draws_by_class
        Arrays ``draws x k x ...`` (all chains stacked along axis 0), as for :func:`relabel`.
    chain_index
        The chain of each draw (length ``draws``), draws of a chain in sampling order;
        None for one chain.
    probs, allocations
        Classification probabilities (``draws x n x k``) or allocations, when available.
    method
        Relabelling method; default ``"stephens"`` with ``probs``, ``"ecr"`` with
        ``allocations`` only, ``"pra"`` (parameters only) otherwise.
    threshold
        Share of a chain's draws outside its majority labelling above which the chain
        counts as switching (default 0.05).
    **options
        Passed to :func:`relabel` (``by=``, ``pivot=``, ``max_iter=``).

    Returns
    -------
    LabelSwitchingReport
        ``.switching``, ``.message()``, ``.warn()``, and the per-chain table ``.chains``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> mu = np.array([-2.0, 2.0]) + 0.1 * rng.standard_normal((200, 2))
    >>> mu[100:] = mu[100:, ::-1]            # the second chain uses the other labelling
    >>> report = detect_label_switching({"mu": mu}, np.repeat([0, 1], 100))
    >>> report.within_chains, report.across_chains
    (False, True)
    """
    if not 0.0 <= threshold < 1.0:
        raise SpecificationError(f"threshold must be in [0, 1), got {threshold!r}")
    if method is None:
        method = "stephens" if probs is not None else "ecr" if allocations is not None else "pra"
    rel = relabel(draws_by_class, method, probs=probs, allocations=allocations, **options)
    perms = rel.permutations
    n_draws = perms.shape[0]
    chain_index = np.zeros(n_draws, dtype=int) if chain_index is None else np.asarray(chain_index)
    if chain_index.shape != (n_draws,):
        raise SpecificationError(f"chain_index must have one entry per draw ({n_draws}), got shape {chain_index.shape}")
    rows = []
    chains = list(dict.fromkeys(chain_index.tolist()))
    for chain in chains:
        own = perms[chain_index == chain]
        labellings, first, counts = np.unique(own, axis=0, return_index=True, return_counts=True)
        best = np.lexsort((first, -counts))[0]  # the most frequent, ties to the earliest
        share = 1.0 - counts[best] / own.shape[0]
        rows.append(
            {
                "chain": chain,
                "draws": own.shape[0],
                "labelling": tuple(int(a) + 1 for a in labellings[best]),
                "share_other": float(share),
                "switches": int(np.sum(np.any(own[1:] != own[:-1], axis=1))),
                "switching": bool(share > threshold),
            }
        )
    table = pd.DataFrame(rows).set_index("chain")
    return LabelSwitchingReport(
        chains=table,
        within_chains=bool(table["switching"].any()),
        across_chains=table["labelling"].nunique() > 1,
        relabelling=rel,
        threshold=threshold,
    )
