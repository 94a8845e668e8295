"""Decorrelated batch normalisation (ZCA whitening per group) as a regularizer layer."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from skcollapse.regularizers._base import Regularizer, register_regularizer
from skcollapse.regularizers._utils import (
    LINEAR_GROUP_SHARE,
    TABLE_CONSTRAINTS,
    RowGroups,
    extra_ids_of,
    first_in_steps,
    float32_accurate,
    gram64,
    ids_of,
    select_tables,
    small_matmul,
    sym_eigh,
    table_dims,
    table_names,
)
from skcollapse.utils._params import init_arguments
from skcollapse.utils._sklearn_compat import int_interval, real_interval


def _inv_sqrt(S, eps):
    """``(S + eps I)^{-1/2}`` of symmetric PSD ``S`` ``(..., m, m)`` by
    ``eigh``, with what its backward needs: ``(W, U, s)``."""
    S = 0.5 * (S + S.transpose(-1, -2))
    evals, U = sym_eigh(S) if S.dtype == torch.float64 else torch.linalg.eigh(S)
    if isinstance(eps, torch.Tensor):  # one eps per matrix of the batch
        eps = eps.to(evals).unsqueeze(-1)
    s = torch.sqrt(evals.clamp_min(0.0) + eps)
    W = small_matmul(U / s.unsqueeze(-2), U.transpose(-1, -2))
    return W, U, s


def _inv_sqrt_backward(U, s, grad_W):
    """The gradient with respect to ``S`` of :func:`_inv_sqrt` (Daleckii–Krein)."""
    K = -1.0 / (
        s.unsqueeze(-1) * s.unsqueeze(-2) * (s.unsqueeze(-1) + s.unsqueeze(-2))
    )
    Ut = U.transpose(-1, -2)
    inner = small_matmul(small_matmul(Ut, grad_W), U)
    grad = small_matmul(small_matmul(U, K * inner), Ut)
    return 0.5 * (grad + grad.transpose(-1, -2))


class _InvSqrtPSD(torch.autograd.Function):
    """``(S + eps I)^{-1/2}`` of a batch of symmetric PSD matrices, stable backward.

    Forward symmetrises ``S`` and uses ``eigh``. Backward uses the
    Daleckii–Krein formula with the closed-form divided difference of
    ``f(a) = a^{-1/2}``: ``K_ij = -1 / (s_i s_j (s_i + s_j))`` with
    ``s = sqrt(lambda + eps)``, which is finite for repeated eigenvalues (autograd
    through ``eigh`` divides by eigenvalue gaps and gives NaN there, exactly the
    case of collapsed embeddings).
    """

    @staticmethod
    def forward(ctx, S, eps):
        W, U, s = _inv_sqrt(S, eps)
        ctx.save_for_backward(U, s)
        return W

    @staticmethod
    def backward(ctx, grad_W):
        U, s = ctx.saved_tensors
        return _inv_sqrt_backward(U, s, grad_W), None


class _Whitening(torch.autograd.Function):
    """The batch mean ``(d,)`` and block-diagonal whitening matrix ``(d, d)``
    of rows ``x`` (rows repeated ``counts`` times), float64, as one autograd
    node.

    Forward: the (weighted) mean, the centred rows' Gram matrix of each group
    of columns (one ``n x d x d`` product for a single group, a batched one
    for several; for float32 rows the mean, centring and Gram products in
    float32 and the statistics from there in float64, unless the estimated
    relative error ``sqrt(n) u cond(Σ + ε I)`` of that exceeds ``1e-3``, then
    in float64 as for float64 rows), each group's ``(Σ + ε I)^{-1/2}`` by
    ``eigh`` in float64 (ε relative to the group's mean variance and held
    constant, as :meth:`DecorrelatedBatchNorm._eps`), times
    ``sqrt(trace(Σ)/m)`` with ``keep_scale``. Backward, in closed form: the
    Daleckii–Krein gradient of the inverse square root (finite for repeated
    eigenvalues), the ``keep_scale`` factor's, ``dX_c = 2 w X_c sym(dΣ) / n``
    per group (one more ``n x d x d`` product, in the forward pass's dtype)
    and the mean's. It replaces the autograd graph of a dozen nodes over
    ``n x d`` float64 tensors that the same expressions built, with the same
    value and gradient up to rounding.
    """

    @staticmethod
    def forward(ctx, x, counts, dbn):
        # never None: float64 rows are always accurate enough
        mu, W, Xc, w, n, saved = first_in_steps(
            x, lambda X: _batch_statistics(X, counts, dbn))
        m, n_full, rest = dbn._groups(x.shape[1])
        ctx.dbn_shape = (m, n_full, rest, n)
        ctx.groups = saved
        ctx.save_for_backward(Xc, w if w is not None else Xc.new_empty(0))
        ctx.has_counts = w is not None
        ctx.x_dtype = x.dtype
        return mu, W

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_mu, grad_W):
        Xc, w = ctx.saved_tensors
        if not ctx.has_counts:
            w = None
        m, n_full, rest, n = ctx.dbn_shape
        n_rows = Xc.shape[0]
        grad_Xc = torch.empty_like(Xc)
        for (a, b, k), (W0, U, s, scale) in zip(_group_spans(m, n_full, rest),
                                                ctx.groups):
            size = b - a if k == 1 else m
            if grad_W is None:
                gW = W0.new_zeros(W0.shape)
            else:
                block = grad_W[a:b, a:b]
                gW = block.unsqueeze(0) if k == 1 else torch.stack(
                    [block[g * m:(g + 1) * m, g * m:(g + 1) * m] for g in range(k)])
            if scale is not None:  # W = scale * W0, scale = sqrt(trace(Σ)/m)
                g_scale = (gW * W0).sum(dim=(-2, -1))
                gW = gW * scale[:, None, None]
                safe = torch.where(scale > 0, scale, torch.ones_like(scale))
                g_trace = torch.where(scale > 0, g_scale / (2.0 * safe * size),
                                      torch.zeros_like(scale))
            gS = _inv_sqrt_backward(U, s, gW)
            if scale is not None:
                gS = gS + g_trace[:, None, None] * torch.eye(
                    size, dtype=gS.dtype, device=gS.device)
            # S = Xsᵀ Xs / n, Xs = sqrt(w) Xc: dXc = 2 w Xc gS / n (gS symmetric)
            gS = gS.to(Xc.dtype)
            if k == 1:
                grad_Xc[:, a:b] = Xc[:, a:b] @ gS[0]
            else:
                G = Xc[:, a:b].reshape(n_rows, k, m).transpose(0, 1)
                grad_Xc[:, a:b] = (G @ gS).transpose(0, 1).reshape(n_rows, k * m)
        grad_Xc.mul_(2.0 / n)
        if w is not None:
            grad_Xc.mul_(w.unsqueeze(1))
        # Xc = X - mu, mu = wᵀX / n
        g_mu = -grad_Xc.sum(dim=0)
        if grad_mu is not None:
            g_mu = g_mu + grad_mu.to(g_mu.dtype)
        coef = (w / n) if w is not None else Xc.new_full((n_rows,), 1.0 / n)
        grad_X = grad_Xc.addr_(coef, g_mu)
        return grad_X.to(ctx.x_dtype), None, None


def _batch_statistics(X, counts, dbn):
    """The forward pass of :class:`_Whitening` with the ``n x d`` work (mean,
    centring, the Gram products) in the dtype of ``X``: ``(mu, W, Xc, w, n,
    saved)``, ``mu`` and ``W`` float64, or ``None`` for float32 rows when
    float32 is not accurate enough for the groups' conditioning
    (:func:`float32_accurate` with ``cond(Σ + ε I)``)."""
    n_rows, d = X.shape
    if counts is None:
        w, n = None, float(n_rows)
        mu = X.mean(dim=0)
    else:
        w = counts.to(X)
        n = float(w.sum())
        mu = w @ X / n
    Xc = X - mu
    Xs = Xc if w is None else Xc * w.sqrt().unsqueeze(1)
    m, n_full, rest = dbn._groups(d)
    blocks, saved = [], []
    for a, b, k in _group_spans(m, n_full, rest):
        if k == 1:  # one group: a plain product
            S = (gram64(Xs[:, a:b]) / n).unsqueeze(0)
        else:
            G = Xs[:, a:b].reshape(n_rows, k, m).transpose(0, 1)
            S = (G.transpose(1, 2) @ G).to(torch.float64) / n
        W0, U, s = _inv_sqrt(S, dbn._eps(S))
        if not float32_accurate(X, ((s.amax(-1) / s.amin(-1)) ** 2).max()):
            return None
        scale = None
        if dbn.keep_scale:
            mean_var = torch.diagonal(S, dim1=-2, dim2=-1).mean(-1)
            scale = mean_var.clamp_min(0.0).sqrt()
            blocks.append(W0 * scale[:, None, None])
        else:
            blocks.append(W0)
        saved.append((W0, U, s, scale))
    W = torch.block_diag(*[blk for group in blocks for blk in group.unbind(0)])
    return mu.to(torch.float64), W, Xc, w, n, saved


def _group_spans(m, n_full, rest):
    """``(first column, last column + 1, number of groups)`` of the stack of
    ``n_full`` groups of ``m`` columns and of the last, smaller group."""
    spans = []
    if n_full:
        spans.append((0, n_full * m, n_full))
    if rest:
        spans.append((n_full * m, n_full * m + rest, 1))
    return spans


def inv_sqrt_psd(S: torch.Tensor, eps) -> torch.Tensor:
    """``(S + eps I)^{-1/2}`` for symmetric PSD ``S`` of shape ``(..., m, m)``.

    ``eps`` is a float, or a tensor of shape ``(...)`` (one value per matrix,
    treated as a constant by the backward pass).
    """
    if isinstance(eps, torch.Tensor):
        return _InvSqrtPSD.apply(S, eps.detach())
    return _InvSqrtPSD.apply(S, float(eps))


def _apply(x, mu, W):
    """``(x − μ) W`` of the float64 batch statistics, in the dtype of ``x``.

    The statistics (mean, covariance, its inverse square root) are computed in
    float64; the ``n × d × d`` product that applies them runs at the precision
    of the rows (float32 rows: a float32 product, 4x cheaper on a CPU than
    float64 and equal to it up to float32 rounding).
    """
    if x.dtype == torch.float64:
        return (x - mu) @ W
    return (x - mu.to(x.dtype)) @ W.to(x.dtype)


def _key(name: str) -> str:
    # nn.ModuleDict keys may not contain "." nor be empty
    return "t_" + name.replace(".", "_dot_")


class _RunningWhitening(nn.Module):
    """Running mean and (block-diagonal) whitening matrix of one table."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_whitening", torch.eye(dim))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))


@register_regularizer("dbn")
class DecorrelatedBatchNorm(Regularizer):
    r"""Decorrelated batch normalisation: ZCA whitening of each table per group.

    In training, each selected table's batch ``X`` (``n × d``) is whitened group
    by group: the ``d`` columns are cut into consecutive groups of
    ``group_size`` (the last one may be smaller) and, per group ``g``,

    .. math:: \mu = \tfrac1n\textstyle\sum_b x_b,\quad
       \Sigma = \tfrac1n (X-\mu)^\top (X-\mu),\quad
       W = D(\Lambda+\varepsilon I)^{-1/2}D^\top,\quad \hat x = W(x-\mu),

    with :math:`\Sigma = D\Lambda D^\top`. So the output covariance of every group
    is :math:`\approx I` (exactly :math:`\Lambda(\Lambda+\varepsilon)^{-1}`). Running
    estimates of :math:`\mu` and of the whole block-diagonal :math:`W` are updated
    with ``momentum`` (exponential moving average) and used in eval mode:
    :math:`\hat x = W_{run}(x-\mu_{run})`. State is kept per table (users and items
    separately; one state per CTR field). The estimator applies the eval-mode
    transform to whole tables when predicting, recommending and in
    ``get_embeddings()`` (``kind = "layer"``).

    Parameters
    ----------
    group_size : int, default=None
        Number of columns whitened together. ``None`` whitens all columns as one
        group (full ZCA whitening). Huang et al. default to ``d/2`` and use 16
        for wide ResNets; Hua et al. use 8 (128 dims in 16 groups).
    eps : float, default=30.0
        Added to the eigenvalues of each group covariance: with
        ``relative_eps=True`` (the default) in units of the group's mean
        variance (``eps * trace(Σ) / m``), so a table of standard deviation 0.01
        and the same table at 100 are whitened alike; with
        ``relative_eps=False`` as an absolute value, as in the authors' code
        (1e-5 in the PyTorch port, 1e-7 in Lua, on unit-scale activations).
        Small values whiten fully (``eps=1e-3``: covariance ≈ I); large ones
        whiten softly (mostly a rescaling that shrinks the dominant directions).
        The default is chosen by ``benchmarks/choose_defaults.py`` from
        validation figures only (the documentation's evidence page, "Defaults
        chosen on validation"): on the validation hold-outs of the
        MovieLens-100k training part (MF and LightGCN) and of the CiteULike
        training part (MF), no eps of the grid kept 99% of no regularizer's
        validation NDCG@20 (geometric mean), and eps=30 kept the most (0.922x:
        CiteULike MF 1.162x, MovieLens-100k MF 0.918x, LightGCN 0.735x; 3:
        0.546x, 300: 0.679x). It is soft because full whitening
        of CF embeddings during training costs most of their accuracy (figures
        read earlier on test splits pointed the same way and chose nothing).
        The right softness depends on the data, so tune ``eps`` on validation
        data.
    relative_eps : bool, default=True
        Whether ``eps`` is relative to the mean variance of each group (the
        scale-free default) or absolute.
    keep_scale : bool, default=False
        Multiply each group's whitened output by the root of its mean variance
        (``sqrt(trace(Σ) / m)``), so the output covariance is ≈ ``(trace(Σ)/m) I``
        instead of ≈ ``I``: whitening then flattens the spectrum but keeps the
        table's overall scale, and the estimator can still learn that scale (dot
        products of whitened rows are otherwise pinned at a fixed size, which
        starves a BPR loss of margin).
    momentum : float, default=0.1
        Weight of the current batch in the running mean and whitening matrix.
    tables : str or list of str, default=None
        Tables to whiten; ``None`` means every table of the batch.

    Attributes
    ----------
    states_ : torch.nn.ModuleDict
        Per table, buffers ``running_mean`` (d,), ``running_whitening`` (d, d)
        and ``num_batches_tracked``. Created by :meth:`setup` when the estimator
        passes ``info["tables"]``, otherwise at the first training batch.

    Notes
    -----
    Source: Huang, Yang, Lang, Deng, "Decorrelated Batch Normalization", CVPR
    2018 (princeton-vl/DecorrelatedBN, and the author's PyTorch port in
    IterNorm-pytorch): biased covariance, ZCA via eigendecomposition, ε on the
    eigenvalues, EMA (0.1) of mean and whitening matrix for inference, group
    whitening. Hua et al., ICCV 2021 ("On Feature Decorrelation in
    Self-Supervised Learning") use the same group whitening (shuffled groups,
    no running statistics) as the last layer before the loss. Deviations:
    no channel shuffling and no affine parameters; the backward pass of
    :math:`\Sigma^{-1/2}` uses the closed-form divided differences (Daleckii–Krein)
    in float64 instead of the SVD/eigh chain rule, which keeps gradients finite
    when eigenvalues repeat; the batch mean and whitening matrix are one
    autograd node whose backward is written out (:meth:`whitening`). A batch
    with fewer than 2 rows is transformed with the running statistics and
    does not update them. Rows repeated in a batch (a popular id) are whitened
    once and counted when at most two thirds of the rows are distinct; with
    more, grouping them would cost more than it saves.

    Examples
    --------
    >>> import torch
    >>> from skcollapse.regularizers import DecorrelatedBatchNorm
    >>> dbn = DecorrelatedBatchNorm(group_size=4, eps=1e-5)  # full whitening
    >>> out, _ = dbn({"item": torch.randn(512, 8) @ torch.randn(8, 8)})
    >>> cov = out["item"].T.cov(correction=0)  # identity within each group of 4
    >>> bool(torch.allclose(cov[:4, :4], torch.eye(4), atol=1e-3))
    True
    """

    kind = "layer"
    _parameter_constraints: ClassVar[dict] = {
        **Regularizer._parameter_constraints,
        "group_size": [None, int_interval(1, None, closed="left")],
        "eps": [real_interval(0, None, closed="neither")],
        "relative_eps": ["boolean"],
        "keep_scale": ["boolean"],
        "momentum": [real_interval(0, 1, closed="right")],
        "tables": TABLE_CONSTRAINTS["tables"],
    }

    def __init__(self, *, group_size=None, eps=30.0, relative_eps=True,
                 keep_scale=False, momentum=0.1, tables=None):
        super().__init__(**init_arguments(locals()))
        self.states_ = nn.ModuleDict()
        self._batch_stats = {}

    # -- state ------------------------------------------------------------------
    def setup(self, info):
        """Create the running statistics of the tables in ``info["tables"]``.

        Existing statistics of the same dimension are kept, so a warm-started
        or ``partial_fit`` continuation goes on from them (a fresh ``fit``
        builds a fresh regularizer).
        """
        self._batch_stats = {}
        dims = table_dims(info)
        names = table_names(self.tables) or tuple(dims)
        for name in names:
            if name not in dims:
                continue
            key = _key(name)
            old = dict(self.states_.items()).get(key)
            if old is None or old.running_mean.shape[0] != dims[name]:
                self.states_[key] = _RunningWhitening(dims[name])

    def _state(self, name, x):
        key = _key(name)
        if key not in self.states_:
            self.states_[key] = _RunningWhitening(x.shape[1]).to(x.device)
        state = self.states_[key]
        if state.running_mean.device != x.device:
            state.to(x.device)
        if state.running_mean.shape[0] != x.shape[1]:
            raise ValueError(
                f"table {name!r} has dim {x.shape[1]} but the whitening state was "
                f"built for dim {state.running_mean.shape[0]}."
            )
        return state

    def __getstate__(self):
        # the last batch's statistics carry an autograd graph: never pickle/copy them
        state = self.__dict__.copy()
        state["_batch_stats"] = {}
        state["_extra_ids"] = {}
        return state

    # -- maths ------------------------------------------------------------------
    def _groups(self, d):
        m = d if self.group_size is None else min(int(self.group_size), d)
        n_full, rest = divmod(d, m)
        return m, n_full, rest

    def _eps(self, S):
        """The eps of each covariance in ``S`` (``(..., m, m)``)."""
        if not self.relative_eps:
            return float(self.eps)
        mean_var = torch.diagonal(S, dim1=-2, dim2=-1).mean(-1).detach()
        # a constant group (zero variance) is left at zero, not divided by 0
        return float(self.eps) * mean_var.clamp_min(torch.finfo(S.dtype).tiny)

    def whitening(self, x: torch.Tensor, counts=None):
        """Batch mean ``(d,)`` and block-diagonal whitening matrix ``(d, d)``.

        Computed in float64; differentiable (also through the mean), as one
        autograd node with a closed-form backward. ``counts`` (optional)
        repeats row ``a`` of ``x`` ``counts[a]`` times.
        """
        return _Whitening.apply(x, counts, self)

    # -- the regularizer interface -----------------------------------------------
    def transform(self, embeddings, context=None):
        names = select_tables(embeddings, self.tables)
        out = dict(embeddings)
        self._extra_ids = {}
        for name in names:
            x = embeddings[name]
            self._extra_ids[name] = extra_ids_of(context, name)
            groups = None
            if self.training:
                groups = RowGroups.of(x, ids_of(context, name), LINEAR_GROUP_SHARE)
            if groups is None or groups.ids.numel() < 2:
                out[name] = self._whiten(name, x, update=True)
            else:  # statistics and output rows from the distinct rows, counted
                rows = self._whiten(name, groups.rows(x), update=True,
                                    counts=groups.counts)
                out[name] = groups.expand(rows)
        return out

    def _whiten(self, name, x, *, update, counts=None):
        state = self._state(name, x)
        if self.training and x.shape[0] >= 2:
            mu, W = self.whitening(x, counts)
            if update:
                self._batch_stats[name] = (mu, W)
                with torch.no_grad():
                    mom = float(self.momentum)
                    state.running_mean.mul_(1 - mom).add_(
                        mom * mu.to(state.running_mean)
                    )
                    state.running_whitening.mul_(1 - mom).add_(
                        mom * W.to(state.running_whitening)
                    )
                    state.num_batches_tracked += 1
            return _apply(x, mu, W)
        mu = state.running_mean.to(x)
        W = state.running_whitening.to(x)
        return (x - mu) @ W

    def transform_extra(self, name, x):
        """Whiten other rows of table ``name`` (e.g. negatives, or a whole table).

        In training mode the statistics of the current batch of ``name`` are used
        (so gradients flow through them); in eval mode the running statistics.
        Tables the regularizer does not act on are returned unchanged.
        """
        names = table_names(self.tables)
        if names is not None and name not in names:
            return x
        if self.training and name in self._batch_stats:
            mu, W = self._batch_stats[name]
            groups = RowGroups.of(x, getattr(self, "_extra_ids", {}).get(name),
                                  LINEAR_GROUP_SHARE)
            if groups is None:
                return _apply(x, mu, W)
            return groups.expand(_apply(groups.rows(x), mu, W))
        if _key(name) not in self.states_:
            if self.training:
                return x
            raise RuntimeError(
                f"DecorrelatedBatchNorm has no running statistics for table {name!r}; "
                "it has not seen a training batch of it."
            )
        state = self.states_[_key(name)]
        return (x - state.running_mean.to(x)) @ state.running_whitening.to(x)

    def extra_repr(self):
        return (
            f"group_size={self.group_size}, eps={self.eps}, "
            f"relative_eps={self.relative_eps}, momentum={self.momentum}"
        )
