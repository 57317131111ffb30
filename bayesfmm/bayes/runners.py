"""The samplers behind :func:`bayesfmm.bayes.sample.sample` and :func:`bayesfmm.bayes.sbc.sbc`.

One runner per sampler: :func:`run_nutpie` (a compiled nutpie model, chains started by
:func:`seeded_initial_point`) and :func:`run_pymc` (PyMC's NUTS, or numpyro through PyMC).
nutpie compiles a PyMC model in 10-30 s; :data:`COMPILED` keeps the last few compiled
models of the session (a bounded :class:`CompileCache`, keyed by :func:`model_key`), so that
sampling the same model, data, priors and ordering again skips the compile.

BLAS and OpenMP thread pools are limited to one thread while sampling
(:func:`thread_limit`): the chains already run in parallel, and nested BLAS threads
oversubscribe the cores (measured at n = 1e5: 156 s with the limit, 314 s without).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterator

import numpy as np

from bayesfmm.errors import SpecificationError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from bayesfmm.bayes.builder import BuiltModel
    from bayesfmm.spec import ModelSpec

__all__ = [
    "COMPILED_CACHE_SIZE",
    "CompileCache",
    "COMPILED",
    "model_key",
    "clear_compile_cache",
    "thread_limit",
    "pymc_log_level",
    "seeded_initial_point",
    "compile_nutpie",
    "NutpieRun",
    "run_nutpie",
    "run_pymc",
]

COMPILED_CACHE_SIZE = 4


class CompileCache:
    """A small least-recently-used cache of compiled models, at most ``size`` of them.

    Keys are hashable tuples (:func:`model_key`); a key of None is never stored. Access is
    guarded by a lock, so samplers on several threads can share it.

    Examples
    --------
    >>> cache = CompileCache(size=2)
    >>> cache.put("a", 1); cache.put("b", 2); cache.put("c", 3)
    >>> cache.get("a") is None, cache.get("c"), len(cache)
    (True, 3, 2)
    """

    def __init__(self, size: int = COMPILED_CACHE_SIZE) -> None:
        if size < 0:
            raise SpecificationError(f"cache size must be >= 0, got {size}")
        self.size = int(size)
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable | None) -> Any:
        """The cached value of ``key`` (now the most recently used), or None."""
        if key is None:
            return None
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable | None, value: Any) -> None:
        """Store ``value``; the least recently used entries go beyond ``size``."""
        if key is None or self.size == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


COMPILED = CompileCache(COMPILED_CACHE_SIZE)  # nutpie models compiled in this session


def model_key(spec: "ModelSpec", data: "pd.DataFrame", priors: Any, order: Any, backend: str = "numba") -> tuple | None:
    """A key identifying the PyMC model built from these inputs (None if not hashable):
    sampling the same model, data, priors and ordering again reuses nutpie's compiled
    model instead of compiling it again (10-30 s)."""
    import pandas as pd

    try:
        digest = pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes()
    except (TypeError, ValueError):
        return None
    key = (repr(spec), tuple(map(str, data.columns)), tuple(map(str, data.dtypes)), digest, repr(priors), repr(order))
    return key if backend == "numba" else key + (backend,)


def clear_compile_cache() -> None:
    """Forget the nutpie models compiled in this session (the next sample() compiles anew)."""
    COMPILED.clear()


def thread_limit():
    """A context in which BLAS and OpenMP pools run one thread (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


@contextmanager
def pymc_log_level(level: int = logging.ERROR) -> Iterator[None]:
    """PyMC's logger at ``level`` inside the block, restored afterwards.

    Examples
    --------
    >>> import logging
    >>> before = logging.getLogger("pymc").level
    >>> with pymc_log_level(logging.ERROR):
    ...     logging.getLogger("pymc").level == logging.ERROR
    True
    >>> logging.getLogger("pymc").level == before
    True
    """
    logger = logging.getLogger("pymc")
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def seeded_initial_point(start_for, flat) -> tuple[Any, dict[int, np.ndarray]]:
    """nutpie's ``initial_point_func`` from ``start_for(chain_seed) -> theta``.

    nutpie's chain threads ask for their initial points with their own seeds, in whatever
    order they run: a start that is a function of the seed alone (not of the order of the
    calls) keeps a seed's draws the same from run to run. ``flat(theta)`` maps ``theta`` to
    the unconstrained vector nutpie samples. Returns the function and the dict of starts
    it handed out (``theta`` by chain seed), filled as the chains start.
    """
    used: dict[int, np.ndarray] = {}
    lock = threading.Lock()

    def initial_point(chain_seed=None) -> np.ndarray:
        key = 0 if chain_seed is None else int(chain_seed)
        with lock:
            if key not in used:
                used[key] = start_for(key)
            return np.asarray(flat(used[key]), dtype=float).copy()

    return initial_point, used


def _require(package: str, message: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise SpecificationError(message)


def compile_nutpie(
    model: Any, key: Hashable | None = None, cache: CompileCache = COMPILED, backend: str = "numba", message: bool = False
) -> tuple[Any, float]:
    """nutpie's compiled ``model`` from ``cache`` or compiled now; and the seconds spent
    compiling (0 on a cache hit). ``backend`` is ``"numba"`` (default) or ``"jax"`` (needs
    jax; gradients by jax too). With ``message`` a line on standard error says that the
    compile is running (it takes 10-60 s with numba) and how long it took."""
    _require("nutpie", "sampler='nutpie' needs the nutpie package: pip install nutpie (or use sampler='pymc')")
    if backend == "jax":
        _require("jax", "backend='jax' needs jax: pip install 'bayesfmm[jax]' (or use backend='numba')")
    import sys

    import nutpie

    t0 = time.perf_counter()
    compiled = cache.get(key)
    if compiled is None:
        if message:
            print(f"Compiling the model with nutpie ({backend}; 10-60 s the first time in a session)...",
                  file=sys.stderr, flush=True)
        options = {"gradient_backend": "jax"} if backend == "jax" else {}
        compiled = nutpie.compile_pymc_model(model, backend=backend, **options)
        cache.put(key, compiled)
        if message:
            print(f"Compiled in {time.perf_counter() - t0:.1f} s; sampling.", file=sys.stderr, flush=True)
    return compiled, time.perf_counter() - t0


@dataclass(frozen=True)
class NutpieRun:
    """What :func:`run_nutpie` returns: the DataTree, the sampling seconds and the chains'
    starting ``theta`` (ordered by chain seed; empty when nutpie chose them)."""

    idata: Any
    sample_s: float
    starts: tuple[np.ndarray, ...]


def run_nutpie(
    compiled: Any,
    model: Any,
    flat: Callable[[np.ndarray], np.ndarray],
    start_for: Callable[[int], np.ndarray] | None,
    draws: int,
    tune: int,
    chains: int,
    cores: int,
    seed: int,
    progressbar: bool,
    **kwargs: Any,
) -> NutpieRun:
    """Sample a compiled model with nutpie; ``start_for(chain_seed)`` gives a chain's start.

    ``model`` is the PyMC model ``compiled`` came from (for PyMC's names in the DataTree),
    ``flat`` maps ``theta`` to nutpie's unconstrained vector. Each chain's start is a
    function of its seed (:func:`seeded_initial_point`). The mass matrix adaptation is
    nutpie's low-rank one unless ``adaptation=`` says otherwise: mixture posteriors
    correlate class probabilities with component parameters, and it gave 3x the min ESS/s
    of the diagonal one on stamp (docs/bayes.md). ``max_treedepth`` is nutpie's ``maxdepth``.
    """
    import nutpie
    from pymc.backends.arviz import patch_nutpie_idata

    used: dict[int, np.ndarray] = {}
    if start_for is not None:
        initial_point, used = seeded_initial_point(start_for, flat)
        # the numba backend's model calls it initial_point_func, the jax backend's _make_initial_points
        field = "initial_point_func" if hasattr(compiled, "initial_point_func") else "_make_initial_points"
        compiled = dataclasses.replace(compiled, **{field: initial_point})
    if "max_treedepth" in kwargs:
        kwargs["maxdepth"] = kwargs.pop("max_treedepth")
    kwargs.setdefault("adaptation", "low_rank")
    t0 = time.perf_counter()
    with thread_limit():
        idata = nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            seed=seed,
            save_warmup=False,
            progress_bar=progressbar,
            **kwargs,
        )
    sample_s = time.perf_counter() - t0
    patch_nutpie_idata(idata, model, sampling_time=sample_s)
    return NutpieRun(idata, sample_s, tuple(used[key] for key in sorted(used)))


def run_pymc(
    built: "BuiltModel",
    starts: list[np.ndarray] | None,
    draws: int,
    tune: int,
    chains: int,
    cores: int,
    seed: int,
    progressbar: bool,
    sampler: str,
    kwargs: dict[str, Any],
) -> tuple[Any, float]:
    """Sample ``built`` with PyMC's NUTS (``sampler="pymc"``) or numpyro through PyMC,
    chains started at ``starts`` (``theta`` per chain; None for PyMC's default
    initialisation). Returns the DataTree and the seconds (compile included)."""
    import pymc as pm

    if sampler == "numpyro":
        for package in ("numpyro", "jax"):
            _require(package, "sampler='numpyro' needs jax and numpyro: pip install numpyro (or use sampler='nutpie')")
    initvals = None if starts is None else [built.constrained_point(theta) for theta in starts]
    options: dict[str, Any] = dict(kwargs)
    if sampler == "pymc":
        options.setdefault("init", "adapt_diag" if starts is not None else "jitter+adapt_diag")
        options.setdefault("cores", cores)
    elif initvals is not None:
        options.setdefault("nuts", {}).setdefault("jitter", False)
    t0 = time.perf_counter()
    with thread_limit():
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=seed,
            initvals=initvals,
            nuts_sampler=sampler,
            progressbar=progressbar,
            compute_convergence_checks=False,
            model=built.model,
            **options,
        )
    return idata, time.perf_counter() - t0
