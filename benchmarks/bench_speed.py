"""Training speed of skcollapse against its peers, in one run (issue 27's targets).

Every figure is the median seconds per training epoch over ``--epochs`` epochs
that follow one warm-up epoch (not counted), and every claim is a ratio to a
baseline timed in the same run, on the same data, with the same torch/BLAS
threads (``--threads``, also implicit's ``num_threads`` and RecBole's). All
models use d=64, batches of 2048 pairs and BPR with one negative per training
pair, so an epoch is one sampled triple per training pair (implicit's BPR
epoch). skcollapse is timed as a user runs it: a plain ``fit`` with
``max_epochs=epochs + 1``, each epoch's seconds read from skorch's history
(``dur``; no validation split, so nothing but training is in it).

Parts (``--parts``), each on every data set of ``--datasets``:

``mf``
    One MF-BPR epoch of implicit's ``BayesianPersonalizedRanking``
    (``implicit.cpu.bpr``, factors=64, its default learning rate and
    regularisation), of a lean PyTorch loop (``_lean.LeanMF``:
    ``nn.Embedding(sparse=True)``, ``SparseAdam``, uniform negatives) and of
    ``MFRecommender(embedding_dim=64, batch_size=2048, n_negatives=1)``.
    implicit's epochs are timed inside one ``fit(iterations=epochs + 1)``
    through its per-epoch ``callback`` (refitting with ``iterations=1`` would
    re-initialise the factors and count set-up every time); the gaps between
    consecutive callbacks are the epochs. Prints skcollapse/implicit (target
    <= 3) and skcollapse/lean (target <= 0.5), each implementation's training
    loss (implicit: its training AUC) per epoch, and, unless ``--no-recall``,
    the Recall@20 on the test split of the three after the same epochs, by
    the same full-ranking code (``_lean.lean_eval``). implicit differs in
    more than speed: lock-free SGD over positives drawn with replacement,
    negatives drawn from the interactions (by popularity) and skipped when
    observed, and a bias column beside its 64 factors.
``regularizers``
    ``MFRecommender`` as above with ``regularizer=`` each registered name at
    its defaults (``--regularizers``; all of
    ``skcollapse.regularizers.get_regularizer_names()`` by default) next to
    ``regularizer=None``; targets <= 1.5x None for logdet, sv_variance,
    coding_rate, uniformity, directau and dbn, <= 3x for directspec and
    directspec+ (issue 27 sets them on Gowalla; ML-100k is reported too).
``lightgcn``
    One LightGCN epoch (3 layers) of ``LightGCNRecommender``, of a lean loop
    (``_lean.LeanLightGCN``: the normalised adjacency as a torch sparse CSR
    matrix, dense Adam; autograd differentiates ``torch.sparse.mm``, which
    transposes the adjacency in every backward, where skcollapse uses its
    symmetry) and of RecBole's LightGCN, which runs in its own venv
    (``benchmarks/peers/setup_recbole.sh``) through
    ``benchmarks/peers/recbole_lightgcn.py`` on the same training pairs
    written as RecBole atomic files in a temporary folder. Targets:
    skcollapse/RecBole <= 0.5, skcollapse/lean <= 1.0. Without that venv the
    RecBole row is skipped, and the reason printed.

``--repeats R`` repeats each part's fits R times (seeds 0..R-1), the
implementations interleaved, and takes the median over all timed epochs.

Data (``DATA_DIR`` is the eval-data folder): ``gowalla`` is the LightGCN split
(``gowalla/train.txt``, ``test.txt``; ``--users N`` keeps a random N users, for
quick looks only); ``ml-100k`` is ``ml-100k/u.data``, per-user 80/20 (seed 0),
training on the 80%. Ids are re-indexed to 0..n-1 for every implementation.

Results: one JSON file per (part, data set), ``benchmarks/results/speed/
<part>/<dataset>.json`` (``SKCOLLAPSE_BENCH_RESULTS`` redirects them), with
each epoch's seconds, the medians, ratios, targets, versions, commit and data
checksums (``benchmarks/_results.py``).

Usage::

    python benchmarks/bench_speed.py ../shared/eval-data \\
        [--parts mf regularizers lightgcn] [--datasets gowalla ml-100k] \\
        [--epochs 3] [--threads 2] [--repeats 1] [--regularizers logdet ...] \\
        [--users N] [--no-recall] [--recbole-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import _results
from _lean import LeanLightGCN, LeanMF, lean_eval
from bench_regularizers import load_gowalla, load_ml100k
from skorch.callbacks import Callback

from skcollapse.recommenders import LightGCNRecommender, MFRecommender
from skcollapse.regularizers import get_regularizer_names

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")

DIM, BATCH, LAYERS = 64, 2048, 3
DATASETS = ("gowalla", "ml-100k")
PARTS = ("mf", "regularizers", "lightgcn")
RECBOLE_PYTHON = HERE / "peers" / ".venv-recbole" / "bin" / "python"
RECBOLE_RUNNER = HERE / "peers" / "recbole_lightgcn.py"

# issue 27's targets: (numerator, denominator) -> largest ratio
MF_TARGETS = {"implicit": 3.0, "lean": 0.5}
LIGHTGCN_TARGETS = {"recbole": 0.5, "lean": 1.0}
REG_TARGETS = {
    **dict.fromkeys(
        ("logdet", "sv_variance", "coding_rate", "uniformity", "directau", "dbn"), 1.5
    ),
    "directspec": 3.0,
    "directspec+": 3.0,
}


# ------------------------------------------------------------------------ data
def load(name, data_dir, users):
    """``(train, test, n_users, n_items, description, files)``, ids 0..n-1."""
    if name == "gowalla":
        train, test, desc = load_gowalla(str(data_dir), users)
        files = [data_dir / "gowalla" / "train.txt", data_dir / "gowalla" / "test.txt"]
    elif name == "ml-100k":
        train, test, desc = load_ml100k(str(data_dir))
        files = [data_dir / "ml-100k" / "u.data"]
    else:
        raise SystemExit(f"unknown data set {name!r}; choose from {DATASETS}")
    both = np.concatenate([train, test])[:, :2]
    _, u = np.unique(both[:, 0], return_inverse=True)
    _, i = np.unique(both[:, 1], return_inverse=True)
    pairs = np.column_stack([u.ravel(), i.ravel()]).astype(np.int64)
    train, test = pairs[: len(train)], pairs[len(train) :]
    return train, test, int(u.max()) + 1, int(i.max()) + 1, desc, files


def csr(pairs, n_users, n_items):
    return sp.csr_matrix(
        (np.ones(pairs.shape[0], dtype=np.float32), (pairs[:, 0], pairs[:, 1])),
        shape=(n_users, n_items),
    )


# ---------------------------------------------------------------------- timing
class _EpochCPU(Callback):
    """CPU seconds of each epoch (this process, all threads) as ``cpu_dur``."""

    def on_epoch_begin(self, net, **kwargs):
        self._c = time.process_time()

    def on_epoch_end(self, net, **kwargs):
        net.history.record("cpu_dur", time.process_time() - self._c)


class Timing:
    """Each timed epoch's wall and CPU seconds, and one loss trend, per row."""

    def __init__(self):
        self.wall, self.cpu, self.trend, self.fit_s, self.note = {}, {}, {}, {}, {}

    def add(self, row, wall, cpu, trend=None, fit_s=None):
        self.wall.setdefault(row, []).extend(float(t) for t in wall)
        self.cpu.setdefault(row, []).extend(float(t) for t in cpu)
        if trend is not None:
            self.trend[row] = [float(v) for v in trend]
        if fit_s is not None:
            self.fit_s.setdefault(row, []).append(float(fit_s))

    def median(self, row, cpu=False):
        values = (self.cpu if cpu else self.wall).get(row)
        return statistics.median(values) if values else float("nan")

    def record(self):
        return {
            row: {
                "epoch_s": self.wall[row],
                "epoch_cpu_s": self.cpu[row],
                "median_s": self.median(row),
                "median_cpu_s": self.median(row, cpu=True),
                "fit_s": self.fit_s.get(row),
                "trend": self.trend.get(row),
                "note": self.note.get(row),
            }
            for row in self.wall
        }


def fit_skcollapse(cls, train, args, seed, **params):
    """Fit as a user would; (fitted model, timed epochs' wall and CPU s, fit s)."""
    model = cls(embedding_dim=DIM, batch_size=BATCH, n_negatives=1,
                max_epochs=args.epochs + 1, random_state=seed,
                callbacks=[("epoch_cpu", _EpochCPU())], **params)
    t0 = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - t0
    hist = model.history
    return model, hist[1:, "dur"], hist[1:, "cpu_dur"], fit_s


def skcollapse_tables(model, n_users, n_items):
    """The fitted tables as rows 0..n-1 of the (re-indexed) ids."""
    emb = model.get_embeddings()
    U = np.zeros((n_users, emb["user"].shape[1]), dtype=np.float32)
    I = np.zeros((n_items, emb["item"].shape[1]), dtype=np.float32)
    U[np.asarray(model.user_ids_)] = emb["user"]
    I[np.asarray(model.item_ids_)] = emb["item"]
    return U, I


def run_lean(make, epochs):
    """Build a lean loop, run a warm-up epoch and ``epochs`` timed ones.

    Returns (the loop, timed epochs' wall and CPU s, losses, s from build to end).
    """
    wall, cpu, losses = [], [], []
    t_fit = time.perf_counter()
    lean = make()
    for e in range(epochs + 1):
        t, c = time.perf_counter(), time.process_time()
        losses.append(lean.epoch())
        if e:
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return lean, wall, cpu, losses, time.perf_counter() - t_fit


def run_implicit(R, args, seed):
    """implicit's BPR, ``epochs + 1`` epochs in one fit, timed by its callback.

    Returns (timed epochs' wall and CPU s, training AUC per epoch, fit s, model).
    """
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    model = BayesianPersonalizedRanking(
        factors=DIM, iterations=args.epochs + 1, num_threads=args.threads,
        random_state=seed,
    )
    stamps, auc = [], []

    def callback(epoch, elapsed, correct, skipped):
        stamps.append((time.perf_counter(), time.process_time()))
        auc.append(correct / max(R.nnz - skipped, 1))

    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(R, show_progress=False, callback=callback)
    fit_s = time.perf_counter() - t0
    walls = np.diff([t0] + [s[0] for s in stamps])
    cpus = np.diff([c0] + [s[1] for s in stamps])
    return walls[1:], cpus[1:], auc, fit_s, model


def run_recbole(train, test, name, args, lr, seed):
    """RecBole's LightGCN in its venv; (result dict, None) or (None, reason)."""
    python = Path(args.recbole_python)
    if not python.exists():
        return None, (f"no RecBole venv at {python} (create it with "
                      "benchmarks/peers/setup_recbole.sh)")
    # a name of its own: RecBole reads its bundled copy for names it ships (ml-100k)
    name = "speed_" + name.replace("-", "_")
    with tempfile.TemporaryDirectory(prefix="recbole-") as tmp:
        folder = Path(tmp) / name
        folder.mkdir()
        # RecBole needs train/valid/test parts; valid is a copy of test (unused)
        for part, pairs in (("train", train), ("valid", test), ("test", test)):
            with open(folder / f"{name}.{part}.inter", "w") as fh:
                fh.write("user_id:token\titem_id:token\n")
                np.savetxt(fh, pairs, fmt="%d", delimiter="\t")
        cmd = [str(python), str(RECBOLE_RUNNER), tmp, name,
               "--epochs", str(args.epochs), "--dim", str(DIM),
               "--layers", str(LAYERS), "--batch-size", str(BATCH),
               "--lr", str(lr), "--threads", str(args.threads), "--seed", str(seed)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        tail = "\n    ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        return None, f"the RecBole runner failed (exit {proc.returncode}):\n    {tail}"
    return json.loads(lines[-1]), None


# ---------------------------------------------------------------------- output
def verdict(ratio, target):
    if target is None:
        return ""
    if not np.isfinite(ratio):
        return f"target <= {target:g}x: no figure"
    return f"target <= {target:g}x: {'meets' if ratio <= target else 'misses'}"


def fmt_trend(values, label):
    if not values:
        return ""
    shown = ", ".join(f"{v:.4f}" for v in values)
    return f"{label} per epoch {shown}"


def print_rows(timing, rows, base=None):
    """A table of s/epoch (wall, CPU) per row, ratios to ``base`` if given."""
    head = f"    {'':<34} {'s/epoch':>9} {'CPU s':>9} {'fit s':>8}"
    if base:
        head += f" {'x ' + base:>12}"
    print(head)
    for row, label in rows:
        if row not in timing.wall:
            print(f"    {label:<34} {'skipped: ' + timing.note.get(row, '')}")
            continue
        fit = timing.fit_s.get(row)
        line = (f"    {label:<34} {timing.median(row):>9.3f} "
                f"{timing.median(row, cpu=True):>9.3f} "
                f"{statistics.median(fit) if fit else float('nan'):>8.1f}")
        if base:
            line += f" {timing.median(row) / timing.median(base):>12.2f}"
        print(line, flush=True)


def write(part, dataset, record, files, args):
    record = {
        "benchmark": "bench_speed",
        "part": part,
        "dataset": dataset,
        "config": {
            "embedding_dim": DIM, "batch_size": BATCH, "n_negatives": 1,
            "epochs_timed": args.epochs, "warmup_epochs": 1,
            "repeats": args.repeats, "threads": args.threads, "users": args.users,
            "load_before": args.load_before,
            "load_at_write": os.getloadavg()[0],
        },
        **record,
        "meta": _results.run_metadata([str(f) for f in files]),
    }
    path = _results.write_result(os.path.join("speed", part, f"{dataset}.json"),
                                 record)
    rel = os.path.relpath(path)
    print(f"    wrote {path if rel.startswith('..') else rel}")


# ----------------------------------------------------------------------- parts
def bench_mf(data, dataset, args):
    import implicit

    train, test, n_users, n_items, _, files = data
    R = csr(train, n_users, n_items)
    lr = MFRecommender().lr
    timing = Timing()
    for seed in range(args.repeats):
        wall, cpu, auc, fit_s, imp = run_implicit(R, args, seed)
        timing.add("implicit", wall, cpu, auc, fit_s)
        lean, wall, cpu, losses, fit_s = run_lean(
            partial(LeanMF, train, n_users, n_items, dim=DIM, batch_size=BATCH,
                    lr=lr, seed=seed),
            args.epochs)
        timing.add("lean", wall, cpu, losses, fit_s)
        model, wall, cpu, fit_s = fit_skcollapse(MFRecommender, train, args, seed)
        timing.add("skcollapse", wall, cpu, model.history[:, "train_loss"], fit_s)
    tables = {
        "implicit": (imp.user_factors, imp.item_factors),
        "lean": lean.tables(),
        "skcollapse": skcollapse_tables(model, n_users, n_items),
    }
    print(f"\n[mf] MF-BPR epoch, {dataset}: {train.shape[0]} training pairs = "
          f"triples per epoch, d={DIM}, batch {BATCH}, 1 negative")
    print_rows(timing, [
        ("implicit", f"implicit {implicit.__version__} BPR ({args.threads} thr)"),
        ("lean", "lean PyTorch loop (SparseAdam)"),
        ("skcollapse", "skcollapse MFRecommender"),
    ])
    ratios = {}
    for base, target in MF_TARGETS.items():
        ratios[base] = timing.median("skcollapse") / timing.median(base)
        print(f"    skcollapse / {base:<9} {ratios[base]:>7.2f}x   "
              f"{verdict(ratios[base], target)}")
    print("    " + fmt_trend(timing.trend["implicit"], "implicit train AUC"))
    print("    " + fmt_trend(timing.trend["lean"], "lean loss"))
    print("    " + fmt_trend(timing.trend["skcollapse"], "skcollapse loss"))
    recall = {}
    if not args.no_recall:
        train_csr, test_csr = csr(train, n_users, n_items), csr(test, n_users, n_items)
        for row, (U, I) in tables.items():
            _, recall[row], _ = lean_eval(U, I, train_csr, test_csr)
        print(f"    Recall@20 on test after {args.epochs + 1} epochs: " + ", ".join(
            f"{row} {value:.4f}" for row, value in recall.items()))
    write("mf", dataset, {
        "rows": timing.record(), "ratios": ratios, "targets": MF_TARGETS,
        "implicit_version": implicit.__version__,
        "recall@20": recall, "lr": {"implicit": imp.learning_rate, "lean": lr,
                                    "skcollapse": lr},
    }, files, args)


def bench_regularizers(data, dataset, args):
    train, _, _, _, _, files = data
    configs = [None, *args.regularizers]
    timing = Timing()
    for seed in range(args.repeats):
        for reg in configs:
            row = reg or "None"
            try:
                model, wall, cpu, fit_s = fit_skcollapse(
                    MFRecommender, train, args, seed, regularizer=reg)
            except (RuntimeError, ValueError) as exc:  # e.g. ModelFitError: go on
                timing.note[row] = f"{type(exc).__name__}: {exc}"
                continue
            timing.add(row, wall, cpu, model.history[:, "train_loss"], fit_s)
    print(f"\n[regularizers] MFRecommender epoch with each regularizer at its "
          f"defaults, {dataset}: {train.shape[0]} training pairs, d={DIM}, "
          f"batch {BATCH}, 1 negative")
    print(f"    {'regularizer':<14} {'s/epoch':>9} {'x None':>7} {'CPU s':>9} "
          f"{'x None':>7}  target")
    ratios = {}
    for reg in configs:
        row = reg or "None"
        if row not in timing.wall:
            print(f"    {row:<14} failed: {timing.note.get(row)}")
            continue
        ratio = timing.median(row) / timing.median("None")
        cpu_ratio = timing.median(row, cpu=True) / timing.median("None", cpu=True)
        ratios[row] = ratio
        target = REG_TARGETS.get(reg)
        print(f"    {row:<14} {timing.median(row):>9.3f} {ratio:>7.2f} "
              f"{timing.median(row, cpu=True):>9.3f} {cpu_ratio:>7.2f}  "
              + ("(baseline)" if reg is None else verdict(ratio, target)
                 or "(no target)"), flush=True)
    write("regularizers", dataset, {
        "rows": timing.record(), "ratios": ratios,
        "targets": {k: v for k, v in REG_TARGETS.items() if k in ratios},
    }, files, args)


def bench_lightgcn(data, dataset, args):
    train, test, n_users, n_items, _, files = data
    lr = LightGCNRecommender().lr
    timing, versions = Timing(), None
    for seed in range(args.repeats):
        model, wall, cpu, fit_s = fit_skcollapse(
            LightGCNRecommender, train, args, seed, n_layers=LAYERS)
        timing.add("skcollapse", wall, cpu, model.history[:, "train_loss"], fit_s)
        _, wall, cpu, losses, fit_s = run_lean(
            partial(LeanLightGCN, train, n_users, n_items, dim=DIM,
                    n_layers=LAYERS, batch_size=BATCH, lr=lr, seed=seed),
            args.epochs)
        timing.add("lean", wall, cpu, losses, fit_s)
        if args.no_recbole:
            timing.note["recbole"] = "--no-recbole"
            continue
        out, reason = run_recbole(train, test, dataset, args, lr, seed)
        if out is None:
            timing.note["recbole"] = reason
            continue
        timing.add("recbole", out["epoch_s"], out["epoch_cpu_s"], out["loss"],
                   out["setup_s"] + out["warmup_s"] + sum(out["epoch_s"]))
        versions = out["versions"]
    print(f"\n[lightgcn] LightGCN epoch ({LAYERS} layers), {dataset}: "
          f"{train.shape[0]} training pairs, d={DIM}, batch {BATCH}, 1 negative, "
          f"lr {lr:g}")
    rec_label = (f"RecBole {versions['recbole']} LightGCN" if versions
                 else "RecBole LightGCN")
    print_rows(timing, [
        ("recbole", rec_label),
        ("lean", "lean CSR PyTorch loop (Adam)"),
        ("skcollapse", "skcollapse LightGCNRecommender"),
    ])
    ratios = {}
    for base, target in LIGHTGCN_TARGETS.items():
        if base not in timing.wall:
            print(f"    skcollapse / {base:<9} no figure ({base} skipped)")
            continue
        ratios[base] = timing.median("skcollapse") / timing.median(base)
        print(f"    skcollapse / {base:<9} {ratios[base]:>7.2f}x   "
              f"{verdict(ratios[base], target)}")
    for row in ("recbole", "lean", "skcollapse"):
        if row in timing.trend:
            print("    " + fmt_trend(timing.trend[row], f"{row} loss"))
    write("lightgcn", dataset, {
        "rows": timing.record(), "ratios": ratios, "targets": LIGHTGCN_TARGETS,
        "recbole_versions": versions, "lr": lr,
    }, files, args)


# ------------------------------------------------------------------------ main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path,
                        help="eval-data folder (gowalla/, ml-100k/)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--datasets", nargs="+", choices=DATASETS,
                        default=list(DATASETS))
    parser.add_argument("--epochs", type=int, default=3,
                        help="timed epochs, after one warm-up epoch")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads, implicit's and RecBole's too")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--regularizers", nargs="+", default=get_regularizer_names())
    parser.add_argument("--users", type=int, default=0,
                        help="Gowalla: keep a random N users (0: all)")
    parser.add_argument("--no-recall", action="store_true",
                        help="skip the Recall@20 of the mf part")
    parser.add_argument("--no-recbole", action="store_true")
    parser.add_argument("--recbole-python", default=str(RECBOLE_PYTHON))
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1:
        parser.error("--epochs and --repeats must be at least 1")
    unknown = set(args.regularizers) - set(get_regularizer_names())
    if unknown:
        parser.error(f"unknown regularizers {sorted(unknown)}; registered: "
                     f"{get_regularizer_names()}")
    torch.set_num_threads(args.threads)
    args.load_before = os.getloadavg()[0]
    print(f"bench_speed: torch {torch.__version__}, {args.threads} thread(s), load "
          f"{args.load_before:.1f} on {os.cpu_count()} cores; median s/epoch over "
          f"{args.epochs} epoch(s) after 1 warm-up, {args.repeats} repeat(s)",
          flush=True)
    benches = {"mf": bench_mf, "regularizers": bench_regularizers,
               "lightgcn": bench_lightgcn}
    for dataset in args.datasets:
        data = load(dataset, args.data_dir, args.users)
        print(f"\n== {dataset}: {data[4]}; {data[2]} users, {data[3]} items, "
              f"{data[0].shape[0]} training pairs", flush=True)
        for part in args.parts:
            benches[part](data, dataset, args)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
