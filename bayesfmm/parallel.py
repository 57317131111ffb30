"""Run independent fits in worker processes, with a progress bar.

Used by :func:`bayesfmm.select` and :func:`bayesfmm.bootstrap_lrt`. The design choices:

* **Processes, not threads**: the fits are numpy-heavy Python loops that hold the GIL.
  ``n_jobs=None`` uses every CPU this process may run on; ``n_jobs=1`` runs in this
  process, with the same task functions and seeds, so both give identical results.
* **Single-threaded BLAS in the workers** (``n`` workers each running a multi-threaded
  BLAS would oversubscribe the cores): the ``OMP/OPENBLAS/MKL/..._NUM_THREADS`` variables
  are set to 1 in the environment the workers start with (effective under the ``spawn``
  and ``forkserver`` start methods, where the worker imports numpy afresh), and the worker
  initializer calls ``threadpoolctl.threadpool_limits(1)`` (effective under ``fork`` too).
  The serial path limits BLAS to one thread for its duration as well, so that the
  floating-point results do not depend on ``n_jobs``.
* **Spawn-safe**: task functions live at module level and take picklable arguments. Models
  (:class:`~bayesfmm.FMM`) and results travel as themselves: they pickle, families as their
  registry name and options. A family the user registered with a builder defined at module
  level travels with the model (the builder by reference) and is registered in the worker
  when the model is unpickled there, so a family registered in a script also works under
  ``spawn``.
* **Any executor**: ``executor=`` (a ``concurrent.futures.Executor`` or a Dask ``Client``)
  replaces the local pool (:mod:`bayesfmm.tasks`; docs/scale.md), with the same tasks and
  seeds, so the results are those of ``n_jobs=1``.
* **Failures kept apart**: a task that raises or is lost with its worker is named in a
  :class:`~bayesfmm.tasks.TaskError` raised after the others finished, which carries their
  results.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterator, Sequence

from bayesfmm.errors import SpecificationError
from bayesfmm.tasks import TaskError, run_on_executor, run_serially

__all__ = ["resolve_n_jobs", "run_tasks", "TaskError"]

BLAS_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware where the platform says)."""
    if hasattr(os, "process_cpu_count"):  # Python >= 3.13
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def resolve_n_jobs(n_jobs: int | None, n_tasks: int) -> int:
    """Worker count: ``None`` or ``-1`` = every available CPU; never more than the tasks."""
    if n_jobs is None or n_jobs == -1:
        n_jobs = available_cpus()
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise SpecificationError(f"n_jobs must be a positive integer, -1 or None, got {n_jobs!r}")
    return max(1, min(n_jobs, n_tasks))


# -- workers ----------------------------------------------------------------

_BLAS_LIMIT: Any = None


def _single_blas_worker() -> None:
    """Worker initializer: single-threaded BLAS for the worker's lifetime."""
    global _BLAS_LIMIT
    for name in BLAS_VARIABLES:
        os.environ[name] = "1"
    try:
        from threadpoolctl import threadpool_limits

        _BLAS_LIMIT = threadpool_limits(limits=1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with pymc
        pass


@contextlib.contextmanager
def _single_blas_environment() -> Iterator[None]:
    """BLAS thread variables set to 1 for processes started inside the block."""
    saved = {name: os.environ.get(name) for name in BLAS_VARIABLES}
    os.environ.update({name: "1" for name in BLAS_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_tasks(
    function: Callable[..., Any],
    tasks: Sequence[tuple],
    *,
    n_jobs: int | None = None,
    progress: bool | None = None,
    description: str = "fitting",
    start_method: str | None = None,
    cost: Sequence[float] | None = None,
    executor: Any = None,
    labels: Sequence[str] | None = None,
) -> list[Any]:
    """``[function(*task) for task in tasks]``, in worker processes unless ``n_jobs == 1``.

    Results come back in task order whatever order the workers finish in. Every task runs
    to its end; when some raised (or were lost with their worker), a
    :class:`~bayesfmm.tasks.TaskError` then names them by their ``labels`` and carries the
    results of the others.

    Parameters
    ----------
    function
        A module-level function (picklable by reference).
    tasks
        Argument tuples, each picklable (models and results are).
    n_jobs
        Worker processes; ``None`` or ``-1``: every available CPU; ``1``: this process.
        Ignored when ``executor`` is given.
    progress
        Show a rich progress bar over the tasks; ``None``: when stderr is a terminal.
    start_method
        ``"fork"``, ``"spawn"`` or ``"forkserver"``; ``None``: the platform's default.
    cost
        Expected relative cost of each task: the workers take the costliest first, so that
        a long task does not start last and leave the other workers idle (the results and
        their order do not depend on it).
    executor
        Any ``concurrent.futures.Executor`` or a Dask ``Client`` to run the tasks on
        instead of a process pool of this machine (see :mod:`bayesfmm.tasks`).
    labels
        What to call each task in an error message.
    """
    import multiprocessing

    order = None if cost is None else sorted(range(len(tasks)), key=lambda i: -cost[i])
    if executor is not None:
        return run_on_executor(
            function, tasks, executor, labels=labels, progress=progress, description=description, order=order
        )
    if start_method is not None and start_method not in multiprocessing.get_all_start_methods():
        raise SpecificationError(
            f"start_method={start_method!r} is not available here; choose from "
            f"{', '.join(multiprocessing.get_all_start_methods())} or None"
        )
    workers = resolve_n_jobs(n_jobs, len(tasks))
    if workers == 1:
        return run_serially(function, tasks, labels=labels, progress=progress, description=description)
    context = multiprocessing.get_context(start_method)
    # workers may start at any submit (spawn starts them on demand): keep the variables
    # set until every task is submitted and done
    with _single_blas_environment():
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_single_blas_worker)
        try:
            results = run_on_executor(
                function, tasks, pool, labels=labels, progress=progress, description=description, order=order
            )
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return results
