"""The one interface every anti-collapse regularizer implements.

The literature has three kinds of anti-collapse component, and one base class
covers them all:

``"penalty"``
    adds a term to the training loss computed from the batch embeddings
    (LogDet, uniformity/DirectAU, singular-value variance, ...).
``"transform"``
    rewrites the batch embeddings before the loss during training only
    (DirectSpec/DirectSpec+ in their reference code); inference uses the raw tables.
``"layer"``
    a layer applied in training *and* inference, with running statistics for
    inference (decorrelated batch normalisation).

Contract with the estimators (CF recommenders and CTR classifiers)
------------------------------------------------------------------
* ``setup(info)`` is called once per fit, after the regularizer is built and before
  the first batch. ``info`` is a dict describing the data: CF estimators pass
  ``{"n_users", "n_items", "interactions"}`` (the training interactions as a
  ``scipy.sparse.csr_matrix`` of shape ``(n_users, n_items)``); CTR estimators pass
  ``{"field_dims"}``. ``tables`` lists the table names and their dimensions.
* On each training batch the estimator calls
  ``embeddings, penalty = regularizer(embeddings, context)``.
  ``embeddings`` maps a *table name* (the same names as ``get_embeddings()``:
  ``"user"``/``"item"`` for CF; one per field and embedding set for CTR) to a
  ``(batch, dim)`` tensor. For CF, row ``b`` of ``"user"`` and row ``b`` of
  ``"item"`` form an observed (positive) pair. ``context`` carries batch ids
  (CF: ``"user_ids"``, ``"item_ids"``; CTR: ``"X"``) and may be ``None``.
  The returned penalty is already multiplied by ``weight``.
* When ``regularizer.needs_tables`` is True (e.g. LogDet with ``source="table"``),
  ``context["tables"]`` must also map each table name to the full table
  ``(n_rows, dim)`` as the loss sees it (with gradient); otherwise it may be absent.
* Other rows of a table that enter the loss (e.g. sampled negative items) go
  through ``transform_extra(name, x)``; in training it applies the transform of the
  current batch (e.g. DBN's batch whitening), in eval mode the inference transform.
  ``context["extra_<table>_ids"]`` may give the ids of those rows (CF:
  ``"extra_item_ids"``, the sampled negatives in the order they are passed), so
  a regularizer can compute on their distinct rows; it is optional.
* For ``kind == "layer"`` estimators also apply ``transform_extra(name, table)`` in
  eval mode to whole tables when predicting, recommending and in
  ``get_embeddings()``; ``"penalty"`` and ``"transform"`` regularizers never touch
  inference.
* ``last_penalty_`` holds the most recent unweighted penalty (detached)
  as a float so estimators can log it in ``net.history``.
* A training step that forms the gradient of the batch rows itself (the
  compiled MF step) calls ``penalty, grads = regularizer.value_and_grad(
  embeddings, context)`` instead of the regularizer, for ``"penalty"``
  regularizers without a transform: the weighted penalty and its gradient with
  respect to each batch tensor. A subclass may give it a closed form by
  overriding :meth:`Regularizer.penalty_grad` (the unweighted value and
  gradients, without an autograd graph, or ``None`` where it has none);
  otherwise autograd differentiates :meth:`Regularizer.penalty` on detached
  copies of the rows, which stays the reference the closed forms are tested
  against.

Parameters are validated once, by the base constructor, with scikit-learn's
``validate_parameter_constraints`` against the class's ``_parameter_constraints``
(a subclass extends its parent's dict): a subclass spells out its parameters
with their defaults and passes every constructor argument up in one statement,
``super().__init__(**init_arguments(locals()))`` (:mod:`skcollapse.utils._params`,
the estimators' helper), and the base checks and stores them.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

import torch
from torch import nn

from skcollapse.utils._sklearn_compat import (
    real_interval,
    validate_parameter_constraints,
)

_KINDS = ("penalty", "transform", "layer")


class Regularizer(nn.Module):
    """Base class of anti-collapse regularizers.

    Subclasses override :meth:`penalty` and/or :meth:`transform` (and
    :meth:`transform_extra` when the transform must also reach rows outside the
    batch), and set the class attribute ``kind``. Register a subclass under a
    name with :func:`register_regularizer` to make it available as
    ``regularizer="name"``.

    Subclasses declare their parameters in ``_parameter_constraints``
    (scikit-learn's format, extending the parent's dict) and pass every
    constructor argument to ``super().__init__``, which validates and stores them.

    Parameters
    ----------
    weight : float, default=1.0
        Multiplier of the penalty added to the loss. Only regularizers that add
        a penalty take it as a parameter: transform- and layer-only ones (DBN,
        DirectSpec) do not expose it, so ``regularizer__weight`` is refused for
        them instead of silently doing nothing.
    **params
        The subclass's own constructor arguments, validated against
        ``_parameter_constraints`` and stored as attributes of the same name.
    """

    kind: ClassVar[str] = "penalty"
    #: whether the estimator must pass full tables in ``context["tables"]``
    needs_tables: ClassVar[bool] = False
    _parameter_constraints: ClassVar[dict] = {
        "weight": [real_interval(0, None, closed="left")],
    }

    def __init__(self, *, weight: float = 1.0, **params):
        super().__init__()
        params = {"weight": weight, **params}
        self._validate_params(params)
        for name, value in params.items():
            setattr(self, name, value)
        self.last_penalty_ = 0.0

    def _validate_params(self, params: dict) -> None:
        """Check ``params`` against ``_parameter_constraints`` (scikit-learn's way).

        The entries of the two container parameters shared by the built-in
        regularizers are checked too, each reported by its index or key:
        ``tables`` (non-empty, table names) and ``table_weights`` (table name ->
        finite float >= 0).
        """
        caller = type(self).__name__
        validate_parameter_constraints(
            self._parameter_constraints, params, caller_name=caller
        )
        entries, constraints = {}, {}
        tables = params.get("tables")
        if tables is not None and not isinstance(tables, str):
            tables = list(tables)
            if not tables:
                raise ValueError(
                    f"The 'tables' parameter of {caller} must be None, a table name "
                    "or a non-empty list of table names. Got [] instead."
                )
            for i, name in enumerate(tables):
                entries[f"tables[{i}]"], constraints[f"tables[{i}]"] = name, [str]
        for key, value in (params.get("table_weights") or {}).items():
            if not isinstance(key, str):
                raise TypeError(
                    f"The keys of the 'table_weights' parameter of {caller} must be "
                    f"table names (str). Got {key!r} instead."
                )
            entry = f"table_weights[{key!r}]"
            entries[entry] = value
            constraints[entry] = [real_interval(0, None, closed="left")]
        validate_parameter_constraints(constraints, entries, caller_name=caller)

    # -- hooks for subclasses -------------------------------------------------
    def setup(self, info: dict) -> None:
        """Receive a description of the training data once per fit."""

    def transform(self, embeddings: dict, context: dict | None = None) -> dict:
        """Return the (possibly rewritten) batch embeddings; identity by default."""
        return embeddings

    def penalty(self, embeddings: dict, context: dict | None = None) -> torch.Tensor:
        """Return the unweighted penalty of the batch; zero by default."""
        first = next(iter(embeddings.values()))
        return first.new_zeros(())

    def transform_extra(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Apply the transform to other rows of table ``name``; identity by default."""
        return x

    def penalty_grad(self, embeddings: dict, context: dict | None = None):
        """The unweighted penalty and its gradient in closed form, or ``None``.

        An optional fast path of ``"penalty"`` regularizers for training steps
        that compute the gradient of the batch rows themselves (the compiled MF
        step): returns ``(penalty, grads)``, the value :meth:`penalty` returns
        for ``embeddings`` (a 0-d tensor) and a dict mapping table names to the
        gradient of that value with respect to ``embeddings[name]`` (same
        shape and dtype; a table the penalty does not depend on may be left
        out), computed directly, without an autograd graph. ``None`` (the
        default) means no closed form for this regularizer, its settings or
        this batch: :meth:`value_and_grad` then differentiates :meth:`penalty`
        with autograd, which stays the reference the closed forms are tested
        against (``tests/test_regularizer_grads.py``).
        """

    def _scaled_penalty_grad(self, embeddings, context, scale):
        """:meth:`penalty_grad` with its gradients multiplied by ``scale``
        (the weight), or ``None``. A built-in closed form overrides it to fold
        ``scale`` into a factor it forms anyway (a ``d x d`` matrix), which
        saves a pass over the rows; :meth:`value_and_grad` calls the override
        only when no subclass below it overrides :meth:`penalty_grad`."""
        closed = self.penalty_grad(embeddings, context)
        if closed is None:
            return None
        penalty, grads = closed
        return penalty, {name: g * scale for name, g in grads.items()}

    # -- the calls the estimators make -------------------------------------------
    def forward(self, embeddings: dict, context: dict | None = None):
        _check_embeddings(embeddings)
        out = self.transform(embeddings, context)
        pen = self.penalty(out, context)
        self.last_penalty_ = float(pen.detach())
        return out, pen * float(self.weight)

    def value_and_grad(self, embeddings: dict, context: dict | None = None):
        """The weighted penalty of a batch and its gradient, for a step without autograd.

        What a training step that forms the gradient of the batch rows itself
        calls instead of ``regularizer(embeddings, context)``; only for
        regularizers that do not transform the batch (``kind="penalty"``, the
        base :meth:`transform`). Returns ``(penalty, grads)``: the detached
        penalty times ``weight``, as the call returns it, and a dict with the
        gradient of that penalty with respect to each tensor of ``embeddings``
        (zeros for a table it does not depend on). Uses :meth:`penalty_grad`
        where it gives a closed form and autograd on detached copies of the
        rows otherwise. Sets ``last_penalty_``.
        """
        _check_embeddings(embeddings)
        weight = float(self.weight)
        cls = type(self)
        scaled = self._scaled_penalty_grad
        if not issubclass(_owner(cls, "_scaled_penalty_grad"),
                          _owner(cls, "penalty_grad")):
            # penalty_grad overridden below the scaled form: use it
            scaled = partial(Regularizer._scaled_penalty_grad, self)
        with torch.no_grad():
            closed = scaled(embeddings, context, weight)
        if closed is not None:
            pen, grads = closed
            self.last_penalty_ = float(pen)
            grads = {
                name: grads[name] if name in grads else torch.zeros_like(x)
                for name, x in embeddings.items()
            }
            return pen.detach() * weight, grads
        leaves = {k: v.detach().requires_grad_(True) for k, v in embeddings.items()}
        with torch.enable_grad():
            _, pen = self(leaves, context)
            if pen.requires_grad:
                found = torch.autograd.grad(pen, list(leaves.values()),
                                            allow_unused=True)
            else:
                found = [None] * len(leaves)
        grads = {
            name: torch.zeros_like(x) if g is None else g
            for (name, x), g in zip(leaves.items(), found)
        }
        return pen.detach(), grads

    def extra_repr(self) -> str:
        return f"weight={self.weight}"


def _owner(cls, name):
    """The class of ``cls``'s MRO that defines the attribute ``name``."""
    return next(k for k in cls.__mro__ if name in vars(k))


def _check_embeddings(embeddings):
    if not isinstance(embeddings, dict) or not embeddings:
        raise TypeError(
            "a regularizer takes a non-empty dict of table name -> (batch, dim) tensor."
        )


class CallableRegularizer(Regularizer):
    """Wrap a plain callable ``f(embeddings: dict, context) -> scalar tensor`` as a penalty.

    This is what ``regularizer=some_function`` becomes, so a few lines of user code
    are a working regularizer.
    """

    kind = "penalty"
    _parameter_constraints: ClassVar[dict] = {
        **Regularizer._parameter_constraints,
        "func": [callable],
    }

    def __init__(self, func=None, *, weight: float = 1.0):
        super().__init__(weight=weight, func=func)

    def penalty(self, embeddings, context=None):
        value = self.func(embeddings, context)
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            raise TypeError(
                "a regularizer callable must return a scalar torch tensor, got "
                f"{type(value).__name__}."
            )
        return value


_REGISTRY: dict[str, type[Regularizer]] = {}


def register_regularizer(name: str):
    """Class decorator registering a :class:`Regularizer` subclass under ``name``."""

    def decorator(cls):
        if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
            raise TypeError(f"{cls!r} is not a Regularizer subclass.")
        if cls.kind not in _KINDS:
            raise ValueError(f"{cls.__name__}.kind must be one of {_KINDS}, got {cls.kind!r}.")
        if name.lower() == "none":
            raise ValueError("'none' means no regularizer; register under another name.")
        _REGISTRY[name.lower()] = cls
        return cls

    return decorator


def get_regularizer_names() -> list[str]:
    """Sorted names accepted by ``regularizer=``."""
    return sorted(_REGISTRY)


def resolve_regularizer(spec):
    """Turn a ``regularizer=`` value into a class, an instance or ``None``.

    Accepts ``None`` (or ``"none"``, which reads better than ``NaN`` in a
    ``pd.DataFrame(search.cv_results_)``), a registered name, a
    :class:`Regularizer` subclass, an instance, or a callable (wrapped in
    :class:`CallableRegularizer`). The result is what skorch's
    ``initialized_instance`` expects (class or instance).
    """
    if spec is None or (isinstance(spec, str) and spec.lower() == "none"):
        return None
    if isinstance(spec, str):
        key = spec.lower()
        if key not in _REGISTRY:
            raise ValueError(
                f"regularizer={spec!r} is not a registered name; choose one of "
                f"{get_regularizer_names()}, None (or 'none'), a Regularizer class "
                "or instance."
            )
        return _REGISTRY[key]
    if isinstance(spec, type):
        if issubclass(spec, Regularizer):
            return spec
        raise TypeError(f"regularizer class {spec!r} must subclass skcollapse Regularizer.")
    if isinstance(spec, Regularizer):
        return spec
    if callable(spec):
        return CallableRegularizer(spec)
    raise TypeError(
        f"regularizer must be None, a name, a Regularizer class/instance or a callable; "
        f"got {type(spec).__name__}."
    )
