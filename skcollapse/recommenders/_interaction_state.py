"""The interactions a recommender has seen: one component for every recommender.

:class:`InteractionState` is shared by the CF estimators and the baselines
(and read by :class:`~skcollapse.recommenders._ranking.RankingMixin`, which
builds on it). It learns the id vocabularies (``user_ids_``, ``item_ids_``,
``n_users_``, ``n_items_``; ``n_users``/``n_items`` fix them to ``0..n-1``),
or extends them for continued training (new ids appended, an error where
``n_users``/``n_items`` fix the ids), and keeps ``user_items_`` (the binary
interaction matrix in vocabulary rows) and ``item_popularity_`` (each item's
interaction count). Continued training adds to them; pairs held out of a fit
(validation) join them afterwards through :meth:`InteractionState._add_pairs`.

It also keeps the caches derived from the fitted state in one ``_cache_``
(:meth:`InteractionState._cached`): each is valid while its key, an object of
the fitted state such as ``user_items_`` or ``user_ids_``, is the same object,
so no code has to remember to reset a cache; ``_cache_`` is never pickled.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from skcollapse.utils._interactions import IdVocabulary

__all__ = ["InteractionState"]


def _same_key(a, b):
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b))
    return a is b


class InteractionState:
    """Vocabularies, ``user_items_`` and ``item_popularity_`` (see the module doc).

    The estimator has the parameters ``n_users`` and ``n_items``.
    """

    #: the fitted attributes this state sets (an estimator's ``_fitted_attributes``
    #: start with them)
    _interaction_attributes: tuple[str, ...] = (
        "user_ids_",
        "item_ids_",
        "n_users_",
        "n_items_",
        "user_items_",
        "item_popularity_",
    )

    # ------------------------------------------------------------ caches
    def __getstate__(self):
        """As the base's, without the caches (rebuilt on demand)."""
        state = dict(super().__getstate__())
        state.pop("_cache_", None)
        return state

    def _cached(self, name, key, build):
        """``build()``, kept in ``_cache_[name]`` while ``key`` is the same object.

        A tuple key is compared element by element.
        """
        cache = self.__dict__.setdefault("_cache_", {})
        hit = cache.get(name)
        if hit is None or not _same_key(hit[0], key):
            hit = cache[name] = (key, build())
        return hit[1]

    def _clear_cache(self, *names):
        """Forget the caches ``names`` (every cache without names)."""
        cache = self.__dict__.get("_cache_")
        if cache is None:
            return
        if not names:
            cache.clear()
        for name in names:
            cache.pop(name, None)

    # ------------------------------------------------------------ vocabularies
    def _vocabulary(self, kind):
        """The (cached) :class:`IdVocabulary` of ``user_ids_`` or ``item_ids_``."""
        ids = getattr(self, f"{kind}_ids_", None)
        if ids is None:  # an estimator without a vocabulary: rows are the ids
            ids = np.arange(int(getattr(self, f"n_{kind}s_")))
        return self._cached(
            f"vocabulary/{kind}", ids, lambda: IdVocabulary(ids, kind=kind)
        )

    def _learn_vocabularies(self, users, items, *, extend):
        """``(user, item)`` vocabularies of a fresh fit, or the fitted ones
        extended by the new ids of ``users``/``items``."""
        vocabs = []
        for kind, ids, given in (
            ("user", users, self.n_users), ("item", items, self.n_items)
        ):
            if extend:
                vocab, n_new = self._vocabulary(kind).extend(ids)
                if n_new and given is not None:
                    raise ValueError(
                        f"X has {n_new} {kind} id(s) beyond n_{kind}s={given}, which "
                        f"fixes the {kind} ids to 0..{given - 1}; fit from scratch "
                        f"with a larger n_{kind}s (or n_{kind}s=None)."
                    )
            else:
                vocab = IdVocabulary.learn(ids, kind=kind, n=given)
            vocabs.append(vocab)
        return vocabs

    # ------------------------------------------------------------ interactions
    def _set_interactions(self, users, items, *, extend=False, keep=False,
                          train=None):
        """Learn (``extend``: extend) the vocabularies and set ``user_items_``
        and ``item_popularity_`` from the raw ids; returns their row codes.

        ``keep`` adds the interactions seen before (continued training: the
        ranking filter, the negatives and LightGCN's graph then cover every
        known pair); ``train`` (a boolean mask) keeps pairs out (validation).
        """
        uv, iv = self._learn_vocabularies(users, items, extend=extend)
        old_n_items = self.n_items_ if keep else 0
        self.user_ids_, self.item_ids_ = uv.ids, iv.ids
        for kind, vocab in (("user", uv), ("item", iv)):
            self._clear_cache(f"vocabulary/{kind}")
            self._cached(f"vocabulary/{kind}", vocab.ids, lambda v=vocab: v)
        self.n_users_, self.n_items_ = len(uv), len(iv)
        self.n_features_in_ = 2
        u = uv.encode(users, name="X's user column")
        i = iv.encode(items, name="X's item column")
        ut, it = (u, i) if train is None else (u[train], i[train])
        R = sp.csr_matrix(
            (np.ones(ut.shape[0], dtype=np.float32), (ut, it)),
            shape=(self.n_users_, self.n_items_),
        )
        popularity = np.bincount(it, minlength=self.n_items_).astype(np.int64)
        if keep:
            old = self.user_items_.tocsr(copy=True)
            old.resize((self.n_users_, self.n_items_))
            R = R + old
            popularity[:old_n_items] += self.item_popularity_
        R.sum_duplicates()
        R.data[:] = 1.0
        self.user_items_ = R
        self.item_popularity_ = popularity
        return u, i

    def _add_pairs(self, users, items):
        """Add pairs given as row codes (e.g. a fit's validation pairs) to
        ``user_items_`` and ``item_popularity_``."""
        R = self.user_items_ + sp.csr_matrix(
            (np.ones(users.shape[0], dtype=np.float32), (users, items)),
            shape=self.user_items_.shape,
        )
        R.sum_duplicates()
        R.data[:] = 1.0
        self.user_items_ = R.tocsr()
        self.item_popularity_ = self.item_popularity_ + np.bincount(
            items, minlength=self.n_items_
        ).astype(np.int64)
