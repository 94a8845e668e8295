"""The base of the CTR classifiers: data checks at fit, batches, the training step.

:class:`CTRClassifierBase` sizes the field embeddings from the training data in
``on_train_begin``, feeds batches sliced from stored tensors
(:mod:`~skcollapse.recommenders._ctr_data`), applies the regularizer to the batch
embeddings in :meth:`~CTRClassifierBase.infer` and reads the tables back for
:meth:`~CTRClassifierBase.get_embeddings`. A concrete classifier
(:mod:`skcollapse.recommenders._ctr`) names its module and the module's
architecture parameters.
"""

from __future__ import annotations

import numbers
from typing import ClassVar

import numpy as np
import torch
from skorch import NeuralNetBinaryClassifier
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch.utils.data import DataLoader, Dataset

from skcollapse.recommenders._base import NetBase
from skcollapse.recommenders._ctr_data import (
    BatchLoader,
    FieldDataset,
    check_field_matrix,
    check_target,
    infer_field_dims,
    unwrap_dataset,
)
from skcollapse.recommenders._fit_state import CTRFitState
from skcollapse.utils._distributed import unwrap_module
from skcollapse.utils._sklearn_compat import (
    int_interval,
    int_sequence,
    validate_data,
)

__all__ = ["CTRClassifierBase"]


def _sigmoid_proba(logits):
    """``(n,)`` logits to ``(n, 2)`` float64 class probabilities.

    In float64: torch's vectorised float32 sigmoid and its scalar tail differ by
    a few ulps, so a row's probability would depend on its position in the
    batch (scikit-learn's sample-order invariance check catches it).
    """
    p = torch.sigmoid(logits.double())
    return torch.stack((1 - p, p), dim=1)


class CTRClassifierBase(NetBase, NeuralNetBinaryClassifier):
    """Shared machinery of the CTR classifiers (see the concrete classes)."""

    #: the module's architecture parameters (``hidden_units``, ...) with their
    #: constraints: stored by ``__init__``, passed to the module, and added to
    #: the subclass's ``_parameter_constraints`` (``__init_subclass__``)
    _module_params: ClassVar[dict] = {}
    _fitted_attributes = ("field_dims_", "embedding_names_", "classes_inferred_")
    _fit_state_class = CTRFitState
    _parameter_constraints: ClassVar[dict] = {
        **NetBase._parameter_constraints,
        "embedding_dim": [int_interval(1, None, closed="left")],
        "n_embedding_sets": [int_interval(1, None, closed="left")],
        "cardinalities": [int_interval(1, None, closed="left"), int_sequence(), None],
        "threshold": "no_validation",  # skorch's NeuralNetBinaryClassifier
    }

    def __init_subclass__(cls, **kwargs):
        # A classifier declares its module's parameters once, in
        # ``_module_params``; its constraints are then its parent's and those.
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "_module_params" in own and "_parameter_constraints" not in own:
            cls._parameter_constraints = {
                **super(cls, cls)._parameter_constraints, **cls._module_params
            }

    def __init__(
        self,
        *,
        module,
        embedding_dim,
        n_embedding_sets,
        cardinalities,
        regularizer,
        random_state,
        **kwargs,
    ):
        """Store the parameters; a concrete classifier's ``__init__`` declares them.

        ``kwargs`` holds the architecture parameters (:attr:`_module_params`)
        and skorch's, which ``NeuralNetBinaryClassifier`` stores.
        """
        architecture = {name: kwargs.pop(name) for name in self._module_params}
        super().__init__(module, **kwargs)
        self.embedding_dim = embedding_dim
        self.n_embedding_sets = n_embedding_sets
        self.cardinalities = cardinalities
        self.regularizer = regularizer
        self.random_state = random_state
        for name, value in architecture.items():
            setattr(self, name, value)

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
        state = self._fit_state_
        dims = None if state is None else state.field_dims
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
        state = self._fit_state_
        self._module_from_data_ = (
            state is not None and state.field_dims is not None
        ) or isinstance(self._cardinalities_spec(), list)
        return self

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
        yc = check_target(y, type(self).__name__)
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
        Xc = check_field_matrix(Xc)
        if yc.shape[0] != Xc.shape[0]:
            raise ValueError(
                f"X has {Xc.shape[0]} rows but y has {yc.shape[0]} entries."
            )
        if fresh:
            self.classes_inferred_ = classes
            dims = infer_field_dims(Xc, self._cardinalities_spec())
            state = self._fit_state_
            state.field_dims = dims
            try:
                self._resize_to_data()
            finally:
                state.field_dims = None
            self.field_dims_ = dims
            names = [str(c) for c in getattr(self, "feature_names_in_", [])] or [
                f"x{f}" for f in range(len(dims))
            ]
            self.field_names_ = names
            self.embedding_names_ = self._table_names(names)
        # dropout draws from the forked global RNG seeded by partial_fit
        seed = self._fit_state_.seed
        self._fit_state_.shuffle_generator = (
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
        Xc = check_field_matrix(Xc)
        yc = None if y is None else self._encode_target(y)
        if yc is not None and yc.shape[0] != Xc.shape[0]:
            raise ValueError(
                f"X has {Xc.shape[0]} rows but y has {yc.shape[0]} entries."
            )
        return FieldDataset(Xc, yc)

    def _encode_target(self, y):
        """Map ``y`` to 0/1 floats (1 for ``classes_[1]``, the positive class)."""
        y = check_target(y)
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
        base, idx = unwrap_dataset(dataset)
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
        state = self._fit_state_
        gen = state.shuffle_generator if training and state is not None else None
        return BatchLoader(base, idx, max(int(batch_size), 1), bool(shuffle), gen,
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
            out, _ = self.regularize(tables, {"X": x})  # penalty: to get_loss
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
        return self.add_batch_penalty(loss) if training else loss

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
