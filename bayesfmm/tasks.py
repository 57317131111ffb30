"""Independent tasks on any ``concurrent.futures.Executor``, a Dask ``Client`` included.

The many-fits operations (:func:`bayesfmm.select`, :func:`bayesfmm.bootstrap_lrt`, the
random starts of :meth:`bayesfmm.FMM.fit`, :func:`bayesfmm.sbc`) hand their tasks to
:func:`run_on_executor` when given ``executor=``:

* **any executor**: a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor``, Dask's
  ``client.get_executor()``, or a Dask ``Client`` itself (its executor is taken, with
  ``pure=False``), so the same call runs on a laptop or on a cluster by address;
* **identical results**: every task runs with single-threaded BLAS (as the serial path
  does) and draws from its own seed, so the results do not depend on where it ran;
* **progress as tasks finish**: a bar advanced in completion order;
* **failures kept apart**: a task that raises (or is lost with its worker) does not lose
  the others: every task runs to its end, then :class:`TaskError` names each failed task
  by its label (``k=3 start=2 seed=...``, ``replicate 17``) and carries the results of the
  others (``.results``, ``None`` where a task failed);
* **shared inputs sent once** to a Dask cluster: an object given to several tasks (the
  data frame, the model) is scattered to every worker once instead of travelling with each
  task; a copy on every worker means a lost worker does not lose it.

This module sits at the bottom of the package (it imports no model code), so every layer
may use it. Dask is optional: it is never imported here.
"""

from __future__ import annotations

import contextlib
import numbers
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Any, Callable, Iterator, Sequence

from bayesfmm.errors import SpecificationError
from bayesfmm.progress import progress_bar, show_progress

__all__ = ["TaskError", "resolve_executor", "run_on_executor", "run_serially", "single_blas_call"]

# Exceptions that say a task was lost with its worker rather than failed in it.
LOST = ("KilledWorker", "BrokenProcessPool", "CancelledError", "FutureCancelledError", "CommClosedError")


class TaskError(RuntimeError):
    """Some tasks of a parallel run failed; the results of the others are kept.

    Attributes
    ----------
    results : list
        One entry per task, in task order: its result, or ``None`` where it failed.
    failures : list of (int, str, BaseException)
        ``(task index, label, exception)`` of each failed task.

    Examples
    --------
    >>> err = TaskError([1, None], [(1, "replicate 2", ValueError("bad"))])
    >>> err.failed_labels
    ['replicate 2']
    >>> print(str(err).splitlines()[0])
    1 of 2 tasks failed (the results of the other 1 are in .results):
    """

    def __init__(self, results: list[Any], failures: list[tuple[int, str, BaseException]]) -> None:
        self.results = results
        self.failures = failures
        done = len(results) - len(failures)
        lines = [f"{len(failures)} of {len(results)} tasks failed (the results of the other {done} are in .results):"]
        for _, label, exc in failures[:20]:
            why = "lost with its worker" if is_lost(exc) else "failed"
            lines.append(f"  {label}: {why}: {type(exc).__name__}: {exc}".rstrip())
        if len(failures) > 20:
            lines.append(f"  ... and {len(failures) - 20} more")
        super().__init__("\n".join(lines))

    @property
    def failed_labels(self) -> list[str]:
        return [label for _, label, _ in self.failures]

    @property
    def lost_labels(self) -> list[str]:
        """Labels of the tasks lost with a worker (killed, out of memory, connection lost)."""
        return [label for _, label, exc in self.failures if is_lost(exc)]


def is_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the task's worker died (rather than the task raising)."""
    return any(cls.__name__ in LOST for cls in type(exc).__mro__)


def single_blas_call(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` with BLAS limited to one thread (the serial path's setting), so a
    task's floating-point result does not depend on the worker it ran on."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return function(*args)
    with threadpool_limits(limits=1):
        return function(*args)


def _dask_client(executor: Any) -> Any:
    """The Dask Client behind ``executor`` (a Client or its executor), else None."""
    if hasattr(executor, "get_executor") and hasattr(executor, "scatter"):
        return executor
    client = getattr(executor, "_client", None)
    return client if hasattr(client, "scatter") else None


def resolve_executor(executor: Any) -> Executor:
    """``executor`` as a ``concurrent.futures.Executor``: a Dask ``Client`` gives its
    executor (``pure=False``: equal tasks are not merged)."""
    if isinstance(executor, Executor):
        return executor
    if hasattr(executor, "get_executor") and hasattr(executor, "submit"):
        return executor.get_executor(pure=False)
    raise SpecificationError(
        f"executor must be a concurrent.futures.Executor or a dask.distributed.Client, got {type(executor).__name__}"
    )


_PLAIN = (str, bytes, bool, numbers.Number, type(None))


def _scatter_shared(client: Any, tasks: Sequence[tuple]) -> list[tuple]:
    """Tasks with each object that several tasks share replaced by a future of it,
    scattered once to every worker (``broadcast``: a lost worker does not lose it)."""
    seen: dict[int, int] = {}
    objects: dict[int, Any] = {}
    for task in tasks:
        for arg in task:
            if not isinstance(arg, _PLAIN):
                seen[id(arg)] = seen.get(id(arg), 0) + 1
                objects[id(arg)] = arg
    shared = [key for key, count in seen.items() if count > 1]
    if not shared:
        return list(tasks)
    futures = client.scatter([objects[key] for key in shared], broadcast=True, hash=False)
    replace = dict(zip(shared, futures))
    return [tuple(replace.get(id(arg), arg) if not isinstance(arg, _PLAIN) else arg for arg in task) for task in tasks]


def _labels(labels: Sequence[str] | None, n: int) -> list[str]:
    return [f"task {i + 1}" for i in range(n)] if labels is None else [str(label) for label in labels]


def run_serially(
    function: Callable[..., Any],
    tasks: Sequence[tuple],
    *,
    labels: Sequence[str] | None = None,
    progress: bool | None = None,
    description: str = "fitting",
) -> list[Any]:
    """``[function(*task) for task in tasks]`` in this process, single-threaded BLAS; a
    task that raises is reported by :class:`TaskError` after the others ran.

    Examples
    --------
    >>> run_serially(pow, [(2, 3), (3, 2)], progress=False)
    [8, 9]
    """
    names = _labels(labels, len(tasks))
    results: list[Any] = []
    failures: list[tuple[int, str, BaseException]] = []
    with progress_bar(show_progress(progress), len(tasks), description) as advance:
        for i, task in enumerate(tasks):
            try:
                results.append(single_blas_call(function, *task))
            except Exception as exc:  # reported with the others' results below
                results.append(None)
                failures.append((i, names[i], exc))
            advance()
    if failures:
        raise TaskError(results, failures) from failures[0][2]
    return results


@contextlib.contextmanager
def _cancel_on_exit(futures: dict[Future, int]) -> Iterator[None]:
    try:
        yield
    except BaseException:  # an interrupt: do not leave tasks running on the cluster
        for future in futures:
            future.cancel()
        raise


def run_on_executor(
    function: Callable[..., Any],
    tasks: Sequence[tuple],
    executor: Any,
    *,
    labels: Sequence[str] | None = None,
    progress: bool | None = None,
    description: str = "fitting",
    order: Sequence[int] | None = None,
) -> list[Any]:
    """``[function(*task) for task in tasks]`` on ``executor``, results in task order.

    Parameters
    ----------
    function
        A picklable function (module level; a Dask executor also takes closures).
    tasks
        Argument tuples.
    executor
        A ``concurrent.futures.Executor`` or a Dask ``Client``.
    labels
        What to call each task in an error (``"k=3 start=2 seed=123"``).
    progress
        A progress bar advanced as tasks finish; ``None``: when standard error is a terminal.
    order
        The order to submit the tasks in (costliest first keeps the workers busy); the
        results do not depend on it.

    Raises
    ------
    TaskError
        After every task ended, when some failed or were lost with their worker.

    Examples
    --------
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(2) as pool:
    ...     run_on_executor(pow, [(2, 3), (3, 2), (2, 10)], pool, progress=False)
    [8, 9, 1024]
    """
    pool = resolve_executor(executor)
    names = _labels(labels, len(tasks))
    client = _dask_client(executor)
    sent = _scatter_shared(client, tasks) if client is not None and len(tasks) > 1 else list(tasks)
    results: list[Any] = [None] * len(tasks)
    failures: list[tuple[int, str, BaseException]] = []
    futures: dict[Future, int] = {}
    with _cancel_on_exit(futures):
        # submit before the progress bar starts its thread (a fork must not copy it)
        for i in range(len(tasks)) if order is None else order:
            futures[pool.submit(single_blas_call, function, *sent[i])] = i
        with progress_bar(show_progress(progress), len(tasks), description) as advance:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = futures[future]
                    try:
                        results[i] = future.result()
                    except BaseException as exc:  # noqa: B036 - a lost task's CancelledError is a BaseException
                        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                            raise
                        failures.append((i, names[i], exc))
                    advance()
    if failures:
        failures.sort(key=lambda f: f[0])
        raise TaskError(results, failures) from failures[0][2]
    return results
