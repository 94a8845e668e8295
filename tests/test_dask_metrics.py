"""Metrics and scorers on dask arrays: blockwise, on a LocalCluster, equal to numpy."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from skcollapse.metrics import (
    ErankScorer,
    IAScorer,
    alignment,
    collapse_metrics,
    condition_number,
    effective_rank,
    information_abundance,
    normalized_std,
    singular_values,
    stable_rank,
    uniformity,
)

SPECTRAL = (effective_rank, information_abundance, stable_rank, condition_number)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
    ) as cluster, distributed.Client(cluster, set_as_default=False) as c:
        yield c


def _table():
    rng = np.random.default_rng(0)
    return 5.0 + rng.standard_normal((3000, 20)) * np.geomspace(1, 1e-2, 20)


def _check_all(D, E, options=({}, {"center": True}, {"row_normalize": True})):
    for func in SPECTRAL:
        for opts in options:
            got = func(D, **opts)
            assert isinstance(got, float)
            np.testing.assert_allclose(got, func(E, **opts), rtol=1e-6)
    np.testing.assert_allclose(normalized_std(D), normalized_std(E), rtol=1e-9)
    np.testing.assert_allclose(singular_values(D), singular_values(E), rtol=1e-8)
    np.testing.assert_allclose(
        uniformity(D, max_samples=None), uniformity(E, max_samples=None), rtol=1e-9
    )
    np.testing.assert_allclose(alignment(D[:100], D[100:200]),
                               alignment(E[:100], E[100:200]), rtol=1e-9)
    np.testing.assert_allclose(
        ErankScorer().fit(D).effective_rank_, ErankScorer().fit(E).effective_rank_,
        rtol=1e-6,
    )
    np.testing.assert_allclose(IAScorer().fit(D).score(D), IAScorer().fit(E).score(E),
                               rtol=1e-6)


def test_dask_matches_numpy_on_local_cluster(client):
    E = _table()
    # uneven row blocks and split columns: rechunked to whole rows internally
    D = da.from_array(E, chunks=((500, 1250, 1250), (12, 8)))
    with client.as_current(), distributed.get_task_stream(client) as stream:
        _check_all(D, E, options=({"center": True},))
    # the blockwise work really ran on the cluster's worker processes
    assert {task["worker"] for task in stream.data} <= set(
        client.scheduler_info()["workers"]
    )
    assert any("_block_accumulator" in str(task["key"]) for task in stream.data)


def test_dask_local_scheduler_and_float32():
    E = _table().astype(np.float32)
    D = da.from_array(E, chunks=(700, 20))
    _check_all(D, E.astype(np.float64))


def test_dask_is_never_materialised_whole():
    """A lazily generated table: each block is created, reduced and dropped."""
    D = da.random.RandomState(0).standard_normal((200_000, 16), chunks=(10_000, 16))
    D = D * da.from_array(np.geomspace(1, 1e-2, 16), chunks=16)
    out = collapse_metrics(D, metrics=["effective_rank", "normalized_std"])
    E = D.compute()
    np.testing.assert_allclose(out["effective_rank"], effective_rank(E), rtol=1e-6)
    np.testing.assert_allclose(out["normalized_std"], normalized_std(E), rtol=1e-9)


def test_dask_partial_fit_over_dask_blocks_equals_fit():
    E = _table()
    D = da.from_array(E, chunks=(750, 20))
    scorer = ErankScorer(center=True)
    for block in D.blocks:
        scorer.partial_fit(block)
    np.testing.assert_allclose(
        scorer.effective_rank_, ErankScorer(center=True).fit(E).effective_rank_,
        rtol=1e-6,
    )
    assert scorer.n_samples_seen_ == 3000


def test_dask_nan_and_bad_dtype():
    E = _table()
    E[2321, 2] = np.nan
    D = da.from_array(E, chunks=(1000, 20))
    with pytest.raises(ValueError, match="NaN or infinite"):
        effective_rank(D)
    with pytest.raises(ValueError, match="NaN or infinite"):
        normalized_std(D)
    with pytest.raises(ValueError, match="NaN or infinite"):
        alignment(D, D + 1.0)
    with pytest.raises(TypeError, match="same kind"):
        alignment(D, np.ones(D.shape))
    with pytest.raises(TypeError, match="numeric dtype"):
        effective_rank(da.from_array(np.array([["a", "b"]] * 3)))
    with pytest.raises(ValueError, match="2-D"):
        effective_rank(da.ones(10, chunks=5))
