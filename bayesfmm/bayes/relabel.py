"""Post-hoc relabelling of mixture draws, and detection of label switching.

The public home of the relabelling API: the numpy core (arrays whose axis 1 is the class,
:mod:`bayesfmm.bayes.relabel_core`: the ``"ecr"``, ``"stephens"``, ``"sort"`` and ``"pra"``
methods with their references, and detection within and across chains) and its DataTree
layer for a fitted mixture's posterior (:mod:`bayesfmm.bayes.relabel_idata`).

Examples
--------
>>> import numpy as np
>>> from bayesfmm.bayes.relabel import relabel
>>> relabel({"mu": np.array([[0.0, 5.0], [5.1, 0.1]])}, "sort", by="mu").draws["mu"][1]
array([0.1, 5.1])
"""

from __future__ import annotations

from bayesfmm.bayes.relabel_core import (
    METHODS,
    LabelSwitchingReport,
    Relabelling,
    apply_permutations,
    detect_label_switching,
    inverse_permutations,
    permute_probs,
    relabel,
)
from bayesfmm.bayes.relabel_idata import (
    PROBS_LIMIT,
    classification_probs,
    detect_label_switching_idata,
    posterior_class_arrays,
    relabel_idata,
)

__all__ = [
    "METHODS",
    "Relabelling",
    "LabelSwitchingReport",
    "relabel",
    "apply_permutations",
    "permute_probs",
    "inverse_permutations",
    "detect_label_switching",
    "relabel_idata",
    "detect_label_switching_idata",
    "PROBS_LIMIT",
    "posterior_class_arrays",
    "classification_probs",
]
