"""The ``regularizer=`` component of a skorch net.

:class:`RegularizedNetMixin` gives any skorch net a ``regularizer=`` component that
follows the contract of :mod:`skcollapse.regularizers._base`:

* ``regularizer`` accepts ``None``, a registered name, a
  :class:`~skcollapse.regularizers.Regularizer` subclass or instance, or a plain
  callable; its own parameters route as ``regularizer__<name>`` (e.g.
  ``regularizer__weight``), so ``set_params`` re-initialises it and
  ``GridSearchCV`` can search them.
* ``self.regularizer_`` is built in :meth:`initialize_criterion` (skorch treats it
  as a criterion: it is moved to ``device``, re-initialised by ``set_params``,
  pickled device-independently and its parameters are optimised).
* ``regularizer_.setup(info)`` is called once per ``fit``/``partial_fit`` call
  with :meth:`get_regularizer_info`; learnable parameters it creates there are
  added to the optimiser.
* training steps call ``embeddings, penalty = self.regularize(embeddings,
  context)``; the epoch mean of the weighted penalty is recorded in
  ``net.history`` under ``"regularizer_penalty"``.
* the penalty of a training batch reaches the loss one way: ``regularize``
  keeps it in the fit state and the training step adds it with
  :meth:`~RegularizedNetMixin.add_batch_penalty` (the package's CF and CTR
  estimators, and their compiled step, do). A net of your own may instead add
  the penalty ``regularize`` returns.

The mixin owns the regularizer only: the lifecycle of a fit (fitted state,
pickling, the divergence guard, seeding) is :class:`NetBase`'s. It knows
nothing about collaborative filtering or CTR data; subclasses describe their
data by overriding :meth:`get_regularizer_info`.
"""

from __future__ import annotations

import copy
import inspect
from typing import ClassVar

import torch
from skorch import NeuralNet

from skcollapse.recommenders._fit_state import FitState
from skcollapse.regularizers import Regularizer, resolve_regularizer
from skcollapse.utils._warnings import warn_once

__all__ = ["RegularizedNetMixin"]


def _own_params(cls) -> str:
    names = [n for n in inspect.signature(cls).parameters if n not in ("self", "tables")]
    return ", ".join(f"regularizer__{n}" for n in names[:3]) or "none"


def _rebuild_regularizer(instance: Regularizer, kwargs: dict) -> Regularizer:
    """A fresh instance of ``type(instance)`` with its init args updated by kwargs.

    skorch's ``initialized_instance`` would call ``type(instance)(**kwargs)`` and
    lose every constructor argument not in ``kwargs`` (e.g. the function of a
    :class:`~skcollapse.regularizers.CallableRegularizer`); here the missing ones
    are read back from the instance, as ``sklearn.base.clone`` does.
    """
    cls = type(instance)
    params = {}
    sig = inspect.signature(cls.__init__)
    for name, p in sig.parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in kwargs:
            continue
        if hasattr(instance, name):
            params[name] = getattr(instance, name)
        elif p.default is p.empty:
            raise TypeError(
                f"cannot rebuild regularizer {cls.__name__} with "
                f"regularizer__* parameters: its constructor argument {name!r} is "
                "not stored as an attribute of the same name. Pass the class and "
                "all its arguments as regularizer__<name> instead."
            )
    params.update(kwargs)
    unknown = set(kwargs) - set(sig.parameters)
    has_var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    if unknown and not has_var_kw:
        raise ValueError(
            f"regularizer {cls.__name__} got unexpected parameter(s) "
            f"{sorted('regularizer__' + k for k in unknown)}; valid ones are "
            f"{sorted('regularizer__' + k for k in sig.parameters if k != 'self')}."
        )
    return cls(**params)


class RegularizedNetMixin:
    """Mixin adding the ``regularizer=`` component to a skorch ``NeuralNet``.

    Put it left of the skorch base class::

        class MyNet(RegularizedNetMixin, NeuralNetBinaryClassifier):
            ...

    The subclass stores ``self.regularizer`` in ``__init__`` (``None`` by
    default), calls :meth:`regularize` on the batch embeddings in its training
    step and, when its inference reads embedding tables, passes them through
    :meth:`inference_table`.

    Subclasses may override :meth:`get_regularizer_info` to describe the
    training data for ``Regularizer.setup``, and extend ``_fitted_attributes``
    with the attributes a fitted (not merely initialised) net must have.
    """

    prefixes_: ClassVar[list[str]] = [*NeuralNet.prefixes_, "regularizer"]
    cuda_dependent_attributes_: ClassVar[list[str]] = [
        *NeuralNet.cuda_dependent_attributes_,
        "regularizer_",
    ]
    # ``regularizer_`` is handled as a criterion by skorch: moved to device,
    # set to train/eval mode, its parameters are learnable and ``set_params``
    # with ``regularizer__*`` re-initialises it (and the optimiser).
    _criteria: ClassVar[list[str]] = ["regularizer"]

    #: name of the history column holding the epoch-mean weighted penalty.
    penalty_history_key = "regularizer_penalty"

    #: the state of the fit being run (``None`` outside a fit): the epoch's
    #: penalty sums (and the batch's penalty) live there; NetBase makes it per
    #: fit call, a net without NetBase gets one at its first fit
    _fit_state_ = None

    # ------------------------------------------------------------------ building
    def initialize_criterion(self):
        """Initialise the criterion, then build ``regularizer_``."""
        super().initialize_criterion()
        self.regularizer_ = self._build_regularizer()
        return self

    def _build_regularizer(self):
        spec = resolve_regularizer(getattr(self, "regularizer", None))
        kwargs = self.get_params_for("regularizer")
        if spec is None:
            # regularizer__* parameters are ignored without a regularizer so that
            # grids such as {"regularizer": [None, "logdet"],
            # "regularizer__weight": [...]} work (_validate_params warns)
            return None
        cls = spec if isinstance(spec, type) else type(spec)
        if "weight" in kwargs and "weight" not in inspect.signature(cls).parameters:
            raise ValueError(
                f"regularizer__weight={kwargs['weight']!r} would do nothing: "
                f"{cls.__name__} is a {cls.kind!r} regularizer, which reshapes the "
                "embeddings instead of adding a weighted penalty, so it has no "
                "weight. Drop regularizer__weight for it (tune its own parameters, "
                f"e.g. {_own_params(cls)})."
            )
        if isinstance(spec, Regularizer):
            # never train the user's object in place: each fit starts afresh
            reg = _rebuild_regularizer(spec, kwargs) if kwargs else copy.deepcopy(spec)
        else:
            try:
                reg = spec(**kwargs)
            except TypeError as exc:
                raise TypeError(
                    f"could not build regularizer {spec.__name__} from "
                    f"regularizer__* parameters {sorted(kwargs)}: {exc}"
                ) from exc
        return reg

    def initialize_optimizer(self, *args, **kwargs):
        """Initialise the optimiser; forget an optimiser of an earlier fit's
        regularizer parameters."""
        if "regularizer_optimizer" in getattr(self, "_optimizers", []):
            delattr(self, "regularizer_optimizer_")
        return super().initialize_optimizer(*args, **kwargs)

    def _validate_params(self):
        super()._validate_params()
        # a bad ``regularizer=`` gets a clear error naming the argument (raised
        # by resolve_regularizer) even when set through set_params.
        if resolve_regularizer(getattr(self, "regularizer", None)) is None:
            extra = self.get_params_for("regularizer")
            if extra:
                names = sorted("regularizer__" + k for k in extra)
                # once per process: a grid crossing regularizer=None with
                # regularizer__* values would say it for every point and fold
                warn_once(
                    f"{', '.join(names)} has no effect with regularizer=None: "
                    "every value trains the same model. In a grid, give None its "
                    "own dict so it is trained once, e.g. GridSearchCV(est, "
                    "[{'regularizer': [None]}, {'regularizer': ['logdet'], "
                    "'regularizer__weight': [0.01, 0.1]}]).",
                    UserWarning,
                    stacklevel=3,
                )

    # ------------------------------------------------------------ data & setup
    def get_regularizer_info(self, X, y=None) -> dict:
        """Describe the training data for ``Regularizer.setup``.

        Override in subclasses (CF: ``n_users``, ``n_items``, ``interactions``,
        ``tables``; CTR: ``field_dims``, ``tables``). The default is an empty dict.
        """
        return {}

    def _setup_regularizer(self, X, y=None):
        """Call ``regularizer_.setup`` once per fit and optimise new parameters."""
        reg = getattr(self, "regularizer_", None)
        if reg is None:
            return
        reg.setup(self.get_regularizer_info(X, y))
        reg.to(self.device)
        self._optimize_regularizer_params()

    def _optimize_regularizer_params(self):
        params = [p for p in self.regularizer_.parameters() if p.requires_grad]
        if not params:
            return
        optimized = set()
        for name in self._optimizers:
            opt = getattr(self, name + "_", None)
            if opt is None:
                continue
            for group in opt.param_groups:
                optimized.update(id(p) for p in group["params"])
        new = [p for p in params if id(p) not in optimized]
        if not new:
            return
        opt = getattr(self, "optimizer_", None)
        if opt is None or isinstance(opt, torch.optim.SparseAdam):
            # SparseAdam cannot take dense gradients: give the regularizer's own
            # parameters a dense Adam with the net's learning rate.
            with self._current_init_context("optimizer"):
                self.regularizer_optimizer_ = torch.optim.Adam(new, lr=self.lr)
        else:
            opt.add_param_group({"params": new})

    # ------------------------------------------------------------ the hook
    def regularize(self, embeddings: dict, context: dict | None = None):
        """Apply the regularizer to the batch embeddings of a training step.

        Parameters
        ----------
        embeddings : dict of str to torch.Tensor
            Table name -> ``(batch, dim)`` tensor.
        context : dict or None, default=None
            Batch ids (CF: ``"user_ids"``, ``"item_ids"``; CTR: ``"X"``).

        Returns
        -------
        embeddings : dict of str to torch.Tensor
            The (possibly transformed) embeddings; the input when no regularizer
            is set.
        penalty : torch.Tensor
            Scalar penalty already multiplied by the weight; zero when no
            regularizer is set.
        """
        reg = getattr(self, "regularizer_", None)
        if reg is None:
            first = next(iter(embeddings.values()))
            return embeddings, first.new_zeros(())
        out, penalty = reg(embeddings, context)
        self._keep_batch_penalty(reg, penalty)
        return out, penalty

    def regularize_with_grad(self, embeddings: dict, context: dict | None = None):
        """:meth:`regularize` for a step that forms the rows' gradient itself.

        For a regularizer that only adds a penalty (no transform): returns the
        weighted penalty (detached) and a dict with its gradient with respect
        to each tensor of ``embeddings``
        (:meth:`~skcollapse.regularizers.Regularizer.value_and_grad`: in closed
        form where the regularizer has one, by autograd otherwise). The penalty
        is kept for :meth:`add_batch_penalty` and the epoch mean exactly as
        :meth:`regularize` keeps it. Without a regularizer: zero and zeros.
        """
        reg = getattr(self, "regularizer_", None)
        if reg is None:
            first = next(iter(embeddings.values()))
            zeros = {name: torch.zeros_like(x) for name, x in embeddings.items()}
            return first.new_zeros(()), zeros
        penalty, grads = reg.value_and_grad(embeddings, context)
        self._keep_batch_penalty(reg, penalty)
        return penalty, grads

    def _keep_batch_penalty(self, reg, penalty):
        """Keep a training batch's penalty for :meth:`add_batch_penalty` and
        the epoch's sums."""
        state = self._fit_state_
        if reg.training and state is not None:
            state.batch_penalty = penalty  # for add_batch_penalty
            detached = penalty.detach()
            if state.penalty_sum is None:
                state.penalty_count = 0
                state.penalty_sum = detached.clone()
            else:
                state.penalty_sum += detached
            state.penalty_count += 1

    def add_batch_penalty(self, loss):
        """``loss`` plus the penalty :meth:`regularize` computed for the current
        training batch (taken: a batch's penalty is added once), or ``loss``
        when there is none (no regularizer, not training)."""
        state = self._fit_state_
        penalty = None if state is None else state.batch_penalty
        if penalty is None:
            return loss
        state.batch_penalty = None
        return loss + penalty

    def regularize_extra(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Apply the regularizer's transform to other rows of table ``name``.

        In training this is the transform of the current batch (e.g. negative
        items under DBN); identity without a regularizer.
        """
        reg = getattr(self, "regularizer_", None)
        if reg is None:
            return x
        return reg.transform_extra(name, x)

    def inference_table(self, name: str, table: torch.Tensor) -> torch.Tensor:
        """Return table ``name`` as inference sees it.

        ``"layer"`` regularizers (e.g. decorrelated batch normalisation) are applied
        in eval mode to the whole table; other kinds never touch inference.
        """
        reg = getattr(self, "regularizer_", None)
        if reg is None or reg.kind != "layer":
            return table
        was_training = reg.training
        reg.eval()
        try:
            with torch.no_grad():
                return reg.transform_extra(name, table)
        finally:
            reg.train(was_training)

    def trim_for_prediction(self):
        """Drop what only training needs (optimisers, callbacks, history).

        As skorch's, except that a ``"layer"`` regularizer (e.g. decorrelated
        batch normalisation) is kept: it is part of the model at inference, and
        dropping it would silently change every prediction. The prediction
        nonlinearity (e.g. the sigmoid of ``predict_proba``), which skorch infers
        from the criterion that trimming removes, is kept too.
        """
        reg = getattr(self, "regularizer_", None)
        spec = getattr(self, "regularizer", None)
        nonlinearity = self._get_predict_nonlinearity()
        super().trim_for_prediction()
        self._trimmed_nonlinearity_ = nonlinearity
        if reg is not None and reg.kind == "layer":
            self.regularizer_ = reg
            self.regularizer = spec
        return self

    def _get_predict_nonlinearity(self):
        trimmed = getattr(self, "_trimmed_nonlinearity_", None)
        if trimmed is not None:
            return trimmed
        return super()._get_predict_nonlinearity()

    # ------------------------------------------------------------ bookkeeping
    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(
            net, dataset_train=dataset_train, dataset_valid=dataset_valid, **kwargs
        )
        state = self._fit_state_
        state.penalty_sum, state.penalty_count = None, 0

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        state = self._fit_state_
        count = state.penalty_count
        if getattr(self, "regularizer_", None) is not None and count:
            mean = float(state.penalty_sum) / count
            self.history.record(self.penalty_history_key, mean)
        state.penalty_sum, state.penalty_count = None, 0
        super().on_epoch_end(
            net, dataset_train=dataset_train, dataset_valid=dataset_valid, **kwargs
        )

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if self._fit_state_ is None:
            # a net without NetBase: the last fit's penalty sums stay
            self._fit_state_ = FitState()
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self._setup_regularizer(X, y)
