"""The base of the collaborative-filtering recommenders (skorch estimators).

The CF estimators (:class:`~skcollapse.recommenders.MFRecommender`,
:class:`~skcollapse.recommenders.LightGCNRecommender`) take implicit feedback as ``(user, item)`` interaction pairs and train an
encoder (:class:`~skcollapse.nn.CFEncoder`) with :class:`~skcollapse.nn.CFLoss`
on uniformly sampled negatives. The jobs around the model live in their own
modules: reading the pairs (``utils/_interactions.py``), batches and negatives
(``_sampling.py``), ranking (``_ranking.py``), the fit lifecycle
(``_base.py``) and the regularizer hook (``_regularized.py``). A new CF model is
an encoder plus a short subclass of :class:`CFRecommenderBase`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from skorch import NeuralNet
from skorch.dataset import unpack_data

from skcollapse.exceptions import ModelFitError
from skcollapse.nn import CFLoss, MatrixFactorization, bpr_step
from skcollapse.recommenders._base import NetBase
from skcollapse.recommenders._fast import batches_unobserved, compiled_mode
from skcollapse.recommenders._fit_state import CFFitState
from skcollapse.recommenders._negatives import IndependentNegatives, SharedNegatives
from skcollapse.recommenders._ranking import RankingMixin
from skcollapse.recommenders._sampling import (
    NegativeSampler,
    PairBatches,
    PairsDataset,
    UserBatches,
)
from skcollapse.recommenders._validation import ValidationMixin
from skcollapse.utils._distributed import (
    is_distributed,
    num_processes,
    process_index,
    process_seed,
    shared_seed,
    unwrap_module,
)
from skcollapse.utils._interactions import check_interactions
from skcollapse.utils._sklearn_compat import (
    HasMethods,
    StrOptions,
    int_interval,
    real_interval,
)

__all__ = ["CFRecommenderBase"]

_DEFAULT_NEGATIVES = {"bpr": 1, "bce": 4, "softmax": 128, "align": 0, "ccl": 128}


class CFRecommenderBase(ValidationMixin, RankingMixin, NetBase, NeuralNet):
    """Shared implementation of the CF recommenders (see :class:`MFRecommender`).

    A subclass spells out its constructor (every parameter with its default, the
    encoder as ``module=``, passed on with
    :func:`~skcollapse.utils._params.init_arguments`), and may add
    parameters (with their constraints) and :meth:`_prepare_module` for
    data-dependent module state.
    """

    _parameter_constraints: ClassVar[dict] = {
        **NetBase._parameter_constraints,
        "n_users": [int_interval(1, None, closed="left"), None],
        "n_items": [int_interval(1, None, closed="left"), None],
        "embedding_dim": [int_interval(1, None, closed="left")],
        "loss": [StrOptions(set(CFLoss.LOSSES))],
        "n_negatives": [int_interval(0, None, closed="left"), None],
        "negative_sampling": [StrOptions({"independent", "shared"})],
        "sampling": [StrOptions({"pairs", "user"})],
        "similarity": [StrOptions({"dot", "cosine"})],
        "temperature": [real_interval(0, None, closed="neither")],
        "margin": [real_interval(-1, 1, closed="left")],
        "negative_weight": [real_interval(0, None, closed="left")],
        "weight_decay": [real_interval(0, None, closed="left")],
        "init_std": [real_interval(0, None, closed="neither")],
        "init": [StrOptions({"normal", "xavier_uniform"})],
        "k": [int_interval(1, None, closed="left")],
        "module": [HasMethods(["encode", "tables"]), type],
        "optimizer": [callable],
        "train_split": [callable, None],
    }
    _fitted_attributes = (*RankingMixin._interaction_attributes, "embeddings_cache_")
    _fit_state_class = CFFitState
    cuda_dependent_attributes_: ClassVar[list[str]] = [
        *NetBase.cuda_dependent_attributes_,
        "embeddings_cache_",
    ]

    def __init__(
        self,
        *,
        n_users,
        n_items,
        embedding_dim,
        loss,
        n_negatives,
        negative_sampling,
        sampling,
        similarity,
        temperature,
        margin,
        negative_weight,
        weight_decay,
        init_std,
        init,
        k,
        regularizer,
        random_state,
        **kwargs,
    ):
        """Store the parameters; a concrete recommender's ``__init__`` declares
        them with their defaults (``kwargs``: skorch's, stored by ``NeuralNet``)."""
        super().__init__(**kwargs)
        self.n_users = n_users
        self.n_items = n_items
        self.embedding_dim = embedding_dim
        self.loss = loss
        self.n_negatives = n_negatives
        self.negative_sampling = negative_sampling
        self.sampling = sampling
        self.similarity = similarity
        self.temperature = temperature
        self.margin = margin
        self.negative_weight = negative_weight
        self.weight_decay = weight_decay
        self.init_std = init_std
        self.init = init
        self.k = k
        self.regularizer = regularizer
        self.random_state = random_state

    # ------------------------------------------------------------ parameters
    def _check_params(self):
        super()._check_params()
        if self.loss == "align" and self.n_negatives not in (None, 0):
            raise ValueError(
                "loss='align' is positive-only; leave n_negatives=None, got "
                f"{self.n_negatives!r}."
            )
        if self.loss == "ccl" and self.similarity != "cosine":
            raise ValueError(
                "loss='ccl' trains on cosine scores; rank by them too with "
                f"similarity='cosine' (got similarity={self.similarity!r})."
            )
        if self.loss in ("bpr", "softmax") and self.n_negatives == 0:
            raise ValueError(
                f"n_negatives=0 leaves loss={self.loss!r} without negatives; give "
                "n_negatives >= 1 or None (the loss's default). Only 'bce' has a "
                "positive-only form (n_negatives=0)."
            )

    def _n_negatives(self):
        if self.n_negatives is None:
            if self.negative_sampling == "shared" and self.loss != "align":
                return int(self.batch_size)
            return _DEFAULT_NEGATIVES[self.loss]
        return int(self.n_negatives)

    def _training_state(self, generator=None):
        """A fit state over the fitted interactions, to run training steps of a
        fitted model by hand (``infer`` in training mode, ``train_step``):
        assign it to ``_fit_state_``. Tests use it; ``fit`` makes its own."""
        dev = self._device()
        if generator is None:
            generator = torch.Generator(device=dev).manual_seed(0)
        return self._fit_state_class(
            sampler=NegativeSampler(self.user_items_, dev, generator),
            negatives=self._negative_strategy(),
        )

    def _learn_sampling_statistics(self, pairs):
        """Hook: learn what sampling needs from the training pairs of this fit
        (the two-tower model: ``item_sampling_probability_``)."""

    def _negative_strategy(self):
        """The negative-sampling strategy of a fit (``_negatives.py``)."""
        if self.negative_sampling == "shared":
            return SharedNegatives(self._n_negatives())
        return IndependentNegatives(self._n_negatives())

    # ------------------------------------------------------------ components
    def _component_kwargs(self, prefix):
        if prefix == "module":
            return {
                "n_users": int(getattr(self, "n_users_", None) or self.n_users or 1),
                "n_items": int(getattr(self, "n_items_", None) or self.n_items or 1),
                "embedding_dim": int(self.embedding_dim),
                "init_std": float(self.init_std),
                "init": self.init,
            }
        if prefix == "criterion":
            return {"loss": self.loss, "temperature": float(self.temperature),
                    "margin": float(self.margin),
                    "negative_weight": float(self.negative_weight)}
        return {}

    def initialize_module(self):
        """Build the encoder; a new module invalidates the cached ranking tables."""
        super().initialize_module()
        self.embeddings_cache_ = None
        return self

    def get_params_for_optimizer(self, prefix, named_parameters):
        """As skorch's; SparseAdam gets only the table, Adam runs fused."""
        named = list(named_parameters)
        optimizer = self.optimizer
        is_class = isinstance(optimizer, type)
        if prefix == "optimizer" and is_class and issubclass(
            optimizer, torch.optim.SparseAdam
        ):
            # SparseAdam takes only the sparse embedding table; dense parameters of
            # a regularizer are given their own Adam by the mixin after setup.
            named = [(n, p) for n, p in named if n.startswith("embedding.")]
        args, kwargs = super().get_params_for_optimizer(prefix, named)
        if (
            prefix == "optimizer"
            and optimizer is torch.optim.Adam
            and "fused" not in kwargs
            and "foreach" not in kwargs
            and self._device().type in ("cpu", "cuda")
        ):
            kwargs["fused"] = True
        return args, kwargs

    # ------------------------------------------------------------ data setup
    def fit(self, X, y=None, **fit_params):
        """Train on the ``(user, item)`` pairs ``X`` (re-initialising unless ``warm_start``).

        The interactions of ``X`` replace any seen before (``user_items_``,
        ``item_popularity_``), also with ``warm_start=True``.
        """
        with self._fit_call(replaces_data=True):
            return super().fit(X, y, **fit_params)

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Continue training on the ``(user, item)`` pairs ``X``.

        On a fitted model the interactions of ``X`` are added to those seen
        before: ``user_items_`` (and so :meth:`recommend`'s filter, the negatives
        and LightGCN's graph) is the union, ``item_popularity_`` the summed
        counts. Ids unseen so far are appended to ``user_ids_``/``item_ids_``
        and the tables grow: trained rows are kept, new rows start from the
        initialisation, and the optimiser restarts (unless ``n_users``/``n_items``
        fix the ids, which makes a new id an error).
        """
        return super().partial_fit(X, y, classes=classes, **fit_params)

    def get_regularizer_info(self, X, y=None):
        return {
            "n_users": self.n_users_,
            "n_items": self.n_items_,
            "interactions": self.user_items_,
            "tables": {"user": int(self.embedding_dim), "item": int(self.embedding_dim)},
        }

    def _set_interactions(self, users, items, train=None):
        """Learn (or extend) the id vocabularies; set ``user_items_`` and
        ``item_popularity_`` (:class:`InteractionState`). Returns the row codes.

        A fresh fit learns the ids of ``X`` (``0..n-1`` when ``n_users`` /
        ``n_items`` is given); continued training (``partial_fit``, or ``fit``
        with ``warm_start=True``) appends ids it has not seen, and
        ``partial_fit`` keeps the interactions seen before. ``train`` (a
        boolean mask) keeps validation pairs out of ``user_items_``.
        """
        continuing = getattr(self, "embeddings_cache_", None) is not None
        codes = super()._set_interactions(
            users, items, extend=continuing, train=train,
            keep=continuing and not self._fit_state_.replaces_data,
        )
        self.embeddings_cache_ = None
        return codes

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        users, items = check_interactions(X)
        continuing = getattr(self, "embeddings_cache_", None) is not None
        train = self._split_mask(users, items)
        users, items = self._set_interactions(users, items, train=train)
        mod = unwrap_module(self.module_)
        if (mod.n_users, mod.n_items) != (self.n_users_, self.n_items_):
            # the module was built before the data was seen, or new ids arrived
            # while training continues: rebuild it at the data's size, keeping
            # the trained rows of the ids it already knew
            self._resize_to_data()
            if continuing:
                unwrap_module(self.module_).copy_rows_from(mod)
        dev = self._device()
        state = self._fit_state_
        pairs = torch.from_numpy(np.column_stack([users, items]))
        state.valid_pairs = None
        if train is not None:
            state.valid_pairs = pairs[torch.from_numpy(~train)].to(dev)
            pairs = pairs[torch.from_numpy(train)]
        state.pairs = pairs.to(dev)
        seed = state.seed
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        # the epoch permutation is shared by all processes (each takes its shard);
        # negatives are drawn per process, so shards get their own negatives
        seed = shared_seed(seed)
        state.generator = torch.Generator(device=dev).manual_seed(seed + 1)
        negatives = state.generator
        if is_distributed():
            negatives = torch.Generator(device=dev)
            negatives.manual_seed(process_seed((seed + 2) % 2**32))
        state.sampler = NegativeSampler(self.user_items_, dev, negatives)
        # validation negatives come from their own stream: validating does not
        # change the training draws
        valid_gen = torch.Generator(device=dev).manual_seed(seed + 3)
        state.valid_sampler = NegativeSampler(self.user_items_, dev, valid_gen)
        self._prepare_module(self.user_items_)
        self._learn_sampling_statistics(state.pairs)
        state.negatives = self._negative_strategy()
        # (the compiled step is decided at the first training step, once the
        # optimiser and the regularizer are set up for this fit)
        super().on_train_begin(net, X=X, y=y, **kwargs)

    def _prepare_module(self, interactions=None):
        """Hook for data-dependent module state (LightGCN: the adjacency).

        ``interactions`` is the matrix training starts on; ``None`` (ranking,
        after fit) keeps the state the model was trained with.
        """

    def _after_fit(self):
        """Cache the ranking tables once every callback is done (e.g. skorch's
        ``EarlyStopping(load_best=True)`` restores the best weights in its
        ``on_train_end``). The fit state is dropped by the call that made it.

        The validation pairs held out by ``train_split`` join the known
        interactions now: every pair of the data given to ``fit`` is filtered
        at ranking, counted in ``item_popularity_`` and kept out of the
        negatives of a later ``partial_fit``.
        """
        self._absorb_validation_pairs()
        self.embeddings_cache_ = self._compute_tables()

    def _absorb_validation_pairs(self):
        """Add the held-out validation pairs of this fit to ``user_items_`` and
        ``item_popularity_`` (they were kept out while training so that
        validation could rank them)."""
        valid = self._fit_state_.valid_pairs
        if valid is None or valid.shape[0] == 0:
            return
        v = valid.detach().cpu().numpy()
        self._add_pairs(v[:, 0], v[:, 1])

    # ------------------------------------------------------------ training
    def get_dataset(self, X, y=None):
        if isinstance(X, PairsDataset):
            return X
        pairs = None if self._fit_state_ is None else self._fit_state_.pairs
        if pairs is not None and len(X) == pairs.shape[0]:
            # the training data, already read and encoded by on_train_begin
            return PairsDataset(pairs)
        users, items = check_interactions(X)
        users = self._vocabulary("user").encode(users, name="X's user column")
        items = self._vocabulary("item").encode(items, name="X's item column")
        cand = torch.from_numpy(np.column_stack([users, items]))
        return PairsDataset(cand.to(self._device()))

    def get_iterator(self, dataset, training=False):
        if not isinstance(dataset, PairsDataset):
            raise TypeError(
                f"{type(self).__name__} iterates over (user, item) pairs; got a "
                f"{type(dataset).__name__}."
            )
        prefix = "iterator_train" if training else "iterator_valid"
        batch_size = self.get_params_for(prefix).get("batch_size", self.batch_size)
        if batch_size == -1:
            batch_size = max(1, len(dataset))
        if training and self.sampling == "user":
            # the per-process stream under data parallelism (each process its
            # own users), the fit's generator otherwise
            return UserBatches(
                dataset.pairs, int(batch_size),
                generator=self._fit_state_.sampler.generator,
                world=num_processes(),
            )
        return PairBatches(
            dataset.pairs,
            int(batch_size),
            shuffle=training,
            generator=self._fit_state_.generator if training else None,
            shard=(process_index(), num_processes()) if training else (0, 1),
        )

    def _encode(self, users, items):
        """``module_.encode(users, items)``, through a data-parallel wrapper's forward.

        DDP (used by AccelerateMixin with several processes) averages gradients
        only for work done inside its ``forward``.
        """
        mod = self.module_
        if mod is not unwrap_module(mod):
            return mod(users=users, items=items)
        return mod.encode(users, items)

    def infer(self, x, **fit_params):
        """Batch outputs of a training step; pair scores outside training.

        In training mode (the module's ``training`` flag) ``x`` is a batch of
        positive pairs: the fit's strategy (``_negatives.py``) draws the
        negatives, the batch embeddings are built and passed through the
        regularizer (its penalty waits in the fit state for :meth:`get_loss`),
        and a dict with ``"user"``, ``"item"``, ``"negatives"``,
        ``"negative_mask"``, ``"user_ego"`` and ``"item_ego"`` (and the
        strategy's loss terms, e.g. logQ) is returned for :meth:`get_loss`. Keeping the step in ``infer`` + ``get_loss`` lets
        skorch's ``AccelerateMixin`` (whose training step calls exactly these
        two) train the estimator unchanged.
        """
        if not self.module_.training:
            return super().infer(x, **fit_params)
        state = self._fit_state_
        strategy = state.negatives
        users, pos = x[:, 0], x[:, 1]
        B = users.shape[0]
        draw = strategy.draw(state.sampler, users, pos)
        items = pos if draw.encode is None else torch.cat([pos, draw.encode])
        enc = self._encode(users, items)
        u, it = enc["user"], enc["item"]
        # split, not sliced: two slices' backward would fill a zero tensor of
        # every encoded item row each and add them (the costliest part of a
        # step with many negatives); split's backward is one concatenation
        it_pos, it_extra = it.split([B, it.shape[0] - B])
        context = self._regularizer_context(users, pos, draw.context_ids)
        reg = getattr(self, "regularizer_", None)
        cosine = self.similarity == "cosine"
        # the scores are cosines: a penalty sees the unit rows they are made
        # of (on the raw rows it could be met by rescaling them, which no score
        # notices); a transform (DBN, DirectSpec) comes before the normalising
        normalize_first = cosine and reg is not None and reg.kind == "penalty"
        if normalize_first:
            u, it_pos = F.normalize(u, dim=-1), F.normalize(it_pos, dim=-1)
            it_extra = F.normalize(it_extra, dim=-1)
        emb, _ = self.regularize({"user": u, "item": it_pos}, context)
        user_emb, item_emb = emb["user"], emb["item"]
        extra = None
        if draw.encode is not None:
            extra = self.regularize_extra("item", it_extra)
        neg_emb = strategy.negatives(item_emb, extra, B)
        if cosine and not normalize_first:
            user_emb = F.normalize(user_emb, dim=-1)
            item_emb = F.normalize(item_emb, dim=-1)
            if neg_emb is not None:
                neg_emb = F.normalize(neg_emb, dim=-1)
        return {
            "user": user_emb,
            "item": item_emb,
            "negatives": neg_emb,
            "negative_mask": draw.mask,
            "user_ego": enc["user_ego"],
            "item_ego": enc["item_ego"],
            **draw.terms,
        }

    def get_loss(self, y_pred, y_true=None, X=None, training=False):
        """``loss + weight_decay * L2(batch ego embeddings) + penalty`` of a batch.

        ``y_pred`` is the dict :meth:`infer` returns in training mode.
        """
        if not isinstance(y_pred, dict):
            raise TypeError(
                f"{type(self).__name__}.get_loss takes the dict of batch outputs "
                "that infer() returns in training mode."
            )
        B = y_pred["user"].shape[0]
        # the logQ correction's terms, when the batch carries them (two-tower)
        terms = {k: y_pred[k] for k in ("pos_log_q", "neg_log_q") if k in y_pred}
        loss = self.criterion_(
            y_pred["user"],
            y_pred["item"],
            y_pred["negatives"],
            neg_mask=y_pred.get("negative_mask"),
            **terms,
        )
        if self.weight_decay:
            l2 = y_pred["user_ego"].pow(2).sum() + y_pred["item_ego"].pow(2).sum()
            loss = loss + float(self.weight_decay) * 0.5 * l2 / B
        return self.add_batch_penalty(loss)

    def train_step(self, batch, **fit_params):
        """One optimisation step (skorch's), or the compiled MF-BPR step.

        Where the fit's strategy provides a
        :class:`~skcollapse.recommenders._fast.CompiledBPRStep`
        (the plain MF-BPR set-up on the CPU with numba installed; see its
        module), one kernel call computes the batch's gradient and applies the
        optimiser's update; otherwise skorch's step runs
        :meth:`train_step_single` and ``optimizer.step()``.
        """
        compiled = self._compiled_step()
        if compiled is False:
            return super().train_step(batch, **fit_params)
        Xi, _ = unpack_data(batch)
        return compiled(Xi)

    def _compiled_step(self):
        """The fit's compiled step, or ``False`` where it does not apply.

        Decided at the first training step, once the optimiser and the
        regularizer are set up for the fit, and again when the module or the
        optimiser was rebuilt. The module is put in training mode first (a
        fit that continues after validation or ranking starts in eval mode).
        """
        self._set_training(True)
        state = self._fit_state_
        compiled = state.compiled_step
        if compiled is None or (compiled and not compiled.is_current()):
            # the strategy provides it (independent negatives, the plain MF set-up)
            compiled = state.negatives.compiled_step(self) or False
            state.compiled_step = compiled
        return compiled

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """skorch's epoch loop, or one loop of the compiled step.

        A training epoch of :meth:`train_step` on the compiled MF step,
        whose batches no callback listens to
        (:func:`~skcollapse.recommenders._fast.batches_unobserved`), runs in
        :meth:`CompiledBPRStep.run_epoch
        <skcollapse.recommenders._fast.CompiledBPRStep.run_epoch>`: the same
        batches, negatives and updates, and the same history, without
        skorch's per-batch calls. Anything else is skorch's loop.
        """
        if (
            training
            and iterator is not None
            and getattr(step_fn, "__func__", None) is CFRecommenderBase.train_step
            and getattr(step_fn, "__self__", None) is self
        ):
            compiled = self._compiled_step()
            if compiled and batches_unobserved(self):
                compiled.run_epoch(iterator, prefix)
                return
        super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

    def train_step_single(self, batch, **fit_params):
        """One optimisation step on a batch of positive pairs.

        Samples negatives on the device, builds the batch embeddings, lets the
        regularizer transform/penalise them (:meth:`infer`), and backpropagates
        ``loss + weight_decay * L2(batch ego embeddings) + penalty``
        (:meth:`get_loss`).
        """
        self._set_training(True)
        Xi, _ = unpack_data(batch)
        if self._fused_step_applies():
            return self._fused_bpr_step(Xi)
        out = self.infer(Xi, **fit_params)
        loss = self.get_loss(out, None, X=Xi, training=True)
        loss.backward()
        with torch.no_grad():
            y_pred = (out["user"] * out["item"]).sum(-1)
        return {"loss": loss, "y_pred": y_pred}

    def _fused_step_applies(self, *, compiled=False):
        """Whether :meth:`train_step_single` may take the fused MF-BPR step.

        The default MF set-up only: a sparse :class:`MatrixFactorization`
        (not wrapped for data parallelism), ``CFLoss("bpr")`` with per-positive
        negatives, dot scores, no regularizer, and ``infer``/``get_loss`` as
        defined here, and nothing observing the module (a forward hook, or a
        method wrapped on the instance as :class:`~skcollapse.callbacks.CollapseProbe`
        does): the fused step never calls ``encode``/``forward``. Any other
        set-up takes the autograd step. ``compiled=True`` (the compiled
        step's question) also accepts a regularizer without trainable
        parameters: the compiled step adds a penalty's gradient with
        respect to the batch rows, or differentiates a transform of the
        rows (see :mod:`skcollapse.recommenders._fast`).
        """
        mod = self.module_
        cls = type(self)
        observed = "encode" in vars(mod) or "forward" in vars(mod) or any(
            m._forward_hooks or m._forward_pre_hooks for m in mod.modules()
        )
        return (
            not observed
            and type(mod) is MatrixFactorization
            and mod.sparse
            and mod.training
            and type(self.criterion_) is CFLoss
            and self.criterion_.loss == "bpr"
            and self.similarity == "dot"
            and isinstance(self._fit_state_.negatives, IndependentNegatives)
            and self._regularizer_fits(compiled)
            and cls.infer is CFRecommenderBase.infer
            and cls.get_loss is CFRecommenderBase.get_loss
            and self._n_negatives() > 0
        )

    @staticmethod
    def _regularizer_context(users, pos, extra_item_ids=None):
        """The ids a regularizer sees with a batch (the torch and compiled steps)."""
        context = {"user_ids": users, "item_ids": pos}
        if extra_item_ids is not None:
            # the negatives' ids let a regularizer work on distinct rows
            context["extra_item_ids"] = extra_item_ids
        return context

    def _regularizer_fits(self, compiled):
        """No regularizer, or (``compiled``) one the compiled step runs."""
        reg = getattr(self, "regularizer_", None)
        if reg is None:
            return True
        return compiled and compiled_mode(reg) is not None

    def _fused_bpr_step(self, Xi):
        """The autograd step's loss and gradient in closed form (``bpr_step``).

        Draws the same negatives from the same generator as :meth:`infer`, so
        a fit takes the same steps either way (up to float rounding).
        """
        users, pos = Xi[:, 0], Xi[:, 1]
        neg = self._fit_state_.sampler.independent(users, self._n_negatives())
        mod = self.module_
        weight = mod.embedding.weight
        loss, y_pred, grad = bpr_step(
            weight, mod.n_users, users, pos, neg, float(self.weight_decay)
        )
        weight.grad = grad if weight.grad is None else weight.grad + grad
        return {"loss": loss, "y_pred": y_pred}

    # ------------------------------------------------------------ embeddings
    def _compute_tables(self):
        """Ranking tables computed now from the module (no grad, eval mode)."""
        self._prepare_module()
        mod = unwrap_module(self.module_)
        was_training = mod.training
        mod.eval()
        try:
            with torch.no_grad():
                U, I = mod.tables()
                U = self.inference_table("user", U).detach()
                I = self.inference_table("item", I).detach()
                if self.similarity == "cosine":
                    U, I = F.normalize(U, dim=-1), F.normalize(I, dim=-1)
        finally:
            mod.train(was_training)
        if not (torch.isfinite(U).all() and torch.isfinite(I).all()):
            raise ModelFitError(
                f"{type(self).__name__} produced non-finite embeddings; training "
                "diverged. Lower lr or the regularizer weight and fit again."
            )
        return {"user": U, "item": I}

    def get_embedding_tensors(self):
        """``{"user": Tensor, "item": Tensor}`` on the estimator's device.

        After ``fit`` these are the cached ranking tables; during training
        (e.g. from a callback) they are computed from the current weights.
        """
        self._check_fitted()
        cache = getattr(self, "embeddings_cache_", None)
        if cache is not None:
            return dict(cache)
        return self._compute_tables()

    def get_embeddings(self, X=None):
        """Return the embedding tables used for ranking.

        Parameters
        ----------
        X : ignored, default=None
            Present for the protocol shared with other estimators.

        Returns
        -------
        dict of str to ndarray
            ``"user"``: ``(n_users_, embedding_dim)``, ``"item"``:
            ``(n_items_, embedding_dim)`` float32 arrays.
        """
        return super().get_embeddings(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.input_tags.two_d_array = True
        tags.input_tags.positive_only = True
        return tags
