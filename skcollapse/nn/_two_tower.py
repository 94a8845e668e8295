"""Two-tower retrieval encoder: a user tower and an item tower over ids and features.

Each side (users, items) has its id embedding (the rows of the joint table of
:class:`~skcollapse.nn.CFEncoder`, users first) and one embedding table per
categorical side feature ("field"). A field table has one row per known
category plus one *out-of-vocabulary* (OOV) row, the last one, which receives
unknown and missing values (the rule of the CTR models'
:class:`~skcollapse.nn.FieldIndexer`). A field may be multi-valued (e.g. the
genres of a movie): its vector is then the mean of its values' rows.

The features of every known user and item are held as buffers indexed by the
encoded row (:meth:`TwoTower.set_features`): ``codes`` of shape
``(n_ids, n_slots)`` (global rows of the side's field table) and ``weights`` of
the same shape (``1 / n_values`` of the slot's field, ``0`` for padding), with
``slot_field`` mapping each slot to its field. So a batch of ids is one gather;
the tower is then an MLP over the concatenated ``[id, field_1, ..., field_F]``
vectors, whose output (width ``embedding_dim``) is the user or item embedding.

Constructor arguments are trusted: the estimators validate them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from skcollapse.nn._cf_encoder import CFEncoder

__all__ = ["FieldBags", "TwoTower"]


class FieldBags(nn.Module):
    """The categorical fields of one side, with per-id codes held as buffers.

    Parameters
    ----------
    n_ids : int
        Number of ids (users or items) of the side.
    field_dims : sequence of int
        Number of known categories of each field; field ``f`` owns
        ``field_dims[f] + 1`` rows, the last one its OOV row.
    embedding_dim : int
        Width of every field vector.
    init_std : float, default=0.1
        Standard deviation of the normal initialisation.

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (sum(field_dims) + n_fields, embedding_dim)
        The tables of all fields, one after the other.
    offsets : LongTensor of shape (n_fields,)
        First row of each field.
    codes, weights, slot_field : Tensor
        The per-id features (see :meth:`set_features`); until it is called,
        every id has the OOV row of every field.
    """

    def __init__(self, n_ids, field_dims, embedding_dim, *, init_std=0.1):
        super().__init__()
        dims = tuple(int(d) for d in field_dims)
        self.field_dims = dims
        self.n_fields = len(dims)
        self.n_ids = int(n_ids)
        self.embedding_dim = int(embedding_dim)
        sizes = torch.tensor([d + 1 for d in dims], dtype=torch.long)
        offsets = torch.cumsum(sizes, 0) - sizes
        self.weight = nn.Parameter(  # sizes from Python: buildable on "meta"
            torch.empty(sum(d + 1 for d in dims), self.embedding_dim)
        )
        nn.init.normal_(self.weight, std=float(init_std))
        self.register_buffer("offsets", offsets, persistent=False)
        oov = offsets + sizes - 1
        # default features: every id has the OOV row of every field
        self.register_buffer(
            "codes", oov.repeat(self.n_ids, 1), persistent=False
        )
        self.register_buffer(
            "weights", torch.ones(self.n_ids, self.n_fields), persistent=False
        )
        self.register_buffer(
            "slot_field", torch.arange(self.n_fields), persistent=False
        )
        self.pooled = False

    def set_features(self, codes, weights, slot_field):
        """Set the features of every id.

        Parameters
        ----------
        codes : LongTensor of shape (n_ids, n_slots)
            Row of the field table (global, offsets included) in each slot.
        weights : Tensor of shape (n_ids, n_slots)
            Weight of each slot in its field's mean (``0`` for padding slots).
        slot_field : LongTensor of shape (n_slots,)
            Field of each slot.
        """
        dev = self.weight.device
        codes = torch.as_tensor(codes, dtype=torch.long).to(dev)
        weights = torch.as_tensor(weights).to(dev, self.weight.dtype)
        slot_field = torch.as_tensor(slot_field, dtype=torch.long).to(dev)
        if codes.shape != weights.shape or codes.shape[0] != self.n_ids:
            raise ValueError(
                f"codes and weights must both have shape ({self.n_ids}, n_slots); "
                f"got {tuple(codes.shape)} and {tuple(weights.shape)}."
            )
        if slot_field.shape != (codes.shape[1],):
            raise ValueError(
                f"slot_field must have shape ({codes.shape[1]},), got "
                f"{tuple(slot_field.shape)}."
            )
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.weight.shape[0]):
            raise ValueError(
                f"codes must be rows of the field table [0, {self.weight.shape[0]})."
            )
        self.codes, self.weights, self.slot_field = codes, weights, slot_field
        # one slot per field, in field order, each of weight 1: no pooling needed
        self.pooled = not (
            codes.shape[1] == self.n_fields
            and torch.equal(slot_field.cpu(), torch.arange(self.n_fields))
            and bool((weights == 1).all())
        )
        return self

    def forward(self, ids):
        """Field vectors of ``ids``: ``(len(ids), n_fields, embedding_dim)``."""
        rows = self.codes.index_select(0, ids)
        vec = F.embedding(rows, self.weight)
        if not self.pooled:
            return vec
        vec = vec * self.weights.index_select(0, ids).unsqueeze(-1)
        out = vec.new_zeros(ids.shape[0], self.n_fields, self.embedding_dim)
        return out.index_add(1, self.slot_field, vec)

    def table(self, field):
        """The ``(field_dims[field], dim)`` rows of the known categories of a field."""
        start = int(self.offsets[field])
        return self.weight[start : start + self.field_dims[field]]

    def oov_row(self, field):
        """Global row of the OOV row of ``field``."""
        return int(self.offsets[field]) + self.field_dims[field]

    def extra_repr(self):
        return f"n_ids={self.n_ids}, field_dims={self.field_dims}"


def _mlp(in_dim, hidden_units, out_dim):
    layers, width = [], in_dim
    for h in hidden_units:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class TwoTower(CFEncoder):
    """Two-tower encoder: ``tower_u([id_u, fields_u])`` and ``tower_i([id_i, fields_i])``.

    A :class:`~skcollapse.nn.CFEncoder`: the id embeddings are the joint
    table's rows (users first), each side has a :class:`FieldBags` of its
    categorical features and an MLP tower whose output, of width
    ``embedding_dim``, is the user or item embedding.

    Parameters
    ----------
    n_users, n_items : int
        Number of user and item rows.
    embedding_dim : int, default=64
        Width of the id and field vectors and of the tower outputs.
    user_field_dims, item_field_dims : sequence of int, default=()
        Known categories of each user / item field (an OOV row is added).
    hidden_units : sequence of int, default=(64,)
        Hidden widths of both towers (ReLU); ``()`` makes each tower one
        ``Linear`` layer.
    init_std : float, default=0.1
        Standard deviation of the normal initialisation of the id and field rows.
    init : {"normal", "xavier_uniform"}, default="normal"
        Initialisation of the id rows (see :class:`CFEncoder`).

    Attributes
    ----------
    embedding : torch.nn.Embedding
        The joint id table, users first.
    user_fields, item_fields : FieldBags
        The side features.
    user_tower, item_tower : torch.nn.Sequential
        The MLPs.

    Examples
    --------
    >>> import torch
    >>> from skcollapse.nn import TwoTower
    >>> enc = TwoTower(3, 4, embedding_dim=8, user_field_dims=[2])
    >>> enc.user_fields.set_features(torch.tensor([[0], [1], [2]]),
    ...                              torch.ones(3, 1), torch.tensor([0]))
    FieldBags(n_ids=3, field_dims=(2,))
    >>> U, I = enc.tables()
    >>> tuple(U.shape), tuple(I.shape)
    ((3, 8), (4, 8))
    """

    def __init__(self, n_users, n_items, embedding_dim=64, *, user_field_dims=(),
                 item_field_dims=(), hidden_units=(64,), init_std=0.1,
                 init="normal"):
        super().__init__(n_users, n_items, embedding_dim, init_std=init_std,
                         init=init)
        d = self.embedding_dim
        self.hidden_units = tuple(int(h) for h in hidden_units)
        self.user_fields = FieldBags(self.n_users, user_field_dims, d,
                                     init_std=init_std)
        self.item_fields = FieldBags(self.n_items, item_field_dims, d,
                                     init_std=init_std)
        self.user_tower = _mlp(d * (1 + self.user_fields.n_fields),
                               self.hidden_units, d)
        self.item_tower = _mlp(d * (1 + self.item_fields.n_fields),
                               self.hidden_units, d)

    @property
    def user_field_dims(self):
        return self.user_fields.field_dims

    @property
    def item_field_dims(self):
        return self.item_fields.field_dims

    def _side_input(self, ids, rows, fields):
        """``[id row, field vectors]`` flattened: ``(len(ids), (1 + F) * dim)``."""
        if fields.n_fields == 0:
            return rows
        return torch.cat([rows.unsqueeze(1), fields(ids)], dim=1).flatten(1)

    def encode(self, users, items):
        """Tower outputs of a batch; the ego rows are the tower inputs.

        Returns
        -------
        dict of str to Tensor
            ``"user"``/``"item"``: tower outputs ``(n, embedding_dim)``;
            ``"user_ego"``/``"item_ego"``: the concatenated id and field vectors
            fed to the towers (on which the L2 penalty is taken).
        """
        rows = F.embedding(self._ego_index(users, items), self.embedding.weight)
        nu = users.shape[0]
        u_in = self._side_input(users, rows[:nu], self.user_fields)
        i_in = self._side_input(items, rows[nu:], self.item_fields)
        return {
            "user": self.user_tower(u_in),
            "item": self.item_tower(i_in),
            "user_ego": u_in,
            "item_ego": i_in,
        }

    def tables(self):
        """Tower outputs of every user and every item."""
        dev = self.embedding.weight.device
        users = torch.arange(self.n_users, device=dev)
        items = torch.arange(self.n_items, device=dev)
        enc = self.encode(users, items)
        return enc["user"], enc["item"]

    @torch.no_grad()
    def copy_rows_from(self, other):
        """Copy the id rows, the field tables and the towers of ``other`` (an
        encoder with at most as many users and items and the same fields)."""
        super().copy_rows_from(other)
        for name in ("user_fields", "item_fields"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine.field_dims != theirs.field_dims:
                raise ValueError(
                    f"{name} differ: {mine.field_dims} vs {theirs.field_dims}."
                )
            mine.weight.copy_(theirs.weight.to(mine.weight.device))
        for name in ("user_tower", "item_tower"):
            getattr(self, name).load_state_dict(getattr(other, name).state_dict())
        return self
