"""The compiled MF-BPR training step of the CF estimators.

:class:`CompiledBPRStep` replaces skorch's ``train_step`` (zero the gradient,
compute it, notify ``on_grad_computed``, ``optimizer.step()``) by one call of
the numba kernel in ``recommenders/_bpr_kernel.py``, which computes the
gradient of the batch and applies :class:`~skcollapse.nn.SparseRowAdam`'s
update to its rows in place. The negatives come from the fit's sampler, drawn
exactly as the torch step draws them, so a seeded fit takes the same steps on
either path up to float rounding (``tests/test_speed_paths.py`` checks the
loss curves and the final ranking agree).

It applies to what :meth:`CFRecommenderBase._fused_step_applies` accepts (the
plain MF-BPR set-up) with no regularizer or one without trainable parameters:

* one that only adds a penalty to the loss (logdet, sv_variance, coding_rate,
  uniformity, directau, resn): the estimator's ``regularize_with_grad`` gives
  the penalty of the batch's user and positive-item rows and its gradient
  with respect to those ``(B, d)`` rows (the regularizer's closed form,
  ``Regularizer.penalty_grad``, where it has one; autograd on the rows
  otherwise), and the kernel adds that gradient to the rows' BPR gradient
  before the update;
* one that transforms the rows (dbn, directspec, directspec+): the batch's
  user, positive and negative rows go through ``regularize`` and
  ``regularize_extra`` as in the torch step, the BPR loss and its gradient
  with respect to the transformed rows are formed in closed form
  (:func:`skcollapse.nn.bpr_rows`), autograd takes them back through the transform to the
  ``B (2 + n)`` rows of the table (a graph of the transform alone, not of the
  embedding lookup, the loss and the optimiser), and the kernel applies
  :class:`~skcollapse.nn.SparseRowAdam`'s update with those gradients (a batch
  given to it with no negatives adds no BPR term of its own).

It applies when, in addition, the module lives on the CPU, the optimiser is
:class:`~skcollapse.nn.SparseRowAdam` over the table alone, no callback listens
to ``on_grad_computed`` (the kernel never forms a gradient tensor) and the
process is not one of several data-parallel ones. Anything else keeps the
torch step, which stays the path for GPUs and for regularizers with trainable
parameters.

**The epoch loop.** skorch runs a training epoch batch by batch: the
``on_batch_begin``/``on_batch_end`` notifications of the net and of every
callback, the step's dict with a ``y_pred`` tensor, the history's per-batch
records. Where the compiled step applies and nothing listens to the batches
but the net's own bookkeeping (:func:`batches_unobserved`: a new history row,
the divergence guard; every callback keeps :class:`~skorch.callbacks.Callback`'s
batch hooks, or is one of skorch's scorers of validation batches),
``CFRecommenderBase.run_single_epoch`` hands the epoch to
:meth:`CompiledBPRStep.run_epoch`, one plain loop over the same iterator
(the same permutation from the same generator), the same negatives and
kernel calls, writing the same history (``train_loss`` and
``train_batch_size`` of every batch, ``train_batch_count``) and running the
divergence guard after every batch. The fit is the same bit for bit; a
callback or a subclass that listens to batches (or reads the gradients)
keeps skorch's loop and sees every batch as before
(``tests/test_speed_paths.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import BatchScoring, Callback, EpochScoring
from skorch.dataset import unpack_data

from skcollapse.nn import SparseRowAdam, bpr_rows
from skcollapse.recommenders._base import NetBase
from skcollapse.recommenders._bpr_kernel import adam_hyper, get_bpr_adam_kernel
from skcollapse.regularizers import Regularizer
from skcollapse.utils._distributed import is_distributed

__all__ = ["CompiledBPRStep", "batches_unobserved", "compiled_mode",
           "penalty_only"]


def penalty_only(reg):
    """Whether the regularizer ``reg`` only adds a penalty to the loss: no
    transform of the batch or of other rows, no trainable parameters."""
    cls = type(reg)
    return (
        isinstance(reg, Regularizer)
        and reg.kind == "penalty"
        and cls.transform is Regularizer.transform
        and cls.transform_extra is Regularizer.transform_extra
        and not any(p.requires_grad for p in reg.parameters())
    )


def compiled_mode(reg):
    """How the compiled step runs with the regularizer ``reg``: ``"none"``
    (no regularizer), ``"penalty"`` (:func:`penalty_only`), ``"transform"``
    (a regularizer that rewrites the rows, no trainable parameters) or
    ``None`` (the torch step)."""
    if reg is None:
        return "none"
    if penalty_only(reg):
        return "penalty"
    if isinstance(reg, Regularizer) and not any(
        p.requires_grad for p in reg.parameters()
    ):
        return "transform"
    return None


def _is_method(obj, name, func):
    """Whether ``obj.<name>`` is the method ``func`` (not overridden in a
    subclass, not replaced on the instance)."""
    return getattr(getattr(obj, name, None), "__func__", None) is func


def _ignores_training_batches(cb):
    """Whether the callback ``cb`` does nothing on a training batch: it keeps
    :class:`~skorch.callbacks.Callback`'s ``on_batch_begin``/``on_batch_end``,
    or it is one of skorch's scorers of validation batches
    (``EpochScoring``/``BatchScoring`` with ``on_train=False``), whose
    ``on_batch_end`` returns at once when ``training`` is true."""
    if not _is_method(cb, "on_batch_begin", Callback.on_batch_begin):
        return False
    if _is_method(cb, "on_batch_end", Callback.on_batch_end):
        return True
    return getattr(cb, "on_train", True) is False and any(
        _is_method(cb, "on_batch_end", cls.on_batch_end)
        for cls in (EpochScoring, BatchScoring)
    )


def batches_unobserved(net):
    """Whether nothing listens to the training batches of ``net`` but its
    own bookkeeping, which :meth:`CompiledBPRStep.run_epoch` keeps: ``net``'s
    ``on_batch_begin`` is skorch's (a new history row), its ``on_batch_end``
    is :class:`NetBase`'s (the divergence guard) and every callback ignores
    training batches (``_ignores_training_batches``)."""
    return (
        _is_method(net, "on_batch_begin", NeuralNet.on_batch_begin)
        and _is_method(net, "on_batch_end", NetBase.on_batch_end)
        and all(_ignores_training_batches(cb)
                for _, cb in getattr(net, "callbacks_", []))
    )


class CompiledBPRStep:
    """One MF-BPR optimisation step of ``net`` by the compiled kernel.

    Build it with :meth:`for_net`, which returns ``None`` where the kernel does
    not apply. Holds numpy views of the table and of the optimiser's moment
    buffers (no copies), and the scratch buffers of the kernel.
    """

    def __init__(self, net, kernel):
        self.net = net
        self.kernel = kernel
        mod = net.module_
        self.weight = mod.embedding.weight
        self.n_users = int(mod.n_users)
        opt = net.optimizer_
        self.optimizer = opt
        self.group = opt.param_groups[0]
        state = opt.state[self.weight]
        if not state:  # as SparseRowAdam initialises it on its first step
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(self.weight)
            state["exp_avg_sq"] = torch.zeros_like(self.weight)
        self.state = state
        self.w = self.weight.detach().numpy()
        self.m = state["exp_avg"].numpy()
        self.v = state["exp_avg_sq"].numpy()
        self.slot = np.full(self.w.shape[0], -1, dtype=np.int64)
        self.n_neg = int(net._n_negatives())
        cap = int(net.batch_size) * (2 + self.n_neg)
        self.rows = np.empty(cap, dtype=np.int64)
        self.grad = np.empty((cap, self.w.shape[1]), dtype=self.w.dtype)
        self.hyper = np.empty(9, dtype=self.w.dtype)
        self.no_extra = np.empty((0, self.w.shape[1]), dtype=self.w.dtype)
        self.scores = np.empty(int(net.batch_size), dtype=self.w.dtype)
        # the batch's user and positive rows a penalty is computed on (made
        # at the first step that needs them)
        self.gathered = np.empty((0, self.w.shape[1]), dtype=self.w.dtype)
        self.gather_ids = np.empty(0, dtype=np.int64)
        self.mode = compiled_mode(getattr(net, "regularizer_", None))

    @classmethod
    def for_net(cls, net):
        """The step for ``net``'s current set-up, or ``None`` if it does not apply."""
        if not net._fused_step_applies(compiled=True):
            return None
        mod = net.module_
        weight = mod.embedding.weight
        opt = getattr(net, "optimizer_", None)
        if (
            weight.device.type != "cpu"
            or weight.dtype not in (torch.float32, torch.float64)
            or not weight.is_contiguous()
            or type(opt) is not SparseRowAdam
            or len(opt.param_groups) != 1
            or len(opt.param_groups[0]["params"]) != 1
            or opt.param_groups[0]["params"][0] is not weight
            or any(p.requires_grad for n, p in mod.named_parameters()
                   if p is not weight)
            or is_distributed()
            or any(
                type(cb).on_grad_computed is not Callback.on_grad_computed
                for _, cb in getattr(net, "callbacks_", [])
            )
        ):
            return None
        state = opt.state.get(weight)
        if state and not (state["exp_avg"].is_contiguous()
                          and state["exp_avg_sq"].is_contiguous()):
            return None
        kernel = get_bpr_adam_kernel()
        if kernel is None:
            return None
        return cls(net, kernel)

    def _penalty_grads(self, users, pos, neg):
        """The gradient of the regularizer's penalty of the batch with respect
        to the batch's user and positive-item rows (``regularize_with_grad``:
        the regularizer's closed form where it has one, autograd on the rows
        otherwise; the penalty is kept for the loss as ``regularize`` keeps it)."""
        B = users.shape[0]
        if self.gathered.shape[0] < 2 * B:
            self.gathered = np.empty((2 * B, self.w.shape[1]), dtype=self.w.dtype)
            self.gather_ids = np.empty(2 * B, dtype=np.int64)
        # the user and positive rows in one gather (numpy's, one thread: no
        # OpenMP hand-off for a copy this small) into a buffer kept across steps
        ids = self.gather_ids[:2 * B]
        ids[:B] = users.numpy()
        np.add(pos.numpy(), self.n_users, out=ids[B:])
        rows = torch.from_numpy(np.take(self.w, ids, axis=0,
                                        out=self.gathered[:2 * B]))
        context = self.net._regularizer_context(users, pos, neg.reshape(-1))
        _, grads = self.net.regularize_with_grad(
            {"user": rows[:B], "item": rows[B:]}, context)
        dtype = self.weight.dtype
        return (grads["user"].to(dtype).contiguous().numpy(),
                grads["item"].to(dtype).contiguous().numpy())

    def _transformed_grads(self, users, pos, neg):
        """The step with a regularizer that transforms the rows: the BPR loss
        (and the L2 term of the table's rows) of the transformed rows, and the
        gradient with respect to the user, positive and negative rows of the
        table. Returns ``(loss, pos_score, grads)``, ``grads`` ``(B (2 + n),
        d)`` in that order."""
        net = self.net
        W = self.weight.detach()
        B, n = neg.shape
        d = W.shape[1]
        flat = neg.reshape(-1)
        u = W.index_select(0, users).requires_grad_(True)
        i = W.index_select(0, pos + self.n_users).requires_grad_(True)
        j = W.index_select(0, flat + self.n_users).requires_grad_(True)
        context = net._regularizer_context(users, pos, flat)
        with torch.enable_grad():
            emb, penalty = net.regularize({"user": u, "item": i}, context)
            jt = net.regularize_extra("item", j)
            ut, it = emb["user"], emb["item"]
            loss, gu, gi, gj, pos_score = bpr_rows(
                ut.detach(), it.detach(), jt.detach().view(B, n, d))
            outputs, cotangents = [ut, it, jt], [gu, gi, gj.view(B * n, d)]
            if penalty.requires_grad:
                outputs.append(penalty)
                cotangents.append(torch.ones_like(penalty))
            found = torch.autograd.grad(outputs, [u, i, j], cotangents,
                                        allow_unused=True)
        grads = torch.cat([torch.zeros_like(x) if g is None else g
                           for x, g in zip((u, i, j), found)])
        wd = float(net.weight_decay)
        if wd:  # the L2 term of the table's rows, as get_loss adds it
            rows = torch.cat([u.detach(), i.detach(), j.detach()])
            grads.add_(rows, alpha=wd / B)
            loss = loss + 0.5 * wd / B * torch.dot(rows.reshape(-1), rows.reshape(-1))
        return loss.detach(), pos_score, grads

    def is_current(self):
        """Whether the net still trains the table and optimiser this step holds
        (a re-initialised module or optimiser needs a new step)."""
        net = self.net
        return (net.optimizer_ is self.optimizer
                and net.module_.embedding.weight is self.weight)

    def run_epoch(self, iterator, prefix):
        """One training epoch over the batches of ``iterator``.

        What skorch's ``run_single_epoch`` does with :meth:`__call__` as the
        step when no callback listens to the batches: the same batches in the
        same order (the iterator draws the epoch's permutation), the same
        negatives and updates (:meth:`batch_loss`), a history row per batch
        with ``<prefix>_loss`` (the loss as a float) and
        ``<prefix>_batch_size``, ``<prefix>_batch_count`` at the end, and the
        divergence guard after each batch (``NetBase._check_batch_loss``, as
        ``NetBase.on_batch_end`` runs it), without skorch's per-batch calls.
        """
        net = self.net
        history = net.history
        count = 0
        for batch in iterator:
            history.new_batch()
            Xi, _ = unpack_data(batch)
            loss = self.batch_loss(Xi).item()
            history.record_batch(prefix + "_loss", loss)
            history.record_batch(prefix + "_batch_size", len(Xi))
            net._check_batch_loss(loss)
            count += 1
        history.record(prefix + "_batch_count", count)

    def __call__(self, Xi):
        """Train on the batch of positive pairs ``Xi``; skorch's step dict."""
        loss, y_pred = self._step(Xi, None)
        return {"loss": loss, "y_pred": y_pred}

    def batch_loss(self, Xi):
        """Train on ``Xi`` exactly as :meth:`__call__` does; return the batch
        loss only (the pair scores go to a scratch buffer: no ``y_pred`` is
        formed for a loop that gives it to no callback)."""
        loss, _ = self._step(Xi, self._scratch_scores(Xi.shape[0]))
        return loss

    def _scratch_scores(self, n):
        if self.scores.shape[0] < n:
            self.scores = np.empty(n, dtype=self.w.dtype)
        return self.scores[:n]

    def _step(self, Xi, pos_score):
        """One step on ``Xi``: ``(loss, y_pred)``; ``pos_score`` (``None``: a
        new array) receives the pair scores of the kernel (``y_pred`` is a view
        of it, or the transformed rows' scores with a transform)."""
        net = self.net
        users, pos = Xi[:, 0], Xi[:, 1]
        neg = net._fit_state_.sampler.independent(users, self.n_neg)
        B = users.shape[0]
        if B * (2 + self.n_neg) > self.rows.shape[0]:  # a larger batch than planned
            cap = B * (2 + self.n_neg)
            self.rows = np.empty(cap, dtype=np.int64)
            self.grad = np.empty((cap, self.w.shape[1]), dtype=self.w.dtype)
        group = self.group
        beta1, beta2 = group["betas"]
        self.state["step"] += 1
        # with a transform, the L2 term is in the gradients the kernel is given
        wd = 0.0 if self.mode == "transform" else float(net.weight_decay)
        adam_hyper(self.hyper, batch_size=B, n_negatives=self.n_neg,
                   weight_decay=wd, lr=float(group["lr"]),
                   beta1=beta1, beta2=beta2, eps=float(group["eps"]),
                   step=int(self.state["step"]))
        extra_user = extra_item = self.no_extra
        transformed = None
        if self.mode == "penalty":
            extra_user, extra_item = self._penalty_grads(users, pos, neg)
        elif self.mode == "transform":
            # the kernel as SparseRowAdam on given gradients: the user and
            # positive rows, then each negative row as the "positive" of a
            # pair with no negatives and zero user gradient; no L2 term
            transformed = self._transformed_grads(users, pos, neg)
            grads = transformed[2]
            users = torch.cat([users, users.repeat(self.n_neg)])
            pos = torch.cat([pos, neg.reshape(-1)])
            neg = neg.new_empty((users.shape[0], 0))
            extra_user = torch.cat([grads[:B], grads.new_zeros(B * self.n_neg,
                                                               grads.shape[1])])
            extra_user = extra_user.numpy()
            extra_item = grads[B:].numpy()
            if pos_score is not None:  # the scratch, at the kernel's size
                pos_score = self._scratch_scores(users.shape[0])
        if pos_score is None:
            pos_score = np.empty(users.shape[0], dtype=self.w.dtype)
        loss = self.kernel(
            self.w, self.m, self.v, self.n_users,
            users.contiguous().numpy(), pos.contiguous().numpy(), neg.numpy(),
            self.hyper,
            self.slot, self.rows, self.grad, pos_score, extra_user, extra_item,
            threads=torch.get_num_threads(),
        )
        if transformed is not None:
            loss, y_pred = transformed[0], transformed[1]
        else:
            loss = torch.tensor(loss, dtype=self.weight.dtype)
            y_pred = torch.from_numpy(pos_score)
        # the penalty reaches the loss as in the torch step (regularize kept it)
        loss = net.add_batch_penalty(loss).detach()
        return loss, y_pred
