"""Collapse metrics computed from the singular spectrum, normalized std, and
:func:`collapse_metrics`, which computes several from one spectrum.

Every function takes one embedding table ``(n_samples, n_features)`` -- a numpy
array (``np.memmap`` streamed), a torch tensor (computed on its device) or a dask
array (computed blockwise) -- or a list/tuple/dict of tables, for which it returns
a list/dict of per-table values (e.g. one IA per CTR field). Results are Python
floats. The built-in collapse metrics are registered here, next to their
functions (:func:`~skcollapse.metrics.register_collapse_metric`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from skcollapse.metrics._gram import _chunk_rows, _mmap_release, _row_normalize_np
from skcollapse.metrics._reference import random_reference
from skcollapse.metrics._registry import (
    COLLAPSE_METRICS,
    DEFAULT_METRICS,
    register_collapse_metric,
    resolve_collapse_metrics,
)
from skcollapse.metrics._spectrum import (
    _METHODS,
    _spectrum_single,
    condition_number_from_spectrum,
    erank_from_spectrum,
    ia_from_spectrum,
    stable_rank_from_spectrum,
)
from skcollapse.utils._docstrings import GUO_2024, ROY_VETTERLI_2007, fill_doc
from skcollapse.utils._sklearn_compat import StrOptions, validate_params
from skcollapse.utils._validation import check_embedding_matrix

__all__ = [
    "collapse_metrics",
    "condition_number",
    "effective_rank",
    "information_abundance",
    "normalized_std",
    "stable_rank",
]


# --------------------------------------------------------------------------- tables
def _is_table_collection(embeddings):
    if isinstance(embeddings, Mapping):
        return True
    if isinstance(embeddings, (list, tuple)) and embeddings:
        first = embeddings[0]
        return hasattr(first, "shape") and len(getattr(first, "shape", ())) == 2
    return False


#: The Returns section of the metrics of one table or several (``_per_table``),
#: a docstring part (:func:`fill_doc`).
PER_TABLE_RETURNS_DOC = """
    Returns
    -------
    float, or list/dict of float for several tables.
"""


def _per_table(func, embeddings, **kwargs):
    """Apply ``func`` to one table, or to each table of a list/tuple/dict."""
    if isinstance(embeddings, Mapping):
        if not embeddings:
            raise ValueError("embeddings is an empty dict; give at least one table.")
        return {key: func(value, **kwargs) for key, value in embeddings.items()}
    if _is_table_collection(embeddings):
        return [func(value, **kwargs) for value in embeddings]
    return func(embeddings, **kwargs)


def _spectral_metric(
    embeddings,
    *,
    metric,
    center=False,
    row_normalize=False,
    normalize=False,
    relative=False,
    method="auto",
    spectrum=None,
):
    center, row_normalize, normalize = bool(center), bool(row_normalize), bool(normalize)
    kwargs = {} if spectrum is None else {"spectrum": spectrum}
    E, kind = check_embedding_matrix(embeddings, check_finite=False)
    sigma = _spectrum_single(
        E, kind, center=center, row_normalize=row_normalize, method=method,
        chunk_size=None,
    )
    n = int(E.shape[0])
    value = COLLAPSE_METRICS[metric].from_spectrum(
        sigma, normalize=normalize, center=center, n_samples=n, **kwargs
    )
    if relative:
        ref = random_reference(
            (n, int(E.shape[1])), metric, center=center, row_normalize=row_normalize,
            normalize=normalize, **kwargs,
        )
        value = value / ref if ref > 0 else float("nan")
    return value


_SPECTRAL_CONSTRAINTS = {
    "embeddings": "no_validation",  # one table or several: checked per table
    "center": ["boolean"],
    "row_normalize": ["boolean"],
    "normalize": ["boolean"],
    "relative": ["boolean"],
    "method": [StrOptions(set(_METHODS))],
}


#: The options of the spectral metrics (a docstring part, :func:`fill_doc`).
_COMMON_PARAMS = """
    center : bool, default=False
        Subtract the column mean first (spectrum of the covariance). RankMe,
        DirectSpec and RecScope do not center.
    row_normalize : bool, default=False
        L2-normalise rows first (RecScope's IA analysis does this).
    normalize : bool, default=False
        Divide by the largest attainable value, ``min(n_samples, n_features)``
        (``min(n_samples - 1, n_features)`` when centered), so that tables of
        different sizes compare; 1.0 means no collapse at all.
    relative : bool, default=False
        Divide by the expected value for a random Gaussian table of the same shape
        and options (:func:`random_reference`): 0.35 reads "35% of a random
        table's value".
    method : {"auto", "gram", "svd"}, default="auto"
        How the spectrum is computed; see :func:`singular_values`.
"""


@validate_params(
    {**_SPECTRAL_CONSTRAINTS, "spectrum": [StrOptions({"sv", "eig"})]},
    prefer_skip_nested_validation=True,
)
@fill_doc(
    common=_COMMON_PARAMS,
    per_table_returns=PER_TABLE_RETURNS_DOC,
    roy_vetterli_2007=ROY_VETTERLI_2007,
)
def effective_rank(
    embeddings,
    *,
    spectrum="sv",
    center=False,
    row_normalize=False,
    normalize=False,
    relative=False,
    method="auto",
):
    """Effective rank of Roy & Vetterli (2007), also known as RankMe.

    ``erank(E) = exp(-sum_k p_k log p_k)`` with ``p_k = sigma_k / ||sigma||_1``. It
    lies in ``[1, rank(E)]``. An all-zero matrix (complete collapse) returns
    ``0.0``, below every non-zero matrix. Scale and row-order invariant.

    Parameters
    ----------
    embeddings : array-like, torch.Tensor, dask array, or a list/dict of them
        One ``(n_samples, n_features)`` table, or several (e.g. one per CTR field);
        for several tables a list/dict of per-table values is returned.
    spectrum : {"sv", "eig"}, default="sv"
        ``"sv"`` uses singular values (Roy & Vetterli, RankMe). ``"eig"`` uses their
        squares (eigenvalues of the Gram/covariance matrix), which some monitors
        report; it is never larger than the ``"sv"`` value and not comparable.
    {common}

    {per_table_returns}

    See Also
    --------
    information_abundance : ``||sigma||_1 / sigma_max``.
    ErankScorer : The same metric as an estimator and scorer.

    References
    ----------
    {roy_vetterli_2007}

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import effective_rank
    >>> effective_rank(np.eye(4))
    4.0...
    >>> effective_rank(np.ones((5, 3)))
    1.0
    """
    return _per_table(
        _spectral_metric, embeddings, metric="effective_rank", spectrum=spectrum,
        center=center, row_normalize=row_normalize, normalize=normalize,
        relative=relative, method=method,
    )


@validate_params(_SPECTRAL_CONSTRAINTS, prefer_skip_nested_validation=True)
@fill_doc(
    common=_COMMON_PARAMS, per_table_returns=PER_TABLE_RETURNS_DOC, guo_2024=GUO_2024
)
def information_abundance(
    embeddings,
    *,
    center=False,
    row_normalize=False,
    normalize=False,
    relative=False,
    method="auto",
):
    """Information abundance of Guo et al. (ICML 2024): ``||sigma||_1 / sigma_max``.

    It lies in ``[1, rank(E)]``; an all-zero matrix (complete collapse) returns
    ``0.0``. Guo et al. report it per field table and compare it with a randomly
    initialised table (``relative=True``).

    Parameters
    ----------
    embeddings : array-like, torch.Tensor, dask array, or a list/dict of them
        One table, or several (the paper reports one value per field table).
    {common}

    {per_table_returns}

    See Also
    --------
    effective_rank : Entropy-based effective dimensionality.
    IAScorer : The same metric as an estimator and scorer.

    References
    ----------
    {guo_2024}

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import information_abundance
    >>> information_abundance(np.diag([2.0, 1.0, 1.0]))
    2.0
    """
    return _per_table(
        _spectral_metric, embeddings, metric="information_abundance",
        center=center, row_normalize=row_normalize, normalize=normalize,
        relative=relative, method=method,
    )


@validate_params(_SPECTRAL_CONSTRAINTS, prefer_skip_nested_validation=True)
@fill_doc(common=_COMMON_PARAMS, per_table_returns=PER_TABLE_RETURNS_DOC)
def stable_rank(
    embeddings,
    *,
    center=False,
    row_normalize=False,
    normalize=False,
    relative=False,
    method="auto",
):
    """Stable (numerical) rank ``||E||_F^2 / ||E||_2^2 = sum(sigma^2) / sigma_max^2``.

    The squared analogue of information abundance (TF-GNN's ``numerical_rank``);
    it weighs the top directions more and is robust to tiny singular values. An
    all-zero matrix returns ``0.0``.

    Parameters
    ----------
    embeddings : array-like, torch.Tensor, dask array, or a list/dict of them
        One table, or several.
    {common}

    {per_table_returns}

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import stable_rank
    >>> stable_rank(np.diag([2.0, 1.0, 1.0]))
    1.5
    """
    return _per_table(
        _spectral_metric, embeddings, metric="stable_rank", center=center,
        row_normalize=row_normalize, normalize=normalize, relative=relative,
        method=method,
    )


@validate_params(
    {k: v for k, v in _SPECTRAL_CONSTRAINTS.items() if k != "normalize"},
    prefer_skip_nested_validation=True,
)
@fill_doc(per_table_returns=PER_TABLE_RETURNS_DOC)
def condition_number(
    embeddings,
    *,
    center=False,
    row_normalize=False,
    relative=False,
    method="auto",
):
    """Condition number ``sigma_max / sigma_min`` of an embedding table.

    Taken over the attainable rank ``min(n_samples, n_features)`` (minus one when
    centered). A rank-deficient or all-zero table returns ``inf``: some direction
    is completely collapsed. Lower is healthier (LogDet regularisers keep it small).

    Parameters
    ----------
    embeddings : array-like, torch.Tensor, dask array, or a list/dict of them
        One table, or several.
    center : bool, default=False
        Subtract the column mean first.
    row_normalize : bool, default=False
        L2-normalise rows first.
    relative : bool, default=False
        Divide by the expected value for a random Gaussian table of the same shape.
    method : {"auto", "gram", "svd"}, default="auto"
        The Gram route (tall tables) resolves singular values down to about
        ``sqrt(n_features * eps) * sigma_max`` (``1.7e-7 * sigma_max`` for 128
        features) and reports smaller ones as 0, i.e. ``inf``; use ``"svd"`` for
        very ill-conditioned tables.

    {per_table_returns}

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import condition_number
    >>> condition_number(np.diag([4.0, 2.0, 1.0]))
    4.0
    """
    return _per_table(
        _spectral_metric, embeddings, metric="condition_number", center=center,
        row_normalize=row_normalize, relative=relative, method=method,
    )


# ------------------------------------------------------------- normalized std
def _moments_numpy(E, chunk_rows):
    d = E.shape[1]
    release = _mmap_release(E) if isinstance(E, np.memmap) else None
    n_tot, mean, m2 = 0, np.zeros(d), np.zeros(d)
    for start in range(0, E.shape[0], chunk_rows):
        stop = min(start + chunk_rows, E.shape[0])
        X = np.asarray(E[start:stop], dtype=np.float64)
        if not np.isfinite(X).all():
            raise ValueError("embeddings contains NaN or infinite values.")
        X = _row_normalize_np(X)
        rows = X.shape[0]
        bmean = X.mean(axis=0)
        bm2 = ((X - bmean) ** 2).sum(axis=0)
        total = n_tot + rows
        delta = bmean - mean
        m2 += bm2 + delta**2 * (n_tot * rows / total)
        mean += delta * (rows / total)
        n_tot = total
        if release is not None:
            release(start, stop)
    return n_tot, mean, m2


def _normalized_std_single(embeddings, *, relative=False):
    E, kind = check_embedding_matrix(embeddings, check_finite=False)
    n, d = E.shape
    if kind == "torch":
        import torch

        with torch.no_grad():
            X = E.detach().to(torch.float64)
            if not bool(torch.isfinite(X).all()):
                raise ValueError("embeddings contains NaN or infinite values.")
            X = torch.nn.functional.normalize(X, dim=1)
            std = X.std(dim=0, correction=1) if n > 1 else torch.zeros(d)
            value = float(std.mean())
    else:
        if kind == "dask":
            from skcollapse.metrics._dask import dask_row_moments

            count, _, m2 = dask_row_moments(E)
        else:
            count, _, m2 = _moments_numpy(E, _chunk_rows(d, None))
        value = float(np.mean(np.sqrt(m2 / (count - 1)))) if count > 1 else 0.0
    if relative:
        value *= np.sqrt(d)
    return value


@validate_params(
    {"embeddings": "no_validation", "relative": ["boolean"]},
    prefer_skip_nested_validation=True,
)
@fill_doc(per_table_returns=PER_TABLE_RETURNS_DOC)
def normalized_std(embeddings, *, relative=False):
    """Mean column std of the L2-normalised rows (Chen & He, SimSiam, 2021).

    ``mean_j std_i(e_ij / ||e_i||)`` with the unbiased std. A completely
    collapsed table (all rows along one direction) gives ``0.0``; zero-mean
    isotropic embeddings give about ``1 / sqrt(n_features)``. All-zero rows stay
    zero; a single row gives ``0.0``.

    Parameters
    ----------
    embeddings : array-like, torch.Tensor, dask array, or a list/dict of them
        One table, or several.
    relative : bool, default=False
        Multiply by ``sqrt(n_features)``, i.e. divide by the isotropic reference
        ``1 / sqrt(n_features)``; about 1.0 means no collapse.

    {per_table_returns}

    References
    ----------
    X. Chen and K. He, "Exploring Simple Siamese Representation Learning",
    CVPR 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import normalized_std
    >>> normalized_std(np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]))
    0.0
    """
    return _per_table(_normalized_std_single, embeddings, relative=relative)


# --------------------------------------------------------------- several at once
@validate_params(
    {
        **{k: v for k, v in _SPECTRAL_CONSTRAINTS.items() if k != "normalize"},
        "metrics": [str, list, tuple],
    },
    prefer_skip_nested_validation=True,
)
def collapse_metrics(
    embeddings,
    *,
    metrics=DEFAULT_METRICS,
    center=False,
    row_normalize=False,
    relative=False,
    method="auto",
):
    """Several collapse metrics of a table from a single pass over its spectrum.

    One Gram/SVD computation feeds every spectral metric (effective rank,
    information abundance, stable rank, condition number); ``normalized_std``
    costs one more pass over the rows. Use this instead of calling each function
    when the table is large.

    Parameters
    ----------
    embeddings : array-like, torch.Tensor, dask array, or a list/dict of them
        One table, or several.
    metrics : sequence of str, default=("effective_rank", \
"information_abundance", "normalized_std")
        Registered collapse metrics by name or alias
        (:func:`get_collapse_metric_names`): the built-in
        ``"effective_rank"``, ``"information_abundance"``, ``"stable_rank"``,
        ``"condition_number"``, ``"normalized_std"`` and any added with
        :func:`register_collapse_metric`; ``"all"`` for every one.
    center, row_normalize : bool, default=False
        Options of the spectral metrics (see :func:`effective_rank`).
    relative : bool, default=False
        Report each value relative to a random Gaussian table of the same shape.
    method : {"auto", "gram", "svd"}, default="auto"
        How the spectrum is computed.

    Returns
    -------
    dict of str to float, or a list/dict of such dicts for several tables.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.metrics import collapse_metrics
    >>> out = collapse_metrics(np.eye(3), metrics=["effective_rank", "stable_rank"])
    >>> {k: round(v, 6) for k, v in out.items()}
    {'effective_rank': 3.0, 'stable_rank': 3.0}
    """
    entries = resolve_collapse_metrics(metrics)
    return _per_table(
        _collapse_metrics_single, embeddings, entries=entries,
        center=bool(center), row_normalize=bool(row_normalize),
        relative=bool(relative), method=method,
    )


def _collapse_metrics_single(embeddings, *, entries, center, row_normalize, relative,
                             method):
    E, kind = check_embedding_matrix(embeddings, check_finite=False)
    n, d = (int(s) for s in E.shape)
    out = {}
    spectral = [m for m in entries if m.spectral]
    if spectral:  # one spectrum feeds every spectral metric
        sigma = _spectrum_single(
            E, kind, center=center, row_normalize=row_normalize, method=method,
            chunk_size=None,
        )
        for m in spectral:
            value = m.from_spectrum(sigma, center=center, n_samples=n)
            if relative:
                ref = random_reference((n, d), m.name, center=center,
                                       row_normalize=row_normalize)
                value = value / ref if ref > 0 else float("nan")
            out[m.name] = value
    rows = E.detach() if kind == "torch" else E
    for m in entries:
        if not m.spectral:
            out[m.name] = _row_metric(m, rows, (n, d), center=center,
                                      row_normalize=row_normalize, relative=relative)
    return {m.name: out[m.name] for m in entries}


def _row_metric(entry, E, shape, *, center, row_normalize, relative):
    """A metric that reads the rows: ``entry.func`` with the options it takes."""
    options = {"center": center, "row_normalize": row_normalize, "relative": relative}
    kwargs = {k: v for k, v in options.items() if v and entry.accepts(k)}
    value = float(entry.func(E, **kwargs))
    if relative and "relative" not in kwargs:
        if entry.reference is None:
            raise ValueError(
                f"relative=True: the collapse metric {entry.name!r} has no value "
                "for a random table to compare with (register it with "
                "reference=...)."
            )
        ref = float(entry.reference(*shape))
        value = value / ref if ref > 0 else float("nan")
    return value


# ---------------------------------------------------------------- the registry
# The built-in metrics, registered next to their functions (display order).
register_collapse_metric(
    "effective_rank", effective_rank, alias="erank", label="effective rank",
    short_label="erank", from_spectrum=erank_from_spectrum, synonyms=("rankme",),
    description="entropy-based effective dimensionality (Roy & Vetterli; RankMe)",
    _builtin=True,
)
register_collapse_metric(
    "information_abundance", information_abundance, alias="ia",
    label="information abundance", short_label="IA", from_spectrum=ia_from_spectrum,
    description="sum of singular values over the largest (Guo et al., ICML 2024)",
    _builtin=True,
)
register_collapse_metric(
    "stable_rank", stable_rank, alias="srank", label="stable rank",
    short_label="srank", from_spectrum=stable_rank_from_spectrum,
    description="squared Frobenius over squared spectral norm",
    _builtin=True,
)
register_collapse_metric(
    "condition_number", condition_number, greater_is_better=False, alias="cond",
    label="condition number", short_label="cond",
    from_spectrum=condition_number_from_spectrum,
    description="largest over smallest singular value",
    _builtin=True,
)
register_collapse_metric(
    "normalized_std", normalized_std, alias="norm_std", label="normalized std",
    short_label="norm_std", reference=lambda n_samples, n_features: float(
        1.0 / np.sqrt(n_features)),
    description="mean column std of the L2-normalised rows (SimSiam)",
    _builtin=True,
)
