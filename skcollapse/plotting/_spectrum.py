"""Singular-spectrum plot of one or several embedding tables (Jing et al. style)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from skcollapse.metrics import (
    get_collapse_metric,
    get_embedding_tables,
    singular_values,
)
from skcollapse.plotting._base import (
    as_1d_float,
    display_doc,
    estimator_name,
    get_axes,
    to_numpy,
)
from skcollapse.utils._sklearn_compat import StrOptions, real_interval, validate_params

#: Normalised singular values below this are numerical noise (float64 Gram
#: route: relative error about 1e-8); the automatic lower y-limit stops here.
_NOISE_FLOOR = 1e-7


def _is_table_collection(embeddings) -> bool:
    if isinstance(embeddings, Mapping):
        return True
    if isinstance(embeddings, (list, tuple)) and embeddings:
        return all(len(getattr(e, "shape", ())) == 2 for e in embeddings)
    return False


def _named_tables(embeddings, names, *, argname="embeddings") -> dict:
    """Normalise one table / a list / a dict of tables to an ordered dict."""
    if isinstance(embeddings, Mapping):
        if not embeddings:
            raise ValueError(f"{argname} is an empty dict; give at least one table.")
        if names is not None:
            raise ValueError(
                "names must be None when embeddings is a dict (its keys are the names)."
            )
        return {str(k): v for k, v in embeddings.items()}
    tables = list(embeddings) if _is_table_collection(embeddings) else [embeddings]
    if names is None:
        names = (
            ["embeddings"]
            if len(tables) == 1
            else [f"table {i}" for i in range(len(tables))]
        )
    elif isinstance(names, str):
        names = [names]
    names = [str(n) for n in names]
    if len(names) != len(tables):
        raise ValueError(
            f"names has {len(names)} entries but {len(tables)} tables were given."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"names must be unique, got {names}.")
    return dict(zip(names, tables, strict=True))


def _spectrum_and_metrics(table, *, center, row_normalize):
    """Singular values, erank and IA of a table, from one spectrum."""
    table = to_numpy(table)
    sigma = singular_values(table, center=center, row_normalize=row_normalize)
    n = int(table.shape[0])
    return (sigma, *(
        get_collapse_metric(m).from_spectrum(sigma, center=center, n_samples=n)
        for m in ("effective_rank", "information_abundance")
    ))


@display_doc
class SpectrumDisplay:
    """Normalised singular spectra of embedding tables, with erank and IA.

    Each table is drawn as one line: its singular values divided by the largest,
    on a log scale, against their index. A collapsed table shows a few large
    values followed by a sharp drop (Jing et al., 2022); a healthy one decays
    slowly. The legend gives each table's effective rank and information
    abundance.

    It is recommended to create a display with :meth:`from_estimator` or
    :meth:`from_embeddings`; the constructor only stores precomputed data.

    Parameters
    ----------
    singular_values : list of ndarray of shape (n_components,)
        Singular values of each table, largest first.
    names : list of str
        One label per table.
    effective_ranks : list of float
        Effective rank of each table.
    information_abundances : list of float
        Information abundance of each table.

    Attributes
    ----------
    normalized_singular_values : list of ndarray
        ``singular_values[i] / singular_values[i].max()``: the plotted y values
        (all zeros for an all-zero table).
    lines_ : list of matplotlib Line2D
        One line per table.
    ax_ : matplotlib Axes
        Axes with the spectra.
    figure_ : matplotlib Figure
        Figure containing the axes.

    See Also
    --------
    skcollapse.metrics.singular_values : The plotted spectrum.
    skcollapse.metrics.effective_rank : Erank shown in the legend.
    skcollapse.metrics.information_abundance : IA shown in the legend.

    References
    ----------
    L. Jing, P. Vincent, Y. LeCun, Y. Tian, "Understanding Dimensional Collapse
    in Contrastive Self-supervised Learning", ICLR 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from skcollapse.plotting import SpectrumDisplay
    >>> rng = np.random.default_rng(0)
    >>> E = rng.normal(size=(200, 16))
    >>> disp = SpectrumDisplay.from_embeddings({"random": E, "rank 2": E[:, :2] @ E[:2]})
    >>> [round(er, 1) for er in disp.effective_ranks]
    [15.8, 2.0]
    """

    def __init__(
        self, *, singular_values, names, effective_ranks, information_abundances
    ):
        self.singular_values = singular_values
        self.names = names
        self.effective_ranks = effective_ranks
        self.information_abundances = information_abundances

    @property
    def normalized_singular_values(self):
        out = []
        for sigma in self.singular_values:
            sigma = np.asarray(sigma, dtype=np.float64)
            top = sigma.max() if sigma.size else 0.0
            out.append(sigma / top if top > 0 else np.zeros_like(sigma))
        return out

    def _check_data(self):
        n = len(self.singular_values)
        if n == 0:
            raise ValueError("singular_values is empty; give at least one spectrum.")
        for attr in ("names", "effective_ranks", "information_abundances"):
            if len(getattr(self, attr)) != n:
                raise ValueError(
                    f"{attr} has {len(getattr(self, attr))} entries but "
                    f"singular_values has {n}."
                )
        for name, sigma in zip(self.names, self.singular_values, strict=True):
            sigma = as_1d_float(sigma, name=f"singular_values[{name!r}]")
            if (sigma < 0).any():
                raise ValueError(f"singular_values[{name!r}] has negative entries.")

    @validate_params(
        {
            "ax": "no_validation",
            "x": [StrOptions({"index", "fraction"})],
            "ylim_bottom": [real_interval(0, None, closed="neither"), None],
            "legend": ["boolean"],
        },
        prefer_skip_nested_validation=True,
    )
    def plot(self, ax=None, *, x="index", ylim_bottom=None, legend=True, **kwargs):
        """Plot the spectra.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.
        x : {"index", "fraction"}, default="index"
            Abscissa: the singular value index ``k`` (1-based), or ``k / n_components``
            to compare tables of different widths.
        ylim_bottom : float, default=None
            Lower y-limit. By default the smallest positive plotted value, but not
            below 1e-7 (smaller normalised singular values are numerical noise).
        legend : bool, default=True
            Draw the legend with erank and IA.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for every line.

        {returns}
            The object, with ``lines_``, ``ax_`` and ``figure_`` set.
        """
        self._check_data()
        fig, ax = get_axes(ax, "SpectrumDisplay.plot")
        self.lines_ = []
        smallest = np.inf
        for name, values, er, ia in zip(
            self.names,
            self.normalized_singular_values,
            self.effective_ranks,
            self.information_abundances,
            strict=True,
        ):
            k = np.arange(1, values.size + 1, dtype=np.float64)
            if x == "fraction":
                k = k / values.size
            label = f"{name} (erank {er:.2f}, IA {ia:.2f})"
            (line,) = ax.plot(k, values, label=label, **kwargs)
            self.lines_.append(line)
            positive = values[values > 0]
            if positive.size:
                smallest = min(smallest, positive.min())
        with warnings.catch_warnings():
            # an all-zero table (complete collapse) has nothing to show on a log
            # scale; its legend entry (erank 0, IA 0) says so.
            warnings.filterwarnings("ignore", message="Data has no positive values")
            ax.set_yscale("log")
        if ylim_bottom is None:
            ylim_bottom = (
                max(_NOISE_FLOOR, smallest * 0.5) if np.isfinite(smallest) else 1e-3
            )
        ax.set_ylim(bottom=ylim_bottom, top=1.5)
        ax.set_xlabel(
            "singular value index k"
            if x == "index"
            else "k / number of singular values"
        )
        ax.set_ylabel("normalised singular value σ_k / σ_1")
        ax.grid(True, which="major", alpha=0.3)
        if legend:
            ax.legend(loc="best", fontsize="small")
        self.ax_ = ax
        self.figure_ = fig
        return self

    @classmethod
    def from_embeddings(
        cls,
        embeddings,
        *,
        names=None,
        center=False,
        row_normalize=False,
        ax=None,
        **kwargs,
    ):
        """Plot the spectra of raw embedding tables.

        Parameters
        ----------
        embeddings : array-like of shape (n_samples, n_features), or a list/dict of them
            One table, a list of tables, or a dict of name -> table. Torch tensors
            and dask arrays are accepted as by :func:`~skcollapse.metrics.singular_values`.
        names : str or list of str, default=None
            Labels for a table or a list of tables (dict keys are used for a dict).
        center : bool, default=False
            Subtract the column mean first.
        row_normalize : bool, default=False
            L2-normalise rows first.
        {draw_params}

        {returns}
        """
        tables = _named_tables(embeddings, names)
        sigmas, eranks, ias = [], [], []
        for table in tables.values():
            sigma, er, ia = _spectrum_and_metrics(
                table, center=center, row_normalize=row_normalize
            )
            sigmas.append(sigma)
            eranks.append(er)
            ias.append(ia)
        disp = cls(
            singular_values=sigmas,
            names=list(tables),
            effective_ranks=eranks,
            information_abundances=ias,
        )
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        *,
        tables=None,
        name=None,
        center=False,
        row_normalize=False,
        ax=None,
        **kwargs,
    ):
        """Plot the spectra of a fitted estimator's embedding tables.

        The estimator is read only through ``get_embeddings()``, so any object
        following the embeddings protocol works.

        Parameters
        ----------
        estimator : estimator, list of estimators, or dict of name -> estimator
            Fitted model(s) with ``get_embeddings() -> dict[str, ndarray]``.
            Several estimators are drawn on the same axes.
        tables : str or list of str, default=None
            Which tables to draw (e.g. ``"item"``); all by default.
        name : str or list of str, default=None
            Label of the estimator (or one per estimator in a list); the class
            name by default. Ignored for a dict, whose keys are the names.
        center, row_normalize : bool, default=False
            As in :meth:`from_embeddings`.
        {draw_params}

        {returns}
        """
        if isinstance(estimator, Mapping):
            if not estimator:
                raise ValueError("estimator is an empty dict.")
            models = {str(k): v for k, v in estimator.items()}
        else:
            ests = (
                list(estimator) if isinstance(estimator, (list, tuple)) else [estimator]
            )
            if not ests:
                raise ValueError("estimator is an empty list.")
            if name is None:
                labels = [estimator_name(e) for e in ests]
                if len(set(labels)) != len(labels):
                    labels = [f"{lab} #{i}" for i, lab in enumerate(labels)]
            else:
                labels = [name] if isinstance(name, str) else [str(n) for n in name]
                if len(labels) != len(ests):
                    raise ValueError(
                        f"name has {len(labels)} entries but {len(ests)} estimators "
                        "were given."
                    )
            models = dict(zip(labels, ests, strict=True))
        named = {}
        wanted = [tables] if isinstance(tables, str) else tables
        for label, est in models.items():
            found = get_embedding_tables(est, wanted, name=label)
            for table_name, table in found.items():
                named[f"{label} {table_name}"] = table
        return cls.from_embeddings(
            named, center=center, row_normalize=row_normalize, ax=ax, **kwargs
        )
