"""DirectAU (alignment + γ·uniformity) and the uniformity penalty alone."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from skcollapse.regularizers._base import Regularizer, register_regularizer
from skcollapse.regularizers._utils import (
    CHOSEN_ON_VALIDATION_DOC,
    TABLE_CONSTRAINTS,
    TABLE_PARAMS_DOC,
    RowGroups,
    ids_of,
    select_tables,
    weight_of,
    weighted_table_mean,
)
from skcollapse.utils._docstrings import fill_doc
from skcollapse.utils._params import init_arguments
from skcollapse.utils._sklearn_compat import int_interval, real_interval

#: largest exponent magnitude whose ``exp`` neither overflows nor underflows
#: to 0, per dtype (float32: e^±87; float64: e^±709)
_EXP_RANGE = {torch.float32: 80.0, torch.float64: 700.0}
#: rows per block of the pairwise kernel (a block of 384 x 384 float32 is
#: 0.6 MB, so it is still in cache when its sums and products are taken)
_PAIR_BLOCK = 384


def _log_pair_sum(z, c, t, need_grad):
    r"""``log Σ_{i≠j} e^{-t‖z_i − z_j‖²}`` over the batch rows, and its gradient.

    ``z`` holds ``m`` distinct unit rows, row ``a`` standing for ``c_a`` equal
    batch rows. Over the ``n = Σ c_a`` batch rows, the pairs ``i ≠ j`` are the
    ``c_a c_b`` pairs of two groups ``a ≠ b`` and the ``c_a (c_a − 1)`` pairs
    inside group ``a``, so the sum is
    ``Σ_{a≠b} c_a c_b K_ab + Σ_a c_a (c_a − 1) K_aa`` with
    ``K_ab = e^{-t‖z_a − z_b‖²} = e^{2t (z_a·z_b − 1)}`` (no square root, so the
    gradient stays finite for repeated rows).

    The kernel is symmetric, so only its blocks on and above the diagonal are
    formed, ``_PAIR_BLOCK`` rows at a time: per block one Gram product of the
    rows scaled by ``√(2t)`` (the exponents ``2t z_a·z_b``), the diagonal of
    a diagonal block set to ``-inf``, one in-place ``exp``, its weighted sum
    and, for the gradient, its products with ``c z`` on either side, while the
    block is in cache; the pairs inside a group come from the rows' squared
    norms. The ``m × m`` kernel is never held. While the exponents
    ``2t z_a·z_b ∈ [-2t, 2t]`` fit the dtype's range (``4t <= 80`` in float32,
    ``700`` in float64) the constant ``e^{-2t}`` is taken out of the sum into
    the log; beyond, the blocks are shifted by the largest exponent seen so
    far and the sums rescaled when it grows (a streaming logsumexp).

    Returns ``(value, grad)``, ``grad`` (``(m, d)``, the gradient with respect
    to ``z``) ``None`` unless ``need_grad``.
    """
    m = z.shape[0]
    two_t = 2.0 * float(t)
    inner = c * (c - 1.0)  # pairs inside each group
    zs = z * math.sqrt(two_t)
    diag = (zs * zs).sum(dim=1)  # 2t ‖z_a‖², the Gram matrix's diagonal
    streaming = 2.0 * two_t > _EXP_RANGE.get(z.dtype, 80.0)
    shift = None  # the exponents are taken as exp(v - shift); 0 when fixed
    if streaming and bool((inner > 0).any()):
        shift = diag[inner > 0].max()
    total = z.new_zeros(())
    if need_grad:
        cz = c.unsqueeze(1) * z
        k_cz = torch.zeros_like(z)  # K (c z), the diagonal of K left out
    starts = range(0, m, _PAIR_BLOCK)
    for a0 in starts:
        a1 = min(a0 + _PAIR_BLOCK, m)
        for b0 in starts[a0 // _PAIR_BLOCK:]:
            b1 = min(b0 + _PAIR_BLOCK, m)
            v = zs[a0:a1] @ zs[b0:b1].T
            if a0 == b0:
                v.fill_diagonal_(float("-inf"))
            if streaming:
                top = v.max()
                if shift is None or bool(top > shift):
                    if shift is not None:  # rescale what was summed so far
                        rescale = torch.exp(shift - top)
                        total = total * rescale
                        if need_grad:
                            k_cz.mul_(rescale)
                    shift = top
                v.sub_(shift)
            kernel = v.exp_()
            pairs = c[a0:a1] @ (kernel @ c[b0:b1])
            # an off-diagonal block stands for its mirror image too
            total = total + (pairs if a0 == b0 else 2.0 * pairs)
            if need_grad:
                k_cz[a0:a1] += kernel @ cz[b0:b1]
                if a0 != b0:
                    k_cz[b0:b1] += kernel.T @ cz[a0:a1]
    offset = -two_t if shift is None else shift - two_t
    w_diag = inner * torch.exp(diag if shift is None else diag - shift)
    total = total + w_diag.sum()
    value = torch.log(total) + offset
    if not need_grad:
        return value, None
    # d/dG_ab = 2t c_a c_b K_ab / S (a≠b), 2t w_a / S (a=b); G = z zᵀ symmetric
    grad = c.unsqueeze(1) * k_cz + w_diag.unsqueeze(1) * z
    return value, grad.mul_(4.0 * float(t) / total)


class _Uniformity(torch.autograd.Function):
    """:func:`_log_pair_sum` as an autograd function: the gradient is formed
    in the forward pass, while the kernel's blocks are in cache (one
    ``m x d`` tensor kept, not the ``m x m`` kernel), and scaled in the
    backward pass."""

    @staticmethod
    def forward(ctx, z, c, t):
        value, grad = _log_pair_sum(z, c, t, ctx.needs_input_grad[0])
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad * grad_output, None, None


def uniformity_loss(
    x: torch.Tensor, t: float = 2.0, counts: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Wang & Isola's uniformity of the rows of ``x`` (L2-normalised here).

    :math:`\log \frac{2}{n(n-1)}\sum_{i<j} e^{-t\|\hat x_i-\hat x_j\|^2}`, computed
    from the Gram matrix with ``‖x̂_i − x̂_j‖² = 2 − 2 x̂_i·x̂_j`` (no square root,
    so the gradient stays finite for repeated rows) and a logsumexp-style
    shift. ``counts`` (optional, ``(len(x),)``) says how many batch rows each
    row of ``x`` stands for: the value is then that of the batch with every
    row repeated ``counts`` times, at the cost of the distinct rows. Needs at
    least 2 batch rows.
    """
    z = F.normalize(x, dim=1)
    if counts is None:
        c = z.new_ones(z.shape[0])
    else:
        c = counts.to(device=z.device, dtype=z.dtype)
    n = float(c.sum())
    return _Uniformity.apply(z, c.detach(), float(t)) - math.log(n * (n - 1))


def uniformity_value_grad(x, t=2.0, counts=None):
    """:func:`uniformity_loss` and its gradient with respect to ``x``, in
    closed form (no autograd graph); ``None`` when a row of ``x`` is 0 (the
    normalisation's clamp: autograd handles it)."""
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    if not bool((norms > 1e-12).all()):
        return None
    z = x / norms
    if counts is None:
        c = z.new_ones(z.shape[0])
    else:
        c = counts.to(device=z.device, dtype=z.dtype)
    n = float(c.sum())
    value, gz = _log_pair_sum(z, c, float(t), True)
    return value - math.log(n * (n - 1)), _through_normalize(gz, z, norms)


def _through_normalize(gz, z, norms):
    """The gradient with respect to ``x`` of a function of ``z = x / ‖x‖``."""
    gz = torch.addcmul(gz, z, torch.linalg.vecdot(gz, z).unsqueeze(1), value=-1.0)
    return gz.div_(norms)


def alignment_loss(
    x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0
) -> torch.Tensor:
    r"""Wang & Isola's alignment :math:`\frac1n\sum_b\|\hat x_b-\hat y_b\|^\alpha`."""
    zx = F.normalize(x, dim=1)
    zy = F.normalize(y, dim=1)
    sq = (zx - zy).pow(2).sum(dim=1)
    if alpha == 2.0:
        return sq.mean()
    return sq.clamp_min(1e-12).pow(alpha / 2.0).mean()


def alignment_value_grad(x, y, alpha=2.0):
    """:func:`alignment_loss` and its gradients with respect to ``x`` and
    ``y``, in closed form; ``None`` when a row is 0 (autograd handles it)."""
    nx = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    ny = torch.linalg.vector_norm(y, dim=1, keepdim=True)
    if not (bool((nx > 1e-12).all()) and bool((ny > 1e-12).all())):
        return None
    zx, zy = x / nx, y / ny
    diff = zx - zy
    sq = (diff * diff).sum(dim=1)
    n = x.shape[0]
    if alpha == 2.0:
        value = sq.mean()
        g_sq = sq.new_full(sq.shape, 1.0 / n)
    else:
        clamped = sq.clamp_min(1e-12)
        value = clamped.pow(alpha / 2.0).mean()
        # clamp_min passes the gradient where sq >= its bound
        g_sq = clamped.pow(alpha / 2.0 - 1.0).mul_((alpha / 2.0) / n)
        g_sq = g_sq * (sq >= 1e-12)
    gz = diff.mul_(2.0 * g_sq.unsqueeze(1))
    return value, _through_normalize(gz, zx, nx), _through_normalize(-gz, zy, ny)


@register_regularizer("uniformity")
@fill_doc(chosen_on_validation=CHOSEN_ON_VALIDATION_DOC, table_params=TABLE_PARAMS_DOC)
class UniformityRegularizer(Regularizer):
    r"""Uniformity penalty on the hypersphere, per table (Wang & Isola 2020).

    Penalty: the (weighted) mean over the selected tables of

    .. math:: \mathcal L_{unif}(E) = \log \frac{2}{n(n-1)}\sum_{i<j}
       e^{-t\|\hat e_i-\hat e_j\|^2},\qquad \hat e = e/\|e\|_2,

    over all pairs of rows of the batch (duplicates kept, as in DirectAU). It is
    at most 0 and lower the more evenly the rows spread over the sphere.

    Parameters
    ----------
    weight : float, default=1e-3
        Multiplier of the penalty added to the loss (DirectAU's ``γ`` when the
        estimator's loss is the alignment loss). Added to a BPR loss:
        {chosen_on_validation}
        1e-3 kept 1.001x of no regularizer's validation NDCG@20 with the item
        erank +0.3; 1e-2 kept 0.976x (+1.4), 0.1 0.897x (+6.5). (Before
        December 2026 the default was 0.01.)
    t : float, default=2.0
        Gaussian-potential temperature (2 in Wang & Isola and DirectAU).
    max_rows : int, default=None
        Estimate each table's uniformity on a random subset of at most
        ``max_rows`` of its batch rows instead of on all of them. ``None`` (the
        default) is exact: all pairs of the batch, ``O(B² d)`` per table (about
        4e8 multiply-adds, forward and backward, for a batch of 2048 rows of 64
        dimensions), which on a CPU costs many times the MF step it
        regularizes.
        With ``max_rows`` the rows are drawn uniformly without replacement,
        anew for every batch and table, from torch's global generator (which
        a seeded fit seeds, so the fit stays reproducible), at
        ``(max_rows / B)²`` of the cost. The subset's mean kernel over its
        pairs is an unbiased estimate of the batch's (a U-statistic), so the
        penalty is the log of an unbiased estimate (its mean lies slightly
        below the exact value, by Jensen's inequality) and its gradient a noisy
        estimate of the exact one; the rows outside the subset get no gradient
        from this term. For scale, not as a tuned value: DirectAU's reference
        code computes uniformity on its whole batch of 256 rows (its default
        ``train_batch_size``, ``recbole/properties/overall.yaml``), so
        ``max_rows=256`` on batches of 2048 pairs estimates from as many rows
        as that reference uses.
    {table_params}

    Notes
    -----
    Source: Wang & Isola, "Understanding Contrastive Representation Learning
    through Alignment and Uniformity on the Hypersphere", ICML 2020
    (ssnl/align_uniform) and DirectAU (THUwangcy/DirectAU). The value equals
    ``torch.pdist(x̂).pow(2).mul(-t).exp().mean().log()``; it is computed from the
    Gram matrix and ``logsumexp`` instead (finite gradients for identical rows).
    Tables of fewer than 2 rows contribute 0.
    """

    kind = "penalty"
    _parameter_constraints: ClassVar[dict] = {
        **Regularizer._parameter_constraints,
        "t": [real_interval(0, None, closed="neither")],
        "max_rows": [None, int_interval(2, None, closed="left")],
        **TABLE_CONSTRAINTS,
    }

    def __init__(self, *, weight=1e-3, t=2.0, max_rows=None, tables=None,
                 table_weights=None):
        super().__init__(**init_arguments(locals()))

    def _subsets(self, embeddings, names, context):
        """``(embeddings, context, keep)``: the batch with each table of
        ``names`` cut to ``max_rows`` rows drawn uniformly without replacement
        (its ids in ``context`` cut alike), ``keep[name]`` the positions kept.
        The batch as it is (and no ``keep``) without ``max_rows`` or for a
        table of at most ``max_rows`` rows."""
        keep = {}
        if self.max_rows is None:
            return embeddings, context, keep
        embeddings, context = dict(embeddings), dict(context or {})
        for name in names:
            x = embeddings[name]
            if x.shape[0] <= int(self.max_rows):
                continue
            pos = torch.randperm(x.shape[0], device=x.device)[: int(self.max_rows)]
            keep[name] = pos
            embeddings[name] = x.index_select(0, pos)
            ids = ids_of(context, name)
            if ids is not None:
                ids = torch.as_tensor(ids, device=x.device).reshape(-1)
                context[f"{name}_ids"] = ids[pos] if ids.numel() == x.shape[0] else None
        return embeddings, context, keep

    def _uniformity(self, embeddings, names, context=None):
        t = float(self.t)
        embeddings, context, _ = self._subsets(embeddings, names, context)
        return weighted_table_mean(
            embeddings, names, self.table_weights, context,
            lambda rows, counts: uniformity_loss(rows, t, counts),
        )

    def _uniformity_grad(self, embeddings, names, context=None, scale=1.0):
        """``scale`` times :meth:`_uniformity` and its gradients, in closed
        form (:func:`uniformity_value_grad` on the distinct rows, each copy
        of a row given ``1/count`` of its group's gradient), or ``None``."""
        first = embeddings[names[0]]
        total = first.new_zeros(())
        grads = {}
        n_terms = sum(weight_of(self.table_weights, name) for name in names)
        subsets, sub_context, keep = self._subsets(embeddings, names, context)
        for name in names:
            x = subsets[name]
            w = weight_of(self.table_weights, name)
            if w == 0.0 or x.shape[0] < 2:
                continue
            groups = RowGroups.of(x, ids_of(sub_context, name))
            if groups is None:
                out = uniformity_value_grad(x, float(self.t))
            else:
                out = uniformity_value_grad(x.index_select(0, groups.first),
                                            float(self.t), groups.counts)
            if out is None:
                return None
            value, g = out
            if groups is not None:
                g = g.div_(groups.counts.to(g.dtype).unsqueeze(1))
                g = g.index_select(0, groups.inverse)
            if name in keep:  # the rows left out of the subset get 0
                g = torch.zeros_like(embeddings[name]).index_copy_(0, keep[name], g)
            total = total + w * value
            grads[name] = g.mul_(scale * w / n_terms)
        if n_terms > 0:
            total = total / n_terms
        return total * scale, grads

    def penalty(self, embeddings, context=None):
        names = select_tables(embeddings, self.tables)
        return self._uniformity(embeddings, names, context)

    def penalty_grad(self, embeddings, context=None):
        """:meth:`penalty` and its gradient in closed form: per table the
        upper triangle of the ``m x m`` kernel of the ``m`` distinct rows, in
        blocks, with its products (:func:`uniformity_value_grad`); ``None``
        (autograd) when a row is 0."""
        names = select_tables(embeddings, self.tables)
        return self._uniformity_grad(embeddings, names, context)

    def extra_repr(self):
        return f"weight={self.weight}, t={self.t}, max_rows={self.max_rows}"


@register_regularizer("directau")
@fill_doc(chosen_on_validation=CHOSEN_ON_VALIDATION_DOC)
class DirectAU(UniformityRegularizer):
    r"""DirectAU: alignment of positive pairs plus ``γ`` times uniformity.

    .. math:: \mathcal L = \mathcal L_{align}(\hat u, \hat\imath)
       + \gamma\cdot\tfrac12\big[\mathcal L_{unif}(\hat U_B)+\mathcal L_{unif}(\hat I_B)\big],

    with :math:`\mathcal L_{align} = \frac1B\sum_b\|\hat u_b-\hat\imath_b\|^{\alpha}`
    over the rows ``b`` of the batch (row ``b`` of ``"user"`` and of ``"item"`` are an
    observed pair in the CF contract) and :math:`\mathcal L_{unif}` as in
    :class:`UniformityRegularizer`, on L2-normalised batch embeddings, users and
    items separately, duplicates kept. For CTR batches (no ``"user"``/``"item"``
    pair) only the uniformity term of each selected table remains.

    Parameters
    ----------
    weight : float, default=0.1
        Multiplier of the whole penalty added to the estimator's loss (use 1.0
        with ``loss="align"``, ``alignment=False`` for the reference set-up).
        As a term beside BPR:
        {chosen_on_validation}
        0.1 kept 1.156x of no regularizer's validation NDCG@20 with the item
        erank +3.9: CiteULike MF 1.616x, MovieLens-100k MF 0.970x and
        LightGCN 0.986x (the geometric mean lets the large CiteULike gain
        outweigh losses of 1-3% on MovieLens-100k); 1e-3 kept 1.002x (+0.2),
        1e-2 1.011x (-0.0), 1.0 0.731x (+9.3). Tune it on your validation
        data. (Until 7 December 2026 the default was 1e-3, chosen on
        MovieLens-100k alone; before December 2026 0.01, chosen on a test
        split.)
    gamma : float, default=1.0
        Weight of uniformity (DirectAU: 1; grid {0.01,…,10}; 0.5 Beauty,
        5 Gowalla, 1 Yelp).
    alpha : float, default=2.0
        Exponent of the alignment distance.
    t : float, default=2.0
        Uniformity temperature.
    max_rows : int, default=None
        Estimate the uniformity term on a random subset of at most ``max_rows``
        rows of each table's batch; ``None`` (the default) is exact. See
        :class:`UniformityRegularizer`. The alignment term always uses every
        pair of the batch.
    alignment : bool, default=True
        Include the alignment term. Set ``False`` when the estimator's loss is
        already the alignment loss (``loss="align"``), so it is not counted twice.
    pairs : list of (str, str), default=None
        Table pairs whose rows are aligned; ``None`` means ``[("user", "item")]``
        when the batch has both tables, else none.
    tables : str or list of str, default=None
        Tables in the uniformity term; ``None`` means every table of the batch.
    table_weights : dict, default=None
        Per-table multipliers inside the uniformity mean.

    Notes
    -----
    Source: Wang, Yu, Ma, Chen, Zhang, Liu, Ma, "Towards Representation
    Alignment and Uniformity in Collaborative Filtering", KDD 2022
    (THUwangcy/DirectAU ``directau.py``). The reference uses this as the whole
    loss with no negatives; here it is added to the estimator's ``loss=``
    (combine with ``loss="align"`` and ``alignment=False``, or with a loss whose
    contribution is small, to reproduce the reference).
    """

    _parameter_constraints: ClassVar[dict] = {
        **UniformityRegularizer._parameter_constraints,
        "gamma": [real_interval(0, None, closed="left")],
        "alpha": [real_interval(0, None, closed="neither")],
        "alignment": ["boolean"],
        "pairs": [None, "array-like"],
    }

    def __init__(
        self,
        *,
        weight=0.1,
        gamma=1.0,
        alpha=2.0,
        t=2.0,
        max_rows=None,
        alignment=True,
        pairs=None,
        tables=None,
        table_weights=None,
    ):
        # The base validates and stores every parameter; UniformityRegularizer's
        # constructor has no room for DirectAU's own, so it is skipped.
        Regularizer.__init__(self, **init_arguments(locals()))
        self._pairs = self._check_pairs(pairs)

    @staticmethod
    def _check_pairs(pairs):
        if pairs is None:
            return None
        try:
            out = [tuple(p) for p in pairs]
        except TypeError as exc:
            raise TypeError(
                f"pairs must be a list of (table, table) tuples, got {pairs!r}."
            ) from exc
        if not all(len(p) == 2 and all(isinstance(n, str) for n in p) for p in out):
            raise ValueError(
                f"pairs must be a list of (table, table) tuples, got {pairs!r}."
            )
        return out

    def _aligned(self, embeddings):
        """The pairs of batch tables of the alignment term, checked."""
        if not self.alignment:
            return []
        pairs = self._pairs
        if pairs is None:
            pairs = [("user", "item")] if {"user", "item"} <= set(embeddings) else []
        for a, b in pairs:
            if a not in embeddings or b not in embeddings:
                raise ValueError(
                    f"pairs names ({a!r}, {b!r}) but the batch's tables are "
                    f"{sorted(embeddings)!r}."
                )
            if embeddings[a].shape != embeddings[b].shape:
                raise ValueError(
                    f"aligned tables {a!r} and {b!r} must have the same shape, got "
                    f"{tuple(embeddings[a].shape)} and {tuple(embeddings[b].shape)}."
                )
        return [(a, b) for a, b in pairs if embeddings[a].shape[0]]

    def penalty(self, embeddings, context=None):
        names = select_tables(embeddings, self.tables)
        total = float(self.gamma) * self._uniformity(embeddings, names, context)
        for a, b in self._aligned(embeddings):
            total = total + alignment_loss(embeddings[a], embeddings[b],
                                           float(self.alpha))
        return total

    def penalty_grad(self, embeddings, context=None):
        """:meth:`penalty` and its gradient in closed form (the uniformity as
        :meth:`UniformityRegularizer.penalty_grad`, the alignment by
        :func:`alignment_value_grad`), or ``None``."""
        names = select_tables(embeddings, self.tables)
        pairs = self._aligned(embeddings)
        out = self._uniformity_grad(embeddings, names, context, float(self.gamma))
        if out is None:
            return None
        total, grads = out
        for a, b in pairs:
            aligned = alignment_value_grad(embeddings[a], embeddings[b],
                                           float(self.alpha))
            if aligned is None:
                return None
            value, ga, gb = aligned
            total = total + value
            for name, g in ((a, ga), (b, gb)):
                grads[name] = g if name not in grads else grads[name] + g
        return total, grads

    def extra_repr(self):
        return (
            f"weight={self.weight}, gamma={self.gamma}, alpha={self.alpha}, "
            f"t={self.t}, max_rows={self.max_rows}, alignment={self.alignment}"
        )
