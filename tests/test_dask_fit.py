"""``FMM.fit(ddf)`` on a Dask DataFrame equals the in-memory fit.

The quick suite fits 1e5 rows in 16 partitions on a threads LocalCluster the tests start
and close; the slow tests fit 1e6 rows (the issue's size) and run on worker processes.
Both fits are run with ``nrtolerance=1e-10`` so that each stops at the maximum itself (at
Stata's default 1e-5 each may stop up to ~1e-5 short of it, from a different start).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesfmm as bf

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

TIGHT = {"nrtolerance": 1e-10}


def gaussian_data(n: int, seed: int = 0) -> pd.DataFrame:
    """k = 3 regressions of y on x, class probabilities depending on z."""
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    logits = np.c_[np.zeros(n), 0.5 + 1.0 * z, -0.5 - 0.8 * z]
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    cls = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    b0, b1, sd = np.array([-3.0, 0.0, 3.0]), np.array([1.0, -1.0, 0.5]), np.array([1.0, 0.7, 1.3])
    y = b0[cls] + b1[cls] * x + sd[cls] * rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "z": z, "cid": np.arange(n) // 50})


def poisson_data(n: int, seed: int = 1) -> pd.DataFrame:
    """k = 2 Poisson regressions with exposure t."""
    rng = np.random.default_rng(seed)
    x, t = rng.normal(size=n), rng.uniform(0.5, 3.0, size=n)
    cls = (rng.random(n) < 0.35).astype(int)
    b0, b1 = np.array([0.2, 1.5]), np.array([0.6, -0.3])
    y = rng.poisson(t * np.exp(b0[cls] + b1[cls] * x))
    return pd.DataFrame({"y": y, "x": x, "t": t, "g": np.where(x > 0, "a", "b")})


GAUSSIAN = bf.FMM("y ~ x", k=3, lcprob="~ z")
POISSON = bf.FMM("y ~ x", family="poisson", k=2, exposure="t")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as c:
        yield c


def assert_same_fit(memory, on_dask):
    assert on_dask.converged and memory.converged
    assert on_dask.llf == pytest.approx(memory.llf, rel=1e-8, abs=1e-8)
    np.testing.assert_allclose(on_dask.params, memory.params, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(on_dask.bse, memory.bse, rtol=1e-6, atol=1e-6)
    assert on_dask.nobs == memory.nobs and on_dask.df_model == memory.df_model
    assert on_dask.params.index.equals(memory.params.index)


@pytest.fixture(scope="module")
def gaussian_fits(client):
    data = gaussian_data(100_000)
    memory = GAUSSIAN.fit(data, **TIGHT)
    ddf = dd.from_pandas(data, npartitions=16)
    return data, ddf, memory, GAUSSIAN.fit(ddf, **TIGHT)


def test_gaussian_k3_with_class_covariate_equals_in_memory(gaussian_fits):
    _, _, memory, on_dask = gaussian_fits
    assert_same_fit(memory, on_dask)
    assert on_dask.npartitions == 16 and on_dask.vce == "oim"
    # 2 first passes, then Newton: a handful of passes from the sample's start
    assert on_dask.passes < 20
    assert "Fitting full model" in str(on_dask.iteration_log)


def test_predict_on_a_dask_frame_is_lazy_and_equal(gaussian_fits):
    data, ddf, memory, on_dask = gaussian_fits
    post = on_dask.predict(ddf, kind="classposteriorpr")
    assert type(post).__module__.startswith("dask")
    expected = memory.predict(data, kind="classposteriorpr")
    np.testing.assert_allclose(post.compute().to_numpy(), expected.to_numpy(), atol=1e-6)
    mu = on_dask.predict(ddf, marginal=True).compute()
    np.testing.assert_allclose(mu.to_numpy(), memory.predict(data, marginal=True).to_numpy(), atol=1e-6)
    with pytest.raises(bf.SpecificationError, match="pass the data again"):
        on_dask.predict()


def test_cluster_vce_within_partitions_and_crossing_refused(client):
    data = gaussian_data(20_000, seed=3)
    memory = GAUSSIAN.fit(data, vce="cluster", cluster="cid", **TIGHT)
    ddf = dd.from_pandas(data, npartitions=8)  # 2,500 rows a partition: 50-row clusters never cross
    on_dask = GAUSSIAN.fit(ddf, vce="cluster", cluster="cid", **TIGHT)
    assert_same_fit(memory, on_dask)
    assert on_dask.n_clusters == memory.n_clusters == 400
    crossing = dd.from_pandas(data.assign(cid=np.arange(len(data)) % 7), npartitions=8)
    with pytest.raises(bf.DataError, match="cluster .* of column 'cid' has rows in partitions 0 and 1"):
        GAUSSIAN.fit(crossing, vce="cluster", cluster="cid")


def test_poisson_k2_exposure_robust_and_opg(client):
    data = poisson_data(100_000)
    ddf = dd.from_pandas(data, npartitions=16)
    for vce in ("robust", "opg"):
        memory = POISSON.fit(data, vce=vce, **TIGHT)
        on_dask = POISSON.fit(ddf, vce=vce, em_passes=3, **TIGHT)
        assert_same_fit(memory, on_dask)
        assert "(EM)" in str(on_dask.iteration_log)


def test_factor_levels_are_learned_from_all_partitions(client):
    data = poisson_data(40_000)
    data["g"] = np.where(np.arange(len(data)) < 39_990, "common", "rare")  # only in the last partition
    model = bf.FMM("y ~ x + g", family="poisson", k=2, exposure="t")
    memory = model.fit(data, **TIGHT)
    on_dask = model.fit(dd.from_pandas(data, npartitions=8), sample_rows=2_000, **TIGHT)
    assert_same_fit(memory, on_dask)
    assert any("rare" in str(term) for term in on_dask.params.index.get_level_values(-1))


def test_grouped_model_with_groups_within_partitions(client):
    import pickle

    rng = np.random.default_rng(0)
    groups, size = 400, 5
    in_second = np.repeat(rng.random(groups) < 0.4, size)
    x = rng.normal(size=groups * size)
    data = pd.DataFrame({"y": np.where(in_second, 2.0, -1.0) + x + rng.normal(size=x.size), "x": x,
                         "g": np.repeat(np.arange(groups), size)})
    model = bf.FMM("y ~ x", k=2, group="g")
    memory = model.fit(data, **TIGHT)
    on_dask = model.fit(dd.from_pandas(data, npartitions=4), **TIGHT)  # 500 rows a partition: whole groups
    assert_same_fit(memory, on_dask)
    again = pickle.loads(pickle.dumps(on_dask))
    assert again.params.equals(on_dask.params) and again.nobs == 2_000
    shuffled = dd.from_pandas(data.sample(frac=1, random_state=1), npartitions=4, sort=False)
    with pytest.raises(bf.DataError, match="group .* of column 'g' has rows in partitions"):
        model.fit(shuffled)


def test_options_a_dask_fit_refuses(client):
    ddf = dd.from_pandas(poisson_data(2_000), npartitions=2)
    with pytest.raises(bf.SpecificationError, match="survey"):
        POISSON.fit(ddf, survey=object())
    with pytest.raises(bf.SpecificationError, match="vce='bootstrap' is not available"):
        POISSON.fit(ddf, vce="bootstrap")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Sending large graph")  # from_pandas ships the 1e6 rows: expected here
@pytest.mark.parametrize("model, make", [(GAUSSIAN, gaussian_data), (POISSON, poisson_data)], ids=["gaussian", "poisson"])
def test_one_million_rows_in_16_partitions_on_processes(model, make):
    data = make(1_000_000)
    memory = model.fit(data, **TIGHT)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            on_dask = model.fit(dd.from_pandas(data, npartitions=16), **TIGHT)
    assert_same_fit(memory, on_dask)
