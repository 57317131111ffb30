"""The DataTree layer of the relabelling: relabelling and label-switching detection
applied to a fitted mixture's posterior (an ArviZ DataTree).

The numerics stay in :mod:`bayesfmm.bayes.relabel_core` (numpy arrays, class axis 1); here the
posterior's class-indexed variables are turned into such arrays with the builder's map
between PyMC variables and classes, and the permutations are written back. Class-model
coefficients are completed with the base class's 0, permuted, and re-expressed against the
base class. These names are re-exported by :mod:`bayesfmm.bayes.relabel`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from bayesfmm.bayes.relabel_core import (
    LabelSwitchingReport,
    Relabelling,
    apply_permutations,
    detect_label_switching,
    relabel,
)
from bayesfmm.errors import SpecificationError
from bayesfmm.likelihood import evaluate

__all__ = [
    "PROBS_LIMIT",
    "posterior_class_arrays",
    "classification_probs",
    "relabel_idata",
    "detect_label_switching_idata",
    "sort_by_order",
]

PROBS_LIMIT = 20_000_000  # draws x n x k above which detection uses the parameters only


def _posterior(idata: Any):
    """The posterior group as an xarray Dataset (a DataTree, or a bare Dataset)."""
    import xarray as xr

    if isinstance(idata, xr.Dataset):
        return idata
    post = idata["posterior"]
    return post.to_dataset() if hasattr(post, "to_dataset") else post


def _class_groups(built: Any) -> list:
    """The RV groups that carry one value per class (all ``k``, or all but the base)."""
    out = []
    spec = built.problem.design.spec
    shared_only = built.problem.layout.constraints is not None and not (spec.constraints or spec.nested)
    for g in built.groups:
        if g.dim == "class" or (g.kind == "class" and g.dim == "nonbase_class"):
            out.append(g)
        elif shared_only and not spec.hybrid:
            continue  # one parameter shared by every class (lcinvariant, equal): no label in it
        else:
            raise SpecificationError(
                f"{g.name} exists in classes {list(g.classes)} only (hybrid syntax, or constraints that tie or fix it): classes that "
                "differ in structure cannot swap labels, so there is nothing to relabel"
            )
    return out


def posterior_class_arrays(idata: Any, built: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Class-indexed posterior arrays (chains stacked, ``draws x k``) and each draw's chain.

    Class-model coefficients get the base class's 0 inserted, so every array has all ``k``
    classes.
    """
    post = _posterior(idata)
    base = built.problem.layout.base
    arrays = {}
    for g in _class_groups(built):
        values = post[g.name].transpose("chain", "draw", g.dim).to_numpy()
        chains, draws = values.shape[:2]
        values = values.reshape(chains * draws, -1)
        if g.dim == "nonbase_class":
            values = np.insert(values, base, 0.0, axis=1)
        arrays[g.name] = values
    chain_index = np.repeat(np.arange(chains), draws)
    return arrays, chain_index


def classification_probs(built: Any, theta: np.ndarray) -> np.ndarray:
    """Posterior class probabilities of every row at every draw: ``draws x n x k``."""
    theta = np.asarray(theta, dtype=float).reshape(-1, theta.shape[-1])
    out = np.empty((theta.shape[0], built.problem.n, built.problem.k))
    for t, point in enumerate(theta):
        out[t] = evaluate(built.problem, point).resp
    return out


def _relabelled_dataset(post, built: Any, rel: Relabelling):
    """The posterior Dataset with every class-indexed variable permuted draw by draw."""
    base = built.problem.layout.base
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    perms = rel.permutations
    new = post.copy()
    handled = set()
    for g in _class_groups(built):
        values = rel.draws[g.name]
        if g.dim == "nonbase_class":  # re-express against the base class, whose logit stays 0
            values = np.delete(values - values[:, base : base + 1], base, axis=1)
        dims = ("chain", "draw", g.dim)
        new[g.name] = post[g.name].transpose(*dims).copy(data=values.reshape(chains, draws, -1))
        handled.add(g.name)
    for name, var in post.data_vars.items():  # deterministics indexed by class
        if name in handled or "class" not in var.dims:
            continue
        moved = var.transpose("chain", "draw", "class", ...)
        flat = moved.to_numpy().reshape((chains * draws,) + moved.shape[2:])
        permuted = apply_permutations(flat, perms).reshape(moved.shape)
        new[name] = moved.copy(data=permuted).transpose(*var.dims)
    new.attrs = dict(post.attrs, relabelled=rel.method)
    return new


def relabel_idata(
    idata: Any,
    built: Any,
    method: str = "stephens",
    *,
    return_relabelling: bool = False,
    **options: Any,
):
    """Relabel the posterior of a fitted mixture: the numpy core applied to a DataTree.

    Parameters
    ----------
    idata
        ArviZ DataTree (or InferenceData-like) with a ``posterior`` group.
    built
        The :class:`~bayesfmm.bayes.builder.BuiltModel` the draws came from (its groups
        map variables to classes; its problem gives the classification probabilities).
    method
        ``"stephens"`` (default), ``"ecr"``, ``"sort"`` or ``"pra"`` (see :func:`relabel`).
        For ``"sort"``, ``by=`` names a variable (default: the first component's first
        parameter, e.g. ``thickness_Intercept``).
    return_relabelling
        Also return the :class:`Relabelling` (permutations per draw).
    **options
        Passed to :func:`relabel` (``by=``, ``pivot=``, ``max_iter=``).

    Returns
    -------
    DataTree
        A copy whose ``posterior`` has every class-indexed variable permuted draw by draw;
        class-model coefficients are re-expressed against the base class. The pointwise
        log likelihood and the predictive draws do not depend on labels and are kept.
    """
    post = _posterior(idata)
    arrays, _ = posterior_class_arrays(post, built)
    probs = None
    if method in ("ecr", "stephens") and options.get("allocations") is None:
        probs = classification_probs(built, built.theta_from_posterior(post))
    if method == "sort" and options.get("by") is None:
        options["by"] = next(iter(name for name in arrays if name not in _class_model_names(built)))
    rel = relabel(arrays, method, probs=probs, **options)
    if method in ("ecr", "stephens"):
        rel = sort_by_order(rel, built, arrays)
    new_post = _relabelled_dataset(post, built, rel)
    import xarray as xr

    if isinstance(idata, xr.Dataset):
        out = new_post
    else:
        out = idata.copy()
        out["posterior"] = xr.DataTree(dataset=new_post)
    return (out, rel) if return_relabelling else out


def sort_by_order(rel: Relabelling, built: Any, arrays: dict[str, np.ndarray]) -> Relabelling:
    """``rel`` with its classes renumbered so that the posterior means of the ordering
    parameter (``built.order``; without one, the first component's first class-indexed
    variable) increase: Stephens' and ECR's labels are otherwise arbitrary (a pivot's)."""
    names = [name for name in arrays if name not in _class_model_names(built)]
    name = built.order.group if built.order is not None and built.order.group in rel.draws else (names or list(arrays))[0]
    perm = np.argsort(rel.draws[name].mean(axis=0), kind="stable")
    if np.array_equal(perm, np.arange(perm.size)):
        return rel
    probs = None if rel.probs is None else rel.probs[..., perm]
    return dataclasses.replace(
        rel,
        permutations=rel.permutations[:, perm],
        draws={key: value[:, perm] for key, value in rel.draws.items()},
        probs=probs,
    )


def _class_model_names(built: Any) -> set[str]:
    return {g.name for g in built.groups if g.kind == "class"}


def detect_label_switching_idata(
    idata: Any, built: Any, method: str | None = None, threshold: float = 0.05, **options: Any
) -> LabelSwitchingReport:
    """:func:`detect_label_switching` on a fitted mixture's posterior.

    The default method is ``"stephens"`` on the classification probabilities, or ``"pra"``
    on the parameters when ``draws x n x k`` exceeds ``PROBS_LIMIT`` values.
    """
    post = _posterior(idata)
    arrays, chain_index = posterior_class_arrays(post, built)
    size = len(chain_index) * built.problem.n * built.problem.k
    if method is None:
        method = "stephens" if size <= PROBS_LIMIT else "pra"
    probs = None
    if method in ("ecr", "stephens"):
        probs = classification_probs(built, built.theta_from_posterior(post))
    return detect_label_switching(arrays, chain_index, probs=probs, method=method, threshold=threshold, **options)
