"""Model specifications: :class:`FMM` and :class:`Component`, immutable and validated.

A specification holds no data and no fitted state: one ``FMM`` gives ML results
(:meth:`FMM.fit`) and, in the Bayesian mode, posterior draws.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import Family
from bayesfmm.families.ivregress import split_iv_formula
from bayesfmm.families.registry import FamilyOptions, canonical_name, get_family
from bayesfmm.formula import formula_has_lhs, rhs_terms

__all__ = ["Component", "ModelSpec"]

LCINVARIANT_CHOICES = ("none", "cons", "coef", "errvar", "scale", "all")


def _parse_formula(formula: Any, what: str, need_lhs: bool) -> str:
    if not isinstance(formula, str) or not formula.strip():
        raise SpecificationError(f"{what} must be a formula string such as 'y ~ x1 + x2', got {formula!r}")
    try:
        has_lhs = formula_has_lhs(formula)
    except Exception as exc:  # formulaic raises several parser errors
        raise SpecificationError(f"{what} {formula!r} is not a valid formula: {exc}") from None
    if need_lhs and not has_lhs:
        raise SpecificationError(f"{what} {formula!r} needs a response on the left: 'y ~ ...'")
    if not need_lhs and has_lhs:
        raise SpecificationError(
            f"{what} {formula!r} must have no response (write '~ z1 + z2')"
        )
    return formula.strip()


def _check_point_masses(components: Sequence["Component"]) -> None:
    """Stata's rules for families without parameters (``pointmass``): no regressors, and
    not every class may be one (the mixture would have nothing to estimate)."""
    for comp in components:
        if comp.family.n_slots == 0 and any(t != "1" for t in rhs_terms(comp.formula)):
            raise SpecificationError(
                f"{comp.family_name} takes no regressors: write '{comp.response} ~ 1', not {comp.formula!r}"
            )
    if all(comp.family.n_slots == 0 for comp in components):
        names = sorted({comp.family_name for comp in components})
        raise SpecificationError(
            f"every class is a {'/'.join(names)} component: a point mass cannot be the only "
            "component model; add a component with parameters, e.g. (pointmass y) (poisson y x)"
        )


WEIGHT_TYPES = ("fweight", "pweight", "iweight")


def _check_constraints(constraints: Any) -> tuple[str, ...]:
    if constraints is None:
        return ()
    if isinstance(constraints, str):
        constraints = [constraints]
    if not isinstance(constraints, Sequence) or not all(isinstance(c, str) and c.strip() for c in constraints):
        raise SpecificationError(
            "constraints must be a string or a list of strings such as ['[1]x1 = [2]x1', '[3]Intercept = 0'], "
            f"got {constraints!r}"
        )
    out = []
    for c in constraints:
        for part in c.split(";"):  # "a = b; c = 0" is two constraints
            if part.strip():
                if "=" not in part:
                    raise SpecificationError(f"constraint {part.strip()!r} needs '=': write '[1]x1 = [2]x1' or '[1]x1 = 0'")
                out.append(part.strip())
    return tuple(out)


def _check_terms(terms: Any, what: str) -> tuple[str, ...]:
    if terms is None:
        return ()
    if isinstance(terms, str):
        terms = [terms]
    if not isinstance(terms, Sequence) or not all(isinstance(t, str) and t.strip() for t in terms):
        raise SpecificationError(f"{what} must be a term name or a list of them such as ['x2'], got {terms!r}")
    return tuple(t.strip() for t in terms)


def _check_nested(nested: Any, k: int) -> tuple[tuple[str, tuple[tuple[int, ...], ...]], ...]:
    if nested is None:
        return ()
    if not isinstance(nested, Mapping):
        raise SpecificationError(f"nested must be a dict such as {{'x1': [(2, 3)]}}, got {nested!r}")
    out = []
    for term, groups in nested.items():
        if not isinstance(term, str) or not term:
            raise SpecificationError(f"nested keys must be term names, got {term!r}")
        if not isinstance(groups, Sequence) or isinstance(groups, str) or not groups:
            raise SpecificationError(f"nested[{term!r}] must be a list of class groups such as [(2, 3)], got {groups!r}")
        seen: set[int] = set()
        parsed = []
        for group in groups:
            if not isinstance(group, Sequence) or isinstance(group, str) or len(group) < 2:
                raise SpecificationError(
                    f"nested[{term!r}]: each group lists two or more classes sharing the term, got {group!r}"
                )
            for c in group:
                if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= k:
                    raise SpecificationError(f"nested[{term!r}]: class {c!r} is not a class number from 1 to k={k}")
                if c in seen:
                    raise SpecificationError(f"nested[{term!r}]: class {c} is in two groups")
                seen.add(c)
            parsed.append(tuple(int(c) for c in group))
        out.append((term, tuple(parsed)))
    return tuple(out)


def _freeze(options: Mapping[str, Any], family: str | None = None) -> FamilyOptions:
    """Read-only family options that pickle (carrying a user family's builder along)."""
    return FamilyOptions(options, family)


@dataclass(frozen=True, init=False)
class Component:
    """One component model: a response, its regressors and a family.

    Parameters
    ----------
    formula
        ``"y ~ x1 + x2"`` (formulaic syntax: ``C(g)``, ``np.log(x)``, ``- 1``).
    family
        A registered family name or Stata alias (``"gaussian"``/``"regress"``,
        ``"lognormal"``, ...).
    lcprob
        Hybrid syntax only: ``"~ z1 + z2"``, covariates of this class's probability
        (ignored for the base class, as in Stata).
    offset
        Column added to the linear predictor with coefficient 1 (Stata ``offset()``).
    exposure
        Column whose log is added to the linear predictor (Stata ``exposure()``); must be
        positive.
    **options
        Family options (``value=``, ``link=``, ``trials=``, ...).

    Examples
    --------
    >>> import bayesfmm as bf
    >>> bf.Component("y ~ x1", family="regress").family_name
    'gaussian'
    """

    formula: str
    family_name: str
    lcprob: str | None
    offset: str | None
    exposure: str | None
    options: Mapping[str, Any]

    def __init__(
        self,
        formula: str,
        family: str = "gaussian",
        *,
        lcprob: str | None = None,
        offset: str | None = None,
        exposure: str | None = None,
        **options: Any,
    ) -> None:
        if isinstance(formula, str):  # Stata's "y ~ x + (w ~ z1 + z2)" of ivregress
            formula, options = split_iv_formula(formula, canonical_name(family), options)
        object.__setattr__(self, "formula", _parse_formula(formula, "component formula", True))
        object.__setattr__(self, "family_name", canonical_name(family))
        if lcprob is not None:
            lcprob = _parse_formula(lcprob, "lcprob", False)
        object.__setattr__(self, "lcprob", lcprob)
        if offset is not None and not isinstance(offset, str):
            raise SpecificationError(f"offset must be a column name, got {offset!r}")
        object.__setattr__(self, "offset", offset)
        if exposure is not None and not isinstance(exposure, str):
            raise SpecificationError(f"exposure must be a column name, got {exposure!r}")
        object.__setattr__(self, "exposure", exposure)
        object.__setattr__(self, "options", _freeze(options, self.family_name))
        self.family  # noqa: B018  (builds the family once: unknown options fail here)

    @property
    def family(self) -> Family:
        """The family object, built from the name and options."""
        return get_family(self.family_name, **self.options)

    @property
    def response(self) -> str:
        """The response expression (left-hand side) as written."""
        return self.formula.split("~", 1)[0].strip()

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        extra = "".join(f", {k}={getattr(self, k)!r}" for k in ("lcprob", "offset", "exposure") if getattr(self, k))
        return f"Component({self.formula!r}, family={self.family_name!r}{extra}{opts})"


@dataclass(frozen=True, init=False)
class ModelSpec:
    """The data of a finite mixture model (no engines): what :class:`bayesfmm.FMM` adds
    ``fit``/``sample``/``map``/``build_pymc`` to. Its parameters are :class:`bayesfmm.FMM`'s."""

    components: tuple[Component, ...]
    k: int
    hybrid: bool
    lcprob: str | None
    lcinvariant: str
    lcbase: int
    constraints: tuple[str, ...]
    group: str | None
    equal: tuple[str, ...] = ()
    nested: tuple[tuple[str, tuple[tuple[int, ...], ...]], ...] = ()
    weights: str | None = None
    weight_type: str = "fweight"

    def __init__(
        self,
        spec: str | Sequence[Component],
        family: str | None = None,
        k: int | None = None,
        *,
        lcprob: str | None = None,
        lcinvariant: str | Sequence[str] = "none",
        lcbase: int = 1,
        constraints: str | Sequence[str] | None = None,
        group: str | None = None,
        equal: str | Sequence[str] | None = None,
        nested: Mapping[str, Sequence[Sequence[int]]] | None = None,
        weights: str | None = None,
        weight_type: str = "fweight",
        **options: Any,
    ) -> None:
        if isinstance(spec, str):
            components = (Component(spec, family or "gaussian", **options),)
            if k is None:
                raise SpecificationError(
                    "standard syntax needs the number of classes: FMM('y ~ x', family=..., k=3)"
                )
            hybrid = False
        elif isinstance(spec, Sequence) and len(spec) > 0 and all(isinstance(c, Component) for c in spec):
            if family is not None or options:
                raise SpecificationError(
                    "with a list of Components, give family and its options to each Component, "
                    f"not to FMM (got family={family!r}, options {sorted(options)})"
                )
            components = tuple(spec)
            hybrid = k is None
            if hybrid:
                k = len(components)
        else:
            raise SpecificationError(
                "spec must be a formula string or a non-empty list of bf.Component, "
                f"got {type(spec).__name__}"
            )
        k, lcbase = (int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v for v in (k, lcbase))
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SpecificationError(f"k (the number of classes) must be an integer >= 1, got {k!r}")
        if not hybrid and any(c.lcprob for c in components):
            raise SpecificationError(
                "lcprob on a Component is for hybrid syntax (one Component per class); "
                "in standard syntax give lcprob to FMM"
            )
        if hybrid and lcprob is not None and any(c.lcprob for c in components):
            raise SpecificationError(
                "lcprob given both to FMM and to a Component: Stata's rule allows one level only"
            )
        if lcprob is not None:
            lcprob = _parse_formula(lcprob, "lcprob", False)
        if isinstance(lcbase, bool) or not isinstance(lcbase, int) or not 1 <= lcbase <= k:
            raise SpecificationError(f"lcbase must be a class number from 1 to k={k}, got {lcbase!r}")
        invariant = (lcinvariant,) if isinstance(lcinvariant, str) else tuple(lcinvariant)
        unknown = [v for v in invariant if v not in LCINVARIANT_CHOICES]
        if unknown:
            raise SpecificationError(
                f"lcinvariant {unknown} not recognised; choose from {', '.join(LCINVARIANT_CHOICES)}"
            )
        if len(invariant) == 0:
            raise SpecificationError("lcinvariant must name at least one parameter class (or 'none')")
        if "none" in invariant and len(invariant) > 1:
            raise SpecificationError(f"lcinvariant {list(invariant)}: 'none' does not combine with other choices")
        invariant_value: str | tuple[str, ...] = invariant[0] if len(invariant) == 1 else tuple(dict.fromkeys(invariant))
        _check_point_masses(components)
        constraints = _check_constraints(constraints)
        equal = _check_terms(equal, "equal")
        nested = _check_nested(nested, k)
        for name, value in (("group", group), ("weights", weights)):
            if value is not None and (not isinstance(value, str) or not value):
                raise SpecificationError(f"{name} must be a column name, got {value!r}")
        if weight_type not in WEIGHT_TYPES:
            raise SpecificationError(
                f"weight_type={weight_type!r} not recognised; choose from {', '.join(WEIGHT_TYPES)}"
            )
        for name, value in (
            ("components", components),
            ("k", k),
            ("hybrid", hybrid),
            ("lcprob", lcprob),
            ("lcinvariant", invariant_value),
            ("lcbase", lcbase),
            ("constraints", constraints),
            ("group", group),
            ("equal", equal),
            ("nested", nested),
            ("weights", weights),
            ("weight_type", weight_type),
        ):
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        """The constructor call that builds this model again: ``eval(repr(model), vars(bf))``
        equals ``model`` (names ``FMM``/``Component`` unqualified, as statsmodels prints)."""
        comps = self.components
        if not self.hybrid and len(comps) == 1:
            c = comps[0]
            args = [repr(c.formula), f"family={c.family_name!r}", f"k={self.k}"]
            args += [f"{key}={getattr(c, key)!r}" for key in ("offset", "exposure") if getattr(c, key)]
            args += [f"{key}={value!r}" for key, value in c.options.items()]
        else:
            args = ["[" + ", ".join(map(repr, comps)) + "]"] + ([] if self.hybrid else [f"k={self.k}"])
        defaults = {"lcinvariant": "none", "lcbase": 1, "weight_type": "fweight"}
        args += [
            f"{key}={value!r}" for key, value in self.structure_options().items()
            if value is not None and value != defaults.get(key)
        ]
        return f"{type(self).__name__}({', '.join(args)})"

    @property
    def invariant_classes(self) -> tuple[str, ...]:
        """``lcinvariant`` as a tuple of parameter classes (``"all"`` expanded); empty for none."""
        chosen = (self.lcinvariant,) if isinstance(self.lcinvariant, str) else tuple(self.lcinvariant)
        if "all" in chosen:
            return ("cons", "coef", "errvar", "scale")
        return tuple(c for c in chosen if c != "none")

    @property
    def has_structure_constraints(self) -> bool:
        """Whether any parameter is tied or fixed (lcinvariant, equal, nested, constraints)."""
        return bool(self.invariant_classes or self.equal or self.nested or self.constraints)

    def structure_options(self) -> dict[str, Any]:
        """The class-structure arguments of the constructor (everything but the components
        and ``k``), to rebuild the model with other components or another ``k``."""
        return {
            "lcprob": self.lcprob,
            "lcinvariant": self.lcinvariant,
            "lcbase": self.lcbase,
            "constraints": list(self.constraints) or None,
            "group": self.group,
            "equal": list(self.equal) or None,
            "nested": {term: [list(g) for g in groups] for term, groups in self.nested} or None,
            "weights": self.weights,
            "weight_type": self.weight_type,
        }

    def class_components(self, j: int) -> tuple[Component, ...]:
        """The components of class ``j`` (0-based)."""
        return (self.components[j],) if self.hybrid else self.components

    def class_lcprob(self, j: int) -> str | None:
        """The class-model formula of class ``j`` (0-based); None for the base class."""
        if j == self.lcbase - 1:
            return None
        if self.hybrid and self.lcprob is None:
            return self.components[j].lcprob
        return self.lcprob

    @property
    def responses(self) -> tuple[str, ...]:
        """Response names in order of first appearance."""
        seen: dict[str, None] = {}
        for comp in self.components:
            seen.setdefault(comp.response, None)
        return tuple(seen)

    def rebuild(self, components: Sequence[Component] | None = None, k: int | None = None, **changes: Any) -> "ModelSpec":
        """The same model (of the same type) with other components, another ``k`` or other
        structure options (the keyword arguments of the constructor).

        Examples
        --------
        >>> import bayesfmm as bf
        >>> bf.FMM("y ~ x", family="poisson", k=3).rebuild(k=2).k
        2
        """
        options = self.structure_options()
        options.update(changes)
        comps = list(self.components if components is None else components)
        if k is None and not self.hybrid:
            k = self.k
        return type(self)(comps, k=k, **options)
