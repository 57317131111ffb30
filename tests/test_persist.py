"""``res.save(path)`` and ``bf.load(path)``: the file format, its version rule, its errors."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf
from bayesfmm import persist
from bayesfmm.persist import FORMAT, FORMAT_VERSION, load, read_header


@pytest.fixture(scope="module")
def stamp():
    return bf.datasets.load("stamp")


@pytest.fixture(scope="module")
def fit(stamp):
    return bf.FMM("thickness ~ 1", k=3).fit(stamp)


def assert_same(a, b, data=None):
    pd.testing.assert_series_equal(a.params, b.params, check_exact=True)
    pd.testing.assert_series_equal(a.bse, b.bse, check_exact=True)
    assert str(a.summary()) == str(b.summary())
    np.testing.assert_array_equal(np.asarray(a.predict()), np.asarray(b.predict()))
    np.testing.assert_array_equal(np.asarray(a.predict(kind="classpr")), np.asarray(b.predict(kind="classpr")))
    if data is not None:
        np.testing.assert_array_equal(np.asarray(a.predict(data)), np.asarray(b.predict(data)))


def _write(path, *objects):
    with open(path, "wb") as stream:
        for obj in objects:
            pickle.dump(obj, stream)
    return path


def _header(**changes):
    header = persist.make_header(object())
    header.update(changes)
    return header


# -- round trips ---------------------------------------------------------------------------
def test_ml_results_save_and_load(tmp_path, stamp, fit):
    path = fit.save(tmp_path / "fit.bfmm")
    assert path == tmp_path / "fit.bfmm" and path.is_file()
    again = load(path)
    assert type(again) is type(fit) and round(again.llf, 3) == 1518.848
    assert_same(fit, again, data=stamp.head(12))
    t0, t1 = fit.test("[1]Intercept = [2]Intercept"), again.test("[1]Intercept = [2]Intercept")
    assert (t0.statistic, t0.df, t0.pvalue) == (t1.statistic, t1.df, t1.pvalue)
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed, not left behind


def test_load_is_exported_at_the_top_level(tmp_path, fit):
    assert bf.load is load
    assert bf.load(str(fit.save(str(tmp_path / "fit.bfmm")))).llf == fit.llf


def test_the_header_describes_the_file(tmp_path, fit):
    path = fit.save(tmp_path / "fit.bfmm")
    header = read_header(path)
    assert header["format"] == FORMAT == "bayesfmm-results"
    assert header["format_version"] == FORMAT_VERSION == 1
    assert header["kind"] == "MLResults"
    assert header["bayesfmm_version"] == bf.__version__
    with open(path, "rb") as stream:  # the documented layout: a header dict, then the results
        assert pickle.load(stream) == header
        assert pickle.load(stream).llf == fit.llf


def test_save_overwrites_and_accepts_strings(tmp_path, stamp, fit):
    target = str(tmp_path / "fit.bfmm")
    fit.save(target)
    two = bf.FMM("thickness ~ 1", k=2).fit(stamp)
    two.save(target)
    assert load(target).k == 2


def test_cluster_constrained_and_grouped_fits_save_and_load(tmp_path, stamp):
    data = stamp.assign(batch=np.arange(len(stamp)) % 25)
    cluster = bf.FMM("thickness ~ 1", k=2, lcinvariant="errvar").fit(data, vce="cluster", cluster="batch")
    again = load(cluster.save(tmp_path / "cluster.bfmm"))
    assert again.n_clusters == 25
    assert_same(cluster, again, data=data.head(5))
    blocker = bf.datasets.load("betablocker")
    grouped = bf.FMM("Deaths ~ Treatment", family="binomial", trials="Total", k=2, group="Center").fit(blocker)
    again = load(grouped.save(tmp_path / "grouped.bfmm"))
    assert again.spec.group == "Center" and again.nobs == 44
    assert_same(grouped, again, data=blocker.head(4))


def test_map_results_save_and_load(tmp_path, stamp):
    mode = bf.FMM("thickness ~ 1", k=2).map(stamp)
    path = mode.save(tmp_path / "map.bfmm")
    assert read_header(path)["kind"] == "MAPResults"
    again = load(path)
    assert type(again) is type(mode) and again.logp == mode.logp
    assert_same(mode, again)


@pytest.mark.slow
def test_bayes_results_save_and_load(tmp_path, stamp):
    post = bf.FMM("thickness ~ 1", k=2).sample(stamp, draws=100, tune=100, chains=2, random_seed=2, progressbar=False)
    path = post.save(tmp_path / "post.bfmm")
    assert read_header(path)["kind"] == "BayesResults"
    again = load(path)
    np.testing.assert_array_equal(again.theta_draws, post.theta_draws)
    assert_same(post, again, data=stamp.head(5))
    assert sorted(again.model.named_vars) == sorted(post.model.named_vars)


# -- errors --------------------------------------------------------------------------------
def test_a_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere.bfmm"
    with pytest.raises(bf.DataError, match="no such file: .*nowhere.bfmm"):
        load(missing)
    with pytest.raises(bf.DataError, match="is not a file"):
        load(tmp_path)


def test_saving_into_a_missing_folder_is_a_clear_error(tmp_path, fit):
    with pytest.raises(bf.DataError, match="folder .*missing.* does not exist"):
        fit.save(tmp_path / "missing" / "fit.bfmm")


@pytest.mark.parametrize(
    "content",
    [b"", b"a,b\n1,2\n", pickle.dumps({"a": 1}), pickle.dumps(["bayesfmm-results", 1])],
    ids=["empty", "csv", "other pickle", "list"],
)
def test_a_file_that_is_not_a_bayesfmm_file_is_refused(tmp_path, content):
    path = tmp_path / "other.bin"
    path.write_bytes(content)
    with pytest.raises(bf.DataError, match=r"other\.bin.* is not a bayesfmm results file"):
        load(path)
    with pytest.raises(bf.DataError, match="not a bayesfmm results file"):
        read_header(path)


def test_a_newer_format_version_is_refused(tmp_path, fit):
    path = _write(tmp_path / "new.bfmm", _header(format_version=FORMAT_VERSION + 1, bayesfmm_version="9.0"), fit)
    with pytest.raises(bf.DataError, match=r"new\.bfmm.*format version 2, written by bayesfmm 9\.0.*upgrade bayesfmm"):
        load(path)


def test_a_retired_format_version_is_refused(tmp_path, fit):
    path = _write(tmp_path / "old.bfmm", _header(format_version=0, bayesfmm_version="0.0.1"), fit)
    with pytest.raises(bf.DataError, match=r"old\.bfmm.*format version 0.*no longer reads"):
        load(path)
    bad = _write(tmp_path / "bad.bfmm", _header(format_version="1"), fit)
    with pytest.raises(bf.DataError, match="no valid format version"):
        load(bad)


def test_a_truncated_file_is_a_clear_error(tmp_path, fit):
    path = fit.save(tmp_path / "fit.bfmm")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(bf.DataError, match=r"fit\.bfmm.*could not load the saved MLResults"):
        load(path)
    assert read_header(path)["kind"] == "MLResults"  # the header itself is intact


def test_a_header_that_does_not_match_the_object_is_refused(tmp_path):
    path = _write(tmp_path / "odd.bfmm", _header(kind="MLResults"), {"not": "results"})
    with pytest.raises(bf.DataError, match="header says 'MLResults' but the file holds a dict"):
        load(path)
