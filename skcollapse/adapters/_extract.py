"""Embedding tables of models trained elsewhere, as a ``get_embeddings()`` dict.

:func:`extract_embeddings` reads, without retraining and without importing the
library that trained them:

* an ``implicit`` model (``user_factors`` / ``item_factors``; CPU or GPU), or the
  ``.npz`` file its ``save()`` writes;
* a RecBole checkpoint: the dict ``torch.save`` writes in RecBole's trainer
  (``{"config": ..., "epoch": ..., "state_dict": model.state_dict(), ...}``),
  in memory or as the ``.pth`` file;
* a TorchRec ``EmbeddingBagCollection`` / ``EmbeddingCollection`` state dict
  (``"embedding_bags.<table>.weight"`` / ``"embeddings.<table>.weight"``, any
  prefix), or the module;
* any ``torch.nn.Module`` (its ``nn.Embedding`` / ``nn.EmbeddingBag`` tables) or
  state dict, and skcollapse's own encoders and estimators.

Files are read with ``torch.load(weights_only=True)``: no pickled code runs.
Objects other than tensors and containers (RecBole's ``Config``) are read as
inert placeholders, so a checkpoint loads without RecBole installed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["EmbeddingTables", "checkpoint_kind", "extract_embeddings", "load_checkpoint"]

#: TorchRec collections: ``[prefix.]embedding_bags.<table>.weight`` (bags) and
#: ``[prefix.]embeddings.<table>.weight`` (EmbeddingCollection).
_TORCHREC_KEY = re.compile(r"(?:^|\.)(?:embedding_bags|embeddings)\.([^.]+)\.weight$")
#: Names that mark a state-dict entry as an embedding table.
_EMBEDDING_WORDS = re.compile(r"embed|factor", re.IGNORECASE)


# ------------------------------------------------------------------ helpers
def _is_tensor(x):
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _to_numpy(x):
    """A 2-D float numpy array from a tensor / array (bf16, fp16 -> float32)."""
    if _is_tensor(x):
        x = x.detach()
        if x.dtype not in _torch_float_dtypes():
            x = x.float()
        return x.cpu().numpy()
    if hasattr(x, "to_numpy") and not isinstance(x, np.ndarray):  # implicit gpu
        x = x.to_numpy()
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32 if arr.dtype == np.float16 else np.float64)
    return arr


def _torch_float_dtypes():
    import torch

    return (torch.float32, torch.float64)


def _is_table(x):
    """A non-empty 2-D floating array or tensor."""
    if _is_tensor(x):
        return x.ndim == 2 and x.is_floating_point() and x.numel() > 0
    if isinstance(x, np.ndarray):
        return x.ndim == 2 and x.dtype.kind == "f" and x.size > 0
    return False


def _flatten(obj, prefix="", out=None):
    """``{dotted key: 2-D float table}`` of every table inside nested containers."""
    out = {} if out is None else out
    if _is_table(obj):
        out[prefix or "table"] = obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _flatten(value, f"{prefix}.{i}" if prefix else str(i), out)
    return out


def _role(name):
    """``"user"`` / ``"item"`` when a table name says which (and not both)."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    user = any(w.startswith("user") for w in words)
    item = any(w.startswith("item") for w in words)
    if user != item:
        return "user" if user else "item"
    return None


def _short_names(tables):
    """Drop a ``.weight`` suffix; call the one user table ``user`` and the one item
    table ``item`` (as skcollapse's estimators do) when that is unambiguous."""
    renamed = {}
    for key, value in tables.items():
        name = key.removesuffix(".weight")
        renamed[name if name not in renamed else key] = value
    roles = {}
    for name in renamed:
        role = _role(name)
        if role is not None:
            roles.setdefault(role, []).append(name)
    out = {}
    for name, value in renamed.items():
        role = _role(name)
        if role is not None and len(roles[role]) == 1 and role not in renamed:
            out[role] = value
        else:
            out[name] = value
    return out


# ------------------------------------------------------------------ recognisers
def _is_recbole_checkpoint(obj):
    return isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping)


def _is_implicit_npz(obj):
    return isinstance(obj, Mapping) and "user_factors" in obj and "item_factors" in obj


def _is_implicit_model(obj):
    return type(obj).__module__.startswith("implicit") and hasattr(obj, "item_factors")


def _torchrec_tables(flat):
    out = {}
    for key, value in flat.items():
        match = _TORCHREC_KEY.search(key)
        if match is not None:
            out[match.group(1)] = value
    return out


def checkpoint_kind(obj):
    """Which trained-elsewhere format ``obj`` is, as :func:`extract_embeddings` reads it.

    Parameters
    ----------
    obj : object
        What ``torch.load`` / :func:`load_checkpoint` / ``np.load`` returned, or
        a model.

    Returns
    -------
    kind : {"recbole", "torchrec", "implicit"} or None
        ``"recbole"``: a checkpoint dict with a ``"state_dict"`` entry;
        ``"torchrec"``: a state dict with TorchRec collection keys
        (``...embedding_bags.<table>.weight``); ``"implicit"``: an ``implicit``
        model or the dict its ``save()`` writes; ``None``: anything else (a
        plain state dict, a tensor, ...).

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.adapters import checkpoint_kind
    >>> checkpoint_kind({"state_dict": {}, "epoch": 3})
    'recbole'
    >>> checkpoint_kind({"ebc.embedding_bags.t_cat.weight": np.zeros((10, 4))})
    'torchrec'
    >>> checkpoint_kind({"weight": np.zeros((10, 4))}) is None
    True
    """
    if _is_implicit_model(obj):
        return "implicit"
    if _is_recbole_checkpoint(obj):
        return "recbole"
    if isinstance(obj, Mapping) and _torchrec_tables(_flatten(obj)):
        return "torchrec"
    if _is_implicit_npz(obj):
        return "implicit"
    return None


def _drop_bias(user, item, factors, include_bias):
    """implicit's BPR (``factors + 1``) and LMF (``factors + 2``) append bias
    columns after the latent factors; keep the factors only."""
    if include_bias or factors is None:
        return user, item
    k = int(np.asarray(factors))
    if user.shape[1] > k and item.shape[1] > k:
        return user[:, :k], item[:, :k]
    return user, item


def _from_implicit_model(model, include_bias):
    user, item = model.user_factors, model.item_factors
    if user is None or item is None:
        raise ValueError(
            f"{type(model).__name__} has no factors yet; fit it first."
        )
    if not isinstance(item, np.ndarray) and hasattr(model, "to_cpu"):
        cpu = model.to_cpu()  # an implicit.gpu model
        user, item = cpu.user_factors, cpu.item_factors
    user, item = _to_numpy(user), _to_numpy(item)
    user, item = _drop_bias(user, item, getattr(model, "factors", None), include_bias)
    return {"user": user, "item": item}


def _from_module(module):
    """Tables of a torch module: skcollapse encoders by their ``tables()``, the
    ``nn.Embedding`` / ``nn.EmbeddingBag`` weights, else the state dict."""
    import torch

    from skcollapse.nn import CFEncoder

    if isinstance(module, CFEncoder):
        with torch.no_grad():
            user, item = module.tables()
        return {"user": user, "item": item}, True
    found = {
        f"{name}.weight" if name else "weight": sub.weight
        for name, sub in module.named_modules()
        if isinstance(sub, (torch.nn.Embedding, torch.nn.EmbeddingBag))
    }
    if found:
        return found, True
    return module.state_dict(), False


def _from_mapping(obj):
    """Candidate tables of a state dict (or of any nest of containers)."""
    flat = _flatten(obj)
    torchrec = _torchrec_tables(flat)
    if torchrec:
        return torchrec, True
    return flat, False


def _auto_select(flat):
    """Embedding-like 2-D tables: names with "embed"/"factor" when there are any,
    else every 2-D table; one-column tables (biases) never."""
    wide = {k: v for k, v in flat.items() if v.shape[1] >= 2}
    named = {k: v for k, v in wide.items() if _EMBEDDING_WORDS.search(k)}
    return named or wide


# ------------------------------------------------------------------ loading
class _Opaque:
    """Inert stand-in for a pickled object of a library that is not imported
    (RecBole's ``Config``, its enums): it stores its arguments and runs nothing."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return "<object not loaded>"


def _unsupported_global(exc):
    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    return match.group(1) if match else None


def load_checkpoint(path):
    """Read a torch file with ``weights_only=True``, without running pickled code.

    Objects that are not tensors or plain containers (e.g. the ``Config`` of a
    RecBole checkpoint) come back as inert placeholders, so the file loads
    without the library that wrote it.

    Parameters
    ----------
    path : str or path-like
        A file written by ``torch.save``.

    Returns
    -------
    object
        What was saved, tensors on the CPU.

    Examples
    --------
    >>> import tempfile, torch
    >>> from skcollapse.adapters import load_checkpoint
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     torch.save({"state_dict": {"w": torch.eye(2)}}, f"{tmp}/m.pth")
    ...     load_checkpoint(f"{tmp}/m.pth")["state_dict"]["w"].shape
    torch.Size([2, 2])
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if _unsupported_global(exc) is None:
            raise
        finder = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
        if finder is None:  # torch < 2.5
            raise
        try:
            names = finder(path)
        except (ValueError, RuntimeError, OSError):  # a legacy (non-zip) file
            raise exc from None
        with torch.serialization.safe_globals([(_Opaque, n) for n in names]):
            return torch.load(path, map_location="cpu", weights_only=True)


def _load_path(path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if suffix == ".npy":
        return {path.stem: np.load(path, allow_pickle=False)}
    return load_checkpoint(path)


# ------------------------------------------------------------------ public
def _select(tables, flat, wanted):
    if wanted is None:
        return tables
    if isinstance(wanted, Mapping):
        missing = [key for key in wanted.values() if key not in flat]
        if missing:
            raise ValueError(
                f"tables={dict(wanted)!r}: {missing} not found; the object holds "
                f"the 2-D tables {sorted(flat)}."
            )
        return {str(name): flat[key] for name, key in wanted.items()}
    if isinstance(wanted, str):
        wanted = [wanted]
    missing = [w for w in wanted if w not in tables]
    if missing:
        raise ValueError(
            f"tables={list(wanted)!r}: {missing} not found; extracted tables are "
            f"{sorted(tables)} (pick other entries with a dict, "
            f"{{'item': '<key>'}}, from {sorted(flat)})."
        )
    return {w: tables[w] for w in wanted}


def extract_embeddings(obj, *, tables=None, include_bias=False):
    """The embedding tables of a model trained elsewhere, as ``get_embeddings()``.

    Parameters
    ----------
    obj : object
        One of:

        * a fitted ``implicit`` model (ALS, BPR, LMF; CPU or GPU) ->
          ``{"user", "item"}``;
        * a RecBole checkpoint dict (``"state_dict"`` entry) or any state dict
          / ``torch.nn.Module`` -> its embedding tables (``nn.Embedding`` /
          ``nn.EmbeddingBag`` weights of a module; entries whose name contains
          "embed" or "factor", else every 2-D float entry, of a state dict);
          the one user table is named ``"user"`` and the one item table
          ``"item"`` (``"user_embedding.weight"`` -> ``"user"``), others keep
          their key without ``.weight``;
        * a TorchRec ``EmbeddingBagCollection`` / ``EmbeddingCollection`` or its
          state dict -> one entry per TorchRec table name;
        * a skcollapse estimator (its ``get_embeddings()``) or encoder (its
          ``tables()``);
        * a path to a ``.pt``/``.pth`` file (read by :func:`load_checkpoint`, no
          pickled code runs), an ``.npz`` (e.g. ``implicit``'s ``save()``) or an
          ``.npy`` file.
    tables : list of str or dict, default=None
        Keep only these extracted tables; or a dict ``{name: key}`` naming
        entries of the object by their full dotted key (e.g.
        ``{"item": "model.item_bias.weight"}``), to pick tables the automatic
        choice leaves out (one-column biases are never chosen automatically).
    include_bias : bool, default=False
        For ``implicit`` BPR/LMF models, keep the bias columns appended after
        the ``factors`` latent columns (they are dropped by default: a column
        of ones and a bias column are not learned directions of the space).

    Returns
    -------
    tables : dict of str to ndarray of shape (n_rows, n_features)
        Float numpy tables (float32 or float64, on the CPU), one row per id in
        the model's own row order: usable by the metrics, by
        :class:`EmbeddingTables` with the scorers and Displays, and by
        ``skcollapse score``.

    Raises
    ------
    ValueError
        When no table is found (the message lists what the object holds).

    Examples
    --------
    >>> import torch
    >>> from skcollapse.adapters import extract_embeddings
    >>> model = torch.nn.Module()
    >>> model.user_embedding = torch.nn.Embedding(5, 3)
    >>> model.item_embedding = torch.nn.Embedding(7, 3)
    >>> {k: v.shape for k, v in extract_embeddings(model).items()}
    {'user': (5, 3), 'item': (7, 3)}
    >>> sd = {"ebc.embedding_bags.t_cat.weight": torch.zeros(10, 4)}  # TorchRec
    >>> list(extract_embeddings(sd))
    ['t_cat']
    """
    if isinstance(obj, (str, os.PathLike)):
        obj = _load_path(obj)
    getter = getattr(obj, "get_embeddings", None)
    if callable(getter):
        found = {str(k): _to_numpy(v) for k, v in getter().items()}
        return _select(found, found, tables)
    if _is_implicit_model(obj):
        found = _from_implicit_model(obj, include_bias)
        return _select(found, found, tables)
    if _is_implicit_npz(obj):
        user, item = _drop_bias(
            _to_numpy(obj["user_factors"]), _to_numpy(obj["item_factors"]),
            obj.get("factors"), include_bias,
        )
        found = {"user": user, "item": item}
        return _select(found, _flatten(obj), tables)
    if _is_tensor(obj) or isinstance(obj, np.ndarray):
        if not _is_table(obj):
            raise ValueError(
                f"a single array must be a non-empty 2-D float table, got shape "
                f"{tuple(obj.shape)}."
            )
        found = {"embeddings": _to_numpy(obj)}
        return _select(found, found, tables)
    if _is_recbole_checkpoint(obj):
        obj = obj["state_dict"]
    typed = False  # tables known to be embeddings by their module type
    import torch

    if isinstance(obj, torch.nn.Module):
        obj, typed = _from_module(obj)
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"cannot read embedding tables from a {type(obj).__name__}: give an "
            "implicit model, a RecBole checkpoint, a TorchRec state dict, a "
            "torch.nn.Module or state dict, a skcollapse estimator, or a file path."
        )
    flat, exact = _from_mapping(obj)
    if exact:  # TorchRec table names are the names
        found = flat
    elif typed:
        found = _short_names({k: v for k, v in flat.items() if v.shape[1] >= 2})
    else:
        found = _short_names(_auto_select(flat))
    if not found and tables is None:
        raise ValueError(
            "no embedding table found: the object holds no 2-D float array with at "
            f"least two columns (2-D entries: {sorted(flat) or 'none'}). If it is "
            "a whole model saved with torch.save(model), save its state dict "
            "instead: torch.save(model.state_dict(), path)."
        )
    found = {k: _to_numpy(v) for k, v in found.items()}
    full = {k: _to_numpy(v) for k, v in _flatten(obj).items()} if isinstance(
        tables, Mapping
    ) else found
    return _select(found, full, tables)


class EmbeddingTables:
    """The embeddings protocol around any object :func:`extract_embeddings` reads.

    Scorers (:class:`~skcollapse.metrics.ErankScorer`), Displays
    (``from_estimator``) and :func:`~skcollapse.metrics.popularity_collapse`
    read a model through ``get_embeddings()``; this object gives a model
    trained elsewhere that method. Rows are the model's own ids ``0..n-1``.

    Parameters
    ----------
    source : object
        Anything :func:`extract_embeddings` accepts (an ``implicit`` model, a
        RecBole checkpoint path, a state dict, a dict of tables, ...).
    tables : list of str or dict, default=None
        Passed to :func:`extract_embeddings`.
    include_bias : bool, default=False
        Passed to :func:`extract_embeddings`.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.adapters import EmbeddingTables
    >>> from skcollapse.metrics import ErankScorer
    >>> model = EmbeddingTables({"item_factors": np.eye(4)})
    >>> list(model.get_embeddings())
    ['item']
    >>> round(ErankScorer(table="item")(model), 6)
    4.0
    """

    def __init__(self, source, *, tables=None, include_bias=False):
        self.source = source
        self.tables = tables
        self.include_bias = include_bias

    def get_embeddings(self, X=None):
        """The tables, as a dict of name -> ndarray (read once, then cached)."""
        key = (id(self.source), repr(self.tables), bool(self.include_bias))
        cache = getattr(self, "_cache", None)
        if cache is None or cache[0] != key:
            cache = (key, extract_embeddings(
                self.source, tables=self.tables, include_bias=self.include_bias
            ))
            self._cache = cache
        return dict(cache[1])

    def __repr__(self):
        return f"EmbeddingTables({type(self.source).__name__})"
