"""One embedding store for all categorical fields of a CTR model.

A CTR input is an integer field matrix ``x`` of shape ``(batch, n_fields)``; column
``f`` holds a category code of field ``f`` in ``[0, field_dims[f])``. Every field
gets ``field_dims[f] + 1`` rows in a single table: its known codes followed by one
*out-of-vocabulary* (OOV) row that receives every negative or too-large code (for
example the ``-1`` of ``OrdinalEncoder(handle_unknown="use_encoded_value",
unknown_value=-1)``). Fields sit one after the other at fixed offsets, as in the
reference implementation of Guo et al. (one ``nn.Embedding(sum(field_dims), K)``
with offsets), so a whole batch of all fields is one gather.

With ``n_sets = M > 1`` (multi-embedding) the table holds ``M`` independent copies
of this layout stacked on top of each other (set ``m`` occupies rows
``[m * n_rows, (m + 1) * n_rows)``). One gather with ``M`` shifted index grids
returns all sets at once as a ``(M, batch, n_fields, K)`` tensor whose set slices
are contiguous.

The modules trust their constructor arguments: the CTR estimators validate them
(``_parameter_constraints``) and derive ``field_dims`` from the data.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["FieldEmbedding", "FieldIndexer", "FieldLinear"]


class FieldIndexer(nn.Module):
    """Map codes of an integer field matrix to global row ids, with OOV rows.

    Parameters
    ----------
    field_dims : sequence of int
        Number of known categories per field. Field ``f`` owns
        ``field_dims[f] + 1`` rows, the last one being its OOV row.

    Attributes
    ----------
    n_fields : int
        Number of fields.
    n_rows : int
        ``sum(field_dims) + n_fields``.
    """

    def __init__(self, field_dims):
        super().__init__()
        dims = [int(d) for d in np.asarray(field_dims).reshape(-1).tolist()]
        self.field_dims = tuple(dims)
        self.n_fields = len(dims)
        sizes = np.asarray(dims, dtype=np.int64) + 1
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.n_rows = int(sizes.sum())
        self.register_buffer("offsets", torch.as_tensor(offsets), persistent=False)
        self.register_buffer(
            "cardinalities", torch.as_tensor(np.asarray(dims, dtype=np.int64)),
            persistent=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global row ids ``(batch, n_fields)``; bad codes go to the field's OOV row."""
        if x.dim() != 2 or x.shape[1] != self.n_fields:
            raise ValueError(
                f"x must have shape (batch, {self.n_fields}), got {tuple(x.shape)}."
            )
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"x must be an integer tensor, got dtype {x.dtype}.")
        x = x.long()
        card = self.cardinalities
        known = (x >= 0) & (x < card)
        return torch.where(known, x, card) + self.offsets

    def field_slice(self, field: int) -> slice:
        """Rows of the known categories of ``field`` (OOV row excluded)."""
        start = int(self.offsets[field])
        return slice(start, start + self.field_dims[field])

    def oov_row(self, field: int) -> int:
        """Row id of the OOV row of ``field``."""
        return int(self.offsets[field]) + self.field_dims[field]


class FieldEmbedding(nn.Module):
    """Embedding tables of all fields and all embedding sets in one parameter.

    Parameters
    ----------
    field_dims : sequence of int
        Number of known categories per field (one OOV row per field is added).
    embedding_dim : int
        Size ``K`` of every embedding vector.
    n_sets : int, default=1
        Number ``M`` of independent embedding sets (multi-embedding).

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (n_sets * n_rows, embedding_dim)
        All tables. Each set block is initialised Xavier-uniform as one
        ``(n_rows, K)`` matrix, like the reference implementation's single table.

    Notes
    -----
    ``forward`` returns ``(n_sets, batch, n_fields, embedding_dim)``; ``table``
    gives the ``(field_dims[f], K)`` view of one field and one set (known codes only).
    """

    def __init__(self, field_dims, embedding_dim, *, n_sets=1):
        super().__init__()
        self.indexer = FieldIndexer(field_dims)
        self.embedding_dim = int(embedding_dim)
        self.n_sets = int(n_sets)
        self.field_dims = self.indexer.field_dims
        self.n_fields = self.indexer.n_fields
        self.n_rows = self.indexer.n_rows
        self.weight = nn.Parameter(
            torch.empty(self.n_sets * self.n_rows, self.embedding_dim)
        )
        self.register_buffer(
            "set_offsets",
            torch.arange(self.n_sets, dtype=torch.long) * self.n_rows,
            persistent=False,
        )
        self.reset_parameters()

    def reset_parameters(self):
        bound = math.sqrt(6.0 / (self.n_rows + self.embedding_dim))
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """Global row ids of set 0, shape ``(batch, n_fields)``."""
        return self.indexer(x)

    def lookup(self, rows: torch.Tensor) -> torch.Tensor:
        """Embeddings of precomputed row ids: ``(n_sets, batch, n_fields, K)``."""
        if self.n_sets == 1:
            return F.embedding(rows, self.weight).unsqueeze(0)
        idx = rows.unsqueeze(0) + self.set_offsets.view(-1, 1, 1)
        return F.embedding(idx, self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lookup(self.rows(x))

    def table(self, field: int, embedding_set: int = 0) -> torch.Tensor:
        """The ``(field_dims[field], K)`` table of known codes of one field and set."""
        if not 0 <= field < self.n_fields:
            raise ValueError(f"field must be in [0, {self.n_fields}), got {field!r}.")
        if not 0 <= embedding_set < self.n_sets:
            raise ValueError(
                f"embedding_set must be in [0, {self.n_sets}), got {embedding_set!r}."
            )
        sl = self.indexer.field_slice(field)
        base = embedding_set * self.n_rows
        return self.weight[base + sl.start : base + sl.stop]

    def oov_vector(self, field: int, embedding_set: int = 0) -> torch.Tensor:
        """The OOV embedding ``(K,)`` of one field and set."""
        return self.weight[embedding_set * self.n_rows + self.indexer.oov_row(field)]

    def extra_repr(self) -> str:
        return (
            f"n_fields={self.n_fields}, n_rows={self.n_rows}, "
            f"embedding_dim={self.embedding_dim}, n_sets={self.n_sets}"
        )


class FieldLinear(nn.Module):
    """First-order term ``b + sum_f w[x_f]`` over all fields (one weight per row).

    Parameters
    ----------
    field_dims : sequence of int
        Number of known categories per field (one OOV row per field is added).
    """

    def __init__(self, field_dims):
        super().__init__()
        self.indexer = FieldIndexer(field_dims)
        self.weight = nn.Parameter(torch.zeros(self.indexer.n_rows))
        self.bias = nn.Parameter(torch.zeros(()))

    def lookup(self, rows: torch.Tensor) -> torch.Tensor:
        """Logit contribution ``(batch,)`` of precomputed global row ids."""
        return self.weight[rows].sum(dim=1) + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lookup(self.indexer(x))
