"""Scale-out: gathered regularizer statistics, dask grid search, data parallelism.

Everything runs on CPU processes talking over loopback (127.0.0.1) or a file:
``torch.distributed`` with the gloo backend stands in for NCCL on GPUs, and a
``dask.distributed.LocalCluster`` for a real cluster.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

from skcollapse.regularizers import DecorrelatedBatchNorm, LogDetRegularizer
from skcollapse.utils._distributed import (
    SyncBatchRegularizer,
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
    with pytest.raises(ValueError, match="n must be"):
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
    with pytest.raises(TypeError, match="regularizer must be"):
        SyncBatchRegularizer(None)
    with pytest.raises(ValueError, match="not a registered name"):
        SyncBatchRegularizer("no-such-regularizer")
    with pytest.raises(TypeError, match="cannot wrap another"):
        SyncBatchRegularizer(SyncBatchRegularizer("logdet"))


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
            ("dbn", lambda: DecorrelatedBatchNorm(weight=1.0)),
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
        ("dbn", lambda: DecorrelatedBatchNorm(weight=1.0)),
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
