"""Saving fitted results to a file and loading them back: ``res.save(path)``, ``bf.load(path)``.

The file format (see docs/saving.md) is two pickles written one after the other:

1. a **header**, a plain dict read without importing any result class::

       {"format": "bayesfmm-results", "format_version": 1,
        "bayesfmm_version": "0.1.0", "kind": "MLResults", "python": "3.12.4"}

2. the results object itself (``MLResults``, ``MAPResults`` or ``BayesResults``), pickled
   with :data:`pickle.HIGHEST_PROTOCOL`. Families are stored as their registry name and
   options, not as code; a Bayesian fit stores its draws and rebuilds the PyMC model when
   it is first needed.

Version rule: ``format_version`` is an integer raised whenever the stored objects change in
a way an older reader cannot load. :func:`load` reads files whose version lies from
:data:`MIN_FORMAT_VERSION` to :data:`FORMAT_VERSION`; a file of a newer version (written by
a later bayesfmm) or an older, retired one is refused with a
:class:`~bayesfmm.errors.DataError` that names the file, its version and the bayesfmm that
wrote it. Loading runs pickle: load only files you trust.

This module sits at the results layer and knows no result class: a results object calls
:func:`save` on itself, and :func:`load` returns whatever object the file holds.
"""

from __future__ import annotations

import os
import pickle
import platform
import tempfile
from pathlib import Path
from typing import Any

from bayesfmm.errors import DataError, SpecificationError

__all__ = ["FORMAT", "FORMAT_VERSION", "MIN_FORMAT_VERSION", "save", "load", "read_header"]

FORMAT = "bayesfmm-results"
FORMAT_VERSION = 1  # raise when stored objects change incompatibly (docs/saving.md)
MIN_FORMAT_VERSION = 1  # the oldest version this bayesfmm still reads


def package_version() -> str:
    """The installed bayesfmm version (``"unknown"`` when run from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bayesfmm")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "unknown"


def make_header(obj: Any) -> dict[str, Any]:
    """The header stored before ``obj``."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bayesfmm_version": package_version(),
        "kind": type(obj).__name__,
        "python": platform.python_version(),
    }


def save(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` (a results object) to ``path`` in the bayesfmm format; returns the path.

    The file is written to a temporary name in the same folder and then renamed, so an
    interrupted save never leaves a half-written file under ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import bayesfmm as bf
    >>> from bayesfmm.persist import load, save
    >>> res = bf.FMM("thickness ~ 1", k=2).fit(bf.datasets.load("stamp"))
    >>> path = save(res, pathlib.Path(tempfile.mkdtemp()) / "fit.bfmm")
    >>> load(path).llf == res.llf
    True
    """
    target = Path(os.fspath(path))
    folder = target.parent
    if not folder.is_dir():
        raise DataError(f"cannot save to {str(target)!r}: the folder {str(folder)!r} does not exist")
    try:
        header = pickle.dumps(make_header(obj), protocol=pickle.HIGHEST_PROTOCOL)
        body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise SpecificationError(
            f"cannot save this {type(obj).__name__} to {str(target)!r}: {exc}. A family registered "
            "by the user must be built by a function defined at module level (not a lambda)"
        ) from None
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(header)
            stream.write(body)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _check_header(header: Any, name: str) -> dict[str, Any]:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DataError(f"{name} is not a bayesfmm results file (it has no bayesfmm header)")
    version = header.get("format_version")
    writer = header.get("bayesfmm_version", "unknown")
    if isinstance(version, bool) or not isinstance(version, int):
        raise DataError(f"{name}: the bayesfmm header has no valid format version ({version!r})")
    if version > FORMAT_VERSION:
        raise DataError(
            f"{name} has format version {version}, written by bayesfmm {writer}; this bayesfmm "
            f"({package_version()}) reads format versions {MIN_FORMAT_VERSION} to {FORMAT_VERSION}: "
            "upgrade bayesfmm to load it"
        )
    if version < MIN_FORMAT_VERSION:
        raise DataError(
            f"{name} has format version {version}, written by bayesfmm {writer}, which this bayesfmm "
            f"({package_version()}) no longer reads (versions {MIN_FORMAT_VERSION} to {FORMAT_VERSION}): "
            f"load it with bayesfmm {writer} and refit, or save it again from there"
        )
    return header


def _open(path: str | os.PathLike) -> tuple[Path, str]:
    source = Path(os.fspath(path))
    name = repr(str(source))
    if not source.exists():
        raise DataError(f"no such file: {name}")
    if not source.is_file():
        raise DataError(f"{name} is not a file")
    return source, name


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a bayesfmm file, checked (format, version), without loading the results.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import bayesfmm as bf
    >>> from bayesfmm.persist import read_header, save
    >>> res = bf.FMM("thickness ~ 1", k=2).fit(bf.datasets.load("stamp"))
    >>> read_header(save(res, pathlib.Path(tempfile.mkdtemp()) / "fit.bfmm"))["kind"]
    'MLResults'
    """
    source, name = _open(path)
    with source.open("rb") as stream:
        return _read_header(stream, name)


def _read_header(stream: Any, name: str) -> dict[str, Any]:
    try:
        header = pickle.load(stream)
    except Exception:  # noqa: BLE001 - any unpickling failure: not our file
        raise DataError(f"{name} is not a bayesfmm results file (it does not start with a bayesfmm header)") from None
    return _check_header(header, name)


def load(path: str | os.PathLike) -> Any:
    """Load results saved by ``res.save(path)``: an ``MLResults``, ``MAPResults`` or
    ``BayesResults`` that predicts, summarises and tests as the saved one did.

    Loading runs pickle, which can execute code: load only files you trust. A file written
    by a newer bayesfmm (a higher format version) is refused with a
    :class:`~bayesfmm.errors.DataError`; see docs/saving.md.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import bayesfmm as bf
    >>> from bayesfmm.persist import load
    >>> res = bf.FMM("thickness ~ 1", k=2).fit(bf.datasets.load("stamp"))
    >>> path = res.save(pathlib.Path(tempfile.mkdtemp()) / "fit.bfmm")
    >>> str(load(path).summary()) == str(res.summary())
    True
    """
    source, name = _open(path)
    with source.open("rb") as stream:
        header = _read_header(stream, name)
        try:
            obj = pickle.load(stream)
        except (SpecificationError, DataError):
            raise
        except Exception as exc:  # noqa: BLE001 - truncated file, missing module, ...
            raise DataError(
                f"{name}: could not load the saved {header.get('kind', 'object')} "
                f"(written by bayesfmm {header.get('bayesfmm_version', 'unknown')}): {type(exc).__name__}: {exc}"
            ) from None
    if type(obj).__name__ != header.get("kind"):
        raise DataError(f"{name}: the header says {header.get('kind')!r} but the file holds a {type(obj).__name__}")
    return obj
