"""ReSN: the spectral norm of the batch's score matrix (Lin et al., WSDM 2025)."""

from __future__ import annotations

from itertools import combinations
from typing import ClassVar

import torch

from skcollapse.regularizers._base import Regularizer, register_regularizer
from skcollapse.regularizers._utils import TABLE_CONSTRAINTS, select_tables, weight_of
from skcollapse.utils._params import init_arguments
from skcollapse.utils._sklearn_compat import int_interval


def score_spectral_norm_sq(queries, items, n_iter=5):
    r"""``||Q Iᵀ||₂²`` from ``d x d`` factors, differentiable in both tables.

    With ``A = QᵀQ`` and ``B = IᵀI``, the score matrix ``S = Q Iᵀ`` has
    ``SᵀS (I c) = I (A B c)``: power iteration on ``c`` (``d``-vectors only)
    finds the top right singular vector ``v = I c`` of ``S``. It starts from
    ``c_0 = Qᵀ 1`` (so ``v_0 = Sᵀ 1``, the item column sums of the scores, the
    starting point of ReSN's reference code) and runs ``n_iter`` steps without
    gradient; the value is the Rayleigh quotient
    ``||S v||² / ||v||² = cᵀ B A B c / cᵀ B c`` with gradient through ``A`` and
    ``B``. It is at most ``sigma_1²`` and equals it once ``v`` has converged;
    there its gradient is the gradient of ``sigma_1²`` (``v`` is a stationary
    point of the quotient), as in ``torch.nn.utils.spectral_norm``.

    Cost: the Gram matrices ``A`` and ``B`` are formed without gradient, in
    the rows' dtype (one ``d x d`` product of each table), and the iteration
    runs on them in float64. The value is taken as ``||Q (Iᵀ t)||² / ||t||²``
    with ``t = I c`` (the same quotient), four matrix-vector products over the
    rows, and its gradient in closed form (:class:`_HeldQuotient`): rank one
    for ``Q`` and rank two for ``I``, where differentiating through ``A`` and
    ``B`` costs two more ``n x d x d`` products each. Under autocast it runs
    in the rows' own dtype (autocast off inside).
    """
    kind = queries.device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        # in the rows' own precision, as before the float64 casts were dropped
        # (autocast would run the products in half precision and mix dtypes
        # in the closed-form backward)
        with torch.autocast(kind, enabled=False):
            return score_spectral_norm_sq(queries, items, n_iter)
    wide = torch.float64
    with torch.no_grad():  # no host synchronisation: torch.where, not if
        A = (queries.T @ queries).to(wide)
        B = (items.T @ items).to(wide)
        tiny = torch.finfo(wide).tiny
        c = queries.sum(dim=0, dtype=wide)
        c = torch.where(torch.linalg.vector_norm(c) > 0, c, torch.ones_like(c))
        c = c / torch.linalg.vector_norm(c)
        for _ in range(int(n_iter)):
            nxt = A @ (B @ c)
            norm = torch.linalg.vector_norm(nxt)
            # A B c = 0: the scores vanish along c; keep it (the value is then 0)
            c = torch.where(norm > 0, nxt / norm.clamp_min(tiny), c)
    return _HeldQuotient.apply(queries, items, c)


class _HeldQuotient(torch.autograd.Function):
    r"""``f = ||Q Iᵀ t||² / ||t||²``, ``t = I c``, for a fixed ``d``-vector ``c``.

    With ``s = Iᵀ t`` and ``r = Q s`` (``S t = r`` for ``S = Q Iᵀ``), and
    ``D = ||t||²``: ``∂f/∂Q = 2 r sᵀ / D``; with ``g = 2 Qᵀ r / D`` and
    ``h = I g - 2 f t / D``, ``∂f/∂I = t gᵀ + h cᵀ``. The products run in
    the rows' dtype, the two norms and ``f`` in float64; ``D = 0`` (then
    ``t = 0`` and ``r = 0``) gives ``f = 0`` and finite gradients.
    """

    @staticmethod
    def forward(ctx, queries, items, c):
        wide = torch.float64
        t = items @ c.to(items.dtype)
        s = items.T @ t
        r = queries @ s.to(queries.dtype)
        den = t.to(wide).pow(2).sum().clamp_min(torch.finfo(wide).tiny)
        value = r.to(wide).pow(2).sum() / den
        ctx.save_for_backward(queries, items, c, t, s, r, den, value)
        return value

    @staticmethod
    def backward(ctx, grad):
        queries, items, c, t, s, r, den, value = ctx.saved_tensors
        scale = 2.0 * grad / den  # float64 scalars
        grad_q = grad_i = None
        if ctx.needs_input_grad[0]:
            grad_q = torch.outer(r, s.to(queries.dtype)).mul_(scale.to(queries.dtype))
        if ctx.needs_input_grad[1]:
            g = (queries.T @ r).to(items.dtype) * scale.to(items.dtype)
            h = items @ g - (scale * value).to(items.dtype) * t
            # t gᵀ + h cᵀ as one (n, 2) @ (2, d) product
            grad_i = torch.stack([t, h], 1) @ torch.stack([g, c.to(items.dtype)])
        return grad_q, grad_i, None


@register_regularizer("resn")
class ReSN(Regularizer):
    r"""Spectral norm of the batch's score matrix (ReSN, Lin et al., WSDM 2025).

    Lin et al. show that a recommender trained on long-tailed data stores item
    popularity in the principal singular direction of its score matrix
    ``U Vᵀ`` and that dimensional collapse makes that direction dominate; ReSN
    adds :math:`\beta\,\|U V^\top\|_2^2` (the squared largest singular value)
    to the loss. This class computes, for the rows of the batch,

    .. math:: \ell = \|U_b V_b^\top\|_2^2 = \sigma_1(U_b V_b^\top)^2,

    ``U_b`` the batch's user rows and ``V_b`` its item rows (duplicates kept:
    a row fetched twice counts twice), by power iteration on ``d x d``
    factors, never forming ``U_b V_bᵀ``
    (:func:`~skcollapse.regularizers._resn.score_spectral_norm_sq`).

    Parameters
    ----------
    weight : float, default=1.0
        Multiplier :math:`\beta`. **Not tuned yet**: 1.0 is the base class's
        placeholder, not a value chosen on validation data. The penalty is not
        normalised, so it grows with the batch (about ``B²`` times the mean
        squared score along the top direction for ``B`` pairs): choose
        ``regularizer__weight`` on validation data for the batch size used.
    n_iter : int, default=5
        Power-iteration steps per batch (without gradient), from the start
        vector ``Sᵀ1``; more steps, a closer estimate from below.
    tables : str or list of str, default=None
        Which tables form the score matrices. ``None``: ``("user", "item")``
        when the batch has both (CF), else every pair of the batch's tables
        (CTR: the field-pair score matrices ``E_i E_jᵀ`` whose entries are
        FM's inner products). Two names: that one pair, first name the query
        side. More names: every pair of them; one name: the table with itself
        (``||E Eᵀ||₂² = sigma_1(E)⁴``).
    table_weights : dict, default=None
        Per-table multipliers; a pair's term is weighted by the product of its
        two tables' weights (1.0 if not listed), and the penalty is the
        weighted mean over pairs.

    Notes
    -----
    Which form of the paper's loss: the penalty on the raw dot-product scores
    of the batch's own users and items, :math:`\|U_b V_b^\top\|_2^2`, with a
    few power-iteration steps. ReSN's reference code (``LIN452/ReSN``,
    TensorFlow) instead takes the batch's users against *all* items, applies
    a sigmoid to the scores, ``Y = sigmoid(U_b Vᵀ)``, and uses one step from
    the all-ones vector with the direction held constant,
    ``||Y q||²`` with ``q = stop_gradient(Yᵀ1 / ||Yᵀ1||)``. ``n_iter=0`` here
    is that one-step estimate on raw batch scores. A side-by-side run against
    the authors' code has not been made.

    References
    ----------
    S. Lin, C. Gao, J. Chen, S. Zhou, B. Hu, Y. Feng, C. Chen and C. Wang,
    "How Do Recommendation Models Amplify Popularity Bias? An Analysis from
    the Spectral Perspective", WSDM 2025.
    """

    kind = "penalty"
    _parameter_constraints: ClassVar[dict] = {
        **Regularizer._parameter_constraints,
        **TABLE_CONSTRAINTS,
        "n_iter": [int_interval(0, None, closed="left")],
    }

    def __init__(self, *, weight=1.0, n_iter=5, tables=None, table_weights=None):
        super().__init__(**init_arguments(locals()))

    def _pairs(self, embeddings):
        names = select_tables(embeddings, self.tables)
        if self.tables is None and "user" in names and "item" in names:
            return [("user", "item")]
        if len(names) == 1:
            return [(names[0], names[0])]
        return list(combinations(names, 2))

    def penalty(self, embeddings, context=None):
        pairs = self._pairs(embeddings)
        first = embeddings[pairs[0][0]]
        total = first.new_zeros((), dtype=torch.float64)
        denom = 0.0
        for a, b in pairs:
            Q, V = embeddings[a], embeddings[b]
            if Q.shape[1] != V.shape[1]:
                raise ValueError(
                    f"the score matrix of tables {a!r} and {b!r} needs the same "
                    f"dimension; got {Q.shape[1]} and {V.shape[1]}."
                )
            w = weight_of(self.table_weights, a) * weight_of(self.table_weights, b)
            denom += w
            if w == 0.0:
                continue
            total = total + w * score_spectral_norm_sq(Q, V, self.n_iter)
        if denom > 0:
            total = total / denom
        return total.to(first.dtype)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, n_iter={self.n_iter}"
