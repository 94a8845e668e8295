"""Helpers shared by the built-in regularizers: table selection and batch checks.

Every built-in regularizer works on any dict of table name -> ``(batch, dim)``
tensor (CF: ``"user"``, ``"item"``; CTR: one key per field and embedding set).
Two constructor parameters are common to all of them:

``tables``
    ``None`` (every table of the batch) or a name / list of names; a name that
    is not in the batch raises a ``ValueError`` listing the batch's tables.
``table_weights``
    ``None`` or a dict name -> float multiplying that table's term (per-side
    weights, e.g. LogDet's user/item weights in re-implementations); tables not
    in the dict get 1.0.

Both are validated once, with the other constructor parameters, by
:class:`~skcollapse.regularizers.Regularizer`'s constructor; the helpers here
only read them.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import lapack

#: How a penalty's default weight was chosen: the sentence of every such
#: ``weight`` entry, before its figures (``{chosen_on_validation}``).
CHOSEN_ON_VALIDATION_DOC = """
Chosen by ``benchmarks/choose_defaults.py`` from validation figures only
(the procedure and every figure: the documentation's evidence page,
"Defaults chosen on validation"): on the validation hold-outs of the
MovieLens-100k training part (MF and LightGCN) and of the CiteULike training
part (MF; its LightGCN runs are still to come), the largest item-erank gain
among the weights whose validation NDCG@20 keeps 99% of no regularizer's
(geometric mean over those three cells).
"""

#: The Parameters entries of ``tables`` and ``table_weights`` of a penalty
#: averaged over tables (``{table_params}``).
TABLE_PARAMS_DOC = """
tables : str or list of str, default=None
    Tables the penalty acts on; ``None`` means every table of the batch.
table_weights : dict, default=None
    Per-table multipliers inside the mean; tables not listed get 1.0.
"""

#: ``max_share`` of :meth:`RowGroups.of` for work that grows linearly with the
#: rows (``n x d x d`` products: DBN, the closed forms of the covariance
#: penalties): grouping a batch's rows by id pays when at most this share of
#: them are distinct (ML-100k batches of 2048 pairs: about a third; Gowalla's:
#: 0.92, where the grouping costs more than the rows it saves)
LINEAR_GROUP_SHARE = 2.0 / 3.0

#: The largest estimated relative error, ``sqrt(n) u cond(M)``, of a closed
#: form that takes the ``d x d`` matrix ``M`` it factorises from the float32
#: Gram matrix of ``n`` float32 rows (:func:`float32_accurate`); beyond it the
#: closed form is computed again from float64 rows
FLOAT32_GRAM_RTOL = 1e-3

#: the unit roundoff of float32
_U32 = 2.0 ** -24

#: Constraints of the two parameters common to the built-in regularizers.
TABLE_CONSTRAINTS = {
    "tables": [None, str, "array-like"],
    "table_weights": [None, dict],
}


def first_in_steps(x, compute):
    """The first result other than ``None`` of ``compute(X)``, ``X`` the rows
    ``x`` in float32 and then in float64 (float32 rows), or in float64 only
    (any other dtype); ``None`` if there is none. The one place that decides
    which precisions a closed form tries, and in which order."""
    dtypes = (torch.float64,)
    if x.dtype == torch.float32:
        dtypes = (torch.float32, torch.float64)
    for dtype in dtypes:
        found = compute(x.to(dtype))
        if found is not None:
            return found
    return None


def closed_form_in_steps(x, compute):
    """``compute(X)`` for ``X`` the rows ``x`` in float32, then in float64.

    ``compute`` returns ``(value, grad)`` of a closed form whose ``n x d``
    products (the Gram matrix, the rows times a ``d x d`` factor) run in the
    dtype of ``X`` and whose ``d x d`` statistics are factorised in float64,
    or ``None``. Float32 rows are tried in float32 first (sgemm, and no
    conversion of the rows to float64 and of their gradient back), then in
    float64 when ``compute`` gives ``None`` there (it was not accurate enough,
    :func:`float32_accurate`, or its factorisation failed); every other dtype
    in float64 only. Returns the first result, ``grad`` in ``x``'s dtype, or
    ``None``.
    """
    found = first_in_steps(x, compute)
    if found is None:
        return None
    value, grad = found
    return value, grad.to(x.dtype)


def gram64(X, counts=None):
    """``Xᵀ diag(counts) X`` computed in the dtype of ``X``, as float64.

    ``counts`` (optional, already in ``X``'s dtype) repeats row ``a``
    ``counts[a]`` times.
    """
    gram = X.T @ X if counts is None else (X * counts.unsqueeze(1)).T @ X
    return gram.to(torch.float64)


def float32_accurate(X, cond):
    """Whether a closed form computed from the float32 Gram matrix of the rows
    ``X`` is accurate enough: always for float64 rows; for float32 rows when
    ``sqrt(n) u cond <= FLOAT32_GRAM_RTOL``.

    ``cond`` is the condition number of the ``d x d`` matrix the closed form
    factorises (a float64 tensor or float), ``n`` the rows summed and ``u =
    2**-24``. A float32 sum of ``n`` terms is typically off by about
    ``sqrt(n) u`` of the sum of their magnitudes (Higham & Mary, SIAM J. Sci.
    Comput. 41(5), 2019), and the inverse, eigenvectors or square roots of the
    matrix amplify a relative perturbation of it by up to its condition number:
    the product estimates the relative error of the gradient's smallest
    components (on Gowalla-sized batches of 2048 rows, the realised errors were
    1e-6 of the gradient with a condition number near 40). The threshold,
    ``1e-3``, keeps that far below the batch's own sampling error of the
    covariance (about ``1/sqrt(n)``, 0.02 for 2048 rows), and sends
    ill-conditioned statistics (fewer rows than dimensions, a collapsed
    spectrum) to float64.
    """
    if X.dtype != torch.float32:
        return True
    return float(cond) * (X.shape[0] ** 0.5) * _U32 <= FLOAT32_GRAM_RTOL


def cond1(M, inv):
    """The 1-norm condition number ``‖M‖₁ ‖M⁻¹‖₁`` from ``M`` and its inverse."""
    return M.abs().sum(dim=0).max() * inv.abs().sum(dim=0).max()


def spd_inverse(S):
    """``(log det S, S⁻¹)`` of a symmetric positive definite float64 matrix
    ``S`` (``d x d``) by Cholesky, or ``None`` when Cholesky fails.

    On the CPU through scipy's LAPACK (``dpotrf``, ``dtrtri``) and one
    ``d x d`` product, on the calling thread: torch's routines (MKL) split a
    matrix this small over their OpenMP threads, OpenBLAS's ``dpotri`` over its
    own, and the hand-offs cost more than the few microseconds of arithmetic
    (on a busy machine, many times more). Other devices: torch. Both read the
    lower triangle.
    """
    S = S.detach()
    if S.device.type != "cpu":
        L, info = torch.linalg.cholesky_ex(S)
        if int(info) != 0:
            return None
        return 2.0 * torch.log(torch.diagonal(L)).sum(), torch.cholesky_inverse(L)
    # the C-ordered S is the Fortran-ordered S^T, whose upper triangle is the
    # lower triangle of S: S = U^T U with U upper (its lower part zeroed)
    U, info = lapack.dpotrf(S.numpy().T, lower=0, clean=1)
    if info != 0:
        return None
    logdet = 2.0 * np.log(np.diagonal(U)).sum()
    U_inv, info = lapack.dtrtri(U, lower=0)
    if info != 0:
        return None
    inv = U_inv @ U_inv.T  # S^-1 = U^-1 U^-T
    return torch.tensor(logdet, dtype=S.dtype), torch.from_numpy(inv)


def accurate_spd_inverse(S, X):
    """:func:`spd_inverse` of the statistic ``S`` formed from the rows ``X``,
    or ``None`` also when the float32 route was not accurate enough for it
    (:func:`float32_accurate` with the condition number :func:`cond1`): the
    check of every closed form that factorises its Gram matrix by Cholesky.
    """
    found = spd_inverse(S)
    if found is None or not float32_accurate(X, cond1(S, found[1])):
        return None
    return found


def small_matmul(a, b):
    """``a @ b`` of the closed forms' small ``(..., d, d)`` statistics: numpy's
    product on the CPU (OpenBLAS runs a ``64 x 64`` product on the calling
    thread, where torch's MKL splits it over its OpenMP threads, see
    :func:`spd_inverse`), torch's elsewhere and whenever an operand requires
    a gradient (a graph being recorded)."""
    if (a.device.type == "cpu" and b.device.type == "cpu"
            and not (a.requires_grad or b.requires_grad)):
        return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))
    return a @ b


def sym_eigh(S):
    """``torch.linalg.eigh`` of symmetric float64 matrices ``S`` (``(..., d,
    d)``, the lower triangle read): ascending eigenvalues and eigenvectors.

    On the CPU through scipy's LAPACK (``dsyevd``, one matrix at a time, on
    the calling thread: see :func:`spd_inverse`), elsewhere through torch.
    Raises :class:`torch.linalg.LinAlgError` if LAPACK reports a failure, as
    ``torch.linalg.eigh`` does.
    """
    S = S.detach()
    if S.device.type != "cpu":
        return torch.linalg.eigh(S)
    mats = S.reshape(-1, S.shape[-2], S.shape[-1]).numpy()
    evals = np.empty(mats.shape[:2])
    vecs = np.empty(mats.shape)
    for b, a in enumerate(mats):
        # the upper triangle of the Fortran-ordered a^T: a's lower triangle
        w, v, info = lapack.dsyevd(a.T, compute_v=1, lower=0)
        if info != 0:
            raise torch.linalg.LinAlgError(
                f"the eigendecomposition failed to converge (LAPACK info={info})."
            )
        evals[b], vecs[b] = w, v
    return (torch.from_numpy(evals).reshape(S.shape[:-1]),
            torch.from_numpy(vecs).reshape(S.shape))


def table_names(tables):
    """``tables`` (validated at construction) as a tuple of names, or ``None``."""
    if tables is None:
        return None
    if isinstance(tables, str):
        return (tables,)
    return tuple(tables)


def check_batch_tensor(name: str, x) -> torch.Tensor:
    """Check one batch entry is a floating ``(batch, dim)`` tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"embeddings[{name!r}] must be a torch tensor, got {type(x).__name__}."
        )
    if x.dim() != 2:
        raise ValueError(
            f"embeddings[{name!r}] must be 2-D (batch, dim), got shape "
            f"{tuple(x.shape)}."
        )
    if not x.is_floating_point():
        raise TypeError(
            f"embeddings[{name!r}] must be a floating tensor, got dtype {x.dtype}."
        )
    if x.shape[1] == 0:
        raise ValueError(f"embeddings[{name!r}] has zero columns.")
    return x


def select_tables(embeddings: dict, tables) -> list:
    """Names of the batch tables a regularizer acts on, in the batch's order.

    Validates the selected entries (2-D floating tensors) and raises a
    ``ValueError`` naming the available tables when ``tables`` asks for a table
    the batch does not have.
    """
    names = table_names(tables)
    if names is None:
        names = tuple(embeddings)
    else:
        missing = [n for n in names if n not in embeddings]
        if missing:
            raise ValueError(
                f"tables={list(names)!r} names {missing!r}, which the batch does not "
                f"have; the batch's tables are {sorted(embeddings)!r}."
            )
    for n in names:
        check_batch_tensor(n, embeddings[n])
    return list(names)


def weight_of(table_weights, name: str) -> float:
    if table_weights is None:
        return 1.0
    return float(table_weights.get(name, 1.0))


def ids_of(context, name: str):
    """Row ids of table ``name`` in the batch, from ``context[name + "_ids"]``."""
    if context is None:
        return None
    return context.get(f"{name}_ids")


def extra_ids_of(context, name: str):
    """Ids of the rows of ``name`` passed to ``transform_extra`` in this step,
    from ``context["extra_" + name + "_ids"]`` (optional)."""
    if context is None:
        return None
    return context.get(f"extra_{name}_ids")


def table_dims(info) -> dict:
    """Read ``info["tables"]`` (dict name -> dim, or pairs) into a dict; {} if absent."""
    if info is None:
        return {}
    tables = info.get("tables")
    if tables is None:
        return {}
    if isinstance(tables, dict):
        items = tables.items()
    else:
        items = tables
    out = {}
    for item in items:
        try:
            name, dim = item
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"info['tables'] must map table names to dimensions, got {tables!r}."
            ) from exc
        out[str(name)] = int(dim)
    return out


class _FirstRows(torch.autograd.Function):
    """``x[first]`` whose gradient is spread evenly over each group's rows.

    Used when the rows of a group are equal (the same table row fetched several
    times): the exact gradient of a function of the batch gives every copy the
    same share, ``1 / count`` of the gradient of the distinct row.
    """

    @staticmethod
    def forward(ctx, x, first, inverse, counts):
        ctx.save_for_backward(inverse, counts)
        return x.index_select(0, first)

    @staticmethod
    def backward(ctx, grad):
        inverse, counts = ctx.saved_tensors
        share = grad / counts.to(grad.dtype).unsqueeze(1)
        return share.index_select(0, inverse), None, None, None


class RowGroups:
    """The distinct rows of a batch, grouped by their ids.

    A CF batch fetches popular users and items many times (on ML-100k a batch
    of 2048 pairs has about 700 distinct users and 770 distinct items), and a
    function of the batch rows that treats them symmetrically (a mean over
    rows, a Gram matrix, an all-pairs kernel, a softmax over keys) can be
    computed exactly from the ``m`` distinct rows and their counts. The
    all-pairs terms then cost ``O(m²)`` instead of ``O(B²)``.

    Attributes
    ----------
    ids : Tensor of shape (m,)
        The distinct ids, sorted.
    inverse : LongTensor of shape (B,)
        Group of each batch row.
    counts : LongTensor of shape (m,)
        Rows per group.
    first : LongTensor of shape (m,)
        First batch row of each group.
    """

    def __init__(self, ids, inverse, counts, first):
        self.ids, self.inverse, self.counts, self.first = ids, inverse, counts, first

    @classmethod
    def of(cls, x, ids, max_share=1.0):
        """Group the rows of ``x`` by ``ids``; ``None`` when that is not exact.

        ``None`` when there are no ids, their number does not match the rows,
        or two rows with the same id differ (then the batch is not a set of
        table rows and the caller computes on the rows as they are). Also
        ``None`` when the distinct ids are more than ``max_share`` of the rows:
        a caller whose work grows linearly with the rows saves too little by
        grouping then to pay for it (both ways compute the same).
        """
        if ids is None or x.shape[0] < 2:
            return None
        ids = torch.as_tensor(ids, device=x.device).reshape(-1)
        if ids.numel() != x.shape[0]:
            return None
        uniq, inverse, counts = torch.unique(
            ids, return_inverse=True, return_counts=True
        )
        if uniq.numel() > max_share * ids.numel():
            return None
        pos = torch.arange(ids.numel(), device=x.device)
        first = torch.full_like(uniq, ids.numel(), dtype=pos.dtype).scatter_reduce(
            0, inverse, pos, reduce="amin", include_self=True
        )
        if uniq.numel() < ids.numel():
            with torch.no_grad():
                if not torch.equal(x.index_select(0, first).index_select(0, inverse), x):
                    return None
        return cls(uniq, inverse, counts, first)

    def rows(self, x):
        """The distinct rows ``(m, d)``; each copy gets ``1/count`` of the gradient."""
        return _FirstRows.apply(x, self.first, self.inverse, self.counts)

    def expand(self, y):
        """Rows ``(m, ...)`` of the groups back to the batch's ``(B, ...)``."""
        return y.index_select(0, self.inverse)


def weighted_table_mean(embeddings, names, table_weights, context, term, *, dtype=None):
    """The ``table_weights``-weighted mean over the tables ``names`` of a term.

    ``term(rows, counts)`` is one table's value: its batch rows, or the
    distinct rows of a batch that repeats ids (:class:`RowGroups`) with how
    often each occurs. Tables of weight 0 or with fewer than 2 rows add 0
    (their weight still counts in the denominator). The sum is accumulated in
    ``dtype`` (the first table's by default).
    """
    first = embeddings[names[0]]
    total = first.new_zeros((), dtype=dtype)
    denom = 0.0
    for name in names:
        w = weight_of(table_weights, name)
        denom += w
        x = embeddings[name]
        if w == 0.0 or x.shape[0] < 2:
            continue
        groups = RowGroups.of(x, ids_of(context, name))
        if groups is None:
            total = total + w * term(x, None)
        else:  # the batch's statistics from its distinct rows, counted
            total = total + w * term(groups.rows(x), groups.counts)
    return total / denom if denom > 0 else total
