"""``executor=`` for the many-fits operations: any concurrent.futures.Executor or a Dask Client
gives the serial results exactly; failed and lost tasks are named, the others kept.

The Dask tests start and close their own ``distributed.LocalCluster``: threads in the quick
suite, processes (with a worker killed mid-run) in the slow tests. They skip when the
``bayesfmm[dask]`` extra is not installed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm import tasks as tasks_module
from bayesfmm.bayes.sbc_core import run_sbc
from bayesfmm.parallel import run_tasks
from bayesfmm.tasks import TaskError, run_on_executor

MODEL = bf.FMM("y ~ x2 + x1", k=1)


@pytest.fixture(scope="module")
def nregfix():
    return bf.datasets.load("NregFix")


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as c:
        yield c


def _same_selection(a, b):
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    pd.testing.assert_frame_equal(a.starts, b.starts, check_exact=True)
    assert sorted(a.fits) == sorted(b.fits)
    for k in a.fits:
        np.testing.assert_array_equal(a.fits[k].theta, b.fits[k].theta)
        np.testing.assert_array_equal(a.fits[k].cov_theta, b.fits[k].cov_theta)


def fails_on_three(i: int) -> int:
    if i == 3:
        raise ValueError(f"task {i} is broken")
    return i * i


def slow_square(i: int, seconds: float = 0.0) -> int:
    time.sleep(seconds)
    return i * i


# -- any executor ------------------------------------------------------------------------


def test_select_on_a_thread_pool_equals_serial(nregfix):
    serial = bf.select(MODEL, nregfix, k=[1, 2, 3], nrep=3, seed=7, n_jobs=1)
    with ThreadPoolExecutor(2) as pool:
        threaded = bf.select(MODEL, nregfix, k=[1, 2, 3], nrep=3, seed=7, executor=pool)
    _same_selection(serial, threaded)
    assert serial.best_k("BIC") == 3


def test_failed_task_is_named_and_the_others_kept():
    with ThreadPoolExecutor(2) as pool:
        with pytest.raises(TaskError, match="task 4: failed: ValueError: task 3 is broken") as info:
            run_on_executor(fails_on_three, [(i,) for i in range(6)], pool, progress=False)
    assert info.value.results == [0, 1, 4, None, 16, 25]
    assert info.value.failed_labels == ["task 4"]
    assert info.value.lost_labels == []
    # the serial path reports the same way, with the caller's labels
    with pytest.raises(TaskError, match="k=2 start=3: failed") as info:
        run_tasks(fails_on_three, [(i,) for i in range(5)], n_jobs=1, labels=[f"k=2 start={i}" for i in range(5)])
    assert info.value.results == [0, 1, 4, None, 16]


def test_progress_advances_once_per_finished_task(monkeypatch):
    calls = []

    class Recorder:
        def __init__(self, show, total, description):
            calls.append(("open", total))

        def __enter__(self):
            return lambda: calls.append("advance")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(tasks_module, "progress_bar", Recorder)
    with ThreadPoolExecutor(2) as pool:
        out = run_on_executor(slow_square, [(i, 0.01 * (5 - i)) for i in range(5)], pool, progress=True)
    assert out == [0, 1, 4, 9, 16]
    assert calls == [("open", 5)] + ["advance"] * 5


def test_bad_executor_is_refused(nregfix):
    with pytest.raises(bf.SpecificationError, match="concurrent.futures.Executor or a dask.distributed.Client"):
        bf.select(MODEL, nregfix, k=[1, 2], nrep=2, seed=1, executor="threads")


def test_random_starts_of_fit_on_an_executor_equal_serial():
    stamp = bf.datasets.load("stamp")
    model = bf.FMM("thickness ~ 1", k=3)
    serial = model.fit(stamp, startvalues="randompr", draws=6, seed=3)
    with ThreadPoolExecutor(2) as pool:
        parallel = model.fit(stamp, startvalues="randompr", draws=6, seed=3, executor=pool)
    np.testing.assert_array_equal(serial.theta, parallel.theta)
    assert serial.starts == parallel.starts
    assert str(serial.iteration_log) == str(parallel.iteration_log)
    assert parallel.starts.draws == 6
    assert round(parallel.llf, 3) == 1518.848


def _normal_simulate(rng, replicate):
    mu = rng.normal()
    return {"mu": mu}, rng.normal(mu, 1.0, size=5)


def _normal_fit(y, rng):
    v = 1.0 / (1.0 + len(y))
    return {"mu": rng.normal(v * y.sum(), np.sqrt(v), size=99)}


def test_run_sbc_on_an_executor_equals_serial():
    serial = run_sbc(_normal_simulate, _normal_fit, n_replicates=40, seed=5)
    with ThreadPoolExecutor(2) as pool:
        parallel = run_sbc(_normal_simulate, _normal_fit, n_replicates=40, seed=5, executor=pool)
    pd.testing.assert_frame_equal(serial.ranks, parallel.ranks)
    assert serial.ranks.shape == (40, 1)


# -- a Dask cluster (threads) --------------------------------------------------------------


def test_select_on_dask_equals_serial(nregfix, client):
    serial = bf.select(MODEL, nregfix, k=[1, 2, 3], nrep=3, seed=11, n_jobs=1)
    on_dask = bf.select(MODEL, nregfix, k=[1, 2, 3], nrep=3, seed=11, executor=client)
    _same_selection(serial, on_dask)
    # the client's own executor is accepted too
    again = bf.select(MODEL, nregfix, k=[1, 2, 3], nrep=3, seed=11, executor=client.get_executor())
    _same_selection(serial, again)


def test_bootstrap_lrt_on_dask_equals_serial(client):
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"y": np.r_[rng.normal(-2, 1, 60), rng.normal(2, 1, 60)]})
    model = bf.FMM("y ~ 1", k=1)
    serial = bf.bootstrap_lrt(model, data, k=1, nboot=6, seed=3, nrep=2, n_jobs=1)
    on_dask = bf.bootstrap_lrt(model, data, k=1, nboot=6, seed=3, nrep=2, executor=client)
    np.testing.assert_array_equal(serial.boot_statistics, on_dask.boot_statistics)
    assert serial.statistic == on_dask.statistic and serial.pvalue == on_dask.pvalue
    assert serial.pvalue == pytest.approx(1 / 7)  # a clear two-class sample: no replicate reaches LR_obs


def test_fit_and_sbc_on_dask_equal_serial(client):
    stamp = bf.datasets.load("stamp")
    model = bf.FMM("thickness ~ 1", k=2)
    serial = model.fit(stamp, startvalues="randomid", draws=4, seed=2)
    on_dask = model.fit(stamp, startvalues="randomid", draws=4, seed=2, executor=client)
    np.testing.assert_array_equal(serial.theta, on_dask.theta)
    a = run_sbc(_normal_simulate, _normal_fit, n_replicates=20, seed=9)
    b = run_sbc(_normal_simulate, _normal_fit, n_replicates=20, seed=9, executor=client)
    pd.testing.assert_frame_equal(a.ranks, b.ranks)


def test_failed_task_on_dask_is_named(client):
    with pytest.raises(TaskError, match="replicate 4: failed: ValueError") as info:
        run_tasks(fails_on_three, [(i,) for i in range(5)], executor=client,
                  labels=[f"replicate {i + 1}" for i in range(5)])
    assert info.value.results == [0, 1, 4, None, 16]


# -- processes, a worker killed mid-run (slow) -------------------------------------------------


def _kill_a_worker(client) -> None:
    pids = client.run(os.getpid)
    os.kill(next(iter(pids.values())), signal.SIGKILL)


@pytest.fixture()
def process_cluster_factory():
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file

    def start():
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        return cluster, distributed.Client(cluster)

    yield start
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.slow
def test_killed_worker_still_returns_every_result(nregfix, process_cluster_factory, monkeypatch):
    serial = bf.select(MODEL, nregfix, k=[2, 3, 4], nrep=6, seed=13, n_jobs=1)
    cluster, client = process_cluster_factory()
    killed = []

    class KillOnFirstResult:  # the progress bar's hook: a worker dies once the first start is back
        def __init__(self, show, total, description):
            pass

        def __enter__(self):
            def advance():
                if not killed:
                    _kill_a_worker(client)
                    killed.append(True)
            return advance

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(tasks_module, "progress_bar", KillOnFirstResult)
    try:
        on_dask = bf.select(MODEL, nregfix, k=[2, 3, 4], nrep=6, seed=13, executor=client, progress=True)
    finally:
        client.close()
        cluster.close()
    assert killed == [True]
    _same_selection(serial, on_dask)


@pytest.mark.slow
def test_killed_worker_without_retries_names_the_lost_tasks(process_cluster_factory):
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster, client = process_cluster_factory()
    try:
        client.wait_for_workers(2)
        killer = threading.Timer(1.5, _kill_a_worker, args=(client,))  # while both run their first task
        killer.start()
        with pytest.raises(TaskError, match="lost with its worker: KilledWorker") as info:
            run_tasks(slow_square, [(i, 3.0) for i in range(4)], executor=client,
                      labels=[f"replicate {i + 1}" for i in range(4)])
        killer.join()
    finally:
        client.close()
        cluster.close()
    err = info.value
    # the task(s) the killed worker held (running, or queued behind it), named; the rest kept
    assert 1 <= len(err.lost_labels) <= 2 and all(label.startswith("replicate ") for label in err.lost_labels)
    kept = [i for i, r in enumerate(err.results) if r is not None]
    assert len(kept) == 4 - len(err.lost_labels) and all(err.results[i] == i * i for i in kept)
