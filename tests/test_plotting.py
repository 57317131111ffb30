"""Plots of a fitted mixture (bayesfmm.plotting), drawn with the Agg backend.

The numbers checked come from the drawn artists themselves: the line data of the mixture
density and of the weighted components, and the histogram bars. Oracles: a density
integrates to 1; the weighted components add up to the mixture; each component equals
``pi_j * scipy.stats.norm.pdf(y, mean_j, sd_j)`` with the fitted parameters.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests never need a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats  # noqa: E402

import bayesfmm as bf  # noqa: E402
from bayesfmm.plotting import plot_class_posterior, plot_mixture_density  # noqa: E402


@pytest.fixture(scope="module")
def normal_fit():
    return bf.FMM("thickness ~ 1", family="gaussian", k=3).fit(bf.datasets.load("stamp"))


@pytest.fixture(scope="module")
def lognormal_fit():
    return bf.FMM("thickness ~ 1", family="lognormal", k=3).fit(bf.datasets.load("stamp"))


@pytest.fixture(scope="module")
def regression_data():
    rng = np.random.default_rng(1)
    n = 300
    x = rng.standard_normal(n)
    cls = rng.integers(0, 2, n)
    y = np.where(cls == 1, 5 + x, -5 - 2 * x) + 0.5 * rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "z": rng.standard_normal(n)})


@pytest.fixture
def ax():
    """Axes of a figure made without pyplot (nothing to close)."""
    return Figure().subplots()


@pytest.fixture(autouse=True)
def _close_pyplot_figures():
    yield
    plt.close("all")


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def test_density_draws_mixture_and_one_line_per_class(normal_fit, ax):
    out = plot_mixture_density(normal_fit, ax=ax)
    assert out is ax
    assert len(ax.lines) == normal_fit.k + 1
    assert len(ax.patches) > 10  # histogram bars
    assert ax.get_xlabel() == "thickness"
    assert ax.get_ylabel() == "Density"
    assert ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(legend) == normal_fit.k + 2  # histogram, mixture, k components


def test_density_without_components_draws_one_line(normal_fit, ax):
    plot_mixture_density(normal_fit, ax=ax, show_components=False, label="fit")
    assert len(ax.lines) == 1
    assert ax.lines[0].get_label() == "fit"


def test_density_integrates_to_one(normal_fit, lognormal_fit, ax):
    # a wide grid holds (almost) all of the mass
    plot_mixture_density(normal_fit, ax=ax, grid=np.linspace(0.0, 0.25, 5001))
    x, y = (np.asarray(v) for v in ax.lines[0].get_data())
    assert _trapezoid(x, y) == pytest.approx(1.0, abs=1e-2)
    # the default grid covers the data range widened by 5% a side: stamp's wide class 3
    # leaves about 0.3% of the mass outside it
    for res in (normal_fit, lognormal_fit):
        fresh = Figure().subplots()
        plot_mixture_density(res, ax=fresh)
        x, y = (np.asarray(v) for v in fresh.lines[0].get_data())
        assert _trapezoid(x, y) == pytest.approx(1.0, abs=1e-2)


def test_histogram_is_density_normalised(normal_fit, ax):
    plot_mixture_density(normal_fit, ax=ax)
    area = sum(bar.get_width() * bar.get_height() for bar in ax.patches)
    assert area == pytest.approx(1.0, rel=1e-9)


def test_components_add_up_and_match_the_fitted_normals(normal_fit, ax):
    plot_mixture_density(normal_fit, ax=ax)
    x, mixture = (np.asarray(v) for v in ax.lines[0].get_data())
    components = np.array([np.asarray(line.get_ydata()) for line in ax.lines[1:]])
    np.testing.assert_allclose(components.sum(axis=0), mixture, rtol=1e-10, atol=1e-12)
    params = normal_fit.params
    pi = normal_fit.lcprob()["margin"]
    for j in range(1, normal_fit.k + 1):
        mean = params[(j, "thickness", "Intercept")]
        sd = np.sqrt(params[(j, "thickness", "var(e)")])
        expected = pi[j] * stats.norm.pdf(x, mean, sd)
        np.testing.assert_allclose(components[j - 1], expected, rtol=1e-8, atol=1e-12)


def test_lognormal_default_grid_stays_in_the_support(lognormal_fit, ax):
    plot_mixture_density(lognormal_fit, ax=ax)
    x = np.asarray(ax.lines[0].get_xdata())
    assert x.min() > 0
    assert np.all(np.isfinite(np.asarray(ax.lines[0].get_ydata())))


def test_custom_bins_are_used(normal_fit, ax):
    plot_mixture_density(normal_fit, ax=ax, bins=12)
    assert len(ax.patches) == 12


def test_new_figure_when_no_axes(normal_fit):
    out = plot_mixture_density(normal_fit)
    assert out.figure is not None
    assert len(out.lines) == normal_fit.k + 1


def test_regression_model_raises_specification_error(regression_data):
    res = bf.FMM("y ~ x", k=2).fit(regression_data)
    with pytest.raises(bf.SpecificationError, match="intercept-only"):
        plot_mixture_density(res)


def test_class_covariates_raise_specification_error(regression_data):
    res = bf.FMM("y ~ 1", k=2, lcprob="~ z").fit(regression_data)
    with pytest.raises(bf.SpecificationError, match="class probabilities"):
        plot_mixture_density(res)


def test_unknown_equation_raises(normal_fit, ax):
    with pytest.raises(bf.SpecificationError, match="not a response"):
        plot_mixture_density(normal_fit, ax=ax, equation="weight")


def test_class_posterior_one_sorted_line_per_class(normal_fit, ax):
    out = plot_class_posterior(normal_fit, ax=ax)
    assert out is ax
    assert len(ax.lines) == normal_fit.k
    assert ax.get_xlabel() == "thickness"
    xs = [np.asarray(line.get_xdata()) for line in ax.lines]
    ys = np.array([np.asarray(line.get_ydata()) for line in ax.lines])
    assert np.all(np.diff(xs[0]) >= 0)
    np.testing.assert_allclose(ys.sum(axis=0), 1.0, atol=1e-12)
    # the same probabilities as predict, in the order of the response
    posterior = normal_fit.predict(kind="classposteriorpr")
    y = bf.datasets.load("stamp").loc[posterior.index, "thickness"].to_numpy()
    order = np.argsort(y, kind="stable")
    for j, line in zip(posterior.columns, ys):
        np.testing.assert_allclose(line, posterior[j].to_numpy()[order])


def test_class_posterior_with_covariates_draws_points(regression_data, ax):
    res = bf.FMM("y ~ x", k=2).fit(regression_data)
    plot_class_posterior(res, ax=ax)
    assert len(ax.lines) == 2
    assert all(line.get_linestyle() == "None" for line in ax.lines)
