"""Feature-interaction blocks of the CTR models (plain ``torch.nn`` modules).

Every block takes field embeddings of shape ``(batch, n_fields, K)`` (or their
flattening) and is fully vectorised over fields and field pairs.

References
----------
S. Rendle, "Factorization Machines", ICDM 2010.
Y. Qu et al., "Product-based Neural Networks for User Response Prediction", ICDM 2016.
J. Pan et al., "Field-weighted Factorization Machines", WWW 2018.
J. Lian et al., "xDeepFM", KDD 2018.
R. Wang et al., "DCN V2", WWW 2021.
K. Mao et al., "FinalMLP", AAAI 2023.

The blocks trust their constructor arguments (validated by the CTR estimators);
only combinations the estimators cannot see are checked here.
"""

from __future__ import annotations

from numbers import Integral

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "CIN",
    "BilinearFusion",
    "CrossNetV2",
    "FMInteraction",
    "FinalMLPStreams",
    "FwFMPooling",
    "InnerProduct",
    "MLPBlock",
]


def _as_units(hidden_units) -> tuple[int, ...]:
    """Layer widths as a tuple of ints (an int is one layer)."""
    if isinstance(hidden_units, Integral):
        return (int(hidden_units),)
    return tuple(int(u) for u in hidden_units)


class MLPBlock(nn.Sequential):
    """Stack of ``Linear -> BatchNorm1d -> ReLU -> Dropout`` layers.

    This is the ``MultiLayerPerceptron`` layer of the reference code of Guo et al.
    (ICML 2024); one such layer is the "non-linear projection" of a multi-embedding
    set.

    Parameters
    ----------
    input_dim : int
        Size of the input vectors.
    hidden_units : sequence of int
        Width of each layer; an empty sequence gives the identity.
    dropout : float, default=0.0
        Dropout probability after each ReLU.
    batch_norm : bool, default=True
        Insert ``BatchNorm1d`` after each ``Linear``.
    output_layer : bool, default=False
        Append a final ``Linear(last, 1)`` (the logit).
    """

    def __init__(
        self, input_dim, hidden_units, *, dropout=0.0, batch_norm=True,
        output_layer=False,
    ):
        units = _as_units(hidden_units)
        layers = []
        dim = int(input_dim)
        for u in units:
            layers.append(nn.Linear(dim, u))
            if batch_norm:
                layers.append(nn.BatchNorm1d(u))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(float(dropout)))
            dim = u
        if output_layer:
            layers.append(nn.Linear(dim, 1))
        super().__init__(*layers)
        self.output_dim = 1 if output_layer else dim


class FMInteraction(nn.Module):
    """Second-order FM term ``sum_{i<j} <e_i, e_j>`` in O(N K).

    ``0.5 * ((sum_i e_i)^2 - sum_i e_i^2)`` summed over the embedding dimension
    (``reduce_sum=True``, output ``(batch,)``) or kept per dimension
    (``(batch, K)``, the bi-interaction pooling of NFM).
    """

    def __init__(self, *, reduce_sum=True):
        super().__init__()
        self.reduce_sum = reduce_sum

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        square_of_sum = e.sum(dim=1).pow(2)
        sum_of_square = e.pow(2).sum(dim=1)
        out = 0.5 * (square_of_sum - sum_of_square)
        return out.sum(dim=1) if self.reduce_sum else out


def _pair_indices(n_fields):
    return torch.triu_indices(n_fields, n_fields, offset=1)


class InnerProduct(nn.Module):
    """All pairwise inner products ``<e_i, e_j>``, ``i < j``: ``(batch, N(N-1)/2)``.

    Pairs are ordered row-major (``(0,1), (0,2), ..., (N-2,N-1)``). Computed as one
    batched Gram matrix ``E E^T`` and a gather of its strict upper triangle.
    """

    def __init__(self, n_fields):
        super().__init__()
        self.n_fields = int(n_fields)
        idx = _pair_indices(self.n_fields)
        self.register_buffer("flat_index", idx[0] * self.n_fields + idx[1],
                             persistent=False)
        self.output_dim = int(idx.shape[1])

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        gram = torch.bmm(e, e.transpose(1, 2)).flatten(1)
        return gram.index_select(1, self.flat_index)


class FwFMPooling(nn.Module):
    """Field-weighted bi-interaction pooling ``sum_{i,j} r_ij (e_i * e_j)``: ``(batch, K)``.

    The neural FwFM of Guo et al. pools field pairs into a ``K``-vector, each pair
    weighted by a learned scalar ``r_ij`` (Pan et al., 2018). Computed as
    ``sum_i e_i * (R e)_i``, i.e. one batched matrix product instead of a loop
    over pairs.

    Parameters
    ----------
    n_fields : int
        Number of fields ``N``.
    pooling : {"full", "pairs"}, default="full"
        ``"full"``: ``R`` is the full, unconstrained ``N x N`` matrix, so the
        pooling includes both orders ``r_ij``, ``r_ji`` of a pair and the self
        terms ``r_ii e_i * e_i``. This is the ``NFwFM`` layer of the reference
        code of Guo et al. (``thuml/Multi-Embedding``, ``torchfm/model/fwfm.py``).
        ``"pairs"``: only the pairs ``i < j`` (``R`` strictly upper triangular),
        the FwFM of Pan et al.

    Attributes
    ----------
    weight : Parameter of shape (N, N)
        ``R`` before masking, initialised ``N(0, 1)`` as in the reference code.
    """

    def __init__(self, n_fields, *, pooling="full"):
        super().__init__()
        if pooling not in ("full", "pairs"):
            raise ValueError(
                f"pooling must be 'full' or 'pairs', got {pooling!r}."
            )
        self.n_fields = int(n_fields)
        self.pooling = pooling
        self.weight = nn.Parameter(torch.empty(self.n_fields, self.n_fields))
        mask = torch.ones(self.n_fields, self.n_fields)
        if pooling == "pairs":
            mask = mask.triu(1)
        self.register_buffer("mask", mask, persistent=False)
        nn.init.normal_(self.weight, std=1.0)

    def pair_weights(self) -> torch.Tensor:
        """The effective ``(N, N)`` weight matrix ``R`` (``R[i, j] = r_ij``).

        Full for ``pooling="full"``, strictly upper triangular for ``"pairs"``.
        """
        if self.pooling == "full":
            return self.weight
        return self.weight * self.mask

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        re = torch.matmul(self.pair_weights(), e)  # (B, N, K)
        return (e * re).sum(dim=1)


class CIN(nn.Module):
    """Compressed Interaction Network of xDeepFM (without its output layer).

    Layer ``l`` forms all Hadamard products of the ``N`` input fields with the
    ``H_{l-1}`` feature maps of the previous layer and compresses them to
    ``H_l`` maps with a ``1x1`` convolution followed by ReLU; each layer's maps are
    sum-pooled over the embedding dimension and concatenated
    (``(batch, sum(layer_sizes))``).

    Parameters
    ----------
    n_fields : int
        Number of fields ``N``.
    layer_sizes : sequence of int, default=(16, 16)
        Feature maps per layer.
    split_half : bool, default=False
        Feed only half of each hidden layer's maps forward and pool the other half
        (xDeepFM's option; Guo et al. use ``False``).
    """

    def __init__(self, n_fields, layer_sizes=(16, 16), *, split_half=False):
        super().__init__()
        sizes = _as_units(layer_sizes)
        self.n_fields = int(n_fields)
        self.split_half = bool(split_half)
        self.convs = nn.ModuleList()
        prev, out_dim = self.n_fields, 0
        for i, size in enumerate(sizes):
            self.convs.append(nn.Conv1d(self.n_fields * prev, size, kernel_size=1))
            last = i == len(sizes) - 1
            if self.split_half and not last:
                if size % 2:
                    raise ValueError(
                        "with split_half=True every hidden CIN layer size must be "
                        f"even, got {sizes!r}."
                    )
                size //= 2
            prev = size
            out_dim += size
        self.output_dim = out_dim

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        batch, n, k = e.shape
        x0 = e.unsqueeze(2)  # (B, N, 1, K)
        h = e
        pooled = []
        for i, conv in enumerate(self.convs):
            z = (x0 * h.unsqueeze(1)).reshape(batch, n * h.shape[1], k)
            z = F.relu(conv(z))
            if self.split_half and i != len(self.convs) - 1:
                half = z.shape[1] // 2
                h, out = z[:, :half], z[:, half:]
            else:
                h = out = z
            pooled.append(out.sum(dim=2))
        return torch.cat(pooled, dim=1)


class CrossNetV2(nn.Module):
    """Full-rank cross network of DCN-V2: ``x_{l+1} = x_0 * (W_l x_l + b_l) + x_l``.

    Parameters
    ----------
    input_dim : int
        ``D = n_fields * K``, the flattened embedding size.
    n_layers : int
        Number of cross layers.

    Attributes
    ----------
    weights : ParameterList of (D, D)
        ``W_l`` (Xavier-uniform initialised, as in the reference code).
    biases : ParameterList of (D,)
        ``b_l`` (zeros).
    """

    def __init__(self, input_dim, n_layers):
        super().__init__()
        self.input_dim = int(input_dim)
        self.n_layers = n_layers = int(n_layers)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(self.input_dim, self.input_dim))
             for _ in range(n_layers)]
        )
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.zeros(self.input_dim)) for _ in range(n_layers)]
        )
        for w in self.weights:
            nn.init.xavier_uniform_(w)
        self.output_dim = self.input_dim

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for w, b in zip(self.weights, self.biases):
            x = torch.addcmul(x, x0, F.linear(x, w, b))
        return x


class FinalMLPStreams(nn.Module):
    """The two MLP streams of FinalMLP, each on the flattened embeddings.

    Output ``(batch, 2, H)``: stream outputs stacked on dimension 1. The
    feature-selection gate of the original model is disabled, as in Guo et al.
    """

    def __init__(self, input_dim, hidden_units, *, dropout=0.0, batch_norm=True):
        super().__init__()
        self.stream1 = MLPBlock(input_dim, hidden_units, dropout=dropout,
                                batch_norm=batch_norm)
        self.stream2 = MLPBlock(input_dim, hidden_units, dropout=dropout,
                                batch_norm=batch_norm)
        self.output_dim = self.stream1.output_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.stream1(x), self.stream2(x)], dim=1)


class BilinearFusion(nn.Module):
    """FinalMLP fusion of two streams: ``w1.a + w2.b + a^T W b`` (one head).

    ``W`` starts at zero, so the model starts as the sum of two linear heads.
    """

    def __init__(self, hidden_dim):
        super().__init__()
        self.w1 = nn.Linear(hidden_dim, 1)
        self.w2 = nn.Linear(hidden_dim, 1, bias=False)
        self.w12 = nn.Parameter(torch.zeros(hidden_dim, hidden_dim))

    def forward(self, streams: torch.Tensor) -> torch.Tensor:
        a, b = streams[:, 0], streams[:, 1]
        bilinear = ((a @ self.w12) * b).sum(dim=1, keepdim=True)
        return (self.w1(a) + self.w2(b) + bilinear).squeeze(1)
