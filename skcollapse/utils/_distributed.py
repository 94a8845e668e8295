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
* :class:`SyncBatchRegularizer`: wraps any regularizer so that its batch
  statistics are computed on the *global* batch (all processes' rows), as
  :class:`torch.nn.SyncBatchNorm` does for batch normalisation.

Which regularizer statistics are per process and which are gathered
------------------------------------------------------------------
By default every regularizer runs **per process**, on the rows of that
process's batch, and nothing is gathered:

* Penalties that are a mean over rows or pairs of the batch (e.g. DirectAU's
  alignment term) give exactly the single-process gradient of the global batch:
  DDP averages the per-process gradients, and the mean of the shards' means is
  the global mean when shards are equally sized (accelerate evens them out).
* Statistics of the whole table (``LogDetRegularizer(source="table")``) are
  identical in every process, because DDP keeps the replicas' parameters equal;
  nothing needs to be communicated and the result equals one process.
* Non-linear statistics of the batch (the covariance in LogDet, the pairwise
  uniformity, the singular values in ``sv_variance`` / coding rate, DirectSpec's
  batch softmax, DBN's whitening matrix) are then estimated from the
  ``batch_size`` rows of one process, exactly as one process with that
  ``batch_size`` would. This is the same choice DDP makes for ``BatchNorm``: no
  communication in the forward pass, and the per-process ``batch_size`` is the
  statistic's sample size, as the user configured it. DBN's running statistics
  are likewise per process (every replica estimates the same population
  quantity from its own shard; the main process's copy is the one saved).

Wrap the regularizer in :class:`SyncBatchRegularizer` to **gather** instead:
every process then computes the statistic on the concatenation of all
processes' batch rows (``num_processes * batch_size`` rows), the output rows of
a transform are the process's own rows transformed with the global statistics,
and the gradient that reaches the parameters after DDP's averaging is exactly
the gradient of the global-batch penalty. Use it when the statistic needs many
rows (LogDet's covariance needs more rows than ``dim`` to be well conditioned,
DBN's whitening likewise) or when results must match one process trained with
the global batch size. It costs one all-gather of ``(batch, dim)`` per table and
step.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

__all__ = [
    "SyncBatchRegularizer",  # noqa: F822 - built on first access by __getattr__
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
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}.")
    r = process_index() if rank is None else rank
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0:
        raise ValueError(f"rank must be a non-negative integer, got {rank!r}.")
    return int((int(seed) + int(r) * _SEED_STRIDE) % 2**32)


def shared_seed(seed: int) -> int:
    """The seed of process 0, broadcast to every process (``seed`` when alone).

    Processes that must draw the *same* random numbers (e.g. the permutation of
    an epoch that each process then takes its shard of) use it when the user
    gave no seed and each process drew its own. Every process must call it.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}.")
    if not is_distributed():
        return int(seed)
    box = [int(seed)]
    _dist().broadcast_object_list(box, src=0)
    return int(box[0])


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
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}.")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
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


def _gather_ids(ids, device):
    """All-gather a 1-D id array (numpy or tensor) without gradient."""
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


def _build_sync_batch_regularizer():
    """Define :class:`SyncBatchRegularizer` on first use.

    ``skcollapse.utils`` must not import :mod:`skcollapse.regularizers` when it is
    loaded (the recommenders import this module, and ``skcollapse.regularizers``
    may re-export the class from here); the module ``__getattr__`` below builds
    the class once, on first access.
    """
    from skcollapse.regularizers._base import Regularizer, resolve_regularizer

    class SyncBatchRegularizer(Regularizer):
        """Compute a regularizer's batch statistics on the global batch of all processes.

        Under data parallelism (``AccelerateMixin``, DDP) every process sees only
        its shard of the batch. This wrapper all-gathers each table's batch rows (and
        the per-row context: ``"<table>_ids"`` and ``"X"``) before calling the
        wrapped regularizer, then hands back this process's own rows of the
        (possibly transformed) embeddings. Every process computes the same penalty;
        after DDP averages the gradients, the parameters receive the gradient of the
        penalty of the global batch. With a single process, or in eval mode, it is
        the wrapped regularizer unchanged.

        See the module docstring for when per-process statistics suffice.

        Parameters
        ----------
        regularizer : str, Regularizer class or instance
            The regularizer to synchronise (anything ``regularizer=`` accepts except
            ``None``). An instance is copied, so the object passed in is never
            trained in place.
        weight : float, default=1.0
            Extra multiplier of the wrapped regularizer's (already weighted)
            penalty.

        Attributes
        ----------
        last_penalty_ : float
            The wrapped regularizer's most recent unweighted penalty.

        Examples
        --------
        >>> from skcollapse.regularizers import LogDetRegularizer
        >>> from skcollapse.utils._distributed import SyncBatchRegularizer
        >>> reg = SyncBatchRegularizer(LogDetRegularizer(weight=0.1))
        >>> reg.kind
        'penalty'
        """

        def __init__(self, regularizer=None, *, weight=1.0):
            super().__init__(weight=weight)
            if regularizer is None:
                raise TypeError(
                    "regularizer must be a regularizer name, class or instance to "
                    "synchronise, got None."
                )
            spec = resolve_regularizer(regularizer)
            if isinstance(spec, type):
                spec = spec()
            elif spec is regularizer:
                spec = copy.deepcopy(spec)
            if isinstance(spec, SyncBatchRegularizer):
                raise TypeError("SyncBatchRegularizer cannot wrap another one.")
            self.regularizer = spec

        @property
        def kind(self) -> str:  # the wrapped regularizer decides how estimators use it
            return self.regularizer.kind

        @property
        def needs_tables(self) -> bool:
            return bool(getattr(self.regularizer, "needs_tables", False))

        def setup(self, info: dict) -> None:
            self.regularizer.setup(info)

        def transform_extra(self, name: str, x: torch.Tensor) -> torch.Tensor:
            # the wrapped regularizer kept the statistics of the (gathered) batch
            return self.regularizer.transform_extra(name, x)

        def _gather_context(self, context, local_rows):
            if context is None:
                return None
            out = dict(context)
            device = next(iter(local_rows.values()))[0].device
            for key, value in context.items():
                if key == "tables" or value is None:
                    continue
                per_row = key == "X" or key.endswith("_ids")
                if not per_row or not hasattr(value, "__len__"):
                    continue
                if key == "X":
                    if isinstance(value, torch.Tensor):
                        out[key] = all_gather_rows(value.detach())
                    else:
                        arr = torch.as_tensor(np.asarray(value), device=device)
                        out[key] = all_gather_rows(arr).cpu().numpy()
                else:
                    out[key] = _gather_ids(value, device)
            return out

        def forward(self, embeddings: dict, context: dict | None = None):
            if not isinstance(embeddings, dict) or not embeddings:
                raise TypeError(
                    "a regularizer takes a non-empty dict of table name -> (batch, dim) tensor."
                )
            if not (self.training and is_distributed()):
                out, penalty = self.regularizer(embeddings, context)
            else:
                gathered, local_rows = {}, {}
                for name in sorted(embeddings):  # same collective order in every process
                    x = embeddings[name]
                    full, offset = all_gather_rows(x, return_offset=True)
                    gathered[name] = full
                    local_rows[name] = (full, offset, x.shape[0])
                gctx = self._gather_context(context, local_rows)
                g_out, penalty = self.regularizer(gathered, gctx)
                out = {}
                for name, value in g_out.items():
                    if name in local_rows:
                        _, offset, n = local_rows[name]
                        out[name] = value[offset : offset + n]
                    else:
                        out[name] = value
            self.last_penalty_ = self.regularizer.last_penalty_
            return out, penalty * float(self.weight)

        def extra_repr(self) -> str:
            return f"weight={self.weight}"

    SyncBatchRegularizer.__module__ = __name__
    SyncBatchRegularizer.__qualname__ = "SyncBatchRegularizer"  # picklable by name
    return SyncBatchRegularizer


def __getattr__(name):
    if name == "SyncBatchRegularizer":
        cls = _build_sync_batch_regularizer()
        globals()[name] = cls  # built once: pickling and isinstance see one class
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
