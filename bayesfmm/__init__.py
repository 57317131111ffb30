"""bayesfmm: finite mixture models with Stata ``fmm``'s numbers and full Bayesian inference.

``import bayesfmm`` loads what a maximum-likelihood fit needs; the tools a fit does not
need (model selection, the bootstrap LRT, SBC, the Stata syntax reader, plotting, the
datasets) load on first use of their name (``bf.select``, ``bf.sbc``, ...), as scipy's
submodules do. Every name in ``__all__`` is available as an attribute either way.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bayesfmm.errors import (
    ConvergenceError,
    ConvergenceWarning,
    DataError,
    DataWarning,
    IdentificationWarning,
    SpecificationError,
)
from bayesfmm.families import Family, Slot, family_names, get_family, register_family
from bayesfmm.inference import lrtest
from bayesfmm.model import FMM
from bayesfmm.persist import load
from bayesfmm.simulate import simulate  # the function shadows the module name
from bayesfmm.spec import Component, ModelSpec
from bayesfmm.survey import SurveyDesign

if TYPE_CHECKING:  # the lazily loaded names, for type checkers and editors
    from bayesfmm import bayes, datasets, plotting
    from bayesfmm.bayes.results import BayesResults
    from bayesfmm.bayes.sbc import sbc
    from bayesfmm.bootstrap import BootstrapLRT, bootstrap_lrt
    from bayesfmm.selection import SelectionResult, select
    from bayesfmm.stata import from_stata, to_stata

__version__ = "0.1.0"

# name -> (module, attribute; None: the module itself), loaded on first access
_LAZY: dict[str, tuple[str, str | None]] = {
    "bayes": ("bayesfmm.bayes", None),
    "datasets": ("bayesfmm.datasets", None),
    "plotting": ("bayesfmm.plotting", None),
    "BayesResults": ("bayesfmm.bayes.results", "BayesResults"),
    "sbc": ("bayesfmm.bayes.sbc", "sbc"),
    "BootstrapLRT": ("bayesfmm.bootstrap", "BootstrapLRT"),
    "bootstrap_lrt": ("bayesfmm.bootstrap", "bootstrap_lrt"),
    "SelectionResult": ("bayesfmm.selection", "SelectionResult"),
    "select": ("bayesfmm.selection", "select"),
    "from_stata": ("bayesfmm.stata", "from_stata"),
    "to_stata": ("bayesfmm.stata", "to_stata"),
}


def __getattr__(name: str) -> Any:
    """Load a lazily exported name (PEP 562) and keep it as a module attribute."""
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'bayesfmm' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "FMM",
    "from_stata",
    "to_stata",
    "load",
    "Component",
    "ModelSpec",
    "SurveyDesign",
    "datasets",
    "plotting",
    "Family",
    "Slot",
    "register_family",
    "get_family",
    "family_names",
    "select",
    "sbc",
    "bayes",
    "BayesResults",
    "SelectionResult",
    "bootstrap_lrt",
    "BootstrapLRT",
    "simulate",
    "lrtest",
    "SpecificationError",
    "DataError",
    "DataWarning",
    "ConvergenceError",
    "ConvergenceWarning",
    "IdentificationWarning",
    "__version__",
]
