"""make_ctr (known click model) and load_libfm."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from skcollapse.datasets import load_libfm, make_ctr

FRAPPE = Path(__file__).resolve().parents[2] / "shared" / "eval-data" / "frappe"


# --------------------------------------------------------------------- make_ctr
def test_make_ctr_shapes_ranges_and_determinism():
    cards = [3, 50, 7]
    X, y, p = make_ctr(500, cardinalities=cards, random_state=3)
    assert X.shape == (500, 3) and X.dtype == np.int64
    assert y.shape == (500,) and set(np.unique(y)) <= {0, 1}
    assert p.shape == (500,) and ((p > 0) & (p < 1)).all()
    assert (X >= 0).all() and (X < np.array(cards)).all()
    X2, y2, p2 = make_ctr(500, cardinalities=cards, random_state=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(p, p2)
    X3, _, _ = make_ctr(500, cardinalities=cards, random_state=4)
    assert not np.array_equal(X, X3)


def test_make_ctr_default_mixes_low_and_high_cardinality():
    X, _, _ = make_ctr(20000, n_fields=6, zipf_exponent=0.0, random_state=0)
    n_codes = [len(np.unique(X[:, f])) for f in range(6)]
    assert all(2 <= n <= 10 for n in n_codes[::2])
    assert all(n >= 100 for n in n_codes[1::2])


def test_make_ctr_click_rate_and_labels_follow_proba():
    _X, y, p = make_ctr(40000, n_fields=4, click_rate=0.1, random_state=0)
    assert p.mean() == pytest.approx(0.1, abs=1e-6)
    # y ~ Bernoulli(p): the click rate is within 5 binomial std errors
    assert abs(y.mean() - 0.1) < 5 * np.sqrt(0.1 * 0.9 / 40000)
    # calibration: in proba deciles the click rate matches the mean proba
    bins = np.quantile(p, np.linspace(0, 1, 11))
    which = np.clip(np.searchsorted(bins, p, side="right") - 1, 0, 9)
    for b in range(10):
        sel = which == b
        se = np.sqrt(p[sel].mean() * (1 - p[sel].mean()) / sel.sum())
        assert abs(y[sel].mean() - p[sel].mean()) < 5 * se + 1e-3


def test_make_ctr_zipf_skews_frequencies():
    X, _, _ = make_ctr(20000, cardinalities=[200], zipf_exponent=1.2, random_state=0)
    counts = np.sort(np.bincount(X[:, 0], minlength=200))[::-1]
    # top code of a Zipf(1.2) law over 200 codes has ~ 1/zeta-ish mass >> 1/200
    assert counts[0] / 20000 > 0.2
    assert counts[-1] / 20000 < 1 / 200


def _first_order_auc(X, y, n_train):
    enc = OneHotEncoder(handle_unknown="ignore").fit(X[:n_train])
    lr = LogisticRegression(C=10.0, max_iter=2000).fit(
        enc.transform(X[:n_train]), y[:n_train]
    )
    return roc_auc_score(
        y[n_train:], lr.predict_proba(enc.transform(X[n_train:]))[:, 1]
    )


def test_make_ctr_planted_interactions_are_not_additive():
    """An additive (first-order) model reaches Bayes AUC only without pair terms."""
    kw = {"cardinalities": [4, 5, 6, 8], "random_state": 0, "first_order_strength": 0.7}
    X, y, p = make_ctr(30000, n_interactions=0, **kw)
    bayes = roc_auc_score(y[20000:], p[20000:])
    assert _first_order_auc(X, y, 20000) > bayes - 0.01

    X, y, p = make_ctr(30000, n_interactions=3, interaction_strength=2.0, **kw)
    bayes = roc_auc_score(y[20000:], p[20000:])
    assert _first_order_auc(X, y, 20000) < bayes - 0.05


def test_make_ctr_cardinalities_forms():
    X, _, _ = make_ctr(100, n_fields=3, cardinalities=4, random_state=0)
    assert X.shape == (100, 3) and X.max() <= 3
    X, _, _ = make_ctr(100, n_fields=9, cardinalities=(2, 3), random_state=0)
    assert X.shape == (100, 2)


_INT_GE_1 = r"parameter of make_ctr must be an int in the range \[1, inf\)"


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"n_samples": 0}, ValueError, rf"'n_samples' {_INT_GE_1}"),
        ({"n_samples": 2.5}, TypeError, rf"'n_samples' {_INT_GE_1}"),
        ({"n_fields": 0}, ValueError, rf"'n_fields' {_INT_GE_1}"),
        ({"cardinalities": []}, ValueError, "cardinalities is empty"),
        ({"cardinalities": [3, 0]}, ValueError, rf"'cardinalities\[1\]' {_INT_GE_1}"),
        ({"cardinalities": "abc"}, TypeError, r"'cardinalities' .* or an array-like"),
        ({"cardinalities": [3, 3], "n_interactions": 2}, ValueError, "n_interactions"),
        ({"click_rate": 1.0}, ValueError, r"'click_rate' .* range \(0.0, 1.0\)"),
        (
            {"interaction_strength": np.nan},
            ValueError,
            r"'interaction_strength' .* a float in the range \[0.0, inf\)",
        ),
        ({"interaction_rank": 0}, ValueError, rf"'interaction_rank' {_INT_GE_1}"),
        ({"zipf_exponent": -1}, ValueError, r"'zipf_exponent' .* range \[0.0, inf\)"),
    ],
)
def test_make_ctr_rejects_bad_arguments(kwargs, err, match):
    kwargs = {"n_samples": 10, **kwargs}
    n = kwargs.pop("n_samples")
    with pytest.raises(err, match=match):
        make_ctr(n, **kwargs)


# --------------------------------------------------------------------- load_libfm
def test_load_libfm_reads_one_hot_fields(tmp_path):
    path = tmp_path / "toy.libfm"
    path.write_text("1 3:1 10:1 20:1\n-1 4:1 11:1 20:1\n\n0 3:1 12:1 21:1\n")
    X, y = load_libfm(path)
    np.testing.assert_array_equal(X, [[3, 10, 20], [4, 11, 20], [3, 12, 21]])
    np.testing.assert_array_equal(y, [1, 0, 0])
    assert X.dtype == np.int64 and y.dtype == np.int64
    X32, _ = load_libfm(str(path), dtype=np.int32)
    assert X32.dtype == np.int32


@pytest.mark.parametrize(
    "text, match",
    [
        ("1 3:1 4:1\n0 5:1\n", "line 2 has 1 features"),
        ("2 3:1 4:1\n", "label"),
        ("1 3:0.5 4:1\n", "value is not 1"),
        ("1 3 4:1\n", "is not 'id:value'"),
        ("1 a:1 4:1\n", "feature id"),
        ("1 -3:1 4:1\n", "negative"),
        ("\n\n", "no samples"),
    ],
)
def test_load_libfm_rejects_malformed_files(tmp_path, text, match):
    path = tmp_path / "bad.libfm"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_libfm(path)


def test_load_libfm_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="not an existing file"):
        load_libfm(tmp_path / "missing.libfm")
    path = tmp_path / "ok.libfm"
    path.write_text("1 3:1 4:1\n")
    with pytest.raises(ValueError, match="expected 3"):
        load_libfm(path, n_fields=3)
    with pytest.raises(TypeError, match="dtype"):
        load_libfm(path, dtype=float)


@pytest.mark.skipif(not FRAPPE.is_dir(), reason="Frappe eval data not available")
def test_load_libfm_frappe_validation_file():
    X, y = load_libfm(FRAPPE / "frappe.validation.libfm")
    assert X.shape == (57722, 10)
    assert int(y.sum()) == 19063  # README: +1: 19063, -1: 38659
    # one-hot fields: every field owns a disjoint range of global ids
    lo, hi = X.min(axis=0), X.max(axis=0)
    assert (hi[:-1] < lo[1:]).all()


def test_make_ctr_spurious_fields_carry_no_signal():
    """Spurious fields are appended, leave the click model untouched, and their
    codes are independent of the clicks."""
    X0, y0, p0 = make_ctr(4000, n_fields=5, random_state=3)
    X, y, p = make_ctr(4000, n_fields=5, n_spurious_fields=2,
                       spurious_cardinality=50, random_state=3)
    assert X.shape == (4000, 7)
    np.testing.assert_array_equal(X[:, :5], X0)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(p, p0)
    assert X[:, 5:].min() >= 0 and X[:, 5:].max() < 50
    # clicks are independent of a spurious field's code: chi-square test over
    # its five most frequent codes
    from scipy.stats import chi2_contingency

    codes = X[:, 5]
    frequent = np.isin(codes, np.argsort(np.bincount(codes))[-5:])
    table = np.array([[np.sum((codes == c) & (y == k)) for k in (0, 1)]
                      for c in np.unique(codes[frequent])])
    assert chi2_contingency(table)[1] > 1e-3
