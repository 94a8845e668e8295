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

from typing import ClassVar

import torch
from skorch.dataset import Dataset
from skorch.utils import to_numpy
from torch.utils.data import DataLoader

from skcollapse.nn import (
    DNN,
    FM,
    IPNN,
    MLP_BATCH_NORM,
    MLP_DROPOUT,
    MLP_HIDDEN_UNITS,
    DCNv2,
    DeepFM,
    FinalMLP,
    NFwFM,
    XDeepFM,
)
from skcollapse.recommenders._ctr_base import (
    CTRClassifierBase,
    _sigmoid_proba,  # noqa: F401  (pickles of trimmed classifiers name it here)
)
from skcollapse.recommenders._docstrings import document_defaults, skorch_params
from skcollapse.utils._docstrings import GUO_2024, fill_docstring
from skcollapse.utils._params import init_arguments
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    int_sequence,
    real_interval,
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


# Parameters entries state no default: ``document_defaults`` writes each one
# from the class's signature, where it is declared.
_HEAD_PARAMS = """
    module : type
        The torch model (:class:`~skcollapse.nn.CTRModel` subclass), built with
        the field sizes of the data and the architecture parameters below.
    embedding_dim : int
        Size ``K`` of each embedding vector.
    n_embedding_sets : int
        Number ``M`` of embedding sets. 1 is the single-embedding model; with
        ``M > 1`` each set has its own tables, interaction and non-linear
        projection, averaged before the shared head (Guo et al., 2024).
    cardinalities : int, sequence of int or None
        Known codes per field. ``None`` infers ``max code + 1`` per field at
        fit; codes outside ``[0, cardinality)`` use the field's OOV row.
"""

_TAIL_PARAMS = """\
    regularizer : None, str, Regularizer class or instance, or callable
        Anti-collapse regularizer applied to the batch embeddings; its
        parameters route as ``regularizer__<name>``.
    random_state : int, RandomState or None
        Seeds the initialisation (without touching torch's global RNG), the
        batch order, and torch's global RNG at the start of ``fit`` (dropout).
    criterion : type
        The loss on the logits.
    optimizer : type
        Guo et al. train with Adam, lr 1e-3, batch 2048 and
        ``optimizer__weight_decay=1e-6``.
    lr : float
        Learning rate.
    max_epochs : int
        Training epochs; Guo et al. stop early on validation AUC (use
        ``train_split=ValidSplit(..)`` with ``EpochScoring("roc_auc")`` and
        ``EarlyStopping``).
    batch_size : int
        Rows per step.
    train_split : callable or None
        skorch's validation split; ``None``: no internal validation.
    threshold : float
        ``predict`` returns ``classes_[1]`` where ``P(click) > threshold``.
    callbacks : list or None
        skorch callbacks, e.g. ``[CollapseMonitor()]``.
    warm_start : bool
        Continue training on the next ``fit`` instead of re-initialising.
    verbose : int
        ``1`` prints skorch's per-epoch log table.
    device : str
        ``"cuda"`` trains and predicts on the GPU.""" + skorch_params(
    "Batches are slices of the stored field matrix; another class, or "
    "``iterator_train__*`` arguments other than ``batch_size`` and ``shuffle``, "
    "load them through skorch's iterator instead."
) + """    **kwargs
        skorch's routed ``prefix__name`` arguments: ``module__*``,
        ``optimizer__*``, ``regularizer__*``, ``callbacks__*``, ...

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
    {guo_2024}
"""


def _classifier_doc(summary, params=""):
    """Class decorator: the docstring of a CTR classifier, defaults included.

    ``params`` documents the module's architecture parameters (no defaults).
    """

    def decorate(cls):
        name = cls.__name__
        cls.__doc__ = (
            summary
            + "\n\n    Parameters\n    ----------"
            + _HEAD_PARAMS
            + params
            + _TAIL_PARAMS
            + f"""
    Examples
    --------
    >>> from skcollapse.datasets import make_ctr
    >>> from skcollapse.recommenders import {name}
    >>> X, y, proba = make_ctr(2000, n_fields=4, random_state=0)
    >>> clf = {name}(n_embedding_sets=2, max_epochs=2, random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape
    (2000, 2)
    >>> sorted(clf.get_embeddings())[:2]
    ['x0/set0', 'x0/set1']
"""
        )
        cls.__doc__ = fill_docstring(cls.__doc__, guo_2024=GUO_2024)
        return document_defaults(cls)

    return decorate


#: the MLP of every classifier but FM: Parameters entries and constraints
_MLP_DOC = """    hidden_units : tuple of int
        MLP widths; with several embedding sets the first layer is the per-set
        non-linear projection and the rest is the shared head.
    dropout : float
        Dropout after every MLP layer.
    batch_norm : bool
        ``BatchNorm1d`` after every MLP ``Linear``.
"""
_MLP = {
    "hidden_units": [int_interval(1, None, closed="left"), int_sequence()],
    "dropout": [real_interval(0, 1, closed="left")],
    "batch_norm": ["boolean"],
}


@_classifier_doc(
    """Factorization machine click model (Rendle, 2010).

    ``logit = b + sum_f w[x_f] + mean_m sum_{i<j} <e_i^m, e_j^m>``. The
    interaction is bilinear, so several embedding sets are equivalent to one set
    of dimension ``M * embedding_dim`` (the paper's reason why multi-embedding
    needs non-linear interactions); ``n_embedding_sets`` is kept for
    comparison."""
)
class FMClassifier(CTRClassifierBase):
    def __init__(
        self,
        *,
        module=FM,
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
        threshold=0.5,
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
        super().__init__(**init_arguments(locals()))


@_classifier_doc(
    """Embedding + MLP click model (the "DNN" of Guo et al.).""", _MLP_DOC
)
class DNNClassifier(CTRClassifierBase):
    _module_params: ClassVar[dict] = _MLP

    def __init__(
        self,
        *,
        module=DNN,
        embedding_dim=10,
        n_embedding_sets=1,
        cardinalities=None,
        hidden_units=MLP_HIDDEN_UNITS,
        dropout=MLP_DROPOUT,
        batch_norm=MLP_BATCH_NORM,
        regularizer=None,
        random_state=None,
        criterion=torch.nn.BCEWithLogitsLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=2048,
        train_split=None,
        threshold=0.5,
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
        super().__init__(**init_arguments(locals()))


@_classifier_doc(
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
    _MLP_DOC,
)
class DeepFMClassifier(CTRClassifierBase):
    _module_params: ClassVar[dict] = _MLP

    def __init__(
        self,
        *,
        module=DeepFM,
        embedding_dim=10,
        n_embedding_sets=1,
        cardinalities=None,
        hidden_units=MLP_HIDDEN_UNITS,
        dropout=MLP_DROPOUT,
        batch_norm=MLP_BATCH_NORM,
        regularizer=None,
        random_state=None,
        criterion=torch.nn.BCEWithLogitsLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=2048,
        train_split=None,
        threshold=0.5,
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
        super().__init__(**init_arguments(locals()))


@_classifier_doc(
    """Inner-product neural network click model (Qu et al., 2016).""",
    _MLP_DOC
    + """    concat_embeddings : bool or "auto"
        Feed the flattened embeddings next to the pairwise inner products.
        ``"auto"`` follows Guo et al.'s code: concatenated for one embedding
        set (the original IPNN of Qu et al.), products only with
        ``n_embedding_sets > 1`` (their multi-embedding IPNN). ``True`` /
        ``False`` force either form for every ``M``.
""",
)
class IPNNClassifier(CTRClassifierBase):
    _module_params: ClassVar[dict] = {
        **_MLP, "concat_embeddings": ["boolean", StrOptions({"auto"})]
    }

    def __init__(
        self,
        *,
        module=IPNN,
        embedding_dim=10,
        n_embedding_sets=1,
        cardinalities=None,
        hidden_units=MLP_HIDDEN_UNITS,
        dropout=MLP_DROPOUT,
        batch_norm=MLP_BATCH_NORM,
        concat_embeddings="auto",
        regularizer=None,
        random_state=None,
        criterion=torch.nn.BCEWithLogitsLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=2048,
        train_split=None,
        threshold=0.5,
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
        super().__init__(**init_arguments(locals()))


@_classifier_doc(
    """Neural field-weighted FM click model (Guo et al.'s NFwFM).

    Field pairs are pooled into a ``K``-vector ``sum_{i,j} r_ij e_i * e_j`` over
    the full ``n_fields x n_fields`` weight matrix (self terms ``r_ii e_i * e_i``
    included, as the reference code of Guo et al.), then batch-normalised and
    fed to an MLP. ``embedding_dim`` defaults to 50, the paper's base size for
    this model.""",
    _MLP_DOC
    + """    pooling : {"full", "pairs"}
        ``"full"``: all ``r_ij`` of the ``n_fields x n_fields`` matrix, self
        terms included (Guo et al.'s NFwFM). ``"pairs"``: the pairs ``i < j``
        only (the FwFM of Pan et al., 2018).
""",
)
class NFwFMClassifier(CTRClassifierBase):
    _module_params: ClassVar[dict] = {
        **_MLP, "pooling": [StrOptions({"full", "pairs"})]
    }

    def __init__(
        self,
        *,
        module=NFwFM,
        embedding_dim=50,
        n_embedding_sets=1,
        cardinalities=None,
        hidden_units=MLP_HIDDEN_UNITS,
        dropout=MLP_DROPOUT,
        batch_norm=MLP_BATCH_NORM,
        pooling="full",
        regularizer=None,
        random_state=None,
        criterion=torch.nn.BCEWithLogitsLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=2048,
        train_split=None,
        threshold=0.5,
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
        super().__init__(**init_arguments(locals()))


@_classifier_doc(
    """xDeepFM click model (Lian et al., 2018), without the first-order term.""",
    """    cin_layer_sizes : tuple of int
        Feature maps of each CIN layer.
    split_half : bool
        xDeepFM's split-half CIN option.
"""
    + _MLP_DOC,
)
class xDeepFMClassifier(CTRClassifierBase):
    _module_params: ClassVar[dict] = {
        "cin_layer_sizes": [int_interval(1, None, closed="left"), int_sequence()],
        "split_half": ["boolean"],
        **_MLP,
    }

    def __init__(
        self,
        *,
        module=XDeepFM,
        embedding_dim=10,
        n_embedding_sets=1,
        cardinalities=None,
        cin_layer_sizes=(16, 16),
        split_half=False,
        hidden_units=MLP_HIDDEN_UNITS,
        dropout=MLP_DROPOUT,
        batch_norm=MLP_BATCH_NORM,
        regularizer=None,
        random_state=None,
        criterion=torch.nn.BCEWithLogitsLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=2048,
        train_split=None,
        threshold=0.5,
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
        super().__init__(**init_arguments(locals()))


@_classifier_doc(
    """DCN-V2 click model (Wang et al., 2021), stacked form as in Guo et al.

    Flattened embeddings go through a full-rank cross network, then the MLP.
    :meth:`get_sub_embeddings` gives a field's table projected by the first
    cross layer (the interaction-collapse view of the paper).""",
    """    n_cross_layers : int
        Number of cross layers.
"""
    + _MLP_DOC,
)
class DCNv2Classifier(CTRClassifierBase):
    _module_params: ClassVar[dict] = {
        "n_cross_layers": [int_interval(0, None, closed="left")], **_MLP
    }

    def __init__(
        self,
        *,
        module=DCNv2,
        embedding_dim=10,
        n_embedding_sets=1,
        cardinalities=None,
        n_cross_layers=4,
        hidden_units=MLP_HIDDEN_UNITS,
        dropout=MLP_DROPOUT,
        batch_norm=MLP_BATCH_NORM,
        regularizer=None,
        random_state=None,
        criterion=torch.nn.BCEWithLogitsLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=2048,
        train_split=None,
        threshold=0.5,
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
        super().__init__(**init_arguments(locals()))

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


@_classifier_doc(
    """FinalMLP click model (Mao et al., 2023), feature gating disabled.

    Two MLP streams on the flattened embeddings, fused bilinearly; with several
    embedding sets both streams are per set and averaged before the fusion.""",
    _MLP_DOC,
)
class FinalMLPClassifier(CTRClassifierBase):
    _module_params: ClassVar[dict] = _MLP

    def __init__(
        self,
        *,
        module=FinalMLP,
        embedding_dim=10,
        n_embedding_sets=1,
        cardinalities=None,
        hidden_units=MLP_HIDDEN_UNITS,
        dropout=MLP_DROPOUT,
        batch_norm=MLP_BATCH_NORM,
        regularizer=None,
        random_state=None,
        criterion=torch.nn.BCEWithLogitsLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=2048,
        train_split=None,
        threshold=0.5,
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
        super().__init__(**init_arguments(locals()))
