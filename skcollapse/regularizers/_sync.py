"""Regularizer statistics on the global batch of all data-parallel processes.

:class:`SyncBatchRegularizer` wraps any regularizer so that its batch statistics
are computed on the *global* batch (all processes' rows), as
:class:`torch.nn.SyncBatchNorm` does for batch normalisation. The communication
itself (:func:`~skcollapse.utils._distributed.all_gather_rows`, ...) lives in
``skcollapse.utils._distributed``, which knows nothing of regularizers.

Which regularizer statistics are per process and which are gathered
------------------------------------------------------------------
By default every regularizer runs **per process**, on the rows of that
process's batch, and nothing is gathered:

* Penalties that are a mean over rows or pairs of the batch (e.g. DirectAU's
  alignment term) give exactly the single-process gradient of the global batch:
  DDP averages the per-process gradients, and the mean of the shards' means is
  the global mean when shards are equally sized (accelerate evens them out).
* Statistics of the whole table (``LogDetRegularizer(source="table")``) are
  identical in every process, because DDP keeps the replicas' parameters equal;
  nothing needs to be communicated and the result equals one process.
* Non-linear statistics of the batch (the covariance in LogDet, the pairwise
  uniformity, the singular values in ``sv_variance`` / coding rate, DirectSpec's
  batch softmax, DBN's whitening matrix) are then estimated from the
  ``batch_size`` rows of one process, exactly as one process with that
  ``batch_size`` would. This is the same choice DDP makes for ``BatchNorm``: no
  communication in the forward pass, and the per-process ``batch_size`` is the
  statistic's sample size, as the user configured it. DBN's running statistics
  are likewise per process (every replica estimates the same population
  quantity from its own shard; the main process's copy is the one saved).

Wrap the regularizer in :class:`SyncBatchRegularizer` to **gather** instead:
every process then computes the statistic on the concatenation of all
processes' batch rows (``num_processes * batch_size`` rows), the output rows of
a transform are the process's own rows transformed with the global statistics,
and the gradient that reaches the parameters after DDP's averaging is exactly
the gradient of the global-batch penalty. Use it when the statistic needs many
rows (LogDet's covariance needs more rows than ``dim`` to be well conditioned,
DBN's whitening likewise) or when results must match one process trained with
the global batch size. It costs one all-gather of ``(batch, dim)`` per table and
step.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from skcollapse.regularizers._base import Regularizer, resolve_regularizer
from skcollapse.utils._distributed import (
    all_gather_ids,
    all_gather_rows,
    is_distributed,
)
from skcollapse.utils._sklearn_compat import validate_parameter_constraints

__all__ = ["SyncBatchRegularizer"]


class SyncBatchRegularizer(Regularizer):
    """Compute a regularizer's batch statistics on the global batch of all processes.

    Under data parallelism (``AccelerateMixin``, DDP) every process sees only
    its shard of the batch. This wrapper all-gathers each table's batch rows (and
    the per-row context: ``"<table>_ids"`` and ``"X"``) before calling the
    wrapped regularizer, then hands back this process's own rows of the
    (possibly transformed) embeddings. Every process computes the same penalty;
    after DDP averages the gradients, the parameters receive the gradient of the
    penalty of the global batch. With a single process, or in eval mode, it is
    the wrapped regularizer unchanged.

    See the module docstring for when per-process statistics suffice.

    Parameters
    ----------
    regularizer : str, Regularizer class or instance
        The regularizer to synchronise (anything ``regularizer=`` accepts except
        ``None``). An instance is copied, so the object passed in is never
        trained in place.
    weight : float, default=1.0
        Extra multiplier of the wrapped regularizer's (already weighted)
        penalty.

    Attributes
    ----------
    last_penalty_ : float
        The wrapped regularizer's most recent unweighted penalty.

    Examples
    --------
    >>> from skcollapse.regularizers import LogDetRegularizer, SyncBatchRegularizer
    >>> reg = SyncBatchRegularizer(LogDetRegularizer(weight=0.1))
    >>> reg.kind
    'penalty'
    """

    def __init__(self, regularizer=None, *, weight=1.0):
        super().__init__(weight=weight)
        validate_parameter_constraints(
            {"regularizer": [str, type, Regularizer]},
            {"regularizer": regularizer},
            caller_name=type(self).__name__,
        )
        spec = resolve_regularizer(regularizer)
        if isinstance(spec, type):
            spec = spec()
        elif spec is regularizer:
            spec = copy.deepcopy(spec)
        if isinstance(spec, SyncBatchRegularizer):
            raise TypeError("SyncBatchRegularizer cannot wrap another one.")
        self.regularizer = spec

    @property
    def kind(self) -> str:  # the wrapped regularizer decides how estimators use it
        return self.regularizer.kind

    @property
    def needs_tables(self) -> bool:
        return bool(getattr(self.regularizer, "needs_tables", False))

    def setup(self, info: dict) -> None:
        self.regularizer.setup(info)

    def transform_extra(self, name: str, x: torch.Tensor) -> torch.Tensor:
        # the wrapped regularizer kept the statistics of the (gathered) batch
        return self.regularizer.transform_extra(name, x)

    def _gather_context(self, context, local_rows):
        if context is None:
            return None
        out = dict(context)
        device = next(iter(local_rows.values()))[0].device
        for key, value in context.items():
            if key == "tables" or value is None:
                continue
            per_row = key == "X" or key.endswith("_ids")
            if not per_row or not hasattr(value, "__len__"):
                continue
            if key == "X":
                if isinstance(value, torch.Tensor):
                    out[key] = all_gather_rows(value.detach())
                else:
                    arr = torch.as_tensor(np.asarray(value), device=device)
                    out[key] = all_gather_rows(arr).cpu().numpy()
            else:
                out[key] = all_gather_ids(value, device)
        return out

    def forward(self, embeddings: dict, context: dict | None = None):
        if not isinstance(embeddings, dict) or not embeddings:
            raise TypeError(
                "a regularizer takes a non-empty dict of table name -> (batch, dim) tensor."
            )
        if not (self.training and is_distributed()):
            out, penalty = self.regularizer(embeddings, context)
        else:
            gathered, local_rows = {}, {}
            for name in sorted(embeddings):  # same collective order in every process
                x = embeddings[name]
                full, offset = all_gather_rows(x, return_offset=True)
                gathered[name] = full
                local_rows[name] = (full, offset, x.shape[0])
            gctx = self._gather_context(context, local_rows)
            g_out, penalty = self.regularizer(gathered, gctx)
            out = {}
            for name, value in g_out.items():
                if name in local_rows:
                    _, offset, n = local_rows[name]
                    out[name] = value[offset : offset + n]
                else:
                    out[name] = value
        self.last_penalty_ = self.regularizer.last_penalty_
        return out, penalty * float(self.weight)

    def extra_repr(self) -> str:
        return f"weight={self.weight}"
