"""CollapseMonitor: erank / IA of the tables recorded in net.history."""

import pytest

from skcollapse.callbacks import CollapseMonitor
from skcollapse.datasets import make_interactions
from skcollapse.recommenders import LightGCNRecommender, MFRecommender
from skcollapse.testing import reference_effective_rank as _svd_erank
from skcollapse.testing import reference_information_abundance as _svd_ia

FAST = {"embedding_dim": 8, "batch_size": 256, "random_state": 0}


@pytest.fixture(scope="module")
def X():
    return make_interactions(120, 60, random_state=0)


@pytest.mark.parametrize("cls", [MFRecommender, LightGCNRecommender])
def test_records_erank_and_ia_each_epoch(X, cls):
    net = cls(max_epochs=3, callbacks=[CollapseMonitor()], **FAST).fit(X)
    for key in ("erank_user", "erank_item", "ia_user", "ia_item"):
        values = net.history[:, key]
        assert len(values) == 3
        assert all(1.0 <= v <= 8.0 + 1e-6 for v in values)
    # the last epoch's values are those of the final tables (independent SVD)
    emb = net.get_embeddings()
    assert net.history[-1, "erank_item"] == pytest.approx(_svd_erank(emb["item"]),
                                                          rel=1e-4)
    assert net.history[-1, "ia_user"] == pytest.approx(_svd_ia(emb["user"]), rel=1e-4)


def test_every_tables_metrics_and_initial(X):
    mon = CollapseMonitor(tables=["item"], metrics=["erank"], every=2,
                          record_initial=True)
    net = MFRecommender(max_epochs=5, callbacks=[mon], **FAST).fit(X)
    # the same seed trained for zero epochs gives the initial tables
    init_item = MFRecommender(max_epochs=0, **FAST).fit(X).get_embeddings()["item"]
    recorded = [("erank_item" in row) for row in net.history]
    assert recorded == [False, True, False, True, True]  # every 2nd and the last
    assert all("erank_user" not in row and "ia_item" not in row for row in net.history)
    mon_ = dict(net.callbacks_)["CollapseMonitor"]
    assert mon_.initial_["erank_item"] == pytest.approx(_svd_erank(init_item), rel=1e-4)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"metrics": ["rank"]}, ValueError, "metrics"),
        ({"metrics": "erank"}, TypeError, "'metrics' parameter of CollapseMonitor"),
        ({"every": 0}, ValueError, "every"),
        ({"tables": "item"}, TypeError, "tables"),
    ],
)
def test_bad_parameters(X, kwargs, err, match):
    with pytest.raises(err, match=match):
        MFRecommender(max_epochs=1, callbacks=[CollapseMonitor(**kwargs)],
                      **FAST).fit(X)


def test_unknown_table(X):
    with pytest.raises(ValueError, match="not found"):
        MFRecommender(max_epochs=1, callbacks=[CollapseMonitor(tables=["field_0"])],
                      **FAST).fit(X)


def test_params_route_through_the_net(X):
    net = MFRecommender(max_epochs=2, callbacks=[("collapse", CollapseMonitor())],
                        **FAST)
    net.set_params(callbacks__collapse__metrics=("ia",))
    net.fit(X)
    assert "ia_item" in net.history[-1] and "erank_item" not in net.history[-1]
