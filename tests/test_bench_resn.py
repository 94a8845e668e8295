"""benchmarks/bench_resn.py: the split files, the shared metric code, the
authors' loss as we wrote it, and the epoch rule (no training of either side)."""

import argparse
import math

import numpy as np
import pytest
import torch
from _bench import load_benchmark

from skcollapse.datasets import read_lightgcn_file


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_resn", shared=True)


def test_split_files_round_trip(bench, tmp_path):
    pairs = np.array([[2, 5], [0, 1], [0, 3], [2, 0], [0, 2]])
    path = tmp_path / "train.txt"
    bench.write_split(path, pairs, n_users=4)
    lines = path.read_text().splitlines()
    assert lines == ["0 1 3 2", "1", "2 5 0", "3"]  # every user, file order kept
    back = read_lightgcn_file(path)
    assert sorted(map(tuple, back)) == sorted(map(tuple, pairs))


def test_make_split_holds_out_training_pairs_only(bench, tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    train = np.array([(u, i) for u in range(30) for i in rng.choice(40, 10, replace=False)])
    test = np.array([(u, i) for u in range(30) for i in range(40, 43)])
    bench.write_split(data / "train.txt", train, 30)
    bench.write_split(data / "test.txt", test, 30)
    args = argparse.Namespace(
        data=str(data), work=str(tmp_path / "work"), max_users=0, seed=0,
        valid_size=0.1)
    info = bench.make_split(args)
    info2, pairs = bench.load_split(str(tmp_path / "work"))
    assert info["n_valid"] == 30 and info["n_train"] == 270  # 1 of 10 per user
    assert info2["n_users"] == 30 and info2["n_items"] == 43
    got = set(map(tuple, pairs["train"])) | set(map(tuple, pairs["valid"]))
    assert got == set(map(tuple, train))
    assert set(map(tuple, pairs["test"])) == set(map(tuple, test))


def _brute_force(U, V, seen, relevant, k):
    recalls, ndcgs = [], []
    for u in range(U.shape[0]):
        rel = relevant.get(u, set())
        if not rel:
            continue
        s = U[u] @ V.T
        s[list(seen.get(u, ()))] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        hits = [1.0 if i in rel else 0.0 for i in top]
        recalls.append(sum(hits) / len(rel))
        dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits))
        idcg = sum(1 / math.log2(j + 2) for j in range(min(len(rel), k)))
        ndcgs.append(dcg / idcg)
    return np.mean(recalls), np.mean(ndcgs)


def test_scorer_filters_what_each_split_must(bench):
    rng = np.random.default_rng(1)
    n_users, n_items = 12, 60
    U = rng.normal(size=(n_users, 8)).astype(np.float32)
    V = rng.normal(size=(n_items, 8)).astype(np.float32)
    cells = rng.permutation(n_users * n_items)[:300]
    cells = np.column_stack([cells // n_items, cells % n_items])
    pairs = {"train": cells[:200], "valid": cells[200:240], "test": cells[240:]}
    info = {"n_users": n_users, "n_items": n_items}
    scorer = bench.Scorer(info, pairs, chunk=5)

    def sets(p):
        out = {}
        for u, i in p:
            out.setdefault(int(u), set()).add(int(i))
        return out

    both = sets(np.concatenate([pairs["train"], pairs["valid"]]))
    for split, seen in (("valid", sets(pairs["train"])), ("test", both),
                        ("test_train_filter", sets(pairs["train"]))):
        rel = sets(pairs["valid" if split == "valid" else "test"])
        got = scorer(U, V, split)
        want = _brute_force(U, V, seen, rel, bench.K)
        assert got["recall"] == pytest.approx(want[0])
        assert got["ndcg"] == pytest.approx(want[1])


def test_authors_mse_is_their_weighted_mse_per_positive(bench):
    torch.manual_seed(0)
    user, pos, neg = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 4, 3)
    loss = bench.AuthorsMSE(loss="bce")(user, pos, neg)
    sp = torch.sigmoid((user * pos).sum(-1))
    sn = torch.sigmoid(torch.einsum("bd,bnd->bn", user, neg))
    # recommenders.py: sum (1 - sig(pos))^2 + sum sig(neg)^2 over the batch
    summed = (1 - sp).pow(2).sum() + sn.pow(2).sum()
    assert loss.item() == pytest.approx(summed.item() / 5)
    mask = torch.zeros(5, 4, dtype=torch.bool)
    mask[0, 1] = True
    masked = bench.AuthorsMSE(loss="bce")(user, pos, neg, neg_mask=mask)
    assert masked.item() == pytest.approx((summed - sn[0, 1] ** 2).item() / 5)


def test_selection_takes_the_first_best_validation_point(bench):
    curve = [{"epoch": e, "valid": {"ndcg": v}}
             for e, v in ((1, 0.1), (11, 0.3), (21, 0.3), (31, 0.2))]
    assert curve[bench.select_on_valid(curve)]["epoch"] == 11


def test_reference_tables_are_padded_to_the_split(bench):
    t = np.ones((3, 2), dtype=np.float32)
    out = bench.pad(t, 5)
    assert out.shape == (5, 2) and out[3:].sum() == 0 and out[:3].sum() == 6
