"""Is the maximum a proper interior one? Checks after an ML fit, each an
:class:`~bayesfmm.errors.IdentificationWarning` that names the parameters or the class and
says what to do.

* **Parameters running off to infinity** (:func:`drifting_parameters`). Newton stops where
  the gradient is small, and along a direction where the likelihood keeps rising towards
  a supremum at infinity it is small too: a perfectly predicted binary outcome in a class
  (separation: a logit coefficient at 792 with standard error 2.7e5), a probability or rate
  going to 0 in a class, a class probability going to 0 or 1. At a proper maximum, moving a
  parameter by :data:`STEP_SE` of its standard errors lowers the log likelihood by about
  ``STEP_SE**2 / 2`` (4.5) or more; where it lowers it by less than :data:`FLAT_DROP` (1)
  or raises it, the estimate is a point on the way to infinity, or on a likelihood that
  flattens out (a class where the outcome is almost perfectly predicted): its standard
  error and Wald interval mean nothing. Only parameters whose standard error on the optimiser's scale exceeds 1 and
  :data:`SE_SCREEN` times the estimate (or is missing) are moved, two likelihood
  evaluations each, so a well-identified fit on a large sample costs nothing.
* **Spurious small classes** (:func:`small_classes`): a class holding less than
  ``minprior`` of the observations (flexmix's ``minprior``, default 0.05) is often a class
  fitted to a few points. By default this warns; with ``fit(minprior=...)`` such classes
  are dropped and the model refitted with fewer (flexmix's behaviour).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from bayesfmm.errors import IdentificationWarning, SpecificationError
from bayesfmm.likelihood import MixtureProblem, evaluate, loglike
from bayesfmm.names import param_label

__all__ = [
    "DEFAULT_MINPRIOR",
    "Drift",
    "drifting_parameters",
    "small_classes",
    "class_shares",
    "warn_identification",
    "check_minprior",
    "without_classes",
]

DEFAULT_MINPRIOR = 0.05  # flexmix's default; here it warns, fit(minprior=) drops
STEP_SE = 3.0
FLAT_DROP = 1.0
SE_SCREEN = 0.5
BINARY_FAMILIES = ("bernoulli", "binomial")


@dataclass(frozen=True)
class Drift:
    """A parameter along which the log likelihood does not fall: ``direction`` (+1/-1) the
    way it rises or stays flat, ``change`` the log-likelihood change over ``step``."""

    position: int
    label: str
    value: float
    se: float
    direction: int
    step: float
    change: float


def drifting_parameters(problem: MixtureProblem, theta: np.ndarray, cov_theta: np.ndarray, llf: float) -> list[Drift]:
    """Parameters (on the optimiser's scale) whose likelihood is flat or rising outwards."""
    layout = problem.layout
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(cov_theta))
    fixed = layout.fixed_mask()
    out = []
    for i in range(layout.size):
        scale = max(1.0, abs(float(theta[i])))
        if fixed[i] or (np.isfinite(se[i]) and se[i] <= SE_SCREEN * scale and se[i] <= 1.0):
            continue
        step = STEP_SE * se[i] if np.isfinite(se[i]) and se[i] > 0 else 10.0 * scale
        outward = 1 if theta[i] >= 0 else -1
        for sign in (outward, -outward):
            trial = np.array(theta, dtype=float, copy=True)
            trial[i] += sign * step
            with np.errstate(all="ignore"):
                value = loglike(problem, layout.project(trial))
            if np.isfinite(value) and value > llf - FLAT_DROP:
                label = param_label(layout.index[i])
                out.append(Drift(i, label, float(theta[i]), float(se[i]), sign, float(step), float(value - llf)))
                break
    return out


def class_shares(problem: MixtureProblem, theta: np.ndarray, resp: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each class's share of the observations (mean posterior probability, weighted by
    row weights) and its posterior weight in rows (``resp``: the posterior at ``theta``,
    when the caller has it)."""
    resp = evaluate(problem, theta).resp if resp is None else resp
    weights = problem.row_weights
    counts = resp.sum(axis=0)
    if weights is None:
        return counts / resp.shape[0], counts
    return (weights[:, None] * resp).sum(axis=0) / weights.sum(), counts


def small_classes(
    problem: MixtureProblem, theta: np.ndarray, threshold: float, resp: np.ndarray | None = None
) -> list[tuple[int, float, float]]:
    """``(class, share, rows)`` of the classes with a share below ``threshold`` (1-based)."""
    if problem.k < 2 or threshold <= 0:
        return []
    shares, counts = class_shares(problem, theta, resp)
    return [(j + 1, float(shares[j]), float(counts[j])) for j in range(problem.k) if shares[j] < threshold]


def _component_of(problem: MixtureProblem, position: int):
    for block in problem.layout.blocks:
        if block.start <= position < block.stop and block.kind == "slot":
            return problem.design.classes[block.class_ - 1][block.component], block
    return None, None


def _drift_message(problem: MixtureProblem, drifts: list[Drift]) -> str:
    shown = ", ".join(
        f"{d.label} = {d.value:.4g} (std. err. {d.se:.3g}; {'+' if d.direction > 0 else '-'}{d.step:.3g} "
        f"changes the log likelihood by {d.change:+.3g})"
        for d in drifts[:6]
    )
    more = f" and {len(drifts) - 6} more" if len(drifts) > 6 else ""
    separated = []
    for d in drifts:
        comp, block = _component_of(problem, d.position)
        if comp is not None and block.linear and comp.family.name in BINARY_FAMILIES:
            separated.append(f"{comp.response} in class {block.class_}")
    text = (
        f"the maximum is not a proper interior one: moving {shown}{more} {STEP_SE:g} standard errors "
        f"outwards lowers the log likelihood by less than {FLAT_DROP:g} (a proper maximum: about "
        f"{STEP_SE ** 2 / 2:g}), so these estimates run off towards +/-infinity or sit on a likelihood "
        "that flattens out, and their standard errors and intervals are meaningless."
    )
    if separated:
        text += (
            f" The outcome is (nearly) perfectly predicted (separation) for {', '.join(dict.fromkeys(separated))}: "
            "Stata's fmm stops there (\"predicts outcome perfectly\"); drop or combine the regressor(s)."
        )
    return text + (
        " Fit fewer classes, drop the regressors named, or use priors (FMM.map, FMM.sample), "
        "which keep the estimates finite."
    )


def warn_identification(problem: MixtureProblem, theta: np.ndarray, cov_theta: np.ndarray, llf: float,
                        minprior: float | None, resp: np.ndarray | None = None, stacklevel: int = 4) -> None:
    """Issue the warnings of this module for a fitted point (nothing when it is proper)."""
    drifts = drifting_parameters(problem, theta, cov_theta, llf)
    if drifts:
        warnings.warn(_drift_message(problem, drifts), IdentificationWarning, stacklevel=stacklevel)
    threshold = DEFAULT_MINPRIOR if minprior is None else 0.0  # minprior given: small classes were dropped
    for j, share, rows in small_classes(problem, theta, threshold, resp):
        warnings.warn(
            f"class {j} holds {share:.2%} of the observations (posterior weight {rows:.1f} rows), below "
            f"{DEFAULT_MINPRIOR:g}: it may be spurious, a class fitted to a few points. Compare with "
            f"k={problem.k - 1} (res.ic(), bf.select), or fit(minprior={DEFAULT_MINPRIOR:g}) to drop such "
            "classes as flexmix does",
            IdentificationWarning,
            stacklevel=stacklevel,
        )


def check_minprior(minprior) -> float | None:
    """``minprior=``: None (warn below 0.05, drop nothing) or a share in [0, 1)."""
    if minprior is None:
        return None
    if isinstance(minprior, bool) or not isinstance(minprior, (int, float, np.floating, np.integer)) or not 0 <= minprior < 1:
        raise SpecificationError(f"minprior must be a class share in [0, 1) such as 0.05 (or None), got {minprior!r}")
    return float(minprior)


def without_classes(spec, drop: list[int]):
    """The model with the (1-based) classes ``drop`` removed (``minprior=``)."""
    if spec.constraints or spec.nested:
        raise SpecificationError(
            f"minprior= would drop class(es) {drop}, but the model's constraints or nested= name classes "
            "by number; drop the classes yourself (fewer classes) or leave minprior unset"
        )
    keep = [j for j in range(1, spec.k + 1) if j not in drop]
    if not keep:
        raise SpecificationError(f"minprior= would drop every class ({drop})")
    lcbase = keep.index(spec.lcbase) + 1 if spec.lcbase in keep else 1
    if spec.hybrid:
        return spec.rebuild(components=[spec.components[j - 1] for j in keep], lcbase=lcbase)
    return spec.rebuild(k=len(keep), lcbase=lcbase)
