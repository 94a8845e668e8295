"""Codebook-collapse metrics on codes with known answers, the scorer, the display."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from skcollapse.plotting import CodeUsageDisplay
from skcollapse.quantization import (
    CodebookScorer,
    ResidualKMeans,
    code_perplexity,
    code_usage,
    codebook_erank,
    codebook_metrics,
    collision_rate,
    largest_collision_group,
    reconstruction_error,
)

K = 8


def test_uniform_codes_use_every_code_with_perplexity_k():
    codes = np.column_stack([np.tile(np.arange(K), 5), np.repeat(np.arange(K), 5)])
    np.testing.assert_allclose(code_usage(codes, K), [1.0, 1.0])
    np.testing.assert_allclose(code_perplexity(codes, K), [K, K])


def test_one_code_has_usage_one_over_k_and_perplexity_one():
    codes = np.full((50, 3), 2)
    np.testing.assert_allclose(code_usage(codes, K), [1 / K] * 3)
    np.testing.assert_allclose(code_perplexity(codes, K), [1.0] * 3)
    assert collision_rate(codes) == 1.0
    assert largest_collision_group(codes) == 50


def test_perplexity_of_a_known_distribution():
    codes = np.array([[0], [0], [1], [2]])  # p = (1/2, 1/4, 1/4): H = 1.5 ln 2
    np.testing.assert_allclose(code_perplexity(codes), [2**1.5])
    np.testing.assert_allclose(code_usage(codes, 4), [0.75])


def test_planted_collisions_give_exact_rate_and_largest_group():
    ids = [[0, 0]] * 3 + [[1, 2]] * 2 + [[0, 1], [1, 0], [2, 2], [3, 1], [2, 0]]
    codes = np.array(ids)[np.random.default_rng(0).permutation(10)]
    assert collision_rate(codes) == 0.5  # 3 + 2 of 10 items share an ID
    assert largest_collision_group(codes) == 3


def test_unique_ids_have_no_collision():
    codes = np.arange(12).reshape(6, 2)
    assert collision_rate(codes) == 0.0
    assert largest_collision_group(codes) == 1


def test_codebook_erank_counts_orthogonal_used_codes():
    books = [np.eye(4), 3 * np.eye(4)]
    np.testing.assert_allclose(codebook_erank(books), [4.0, 4.0])
    codes = np.array([[0, 1], [1, 1], [1, 1]])  # level 0 uses 2 codes, level 1 one
    np.testing.assert_allclose(codebook_erank(books, codes), [2.0, 1.0])


def test_reconstruction_error_absolute_and_relative():
    X = np.array([[3.0, 4.0], [0.0, 0.0]])
    assert reconstruction_error(X, X) == 0.0
    assert reconstruction_error(X, np.zeros_like(X)) == 12.5
    assert reconstruction_error(X, np.zeros_like(X), relative=True) == 1.0
    assert reconstruction_error(X, X + 1.0) == 2.0


@pytest.mark.parametrize(
    ("codes", "exc", "match"),
    [
        (np.arange(4), ValueError, "codes must be a 2-D"),
        (np.zeros((0, 2), dtype=int), ValueError, "codes is empty"),
        (np.array([[0.5, 1.0]]), TypeError, "codes must hold integer"),
        (np.array([[-1, 0]]), ValueError, "codes must be non-negative"),
        (np.array([[0, K]]), ValueError, "codebook_size=8"),
    ],
)
def test_bad_codes_are_refused_naming_the_argument(codes, exc, match):
    with pytest.raises(exc, match=match):
        code_usage(codes, K)


def test_bad_arguments_name_the_parameter():
    with pytest.raises(InvalidParameterError, match="codebook_size"):
        code_usage([[0]], 0)
    with pytest.raises(ValueError, match="X and X_reconstructed"):
        reconstruction_error(np.ones((2, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="finite"):
        reconstruction_error(np.full((2, 2), np.nan), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"codebooks\[0\]"):
        codebook_erank([np.ones(3)])


@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(0).normal(size=(120, 4))
    return ResidualKMeans(n_levels=2, codebook_size=6, random_state=0).fit(X), X


def test_codebook_metrics_agree_with_the_functions(fitted):
    rq, X = fitted
    m = codebook_metrics(rq, X)
    codes = rq.transform(X)
    assert m["usage"] == code_usage(codes, 6).tolist()
    assert m["perplexity"] == code_perplexity(codes).tolist()
    assert m["collision_rate"] == collision_rate(codes)
    assert m["largest_collision_group"] == largest_collision_group(codes)
    assert m["reconstruction_error"] == pytest.approx(
        np.mean(np.sum((X - rq.inverse_transform(codes)) ** 2, axis=1))
    )
    assert len(m["code_erank"]) == len(m["residual_erank"]) == 2


def test_scorer_returns_the_metric_signed_and_per_level(fitted):
    rq, X = fitted
    m = codebook_metrics(rq, X)
    assert CodebookScorer()(rq, X) == pytest.approx(np.mean(m["perplexity"]))
    assert CodebookScorer("usage", level=1)(rq, X) == m["usage"][1]
    assert CodebookScorer("neg_collision_rate")(rq, X) == -m["collision_rate"]
    assert CodebookScorer("neg_reconstruction_error")(rq, X) == pytest.approx(
        -m["reconstruction_error"]
    )
    with pytest.raises(ValueError, match="level=0 applies to the per-level"):
        CodebookScorer("neg_collision_rate", level=0)(rq, X)
    with pytest.raises(ValueError, match="level=5 but the quantizer has 2"):
        CodebookScorer("usage", level=5)(rq, X)
    with pytest.raises(InvalidParameterError, match="metric"):
        CodebookScorer("accuracy")(rq, X)


def test_scorer_in_grid_search_prefers_more_codes_for_reconstruction():
    X = np.random.default_rng(1).normal(size=(150, 4))
    search = GridSearchCV(
        ResidualKMeans(n_levels=1, random_state=0),
        {"codebook_size": [2, 8]},
        scoring=CodebookScorer("neg_reconstruction_error"),
        cv=3,
    ).fit(X)
    assert search.best_params_ == {"codebook_size": 8}


def test_display_counts_are_the_code_histograms():
    codes = np.array([[0, 1], [1, 1], [1, 1], [3, 1]])
    disp = CodeUsageDisplay.from_codes(codes, 4, name="toy")
    assert [c.tolist() for c in disp.counts] == [[1, 2, 0, 1], [0, 4, 0, 0]]
    assert len(disp.lines_) == 2
    np.testing.assert_array_equal(disp.lines_[0].get_ydata(), [2, 1, 1, 0])
    assert disp.ax_.get_yscale() == "symlog"
    assert "usage 0.75" in disp.lines_[0].get_label()
    assert disp.ax_.get_title() == "toy"


def test_display_from_estimator_reads_transform(fitted):
    rq, X = fitted
    disp = CodeUsageDisplay.from_estimator(rq, X)
    assert len(disp.counts) == 2
    assert all(c.sum() == len(X) for c in disp.counts)
    assert disp.ax_.get_title() == "ResidualKMeans"
    with pytest.raises(TypeError, match="quantizer must be a fitted quantizer"):
        CodeUsageDisplay.from_estimator(object(), X)
    with pytest.raises(ValueError, match="codebook_size"):
        CodeUsageDisplay.from_codes(np.zeros((2, 1), dtype=int), 0)


def test_scorer_selects_rqvae_settings_in_grid_search():
    from skcollapse.quantization import RQVAE

    X = np.random.default_rng(2).normal(size=(90, 4))
    search = GridSearchCV(
        RQVAE(n_levels=2, codebook_size=4, latent_dim=2, hidden_layer_sizes=(8,),
              max_epochs=2, batch_size=32, random_state=0),
        {"dead_code_threshold": [0, 1]},
        scoring={"usage": CodebookScorer("usage"),
                 "collisions": CodebookScorer("neg_collision_rate")},
        refit="usage",
        cv=2,
    ).fit(X)
    assert set(search.cv_results_) >= {"mean_test_usage", "mean_test_collisions"}
    assert all(0 < u <= 1 for u in search.cv_results_["mean_test_usage"])
    assert search.best_estimator_.transform(X).shape == (90, 2)
