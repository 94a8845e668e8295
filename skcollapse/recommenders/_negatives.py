"""Negative-sampling strategies of the CF recommenders (``negative_sampling=``).

A strategy is a small object made once per fit (TensorFlow Recommenders'
``Retrieval`` task and RecBole's ``sampler/`` keep this apart from the model in
the same way). It draws a batch's negatives from a
:class:`~skcollapse.recommenders._sampling.NegativeSampler` and returns what
the loss needs, as a :class:`Draw`: the item ids to encode after the positives,
the accidental-hit mask, the logQ terms; then :meth:`negatives` arranges the
encoded rows as the loss's ``negatives`` argument and :meth:`candidates` names
the rows of a ranking table that validation scores.

* :class:`IndependentNegatives`: ``n`` uniform items per positive, observed
  items resampled (``"independent"``); the plain MF set-up also gets its
  compiled training step from here (:meth:`IndependentNegatives.compiled_step`);
* :class:`SharedNegatives`: ``n`` uniform items shared by the batch, a row's
  own positive masked (``"shared"``);
* :class:`InBatchNegatives`: the batch's positives as every row's negatives,
  plus ``n`` shared uniform ones (``"in-batch"`` with ``n=0``, ``"mixed"``),
  with the logQ correction (:class:`LogQ`) of the two-tower model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = [
    "Draw",
    "InBatchNegatives",
    "IndependentNegatives",
    "LogQ",
    "SharedNegatives",
]


@dataclass
class Draw:
    """The negatives of one batch.

    Attributes
    ----------
    ids : LongTensor or None
        Uniform item ids drawn: ``(batch, n)`` (independent) or ``(n,)``.
    encode : LongTensor or None
        Item ids to encode after the batch's positives (flat).
    mask : BoolTensor or None
        ``(batch, n_candidates)``: candidates that are the row's own positive.
    context_ids : LongTensor or None
        The negatives' ids given to the regularizer (``extra_item_ids``).
    candidates : LongTensor or None
        Rows of the item table the loss compares each row with (validation).
    terms : dict
        Extra arguments of the loss (``pos_log_q``, ``neg_log_q``).
    """

    ids: torch.Tensor | None = None
    encode: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    context_ids: torch.Tensor | None = None
    candidates: torch.Tensor | None = None
    terms: dict = field(default_factory=dict)


class _UniformNegatives:
    """A strategy of ``n`` uniform negatives (none, an empty :class:`Draw`, for 0)."""

    def __init__(self, n):
        self.n = int(n)

    def draw(self, sampler, users, pos):
        if not self.n:
            return Draw()
        return self._draw(sampler, users, pos)

    def compiled_step(self, net):
        return None


class IndependentNegatives(_UniformNegatives):
    """``n`` uniform negatives per positive (observed items resampled)."""

    def _draw(self, sampler, users, pos):
        neg = sampler.independent(users, self.n)
        flat = neg.reshape(-1)
        return Draw(ids=neg, encode=flat, context_ids=flat, candidates=neg)

    def negatives(self, items, extra, batch_size):
        """``(batch, n, d)`` rows of the negatives (``None`` without any)."""
        if extra is None:
            return None
        return extra.reshape(batch_size, self.n, -1)

    def compiled_step(self, net):
        """The compiled MF-BPR step of ``net`` where it applies, else ``None``
        (see :mod:`skcollapse.recommenders._fast`)."""
        from skcollapse.recommenders._fast import CompiledBPRStep

        return CompiledBPRStep.for_net(net)


class SharedNegatives(_UniformNegatives):
    """``n`` uniform negatives shared by the batch; a row's positive is masked."""

    def _draw(self, sampler, users, pos):
        neg = sampler.shared(self.n, users.device)
        mask = neg[None, :] == pos[:, None]
        return Draw(ids=neg, encode=neg, mask=mask, context_ids=neg,
                    candidates=neg)

    def negatives(self, items, extra, batch_size):
        return extra


class LogQ:
    """``log q`` of every item as a candidate of a batch (the logQ correction).

    In-batch candidates are drawn with the training frequencies ``p``;
    ``n_uniform`` uniform ones add ``1/n_items`` each: ``q`` is the mixture
    ``(n_rows p + n_uniform / n_items) / (n_rows + n_uniform)``.
    """

    def __init__(self, probability, n_items):
        self.probability = probability
        self.n_items = int(n_items)
        self._log_p = None

    def __call__(self, n_rows, n_uniform, device):
        log_p = self._log_p
        if log_p is None or log_p[0].device != torch.device(device):
            p = torch.as_tensor(self.probability, device=device)
            log_p = (p.float(), torch.log(p.clamp_min(1e-30)).float())
            self._log_p = log_p
        if not n_uniform:
            return log_p[1]
        q = (n_rows * log_p[0] + n_uniform / float(self.n_items)) / (
            n_rows + n_uniform
        )
        return torch.log(q.clamp_min(1e-30))


class InBatchNegatives:
    """The batch's positives (and ``n`` shared uniform items) as negatives.

    Parameters
    ----------
    n : int
        Uniform items added to the in-batch candidates (``"mixed"``); 0 for
        ``"in-batch"``.
    log_q : LogQ or None
        The correction's ``log q``; ``None`` trains without it.
    """

    def __init__(self, n, log_q=None):
        self.n = int(n)
        self.log_q = log_q

    def draw(self, sampler, users, pos):
        uniform = sampler.shared(self.n, users.device) if self.n else None
        cand = pos if uniform is None else torch.cat([pos, uniform])
        mask = cand[None, :] == pos[:, None]  # the row's positive and duplicates
        terms = {}
        if self.log_q is not None:
            log_q = self.log_q(pos.shape[0], 0 if uniform is None else self.n,
                               users.device)
            terms = {"pos_log_q": log_q[pos], "neg_log_q": log_q[cand]}
        return Draw(ids=uniform, encode=uniform, mask=mask, candidates=cand,
                    terms=terms)

    def negatives(self, items, extra, batch_size):
        return items if extra is None else torch.cat([items, extra])

    def compiled_step(self, net):
        return None
