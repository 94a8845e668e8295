"""Docstring parts shared by the estimators (written once, composed per class)."""

import inspect
import re
import sys
import textwrap

__all__ = ["cf_docstring", "document_defaults", "skorch_params"]

#: skorch's own constructor parameters, passed on unchanged with skorch's defaults
_SKORCH_PARAMS = """
    iterator_train : type, default=torch.utils.data.DataLoader
        skorch's iterator class for training batches.
{batches}
    iterator_valid : type, default=torch.utils.data.DataLoader
        skorch's iterator class for validation and prediction batches.
    dataset : type, default=skorch.dataset.Dataset
        skorch's dataset class; unused, the estimator wraps ``X`` in its own.
    predict_nonlinearity : callable, None or "auto", default="auto"
        skorch's output nonlinearity of ``predict_proba``; ``"auto"`` lets
        the estimator choose.
    compile : bool, default=False
        ``torch.compile`` the module (skorch's; ``compile__*`` arguments are
        passed to it).
    use_caching : bool or "auto", default="auto"
        skorch's caching of the predictions that scoring callbacks share.
    torch_load_kwargs : dict or None, default=None
        skorch's arguments of ``torch.load`` when it loads parameters.
"""


def skorch_params(batches):
    """The Parameters entries of skorch's own parameters.

    ``batches`` says how the estimator reads ``iterator_train`` and
    ``iterator_valid`` (appended to the ``iterator_train`` entry).
    """
    indent = " " * 8
    note = textwrap.fill(batches, 80, initial_indent=indent, subsequent_indent=indent)
    return _SKORCH_PARAMS.format(batches=note)


_SHARED_PARAMS = """
    n_users : int, default=None
        ``None``: the users are the distinct user ids of ``X`` (integers with gaps,
        1-based, or strings: ids are labels, like a classifier's classes), one
        table row each. An int fixes the user ids to ``0..n_users-1`` (one row
        each, trained or not), e.g. to keep every user through cross-validation
        folds.
    n_items : int, default=None
        As ``n_users``, for items.
    embedding_dim : int, default=64
        Width of the user and item embeddings.
    loss : {"bpr", "bce", "softmax", "align", "ccl"}, default="bpr"
        Training objective (see :class:`CFLoss`). ``"ccl"`` is SimpleX's cosine
        contrastive loss (``margin``, ``negative_weight``; it needs
        ``similarity="cosine"``): MF trained with it is the leaderboards'
        "MF-CCL".
    n_negatives : int, default=None
        Uniformly sampled negatives per positive (``negative_sampling=
        "independent"``) or per batch (``"shared"``). ``None``: 1 for ``"bpr"``,
        4 for ``"bce"``, 128 for ``"softmax"`` and ``"ccl"`` with independent
        negatives, ``batch_size`` with shared ones; none for ``"align"``.
    negative_sampling : {"independent", "shared"}, default="independent"
        ``"independent"``: every positive gets its own negatives, and items the
        user has observed are resampled. ``"shared"``: one uniform set for the
        whole batch, scored with a single matrix product (far cheaper per
        negative, so hundreds or thousands of negatives become affordable, as in
        sampled-softmax training); a negative equal to the row's positive is
        left out of that row's loss, other observed items are not filtered.
    sampling : {"pairs", "user"}, default="pairs"
        How an epoch draws its positive pairs. ``"pairs"``: every training pair
        once, shuffled (users weigh by their activity). ``"user"``: each batch
        draws ``batch_size`` users uniformly (among users with training pairs)
        and one of their items uniformly, for ``ceil(n_pairs / batch_size)``
        batches, as the LightGCN and DirectSpec reference code do (every user
        weighs the same; batch statistics see the users, not the pairs).
    similarity : {"dot", "cosine"}, default="dot"
        Score used in training and ranking: ``<p_u, q_i>``, or the cosine
        ``<p_u, q_i> / (|p_u| |q_i|)``. With ``"cosine"`` the ranking tables
        (:meth:`get_embeddings`) are row-normalised, and a penalty
        regularizer (LogDet, ReSN, ...) sees the normalised batch rows the
        scores are made of (a transform such as DBN is applied before the
        normalising). Cosine scores pair with a softmax ``temperature`` well
        below 1 (0.05 to 0.2).
    temperature : float, default=1.0
        Temperature of the ``"softmax"`` loss.
    margin : float, default=0.8
        Margin ``m`` of the ``"ccl"`` loss, in ``[-1, 1)``: a negative adds
        ``max(0, cos(u, j) - m)`` to the loss, so only negatives whose cosine
        with the user exceeds ``m`` are pushed away. SimpleX tunes it per data
        set; choose it on validation data.
    negative_weight : float, default=1.0
        Weight ``w`` of the mean negative term of the ``"ccl"`` loss against
        the positive term ``1 - cos(u, i)``. The mean is over the negatives,
        so ``w`` does not grow with ``n_negatives``; the larger ``margin``,
        the fewer negatives are active and the larger ``w`` must be for the
        term to matter. Choose it with ``margin`` on validation data.
    weight_decay : float, default=1e-4
        L2 penalty ``weight_decay / 2 * sum ||e||^2 / batch_size`` on the ego
        embeddings of the batch (users, positives and negatives).
    init_std : float, default=0.1
        Standard deviation of the normal initialisation of the embeddings.
    init : {"normal", "xavier_uniform"}, default="normal"
        ``"normal"``: N(0, ``init_std``²). ``"xavier_uniform"``: each table from
        U(±sqrt(6 / (n_rows + embedding_dim))), the DirectSpec reference's
        initialisation (``init_std`` unused).
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
    criterion : type, default=CFLoss
        The loss module, built with ``loss`` and ``temperature`` (see
        :class:`~skcollapse.nn.CFLoss`).
    lr : float, default=0.005
        Learning rate.
    max_epochs : int, default=30
        Training epochs (``0`` warns: the model keeps its initialisation). A
        fit whose loss becomes non-finite or grows ``1e4`` times above its first
        batch's value raises :class:`~skcollapse.exceptions.ModelFitError` and
        leaves the estimator unfitted.
    batch_size : int, default=2048
        Positive pairs per step.
    train_split : callable or None, default=None
        A validation hold-out of the training pairs, e.g.
        :class:`~skcollapse.model_selection.PerUserValidSplit` ``(0.1)`` (or
        skorch's ``ValidSplit``). With one, every epoch records ``valid_loss``
        (the training objective on the validation pairs, sampled negatives)
        and ``valid_ndcg``/``valid_recall`` at ``k`` (all items ranked, the
        training items excluded; :class:`~skcollapse.callbacks.RankingValidation`)
        in ``history_``. Validation pairs stay out of the training
        interactions while training, and join ``user_items_`` when fit ends:
        every pair of ``X`` is filtered at ranking.
        Select epochs with ``EarlyStopping(monitor="valid_ndcg",
        lower_is_better=False, load_best=True)``.
    callbacks : list or None, default=None
        skorch callbacks, e.g. ``[CollapseMonitor()]`` or
        ``[skorch.callbacks.ProgressBar()]`` for a progress bar.
    warm_start : bool, default=False
        Continue training on the next ``fit`` instead of re-initialising.
    verbose : int, default=0
        ``1`` prints skorch's per-epoch log table.
    device : str, default="cpu"
        ``"cuda"`` trains and ranks on the GPU.""" + skorch_params(
    "The recommenders batch the ``(user, item)`` pairs themselves and read "
    "only ``iterator_train__batch_size`` and ``iterator_valid__batch_size``."
) + """    **kwargs
        skorch's routed ``prefix__name`` arguments: ``module__*``,
        ``optimizer__*``, ``regularizer__*``, ``callbacks__*``,
        ``iterator_train__batch_size``, ...

    Attributes
    ----------
    user_ids_ : ndarray of shape (n_users_,)
        The user ids the model knows; row ``r`` of the user table (and of
        ``get_embeddings()["user"]``) belongs to ``user_ids_[r]``. Sorted after
        ``fit``; ``partial_fit`` appends new ids.
    item_ids_ : ndarray of shape (n_items_,)
        The same for items. Every public method speaks these ids: ``recommend``
        takes user ids and returns item ids; an id unseen in fit is an error.
    n_users_ : int
        Number of users of the fitted model.
    n_items_ : int
        Number of items of the fitted model.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users_, n_items_)
        Binary interactions of the data given to fit (validation pairs of a
        ``train_split`` included), rows and columns in the order of
        ``user_ids_`` and ``item_ids_``; filtered out by :meth:`recommend`,
        :meth:`score` and never drawn as negatives by ``partial_fit``.
    item_popularity_ : ndarray of shape (n_items_,)
        Interaction count of each item in the data given to fit (in the order
        of ``item_ids_``).
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


def cf_docstring(summary, model_params, tail):
    """The numpydoc docstring of a CF estimator.

    Parameters
    ----------
    summary : str
        Summary and description, indented as a class docstring.
    model_params : str
        The estimator's own parameters (after the shared ones).
    tail : str
        See Also, References and Examples sections.
    """
    return (
        summary
        + "\n\n    Parameters\n    ----------"
        + _SHARED_PARAMS
        + model_params
        + _SHARED_TAIL
        + tail
    )


_HEADER_RULE = re.compile(r"\s*-{3,}")
_ENTRY = re.compile(r"    (?P<name>\w+) : .+")


def _format_default(value):
    """``value`` as numpydoc writes a default: strings in double quotes, classes
    by their shortest public dotted name (``skcollapse.nn.DNN``,
    ``torch.optim.Adam``), anything else by its ``repr``."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, type):
        parts = value.__module__.split(".")
        for k in range(1, len(parts) + 1):
            module = sys.modules.get(".".join(parts[:k]))
            if getattr(module, value.__name__, None) is value:
                return f"{module.__name__}.{value.__name__}"
    return repr(value)


def document_defaults(cls):
    """Class decorator: write the signature's defaults into the docstring.

    Each ``name : type`` entry of the Parameters section of ``cls.__doc__``
    that names a parameter of ``cls`` and states no default gets
    ``, default=<its default in __init__>``: the default is written once, in
    the signature, and the docstring cannot contradict it.
    """
    defaults = {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if p.default is not p.empty
    }
    lines = cls.__doc__.split("\n")
    section = None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and _HEADER_RULE.fullmatch(lines[i + 1]):
            section = line.strip()
            continue
        entry = _ENTRY.fullmatch(line)
        if (
            section == "Parameters"
            and entry is not None
            and entry["name"] in defaults
            and "default=" not in line
        ):
            lines[i] = f"{line}, default={_format_default(defaults[entry['name']])}"
    cls.__doc__ = "\n".join(lines)
    return cls
