"""SimpleX's cosine contrastive loss (``CFLoss("ccl")``, ``loss="ccl"``) against a
numpy transcription of its formula, and end to end on the CF estimators."""

import numpy as np
import pytest
import torch

from skcollapse.datasets import make_interactions
from skcollapse.recommenders import CFLoss, LightGCNRecommender, MFRecommender


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _reference_ccl(u, p, negs, margin, weight):
    """``(1 - cos(u, i)) + w / |N| * sum_j max(0, cos(u, j) - m)``, averaged over
    rows, written out row by row in float64 (``negs``: one list per row)."""
    out = []
    for b in range(u.shape[0]):
        value = 1.0 - _cos(u[b], p[b])
        if negs[b]:
            hinge = [max(0.0, _cos(u[b], n) - margin) for n in negs[b]]
            value += weight / len(negs[b]) * sum(hinge)
        out.append(value)
    return float(np.mean(out))


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    B, n, d = 6, 5, 4
    return {
        "u": torch.randn(B, d, generator=g, dtype=torch.float64),
        "p": torch.randn(B, d, generator=g, dtype=torch.float64),
        "per_row": torch.randn(B, n, d, generator=g, dtype=torch.float64) * 3.0,
        "shared": torch.randn(n, d, generator=g, dtype=torch.float64),
    }


# margin -0.5 makes most hinges active, 0.3 some, 0.9 nearly none
@pytest.mark.parametrize("margin", [-0.5, 0.3, 0.9])
@pytest.mark.parametrize("weight", [0.0, 1.0, 25.0])
def test_per_positive_negatives_match_the_formula(batch, margin, weight):
    u, p, neg = batch["u"], batch["p"], batch["per_row"]
    got = float(CFLoss("ccl", margin=margin, negative_weight=weight)(u, p, neg))
    negs = [list(neg[b].numpy()) for b in range(u.shape[0])]
    want = _reference_ccl(u.numpy(), p.numpy(), negs, margin, weight)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("margin", [-0.5, 0.3])
def test_shared_negatives_match_the_formula_and_the_per_row_form(batch, margin):
    u, p, shared = batch["u"], batch["p"], batch["shared"]
    crit = CFLoss("ccl", margin=margin, negative_weight=7.0)
    got = float(crit(u, p, shared))
    negs = [list(shared.numpy()) for _ in range(u.shape[0])]
    want = _reference_ccl(u.numpy(), p.numpy(), negs, margin, 7.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    per_row = shared.expand(u.shape[0], *shared.shape)
    np.testing.assert_allclose(got, float(crit(u, p, per_row)), rtol=1e-12)


@pytest.mark.parametrize("form", ["shared", "per_row"])
def test_masked_negatives_leave_the_sum_and_the_count(batch, form):
    u, p, neg = batch["u"], batch["p"], batch[form]
    B, n = u.shape[0], neg.shape[-2]
    mask = torch.zeros(B, n, dtype=torch.bool)
    mask[1, 2] = mask[3, 0] = mask[3, 4] = True
    mask[5] = True  # every negative of row 5 masked: its positive term remains
    got = float(CFLoss("ccl", margin=-0.2, negative_weight=3.0)(u, p, neg, mask))
    rows = [neg if form == "shared" else neg[b] for b in range(B)]
    negs = [[rows[b][j].numpy() for j in range(n) if not mask[b, j]]
            for b in range(B)]
    want = _reference_ccl(u.numpy(), p.numpy(), negs, -0.2, 3.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_scale_invariant_positive_only_and_gradient(batch):
    u, p, neg = batch["u"], batch["p"], batch["per_row"]
    crit = CFLoss("ccl", margin=0.1, negative_weight=2.0)
    np.testing.assert_allclose(float(crit(5 * u, 0.1 * p, 3 * neg)),
                               float(crit(u, p, neg)), rtol=1e-12)
    # without negatives: the mean of 1 - cos(u, i)
    want = np.mean([1 - _cos(a, b) for a, b in zip(u.numpy(), p.numpy())])
    np.testing.assert_allclose(float(crit(u, p)), want, rtol=1e-12)
    # identical directions with easy negatives cost nothing
    assert float(crit(u, 2 * u, -u[:, None, :].expand_as(neg))) == pytest.approx(0)
    x = u.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: crit(a, p, neg), (x,))


def test_ccl_refuses_the_logq_correction(batch):
    with pytest.raises(ValueError, match="logQ correction applies to loss='softmax'"):
        CFLoss("ccl")(batch["u"], batch["p"], batch["shared"],
                      pos_log_q=torch.zeros(6), neg_log_q=torch.zeros(5))


@pytest.fixture(scope="module")
def split():
    X = make_interactions(300, 150, density=0.08, random_state=1)
    rng = np.random.default_rng(0)
    test = rng.random(X.shape[0]) < 0.2
    return X[~test], X[test]


# per-positive negatives cost a sparse gradient row each: fewer of them here
@pytest.mark.parametrize("cls, sampling, n_negatives", [
    (MFRecommender, "shared", 64), (LightGCNRecommender, "shared", 64),
    (MFRecommender, "independent", 8),
])
def test_estimators_train_with_ccl_and_beat_popularity(split, cls, sampling,
                                                       n_negatives):
    from skcollapse.recommenders import PopularityRecommender

    train, test = split
    model = cls(loss="ccl", similarity="cosine", negative_sampling=sampling,
                n_negatives=n_negatives, margin=0.3, negative_weight=5.0, lr=0.05,
                embedding_dim=16, batch_size=512, max_epochs=15,
                random_state=0).fit(train)
    assert model.criterion_.loss == "ccl"
    assert model.criterion_.margin == 0.3 and model.criterion_.negative_weight == 5.0
    losses = model.history[:, "train_loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    np.testing.assert_allclose(
        np.linalg.norm(model.get_embeddings()["item"], axis=1), 1.0, rtol=1e-5)
    popularity = PopularityRecommender().fit(train).score(test)
    assert model.score(test) > 1.1 * popularity


def test_ccl_estimator_parameters():
    X = np.array([[0, 0], [1, 1], [2, 2], [3, 1]])
    with pytest.raises(ValueError, match="similarity='cosine'"):
        MFRecommender(loss="ccl", max_epochs=1).fit(X)
    with pytest.raises(ValueError, match="'margin' parameter"):
        MFRecommender(loss="ccl", similarity="cosine", margin=1.0, max_epochs=1).fit(X)
    with pytest.raises(ValueError, match="'negative_weight' parameter"):
        MFRecommender(loss="ccl", similarity="cosine", negative_weight=-1.0,
                      max_epochs=1).fit(X)
    # the default number of negatives of "ccl" (independent sampling)
    model = MFRecommender(loss="ccl", similarity="cosine", max_epochs=1).fit(X)
    assert model._n_negatives() == 128
    # set_params reaches the criterion on the next fit
    model.set_params(margin=0.5, negative_weight=3.0).fit(X)
    assert (model.criterion_.margin, model.criterion_.negative_weight) == (0.5, 3.0)
