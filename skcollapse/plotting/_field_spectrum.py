"""Per-field heatmap of normalised singular values (RecScope style) for CTR models."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from skcollapse.metrics import (
    get_collapse_metric,
    get_embedding_tables,
    singular_values,
)
from skcollapse.plotting._base import (
    check_matplotlib_support,
    check_nonempty_mapping,
    display_doc,
    estimator_name,
    panel_axes,
    to_numpy,
)
from skcollapse.utils._sklearn_compat import StrOptions, real_interval, validate_params

#: ``<field><sep>set<sep><m>``, e.g. ``"C1/set1"``, ``"field_3_set_0"``, ``"C1 set 2"``.
_SET_PATTERN = re.compile(
    r"^(?P<field>.+?)[\s_/:.@-]+set[\s_:-]*(?P<set>\d+)$", flags=re.IGNORECASE
)


def split_field_and_set(name: str):
    """Split a table name into ``(field, set index)``; ``(name, None)`` when unset.

    Multi-embedding models name their tables ``<field>/set<m>`` (or with ``_``,
    ``:`` or a space as separator); any other name is a field of its own.
    """
    match = _SET_PATTERN.match(str(name))
    if match is None:
        return str(name), None
    return match.group("field"), int(match.group("set"))


_IA = get_collapse_metric("information_abundance").from_spectrum


def _group_tables(tables: dict, sets: str) -> dict:
    """Rows of the heatmap: field -> table, after handling embedding sets."""
    if sets == "separate":
        return {str(k): v for k, v in tables.items()}
    grouped: dict = {}
    for name, table in tables.items():
        field, index = split_field_and_set(name)
        grouped.setdefault(field, []).append((-1 if index is None else index, table))
    rows = {}
    for field, members in grouped.items():
        members.sort(key=lambda item: item[0])
        mats = [np.asarray(to_numpy(t), dtype=np.float64) for _, t in members]
        if len(mats) == 1:
            rows[field] = mats[0]
            continue
        n_rows = {m.shape[0] for m in mats if m.ndim == 2}
        if len(n_rows) != 1 or any(m.ndim != 2 for m in mats):
            raise ValueError(
                f"the embedding sets of field {field!r} have different numbers of "
                "rows; they cannot be concatenated (use sets='separate')."
            )
        rows[field] = np.concatenate(mats, axis=1)
    return rows


@display_doc
class FieldSpectrumDisplay:
    """Heatmap of each field's normalised singular values, with IA per field.

    One row per field (embedding table), one column per singular value index;
    the colour is ``sigma_k / sigma_1`` on a log scale, so a field whose
    spectrum drops after a few values (dimensional collapse) shows a short
    bright band followed by dark cells. The y labels give each field's
    information abundance. Several models can be drawn side by side with the
    same colour scale, e.g. a single-embedding model against its
    multi-embedding counterpart (Guo et al., 2024).

    It is recommended to create a display with :meth:`from_estimator`,
    :meth:`from_estimators` or :meth:`from_embeddings`.

    Parameters
    ----------
    singular_values : dict of str -> dict of str -> ndarray
        Per panel (model) name, the singular values of each field, largest first.
    information_abundances : dict of str -> dict of str -> float
        Per panel name, the IA of each field (same keys).

    Attributes
    ----------
    normalized_singular_values : dict of str -> ndarray of shape (n_fields, n_max)
        Per panel, the plotted matrix: each field's ``sigma / sigma_1``, padded
        with NaN (drawn blank) where a field has fewer singular values.
    images_ : list of matplotlib AxesImage
        One heatmap per panel.
    axes_ : ndarray of matplotlib Axes
        One axes per panel, side by side.
    ax_ : matplotlib Axes
        The first panel's axes.
    colorbar_ : matplotlib Colorbar or None
        Shared colour bar.
    figure_ : matplotlib Figure

    See Also
    --------
    SpectrumDisplay : Spectra of a few tables as lines.
    skcollapse.metrics.information_abundance : The per-field IA.

    References
    ----------
    X. Guo et al., "On the Embedding Collapse when Scaling up Recommendation
    Models", ICML 2024 (per-field spectra and IA; multi-embedding).
    J. Pan et al., "Ads Recommendation in a Collapsed and Entangled World",
    KDD 2024 (the RecScope analysis tools).

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.plotting import FieldSpectrumDisplay
    >>> rng = np.random.default_rng(0)
    >>> tables = {"user_id": rng.normal(size=(500, 8)), "gender": rng.normal(size=(3, 8))}
    >>> disp = FieldSpectrumDisplay.from_embeddings(tables)
    >>> disp.normalized_singular_values["embeddings"].shape
    (2, 8)
    """

    def __init__(self, *, singular_values, information_abundances):
        self.singular_values = singular_values
        self.information_abundances = information_abundances

    @property
    def normalized_singular_values(self):
        out = {}
        for panel, fields in self.singular_values.items():
            width = max((np.asarray(s).size for s in fields.values()), default=0)
            mat = np.full((len(fields), width), np.nan)
            for i, sigma in enumerate(fields.values()):
                sigma = np.asarray(sigma, dtype=np.float64)
                top = sigma.max() if sigma.size else 0.0
                mat[i, : sigma.size] = sigma / top if top > 0 else 0.0
            out[panel] = mat
        return out

    def _check_data(self):
        if not isinstance(self.singular_values, Mapping) or not self.singular_values:
            raise ValueError(
                "singular_values must be a non-empty dict of panel name -> "
                "dict of field name -> singular values."
            )
        for panel, fields in self.singular_values.items():
            if not isinstance(fields, Mapping) or not fields:
                raise ValueError(f"panel {panel!r} has no fields.")
            ias = self.information_abundances.get(panel)
            if ias is None or set(ias) != set(fields):
                raise ValueError(
                    f"information_abundances[{panel!r}] must have one value per field "
                    f"of singular_values[{panel!r}]."
                )
            for field, sigma in fields.items():
                sigma = np.asarray(sigma, dtype=np.float64)
                if sigma.ndim != 1 or not np.isfinite(sigma).all() or (sigma < 0).any():
                    raise ValueError(
                        f"singular_values[{panel!r}][{field!r}] must be a 1-D array "
                        "of finite non-negative values."
                    )

    @validate_params(
        {
            "ax": "no_validation",
            "vmin": [real_interval(0, 1, closed="neither"), None],
            "cmap": "no_validation",
            "colorbar": ["boolean"],
        },
        prefer_skip_nested_validation=True,
    )
    def plot(self, ax=None, *, vmin=None, cmap="viridis", colorbar=True, **kwargs):
        """Draw one heatmap per panel.

        Parameters
        ----------
        ax : matplotlib Axes or array-like of Axes, default=None
            One axes per panel; a new figure with the panels side by side is
            created when None.
        vmin : float, default=None
            Smallest normalised singular value on the (log) colour scale; smaller
            values get the darkest colour. By default the smallest positive
            plotted value, clipped to ``[1e-4, 0.1]`` so that at least one decade
            is shown and numerical noise does not flatten the contrast.
        cmap : str or Colormap, default="viridis"
            Colour map.
        colorbar : bool, default=True
            Add one colour bar shared by the panels.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.imshow`.

        {returns}
        """
        plt = check_matplotlib_support("FieldSpectrumDisplay.plot")
        from matplotlib.colors import LogNorm

        self._check_data()
        matrices = self.normalized_singular_values
        if vmin is None:
            positive = [m[m > 0] for m in matrices.values()]
            smallest = min((p.min() for p in positive if p.size), default=1e-3)
            vmin = float(np.clip(smallest, 1e-4, 0.1))
        panels = list(self.singular_values)
        n_fields = max(len(f) for f in self.singular_values.values())
        fig, axes = panel_axes(
            ax, len(panels), "FieldSpectrumDisplay.plot",
            figsize=(4.2 * len(panels) + 1.5, 1.2 + 0.32 * max(n_fields, 4)),
            layout="constrained",
            message=f"ax holds {{got}} axes but there are {len(panels)} panels.",
        )
        if ax is not None and not all(hasattr(a, "imshow") for a in axes):
            raise TypeError("ax must be a matplotlib Axes or an array of Axes.")
        norm = LogNorm(vmin=vmin, vmax=1.0, clip=True)
        cmap_obj = plt.get_cmap(cmap).with_extremes(bad="white")
        self.images_ = []
        for axis, panel in zip(axes, panels, strict=True):
            mat = matrices[panel]
            # zeros (complete collapse) get the darkest colour; NaN padding blank
            shown = np.where(np.isnan(mat), np.nan, np.maximum(mat, vmin * 0.5))
            masked = np.ma.masked_invalid(shown)
            kw = {"aspect": "auto", "interpolation": "nearest", **kwargs}
            image = axis.imshow(masked, cmap=cmap_obj, norm=norm, **kw)
            self.images_.append(image)
            fields = list(self.singular_values[panel])
            ias = self.information_abundances[panel]
            axis.set_yticks(np.arange(len(fields)))
            axis.set_yticklabels([f"{f} (IA {ias[f]:.1f})" for f in fields])
            axis.set_xlabel("singular value index k")
            width = mat.shape[1]
            step = max(1, int(np.ceil(width / 10)))
            ticks = np.arange(0, width, step)
            axis.set_xticks(ticks)
            axis.set_xticklabels([str(t + 1) for t in ticks])
            mean_ia = float(np.mean(list(ias.values())))
            axis.set_title(f"{panel} (mean IA {mean_ia:.2f})")
        self.colorbar_ = None
        if colorbar:
            self.colorbar_ = fig.colorbar(self.images_[0], ax=list(axes))
            self.colorbar_.set_label("σ_k / σ_1")
        self.axes_ = axes
        self.ax_ = axes[0]
        self.figure_ = fig
        return self

    @staticmethod
    def _panel(tables, *, sets, row_normalize, order):
        rows = _group_tables(tables, sets)
        if order == "cardinality":
            sizes = {f: np.shape(to_numpy(t))[0] for f, t in rows.items()}
            rows = dict(sorted(rows.items(), key=lambda item: sizes[item[0]]))
        sigmas, ias = {}, {}
        for field, table in rows.items():
            table = to_numpy(table)
            sigmas[field] = singular_values(table, row_normalize=row_normalize)
            ias[field] = _IA(sigmas[field])  # from the same spectrum
        return sigmas, ias

    @classmethod
    def from_embeddings(
        cls,
        embeddings,
        *,
        name="embeddings",
        sets="concat",
        row_normalize=False,
        order="cardinality",
        ax=None,
        **kwargs,
    ):
        """Heatmap of a dict of per-field tables (one panel).

        Parameters
        ----------
        embeddings : dict of str -> array-like of shape (n_categories, n_features)
            One table per field. Tables named ``<field>/set<m>`` are embedding
            sets of a multi-embedding model.
        name : str, default="embeddings"
            Panel title.
        sets : {"concat", "separate"}, default="concat"
            ``"concat"`` joins a field's embedding sets side by side into one
            ``(n_categories, M * K)`` table, comparable with a single embedding of
            width ``M * K``; ``"separate"`` draws each set as its own row.
        row_normalize : bool, default=False
            L2-normalise rows first, as the RecScope notebook does.
        order : {"cardinality"} or None, default="cardinality"
            Sort fields by number of categories (as Guo et al. do), or keep the
            given order.
        {draw_params}

        {returns}
        """
        return cls.from_embeddings_dict(
            {name: embeddings},
            sets=sets,
            row_normalize=row_normalize,
            order=order,
            ax=ax,
            **kwargs,
        )

    @classmethod
    @validate_params(
        {
            "panels": "no_validation",
            "sets": [StrOptions({"concat", "separate"})],
            "row_normalize": ["boolean"],
            "order": [StrOptions({"cardinality"}), None],
            "ax": "no_validation",
        },
        prefer_skip_nested_validation=False,  # plot(**kwargs) checks its own
    )
    def from_embeddings_dict(
        cls,
        panels,
        *,
        sets="concat",
        row_normalize=False,
        order="cardinality",
        ax=None,
        **kwargs,
    ):
        """Several panels side by side: ``{panel name: {field: table}}``.

        Parameters are as in :meth:`from_embeddings`.

        {returns}
        """
        check_nonempty_mapping(
            panels, "panels must be a non-empty dict of name -> dict of tables.",
            ValueError,
        )
        sigmas, ias = {}, {}
        for panel, tables in panels.items():
            if not isinstance(tables, Mapping) or not tables:
                raise TypeError(
                    f"embeddings of {panel!r} must be a non-empty dict of field name "
                    f"-> 2-D table, got {type(tables).__name__}."
                )
            sigmas[str(panel)], ias[str(panel)] = cls._panel(
                tables, sets=sets, row_normalize=row_normalize, order=order
            )
        disp = cls(singular_values=sigmas, information_abundances=ias)
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, *, name=None, tables=None, ax=None, **kwargs):
        """Heatmap of a fitted CTR model's per-field tables (one panel).

        Parameters
        ----------
        estimator : estimator
            Fitted model with ``get_embeddings() -> dict[str, ndarray]`` (one table
            per field, and per embedding set for multi-embedding models).
        name : str, default=None
            Panel title; the class name by default.
        tables : list of str, default=None
            Table names to keep; all by default.
        ax : matplotlib Axes, default=None
            Axes to draw on.
        **kwargs : dict
            Passed to :meth:`from_embeddings` (``sets``, ``row_normalize``, ...).

        {returns}
        """
        return cls.from_estimators(
            {name or estimator_name(estimator): estimator},
            tables=tables,
            ax=ax,
            **kwargs,
        )

    @classmethod
    def from_estimators(cls, estimators, *, tables=None, ax=None, **kwargs):
        """Side-by-side heatmaps of several models with one colour scale.

        Typical use: a single-embedding model against a multi-embedding one.

        Parameters
        ----------
        estimators : dict of str -> estimator
            Panel name -> fitted model with ``get_embeddings()``.
        tables : list of str, default=None
            Table names to keep in every model; all by default.
        ax : array-like of matplotlib Axes, default=None
            One axes per model.
        **kwargs : dict
            Passed to :meth:`from_embeddings` (``sets``, ``row_normalize``, ...).

        {returns}
        """
        check_nonempty_mapping(
            estimators,
            "estimators must be a non-empty dict of panel name -> fitted estimator.",
        )
        panels = {}
        wanted = [tables] if isinstance(tables, str) else tables
        for panel, est in estimators.items():
            panels[panel] = get_embedding_tables(
                est, wanted, name=f"estimators[{panel!r}]"
            )
        return cls.from_embeddings_dict(panels, ax=ax, **kwargs)
