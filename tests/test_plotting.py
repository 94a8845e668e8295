"""Display objects: they draw on Agg and expose exactly the metrics they plot."""

import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt

from skcollapse.plotting import (
    CollapseHistoryDisplay,
    EmbeddingProjectionDisplay,
    FieldSpectrumDisplay,
    SpectrumDisplay,
)
from skcollapse.plotting._field_spectrum import split_field_and_set
from skcollapse.plotting._history import metric_of_column
from skcollapse.testing import reference_effective_rank as _erank_reference
from skcollapse.testing import reference_information_abundance as _ia_reference
from skcollapse.testing import reference_singular_values


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _planted(rng, n, d, rank):
    return rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d))


class FakeModel:
    """Any object with get_embeddings() is enough for the displays."""

    def __init__(self, tables):
        self._tables = tables

    def get_embeddings(self):
        return dict(self._tables)


# --------------------------------------------------------------------------- spectrum
def test_spectrum_plotted_values_equal_svd_reference(rng):
    full = rng.normal(size=(300, 12))
    low = _planted(rng, 300, 12, 3)
    disp = SpectrumDisplay.from_embeddings({"full": full, "rank 3": low})
    assert disp.names == ["full", "rank 3"]
    assert len(disp.lines_) == 2
    for line, E in zip(disp.lines_, [full, low], strict=True):
        s = reference_singular_values(E)
        np.testing.assert_allclose(line.get_ydata(), s / s[0], rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 13))
    np.testing.assert_allclose(
        disp.effective_ranks, [_erank_reference(full), _erank_reference(low)], rtol=1e-8
    )
    np.testing.assert_allclose(
        disp.information_abundances,
        [_ia_reference(full), _ia_reference(low)],
        rtol=1e-8,
    )
    # the planted rank shows: three values near the top, the rest at noise level
    assert disp.normalized_singular_values[1][2] > 1e-2
    assert disp.normalized_singular_values[1][3] < 1e-6
    assert disp.ax_.get_yscale() == "log"
    assert disp.figure_ is disp.ax_.figure


def test_spectrum_legend_shows_erank_and_ia(rng):
    E = _planted(rng, 200, 8, 2)
    disp = SpectrumDisplay.from_embeddings(E, names="two")
    text = disp.ax_.get_legend().get_texts()[0].get_text()
    assert text == (f"two (erank {_erank_reference(E):.2f}, IA {_ia_reference(E):.2f})")


def test_spectrum_list_input_default_names_and_fraction_axis(rng):
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(80, 16))
    disp = SpectrumDisplay.from_embeddings([a, b], x="fraction", legend=False)
    assert disp.names == ["table 0", "table 1"]
    np.testing.assert_allclose(disp.lines_[1].get_xdata(), np.arange(1, 17) / 16)
    assert disp.ax_.get_legend() is None


def test_spectrum_center_and_row_normalize_are_passed_to_the_metrics(rng):
    E = rng.normal(size=(100, 6)) + 5.0
    disp = SpectrumDisplay.from_embeddings(E, center=True)
    s = reference_singular_values(E, center=True)
    np.testing.assert_allclose(disp.lines_[0].get_ydata(), s / s[0], rtol=1e-6)
    disp = SpectrumDisplay.from_embeddings(E, row_normalize=True)
    En = E / np.linalg.norm(E, axis=1, keepdims=True)
    assert disp.effective_ranks[0] == pytest.approx(_erank_reference(En), rel=1e-8)


def test_spectrum_all_zero_table_plots_zeros():
    disp = SpectrumDisplay.from_embeddings(np.zeros((10, 4)), names="dead")
    np.testing.assert_array_equal(disp.normalized_singular_values[0], np.zeros(4))
    assert disp.effective_ranks == [0.0]
    assert disp.information_abundances == [0.0]


def test_spectrum_from_estimator_reads_get_embeddings_only(rng):
    user, item = rng.normal(size=(30, 5)), _planted(rng, 40, 5, 1)
    model = FakeModel({"user": user, "item": item})
    disp = SpectrumDisplay.from_estimator(model)
    assert disp.names == ["FakeModel user", "FakeModel item"]
    disp = SpectrumDisplay.from_estimator(model, tables="item", name="MF")
    assert disp.names == ["MF item"]
    assert disp.effective_ranks[0] == pytest.approx(_erank_reference(item), rel=1e-8)


def test_spectrum_several_estimators_on_one_axes(rng):
    a = FakeModel({"item": rng.normal(size=(40, 6))})
    b = FakeModel({"item": _planted(rng, 40, 6, 2)})
    fig, ax = plt.subplots()
    disp = SpectrumDisplay.from_estimator({"A": a, "B": b}, tables=["item"], ax=ax)
    assert disp.ax_ is ax and disp.figure_ is fig
    assert disp.names == ["A item", "B item"]
    assert len(ax.get_lines()) == 2
    disp = SpectrumDisplay.from_estimator([a, b])
    assert disp.names == ["FakeModel #0 item", "FakeModel #1 item"]


def test_spectrum_accepts_torch_tensors(rng):
    torch = pytest.importorskip("torch")
    E = rng.normal(size=(20, 5))
    disp = SpectrumDisplay.from_embeddings(torch.as_tensor(E))
    s = reference_singular_values(E)
    np.testing.assert_allclose(disp.lines_[0].get_ydata(), s / s[0], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"embeddings": {}}, ValueError, "empty dict"),
        (
            {"embeddings": [np.ones((3, 2))] * 2, "names": ["a"]},
            ValueError,
            "names has 1",
        ),
        (
            {"embeddings": [np.ones((3, 2))] * 2, "names": ["a", "a"]},
            ValueError,
            "unique",
        ),
        ({"embeddings": np.ones(3)}, ValueError, "2-D"),
        ({"embeddings": np.array([[1.0, np.nan]])}, ValueError, "NaN"),
        ({"embeddings": np.ones((3, 2)), "x": "log"}, ValueError, r"'x' parameter of SpectrumDisplay.plot must be a str among"),
        ({"embeddings": np.ones((3, 2)), "ax": "axes"}, TypeError, "ax must be"),
    ],
)
def test_spectrum_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        SpectrumDisplay.from_embeddings(**kwargs)


def test_spectrum_from_estimator_bad_input(rng):
    with pytest.raises(TypeError, match="get_embeddings"):
        SpectrumDisplay.from_estimator(object())
    model = FakeModel({"user": rng.normal(size=(5, 2))})
    with pytest.raises(ValueError, match=r"\['item'\] not found"):
        SpectrumDisplay.from_estimator(model, tables="item")
    with pytest.raises(ValueError, match="name has 2"):
        SpectrumDisplay.from_estimator(model, name=["a", "b"])
    with pytest.raises(TypeError, match="non-empty dict"):
        SpectrumDisplay.from_estimator(FakeModel({}))


def test_spectrum_constructor_then_plot_checks_lengths():
    disp = SpectrumDisplay(
        singular_values=[np.array([2.0, 1.0])],
        names=["a", "b"],
        effective_ranks=[1.9],
        information_abundances=[1.5],
    )
    with pytest.raises(ValueError, match="names has 2"):
        disp.plot()
    disp.names = ["a"]
    disp.plot()
    np.testing.assert_allclose(disp.lines_[0].get_ydata(), [1.0, 0.5])


def test_missing_matplotlib_gives_install_hint(monkeypatch, rng):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install skcollapse\[plot\]"):
        SpectrumDisplay.from_embeddings(rng.normal(size=(5, 2)))


# ------------------------------------------------------------------------- projection
def test_projection_matches_sklearn_pca(rng):
    from sklearn.decomposition import PCA

    E = rng.normal(size=(400, 6)) * np.arange(1, 7)
    disp = EmbeddingProjectionDisplay.from_embeddings(E, max_points=None)
    ref = PCA(n_components=2).fit(E)
    expected = ref.transform(E)
    # principal axes are defined up to sign
    signs = np.sign((disp.projection * expected).sum(axis=0))
    np.testing.assert_allclose(disp.projection, expected * signs, atol=1e-8)
    np.testing.assert_allclose(
        disp.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-8
    )
    offsets = disp.scatter_.get_offsets()
    np.testing.assert_allclose(np.asarray(offsets), disp.projection)


def test_projection_shows_complete_collapse(rng):
    collapsed = np.outer(rng.normal(size=500), rng.normal(size=16))
    disp = EmbeddingProjectionDisplay.from_embeddings(collapsed)
    assert disp.explained_variance_ratio[0] == pytest.approx(1.0, abs=1e-9)
    assert (
        np.abs(disp.projection[:, 1]).max() < 1e-6 * np.abs(disp.projection[:, 0]).max()
    )
    assert "100% of variance" in disp.ax_.get_xlabel()


def test_projection_popularity_from_interactions(rng):
    item = rng.normal(size=(7, 4))
    model = FakeModel({"user": rng.normal(size=(5, 4)), "item": item})
    X = np.array([[0, 1], [1, 1], [2, 3], [4, 1], [3, 6]])
    disp = EmbeddingProjectionDisplay.from_estimator(model, X, table="item")
    np.testing.assert_array_equal(disp.popularity, [0, 3, 0, 1, 0, 0, 1])
    # colours are plotted sorted by popularity (popular items on top)
    order = np.argsort(disp.popularity, kind="stable")
    np.testing.assert_array_equal(disp.scatter_.get_array(), disp.popularity[order])
    assert disp.colorbar_ is not None
    assert disp.ax_.get_title() == "FakeModel item"
    disp = EmbeddingProjectionDisplay.from_estimator(model, X, table="user")
    np.testing.assert_array_equal(disp.popularity, [1, 1, 1, 1, 1])


def test_projection_subsample_keeps_popularity_aligned(rng):
    E = rng.normal(size=(1000, 3))
    pop = np.arange(1000.0)
    full = EmbeddingProjectionDisplay.from_embeddings(
        E, popularity=pop, max_points=None
    )
    sub = EmbeddingProjectionDisplay.from_embeddings(
        E, popularity=pop, max_points=100, random_state=1
    )
    assert sub.projection.shape == (100, 2)
    rows = sub.popularity.astype(int)
    np.testing.assert_allclose(sub.projection, full.projection[rows])


def test_projection_single_feature_and_no_popularity():
    E = np.arange(10.0).reshape(-1, 1)
    disp = EmbeddingProjectionDisplay.from_embeddings(E)
    np.testing.assert_array_equal(disp.projection[:, 1], np.zeros(10))
    assert disp.colorbar_ is None


def _fitted_mf(X):
    from skcollapse.recommenders import MFRecommender

    return MFRecommender(
        embedding_dim=4, max_epochs=2, batch_size=64, random_state=0
    ).fit(X)


def _counts_in_row_order(ids, vocabulary):
    """Independent count: np.unique on the raw ids, put in the fitted id order."""
    labels, counts = np.unique(ids, return_counts=True)
    by_label = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    return np.array([by_label.get(v, 0) for v in vocabulary.tolist()], dtype=float)


@pytest.mark.parametrize("kind", ["sparse_int", "string"])
def test_projection_popularity_follows_the_estimator_ids(kind, rng, one_torch_thread):
    # item ids that are not 0..n-1: a row's colour must be the count of the id
    # the estimator keeps in that row (its item_ids_), not of the row number
    item_labels = np.array([7, 1000, 3, 52, 999_999, 41, 12, 5000])
    users = rng.integers(0, 15, size=300)
    items = item_labels[rng.zipf(1.6, size=300).clip(max=8) - 1]  # skewed counts
    if kind == "string":
        X = np.column_stack([users.astype(str), np.char.add("item-", items.astype(str))])
    else:
        X = np.column_stack([users, items])
    model = _fitted_mf(X)
    assert len(model.item_ids_) == len(np.unique(X[:, 1]))
    disp = EmbeddingProjectionDisplay.from_estimator(model, X, max_points=None)
    expected = _counts_in_row_order(X[:, 1], model.item_ids_)
    assert len(set(expected.tolist())) > 2  # the order matters for this answer
    np.testing.assert_array_equal(disp.popularity, expected)
    disp = EmbeddingProjectionDisplay.from_estimator(
        model, X, table="user", max_points=None
    )
    np.testing.assert_array_equal(
        disp.popularity, _counts_in_row_order(X[:, 0], model.user_ids_)
    )
    # the same counts the metrics read
    from skcollapse.metrics import popularity_counts

    np.testing.assert_array_equal(
        popularity_counts(X, estimator=model), expected
    )
    unseen = X[:1].copy()
    unseen[0, 1] = "item-8" if kind == "string" else 8  # an id the model never saw
    with pytest.raises(ValueError, match="unseen in fit"):
        EmbeddingProjectionDisplay.from_estimator(model, unseen)


def test_projection_popularity_after_partial_fit_appends_an_id(rng, one_torch_thread):
    # fit on items {0, 1, 3}, then partial_fit brings item 2: it is appended,
    # so row 2 holds item 3 and row 3 item 2. Every id is < the number of rows,
    # so counting row numbers would not fail; it would swap the two counts.
    X1 = np.column_stack([rng.integers(0, 6, 60), rng.choice([0, 1, 3, 3, 3], 60)])
    X2 = np.column_stack([rng.integers(0, 6, 5), np.full(5, 2)])
    model = _fitted_mf(X1)
    model.partial_fit(X2)
    np.testing.assert_array_equal(model.item_ids_, [0, 1, 3, 2])
    X = np.vstack([X1, X2])
    disp = EmbeddingProjectionDisplay.from_estimator(model, X, max_points=None)
    expected = _counts_in_row_order(X[:, 1], model.item_ids_)
    assert expected[2] != expected[3]
    np.testing.assert_array_equal(disp.popularity, expected)


def test_projection_popularity_of_contiguous_ids_unchanged(rng, one_torch_thread):
    # ids 0..n-1, every one seen: rows are the ids, the count is a bincount
    X = np.column_stack([rng.integers(0, 12, 200), rng.integers(0, 9, 200)])
    X[:9, 1] = np.arange(9)
    X[:12, 0] = np.arange(12)
    model = _fitted_mf(X)
    disp = EmbeddingProjectionDisplay.from_estimator(model, X, max_points=None)
    np.testing.assert_array_equal(disp.popularity, np.bincount(X[:, 1], minlength=9))
    disp = EmbeddingProjectionDisplay.from_estimator(
        model, X, table="user", max_points=None
    )
    np.testing.assert_array_equal(disp.popularity, np.bincount(X[:, 0], minlength=12))


@pytest.mark.parametrize(
    ("X", "exc", "match"),
    [
        (np.array([[0, -1]]), ValueError, "negative"),
        (np.array([[0, 9]]), ValueError, "item id 9 but the table has n_rows=3"),
        (np.array([0, 1]), ValueError, "shape"),
        (np.array([[0.0, 1.5]]), ValueError, "integer"),
        # a model without item_ids_ reads ids as row numbers: strings are refused
        (np.array([["a", "b"]]), ValueError, "non-integer item ids.*row numbers"),
    ],
)
def test_projection_bad_interactions(X, exc, match, rng):
    model = FakeModel({"item": rng.normal(size=(3, 2))})
    with pytest.raises(exc, match=match):
        EmbeddingProjectionDisplay.from_estimator(model, X)


def test_projection_bad_input(rng):
    E = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="popularity has 3"):
        EmbeddingProjectionDisplay.from_embeddings(E, popularity=[1, 2, 3])
    with pytest.raises(ValueError, match=r"'max_points' parameter of \S+ must be an int"):
        EmbeddingProjectionDisplay.from_embeddings(E, max_points=0)
    model = FakeModel({"field_0": E})
    with pytest.raises(ValueError, match="pass popularity"):
        EmbeddingProjectionDisplay.from_estimator(
            model, np.zeros((2, 2), int), table="field_0"
        )
    with pytest.raises(TypeError, match=r"'table' parameter of \S+ must be an instance"):
        EmbeddingProjectionDisplay.from_estimator(model, table=["field_0"])


# ---------------------------------------------------------------------- field spectra
def _svd_normalized(E):
    s = reference_singular_values(E)
    return s / s[0]


def test_field_spectrum_heatmap_equals_per_field_svd(rng):
    tables = {
        "big": _planted(rng, 300, 8, 2),
        "tiny": rng.normal(size=(3, 8)),
        "mid": rng.normal(size=(40, 8)),
    }
    disp = FieldSpectrumDisplay.from_embeddings(tables, name="DCNv2")
    # fields sorted by cardinality, as in Guo et al.
    assert list(disp.singular_values["DCNv2"]) == ["tiny", "mid", "big"]
    mat = disp.normalized_singular_values["DCNv2"]
    assert mat.shape == (3, 8)
    np.testing.assert_allclose(mat[0, :3], _svd_normalized(tables["tiny"]), rtol=1e-6)
    assert np.isnan(mat[0, 3:]).all()  # a 3-row table has 3 singular values
    np.testing.assert_allclose(mat[1], _svd_normalized(tables["mid"]), rtol=1e-6)
    np.testing.assert_allclose(
        mat[2, :2], _svd_normalized(tables["big"])[:2], rtol=1e-6
    )
    for field, E in tables.items():
        assert disp.information_abundances["DCNv2"][field] == pytest.approx(
            _ia_reference(E), rel=1e-8
        )
    # the image shows the same matrix (NaN padding masked)
    shown = disp.images_[0].get_array()
    assert shown.mask[0, 3:].all()
    np.testing.assert_allclose(shown[1].filled(), mat[1], rtol=1e-12)
    labels = [t.get_text() for t in disp.ax_.get_yticklabels()]
    ia_tiny = _ia_reference(tables["tiny"])
    assert labels[0] == f"tiny (IA {ia_tiny:.1f})"
    assert disp.colorbar_ is not None


def test_field_spectrum_concatenates_embedding_sets(rng):
    sets = {f"C1/set{m}": rng.normal(size=(30, 4)) for m in (1, 0)}
    sets["C2/set0"] = rng.normal(size=(5, 4))
    disp = FieldSpectrumDisplay.from_embeddings(sets, order=None)
    joint = np.concatenate([sets["C1/set0"], sets["C1/set1"]], axis=1)
    mat = disp.normalized_singular_values["embeddings"]
    assert list(disp.singular_values["embeddings"]) == ["C1", "C2"]
    np.testing.assert_allclose(mat[0], _svd_normalized(joint), rtol=1e-6)
    assert disp.information_abundances["embeddings"]["C1"] == pytest.approx(
        _ia_reference(joint), rel=1e-8
    )
    sep = FieldSpectrumDisplay.from_embeddings(sets, sets="separate", order=None)
    assert list(sep.singular_values["embeddings"]) == ["C1/set1", "C1/set0", "C2/set0"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("C1/set0", ("C1", 0)),
        ("field_3_set_12", ("field_3", 12)),
        ("user id set 2", ("user id", 2)),
        ("C1", ("C1", None)),
        ("offset", ("offset", None)),
    ],
)
def test_split_field_and_set(name, expected):
    assert split_field_and_set(name) == expected


def test_field_spectrum_single_vs_multi_side_by_side(rng):
    se = FakeModel({"C0": rng.normal(size=(20, 8)), "C1": _planted(rng, 50, 8, 1)})
    me = FakeModel(
        {
            f"C{f}/set{m}": rng.normal(size=(n, 4))
            for f, n in ((0, 20), (1, 50))
            for m in range(2)
        }
    )
    disp = FieldSpectrumDisplay.from_estimators({"single": se, "multi": me})
    assert len(disp.axes_) == 2 and len(disp.images_) == 2
    assert disp.images_[0].norm is disp.images_[1].norm  # one colour scale
    assert disp.normalized_singular_values["multi"].shape == (2, 8)
    ia = disp.information_abundances
    assert ia["multi"]["C1"] > ia["single"]["C1"]
    assert disp.axes_[1].get_title().startswith("multi (mean IA")
    fig, axes = plt.subplots(1, 2)
    disp = FieldSpectrumDisplay.from_estimators(
        {"single": se, "multi": me}, ax=axes, colorbar=False
    )
    assert disp.figure_ is fig and disp.colorbar_ is None
    disp = FieldSpectrumDisplay.from_estimator(se, tables=["C0"])
    assert list(disp.singular_values) == ["FakeModel"]


def test_field_spectrum_bad_input(rng):
    tables = {"a": rng.normal(size=(5, 3))}
    with pytest.raises(ValueError, match=r"'sets' parameter of \S+ must be a str among"):
        FieldSpectrumDisplay.from_embeddings(tables, sets="mean")
    with pytest.raises(ValueError, match=r"'order' parameter of \S+ must be a str"):
        FieldSpectrumDisplay.from_embeddings(tables, order="name")
    with pytest.raises(ValueError, match=r"'vmin' parameter of \S+ must be a float"):
        FieldSpectrumDisplay.from_embeddings(tables, vmin=2.0)
    with pytest.raises(TypeError, match="non-empty dict"):
        FieldSpectrumDisplay.from_embeddings(rng.normal(size=(5, 3)))
    bad_sets = {"a/set0": rng.normal(size=(5, 3)), "a/set1": rng.normal(size=(6, 3))}
    with pytest.raises(ValueError, match="different numbers of rows"):
        FieldSpectrumDisplay.from_embeddings(bad_sets)
    with pytest.raises(TypeError, match="non-empty dict"):
        FieldSpectrumDisplay.from_estimators([FakeModel(tables)])
    _, axes = plt.subplots(1, 3)
    with pytest.raises(ValueError, match="3 axes but there are 1 panels"):
        FieldSpectrumDisplay.from_embeddings(tables, ax=axes)


# ---------------------------------------------------------------------------- history
def _fake_history(rng, n_epochs, every=1):
    rows = []
    for epoch in range(1, n_epochs + 1):
        row = {"epoch": epoch, "train_loss": float(rng.random())}
        if epoch % every == 0:
            row.update(
                user_erank=float(rng.uniform(1, 64)),
                item_erank=float(rng.uniform(1, 64)),
                user_ia=float(rng.uniform(1, 64)),
                item_ia=float(rng.uniform(1, 64)),
            )
        rows.append(row)
    return rows


@pytest.mark.parametrize(
    ("column", "metric"),
    [
        ("item_erank", "erank"),
        ("erank_user", "erank"),
        ("effective_rank", "erank"),
        ("item_ia", "ia"),
        ("ia", "ia"),
        ("rankme_item", "erank"),
        ("item_srank", "srank"),
        ("stable_rank_user", "srank"),
        ("norm_std_item", "norm_std"),
        ("cond_item", "cond"),
        ("train_loss", None),
        ("media_score", None),
        ("valid_acc", None),
    ],
)
def test_metric_of_column(column, metric):
    assert metric_of_column(column) == metric


def test_history_lines_equal_recorded_values(rng):
    rows = _fake_history(rng, 6, every=2)
    disp = CollapseHistoryDisplay.from_history(rows, name="MF")
    assert len(disp.axes_) == 2
    assert disp.axes_[0].get_ylabel() == "effective rank"
    assert disp.axes_[1].get_ylabel() == "information abundance"
    assert set(disp.lines_) == {
        ("MF", c) for c in ("user_erank", "item_erank", "user_ia", "item_ia")
    }
    for (_, column), line in disp.lines_.items():
        recorded = [(r["epoch"], r[column]) for r in rows if column in r]
        np.testing.assert_array_equal(line.get_xdata(), [e for e, _ in recorded])
        np.testing.assert_array_equal(line.get_ydata(), [v for _, v in recorded])
    assert disp.lines_["MF", "item_erank"] in disp.axes_[0].get_lines()
    assert disp.lines_["MF", "item_ia"] in disp.axes_[1].get_lines()
    legend = [t.get_text() for t in disp.axes_[0].get_legend().get_texts()]
    assert legend == ["user", "item"]


def test_history_one_colour_per_run(rng):
    runs = {"MF": _fake_history(rng, 3), "MF + LogDet": _fake_history(rng, 4)}
    disp = CollapseHistoryDisplay.from_histories(runs, columns=["item_erank"])
    assert len(disp.axes_) == 1
    a, b = disp.lines_["MF", "item_erank"], disp.lines_["MF + LogDet", "item_erank"]
    assert a.get_color() != b.get_color()
    assert len(b.get_xdata()) == 4
    legend = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert legend == ["MF item", "MF + LogDet item"]


def test_history_from_skorch_net(rng):
    skorch = pytest.importorskip("skorch")
    torch = pytest.importorskip("torch")
    from skorch.callbacks import Callback

    from skcollapse.metrics import effective_rank

    class RecordErank(Callback):
        def on_epoch_end(self, net, **kwargs):
            W = net.module_.weight.detach().numpy()
            net.history.record("weight_erank", effective_rank(W))

    X = rng.normal(size=(64, 5)).astype(np.float32)
    y = X.sum(axis=1).astype(np.float32)
    net = skorch.NeuralNetRegressor(
        torch.nn.Linear(5, 1),
        max_epochs=3,
        callbacks=[RecordErank()],
        train_split=None,
        verbose=0,
    )
    net.fit(X, y.reshape(-1, 1))
    disp = CollapseHistoryDisplay.from_estimator(net, name="linear")
    np.testing.assert_array_equal(
        disp.lines_["linear", "weight_erank"].get_ydata(),
        net.history[:, "weight_erank"],
    )
    np.testing.assert_array_equal(
        disp.lines_["linear", "weight_erank"].get_xdata(), [1, 2, 3]
    )
    unfitted = skorch.NeuralNetRegressor(torch.nn.Linear(5, 1))
    with pytest.raises(ValueError, match="fit it first"):
        CollapseHistoryDisplay.from_estimator(unfitted)


def test_history_bad_input(rng):
    rows = _fake_history(rng, 2)
    with pytest.raises(ValueError, match="no erank/IA columns"):
        CollapseHistoryDisplay.from_history([{"epoch": 1, "train_loss": 0.5}])
    with pytest.raises(ValueError, match=r"columns \['valid_erank'\] not found"):
        CollapseHistoryDisplay.from_history(rows, columns="valid_erank")
    with pytest.raises(ValueError, match="empty"):
        CollapseHistoryDisplay.from_history([])
    with pytest.raises(TypeError, match="list of per-epoch dicts"):
        CollapseHistoryDisplay.from_history("history")
    with pytest.raises(TypeError, match="not numbers"):
        CollapseHistoryDisplay.from_history([{"epoch": 1, "item_erank": "high"}])
    with pytest.raises(TypeError, match="non-empty dict"):
        CollapseHistoryDisplay.from_histories([rows])
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="1 axes but 2 metrics"):
        CollapseHistoryDisplay.from_history(rows, ax=ax)


def test_field_spectrum_colour_scale_adapts_to_the_data(rng):
    flat = {"a": rng.normal(size=(200, 6)), "b": rng.normal(size=(300, 6))}
    disp = FieldSpectrumDisplay.from_embeddings(flat)
    smallest = np.nanmin(disp.normalized_singular_values["embeddings"])
    assert disp.images_[0].norm.vmin == pytest.approx(min(smallest, 0.1))
    noisy = {"a": _planted(rng, 200, 6, 1) + 1e-9 * rng.normal(size=(200, 6))}
    disp = FieldSpectrumDisplay.from_embeddings(noisy)
    assert disp.images_[0].norm.vmin == pytest.approx(1e-4)  # noise is clipped
    exact = {"a": np.outer(np.arange(1.0, 11.0), np.ones(6))}  # rank 1, zeros
    disp = FieldSpectrumDisplay.from_embeddings(exact)
    assert disp.images_[0].norm.vmin == pytest.approx(0.1)  # one decade at least
    disp = FieldSpectrumDisplay.from_embeddings(flat, vmin=0.05)
    assert disp.images_[0].norm.vmin == 0.05


def test_history_from_a_recommender_with_collapse_monitor():
    from skcollapse.callbacks import CollapseMonitor
    from skcollapse.datasets import make_interactions
    from skcollapse.recommenders import MFRecommender

    X = make_interactions(60, 40, random_state=0)
    monitor = CollapseMonitor(record_initial=True)
    net = MFRecommender(
        embedding_dim=8,
        max_epochs=3,
        batch_size=256,
        random_state=0,
        callbacks=[monitor],
    ).fit(X)
    disp = CollapseHistoryDisplay.from_estimator(net, name="MF")
    assert {c for _, c in disp.lines_} == {
        "erank_user",
        "erank_item",
        "ia_user",
        "ia_item",
    }
    line = disp.lines_["MF", "erank_item"]
    np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2, 3])
    assert line.get_ydata()[0] == monitor.initial_["erank_item"]
    np.testing.assert_allclose(line.get_ydata()[1:], net.history[:, "erank_item"])
    # the last point is the effective rank of the fitted item table
    final = net.get_embeddings()["item"]
    assert line.get_ydata()[-1] == pytest.approx(_erank_reference(final), rel=1e-5)
    legend = [t.get_text() for t in disp.axes_[0].get_legend().get_texts()]
    assert sorted(legend) == ["item", "user"]


def test_history_legend_moves_outside_when_crowded(rng):
    runs = {f"run {i}": _fake_history(rng, 3) for i in range(4)}  # 8 lines/axes
    disp = CollapseHistoryDisplay.from_histories(runs)
    assert disp.axes_[0].get_legend() is None
    outside = disp.axes_[1].get_legend()
    assert len(outside.get_texts()) == 8
    few = CollapseHistoryDisplay.from_histories(
        {"a": _fake_history(rng, 3)}, legend="outside"
    )
    assert few.axes_[0].get_legend() is None and few.axes_[1].get_legend()
    none = CollapseHistoryDisplay.from_histories(
        {"a": _fake_history(rng, 3)}, legend=None
    )
    assert all(ax.get_legend() is None for ax in none.axes_)
    with pytest.raises(ValueError, match=r"'legend' parameter of CollapseHistoryDisplay.plot must be a str"):
        CollapseHistoryDisplay.from_histories(
            {"a": _fake_history(rng, 3)}, legend="top"
        )
