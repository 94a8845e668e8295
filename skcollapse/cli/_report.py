"""The report of a run: comparison table (CSV, Markdown), plots (PNG), one HTML page.

:func:`write_report` is what ``skcollapse demo --report DIR`` calls; it only needs
the table of results and, for the plots, the fitted models (read through
``get_embeddings()`` and ``history``), so other commands can reuse it.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import numbers
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from skcollapse.cli import CLIError

#: Files every report holds, whatever the models.
TABLE_CSV = "results.csv"
TABLE_MARKDOWN = "results.md"
HTML_PAGE = "index.html"


# ------------------------------------------------------------------ the table
def _as_records(table):
    """Rows of a DataFrame / list of dicts as ``(columns, list of dicts)``."""
    if hasattr(table, "to_dict") and hasattr(table, "columns"):
        import pandas as pd

        frame = table
        if frame.empty:
            raise ValueError("table is empty; nothing to report.")
        if not (isinstance(frame.index, pd.RangeIndex) and frame.index.name is None):
            frame = frame.reset_index()  # a model-name index becomes a column
        columns = [str(c) for c in frame.columns]
        records = [
            {str(k): v for k, v in row.items()} for row in frame.to_dict("records")
        ]
        return columns, records
    if isinstance(table, (Mapping, str, bytes)):
        raise TypeError(
            "table must be a pandas DataFrame or a list of dicts (one per model), "
            f"got {type(table).__name__}."
        )
    records = list(table)
    if not records:
        raise ValueError("table is empty; nothing to report.")
    if not all(isinstance(r, Mapping) for r in records):
        raise TypeError("table must be a list of dicts (one per model).")
    columns = []
    for r in records:
        for key in r:
            if str(key) not in columns:
                columns.append(str(key))
    return columns, [{str(k): v for k, v in r.items()} for r in records]


def format_value(value) -> str:
    """Short text of a table cell (4 significant figures for floats)."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def _formatted(value, column, formats):
    """``format_value``, or the column's own format (e.g. ``"{:.2f}"``)."""
    fmt = (formats or {}).get(column)
    if fmt is not None and isinstance(value, numbers.Real) and not isinstance(
        value, (bool, np.bool_)
    ):
        return fmt.format(float(value))
    return format_value(value)


def markdown_table(columns, records, formats=None) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned.

    ``formats`` maps a column to its own format string (``{"fit s": "{:.2f}"}``)
    so that a column reads the same throughout; other numbers use
    :func:`format_value`.
    """

    def cell(text):
        return str(text).replace("|", "\\|").replace("\n", " ")

    numeric = [
        all(
            isinstance(r.get(c), numbers.Real) and not isinstance(r.get(c), bool)
            for r in records
            if r.get(c) is not None
        )
        for c in columns
    ]
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |"]
    lines.append("|" + "|".join("---:" if num else ":---" for num in numeric) + "|")
    for r in records:
        lines.append(
            "| "
            + " | ".join(cell(_formatted(r.get(c), c, formats)) for c in columns)
            + " |"
        )
    return "\n".join(lines) + "\n"


def _html_table(columns, records, formats=None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for r in records:
        cells = []
        for c in columns:
            v = r.get(c)
            cls = ' class="num"' if isinstance(v, numbers.Real) else ""
            cells.append(f"<td{cls}>{html.escape(_formatted(v, c, formats))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<table>\n<thead><tr>"
        + head
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>"
    )


# ------------------------------------------------------------------ the plots
def _new_figure(figsize):
    from matplotlib.figure import Figure

    # A bare Figure (no pyplot): no GUI backend, no global figure list to leak.
    return Figure(figsize=figsize, layout="constrained")


def _common_tables(models):
    """Table names present in every model, in the first model's order."""
    from skcollapse.metrics import get_embedding_tables

    names = None
    for model in models.values():
        tables = list(get_embedding_tables(model))
        names = tables if names is None else [n for n in names if n in tables]
    return names or []


def _spectrum_plots(models, directory):
    from skcollapse.plotting import SpectrumDisplay

    written = {}
    for table in _common_tables(models):
        fig = _new_figure((7.5, 4.8))
        ax = fig.subplots()
        SpectrumDisplay.from_estimator(models, tables=table, ax=ax)
        ax.set_title(f"Singular spectrum of the {table} embeddings")
        path = directory / f"spectrum_{_slug(table)}.png"
        fig.savefig(path, dpi=110)
        written[f"spectrum_{table}"] = path
    return written


def _projection_plot(models, directory, interactions, table):
    from skcollapse.metrics import get_embedding_tables
    from skcollapse.plotting import EmbeddingProjectionDisplay

    names = [n for n, m in models.items() if table in get_embedding_tables(m)]
    if not names:
        return {}
    n_cols = min(3, len(names))
    n_rows = math.ceil(len(names) / n_cols)
    fig = _new_figure((4.6 * n_cols, 3.9 * n_rows))
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    disp = None
    for ax, name in zip(axes, names, strict=False):
        disp = EmbeddingProjectionDisplay.from_estimator(
            models[name],
            interactions,
            table=table,
            name=name,
            ax=ax,
            max_points=3000,
            colorbar=False,
        )
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    if disp is not None and disp.popularity is not None:
        # same interactions for every panel, hence one colour scale and one bar
        bar = fig.colorbar(disp.scatter_, ax=list(axes[: len(names)]), shrink=0.8)
        bar.set_label("popularity (training interactions)")
    fig.suptitle(f"{table} embeddings on their two principal axes (colour: popularity)")
    path = directory / f"projection_{_slug(table)}.png"
    fig.savefig(path, dpi=110)
    return {f"projection_{table}": path}


def _history_plot(models, directory):
    from skcollapse.metrics import metric_of_column
    from skcollapse.plotting import CollapseHistoryDisplay

    runs, metrics = {}, set()
    for name, model in models.items():
        history = getattr(model, "history", None)
        if not history:
            continue
        found = {metric_of_column(k) for row in history for k in row} - {None}
        if found:
            metrics |= found
            # a skorch net itself, so that its monitor's initial values show too
            runs[name] = model if hasattr(model, "get_params") else history
    if not runs:
        return {}
    n_metrics = len(metrics)
    columns = None
    if len(runs) > 3:
        # many runs: the item table only (the one that collapses), if all have it
        wanted = [f"{m}_item" for m in sorted(metrics)]
        if all(
            all(any(c in row for row in getattr(h, "history", h)) for c in wanted)
            for h in runs.values()
        ):
            columns = wanted
    fig = _new_figure((5.4 * n_metrics + 2.2, 4.2))
    axes = fig.subplots(1, n_metrics, squeeze=False).ravel()
    CollapseHistoryDisplay.from_histories(runs, columns=columns, ax=axes)
    fig.suptitle("Collapse during training")
    path = directory / "history.png"
    fig.savefig(path, dpi=110)
    return {"history": path}


def _slug(text) -> str:
    out = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))
    return out.strip("_") or "table"


# ------------------------------------------------------------------ the page
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.meta dt { font-weight: 600; }
"""

_CAPTIONS = {
    "spectrum": (
        "Normalised singular values of each model's {table} table (log scale). "
        "A curve that drops after a few values is a collapsed table; erank and "
        "IA in the legend summarise it."
    ),
    "projection": (
        "Each {table} embedding projected on the table's two principal axes, "
        "coloured by its number of training interactions. Points on a line "
        "(PC 1 near 100%) mean complete collapse."
    ),
    "history": "Effective rank and information abundance after each epoch.",
    "popularity": (
        "Row norm of each {table} embedding against its number of training "
        "interactions, coloured by popularity bucket (head, torso, tail); the "
        "legend gives each bucket's erank and IA. Norms that grow with popularity "
        "and a low-erank head are the popularity side of collapse."
    ),
}


def _caption(key):
    kind, _, table = key.partition("_")
    return _CAPTIONS.get(kind, "").format(table=table)


def _html_page(title, meta, columns, records, figures, notes, formats=None):
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if meta:
        parts.append('<dl class="meta">')
        for key, value in meta.items():
            parts.append(
                f"<dt>{html.escape(str(key))}</dt><dd>{html.escape(str(value))}</dd>"
            )
        parts.append("</dl>")
    parts.append("<h2>Results</h2>")
    parts.append(_html_table(columns, records, formats))
    parts.append(
        f'<p>Also as <a href="{TABLE_CSV}">CSV</a> and '
        f'<a href="{TABLE_MARKDOWN}">Markdown</a>.</p>'
    )
    for note in notes:
        parts.append(f"<p>{html.escape(note)}</p>")
    if figures:
        parts.append("<h2>Plots</h2>")
    for key, path in figures.items():
        name = html.escape(Path(path).name)
        parts.append(
            f'<figure id="{html.escape(_slug(key))}"><img src="{name}" '
            f'alt="{html.escape(key)}"><figcaption>{html.escape(_caption(key))}'
            "</figcaption></figure>"
        )
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


# ------------------------------------------------------------------ popularity
#: Columns of :func:`popularity_report_section`'s table.
POPULARITY_COLUMNS = (
    "model",
    "corr(norm, log pop)",
    "top dir. vs pop",
    "top dir. vs pop (centered)",
    "weighted unif.",
    "erank head",
    "erank torso",
    "erank tail",
    "IA head",
    "IA torso",
    "IA tail",
)


def popularity_report_section(models, interactions, directory, *, table="item"):
    """The popularity part of a report: one table row and one panel per model.

    Parameters
    ----------
    models : dict of str to fitted estimator
        The models by row label (e.g. ``{"MF": mf, "MF + DirectSpec": mf_ds}``).
    interactions : array-like of shape (n_interactions, 2)
        The training pairs; popularity is counted from them through each
        model's id vocabulary.
    directory : str or Path
        Folder the figure is written into (it must exist).
    table : str, default="item"
        Which table of ``get_embeddings()``.

    Returns
    -------
    section : dict
        ``"columns"`` (:data:`POPULARITY_COLUMNS`), ``"records"`` (one dict per
        model), ``"markdown"`` (the table as Markdown) and ``"figures"``
        (``{"popularity_<table>": path}``).
    """
    from matplotlib.figure import Figure

    from skcollapse.metrics import popularity_collapse
    from skcollapse.plotting import PopularityCollapseDisplay

    records = []
    names = list(models)
    n_cols = min(3, max(1, len(names)))
    n_rows = -(-len(names) // n_cols)
    fig = Figure(figsize=(5.2 * n_cols, 4.4 * n_rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        model = models[name]
        res = popularity_collapse(model, interactions, table=table)
        b = res["buckets"]
        records.append({
            "model": name,
            "corr(norm, log pop)": res["norm_popularity_correlation"],
            "top dir. vs pop": res["popularity_alignment"],
            "top dir. vs pop (centered)": res["popularity_alignment_centered"],
            "weighted unif.": res["weighted_uniformity"],
            **{f"erank {k}": b[k]["erank"] for k in ("head", "torso", "tail")},
            **{f"IA {k}": b[k]["ia"] for k in ("head", "torso", "tail")},
        })
        PopularityCollapseDisplay.from_estimator(
            model, interactions, table=table, name=name, ax=ax, max_points=3000
        )
    for ax in axes[len(names):]:
        ax.set_visible(False)
    path = Path(directory) / f"popularity_{table}.png"
    fig.savefig(path, dpi=110)
    lines = ["| " + " | ".join(POPULARITY_COLUMNS) + " |",
             "|:---|" + "---:|" * (len(POPULARITY_COLUMNS) - 1)]
    for r in records:
        cells = [r["model"]] + [f"{r[c]:.4g}" for c in POPULARITY_COLUMNS[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return {
        "columns": list(POPULARITY_COLUMNS),
        "records": records,
        "markdown": "\n".join(lines) + "\n",
        "figures": {f"popularity_{table}": path},
    }


# ------------------------------------------------------------------ entry point
def write_report(
    directory,
    table,
    *,
    models=None,
    interactions=None,
    title="skcollapse report",
    meta=None,
    notes=(),
    projection_table="item",
    formats=None,
):
    """Write the comparison table, the plots and an HTML page into ``directory``.

    Parameters
    ----------
    directory : str or Path
        Output folder; created (with parents) when missing. Existing report files
        in it are overwritten.
    table : pandas.DataFrame or list of dict
        One row per model: the numbers of the run.
    models : dict of str -> fitted estimator, default=None
        The models behind the rows, read through ``get_embeddings()`` (and
        ``history`` for the training curves). Without them only the table is
        written.
    interactions : array-like of shape (n_interactions, 2), default=None
        Training interactions (user id, item id); colours the projection by
        item popularity.
    title : str, default="skcollapse report"
        Page title.
    meta : dict, default=None
        Facts about the run shown above the table (command, data, seed, ...).
    notes : sequence of str, default=()
        Paragraphs shown under the table.
    projection_table : str or None, default="item"
        Table projected in 2-D; None skips the projection plot.
    formats : dict of str -> str, default=None
        Format strings of columns in the Markdown and HTML tables (see
        :func:`markdown_table`).

    Returns
    -------
    files : dict of str -> Path
        Every file written, by role: ``"csv"``, ``"markdown"``, ``"html"`` and
        one entry per plot (``"spectrum_item"``, ``"projection_item"``,
        ``"history"``, ...).
    """
    check_report_dir(directory)
    directory = Path(directory)
    columns, records = _as_records(table)
    if models is not None and not isinstance(models, Mapping):
        raise TypeError(
            f"models must be a dict of name -> fitted estimator, got "
            f"{type(models).__name__}."
        )
    directory.mkdir(parents=True, exist_ok=True)
    files = {}

    import pandas as pd

    csv_path = directory / TABLE_CSV
    pd.DataFrame.from_records(records, columns=columns).to_csv(csv_path, index=False)
    files["csv"] = csv_path
    md_path = directory / TABLE_MARKDOWN
    md_path.write_text(
        f"# {title}\n\n" + markdown_table(columns, records, formats),
        encoding="utf-8",
    )
    files["markdown"] = md_path

    figures = {}
    if models:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CLIError(
                "the report's plots need matplotlib: pip install skcollapse[plot]"
            ) from None
        figures.update(_spectrum_plots(models, directory))
        if projection_table is not None:
            figures.update(
                _projection_plot(models, directory, interactions, projection_table)
            )
        figures.update(_history_plot(models, directory))
        if interactions is not None and projection_table is not None:
            section = popularity_report_section(
                models, interactions, directory, table=projection_table
            )
            figures.update(section["figures"])
    files.update(figures)

    meta = dict(meta or {})
    meta.setdefault(
        "written", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    )
    page = _html_page(title, meta, columns, records, figures, list(notes), formats)
    html_path = directory / HTML_PAGE
    html_path.write_text(page, encoding="utf-8")
    files["html"] = html_path
    return files


# ------------------------------------------------------------------ demo hook
def check_report_dir(directory):
    """Fail early when ``directory`` cannot hold a report."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CLIError(f"report directory {directory} exists and is not a directory")
    parent = next((p for p in [directory, *directory.parents] if p.exists()), None)
    if parent is not None and not os.access(parent, os.W_OK):
        raise CLIError(f"report directory {directory}: {parent} is not writable")


def add_report_argument(parser):
    """Add ``--report DIR`` to a sub-command's parser."""
    parser.add_argument(
        "--report",
        metavar="DIR",
        help="also write the table (CSV, Markdown), plots (PNG) and an HTML page "
        "showing them into DIR",
    )


def report_callbacks():
    """Callbacks a reported run trains with: the per-epoch collapse monitor."""
    from skcollapse.callbacks import CollapseMonitor

    return [CollapseMonitor(record_initial=True)]


def write_demo_report(args, rows, columns, models, train, *, data=None, quiet=None):
    """Write the report of ``skcollapse demo`` into ``args.report``.

    Parameters
    ----------
    args : argparse.Namespace
        The demo's arguments (``report``, ``dataset``, ``users``, ``items``,
        ``epochs``, ``seed``, ``device``, ``quiet``).
    rows : list of dict
        The printed table, one dict per row.
    columns : list of str
        Column order of the table.
    models : dict of str -> fitted estimator
        The trained models by row label.
    train : ndarray of shape (n_interactions, 2)
        Training interactions (colour the projections by popularity).
    data : str or None, default=None
        Where the interactions come from; ``None`` describes the synthetic data
        from ``args.users``/``args.items``.
    quiet : bool, default=None
        Print nothing; ``args.quiet`` by default.

    Returns
    -------
    files : dict of str -> Path
    """
    table = [{c: row.get(c) for c in columns} for row in rows]
    command = ["skcollapse", "demo"]
    for flag in ("dataset", "users", "items", "epochs", "seed", "device"):
        value = getattr(args, flag, None)
        if value is not None and not (flag == "dataset" and value == "synthetic"):
            command += [f"--{flag}", str(value)]
    if data is None:
        data = (
            f"make_interactions({getattr(args, 'users', '?')} users, "
            f"{getattr(args, 'items', '?')} items, seed {getattr(args, 'seed', '?')})"
        )
    meta = {
        "command": " ".join([*command, "--report", str(args.report)]),
        "data": f"{data}, {len(train)} training interactions, per-user 80/20 split",
        "device": getattr(args, "device", "cpu"),
    }
    notes = [
        (
            "Recall, NDCG and coverage are measured on the held-out interactions "
            "(items seen in training excluded). erank and IA are the effective rank "
            "and information abundance of the fitted tables: larger means less "
            "collapse (at most the embedding size). Fit times include the per-epoch "
            "collapse monitor that feeds the training-curve plot."
        ),
    ]
    files = write_report(
        args.report,
        table,
        models=models,
        interactions=train,
        title="skcollapse demo",
        meta=meta,
        notes=notes,
        formats={"fit s": "{:.2f}"},
    )
    if not (args.quiet if quiet is None else quiet):
        print(f"report written to {files['html']}", file=sys.stderr)
    return files
