"""Sampler options checked before anything is compiled.

``FMM.sample(**kwargs)`` passes extra keywords to the sampler (nutpie's settings, PyMC's
``pm.sample`` and NUTS step). A misspelled one used to surface only after the model was
compiled (a minute or two) as the sampler's own error; :func:`check_sampler_options` asks
the sampler which names it takes, at no cost, and refuses the others with close matches.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Mapping

import numpy as np

from bayesfmm.errors import SpecificationError

__all__ = ["check_sampler_options", "check_random_seed", "OWN_OPTIONS"]

# set by sample() itself: give them to sample() under its own names
OWN_OPTIONS = {
    "draws": "draws=", "tune": "tune=", "chains": "chains=", "cores": "cores=", "seed": "random_seed=",
    "random_seed": "random_seed=", "progress_bar": "progressbar=", "progressbar": "progressbar=",
    "save_warmup": None, "initvals": "init=", "nuts_sampler": "sampler=", "model": None,
    "compute_convergence_checks": None,
}


def check_random_seed(seed: Any) -> None:
    """``random_seed``: None or a non-negative integer."""
    if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise SpecificationError(f"random_seed must be a non-negative integer or None, got {seed!r}")


def _refuse(name: str, sampler: str, known: set[str]) -> None:
    close = difflib.get_close_matches(name, sorted(known), n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    raise SpecificationError(
        f"sample() option {name!r} is not an option of sampler={sampler!r}{hint}; it takes "
        f"{', '.join(sorted(known)[:40])}"
    )


def _nutpie_names(options: Mapping[str, Any]) -> tuple[set[str], Any]:
    import nutpie
    from nutpie import _lib

    named = set(inspect.signature(nutpie.sample).parameters) - {"compiled_model", "kwargs"} - set(OWN_OPTIONS)
    family = _lib.PyMclmcSettings if options.get("sampler") == "mclmc" else _lib.PyNutsSettings
    adaptation = {"low_rank": "LowRank", "flow": "Flow"}.get(options.get("adaptation", "low_rank"), "Diag")
    settings = getattr(family, adaptation)(0)
    nested = settings.as_dict().get("settings", {})
    known = named | set(nested) | {"max_treedepth", "target_accept", "use_grad_based_mass_matrix"}
    for value in nested.values():
        if isinstance(value, dict):
            known |= set(value)
    return named, (settings, known)


def check_sampler_options(sampler: str, options: Mapping[str, Any]) -> None:
    """Refuse sampler keywords the chosen sampler does not take (before compiling).

    Examples
    --------
    >>> check_sampler_options("pymc", {"target_accept": 0.9})
    >>> check_sampler_options("pymc", {"target_acept": 0.9})
    Traceback (most recent call last):
    ...
    bayesfmm.errors.SpecificationError: sample() option 'target_acept' is not an option of sampler='pymc' (did you mean 'target_accept'...
    """
    for name in options:
        if name in OWN_OPTIONS:
            where = OWN_OPTIONS[name]
            raise SpecificationError(
                f"sample() sets {name!r} itself" + (f": give it as sample({where}...)" if where else "; leave it out")
            )
    if not options:
        return
    if sampler == "nutpie":
        named, (settings, known) = _nutpie_names(options)
        for name, value in options.items():
            if name in named:
                continue
            key = "maxdepth" if name == "max_treedepth" else name
            try:
                settings.update({key: value})
            except AttributeError:
                _refuse(name, sampler, known)
            except Exception as exc:  # the right name with a value nutpie cannot take
                raise SpecificationError(f"sample() option {name}={value!r} is not valid for nutpie: {exc}") from None
        return
    import pymc as pm
    from pymc.step_methods.hmc.base_hmc import BaseHMC

    known = set()
    for func in (pm.sample, pm.NUTS.__init__, BaseHMC.__init__):
        known |= set(inspect.signature(func).parameters)
    known -= {"self", "kwargs", "vars", "model"} | set(OWN_OPTIONS)
    if sampler == "numpyro":
        known |= {"chain_method", "postprocessing_backend", "postprocessing_chunks", "nuts_kwargs"}
    for name in options:
        if name not in known:
            _refuse(name, sampler, known)
