"""Pickle-free encoding of estimator parameters and state (model file format 2).

A value is written as JSON, and every array or tensor it holds goes to a zip
archive of ``.npy`` members read with ``allow_pickle=False``. Reading a file
therefore never runs code from it: JSON is data, an ``.npy`` member is a dtype,
a shape and raw bytes, and the only classes and functions a file can name are
looked up (never imported) in :func:`component_registry`, the library's own list
of components.

The encoding of one value (``encode``/``decode``)
--------------------------------------------------
* ``None``, ``bool``, ``int``, ``str`` and finite ``float``: themselves; a list:
  a JSON array of encoded values.
* Everything else is a JSON object with the key ``"__skc__"`` naming its kind
  (a plain JSON object is never a value, so no data can pass for a tag):

  ===================  ===========================================================
  ``"float"``          a non-finite float: ``{"value": "nan" | "inf" | "-inf"}``
  ``"tuple"``, ``"set"``, ``"frozenset"``
                       ``{"items": [...]}``
  ``"dict"``           ``{"items": {key: value}}`` when every key is a string,
                       else ``{"pairs": [[key, value], ...]}``
  ``"array"``          a numpy array of numbers, booleans, strings (``U``/``S``)
                       or dates: ``{"key": member, "dtype": ..., "shape": [...]}``,
                       the data in archive member ``<key>.npy``
  ``"object_array"``   a numpy array of dtype object (e.g. string ids):
                       ``{"shape": [...], "items": [...]}``, the items encoded
                       one by one in C order
  ``"scalar"``         a numpy scalar: ``{"dtype": ..., "value": ...}``
  ``"tensor"``         a torch tensor: ``{"key", "dtype", "shape",
                       "requires_grad"}``; the data as an ``.npy`` member
                       (``bfloat16`` as its 16-bit pattern)
  ``"sparse"``         a scipy sparse matrix or array (csr, csc, coo):
                       ``{"format", "container": "matrix" | "array", "shape",
                       "data", "indices", "indptr"}`` (coo: ``"row"``, ``"col"``)
  ``"dataframe"``, ``"series"``, ``"index"``, ``"range_index"``, ``"categorical"``
                       pandas objects: an index and one encoded column each
                       (numbers as arrays, other cells as object arrays,
                       categorical columns as categories plus codes)
  ``"device"``, ``"torch_dtype"``, ``"dtype"``
                       ``{"value": "cuda:0" | "float32" | "<f4"}``
  ``"random_state"``   a ``numpy.random.RandomState``: ``{"state": ...}``
  ``"class"``          a class, e.g. ``optimizer=torch.optim.Adam``:
                       ``{"name": "torch.optim.Adam"}``, a key of
                       :func:`component_registry`
  ``"function"``       a function of the registry, e.g. ``{"name": "builtins.print"}``
  ``"object"``         an instance of a registered class, e.g. a callback or a
                       regularizer: ``{"class": name, "params": {...}}``; it is
                       rebuilt as ``cls(**params)``, as ``sklearn.clone`` does
  ===================  ===========================================================

Anything else (a lambda, a class of your own, ...) is refused when saving, with
an error naming the parameter or attribute that holds it.
"""

from __future__ import annotations

import inspect
import math
import zipfile

import numpy as np

__all__ = [
    "ArchiveReader",
    "ArchiveWriter",
    "Decoder",
    "Encoder",
    "FormatError",
    "component_registry",
    "estimator_registry",
]

TAG = "__skc__"
#: Deepest nesting of encoded values a file may hold.
MAX_DEPTH = 64


class FormatError(ValueError):
    """The model file is damaged, edited, or names something it may not."""


# ---------------------------------------------------------------- registries
#: skorch callbacks a model file may name: printing, scoring and scheduling only
#: (not those that write or read files, e.g. Checkpoint or LoadInitState).
_SKORCH_CALLBACKS = (
    "BatchScoring",
    "EarlyStopping",
    "EpochScoring",
    "EpochTimer",
    "GradientNormClipping",
    "LRScheduler",
    "PassthroughScoring",
    "PrintLog",
    "ProgressBar",
    "WarmRestartLR",
)
#: Public sub-packages whose exported classes a model file may name.
_OWN_PACKAGES = (
    "skcollapse.callbacks",
    "skcollapse.metrics",
    "skcollapse.model_selection",
    "skcollapse.nn",
    "skcollapse.recommenders",
    "skcollapse.regularizers",
)

_REGISTRY = None
_ESTIMATORS = None


def component_registry() -> dict:
    """``{name: class or function}`` of everything a model file may name.

    The classes exported by skcollapse's public sub-packages (modules, losses,
    regularizers, callbacks, scorers, splitters), torch's optimisers, learning
    rate schedulers and losses, ``torch.utils.data.DataLoader``, skorch's
    ``Dataset``/``ValidSplit`` and printing/scoring callbacks, and the two
    functions that are defaults of those callbacks (``print`` and
    ``skorch.utils.to_numpy``). A file names them by these keys; a name that is
    not a key is refused, never imported.
    """
    global _REGISTRY
    if _REGISTRY is not None:
        return _REGISTRY
    import importlib

    import skorch.callbacks
    import skorch.dataset
    import skorch.utils
    import torch
    import torch.nn.modules.loss
    import torch.optim.lr_scheduler

    found = {}
    for package in _OWN_PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                found[f"{package}.{name}"] = obj
    for name in torch.optim.__all__:
        obj = getattr(torch.optim, name)
        if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer):
            found[f"torch.optim.{name}"] = obj
    for name in torch.optim.lr_scheduler.__all__:
        obj = getattr(torch.optim.lr_scheduler, name)
        if inspect.isclass(obj):
            found[f"torch.optim.lr_scheduler.{name}"] = obj
    for name in torch.nn.modules.loss.__all__:
        found[f"torch.nn.{name}"] = getattr(torch.nn.modules.loss, name)
    found["torch.utils.data.DataLoader"] = torch.utils.data.DataLoader
    found["skorch.dataset.Dataset"] = skorch.dataset.Dataset
    found["skorch.dataset.ValidSplit"] = skorch.dataset.ValidSplit
    for name in _SKORCH_CALLBACKS:
        found[f"skorch.callbacks.{name}"] = getattr(skorch.callbacks, name)
    found["builtins.print"] = print
    found["skorch.utils.to_numpy"] = skorch.utils.to_numpy
    _REGISTRY = found
    return found


def estimator_registry() -> dict:
    """``{class name: class}`` of the estimators a model file can hold.

    Every concrete scikit-learn estimator exported by
    :mod:`skcollapse.recommenders` (the CF recommenders, the CTR classifiers
    and the baselines); a file names its estimator by one of these keys.
    """
    global _ESTIMATORS
    if _ESTIMATORS is not None:
        return _ESTIMATORS
    from sklearn.base import BaseEstimator

    from skcollapse import recommenders

    found = {}
    for name in recommenders.__all__:
        obj = getattr(recommenders, name)
        if (
            inspect.isclass(obj)
            and issubclass(obj, BaseEstimator)
            and not inspect.isabstract(obj)
        ):
            found[name] = obj
    _ESTIMATORS = found
    return found


def _registry_name(obj):
    for name, value in component_registry().items():
        if value is obj:
            return name
    return None


def _describe(value):
    if inspect.isclass(value):
        return f"the class {value.__module__}.{value.__qualname__}"
    if callable(value) and hasattr(value, "__qualname__"):
        module = getattr(value, "__module__", None) or "?"
        return f"the function {module}.{value.__qualname__}"
    kind = type(value)
    return f"a {kind.__module__}.{kind.__qualname__} object"


# ---------------------------------------------------------------- the archive
_NUMPY_KINDS = "biufcUSMm"
#: torch dtypes stored as a numpy dtype of the same bits (bfloat16 has none)
_TORCH_BITS = {"bfloat16": "int16"}


class ArchiveWriter:
    """Collects the arrays of a model file and writes them as a zip archive."""

    def __init__(self):
        self.arrays = {}

    def add(self, array) -> str:
        key = f"a{len(self.arrays)}"
        # C order, as the header says (ascontiguousarray would make 0-d 1-d)
        self.arrays[key] = np.array(array, order="C", copy=None)
        return key

    def write(self, fh):
        """Write the archive (members stored, never compressed) to ``fh``."""
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            for key, array in self.arrays.items():
                large = array.nbytes > 2**30
                with zf.open(f"{key}.npy", "w", force_zip64=large) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)


class ArchiveReader:
    """Reads the ``.npy`` members of a model file's archive, checking each first.

    A member is read only when it is stored uncompressed (its size on disk is
    its size: no archive can expand into more memory than the file holds), its
    ``.npy`` header is well formed and matches the JSON's dtype and shape (no
    negative dimension, no object or structured dtype), and its byte count is
    exactly what the shape asks for.
    """

    def __init__(self, fh, name):
        self.name = name
        try:
            self.zip = zipfile.ZipFile(fh)
            names = self.zip.namelist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise FormatError(
                f"the array archive is damaged or truncated ({exc})"
            ) from None
        if len(set(names)) != len(names):
            raise FormatError("the array archive lists a member twice")

    def read(self, key, dtype_str, shape):
        if not isinstance(key, str) or not key.isalnum():
            raise FormatError(f"bad array key {key!r}")
        try:
            info = self.zip.getinfo(f"{key}.npy")
        except KeyError:
            raise FormatError(
                f"the array archive has no member {key}.npy (truncated?)"
            ) from None
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise FormatError(
                f"member {key}.npy is compressed or encrypted; model files store "
                "arrays uncompressed"
            )
        dtype = _checked_dtype(dtype_str)
        shape = _checked_shape(shape)
        try:
            with self.zip.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    header = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    header = np.lib.format.read_array_header_2_0(member)
                else:
                    raise FormatError(f"member {key}.npy has .npy version {version}")
                file_shape, fortran, file_dtype = header
                if file_dtype.hasobject or file_dtype.names is not None:
                    raise FormatError(
                        f"member {key}.npy holds Python objects or records "
                        f"(dtype {file_dtype}); model files hold plain arrays only"
                    )
                if file_dtype != dtype or tuple(file_shape) != shape:
                    raise FormatError(
                        f"member {key}.npy is {file_dtype.str} {tuple(file_shape)}, "
                        f"but the file's description says {dtype.str} {shape}"
                    )
                nbytes = math.prod(shape) * dtype.itemsize
                if info.file_size != member.tell() + nbytes:
                    raise FormatError(
                        f"member {key}.npy holds {info.file_size - member.tell()} "
                        f"bytes of data, but its shape {shape} needs {nbytes}"
                    )
                data = bytearray(nbytes)
                view = memoryview(data)
                got = 0
                while got < nbytes:
                    n = member.readinto(view[got:])
                    if not n:
                        break
                    got += n
        except FormatError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise FormatError(
                f"member {key}.npy is damaged or truncated ({exc})"
            ) from None
        if got != nbytes:
            raise FormatError(f"member {key}.npy is truncated")
        array = np.frombuffer(data, dtype=dtype)
        return array.reshape(shape, order="F" if fortran else "C")


def _checked_dtype(text):
    if not isinstance(text, str) or len(text) > 16:
        raise FormatError(f"bad array dtype {text!r}")
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError):
        raise FormatError(f"bad array dtype {text!r}") from None
    if dtype.kind not in _NUMPY_KINDS or dtype.hasobject or dtype.names is not None:
        raise FormatError(f"array dtype {text!r} is not a plain numeric or text dtype")
    return dtype


def _checked_shape(shape):
    if not isinstance(shape, list) or len(shape) > 32:
        raise FormatError(f"bad array shape {shape!r}")
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise FormatError(f"bad array shape {shape!r} (negative or not integers)")
    return tuple(shape)


# ---------------------------------------------------------------- encoding
class Encoder:
    """Encodes values as described in the module docstring.

    Parameters
    ----------
    archive : ArchiveWriter
        Receives the arrays.
    """

    def __init__(self, archive):
        self.archive = archive

    def __call__(self, value, where):
        return self.encode(value, where)

    def refuse(self, value, where, why=""):
        raise TypeError(
            f"{where} is {_describe(value)}, which a model file cannot store "
            f"(it holds no pickled code){why}. Model files store plain values, "
            "arrays, tensors, pandas tables and skcollapse/torch/skorch components "
            "(see skcollapse.cli._model_codec)."
        )

    def encode(self, value, where):
        import pandas as pd
        import scipy.sparse as sp
        import torch

        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and type(value) is int:
            return value
        if type(value) is float:
            if math.isfinite(value):
                return value
            return {TAG: "float", "value": repr(value)}
        if type(value) is list:
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if type(value) is tuple:
            items = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return {TAG: "tuple", "items": items}
        if type(value) in (set, frozenset):
            items = [self.encode(v, f"{where} item") for v in value]
            return {TAG: type(value).__name__, "items": items}
        if isinstance(value, dict) and type(value).__module__ in (
            "builtins", "collections"
        ):
            if all(isinstance(k, str) for k in value):
                items = {k: self.encode(v, f"{where}[{k!r}]") for k, v in value.items()}
                return {TAG: "dict", "items": items}
            pairs = [
                [self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")]
                for k, v in value.items()
            ]
            return {TAG: "dict", "pairs": pairs}
        if isinstance(value, np.generic):
            return self._scalar(value, where)
        if isinstance(value, np.ndarray) and not isinstance(value, np.matrix):
            return self._array(np.asarray(value), where)
        if isinstance(value, torch.Tensor):
            return self._tensor(value, where)
        if sp.issparse(value):
            return self._sparse(value, where)
        if isinstance(value, (pd.DataFrame, pd.Series, pd.Index)):
            return self._pandas(value, where)
        if isinstance(value, torch.device):
            return {TAG: "device", "value": str(value)}
        if isinstance(value, torch.dtype):
            return {TAG: "torch_dtype", "value": str(value).removeprefix("torch.")}
        if isinstance(value, np.dtype):
            self._plain_dtype(value, where)
            return {TAG: "dtype", "value": value.str}
        if type(value) is np.random.RandomState:
            state = value.get_state(legacy=True)
            return {TAG: "random_state", "state": self.encode(state, where)}
        name = _registry_name(value)
        if name is not None:
            kind = "class" if inspect.isclass(value) else "function"
            return {TAG: kind, "name": name}
        if inspect.isclass(value) or inspect.isroutine(value) or not hasattr(
            value, "__dict__"
        ):
            self.refuse(value, where, "; only the classes and functions skcollapse "
                        "knows by name can be stored")
        cls_name = _registry_name(type(value))
        if cls_name is None or not _rebuildable(type(value)):
            self.refuse(value, where)
        params = _constructor_params(value)
        if params is None:
            self.refuse(value, where, "; its constructor arguments cannot be read")
        encoded = {k: self.encode(v, f"{where}.{k}") for k, v in params.items()}
        return {TAG: "object", "class": cls_name, "params": encoded}

    # -- numpy
    def _plain_dtype(self, dtype, where):
        if dtype.kind not in _NUMPY_KINDS or dtype.names is not None:
            raise TypeError(
                f"{where} has dtype {dtype}, which a model file cannot store; "
                "convert it to numbers or strings first."
            )

    def _scalar(self, value, where):
        self._plain_dtype(value.dtype, where)
        item = value.item()
        if isinstance(item, complex) or value.dtype.kind in "USMm":
            return {TAG: "scalar", "dtype": value.dtype.str,
                    "array": self._array(np.asarray(value).reshape(1), where)}
        return {TAG: "scalar", "dtype": value.dtype.str,
                "value": self.encode(item, where)}

    def _array(self, value, where):
        if value.dtype == object:
            items = [
                self.encode(v, f"{where}[{i}]")
                for i, v in enumerate(value.ravel(order="C"))
            ]
            return {TAG: "object_array", "shape": list(value.shape), "items": items}
        self._plain_dtype(value.dtype, where)
        key = self.archive.add(value)
        return {TAG: "array", "key": key, "dtype": value.dtype.str,
                "shape": list(value.shape)}

    # -- torch
    def _tensor(self, value, where):
        import torch

        if value.layout != torch.strided or value.device.type == "meta":
            raise TypeError(
                f"{where} is a {value.layout} tensor on {value.device}; model files "
                "store dense tensors only."
            )
        t = value.detach().cpu().contiguous()
        name = str(t.dtype).removeprefix("torch.")
        if name in _TORCH_BITS:
            t = t.view(getattr(torch, _TORCH_BITS[name]))
        try:
            array = t.numpy()
        except TypeError:
            raise TypeError(
                f"{where} is a tensor of dtype {name}, which a model file cannot "
                "store; convert it to float32 first."
            ) from None
        key = self.archive.add(array)
        return {TAG: "tensor", "key": key, "dtype": name,
                "shape": list(value.shape), "requires_grad": bool(value.requires_grad)}

    # -- scipy
    def _sparse(self, value, where):
        import scipy.sparse as sp

        fmt = value.format
        if fmt not in ("csr", "csc", "coo"):
            raise TypeError(
                f"{where} is a scipy {fmt} matrix; model files store csr, csc and "
                "coo, convert it with .tocsr() first."
            )
        out = {
            TAG: "sparse",
            "format": fmt,
            "container": "matrix" if isinstance(value, sp.spmatrix) else "array",
            "shape": [int(s) for s in value.shape],
            "data": self._array(np.asarray(value.data), f"{where}.data"),
        }
        if fmt == "coo":
            out["row"] = self._array(np.asarray(value.row), f"{where}.row")
            out["col"] = self._array(np.asarray(value.col), f"{where}.col")
        else:
            out["indices"] = self._array(np.asarray(value.indices), f"{where}.indices")
            out["indptr"] = self._array(np.asarray(value.indptr), f"{where}.indptr")
        return out

    # -- pandas
    def _pandas(self, value, where):
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            if isinstance(value.columns, pd.MultiIndex):
                raise TypeError(f"{where} has MultiIndex columns; flatten them first.")
            columns = [
                self._column(value.iloc[:, j], f"{where}[{value.columns[j]!r}]")
                for j in range(value.shape[1])
            ]
            return {
                TAG: "dataframe",
                "index": self._index(value.index, f"{where}.index"),
                "columns": self._index(value.columns, f"{where}.columns"),
                "data": columns,
            }
        if isinstance(value, pd.Series):
            return {
                TAG: "series",
                "index": self._index(value.index, f"{where}.index"),
                "name": self.encode(value.name, f"{where}.name"),
                "values": self._column(value, where),
            }
        return self._index(value, where)

    def _index(self, index, where):
        import pandas as pd

        if isinstance(index, pd.MultiIndex):
            raise TypeError(f"{where} is a MultiIndex; reset it first.")
        name = self.encode(index.name, f"{where}.name")
        if type(index) is pd.RangeIndex:
            return {TAG: "range_index", "start": index.start, "stop": index.stop,
                    "step": index.step, "name": name}
        return {TAG: "index", "values": self._values(index, where), "name": name}

    def _column(self, series, where):
        return self._values(series, where)

    def _values(self, values, where):
        """Values of a Series or Index, keeping the pandas dtype."""
        import pandas as pd

        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            cat = pd.Categorical(values)
            return {
                TAG: "categorical",
                "categories": self._index(cat.categories, f"{where}.categories"),
                "codes": self._array(np.asarray(cat.codes), f"{where}.codes"),
                "ordered": bool(cat.ordered),
            }
        if isinstance(dtype, pd.StringDtype):
            items = [v if isinstance(v, str) else None for v in values]
            return {TAG: "object_array", "shape": [len(items)],
                    "items": [self.encode(v, where) for v in items],
                    "pandas_dtype": "string", "storage": dtype.storage,
                    "na_value": "nan" if dtype.na_value is not pd.NA else "NA"}
        if isinstance(dtype, np.dtype):
            return self._array(np.asarray(values), where)
        raise TypeError(
            f"{where} has pandas dtype {dtype}, which a model file cannot store; "
            "convert it with .astype(object) (or a numpy dtype) first."
        )


def _rebuildable(cls):
    """Whether instances of the registered class ``cls`` may be stored as
    ``cls(**params)``: callbacks, regularizers, scorers, splitters. Never a
    class whose constructor allocates from its arguments (torch modules other
    than regularizers, optimisers, data loaders) or an estimator."""
    import skorch
    import skorch.callbacks
    from sklearn.base import BaseEstimator
    from sklearn.model_selection import BaseCrossValidator

    from skcollapse.model_selection import PerUserValidSplit
    from skcollapse.regularizers import Regularizer

    if issubclass(cls, (skorch.callbacks.Callback, Regularizer, BaseCrossValidator)):
        return True
    if issubclass(cls, BaseEstimator):  # scorers; not the model estimators
        return cls not in estimator_registry().values() and not issubclass(
            cls, skorch.NeuralNet
        )
    return cls in (skorch.dataset.ValidSplit, PerUserValidSplit)


def _constructor_params(obj):
    """Constructor arguments of ``obj``: the attributes named like the arguments
    of its ``__init__`` (scikit-learn's convention, which skorch callbacks and
    the regularizers follow); None when one is not stored."""
    params = {}
    sig = inspect.signature(type(obj).__init__)
    var_keyword = False
    for name, p in sig.parameters.items():
        if p.kind == p.VAR_KEYWORD:
            var_keyword = True
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if not hasattr(obj, name):
            return None
        params[name] = getattr(obj, name)
    get_params = getattr(obj, "get_params", None)
    if var_keyword and callable(get_params):
        # ``**kwargs`` stored as attributes (skorch's LRScheduler(step_size=...)):
        # skorch callbacks list them in get_params (with their private state,
        # which starts with "_" and is left out)
        for name, value in get_params(deep=False).items():
            if name not in params and not name.startswith("_") and "__" not in name:
                params[name] = value
    return params


# ---------------------------------------------------------------- decoding
class Decoder:
    """Decodes what :class:`Encoder` wrote, refusing anything else.

    Parameters
    ----------
    archive : ArchiveReader
        Where the arrays are read from.
    """

    def __init__(self, archive):
        self.archive = archive

    def __call__(self, node, where):
        return self.decode(node, where, 0)

    def decode(self, node, where, depth):
        if depth > MAX_DEPTH:
            raise FormatError(f"{where} is nested more than {MAX_DEPTH} levels deep")
        depth += 1
        if node is None or isinstance(node, (bool, int, str)):
            return node
        if isinstance(node, float):
            return node
        if isinstance(node, list):
            return [self.decode(v, where, depth) for v in node]
        if not isinstance(node, dict) or TAG not in node:
            raise FormatError(f"{where} holds an untagged JSON object")
        kind = node[TAG]
        if kind == "float":
            value = node.get("value")
            if value not in ("nan", "inf", "-inf"):
                raise FormatError(f"{where}: bad float {value!r}")
            return float(value)
        if kind in ("tuple", "set", "frozenset"):
            items = [self.decode(v, where, depth) for v in self._list(node, "items")]
            try:
                return {"tuple": tuple, "set": set, "frozenset": frozenset}[kind](items)
            except TypeError:
                raise FormatError(f"{where}: unhashable set items") from None
        if kind == "dict":
            if "items" in node:
                items = node["items"]
                if not isinstance(items, dict):
                    raise FormatError(f"{where}: bad dict")
                return {k: self.decode(v, where, depth) for k, v in items.items()}
            out = {}
            for pair in self._list(node, "pairs"):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise FormatError(f"{where}: bad dict pair")
                key = self.decode(pair[0], where, depth)
                try:
                    out[key] = self.decode(pair[1], where, depth)
                except TypeError:
                    raise FormatError(f"{where}: unhashable dict key") from None
            return out
        if kind == "array":
            return self.archive.read(node.get("key"), node.get("dtype"),
                                     node.get("shape"))
        if kind == "object_array":
            return self._object_array(node, where, depth)
        if kind == "scalar":
            dtype = _checked_dtype(node.get("dtype"))
            if "array" in node:
                array = self.decode(node["array"], where, depth)
                if not isinstance(array, np.ndarray) or array.shape != (1,):
                    raise FormatError(f"{where}: bad scalar")
                return array.astype(dtype)[0]
            value = self.decode(node.get("value"), where, depth)
            if isinstance(value, (list, dict, tuple)):
                raise FormatError(f"{where}: bad scalar")
            try:
                return dtype.type(value)
            except (TypeError, ValueError, OverflowError):
                raise FormatError(f"{where}: bad {dtype} scalar {value!r}") from None
        if kind == "tensor":
            return self._tensor(node, where)
        if kind == "sparse":
            return self._sparse(node, where, depth)
        if kind in ("dataframe", "series", "index", "range_index"):
            return self._pandas(node, where, depth)
        if kind == "device":
            import torch

            try:
                return torch.device(self._str(node, "value"))
            except (RuntimeError, TypeError, ValueError):
                raise FormatError(f"{where}: bad device {node.get('value')!r}") from None
        if kind == "torch_dtype":
            return self._torch_dtype(self._str(node, "value"), where)
        if kind == "dtype":
            return _checked_dtype(node.get("value"))
        if kind == "random_state":
            state = self.decode(node.get("state"), where, depth)
            rs = np.random.RandomState()
            try:
                rs.set_state(state)
            except (TypeError, ValueError, KeyError, IndexError):
                raise FormatError(f"{where}: bad RandomState state") from None
            return rs
        if kind in ("class", "function"):
            return self._registered(node.get("name"), where, kind)
        if kind == "object":
            cls = self._registered(node.get("class"), where, "class")
            if not _rebuildable(cls):
                raise FormatError(
                    f"{where} asks to build a {node.get('class')}, which a model "
                    "file may name but not build"
                )
            params = node.get("params")
            if not isinstance(params, dict):
                raise FormatError(f"{where}: bad object parameters")
            kwargs = {k: self.decode(v, f"{where}.{k}", depth) for k, v in params.items()}
            try:
                return cls(**kwargs)
            except (TypeError, ValueError) as exc:
                raise FormatError(
                    f"{where}: cannot rebuild {node.get('class')} from its saved "
                    f"parameters ({exc})"
                ) from None
        raise FormatError(f"{where} has unknown kind {kind!r}")

    # -- helpers
    @staticmethod
    def _entry(node, key, kind):
        """``node[key]``, which must be a ``kind`` (else the file is malformed)."""
        value = node.get(key)
        if not isinstance(value, kind):
            raise FormatError(f"bad {node.get(TAG)} entry {key!r}")
        return value

    @classmethod
    def _list(cls, node, key):
        return cls._entry(node, key, list)

    @classmethod
    def _str(cls, node, key):
        return cls._entry(node, key, str)

    @staticmethod
    def _registered(name, where, kind):
        registry = component_registry()
        if not isinstance(name, str) or name not in registry:
            raise FormatError(
                f"{where} names {kind} {name!r}, which is not one of the components "
                "skcollapse loads by name (skcollapse never imports a name read "
                "from a file)"
            )
        value = registry[name]
        if inspect.isclass(value) != (kind == "class"):
            raise FormatError(f"{where}: {name!r} is not a {kind}")
        return value

    def _object_array(self, node, where, depth):
        shape = _checked_shape(node.get("shape"))
        items = self._list(node, "items")
        if len(items) != math.prod(shape):
            raise FormatError(
                f"{where}: {len(items)} items for an object array of shape {shape}"
            )
        out = np.empty(len(items), dtype=object)
        for i, item in enumerate(items):
            out[i] = self.decode(item, where, depth)
        out = out.reshape(shape)
        pandas_dtype = node.get("pandas_dtype")
        if pandas_dtype is not None:
            import pandas as pd

            storage, na_value = node.get("storage"), node.get("na_value")
            if (
                pandas_dtype != "string"
                or storage not in ("python", "pyarrow")
                or na_value not in ("nan", "NA")
                or out.ndim != 1
                or any(v is not None and not isinstance(v, str) for v in out)
            ):
                raise FormatError(f"{where}: bad pandas string column")
            na = np.nan if na_value == "nan" else pd.NA
            try:
                dtype = pd.StringDtype(storage=storage, na_value=na)
            except ImportError:  # pyarrow is not installed here
                dtype = pd.StringDtype(storage="python", na_value=na)
            return pd.array(out, dtype=dtype)
        return out

    @staticmethod
    def _torch_dtype(name, where):
        import torch

        dtype = getattr(torch, name, None) if name.isidentifier() else None
        if not isinstance(dtype, torch.dtype):
            raise FormatError(f"{where}: unknown torch dtype {name!r}")
        return dtype

    def _tensor(self, node, where):
        import torch

        name = self._str(node, "dtype")
        dtype = self._torch_dtype(name, where)
        shape = node.get("shape")
        stored = _TORCH_BITS.get(name)
        np_dtype = np.dtype(stored) if stored else None
        if np_dtype is None:
            try:
                np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
            except TypeError:
                raise FormatError(f"{where}: unsupported tensor dtype {name}") from None
        array = self.archive.read(node.get("key"), np_dtype.str, shape)
        tensor = torch.from_numpy(array)
        if stored:
            tensor = tensor.view(dtype)
        if node.get("requires_grad") is True:
            if not (tensor.is_floating_point() or tensor.is_complex()):
                raise FormatError(f"{where}: an integer tensor cannot require grad")
            tensor.requires_grad_(True)
        return tensor

    def _sparse(self, node, where, depth):
        import scipy.sparse as sp

        fmt = node.get("format")
        if fmt not in ("csr", "csc", "coo"):
            raise FormatError(f"{where}: unknown sparse format {fmt!r}")
        shape = _checked_shape(node.get("shape"))
        if len(shape) != 2:
            raise FormatError(f"{where}: a sparse matrix must be 2-D")
        parts = ("data", "row", "col") if fmt == "coo" else ("data", "indices", "indptr")
        arrays = {}
        for part in parts:
            arr = self.decode(node.get(part), where, depth)
            if not isinstance(arr, np.ndarray) or arr.ndim != 1:
                raise FormatError(f"{where}: bad sparse {part}")
            arrays[part] = arr
        for part in parts[1:]:
            if arrays[part].dtype.kind not in "iu":
                raise FormatError(f"{where}: sparse {part} must be integers")
        container = node.get("container")
        if container not in ("matrix", "array"):
            raise FormatError(f"{where}: bad sparse container {container!r}")
        cls = getattr(sp, f"{fmt}_{container}")
        try:
            if fmt == "coo":
                if not (arrays["data"].shape == arrays["row"].shape
                        == arrays["col"].shape):
                    raise ValueError("row, col and data differ in length")
                for part, bound in (("row", shape[0]), ("col", shape[1])):
                    a = arrays[part]
                    if a.size and (a.min() < 0 or a.max() >= bound):
                        raise ValueError(f"{part} index out of range")
                out = cls((arrays["data"], (arrays["row"], arrays["col"])),
                          shape=shape)
            else:
                out = cls((arrays["data"], arrays["indices"], arrays["indptr"]),
                          shape=shape)
                # indices within the shape, indptr monotone: scipy's full check
                out.check_format(full_check=True)
        except (ValueError, TypeError, IndexError, OverflowError) as exc:
            raise FormatError(f"{where}: inconsistent sparse matrix ({exc})") from None
        return out

    def _pandas(self, node, where, depth):
        import pandas as pd

        kind = node[TAG]
        if kind == "range_index":
            bounds = [node.get(k) for k in ("start", "stop", "step")]
            if any(isinstance(b, bool) or not isinstance(b, int) for b in bounds):
                raise FormatError(f"{where}: bad RangeIndex")
            try:
                return pd.RangeIndex(*bounds,
                                     name=self.decode(node.get("name"), where, depth))
            except (TypeError, ValueError):
                raise FormatError(f"{where}: bad RangeIndex") from None
        if kind == "index":
            values = self._values(node.get("values"), where, depth)
            return pd.Index(values, name=self.decode(node.get("name"), where, depth),
                            tupleize_cols=False)
        if kind == "series":
            index = self._pandas_node(node.get("index"), where, depth)
            values = self._values(node.get("values"), where, depth)
            if len(values) != len(index):
                raise FormatError(f"{where}: Series values and index differ in length")
            return pd.Series(values, index=index,
                             name=self.decode(node.get("name"), where, depth))
        index = self._pandas_node(node.get("index"), where, depth)
        columns = self._pandas_node(node.get("columns"), where, depth)
        data = node.get("data")
        if not isinstance(data, list) or len(data) != len(columns):
            raise FormatError(f"{where}: DataFrame columns and data differ in length")
        values = [self._values(col, where, depth) for col in data]
        if any(len(v) != len(index) for v in values):
            raise FormatError(f"{where}: a DataFrame column differs from its index")
        frame = pd.DataFrame(
            {j: v for j, v in enumerate(values)}, index=index
        )
        frame.columns = columns
        return frame

    def _pandas_node(self, node, where, depth):
        import pandas as pd

        value = self.decode(node, where, depth)
        if not isinstance(value, pd.Index):
            raise FormatError(f"{where}: bad pandas index")
        return value

    def _values(self, node, where, depth):
        import pandas as pd

        if isinstance(node, dict) and node.get(TAG) == "categorical":
            categories = self._pandas_node(node.get("categories"), where, depth)
            codes = self.decode(node.get("codes"), where, depth)
            if (
                not isinstance(codes, np.ndarray)
                or codes.ndim != 1
                or codes.dtype.kind not in "iu"
                or (codes.size and (codes.min() < -1 or codes.max() >= len(categories)))
            ):
                raise FormatError(f"{where}: bad categorical codes")
            return pd.Categorical.from_codes(
                codes, categories=categories, ordered=node.get("ordered") is True
            )
        values = self.decode(node, where, depth)
        if isinstance(values, np.ndarray) and values.ndim == 1:
            return values
        if isinstance(values, pd.api.extensions.ExtensionArray):
            return values
        raise FormatError(f"{where}: bad pandas values")
