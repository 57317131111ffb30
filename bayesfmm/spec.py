"""Model specifications: :class:`FMM` and :class:`Component`, immutable and validated.

A specification holds no data and no fitted state: one ``FMM`` gives ML results
(:meth:`FMM.fit`) and, in the Bayesian mode, posterior draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from bayesfmm.errors import SpecificationError
from bayesfmm.families.base import Family
from bayesfmm.families.registry import canonical_name, get_family

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from bayesfmm.bayes.results import BayesResults
    from bayesfmm.results import MLResults

__all__ = ["Component", "FMM"]

LCINVARIANT_CHOICES = ("none", "cons", "coef", "errvar", "scale", "all")


def _parse_formula(formula: Any, what: str, need_lhs: bool) -> str:
    if not isinstance(formula, str) or not formula.strip():
        raise SpecificationError(f"{what} must be a formula string such as 'y ~ x1 + x2', got {formula!r}")
    from formulaic import Formula

    try:
        parsed = Formula(formula)
    except Exception as exc:  # formulaic raises several parser errors
        raise SpecificationError(f"{what} {formula!r} is not a valid formula: {exc}") from None
    has_lhs = hasattr(parsed, "lhs")
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
    from formulaic import Formula

    for comp in components:
        if comp.family.n_slots == 0 and any(str(t) != "1" for t in Formula(comp.formula).rhs):
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


def _freeze(options: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(options))


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
        object.__setattr__(self, "options", _freeze(options))
        self.family  # builds the family once: unknown options fail here

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
        extra = f", lcprob={self.lcprob!r}" if self.lcprob else ""
        return f"Component({self.formula!r}, family={self.family_name!r}{extra}{opts})"


@dataclass(frozen=True, init=False)
class FMM:
    """A finite mixture model: latent classes, each with component models.

    Standard syntax (Stata ``fmm 3: regress y x``) gives a formula, a family and ``k``;
    hybrid syntax (Stata ``fmm: (regress y x) (poisson y x)``) gives a list of
    :class:`Component`, one per class. A list together with ``k`` fits every component in
    each of the ``k`` classes (Stata ``fmm 3: (regress y1) (poisson y2)``).

    Parameters
    ----------
    spec
        A formula string, or a sequence of :class:`Component`.
    family
        Family of the standard syntax (default ``"gaussian"``).
    k
        Number of latent classes (standard syntax).
    lcprob
        ``"~ z1 + z2"``: covariates of the class probabilities (multinomial logit).
    lcinvariant
        Stata's ``lcinvariant()``: component parameters constrained equal across classes,
        by parameter class: ``"none"`` (default), ``"cons"`` (intercepts, cutpoints),
        ``"coef"`` (the other regression coefficients), ``"errvar"`` (error variances),
        ``"scale"`` (other auxiliary parameters: ``alpha``, ``scale``), ``"all"``, or a
        list of them.
    lcbase
        Base latent class, 1-based (its logit is fixed at 0).
    constraints
        Linear constraints on named parameters, a string or a list of strings in the
        syntax of ``res.test``: ``"[1]x1 = [2]x1"``, ``"[3]Intercept = 0"``,
        ``"[1]x1 + [2]x1 = 1"``, ``"[1]var(e) = [2]var(e)"`` (auxiliary parameters can be
        set equal or fixed at a value). See docs/structure.md.
    equal
        flexmix's ``fixed`` effects: terms whose coefficient is one parameter shared by every
        class (``["x2"]``, or ``["y:x2"]`` naming the equation).
    nested
        flexmix's ``nested`` effects: ``{"x1": [(2, 3)]}`` shares the coefficient of ``x1``
        within each listed group of classes.
    group
        A column: all rows of a group belong to one class (flexmix ``y ~ x | g``); the
        likelihood is a product over groups and posterior class probabilities are per group.
    weights, weight_type
        A weight column and its kind: ``"fweight"`` (frequency: a row counts ``w`` times),
        ``"pweight"`` (sampling weights; implies ``vce="robust"``), ``"iweight"``
        (importance: the log likelihood of a row is multiplied by ``w``), as in Stata.
    **options
        Family options of the standard syntax.

    Examples
    --------
    >>> import bayesfmm as bf
    >>> model = bf.FMM("thickness ~ 1", family="gaussian", k=3)
    >>> model.k
    3
    >>> res = model.fit(bf.datasets.load("stamp"))  # doctest: +SKIP
    """

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

    def fit(self, data: "pd.DataFrame", **options: Any) -> "MLResults":
        """Fit by maximum likelihood as Stata ``fmm`` does: start values, EM, then Newton.

        See :func:`bayesfmm.ml.fit.fit_ml` for the options (``startvalues``, ``draws``,
        ``seed``, ``emopts``, ``iterate``, ``tolerance``, ``ltolerance``, ``nrtolerance``,
        ``vce``, ``log``).

        Examples
        --------
        >>> import bayesfmm as bf
        >>> res = bf.FMM("thickness ~ 1", k=3).fit(bf.datasets.load("stamp"))
        >>> round(res.llf, 3)
        1518.848
        """
        from bayesfmm.ml.fit import fit_ml

        return fit_ml(self, data, **options)

    def build_pymc(self, data: "pd.DataFrame", priors: Any = None, order: Any = "auto") -> Any:
        """The PyMC model (``pm.Model``) of this mixture on ``data``, for users who extend it.

        See ``docs/bayes.md``: one variable per parameter over the ``class`` dimension
        (``thickness_Intercept``, ``thickness_lnvar``, ``Class_Intercept``), the mixture
        marginalised, the pointwise log likelihood on the observed variable.

        Examples
        --------
        >>> import bayesfmm as bf
        >>> m = bf.FMM("thickness ~ 1", k=3).build_pymc(bf.datasets.load("stamp"))  # doctest: +SKIP
        >>> sorted(m.named_vars)  # doctest: +SKIP
        ['Class_Intercept', 'thickness', 'thickness_Intercept', 'thickness_lnvar']
        """
        from bayesfmm.bayes.sample import build_model

        return build_model(self, data, priors=priors, order=order).model

    def sample(
        self,
        data: "pd.DataFrame",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed: int | None = None,
        sampler: str = "nutpie",
        init: Any = "ml",
        priors: Any = None,
        order: Any = "auto",
        progressbar: bool | None = None,
        **kwargs: Any,
    ) -> "BayesResults":
        """Sample the posterior by NUTS: ``sampler="nutpie"`` (default), ``"pymc"`` or ``"numpyro"``.

        Chains start from the ML fit jittered by its standard errors (``init="ml"``; an
        ``MLResults`` to start from that fit, e.g. one with random starts; ``"pymc"`` for
        PyMC's own start); ``order="auto"`` orders the classes by the first
        component's intercept (``None`` to switch off, ``"classpr"``, or a parameter);
        ``priors`` overrides the default priors. Other keywords go to the sampler
        (``target_accept``, ``cores``, ...). See ``docs/bayes.md``.

        Examples
        --------
        >>> import bayesfmm as bf
        >>> post = bf.FMM("thickness ~ 1", k=3).sample(bf.datasets.load("stamp"), random_seed=1)  # doctest: +SKIP
        >>> post.diagnostics().passed  # doctest: +SKIP
        True
        """
        from bayesfmm.bayes.sample import sample

        return sample(
            self, data, draws=draws, tune=tune, chains=chains, random_seed=random_seed, sampler=sampler,
            init=init, priors=priors, order=order, progressbar=progressbar, **kwargs,
        )

    def map(self, data: "pd.DataFrame", priors: Any = None, **options: Any) -> "MLResults":
        """Posterior mode (MAP) by scipy on the PyMC model's log density; equals ML with
        ``priors="flat"``. Returns MAPResults (MLResults' API, Laplace standard errors).

        Examples
        --------
        >>> import bayesfmm as bf
        >>> mode = bf.FMM("thickness ~ 1", k=3).map(bf.datasets.load("stamp"))  # doctest: +SKIP
        """
        from bayesfmm.bayes.sample import map_estimate

        return map_estimate(self, data, priors=priors, **options)
