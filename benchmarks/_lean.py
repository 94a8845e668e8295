"""Lean PyTorch reference loops that the speed benchmarks measure skcollapse against.

Each is the plain loop a practitioner would write in a few dozen lines, with no
estimator around it: the yardstick for what skcollapse's machinery costs. They
keep their state between epochs (the tables and the optimiser's moments), so
an epoch after the first is a steady-state epoch, as in a longer fit.

* :class:`LeanMF`: MF-BPR with ``nn.Embedding(sparse=True)`` and
  ``torch.optim.SparseAdam``; one uniform negative per training pair, the pairs
  shuffled once an epoch.
* :class:`LeanLightGCN`: LightGCN with the normalised adjacency as a torch
  sparse CSR matrix (``torch.sparse.mm``), BPR, dense Adam.
* :func:`lean_eval`: full-ranking Recall/NDCG@k from two embedding tables.

Both training loops add ``weight_decay / 2 * ||batch ego embeddings||^2 / B``
to the BPR loss, as skcollapse's recommenders and the LightGCN reference code
do. Negatives are uniform over all items (an observed item may be drawn).
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from skcollapse.metrics import ndcg_at_k, recall_at_k
from skcollapse.nn import normalized_adjacency


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class LeanMF:
    """MF-BPR: sparse embedding gradients, ``SparseAdam``, uniform negatives."""

    def __init__(self, train, n_users, n_items, *, dim=64, batch_size=2048, lr=1e-3,
                 weight_decay=1e-4, init_std=0.1, seed=0, device="cpu"):
        torch.manual_seed(seed)
        self.n_items, self.batch_size = n_items, batch_size
        self.weight_decay, self.device = weight_decay, device
        self.user = torch.nn.Embedding(n_users, dim, sparse=True).to(device)
        self.item = torch.nn.Embedding(n_items, dim, sparse=True).to(device)
        torch.nn.init.normal_(self.user.weight, std=init_std)
        torch.nn.init.normal_(self.item.weight, std=init_std)
        self.opt = torch.optim.SparseAdam(
            [*self.user.parameters(), *self.item.parameters()], lr=lr)
        self.data = torch.as_tensor(np.asarray(train), dtype=torch.long).to(device)

    def step(self, u, i):
        j = torch.randint(0, self.n_items, (u.shape[0],), device=self.device)
        ue, ie, je = self.user(u), self.item(i), self.item(j)
        x = (ue * (ie - je)).sum(-1)
        l2 = ue.pow(2).sum() + ie.pow(2).sum() + je.pow(2).sum()
        loss = -F.logsigmoid(x).mean() + self.weight_decay * 0.5 * l2 / u.shape[0]
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.detach()

    def epoch(self):
        """One pass over the shuffled training pairs; the mean batch loss."""
        perm = torch.randperm(self.data.shape[0], device=self.device)
        total, n = torch.zeros((), device=self.device), 0
        for start in range(0, self.data.shape[0], self.batch_size):
            b = self.data[perm[start : start + self.batch_size]]
            total += self.step(b[:, 0], b[:, 1])
            n += 1
        _sync(self.device)
        return float(total) / max(n, 1)

    def tables(self):
        return (self.user.weight.detach().cpu().numpy(),
                self.item.weight.detach().cpu().numpy())


class LeanLightGCN:
    """LightGCN: CSR ``torch.sparse.mm`` propagation, BPR, dense Adam."""

    def __init__(self, train, n_users, n_items, *, dim=64, n_layers=3,
                 batch_size=2048, lr=1e-3, weight_decay=1e-4, init_std=0.1, seed=0,
                 device="cpu"):
        torch.manual_seed(seed)
        train = np.asarray(train)
        self.n_users, self.n_items = n_users, n_items
        self.n_layers, self.batch_size = n_layers, batch_size
        self.weight_decay, self.device = weight_decay, device
        R = sp.csr_matrix(
            (np.ones(train.shape[0], dtype=np.float32), (train[:, 0], train[:, 1])),
            shape=(n_users, n_items),
        )
        A = normalized_adjacency(R, device=device)
        self.A = torch.sparse_csr_tensor(
            A.crow_indices().long(), A.col_indices().long(), A.values(), size=A.shape
        ).to(device)
        self.emb = torch.nn.Embedding(n_users + n_items, dim).to(device)
        torch.nn.init.normal_(self.emb.weight, std=init_std)
        self.opt = torch.optim.Adam(self.emb.parameters(), lr=lr)
        self.data = torch.as_tensor(train, dtype=torch.long).to(device)

    def propagate(self):
        e = self.emb.weight
        out = [e]
        for _ in range(self.n_layers):
            e = torch.sparse.mm(self.A, e)
            out.append(e)
        return torch.stack(out).mean(0)

    def step(self, u, i):
        j = torch.randint(0, self.n_items, (u.shape[0],), device=self.device)
        final = self.propagate()
        off = self.n_users
        x = (final[u] * (final[off + i] - final[off + j])).sum(-1)
        ego = self.emb.weight
        l2 = ego[u].pow(2).sum() + ego[off + i].pow(2).sum() + ego[off + j].pow(2).sum()
        loss = -F.logsigmoid(x).mean() + self.weight_decay * 0.5 * l2 / u.shape[0]
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.detach()

    def epoch(self, max_steps=None, step_times=None):
        """One pass over the shuffled pairs (or its first ``max_steps`` batches).

        Returns the mean batch loss; appends each step's wall seconds to
        ``step_times`` when a list is given.
        """
        perm = torch.randperm(self.data.shape[0], device=self.device)
        total, n = torch.zeros((), device=self.device), 0
        for start in range(0, self.data.shape[0], self.batch_size):
            if max_steps is not None and n >= max_steps:
                break
            t0 = time.perf_counter()
            b = self.data[perm[start : start + self.batch_size]]
            total += self.step(b[:, 0], b[:, 1])
            n += 1
            if step_times is not None:
                _sync(self.device)
                step_times.append(time.perf_counter() - t0)
        _sync(self.device)
        return float(total) / max(n, 1)

    def tables(self):
        with torch.no_grad():
            final = self.propagate().cpu().numpy()
        return final[: self.n_users], final[self.n_users :]


def lean_eval(user_emb, item_emb, train_csr, test_csr, device="cpu", k=20):
    """Full-ranking Recall/NDCG@k: ``U @ I.T`` per user block, mask train, topk.

    Returns ``(seconds, recall, ndcg)`` over the users with test items.
    """
    t0 = time.perf_counter()
    U = torch.as_tensor(user_emb, device=device)
    I = torch.as_tensor(item_emb, device=device)
    users = np.flatnonzero(np.diff(test_csr.indptr))
    recs = []
    for start in range(0, users.shape[0], 1024):
        ub = users[start : start + 1024]
        S = U[torch.from_numpy(ub).to(device)] @ I.T
        sub = train_csr[ub].tocoo()
        S[torch.from_numpy(sub.row).to(device), torch.from_numpy(sub.col).to(device)] = (
            -math.inf
        )
        recs.append(torch.topk(S, k, dim=1).indices.cpu().numpy())
    rec = np.concatenate(recs)
    rel = test_csr[users]
    r = recall_at_k(rel, rec, k=k)
    n = ndcg_at_k(rel, rec, k=k)
    return time.perf_counter() - t0, r, n
