"""Two-tower retrieval as a CF estimator, with categorical side features.

The side features are tables keyed by raw id (``user_features=`` /
``item_features=``: pandas DataFrames whose index holds the ids of ``X`` and
whose columns are categorical fields), given at construction or to ``fit``.
The estimator learns one vocabulary per field from the rows of the ids of
``X`` and stores, for every known user and item, the field codes as buffers of
the encoder (:class:`~skcollapse.nn.TwoTower`) indexed by the encoded row, so
ranking needs nothing but the ids.
"""

from __future__ import annotations

import contextlib
import re
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from skorch.dataset import Dataset
from torch.utils.data import DataLoader

from skcollapse.nn import CFLoss, TwoTower
from skcollapse.recommenders._cf import CFRecommenderBase
from skcollapse.recommenders._docstrings import cf_docstring
from skcollapse.recommenders._fit_state import CFFitState
from skcollapse.recommenders._negatives import InBatchNegatives, LogQ
from skcollapse.utils._distributed import unwrap_module
from skcollapse.utils._params import init_arguments
from skcollapse.utils._sklearn_compat import StrOptions, int_sequence

__all__ = ["TwoTowerRecommender"]

_SIDES = ("user", "item")
_IN_BATCH = ("in-batch", "mixed")


class TwoTowerFitState(CFFitState):
    """A two-tower fit: a CF fit and the feature tables given to this call."""

    def __init__(self, **fields):
        self.feature_tables = None
        super().__init__(**fields)


# ---------------------------------------------------------------- feature tables
def _check_table(table, side):
    """The feature table of ``side`` as a DataFrame with a unique index."""
    name = f"{side}_features"
    if isinstance(table, pd.Series):
        table = table.to_frame()
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"{name} must be a pandas DataFrame indexed by the raw {side} ids (one "
            f"column per categorical feature), got {type(table).__name__}. E.g. "
            f"{name}=frame.set_index('{side}_id')[['gender', 'occupation']]."
        )
    if table.shape[1] == 0:
        raise ValueError(f"{name} has no columns; give None for no {side} features.")
    if not table.index.is_unique:
        dup = table.index[table.index.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"{name} has duplicate {side} ids in its index (e.g. {dup}); give one "
            f"row per {side} id."
        )
    names = [str(c) for c in table.columns]
    if len(set(names)) != len(names):
        raise ValueError(f"{name} has duplicate column names: {names}.")
    if "id" in names:
        raise ValueError(
            f"{name} has a column named 'id', the name of the {side} id table in "
            "get_embeddings() ('" + side + "/id'); rename it."
        )
    return table


def _is_multi(value):
    return isinstance(value, (list, tuple, set, frozenset, np.ndarray))


def _is_missing(value):
    if _is_multi(value):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _as_lists(values):
    """Each cell as a list of values (missing -> [], scalar -> [v])."""
    out = []
    for v in values:
        if _is_multi(v):
            out.append([x for x in v if not _is_missing(x)])
        elif _is_missing(v):
            out.append([])
        else:
            out.append([v])
    return out


def _categories(lists):
    """Sorted distinct values (order of appearance where they do not sort)."""
    seen = dict.fromkeys(v for row in lists for v in row)
    try:
        return np.array(sorted(seen), dtype=object)
    except TypeError:
        return np.array(list(seen), dtype=object)


def _encode_field(lists, categories):
    """``(codes, weights)`` of shape ``(n, n_slots)``: field-local codes, the OOV
    code ``len(categories)`` for unknown or missing values, weights ``1/len``."""
    n_known = len(categories)
    lengths = np.array([max(len(row), 1) for row in lists], dtype=np.int64)
    width = int(lengths.max()) if len(lists) else 1
    codes = np.full((len(lists), width), n_known, dtype=np.int64)
    weights = np.zeros((len(lists), width), dtype=np.float32)
    flat = [v for row in lists for v in row]
    index = pd.Index(categories, dtype=object)
    found = index.get_indexer(pd.Index(flat, dtype=object)) if flat else np.empty(0)
    found = np.where(found < 0, n_known, found)
    pos = 0
    for r, row in enumerate(lists):
        k = len(row)
        if k:
            codes[r, :k] = found[pos : pos + k]
            pos += k
        weights[r, : lengths[r]] = 1.0 / lengths[r]
    return codes, weights


def _pad(a, width, fill):
    if a.shape[1] >= width:
        return a
    extra = np.full((a.shape[0], width - a.shape[1]), fill, dtype=a.dtype)
    return np.hstack([a, extra])


def _replace_param(doc, name, entry):
    """Swap the numpydoc entry of parameter ``name`` for ``entry``."""
    pattern = re.compile(rf"^    {name} : .*?\n(?=    \S)", re.MULTILINE | re.DOTALL)
    new, n = pattern.subn(lambda _: entry, doc, count=1)
    if n != 1:  # pragma: no cover - the shared docstring changed
        raise RuntimeError(f"parameter {name!r} not found in the shared docstring")
    return new


_OWN_DEFAULTS = {
    "loss": """    loss : {"bpr", "bce", "softmax", "align", "ccl"}, default="softmax"
        Training objective (see :class:`CFLoss`). ``"in-batch"`` and
        ``"mixed"`` negatives need ``"softmax"``; ``"ccl"`` takes uniform
        negatives and ``similarity="cosine"``.
""",
    "n_negatives": """    n_negatives : int, default=None
        Uniformly sampled negatives: per positive (``"independent"``), per
        batch (``"shared"``), or added to the in-batch ones (``"mixed"``;
        ``None``: ``batch_size``). Not used by ``"in-batch"`` (leave ``None``).
        ``None`` with uniform negatives: 1 for ``"bpr"``, 4 for ``"bce"``, 128
        for ``"softmax"``.
""",
    "negative_sampling": """    negative_sampling : {"independent", "shared", "in-batch", "mixed"}, \
default="in-batch"
        ``"independent"``/``"shared"``: uniform negatives (as for
        :class:`MFRecommender`; with BPR the collapse-prone setting of
        two-tower models). ``"in-batch"``: the other items of the batch are the
        negatives of each row (sampled softmax; a row's own positive and its
        duplicates in the batch are left out). ``"mixed"``: in-batch plus
        ``n_negatives`` uniform items shared by the batch (Yang et al., 2020).
""",
    "similarity": """    similarity : {"dot", "cosine"}, default="cosine"
        Score used in training and ranking: ``<u, i>`` or the cosine of the
        tower outputs (the ranking tables are then row-normalised).
""",
    "lr": """    lr : float, default=0.001
        Learning rate.
""",
    "temperature": """    temperature : float, default=0.1
        Temperature of the ``"softmax"`` loss: ``logit = s / temperature``.
""",
}


class TwoTowerRecommender(CFRecommenderBase):
    __doc__ = cf_docstring(
        """Two-tower retrieval model over ids and categorical side features.

    A user tower and an item tower each embed the id and every categorical
    side feature (one embedding table per field, with an out-of-vocabulary
    row) and pass the concatenation through an MLP; the score is the dot
    product or the cosine of the tower outputs. Training uses in-batch
    sampled softmax with the logQ correction by default (Yi et al., 2019),
    or uniform negatives with BPR/BCE, or mixed negatives.

    **Side features** are tables keyed by raw id: ``user_features`` /
    ``item_features`` are DataFrames whose *index* holds the user / item ids of
    ``X`` and whose columns are categorical fields (strings, ints, or codes
    of an upstream ``OrdinalEncoder``; a cell holding a list/tuple is a
    multi-valued field, e.g. genres, embedded as the mean of its values).
    Give them at construction (they are then ordinary parameters: cloned,
    searched, pickled) or to ``fit``/``partial_fit`` (``fit(X,
    user_features=users)``; in a Pipeline ``twotowerrecommender__user_features=``),
    which overrides the constructor's for that call. Every id of ``X`` needs a
    row (a missing one is an error naming the table); extra rows are ignored.
    Each field learns its categories from the rows of the ids of ``X``;
    missing values (NaN/None, empty lists) and values unknown to a fitted
    model (new ids in ``partial_fit``) go to the field's out-of-vocabulary
    row. Discretise continuous features first (e.g.
    ``KBinsDiscretizer(encode="ordinal")``); a ``ColumnTransformer`` with
    ``set_output(transform="pandas")`` keeps the index, so its output can be
    passed as it is.""",
        """    user_features : DataFrame or None, default=None
        Categorical user features indexed by raw user id (see above).
    item_features : DataFrame or None, default=None
        Categorical item features indexed by raw item id.
    hidden_units : tuple of int, default=(64,)
        Hidden widths of the MLP of each tower (ReLU); ``()``: one ``Linear``.
    logq_correction : bool, default=True
        Subtract ``log q_j`` from the softmax logits of ``"in-batch"`` and
        ``"mixed"`` negatives, ``q_j`` being the probability that item ``j``
        is a candidate: its in-batch frequency in the training pairs (mixed
        with the uniform ``1/n_items`` for ``"mixed"``); see
        ``item_sampling_probability_``.
    module : type, default=TwoTower
        Encoder class (:class:`~skcollapse.nn.TwoTower` or a subclass).
    optimizer : torch optimizer class, default=torch.optim.Adam
        Adam runs fused on CPU and CUDA.""",
        """    user_fields_ : list of str
        Names of the user fields (columns of ``user_features``).
    item_fields_ : list of str
        Names of the item fields.
    user_categories_ : dict of str to ndarray
        Known categories of each user field, in the row order of
        ``get_embeddings()["user/<field>"]`` (the OOV row is not included).
    item_categories_ : dict of str to ndarray
        The same for items.
    item_sampling_probability_ : ndarray of shape (n_items_,)
        Probability that an item is the positive of a batch row, from the
        training pairs of the last ``fit``/``partial_fit`` call (validation
        pairs excluded); the ``q`` of the logQ correction.

    See Also
    --------
    MFRecommender : ids only, no towers.

    Notes
    -----
    ``get_embeddings()`` returns the tower outputs of every known user and
    item (``"user"``, ``"item"``: the ranking tables) and every table the
    towers read: ``"user/id"``, ``"item/id"`` and one ``"user/<field>"`` /
    ``"item/<field>"`` per field (known categories only), so collapse
    scorers, :class:`~skcollapse.callbacks.CollapseMonitor` and the plots see
    both the towers and their inputs. Regularizers act on the tower outputs
    of the batch.

    References
    ----------
    Yi, Yang, Hong, Cheng, Heldt, Kumthekar, Zhao, Wei, Chi. "Sampling-Bias-
    Corrected Neural Modeling for Large Corpus Item Recommendations." RecSys
    2019. Yang, Yi, Cheng, et al. "Mixed Negative Sampling for Learning
    Two-tower Neural Networks in Recommendations." WWW 2020 Companion.

    Examples
    --------
    >>> import pandas as pd
    >>> from skcollapse.datasets import make_interactions
    >>> from skcollapse.recommenders import TwoTowerRecommender
    >>> X = make_interactions(60, 40, random_state=0)
    >>> users = pd.DataFrame({"group": [u % 3 for u in range(60)]})
    >>> items = pd.DataFrame({"genre": [("a", "b") if i % 2 else "c"
    ...                                 for i in range(40)]})
    >>> model = TwoTowerRecommender(embedding_dim=8, max_epochs=2,
    ...                             batch_size=64, random_state=0)
    >>> model = model.fit(X, user_features=users, item_features=items)
    >>> model.recommend([0, 1], n=3)[0].shape
    (2, 3)
    >>> sorted(model.get_embeddings())
    ['item', 'item/genre', 'item/id', 'user', 'user/group', 'user/id']
    >>> model.item_categories_["genre"]
    array(['a', 'b', 'c'], dtype=object)
    """,
    )
    for _name, _entry in _OWN_DEFAULTS.items():
        __doc__ = _replace_param(__doc__, _name, _entry)
    del _name, _entry

    _parameter_constraints: ClassVar[dict] = {
        **CFRecommenderBase._parameter_constraints,
        "user_features": [pd.DataFrame, pd.Series, None],
        "item_features": [pd.DataFrame, pd.Series, None],
        "hidden_units": [int_sequence(min_length=0)],
        "logq_correction": ["boolean"],
        "negative_sampling": [
            StrOptions({"independent", "shared", "in-batch", "mixed"})
        ],
    }
    _fitted_attributes = (
        *CFRecommenderBase._fitted_attributes,
        "user_fields_",
        "item_fields_",
        "item_sampling_probability_",
    )
    _fit_state_class = TwoTowerFitState

    def __init__(
        self,
        *,
        n_users=None,
        n_items=None,
        embedding_dim=64,
        loss="softmax",
        n_negatives=None,
        negative_sampling="in-batch",
        sampling="pairs",
        similarity="cosine",
        temperature=0.1,
        margin=0.8,
        negative_weight=1.0,
        weight_decay=1e-4,
        init_std=0.1,
        init="normal",
        k=20,
        regularizer=None,
        random_state=None,
        user_features=None,
        item_features=None,
        hidden_units=(64,),
        logq_correction=True,
        module=TwoTower,
        optimizer=torch.optim.Adam,
        criterion=CFLoss,
        lr=1e-3,
        max_epochs=30,
        batch_size=2048,
        train_split=None,
        callbacks=None,
        warm_start=False,
        verbose=0,
        device="cpu",
        iterator_train=DataLoader,
        iterator_valid=DataLoader,
        dataset=Dataset,
        predict_nonlinearity="auto",
        compile=False,
        use_caching="auto",
        torch_load_kwargs=None,
        **kwargs,
    ):
        super().__init__(**init_arguments(locals(), exclude=(
            "user_features", "item_features", "hidden_units", "logq_correction"
        )))
        self.user_features = user_features
        self.item_features = item_features
        self.hidden_units = hidden_units
        self.logq_correction = logq_correction

    # ------------------------------------------------------------ parameters
    def _check_params(self):
        super()._check_params()
        if self.negative_sampling in _IN_BATCH and self.loss != "softmax":
            raise ValueError(
                f"negative_sampling={self.negative_sampling!r} trains a sampled "
                f"softmax; use loss='softmax' (got {self.loss!r}), or uniform "
                "negatives ('independent' or 'shared') for 'bpr'/'bce'."
            )
        if self.negative_sampling == "in-batch" and self.n_negatives is not None:
            raise ValueError(
                "negative_sampling='in-batch' takes its negatives from the batch; "
                f"leave n_negatives=None (got {self.n_negatives!r}), or use "
                "'mixed' to add n_negatives uniform items."
            )

    def _n_negatives(self):
        """Uniform negatives per row (independent) or per batch (shared, mixed)."""
        if self.negative_sampling == "in-batch":
            return 0
        if self.negative_sampling == "mixed":
            return int(self.batch_size if self.n_negatives is None else self.n_negatives)
        return super()._n_negatives()

    def _component_kwargs(self, prefix):
        kwargs = super()._component_kwargs(prefix)
        if prefix == "module":
            kwargs["hidden_units"] = tuple(int(h) for h in self.hidden_units)
            for side in _SIDES:
                cats = getattr(self, f"{side}_categories_", None) or {}
                fields = getattr(self, f"{side}_fields_", None) or []
                kwargs[f"{side}_field_dims"] = tuple(len(cats[f]) for f in fields)
        return kwargs

    # ------------------------------------------------------------ feature tables
    @contextlib.contextmanager
    def _feature_tables(self, user_features, item_features):
        """Hold the feature tables given to fit/partial_fit for this call."""
        given = {"user": user_features, "item": item_features}
        state = self._fit_state_
        if state is not None and user_features is None and item_features is None:
            yield  # partial_fit called by fit: the tables of fit hold
            return
        with self._fit_call(feature_tables=given):
            yield

    def fit(self, X, y=None, *, user_features=None, item_features=None,
            **fit_params):
        """Train on the ``(user, item)`` pairs ``X`` (re-initialising unless ``warm_start``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_pairs, 2)
            Interaction pairs.
        y : ignored
        user_features, item_features : DataFrame, default=None
            Feature tables for this call (indexed by raw id), overriding the
            constructor's.
        **fit_params
            Passed on to skorch.

        Returns
        -------
        self
        """
        with self._feature_tables(user_features, item_features):
            return super().fit(X, y, **fit_params)

    def partial_fit(self, X, y=None, classes=None, *, user_features=None,
                    item_features=None, **fit_params):
        """Continue training on ``X``; new ids need rows in the feature tables.

        As :meth:`MFRecommender.partial_fit`; the fields and their categories
        stay those of the first fit (unknown values of new ids use the OOV
        row).
        """
        with self._feature_tables(user_features, item_features):
            return super().partial_fit(X, y, classes=classes, **fit_params)

    def _table(self, side):
        state = self._fit_state_
        tables = None if state is None else state.feature_tables
        given = (tables or {}).get(side)
        table = getattr(self, f"{side}_features") if given is None else given
        return None if table is None else _check_table(table, side)

    def _rows(self, table, side, ids, seen):
        """Rows of ``table`` for ``ids``; ids of ``X`` (``seen``) must be present."""
        found = table.index.get_indexer(pd.Index(ids))
        missing = found < 0
        if missing[seen].any():
            bad = ids[seen][missing[seen]]
            raise ValueError(
                f"{side}_features has no row for {bad.shape[0]} {side} id(s) of X "
                f"(e.g. {bad[:5].tolist()}): every {side} id of X needs a row "
                f"(the index of {side}_features holds the raw {side} ids)."
            )
        return found

    def _set_interactions(self, users, items, train=None):
        continuing = getattr(self, "embeddings_cache_", None) is not None
        old = {
            s: int(getattr(self, f"n_{s}s_", 0)) if continuing else 0 for s in _SIDES
        }
        codes = super()._set_interactions(users, items, train=train)
        for side, c in zip(_SIDES, codes):
            self._set_side_features(side, continuing, old[side], c)
        mod = unwrap_module(self.module_)
        wanted = self._component_kwargs("module")
        if (mod.user_field_dims, mod.item_field_dims) != (
            wanted["user_field_dims"], wanted["item_field_dims"]
        ):
            # new fields: rebuild at the data's size now (a fresh fit)
            self._resize_to_data()
        self._clear_cache("features")
        return codes

    def _set_side_features(self, side, continuing, n_old, codes_in_x):
        ids = getattr(self, f"{side}_ids_")
        seen = np.zeros(ids.shape[0], dtype=bool)
        seen[np.unique(codes_in_x)] = True
        table = self._table(side)
        if continuing:
            fields = getattr(self, f"{side}_fields_")
            if not fields or ids.shape[0] == n_old:
                return
            if table is None:
                raise ValueError(
                    f"X has {ids.shape[0] - n_old} new {side} id(s) and the model "
                    f"has {side} fields {fields}; pass {side}_features= with rows "
                    "for them."
                )
            absent = [f for f in fields if f not in map(str, table.columns)]
            if absent:
                raise ValueError(
                    f"{side}_features lacks the field(s) {absent} the model was "
                    "fitted with."
                )
            new_ids = ids[n_old:]
            found = self._rows(table, side, new_ids, seen[n_old:])
            columns = {str(c): c for c in table.columns}
            cats = getattr(self, f"{side}_categories_")
            stored = self._feature_codes_[side]
            for k, f in enumerate(fields):
                values = table[columns[f]].to_numpy(dtype=object)
                lists = [
                    _as_lists([values[r]])[0] if r >= 0 else [] for r in found
                ]
                c_new, w_new = _encode_field(lists, cats[f])
                c_old, w_old = stored[k]
                width = max(c_old.shape[1], c_new.shape[1])
                oov = len(cats[f])
                stored[k] = (
                    np.vstack([_pad(c_old, width, oov), _pad(c_new, width, oov)]),
                    np.vstack([_pad(w_old, width, 0.0), _pad(w_new, width, 0.0)]),
                )
            return
        if table is None:
            fields, cats, stored = [], {}, []
        else:
            found = self._rows(table, side, ids, seen)
            fields, cats, stored = [], {}, []
            for column in table.columns:
                f = str(column)
                values = table[column].to_numpy(dtype=object)
                lists = [_as_lists([values[r]])[0] if r >= 0 else [] for r in found]
                # categories from the ids of X only (rows of other ids are unused)
                cats[f] = _categories([row for row, s in zip(lists, seen) if s])
                stored.append(_encode_field(lists, cats[f]))
                fields.append(f)
        setattr(self, f"{side}_fields_", fields)
        setattr(self, f"{side}_categories_", cats)
        if getattr(self, "_feature_codes_", None) is None:
            self._feature_codes_ = {}
        self._feature_codes_[side] = stored

    def _prepare_module(self, interactions=None):
        """Put the feature codes of every known id on the encoder (once per change)."""
        mod = unwrap_module(self.module_)
        stored = getattr(self, "_feature_codes_", None)
        if stored is None or not hasattr(mod, "user_fields"):
            return
        self._cached("features", (mod, stored),
                     lambda: self._set_feature_codes(mod, stored))

    @staticmethod
    def _set_feature_codes(mod, stored):
        for side in _SIDES:
            bags = getattr(mod, f"{side}_fields")
            fields = stored.get(side, [])
            if not fields:
                continue
            offsets = bags.offsets.cpu().numpy()
            codes = np.hstack([c + offsets[k] for k, (c, _) in enumerate(fields)])
            weights = np.hstack([w for _, w in fields])
            slot_field = np.concatenate(
                [np.full(c.shape[1], k) for k, (c, _) in enumerate(fields)]
            )
            bags.set_features(torch.from_numpy(codes), torch.from_numpy(weights),
                              torch.from_numpy(slot_field))
        return True

    # ------------------------------------------------------------ sampling bias
    def _learn_sampling_statistics(self, pairs):
        """``item_sampling_probability_``: how often each item is a positive of
        a batch, from the training pairs of this fit call."""
        pairs = pairs.cpu().numpy()
        users, items = pairs[:, 0], pairs[:, 1]
        n_items = int(self.n_items_)
        if self.sampling == "user":
            # a uniform active user, then a uniform item of theirs
            deg = np.bincount(users, minlength=int(self.n_users_)).astype(np.float64)
            p = np.bincount(items, weights=1.0 / deg[users], minlength=n_items)
            p = p / max(int((deg > 0).sum()), 1)
        else:
            p = np.bincount(items, minlength=n_items) / max(items.shape[0], 1)
        self.item_sampling_probability_ = p.astype(np.float64)

    def _negative_strategy(self):
        """In-batch/mixed negatives with the logQ correction, or uniform ones."""
        if self.negative_sampling not in _IN_BATCH:
            return super()._negative_strategy()
        log_q = None
        if self.logq_correction:
            log_q = LogQ(self.item_sampling_probability_, self.n_items_)
        return InBatchNegatives(self._n_negatives(), log_q)

    # ------------------------------------------------------------ embeddings
    def get_embedding_tensors(self):
        """Tower outputs (``"user"``, ``"item"``) and every table the towers read.

        ``"user/id"``, ``"item/id"``: the id embeddings; ``"user/<field>"``,
        ``"item/<field>"``: the known categories of each field (in the order
        of ``user_categories_[field]``), on the estimator's device.
        """
        tabs = super().get_embedding_tensors()
        mod = unwrap_module(self.module_)
        w = mod.embedding.weight.detach()
        tabs["user/id"], tabs["item/id"] = w[: mod.n_users], w[mod.n_users :]
        for side in _SIDES:
            bags = getattr(mod, f"{side}_fields")
            for k, name in enumerate(getattr(self, f"{side}_fields_", None) or []):
                tabs[f"{side}/{name}"] = bags.table(k).detach()
        return tabs

    def get_embeddings(self, X=None):
        """Return the tower outputs and the id and field tables.

        Parameters
        ----------
        X : ignored, default=None
            Present for the protocol shared with other estimators.

        Returns
        -------
        dict of str to ndarray
            ``"user"`` ``(n_users_, embedding_dim)`` and ``"item"``: the tower
            outputs (ranking tables); ``"user/id"``, ``"item/id"``; one
            ``"user/<field>"`` / ``"item/<field>"`` table per field.
        """
        return super().get_embeddings(X)
