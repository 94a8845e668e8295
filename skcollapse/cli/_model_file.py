"""The model file: a fitted estimator saved with its metadata, in a versioned format.

``skcollapse train`` writes one, ``skcollapse score MODEL`` reads one, and
:func:`save_model` / :func:`load_model` (exported from :mod:`skcollapse.cli`) let
Python code do the same. Reading a model file never runs code from it.

Format, version 2 (written by this release)
-------------------------------------------
Two lines of JSON and a zip archive of ``.npy`` arrays::

    SKCOLLAPSE-MODEL\\n                                  <- MODEL_MAGIC
    {"format_version": 2, "model": "mf", ...}\\n     <- line 1: metadata
    {"estimator": "MFRecommender", "params": {...}, ...}\\n   <- line 2: the model
    <zip archive, members a0.npy, a1.npy, ... stored uncompressed>

* Line 1 is the metadata, as in version 1: ``format_version`` (int) plus
  free-form fields (``skcollapse train`` stores the model name, parameters,
  data, metrics, seed, versions, ...; non-JSON values are stored as their
  ``repr``). :func:`read_model_header` returns it.
* Line 2 describes the estimator: ``"estimator"``, its class name, a key of
  :func:`~skcollapse.cli._model_codec.estimator_registry` (the estimators of
  :mod:`skcollapse.recommenders`); ``"params"``, its ``get_params(deep=False)``;
  ``"attributes"``, its fitted attributes (``user_ids_``, ``user_items_``,
  ``embeddings_cache_``, ...); for skorch nets ``"initialized"``,
  ``"trimmed"``, ``"components"`` (the ``state_dict()`` of ``module_``,
  ``criterion_``, ``regularizer_``, ``optimizer_``) and ``"history"``; and
  ``"user_ids"`` / ``"item_ids"`` (the arguments of :func:`save_model`). Values
  are encoded as documented in :mod:`skcollapse.cli._model_codec`: JSON for
  plain values, tagged JSON objects for the rest (a class is a name looked up
  in the library's registry, e.g. ``{"__skc__": "class", "name":
  "torch.optim.Adam"}``), and every array or tensor as an archive member.
* The archive holds only ``.npy`` members: a dtype, a shape and raw bytes
  (``allow_pickle=False``), stored uncompressed. Each is checked before it is
  read: plain dtype, no negative dimension, exactly as many bytes as its shape
  needs.

Loading rebuilds the estimator the way ``sklearn.clone`` and skorch do: the
class from the registry, ``cls(**params)``, the fitted attributes, then (skorch
nets) ``initialize()`` and ``load_state_dict`` of each component, after
checking on torch's ``meta`` device that the module built from the saved
parameters has exactly the shapes the file holds (a file cannot make the
loader allocate more than it contains). The fitted state is checked too (ids
are non-negative integers or strings, unique, one per row; sizes agree).
Anything else is refused with a ``ValueError`` naming the file.

Not stored: the internal state of callbacks (they are rebuilt from the
``callbacks`` parameter; their results are in ``history_``) and caches that are
rebuilt on demand.

Format, version 1 (read only with ``trusted=True``)
---------------------------------------------------
The same first two lines (magic, metadata with ``"format_version": 1``), then a
pickle of ``{"estimator": ..., "user_ids": ..., "item_ids": ...}``. Reading a
pickle can run any code, so :func:`load_model` refuses version 1 unless given
``trusted=True``, and ``skcollapse score`` refuses it always;
``skcollapse convert OLD NEW`` rewrites a trusted version-1 file as version 2.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import warnings
from pathlib import Path

import numpy as np

from skcollapse.cli._model_codec import (
    ArchiveReader,
    ArchiveWriter,
    Decoder,
    Encoder,
    FormatError,
    estimator_registry,
)
from skcollapse.utils._sklearn_compat import validate_params

__all__ = [
    "FORMAT_VERSION",
    "MODEL_MAGIC",
    "check_output_path",
    "is_model_file",
    "load_model",
    "load_model_tables",
    "read_model_header",
    "save_model",
]

#: First bytes of every model file.
MODEL_MAGIC = b"SKCOLLAPSE-MODEL\n"
#: Version of the file layout this release writes.
FORMAT_VERSION = 2
#: Versions :func:`read_model_header` accepts (1 only loads with trusted=True).
SUPPORTED_VERSIONS = (1, 2)

#: skorch bookkeeping rebuilt by ``initialize()``, never stored as attributes.
_SKORCH_STATE = frozenset({
    "prefixes_",
    "cuda_dependent_attributes_",
    "_modules",
    "_criteria",
    "_optimizers",
    "virtual_params_",
    "init_context_",
    "initialized_",
    "callbacks_",
    "history_",
    "_trimmed_for_prediction",
    "_trimmed_nonlinearity_",
    "_params_to_validate",
})
#: caches rebuilt on demand from the stored state (`_cache_`: the liked-item
#: index of ``recommend``, ...) and the state of a fit in progress, never stored.
_DERIVED = frozenset({"_cache_", "_fit_state_"})
#: names a stored attribute may have: a fitted attribute, ``name_``/``_name_``
_ATTRIBUTE = re.compile(r"_?[A-Za-z][A-Za-z0-9_]*_")
#: a parameter name (skorch's routed ``prefix__name`` included)
_PARAMETER = re.compile(r"_?[A-Za-z][A-Za-z0-9_]*")


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


# ---------------------------------------------------------------- saving
def _is_net(estimator):
    from skorch import NeuralNet

    return isinstance(estimator, NeuralNet)


def _describe_estimator(estimator, encode):
    """Line 2 of a version-2 file (see the module docstring)."""
    cls = type(estimator)
    registry = estimator_registry()
    if registry.get(cls.__name__) is not cls:
        raise TypeError(
            f"save_model saves the estimators of skcollapse.recommenders "
            f"({', '.join(sorted(registry))}); got {cls.__module__}."
            f"{cls.__qualname__}. A model file names its class and a reader "
            "rebuilds it from the library's own list, so other classes cannot be "
            "stored (pickle them yourself, for readers who trust you)."
        )
    params = estimator.get_params(deep=False)
    model = {
        "estimator": cls.__name__,
        "params": {k: encode(v, f"parameter {k!r}") for k, v in params.items()},
    }
    skip = set(params) | _DERIVED
    if _is_net(estimator):
        names = [*estimator._modules, *estimator._criteria, *estimator._optimizers]
        skip |= _SKORCH_STATE | {name + "_" for name in names}
        model["initialized"] = bool(getattr(estimator, "initialized_", False))
        model["trimmed"] = bool(getattr(estimator, "_trimmed_for_prediction", False))
        if model["initialized"]:
            components = {}
            for name in names:
                component = getattr(estimator, name + "_", None)
                if component is None:
                    components[name] = None
                    continue
                state_dict = getattr(component, "state_dict", None)
                if not callable(state_dict):
                    raise TypeError(
                        f"{name}_ is {type(component).__name__}, which has no "
                        "state_dict(); a model file stores components by their "
                        "state_dict."
                    )
                components[name] = encode(dict(state_dict()), f"{name}_.state_dict()")
            model["components"] = components
            model["history"] = encode(list(estimator.history_ or []), "history_")
    attributes = {}
    for name, value in vars(estimator).items():
        if name in skip:
            continue
        if not _ATTRIBUTE.fullmatch(name) or name.startswith("__"):
            raise TypeError(
                f"attribute {name!r} of the {cls.__name__} is neither a parameter "
                "nor a fitted attribute (a name ending in '_'), so save_model "
                f"cannot tell whether the model needs it; delete it (del "
                f"estimator.{name}) before saving."
            )
        attributes[name] = encode(value, f"attribute {name!r}")
    model["attributes"] = attributes
    return model


def _id_array(ids, name):
    if ids is None:
        return None
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one id per code), got shape {arr.shape}.")
    return arr


@validate_params(
    {
        "estimator": "no_validation",
        "path": [str, os.PathLike],
        "user_ids": ["array-like", None],
        "item_ids": ["array-like", None],
        "overwrite": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def save_model(
    estimator, path, /, *, user_ids=None, item_ids=None, overwrite=False, **meta
):
    """Save an estimator and its metadata to a model file (format 2, no pickle).

    Parameters
    ----------
    estimator : estimator of :mod:`skcollapse.recommenders`
        Fitted or not, e.g. an ``MFRecommender``. Its parameters must be values
        a model file can store: plain values, arrays, pandas tables, and
        skcollapse/torch/skorch components (classes such as
        ``torch.optim.Adam``, regularizers, callbacks; see
        :mod:`skcollapse.cli._model_codec`). A function or a class of your own
        is refused with an error naming the parameter.
    path : str or path-like
        File to write. It is written next to its final name and moved into
        place, so a failed write never leaves a truncated model file.
    user_ids, item_ids : array-like or None, default=None
        Original id of each user / item code the estimator was trained on.
    overwrite : bool, default=False
        Replace an existing file.
    **meta
        Metadata stored in the JSON header (``format_version`` is reserved; any
        other name, ``estimator`` and ``path`` included, is free).

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    OSError
        The errors of :func:`check_output_path`, checked before anything is
        written: ``FileExistsError`` if ``path`` exists and ``overwrite`` is
        False, ``IsADirectoryError``, ``FileNotFoundError`` (no such folder),
        ``NotADirectoryError``, ``PermissionError``.
    TypeError
        If the estimator is not one of the library's, or a parameter or fitted
        attribute holds something a model file cannot store (the message names
        it); nothing is written then.

    Examples
    --------
    >>> from skcollapse.cli import load_model, save_model
    >>> save_model(estimator, "mf.skc", model="mf")  # doctest: +SKIP
    >>> estimator = load_model("mf.skc")  # doctest: +SKIP
    """
    if "format_version" in meta:
        raise ValueError("format_version is set by save_model itself.")
    path = check_output_path(path, overwrite=overwrite)
    archive = ArchiveWriter()
    encode = Encoder(archive)
    model = _describe_estimator(estimator, encode)
    model["user_ids"] = encode(_id_array(user_ids, "user_ids"), "user_ids")
    model["item_ids"] = encode(_id_array(item_ids, "item_ids"), "item_ids")
    header = {"format_version": FORMAT_VERSION, **_json_ready(meta)}
    model_line = json.dumps(model, allow_nan=False, separators=(",", ":"))
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as fh:
            fh.write(MODEL_MAGIC)
            fh.write(json.dumps(header, sort_keys=True).encode("utf-8") + b"\n")
            fh.write(model_line.encode("utf-8") + b"\n")
            archive.write(fh)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def check_output_path(path, *, overwrite=False) -> Path:
    """Check that a model file can be written at ``path``, before any work.

    ``skcollapse train`` calls it before training, so that a wrong ``--output``
    fails at once instead of after the fit; :func:`save_model` calls it again.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    overwrite : bool, default=False
        Whether an existing file may be replaced.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    IsADirectoryError
        If ``path`` is a folder.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If the folder of ``path`` does not exist.
    NotADirectoryError
        If the "folder" of ``path`` is a file.
    PermissionError
        If the folder is not writable.

    Each error's ``strerror`` is a full sentence naming the path.
    """
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise IsADirectoryError(
            errno.EISDIR, f"{path} is a folder; give a file name", str(path)
        )
    if path.exists() and not overwrite:
        raise FileExistsError(
            errno.EEXIST,
            f"{path} exists; pass --overwrite (overwrite=True) to replace it",
            str(path),
        )
    if not parent.exists():
        raise FileNotFoundError(
            errno.ENOENT,
            f"cannot write {path}: folder {parent} does not exist; create it or "
            "choose another file",
            str(path),
        )
    if not parent.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, f"cannot write {path}: {parent} is not a folder", str(path)
        )
    if not os.access(parent, os.W_OK | os.X_OK):  # the file is written beside
        raise PermissionError(  # its final name, then moved: the folder counts
            errno.EACCES,
            f"cannot write {path}: no write permission in folder {parent}",
            str(path),
        )
    return path


def is_model_file(path) -> bool:
    """Whether ``path`` starts with the model-file magic bytes."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MODEL_MAGIC)) == MODEL_MAGIC
    except OSError:
        return False


def read_model_header(path) -> dict:
    """Metadata of a model file (its first JSON line), read without loading it.

    Raises
    ------
    ValueError
        If the file is not a model file, its header is damaged, or its format
        version is not one this release reads.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    with open(path, "rb") as fh:
        if fh.read(len(MODEL_MAGIC)) != MODEL_MAGIC:
            raise ValueError(
                f"{path} is not a skcollapse model file (it does not start with the "
                "line SKCOLLAPSE-MODEL that save_model and 'skcollapse train' "
                "write); it is damaged or another kind of file"
            )
        line = fh.readline()
    try:
        header = json.loads(line.decode("utf-8"))
        version = header.get("format_version")  # a JSON object, or damaged
    except (ValueError, AttributeError, RecursionError):  # e.g. bad JSON or UTF-8
        raise ValueError(
            f"{path}: the model file header is damaged; write the model again "
            "(save_model or 'skcollapse train')"
        ) from None
    if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        raise ValueError(
            f"{path}: model file format version {version!r} is not supported; this "
            f"skcollapse reads format version {FORMAT_VERSION} (and version 1 with "
            "trusted=True); files written by a newer skcollapse need that release"
        )
    return header


def _refuse_v1(path):
    return ValueError(
        f"{path} is a format-1 model file: it stores the estimator as a Python "
        "pickle, and reading a pickle can run any code, so skcollapse does not "
        "read it. If you trust the file (you wrote it, or it comes from someone "
        "you trust), convert it once: skcollapse convert "
        f"{path} NEW.skc (in Python: load_model(path, trusted=True), then "
        "save_model)"
    )


@validate_params(
    {"path": [str, os.PathLike], "trusted": ["boolean"], "return_metadata": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def load_model(path, *, trusted=False, return_metadata=False):
    """Load the estimator saved by :func:`save_model` or ``skcollapse train``.

    A format-2 file (what this release writes) is data only: reading it runs no
    code from it, whoever wrote it. A format-1 file is a pickle and is refused
    unless ``trusted=True``.

    Parameters
    ----------
    path : str or path-like
        The model file.
    trusted : bool, default=False
        Also read format-1 files, by unpickling them. Unpickling runs whatever
        code the file holds: pass True only for files you trust, and convert
        them (``skcollapse convert OLD NEW``) so that they never need it again.
    return_metadata : bool, default=False
        Also return the metadata: the JSON header (``format_version`` included)
        plus ``"user_ids"`` and ``"item_ids"`` (original id of each code, or
        None).

    Returns
    -------
    estimator : object
    metadata : dict
        Only with ``return_metadata=True``.

    Raises
    ------
    ValueError
        If the file is not a model file, its format version is unknown, it is a
        format-1 file and ``trusted`` is False, or it is damaged or names
        anything the library does not know (the message names the file).
    """
    path = Path(path)
    header = read_model_header(path)
    if header["format_version"] == 1:
        if not trusted:
            raise _refuse_v1(path)
        payload = _load_v1(path)
    else:
        payload = _load_v2(path)
    if not return_metadata:
        return payload["estimator"]
    metadata = {
        **header,
        "user_ids": payload.get("user_ids"),
        "item_ids": payload.get("item_ids"),
    }
    return payload["estimator"], metadata


def _load_v1(path):
    """Unpickle a format-1 file (only ever called with ``trusted=True``)."""
    with open(path, "rb") as fh:
        fh.read(len(MODEL_MAGIC))
        fh.readline()
        try:
            payload = pickle.load(fh)
        except (
            pickle.UnpicklingError,
            EOFError,
            AttributeError,
            ImportError,
            ValueError,
        ) as exc:
            raise ValueError(f"{path}: cannot load the model ({exc})") from None
    if not isinstance(payload, dict) or "estimator" not in payload:
        raise ValueError(f"{path}: the model file holds no estimator")
    return payload


def _no_constant(name):
    raise FormatError(f"the model line holds the non-JSON constant {name}")


def _load_v2(path):
    """Read a format-2 file; any problem is a ValueError naming ``path``."""
    try:
        with open(path, "rb") as fh:
            fh.read(len(MODEL_MAGIC))
            fh.readline()
            line = fh.readline()
            if not line.endswith(b"\n"):
                raise FormatError("the file ends inside its model description")
            try:
                model = json.loads(line.decode("utf-8"), parse_constant=_no_constant)
            except FormatError:  # a NaN/Infinity constant
                raise
            except (ValueError, RecursionError):  # bad UTF-8 or JSON, a huge int
                raise FormatError("its model description is not valid JSON") from None
            if not isinstance(model, dict):
                raise FormatError("its model description is not a JSON object")
            decode = Decoder(ArchiveReader(fh, path))
            estimator = _rebuild(model, decode, path)
            user_ids = _checked_ids(decode(model.get("user_ids"), "user_ids"),
                                    "user_ids", optional=True)
            item_ids = _checked_ids(decode(model.get("item_ids"), "item_ids"),
                                    "item_ids", optional=True)
    except FormatError as exc:
        raise ValueError(
            f"{path}: cannot load the model: {exc}. The file is damaged or was not "
            "written by skcollapse's save_model; get a fresh copy from its author "
            "(nothing in it was run)"
        ) from None
    return {"estimator": estimator, "user_ids": user_ids, "item_ids": item_ids}


# ---------------------------------------------------------------- rebuilding
def _component_bases():
    import torch
    from skorch.dataset import Dataset

    return {
        "module": torch.nn.Module,
        "criterion": torch.nn.Module,
        "optimizer": torch.optim.Optimizer,
        "iterator_train": torch.utils.data.DataLoader,
        "iterator_valid": torch.utils.data.DataLoader,
        "dataset": (Dataset, torch.utils.data.Dataset),
    }


def _decoded_params(model, cls, decode):
    params = model.get("params")
    if not isinstance(params, dict):
        raise FormatError("it has no parameter list")
    # the class's own parameters (skorch lists a private one; files written
    # before get_params left out skorch's _params_to_validate hold that too),
    # and for skorch nets routed ones (``module__n_layers``), checked by skorch
    known = set(cls().get_params(deep=False)) | {
        "_trimmed_for_prediction", "_params_to_validate"
    }
    routed = _is_net_class(cls)
    out = {}
    for name, node in params.items():
        if not _PARAMETER.fullmatch(name) or name.startswith("__") or not (
            name in known or (routed and "__" in name.strip("_"))
        ):
            raise FormatError(f"it has a parameter named {name!r}")
        out[name] = decode(node, f"parameter {name!r}")
    import inspect

    for name, base in _component_bases().items():
        value = out.get(name)
        if inspect.isclass(value) and not issubclass(value, base):
            raise FormatError(
                f"parameter {name!r} is {value.__name__}, which is not a valid {name} class"
            )
    return out


def _decoded_attributes(model, cls, params, decode):
    attributes = model.get("attributes")
    if not isinstance(attributes, dict):
        raise FormatError("it has no attribute list")
    out = {}
    for name, node in attributes.items():
        if (
            not _ATTRIBUTE.fullmatch(name)
            or name.startswith("__")
            or name in params
            or name in _SKORCH_STATE
            or name.endswith("optimizer_")
            or name in ("module_", "criterion_", "regularizer_")
            or hasattr(cls, name)
        ):
            raise FormatError(f"it sets an attribute named {name!r}")
        out[name] = decode(node, f"attribute {name!r}")
    return out


def _cpu_if_no_cuda(params, path):
    """A model saved on a GPU loads on the CPU of a machine without one (as
    skorch does when unpickling), with a warning."""
    import torch

    device = params.get("device")
    if not isinstance(device, (str, torch.device)):
        return
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError, ValueError):
        return  # refused later with the estimator's own message
    if kind == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            f"{path}: the model was saved with device={str(device)!r}, but CUDA is "
            "not available here; it is loaded on the CPU (device='cpu').",
            UserWarning,
            stacklevel=4,
        )
        params["device"] = "cpu"


def _rebuild(model, decode, path):
    """The estimator of line 2 (``model``), rebuilt without running file code."""
    import torch

    name = model.get("estimator")
    registry = estimator_registry()
    if not isinstance(name, str) or name not in registry:
        raise FormatError(
            f"it names the estimator class {name!r}, which is not one of "
            f"skcollapse's estimators ({', '.join(sorted(registry))}); skcollapse "
            "never imports a class named in a file"
        )
    cls = registry[name]
    params = _decoded_params(model, cls, decode)
    attributes = _decoded_attributes(model, cls, params, decode)
    _check_state(attributes)
    _cpu_if_no_cuda(params, path)
    try:
        # no global RNG draw of the rebuild (initialize()) reaches the caller
        with torch.random.fork_rng(devices=[]):
            if _is_net_class(cls):
                return _rebuild_net(cls, params, attributes, model, decode)
            estimator = cls(**params)
            if hasattr(estimator, "_validate_params"):
                estimator._validate_params()
            vars(estimator).update(attributes)
            return estimator
    except FormatError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError,
            AttributeError, OverflowError) as exc:
        why = " ".join(str(exc).split())[:300]
        raise FormatError(
            f"its saved parameters and state do not rebuild a {name} "
            f"({type(exc).__name__}: {why})"
        ) from exc


def _is_net_class(cls):
    from skorch import NeuralNet

    return isinstance(cls, type) and issubclass(cls, NeuralNet)


def _rebuild_net(cls, params, attributes, model, decode):
    import torch
    from skorch.history import History
    from skorch.utils import to_device

    trimmed = model.get("trimmed") is True
    initialized = model.get("initialized") is True
    params.pop("_trimmed_for_prediction", None)  # skorch lists it as a parameter
    # an older file's copy of skorch's set of routed names: the constructor
    # rebuilds it from the routed parameters themselves
    params.pop("_params_to_validate", None)
    if trimmed:
        # trim_for_prediction set these to None; build with the defaults, then
        # trim again below
        defaults = cls._init_defaults() if hasattr(cls, "_init_defaults") else {}
        for key in ("criterion", "optimizer"):
            if params.get(key) is None and defaults.get(key) is not None:
                params[key] = defaults[key]
    net = cls(**params)
    net._validate_params()
    if hasattr(net, "_check_params"):
        net._check_params()
    vars(net).update(attributes)
    if not initialized:
        return net
    components = model.get("components")
    if not isinstance(components, dict):
        raise FormatError("it has no component states")
    states = {k: decode(v, f"{k}_.state_dict()") for k, v in components.items()}
    for key, state in states.items():
        if state is not None and not isinstance(state, dict):
            raise FormatError(f"the state of {key}_ is not a dict")
    _check_sizes(net, states)
    net.initialize()
    vars(net).update(attributes)  # initialize() resets some (e.g. the cache)
    for name, value in params.items():
        if isinstance(value, np.random.RandomState):  # initialize() drew from it
            setattr(net, name, decode(model["params"][name], f"parameter {name!r}"))
    fitted = net.__sklearn_is_fitted__()
    if fitted and getattr(net, "regularizer_", None) is not None:
        # per-data state, e.g. DBN's running statistics: checked on "meta"
        # against the file first, then built
        _check_regularizer_sizes(net, states.get("regularizer"))
        net._setup_regularizer(None, None)
    unknown = set(states) - {*net._modules, *net._criteria, *net._optimizers}
    if unknown:
        raise FormatError(f"it holds the state of unknown components {sorted(unknown)}")
    for key in [*net._modules, *net._criteria, *net._optimizers]:
        component = getattr(net, key + "_", None)
        state = states.get(key)
        if state is None or component is None:
            if state is not None or (component is not None and key in net._modules):
                raise FormatError(f"it holds no usable state for {key}_")
            continue
        if isinstance(component, torch.nn.Module):
            component.load_state_dict(state, strict=True)
        else:  # an optimiser: checks its parameter groups itself
            component.load_state_dict(state)
    history = decode(model.get("history", []), "history_")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise FormatError("its history is not a list of epochs")
    net.history_ = History(history)
    device = net._device() if hasattr(net, "_device") else net.device
    for name in net.cuda_dependent_attributes_:
        value = vars(net).get(name)
        if name.endswith("_") and value is not None and name in attributes:
            setattr(net, name, to_device(value, device))
    if trimmed:
        net.trim_for_prediction()
    if fitted and hasattr(net, "_prepare_module"):
        net._prepare_module()  # data-dependent module state (LightGCN's graph)
    return net


def _meta_state(build, what):
    """``build()``'s state dict, built on torch's meta device (no memory)."""
    import torch

    try:
        with torch.device("meta"):
            return build().state_dict()
    except Exception as exc:  # noqa: BLE001 - any failure: the file is bad
        why = " ".join(str(exc).split())[:200]
        raise FormatError(
            f"its parameters do not build its {what} ({type(exc).__name__}: {why})"
        ) from None


def _same_shapes(built, state, what):
    """``state`` (from the file) has exactly the entries and shapes of ``built``."""
    import torch

    state = state or {}
    if list(built) != list(state):
        raise FormatError(
            f"its {what} state has entries {sorted(state)[:6]}, but the {what} its "
            f"parameters build has {sorted(built)[:6]}"
        )
    for entry, tensor in built.items():
        saved = state[entry]
        if not isinstance(saved, torch.Tensor) or tuple(saved.shape) != tuple(
            tensor.shape
        ):
            shape = tuple(getattr(saved, "shape", ()))
            raise FormatError(
                f"{what} entry {entry!r} has shape {shape} in the file, but the "
                f"sizes saved with it give {tuple(tensor.shape)}"
            )


def _check_sizes(net, states):
    """The module and criterion the saved parameters build have exactly the
    entries and shapes of the saved states. Checked on torch's meta device, so
    a file that claims huge sizes is refused before anything is allocated."""
    import inspect

    for key in ("module", "criterion"):
        cls = getattr(net, key, None)
        if not inspect.isclass(cls):
            continue
        kwargs = net.get_params_for(key)
        built = _meta_state(lambda: cls(**kwargs), key)  # noqa: B023 - called now
        _same_shapes(built, states.get(key), key)


def _check_regularizer_sizes(net, state):
    """As :func:`_check_sizes`, for the regularizer after its per-data setup."""

    def build():
        reg = net._build_regularizer()
        reg.setup(net.get_regularizer_info(None, None))
        return reg

    _same_shapes(_meta_state(build, "regularizer"), state, "regularizer")


# ---------------------------------------------------------------- fitted state
def _checked_ids(ids, name, *, optional=False):
    """Ids: 1-D, non-negative integers (any size) or strings (never NaN), each once."""
    if ids is None and optional:
        return None
    if not isinstance(ids, np.ndarray) or ids.ndim != 1:
        raise FormatError(f"{name} is not a 1-D array")
    kind = ids.dtype.kind
    strings = kind == "U" or (kind == "O" and all(isinstance(v, str) for v in ids))
    # Python ints beyond uint64 are an object array, kept exactly
    big_ints = kind == "O" and all(
        isinstance(v, int) and not isinstance(v, bool) for v in ids
    )
    if kind in "iu" or big_ints:
        if ids.size and ids.min() < 0:
            raise FormatError(f"{name} holds negative ids")
    elif not strings:
        if kind in "fc" or kind == "O":
            raise FormatError(
                f"{name} holds NaN, floats or mixed values; ids are non-negative "
                "integers or strings"
            )
        raise FormatError(f"{name} has dtype {ids.dtype}; ids are integers or strings")
    if not optional and np.unique(ids).shape[0] != ids.shape[0]:
        raise FormatError(f"{name} holds an id twice")
    return ids


def _count(attributes, name):
    value = attributes.get(name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise FormatError(f"{name} is not an integer")
    if value < 0:
        raise FormatError(f"{name} is negative")
    return int(value)


def _check_state(attributes):
    """Invariants of the fitted state, before anything is built from it."""
    import scipy.sparse as sp
    import torch

    sizes = {}
    for side in ("user", "item"):
        if f"{side}_ids_" in attributes:
            ids = _checked_ids(attributes[f"{side}_ids_"], f"{side}_ids_")
            n = _count(attributes, f"n_{side}s_")
            if n != ids.shape[0]:
                raise FormatError(
                    f"n_{side}s_={n} but {side}_ids_ holds {ids.shape[0]} ids"
                )
            sizes[side] = n
    if len(sizes) == 2:
        n_users, n_items = sizes["user"], sizes["item"]
        R = attributes.get("user_items_")
        if not sp.issparse(R) or R.shape != (n_users, n_items):
            raise FormatError(
                f"user_items_ is not a ({n_users}, {n_items}) sparse matrix"
            )
        expect = {
            "item_popularity_": (n_items,),
            "item_sampling_probability_": (n_items,),
            "coef_": (n_items, n_items),
            "similarity_": (n_items, n_items),
        }
        for name, shape in expect.items():
            if name in attributes and tuple(np.shape(attributes[name])) != shape:
                raise FormatError(f"{name} does not have shape {shape}")
        cache = attributes.get("embeddings_cache_")
        if cache is not None:
            if not isinstance(cache, dict):
                raise FormatError("embeddings_cache_ is not a dict of tables")
            for side, n in sizes.items():
                t = cache.get(side)
                if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[0] != n:
                    raise FormatError(f"embeddings_cache_[{side!r}] has no {n} rows")
        _check_feature_codes(attributes, sizes)
    if "field_dims_" in attributes:
        dims = attributes["field_dims_"]
        if not isinstance(dims, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims
        ):
            raise FormatError("field_dims_ is not a list of positive integers")


def _check_feature_codes(attributes, sizes):
    """Two-tower feature codes index the field tables they belong to."""
    codes = attributes.get("_feature_codes_")
    if codes is None:
        return
    if not isinstance(codes, dict):
        raise FormatError("_feature_codes_ is not a dict")
    for side, fields in codes.items():
        cats = attributes.get(f"{side}_categories_")
        names = attributes.get(f"{side}_fields_")
        if side not in sizes or not isinstance(fields, list) or not isinstance(
            names, list
        ) or not isinstance(cats, dict) or len(fields) != len(names):
            raise FormatError(f"_feature_codes_[{side!r}] does not match its fields")
        for entry, field in zip(fields, names):
            ok = isinstance(entry, tuple) and len(entry) == 2 and field in cats
            if ok:
                c, w = entry
                ok = (
                    isinstance(c, np.ndarray) and isinstance(w, np.ndarray)
                    and c.ndim == 2 and c.shape == w.shape
                    and c.shape[0] == sizes[side] and c.dtype.kind in "iu"
                    and (c.size == 0 or (c.min() >= 0 and c.max() <= len(cats[field])))
                )
            if not ok:
                raise FormatError(
                    f"the {side} feature codes of field {field!r} do not fit its "
                    "categories"
                )


def load_model_tables(path) -> dict:
    """The embedding tables (``get_embeddings()``) of a saved model, as numpy.

    Reads format-2 files only: a format-1 file (a pickle) is refused.
    """
    from skcollapse.metrics import get_embedding_tables

    estimator = load_model(path)
    if not callable(getattr(estimator, "get_embeddings", None)):
        raise TypeError(
            f"{path}: the saved {type(estimator).__name__} has no embedding tables "
            "(no get_embeddings()), so there is nothing to score; score a model "
            "that learns embeddings (MF, LightGCN, two-tower, a CTR classifier)"
        )
    return get_embedding_tables(estimator, to_numpy=True)
