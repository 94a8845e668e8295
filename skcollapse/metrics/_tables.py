"""One way to read the embedding tables of a fitted model: :func:`get_embedding_tables`.

The embeddings protocol of DESIGN.md is ``get_embeddings() -> dict[str, array]``.
Scorers, the collapse monitor, the popularity metrics, the Displays, the CLI and
the holdout protocol all read a model through the function below, so they agree
on where the tables are (inside a ``Pipeline`` or a fitted search too), on
``get_embedding_tensors()`` (the same tables as tensors on the model's device,
without a copy) and on the errors a missing or empty table gives. This module
imports no torch: tensors are recognised by duck typing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from skcollapse.exceptions import EmbeddingsProtocolError

__all__ = ["find_embeddings_owner", "get_embedding_tables"]

#: How deep Pipelines and searches are looked into.
_MAX_DEPTH = 8


def find_embeddings_owner(obj):
    """The object whose ``get_embeddings()`` holds ``obj``'s tables, or ``None``.

    ``obj`` itself when it has ``get_embeddings``; else the best estimator of a
    fitted search (``best_estimator_``) or the last step of a ``Pipeline``,
    looked into recursively.
    """
    seen = obj
    for _ in range(_MAX_DEPTH):
        if callable(getattr(seen, "get_embeddings", None)):
            return seen
        if hasattr(seen, "best_estimator_"):
            seen = seen.best_estimator_
        elif hasattr(seen, "steps") and seen.steps:
            seen = seen.steps[-1][1]
        else:
            break
    return None


def _as_numpy(table):
    """A tensor as a CPU float numpy array (half precision widened); else as is."""
    if hasattr(table, "detach") and hasattr(table, "cpu"):
        table = table.detach()
        if str(table.dtype) not in ("torch.float32", "torch.float64"):
            table = table.float()
        return table.cpu().numpy()
    return np.asarray(table)


def get_embedding_tables(
    obj, table=None, *, prefer_tensors=False, to_numpy=False, name="estimator"
):
    """The embedding tables of a fitted model, through the embeddings protocol.

    Parameters
    ----------
    obj : object
        A fitted model with ``get_embeddings() -> dict[str, array]`` (a skcollapse
        recommender or CTR classifier, :class:`skcollapse.adapters.EmbeddingTables`
        around a model trained elsewhere, any third-party object with the
        method), or a ``Pipeline`` / fitted search whose last step / best
        estimator is one.
    table : str, list of str or None, default=None
        ``None``: every table, as a dict. A name: that table alone (the array).
        A list of names: those tables, as a dict in the order given.
    prefer_tensors : bool, default=False
        Read ``get_embedding_tensors()`` when the model has it: the same tables
        as torch tensors on the model's device, without a copy (what a callback
        computing metrics during training wants).
    to_numpy : bool, default=False
        Return CPU numpy arrays (tensors are detached and copied; half
        precision becomes float32).
    name : str, default="estimator"
        How ``obj`` is called in error messages.

    Returns
    -------
    tables : dict of str to array, or one array
        The tables (numpy arrays, or tensors with ``prefer_tensors=True``), or
        the one table named by ``table``. A model whose ``get_embeddings()``
        returns one bare table gives ``{"embeddings": table}``.

    Raises
    ------
    TypeError
        When neither ``obj`` nor its last step / best estimator has
        ``get_embeddings()``.
    EmbeddingsProtocolError
        A ``ValueError`` and ``TypeError``: ``get_embeddings()`` returned no
        table.
    ValueError
        When ``table`` names a table the model does not have.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from skcollapse.adapters import EmbeddingTables
    >>> from skcollapse.metrics import get_embedding_tables
    >>> model = EmbeddingTables({"user_factors": np.ones((3, 2)),
    ...                          "item_factors": np.eye(4)})
    >>> sorted(get_embedding_tables(model))
    ['item', 'user']
    >>> get_embedding_tables(make_pipeline(model), "item").shape
    (4, 4)
    """
    owner = find_embeddings_owner(obj)
    if owner is None:
        raise TypeError(
            f"{name} must expose get_embeddings() -> dict[str, ndarray] (the "
            f"skcollapse embeddings protocol); {type(obj).__name__} has no "
            "get_embeddings() method, nor a last Pipeline step or best estimator "
            "with one."
        )
    getter = getattr(owner, "get_embedding_tensors", None) if prefer_tensors else None
    tables = (getter if callable(getter) else owner.get_embeddings)()
    if not isinstance(tables, Mapping):
        if not hasattr(tables, "shape"):
            raise TypeError(
                f"{type(owner).__name__}.get_embeddings() must return a dict of "
                f"table name -> 2-D array, got {type(tables).__name__}."
            )
        tables = {"embeddings": tables}
    if not tables:
        raise EmbeddingsProtocolError(
            f"{type(owner).__name__}.get_embeddings() must return a non-empty dict "
            "of table name -> 2-D array; it returned no tables."
        )
    if table is not None:
        wanted = [table] if isinstance(table, str) else list(table)
        if not wanted:
            raise ValueError("table is an empty list; give None or table names.")
        missing = [t for t in wanted if t not in tables]
        if missing:
            raise ValueError(
                f"table={missing!r} not found: {missing[0]!r} is not among the "
                f"embedding tables of {type(owner).__name__}, "
                f"{sorted(map(str, tables))}."
            )
        if isinstance(table, str):
            return _as_numpy(tables[table]) if to_numpy else tables[table]
        tables = {t: tables[t] for t in wanted}
    if to_numpy:
        return {str(k): _as_numpy(v) for k, v in tables.items()}
    return dict(tables)
