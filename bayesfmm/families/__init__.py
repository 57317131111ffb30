"""Component families: one log density each, registered by name."""

from __future__ import annotations

from bayesfmm.families import (  # noqa: F401  (registration)  # noqa: F401  (registration)  # noqa: F401  (registration)  # noqa: F401  (registration)
    beta,
    binomial,
    censored,
    exponential,
    gamma,
    gaussian,
    ivregress,  # noqa: F401  (registration)
    loglogistic,
    lognormal,
    mlogit,
    mvnormal,  # noqa: F401  (registration)
    nbinomial,
    ordinal,
    pointmass,
    poisson,
    survival,
    tpoisson,
    weibull,
)
from bayesfmm.families.base import AuxScale, BatchedFit, ExtraColumn, Family, ResponseHook, Slot
from bayesfmm.families.registry import family_names, get_family, register_family

__all__ = [
    "Family",
    "Slot",
    "AuxScale",
    "BatchedFit",
    "ExtraColumn",
    "ResponseHook",
    "get_family",
    "register_family",
    "family_names",
]
