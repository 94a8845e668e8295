"""The depth study's figure and table, from ``benchmarks/results/depth/`` only.

``depth_figure(records)`` draws, for each data set, the effective rank of the
propagated item and user tables after every epoch (epoch 0: before training)
and the validation NDCG@20, one colour per LightGCN depth: a thin line per
seed, a thick line for the mean over the seeds still training at that epoch
(early stopping ends seeds at different epochs), a dot at each seed's
validation-selected epoch. ``table_depth(dataset)`` is the
``depth-<dataset>`` table of ``make_tables.py``: per depth, the selected epoch,
validation and test accuracy (a paired test over users against one layer),
and the item/user erank before training, after the first epoch and at the
selected epoch.

Usage::

    python benchmarks/plot_depth.py [--out depth.png] [--datasets ml-100k citeulike]

``SKCOLLAPSE_BENCH_RESULTS`` points it at another results folder (a smoke run).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import _results

FOLDER = "depth"
TABLES = ("item", "user")


def read_depth(dataset=None):
    """Result files of the depth study, sorted by data set then depth."""
    recs = [r for r in _results.read_results(FOLDER)
            if r.get("benchmark") == "bench_depth"
            and (dataset is None or r["dataset"] == dataset)]
    return sorted(recs, key=lambda r: (r["dataset"], r["n_layers"]))


def _curve(seed_result, column):
    """Epochs 0..E and the values of ``column`` (epoch 0 from ``initial``)."""
    hist = seed_result.get("collapse_history") or {}
    values = hist.get(column)
    if not values:
        return np.array([]), np.array([])
    epochs = list(hist["epoch"])
    vals = [np.nan if v is None else v for v in values]
    init = (hist.get("initial") or {}).get(column)
    if init is not None:
        epochs, vals = [0, *epochs], [init, *vals]
    return np.asarray(epochs, dtype=float), np.asarray(vals, dtype=float)


def _valid_curve(seed_result):
    curve = seed_result.get("valid_curve") or []
    return np.arange(1, len(curve) + 1, dtype=float), np.asarray(curve, dtype=float)


def _mean_curve(curves):
    """Mean over the curves that reach each epoch (epochs are 0..E integers)."""
    top = max((int(e.max()) for e, _ in curves if e.size), default=-1)
    if top < 0:
        return np.array([]), np.array([])
    grid = np.arange(0, top + 1, dtype=float)
    total, count = np.zeros(grid.size), np.zeros(grid.size)
    for e, v in curves:
        ok = np.isfinite(v)
        idx = e[ok].astype(int)
        total[idx] += v[ok]
        count[idx] += 1
    keep = count > 0
    return grid[keep], total[keep] / count[keep]


def depth_figure(records, *, fig=None, figsize_per_panel=(4.6, 3.4)):
    """A matplotlib Figure: one row per data set, item erank, user erank and
    validation NDCG@20 against the epoch, one colour per depth.

    ``fig``: an empty figure to draw into (e.g. ``plt.figure()``, so that
    pyplot shows it); it is resized to the panels. By default a new
    :class:`~matplotlib.figure.Figure`, outside pyplot."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    datasets = sorted({r["dataset"] for r in records})
    if not datasets:
        raise ValueError("no depth result files to draw")
    depths = sorted({r["n_layers"] for r in records})
    cmap = colormaps["viridis"]
    colour = {L: cmap(0.85 * k / max(1, len(depths) - 1))
              for k, L in enumerate(depths)}
    n_cols = 3
    size = (figsize_per_panel[0] * n_cols, figsize_per_panel[1] * len(datasets))
    if fig is None:
        fig = Figure(figsize=size, layout="constrained")
    else:
        fig.set_size_inches(*size)
        fig.set_layout_engine("constrained")
    axes = np.atleast_2d(fig.subplots(len(datasets), n_cols, squeeze=False))
    for row, dataset in enumerate(datasets):
        recs = [r for r in records if r["dataset"] == dataset]
        for col, what in enumerate(("erank_item", "erank_user", "valid")):
            ax = axes[row, col]
            for r in recs:
                c = colour[r["n_layers"]]
                curves = []
                for s in r["seeds"]:
                    e, v = _valid_curve(s) if what == "valid" else _curve(s, what)
                    if not e.size:
                        continue
                    curves.append((e, v))
                    ax.plot(e, v, color=c, lw=0.7, alpha=0.45)
                    sel = s.get("epochs")
                    if sel is not None and sel in e:
                        ax.plot([sel], [v[list(e).index(sel)]], "o", color=c, ms=3.5)
                me, mv = _mean_curve(curves)
                if me.size:
                    n_seeds = len(curves)
                    ax.plot(me, mv, color=c, lw=2.0,
                            label=f"{r['n_layers']} layer{'s' * (r['n_layers'] != 1)}"
                                  f" ({n_seeds} seed{'s' * (n_seeds != 1)})")
            ax.set_xlabel("epoch (0: before training)" if what != "valid"
                          else "epoch")
            ax.set_ylabel({"erank_item": "item table effective rank",
                           "erank_user": "user table effective rank",
                           "valid": "validation NDCG@20"}[what])
            ax.set_title(f"{dataset}: " + {"erank_item": "item erank",
                                           "erank_user": "user erank",
                                           "valid": "validation NDCG@20"}[what],
                         fontsize="medium")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
            if col == 0:
                ax.legend(fontsize="small", title="LightGCN",
                          title_fontsize="small")
    dims = sorted({r["fixed_params"].get("embedding_dim") for r in records} - {None})
    fig.suptitle(
        "LightGCN depth and collapse: erank of the propagated tables per epoch "
        f"(d = {', '.join(map(str, dims))}; thin: seeds, thick: mean, dot: "
        "epoch chosen on validation)", fontsize="medium")
    return fig


# ------------------------------------------------------------------ the table
def _erank_cells(seeds, table):
    """Mean erank before training, after epoch 1 and at the selected epoch."""
    init, first, chosen = [], [], []
    for s in seeds:
        hist = s.get("collapse_history") or {}
        col = hist.get(f"erank_{table}") or []
        if (hist.get("initial") or {}).get(f"erank_{table}") is not None:
            init.append(hist["initial"][f"erank_{table}"])
        if col and col[0] is not None:
            first.append(col[0])
        at = (s.get("epochs") or 0) - 1
        if 0 <= at < len(col) and col[at] is not None:
            chosen.append(col[at])
    return " → ".join(f"{np.mean(v):.1f}" if v else "—" for v in (init, first, chosen))


def table_depth(dataset):
    """The ``depth-<dataset>`` table of ``make_tables.py``."""
    from make_tables import _verdict, pm

    recs = read_depth(dataset)
    if not recs:
        return "_No result files yet._\n"
    base = next((r for r in recs if r["n_layers"] == 1), None)
    lines = [
        ("| layers | epoch (per seed) | valid NDCG@20 | Recall@20 | NDCG@20 "
        "| vs 1 layer (NDCG@20) | item erank: init → 1st → chosen epoch "
        "| user erank: init → 1st → chosen epoch | seeds |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        seeds = r["seeds"]
        versus = ""
        if base is not None and r is not base:
            versus = _verdict(r, base)
        cells = [
            str(r["n_layers"]),
            ", ".join(str(s.get("epochs")) for s in seeds),
            f"{r['selection']['valid_score']:.4f}",
            pm([s["test"]["recall"] for s in seeds]),
            pm([s["test"]["ndcg"] for s in seeds]),
            versus,
            _erank_cells(seeds, "item"),
            _erank_cells(seeds, "user"),
            str(len(seeds)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="depth.png", help="PNG (or PDF) to write")
    parser.add_argument("--datasets", nargs="*", default=None)
    args = parser.parse_args(argv)
    records = read_depth()
    if args.datasets:
        records = [r for r in records if r["dataset"] in args.datasets]
    if not records:
        print(f"no depth result files under {_results.RESULTS}/{FOLDER}")
        return 1
    fig = depth_figure(records)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({len(records)} result files)")
    for dataset in sorted({r["dataset"] for r in records}):
        print(f"\n{dataset}\n{table_depth(dataset)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
