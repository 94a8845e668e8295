"""The state of one fit, kept apart from the estimator (LensKit's trainer object).

A ``fit``/``partial_fit`` call makes one :class:`FitState` (the outermost call
does: ``fit`` calls ``partial_fit``), the estimator holds it as
``_fit_state_`` while training, and drops it when the call ends, whether it
succeeded or failed. Everything that only training needs lives here: the seed,
the divergence guard's first loss, the per-epoch penalty sums, and for the CF
estimators the encoded pairs, the generators, the negative samplers and the
sampling strategy, the validation pairs and tables, the compiled step. The
estimator itself keeps its parameters, its fitted attributes (``*_``) and the
caches derived from them (``_cache_``), so pickling, ``clone`` and
``partial_fit`` follow one rule: ``_fit_state_`` and ``_cache_`` are never
pickled.
"""

from __future__ import annotations

__all__ = ["CFFitState", "CTRFitState", "FitState"]


class FitState:
    """What every estimator's fit works with (see the module doc).

    Attributes
    ----------
    seed : int or None
        The fit's seed (drawn from ``random_state``).
    fitting : bool
        The data is set up: callbacks may read the model.
    first_loss : float or None
        The fit's first finite batch loss (the divergence guard's reference).
    penalty_sum, penalty_count : Tensor or None, int
        The weighted regularizer penalties of the epoch so far.
    batch_penalty : Tensor or None
        The penalty of the current training batch, on its way to the loss
        (``RegularizedNetMixin.add_batch_penalty``).
    """

    def __init__(self, **fields):
        self.seed = None
        self.fitting = False
        self.first_loss = None
        self.penalty_sum = None
        self.penalty_count = 0
        self.batch_penalty = None
        self._set(fields)

    def _set(self, fields):
        for name, value in fields.items():
            if not hasattr(self, name):
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            setattr(self, name, value)


class CFFitState(FitState):
    """A CF fit: pairs, generators, samplers, strategy, validation, fast step.

    Attributes
    ----------
    replaces_data : bool
        ``fit`` (not ``partial_fit``): the interactions of ``X`` replace those
        seen before.
    pairs, valid_pairs : LongTensor or None
        The training and validation pairs of this call (vocabulary rows).
    generator : torch.Generator
        The epoch permutations (and, in one process, the negatives).
    sampler, valid_sampler : NegativeSampler
        Negatives for training and for ``valid_loss`` (their own stream).
    negatives : IndependentNegatives, SharedNegatives or InBatchNegatives
        The sampling strategy (``_negatives.py``).
    valid_tables : dict or None
        The ranking tables of the current weights, once per epoch.
    compiled_step : CompiledBPRStep, False or None
        The compiled MF step (``None``: not decided yet; ``False``: it does not
        apply).
    """

    def __init__(self, **fields):
        self.replaces_data = False
        self.pairs = None
        self.valid_pairs = None
        self.generator = None
        self.sampler = None
        self.valid_sampler = None
        self.negatives = None
        self.valid_tables = None
        self.compiled_step = None
        super().__init__(**fields)


class CTRFitState(FitState):
    """A CTR fit: the field sizes read from the data, the shuffling generator.

    Attributes
    ----------
    field_dims : list of int or None
        The data's field sizes while the module is rebuilt for them.
    shuffle_generator : torch.Generator or None
        The order of the rows of every epoch (seeded fits).
    """

    def __init__(self, **fields):
        self.field_dims = None
        self.shuffle_generator = None
        super().__init__(**fields)
