"""LightGCN (He et al., SIGIR 2020): linear propagation on the user-item graph.

The symmetric-normalised bipartite adjacency
``A_hat = D^{-1/2} [[0, R], [R^T, 0]] D^{-1/2}`` is built once (per fit) as a
torch sparse CSR tensor; the final embeddings are the mean of the layer outputs
``E_0, A_hat E_0, ..., A_hat^L E_0``. Because ``A_hat`` is symmetric, the backward
pass multiplies by ``A_hat`` again instead of materialising its transpose.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from skcollapse.nn._cf_encoder import CFEncoder

__all__ = ["LightGCN", "normalized_adjacency"]


def normalized_adjacency(user_items, *, device="cpu", dtype=torch.float32):
    """Symmetric-normalised bipartite adjacency of an interaction matrix.

    Parameters
    ----------
    user_items : scipy.sparse matrix of shape (n_users, n_items)
        Interactions; stored values are treated as binary.
    device : str or torch.device, default="cpu"
    dtype : torch.dtype, default=torch.float32

    Returns
    -------
    torch.Tensor
        Sparse CSR tensor of shape ``(n_users + n_items, n_users + n_items)``
        holding ``D^{-1/2} A D^{-1/2}``; isolated nodes get zero rows.
    """
    if not sp.issparse(user_items):
        raise TypeError(
            f"user_items must be a scipy sparse matrix, got {type(user_items).__name__}."
        )
    R = sp.csr_matrix(user_items, dtype=np.float64)
    R.data[:] = 1.0
    R.sum_duplicates()
    R.data[:] = 1.0
    du = np.asarray(R.sum(axis=1)).ravel()
    di = np.asarray(R.sum(axis=0)).ravel()
    deg = np.concatenate([du, di])
    with np.errstate(divide="ignore"):
        dinv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    A = sp.bmat([[None, R], [R.T, None]], format="csr")
    A = sp.diags(dinv) @ A @ sp.diags(dinv)
    A = sp.csr_matrix(A)
    A.sort_indices()
    index_dtype = torch.int32 if A.nnz < 2**31 - 1 else torch.int64
    with warnings.catch_warnings():
        # torch labels its sparse CSR layout "beta" on every construction; the
        # operations used here (CSR @ dense) are stable, so the notice is noise.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        # scipy built A, so its invariants hold; checking them again costs a pass
        return torch.sparse_csr_tensor(
            torch.from_numpy(A.indptr).to(index_dtype),
            torch.from_numpy(A.indices).to(index_dtype),
            torch.from_numpy(A.data).to(dtype),
            size=A.shape,
            device=device,
            check_invariants=False,
        )


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ X`` for a symmetric sparse ``A``: the gradient is ``A @ grad``."""

    @staticmethod
    def forward(ctx, A, X):
        ctx.A = A
        return torch.sparse.mm(A, X)

    @staticmethod
    def backward(ctx, grad):
        return None, torch.sparse.mm(ctx.A, grad.contiguous())


class LightGCN(CFEncoder):
    """LightGCN encoder over a joint user/item ego-embedding table.

    Parameters
    ----------
    n_users : int
    n_items : int
    embedding_dim : int, default=64
    n_layers : int, default=3
        Propagation layers ``L``; ``0`` reduces to matrix factorisation.
    init_std : float, default=0.1
        Standard deviation of the normal initialisation of the ego table.
    init : {"normal", "xavier_uniform"}, default="normal"
        See :class:`CFEncoder`.

    Attributes
    ----------
    embedding : torch.nn.Embedding
        Ego (layer-0) embeddings, users first.
    adjacency : torch.Tensor or None
        The normalised adjacency set with :meth:`set_adjacency`. It is derived
        data and is not saved with the module.
    """

    def __init__(self, n_users, n_items, embedding_dim=64, n_layers=3, *,
                 init_std=0.1, init="normal"):
        super().__init__(n_users, n_items, embedding_dim, init_std=init_std,
                         init=init)
        self.n_layers = int(n_layers)
        self.adjacency = None

    def set_adjacency(self, adjacency):
        """Set the normalised adjacency (e.g. from :func:`normalized_adjacency`)."""
        n = self.n_users + self.n_items
        if adjacency.shape != (n, n):
            raise ValueError(
                f"adjacency must have shape ({n}, {n}), got {tuple(adjacency.shape)}."
            )
        self.adjacency = adjacency
        return self

    def _apply(self, fn, *args, **kwargs):
        # keep the adjacency on the same device as the parameters
        out = super()._apply(fn, *args, **kwargs)
        if self.adjacency is not None:
            dev = self.embedding.weight.device
            if self.adjacency.device != dev:
                self.adjacency = self.adjacency.to(dev)
        return out

    def propagate(self):
        """Layer-mean embeddings of all nodes, shape ``(n_users + n_items, dim)``."""
        e = self.embedding.weight
        if self.n_layers == 0:
            return e
        if self.adjacency is None:
            raise RuntimeError(
                "LightGCN needs its adjacency: call set_adjacency(normalized_adjacency"
                "(user_items)) first."
            )
        out = e
        h = e
        for _ in range(self.n_layers):
            h = _SymmetricSpMM.apply(self.adjacency, h)
            out = out + h
        return out / (self.n_layers + 1)

    def encode(self, users, items):
        """Propagated and ego embeddings of a batch (see ``MatrixFactorization``)."""
        all_emb = self.propagate()
        index = self._ego_index(users, items)
        # split, not sliced: the backward of two slices fills a zero tensor
        # of all the batch's rows for each and adds them; split's concatenates
        sizes = [users.shape[0], items.shape[0]]
        user, item = all_emb.index_select(0, index).split(sizes)
        user_ego, item_ego = F.embedding(index, self.embedding.weight).split(sizes)
        return {"user": user, "item": item, "user_ego": user_ego, "item_ego": item_ego}

    def tables(self):
        """The propagated ``(user_table, item_table)`` used for ranking."""
        all_emb = self.propagate()
        return all_emb[: self.n_users], all_emb[self.n_users:]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["adjacency"] = None  # derived from the data; rebuilt by the estimator
        return state
