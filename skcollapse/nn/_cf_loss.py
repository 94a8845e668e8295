"""Training objectives of the collaborative-filtering models (as RecBole's
``model/loss.py``): one module, :class:`CFLoss`, on batch embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CFLoss", "row_scores"]

#: names of the objectives :class:`CFLoss` implements
CF_LOSSES = ("bpr", "bce", "softmax", "align", "ccl")


class _RowScores(torch.autograd.Function):
    """``(batch, n)`` products ``user[b] · neg[b, k]`` of per-row negatives.

    ``torch.einsum("bd,bnd->bn", user, neg)`` with a backward that keeps
    every tensor in its own layout: the negatives' gradient is the broadcast
    product ``g[b, k] user[b]``, the users' ``g[b] @ neg[b]``. einsum (and a
    plain ``bmm``) formed the first as ``(batch, d, n)`` outer products and
    copied it back, and read ``neg`` transposed for the second: the largest
    costs of a CF step with several negatives a positive.
    """

    @staticmethod
    def forward(ctx, user, neg):
        ctx.save_for_backward(user, neg)
        # squeezed in place: an output that is no view (CCL edits it in place)
        return torch.bmm(neg, user.unsqueeze(-1)).squeeze_(-1)

    @staticmethod
    def backward(ctx, grad):
        user, neg = ctx.saved_tensors
        # under autocast the product ran in a lower precision and ``grad`` is in
        # it: compute the gradients there too, as einsum's backward does (it
        # saves the cast inputs); autograd casts them back to the inputs' dtype
        user, neg = user.to(grad.dtype), neg.to(grad.dtype)
        grad_user = grad_neg = None
        if ctx.needs_input_grad[0]:
            grad_user = torch.bmm(grad.unsqueeze(1), neg).squeeze(1)
        if ctx.needs_input_grad[1]:
            grad_neg = grad.unsqueeze(-1) * user.unsqueeze(1)
        return grad_user, grad_neg


def row_scores(user, neg):
    """Scores of per-row candidates: ``out[b, k] = user[b] · neg[b, k]``.

    The value of ``torch.einsum("bd,bnd->bn", user, neg)``, with a backward
    that forms the gradient of ``neg`` in its own ``(batch, n, dim)`` layout
    and reads ``neg`` in order (see :class:`_RowScores`). :class:`CFLoss`
    scores per-positive negatives with it; a loss of one's own on the same
    ``(user, pos, neg)`` arguments can too.

    Parameters
    ----------
    user : Tensor of shape (batch, dim)
    neg : Tensor of shape (batch, n, dim)

    Returns
    -------
    Tensor of shape (batch, n)
    """
    return _RowScores.apply(user, neg)


def _cosine_contrastive(user, pos, neg, neg_mask, margin, negative_weight):
    """SimpleX's cosine contrastive loss of a batch (see :class:`CFLoss`).

    Cosines are taken here (rows are L2-normalised), so the result does not
    depend on the scale of the inputs. ``neg`` is ``(n, dim)`` (shared by the
    batch: one ``(batch, dim) @ (dim, n)`` product) or ``(batch, n, dim)``;
    the negative term of row ``b`` is the mean over its kept negatives.
    """
    u = F.normalize(user, dim=-1)
    pos_cos = (u * F.normalize(pos, dim=-1)).sum(-1)
    loss = 1.0 - pos_cos
    if neg is None:
        return loss.mean()
    n = F.normalize(neg, dim=-1)
    neg_cos = u @ n.T if n.dim() == 2 else row_scores(u, n)
    # in place on the product (its backward does not need it): two fewer
    # passes over the (batch, n) matrix, which dominates the step
    hinge = neg_cos.sub_(margin).relu_()
    total = hinge.sum(-1)
    count = torch.full_like(total, hinge.shape[-1])
    if neg_mask is not None:
        # masked entries are few (accidental hits): take them back out by index
        rows, cols = neg_mask.nonzero(as_tuple=True)
        total = total.index_add(0, rows, -hinge[rows, cols])
        count = count.index_add(0, rows, -torch.ones_like(rows, dtype=count.dtype))
    neg_term = total / count.clamp_min(1.0)
    return (loss + negative_weight * neg_term).mean()

def _shared_softmax(user, pos, neg, neg_mask, temperature, pos_log_q, neg_log_q):
    """Sampled softmax over one candidate set shared by the batch (uniform or
    in-batch negatives), without materialising the ``(batch, 1 + n)`` logits:
    the temperature scales ``user`` (``batch x dim``, not ``batch x n``), the
    candidates' ``-log q`` rides in the same matrix product as one extra
    column, and the positive joins through ``logaddexp``."""
    u = user / temperature
    pos_s = (u * pos).sum(-1)
    if neg_log_q is not None and neg_log_q.dim() == 1:
        neg_s = torch.cat([u, -torch.ones_like(u[:, :1])], 1) @ torch.cat(
            [neg, neg_log_q[:, None].to(neg.dtype)], 1).T
    else:
        neg_s = u @ neg.T
        if neg_log_q is not None:
            neg_s = neg_s - neg_log_q
    if pos_log_q is not None:
        pos_s = pos_s - pos_log_q
    if neg_mask is not None:
        neg_s = neg_s.masked_fill(neg_mask, float("-inf"))
    lse = torch.logaddexp(pos_s, torch.logsumexp(neg_s, dim=1))
    return (lse - pos_s).mean()


class CFLoss(nn.Module):
    """Training objectives of the CF recommenders, on batch embeddings.

    Parameters
    ----------
    loss : {"bpr", "bce", "softmax", "align", "ccl"}, default="bpr"
        ``"bpr"``: ``-log sigmoid(s_ui - s_uj)`` averaged over sampled negatives;
        ``"bce"``: ``-log sigmoid(s_ui) - sum_j log sigmoid(-s_uj)`` (without
        negatives, the positive-only ``-log sigmoid(s_ui)`` of DirectSpec's
        recipe);
        ``"softmax"``: sampled softmax cross-entropy of the positive against the
        negatives with logits ``s / temperature``; ``"align"``: positive-only
        alignment ``||u/|u| - i/|i|||^2`` (DirectAU's alignment term; the
        regularizer supplies the rest, e.g. uniformity or DirectSpec);
        ``"ccl"``: the cosine contrastive loss of SimpleX (Mao et al., CIKM
        2021), ``(1 - cos(u, i)) + negative_weight / |N| * sum_j max(0,
        cos(u, j) - margin)`` (see Notes).
    temperature : float, default=1.0
        Softmax temperature (``"softmax"`` only).
    margin : float, default=0.8
        ``"ccl"`` only: a negative adds to the loss only while its cosine with
        the user exceeds ``margin`` (in ``[-1, 1)``; the larger, the more
        easy negatives are ignored; SimpleX tunes it per data set).
    negative_weight : float, default=1.0
        ``"ccl"`` only: the weight ``w`` of the mean negative term against the
        positive term. Tune it together with the number of negatives.

    Notes
    -----
    With ``pos_log_q``/``neg_log_q`` (``"softmax"`` only) the logits get the
    sampling-bias correction of Yi et al. (RecSys 2019):
    ``logit_j = s_uj / temperature - log q_j``, where ``q_j`` is the probability
    that item ``j`` is drawn as a candidate (its training frequency, for
    in-batch negatives), applied to the positive and to every negative (the
    order of TensorFlow Recommenders' ``Retrieval`` task: temperature, then the
    correction). In-batch negatives are the batch's own items, ``neg`` of shape
    ``(batch, dim)`` with ``neg_mask`` masking row ``b``'s positive (and its
    duplicates).

    Negatives come either per positive, ``neg`` of shape ``(batch, n, dim)``, or
    shared by the whole batch, ``neg`` of shape ``(n, dim)``; a shared set is
    scored with one ``(batch, dim) @ (dim, n)`` product. ``neg_mask`` (``True`` =
    drop) removes entries from the loss, e.g. a shared negative that is the row's
    own positive ("accidental hit").

    The cosine contrastive loss (``"ccl"``) of a user ``u``, its positive ``i``
    and its negatives ``N`` is

    ``L(u, i) = (1 - cos(u, i)) + w / |N| * sum_{j in N} max(0, cos(u, j) - m)``

    with margin ``m`` and negative weight ``w`` (SimpleX, Mao et al., CIKM
    2021; "MF-CCL" is matrix factorisation trained with it). The
    cosines are computed inside the loss, whatever the scale of the inputs;
    masked negatives leave both the sum and ``|N|`` (a row whose negatives are
    all masked keeps its positive term only). Without negatives only the
    positive term remains.

    References
    ----------
    .. [1] K. Mao, J. Zhu, J. Wang, Q. Dai, Z. Dong, X. Xiao, X. He, "SimpleX:
       A Simple and Strong Baseline for Collaborative Filtering", CIKM 2021
       (arXiv:2109.12613).
    """

    #: names of the objectives (the estimators' ``loss=`` choices)
    LOSSES = CF_LOSSES

    def __init__(self, loss="bpr", temperature=1.0, margin=0.8, negative_weight=1.0):
        super().__init__()
        if loss not in CF_LOSSES:
            # a criterion built directly (criterion__loss=...) would otherwise
            # fall through to another objective silently
            raise ValueError(f"loss={loss!r} is not supported; choose one of {CF_LOSSES}.")
        self.loss = loss
        self.temperature = float(temperature)
        self.margin = float(margin)
        self.negative_weight = float(negative_weight)

    def forward(self, user, pos, neg=None, neg_mask=None, *, pos_log_q=None,
                neg_log_q=None):
        """Mean loss of a batch.

        Parameters
        ----------
        user, pos : Tensor of shape (batch, dim)
            Row ``b`` of both forms an observed pair.
        neg : Tensor of shape (batch, n_negatives, dim) or (n_negatives, dim), or None
            Negatives of each row, or one set shared by every row.
        neg_mask : BoolTensor of shape (batch, n_negatives) or None
            ``True`` where a negative is left out of row ``b``'s loss.
        pos_log_q : Tensor of shape (batch,) or None
            ``log q`` of each positive (logQ correction, ``"softmax"`` only).
        neg_log_q : Tensor of shape (n_negatives,) or (batch, n_negatives), or None
            ``log q`` of the negatives (shared or per row).
        """
        if (pos_log_q is None) != (neg_log_q is None):
            raise ValueError("give both pos_log_q and neg_log_q, or neither.")
        if pos_log_q is not None and self.loss != "softmax":
            raise ValueError(
                f"the logQ correction applies to loss='softmax', not {self.loss!r}."
            )
        if self.loss == "align":
            u = F.normalize(user, dim=-1)
            i = F.normalize(pos, dim=-1)
            return (u - i).pow(2).sum(-1).mean()
        if self.loss == "ccl":
            return _cosine_contrastive(user, pos, neg, neg_mask, self.margin,
                                       self.negative_weight)
        if neg is None:
            if self.loss == "bce":  # positive-only: -log sigmoid(s_ui) (DirectSpec)
                return F.softplus(-(user * pos).sum(-1)).mean()
            raise ValueError(f"loss={self.loss!r} needs negatives; got neg=None.")
        if self.loss == "softmax" and neg.dim() == 2:
            return _shared_softmax(user, pos, neg, neg_mask, self.temperature,
                                   pos_log_q, neg_log_q)
        pos_s = (user * pos).sum(-1)
        neg_s = user @ neg.T if neg.dim() == 2 else row_scores(user, neg)
        if self.loss == "softmax":
            if neg_mask is not None:
                neg_s = neg_s.masked_fill(neg_mask, float("-inf"))
            logits = torch.cat([pos_s[:, None], neg_s], dim=1) / self.temperature
            if pos_log_q is not None:
                neg_log_q = neg_log_q.expand(neg_s.shape)
                logits = logits - torch.cat([pos_log_q[:, None], neg_log_q], dim=1)
            return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()
        if self.loss == "bpr":
            terms = -F.logsigmoid(pos_s[:, None] - neg_s)
            if neg_mask is None:
                return terms.mean()
            keep = (~neg_mask).to(terms.dtype)
            per_row = (terms * keep).sum(-1) / keep.sum(-1).clamp_min(1.0)
            return per_row.mean()
        terms = F.softplus(neg_s)
        if neg_mask is not None:
            terms = terms.masked_fill(neg_mask, 0.0)
        return (F.softplus(-pos_s) + terms.sum(-1)).mean()
