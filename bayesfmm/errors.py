"""Exceptions and warnings raised by bayesfmm.

Every user mistake surfaces as one of these, never as a bare traceback from numpy,
pandas or pytensor.
"""

from __future__ import annotations

__all__ = [
    "SpecificationError",
    "DataError",
    "ConvergenceError",
    "ConvergenceWarning",
    "IdentificationWarning",
    "DataWarning",
]


class SpecificationError(ValueError):
    """A model or option is not valid (unknown family, k < 1, unknown option, ...)."""


class DataError(ValueError):
    """The data do not fit the model: names the column, the rows and what was expected."""


class ConvergenceError(RuntimeError):
    """No usable maximum was found (every start collapsed or diverged)."""


class ConvergenceWarning(UserWarning):
    """The optimiser stopped without meeting its convergence criteria."""


class IdentificationWarning(UserWarning):
    """Label switching, a degenerate class, or a flat likelihood."""


class DataWarning(UserWarning):
    """Something was done to the data on the user's behalf (e.g. rows with missing values dropped)."""
