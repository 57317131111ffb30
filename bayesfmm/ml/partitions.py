"""Per-partition pieces of a fit on a Dask DataFrame, and their tree reduction.

The log likelihood, its score and Hessian, EM's complete-data score and Hessian, and the
outer products of the unit scores are all sums over likelihood units (rows, or groups
that lie within one partition). Each function here computes one partition's share with the
public functions of :mod:`bayesfmm.likelihood` on a :class:`MixtureProblem` built from
that partition alone; :func:`tree_sum` adds the shares up in a tree of ``split_every``-way
sums, so the sum over partitions equals the whole-data value (up to the order of floating
point additions). Dask is imported inside the functions that use it (an optional extra).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from bayesfmm.design import Design, design_for_new_data
from bayesfmm.errors import DataError
from bayesfmm.frame import row_weights
from bayesfmm.likelihood import MixtureProblem, complete_data_score_hessian, evaluate, score_hessian, unit_scores
from bayesfmm.ml.vce import cluster_score_sums
from bayesfmm.params import ParamLayout

__all__ = [
    "is_dask_frame",
    "first_pass",
    "partition_problem",
    "part_loglike",
    "part_score_hessian",
    "part_em",
    "part_meat",
    "part_counts",
    "tree_sum",
]


def is_dask_frame(data: Any) -> bool:
    """Whether ``data`` is a Dask DataFrame (checked without importing dask).

    Examples
    --------
    >>> import pandas as pd
    >>> is_dask_frame(pd.DataFrame({"y": [1.0]}))
    False
    """
    return type(data).__module__.startswith("dask") and hasattr(data, "to_delayed") and hasattr(data, "npartitions")


def plain_strings(part: pd.DataFrame) -> pd.DataFrame:
    """String columns with ``pd.NA`` (Dask turns text into ``string[pyarrow]``) as object
    columns, which formulaic codes as categorical as it does pandas' default strings."""
    strings = [c for c, dtype in part.dtypes.items() if isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA]
    return part.astype({c: object for c in strings}) if strings else part


# -- the first pass: counts, a sample, every factor level, the partitions' units ----------------


def first_pass(
    part: pd.DataFrame, index: int, take: int, seed: int, factors: Sequence[str], unit_columns: Sequence[str]
) -> tuple[int, pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """One partition's rows, a random sample of ``take`` of them (seeded by the run's seed
    and the partition), one row for each value of each factor column (so the encoding
    learned from the sample knows every level), and the distinct values of the group and
    cluster columns (which must not cross partitions)."""
    rng = np.random.default_rng([seed, index])
    part = plain_strings(part)
    n = len(part)
    rows = np.sort(rng.choice(n, size=min(take, n), replace=False)) if n else np.array([], dtype=int)
    sample = part.iloc[rows]
    reps = [part.drop_duplicates(subset=[c]) for c in factors if c in part.columns]
    levels = pd.concat(reps) if reps else part.iloc[:0]
    units = {c: pd.unique(part[c].dropna()) for c in unit_columns}
    return n, sample, levels, units


def check_units_within_partitions(units: Sequence[dict[str, np.ndarray]], column: str, what: str) -> None:
    """A DataError when a value of ``column`` (a group or cluster) occurs in two partitions."""
    seen: dict[Any, int] = {}
    for p, found in enumerate(units):
        for value in found[column]:
            if value in seen and seen[value] != p:
                raise DataError(
                    f"{what} {value!r} of column {column!r} has rows in partitions {seen[value]} and {p}: a fit on a "
                    f"Dask DataFrame needs each {what} within one partition; repartition the data by {column!r} "
                    f"(ddf.set_index({column!r}) or ddf.shuffle(on={column!r}))"
                )
            seen[value] = p


# -- a partition's problem --------------------------------------------------------------


def partition_problem(template: Design, layout: ParamLayout, part: pd.DataFrame, cluster: str | None) -> MixtureProblem | None:
    """The mixture on one partition, encoded with the template's formulaic specs (the
    encoding learned once), with its weights and local cluster codes; None when empty."""
    if len(part) == 0:
        return None
    part = plain_strings(part)
    design = design_for_new_data(template, part, need_response=True)
    if design.n == 0:
        return None
    spec = template.spec
    rows = part.loc[design.index]
    weights = row_weights(spec, rows) if spec.weights is not None else None
    changes: dict[str, Any] = {"weights": weights}
    if cluster is not None:
        codes, uniques = pd.factorize(rows[cluster])
        if (codes < 0).any():
            raise DataError(f"cluster column {cluster!r} has missing values in the estimation sample")
        if design.groups is not None:
            codes = codes[design.groups.first]
        changes.update(cluster=cluster, clusters=codes, n_clusters=len(uniques))
    return MixtureProblem.build(dataclasses.replace(design, **changes), layout)


# -- one partition's share of each sum ----------------------------------------------------


def part_loglike(problem: MixtureProblem | None, theta: np.ndarray) -> tuple[float]:
    """``(llf,)`` of the partition."""
    return (0.0,) if problem is None else (evaluate(problem, theta).llf,)


def part_score_hessian(problem: MixtureProblem | None, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
    """``(llf, gradient, Hessian)`` of the partition (exact: :func:`~bayesfmm.likelihood.score_hessian`)."""
    if problem is None:
        return None
    ev, g, H = score_hessian(problem, theta)
    return ev.llf, g, H


def part_em(problem: MixtureProblem | None, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
    """The E-step and the M-step's weighted statistics of the partition: ``(llf, gradient
    of Q, Hessian of Q)`` with the responsibilities at ``theta``."""
    if problem is None:
        return None
    ev = evaluate(problem, theta)
    _, g, H = complete_data_score_hessian(problem, theta, ev.resp)
    return ev.llf, g, H


def part_meat(problem: MixtureProblem | None, theta: np.ndarray, vce: str) -> tuple[np.ndarray, float] | None:
    """The partition's ``sum s s'`` as :mod:`bayesfmm.ml.vce` weighs it for ``vce``, and its
    count (observations for robust, clusters for cluster)."""
    if problem is None:
        return None
    design = problem.design
    scores = unit_scores(problem, theta)
    w, kind = design.unit_weights, design.weight_type
    if vce == "cluster":
        sums = cluster_score_sums(scores if w is None else scores * w[:, None], design.clusters)
        return sums.T @ sums, float(sums.shape[0])
    if w is None:
        return scores.T @ scores, float(scores.shape[0])
    if vce == "robust" and kind == "pweight":
        weighted = scores * w[:, None]
        return weighted.T @ weighted, float(np.count_nonzero(w))
    count = float(w.sum()) if kind == "fweight" else float(scores.shape[0])
    return scores.T @ (w[:, None] * scores), count


def part_counts(problem: MixtureProblem | None) -> tuple[int, int, int]:
    """``(rows, nobs, rows dropped for missing values)`` of the partition."""
    if problem is None:
        return 0, 0, 0
    return problem.n, problem.design.nobs, problem.design.n_dropped


# -- the tree reduction -------------------------------------------------------------------


def add_shares(*shares: Any) -> Any:
    """Elementwise sum of partition shares (tuples of numbers and arrays); ``None`` (an
    empty partition) adds nothing."""
    present = [s for s in shares if s is not None]
    if not present:
        return None
    return tuple(sum(values[1:], start=values[0]) for values in zip(*present))


def tree_sum(parts: Sequence[Any], function: Callable[..., Any], *args: Any, split_every: int = 8) -> Any:
    """``sum_p function(part_p, *args)``, the shares added in a tree of ``split_every``-way
    sums on the workers; one pass over the (persisted) partitions."""
    import dask

    values = [dask.delayed(function, pure=False)(part, *args) for part in parts]
    while len(values) > 1:
        values = [dask.delayed(add_shares, pure=False)(*values[i : i + split_every]) for i in range(0, len(values), split_every)]
    (total,) = dask.compute(values[0])
    return total
