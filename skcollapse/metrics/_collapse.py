"""Collapse metrics computed from the singular spectrum."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from skcollapse.metrics._spectrum import singular_values


def _per_table(func, embeddings, **kwargs):
    """Apply ``func`` to one table, or to each table of a list/tuple/dict."""
    if isinstance(embeddings, Mapping):
        if not embeddings:
            raise ValueError("embeddings is an empty dict; give at least one table.")
        return {key: func(value, **kwargs) for key, value in embeddings.items()}
    if isinstance(embeddings, (list, tuple)) and embeddings and not isinstance(
        embeddings[0], (int, float, np.number)
    ):
        first = embeddings[0]
        if hasattr(first, "shape") and len(getattr(first, "shape", ())) == 2:
            return [func(value, **kwargs) for value in embeddings]
    return func(embeddings, **kwargs)


def _spectrum_probabilities(sigma: np.ndarray, spectrum: str) -> np.ndarray | None:
    if spectrum not in {"sv", "eig"}:
        raise ValueError(f"spectrum must be 'sv' or 'eig', got {spectrum!r}.")
    values = sigma**2 if spectrum == "eig" else sigma
    total = values.sum()
    if total <= 0:
        return None
    return values / total


def _effective_rank_single(
    embeddings, *, spectrum="sv", center=False, row_normalize=False, normalize=False
):
    sigma = singular_values(embeddings, center=center, row_normalize=row_normalize)
    p = _spectrum_probabilities(sigma, spectrum)
    if p is None:
        return 0.0
    p = p[p > 0]
    value = float(np.exp(-np.sum(p * np.log(p))))
    if normalize:
        value /= sigma.shape[0]
    return value


def effective_rank(
    embeddings,
    *,
    spectrum: str = "sv",
    center: bool = False,
    row_normalize: bool = False,
    normalize: bool = False,
):
    """Effective rank of Roy & Vetterli (2007), also known as RankMe.

    ``erank(E) = exp(-sum_k p_k log p_k)`` with ``p_k = sigma_k / ||sigma||_1``. It lies
    in ``[1, rank(E)]``; an all-zero matrix (complete collapse) returns ``0.0``.

    Parameters
    ----------
    embeddings : array-like, torch.Tensor, dask array, or a list/dict of them
        One ``(n_samples, n_features)`` table, or several (e.g. one per CTR field);
        for several tables a list/dict of per-table values is returned.
    spectrum : {"sv", "eig"}, default="sv"
        ``"sv"`` uses singular values (Roy & Vetterli, RankMe). ``"eig"`` uses their
        squares (eigenvalues of the Gram/covariance matrix), which some monitors
        report; it is never larger than the ``"sv"`` value and not comparable with it.
    center : bool, default=False
        Subtract the column mean first.
    row_normalize : bool, default=False
        L2-normalise rows first.
    normalize : bool, default=False
        Divide by ``min(n_samples, n_features)`` so that tables of different sizes
        compare (1.0 means no collapse).

    Returns
    -------
    float, or list/dict of float for several tables.

    References
    ----------
    O. Roy and M. Vetterli, "The effective rank: a measure of effective
    dimensionality", EUSIPCO 2007.
    """
    return _per_table(
        _effective_rank_single,
        embeddings,
        spectrum=spectrum,
        center=center,
        row_normalize=row_normalize,
        normalize=normalize,
    )


def _information_abundance_single(
    embeddings, *, center=False, row_normalize=False, normalize=False
):
    sigma = singular_values(embeddings, center=center, row_normalize=row_normalize)
    top = sigma[0] if sigma.size else 0.0
    if top <= 0:
        return 0.0
    value = float(sigma.sum() / top)
    if normalize:
        value /= sigma.shape[0]
    return value


def information_abundance(
    embeddings,
    *,
    center: bool = False,
    row_normalize: bool = False,
    normalize: bool = False,
):
    """Information abundance of Guo et al. (ICML 2024): ``||sigma||_1 / ||sigma||_inf``.

    It lies in ``[1, min(n_samples, n_features)]``; an all-zero matrix returns ``0.0``.

    Parameters
    ----------
    embeddings : array-like, torch.Tensor, dask array, or a list/dict of them
        One table, or several (the paper reports one value per field table).
    center : bool, default=False
        Subtract the column mean first.
    row_normalize : bool, default=False
        L2-normalise rows first, as the RecScope analysis notebook does.
    normalize : bool, default=False
        Divide by ``min(n_samples, n_features)``.

    Returns
    -------
    float, or list/dict of float for several tables.

    References
    ----------
    X. Guo et al., "On the Embedding Collapse when Scaling up Recommendation
    Models", ICML 2024.
    """
    return _per_table(
        _information_abundance_single,
        embeddings,
        center=center,
        row_normalize=row_normalize,
        normalize=normalize,
    )
