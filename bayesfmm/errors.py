"""Exceptions and warnings raised by bayesfmm.

Every user mistake surfaces as one of these, never as a bare traceback from numpy,
pandas or pytensor.
"""

from __future__ import annotations

import numbers
import os

__all__ = [
    "SpecificationError",
    "DataError",
    "ConvergenceError",
    "ConvergenceWarning",
    "IdentificationWarning",
    "DataWarning",
    "rows_text",
    "check_alpha",
    "environment_switch",
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


def rows_text(index, positions, limit: int = 5) -> str:
    """The labels of the rows at ``positions`` of ``index``, for an error message:
    ``"3, 17, 'a' and 12 more"``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rows_text(pd.RangeIndex(100), np.arange(7))
    '0, 1, 2, 3, 4 and 2 more'
    """
    shown = [repr(v) for v in index[positions[:limit]]]
    more = f" and {len(positions) - limit} more" if len(positions) > limit else ""
    return ", ".join(shown) + more


def check_alpha(alpha, what: str = "alpha") -> float:
    """``alpha`` of an interval (0.05 for 95%), refused outside (0, 1) with a hint.

    Examples
    --------
    >>> check_alpha(0.1)
    0.1
    """
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < float(alpha) < 1:
        hint = f" (for a {alpha}% interval write alpha={1 - float(alpha) / 100:.3g})" if isinstance(alpha, numbers.Real) and 50 <= alpha < 100 else ""
        raise SpecificationError(f"{what} must be a number between 0 and 1, such as 0.05 for 95% intervals; got {alpha!r}{hint}")
    return float(alpha)


def environment_switch(name: str) -> bool:
    """A ``BAYESFMM_*`` on/off setting from the environment: unset, empty or ``"1"`` is on,
    ``"0"`` off; anything else is a :class:`SpecificationError` naming the variable (a
    typo such as ``off`` must not leave the setting silently on).

    Examples
    --------
    >>> environment_switch("BAYESFMM_NO_SUCH_SETTING")
    True
    """
    value = os.environ.get(name, "1").strip()
    if value in ("", "1"):
        return True
    if value == "0":
        return False
    raise SpecificationError(f"environment variable {name}={value!r}: expected 0 (off) or 1 (on)")
