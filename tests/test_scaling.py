"""scaling_curve: the table layout, the split, and early stopping with restoration."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from skcollapse.datasets import make_ctr
from skcollapse.model_selection import scaling_curve
from skcollapse.model_selection._scaling import _random_split
from skcollapse.recommenders import DNNClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_ctr(900, n_fields=4, cardinalities=[4, 60, 6, 50], random_state=1)
    return X, y


def test_random_split_is_a_seeded_8_1_1_partition():
    parts = _random_split(1000, (0.8, 0.1, 0.1), 0)
    assert [len(p) for p in parts] == [800, 100, 100]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(1000))
    again = _random_split(1000, (0.8, 0.1, 0.1), 0)
    for a, b in zip(parts, again):
        np.testing.assert_array_equal(a, b)


def test_one_row_per_setting_and_seed(data):
    X, y = data
    clf = DNNClassifier(hidden_units=(8,), batch_size=128)
    table = scaling_curve(clf, X, y, param_name="n_embedding_sets",
                          param_range=[1, 2], seeds=[3, 7], max_epochs=2)
    assert len(table) == 4
    assert table[["n_embedding_sets", "seed"]].values.tolist() == [
        [1, 3], [1, 7], [2, 3], [2, 7]]
    assert table["scale"].tolist() == [1.0, 1.0, 2.0, 2.0]
    for col in ("test_roc_auc", "valid_roc_auc", "best_epoch", "n_epochs",
                "n_parameters", "fit_time", "ia_mean", "ia_x0", "ia_x3"):
        assert col in table.columns
    assert table["test_roc_auc"].between(0, 1).all()
    np.testing.assert_allclose(
        table["ia_mean"], table[[f"ia_x{f}" for f in range(4)]].mean(axis=1))
    # ME with 2 sets has twice the embedding rows of M=1 (and two projections)
    assert (table["n_parameters"][2:].values > table["n_parameters"][:2].values).all()
    # seeds differ -> fits differ; the same seed at the same setting is reproducible
    assert table["test_roc_auc"][0] != table["test_roc_auc"][1]


def test_early_stopping_restores_the_best_epoch(data):
    """An over-fitting setting (big lr, noisy small data) stops early; the model
    scored is the best validation epoch's, not the last one's."""
    X, y = data
    rng = np.random.default_rng(0)
    y_noisy = np.where(rng.uniform(size=y.size) < 0.3, 1 - y, y)
    clf = DNNClassifier(hidden_units=(64,), embedding_dim=16, lr=0.05,
                        batch_size=64, dropout=0.0)
    table = scaling_curve(clf, X, y_noisy, param_name="embedding_dim",
                          param_range=[16], seeds=2, max_epochs=25, patience=2,
                          ia=False)
    assert (table["best_epoch"] < table["n_epochs"]).all()  # stopped after the best
    assert (table["n_epochs"] < 25).all()
    assert (table["n_epochs"] == table["best_epoch"] + 2).all()  # patience 2
    # the validation score recomputed with the final model is the best epoch's
    np.testing.assert_allclose(table["valid_roc_auc"], table["best_valid_roc_auc"],
                               atol=1e-9)


def test_parallel_fits_equal_sequential_fits(data):
    """``n_jobs=2`` (how benchmarks/bench_scaling.py runs) fits in worker
    processes; a seeded fit there gives the same table as in this process."""
    X, y = data
    clf = DNNClassifier(hidden_units=(8,), batch_size=128)
    kw = {"param_name": "embedding_dim", "param_range": [2, 4], "seeds": [0, 1],
          "max_epochs": 2}
    seq = scaling_curve(clf, X, y, **kw)
    par = scaling_curve(clf, X, y, n_jobs=2, **kw)
    cols = ["embedding_dim", "seed", "test_roc_auc", "valid_roc_auc", "best_epoch",
            "n_epochs", "ia_mean"]
    np.testing.assert_allclose(par[cols].to_numpy(float), seq[cols].to_numpy(float),
                               rtol=1e-6)


def test_fixed_validation_and_test_sets(data):
    X, y = data
    clf = DNNClassifier(hidden_units=(8,), batch_size=128)
    Xt, yt = X[:200], y[:200]
    table = scaling_curve(clf, X[200:], y[200:], param_name="embedding_dim",
                          param_range=[2], seeds=1, max_epochs=1, ia=False,
                          test_data=(Xt, yt))
    fitted = DNNClassifier(hidden_units=(8,), batch_size=128, embedding_dim=2)
    assert len(table) == 1 and 0 <= table["test_roc_auc"][0] <= 1
    with pytest.raises(ValueError, match="validation_data without test_data"):
        scaling_curve(fitted, X, y, param_name="embedding_dim", param_range=[2],
                      validation_data=(Xt, yt))
    with pytest.raises(ValueError, match="param_range is empty"):
        scaling_curve(fitted, X, y, param_name="embedding_dim", param_range=[])
    assert roc_auc_score(yt, np.zeros(len(yt)) + 0.5) == 0.5


def test_scaling_display_plots_mean_over_seeds():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import pandas as pd

    from skcollapse.plotting import ScalingDisplay

    se = pd.DataFrame({"scale": [1, 1, 2, 2], "test_roc_auc": [0.7, 0.72, 0.69, 0.69],
                       "ia_mean": [3.0, 3.2, 3.1, 3.1]})
    disp = ScalingDisplay.from_results({"SE": se, "ME": se.assign(ia_mean=5.0)})
    line = disp.lines_["SE"][0].lines[0]
    np.testing.assert_allclose(line.get_ydata(), [0.71, 0.69])
    np.testing.assert_allclose(disp.lines_["ME"][1].lines[0].get_ydata(), [5.0, 5.0])
    with pytest.raises(ValueError, match="no 'scale' column"):
        ScalingDisplay.from_results(se.drop(columns="scale"))
