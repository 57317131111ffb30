"""Bayesian mode: the same mixture in PyMC, sampled by NUTS (see ``docs/bayes.md``).

Importing this package does not import PyMC; the builder and the samplers import it when
they run.
"""

from __future__ import annotations

from bayesfmm.bayes.priors import Flat, Normal, StudentT
from bayesfmm.bayes.results import BayesResults, BayesSummary, MAPResults, compare

__all__ = ["Normal", "StudentT", "Flat", "BayesResults", "BayesSummary", "MAPResults", "compare"]
