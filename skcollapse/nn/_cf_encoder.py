"""The encoder protocol of the collaborative-filtering models.

A CF encoder owns one joint ego-embedding table (users in rows ``[0, n_users)``,
items in rows ``[n_users, n_users + n_items)``) and answers two questions:

* :meth:`CFEncoder.encode` — the embeddings of a training batch, as a dict with
  ``"user"``/``"item"`` (used for scoring) and ``"user_ego"``/``"item_ego"``
  (the raw table rows, on which the L2 penalty is taken);
* :meth:`CFEncoder.tables` — the full ``(user_table, item_table)`` for ranking.

:meth:`CFEncoder.forward` is shared: it scores ``(batch, 2)`` pairs, or, with
``users=``/``items=``, returns ``encode(...)`` — the form a data-parallel
wrapper (DDP averages gradients only for work done inside ``forward``) needs.
A new CF model is a subclass implementing ``encode`` and ``tables``; the
estimator side (``skcollapse.recommenders``) then needs one short class.

Constructor arguments are trusted: the estimators validate them.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CFEncoder"]


class CFEncoder(nn.Module):
    """Base class of CF encoders over a joint user/item embedding table.

    Parameters
    ----------
    n_users : int
        Number of user rows.
    n_items : int
        Number of item rows.
    embedding_dim : int, default=64
        Width of the table.
    init_std : float, default=0.1
        Standard deviation of the normal initialisation.
    sparse : bool, default=False
        Whether the table produces sparse gradients.
    init : {"normal", "xavier_uniform"}, default="normal"
        ``"normal"``: N(0, ``init_std``²) for every row. ``"xavier_uniform"``:
        the user rows from U(±sqrt(6 / (n_users + dim))) and the item rows from
        U(±sqrt(6 / (n_items + dim))), each table on its own (the initialisation
        of the DirectSpec reference code); ``init_std`` is then unused.

    Attributes
    ----------
    embedding : torch.nn.Embedding
        The joint ``(n_users + n_items, embedding_dim)`` ego table, users first.
    """

    def __init__(self, n_users, n_items, embedding_dim=64, *, init_std=0.1,
                 sparse=False, init="normal"):
        super().__init__()
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        self.embedding_dim = int(embedding_dim)
        self.init_std = float(init_std)
        self.sparse = bool(sparse)
        self.init = init
        self.embedding = nn.Embedding(
            self.n_users + self.n_items, self.embedding_dim, sparse=self.sparse
        )
        with torch.no_grad():
            if init == "xavier_uniform":
                w, d = self.embedding.weight, self.embedding_dim
                for rows, n in ((slice(0, self.n_users), self.n_users),
                                (slice(self.n_users, None), self.n_items)):
                    bound = (6.0 / (n + d)) ** 0.5
                    w[rows].uniform_(-bound, bound)
            elif init == "normal":
                nn.init.normal_(self.embedding.weight, std=self.init_std)
            else:  # the estimators validate it; a direct user gets a clear error
                raise ValueError(
                    f"init={init!r} is not supported; use 'normal' or 'xavier_uniform'."
                )

    def encode(self, users, items):
        """Embeddings of a batch.

        Parameters
        ----------
        users : LongTensor of shape (n_u,)
        items : LongTensor of shape (n_i,)

        Returns
        -------
        dict of str to Tensor
            ``"user"`` ``(n_u, dim)`` and ``"item"`` ``(n_i, dim)``: the
            embeddings used for scoring; ``"user_ego"``/``"item_ego"``: the raw
            table rows of the same ids.
        """
        raise NotImplementedError

    def tables(self):
        """The full ``(user_table, item_table)`` used for ranking."""
        raise NotImplementedError

    def forward(self, pairs=None, *, users=None, items=None):
        """Scores of ``(user, item)`` pairs given as a ``(batch, 2)`` LongTensor.

        With ``users=`` and ``items=`` instead, return ``encode(users, items)``.
        """
        if pairs is None:
            return self.encode(users, items)
        enc = self.encode(pairs[:, 0], pairs[:, 1])
        return (enc["user"] * enc["item"]).sum(-1)

    @torch.no_grad()
    def copy_rows_from(self, other):
        """Copy the ego rows of ``other`` (an encoder with at most as many users
        and items) into the first user and item rows of this one."""
        w = self.embedding.weight
        src = other.embedding.weight.detach().to(w.device, w.dtype)
        nu, ni = other.n_users, other.n_items
        w[:nu] = src[:nu]
        w[self.n_users : self.n_users + ni] = src[nu : nu + ni]
        return self

    def _ego_index(self, users, items):
        """Rows of the joint table holding ``users`` then ``items``."""
        return torch.cat([users, items + self.n_users])
