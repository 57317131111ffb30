"""Bundled datasets: shapes, column types and factor levels as datasets.json records them.

Row counts are also checked against the table of ../shared/reference/README.md, so that a
damaged datasets.json cannot vouch for itself.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm.errors import DataError

CATALOGUE = {
    entry["file"].removesuffix(".csv"): entry
    for entry in json.loads(
        (resources.files("bayesfmm.datasets") / "data" / "datasets.json").read_text("utf-8")
    )
}

# Rows as published in shared/reference/README.md.
README_ROWS = {
    "stamp": 485,
    "NregFix": 200,
    "betablocker": 44,
    "fabricfault": 32,
    "patent": 70,
    "NPreg": 200,
    "bioChemists": 915,
    "faithful": 272,
    "galaxies": 82,
}


def test_names_lists_every_dataset():
    assert sorted(bf.datasets.names()) == sorted(README_ROWS)
    assert sorted(CATALOGUE) == sorted(README_ROWS)
    assert bf.datasets.names() == sorted(README_ROWS, key=str.lower)


@pytest.mark.parametrize("name", sorted(README_ROWS))
def test_shape_and_columns_match_catalogue(name):
    entry = CATALOGUE[name]
    df = bf.datasets.load(name)
    assert df.shape == (entry["nrow"], entry["ncol"]) == (README_ROWS[name], entry["ncol"])
    assert list(df.columns) == [c["name"] for c in entry["columns"]]
    assert not df.isna().any().any()


@pytest.mark.parametrize("name", sorted(README_ROWS))
def test_column_types(name):
    df = bf.datasets.load(name)
    for column in CATALOGUE[name]["columns"]:
        values = df[column["name"]]
        kind = column["type"]
        if kind == "factor":
            assert isinstance(values.dtype, pd.CategoricalDtype)
            assert not values.cat.ordered
            assert list(values.cat.categories) == column["levels"]
            assert all(isinstance(level, str) for level in values.cat.categories)
        elif kind == "integer":
            assert values.dtype == np.int64
        elif kind == "numeric":
            assert values.dtype == np.float64
        elif kind == "character":
            assert pd.api.types.is_string_dtype(values.dtype)
            assert all(isinstance(v, str) for v in values)
        else:  # pragma: no cover - a new type in datasets.json needs a branch here
            pytest.fail(f"unknown column type {kind!r}")


def test_stamp_values():
    thickness = bf.datasets.load("stamp")["thickness"]
    assert len(thickness) == 485
    assert thickness.min() == pytest.approx(0.060, abs=1e-12)
    assert thickness.max() == pytest.approx(0.131, abs=1e-12)


def test_factor_reference_levels():
    assert list(bf.datasets.load("betablocker")["Treatment"].cat.categories) == [
        "Control",
        "Treated",
    ]
    bio = bf.datasets.load("bioChemists")
    assert list(bio["fem"].cat.categories) == ["Men", "Women"]
    assert list(bio["mar"].cat.categories) == ["Single", "Married"]
    npreg = bf.datasets.load("NPreg")
    # Numeric order, not string order ("10" after "9").
    assert list(npreg["id1"].cat.categories) == [str(i) for i in range(1, 101)]
    assert list(npreg["id2"].cat.categories) == [str(i) for i in range(1, 51)]


def test_character_column_kept_exactly():
    company = bf.datasets.load("patent")["Company"]
    assert company.iloc[0] == "ABBOTT LABORATORIES                     "
    assert company.str.len().nunique() == 1  # all right-padded to the same width


def test_load_is_case_insensitive():
    expected = bf.datasets.load("NregFix")
    for spelling in ("nregfix", "NREGFIX", "NRegFix"):
        pd.testing.assert_frame_equal(bf.datasets.load(spelling), expected)
    assert bf.datasets.describe("STAMP")["name"] == "stamp"


def test_load_returns_a_fresh_copy():
    df = bf.datasets.load("stamp")
    df.loc[0, "thickness"] = -1.0
    assert bf.datasets.load("stamp").loc[0, "thickness"] == pytest.approx(0.060)


@pytest.mark.parametrize("bad", ["nope", "", "stamp.csv", 3])
def test_unknown_name_raises_data_error_listing_names(bad):
    with pytest.raises(DataError) as info:
        bf.datasets.load(bad)
    message = str(info.value)
    for name in README_ROWS:
        assert name in message
    with pytest.raises(bf.DataError):
        bf.datasets.describe(bad)


@pytest.mark.parametrize("name", sorted(README_ROWS))
def test_describe(name):
    info = bf.datasets.describe(name)
    entry = CATALOGUE[name]
    assert info["name"] == name
    assert info["rows"] == entry["nrow"]
    assert info["source"] == entry["source"]
    assert info["note"] == entry.get("note", "")
    assert info["columns"] == entry["columns"]
    assert info["citation"] and info["used_for"]
    # The caller may mutate what it got without touching the catalogue.
    info["columns"].clear()
    assert bf.datasets.describe(name)["columns"] == entry["columns"]


def test_stamp_citation():
    assert "Izenman" in bf.datasets.describe("stamp")["citation"]
    assert "stamp.dta" in bf.datasets.describe("stamp")["citation"]
