"""bayesfmm: finite mixture models with Stata ``fmm``'s numbers and full Bayesian inference."""

from __future__ import annotations

from bayesfmm import datasets, plotting
from bayesfmm.errors import (
    ConvergenceError,
    ConvergenceWarning,
    DataError,
    DataWarning,
    IdentificationWarning,
    SpecificationError,
)
from bayesfmm.families import Family, Slot, family_names, get_family, register_family
from bayesfmm.spec import FMM, Component

__version__ = "0.1.0"

__all__ = [
    "FMM",
    "Component",
    "datasets",
    "plotting",
    "Family",
    "Slot",
    "register_family",
    "get_family",
    "family_names",
    "SpecificationError",
    "DataError",
    "DataWarning",
    "ConvergenceError",
    "ConvergenceWarning",
    "IdentificationWarning",
    "__version__",
]
