"""Progress bars on long work (start draws, model selection, bootstrap, SBC), one helper set.

A bar shows on standard error when asked (``progress=True``), or by default when standard
error is a terminal; it is transient (gone when the work ends). rich is imported only when a
bar is shown.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["show_progress", "track", "progress_bar"]

T = TypeVar("T")


def show_progress(progress: bool | None, default: bool = True) -> bool:
    """Whether to show a bar: as asked, or (``None``) when ``default`` holds and standard
    error is a terminal.

    Examples
    --------
    >>> show_progress(False), show_progress(True)
    (False, True)
    """
    if progress is None:
        # a replaced stderr (a notebook's, a test's) may have no isatty
        return bool(default) and bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


def track(items: Iterable[T], show: bool, description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items``, with a transient rich progress bar when ``show``.

    Examples
    --------
    >>> list(track(range(3), show=False, description="work"))
    [0, 1, 2]
    """
    if not show:
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, total=total, transient=True)


@contextmanager
def progress_bar(show: bool, total: int, description: str) -> Iterator[Callable[[], Any]]:
    """A bar advanced by hand, for work that finishes out of order (parallel tasks): yields
    ``advance()``, a no-op when not ``show``.

    Examples
    --------
    >>> with progress_bar(False, 3, "fits") as advance:
    ...     advance()
    """
    if not show:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
