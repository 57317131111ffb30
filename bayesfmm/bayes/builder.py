"""The PyMC model of a mixture, assembled from the same spec, design, layout and densities.

Nothing here knows a family by name. The free random variables are the layout's ``theta``
(class logits with the base class fixed at 0, regression coefficients, auxiliary
parameters on their optimiser scale), one PyMC variable per (equation, term) stacked over
the classes that have it, with named dimensions:

* ``Class_<term>``: class-model coefficients, dimension ``nonbase_class``;
* ``<response>_<term>``: the first slot's coefficients (``thickness_Intercept``);
* ``<response>_<slot>_<term>``: other linear slots; ``<response>_<slot>`` for an
  auxiliary slot (``thickness_lnvar``, the log error variance), dimension ``class``.

A variable present in some classes only (hybrid syntax) gets dimension
``class_<classes>`` (``class_1_3``). Under constraints (``lcinvariant``, ``equal``,
``nested``, ``constraints``) only the free parameters are random variables, over the classes
where they are free (``y_x2`` with dimension ``class_1`` when ``x2`` is equal across classes);
the tied and fixed ones follow as ``theta = T phi + c``. With ``weights=`` each unit's log
likelihood is multiplied by its weight; with ``group=`` a group's log likelihood (its rows
share one class) is recorded on its first row, 0 on the others, so the pointwise
``log_likelihood`` sums to the model's. The observed variable (named after the response, or
``responses`` when there are several) is a ``pm.CustomDist`` whose pointwise log density
is ``logsumexp_j(log pi_ij + sum_c log f_cj(y_ci))``: the mixture layer of
:mod:`bayesfmm.mixture`, the same code as the numpy likelihood, evaluated with
:func:`bayesfmm.ops.pytensor_ops`. The mixture is marginalised (no discrete latent
variable), so NUTS applies, and ``pm.compute_log_likelihood`` gives the pointwise
``log_likelihood`` group LOO needs. Its ``random`` is the package's response simulator
(:func:`bayesfmm.bayes.predictive.custom_dist_random`), so ``pm.sample_prior_predictive``
and ``pm.sample_posterior_predictive`` draw from the same model, one class per group with
``group=``.

A joint prior over several parameters that are not one variable (a ``mvnormal``
covariance's LKJ prior, ``PriorTable.covariance``: :mod:`bayesfmm.bayes.mvprior`) is a
``pm.Potential`` named ``covariance_prior_<n>`` on ``theta``; the variables holding those
parameters are then ``pm.Flat`` (their other positions' priors in a potential
``<name>_prior``), so the model's prior density is the table's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesfmm.bayes.exchangeable import CORRELATION
from bayesfmm.bayes.identify import (
    OrderSpec,
    anchored_forward,
    anchored_transform,
    ordered_forward,
    ordered_transform,
    resolve_order,
)
from bayesfmm.bayes.mvprior import active_covariance_priors
from bayesfmm.bayes.predictive import custom_dist_random
from bayesfmm.bayes.priors import Flat, Normal, PriorTable, StudentT, resolve_priors
from bayesfmm.design import build_design
from bayesfmm.errors import SpecificationError
from bayesfmm.mixture import MixtureProblem, mixture_terms, pointwise_loglike
from bayesfmm.ml.start import one_class_fit
from bayesfmm.ops import pytensor_ops
from bayesfmm.params import build_layout

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pymc as pm

    from bayesfmm.spec import ModelSpec as FMM

__all__ = ["RVGroup", "BuiltModel", "build", "problem_for", "rv_groups", "free_groups"]


@dataclass(frozen=True, eq=False)
class RVGroup:
    """One PyMC free variable: a parameter over the classes that have it.

    ``positions[i]`` is the place in ``theta`` of the value for class ``classes[i]``.
    """

    name: str
    kind: str  # "class" or "slot"
    classes: tuple[int, ...]
    positions: np.ndarray
    dim: str


def problem_for(spec: "FMM", data: "pd.DataFrame") -> tuple[MixtureProblem, np.ndarray]:
    """The mixture problem of ``spec`` on ``data`` and its pooled (1-class) fit."""
    design = build_design(spec, data)
    problem = MixtureProblem.build(design, build_layout(design))
    return problem, one_class_fit(problem)


def _rv_name(problem: MixtureProblem, block, term: str) -> str:
    if block.kind == "class":
        return f"Class_{term}"
    comp = problem.design.classes[block.class_ - 1][block.component]
    slot = comp.family.slots[block.slot]
    if not slot.linear:
        return f"{block.equation}_{slot.name}"
    if block.slot == 0:
        return f"{block.equation}_{term}"
    return f"{block.equation}_{slot.name}_{term}"


def rv_groups(problem: MixtureProblem) -> tuple[RVGroup, ...]:
    """Group the positions of ``theta`` into PyMC variables (see the module docstring)."""
    layout = problem.layout
    entries: dict[str, list[tuple[int, int]]] = {}
    kinds: dict[str, str] = {}
    for block in layout.blocks:
        for i, term in enumerate(block.terms):
            name = _rv_name(problem, block, term)
            taken = entries.setdefault(name, [])
            if any(cls == block.class_ for cls, _ in taken):  # same name twice in a class
                name = f"{name}_c{block.component + 1}"
                taken = entries.setdefault(name, [])
            taken.append((block.class_, block.start + i))
            kinds[name] = block.kind
    groups = []
    all_classes = tuple(range(1, problem.k + 1))
    nonbase = tuple(c for c in all_classes if c != layout.base + 1)
    for name, taken in entries.items():
        taken.sort()
        classes = tuple(c for c, _ in taken)
        if classes == all_classes:
            dim = "class"
        elif kinds[name] == "class" and classes == nonbase:
            dim = "nonbase_class"
        else:
            dim = "class_" + "_".join(map(str, classes))
        positions = np.array([p for _, p in taken], dtype=int)
        groups.append(RVGroup(name, kinds[name], classes, positions, dim))
    return tuple(groups)


def free_groups(problem: MixtureProblem, groups: tuple[RVGroup, ...]) -> tuple[RVGroup, ...]:
    """The groups restricted to the free parameters under constraints (``lcinvariant``,
    ``equal``, ``constraints``, ...): a parameter tied to another or fixed at a value is not a
    random variable of its own; the model computes it as ``theta = T phi + c``."""
    cons = problem.layout.constraints
    if cons is None:
        return groups
    free = set(cons.free.tolist())
    all_classes = tuple(range(1, problem.k + 1))
    nonbase = tuple(c for c in all_classes if c != problem.layout.base + 1)
    out = []
    for g in groups:
        keep = [i for i, pos in enumerate(g.positions) if int(pos) in free]
        if len(keep) == len(g.positions):
            out.append(g)
            continue
        if not keep:
            continue
        classes = tuple(g.classes[i] for i in keep)
        if classes == all_classes:
            dim = "class"
        elif g.kind == "class" and classes == nonbase:
            dim = "nonbase_class"
        else:
            dim = "class_" + "_".join(map(str, classes))
        out.append(RVGroup(g.name, g.kind, classes, g.positions[keep], dim))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class BuiltModel:
    """The PyMC model with the maps between its variables and the layout's ``theta``."""

    model: "pm.Model"
    problem: MixtureProblem
    groups: tuple[RVGroup, ...]
    priors: PriorTable
    order: OrderSpec | None
    observed: str
    pooled: np.ndarray

    @property
    def order_group(self) -> RVGroup | None:
        return None if self.order is None else self.group(self.order.group)

    def group(self, name: str) -> RVGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def constrained_point(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """``{rv name: value}`` at ``theta`` (the scale the priors are written on)."""
        theta = np.asarray(theta, dtype=float)
        return {g.name: theta[g.positions].copy() for g in self.groups}

    def value_point(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """``{value variable name: value}`` at ``theta``, on the sampler's unconstrained scale."""
        model = self.model
        out = {}
        for g in self.groups:
            rv = model[g.name]
            value = np.asarray(theta, dtype=float)[g.positions]
            if self.order is not None and g.name == self.order.group:
                if self.order.kind == "classpr":
                    value = anchored_forward(value, self.problem.layout.base)
                else:
                    value = ordered_forward(value)
            out[model.rvs_to_values[rv].name] = value
        return out

    def flat_value(self, theta: np.ndarray) -> np.ndarray:
        """The unconstrained point as one vector, in ``model.free_RVs`` order (nutpie's)."""
        point = self.value_point(theta)
        return np.concatenate([point[self.model.rvs_to_values[rv].name] for rv in self.model.free_RVs])

    def theta_logp_function(self, jacobian: bool = False):
        """Compile the model's log density and its gradient as functions of ``theta``.

        Returns ``f(theta) -> (logp, gradient)``: the PyMC model's joint log density (log
        likelihood plus log prior; without the ordering transform's Jacobian unless
        ``jacobian``), its value variables replaced by their values at ``theta``.
        """
        import pytensor
        import pytensor.tensor as pt
        from pytensor.graph import clone_replace

        model = self.model
        theta = pt.dvector("theta")
        replacements = {}
        for g in self.groups:
            rv = model[g.name]
            value = theta[g.positions]
            transform = model.rvs_to_transforms.get(rv)
            if transform is not None:
                value = transform.forward(value)
            replacements[model.rvs_to_values[rv]] = value
        logp = clone_replace(model.logp(jacobian=jacobian), replacements)
        return pytensor.function([theta], [logp, pt.grad(logp, theta)], on_unused_input="ignore")

    def theta_from_posterior(self, posterior) -> np.ndarray:
        """Posterior draws of ``theta``: an array (chain, draw, p) from the posterior Dataset."""
        first = posterior[self.groups[0].name]
        chains, draws = first.sizes["chain"], first.sizes["draw"]
        theta = np.empty((chains, draws, self.problem.layout.size))
        for g in self.groups:
            values = posterior[g.name].transpose("chain", "draw", g.dim).to_numpy()
            theta[:, :, g.positions] = values
        cons = self.problem.layout.constraints
        if cons is not None:  # tied and fixed parameters from the free ones
            theta = theta[:, :, cons.free] @ cons.T.T + cons.c
        return theta


def _joint_prior_rv(name: str, group: RVGroup, priors: PriorTable, joint: set[int]):
    """``group``'s variable when a joint prior covers some of its positions: flat, with the
    per-position priors of the others in a potential."""
    import pymc as pm
    import pytensor.tensor as pt

    rv = pm.Flat(name, dims=group.dim)
    terms = []
    for i, pos in enumerate(group.positions.tolist()):
        prior = priors.priors[pos]
        if pos in joint or isinstance(prior, Flat):
            continue
        if isinstance(prior, StudentT):
            terms.append(pm.logp(pm.StudentT.dist(nu=prior.nu, mu=prior.mu, sigma=prior.sigma), rv[i]))
        else:
            terms.append(pm.logp(pm.Normal.dist(mu=prior.mu, sigma=prior.sigma), rv[i]))
    if terms:
        pm.Potential(f"{name}_prior", pt.add(*terms) if len(terms) > 1 else terms[0])
    return rv


def _prior_rv(name: str, group: RVGroup, priors: PriorTable, transform, joint: set[int] = frozenset()):
    import pymc as pm

    if joint & set(group.positions.tolist()):
        if transform is not None:
            raise SpecificationError(f"{name} carries a joint (LKJ) prior and cannot be the ordering variable: choose order=")
        return _joint_prior_rv(name, group, priors, joint)
    chosen = [priors.priors[p] for p in group.positions]
    kinds = {type(p) for p in chosen}
    if len(kinds) > 1:
        raise SpecificationError(
            f"the priors of {name} mix {sorted(k.__name__ for k in kinds)} across classes; one "
            "parameter takes one distribution (its mu and sigma may differ by class)"
        )
    kind = kinds.pop()
    extra: dict[str, Any] = {"dims": group.dim}
    if transform is not None:
        extra["transform"] = transform
    if kind is Flat:
        return pm.Flat(name, **extra)
    mu = np.array([p.mu for p in chosen])
    sigma = np.array([p.sigma for p in chosen])
    if kind is Normal and set(group.positions.tolist()) in [set(g) for g in priors.correlated]:
        # the exchangeable class-model default: the free logits are jointly normal
        corr = np.full((sigma.size, sigma.size), CORRELATION) + (1 - CORRELATION) * np.eye(sigma.size)
        return pm.MvNormal(name, mu=mu, cov=corr * np.outer(sigma, sigma), **extra)
    if kind is Normal:
        return pm.Normal(name, mu=mu, sigma=sigma, **extra)
    if kind is StudentT:
        nu = np.array([p.nu for p in chosen])
        return pm.StudentT(name, nu=nu, mu=mu, sigma=sigma, **extra)
    raise AssertionError(kind)  # pragma: no cover


def mixture_loglike_graph(problem: MixtureProblem, theta, value, responses: tuple[str, ...]):
    """Pointwise mixture log likelihood (n,) as a pytensor graph of ``theta`` and ``value``:
    the mixture layer (:mod:`bayesfmm.mixture`) with :func:`bayesfmm.ops.pytensor_ops`."""
    ops = pytensor_ops()
    y = {name: (value if len(responses) == 1 else value[:, r]) for r, name in enumerate(responses)}
    terms = mixture_terms(problem, theta, ops, y)
    return pointwise_loglike(problem, terms.ll_units, ops)


def build(
    problem: MixtureProblem,
    pooled: np.ndarray,
    priors: Any = None,
    order: Any = "auto",
) -> BuiltModel:
    """Assemble the PyMC model of ``problem`` (see the module docstring)."""
    import pymc as pm
    import pytensor.tensor as pt

    table = resolve_priors(problem, priors, pooled)
    groups = free_groups(problem, rv_groups(problem))
    spec = resolve_order(problem, groups, order)
    design = problem.design
    responses = design.spec.responses
    observed = responses[0] if len(responses) == 1 else "responses"
    if observed in {g.name for g in groups}:
        observed = f"{observed}_obs"
    coords: dict[str, Any] = {"obs": np.asarray(design.index), "class": np.arange(1, problem.k + 1)}
    for g in groups:
        coords.setdefault(g.dim, np.array(g.classes))
    if len(responses) > 1:
        coords["response"] = list(responses)
    y_columns = {}
    for comps in design.classes:
        for comp in comps:
            y_columns.setdefault(comp.response, comp.y)
    y_obs = y_columns[responses[0]] if len(responses) == 1 else np.column_stack([y_columns[r] for r in responses])
    if len(responses) == 1 and np.ndim(y_obs) == 2:  # one component of several responses (mvnormal)
        coords["response"] = list(design.classes[0][0].family.options.get("responses", range(np.shape(y_obs)[1])))
    size = problem.layout.size

    blocks = active_covariance_priors(table, problem.layout)
    joint = {int(p) for block in blocks for p in block.positions}

    # a root model even when built inside a user's model context (initial_points there)
    with pm.Model(coords=coords, model=None) as model:
        rvs = []
        for g in groups:
            transform = None
            if spec is not None and g.name == spec.group:
                transform = anchored_transform(problem.layout.base) if spec.kind == "classpr" else ordered_transform()
            rvs.append(_prior_rv(g.name, g, table, transform, joint))
        positions = np.concatenate([g.positions for g in groups])
        stacked = pt.concatenate([pt.as_tensor_variable(rv).ravel() for rv in rvs])
        cons = problem.layout.constraints
        if cons is None:
            inverse = np.empty(size, dtype=int)
            inverse[positions] = np.arange(size)
            theta = stacked[inverse]
        else:  # theta = T phi + c, phi in the order of cons.free
            inverse = np.argsort(np.searchsorted(cons.free, positions))
            theta = pt.dot(pt.constant(cons.T), stacked[inverse]) + pt.constant(cons.c)
        for b, block in enumerate(blocks):
            pm.Potential(f"covariance_prior_{b + 1}", block.graph(theta))

        def logp(value, theta_, *_support):
            # PyMC pads the core parameter with batch dimensions of length 1
            theta_ = theta_[(0,) * (theta_.ndim - 1)] if theta_.ndim > 1 else theta_
            return mixture_loglike_graph(problem, theta_, value, responses)

        random = custom_dist_random(problem)
        if len(responses) == 1 and np.ndim(y_obs) == 1:
            params, signature, dims = (theta,), "(p)->()", ("obs",)
        else:  # a zero vector of length r tells PyMC the support shape of one observation
            params = (theta, pt.zeros(np.shape(y_obs)[1]))
            signature, dims = "(p),(r)->(r)", ("obs", "response")
        pm.CustomDist(observed, *params, logp=logp, random=random, signature=signature, observed=y_obs, dims=dims)
    return BuiltModel(model, problem, groups, table, spec, observed, pooled)
