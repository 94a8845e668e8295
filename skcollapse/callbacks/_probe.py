"""Collapse of any module's output: forward hooks with an O(d^2) accumulator.

:class:`CollapseProbe` (a skorch callback) and :func:`probe_collapse` (a plain
function for a ``torch.nn.Module`` and a DataLoader) hook the outputs of chosen
modules -- LightGCN's propagation, a DCNv2 cross layer, a tower of a two-tower
model, any user module -- and accumulate, over an epoch, the float64 ``d x d``
Gram matrix of the output rows (:class:`~skcollapse.metrics.TorchGramAccumulator`),
on the output's own device. Activations are never kept: memory is ``O(d^2)`` per
probe however many batches run. At the end of an epoch the spectrum of the
accumulated Gram gives the effective rank, information abundance, ... of all
the rows the module produced, exactly as if they had been concatenated.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import ClassVar

from skcollapse.callbacks._base import ParametrizedCallback
from skcollapse.metrics import TorchGramAccumulator, resolve_collapse_metrics
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    validate_parameter_constraints,
)

__all__ = ["CollapseProbe", "probe_collapse"]

# ------------------------------------------------------------------ metrics
def _metric_values(acc, entries):
    sigma = acc.singular_values()
    n = acc.n_samples_seen
    return {
        m.alias: float(m.from_spectrum(sigma, center=acc.center, n_samples=n))
        for m in entries
    }


def _check_metrics(metrics):
    """Registry entries of ``metrics``: spectral ones only (read from the Gram)."""
    return resolve_collapse_metrics(list(metrics), spectral=True)


# ------------------------------------------------------------------ hooks
def _rows_of(output, label, select):
    """The 2-D ``(rows, d)`` view of a probed output."""
    import torch

    if select is not None:
        output = select(output)
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"probe {label!r}: the module returned a {type(output).__name__}, not a "
            "tensor; pass output=<callable> choosing the tensor to probe, e.g. "
            "output=lambda out: out[0] or lambda out: out['item']."
        )
    if output.ndim == 0 or not output.is_floating_point():
        raise TypeError(
            f"probe {label!r}: the output must be a floating tensor with a feature "
            f"dimension, got shape {tuple(output.shape)} and dtype {output.dtype}."
        )
    if output.ndim == 1:
        return output[:, None]
    return output.reshape(-1, output.shape[-1])  # (batch, ..., d) -> (rows, d)


class _Hook:
    """Callable forward hook feeding one :class:`TorchGramAccumulator` while active."""

    def __init__(self, label, gram, select, is_active):
        self.label = label
        self.gram = gram
        self.select = select
        self.is_active = is_active

    def __call__(self, module, args, output):
        if self.is_active():
            self.gram.update(_rows_of(output, self.label, self.select))


class _MethodWrapper:
    """A module *method* (LightGCN's ``propagate``) wrapped for the probe's life."""

    def __init__(self, owner, name, hook):
        self.owner = owner
        self.name = name
        self.original = getattr(owner, name)
        self.hook = hook
        setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        out = self.original(*args, **kwargs)
        self.hook(self.owner, args, out)
        return out

    def remove(self):
        if self.owner.__dict__.get(self.name) is self:
            del self.owner.__dict__[self.name]


def _resolve_targets(root, modules, *, root_name):
    """``{label: (object, attribute)}`` of what to hook.

    ``modules`` is a dotted name, a list of them, a dict ``{label: name}``, or a
    callable ``(name, module) -> bool`` over ``root_module.named_modules()``.
    """
    import torch

    if callable(modules) and not isinstance(modules, (str, Mapping)):
        module = root if isinstance(root, torch.nn.Module) else getattr(
            root, "module_", None
        )
        prefix = "" if module is root else "module_."
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"{root_name} has no torch module to search.")
        found = {
            f"{prefix}{name}" if name else prefix.rstrip(".") or "module": sub
            for name, sub in module.named_modules()
            if modules(name, sub)
        }
        if not found:
            raise ValueError(
                "the modules callable selected no module of "
                f"{type(module).__name__}."
            )
        return {label: (sub, None) for label, sub in found.items()}
    if isinstance(modules, str):
        modules = [modules]
    labels = dict(modules) if isinstance(modules, Mapping) else {m: m for m in modules}
    if not labels:
        raise ValueError("modules is empty; name at least one module to probe.")
    out = {}
    for label, name in labels.items():
        if not isinstance(name, str):
            raise TypeError(f"module names must be dotted strings, got {name!r}.")
        obj, parent, attr = root, None, None
        for part in name.split("."):
            parent, attr = obj, part
            try:
                obj = getattr(obj, part) if not part.isdigit() else obj[int(part)]
            except (AttributeError, IndexError, KeyError, TypeError):
                raise ValueError(
                    f"module {name!r} not found in {root_name}: it has no {part!r}"
                    + _children_hint(parent)
                ) from None
        if isinstance(obj, torch.nn.Module):
            out[str(label)] = (obj, None)
        elif callable(obj) and isinstance(parent, torch.nn.Module):
            out[str(label)] = (parent, attr)  # a method: wrapped
        else:
            raise TypeError(
                f"{name!r} is a {type(obj).__name__}; probe a torch module or a "
                "method of one."
            )
    return out


def _children_hint(parent):
    import torch

    if isinstance(parent, torch.nn.Module):
        names = [n for n, _ in parent.named_children()]
        return f" (its sub-modules: {names})." if names else "."
    return "."


class _ProbeSet:
    """Hooks on several targets, one accumulator each; hooks removed on close."""

    def __init__(self, targets, *, center, row_normalize, select, is_active):
        self.grams = {}
        self._handles = []
        for label, (obj, attr) in targets.items():
            gram = TorchGramAccumulator(center=center, row_normalize=row_normalize)
            sel = select.get(label) if isinstance(select, Mapping) else select
            hook = _Hook(label, gram, sel, is_active)
            if attr is None:
                self._handles.append(obj.register_forward_hook(hook))
            else:
                self._handles.append(_MethodWrapper(obj, attr, hook))
            self.grams[label] = gram

    def results(self, entries):
        out = {}
        for label, gram in self.grams.items():
            acc = gram.to_accumulator()
            if acc is None:
                out[label] = None
                continue
            out[label] = {**_metric_values(acc, entries), "n_samples": acc.n_samples_seen}
        return out

    def reset(self):
        for gram in self.grams.values():
            gram.reset()

    def close(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []


# ------------------------------------------------------------------ the callback
class CollapseProbe(ParametrizedCallback):
    """Record the effective rank and IA of any module's output, every epoch.

    Forward hooks on the chosen modules accumulate the float64 Gram matrix of
    their output rows over the epoch's training batches (and, with
    ``on="both"``, validation batches), on the output's device; activations are
    never kept, so memory is ``O(d^2)`` per probe. At the end of the epoch the
    metrics of all rows seen are written to the history as
    ``"<alias>_<label>"`` (``"erank_module_.propagate"``), validation ones as
    ``"valid_<alias>_<label>"``, and the accumulators are cleared. Only forward
    passes of skorch's training/validation batches count (not those of
    ``recommend`` or of other callbacks).

    A sibling of :class:`CollapseMonitor`, which reads the embedding tables.

    Parameters
    ----------
    modules : str, list of str, dict or callable
        What to probe. Dotted names from the net (``"module_.tower"``,
        ``"module_.layers.0"``); a name that ends in a method of a module
        (LightGCN's ``"module_.propagate"``) wraps that method during the fit.
        A dict ``{label: name}`` sets the history labels. A callable
        ``(name, module) -> bool`` selects among ``net.module_.named_modules()``
        (e.g. ``lambda n, m: isinstance(m, torch.nn.Linear)``).
    metrics : list or tuple of str, default=("erank", "ia")
        Spectral collapse metrics, by alias or name: ``"erank"``, ``"ia"``,
        ``"srank"``, ``"cond"``.
    on : {"train", "valid", "both"}, default="train"
        Which batches feed the probes.
    every : int, default=1
        Probe every ``every`` epochs (and always the last); other epochs run
        without accumulating.
    center : bool, default=False
        Spectrum of the centered outputs (covariance) instead of the raw ones.
    row_normalize : bool, default=False
        L2-normalise each output row first.
    output : callable or dict of callable, default=None
        For modules returning a tuple or dict, a function choosing the tensor
        (``lambda out: out["item"]``), or one per label. Outputs of shape
        ``(batch, ..., d)`` are read as rows of their last dimension.

    Attributes
    ----------
    results_ : dict of str to dict
        The last recorded values per label (``{"erank": ..., "ia": ...,
        "n_samples": ...}``), training batches.

    See Also
    --------
    probe_collapse : The same numbers for a plain module and a DataLoader.

    Examples
    --------
    >>> from skcollapse.callbacks import CollapseProbe
    >>> from skcollapse.datasets import make_interactions
    >>> from skcollapse.recommenders import LightGCNRecommender
    >>> X = make_interactions(100, 50, random_state=0)
    >>> probe = CollapseProbe(modules=["module_.propagate"])
    >>> net = LightGCNRecommender(embedding_dim=8, n_layers=2, max_epochs=2,
    ...                           random_state=0, callbacks=[probe]).fit(X)
    >>> 1.0 <= net.history[-1, "erank_module_.propagate"] <= 8.0
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        "modules": [str, list, tuple, dict, callable],
        "metrics": [list, tuple],
        "on": [StrOptions({"train", "valid", "both"})],
        "every": [int_interval(1, None, closed="left")],
        "center": ["boolean"],
        "row_normalize": ["boolean"],
        "output": [callable, dict, None],
    }

    def __init__(self, modules, metrics=("erank", "ia"), on="train", every=1,
                 center=False, row_normalize=False, output=None):
        self.modules = modules
        self.metrics = metrics
        self.on = on
        self.every = every
        self.center = center
        self.row_normalize = row_normalize
        self.output = output

    def _reset(self):
        self._entries = _check_metrics(self.metrics)
        self._close()
        self._phase = None  # "train" / "valid" inside a batch, else None
        self._recording = False
        self._warned = set()
        self.results_ = {}

    # the probes exist between on_train_begin and on_train_end
    def _open(self, net):
        self._close()
        targets = _resolve_targets(net, self.modules, root_name=type(net).__name__)
        self._module_id = id(getattr(net, "module_", None))
        self._probes = {
            phase: _ProbeSet(
                targets, center=bool(self.center),
                row_normalize=bool(self.row_normalize), select=self.output,
                is_active=(lambda p=phase: self._recording and self._phase == p),
            )
            for phase in self._phases()
        }

    def _close(self):
        for probes in getattr(self, "_probes", {}).values():
            probes.close()
        self._probes = {}

    def _phases(self):
        return {"train": ("train",), "valid": ("valid",),
                "both": ("train", "valid")}[self.on]

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self._open(net)

    def on_epoch_begin(self, net, **kwargs):
        if id(getattr(net, "module_", None)) != getattr(self, "_module_id", None):
            self._open(net)  # the module was rebuilt (resized to the data)
        self._recording = self._due(net)
        for probes in self._probes.values():
            probes.reset()

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        self._phase = "train" if training else "valid"

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        self._phase = None

    def on_epoch_end(self, net, **kwargs):
        if not self._recording:
            return
        self._recording = False
        for phase, probes in self._probes.items():
            prefix = "" if phase == "train" else "valid_"
            results = probes.results(self._entries)
            if phase == "train":
                self.results_ = results
            for label, values in results.items():
                if values is None:
                    if phase == "train" and label not in self._warned:
                        self._warned.add(label)
                        warnings.warn(
                            f"CollapseProbe: {label!r} produced no output during "
                            "the epoch's training batches, so nothing is recorded "
                            "for it; is it called in the forward pass? (A table "
                            "read as weight, e.g. F.embedding(idx, emb.weight), "
                            "does not call the module: use CollapseMonitor.)",
                            UserWarning, stacklevel=2,
                        )
                    continue
                for m in self._entries:
                    net.history.record(f"{prefix}{m.alias}_{label}", values[m.alias])
            probes.reset()

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self._close()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_probes"] = {}  # hooks and device accumulators are transient
        return state


# ------------------------------------------------------------------ the function
def _default_forward(model, batch):
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (list, tuple)):
        return model(batch[0])
    return model(batch)


def _to_device(batch, device):
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def probe_collapse(
    model,
    data,
    *,
    modules,
    metrics=("erank", "ia"),
    forward=None,
    center=False,
    row_normalize=False,
    output=None,
    max_batches=None,
    device=None,
):
    """Effective rank and IA of module outputs over a DataLoader, for any model.

    The same numbers as :class:`CollapseProbe`, without skorch: the model runs
    once over ``data`` in evaluation mode without gradients (its training mode
    is restored afterwards), forward hooks accumulate the float64 Gram matrix
    of each probed output (``O(d^2)`` memory, no activation kept), and the
    metrics of all rows seen are returned.

    Parameters
    ----------
    model : torch.nn.Module
        Any PyTorch model.
    data : iterable
        Batches, e.g. a ``torch.utils.data.DataLoader``.
    modules : str, list of str, dict or callable
        Dotted names of sub-modules (or methods of them) relative to ``model``
        (``"tower.0"``, ``"propagate"``), a dict ``{label: name}``, or a callable
        ``(name, module) -> bool`` over ``model.named_modules()``.
    metrics : list or tuple of str, default=("erank", "ia")
        Spectral collapse metrics by alias or name.
    forward : callable, default=None
        ``forward(model, batch)`` runs one batch. By default: ``model(batch)``
        for a tensor, ``model(batch[0])`` for a tuple/list (a TensorDataset's
        ``(x, y)``), ``model(**batch)`` for a dict.
    center : bool, default=False
        Spectrum of the centered outputs.
    row_normalize : bool, default=False
        L2-normalise each output row first.
    output : callable or dict of callable, default=None
        Chooses the tensor of a tuple/dict output (see :class:`CollapseProbe`).
    max_batches : int, default=None
        Stop after this many batches.
    device : str or torch.device, default=None
        Where batches are moved; by default the device of the model's first
        parameter (CPU for a model without parameters).

    Returns
    -------
    results : dict of str to dict
        Per label: one value per metric alias and ``"n_samples"`` (rows seen).

    Examples
    --------
    >>> import torch
    >>> from skcollapse.callbacks import probe_collapse
    >>> model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU())
    >>> with torch.no_grad():
    ...     _ = model[0].weight.zero_().fill_diagonal_(1.0)  # keep 4 inputs
    ...     _ = model[0].bias.zero_()
    >>> x = torch.eye(6).repeat(10, 1)  # every unit vector, 10 times
    >>> loader = torch.utils.data.DataLoader(x, batch_size=8)
    >>> out = probe_collapse(model, loader, modules=["0"])
    >>> round(out["0"]["erank"], 6), out["0"]["n_samples"]
    (4.0, 60)
    """
    import torch

    validate_parameter_constraints(
        {
            "metrics": [list, tuple],
            "forward": [callable, None],
            "center": ["boolean"],
            "row_normalize": ["boolean"],
            "output": [callable, dict, None],
            "max_batches": [int_interval(1, None, closed="left"), None],
        },
        {"metrics": metrics, "forward": forward, "center": center,
         "row_normalize": row_normalize, "output": output, "max_batches": max_batches},
        caller_name="probe_collapse",
    )
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module, got {type(model).__name__}; for a "
            "skorch net use the CollapseProbe callback."
        )
    entries = _check_metrics(metrics)
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    forward = _default_forward if forward is None else forward
    targets = _resolve_targets(model, modules, root_name=type(model).__name__)
    probes = _ProbeSet(
        targets, center=bool(center), row_normalize=bool(row_normalize),
        select=output, is_active=lambda: True,
    )
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for i, batch in enumerate(data):
                if max_batches is not None and i >= max_batches:
                    break
                forward(model, _to_device(batch, device))
        results = probes.results(entries)
    finally:
        probes.close()
        model.train(was_training)
    empty = [label for label, values in results.items() if values is None]
    if empty:
        raise ValueError(
            f"modules {empty} produced no output over the data: are they used in "
            "the model's forward pass?"
        )
    return results
