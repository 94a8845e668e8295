"""DirectSpec and DirectSpec+: spectrum balancing of the batch embeddings (Peng et al.)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from skcollapse.regularizers._base import Regularizer, register_regularizer
from skcollapse.regularizers._utils import (
    TABLE_CONSTRAINTS,
    RowGroups,
    extra_ids_of,
    ids_of,
    select_tables,
)
from skcollapse.utils._params import init_arguments
from skcollapse.utils._sklearn_compat import int_interval, real_interval

_FINITE = real_interval(None, None, closed="neither")
# sides with at most this many rows keep their co-occurrence pattern as a dense
# bool matrix (16 MB at the limit), read per batch instead of a sparse product
_DENSE_COOCCURRENCE_MAX = 4096


class _SpectrumBalancing(Regularizer):
    """Shared machinery of DirectSpec and DirectSpec+ (training-time transform)."""

    kind = "transform"
    #: the parameters ``repr`` shows, in order
    _repr_params: ClassVar[tuple] = ("alpha", "shrink_norm", "keep_norm")
    _parameter_constraints: ClassVar[dict] = {
        **Regularizer._parameter_constraints,
        "alpha": [_FINITE],
        "shrink_norm": [real_interval(0, None, closed="left")],
        "keep_norm": ["boolean"],
        "block_size": [None, int_interval(2, None, closed="left")],
        "tables": TABLE_CONSTRAINTS["tables"],
    }

    def __init__(self, **params):
        # the subclasses declare the parameters and their defaults
        super().__init__(**params)
        if self.keep_norm and self.shrink_norm > 0:
            raise ValueError(
                f"{type(self).__name__} got keep_norm=True and shrink_norm="
                f"{self.shrink_norm!r}: both set the norm of the balanced rows. Use "
                "keep_norm=True (the input rows' norms) or shrink_norm > 0 (the "
                "reference's rescaling), not both."
            )
        self._keys = {}
        self._extra_ids = {}  # ids of the rows transform_extra will get

    def extra_repr(self):
        return ", ".join(f"{name}={getattr(self, name)}" for name in self._repr_params)

    def _restore_norm(self, out, x):
        """With ``keep_norm``, give each balanced row the norm of its input row."""
        if not self.keep_norm:
            return out
        return F.normalize(out, dim=-1) * x.norm(dim=-1, keepdim=True)

    def __getstate__(self):
        # the last batch's keys carry an autograd graph: never pickle/copy them
        state = self.__dict__.copy()
        state["_keys"] = {}
        state["_extra_ids"] = {}
        return state

    def temperatures(self, name, n_rows, context, device, dtype):
        """Temperature of each pair of batch rows: a scalar or a ``(n, n)`` tensor."""
        raise NotImplementedError

    def _extra_temperature(self):
        raise NotImplementedError

    def _group_temperatures(self, name, ids, device, dtype):
        """Temperatures of the pairs of distinct ids ``ids`` (scalar or ``(m, m)``)."""
        return self.temperatures(name, ids.shape[0], {f"{name}_ids": ids}, device, dtype)

    def _balance_dense(self, q, keys, tau, bias=None):
        # q: (..., m, d) queries, keys: (..., n, d), tau: scalar or (..., m, n);
        # bias (n,): log multiplicity of each key (grouped keys), or None
        logits = tau * (q @ keys.transpose(-1, -2))
        if bias is not None:
            logits = logits + bias
        weights = torch.softmax(logits, dim=-1)
        out = q - float(self.alpha) * (weights @ keys)
        s = float(self.shrink_norm)
        if s > 0.0:
            out = out * (s * out.norm(dim=-1, keepdim=True))
        return out

    def _balance(self, q, keys, tau, per_key=1):
        """Balance queries against keys, within blocks when ``block_size`` is set.

        With blocks, key block ``j`` is rows ``[j*bs, (j+1)*bs)`` of ``keys`` and
        its queries are rows ``[j*bs*per_key, (j+1)*bs*per_key)`` of ``q`` (the
        last block may be smaller); ``tau`` is a scalar or a ``(B, B)`` matrix
        (queries = keys).
        """
        bs = self.block_size
        n_keys = keys.shape[0]
        if bs is None or bs >= n_keys or per_key is None:
            return self._balance_dense(q, keys, tau)
        n_blocks = n_keys // bs
        cut = n_blocks * bs
        d = keys.shape[1]
        tau_full = tau
        if isinstance(tau, torch.Tensor):
            idx = torch.arange(n_blocks, device=tau.device)
            tau_full = tau[:cut, :cut].reshape(n_blocks, bs, n_blocks, bs)[
                idx, :, idx, :
            ]
        parts = [
            self._balance_dense(
                q[: cut * per_key].reshape(n_blocks, bs * per_key, d),
                keys[:cut].reshape(n_blocks, bs, d),
                tau_full,
            ).reshape(cut * per_key, d)
        ]
        if cut < n_keys:
            tau_rest = tau[cut:, cut:] if isinstance(tau, torch.Tensor) else tau
            parts.append(self._balance_dense(q[cut * per_key :], keys[cut:], tau_rest))
        return torch.cat(parts)

    def transform(self, embeddings, context=None):
        names = select_tables(embeddings, self.tables)
        out = dict(embeddings)
        for name in names:
            x = embeddings[name]
            groups = None
            if self.block_size is None or self.block_size >= x.shape[0]:
                groups = RowGroups.of(x, ids_of(context, name))
            if groups is not None:
                # a row fetched c times is one key of weight c (log c added to
                # its logits) and one query whose output is copied c times:
                # the same softmax over the batch, at the cost of the distinct rows
                u_hat = F.normalize(groups.rows(x), dim=1)
                bias = torch.log(groups.counts.to(u_hat.dtype))
                tau = self._group_temperatures(name, groups.ids, x.device, x.dtype)
                self._keys[name] = (u_hat, bias)
                self._extra_ids[name] = extra_ids_of(context, name)
                out[name] = self._restore_norm(
                    groups.expand(self._balance_dense(u_hat, u_hat, tau, bias)), x
                )
                continue
            x_hat = F.normalize(x, dim=1)
            tau = self.temperatures(name, x.shape[0], context, x.device, x.dtype)
            self._keys[name] = (x_hat, None)
            out[name] = self._restore_norm(self._balance(x_hat, x_hat, tau), x)
        return out

    def transform_extra(self, name, x):
        """Balance other rows of ``name`` (e.g. sampled negatives) in training.

        The rows are normalised and balanced against the current batch of the
        same table: ``x̂ − α softmax(τ x̂ Êᵀ) Ê`` with ``Ê`` the normalised batch rows.
        With ``block_size`` and ``k`` extra rows per batch row (rows ordered by
        batch row, as sampled negatives are), each extra row is balanced
        against the block of its batch row.
        Outside training (and for tables the regularizer does not act on) rows
        are returned unchanged: spectrum balancing never touches inference.
        """
        if not self.training or name not in self._keys:
            return x
        return self._restore_norm(self._balance_extra(name, x), x)

    def _balance_extra(self, name, x):
        keys, bias = self._keys[name]
        if bias is not None:  # the batch's distinct rows, weighted by count
            tau = self._extra_temperature()
            groups = RowGroups.of(x, getattr(self, "_extra_ids", {}).get(name))
            if groups is None:
                return self._balance_dense(F.normalize(x, dim=1), keys, tau, bias)
            q = F.normalize(groups.rows(x), dim=1)
            return groups.expand(self._balance_dense(q, keys, tau, bias))
        n_keys = keys.shape[0]
        per_key = x.shape[0] // n_keys if x.shape[0] % n_keys == 0 else None
        return self._balance(
            F.normalize(x, dim=1), keys, self._extra_temperature(), per_key
        )


@register_regularizer("directspec")
class DirectSpec(_SpectrumBalancing):
    r"""DirectSpec: softmax-weighted spectrum balancing of the batch embeddings.

    A training-time transform (``kind = "transform"``): each selected table's
    batch rows are L2-normalised, :math:`\hat E = \mathrm{rownorm}(E_B)`, then

    .. math:: \tilde E = \hat E - \alpha\,\mathrm{softmax}_{row}(\tau\,\hat E\hat E^\top)\,\hat E,

    (the softmax includes each row's self-term) and, when ``shrink_norm = s > 0``,
    :math:`\tilde e \leftarrow s\,\|\tilde e\|\,\tilde e`. The loss is computed on
    :math:`\tilde E`; inference uses the raw tables. The map pushes each row away
    from its softmax-weighted neighbours, shrinking the dominant singular
    directions most (an "all-pass filter" that balances the spectrum). Users and
    items (or CTR fields) are balanced separately.

    Parameters
    ----------
    alpha : float, default=0.25
        Strength of the balancing step (the authors' README: 0.8 Yelp,
        1.0 CiteULike, 0.7 Gowalla, with their recipe; see Notes). The default
        is for use beside a loss with negatives, chosen by
        ``benchmarks/choose_defaults.py`` from validation figures only (the
        MovieLens-100k validation hold-out, MF and LightGCN, the documentation's
        evidence page; its CiteULike runs are still to come): 0.25 kept 1.004x of no regularizer's validation NDCG@20
        (MF 1.041x, LightGCN 0.968x), 0.5 0.943x, 1.0 0.655x. (Before December
        2026 the default was 0.5, chosen on a test split.)
    tau : float, default=3.0
        Softmax temperature multiplier (README: 3.0 Yelp/CiteULike, 4.0 Gowalla).
    shrink_norm : float, default=0.0
        ``s`` of the optional norm rescaling; 0 skips it (README: 0.0 Yelp,
        0.03 CiteULike, 0.02 Gowalla).
    keep_norm : bool, default=True
        Give each balanced row the norm of its input row instead of unit norm:
        the balancing then changes directions only, and dot-product losses
        with negatives (BPR) keep the scale they learn. ``False`` is the
        reference (unit rows, with ``shrink_norm`` for their rescaling); the
        two cannot be combined.
    block_size : int, default=None
        ``None`` balances each row against the whole batch (the reference, whose
        batch is 256). An int balances within consecutive blocks of that many
        rows, so a large estimator batch costs ``O(B · block_size · d)`` instead
        of ``O(B² · d)``; ``block_size=256`` reproduces the reference's
        neighbourhood size at any batch size.
    tables : str or list of str, default=None
        Tables to balance; ``None`` means every table of the batch.

    Notes
    -----
    Source: Peng, Sugiyama, Liu, Mine, "Balancing Embedding Spectrum for
    Recommendation" (arXiv 2406.12032), reference code tanatosuu/directspec
    (``directspec_mf.py``, ``directspec_gcn.py``). The reference trains on
    positive pairs only with ``-log σ(ũ·ĩ)``, plain SGD and a very large learning
    rate; here the transform is combined with whatever ``loss=`` the estimator
    uses. The defaults (``alpha=0.25, keep_norm=True``) are for that use:
    ``keep_norm=True`` keeps the rows' input norms, so a BPR loss with negatives
    keeps its score scale (the reference's unit rows cap BPR logits at ±2);
    ``alpha`` was chosen on validation data (above); ``keep_norm`` was chosen
    earlier on a test split and has not been re-tuned on validation yet. The
    authors' recipe is ``alpha=1.0, keep_norm=False, shrink_norm=0.03`` with
    the estimator parameters of the documentation's tour ("Paper recipes").
    Sampled negatives (absent in the reference) are balanced against the batch
    of their table by
    :meth:`transform_extra`. The softmax is computed
    with the usual max-subtraction (the reference exponentiates directly, which
    is the same value without overflow).

    Examples
    --------
    >>> import torch
    >>> from skcollapse.regularizers import DirectSpec
    >>> reg = DirectSpec(alpha=0.7, tau=4.0)
    >>> out, _ = reg({"user": torch.randn(6, 4), "item": torch.randn(6, 4)})
    >>> out["user"].shape
    torch.Size([6, 4])
    """

    _repr_params: ClassVar[tuple] = ("alpha", "tau", "shrink_norm", "keep_norm")
    _parameter_constraints: ClassVar[dict] = {
        **_SpectrumBalancing._parameter_constraints,
        "tau": [_FINITE],
    }

    def __init__(
        self,
        *,
        alpha=0.25,
        tau=3.0,
        shrink_norm=0.0,
        keep_norm=True,
        block_size=None,
        tables=None,
    ):
        super().__init__(**init_arguments(locals()))

    def temperatures(self, name, n_rows, context, device, dtype):
        return float(self.tau)

    def _extra_temperature(self):
        return float(self.tau)


def _binary_csr(matrix, name):
    if not sp.issparse(matrix):
        raise TypeError(
            f"{name} must be a scipy sparse matrix (n_users, n_items), got "
            f"{type(matrix).__name__}."
        )
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {matrix.shape}.")
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    m.eliminate_zeros()
    m.data[:] = 1.0
    return m


@register_regularizer("directspec+")
class DirectSpecPlus(_SpectrumBalancing):
    r"""DirectSpec+: spectrum balancing with an adaptive (self-paced) temperature.

    As :class:`DirectSpec`, but the temperature depends on the pair of rows:

    .. math:: w_{ij} = \frac{e^{\tau_{ij}\hat e_i\cdot\hat e_j}}
       {\sum_k e^{\tau_{ik}\hat e_i\cdot\hat e_k}},\qquad
       \tau_{ij} = \begin{cases}\tau_0 & \text{users } i, j \text{ share an item}\\
       \tau_1 & \text{otherwise}\end{cases}

    (for items: share a user). Which batch rows share items is computed per
    batch from the training interactions given to :meth:`setup`
    (``info["interactions"]``, a CSR ``n_users × n_items`` matrix): the batch rows
    ``R_B`` of the CSR matrix, the sparse product ``R_B R_Bᵀ`` (``B × B``) and its
    non-zero pattern. No dense ``|U|×|U|`` or ``|I|×|I|`` matrix is ever formed,
    so it scales to Gowalla-size data. The batch ids come from
    ``context["user_ids"]`` / ``context["item_ids"]``. Tables other than
    ``"user"``/``"item"`` (e.g. CTR fields), and CF tables when no interactions
    were given, have no co-occurrence structure and use :math:`\tau_1` for every
    pair (plain DirectSpec with ``tau=tau1``).

    Parameters
    ----------
    alpha : float, default=0.25
        Strength of the balancing step (see :class:`DirectSpec`; chosen the
        same way: 0.25 kept 1.002x of the validation NDCG@20, 0.5 0.938x).
    tau0 : float, default=2.5
        Temperature for pairs that share an item (README: 2.5 Yelp/CiteULike,
        3.5 Gowalla).
    tau1 : float, default=3.0
        Temperature for the other pairs (README: 3.0 Yelp/CiteULike, 4.0 Gowalla).
    shrink_norm : float, default=0.0
        ``s`` of the optional norm rescaling; 0 skips it.
    keep_norm : bool, default=True
        Give each balanced row the norm of its input row (see :class:`DirectSpec`).
    block_size : int, default=None
        Balance within consecutive blocks of this many batch rows (see
        :class:`DirectSpec`); ``None`` uses the whole batch.
    tables : str or list of str, default=None
        Tables to balance; ``None`` means every table of the batch.

    Attributes
    ----------
    cooccurrence_ : dict
        Per side, the binary CSR matrix whose rows are indexed by that side's ids
        (``"user"``: ``R``; ``"item"``: ``Rᵀ``). Empty until :meth:`setup`.

    Notes
    -----
    Source: tanatosuu/directspec ``directspec_mf_adaptive.py`` /
    ``directspec_gcn_adaptive.py``, which precompute the dense
    ``(RRᵀ == 0)·(τ1−τ0)+τ0`` matrices. Deviations: the pair temperatures are
    computed per batch from sparse products (same values); the reference
    always applies the norm rescaling (``shrink_norm`` 0 zeroes its output),
    here 0 skips it. Extra rows (sampled negatives) have no ids and use
    :math:`\tau_1`.
    """

    _repr_params: ClassVar[tuple] = (
        "alpha", "tau0", "tau1", "shrink_norm", "keep_norm"
    )
    _parameter_constraints: ClassVar[dict] = {
        **_SpectrumBalancing._parameter_constraints,
        "tau0": [_FINITE],
        "tau1": [_FINITE],
    }

    def __init__(
        self,
        *,
        alpha=0.25,
        tau0=2.5,
        tau1=3.0,
        shrink_norm=0.0,
        keep_norm=True,
        block_size=None,
        tables=None,
    ):
        super().__init__(**init_arguments(locals()))
        self.cooccurrence_ = {}
        self._dense_shared = {}

    def __getstate__(self):
        state = super().__getstate__()
        state["_dense_shared"] = {}  # derived from cooccurrence_; rebuilt lazily
        return state

    def setup(self, info):
        self.cooccurrence_ = {}
        self._dense_shared = {}
        self._keys = {}
        R = None if info is None else info.get("interactions")
        if R is None:
            return
        R = _binary_csr(R, "info['interactions']")
        self.cooccurrence_ = {"user": R, "item": R.T.tocsr()}

    def _dense_pattern(self, name):
        """``(n, n)`` bool tensor: do rows ``i`` and ``j`` of side ``name`` share
        an interaction; ``None`` for sides above ``_DENSE_COOCCURRENCE_MAX`` rows.

        Built once per fit (in row blocks, so the sparse product never holds
        more than a block), so a batch reads its pairs instead of multiplying.
        """
        dense = getattr(self, "_dense_shared", None)
        if dense is None:
            dense = self._dense_shared = {}
        if name not in dense:
            M = self.cooccurrence_[name]
            n = M.shape[0]
            if n > _DENSE_COOCCURRENCE_MAX:
                dense[name] = None
            else:
                MT = M.T.tocsr()
                out = np.zeros((n, n), dtype=bool)
                for start in range(0, n, 512):
                    out[start : start + 512] = (M[start : start + 512] @ MT).toarray() > 0
                dense[name] = torch.from_numpy(out)
        return dense[name]

    def shared_mask(self, name, ids) -> np.ndarray:
        """Dense ``(B, B)`` bool: do batch rows ``i`` and ``j`` of ``name`` co-occur.

        With ``block_size`` only pairs within a block are computed (the others
        are False and unused), which divides the cost of the sparse product by
        the number of blocks.
        """
        M = self.cooccurrence_[name]
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= M.shape[0]):
            raise ValueError(
                f"context['{name}_ids'] holds ids outside [0, {M.shape[0]}) of the "
                "interactions given to setup()."
            )
        bs = self.block_size
        if bs is None or bs >= ids.size:
            dense = self._dense_pattern(name)
            if dense is not None:
                idx = torch.from_numpy(ids.astype(np.int64))
                flat = idx.unsqueeze(1) * dense.shape[0] + idx  # one m x m gather
                return dense.reshape(-1)[flat].numpy()
        rows = M[ids]
        if bs is not None and bs < ids.size:
            # only pairs inside a block are used: shift each block's columns to
            # a private range so the sparse product is block diagonal
            coo = rows.tocoo()
            block = np.arange(ids.size) // bs
            n_blocks = int(block[-1]) + 1
            cols = coo.col + block[coo.row] * M.shape[1]
            rows = sp.csr_matrix(
                (coo.data, (coo.row, cols)), shape=(ids.size, n_blocks * M.shape[1])
            )
        return (rows @ rows.T).toarray() > 0

    def temperatures(self, name, n_rows, context, device, dtype):
        if name not in self.cooccurrence_:
            return float(self.tau1)
        ids = ids_of(context, name)
        if ids is None:
            raise ValueError(
                f"DirectSpecPlus needs the batch ids context['{name}_ids'] to find "
                "which rows share interactions; the estimator passed none."
            )
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        mask = self.shared_mask(name, ids)
        if mask.shape[0] != n_rows:
            raise ValueError(
                f"context['{name}_ids'] has {mask.shape[0]} ids for {n_rows} rows."
            )
        mask_t = torch.as_tensor(mask, device=device)
        return torch.where(
            mask_t,
            torch.tensor(float(self.tau0), dtype=dtype, device=device),
            torch.tensor(float(self.tau1), dtype=dtype, device=device),
        )

    def _extra_temperature(self):
        return float(self.tau1)

