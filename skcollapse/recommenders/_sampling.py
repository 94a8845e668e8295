"""Batches and negative sampling of the CF recommenders (as RecBole's
``sampler/``): everything runs as tensor operations on the estimator's device.

* :class:`PairsDataset` / :class:`PairBatches`: the training pairs as one
  ``(n, 2)`` LongTensor, iterated in shuffled slices (each process of a
  data-parallel run takes its own share of every epoch's permutation);
* :class:`UserBatches`: uniform users, then one uniform positive each (the
  reference code's sampling, ``sampling="user"``);
* :func:`observed_keys`: the sorted ``user * n_items + item`` keys of the
  training interactions;
* :class:`NegativeSampler`: uniform negatives, per positive (observed items
  resampled) or shared by a batch, drawn from the fit's generators.
"""

from __future__ import annotations

import numpy as np
import torch

from skcollapse.utils._distributed import shard_rows
from skcollapse.utils._numba import lazy_kernel

__all__ = [
    "NegativeSampler",
    "PairBatches",
    "PairsDataset",
    "UserBatches",
    "observed_keys",
]

# largest n_users * n_items for which observed pairs are kept as a dense bitmap
_BITMAP_MAX = 2**26
# rounds of vectorised resampling of observed (false) negatives
_RESAMPLE_ROUNDS = 3


class PairsDataset(torch.utils.data.Dataset):
    """Interaction pairs held as one ``(n, 2)`` LongTensor (on the net's device)."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return self.pairs.shape[0]

    def __getitem__(self, i):  # not used by the batch iterator; kept for skorch tools
        return self.pairs[i], torch.zeros(())


class PairBatches:
    """Iterate over ``(pairs_batch, None)`` slices, shuffled on the device."""

    def __init__(self, pairs, batch_size, *, shuffle, generator=None, shard=(0, 1)):
        self.pairs = pairs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        # (rank, world): under data parallelism each process iterates over its
        # own, equally long share of every epoch's permutation
        self.shard = shard

    def _n_rows(self):
        n = self.pairs.shape[0]
        world = self.shard[1]
        return n if world == 1 or n == 0 else -(-n // world)

    def __len__(self):
        return (self._n_rows() + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = self.pairs.shape[0]
        if self.shuffle:
            perm = torch.randperm(n, generator=self.generator, device=self.pairs.device)
            data = self.pairs.index_select(0, perm)
        else:
            data = self.pairs
        rank, world = self.shard
        if world > 1 and n:
            rows = shard_rows(n, rank=rank, world=world).to(data.device)
            data = data.index_select(0, rows)
        for start in range(0, data.shape[0], self.batch_size):
            yield data[start : start + self.batch_size], None


def observed_keys(R):
    """Sorted ``user * n_items + item`` keys of the non-zeros of the CSR ``R``."""
    rows = np.repeat(np.arange(R.shape[0], dtype=np.int64), np.diff(R.indptr))
    keys = rows * R.shape[1] + R.indices.astype(np.int64)
    keys.sort()
    return keys


@lazy_kernel
def _membership_kernel():
    """Compiled ``observed[b, k] = neg[b, k] in row users[b] of a CSR`` (binary
    search in the user's sorted items; a few hundred ns per batch row, where a
    search over every key of the catalogue costs microseconds)."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def observed(indptr, indices, users, neg, out):
        B, n = neg.shape
        for b in range(B):
            lo0 = indptr[users[b]]
            hi0 = indptr[users[b] + 1]
            for k in range(n):
                item = neg[b, k]
                lo, hi = lo0, hi0
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if indices[mid] < item:
                        lo = mid + 1
                    else:
                        hi = mid
                out[b, k] = lo < hi0 and indices[lo] == item

    return observed


class NegativeSampler:
    """Uniform negative items for the pairs of a batch.

    Parameters
    ----------
    user_items : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Observed interactions (never drawn as per-positive negatives).
    device : torch.device
    generator : torch.Generator
        Source of the draws (per process under data parallelism).
    """

    def __init__(self, user_items, device, generator):
        self.n_users, self.n_items = user_items.shape
        self.generator = generator
        keys = observed_keys(user_items)
        if self.n_users * self.n_items <= _BITMAP_MAX:
            # small catalogues: a dense membership table is the cheapest lookup
            bitmap = torch.zeros(self.n_users * self.n_items, dtype=torch.bool)
            bitmap[torch.from_numpy(keys)] = True
            self.keys = bitmap.to(device)
        else:
            self.keys = torch.from_numpy(keys).to(device)
        # on the CPU, the user's own sorted items (a compiled binary search)
        self._csr = None
        if torch.device(device).type == "cpu" and self.keys.dtype != torch.bool:
            R = user_items.tocsr(copy=True)
            R.sort_indices()
            self._csr = (R.indptr.astype(np.int64), R.indices.astype(np.int64))

    def _observed(self, users, neg):
        kernel = _membership_kernel() if self._csr is not None else None
        if kernel is not None:
            out = np.empty(tuple(neg.shape), dtype=np.bool_)
            kernel(*self._csr, users.contiguous().numpy(),
                   neg.contiguous().numpy(), out)
            return torch.from_numpy(out)
        k = users[:, None] * self.n_items + neg
        if self.keys.dtype == torch.bool:
            return self.keys[k]
        last = self.keys.shape[0] - 1
        return self.keys[torch.searchsorted(self.keys, k).clamp_(max=last)] == k

    def independent(self, users, n_neg):
        """``(batch, n_neg)`` items per user; observed items are resampled.

        Up to three vectorised rounds redraw the hits, so an observed item
        survives only with probability ``density**4`` per draw. Only the
        redrawn positions are tested again (the others are known to be
        unobserved), which draws and tests exactly what testing the whole
        batch each round would.
        """
        gen, dev = self.generator, users.device
        neg = torch.randint(
            0, self.n_items, (users.shape[0], n_neg), generator=gen, device=dev
        )
        if self.n_items == 1:
            return neg
        flat = neg.view(-1)
        # flat positions of observed draws, in row-major order (as neg[hit])
        hits = torch.nonzero(self._observed(users, neg).view(-1)).squeeze(1)
        for round_ in range(_RESAMPLE_ROUNDS):
            n_hit = hits.shape[0]
            if n_hit == 0:
                break
            flat[hits] = torch.randint(0, self.n_items, (n_hit,), generator=gen,
                                       device=dev)
            if round_ + 1 < _RESAMPLE_ROUNDS:
                again = self._observed(users[hits // n_neg], flat[hits][:, None])
                hits = hits[again.view(-1)]
        return neg

    def shared(self, n_neg, device):
        """``n_neg`` items drawn uniformly, shared by every row of the batch.

        Observed items are not resampled (they differ per user); the loss drops
        a row's own positive from the shared set instead (``negative_mask``).
        """
        return torch.randint(
            0, self.n_items, (n_neg,), generator=self.generator, device=device
        )


class UserBatches:
    """Batches drawn user-first: ``batch_size`` users uniformly, one positive each.

    The sampling of the LightGCN and DirectSpec reference code: every user
    weighs the same in an epoch whatever their activity (the pair-shuffling
    default weighs users by their number of interactions), which also changes
    what batch-statistics regularizers see. An epoch has as many batches as the
    pair sampler would (``ceil(n_pairs / batch_size)``, shared out between the
    processes of a data-parallel run).

    Parameters
    ----------
    pairs : LongTensor of shape (n, 2)
        Training pairs (rows of the vocabulary), on the device.
    batch_size : int
    generator : torch.Generator
    world : int, default=1
        Number of data-parallel processes.
    """

    def __init__(self, pairs, batch_size, *, generator=None, world=1):
        self.batch_size = batch_size
        self.generator = generator
        self.n_batches = -(-pairs.shape[0] // (batch_size * world)) if len(pairs) else 0
        users = pairs[:, 0]
        order = torch.argsort(users, stable=True)
        self.items = pairs[order, 1]
        counts = torch.bincount(users)
        self.indptr = torch.zeros(counts.shape[0] + 1, dtype=torch.long,
                                  device=pairs.device)
        self.indptr[1:] = torch.cumsum(counts, 0)
        self.users = torch.nonzero(counts, as_tuple=True)[0]  # users with a pair

    def __len__(self):
        return self.n_batches

    def sample(self):
        """One batch: ``(batch_size, 2)`` pairs of uniform users, uniform positives."""
        dev = self.users.device
        pick = torch.randint(0, self.users.shape[0], (self.batch_size,),
                             generator=self.generator, device=dev)
        users = self.users[pick]
        start = self.indptr[users]
        count = self.indptr[users + 1] - start
        offset = (torch.rand(self.batch_size, generator=self.generator, device=dev)
                  * count).long().clamp_max_(count - 1)
        return torch.stack([users, self.items[start + offset]], dim=1)

    def __iter__(self):
        for _ in range(self.n_batches):
            yield self.sample(), None
