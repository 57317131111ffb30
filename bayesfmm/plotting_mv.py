"""Pairs plot of a multivariate normal mixture: every pair of responses as a scatter
coloured by the modal (most probable) class, with each class's covariance ellipse
(``level`` coverage of its bivariate normal) around its mean; histograms by class on the
diagonal. The model-based clustering picture of mclust's ``plot(..., "classification")``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesfmm.mvresults import _mv_components, class_means, classify, covariance_matrices

__all__ = ["pairs_plot", "ellipse_points"]


def ellipse_points(mean: np.ndarray, cov: np.ndarray, level: float = 0.95, n: int = 100) -> np.ndarray:
    """``n`` points (n x 2) on the ``level`` contour of the bivariate normal.

    Examples
    --------
    >>> pts = ellipse_points(np.zeros(2), np.eye(2), level=0.95)
    >>> round(float(np.hypot(*pts[0])), 4)
    2.4477
    """
    from scipy.stats import chi2

    radius = np.sqrt(chi2.ppf(level, 2))
    angles = np.linspace(0, 2 * np.pi, n)
    circle = np.c_[np.cos(angles), np.sin(angles)] * radius
    return np.asarray(mean)[None, :] + circle @ np.linalg.cholesky(cov).T


def pairs_plot(res, level: float = 0.95, figsize: Any = None, alpha: float = 0.6):
    """Scatter matrix of the responses of the first ``mvnormal`` component, coloured by
    modal class, with each class's ``level`` ellipse. Returns the matplotlib figure.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import bayesfmm as bf
    >>> res = bf.FMM("eruptions + waiting ~ 1", family="mvnormal", k=2).fit(bf.datasets.load("faithful"))
    >>> len(pairs_plot(res).axes)
    4
    """
    import matplotlib.pyplot as plt

    _, c, comp = next(_mv_components(res.problem))
    names = list(comp.family.options["responses"])
    d = len(names)
    y = np.asarray(comp.y, dtype=float)
    modal = classify(res)["class"].to_numpy()
    means = class_means(res)
    covs = covariance_matrices(res)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    size = figsize or (2.6 * d, 2.6 * d)
    fig, axes = plt.subplots(d, d, figsize=size, squeeze=False)
    for a in range(d):
        for b in range(d):
            ax = axes[a, b]
            if a == b:
                for j in range(1, res.k + 1):
                    ax.hist(y[modal == j, a], bins=20, color=colours[(j - 1) % len(colours)], alpha=alpha)
            else:
                for j in range(1, res.k + 1):
                    colour = colours[(j - 1) % len(colours)]
                    rows = modal == j
                    ax.scatter(y[rows, b], y[rows, a], s=8, color=colour, alpha=alpha, label=f"class {j}" if (a, b) == (1, 0) else None)
                    centre = means.iloc[0].loc[j].to_numpy()[[b, a]]
                    sub = covs[j].to_numpy()[np.ix_([b, a], [b, a])]
                    pts = ellipse_points(centre, sub, level)
                    ax.plot(pts[:, 0], pts[:, 1], color=colour, lw=1.5)
            if a == d - 1:
                ax.set_xlabel(names[b])
            if b == 0:
                ax.set_ylabel(names[a])
    if d > 1:
        axes[1, 0].legend(fontsize="small")
    fig.suptitle(f"Modal class and {level:.0%} ellipses")
    fig.tight_layout()
    return fig
