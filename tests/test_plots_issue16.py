"""The plots of issue 16 (bayesfmm/classplots.py, re-exported by bayesfmm.plotting).

Each test renders the plot on Agg axes and checks what was drawn against numbers computed
here: expected count frequencies summed from ``predict(kind="density")`` (and, for an
intercept-only Poisson mixture, from scipy's Poisson pmf), the estimates and intervals of
``params``/``conf_int``, ``lcmean``, ``predict(kind="mu")`` on the grid, and a density that
integrates to about 1.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats  # noqa: E402

import bayesfmm as bf  # noqa: E402
from bayesfmm.plotting import (  # noqa: E402
    plot_class_profiles,
    plot_coefficients,
    plot_fitted_lines,
    plot_predictive_density,
    plot_rootogram,
)


@pytest.fixture
def ax():
    return Figure().subplots()


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fabric_fit():
    return bf.FMM("Faults ~ 1", family="poisson", k=2).fit(bf.datasets.load("fabricfault"))


@pytest.fixture(scope="module")
def npreg():
    return bf.datasets.load("NPreg")


@pytest.fixture(scope="module")
def npreg_fit(npreg):
    return bf.FMM("yn ~ x", k=2).fit(npreg)


def test_rootogram_bars_hang_from_the_expected_frequencies(fabric_fit, ax):
    y = bf.datasets.load("fabricfault").Faults.to_numpy()
    plot_rootogram(fabric_fit, ax=ax)
    counts = np.arange(y.max() + 1)
    assert len(ax.patches) == counts.size
    lam = np.exp([fabric_fit.params[(j, "Faults", "Intercept")] for j in (1, 2)])
    pi = fabric_fit.lcprob()["margin"].to_numpy()
    expected = y.size * (pi[0] * stats.poisson.pmf(counts, lam[0]) + pi[1] * stats.poisson.pmf(counts, lam[1]))
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), counts)
    np.testing.assert_allclose(line.get_ydata(), np.sqrt(expected), rtol=1e-8)
    observed = np.array([(y == c).sum() for c in counts])
    heights = np.array([bar.get_height() for bar in ax.patches])
    bottoms = np.array([bar.get_y() for bar in ax.patches])
    np.testing.assert_allclose(heights, np.sqrt(observed))
    np.testing.assert_allclose(bottoms + heights, np.sqrt(expected), rtol=1e-8)  # hanging
    assert ax.get_ylabel() == "sqrt(Frequency)" and ax.get_xlabel() == "Faults"


def test_rootogram_with_covariates_needs_and_uses_the_data(ax):
    fabric = bf.datasets.load("fabricfault")
    res = bf.FMM("Faults ~ log(Length)", family="poisson", k=2).fit(fabric)
    with pytest.raises(bf.SpecificationError, match="data="):
        plot_rootogram(res)
    plot_rootogram(res, fabric, ax=ax, max_count=10)
    assert len(ax.patches) == 11
    mu = res.predict(kind="mu").to_numpy()
    pi = res.predict(kind="classpr").to_numpy()
    expected0 = (pi * stats.poisson.pmf(0, mu)).sum()
    assert ax.lines[0].get_ydata()[0] == pytest.approx(np.sqrt(expected0), rel=1e-8)


def test_rootogram_refuses_a_continuous_response(npreg_fit, ax):
    with pytest.raises(bf.SpecificationError, match="count"):
        plot_rootogram(npreg_fit, ax=ax)


def test_coefficients_by_class_with_intervals(ax):
    fabric = bf.datasets.load("fabricfault")
    res = bf.FMM("Faults ~ log(Length)", family="poisson", k=2).fit(fabric)
    plot_coefficients(res, ax=ax, include_intercept=True)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["Faults: Intercept", "Faults: log(Length)"]
    assert len(ax.containers) == 2  # one errorbar per class
    ci = res.conf_int()
    for j, container in zip((1, 2), ax.containers):
        x = container.lines[0].get_xdata()
        np.testing.assert_allclose(x, [res.params[(j, "Faults", t)] for t in ("Intercept", "log(Length)")])
        segments = container.lines[2][0].get_segments()
        np.testing.assert_allclose([s[0][0] for s in segments], [ci.loc[(j, "Faults", t), "lower"] for t in ("Intercept", "log(Length)")])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 1", "class 2"]


def test_class_profiles_are_the_class_means(ax):
    faithful = bf.datasets.load("faithful")
    res = bf.FMM([bf.Component("eruptions ~ 1"), bf.Component("waiting ~ 1")], k=2).fit(faithful)
    plot_class_profiles(res, ax=ax)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["eruptions", "waiting"]
    assert len(ax.lines) == 2
    means = res.lcmean()["margin"]
    for j, line in zip((1, 2), ax.lines):
        np.testing.assert_allclose(line.get_ydata(), [means[(j, "eruptions")], means[(j, "waiting")]])


def test_fitted_lines_by_class(npreg, npreg_fit, ax):
    plot_fitted_lines(npreg_fit, npreg, ax=ax)
    assert len(ax.lines) == 2 and len(ax.collections) == 2
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(npreg)
    grid = ax.lines[0].get_xdata()
    np.testing.assert_allclose([grid.min(), grid.max()], [npreg.x.min(), npreg.x.max()])
    for j, line in zip((1, 2), ax.lines):
        b0, b1 = npreg_fit.params[(j, "yn", "Intercept")], npreg_fit.params[(j, "yn", "x")]
        np.testing.assert_allclose(line.get_ydata(), b0 + b1 * grid, rtol=1e-10)
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "yn"


def test_fitted_lines_refuse_two_regressors(ax):
    df = pd.DataFrame({"y": np.arange(20.0) % 7, "x": np.arange(20.0), "z": np.arange(20.0) % 3})
    res = bf.FMM("y ~ x + z", k=1).fit(df)
    with pytest.raises(bf.SpecificationError, match="one-regressor"):
        plot_fitted_lines(res, df, ax=ax)


def test_predictive_density_with_covariates(npreg, npreg_fit, ax):
    plot_predictive_density(npreg_fit, npreg, ax=ax, grid=300)
    x, f = (np.asarray(v) for v in ax.lines[0].get_data())
    area = float(np.sum(np.diff(x) * (f[1:] + f[:-1]) / 2))
    assert area == pytest.approx(1.0, abs=0.02)
    # the curve at a grid point is the row average of the marginal densities there
    at = npreg.assign(yn=x[150])
    assert f[150] == pytest.approx(npreg_fit.predict(at, kind="density", marginal=True).mean(), rel=1e-10)
    assert len(ax.patches) > 5  # the histogram


def test_the_density_plot_refusal_points_to_the_predictive_density(npreg_fit):
    from bayesfmm.plotting import plot_mixture_density

    with pytest.raises(bf.SpecificationError, match="plot_predictive_density"):
        plot_mixture_density(npreg_fit)
