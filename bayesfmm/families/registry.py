"""The family registry: names and aliases -> family builders.

A builder takes the component's family options (``link=``, ``value=``, ...) and returns a
:class:`~bayesfmm.families.base.Family`. Users register their own with
:func:`register_family`; a registered family works in ML and Bayes alike.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import Family

__all__ = ["register_family", "get_family", "family_names", "family_aliases", "family_options"]

FamilyBuilder = Callable[..., Family]

_BUILDERS: dict[str, FamilyBuilder] = {}
_ALIASES: dict[str, str] = {}


def register_family(name: str, builder: FamilyBuilder, aliases: tuple[str, ...] = ()) -> None:
    """Register ``builder`` under ``name`` (and its Stata aliases).

    Parameters
    ----------
    name
        Canonical family name, lower case.
    builder
        Callable taking the family's keyword options and returning a ``Family``.
    aliases
        Other names that resolve to it (``"regress"`` for ``"gaussian"``).

    Examples
    --------
    >>> from bayesfmm.families import register_family, get_family
    >>> get_family("regress").name
    'gaussian'
    """
    key = name.lower()
    _BUILDERS[key] = builder
    for alias in aliases:
        _ALIASES[alias.lower()] = key


def canonical_name(name: str) -> str:
    """The canonical family name for a name or alias, or a SpecificationError."""
    if not isinstance(name, str):
        raise SpecificationError(f"family must be a string such as 'gaussian', got {name!r}")
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in _BUILDERS:
        listing = ", ".join(
            name + (f" ({', '.join(a for a, c in sorted(_ALIASES.items()) if c == name)})" if name in _ALIASES.values() else "")
            for name in family_names()
        )
        raise SpecificationError(f"unknown family {name!r}; available families (aliases): {listing}")
    return key


def family_options(name: str) -> tuple[str, ...]:
    """The keyword options a family accepts."""
    builder = _BUILDERS[canonical_name(name)]
    return tuple(inspect.signature(builder).parameters)


def get_family(name: str, **options: Any) -> Family:
    """Build the family ``name`` with its options, checking the option names."""
    key = canonical_name(name)
    allowed = family_options(key)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "no options"
        raise SpecificationError(
            f"family {key!r} does not take option(s) {', '.join(unknown)}; it accepts {accepted}"
        )
    return _BUILDERS[key](**options)


def family_names() -> list[str]:
    """Every registered family's canonical name, sorted (aliases: :func:`family_aliases`)."""
    return sorted(_BUILDERS)


def family_aliases() -> dict[str, str]:
    """Alias -> canonical family name (``"regress"`` -> ``"gaussian"``)."""
    return dict(sorted(_ALIASES.items()))
