"""``FMM.fit(ddf)``: the ML fit of a mixture on a Dask DataFrame, one pass per iteration.

The log likelihood, its exact score and Hessian and EM's complete-data statistics are sums
over rows (over groups, with ``group=``), so each iteration maps over the partitions and
adds their shares in a tree (:mod:`bayesfmm.ml.partitions`). The steps:

1. **One pass over the raw data**: each partition's row count, a random sample of about
   ``sample_rows`` rows in all, one row per level of each categorical regressor, and the
   distinct group and cluster values (which must not cross partitions).
2. **Start values and the encoding, from the sample**: an in-memory :func:`fit_ml` on the
   sample (with ``startvalues``, ``draws``, ``seed``, ``emopts``, ``executor``) gives the
   start and the design whose formulaic specs encode every partition the same way (factor
   levels from all the data; stateful transforms such as ``center()`` or spline knots from
   the sample).
3. **The design per partition, on the workers**: built once and persisted
   (``persist=True``), so the iterations never re-read the data.
4. **EM passes** (``em_passes``, default 0: the sample fit's start is near the maximum):
   each pass is the E-step and the M-step's weighted statistics (gradient and Hessian of
   the expected complete-data log likelihood ``Q``), reduced across partitions; the M-step
   takes one Newton step on ``Q`` (a generalised EM step, halved if the likelihood fell).
5. **Newton** with the exact Hessian reduced across partitions, Stata's step halving and
   convergence rule (:mod:`bayesfmm.ml.newton`): one pass for the derivatives and one
   per trial step of the line search.
6. **The covariance**: ``oim`` from the Hessian (no pass), ``opg``, ``robust`` and
   ``cluster`` from the unit scores' outer products (one pass); clusters must lie within
   partitions.

The result is an :class:`~bayesfmm.results.MLResults` (:class:`DaskMLResults`) whose
``predict(ddf)`` returns a Dask object. Passes over the data are counted in
``res.passes``. See docs/scale.md.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from bayesfmm.criteria import information_criteria
from bayesfmm.design import _model_variables
from bayesfmm.errors import SpecificationError
from bayesfmm.frame import factor_variables
from bayesfmm.iterlog import IterationLog
from bayesfmm.ml.dask_newton import em_passes_on, newton_on, partition_covariance
from bayesfmm.ml.fit import _newton_options, _resolve_vce, fit_ml
from bayesfmm.ml.partitions import (
    check_units_within_partitions,
    first_pass,
    is_dask_frame,
    part_counts,
    partition_problem,
    plain_strings,
    tree_sum,
)
from bayesfmm.results import MLResults
from bayesfmm.spec import ModelSpec

__all__ = ["fit_dask", "DaskMLResults", "is_dask_frame"]

@dataclass(frozen=True, eq=False, repr=False)
class DaskMLResults(MLResults):
    """:class:`~bayesfmm.results.MLResults` of a fit on a Dask DataFrame.

    Everything computed from the estimates and their covariance (``params``, ``bse``,
    ``summary()``, ``test()``, ``lincom()``, ``aic``, ``bic``, ``lcprob()`` without
    class-model covariates) is as for an in-memory fit. ``problem`` is the start sample's
    (it carries the encoding); ``nobs`` counts every row. ``predict(ddf)`` returns a Dask
    DataFrame (or Series with ``marginal=True``); in-sample statistics need the data passed
    again (``res.predict(ddf)``, ``res.clusters(ddf)``).
    """

    n_rows: int = 0
    n_total: int = 0  # Stata's N: rows, or the sum of frequency weights
    npartitions: int = 0
    n_dropped: int = 0
    passes: int = 0  # passes over the partitions the fit took

    @property
    def nobs(self) -> int:
        return self.n_total

    def predict(self, data: Any = None, kind: str = "mu", marginal: bool = False, equation: str | None = None):
        """Predictions as :meth:`MLResults.predict`; on a Dask DataFrame, a lazy Dask object
        computed partition by partition on the workers."""
        if data is None:
            raise SpecificationError(
                "a fit on a Dask DataFrame keeps no rows: pass the data again, res.predict(ddf, kind=...)"
            )
        if not is_dask_frame(data):
            return MLResults.predict(self, data, kind=kind, marginal=marginal, equation=equation)
        with warnings.catch_warnings():  # a first partition of fewer than 5 rows is enough
            warnings.simplefilter("ignore", UserWarning)
            head = plain_strings(data.head(5, npartitions=1))
        meta = MLResults.predict(self, head, kind=kind, marginal=marginal, equation=equation).iloc[:0]
        return data.map_partitions(_predict_partition, self, kind, marginal, equation, meta=meta)

    @property
    def fittedvalues(self):  # type: ignore[override]
        raise SpecificationError("a fit on a Dask DataFrame keeps no rows: use res.predict(ddf, kind='mu', marginal=True)")

    @property
    def resid(self):  # type: ignore[override]
        raise SpecificationError("a fit on a Dask DataFrame keeps no rows: compute y - res.predict(ddf, marginal=True)")

    def ic(self) -> pd.Series:
        """llf, df, nobs, AIC, AICc, BIC, CAIC (ICL and the entropy need the posterior
        probabilities of every row: NaN here)."""
        values = {"llf": self.llf, "df": self.df_model, "nobs": self.nobs}
        values.update(information_criteria(self.llf, self.df_model, self.nobs))
        return pd.Series(values, dtype=float)

    def __repr__(self) -> str:
        return (
            f"<MLResults (Dask, {self.npartitions} partitions) k={self.k} nobs={self.nobs} llf={self.llf:.4f} "
            f"converged={self.converged} df={self.df_model}>"
        )


def _predict_partition(part: pd.DataFrame, res: DaskMLResults, kind: str, marginal: bool, equation: str | None):
    return MLResults.predict(res, plain_strings(part), kind=kind, marginal=marginal, equation=equation)


REFUSED = {
    "survey": "survey designs are fitted in memory (the linearized variance needs every PSU's scores at once)",
    "subpop": "survey designs are fitted in memory",
    "noestimate": "noestimate=True: fit the sample in memory (res = model.fit(ddf.sample(...).compute(), noestimate=True))",
    "search": "search= runs in memory: search the sample, then pass its best fit's params as from_=",
}


def _start_fit(spec: ModelSpec, frame: pd.DataFrame, options: Mapping[str, Any], from_: Any) -> MLResults:
    """The in-memory fit of the sample: the start values and the encoding."""
    opts = dict(options)
    if from_ is not None:
        opts["from_"] = from_
    return fit_ml(spec, frame, vce="oim", **opts)


def _sample_and_levels(spec: ModelSpec, ddf: Any, sample_rows: int, seed: int, units: list[str]):
    """The first pass: rows per partition, the sample frame (with every factor level),
    and each partition's group and cluster values."""
    import dask
    from pandas.api.types import is_numeric_dtype

    variables = _model_variables(spec)
    formulas = [c.formula for c in spec.components] + [f for f in [spec.lcprob] if f]
    wrapped = {v for f in formulas for v in factor_variables(f)}
    meta = ddf._meta
    factors = [v for v in variables if v in meta.columns and (v in wrapped or not is_numeric_dtype(meta[v].dtype))]
    take = max(1, math.ceil(sample_rows / ddf.npartitions))
    tasks = [dask.delayed(first_pass)(p, i, take, seed, factors, units) for i, p in enumerate(ddf.to_delayed())]
    out = dask.compute(*tasks)
    for column, what in zip(units, ("group" if spec.group else "cluster", "cluster")):
        check_units_within_partitions([o[3] for o in out], column, what)
    frame = pd.concat([o[1] for o in out] + [o[2] for o in out], ignore_index=True)
    return frame, sum(o[0] for o in out)


def fit_dask(
    spec: ModelSpec,
    ddf: Any,
    *,
    startvalues: Any = "default",
    draws: int = 1,
    seed: int | None = None,
    from_: pd.Series | None = None,
    emopts: Mapping[str, Any] | None = None,
    em_passes: int = 0,
    iterate: int = 300,
    tolerance: float = 1e-6,
    ltolerance: float = 1e-7,
    nrtolerance: float = 1e-5,
    difficult: bool = False,
    vce: str | None = None,
    cluster: str | None = None,
    sample_rows: int = 20_000,
    persist: bool = True,
    split_every: int = 8,
    log: bool = False,
    progress: bool | None = None,
    executor: Any = None,
    **unknown: Any,
) -> DaskMLResults:
    """Fit ``spec`` by maximum likelihood to a Dask DataFrame (``FMM.fit(ddf)`` calls this).

    Parameters
    ----------
    spec, ddf
        The model and the data (a ``dask.dataframe.DataFrame``).
    startvalues, draws, seed, from_, emopts, executor
        Options of the in-memory fit of the sample that gives the start (see
        :func:`~bayesfmm.ml.fit.fit_ml`); ``seed`` also seeds the sample.
    em_passes
        EM iterations on the whole data before Newton (each one pass over the data).
    iterate, tolerance, ltolerance, nrtolerance, difficult
        Newton's options and Stata's convergence criteria, as for ``fit``.
    vce, cluster
        ``"oim"`` (default), ``"opg"``, ``"robust"`` or ``"cluster"`` (whose clusters must
        each lie within one partition).
    sample_rows
        Rows of the start sample (drawn evenly from the partitions).
    persist
        Keep each partition's design in the workers' memory across iterations (default);
        ``False`` rebuilds it from the (lazy) data at every pass, for data larger than the
        cluster's memory.
    split_every
        Fan-in of the tree that adds the partitions' shares.
    log, progress
        The iteration log; a progress bar over the sample fit's starts.

    Returns
    -------
    DaskMLResults

    Examples
    --------
    >>> import bayesfmm as bf
    >>> import dask.dataframe as dd  # doctest: +SKIP
    >>> stamp = bf.datasets.load("stamp")
    >>> ddf = dd.from_pandas(stamp, npartitions=4)  # doctest: +SKIP
    >>> res = bf.FMM("thickness ~ 1", k=3).fit(ddf)  # doctest: +SKIP
    >>> round(res.llf, 3), res.nobs  # doctest: +SKIP
    (1518.848, 485)
    """
    import dask

    if unknown:
        refused = [f"{name}: {REFUSED[name]}" for name in unknown if name in REFUSED]
        raise SpecificationError(
            "fit() on a Dask DataFrame does not take " + ", ".join(sorted(unknown)) + ("; " + "; ".join(refused) if refused else "")
        )
    vce = _resolve_vce(vce, cluster, spec)
    newton_options = _newton_options(iterate, tolerance, ltolerance, nrtolerance, difficult)
    units = [c for c in (spec.group, cluster if vce == "cluster" else None) if c is not None]
    frame, _ = _sample_and_levels(spec, ddf, sample_rows, 0 if seed is None else int(seed), units)
    start_options = dict(startvalues=startvalues, draws=draws, seed=seed, emopts=emopts, progress=progress, executor=executor)
    start = _start_fit(spec, frame, start_options, from_)
    template, layout = start.problem.design, start.problem.layout
    parts = [dask.delayed(partition_problem)(template, layout, p, cluster if vce == "cluster" else None)
             for p in ddf.to_delayed()]
    if persist:
        parts = list(dask.persist(*parts))
    n_rows, n_total, n_dropped = tree_sum(parts, part_counts, split_every=split_every)
    passes = 2  # the first pass, and building the designs (with the counts)
    iterlog = IterationLog(echo=log)
    iterlog.write(f"Start values from a sample of {len(frame)} of {n_rows + n_dropped} rows; llf (sample) = {start.llf:.8g}")
    theta, used = em_passes_on(parts, start.theta, layout.transform, em_passes, iterlog, split_every)
    result, newton_passes = newton_on(parts, theta, layout, newton_options, iterlog, split_every)
    cov, note, cov_passes, n_clusters = partition_covariance(parts, result, layout, vce, split_every)
    return DaskMLResults(
        problem=start.problem, theta=result.theta, cov_theta=cov, llf=result.llf, converged=result.converged,
        iterations=result.iterations, vce=vce, vce_note=note, starts=start.starts, iteration_log=iterlog,
        gradient=result.gradient, hessian=result.hessian,
        n_clusters=n_clusters, cluster=cluster if vce == "cluster" else None,
        n_rows=int(n_rows), n_total=int(n_total), npartitions=ddf.npartitions, n_dropped=int(n_dropped),
        passes=passes + used + newton_passes + cov_passes,
    )
