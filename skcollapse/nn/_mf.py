"""Matrix factorisation: one joint user/item embedding table, plus a row-sparse Adam.

Users occupy rows ``[0, n_users)`` of the joint table and items rows
``[n_users, n_users + n_items)``. A single table means one embedding lookup and one
sparse gradient per training step, which is what makes sparse-gradient training
cheap.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from skcollapse.nn._cf_encoder import CFEncoder

__all__ = ["MatrixFactorization", "SparseRowAdam", "bpr_rows", "bpr_step"]


class MatrixFactorization(CFEncoder):
    """Dot-product matrix factorisation ``score(u, i) = <p_u, q_i>``.

    Parameters
    ----------
    n_users, n_items : int
        As in :class:`CFEncoder`.
    embedding_dim : int, default=64
        Width of both tables.
    sparse : bool, default=False
        Whether the table produces sparse gradients (for :class:`SparseRowAdam` or
        :class:`torch.optim.SparseAdam`).
    init_std : float, default=0.1
        Standard deviation of the normal initialisation.
    init : {"normal", "xavier_uniform"}, default="normal"
        See :class:`CFEncoder`.

    Attributes
    ----------
    embedding : torch.nn.Embedding
        The joint ``(n_users + n_items, embedding_dim)`` table.
    """

    def __init__(self, n_users, n_items, embedding_dim=64, *, sparse=False,
                 init_std=0.1, init="normal"):
        super().__init__(n_users, n_items, embedding_dim, init_std=init_std,
                         sparse=sparse, init=init)

    def encode(self, users, items):
        """Embeddings of a batch (ego rows are the embeddings).

        Sparse gradients: one lookup, so one sparse gradient a step. Dense
        gradients: one lookup per table, whose backward passes add into two
        table-sized gradients; one lookup split in two would first
        concatenate the gradients of every batch row (a copy of
        ``(n_u + n_i) x d``, the size of the batch's rows, each step). Users
        and items own disjoint rows of the table, so both give the same sums.
        """
        weight = self.embedding.weight
        if self.sparse:
            rows = F.embedding(self._ego_index(users, items), weight, sparse=True)
            user, item = rows.split([users.shape[0], items.shape[0]])
        else:
            user = F.embedding(users, weight)
            item = F.embedding(items + self.n_users, weight)
        return {"user": user, "item": item, "user_ego": user, "item_ego": item}

    def tables(self):
        """The full ``(user_table, item_table)`` used for ranking."""
        w = self.embedding.weight
        return w[: self.n_users], w[self.n_users:]


@torch.no_grad()
def bpr_rows(u, i, j, out=None):
    """``CFLoss("bpr")`` of user rows ``u``, positive rows ``i`` (both
    ``(B, d)``) and negative rows ``j`` ``(B, n, d)`` (no mask), and its
    gradient with respect to each, in closed form.

    Returns ``(loss, gu, gi, gj, pos_score)``; ``out=(gu, gi, gj)`` writes the
    gradients into given tensors (e.g. views of one buffer). The arithmetic
    of :func:`bpr_step`, which gathers the rows of a table first.
    """
    B, n, d = j.shape
    pos_s = (u * i).sum(-1)
    if n == 1:  # one negative: row-wise products instead of batched matmuls
        neg_s = (j.view(B, d) * u).sum(-1, keepdim=True)
    else:
        neg_s = torch.bmm(j, u.unsqueeze(-1)).squeeze(-1)  # (B, n)
    x = pos_s.unsqueeze(1) - neg_s
    loss = F.softplus(-x).mean()
    # d/dx of -log sigmoid(x), averaged over the B n terms
    coef = torch.sigmoid(-x).div_(-(B * n))
    coef_sum = coef.sum(1, keepdim=True)
    if out is None:
        out = (torch.empty_like(u), torch.empty_like(i), torch.empty_like(j))
    gu, gi, gj = out
    torch.mul(i, coef_sum, out=gu)
    if n == 1:
        gu.addcmul_(j.view(B, d), coef, value=-1.0)
    else:
        gu.sub_(torch.bmm(coef.unsqueeze(1), j).squeeze(1))
    torch.mul(u, coef_sum, out=gi)
    torch.mul(u.unsqueeze(1), coef.unsqueeze(-1), out=gj).neg_()
    return loss, gu, gi, gj, pos_s


@torch.no_grad()
def bpr_step(weight, n_users, users, pos, neg, weight_decay=0.0):
    r"""Loss and sparse gradient of one MF-BPR batch, without autograd.

    The fused form of what :class:`MatrixFactorization` + ``CFLoss("bpr")`` +
    the estimators' L2 term compute through autograd on a batch: with
    ``p_u, q_i, q_j`` the rows of ``weight`` (users first, items from
    ``n_users``) and ``x_bk = p_u·q_i − p_u·q_{j_k}``,

    .. math:: L = \frac1{Bn}\sum_{b,k} -\log\sigma(x_{bk})
       + \frac{\lambda}{2B}\Big(\sum_b \|p_{u_b}\|^2 + \|q_{i_b}\|^2
       + \sum_k \|q_{j_{bk}}\|^2\Big),

    and its gradient in closed form: one gather of the ``B (2 + n)`` rows, a
    few ``(B, d)`` products, and the gradient as the same uncoalesced sparse
    tensor (row index per batch row) that a sparse ``F.embedding`` backward
    gives. It saves the autograd graph and the per-op dispatch of the plain
    step, which dominate the cost of an MF step on a CPU.

    Parameters
    ----------
    weight : Tensor of shape (n_users + n_items, d)
    n_users : int
    users, pos : LongTensor of shape (B,)
    neg : LongTensor of shape (B, n)
    weight_decay : float, default=0.0
        ``λ`` of the L2 term on the batch rows.

    Returns
    -------
    loss : Tensor (scalar)
    pos_score : Tensor of shape (B,)
        ``p_u·q_i`` of each pair.
    grad : sparse Tensor of the shape of ``weight``
    """
    B, n = neg.shape
    d = weight.shape[1]
    rows = torch.cat([users, pos + n_users, neg.reshape(-1) + n_users])
    E = weight.index_select(0, rows)
    G = torch.empty_like(E)
    loss, _, _, _, pos_s = bpr_rows(
        E[:B], E[B : 2 * B], E[2 * B :].view(B, n, d),
        out=(G[:B], G[B : 2 * B], G[2 * B :].view(B, n, d)),
    )
    wd = float(weight_decay) / B
    if wd:
        flat = E.reshape(-1)
        loss = loss + 0.5 * wd * torch.dot(flat, flat)
        G.add_(E, alpha=wd)
    grad = torch.sparse_coo_tensor(
        rows.unsqueeze(0), G, weight.shape, check_invariants=False
    )
    return loss, pos_s, grad


class SparseRowAdam(torch.optim.Optimizer):
    """Adam that updates only the rows present in a sparse gradient ("lazy" Adam).

    For an embedding table with sparse gradients the moments and the weights of
    the rows in the batch are updated with Adam's rule, and all other rows are
    left untouched (as :class:`torch.optim.SparseAdam`, but with fewer sparse
    operations per step). Dense gradients get the ordinary Adam update, so
    parameters of other modules (e.g. a regularizer) can share the optimiser.

    Parameters
    ----------
    params : iterable
        Parameters or parameter groups.
    lr : float, default=1e-3
        Learning rate.
    betas : tuple of float, default=(0.9, 0.999)
        Moment decay rates.
    eps : float, default=1e-8
        Denominator term.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}.")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas!r}.")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}.")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                step_size = lr / (1 - beta1**t)
                bias2_sqrt = math.sqrt(1 - beta2**t)
                m_all, v_all = state["exp_avg"], state["exp_avg_sq"]
                grad = p.grad
                if grad.is_sparse:
                    grad = grad.coalesce()
                    idx = grad.indices()[0]
                    val = grad.values()
                    m = m_all.index_select(0, idx).mul_(beta1).add_(val, alpha=1 - beta1)
                    v = v_all.index_select(0, idx).mul_(beta2)
                    v.addcmul_(val, val, value=1 - beta2)
                    m_all.index_copy_(0, idx, m)
                    v_all.index_copy_(0, idx, v)
                    denom = v.sqrt_().div_(bias2_sqrt).add_(eps)
                    p.index_add_(0, idx, m.div_(denom), alpha=-step_size)
                else:
                    m_all.mul_(beta1).add_(grad, alpha=1 - beta1)
                    v_all.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    denom = v_all.sqrt().div_(bias2_sqrt).add_(eps)
                    p.addcdiv_(m_all, denom, value=-step_size)
        return loss
