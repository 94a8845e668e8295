"""Scale-out: gathered regularizer statistics, dask grid search, data parallelism.

Everything runs on CPU processes talking over loopback (127.0.0.1) or a file:
``torch.distributed`` with the gloo backend stands in for NCCL on GPUs, and a
``dask.distributed.LocalCluster`` for a real cluster.
"""

from __future__ import annotations

import copy
import os
import socket
import sys

import numpy as np
import pytest
import torch

from skcollapse.regularizers import (
    DecorrelatedBatchNorm,
    LogDetRegularizer,
    SyncBatchRegularizer,
)
from skcollapse.utils._distributed import (
    all_gather_rows,
    compute_device,
    is_distributed,
    num_processes,
    process_index,
    process_seed,
    shard_rows,
    shared_seed,
    unwrap_module,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def one_thread():
    """Train the in-process references single-threaded, like each worker."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------
# 1. helpers of skcollapse.utils._distributed, one process
# ---------------------------------------------------------------------------
def test_single_process_helpers_are_identity():
    assert not is_distributed()
    assert process_index() == 0
    assert num_processes() == 1
    x = torch.randn(5, 3)
    assert all_gather_rows(x) is x
    assert all_gather_rows(x, return_offset=True)[1] == 0
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        all_gather_rows(np.ones((2, 2)))
    with pytest.raises(ValueError, match="at least one dimension"):
        all_gather_rows(torch.tensor(1.0))


def test_process_seed_distinct_and_stable():
    seeds = [process_seed(7, rank=r) for r in range(64)]
    assert seeds[0] == 7  # one process keeps the user's seed
    assert len(set(seeds)) == 64
    assert process_seed(7) == 7  # not distributed: rank 0
    assert all(0 <= s < 2**32 for s in seeds)
    with pytest.raises(TypeError, match="seed"):
        process_seed(1.5)
    with pytest.raises(ValueError, match="rank"):
        process_seed(1, rank=-1)


def test_shard_rows_partition_and_equal_length():
    for n in (1, 7, 10, 11):
        for world in (1, 2, 3):
            shards = [shard_rows(n, rank=r, world=world) for r in range(world)]
            lengths = {len(s) for s in shards}
            assert lengths == {-(-n // world)}  # equal: same number of steps
            covered = torch.cat(shards)
            # every row is taken; only the wrap-around rows repeat
            assert set(covered.tolist()) == set(range(n))
            assert len(covered) - n == (-n) % world
    torch.testing.assert_close(shard_rows(5), torch.arange(5))  # one process
    assert shared_seed(42) == 42
    with pytest.raises(ValueError, match="rank"):
        shard_rows(4, rank=2, world=2)
    with pytest.raises(ValueError, match=r"'n' parameter of shard_rows must be an int"):
        shard_rows(0, rank=0, world=1)
    with pytest.raises(TypeError, match="seed"):
        shared_seed("1")


def test_unwrap_module_and_compute_device():
    lin = torch.nn.Linear(2, 2)
    assert unwrap_module(lin) is lin
    assert unwrap_module(torch.nn.DataParallel(lin)) is lin
    assert unwrap_module(None) is None

    class _Fake:
        device = None
        module_ = lin

    assert compute_device(_Fake()) == torch.device("cpu")
    fake = _Fake()
    fake.device = "cpu"
    assert compute_device(fake) == torch.device("cpu")

    class _Acc:
        device = torch.device("cpu")

    fake = _Fake()
    fake.accelerator = _Acc()
    assert compute_device(fake) == torch.device("cpu")


def test_sync_regularizer_single_process_equals_wrapped():
    torch.manual_seed(0)
    batch = {"user": torch.randn(32, 4), "item": torch.randn(32, 4)}
    inner = LogDetRegularizer(weight=0.5)
    sync = SyncBatchRegularizer(inner, weight=2.0)
    assert sync.regularizer is not inner  # copied, never trained in place
    out, pen = sync(batch)
    _, ref = inner(batch)
    assert out["user"] is batch["user"]
    assert float(pen) == pytest.approx(2.0 * float(ref), rel=1e-6)
    assert sync.last_penalty_ == pytest.approx(inner.last_penalty_, rel=1e-6)
    assert SyncBatchRegularizer("dbn").kind == "layer"
    with pytest.raises(
        TypeError, match=r"'regularizer' parameter of SyncBatchRegularizer must be"
    ):
        SyncBatchRegularizer(None)
    with pytest.raises(ValueError, match="not a registered name"):
        SyncBatchRegularizer("no-such-regularizer")
    with pytest.raises(TypeError, match="cannot wrap another"):
        SyncBatchRegularizer(SyncBatchRegularizer("logdet"))


def test_sync_regularizer_pickles_and_utils_stay_light():
    import pickle
    import subprocess

    reg = SyncBatchRegularizer("logdet", weight=2.0)
    for other in (pickle.loads(pickle.dumps(reg)), copy.deepcopy(reg)):
        assert type(other) is SyncBatchRegularizer
        assert other.weight == 2.0
        assert isinstance(other.regularizer, LogDetRegularizer)
    assert SyncBatchRegularizer.__module__ == "skcollapse.regularizers._sync"
    # utils holds communication helpers only: importing them does not import the
    # regularizers (no arrow from utils to a feature package)
    code = (
        "import sys; import skcollapse.utils._distributed as d; "
        "print('skcollapse.regularizers' in sys.modules); "
        "print(hasattr(d, 'SyncBatchRegularizer'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
        check=True,
    ).stdout.split()
    assert out == ["False", "False"]


# ---------------------------------------------------------------------------
# 2. gathered statistics across 2 processes (gloo, file rendezvous)
# ---------------------------------------------------------------------------
_SIZES = (10, 6)  # uneven shards, as a short last batch gives


def _global_rows():
    g = torch.Generator().manual_seed(123)
    return torch.randn(sum(_SIZES), 4, generator=g, dtype=torch.float64)


def _gather_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        assert is_distributed() and process_index() == rank
        start = sum(_SIZES[:rank])
        stop = start + _SIZES[rank]
        # a replicated "parameter" (as DDP keeps it) whose local rows form the batch
        results = {}
        for label, make in (
            ("logdet", lambda: LogDetRegularizer(weight=1.0, center=True)),
            ("dbn", lambda: DecorrelatedBatchNorm()),
        ):
            P = _global_rows().requires_grad_(True)
            local = {"item": P[start:stop] * 1.0}
            ctx = {"item_ids": np.arange(start, stop)}
            sync = SyncBatchRegularizer(make())
            sync.train()
            out, pen = sync(local, ctx)
            # DDP averages gradients over processes, so each process's share of a
            # global-batch sum is scaled by ``world``; the penalty is not (every
            # process computes the same global-batch penalty)
            loss = pen + world * (out["item"] ** 2).sum() / P.shape[0]
            loss.backward()
            grad = P.grad.clone()
            dist.all_reduce(grad)
            grad /= world  # DDP's gradient averaging
            results[label] = {
                "penalty": float(pen.detach()),
                "out": out["item"].detach(),
                "grad": grad,
            }
        gathered, offset = all_gather_rows(
            torch.full((_SIZES[rank], 2), float(rank)), return_offset=True
        )
        results["gather"] = {"rows": gathered, "offset": offset}
        results["seed"] = shared_seed(1000 + rank)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_sync_regularizer_two_processes_equal_global_batch(tmp_path):
    mp = pytest.importorskip("torch.multiprocessing")
    world = len(_SIZES)
    mp.spawn(
        _gather_worker,
        args=(world, str(tmp_path / "rendezvous"), str(tmp_path)),
        nprocs=world,
        join=True,
    )
    res = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]

    # all_gather_rows: rank order, uneven sizes, offsets
    expect = torch.cat([torch.full((n, 2), float(r)) for r, n in enumerate(_SIZES)])
    for r in range(world):
        torch.testing.assert_close(res[r]["gather"]["rows"], expect)
        assert res[r]["gather"]["offset"] == sum(_SIZES[:r])
        assert res[r]["seed"] == 1000  # process 0's seed, everywhere

    # reference: one process holding the whole (global) batch
    for label, make in (
        ("logdet", lambda: LogDetRegularizer(weight=1.0, center=True)),
        ("dbn", lambda: DecorrelatedBatchNorm()),
    ):
        P = _global_rows().requires_grad_(True)
        reg = make()
        reg.train()
        out, pen = reg({"item": P * 1.0}, {"item_ids": np.arange(P.shape[0])})
        (pen + (out["item"] ** 2).sum() / P.shape[0]).backward()
        for r in range(world):
            got = res[r][label]
            assert got["penalty"] == pytest.approx(float(pen.detach()), rel=1e-9)
            start = sum(_SIZES[:r])
            torch.testing.assert_close(
                got["out"], out["item"].detach()[start : start + _SIZES[r]]
            )
            torch.testing.assert_close(got["grad"], P.grad, rtol=1e-9, atol=1e-12)

    # and the per-process statistic really differs from the global one
    P = _global_rows()
    local_pen = LogDetRegularizer(weight=1.0, center=True)({"item": P[: _SIZES[0]]})[1]
    assert abs(float(local_pen) - res[0]["logdet"]["penalty"]) > 1e-3


# ---------------------------------------------------------------------------
# 3. grid search on a dask cluster (joblib's dask backend)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    import logging

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _grid_search():
    from sklearn.model_selection import GridSearchCV

    from skcollapse.model_selection import PerUserShuffleSplit
    from skcollapse.recommenders import MFRecommender

    est = MFRecommender(
        n_users=_N_USERS, n_items=_N_ITEMS, embedding_dim=8, lr=0.01, max_epochs=3,
        batch_size=512, random_state=0,
    )
    grid = {
        "regularizer": ["logdet", "uniformity"],
        "regularizer__weight": [1e-3, 1e-1],
    }
    cv = PerUserShuffleSplit(n_splits=2, test_size=0.2, random_state=0)
    return GridSearchCV(est, grid, cv=cv, n_jobs=2, refit=False)


def test_grid_search_dask_backend_matches_sequential(dask_client, one_thread):
    joblib = pytest.importorskip("joblib")
    from distributed import get_task_stream

    X_train, _ = _cf_data()
    with joblib.parallel_backend("sequential"):
        seq = _grid_search().fit(X_train)
    with get_task_stream(dask_client) as ts, joblib.parallel_backend("dask"):
        par = _grid_search().fit(X_train)
    # the fits ran as tasks on the cluster's worker processes
    workers = {t["worker"] for t in ts.data}
    assert len(ts.data) >= 4 and workers <= set(dask_client.scheduler_info()["workers"])
    n = len(seq.cv_results_["params"])
    assert n == 4
    assert par.cv_results_["params"] == seq.cv_results_["params"]
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_allclose(
            par.cv_results_[key], seq.cv_results_[key], rtol=0, atol=1e-6
        )
    np.testing.assert_array_equal(
        par.cv_results_["rank_test_score"], seq.cv_results_["rank_test_score"]
    )
    # not a degenerate grid: the regularizer weight changes the scores
    assert np.ptp(seq.cv_results_["mean_test_score"]) > 1e-3


# ---------------------------------------------------------------------------
# 4. data-parallel training: AccelerateMixin on 2 CPU processes (gloo)
# ---------------------------------------------------------------------------
# Each process trains on its shard of every epoch (batch_size rows per step),
# DDP averages the gradients, so 2 processes x batch_size B follow the same
# objective as 1 process x batch_size 2B, with the same number of steps.
_N_USERS, _N_ITEMS = 300, 200
_CTR_B = 256
_CTR_PARAMS = {
    "cardinalities": [20, 20, 20, 20], "embedding_dim": 8, "lr": 3e-3,
    "max_epochs": 5, "random_state": 0,
}
_B = 128
_MF_PARAMS = {
    "n_users": _N_USERS,
    "n_items": _N_ITEMS,
    "embedding_dim": 16,
    "lr": 0.01,
    "max_epochs": 12,
    "random_state": 0,
}


def _cf_data():
    from skcollapse.datasets import make_interactions
    from skcollapse.model_selection import train_test_split_interactions

    X = make_interactions(
        _N_USERS, _N_ITEMS, n_components=4, density=0.08, random_state=0
    )
    return train_test_split_interactions(X, test_size=0.2, random_state=0)


def _cpu_accelerator():
    """An ``Accelerator(cpu=True)`` that leaves parameter-free modules unwrapped.

    accelerate (1.15) wraps every module in DDP on multi-CPU runs, and DDP
    refuses modules without trainable parameters (the loss, the regularizer);
    on GPUs accelerate already skips them. This is the same rule.
    """
    from accelerate import Accelerator

    class _CPUAccelerator(Accelerator):
        def prepare_model(self, model, device_placement=None, evaluation_mode=False):
            if not any(p.requires_grad for p in model.parameters()):
                return model.to(self.device)
            return super().prepare_model(
                model, device_placement=device_placement, evaluation_mode=evaluation_mode
            )

    return _CPUAccelerator(cpu=True)


def _regularizer(sync):
    reg = LogDetRegularizer(weight=0.001)
    return SyncBatchRegularizer(reg) if sync else reg


def _ctr_data():
    from skcollapse.datasets import make_ctr

    X, y, _ = make_ctr(6000, n_fields=4, cardinalities=20, random_state=0)
    return X[:4800], y[:4800], X[4800:], y[4800:]


def _ctr_worker(out_dir):
    """Body of each torchrun process for the CTR classifier."""
    import json

    from sklearn.metrics import roc_auc_score
    from skorch.hf import AccelerateMixin

    from skcollapse.recommenders import DCNv2Classifier

    class AcceleratedDCNv2(AccelerateMixin, DCNv2Classifier):
        """DCNv2 trained data-parallel by accelerate."""

    X_train, y_train, X_test, y_test = _ctr_data()
    acc = _cpu_accelerator()
    net = AcceleratedDCNv2(
        accelerator=acc, device=None, batch_size=_CTR_B,
        regularizer=_regularizer(False), **_CTR_PARAMS,
    )
    net.fit(X_train, y_train)
    proba = net.predict_proba(X_test)[:, 1]
    weights = torch.cat([p.detach().reshape(-1) for p in net.module_.parameters()])
    result = {
        "rank": acc.process_index,
        "n_pred": int(proba.shape[0]),
        "auc": float(roc_auc_score(y_test, proba)),
        "checksum": float(weights.double().abs().sum()),
        "steps_per_epoch": len(net.history[-1, "batches"]),
        "penalty": float(net.history[-1, "regularizer_penalty"]),
        "unwrapped": type(net.module_).__name__,
    }
    with open(os.path.join(out_dir, f"rank{acc.process_index}.json"), "w") as f:
        json.dump(result, f)


def _cf_estimator(name, accelerate=False):
    """The CF estimator class of a test mode, optionally with AccelerateMixin."""
    from skcollapse.recommenders import LightGCNRecommender, MFRecommender

    base = LightGCNRecommender if name == "lightgcn" else MFRecommender
    if not accelerate:
        return base
    from skorch.hf import AccelerateMixin

    class Accelerated(AccelerateMixin, base):
        """The estimator trained data-parallel by accelerate."""

    return Accelerated


def _cf_params(name):
    if name == "lightgcn":
        # no n_users/n_items: the module is rebuilt for the data in fit and must
        # then be prepared for accelerate again
        params = {k: v for k, v in _MF_PARAMS.items() if k not in ("n_users", "n_items")}
        return {**params, "n_layers": 2, "max_epochs": 8}
    return dict(_MF_PARAMS)


def _accelerate_worker(out_dir, mode):
    """Body of each process launched by torchrun (see ``__main__`` below)."""
    import json

    from skcollapse.utils._distributed import unwrap_module

    name = "lightgcn" if mode == "lightgcn" else "mf"
    X_train, X_test = _cf_data()
    acc = _cpu_accelerator()
    net = _cf_estimator(name, accelerate=True)(
        accelerator=acc, device=None, batch_size=_B,
        regularizer=_regularizer(mode == "sync"), **_cf_params(name),
    )
    net.fit(X_train)
    weights = unwrap_module(net.module_).embedding.weight.detach()
    result = {
        "rank": acc.process_index,
        "world": acc.num_processes,
        "distributed": is_distributed(),
        "ndcg": float(net.score(X_test)),
        "checksum": float(weights.double().sum()),
        "abs_checksum": float(weights.double().abs().sum()),
        "steps_per_epoch": len(net.history[-1, "batches"]),
        "penalty": float(net.history[-1, "regularizer_penalty"]),
        "unwrapped": type(net.module_).__name__,
    }
    with open(os.path.join(out_dir, f"rank{acc.process_index}.json"), "w") as f:
        json.dump(result, f)


def _launch(n_proc, out_dir, mode, timeout=300):
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    if sys.platform.startswith("linux"):
        env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo's connections over loopback only
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc_per_node", str(n_proc), "--nnodes", "1",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        os.path.abspath(__file__), str(out_dir), mode,
    ]
    proc = subprocess.run(
        cmd, check=False, env=env, cwd=REPO, capture_output=True, text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-5000:]}"
        )
    import json

    return [
        json.load(open(os.path.join(out_dir, f"rank{r}.json"))) for r in range(n_proc)
    ]


@pytest.mark.parametrize(
    "mode",
    [
        "local",
        pytest.param("sync", marks=pytest.mark.slow),
        pytest.param("lightgcn", marks=pytest.mark.slow),
    ],
    ids=["mf-per-process", "mf-gathered", "lightgcn-per-process"],
)
def test_accelerate_two_processes_match_one(tmp_path, mode, one_thread):
    pytest.importorskip("accelerate")
    name = "lightgcn" if mode == "lightgcn" else "mf"
    estimator = _cf_estimator(name)

    res = _launch(2, tmp_path, mode)
    assert [r["rank"] for r in res] == [0, 1]
    assert all(r["world"] == 2 and r["distributed"] for r in res)
    # unwrapped after training (unwrap_after_train=True)
    expected_module = "LightGCN" if name == "lightgcn" else "MatrixFactorization"
    assert all(r["unwrapped"] == expected_module for r in res)
    # DDP kept the replicas identical: both processes hold the same weights
    assert res[0]["checksum"] == pytest.approx(res[1]["checksum"], rel=1e-6)
    assert res[0]["abs_checksum"] == pytest.approx(res[1]["abs_checksum"], rel=1e-6)
    if mode == "sync":
        # the LogDet statistic came from the gathered global batch: the same
        # value in both processes
        assert res[0]["penalty"] == pytest.approx(res[1]["penalty"], rel=1e-9)
    else:
        # each process's statistic of its own shard
        assert res[0]["penalty"] != res[1]["penalty"]

    # reference: one process, the same global batch (2 x _B), no accelerate
    X_train, X_test = _cf_data()
    params = _cf_params(name)
    ref = estimator(
        batch_size=2 * _B, regularizer=LogDetRegularizer(weight=0.001), **params
    ).fit(X_train)
    ref_ndcg = ref.score(X_test)
    # each process took half of every epoch: the same number of steps as one
    # process with the global batch
    assert res[0]["steps_per_epoch"] == len(ref.history[-1, "batches"])
    # the same quality: NDCG@20 within 0.04 of one process (three seeds of one
    # MF process span 0.026 in this configuration), far above an untrained model
    untrained = estimator(
        batch_size=2 * _B, **{**params, "max_epochs": 0}
    ).fit(X_train).score(X_test)
    assert ref_ndcg > untrained + 0.15
    for r in res:
        assert abs(r["ndcg"] - ref_ndcg) < 0.04, (r["ndcg"], ref_ndcg)


@pytest.mark.slow
def test_accelerate_ctr_two_processes_match_one(tmp_path, one_thread):
    pytest.importorskip("accelerate")
    from sklearn.metrics import roc_auc_score

    from skcollapse.recommenders import DCNv2Classifier

    res = _launch(2, tmp_path, "ctr")
    X_train, y_train, X_test, y_test = _ctr_data()
    ref = DCNv2Classifier(
        batch_size=2 * _CTR_B, regularizer=_regularizer(False), **_CTR_PARAMS
    ).fit(X_train, y_train)
    ref_auc = roc_auc_score(y_test, ref.predict_proba(X_test)[:, 1])
    for r in res:
        # predictions gathered from both shards, in order, no duplicates
        assert r["n_pred"] == len(y_test)
        assert r["unwrapped"] == "DCNv2"
        # the regularizer ran in the accelerated training step
        assert r["penalty"] > 0
    assert res[0]["checksum"] == pytest.approx(res[1]["checksum"], rel=1e-6)
    assert res[0]["steps_per_epoch"] == len(ref.history[-1, "batches"])
    # the same quality: test AUC within 0.02 of one process with the global batch
    for r in res:
        assert abs(r["auc"] - ref_auc) < 0.02, (r["auc"], ref_auc)


if __name__ == "__main__":  # the per-process body of the torchrun launches above
    if sys.argv[2] == "ctr":
        _ctr_worker(sys.argv[1])
    else:
        _accelerate_worker(sys.argv[1], sys.argv[2])
