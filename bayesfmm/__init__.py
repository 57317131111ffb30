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
from bayesfmm.selection import SelectionResult, select  # noqa: E402  (after spec)
from bayesfmm.bootstrap import BootstrapLRT, bootstrap_lrt  # noqa: E402
from bayesfmm.simulate import simulate  # noqa: E402  (the function shadows the module name)
from bayesfmm.inference import lrtest  # noqa: E402
from bayesfmm.bayes.sbc import sbc  # noqa: E402  (imports neither pytensor nor PyMC)
from bayesfmm import bayes  # noqa: E402  (priors, BayesResults, compare; no PyMC import)
from bayesfmm.bayes.results import BayesResults  # noqa: E402

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
