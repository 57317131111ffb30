"""Shared fixtures: the stamp fits are computed once per session."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import bayesfmm as bf

REFERENCE = Path(__file__).parent / "reference"


def load_reference(name: str) -> dict:
    return json.loads((REFERENCE / name).read_text())


def sig_tolerance(reference: float, digits: int) -> float:
    """Half a unit in the ``digits``-th significant digit of ``reference``."""
    if reference == 0:
        return 0.5 * 10.0 ** (-digits)
    return 0.5 * 10.0 ** (math.floor(math.log10(abs(reference))) - digits + 1)


def assert_sig(ours: float, reference: float, digits: int, what: str = "") -> None:
    """Assert ``ours`` equals ``reference`` to ``digits`` significant digits."""
    tol = sig_tolerance(reference, digits)
    assert abs(ours - reference) <= tol, f"{what}: {ours!r} vs {reference!r} (tolerance {tol:.3g})"


@pytest.fixture(scope="session")
def stamp():
    return bf.datasets.load("stamp")


@pytest.fixture(scope="session")
def stamp_normal3(stamp):
    return bf.FMM("thickness ~ 1", family="gaussian", k=3).fit(stamp)


@pytest.fixture(scope="session")
def stamp_lognormal3(stamp):
    return bf.FMM("thickness ~ 1", family="lognormal", k=3).fit(stamp)


def simulate_regression_mixture(n: int, seed: int = 0):
    """Well-separated 3-class gaussian regression ``y ~ x1 + x2`` and its truth."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    probs = np.array([0.3, 0.3, 0.4])
    beta = np.array([[-6.0, 1.0, 2.0], [0.0, -1.0, 0.5], [6.0, 0.5, -1.0]])
    sd = np.array([1.0, 0.7, 1.2])
    x = rng.standard_normal((n, 2))
    cls = rng.choice(3, size=n, p=probs)
    X = np.column_stack([np.ones(n), x])
    y = np.einsum("ij,ij->i", X, beta[cls]) + sd[cls] * rng.standard_normal(n)
    data = pd.DataFrame({"y": y, "x1": x[:, 0], "x2": x[:, 1]})
    return data, {"probs": probs, "beta": beta, "sd": sd, "class": cls}
