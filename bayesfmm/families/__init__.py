"""Component families: one log density each, registered by name."""

from __future__ import annotations

from bayesfmm.families import gaussian, lognormal  # noqa: F401  (registration)
from bayesfmm.families import binomial, nbinomial, pointmass, poisson  # noqa: F401  (registration)
from bayesfmm.families import beta, exponential, gamma, loglogistic, weibull  # noqa: F401  (registration)
from bayesfmm.families import censored, mlogit, ordinal, survival, tpoisson  # noqa: F401  (registration)
from bayesfmm.families.base import AuxScale, ExtraColumn, Family, ResponseHook, Slot
from bayesfmm.families.registry import family_names, get_family, register_family

__all__ = [
    "Family",
    "Slot",
    "AuxScale",
    "ExtraColumn",
    "ResponseHook",
    "get_family",
    "register_family",
    "family_names",
]
