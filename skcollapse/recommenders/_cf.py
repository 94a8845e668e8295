"""Collaborative-filtering recommenders as skorch estimators: MF and LightGCN.

Both estimators take implicit feedback as ``(user, item)`` interaction pairs,
train with a pairwise/pointwise/softmax loss on uniformly sampled negatives, and
rank all items on their device. Batching and negative sampling run as tensor
operations on the estimator's device; the ranking tables are computed once after
training and cached.
"""

from __future__ import annotations

import numbers
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from sklearn.exceptions import NotFittedError
from skorch import NeuralNet
from skorch.dataset import unpack_data
from torch import nn

from skcollapse.metrics import ranking_scorer
from skcollapse.nn._lightgcn import LightGCN, normalized_adjacency
from skcollapse.nn._mf import MatrixFactorization, SparseRowAdam
from skcollapse.recommenders._base import ModelFitError, RegularizedNetMixin
from skcollapse.utils._device import resolve_device
from skcollapse.utils._distributed import (
    is_distributed,
    num_processes,
    process_index,
    process_seed,
    shard_rows,
    shared_seed,
    unwrap_module,
)

__all__ = ["LightGCNRecommender", "MFRecommender"]

_LOSSES = ("bpr", "bce", "softmax", "align")
_DEFAULT_NEGATIVES = {"bpr": 1, "bce": 4, "softmax": 128, "align": 0}
_SIMILARITIES = ("dot", "cosine")
_NEGATIVE_SAMPLING = ("independent", "shared")
#: optimisers that take the sparse gradients of an embedding table
_SPARSE_OPTIMIZERS = (SparseRowAdam, torch.optim.SparseAdam)
# scores kept in memory per ranking block (float32 entries)
_RANK_BLOCK = 2**24
# largest n_users * n_items for which observed pairs are kept as a dense bitmap
_BITMAP_MAX = 2**26


# ----------------------------------------------------------------------------- data
def _check_ids(X, *, name="X"):
    """Validate interaction pairs and return ``(users, items)`` int64 arrays."""
    if X is None:
        raise ValueError(f"{name} is required: an (n, 2) array of (user, item) ids.")
    if hasattr(X, "iloc") and hasattr(X, "columns"):  # DataFrame
        if X.shape[1] != 2:
            raise ValueError(
                f"{name} must have exactly two columns (user, item), got "
                f"{X.shape[1]}; select them first, e.g. df[['user', 'item']]."
            )
        arr = np.column_stack([np.asarray(X.iloc[:, 0]), np.asarray(X.iloc[:, 1])])
    elif isinstance(X, torch.Tensor):
        arr = X.detach().cpu().numpy()
    elif sp.issparse(X):
        raise TypeError(
            f"{name} must be an (n, 2) array of (user, item) pairs, got a sparse "
            "matrix; convert a user-item matrix with np.column_stack(M.nonzero())."
        )
    else:
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            f"{name} must be a 2-D array of (user, item) pairs with shape (n, 2), "
            f"got shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; give at least one (user, item) pair.")
    kind = arr.dtype.kind
    if kind == "b" or kind not in "iuf":
        if kind == "O":
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise TypeError(
                    f"{name} must hold integer user/item ids, got dtype object with "
                    "non-numeric values."
                ) from None
            kind = "f"
        else:
            raise TypeError(f"{name} must hold integer user/item ids, got dtype {arr.dtype}.")
    if kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite ids.")
        if not np.array_equal(arr, np.floor(arr)):
            raise ValueError(
                f"{name} must hold integer user/item ids, got non-integer values; "
                "encode raw ids with sklearn.preprocessing.OrdinalEncoder first."
            )
    if arr.min() < 0:
        raise ValueError(f"{name} contains negative user or item ids; ids must be >= 0.")
    arr = arr.astype(np.int64, copy=False)
    return np.ascontiguousarray(arr[:, 0]), np.ascontiguousarray(arr[:, 1])


def _check_id_vector(ids, upper, *, name, kind):
    """1-D int64 array of ids in ``[0, upper)``; returns (array, was_scalar)."""
    scalar = np.ndim(ids) == 0
    arr = np.atleast_1d(np.asarray(ids))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a scalar or a 1-D array, got shape {arr.shape}.")
    if arr.dtype.kind not in "iu":
        if (arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(
            arr == np.floor(arr)
        )) or arr.size == 0:
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer {kind} ids, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        bad = arr[(arr < 0) | (arr >= upper)][0]
        raise ValueError(
            f"{name} contains {kind} id {bad}, outside the fitted range [0, {upper}); "
            f"the model knows {upper} {kind}s (set n_{kind}s at construction to "
            "reserve ids missing from the training data)."
        )
    return arr, scalar


def _check_positive_int(value, name, *, allow_none=False, minimum=1):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")


def _check_real(value, name, *, low=0.0, inclusive=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}.")
    ok = value >= low if inclusive else value > low
    if not (ok and np.isfinite(value)):
        op = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be a finite number {op} {low}, got {value!r}.")


class _PairsDataset(torch.utils.data.Dataset):
    """Interaction pairs held as one ``(n, 2)`` LongTensor (on the net's device)."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return self.pairs.shape[0]

    def __getitem__(self, i):  # not used by the batch iterator; kept for skorch tools
        return self.pairs[i], torch.zeros(())


class _PairBatches:
    """Iterate over ``(pairs_batch, None)`` slices, shuffled on the device."""

    def __init__(self, pairs, batch_size, *, shuffle, generator=None, shard=(0, 1)):
        self.pairs = pairs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        # (rank, world): under data parallelism each process iterates over its
        # own, equally long share of every epoch's permutation
        self.shard = shard

    def _n_rows(self):
        n = self.pairs.shape[0]
        world = self.shard[1]
        return n if world == 1 or n == 0 else -(-n // world)

    def __len__(self):
        return (self._n_rows() + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = self.pairs.shape[0]
        if self.shuffle:
            perm = torch.randperm(n, generator=self.generator, device=self.pairs.device)
            data = self.pairs.index_select(0, perm)
        else:
            data = self.pairs
        rank, world = self.shard
        if world > 1 and n:
            rows = shard_rows(n, rank=rank, world=world).to(data.device)
            data = data.index_select(0, rows)
        for start in range(0, data.shape[0], self.batch_size):
            yield data[start : start + self.batch_size], None


def _observed_keys(R):
    """Sorted ``user * n_items + item`` keys of the non-zeros of the CSR ``R``."""
    rows = np.repeat(np.arange(R.shape[0], dtype=np.int64), np.diff(R.indptr))
    keys = rows * R.shape[1] + R.indices.astype(np.int64)
    keys.sort()
    return keys


# ----------------------------------------------------------------------------- loss
class CFLoss(nn.Module):
    """Training objectives of the CF recommenders, on batch embeddings.

    Parameters
    ----------
    loss : {"bpr", "bce", "softmax", "align"}, default="bpr"
        ``"bpr"``: ``-log sigmoid(s_ui - s_uj)`` averaged over sampled negatives;
        ``"bce"``: ``-log sigmoid(s_ui) - sum_j log sigmoid(-s_uj)``;
        ``"softmax"``: sampled softmax cross-entropy of the positive against the
        negatives with logits ``s / temperature``; ``"align"``: positive-only
        alignment ``||u/|u| - i/|i|||^2`` (DirectAU's alignment term; the
        regularizer supplies the rest, e.g. uniformity or DirectSpec).
    temperature : float, default=1.0
        Softmax temperature (``"softmax"`` only).

    Notes
    -----
    Negatives come either per positive, ``neg`` of shape ``(batch, n, dim)``, or
    shared by the whole batch, ``neg`` of shape ``(n, dim)``; a shared set is
    scored with one ``(batch, dim) @ (dim, n)`` product. ``neg_mask`` (``True`` =
    drop) removes entries from the loss, e.g. a shared negative that is the row's
    own positive ("accidental hit").
    """

    def __init__(self, loss="bpr", temperature=1.0):
        super().__init__()
        if loss not in _LOSSES:
            raise ValueError(f"loss={loss!r} is not supported; choose one of {_LOSSES}.")
        self.loss = loss
        self.temperature = float(temperature)

    def forward(self, user, pos, neg=None, neg_mask=None):
        """Mean loss of a batch.

        Parameters
        ----------
        user, pos : Tensor of shape (batch, dim)
            Row ``b`` of both forms an observed pair.
        neg : Tensor of shape (batch, n_negatives, dim) or (n_negatives, dim), or None
            Negatives of each row, or one set shared by every row.
        neg_mask : BoolTensor of shape (batch, n_negatives) or None
            ``True`` where a negative is left out of row ``b``'s loss.
        """
        if self.loss == "align":
            u = F.normalize(user, dim=-1)
            i = F.normalize(pos, dim=-1)
            return (u - i).pow(2).sum(-1).mean()
        if neg is None:
            raise ValueError(f"loss={self.loss!r} needs negatives; got neg=None.")
        pos_s = (user * pos).sum(-1)
        if neg.dim() == 2:
            neg_s = user @ neg.T
        else:
            neg_s = torch.einsum("bd,bnd->bn", user, neg)
        if self.loss == "softmax":
            if neg_mask is not None:
                neg_s = neg_s.masked_fill(neg_mask, float("-inf"))
            logits = torch.cat([pos_s[:, None], neg_s], dim=1) / self.temperature
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


# ----------------------------------------------------------------------------- base
class _CFRecommender(RegularizedNetMixin, NeuralNet):
    """Shared implementation of the CF recommenders (see MFRecommender)."""

    _fitted_attributes = ("n_users_", "n_items_", "user_items_", "item_popularity_")
    cuda_dependent_attributes_: ClassVar[list[str]] = [
        *RegularizedNetMixin.cuda_dependent_attributes_,
        "embeddings_cache_",
        "_liked_",
        "_fit_pairs_",
        "_train_keys_",
    ]

    def __init__(
        self,
        *,
        n_users=None,
        n_items=None,
        embedding_dim=64,
        loss="bpr",
        n_negatives=None,
        negative_sampling="independent",
        similarity="dot",
        temperature=1.0,
        weight_decay=1e-4,
        init_std=0.1,
        k=20,
        regularizer=None,
        random_state=None,
        module=None,
        optimizer=None,
        lr=1e-3,
        max_epochs=30,
        batch_size=2048,
        callbacks=None,
        warm_start=False,
        verbose=0,
        device="cpu",
        **kwargs,
    ):
        kwargs.setdefault("criterion", CFLoss)
        kwargs.setdefault("train_split", None)
        super().__init__(
            module=module,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            callbacks=callbacks,
            warm_start=warm_start,
            verbose=verbose,
            device=device,
            **kwargs,
        )
        self.n_users = n_users
        self.n_items = n_items
        self.embedding_dim = embedding_dim
        self.loss = loss
        self.n_negatives = n_negatives
        self.negative_sampling = negative_sampling
        self.similarity = similarity
        self.temperature = temperature
        self.weight_decay = weight_decay
        self.init_std = init_std
        self.k = k
        self.regularizer = regularizer
        self.random_state = random_state

    # ------------------------------------------------------------ validation
    def _check_cf_params(self):
        _check_positive_int(self.n_users, "n_users", allow_none=True)
        _check_positive_int(self.n_items, "n_items", allow_none=True)
        _check_positive_int(self.embedding_dim, "embedding_dim")
        if self.loss not in _LOSSES:
            raise ValueError(
                f"loss={self.loss!r} is not supported; choose one of {list(_LOSSES)}."
            )
        if self.n_negatives is not None:
            if self.loss == "align":
                if self.n_negatives != 0:
                    raise ValueError(
                        "loss='align' is positive-only; leave n_negatives=None, got "
                        f"{self.n_negatives!r}."
                    )
            else:
                _check_positive_int(self.n_negatives, "n_negatives")
        if self.negative_sampling not in _NEGATIVE_SAMPLING:
            raise ValueError(
                f"negative_sampling={self.negative_sampling!r} is not supported; "
                f"choose one of {list(_NEGATIVE_SAMPLING)}."
            )
        if self.similarity not in _SIMILARITIES:
            raise ValueError(
                f"similarity={self.similarity!r} is not supported; choose one of "
                f"{list(_SIMILARITIES)}."
            )
        _check_real(self.temperature, "temperature", inclusive=False)
        _check_real(self.weight_decay, "weight_decay")
        _check_real(self.init_std, "init_std", inclusive=False)
        _check_positive_int(self.k, "k")
        _check_real(self.lr, "lr", inclusive=False)
        _check_positive_int(self.max_epochs, "max_epochs", minimum=0)
        _check_positive_int(self.batch_size, "batch_size")
        if self.train_split is not None:
            raise ValueError(
                f"train_split must be None for {type(self).__name__}: evaluate "
                "ranking on held-out pairs with score(X_test) or ranking_scorer."
            )
        rs = self.random_state
        if rs is not None and not (
            isinstance(rs, (numbers.Integral, np.random.RandomState))
            and not isinstance(rs, bool)
        ):
            raise TypeError(
                f"random_state must be None, an int or a numpy RandomState, got {rs!r}."
            )
        resolve_device(self.device)

    def _validate_params(self):
        super()._validate_params()
        self._check_cf_params()

    def _seed(self):
        rs = self.random_state
        if rs is None:
            return None
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(0, 2**31 - 1))
        return int(rs)

    def _n_negatives(self):
        if self.n_negatives is None:
            if self.negative_sampling == "shared" and self.loss != "align":
                return int(self.batch_size)
            return _DEFAULT_NEGATIVES[self.loss]
        return int(self.n_negatives)

    def _shared(self):
        return self.negative_sampling == "shared"

    # ------------------------------------------------------------ components
    def _module_sizes(self):
        sizes = getattr(self, "_fit_sizes_", None)
        if sizes is not None:
            return sizes
        n_users = self.n_users or getattr(self, "n_users_", None) or 1
        n_items = self.n_items or getattr(self, "n_items_", None) or 1
        return int(n_users), int(n_items)

    def _module_kwargs(self):
        n_users, n_items = self._module_sizes()
        return {
            "n_users": n_users,
            "n_items": n_items,
            "embedding_dim": int(self.embedding_dim),
            "init_std": float(self.init_std),
        }

    def _default_module(self):
        raise NotImplementedError

    def initialize_module(self):
        """Build the torch module (seeded by ``random_state``)."""
        self._check_cf_params()
        module = self.module if self.module is not None else self._default_module()
        kwargs = {**self._module_kwargs(), **self.get_params_for("module")}
        seed = self._seed()
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.module_ = self.initialized_instance(module, kwargs)
        self.embeddings_cache_ = None
        return self

    def initialize_criterion(self):
        """Build the loss (from ``loss``/``temperature``) and the regularizer."""
        kwargs = {"loss": self.loss, "temperature": float(self.temperature)}
        kwargs.update(self.get_params_for("criterion"))
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        self.regularizer_ = self._build_regularizer()
        return self

    def _default_optimizer(self):
        return torch.optim.Adam

    def initialize_optimizer(self, *args, **kwargs):
        """Build the optimiser over the module (and regularizer) parameters."""
        if "regularizer_optimizer" in getattr(self, "_optimizers", []):
            delattr(self, "regularizer_optimizer_")
        optimizer = self.optimizer if self.optimizer is not None else (
            self._default_optimizer()
        )
        named = list(self.get_all_learnable_params())
        if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.SparseAdam):
            # SparseAdam takes only the sparse embedding table; dense parameters of
            # a regularizer are given their own Adam by the mixin after setup.
            named = [(n, p) for n, p in named if n.startswith("embedding.")]
        args, opt_kwargs = self.get_params_for_optimizer("optimizer", named)
        if (
            optimizer is torch.optim.Adam
            and "fused" not in opt_kwargs
            and "foreach" not in opt_kwargs
            and resolve_device(self.device).type in ("cpu", "cuda")
        ):
            opt_kwargs["fused"] = True
        self.optimizer_ = optimizer(*args, **opt_kwargs)
        return self

    # ------------------------------------------------------------ data setup
    def _device(self):
        if self.device is None and getattr(self, "accelerator", None) is not None:
            # AccelerateMixin asks for device=None and places the module itself
            return torch.device(self.accelerator.device)
        return resolve_device(self.device)

    def fit(self, X, y=None, **fit_params):
        """Train on the ``(user, item)`` pairs ``X`` (re-initialising unless ``warm_start``).

        The interactions of ``X`` replace any seen before (``user_items_``,
        ``item_popularity_``), also with ``warm_start=True``.
        """
        self._fit_replaces_data_ = True
        try:
            return super().fit(X, y, **fit_params)
        finally:
            self._fit_replaces_data_ = False

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Continue training on the ``(user, item)`` pairs ``X``.

        On a fitted model the interactions of ``X`` are added to those seen
        before: ``user_items_`` (and so :meth:`recommend`'s filter, the negatives
        and LightGCN's graph) is the union, ``item_popularity_`` the summed
        counts. The id range stays the fitted one.
        """
        return super().partial_fit(X, y, classes=classes, **fit_params)

    def get_regularizer_info(self, X, y=None):
        return {
            "n_users": self.n_users_,
            "n_items": self.n_items_,
            "interactions": self.user_items_,
            "tables": {"user": int(self.embedding_dim), "item": int(self.embedding_dim)},
        }

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        users, items = _check_ids(X)
        n_users = int(users.max()) + 1
        n_items = int(items.max()) + 1
        # a fitted module that was not re-initialised (warm_start=True, or
        # partial_fit) keeps training: its id range is fixed
        fitted = getattr(self, "embeddings_cache_", None) is not None
        if fitted and (n_users > self.n_users_ or n_items > self.n_items_):
            raise ValueError(
                "continuing training (warm_start=True or partial_fit) but X has ids "
                f"beyond the fitted range (n_users_={self.n_users_}, n_items_="
                f"{self.n_items_}); fit from scratch or set n_users/n_items large "
                "enough before the first fit."
            )
        if fitted:
            n_users, n_items = self.n_users_, self.n_items_
        for name, got, given in (
            ("n_users", n_users, self.n_users),
            ("n_items", n_items, self.n_items),
        ):
            if given is not None and got > given:
                raise ValueError(
                    f"X contains {name[2:-1]} id {got - 1} but {name}={given}; ids "
                    f"must be < {name}."
                )
        n_users = self.n_users or n_users
        n_items = self.n_items or n_items
        self.n_users_ = int(n_users)
        self.n_items_ = int(n_items)
        self.n_features_in_ = 2
        R = sp.csr_matrix(
            (np.ones(users.shape[0], dtype=np.float32), (users, items)),
            shape=(self.n_users_, self.n_items_),
        )
        popularity = np.bincount(items, minlength=self.n_items_).astype(np.int64)
        if fitted and not getattr(self, "_fit_replaces_data_", False):
            # partial_fit: the model has now seen the earlier interactions too, so
            # recommend() keeps filtering them, negatives avoid them and LightGCN
            # propagates over the whole known graph
            R = R + self.user_items_
            popularity = popularity + self.item_popularity_
        R.sum_duplicates()
        R.data[:] = 1.0
        self.user_items_ = R
        self.item_popularity_ = popularity
        self._liked_ = None
        self.embeddings_cache_ = None

        dev = self._device()
        self._fit_sizes_ = (self.n_users_, self.n_items_)
        mod = unwrap_module(self.module_)
        if (getattr(mod, "n_users", None), getattr(mod, "n_items", None)) != (
            self._fit_sizes_
        ):
            # the module was built before the data was seen: rebuild it (and the
            # components holding its parameters) at the data's size
            self._initialize_module()
            self._initialize_criterion()
            self._initialize_optimizer()
            if getattr(self, "_wrapped_with_accelerator", False):
                # AccelerateMixin prepared the placeholder: prepare the new module
                # and optimiser (DDP wrapping, device placement) the same way
                self.module_ = self.accelerator.prepare(self.module_)
                self.optimizer_ = self.accelerator.prepare(self.optimizer_)
        pairs = torch.from_numpy(np.column_stack([users, items])).to(dev)
        self._fit_pairs_ = pairs
        keys = _observed_keys(R)
        if self.n_users_ * self.n_items_ <= _BITMAP_MAX:
            # small catalogues: a dense membership table is the cheapest lookup
            bitmap = torch.zeros(self.n_users_ * self.n_items_, dtype=torch.bool)
            bitmap[torch.from_numpy(keys)] = True
            self._train_keys_ = bitmap.to(dev)
        else:
            self._train_keys_ = torch.from_numpy(keys).to(dev)
        gen = torch.Generator(device=dev)
        seed = self._seed()
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        # the epoch permutation is shared by all processes (each takes its shard);
        # negatives are drawn per process, so shards get their own negatives
        seed = shared_seed(seed)
        gen.manual_seed(seed + 1)
        self._generator_ = gen
        self._negative_generator_ = None
        if is_distributed():
            neg_gen = torch.Generator(device=dev)
            neg_gen.manual_seed(process_seed((seed + 2) % 2**32))
            self._negative_generator_ = neg_gen
        self._prepare_module()
        super().on_train_begin(net, X=X, y=y, **kwargs)

    def _prepare_module(self):
        """Hook for data-dependent module state (LightGCN: the adjacency)."""

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        self.embeddings_cache_ = self._compute_tables()
        for name in (
            "_fit_pairs_", "_train_keys_", "_generator_", "_negative_generator_"
        ):
            if name in self.__dict__:
                setattr(self, name, None)

    # ------------------------------------------------------------ training
    def get_dataset(self, X, y=None):
        if isinstance(X, _PairsDataset):
            return X
        pairs = getattr(self, "_fit_pairs_", None)
        if pairs is not None and X is not None and len(X) == pairs.shape[0]:
            users, items = _check_ids(X)
            cand = torch.from_numpy(np.column_stack([users, items]))
            if torch.equal(cand.to(pairs.device), pairs):
                return _PairsDataset(pairs)
            return _PairsDataset(cand.to(self._device()))
        users, items = _check_ids(X)
        return _PairsDataset(
            torch.from_numpy(np.column_stack([users, items])).to(self._device())
        )

    def get_iterator(self, dataset, training=False):
        if not isinstance(dataset, _PairsDataset):
            raise TypeError(
                f"{type(self).__name__} iterates over (user, item) pairs; got a "
                f"{type(dataset).__name__}."
            )
        if training:
            kwargs = self.get_params_for("iterator_train")
        else:
            kwargs = self.get_params_for("iterator_valid")
        batch_size = kwargs.get("batch_size", self.batch_size)
        if batch_size == -1:
            batch_size = max(1, len(dataset))
        return _PairBatches(
            dataset.pairs,
            int(batch_size),
            shuffle=training,
            generator=getattr(self, "_generator_", None) if training else None,
            shard=(process_index(), num_processes()) if training else (0, 1),
        )

    def _negatives_generator(self):
        """Per-process generator under data parallelism, else the fit's generator."""
        return getattr(self, "_negative_generator_", None) or self._generator_

    def _sample_negatives(self, users, n_neg):
        n_items = self.n_items_
        gen = self._negatives_generator()
        dev = users.device
        neg = torch.randint(0, n_items, (users.shape[0], n_neg), generator=gen, device=dev)
        keys = self._train_keys_
        if keys is None or n_items == 1:
            return neg
        bitmap = keys.dtype == torch.bool
        last = keys.shape[0] - 1
        # resample observed (false) negatives a few times, vectorised
        for _ in range(3):
            k = users[:, None] * n_items + neg
            if bitmap:
                hit = keys[k]
            else:
                hit = keys[torch.searchsorted(keys, k).clamp_(max=last)] == k
            n_hit = int(hit.sum())
            if n_hit == 0:
                break
            neg[hit] = torch.randint(0, n_items, (n_hit,), generator=gen, device=dev)
        return neg

    def _sample_shared_negatives(self, n_neg, device):
        """``n_neg`` items drawn uniformly, shared by every row of the batch.

        Observed items are not resampled (they differ per user); the loss drops
        a row's own positive from the shared set instead (``negative_mask``).
        """
        return torch.randint(
            0, self.n_items_, (n_neg,), generator=self._negatives_generator(),
            device=device,
        )

    def _encode(self, users, items):
        """``module_.encode(users, items)``, through a data-parallel wrapper's forward.

        DDP (used by AccelerateMixin with several processes) averages gradients
        only for work done inside its ``forward``.
        """
        mod = self.module_
        if mod is not unwrap_module(mod):
            return mod(users=users, items=items)
        return mod.encode(users, items)

    def infer(self, x, **fit_params):
        """Batch outputs of a training step; pair scores outside training.

        In training mode (the module's ``training`` flag) ``x`` is a batch of
        positive pairs: negatives are sampled, the batch embeddings are built and
        passed through the regularizer, and a dict with ``"user"``, ``"item"``,
        ``"negatives"``, ``"penalty"``, ``"user_ego"`` and ``"item_ego"`` is
        returned for :meth:`get_loss`. Keeping the step in ``infer`` +
        ``get_loss`` lets skorch's ``AccelerateMixin`` (whose training step calls
        exactly these two) train the estimator unchanged.
        """
        if not self.module_.training:
            return super().infer(x, **fit_params)
        users, pos = x[:, 0], x[:, 1]
        B = users.shape[0]
        n_neg = self._n_negatives()
        shared = self._shared()
        neg_mask = None
        if n_neg:
            if shared:
                neg = self._sample_shared_negatives(n_neg, users.device)
                neg_mask = neg[None, :] == pos[:, None]
            else:
                neg = self._sample_negatives(users, n_neg)
            items = torch.cat([pos, neg.reshape(-1)])
        else:
            items = pos
        enc = self._encode(users, items)
        u, it = enc["user"], enc["item"]
        emb, penalty = self.regularize(
            {"user": u, "item": it[:B]}, {"user_ids": users, "item_ids": pos}
        )
        user_emb, item_emb = emb["user"], emb["item"]
        neg_emb = None
        if n_neg:
            neg_emb = self.regularize_extra("item", it[B:])
            if not shared:
                neg_emb = neg_emb.reshape(B, n_neg, -1)
        if self.similarity == "cosine":
            user_emb = F.normalize(user_emb, dim=-1)
            item_emb = F.normalize(item_emb, dim=-1)
            if neg_emb is not None:
                neg_emb = F.normalize(neg_emb, dim=-1)
        return {
            "user": user_emb,
            "item": item_emb,
            "negatives": neg_emb,
            "negative_mask": neg_mask,
            "penalty": penalty,
            "user_ego": enc["user_ego"],
            "item_ego": enc["item_ego"],
        }

    def get_loss(self, y_pred, y_true=None, X=None, training=False):
        """``loss + weight_decay * L2(batch ego embeddings) + penalty`` of a batch.

        ``y_pred`` is the dict :meth:`infer` returns in training mode.
        """
        if not isinstance(y_pred, dict):
            raise TypeError(
                f"{type(self).__name__}.get_loss takes the dict of batch outputs "
                "that infer() returns in training mode."
            )
        B = y_pred["user"].shape[0]
        loss = self.criterion_(
            y_pred["user"],
            y_pred["item"],
            y_pred["negatives"],
            neg_mask=y_pred.get("negative_mask"),
        )
        if self.weight_decay:
            l2 = y_pred["user_ego"].pow(2).sum() + y_pred["item_ego"].pow(2).sum()
            loss = loss + float(self.weight_decay) * 0.5 * l2 / B
        return loss + y_pred["penalty"]

    def train_step_single(self, batch, **fit_params):
        """One optimisation step on a batch of positive pairs.

        Samples negatives on the device, builds the batch embeddings, lets the
        regularizer transform/penalise them (:meth:`infer`), and backpropagates
        ``loss + weight_decay * L2(batch ego embeddings) + penalty``
        (:meth:`get_loss`).
        """
        self._set_training(True)
        Xi, _ = unpack_data(batch)
        out = self.infer(Xi, **fit_params)
        loss = self.get_loss(out, None, X=Xi, training=True)
        loss.backward()
        with torch.no_grad():
            y_pred = (out["user"] * out["item"]).sum(-1)
        return {"loss": loss, "y_pred": y_pred}

    def validation_step(self, batch, **fit_params):
        raise NotImplementedError(
            f"{type(self).__name__} has no validation loss; train_split must be None."
        )

    # ------------------------------------------------------------ embeddings
    def _compute_tables(self):
        """Ranking tables computed now from the module (no grad, eval mode)."""
        self._prepare_module()
        mod = unwrap_module(self.module_)
        was_training = mod.training
        mod.eval()
        try:
            with torch.no_grad():
                U, I = mod.tables()
                U = self.inference_table("user", U).detach()
                I = self.inference_table("item", I).detach()
                if self.similarity == "cosine":
                    U, I = F.normalize(U, dim=-1), F.normalize(I, dim=-1)
        finally:
            mod.train(was_training)
        if not (torch.isfinite(U).all() and torch.isfinite(I).all()):
            raise ModelFitError(
                f"{type(self).__name__} produced non-finite embeddings; training "
                "diverged. Lower lr or the regularizer weight and fit again."
            )
        return {"user": U, "item": I}

    def _check_ready(self):
        if not getattr(self, "initialized_", False) or not hasattr(self, "n_users_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                "with (user, item) interactions first."
            )

    def get_embedding_tensors(self):
        """``{"user": Tensor, "item": Tensor}`` on the estimator's device.

        After ``fit`` these are the cached ranking tables; during training
        (e.g. from a callback) they are computed from the current weights.
        """
        self._check_ready()
        cache = getattr(self, "embeddings_cache_", None)
        if cache is not None:
            return dict(cache)
        return self._compute_tables()

    def get_embeddings(self, X=None):
        """Return the embedding tables used for ranking.

        Parameters
        ----------
        X : ignored
            Present for the protocol shared with other estimators.

        Returns
        -------
        dict of str to ndarray
            ``"user"``: ``(n_users_, embedding_dim)``, ``"item"``:
            ``(n_items_, embedding_dim)`` float32 arrays.
        """
        tabs = self.get_embedding_tensors()
        return {name: t.detach().cpu().numpy().copy() for name, t in tabs.items()}

    # ------------------------------------------------------------ inference
    def predict(self, X):
        """Score of each ``(user, item)`` pair.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_pairs, 2)

        Returns
        -------
        ndarray of shape (n_pairs,)
            Dot products of the ranking embeddings (cosines with
            ``similarity="cosine"``), float32.
        """
        self._check_ready()
        users, items = _check_ids(X)
        _check_id_vector(users, self.n_users_, name="X[:, 0]", kind="user")
        _check_id_vector(items, self.n_items_, name="X[:, 1]", kind="item")
        tabs = self.get_embedding_tensors()
        U, I = tabs["user"], tabs["item"]
        dev = U.device
        out = np.empty(users.shape[0], dtype=np.float32)
        step = 1 << 16
        for start in range(0, users.shape[0], step):
            u = torch.from_numpy(users[start : start + step]).to(dev)
            i = torch.from_numpy(items[start : start + step]).to(dev)
            s = (U.index_select(0, u) * I.index_select(0, i)).sum(-1)
            out[start : start + step] = s.float().cpu().numpy()
        return out

    def _liked_tensors(self):
        liked = getattr(self, "_liked_", None)
        if liked is None:
            R = self.user_items_.tocsr()
            dev = self._device()
            liked = (
                torch.from_numpy(R.indptr.astype(np.int64)).to(dev),
                torch.from_numpy(R.indices.astype(np.int64)).to(dev),
            )
            self._liked_ = liked
        return liked

    @staticmethod
    def _rows_of(indptr, indices, rows):
        """(row position, column) pairs of the CSR rows ``rows`` (vectorised)."""
        starts = indptr.index_select(0, rows)
        counts = indptr.index_select(0, rows + 1) - starts
        total = int(counts.sum())
        pos = torch.repeat_interleave(torch.arange(rows.shape[0], device=rows.device),
                                      counts)
        if total == 0:
            return pos, pos
        offsets = torch.cumsum(counts, 0) - counts
        within = torch.arange(total, device=rows.device) - offsets.repeat_interleave(
            counts
        )
        cols = indices.index_select(0, starts.repeat_interleave(counts) + within)
        return pos, cols

    def _topk(self, queries, table, n, *, exclude=None, filter_items=None, items=None):
        """Top-``n`` rows of ``table`` for each query row, in blocks.

        ``exclude(block_slice) -> (rows, cols)`` gives per-query exclusions in
        catalogue ids; ``filter_items`` excludes ids for everybody; ``items``
        restricts the candidates.
        """
        dev = table.device
        n_items = table.shape[0]
        lookup = None
        if items is not None:
            cand = torch.from_numpy(items).to(dev)
            cand_table = table.index_select(0, cand)
            lookup = torch.full((n_items,), -1, dtype=torch.long, device=dev)
            lookup[cand] = torch.arange(cand.shape[0], device=dev)
        else:
            cand = None
            cand_table = table
        n_cand = cand_table.shape[0]
        n_out = min(int(n), n_cand)
        filt = None
        if filter_items is not None and filter_items.size:
            filt = torch.from_numpy(filter_items).to(dev)
            if lookup is not None:
                filt = lookup[filt]
                filt = filt[filt >= 0]
        n_q = queries.shape[0]
        ids_out = np.empty((n_q, n_out), dtype=np.int64)
        sc_out = np.empty((n_q, n_out), dtype=np.float32)
        block = max(1, _RANK_BLOCK // max(n_cand, 1))
        neg_inf = float("-inf")
        for start in range(0, n_q, block):
            stop = min(n_q, start + block)
            S = queries[start:stop] @ cand_table.T
            if exclude is not None:
                rows, cols = exclude(start, stop)
                if lookup is not None:
                    cols = lookup[cols]
                    keep = cols >= 0
                    rows, cols = rows[keep], cols[keep]
                S[rows, cols] = neg_inf
            if filt is not None:
                S[:, filt] = neg_inf
            vals, idx = torch.topk(S, n_out, dim=1)
            if cand is not None:
                idx = cand[idx]
            idx = torch.where(torch.isinf(vals) & (vals < 0), -1, idx)
            ids_out[start:stop] = idx.cpu().numpy()
            sc_out[start:stop] = vals.float().cpu().numpy()
        return ids_out, sc_out

    def _check_item_list(self, values, name):
        if values is None:
            return None
        arr, _ = _check_id_vector(values, self.n_items_, name=name, kind="item")
        return arr

    def recommend(
        self,
        user_ids,
        user_items=None,
        *,
        n=10,
        filter_already_liked_items=True,
        filter_items=None,
        items=None,
    ):
        """Top-``n`` items for each user, ranking all items on the device.

        Parameters
        ----------
        user_ids : int or array-like of shape (n_users_query,)
            Users to recommend for (ids in ``[0, n_users_)``).
        user_items : sparse matrix of shape (n_users_query, n_items_), default=None
            Items to treat as already liked, one row per entry of ``user_ids``.
            ``None`` uses the training interactions (``user_items_``).
        n : int, default=10
            Number of items per user. Fewer columns are returned when fewer
            candidates exist; rows with fewer valid candidates are padded with id
            ``-1`` and score ``-inf``.
        filter_already_liked_items : bool, default=True
            Exclude the liked items from the ranking.
        filter_items : array-like of int, default=None
            Items excluded for every user.
        items : array-like of int, default=None
            Restrict the ranking to these candidate items.

        Returns
        -------
        ids : ndarray of shape (n_users_query, n) or (n,)
            Item ids, best first (1-D when ``user_ids`` is a scalar).
        scores : ndarray of the same shape
            Their scores (float32).
        """
        self._check_ready()
        _check_positive_int(n, "n")
        users, scalar = _check_id_vector(
            user_ids, self.n_users_, name="user_ids", kind="user"
        )
        if filter_items is not None and items is not None:
            raise ValueError(
                "filter_items and items are contradictory: pass the allowed items "
                "through items only."
            )
        filt = self._check_item_list(filter_items, "filter_items")
        cand = self._check_item_list(items, "items")
        if cand is not None:
            if cand.size == 0:
                raise ValueError("items is empty; give at least one candidate item.")
            if np.unique(cand).size != cand.size:
                raise ValueError("items contains duplicate ids.")
        tabs = self.get_embedding_tensors()
        U, I = tabs["user"], tabs["item"]
        dev = U.device
        users_t = torch.from_numpy(users).to(dev)
        exclude = None
        if filter_already_liked_items:
            if user_items is not None:
                if not sp.issparse(user_items):
                    raise TypeError(
                        "user_items must be a scipy sparse matrix of shape "
                        f"(len(user_ids), n_items_), got {type(user_items).__name__}."
                    )
                R = sp.csr_matrix(user_items)
                if R.shape != (users.shape[0], self.n_items_):
                    raise ValueError(
                        f"user_items must have shape ({users.shape[0]}, "
                        f"{self.n_items_}), got {R.shape}."
                    )
                indptr = torch.from_numpy(R.indptr.astype(np.int64)).to(dev)
                indices = torch.from_numpy(R.indices.astype(np.int64)).to(dev)
                row_ids = torch.arange(users.shape[0], device=dev)
            else:
                indptr, indices = self._liked_tensors()
                row_ids = users_t

            def exclude(start, stop):
                return self._rows_of(indptr, indices, row_ids[start:stop])

        queries = U.index_select(0, users_t)
        ids, scores = self._topk(
            queries, I, n, exclude=exclude, filter_items=filt, items=cand
        )
        if scalar:
            return ids[0], scores[0]
        return ids, scores

    def similar_items(self, item_ids, *, n=10, filter_items=None, items=None):
        """Most similar items by cosine similarity of the ranking embeddings.

        Parameters
        ----------
        item_ids : int or array-like of shape (n_queries,)
        n : int, default=10
            The query item itself is included (similarity 1).
        filter_items, items : array-like of int, default=None
            As in :meth:`recommend`.

        Returns
        -------
        ids, scores : ndarray of shape (n_queries, n) or (n,)
        """
        self._check_ready()
        _check_positive_int(n, "n")
        q, scalar = _check_id_vector(item_ids, self.n_items_, name="item_ids", kind="item")
        if filter_items is not None and items is not None:
            raise ValueError(
                "filter_items and items are contradictory: pass the allowed items "
                "through items only."
            )
        filt = self._check_item_list(filter_items, "filter_items")
        cand = self._check_item_list(items, "items")
        I = F.normalize(self.get_embedding_tensors()["item"], dim=1)
        queries = I.index_select(0, torch.from_numpy(q).to(I.device))
        ids, scores = self._topk(queries, I, n, filter_items=filt, items=cand)
        if scalar:
            return ids[0], scores[0]
        return ids, scores

    def score(self, X, y=None):
        """NDCG@``k`` of held-out pairs, training items excluded from the ranking.

        Users or items outside the fitted range count as misses (one warning).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_pairs, 2)
            Held-out ``(user, item)`` interactions.
        y : ignored

        Returns
        -------
        float
        """
        self._check_ready()
        return ranking_scorer("ndcg", k=self.k)(self, X)

    # ------------------------------------------------------------ sklearn glue
    def __sklearn_is_fitted__(self):
        return super().__sklearn_is_fitted__() and (
            getattr(self, "embeddings_cache_", None) is not None
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.input_tags.two_d_array = True
        tags.input_tags.positive_only = True
        tags.non_deterministic = self.random_state is None
        return tags

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_generator_", None)
        state.pop("_negative_generator_", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._generator_ = None
        self._negative_generator_ = None


_SHARED_PARAMS = """
    n_users : int, default=None
        Number of users; ``None`` infers ``max(user id) + 1`` at fit. Give it when
        cross-validation folds may miss the largest ids.
    n_items : int, default=None
        Number of items, as ``n_users``.
    embedding_dim : int, default=64
        Width of the user and item embeddings.
    loss : {"bpr", "bce", "softmax", "align"}, default="bpr"
        Training objective (see :class:`CFLoss`).
    n_negatives : int, default=None
        Uniformly sampled negatives per positive (``negative_sampling=
        "independent"``) or per batch (``"shared"``). ``None``: 1 for ``"bpr"``,
        4 for ``"bce"``, 128 for ``"softmax"`` with independent negatives,
        ``batch_size`` with shared ones; none for ``"align"``.
    negative_sampling : {"independent", "shared"}, default="independent"
        ``"independent"``: every positive gets its own negatives, and items the
        user has observed are resampled. ``"shared"``: one uniform set for the
        whole batch, scored with a single matrix product (far cheaper per
        negative, so hundreds or thousands of negatives become affordable, as in
        sampled-softmax training); a negative equal to the row's positive is
        left out of that row's loss, other observed items are not filtered.
    similarity : {"dot", "cosine"}, default="dot"
        Score used in training and ranking: ``<p_u, q_i>``, or the cosine
        ``<p_u, q_i> / (|p_u| |q_i|)``. With ``"cosine"`` the ranking tables
        (:meth:`get_embeddings`) are row-normalised. Cosine scores pair with a
        softmax ``temperature`` well below 1 (0.05 to 0.2).
    temperature : float, default=1.0
        Temperature of the ``"softmax"`` loss.
    weight_decay : float, default=1e-4
        L2 penalty ``weight_decay / 2 * sum ||e||^2 / batch_size`` on the ego
        embeddings of the batch (users, positives and negatives).
    init_std : float, default=0.1
        Standard deviation of the normal initialisation of the embeddings.
    k : int, default=20
        Cut-off of the NDCG used by :meth:`score`.
    regularizer : None, str, Regularizer class or instance, or callable, default=None
        Anti-collapse regularizer applied to the batch embeddings (see
        :mod:`skcollapse.regularizers`); its parameters route as
        ``regularizer__<name>``, e.g. ``regularizer__weight``.
    random_state : int, RandomState or None, default=None
        Seeds the initialisation, the shuffling and the negative sampling.
"""

_SHARED_TAIL = """
    lr : float
        Learning rate.
    max_epochs : int
        Training epochs.
    batch_size : int, default=2048
        Positive pairs per step.
    callbacks : list or None, default=None
        skorch callbacks, e.g. ``[CollapseMonitor()]`` or
        ``[skorch.callbacks.ProgressBar()]`` for a progress bar.
    warm_start : bool, default=False
        Continue training on the next ``fit`` instead of re-initialising.
    verbose : int, default=0
        ``1`` prints skorch's per-epoch log table.
    device : str, default="cpu"
        ``"cuda"`` trains and ranks on the GPU.
    **kwargs
        Other :class:`skorch.NeuralNet` arguments (``module__*``,
        ``optimizer__*``, ``iterator_train__batch_size``, ...).

    Attributes
    ----------
    n_users_ : int
        Number of users of the fitted model.
    n_items_ : int
        Number of items of the fitted model.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users_, n_items_)
        Binary training interactions (filtered out by :meth:`recommend`).
    item_popularity_ : ndarray of shape (n_items_,)
        Training interaction count of each item.
    module_ : torch.nn.Module
        The trained encoder.
    regularizer_ : Regularizer or None
        The regularizer built from ``regularizer``.
    embeddings_cache_ : dict of str to torch.Tensor
        Ranking tables computed once after training.
    history_ : skorch.History
        Per-epoch records (``train_loss``, ``dur``, ``regularizer_penalty``, and
        whatever callbacks such as :class:`~skcollapse.callbacks.CollapseMonitor`
        add).
"""


class MFRecommender(_CFRecommender):
    __doc__ = (
        """Matrix factorisation recommender trained on implicit feedback.

    ``score(u, i) = <p_u, q_i>`` with one joint embedding table. With the default
    optimiser (:class:`~skcollapse.nn.SparseRowAdam`) only the rows of the batch
    are touched per step (sparse gradients), which keeps epochs cheap on large
    catalogues.

    Parameters
    ----------"""
        + _SHARED_PARAMS
        + """    module : torch.nn.Module class, default=None
        Encoder with ``encode(users, items)`` and ``tables()``; ``None`` uses
        :class:`~skcollapse.nn.MatrixFactorization`.
    optimizer : torch optimizer class, default=None
        ``None`` uses :class:`~skcollapse.nn.SparseRowAdam` (sparse gradients).
        Other optimisers train a dense table."""
        + _SHARED_TAIL.replace(
            "    lr : float\n        Learning rate.",
            "    lr : float, default=0.005\n        Learning rate.",
        ).replace(
            "    max_epochs : int\n", "    max_epochs : int, default=30\n"
        )
        + """
    See Also
    --------
    LightGCNRecommender : graph-propagated embeddings.

    Examples
    --------
    >>> from skcollapse.datasets import make_interactions
    >>> from skcollapse.recommenders import MFRecommender
    >>> X = make_interactions(200, 100, random_state=0)
    >>> model = MFRecommender(embedding_dim=16, max_epochs=2, random_state=0).fit(X)
    >>> ids, scores = model.recommend([0, 1], n=5)
    >>> ids.shape
    (2, 5)
    >>> model.get_embeddings()["item"].shape
    (100, 16)
    """
    )

    def __init__(self, *, lr=5e-3, max_epochs=30, **kwargs):
        super().__init__(lr=lr, max_epochs=max_epochs, **kwargs)

    def _default_module(self):
        return MatrixFactorization

    def _default_optimizer(self):
        return SparseRowAdam

    def _module_kwargs(self):
        kwargs = super()._module_kwargs()
        optimizer = self.optimizer if self.optimizer is not None else SparseRowAdam
        module = self.module if self.module is not None else MatrixFactorization
        if module is MatrixFactorization or (
            isinstance(module, type) and issubclass(module, MatrixFactorization)
        ):
            kwargs["sparse"] = isinstance(optimizer, type) and issubclass(
                optimizer, _SPARSE_OPTIMIZERS
            )
        return kwargs


class LightGCNRecommender(_CFRecommender):
    __doc__ = (
        """LightGCN recommender (He et al., SIGIR 2020) on implicit feedback.

    Ego embeddings are propagated over the symmetric-normalised user-item graph
    (built once per fit as a torch sparse CSR matrix) for ``n_layers`` layers and
    averaged. Ranking, ``predict`` and ``get_embeddings`` use the propagated
    embeddings, computed once after training.

    Parameters
    ----------"""
        + _SHARED_PARAMS
        + """    n_layers : int, default=3
        Propagation layers (``0`` is matrix factorisation).
    module : torch.nn.Module class, default=None
        ``None`` uses :class:`~skcollapse.nn.LightGCN`.
    optimizer : torch optimizer class, default=None
        ``None`` uses :class:`torch.optim.Adam` (fused)."""
        + _SHARED_TAIL.replace(
            "    lr : float\n        Learning rate.",
            "    lr : float, default=0.005\n        Learning rate.",
        ).replace(
            "    max_epochs : int\n", "    max_epochs : int, default=30\n"
        )
        + """
    See Also
    --------
    MFRecommender : the same objective without propagation.

    References
    ----------
    He, Deng, Wang, Li, Zhang, Wang. "LightGCN: Simplifying and Powering Graph
    Convolution Network for Recommendation." SIGIR 2020.

    Examples
    --------
    >>> from skcollapse.datasets import make_interactions
    >>> from skcollapse.recommenders import LightGCNRecommender
    >>> X = make_interactions(200, 100, random_state=0)
    >>> model = LightGCNRecommender(embedding_dim=16, max_epochs=2,
    ...                             random_state=0).fit(X)
    >>> model.recommend(3, n=4)[0].shape
    (4,)
    """
    )

    def __init__(self, *, n_layers=3, lr=5e-3, max_epochs=30, **kwargs):
        super().__init__(lr=lr, max_epochs=max_epochs, **kwargs)
        self.n_layers = n_layers

    def _check_cf_params(self):
        super()._check_cf_params()
        _check_positive_int(self.n_layers, "n_layers", minimum=0)

    def _default_module(self):
        return LightGCN

    def _module_kwargs(self):
        kwargs = super()._module_kwargs()
        kwargs["n_layers"] = int(self.n_layers)
        return kwargs

    def _prepare_module(self):
        mod = unwrap_module(self.module_)
        if not hasattr(mod, "set_adjacency"):
            return
        if getattr(mod, "adjacency", None) is not None and getattr(
            self, "_adjacency_for_", None
        ) is self.user_items_:
            return
        mod.set_adjacency(normalized_adjacency(self.user_items_, device=self._device()))
        self._adjacency_for_ = self.user_items_

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_adjacency_for_", None)
        return state
