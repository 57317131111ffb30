"""bayesfmm: finite mixture models with Stata ``fmm``'s numbers and full Bayesian inference."""

from __future__ import annotations

from bayesfmm import (
    bayes,  # priors, BayesResults, compare; no PyMC import
    datasets,
    plotting,
)
from bayesfmm.bayes.results import BayesResults
from bayesfmm.bayes.sbc import sbc  # imports neither pytensor nor PyMC
from bayesfmm.bootstrap import BootstrapLRT, bootstrap_lrt
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
from bayesfmm.selection import SelectionResult, select
from bayesfmm.simulate import simulate  # the function shadows the module name
from bayesfmm.spec import Component, ModelSpec
from bayesfmm.stata import from_stata, to_stata  # Stata fmm syntax <-> FMM
from bayesfmm.survey import SurveyDesign

__version__ = "0.1.0"

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
