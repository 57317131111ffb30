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
* **Spawn-safe**: task functions live at module level and take picklable arguments. A
  model (:class:`~bayesfmm.FMM`) travels as the arguments that rebuild it
  (:func:`spec_state`, :func:`spec_from_state`); families registered by the user travel
  with the worker initializer when their builder can be pickled (a function defined at
  module level), so a family registered in a script also works under ``spawn``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator, Sequence

from bayesfmm.errors import SpecificationError
from bayesfmm.spec import FMM, Component

__all__ = ["resolve_n_jobs", "run_tasks", "spec_state", "spec_from_state", "show_progress"]

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


def show_progress(progress: bool | None) -> bool:
    """``progress=None`` shows a bar when standard error is a terminal."""
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


# -- models across processes ------------------------------------------------


def _component_state(comp: Component) -> tuple:
    return (comp.formula, comp.family_name, comp.lcprob, comp.offset, comp.exposure, dict(comp.options))


def spec_state(spec: FMM) -> Any:
    """A picklable description of ``spec`` that :func:`spec_from_state` rebuilds.

    The spec itself when it pickles; otherwise (``Component.options`` is a read-only
    mapping proxy, which pickle refuses) the constructor arguments, checked to rebuild an
    equal model.
    """
    try:
        pickle.dumps(spec)
        return spec
    except Exception:  # noqa: BLE001 - any pickling failure means: send the arguments
        pass
    state = (
        "FMM",
        tuple(_component_state(c) for c in spec.components),
        None if spec.hybrid else spec.k,
        spec.structure_options(),
    )
    try:
        rebuilt = spec_from_state(state)
        pickle.dumps(state)
    except Exception as exc:  # noqa: BLE001
        raise SpecificationError(
            f"this model cannot be sent to worker processes ({exc}); run with n_jobs=1"
        ) from None
    if rebuilt != spec:
        raise SpecificationError("this model cannot be sent to worker processes; run with n_jobs=1")
    return state


def spec_from_state(state: Any) -> FMM:
    """Rebuild a model from :func:`spec_state`."""
    if isinstance(state, FMM):
        return state
    _, components, k, options = state
    comps = [
        Component(formula, family, lcprob=lcprob, offset=offset, exposure=exposure, **opts)
        for formula, family, lcprob, offset, exposure, opts in components
    ]
    return FMM(comps, k=k, **options)


def _family_builders(specs: Sequence[FMM]) -> dict[str, Callable]:
    """Builders of user-registered families the models use, when they pickle."""
    from bayesfmm.families import registry

    out = {}
    for spec in specs:
        for comp in spec.components:
            builder = registry._BUILDERS.get(comp.family_name)
            if builder is None or getattr(builder, "__module__", "").startswith("bayesfmm."):
                continue
            try:
                pickle.dumps(builder)
            except Exception:  # noqa: BLE001 - a lambda: the worker must inherit it (fork)
                continue
            out[comp.family_name] = builder
    return out


# -- workers ----------------------------------------------------------------

_BLAS_LIMIT: Any = None


def _init_worker(builders: dict[str, Callable]) -> None:
    """Worker initializer: single-threaded BLAS, and the user's families registered."""
    global _BLAS_LIMIT
    for name in BLAS_VARIABLES:
        os.environ[name] = "1"
    try:
        from threadpoolctl import threadpool_limits

        _BLAS_LIMIT = threadpool_limits(limits=1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with pymc
        pass
    from bayesfmm.families import registry

    for name, builder in builders.items():
        if name not in registry._BUILDERS:
            registry.register_family(name, builder)


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


@contextlib.contextmanager
def _single_blas_here() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1):
        yield


@contextlib.contextmanager
def _progress_bar(show: bool, total: int, description: str):
    if not show:
        yield lambda: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def run_tasks(
    function: Callable[..., Any],
    tasks: Sequence[tuple],
    *,
    n_jobs: int | None = None,
    progress: bool | None = None,
    description: str = "fitting",
    specs: Sequence[FMM] = (),
    start_method: str | None = None,
    cost: Sequence[float] | None = None,
) -> list[Any]:
    """``[function(*task) for task in tasks]``, in worker processes unless ``n_jobs == 1``.

    Results come back in task order whatever order the workers finish in. An exception in
    a task cancels the tasks not yet started and is raised here.

    Parameters
    ----------
    function
        A module-level function (picklable by reference).
    tasks
        Argument tuples, each picklable.
    n_jobs
        Worker processes; ``None`` or ``-1``: every available CPU; ``1``: this process.
    progress
        Show a rich progress bar over the tasks; ``None``: when stderr is a terminal.
    specs
        Models whose user-registered families the workers need.
    start_method
        ``"fork"``, ``"spawn"`` or ``"forkserver"``; ``None``: the platform's default.
    cost
        Expected relative cost of each task: the workers take the costliest first, so that
        a long task does not start last and leave the other workers idle (the results and
        their order do not depend on it).
    """
    import multiprocessing

    if start_method is not None and start_method not in multiprocessing.get_all_start_methods():
        raise SpecificationError(
            f"start_method={start_method!r} is not available here; choose from "
            f"{', '.join(multiprocessing.get_all_start_methods())} or None"
        )
    workers = resolve_n_jobs(n_jobs, len(tasks))
    show = show_progress(progress)
    if workers == 1:
        results = []
        with _single_blas_here(), _progress_bar(show, len(tasks), description) as advance:
            for task in tasks:
                results.append(function(*task))
                advance()
        return results
    context = multiprocessing.get_context(start_method)
    results: list[Any] = [None] * len(tasks)
    # workers may start at any submit (spawn starts them on demand): keep the variables
    # set until every task is submitted and done
    with _single_blas_environment():
        executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(_family_builders(specs),),
        )
        try:
            # submit (and so start every worker) before the progress bar starts its thread:
            # a fork must not copy a thread that may hold a lock
            order = range(len(tasks)) if cost is None else sorted(range(len(tasks)), key=lambda i: -cost[i])
            futures = {executor.submit(function, *tasks[i]): i for i in order}
            with _progress_bar(show, len(tasks), description) as advance:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        results[futures[future]] = future.result()  # raises a task's exception
                        advance()
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        executor.shutdown(wait=True)
    return results
