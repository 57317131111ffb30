"""EM from several random starts on an executor: ``fit(..., draws=20, executor=client)``.

The start points are drawn here, in order, from the fit's seed (as the serial loop draws
them); each EM run is a task (:mod:`bayesfmm.tasks`) that returns its result and its
iteration-log lines, which are written to the fit's log in start order. So the fit, its
start report and its log equal the serial run's, whatever executor ran the starts.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from bayesfmm.iterlog import IterationLog
from bayesfmm.likelihood import MixtureProblem
from bayesfmm.ml.em import EMOptions, EMResult, em
from bayesfmm.tasks import run_on_executor

__all__ = ["em_start", "em_from_starts"]


def em_start(
    problem: MixtureProblem, theta0: np.ndarray, options: EMOptions, reference: Any, collapse_tol: float
) -> tuple[EMResult, list[str]]:
    """EM from one start (a task): the result, without its per-row evaluation (not sent
    back), and the lines it logged."""
    log = IterationLog()
    result = em(problem, theta0, options, reference, log, collapse_tol)
    return dataclasses.replace(result, evaluation=None), log.lines


def em_from_starts(
    problem: MixtureProblem,
    points: Sequence[np.ndarray],
    options: EMOptions,
    reference: Any,
    iterlog: IterationLog,
    collapse_tol: float,
    executor: Any,
    progress: bool,
    seed: int | None = None,
) -> list[EMResult]:
    """EM from each of ``points`` (already projected) on ``executor``, in start order.

    Examples
    --------
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> import bayesfmm as bf
    >>> with ThreadPoolExecutor(2) as pool:
    ...     res = bf.FMM("thickness ~ 1", k=2).fit(bf.datasets.load("stamp"), startvalues="randompr",
    ...                                            draws=4, seed=1, executor=pool)
    >>> res.starts.draws
    4
    """
    tasks = [(problem, theta0, options, reference, collapse_tol) for theta0 in points]
    labels = [f"start {i + 1} (seed={seed})" for i in range(len(tasks))]
    out = run_on_executor(em_start, tasks, executor, labels=labels, progress=progress,
                          description=f"EM from {len(tasks)} starts")
    runs = []
    for result, lines in out:
        iterlog.write("")
        for line in lines:
            iterlog.write(line)
        runs.append(result)
    return runs
