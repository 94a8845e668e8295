"""CTR models with single or multiple embedding sets (Guo et al., ICML 2024).

Every model follows the multi-embedding (ME) recipe of the paper: with ``M``
embedding sets, set ``m`` has its own tables ``E^(m)``, its own interaction
module ``I^(m)`` and its own non-linear projection (one
``Linear -> BatchNorm -> ReLU -> Dropout`` layer of width ``hidden_units[0]``); the
``M`` set outputs are averaged and a shared head ``F`` (the remaining MLP layers
and the output layer) gives the logit::

    h = mean_m P^(m)(I^(m)(e^(m)_1, ..., e^(m)_N)),   logit = F(h)

With ``M = 1`` every model is exactly its single-embedding (SE) form: the
projection layer is then simply the first layer of the SE model's MLP. Per-model
forms (reference code ``thuml/Multi-Embedding``, ``torchfm/model``):

========  ==============================================  =========================
model     per set                                         shared
========  ==============================================  =========================
FM        FM second-order term                            first-order term, mean
DNN       flatten -> MLP(h0)                              MLP(h1..) -> logit
IPNN      M=1: flatten ++ inner products -> MLP(h0)       MLP(h1..) -> logit
          M>1: inner products -> MLP(h0)
NFwFM     FwFM pooling over the full N x N pair weights   MLP(h1..) -> logit
          (self terms included) -> BN -> Dropout
          -> MLP(h0)
DeepFM    FM second-order term; flatten -> MLP(h0)        first-order term +
                                                          FM mean + MLP(h1..)(MLP
                                                          mean)
xDeepFM   CIN; flatten -> MLP(h0)                         Linear(CIN mean) +
                                                          MLP(h1..)(MLP mean)
DCNv2     flatten -> CrossNetV2 -> MLP(h0)                MLP(h1..) -> logit
FinalMLP  two streams MLP(h0..) each                      bilinear fusion of the
                                                          set-averaged streams
========  ==============================================  =========================

FM has no non-linear projection: its interaction is bilinear, so its ME form is
exactly an SE FM of dimension ``M * K`` (scaled by ``1/sqrt(M)``), which is the
paper's point that ME only helps with non-linear interactions.

Parameter growth
----------------
The paper's scales "2x, 3x, 4x, 10x" (SE of size ``s*K`` against ME with
``M = s`` sets of size ``K``) match the *embedding* parameters exactly: both
have ``s * R * K`` of them, with ``R = sum(field_dims) + N`` table rows (one
OOV row per field). The interaction and projection parameters grow differently
(``N`` fields, first MLP width ``h0``, ``L`` cross layers, CIN sizes ``H1, H2``;
batch-norm and bias terms left out):

=========  ==========================================  ===========================
model      SE of size ``s*K``, beyond embeddings        ME ``s x K``, beyond
                                                        embeddings
=========  ==========================================  ===========================
DNN        ``s*N*K*h0`` (linear in ``s``)              ``s*N*K*h0`` (same)
DeepFM     as DNN, plus the first-order weights ``R``  as DNN, plus ``R``
IPNN       ``(s*N*K + N(N-1)/2)*h0``                   ``s*(N(N-1)/2)*h0``
NFwFM      ``N^2 + s*K*h0``                            ``s*(N^2 + K*h0)``
xDeepFM    ``N^2*H1 + N*H1*H2 + s*N*K*h0``             ``s*(N^2*H1 + N*H1*H2 +
                                                        N*K*h0)``
DCNv2      ``L*(s*N*K)^2 + s*N*K*h0`` (quadratic)      ``s*(L*(N*K)^2 + N*K*h0)``
FinalMLP   ``2*(s*N*K*h0 + h0*h1 + ...)``              ``s*2*(N*K*h0 + h0*h1 +
                                                        ...)``
=========  ==========================================  ===========================

So at equal embedding budget ME has fewer DCNv2 parameters (``s`` instead of
``s^2`` times the cross network) and more of everything that SE shares
(CIN, FwFM weights, the streams of FinalMLP, the first MLP layer of IPNN's
products). The reference code's SE IPNN at 20/30/40/100 builds an IPNN of size
10 (a copy-paste slip in its ``main.py``); skcollapse builds the size asked.

All models return logits of shape ``(batch,)``. ``forward(x, embeddings=None)``
accepts precomputed (possibly regularizer-transformed) embeddings of shape
``(M, batch, n_fields, K)`` as produced by :meth:`CTRModel.embed`.
"""

from __future__ import annotations

import torch
from torch import nn

from skcollapse.nn._ctr_blocks import (
    CIN,
    BilinearFusion,
    CrossNetV2,
    FinalMLPStreams,
    FMInteraction,
    FwFMPooling,
    InnerProduct,
    MLPBlock,
    _as_units,
)
from skcollapse.nn._ctr_embedding import FieldEmbedding, FieldLinear

__all__ = [
    "DNN",
    "FM",
    "IPNN",
    "MLP_BATCH_NORM",
    "MLP_DROPOUT",
    "MLP_HIDDEN_UNITS",
    "CTRModel",
    "DCNv2",
    "DeepFM",
    "FinalMLP",
    "NFwFM",
    "XDeepFM",
]

#: Guo et al.'s MLP (two layers of 400 units, dropout 0.2, batch normalisation):
#: the default of every model below that has an MLP, and of the classifiers of
#: :mod:`skcollapse.recommenders` built on them (signatures and docstrings).
MLP_HIDDEN_UNITS = (400, 400)
MLP_DROPOUT = 0.2
MLP_BATCH_NORM = True


class CTRModel(nn.Module):
    """Base of the CTR models: one :class:`FieldEmbedding` with ``M`` sets.

    Subclasses build ``self.set_blocks`` (one module per set mapping
    ``(batch, n_fields, K)`` to a feature tensor) and ``self.head`` (mapping the
    set-averaged features to logits), or override :meth:`forward_embedded`.

    Parameters
    ----------
    field_dims : sequence of int
        Known categories per field.
    embedding_dim : int, default=10
        ``K``.
    n_embedding_sets : int, default=1
        ``M``; 1 is the single-embedding model.
    """

    def __init__(self, field_dims, embedding_dim=10, n_embedding_sets=1):
        super().__init__()
        self.embedding = FieldEmbedding(
            field_dims, embedding_dim, n_sets=n_embedding_sets
        )
        self.field_dims = self.embedding.field_dims
        self.n_fields = self.embedding.n_fields
        self.embedding_dim = self.embedding.embedding_dim
        self.n_embedding_sets = self.embedding.n_sets

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Batch embeddings ``(M, batch, n_fields, K)`` of an integer field matrix."""
        return self.embedding(x)

    def set_features(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Per-set interaction + projection, averaged over the sets."""
        feats = [block(embeddings[m]) for m, block in enumerate(self.set_blocks)]
        if len(feats) == 1:
            return feats[0]
        return torch.stack(feats, dim=0).mean(dim=0)

    def forward_embedded(self, x, embeddings):
        return self.head(self.set_features(embeddings)).reshape(-1)

    def forward(self, x, embeddings=None):
        if embeddings is None:
            embeddings = self.embed(x)
        return self.forward_embedded(x, embeddings)

    def sub_embedding_maps(self, embedding_set: int = 0) -> torch.Tensor:
        """Linear maps ``T[i, j]`` giving field ``i``'s sub-embedding ``E_i->j``.

        Models whose interaction has per-field-pair structure return a tensor
        ``(n_fields, n_fields, P, K)``: field ``i``'s table as seen by field
        ``j``'s interaction is ``E_i @ T[i, j].T`` (Guo et al., §4). Models
        without such structure (DNN, FinalMLP, FM, DeepFM) raise ``TypeError``.
        """
        raise TypeError(
            f"{type(self).__name__} has no per-field-pair interaction, so no "
            "sub-embeddings E_i->j; DCNv2, NFwFM, XDeepFM and IPNN have them."
        )

    def _check_set(self, embedding_set):
        if not 0 <= embedding_set < self.n_embedding_sets:
            raise ValueError(
                f"embedding_set must be in [0, {self.n_embedding_sets}), got "
                f"{embedding_set!r}."
            )

    # helpers for subclasses ----------------------------------------------------
    def _shared_head(self, hidden_units, dropout, batch_norm):
        return MLPBlock(hidden_units[0], hidden_units[1:], dropout=dropout,
                        batch_norm=batch_norm, output_layer=True)

    def _build_mlp(self, hidden_units, dropout, batch_norm):
        """``set_blocks``: per set ``flatten -> MLP(h0)``; ``head``: ``MLP(h1..) -> logit``.

        The deep part of DNN, DeepFM and xDeepFM.
        """
        units = _as_units(hidden_units)
        d = self.n_fields * self.embedding_dim
        self.set_blocks = nn.ModuleList(
            nn.Sequential(_Flatten(), MLPBlock(d, units[:1], dropout=dropout,
                                               batch_norm=batch_norm))
            for _ in range(self.n_embedding_sets)
        )
        self.head = self._shared_head(units, dropout, batch_norm)


class _Flatten(nn.Module):
    def forward(self, e):
        return e.flatten(1)


class FM(CTRModel):
    """Factorization machine: ``b + sum_f w[x_f] + mean_m sum_{i<j} <e_i^m, e_j^m>``.

    The first-order term is shared by all sets.
    """

    def __init__(self, field_dims, embedding_dim=10, n_embedding_sets=1):
        super().__init__(field_dims, embedding_dim, n_embedding_sets)
        self.linear = FieldLinear(field_dims)
        self.fm = FMInteraction(reduce_sum=True)

    def forward_embedded(self, x, embeddings):
        second = self.fm(embeddings.flatten(0, 1)).view(self.n_embedding_sets, -1)
        return self.linear(x) + second.mean(dim=0)


class DNN(CTRModel):
    """Embedding + MLP. Per set: ``flatten -> MLP(h0)``; shared ``MLP(h1..) -> logit``.

    Parameters
    ----------
    field_dims, embedding_dim, n_embedding_sets
        See :class:`CTRModel`.
    hidden_units : sequence of int, default=(400, 400)
        MLP widths (``MLP_HIDDEN_UNITS``); the first layer is per set
        (``h0``), the others are shared (``h1..``).
    dropout : float, default=0.2
        Dropout after every hidden layer (``MLP_DROPOUT``).
    batch_norm : bool, default=True
        Batch normalisation in every hidden layer (``MLP_BATCH_NORM``).

    The other models with an MLP take these three parameters too.
    """

    def __init__(self, field_dims, embedding_dim=10, n_embedding_sets=1, *,
                 hidden_units=MLP_HIDDEN_UNITS, dropout=MLP_DROPOUT,
                 batch_norm=MLP_BATCH_NORM):
        super().__init__(field_dims, embedding_dim, n_embedding_sets)
        self._build_mlp(hidden_units, dropout, batch_norm)


class _ProductSet(nn.Module):
    def __init__(self, n_fields, embedding_dim, unit, dropout, batch_norm,
                 concat_embeddings):
        super().__init__()
        self.product = InnerProduct(n_fields)
        self.concat_embeddings = concat_embeddings
        d = self.product.output_dim + (n_fields * embedding_dim if concat_embeddings
                                       else 0)
        self.input_dim = d
        self.mlp = MLPBlock(d, (unit,), dropout=dropout, batch_norm=batch_norm)

    def forward(self, e):
        p = self.product(e)
        if self.concat_embeddings:
            p = torch.cat([e.flatten(1), p], dim=1)
        return self.mlp(p)


class IPNN(CTRModel):
    """Inner-product neural network.

    Per set: ``[flatten(e) ++] (<e_i, e_j>)_{i<j} -> MLP(h0)``; shared
    ``MLP(h1..) -> logit``.

    Parameters
    ----------
    field_dims, embedding_dim, n_embedding_sets
        See :class:`CTRModel`.
    hidden_units, dropout, batch_norm
        See :class:`DNN`.
    concat_embeddings : bool or "auto", default="auto"
        Feed the flattened embeddings next to the inner products. ``"auto"``
        follows the reference code of Guo et al.: the SE IPNN (one set)
        concatenates them, as Qu et al.'s IPNN
        (``ProductNeuralNetworkModel``); the ME-IPNN (``M > 1``) feeds the
        products only (``MultiPNNModel``).
    """

    def __init__(self, field_dims, embedding_dim=10, n_embedding_sets=1, *,
                 hidden_units=MLP_HIDDEN_UNITS, dropout=MLP_DROPOUT,
                 batch_norm=MLP_BATCH_NORM, concat_embeddings="auto"):
        super().__init__(field_dims, embedding_dim, n_embedding_sets)
        if isinstance(concat_embeddings, str):
            if concat_embeddings != "auto":
                raise ValueError(
                    "concat_embeddings must be True, False or 'auto', got "
                    f"{concat_embeddings!r}."
                )
            concat_embeddings = self.n_embedding_sets == 1
        concat_embeddings = bool(concat_embeddings)
        if self.n_fields < 2 and not concat_embeddings:
            raise ValueError(
                "IPNN without concat_embeddings needs at least 2 fields; got "
                f"n_features = {self.n_fields}."
            )
        self.concat_embeddings = concat_embeddings
        units = _as_units(hidden_units)
        self.set_blocks = nn.ModuleList(
            _ProductSet(self.n_fields, self.embedding_dim, units[0], dropout,
                        batch_norm, concat_embeddings)
            for _ in range(self.n_embedding_sets)
        )
        self.head = self._shared_head(units, dropout, batch_norm)

    def sub_embedding_maps(self, embedding_set: int = 0) -> torch.Tensor:
        """``T[i, j] = I`` for ``i != j``, 0 on the diagonal: ``<e_i, e_j>`` has no
        weights, so field ``i`` shows every other field its own embedding."""
        self._check_set(embedding_set)
        n, k = self.n_fields, self.embedding_dim
        w = self.embedding.weight
        eye = torch.eye(k, dtype=w.dtype, device=w.device)
        off = 1 - torch.eye(n, dtype=w.dtype, device=w.device)
        return off[:, :, None, None] * eye


class NFwFM(CTRModel):
    """Neural field-weighted FM.

    Per set: ``FwFM pooling (K) -> BN -> Dropout -> MLP(h0)``; shared
    ``MLP(h1..) -> logit``. Guo et al. use ``K = 50`` for this model.

    Parameters
    ----------
    field_dims, embedding_dim, n_embedding_sets
        See :class:`CTRModel`.
    hidden_units, dropout, batch_norm
        See :class:`DNN`.
    pooling : {"full", "pairs"}, default="full"
        ``"full"`` pools ``sum_{i,j} r_ij e_i * e_j`` over the full ``N x N``
        weight matrix, self terms ``r_ii e_i * e_i`` included, as the reference
        code of Guo et al.; ``"pairs"`` pools the pairs ``i < j`` only (the
        FwFM of Pan et al.). See :class:`~skcollapse.nn.FwFMPooling`.
    """

    def __init__(self, field_dims, embedding_dim=50, n_embedding_sets=1, *,
                 hidden_units=MLP_HIDDEN_UNITS, dropout=MLP_DROPOUT,
                 batch_norm=MLP_BATCH_NORM, pooling="full"):
        super().__init__(field_dims, embedding_dim, n_embedding_sets)
        if self.n_fields < 2 and pooling == "pairs":
            raise ValueError(
                "NFwFM with pooling='pairs' needs at least 2 fields to form field "
                f"pairs; got n_features = {self.n_fields}."
            )
        units = _as_units(hidden_units)
        k = self.embedding_dim
        blocks = []
        for _ in range(self.n_embedding_sets):
            layers = [FwFMPooling(self.n_fields, pooling=pooling)]
            if batch_norm:
                layers.append(nn.BatchNorm1d(k))
            if dropout > 0:
                layers.append(nn.Dropout(float(dropout)))
            layers.append(MLPBlock(k, units[:1], dropout=dropout,
                                   batch_norm=batch_norm))
            blocks.append(nn.Sequential(*layers))
        self.set_blocks = nn.ModuleList(blocks)
        self.head = self._shared_head(units, dropout, batch_norm)

    def sub_embedding_maps(self, embedding_set: int = 0) -> torch.Tensor:
        """``T[i, j] = (r_ij + r_ji) I`` for ``i != j`` and ``r_ii I`` on the
        diagonal: the pooled term ``e_i * e_j`` carries both weights of the pair."""
        self._check_set(embedding_set)
        r = self.set_blocks[embedding_set][0].pair_weights()
        n = self.n_fields
        eye_n = torch.eye(n, dtype=r.dtype, device=r.device)
        scale = (r + r.T) * (1 - eye_n) + r * eye_n
        eye = torch.eye(self.embedding_dim, dtype=r.dtype, device=r.device)
        return scale[:, :, None, None] * eye


class DeepFM(CTRModel):
    """DeepFM (Guo et al., IJCAI 2017): an FM and a DNN on shared embeddings.

    ``logit = y_FM + y_DNN`` with ``y_FM = b + sum_f w[x_f] + sum_{i<j}
    <e_i, e_j>`` (first-order term plus the pairwise inner products, computed
    as ``0.5 * sum_k[(sum_i e_ik)^2 - sum_i e_ik^2]``) and ``y_DNN`` the MLP on
    the flattened embeddings, both reading the same field embeddings.

    With ``M`` embedding sets each set has its own FM second-order term and its
    own non-linear projection ``flatten -> MLP(h0)``; the FM terms are averaged
    (as in :class:`FM`), the projections are averaged and fed to the shared
    ``MLP(h1..) -> logit`` (as in :class:`DNN` and the deep part of
    :class:`XDeepFM`); the first-order term is shared. So ``M = 1`` is exactly
    the DeepFM of the paper, and the deep part is the multi-embedding DNN of
    Guo et al. (ICML 2024). Feeding the concatenation of all sets to one MLP
    instead would be an SE DNN of width ``M * K`` (its first layer is linear in
    the concatenation), the form the ICML paper shows gains nothing.

    Parameters
    ----------
    field_dims, embedding_dim, n_embedding_sets
        See :class:`CTRModel`.
    hidden_units, dropout, batch_norm
        See :class:`DNN`.

    References
    ----------
    H. Guo, R. Tang, Y. Ye, Z. Li and X. He, "DeepFM: A Factorization-Machine
    based Neural Network for CTR Prediction", IJCAI 2017.
    """

    def __init__(self, field_dims, embedding_dim=10, n_embedding_sets=1, *,
                 hidden_units=MLP_HIDDEN_UNITS, dropout=MLP_DROPOUT,
                 batch_norm=MLP_BATCH_NORM):
        super().__init__(field_dims, embedding_dim, n_embedding_sets)
        self.linear = FieldLinear(field_dims)
        self.fm = FMInteraction(reduce_sum=True)
        self._build_mlp(hidden_units, dropout, batch_norm)

    def fm_logit(self, x, embeddings):
        """The FM component ``(batch,)``: first-order term + mean over sets of
        ``sum_{i<j} <e_i^m, e_j^m>``."""
        second = self.fm(embeddings.flatten(0, 1)).view(self.n_embedding_sets, -1)
        return self.linear(x) + second.mean(dim=0)

    def dnn_logit(self, embeddings):
        """The DNN component ``(batch,)``."""
        return self.head(self.set_features(embeddings)).reshape(-1)

    def forward_embedded(self, x, embeddings):
        return self.fm_logit(x, embeddings) + self.dnn_logit(embeddings)


class XDeepFM(CTRModel):
    """xDeepFM without the first-order term, as in Guo et al.

    Per set: ``CIN`` and ``flatten -> MLP(h0)``. Shared: a linear layer on the
    set-averaged CIN output plus ``MLP(h1..) -> logit`` on the set-averaged MLP
    output; the two logits are summed.

    Parameters
    ----------
    field_dims, embedding_dim, n_embedding_sets
        See :class:`CTRModel`.
    cin_layer_sizes : sequence of int, default=(16, 16)
    hidden_units, dropout, batch_norm
        See :class:`DNN`.
    split_half : bool, default=False
    """

    def __init__(self, field_dims, embedding_dim=10, n_embedding_sets=1, *,
                 cin_layer_sizes=(16, 16), hidden_units=MLP_HIDDEN_UNITS,
                 dropout=MLP_DROPOUT, batch_norm=MLP_BATCH_NORM, split_half=False):
        super().__init__(field_dims, embedding_dim, n_embedding_sets)
        self.cins = nn.ModuleList(
            CIN(self.n_fields, cin_layer_sizes, split_half=split_half)
            for _ in range(self.n_embedding_sets)
        )
        self.cin_out = nn.Linear(self.cins[0].output_dim, 1)
        self._build_mlp(hidden_units, dropout, batch_norm)

    def forward_embedded(self, x, embeddings):
        cin = [c(embeddings[m]) for m, c in enumerate(self.cins)]
        cin = cin[0] if len(cin) == 1 else torch.stack(cin, dim=0).mean(dim=0)
        deep = self.head(self.set_features(embeddings))
        return (self.cin_out(cin) + deep).reshape(-1)

    def sub_embedding_maps(self, embedding_set: int = 0) -> torch.Tensor:
        """From the first CIN layer ``z_h = sum_{i,j} W_hij e_i * e_j``:
        ``T[i, j] = c ⊗ I`` with ``c_h = W_hij + W_hji`` (``W_hii`` on the
        diagonal), shape ``(n_fields, n_fields, H1 * K, K)``."""
        self._check_set(embedding_set)
        n, k = self.n_fields, self.embedding_dim
        conv = self.cins[embedding_set].convs[0]
        w = conv.weight[:, :, 0].reshape(conv.out_channels, n, n)  # (H, i, j)
        eye_n = torch.eye(n, dtype=w.dtype, device=w.device)
        c = (w + w.transpose(1, 2)) * (1 - eye_n) + w * eye_n  # (H, i, j)
        eye = torch.eye(k, dtype=w.dtype, device=w.device)
        t = c.permute(1, 2, 0)[:, :, :, None, None] * eye  # (i, j, H, K, K)
        return t.reshape(n, n, conv.out_channels * k, k)


class _CrossSet(nn.Module):
    def __init__(self, d, n_layers, unit, dropout, batch_norm):
        super().__init__()
        self.cross = CrossNetV2(d, n_layers)
        self.mlp = MLPBlock(d, (unit,), dropout=dropout, batch_norm=batch_norm)

    def forward(self, e):
        return self.mlp(self.cross(e.flatten(1)))


class DCNv2(CTRModel):
    """DCN-V2, stacked form (cross network, then MLP), as in Guo et al.

    Per set: ``flatten -> CrossNetV2 (full-rank W) -> MLP(h0)``; shared
    ``MLP(h1..) -> logit``.

    Parameters
    ----------
    field_dims, embedding_dim, n_embedding_sets
        See :class:`CTRModel`.
    n_cross_layers : int, default=4
    hidden_units, dropout, batch_norm
        See :class:`DNN`.
    """

    def __init__(self, field_dims, embedding_dim=10, n_embedding_sets=1, *,
                 n_cross_layers=4, hidden_units=MLP_HIDDEN_UNITS, dropout=MLP_DROPOUT,
                 batch_norm=MLP_BATCH_NORM):
        super().__init__(field_dims, embedding_dim, n_embedding_sets)
        units = _as_units(hidden_units)
        d = self.n_fields * self.embedding_dim
        self.set_blocks = nn.ModuleList(
            _CrossSet(d, n_cross_layers, units[0], dropout, batch_norm)
            for _ in range(self.n_embedding_sets)
        )
        self.head = self._shared_head(units, dropout, batch_norm)

    def sub_embeddings(self, field: int, embedding_set: int = 0) -> torch.Tensor:
        """Field ``field``'s table projected by the first cross layer.

        In the first cross layer field ``j`` of the output receives
        ``e_j * sum_i W_{j,i} e_i``; ``W_{j,i} e_i`` is field ``i``'s
        *sub-embedding* for its interaction with field ``j`` (Guo et al., §4).
        Returns a tensor ``(n_fields, field_dims[field], K)`` whose slice ``j`` is
        ``E_field @ W_{j,field}^T``.
        """
        cross = self.set_blocks[embedding_set].cross
        if cross.n_layers == 0:
            raise ValueError("sub-embeddings need n_cross_layers >= 1.")
        k = self.embedding_dim
        table = self.embedding.table(field, embedding_set)  # (card, K)
        w = cross.weights[0][:, field * k : (field + 1) * k]  # (N*K, K)
        w = w.reshape(self.n_fields, k, k)  # block j: W_{j, field}
        return torch.einsum("ck,jdk->jcd", table, w)

    def sub_embedding_maps(self, embedding_set: int = 0) -> torch.Tensor:
        """``T[i, j] = W_{j,i}``, the ``K x K`` block of the first cross layer's
        ``W`` that maps field ``i`` of the input into field ``j`` of the output."""
        self._check_set(embedding_set)
        cross = self.set_blocks[embedding_set].cross
        if cross.n_layers == 0:
            raise ValueError("sub-embeddings need n_cross_layers >= 1.")
        n, k = self.n_fields, self.embedding_dim
        w = cross.weights[0].reshape(n, k, n, k)  # (j, out, i, in)
        return w.permute(2, 0, 1, 3)  # (i, j, out, in)


class _FinalMLPSet(nn.Module):
    def __init__(self, d, units, dropout, batch_norm):
        super().__init__()
        self.streams = FinalMLPStreams(d, units, dropout=dropout,
                                       batch_norm=batch_norm)

    def forward(self, e):
        return self.streams(e.flatten(1))


class FinalMLP(CTRModel):
    """FinalMLP: two MLP streams and a bilinear fusion (feature gating disabled).

    Per set: both streams ``MLP(hidden_units)`` on the flattened embeddings; the
    stream outputs are averaged over sets and fused by :class:`BilinearFusion`.

    Parameters
    ----------
    field_dims, embedding_dim, n_embedding_sets
        See :class:`CTRModel`.
    hidden_units, dropout, batch_norm
        See :class:`DNN`.
    """

    def __init__(self, field_dims, embedding_dim=10, n_embedding_sets=1, *,
                 hidden_units=MLP_HIDDEN_UNITS, dropout=MLP_DROPOUT,
                 batch_norm=MLP_BATCH_NORM):
        super().__init__(field_dims, embedding_dim, n_embedding_sets)
        units = _as_units(hidden_units)
        d = self.n_fields * self.embedding_dim
        self.set_blocks = nn.ModuleList(
            _FinalMLPSet(d, units, dropout, batch_norm)
            for _ in range(self.n_embedding_sets)
        )
        self.head = BilinearFusion(units[-1])
