"""The ML fit on a Dask cluster: throughput per iteration, and a fit larger than a worker.

One run on a ``distributed.LocalCluster`` of 2 worker processes (1 thread each):

1. **Rows per second per iteration**, Dask against in memory, for the gaussian k = 3
   regression with a class-model covariate (``y ~ x``, ``lcprob="~ z"``) on ``--rows``
   rows: an *EM iteration* (in memory: :func:`bayesfmm.ml.em.em` for one iteration, the
   E-step and the full M-step; on Dask: one pass of the E-step and the M-step's statistics,
   :func:`~bayesfmm.ml.partitions.part_em`) and a *Newton iteration* (the exact score and
   Hessian plus one log likelihood for the line search; on Dask two passes over the
   persisted partitions). Both time the median of ``--repeats`` runs.
2. **A fit larger than a worker's memory**: ``--big-rows`` rows generated on the workers
   (``dd.from_map``; never collected), the workers' memory limit (``--memory-limit``)
   below the data's size, ``persist=False`` (each pass regenerates and re-encodes a
   partition and lets it go). Reports the fit's time, passes and llf, the data's size and
   each worker's peak memory (resident set size, polled every 0.2 s).

Run: ``.venv/bin/python benchmarks/bench_dask.py`` (the issue's sizes: ``--rows 2e6
--big-rows 2e8``; on the shared 2-core development machine use ``--rows 1e6 --big-rows 2e7``,
a few minutes). Writes ``benchmarks/results/bench_dask.csv``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmark the working tree even without an install

import bayesfmm as bf  # noqa: E402
from bayesfmm.design import build_design  # noqa: E402
from bayesfmm.iterlog import IterationLog  # noqa: E402
from bayesfmm.likelihood import MixtureProblem, loglike, score_hessian  # noqa: E402
from bayesfmm.ml.em import EMOptions, em  # noqa: E402
from bayesfmm.ml.partitions import part_em, part_loglike, part_score_hessian, partition_problem, tree_sum  # noqa: E402
from bayesfmm.ml.start import one_class_fit  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "bench_dask.csv"
MODEL = bf.FMM("y ~ x", k=3, lcprob="~ z")


def gaussian_partition(seed: int, n: int = 1_000_000) -> pd.DataFrame:
    """``n`` rows of the k = 3 regression with a class covariate, from ``seed``."""
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    logits = np.c_[np.zeros(n), 0.5 + 1.0 * z, -0.5 - 0.8 * z]
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    cls = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    y = np.array([-3.0, 0.0, 3.0])[cls] + np.array([1.0, -1.0, 0.5])[cls] * x
    y += np.array([1.0, 0.7, 1.3])[cls] * rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "z": z})


def _median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput(client, rows: int, partitions: int, repeats: int) -> list[dict]:
    """Rows/s of one EM and one Newton iteration, in memory and on the cluster."""
    import dask
    import dask.dataframe as dd

    data = gaussian_partition(7, rows)
    fit = MODEL.fit(data.sample(50_000, random_state=1))
    theta, layout = fit.theta, fit.problem.layout
    problem = MixtureProblem.build(build_design(MODEL, data), layout)  # the whole data's problem
    reference = layout.to_report(one_class_fit(problem))  # what a collapse is judged against, as fit() does
    memory = {
        "EM": _median_time(lambda: em(problem, theta, EMOptions(iterate=1), reference, IterationLog(), 1e-8), repeats),
        "Newton": _median_time(lambda: (score_hessian(problem, theta), loglike(problem, theta)), repeats),
    }
    ddf = dd.from_pandas(data, npartitions=partitions)
    parts = [dask.delayed(partition_problem)(fit.problem.design, layout, p, None) for p in ddf.to_delayed()]
    parts = list(dask.persist(*parts))
    tree_sum(parts, part_loglike, theta)  # warm the workers
    on_dask = {
        "EM": _median_time(lambda: tree_sum(parts, part_em, theta), repeats),
        "Newton": _median_time(lambda: (tree_sum(parts, part_score_hessian, theta), tree_sum(parts, part_loglike, theta)), repeats),
    }

    return [
        {"case": f"{kind} iteration", "rows": rows, "where": where, "seconds": round(t, 3), "rows_per_s": round(rows / t)}
        for kind in ("EM", "Newton")
        for where, t in (("in memory", memory[kind]), (f"dask, 2 workers, {partitions} partitions", on_dask[kind]))
    ]


def _poll_memory(client, peaks: dict, stop: threading.Event) -> None:
    import psutil

    def rss() -> int:
        return psutil.Process().memory_info().rss

    while not stop.is_set():
        try:
            for worker, value in client.run(rss).items():
                peaks[worker] = max(peaks.get(worker, 0), value)
        except Exception:  # a worker restarting: poll again
            pass
        stop.wait(0.2)


def big_fit(client, rows: int, partition_rows: int, memory_limit: str) -> dict:
    """A fit of ``rows`` rows generated on the workers, never held whole anywhere."""
    import dask.dataframe as dd

    n_parts = max(1, rows // partition_rows)
    ddf = dd.from_map(gaussian_partition, range(1000, 1000 + n_parts), n=partition_rows)
    peaks: dict = {}
    stop = threading.Event()
    poller = threading.Thread(target=_poll_memory, args=(client, peaks, stop), daemon=True)
    poller.start()
    start = time.perf_counter()
    res = MODEL.fit(ddf, persist=False, sample_rows=50_000)
    seconds = time.perf_counter() - start
    stop.set()
    poller.join()
    data_mb = n_parts * partition_rows * 3 * 8 / 2**20
    return {
        "case": "fit, generated on the workers", "rows": n_parts * partition_rows, "where": f"dask, 2 workers, {n_parts} partitions",
        "seconds": round(seconds, 1), "rows_per_s": round(n_parts * partition_rows * res.passes / seconds),
        "passes": res.passes, "llf": round(res.llf, 3), "converged": res.converged,
        "data_MiB": round(data_mb), "memory_limit": memory_limit,
        "peak_MiB_per_worker": " / ".join(str(round(v / 2**20)) for v in peaks.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--big-rows", type=float, default=2e7)
    parser.add_argument("--partition-rows", type=float, default=1e6)
    parser.add_argument("--memory-limit", default="400MiB")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=args.memory_limit,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        rows = throughput(client, int(args.rows), args.partitions, args.repeats) if args.rows > 0 else []
        if args.big_rows > 0:
            rows.append(big_fit(client, int(args.big_rows), int(args.partition_rows), args.memory_limit))
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table.columns))
        writer.writeheader()
        writer.writerows(table.to_dict("records"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
