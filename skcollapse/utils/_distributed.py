"""Helpers that let the estimators run under data parallelism (DDP / Accelerate).

skcollapse does not launch processes itself: multi-GPU and multi-machine training
uses skorch's :class:`~skorch.hf.AccelerateMixin` (``class Net(AccelerateMixin,
MFRecommender)``), launched with ``accelerate launch`` or ``torchrun``. Each
process then holds a replica of the model, sees its own shard of every epoch's
batches (accelerate shards the ``DataLoader``) and DDP averages the gradients.

What this module provides:

* :func:`is_distributed`, :func:`process_index`, :func:`num_processes`: whether the
  current process is one of several (a ``torch.distributed`` process group with
  more than one member), read from ``torch.distributed`` so they work the same
  under ``accelerate launch``, ``torchrun`` or a hand-made process group.
* :func:`process_seed`: a distinct, reproducible seed per process, so that each
  process draws its *own* negatives for its shard of positives instead of the
  same negatives as every other process.
* :func:`shared_seed`, :func:`shard_rows`: the same epoch permutation in every
  process, and the disjoint, equally long share of it that each process trains
  on (the CF recommenders' batch iterator uses them; accelerate shards only
  ``torch.utils.data.DataLoader`` objects).
* :func:`unwrap_module`: the user's module inside a DDP (or ``DataParallel`` /
  ``torch.compile``) wrapper, for code that reads embedding tables directly.
* :func:`compute_device`: where new tensors of a net must be created: its
  ``device`` or, with ``device=None`` under Accelerate, the device accelerate
  placed the module on.
* :func:`all_gather_rows`: a differentiable all-gather of batch rows that allows a
  different number of rows per process.
* :func:`all_gather_ids`: the same for id arrays, without gradient.

These are communication helpers only; the regularizer that uses them to compute
batch statistics on the global batch is
:class:`skcollapse.regularizers.SyncBatchRegularizer` (its module docstring says
which statistics are per process and which are gathered).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from skcollapse.utils._sklearn_compat import int_interval, validate_params

__all__ = [
    "all_gather_ids",
    "all_gather_rows",
    "compute_device",
    "is_distributed",
    "num_processes",
    "process_index",
    "process_seed",
    "shard_rows",
    "shared_seed",
    "unwrap_module",
]

_SEED_STRIDE = 1_000_003  # a prime: per-process seeds never collide for seeds < it


def _dist():
    """``torch.distributed`` when a process group is initialised, else ``None``."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist
    return None


def is_distributed() -> bool:
    """True when this process is one of several in a ``torch.distributed`` group."""
    dist = _dist()
    return dist is not None and dist.get_world_size() > 1


def process_index() -> int:
    """Rank of this process (0 when not distributed)."""
    dist = _dist()
    return 0 if dist is None else int(dist.get_rank())


def num_processes() -> int:
    """Number of processes in the group (1 when not distributed)."""
    dist = _dist()
    return 1 if dist is None else int(dist.get_world_size())


_INT = [int_interval(None, None, closed="neither")]
_NON_NEGATIVE_INT = [int_interval(0, None, closed="left")]


@validate_params(
    {"seed": _INT, "rank": [*_NON_NEGATIVE_INT, None]},
    prefer_skip_nested_validation=True,
)
def process_seed(seed: int, *, rank: int | None = None) -> int:
    """A reproducible seed distinct for every process.

    Process ``r`` gets ``(seed + r * 1_000_003) mod 2**32``: process 0 keeps
    ``seed`` itself, so a single-process run is unchanged, and the streams of
    different processes differ, so that each process samples its own negatives.

    Parameters
    ----------
    seed : int
        The base seed (e.g. an estimator's ``random_state``).
    rank : int, default=None
        Process index; ``None`` reads it from ``torch.distributed``.

    Returns
    -------
    seed : int
        A seed in ``[0, 2**32)``.
    """
    r = process_index() if rank is None else rank
    return int((int(seed) + int(r) * _SEED_STRIDE) % 2**32)


@validate_params({"seed": _INT}, prefer_skip_nested_validation=True)
def shared_seed(seed: int) -> int:
    """The seed of process 0, broadcast to every process (``seed`` when alone).

    Processes that must draw the *same* random numbers (e.g. the permutation of
    an epoch that each process then takes its shard of) use it when the user
    gave no seed and each process drew its own. Every process must call it.
    """
    if not is_distributed():
        return int(seed)
    box = [int(seed)]
    _dist().broadcast_object_list(box, src=0)
    return int(box[0])


@validate_params(
    {
        "n": [int_interval(1, None, closed="left")],
        "rank": [*_NON_NEGATIVE_INT, None],
        "world": [int_interval(1, None, closed="left"), None],
    },
    prefer_skip_nested_validation=True,
)
def shard_rows(n: int, *, rank: int | None = None, world: int | None = None):
    """Row positions ``[0, n)`` that process ``rank`` of ``world`` takes.

    Every ``world``-th position starting at ``rank``; the shorter shards wrap
    around to the first rows so that every process gets ``ceil(n / world)``
    rows and runs the same number of steps (collectives would otherwise wait
    forever), as accelerate's ``even_batches`` does. ``None`` reads rank and
    world size from ``torch.distributed``.

    Returns
    -------
    positions : LongTensor of shape (ceil(n / world),)
    """
    world = num_processes() if world is None else int(world)
    rank = process_index() if rank is None else int(rank)
    if not rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}.")
    m = -(-int(n) // world)
    return torch.arange(rank, m * world, world) % int(n)


def unwrap_module(module):
    """Return the user's module inside DDP / DataParallel / ``torch.compile`` wrappers.

    Anything that is not such a wrapper (including ``None``) comes back unchanged.
    """
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    while True:
        if isinstance(module, wrappers):
            module = module.module
        elif isinstance(module, nn.Module) and hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module


def compute_device(net) -> torch.device:
    """The device on which a net's new tensors (ids, negatives, masks) belong.

    ``net.device`` when it is set. With ``device=None`` (what
    :class:`~skorch.hf.AccelerateMixin` asks for, because accelerate places the
    module) this is ``net.accelerator.device`` when the net has an accelerator,
    else the device of the module's first parameter, else the CPU.
    """
    device = getattr(net, "device", None)
    if device is not None:
        return torch.device(device)
    accelerator = getattr(net, "accelerator", None)
    if accelerator is not None and getattr(accelerator, "device", None) is not None:
        return torch.device(accelerator.device)
    module = unwrap_module(getattr(net, "module_", None))
    if isinstance(module, nn.Module):
        for p in module.parameters():
            return p.device
    return torch.device("cpu")


def _gather_sizes(n: int, device) -> list[int]:
    dist = _dist()
    size = torch.tensor([n], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s) for s in sizes]


def _pad_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    if x.shape[0] == n:
        return x
    pad = x.new_zeros((n - x.shape[0], *x.shape[1:]))
    return torch.cat([x, pad], dim=0)


class _GatherRows(torch.autograd.Function):
    """All-gather rows (padded to equal size); backward sums gradients over processes.

    The backward all-reduces the gradient of the gathered tensor and keeps this
    process's rows: the sum over processes of the gradient each computed for
    these rows. ``all_reduce`` exists on every backend (gloo has no
    reduce-scatter).
    """

    @staticmethod
    def forward(ctx, x, sizes, offset):
        dist = _dist()
        n_max = max(sizes)
        padded = _pad_rows(x.contiguous(), n_max)
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        ctx.offset = offset
        ctx.n = x.shape[0]
        return torch.cat([p[:n] for p, n in zip(parts, sizes)], dim=0)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        _dist().all_reduce(grad)
        return grad[ctx.offset : ctx.offset + ctx.n], None, None


def all_gather_rows(x: torch.Tensor, *, return_offset: bool = False):
    """Concatenate the rows of ``x`` from every process, in rank order.

    Gradients flow back to each process's own rows: the backward pass sums,
    over processes, the gradient every process computed for these rows. So a
    penalty that every process computes on the gathered rows, followed by DDP's
    gradient averaging, yields the gradient of that penalty on the global batch.
    Processes may hold different numbers of rows (e.g. a short last batch);
    trailing dimensions must agree. Every process must call it (it is a
    collective operation).

    Parameters
    ----------
    x : torch.Tensor
        Local rows, shape ``(n_local, ...)``.
    return_offset : bool, default=False
        Also return the index of this process's first row in the result.

    Returns
    -------
    gathered : torch.Tensor
        Shape ``(sum of n_local over processes, ...)``; ``x`` itself when not
        distributed.
    offset : int
        Only with ``return_offset=True``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}.")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension (rows).")
    if not is_distributed():
        return (x, 0) if return_offset else x
    sizes = _gather_sizes(x.shape[0], x.device)
    offset = sum(sizes[: process_index()])
    gathered = _GatherRows.apply(x, sizes, offset)
    return (gathered, offset) if return_offset else gathered


def all_gather_ids(ids, device):
    """All-gather a 1-D id array (numpy or tensor) without gradient.

    Every process must call it; the result holds every process's ids in rank
    order, as a numpy array when ``ids`` is one, else as a tensor on ``ids``'s
    device.
    """
    as_numpy = not isinstance(ids, torch.Tensor)
    t = torch.as_tensor(np.asarray(ids) if as_numpy else ids)
    t = t.to(device)
    dist = _dist()
    sizes = _gather_sizes(t.shape[0], device)
    n_max = max(sizes)
    padded = _pad_rows(t.contiguous(), n_max)
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    out = torch.cat([p[:n] for p, n in zip(parts, sizes)], dim=0)
    if as_numpy:
        return out.cpu().numpy()
    return out.to(ids.device)
