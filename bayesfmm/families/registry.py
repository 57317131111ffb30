"""The family registry: names and aliases -> family builders.

A builder takes the component's family options (``link=``, ``value=``, ...) and returns a
:class:`~bayesfmm.families.base.Family`. Users register their own with
:func:`register_family`; a registered family works in ML and Bayes alike.

Pickling: a family from :func:`get_family` pickles as its name and options (its
:attr:`~bayesfmm.families.base.Family.recipe`), and a component's options as
:class:`FamilyOptions`. Both carry the builder of a family the user registered when the
builder is a function defined at module level (pickled by reference), so unpickling them in
a fresh process (a spawned worker, another session) registers the family there first.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any, Callable, Iterator, Mapping

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import Family, with_recipe

__all__ = [
    "register_family",
    "get_family",
    "family_names",
    "family_aliases",
    "family_options",
    "FamilyOptions",
]

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
    return with_recipe(_BUILDERS[key](**options), build_registered, key, portable_builder(key), **options)


def portable_builder(name: str) -> FamilyBuilder | None:
    """The builder of a user-registered family when pickle can send it by reference (a
    function defined at module level); None for the package's own families (registered on
    import) and for builders that cannot travel (lambdas, closures)."""
    builder = _BUILDERS.get(name)
    module = getattr(builder, "__module__", None) or ""
    if builder is None or module == "bayesfmm" or module.startswith("bayesfmm."):
        return None
    found: Any = sys.modules.get(module)
    for part in getattr(builder, "__qualname__", "<lambda>").split("."):
        found = getattr(found, part, None)
    return builder if found is builder else None


def ensure_registered(name: str, builder: FamilyBuilder | None) -> None:
    """Register ``builder`` under ``name`` unless a family of that name exists."""
    if builder is not None and name.lower() not in _BUILDERS and name.lower() not in _ALIASES:
        register_family(name, builder)


def build_registered(name: str, builder: FamilyBuilder | None, **options: Any) -> Family:
    """:func:`get_family` after registering ``builder`` where ``name`` is unknown (the recipe
    of a registry-built family: what an unpickled family is built by)."""
    ensure_registered(name, builder)
    return get_family(name, **options)


class FamilyOptions(Mapping[str, Any]):
    """A component's family options: a read-only mapping that compares equal to the dict it
    holds, hashes when its values do, and pickles (with the builder of a user family, see
    the module docstring).

    Examples
    --------
    >>> import pickle
    >>> opts = FamilyOptions({"value": 0}, "pointmass")
    >>> pickle.loads(pickle.dumps(opts)) == {"value": 0}
    True
    """

    __slots__ = ("_data", "_family")

    def __init__(self, options: Mapping[str, Any] | None = None, family: str | None = None) -> None:
        self._data = dict(options or {})
        self._family = family

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FamilyOptions({self._data!r})"

    def __reduce__(self) -> Any:
        builder = None if self._family is None else portable_builder(self._family)
        return (_restore_options, (self._data, self._family, builder))


def _restore_options(data: dict, family: str | None, builder: FamilyBuilder | None) -> FamilyOptions:
    if family is not None:
        ensure_registered(family, builder)
    return FamilyOptions(data, family)


def family_names() -> list[str]:
    """Every registered family's canonical name, sorted (aliases: :func:`family_aliases`)."""
    return sorted(_BUILDERS)


def family_aliases() -> dict[str, str]:
    """Alias -> canonical family name (``"regress"`` -> ``"gaussian"``)."""
    return dict(sorted(_ALIASES.items()))
