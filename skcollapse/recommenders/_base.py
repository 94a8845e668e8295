"""The lifecycle shared by every skorch estimator of the package (CF and CTR).

:class:`NetBase` sits left of the skorch base class (``class
MFRecommender(RankingMixin, NetBase, NeuralNet)``) and gives every estimator the
same answers to the same questions:

* **parameters** — one ``_parameter_constraints`` dict per class (extending the
  base's), checked once with scikit-learn's ``validate_parameter_constraints``
  at the start of :meth:`~NetBase.initialize`, plus :meth:`NetBase._check_params`
  for rules that tie several parameters together. Torch modules are then built
  from validated values and do not check them again;
* **seeding** — ``random_state`` (``None``, an int, or a ``RandomState`` that is
  advanced, as in scikit-learn) gives one seed per fit: the module is
  initialised from it and training runs inside a forked torch RNG seeded from it,
  so a seeded fit is reproducible and the caller's global RNGs are never
  reseeded (they are exactly as before the fit);
* **device** — one resolution (:meth:`NetBase._device`), with a clear error for
  a device this machine does not have;
* **resize to data** — the module is built in ``initialize()`` before the data
  is seen; :meth:`NetBase._resize_to_data` rebuilds module, criterion and
  optimiser at the data's size (and re-prepares them under accelerate);
* **fitted state and failure** — one ``__sklearn_is_fitted__`` reading
  ``_fitted_attributes``; a non-finite or exploding batch loss
  (:data:`DIVERGENCE_FACTOR`) or non-finite parameters stop the fit with
  :class:`ModelFitError` and leave the estimator unfitted; what a fit works with lives in one
  :class:`~skcollapse.recommenders._fit_state.FitState` (``_fit_state_``),
  made by the outermost ``fit``/``partial_fit`` call (:meth:`NetBase._fit_call`)
  and dropped when it ends, and never pickled;
* **embeddings** — ``get_embeddings()`` is ``get_embedding_tensors()`` moved to
  numpy, for every estimator.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import warnings
from numbers import Integral
from typing import ClassVar

import numpy as np
import torch
from sklearn.utils import check_random_state
from skorch.utils import to_device

from skcollapse.exceptions import ModelFitError
from skcollapse.recommenders._fit_state import FitState
from skcollapse.recommenders._regularized import RegularizedNetMixin
from skcollapse.utils._device import resolve_device
from skcollapse.utils._sklearn_compat import (
    Options,
    check_is_fitted,
    int_interval,
    real_interval,
    validate_parameter_constraints,
)

__all__ = ["DIVERGENCE_FACTOR", "ModelFitError", "NetBase", "RegularizedNetMixin"]

#: a training batch whose loss exceeds this multiple of the fit's first batch loss
#: (or of 1, whichever is larger) stops the fit with ``ModelFitError``, as does a
#: non-finite loss: a fit that diverges fails loudly instead of "succeeding" with
#: finite garbage (e.g. ``lr=1e6`` takes a BPR loss from 0.69 to ~1e12).
DIVERGENCE_FACTOR = 1e4


class NetBase(RegularizedNetMixin):
    """Lifecycle mixin of the package's skorch estimators (see the module doc)."""

    #: attributes that exist only after a successful ``fit`` (sklearn's
    #: ``check_is_fitted`` reads them through ``__sklearn_is_fitted__``).
    _fitted_attributes: tuple[str, ...] = ()

    #: the kind of state object a fit of this estimator works with
    _fit_state_class = FitState

    #: constraints of the constructor parameters, in scikit-learn's vocabulary;
    #: subclasses extend it with ``{**Base._parameter_constraints, ...}``
    _parameter_constraints: ClassVar[dict] = {
        "lr": [real_interval(0, None, closed="neither")],
        "max_epochs": [int_interval(0, None, closed="left")],
        "batch_size": [int_interval(1, None, closed="left"), Options(Integral, {-1})],
        "random_state": ["random_state"],
        "device": [str, torch.device, None],
        "warm_start": ["boolean"],
        # validated where they are used: skorch checks its own arguments
        # (use_caching, routed prefix__name ones) and builds the components
        # from the others; resolve_regularizer names a bad regularizer=
        **dict.fromkeys(
            [
                "module", "criterion", "optimizer", "train_split", "callbacks",
                "verbose", "iterator_train", "iterator_valid", "dataset",
                "predict_nonlinearity", "compile", "use_caching",
                "torch_load_kwargs", "regularizer",
            ],
            "no_validation",
        ),
    }

    # ------------------------------------------------------------ parameters
    def initialize(self):
        """Check the parameters, then initialise the components (skorch)."""
        self._check_params()
        return super().initialize()

    def _check_params(self):
        """Constraints of every parameter, then the rules that tie them together."""
        params = {
            name: getattr(self, name)
            for name in self._parameter_constraints
            if hasattr(self, name)
        }
        validate_parameter_constraints(
            self._parameter_constraints, params, caller_name=type(self).__name__
        )
        if not (self.device is None and getattr(self, "accelerator", None)):
            resolve_device(self.device)

    def get_params(self, deep=True, **kwargs):
        """As skorch's, without skorch's private ``_params_to_validate`` set.

        skorch lists every attribute without a trailing underscore, so its
        bookkeeping set of routed argument names would be a "parameter": cloned
        into the new net's constructor (and shared with it), overwritten by
        ``set_params``. The routed ``prefix__name`` arguments themselves are
        listed, and rebuild that set in the clone.
        """
        params = super().get_params(deep=deep, **kwargs)
        params.pop("_params_to_validate", None)
        return params

    # ------------------------------------------------------------ seeding
    def _seed(self):
        """The seed of this fit: ``None``, or an int drawn from ``random_state``."""
        rs = self.random_state
        if rs is None:
            return None
        if isinstance(rs, Integral):
            return int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    @contextlib.contextmanager
    def _seeded_rng(self, seed):
        """Run a block on torch's global RNG seeded with ``seed``, then restore it.

        The caller's RNG state (CPU, and the CUDA device in use) is exactly the
        same after the block; ``seed=None`` runs the block unchanged.
        """
        if seed is None:
            yield
            return
        dev = self._device()
        devices = [dev] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Train on ``X`` (``fit`` calls this); seeded from ``random_state``.

        With a ``random_state`` the training loop runs on a forked torch RNG
        (dropout and any other global draw are reproducible), leaving the
        caller's global RNG untouched.
        """
        if self.max_epochs == 0:
            warnings.warn(
                f"{type(self).__name__}(max_epochs=0) does not train: the model "
                "keeps its random initialisation. Set max_epochs >= 1 to train.",
                UserWarning,
                stacklevel=2,
            )
        seed = self._seed()
        with self._fit_call() as state:
            state.seed = seed
            try:
                with self._seeded_rng(None if seed is None else seed + 1):
                    super().partial_fit(X, y, classes=classes, **fit_params)
                    self._after_fit()
                return self
            except ModelFitError:
                self._forget_fit()
                raise

    @contextlib.contextmanager
    def _fit_call(self, **fields):
        """The :class:`FitState` of this ``fit``/``partial_fit`` call.

        The outermost call makes it (``fit`` calls ``partial_fit``) and drops it
        when it ends; an inner call works with the same state. ``fields`` set
        fields of the state.
        """
        state = self._fit_state_
        if state is not None:
            state._set(fields)
            yield state
            return
        self._fit_state_ = state = self._fit_state_class(**fields)
        try:
            yield state
        finally:
            self._fit_state_ = None

    def _after_fit(self):
        """Hook run when training is over and every callback is done."""

    def _forget_fit(self):
        """After a failed fit the estimator is not fitted (nothing returns NaN)."""
        self.initialized_ = False
        for name in ("module_", *self._fitted_attributes):
            self.__dict__.pop(name, None)

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_end(
            net, dataset_train=dataset_train, dataset_valid=dataset_valid, **kwargs
        )
        bad = [
            name for name, p in self.module_.named_parameters()
            if not bool(torch.isfinite(p).all())
        ]
        if bad:
            raise ModelFitError(
                f"training diverged in epoch {len(self.history)}: parameters "
                f"{bad[:3]} became non-finite. Lower lr (now {self.lr}) or the "
                "regularizer weight and fit again."
            )

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self._fit_state_.first_loss = None
        # the data is set up: callbacks may read the model from now on
        self._fit_state_.fitting = True

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        """Stop a diverging fit (:data:`DIVERGENCE_FACTOR`) with ``ModelFitError``."""
        super().on_batch_end(net, batch=batch, training=training, **kwargs)
        loss = kwargs.get("loss")
        if not training or loss is None:
            return
        self._check_batch_loss(float(loss.detach()))

    def _check_batch_loss(self, value):
        """The divergence guard on a training batch's loss ``value`` (a float):
        ``ModelFitError`` for a non-finite loss or one above
        :data:`DIVERGENCE_FACTOR` times the fit's first batch loss (or 1)."""
        state = self._fit_state_
        first = state.first_loss
        if first is None and math.isfinite(value):
            state.first_loss = first = value
        limit = DIVERGENCE_FACTOR * max(abs(first), 1.0) if first is not None else None
        if not math.isfinite(value) or (limit is not None and value > limit):
            what = (
                f"the loss became {value}" if not math.isfinite(value) else
                f"the batch loss reached {value:.3g}, more than {DIVERGENCE_FACTOR:.0e} "
                f"times its first value {first:.3g}"
            )
            raise ModelFitError(
                f"training diverged in epoch {len(self.history)}: {what}. Lower lr "
                f"(now {getattr(self, 'lr', None)}), the regularizer weight "
                "(regularizer__weight) or the embedding initialisation scale, then "
                "fit again."
            )

    def __sklearn_is_fitted__(self):
        if not getattr(self, "initialized_", False):
            return False
        if not super().__sklearn_is_fitted__():
            return False
        return all(
            getattr(self, attr, None) is not None for attr in self._fitted_attributes
        )

    def __getstate__(self):
        """As skorch's; the fit state (``_fit_state_``) is never pickled (nor
        are the recommenders' caches: ``InteractionState.__getstate__``)."""
        state = super().__getstate__()
        state.pop("_fit_state_", None)
        return state

    def _check_fitted(self):
        """``NotFittedError`` unless fitted, or inside a fit whose data is set up.

        Callbacks (e.g. :class:`~skcollapse.callbacks.CollapseMonitor`) read the
        embeddings of the model being trained.
        """
        state = self._fit_state_
        if state is None or not state.fitting:
            check_is_fitted(self)

    # ------------------------------------------------------------ components
    def _component_kwargs(self, prefix):
        """Arguments of component ``prefix`` that the estimator derives itself.

        E.g. the module's sizes from the data, the criterion's ``loss``; the
        user's ``prefix__*`` parameters override them.
        """
        return {}

    def get_params_for(self, prefix):
        """As skorch's, with :meth:`_component_kwargs` as defaults."""
        return {**self._component_kwargs(prefix), **super().get_params_for(prefix)}

    def initialize_module(self):
        """Build the module, initialised from the fit's seed (global RNG untouched)."""
        seed = None if self._fit_state_ is None else self._fit_state_.seed
        if seed is None:
            seed = self._seed()
        with self._seeded_rng(seed):
            return super().initialize_module()

    # ------------------------------------------------------------ device
    def _device(self):
        """The torch device of this estimator (AccelerateMixin decides with None)."""
        if self.device is None and getattr(self, "accelerator", None) is not None:
            return torch.device(self.accelerator.device)
        return resolve_device(self.device)

    # ------------------------------------------------------------ resize
    def _resize_to_data(self):
        """Rebuild module, criterion and optimiser now that the data's size is set.

        Called from ``on_train_begin`` when the module built by ``initialize()``
        does not match the data; under skorch's ``AccelerateMixin`` the new module
        and optimiser are prepared (DDP wrapping, device placement) again.
        """
        with self._current_init_context("module"):
            self.initialize_module()
            self.module_ = self.torch_compile(
                to_device(self.module_, self.device), name="module"
            )
        with self._current_init_context("criterion"):
            self.initialize_criterion()
            for name in self._criteria:
                component = getattr(self, name + "_", None)
                if isinstance(component, torch.nn.Module):
                    setattr(self, name + "_", to_device(component, self.device))
        with self._current_init_context("optimizer"):
            self.initialize_optimizer()
        if getattr(self, "_wrapped_with_accelerator", False):
            self.module_ = self.accelerator.prepare(self.module_)
            self.optimizer_ = self.accelerator.prepare(self.optimizer_)

    # ------------------------------------------------------------ embeddings
    def get_embedding_tensors(self):
        """``{name: Tensor}`` of the embedding tables, on the estimator's device."""
        raise NotImplementedError

    def get_embeddings(self, X=None):
        """Return the embedding tables as numpy arrays.

        Parameters
        ----------
        X : ignored, default=None
            Present for the embeddings protocol shared by all estimators.

        Returns
        -------
        dict of str to ndarray
            :meth:`get_embedding_tensors`, copied to host memory.
        """
        return {
            name: t.detach().cpu().numpy().copy()
            for name, t in self.get_embedding_tensors().items()
        }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags

    # ------------------------------------------------------------ repr
    @classmethod
    def _init_defaults(cls):
        """Constructor defaults, gathered along the ``**kwargs`` chain of the MRO."""
        defaults = {}
        for klass in reversed(cls.__mro__):
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for name, p in inspect.signature(init).parameters.items():
                if p.default is not p.empty:
                    defaults[name] = p.default
        return defaults

    def __repr__(self):
        """``Name(param=value, ...)`` with the parameters that differ from the
        defaults, as scikit-learn prints estimators (skorch's module printout is
        ``module_``)."""
        defaults = self._init_defaults()
        changed = []
        for name, value in self.get_params(deep=False).items():
            default = defaults.get(name, _NO_DEFAULT)
            if name.startswith("_") or _same(value, default):
                continue
            changed.append(f"{name}={_short_repr(value)}")
        return f"{type(self).__name__}({', '.join(changed)})"


_NO_DEFAULT = object()


def _same(a, b):
    try:
        return bool(a is b or a == b)
    except Exception:  # e.g. arrays  # noqa: BLE001
        return False


def _short_repr(value):
    if isinstance(value, type):
        return value.__name__
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
