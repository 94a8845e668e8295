"""CTR classifiers with single or multiple embedding sets, as skorch estimators.

Input is an integer field matrix ``X`` of shape ``(n_samples, n_fields)`` (ndarray
or DataFrame, e.g. the output of ``OrdinalEncoder(handle_unknown=
"use_encoded_value", unknown_value=-1)``) and binary labels ``y`` (clicks 0/1, or
any two labels, the larger one being the positive class). Field
``f`` has ``cardinalities[f]`` known codes ``0..cardinalities[f]-1``; every other
code (negative, too large, unseen at fit) is looked up in that field's
out-of-vocabulary (OOV) row, never an index error.

Embedding tables are named like the fields (DataFrame column names, else
``"x0", "x1", ...``) for one embedding set, and ``"<field>/set<m>"`` for
``n_embedding_sets > 1``; these names key ``get_embeddings()`` and the dict
of ``(batch, embedding_dim)`` tensors a regularizer receives.
"""

from __future__ import annotations

import numbers
from typing import ClassVar

import numpy as np
import torch
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import column_or_1d
from skorch import NeuralNetBinaryClassifier
from skorch.dataset import unpack_data
from skorch.utils import to_numpy, to_tensor
from torch.utils.data import DataLoader, Dataset, Subset

from skcollapse.nn._ctr_models import (
    DNN,
    FM,
    IPNN,
    DCNv2,
    DeepFM,
    FinalMLP,
    NFwFM,
    XDeepFM,
)
from skcollapse.recommenders._base import NetBase
from skcollapse.utils._distributed import unwrap_module
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    int_sequence,
    real_interval,
    validate_data,
)

__all__ = [
    "DCNv2Classifier",
    "DNNClassifier",
    "DeepFMClassifier",
    "FMClassifier",
    "FinalMLPClassifier",
    "IPNNClassifier",
    "NFwFMClassifier",
    "xDeepFMClassifier",
]

# A field whose inferred cardinality exceeds this many codes per training row (and
# this absolute floor) almost surely holds raw ids instead of category codes.
_MAX_CODES_PER_ROW = 10
_MAX_CODES_FLOOR = 100_000


def _check_field_matrix(X, name="X"):
    """Return ``X`` (already 2-D, finite) as an int64 array of category codes."""
    X = np.asarray(X)
    if X.dtype.kind == "b":
        return X.astype(np.int64)
    if X.dtype.kind in "iu":
        if X.dtype.kind == "u" and X.size and X.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} holds codes too large for int64.")
        return X.astype(np.int64, copy=False)
    if X.dtype.kind == "f":
        if X.size and not np.array_equal(X, np.floor(X)):
            raise ValueError(
                f"{name} must hold integer category codes; it has non-integral "
                "values. Encode numeric columns first (e.g. KBinsDiscretizer("
                "encode='ordinal')) and categories with OrdinalEncoder."
            )
        if X.size and np.abs(X).max() > 2**53:
            raise ValueError(f"{name} holds codes too large to be exact in float64.")
        return X.astype(np.int64)
    raise TypeError(
        f"{name} must be an integer field matrix (category codes), got dtype "
        f"{X.dtype}. Encode categories with OrdinalEncoder(handle_unknown="
        "'use_encoded_value', unknown_value=-1) first."
    )


def _check_target(y, owner="CTR classifier"):
    """Validate a binary target: 1-D (a column vector is raveled with a warning)."""
    if y is None:
        raise ValueError(f"{owner} requires y to be passed, but the target y is None.")
    y = column_or_1d(y, warn=True)
    if y.shape[0] == 0:
        raise ValueError("y is empty.")
    kind = type_of_target(y, input_name="y")
    if kind == "continuous":
        raise ValueError(
            "Unknown label type: continuous. y must hold two classes (clicks), "
            "not continuous values."
        )
    if kind not in ("binary", "multiclass"):
        raise ValueError(f"Unknown label type: {kind}. y must hold two classes.")
    return y


def _sigmoid_proba(logits):
    """``(n,)`` logits to ``(n, 2)`` float64 class probabilities.

    In float64: torch's vectorised float32 sigmoid and its scalar tail differ by
    a few ulps, so a row's probability would depend on its position in the
    batch (scikit-learn's sample-order invariance check catches it).
    """
    p = torch.sigmoid(logits.double())
    return torch.stack((1 - p, p), dim=1)


class _FieldDataset(Dataset):
    """Field matrix and targets as tensors; batches are read by slicing."""

    def __init__(self, X, y=None):
        if not X.flags.writeable:
            X = X.copy()
        self.X = torch.as_tensor(X, dtype=torch.long)
        self.y = None if y is None else torch.as_tensor(y, dtype=torch.float32)

    def __len__(self):
        return self.X.shape[0]

    def __getitem__(self, i):
        return self.X[i], (self.y[i] if self.y is not None else torch.zeros(()))


class _BatchLoader:
    """Vectorised mini-batches of a :class:`_FieldDataset` (or a Subset of one).

    Each batch is one index-select of the stored tensors instead of the
    per-sample ``__getitem__`` + collate of a ``DataLoader``. With
    ``merge_single=True`` (training) a final batch of one row joins the batch
    before it, so that batch normalisation, which needs two rows, trains on any
    number of rows (2,049 rows at ``batch_size=2048`` give one batch of 2,049).
    """

    def __init__(self, dataset, indices, batch_size, shuffle, generator,
                 merge_single=False):
        self.dataset = dataset
        self.indices = indices
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.merge_single = merge_single

    def _n(self):
        return len(self.dataset) if self.indices is None else len(self.indices)

    def _bounds(self, n):
        starts = list(range(0, n, self.batch_size))
        stops = [*starts[1:], n]
        if self.merge_single and len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
            stops.pop()
            stops[-1] = n
        return zip(starts, stops)

    def __len__(self):
        return sum(1 for _ in self._bounds(self._n()))

    def __iter__(self):
        X, y = self.dataset.X, self.dataset.y
        idx = self.indices
        n = X.shape[0] if idx is None else idx.shape[0]
        if self.shuffle:
            perm = torch.randperm(n, generator=self.generator)
            idx = perm if idx is None else idx[perm]
        for start, stop in self._bounds(n):
            if idx is None:
                sl = slice(start, stop)
                yield X[sl], (None if y is None else y[sl])
            else:
                b = idx[start:stop]
                yield X[b], (None if y is None else y[b])


def _unwrap_dataset(dataset):
    """``(base _FieldDataset, index tensor or None)`` or ``(None, None)``."""
    if isinstance(dataset, _FieldDataset):
        return dataset, None
    if isinstance(dataset, Subset):
        base, idx = _unwrap_dataset(dataset.dataset)
        if base is None:
            return None, None
        sub = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)
        return base, (sub if idx is None else idx[sub])
    return None, None


class _CTRClassifierBase(NetBase, NeuralNetBinaryClassifier):
    """Shared machinery of the CTR classifiers (see the concrete classes)."""

    #: constructor parameters forwarded to the module
    _module_params: ClassVar[tuple[str, ...]] = ()
    _fitted_attributes = ("field_dims_", "embedding_names_", "classes_inferred_")
    _transient_attributes: ClassVar[tuple[str, ...]] = (
        *NetBase._transient_attributes,
        "_shuffle_generator_",
        "_batch_penalty_",
    )
    _parameter_constraints: ClassVar[dict] = {
        **NetBase._parameter_constraints,
        "embedding_dim": [int_interval(1, None, closed="left")],
        "n_embedding_sets": [int_interval(1, None, closed="left")],
        "cardinalities": [int_interval(1, None, closed="left"), int_sequence(), None],
    }

    def __init__(
        self,
        module,
        *,
        embedding_dim=10,
        n_embedding_sets=1,
        cardinalities=None,
        regularizer=None,
        random_state=None,
        criterion=torch.nn.BCEWithLogitsLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=2048,
        train_split=None,
        device="cpu",
        verbose=0,
        **kwargs,
    ):
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            device=device,
            verbose=verbose,
            **kwargs,
        )
        self.embedding_dim = embedding_dim
        self.n_embedding_sets = n_embedding_sets
        self.cardinalities = cardinalities
        self.regularizer = regularizer
        self.random_state = random_state

    def _cardinalities_spec(self):
        """``None``, an int, or a list of ints from ``cardinalities``."""
        c = self.cardinalities
        if c is None or isinstance(c, numbers.Integral):
            return None if c is None else int(c)
        return [int(v) for v in c]

    # ------------------------------------------------------------ module
    def _field_dims_without_data(self):
        spec = self._cardinalities_spec()
        if isinstance(spec, list):
            return spec
        # two-field placeholder (pair models need two) until on_train_begin
        return [spec if isinstance(spec, int) else 1] * 2

    def _component_kwargs(self, prefix):
        """The module's field sizes and architecture parameters.

        Before the training data is known (``initialize()`` of a fresh fit) the
        module is built from ``cardinalities`` when it is a full sequence (or
        the sizes of an earlier fit), else from a two-field placeholder;
        :meth:`on_train_begin` rebuilds it from the training data.
        """
        if prefix != "module":
            return super()._component_kwargs(prefix)
        dims = getattr(self, "_pending_field_dims_", None)
        if dims is None:
            # a re-initialisation of a fitted net (e.g. set_params(module__...))
            # keeps the fitted tables' sizes; a fresh fit resizes them anyway
            dims = getattr(self, "field_dims_", None)
        if dims is None:
            dims = self._field_dims_without_data()
        kwargs = {
            "field_dims": list(dims),
            "embedding_dim": self.embedding_dim,
            "n_embedding_sets": self.n_embedding_sets,
        }
        for name in self._module_params:
            kwargs[name] = getattr(self, name)
        return kwargs

    def initialize_module(self):
        """Build the module (see :meth:`_component_kwargs` for its sizes)."""
        super().initialize_module()
        self._module_from_data_ = getattr(
            self, "_pending_field_dims_", None
        ) is not None or isinstance(self._cardinalities_spec(), list)
        return self

    def _infer_field_dims(self, X):
        n_samples, n_fields = X.shape
        spec = self._cardinalities_spec()
        if isinstance(spec, list):
            if len(spec) != n_fields:
                raise ValueError(
                    f"cardinalities has {len(spec)} entries but X has {n_fields} "
                    "fields."
                )
            return spec
        if isinstance(spec, int):
            return [spec] * n_fields
        dims = np.maximum(np.where(X >= 0, X, -1).max(axis=0) + 1, 1)
        limit = max(_MAX_CODES_PER_ROW * n_samples, _MAX_CODES_FLOOR)
        if (dims > limit).any():
            f = int(np.argmax(dims))
            raise ValueError(
                f"field {f} of X has codes up to {int(dims[f]) - 1} for only "
                f"{n_samples} rows: X looks like raw ids, not category codes. Encode "
                "it with OrdinalEncoder or pass cardinalities=."
            )
        return [int(d) for d in dims]

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Validate the training data and size the embedding tables from it."""
        if isinstance(X, Dataset):
            raise TypeError(
                "CTR classifiers take an integer field matrix (ndarray or "
                "DataFrame) as X, not a torch Dataset."
            )
        fresh = not getattr(self, "_module_from_data_", False) or not hasattr(
            self, "field_dims_"
        )
        yc = _check_target(y, type(self).__name__)
        classes = np.unique(yc)
        if classes.shape[0] > 2:
            raise ValueError(
                "Only binary classification is supported: y has "
                f"{classes.shape[0]} classes; CTR models predict a click "
                "probability."
            )
        if fresh and classes.shape[0] < 2:
            raise ValueError(
                f"y has one class ({classes[0]!r}); training needs both classes "
                "(clicks and non-clicks)."
            )
        Xc = validate_data(self, X, reset=fresh, dtype=None, ensure_min_features=1)
        Xc = _check_field_matrix(Xc)
        if yc.shape[0] != Xc.shape[0]:
            raise ValueError(
                f"X has {Xc.shape[0]} rows but y has {yc.shape[0]} entries."
            )
        if fresh:
            self.classes_inferred_ = classes
            dims = self._infer_field_dims(Xc)
            self._pending_field_dims_ = dims
            try:
                self._resize_to_data()
            finally:
                del self._pending_field_dims_
            self.field_dims_ = dims
            names = [str(c) for c in getattr(self, "feature_names_in_", [])] or [
                f"x{f}" for f in range(len(dims))
            ]
            self.field_names_ = names
            self.embedding_names_ = self._table_names(names)
        # dropout draws from the forked global RNG seeded by partial_fit
        seed = getattr(self, "_fit_seed_", None)
        self._shuffle_generator_ = (
            None if seed is None else torch.Generator().manual_seed(seed + 2)
        )
        super().on_train_begin(net, X=X, y=y, **kwargs)

    def _table_names(self, field_names):
        if unwrap_module(self.module_).n_embedding_sets == 1:
            return list(field_names)
        return [
            f"{f}/set{m}"
            for m in range(unwrap_module(self.module_).n_embedding_sets)
            for f in field_names
        ]

    def get_regularizer_info(self, X, y=None):
        return {
            "field_dims": list(self.field_dims_),
            "tables": {name: unwrap_module(self.module_).embedding_dim
                       for name in self.embedding_names_},
        }

    # ------------------------------------------------------------ data
    def get_dataset(self, X, y=None):
        """Validate ``X`` (and ``y``) and wrap them in a sliceable dataset."""
        if isinstance(X, Dataset):
            return super().get_dataset(X, y)
        Xc = validate_data(self, X, reset=False, dtype=None, ensure_min_features=1)
        Xc = _check_field_matrix(Xc)
        yc = None if y is None else self._encode_target(y)
        if yc is not None and yc.shape[0] != Xc.shape[0]:
            raise ValueError(
                f"X has {Xc.shape[0]} rows but y has {yc.shape[0]} entries."
            )
        return _FieldDataset(Xc, yc)

    def _encode_target(self, y):
        """Map ``y`` to 0/1 floats (1 for ``classes_[1]``, the positive class)."""
        y = _check_target(y)
        classes = self.classes_
        known = np.isin(y, classes)
        if not known.all():
            raise ValueError(
                f"y holds labels {np.unique(y[~known])[:5].tolist()} not among the "
                f"classes {classes.tolist()} seen at the start of training."
            )
        return (y == classes[1]).astype(np.float32)

    def check_data(self, X, y=None):
        """Data are validated in :meth:`on_train_begin` and :meth:`get_dataset`."""

    @property
    def classes_(self):
        """The two class labels seen at fit, sorted; ``classes_[1]`` is a click."""
        return getattr(self, "classes_inferred_", np.array([0, 1]))

    def predict(self, X):
        """Class labels: ``classes_[1]`` where ``P(click) > threshold``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_fields)
            Integer field matrix.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[(proba[:, 1] > self.threshold).astype(np.int64)]

    def get_iterator(self, dataset, training=False):
        """Batches by slicing the stored tensors (no per-sample collate).

        Falls back to skorch's iterator for other datasets, custom iterator
        classes or iterator arguments other than ``batch_size``/``shuffle``.
        """
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = self.get_params_for(prefix)
        base, idx = _unwrap_dataset(dataset)
        if (
            base is None
            or getattr(self, prefix) is not DataLoader
            or set(kwargs) - {"batch_size", "shuffle"}
            # AccelerateMixin: accelerate shards and places only DataLoaders
            or getattr(self, "accelerator", None) is not None
        ):
            return super().get_iterator(dataset, training=training)
        batch_size = kwargs.get("batch_size", self.batch_size)
        if batch_size == -1:
            batch_size = len(dataset)
        shuffle = kwargs.get("shuffle", training)
        gen = getattr(self, "_shuffle_generator_", None) if training else None
        return _BatchLoader(base, idx, max(int(batch_size), 1), bool(shuffle), gen,
                            merge_single=training)

    # ------------------------------------------------------------ steps
    def _embedding_dict(self, e):
        m_sets, _, n_fields, _ = e.shape
        names = self.embedding_names_
        return {names[m * n_fields + f]: e[m, :, f] for m in range(m_sets)
                for f in range(n_fields)}

    def _restack(self, tables, e):
        m_sets, batch, n_fields, k = e.shape
        names = self.embedding_names_
        return torch.stack([tables[n] for n in names], dim=1).view(
            batch, m_sets, n_fields, k
        ).transpose(0, 1)

    def train_step_single(self, batch, **fit_params):
        """Forward with the regularizer on the batch embeddings, then backward.

        The step is :meth:`infer` (regularizer on the batch embeddings) and
        :meth:`get_loss` (adds its penalty): the two calls skorch's
        ``AccelerateMixin`` makes in its own training step.
        """
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def infer(self, x, **fit_params):
        """Logits ``(batch,)``.

        In training mode the regularizer transforms/penalises the batch
        embeddings (its penalty is kept for :meth:`get_loss`); a ``"layer"``
        regularizer is also applied in eval mode.
        """
        x = to_tensor(x, device=self.device)
        reg = getattr(self, "regularizer_", None)
        if reg is not None and self.module_.training:
            e = unwrap_module(self.module_).embed(x)
            tables = self._embedding_dict(e)
            out, penalty = self.regularize(tables, {"X": x})
            self._batch_penalty_ = penalty
            if any(out[n] is not tables[n] for n in tables):
                e = self._restack(out, e)
            # through the (possibly DDP-wrapped) module: one forward per step
            return self.module_(x, embeddings=e).reshape(-1)
        if reg is not None and reg.kind == "layer" and not self.module_.training:
            e = unwrap_module(self.module_).embed(x)
            tables = {n: self.inference_table(n, t)
                      for n, t in self._embedding_dict(e).items()}
            return self.module_(x, embeddings=self._restack(tables, e)).reshape(-1)
        return self.module_(x, **fit_params).reshape(-1)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The criterion, plus the regularizer penalty of the training batch."""
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        penalty = self.__dict__.pop("_batch_penalty_", None)
        if training and penalty is not None:
            loss = loss + penalty
        return loss

    def _get_predict_nonlinearity(self):
        # skorch infers the nonlinearity only for nets with a single criterion;
        # ``regularizer_`` is registered as a second one, so say it here.
        criterion = getattr(self, "criterion_", None)
        if self.predict_nonlinearity == "auto" and isinstance(
            criterion, torch.nn.BCEWithLogitsLoss
        ):
            return _sigmoid_proba
        return super()._get_predict_nonlinearity()

    # ------------------------------------------------------------ embeddings
    def _field_index(self, field):
        self._check_fitted()
        if isinstance(field, (numbers.Integral, np.integer)) and not isinstance(
            field, bool
        ):
            if not 0 <= field < len(self.field_dims_):
                raise ValueError(
                    f"field index {field} out of range [0, {len(self.field_dims_)})."
                )
            return int(field)
        if isinstance(field, str) and field in self.field_names_:
            return self.field_names_.index(field)
        raise ValueError(
            f"unknown field {field!r}; use an index or one of {self.field_names_}."
        )

    def get_embedding_tensors(self):
        """Embedding tables as tensors on the estimator's device (see
        :meth:`get_embeddings`)."""
        self._check_fitted()
        emb = unwrap_module(self.module_).embedding
        n_fields = len(self.field_dims_)
        out = {}
        with torch.no_grad():
            for i, name in enumerate(self.embedding_names_):
                m, f = divmod(i, n_fields)
                out[name] = self.inference_table(name, emb.table(f, m).detach())
        return out

    def get_embeddings(self, X=None):
        """Embedding tables, one per field (and per embedding set).

        Parameters
        ----------
        X : ignored, default=None
            Present for the embeddings protocol.

        Returns
        -------
        dict of str to ndarray of shape (cardinality, embedding_dim)
            Keys are :attr:`embedding_names_` (the field name, or
            ``"<field>/set<m>"`` with several sets); rows are the known codes of
            the field (the OOV row is left out). A ``"layer"`` regularizer is
            applied as at inference.
        """
        return super().get_embeddings(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.categorical = True
        return tags


_COMMON_DOC = """
    embedding_dim : int, default={dim}
        Size ``K`` of each embedding vector.
    n_embedding_sets : int, default=1
        Number ``M`` of embedding sets. 1 is the single-embedding model; with
        ``M > 1`` each set has its own tables, interaction and non-linear
        projection, averaged before the shared head (Guo et al., 2024).
    cardinalities : int, sequence of int or None, default=None
        Known codes per field. ``None`` infers ``max code + 1`` per field at
        fit; codes outside ``[0, cardinality)`` use the field's OOV row.
    regularizer : None, str, Regularizer class or instance, or callable, \
default=None
        Anti-collapse regularizer applied to the batch embeddings; its
        parameters route as ``regularizer__<name>``.
    random_state : int, RandomState or None, default=None
        Seeds the initialisation (without touching torch's global RNG), the
        batch order, and torch's global RNG at the start of ``fit`` (dropout).
    criterion, optimizer, lr, max_epochs, batch_size, train_split, device, \
verbose
        skorch parameters (defaults ``BCEWithLogitsLoss``, ``Adam``, 1e-3, 10,
        2048, ``None`` i.e. no internal validation split, ``"cpu"``, 0). Guo et
        al. train with Adam, lr 1e-3, batch 2048, ``optimizer__weight_decay=1e-6``
        and early stopping on validation AUC (use ``train_split=ValidSplit(..)``
        with ``EpochScoring("roc_auc")`` and ``EarlyStopping``).
    **kwargs
        Other skorch ``NeuralNet`` parameters (``callbacks``, ``module__*``,
        ``optimizer__*``, ``iterator_train__*``, ...).

    Attributes
    ----------
    field_dims_ : list of int
        Cardinality of each field (OOV row not counted).
    field_names_ : list of str
        Field names (DataFrame columns or ``"x0", "x1", ...``).
    embedding_names_ : list of str
        Names of the embedding tables, as keys of :meth:`get_embeddings`.
    n_features_in_ : int
        Number of fields seen at fit.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame ``X`` (only then).
    module_ : torch.nn.Module
        The fitted model.
    classes_ : ndarray of shape (2,)
        The two labels seen at fit, sorted; ``classes_[1]`` is the positive
        (click) class, whose probability is ``predict_proba(X)[:, 1]``.

    References
    ----------
    X. Guo et al., "On the Embedding Collapse When Scaling up Recommendation
    Models", ICML 2024.
"""


def _doc(summary, params, dim=10, example="DCNv2Classifier"):
    return (
        summary
        + "\n\n    Parameters\n    ----------\n"
        + params
        + _COMMON_DOC.format(dim=dim)
        + f"""
    Examples
    --------
    >>> from sklearn.metrics import roc_auc_score
    >>> from skcollapse.datasets import make_ctr
    >>> from skcollapse.recommenders import {example}
    >>> X, y, proba = make_ctr(2000, n_fields=4, random_state=0)
    >>> clf = {example}(n_embedding_sets=2, max_epochs=2, random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape
    (2000, 2)
    >>> sorted(clf.get_embeddings())[:2]
    ['x0/set0', 'x0/set1']
"""
    )


_MLP_DOC = """    hidden_units : tuple of int, default=(400, 400)
        MLP widths; with several embedding sets the first layer is the per-set
        non-linear projection and the rest is the shared head.
    dropout : float, default=0.2
        Dropout after every MLP layer.
    batch_norm : bool, default=True
        ``BatchNorm1d`` after every MLP ``Linear``.
"""


_MLP_CONSTRAINTS = {
    **_CTRClassifierBase._parameter_constraints,
    "hidden_units": [int_interval(1, None, closed="left"), int_sequence()],
    "dropout": [real_interval(0, 1, closed="left")],
    "batch_norm": ["boolean"],
}


class FMClassifier(_CTRClassifierBase):
    __doc__ = _doc(
        """Factorization machine click model (Rendle, 2010).

    ``logit = b + sum_f w[x_f] + mean_m sum_{i<j} <e_i^m, e_j^m>``. The
    interaction is bilinear, so several embedding sets are equivalent to one set
    of dimension ``M * embedding_dim`` (the paper's reason why multi-embedding
    needs non-linear interactions); ``n_embedding_sets`` is kept for
    comparison.""",
        "    module : type, default=skcollapse.nn.FM\n        The torch model.\n",
        example="FMClassifier",
    )

    def __init__(self, module=FM, *, embedding_dim=10, n_embedding_sets=1,
                 **kwargs):
        super().__init__(module, embedding_dim=embedding_dim,
                         n_embedding_sets=n_embedding_sets, **kwargs)


class DNNClassifier(_CTRClassifierBase):
    __doc__ = _doc(
        """Embedding + MLP click model (the "DNN" of Guo et al.).""",
        "    module : type, default=skcollapse.nn.DNN\n        The torch model.\n"
        + _MLP_DOC,
        example="DNNClassifier",
    )
    _parameter_constraints: ClassVar[dict] = {
        **_MLP_CONSTRAINTS,
    }
    _module_params = ("hidden_units", "dropout", "batch_norm")

    def __init__(self, module=DNN, *, embedding_dim=10, n_embedding_sets=1,
                 hidden_units=(400, 400), dropout=0.2, batch_norm=True, **kwargs):
        super().__init__(module, embedding_dim=embedding_dim,
                         n_embedding_sets=n_embedding_sets, **kwargs)
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.batch_norm = batch_norm


class DeepFMClassifier(_CTRClassifierBase):
    __doc__ = _doc(
        """DeepFM click model (Guo et al., IJCAI 2017).

    An FM component and a DNN component read the same field embeddings and
    their logits are summed: ``logit = b + sum_f w[x_f] + sum_{i<j} <e_i, e_j>
    + MLP(flatten(e))``. With ``n_embedding_sets = M > 1`` each set has its own
    FM second-order term and its own first MLP layer (the non-linear
    projection); both are averaged over the sets, the first-order term and the
    rest of the MLP are shared (see :class:`skcollapse.nn.DeepFM` for why this
    form).

    H. Guo, R. Tang, Y. Ye, Z. Li and X. He, "DeepFM: A Factorization-Machine
    based Neural Network for CTR Prediction", IJCAI 2017.""",
        "    module : type, default=skcollapse.nn.DeepFM\n        The torch model.\n"
        + _MLP_DOC,
        example="DeepFMClassifier",
    )
    _parameter_constraints: ClassVar[dict] = {
        **_MLP_CONSTRAINTS,
    }
    _module_params = ("hidden_units", "dropout", "batch_norm")

    def __init__(self, module=DeepFM, *, embedding_dim=10, n_embedding_sets=1,
                 hidden_units=(400, 400), dropout=0.2, batch_norm=True, **kwargs):
        super().__init__(module, embedding_dim=embedding_dim,
                         n_embedding_sets=n_embedding_sets, **kwargs)
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.batch_norm = batch_norm


class IPNNClassifier(_CTRClassifierBase):
    __doc__ = _doc(
        """Inner-product neural network click model (Qu et al., 2016).""",
        "    module : type, default=skcollapse.nn.IPNN\n        The torch model.\n"
        + _MLP_DOC
        + """    concat_embeddings : bool or "auto", default="auto"
        Feed the flattened embeddings next to the pairwise inner products.
        ``"auto"`` follows Guo et al.'s code: concatenated for one embedding
        set (the original IPNN of Qu et al.), products only with
        ``n_embedding_sets > 1`` (their multi-embedding IPNN). ``True`` /
        ``False`` force either form for every ``M``.
""",
        example="IPNNClassifier",
    )
    _parameter_constraints: ClassVar[dict] = {
        **_MLP_CONSTRAINTS,
        "concat_embeddings": ["boolean", StrOptions({"auto"})],
    }
    _module_params = ("hidden_units", "dropout", "batch_norm", "concat_embeddings")

    def __init__(self, module=IPNN, *, embedding_dim=10, n_embedding_sets=1,
                 hidden_units=(400, 400), dropout=0.2, batch_norm=True,
                 concat_embeddings="auto", **kwargs):
        super().__init__(module, embedding_dim=embedding_dim,
                         n_embedding_sets=n_embedding_sets, **kwargs)
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.concat_embeddings = concat_embeddings


class NFwFMClassifier(_CTRClassifierBase):
    __doc__ = _doc(
        """Neural field-weighted FM click model (Guo et al.'s NFwFM).

    Field pairs are pooled into a ``K``-vector ``sum_{i,j} r_ij e_i * e_j`` over
    the full ``n_fields x n_fields`` weight matrix (self terms ``r_ii e_i * e_i``
    included, as the reference code of Guo et al.), then batch-normalised and
    fed to an MLP. ``embedding_dim`` defaults to 50, the paper's base size for
    this model.""",
        "    module : type, default=skcollapse.nn.NFwFM\n        The torch model.\n"
        + _MLP_DOC
        + """    pooling : {"full", "pairs"}, default="full"
        ``"full"``: all ``r_ij`` of the ``n_fields x n_fields`` matrix, self
        terms included (Guo et al.'s NFwFM). ``"pairs"``: the pairs ``i < j``
        only (the FwFM of Pan et al., 2018).
""",
        dim=50,
        example="NFwFMClassifier",
    )
    _parameter_constraints: ClassVar[dict] = {
        **_MLP_CONSTRAINTS,
        "pooling": [StrOptions({"full", "pairs"})],
    }
    _module_params = ("hidden_units", "dropout", "batch_norm", "pooling")

    def __init__(self, module=NFwFM, *, embedding_dim=50, n_embedding_sets=1,
                 hidden_units=(400, 400), dropout=0.2, batch_norm=True,
                 pooling="full", **kwargs):
        super().__init__(module, embedding_dim=embedding_dim,
                         n_embedding_sets=n_embedding_sets, **kwargs)
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.pooling = pooling


class xDeepFMClassifier(_CTRClassifierBase):
    __doc__ = _doc(
        """xDeepFM click model (Lian et al., 2018), without the first-order term.""",
        "    module : type, default=skcollapse.nn.XDeepFM\n        The torch model.\n"
        + """    cin_layer_sizes : tuple of int, default=(16, 16)
        Feature maps of each CIN layer.
    split_half : bool, default=False
        xDeepFM's split-half CIN option.
"""
        + _MLP_DOC,
        example="xDeepFMClassifier",
    )
    _parameter_constraints: ClassVar[dict] = {
        **_MLP_CONSTRAINTS,
        "cin_layer_sizes": [int_interval(1, None, closed="left"), int_sequence()],
        "split_half": ["boolean"],
    }
    _module_params = ("cin_layer_sizes", "split_half", "hidden_units", "dropout",
                      "batch_norm")

    def __init__(self, module=XDeepFM, *, embedding_dim=10, n_embedding_sets=1,
                 cin_layer_sizes=(16, 16), split_half=False,
                 hidden_units=(400, 400), dropout=0.2, batch_norm=True, **kwargs):
        super().__init__(module, embedding_dim=embedding_dim,
                         n_embedding_sets=n_embedding_sets, **kwargs)
        self.cin_layer_sizes = cin_layer_sizes
        self.split_half = split_half
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.batch_norm = batch_norm


class DCNv2Classifier(_CTRClassifierBase):
    __doc__ = _doc(
        """DCN-V2 click model (Wang et al., 2021), stacked form as in Guo et al.

    Flattened embeddings go through a full-rank cross network, then the MLP.
    :meth:`get_sub_embeddings` gives a field's table projected by the first
    cross layer (the interaction-collapse view of the paper).""",
        "    module : type, default=skcollapse.nn.DCNv2\n        The torch model.\n"
        + """    n_cross_layers : int, default=4
        Number of cross layers.
"""
        + _MLP_DOC,
    )
    _parameter_constraints: ClassVar[dict] = {
        **_MLP_CONSTRAINTS,
        "n_cross_layers": [int_interval(0, None, closed="left")],
    }
    _module_params = ("n_cross_layers", "hidden_units", "dropout", "batch_norm")

    def __init__(self, module=DCNv2, *, embedding_dim=10, n_embedding_sets=1,
                 n_cross_layers=4, hidden_units=(400, 400), dropout=0.2,
                 batch_norm=True, **kwargs):
        super().__init__(module, embedding_dim=embedding_dim,
                         n_embedding_sets=n_embedding_sets, **kwargs)
        self.n_cross_layers = n_cross_layers
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.batch_norm = batch_norm

    def get_sub_embeddings(self, field, *, embedding_set=0):
        """Table of ``field`` projected by each block of the first cross layer.

        In the first cross layer field ``j`` of the output receives
        ``e_j * sum_i W_{j,i} e_i``; ``E_field W_{j,field}^T`` is the table of
        ``field``'s sub-embeddings for its interaction with field ``j``.

        Parameters
        ----------
        field : int or str
            Field index or name.
        embedding_set : int, default=0
            Which embedding set.

        Returns
        -------
        dict of str to ndarray of shape (cardinality, embedding_dim)
            One table per target field ``j``, keyed by its name.
        """
        f = self._field_index(field)
        if not 0 <= embedding_set < self.module_.n_embedding_sets:
            raise ValueError(
                f"embedding_set must be in [0, {self.module_.n_embedding_sets}), "
                f"got {embedding_set!r}."
            )
        with torch.no_grad():
            sub = to_numpy(self.module_.sub_embeddings(f, embedding_set))
        return {name: sub[j].copy() for j, name in enumerate(self.field_names_)}


class FinalMLPClassifier(_CTRClassifierBase):
    __doc__ = _doc(
        """FinalMLP click model (Mao et al., 2023), feature gating disabled.

    Two MLP streams on the flattened embeddings, fused bilinearly; with several
    embedding sets both streams are per set and averaged before the fusion.""",
        "    module : type, default=skcollapse.nn.FinalMLP\n        The torch model.\n"
        + _MLP_DOC,
        example="FinalMLPClassifier",
    )
    _parameter_constraints: ClassVar[dict] = {
        **_MLP_CONSTRAINTS,
    }
    _module_params = ("hidden_units", "dropout", "batch_norm")

    def __init__(self, module=FinalMLP, *, embedding_dim=10, n_embedding_sets=1,
                 hidden_units=(400, 400), dropout=0.2, batch_norm=True, **kwargs):
        super().__init__(module, embedding_dim=embedding_dim,
                         n_embedding_sets=n_embedding_sets, **kwargs)
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.batch_norm = batch_norm
