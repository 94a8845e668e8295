"""Multi-embedding scaling (Guo et al., ICML 2024) with the paper's protocol.

Usage::

    python benchmarks/bench_scaling.py [EVAL_DATA] [--datasets synthetic,frappe]
        [--models dnn,ipnn,nfwfm,xdeepfm,dcnv2,finalmlp] [--seeds 3]  (also: deepfm, fm)
        [--se-scales 1,2,3,4,10] [--me-scales 2,3,4] [--base-dim 10]
        [--nfwfm-base-dim 50] [--hidden 400,400] [--n-cross-layers 4]
        [--max-epochs 100] [--patience 3] [--n-rows N] [--device cpu]
        [--out results.csv]
    python benchmarks/bench_scaling.py --preregistered PLAN.json [--resume]
        [--n-jobs 2] [--threads 1] [--device cpu] [--allow-uncommitted-plan]

For every model: single embedding (SE) at ``embedding_dim = base * s`` for
``s`` in ``--se-scales`` and multi-embedding (ME) with ``M = s`` sets of
``base`` for ``s`` in ``--me-scales`` (ME at 1x *is* SE base, shared), each
fitted with :func:`skcollapse.model_selection.scaling_curve`: Adam lr 1e-3,
batch 2048, weight decay 1e-6, early stopping on validation AUC (patience 3,
best epoch restored), ``--seeds`` seeds. Prints, in the paper's table layout,
test AUC mean ± std over seeds and the mean per-field information abundance
(IA; ME sets concatenated, so SE ``s*K`` and ME ``s x K`` compare at equal
width), the per-field IA of DCNv2 at the largest common scale, and the
sub-embedding IA of DCNv2 (``sum_i IA(E_i->j)`` averaged over ``j``, the
paper's Fig. 4 quantity) for SE and ME.

Data sets:

* ``synthetic``: :func:`skcollapse.datasets.make_ctr` with the paper's
  mechanism: fields of low (2-10 codes) and high (100-1000 codes)
  cardinality, alternating, ``--n-planted`` pair interactions of rank
  ``--interaction-rank`` (the signal a larger embedding could capture),
  ``--n-spurious`` fields of ``--spurious-cardinality`` codes without any
  effect (the noise a larger embedding can memorise). A seeded random 8:1:1
  split (the paper's protocol). The defaults (200,000 rows, 8 fields, 4
  rank-8 pairs, 2 spurious fields of 500 codes; Bayes test AUC 0.922) are
  the setting in which ME's advantage shows, chosen after the 60,000-row
  results (rows are the only difference). With 60,000 rows
  (``--n-rows 60000``; Bayes test AUC 0.920) every model stays near 0.75 test
  AUC and ME is above SE beyond the seed noise in only 4 of 18 (model, scale)
  cells. An earlier pilot with rank-2 pairs, 30,000 rows and 3 spurious fields
  of 2,000 codes (Bayes test AUC 0.904) over-fitted by epoch 2-3 and put ME
  below SE at 4x beyond the seed noise for four of six models (DCNv2,
  FinalMLP, IPNN, xDeepFM; above for NFwFM).
* ``frappe``: ``EVAL_DATA/frappe``. **Only the validation and test files of
  the NFM/BARS split exist here: the model trains on the validation file (8:1
  train/validation split of it, for early stopping) and is tested on the test
  file.**
* ``criteo`` / ``avazu`` (GPU): ``--criteo PATH`` or ``--avazu PATH`` read
  the raw files with :func:`skcollapse.datasets.load_criteo` /
  ``load_avazu`` and use the paper's 8:1:1 split. The full experiment::

      python benchmarks/bench_scaling.py --datasets criteo --criteo train.txt \\
          --device cuda --seeds 3

  (defaults are the paper's sizes: base 10, NFwFM 50, MLP 400-400, 4 cross
  layers, up to 100 epochs with patience 3.)

Pre-registered run (``--preregistered benchmarks/preregistered/me_synthetic.json``):
the plan file fixes the data (``make_ctr``'s parameters), the models, scales,
seeds, sizes, training protocol and the decision rule; no other option may
change it (giving one is an error), only how it runs: ``--resume`` (skip the
cells whose result file exists, so the run can span sessions), ``--n-jobs``
(seeds fitted in parallel), ``--threads``, ``--device``, ``--only MODELS``
(run only these models' cells this time; the rest wait for a later
``--resume``). The cells of the plan's decisive scales run first, so a run
that stops early still completes the cells the verdict reads. The plan must be
committed and unmodified (``--allow-uncommitted-plan`` for smoke runs of a
temporary copy; recorded in every file). Each (model, SE/ME, scale) cell writes
``benchmarks/results/scaling-prereg/<model>-<se|me>-<scale>x.json``: the plan's
configuration, its SHA-256 and commit, the seeds, each seed's validation AUC per
epoch, selected epoch, test AUC and log loss, per-field IA and timings.
``benchmarks/tables_scaling.py`` makes the table and the verdict from these
files only.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _results
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.preprocessing import OrdinalEncoder

from skcollapse.datasets import load_libfm, make_ctr
from skcollapse.metrics import sub_embedding_ia
from skcollapse.model_selection import scaling_curve
from skcollapse.model_selection._scaling import _random_split
from skcollapse.recommenders import (
    DCNv2Classifier,
    DeepFMClassifier,
    DNNClassifier,
    FinalMLPClassifier,
    FMClassifier,
    IPNNClassifier,
    NFwFMClassifier,
    xDeepFMClassifier,
)

MODELS = {
    "dnn": DNNClassifier,
    "ipnn": IPNNClassifier,
    "nfwfm": NFwFMClassifier,
    "xdeepfm": xDeepFMClassifier,
    "dcnv2": DCNv2Classifier,
    "finalmlp": FinalMLPClassifier,
    # options (issue 31; bench_deepfm.py), not in the default run nor in Guo
    # et al.'s Table 1. FM has no MLP: the MLP sizes are not given to it
    "deepfm": DeepFMClassifier,
    "fm": FMClassifier,
}
#: the models of Guo et al. (ICML 2024), Table 1: the default ``--models``
PAPER_MODELS = ("dnn", "ipnn", "nfwfm", "xdeepfm", "dcnv2", "finalmlp")

# Guo et al. (ICML 2024), Table 1: test AUC, base/2x/3x/4x/10x (ME: 2x..10x).
# Transcribed from the authors' slides, whose Avazu ME rows carry five numbers
# for the four ME scales (e.g. DCNv2 .78862 .78882 .78907 .78907 .78942); the
# first four are kept below, so the Avazu ME alignment is uncertain.
PAPER = {
    "criteo": {
        "dnn": ([0.81228, 0.81222, 0.81207, 0.81213, 0.81142],
                [0.81261, 0.81288, 0.81289, 0.81287]),
        "ipnn": ([0.81272, 0.81273, 0.81272, 0.81271, 0.81262],
                 [0.81268, 0.81270, 0.81273, 0.81311]),
        "nfwfm": ([0.81059, 0.81087, 0.81090, 0.81112, 0.81113],
                  [0.81128, 0.81153, 0.81171, 0.81210]),
        "xdeepfm": ([0.81217, 0.81180, 0.81167, 0.81137, 0.81116],
                    [0.81236, 0.81239, 0.81255, 0.81299]),
        "dcnv2": ([0.81339, 0.81341, 0.81345, 0.81346, 0.81357],
                  [0.81348, 0.81361, 0.81382, 0.81385]),
        "finalmlp": ([0.81259, 0.81262, 0.81248, 0.81240, 0.81175],
                     [0.81290, 0.81302, 0.81303, 0.81303]),
    },
    "avazu": {
        "dnn": ([0.78744, 0.78759, 0.78752, 0.78728, 0.78648],
                [0.78805, 0.78826, 0.78862, 0.78882]),
        "ipnn": ([0.78732, 0.78741, 0.78738, 0.78750, 0.78745],
                 [0.78806, 0.78868, 0.78902, 0.78902]),
        "nfwfm": ([0.78684, 0.78757, 0.78783, 0.78794, 0.78799],
                  [0.78868, 0.78901, 0.78932, 0.78932]),
        "xdeepfm": ([0.78743, 0.78750, 0.78714, 0.78735, 0.78693],
                    [0.78848, 0.78886, 0.78894, 0.78894]),
        "dcnv2": ([0.78786, 0.78835, 0.78854, 0.78852, 0.78856],
                  [0.78862, 0.78882, 0.78907, 0.78907]),
        "finalmlp": ([0.78751, 0.78797, 0.78795, 0.78742, 0.78662],
                     [0.78821, 0.78831, 0.78831, 0.78836]),
    },
}


def _ints(text):
    return [int(v) for v in text.split(",") if v]


# ------------------------------------------------------------------------ data
def synthetic(args):
    X, y, proba = make_ctr(
        args.n_rows or 200000, n_fields=args.n_fields, n_interactions=args.n_planted,
        interaction_rank=args.interaction_rank, interaction_strength=1.5,
        first_order_strength=0.3, n_spurious_fields=args.n_spurious,
        spurious_cardinality=args.spurious_cardinality, random_state=0,
    )
    test = _random_split(len(y), (0.8, 0.1, 0.1), 0)[2]  # scaling_curve's split
    bayes = roc_auc_score(y[test], proba[test])
    return {"X": X, "y": y, "note": (
        f"make_ctr: {len(y)} rows, {args.n_fields} fields with "
        f"{args.n_planted} planted rank-{args.interaction_rank} pairs + "
        f"{args.n_spurious} spurious fields of {args.spurious_cardinality} codes; "
        f"random 8:1:1 split (seed 0); Bayes test AUC {bayes:.3f}")}


def frappe(args):
    folder = Path(args.eval_data) / "frappe"
    Xv, yv = load_libfm(folder / "frappe.validation.libfm")
    Xt, yt = load_libfm(folder / "frappe.test.libfm")
    enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                         dtype=np.int64).fit(Xv)
    Xv, Xt = enc.transform(Xv), enc.transform(Xt)
    if args.n_rows and args.n_rows < len(yv):
        keep = np.random.default_rng(0).permutation(len(yv))[: args.n_rows]
        Xv, yv = Xv[keep], yv[keep]
    return {"X": Xv, "y": yv, "test_data": (Xt, yt), "note": (
        f"Frappe: TRAINED ON THE VALIDATION FILE ({len(yv)} rows; 8:1 "
        f"train/validation split of it for early stopping), TESTED ON THE TEST "
        f"FILE ({len(yt)} rows); the train file is not available here")}


def criteo_like(name):
    def load(args):
        from skcollapse.datasets import load_avazu, load_criteo

        loader = load_criteo if name == "criteo" else load_avazu
        X, y = loader(getattr(args, name), return_X_y=True)
        return {"X": X, "y": y, "note": f"{name}: paper's random 8:1:1 split"}
    return load


DATASETS = {"synthetic": synthetic, "frappe": frappe,
            "criteo": criteo_like("criteo"), "avazu": criteo_like("avazu")}


# ------------------------------------------------------------------- experiment
#: the sizes of an MLP, given only to the models that have one (not FM)
MLP_PARAMS = ("hidden_units", "dropout", "batch_norm")


def build_estimator(name, kw):
    """``MODELS[name](**kw)``, less the MLP sizes when the model has no MLP."""
    cls = MODELS[name]
    if "hidden_units" not in inspect.signature(cls).parameters:
        kw = {k: v for k, v in kw.items() if k not in MLP_PARAMS}
    return cls(**kw)


def make_estimator(name, args, base):
    kw = {"hidden_units": tuple(_ints(args.hidden)), "dropout": 0.2, "lr": 1e-3,
          "batch_size": 2048, "optimizer__weight_decay": 1e-6,
          "device": args.device, "max_epochs": args.max_epochs,
          "embedding_dim": base}
    if name == "dcnv2":
        kw["n_cross_layers"] = args.n_cross_layers
    return build_estimator(name, kw)


def run_model(name, data, args):
    base = args.nfwfm_base_dim if name == "nfwfm" else args.base_dim
    common = {"seeds": args.seeds, "patience": args.patience,
              "test_data": data.get("test_data"), "n_jobs": args.n_jobs}
    est = make_estimator(name, args, base)
    curves = []
    se_range = [base * s for s in args.se_scales]
    me_range = [s for s in args.me_scales if s > 1]  # 1 set of base is SE base
    if se_range:
        se = scaling_curve(est, data["X"], data["y"], param_name="embedding_dim",
                           param_range=se_range, base=base, **common)
        curves.append(se.assign(model=name, kind="SE"))
    if me_range:
        me = scaling_curve(est, data["X"], data["y"], param_name="n_embedding_sets",
                           param_range=me_range, base=1, **common)
        curves.append(me.assign(model=name, kind="ME"))
    return pd.concat(curves, ignore_index=True)


def fmt(values):
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return "-"
    std = values.std(ddof=1) if values.size > 1 else 0.0
    return f"{values.mean():.4f}±{std:.4f}"


def print_tables(results, args, dataset):
    metric = "test_roc_auc"
    scales = sorted(set(args.se_scales) | set(args.me_scales) | {1})
    head = "model     kind " + "".join(f"{('base' if s == 1 else f'{s}x'):>16}"
                                       for s in scales)
    for column, title in ((metric, "test AUC"),
                          ("ia_mean", "mean per-field IA (ME sets concatenated)")):
        print(f"\n[{dataset}] {title}, mean±std over {len(args.seeds)} seeds")
        print(head)
        for name in args.models:
            sub = results[results["model"] == name]
            for kind in ("SE", "ME"):
                cells = []
                for s in scales:
                    if kind == "ME" and s == 1:
                        rows = sub[(sub["kind"] == "SE") & (sub["scale"] == 1)]
                    else:
                        rows = sub[(sub["kind"] == kind) & (sub["scale"] == s)]
                    cells.append(f"{fmt(rows[column]):>16}")
                print(f"{name:<9} {kind:<4} " + "".join(cells))
    # ME >= SE beyond the seed noise at every common scale >= 2x
    print(f"\n[{dataset}] ME - SE test AUC at equal scale (diff of means; "
          "'>' when ME's mean exceeds SE's by more than the larger std)")
    for name in args.models:
        sub = results[results["model"] == name]
        parts = []
        for s in sorted(set(args.se_scales) & set(args.me_scales)):
            a = sub[(sub["kind"] == "SE") & (sub["scale"] == s)][metric]
            b = sub[(sub["kind"] == "ME") & (sub["scale"] == s)][metric]
            if len(a) and len(b):
                d = b.mean() - a.mean()
                noise = max(a.std(ddof=1) if len(a) > 1 else 0,
                            b.std(ddof=1) if len(b) > 1 else 0)
                mark = ">" if d > noise else ("<" if -d > noise else "~")
                parts.append(f"{s}x {d:+.4f} {mark}")
        print(f"{name:<9} " + "   ".join(parts))


def print_field_ia(results, args, dataset):
    s = max(set(args.se_scales) & set(args.me_scales), default=None)
    if s is None:
        return
    fields = [c for c in results.columns if c.startswith("ia_") and c != "ia_mean"]
    print(f"\n[{dataset}] per-field IA at {s}x (mean over seeds), SE vs ME")
    for name in args.models:
        sub = results[(results["model"] == name) & (results["scale"] == s)]
        for kind in ("SE", "ME"):
            vals = sub[sub["kind"] == kind][fields].mean(axis=0)
            print(f"{name:<9} {kind:<3} " + " ".join(
                f"{v:5.2f}" for v in vals.to_numpy()))
    print("fields:", " ".join(f[3:] for f in fields))


def sub_embedding_check(data, args, dataset):
    """Fit DCNv2 SE s*K and ME s x K once (seed 0) and print sum_i IA(E_i->j)."""
    s = max(set(args.se_scales) & set(args.me_scales), default=None)
    if s is None or "dcnv2" not in args.models:
        return
    from skorch.callbacks import EarlyStopping, EpochScoring
    from skorch.dataset import ValidSplit

    out = {}
    for kind, kw in (("SE", {"embedding_dim": args.base_dim * s}),
                     ("ME", {"n_embedding_sets": s})):
        est = make_estimator("dcnv2", args, args.base_dim).set_params(
            random_state=0, train_split=ValidSplit(1 / 9, stratified=False,
                                                   random_state=0),
            callbacks=[("auc", EpochScoring("roc_auc", lower_is_better=False,
                                            name="valid_auc")),
                       ("es", EarlyStopping(monitor="valid_auc",
                                            lower_is_better=False,
                                            patience=args.patience,
                                            threshold=0.0, load_best=True))],
            **kw)
        est.fit(data["X"], data["y"])
        out[kind] = sub_embedding_ia(est)
        if kind == "ME":
            out["ME concat"] = sub_embedding_ia(est, sets="concat")
    print(f"\n[{dataset}] DCNv2 sub-embedding IA at {s}x: sum_i IA(E_i->j) per "
          "field j (seed 0; 'ME' averages the per-set matrices, each set K wide; "
          "'ME concat' puts the sets side by side, as wide as SE)")
    for kind, mat in out.items():
        print(f"{kind:<9} " + " ".join(f"{v:6.1f}" for v in mat.sum(axis=0)))
    print("mean over j: " + "  ".join(f"{kind} {mat.sum(0).mean():.2f}"
                                      for kind, mat in out.items()))


# ------------------------------------------------------- pre-registered plan
#: options that say how a pre-registered plan runs, not what it runs
PREREG_EXECUTION = ("preregistered", "resume", "n_jobs", "threads", "device",
                    "allow_uncommitted_plan", "only")
PREREG_FOLDER = "scaling-prereg"
_PLAN_KEYS = {
    "make_ctr": ("n_samples", "cardinalities", "random_state"),
    "experiment": ("models", "se_scales", "me_scales", "seeds", "seeds_by_scale",
                   "base_dim", "nfwfm_base_dim", "hidden_units", "n_cross_layers",
                   "cin_layer_sizes", "dropout", "batch_norm", "optimizer", "lr",
                   "batch_size", "weight_decay", "max_epochs", "patience", "split",
                   "split_random_state"),
    "decision_rule": ("alpha", "min_se_multiple", "decisive_scales",
                      "min_models_per_scale", "text"),
}


def load_plan(path):
    """The plan file, checked for every entry the run reads."""
    with open(path) as fh:
        plan = json.load(fh)
    for section, keys in _PLAN_KEYS.items():
        missing = [k for k in keys if k not in plan.get(section, {})]
        if missing:
            raise SystemExit(f"{path}: {section} lacks {missing}")
    exp = plan["experiment"]
    unknown = [m for m in exp["models"] if m not in MODELS]
    if unknown:
        raise SystemExit(f"{path}: unknown models {unknown}; known: {list(MODELS)}")
    if exp["optimizer"] != "Adam":
        raise SystemExit(f"{path}: only optimizer 'Adam' is supported")
    scales = [*exp["se_scales"], *exp["me_scales"]]
    if not scales or any(not isinstance(v, int) or v < 1 for v in scales):
        raise SystemExit(f"{path}: scales must be positive integers, got {scales}")
    return plan


def plan_seeds(experiment, scale):
    """The seeds of both SE and ME at ``scale``."""
    by_scale = experiment.get("seeds_by_scale") or {}
    return list(by_scale.get(str(scale), experiment["seeds"]))


def plan_cells(plan):
    """``(model, kind, scale, seeds)`` of every cell, in run order."""
    exp = plan["experiment"]
    cells = []
    for name in exp["models"]:
        for s in exp["se_scales"]:
            cells.append((name, "SE", s, plan_seeds(exp, s)))
        for s in exp["me_scales"]:
            if s > 1:  # one set of base is SE base
                cells.append((name, "ME", s, plan_seeds(exp, s)))
    return cells


def cell_path(name, kind, scale):
    return f"{PREREG_FOLDER}/{name}-{kind.lower()}-{scale}x.json"


def _git(*args):
    try:
        return subprocess.run(["git", *args], cwd=_results.ROOT, capture_output=True,
                              text=True, check=False)
    except OSError:
        return None


def plan_git(path):
    """Is the plan committed and unmodified, and in which commit did it appear?"""
    rel = os.path.relpath(os.path.abspath(path), _results.ROOT)
    listed = _git("ls-files", "--error-unmatch", "--", rel)
    if listed is None or listed.returncode != 0 or rel.startswith(".."):
        return {"path": rel, "committed": False, "clean": False}
    diff = _git("diff", "--quiet", "HEAD", "--", rel)
    added = _git("log", "--diff-filter=A", "--format=%H %cI", "--", rel)
    first = added.stdout.split("\n")[-2].split() if added and added.stdout else []
    return {"path": rel, "committed": True,
            "clean": diff is not None and diff.returncode == 0,
            "added_in": first[0] if first else None,
            "added_on": first[1] if len(first) > 1 else None}


def plan_estimator(name, kind, scale, experiment, device):
    """The plan's estimator for one cell (SE: dim base*s; ME: s sets of base)."""
    exp = experiment
    base = exp["nfwfm_base_dim"] if name == "nfwfm" else exp["base_dim"]
    kw = {"hidden_units": tuple(exp["hidden_units"]), "dropout": exp["dropout"],
          "batch_norm": exp["batch_norm"], "lr": exp["lr"],
          "batch_size": exp["batch_size"],
          "optimizer__weight_decay": exp["weight_decay"],
          "max_epochs": exp["max_epochs"], "device": device}
    if name == "dcnv2":
        kw["n_cross_layers"] = exp["n_cross_layers"]
    if name == "xdeepfm":
        kw["cin_layer_sizes"] = tuple(exp["cin_layer_sizes"])
    if kind == "SE":
        kw.update(embedding_dim=base * scale, n_embedding_sets=1)
    else:
        kw.update(embedding_dim=base, n_embedding_sets=scale)
    return build_estimator(name, kw)


def _fit_seed(name, kind, scale, seed, experiment, data, device, threads):
    """Fit one seed as scaling_curve does; return everything the file keeps."""
    from sklearn.model_selection import PredefinedSplit
    from skorch.callbacks import EarlyStopping, EpochScoring
    from skorch.dataset import ValidSplit

    from skcollapse.metrics import field_ia

    torch.set_num_threads(threads)
    est = plan_estimator(name, kind, scale, experiment, device)
    key = "valid_roc_auc"
    est.set_params(
        random_state=seed,
        train_split=ValidSplit(PredefinedSplit(data["fold"])),
        callbacks=[
            (key, EpochScoring("roc_auc", lower_is_better=False, name=key)),
            ("early_stopping", EarlyStopping(
                monitor=key, lower_is_better=False,
                patience=experiment["patience"], threshold=0.0, load_best=True)),
        ],
    )
    t0 = time.perf_counter()
    est.fit(data["X_fit"], data["y_fit"])
    fit_s = time.perf_counter() - t0
    history = est.history
    curve = [float(v) for v in history[:, key]]
    best = int(np.argmax(curve))  # the first best: EarlyStopping keeps it
    t0 = time.perf_counter()
    p_test = est.predict_proba(data["X_test"])[:, 1]
    p_valid = est.predict_proba(data["X_valid"])[:, 1]
    ia = field_ia(est)
    return {
        "seed": seed,
        "valid_curve": curve,
        "train_loss": [float(v) for v in history[:, "train_loss"]],
        "valid_loss": [float(v) for v in history[:, "valid_loss"]],
        "epoch_s": [float(v) for v in history[:, "dur"]],
        "n_epochs": len(history),
        "selected_epoch": int(history[best, "epoch"]),
        "valid_roc_auc": float(roc_auc_score(data["y_valid"], p_valid)),
        "test": {"roc_auc": float(roc_auc_score(data["y_test"], p_test)),
                 "log_loss": float(log_loss(data["y_test"], p_test, labels=[0, 1]))},
        "ia": {"mean": float(ia.mean()), "fields": [float(v) for v in ia]},
        "n_parameters": int(sum(p.numel() for p in est.module_.parameters())),
        "fit_s": fit_s,
        "score_s": time.perf_counter() - t0,
    }


def split_rows(X, y, split, random_state, test_data=None):
    """Training, validation and test rows as :func:`scaling_curve` splits them.

    Without ``test_data`` the rows are split ``split`` (train, validation,
    test); with it, ``X`` is split ``split[0]:split[1]`` into train and
    validation and ``test_data`` is the test set. Returns what
    :func:`_fit_seed` reads: ``X_fit``/``y_fit`` (train then validation rows),
    ``fold`` (-1 train, 0 validation), the validation and test rows, ``info``
    (counts and click rate) and ``test_rows`` (indices into ``X``; ``None``
    with ``test_data``).
    """
    if test_data is None:
        tr, va, te = _random_split(len(y), split, random_state)
        X_test, y_test = X[te], y[te]
    else:
        tr, va = _random_split(len(y), split[:2], random_state)
        te = None
        X_test, y_test = test_data[0], np.asarray(test_data[1])
    return {
        "X_fit": np.concatenate([X[tr], X[va]]), "y_fit": np.r_[y[tr], y[va]],
        "fold": np.r_[np.full(tr.size, -1), np.zeros(va.size, dtype=int)],
        "X_valid": X[va], "y_valid": y[va], "X_test": X_test, "y_test": y_test,
        "test_rows": te,
        "info": {"n_rows": len(y), "n_train": int(tr.size),
                 "n_valid": int(va.size), "n_test": len(y_test),
                 "click_rate": float(y.mean())},
    }


def plan_data(plan):
    """The plan's rows, split 8:1:1 as scaling_curve splits them."""
    exp = plan["experiment"]
    X, y, proba = make_ctr(**plan["make_ctr"])
    data = split_rows(X, y, exp["split"], exp["split_random_state"])
    te = data["test_rows"]
    data["info"].update(
        bayes_test_roc_auc=float(roc_auc_score(y[te], proba[te])),
        bayes_test_log_loss=float(log_loss(y[te], proba[te])))
    return data


def run_preregistered(args, argv):
    """Run exactly the plan of ``args.preregistered``, one result file per cell."""
    from joblib import Parallel, delayed

    path = args.preregistered
    plan = load_plan(path)
    git = plan_git(path)
    if not (git["committed"] and git["clean"]) and not args.allow_uncommitted_plan:
        raise SystemExit(
            f"{path} is not committed or differs from HEAD: a pre-registered run "
            "uses a committed plan (commit it first; --allow-uncommitted-plan for "
            "a smoke run of a temporary copy).")
    plan_sha = _results.sha256(path)
    exp = plan["experiment"]
    data = plan_data(plan)
    info = data["info"]
    cells = plan_cells(plan)
    print(f"pre-registered plan {path} (sha256 {plan_sha[:12]}, committed "
          f"{git.get('added_in') or 'no'}): {len(cells)} cells, "
          f"{sum(len(c[3]) for c in cells)} fits; {info['n_rows']} rows "
          f"({info['n_train']}/{info['n_valid']}/{info['n_test']}), Bayes test "
          f"AUC {info['bayes_test_roc_auc']:.4f}; results under "
          f"{os.path.join(_results.RESULTS, PREREG_FOLDER)}", flush=True)
    only = [m for m in (args.only or "").split(",") if m]
    unknown = [m for m in only if m not in exp["models"]]
    if unknown:
        raise SystemExit(f"--only {','.join(unknown)}: not in the plan's models "
                         f"{exp['models']}")
    todo = []
    for name, kind, scale, seeds in cells:
        if only and name not in only:
            continue
        rel = cell_path(name, kind, scale)
        if os.path.exists(os.path.join(_results.RESULTS, rel)):
            if not args.resume:
                raise SystemExit(
                    f"{rel} exists: --resume skips the cells already run (delete "
                    "the file to run the cell again).")
            print(f"  {name} {kind} {scale}x: done before ({rel}), skipped",
                  flush=True)
        else:
            todo.append((name, kind, scale, seeds))
    # the cells that decide the claim first (a run that stops early leaves the
    # verdict readable), then the others, each group in plan order
    decisive = set(plan["decision_rule"]["decisive_scales"])
    todo.sort(key=lambda cell: cell[2] not in decisive)
    # one pool over every (cell, seed), so no core waits for the last seed of
    # a cell; a cell's file is written as soon as its seeds are in
    jobs = [(cell, seed) for cell in todo for seed in cell[3]]
    fits = Parallel(n_jobs=args.n_jobs, return_as="generator")(
        delayed(_fit_seed)(name, kind, scale, seed, exp, data, args.device,
                           args.threads)
        for (name, kind, scale, _), seed in jobs)
    t0 = time.perf_counter()
    for name, kind, scale, seeds in todo:
        done = [next(fits) for _ in seeds]
        write_cell(args, argv, plan, path, plan_sha, git, info,
                   (name, kind, scale, seeds), done, time.perf_counter() - t0)


def estimator_config(est):
    """The class and the sizes of an estimator, as a result file records them."""
    return {"estimator": type(est).__name__,
            "params": {k: v for k, v in est.get_params(deep=False).items()
                       if k in ("embedding_dim", "n_embedding_sets", "hidden_units",
                                "dropout", "batch_norm", "lr", "batch_size",
                                "optimizer__weight_decay", "max_epochs",
                                "n_cross_layers", "cin_layer_sizes", "split_half")}}


def write_cell(args, argv, plan, path, plan_sha, git, info, cell, fits, elapsed):
    """The result file of one (model, SE/ME, scale) cell."""
    name, kind, scale, seeds = cell
    exp = plan["experiment"]
    record = {
        "benchmark": "bench_scaling --preregistered",
        "command": " ".join(["benchmarks/bench_scaling.py", *argv]),
        "model": name,
        "kind": kind,
        "scale": scale,
        "seeds": fits,
        "config": {
            "plan": git["path"],
            "plan_sha256": plan_sha,
            "plan_git": git,
            **estimator_config(plan_estimator(name, kind, scale, exp, args.device)),
            "make_ctr": plan["make_ctr"],
            "field_names": plan.get("field_names"),
            "experiment": exp,
            "decision_rule": plan["decision_rule"],
        },
        "data": info,
        "timing": {"fit_s": sum(f["fit_s"] for f in fits),
                   "run_elapsed_s": elapsed, "n_jobs": args.n_jobs,
                   "threads": args.threads, "device": args.device},
        "meta": _results.run_metadata([path]),
    }
    out = _results.write_result(cell_path(name, kind, scale), record)
    auc = [f["test"]["roc_auc"] for f in fits]
    print(f"  {name} {kind} {scale}x: test AUC {fmt(auc)} over seeds {seeds}, "
          f"selected epochs {[f['selected_epoch'] for f in fits]}, "
          f"{record['timing']['fit_s']:.0f} s of fits; {os.path.relpath(out)}",
          flush=True)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("eval_data", nargs="?", default="../shared/eval-data")
    parser.add_argument("--datasets", default="synthetic,frappe")
    parser.add_argument("--models", default=",".join(PAPER_MODELS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--se-scales", default="1,2,3,4,10")
    parser.add_argument("--me-scales", default="2,3,4")
    parser.add_argument("--base-dim", type=int, default=10)
    parser.add_argument("--nfwfm-base-dim", type=int, default=50)
    parser.add_argument("--hidden", default="400,400")
    parser.add_argument("--n-cross-layers", type=int, default=4)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--n-rows", type=int, default=0,
                        help="rows of the training data (0: all / 200000 synthetic)")
    parser.add_argument("--n-fields", type=int, default=8)
    parser.add_argument("--n-planted", type=int, default=4)
    parser.add_argument("--n-spurious", type=int, default=2)
    parser.add_argument("--spurious-cardinality", type=int, default=500)
    parser.add_argument("--interaction-rank", type=int, default=8)
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="fits in parallel (GridSearchCV n_jobs); one "
                        "torch thread each")
    parser.add_argument("--no-sub-embedding", action="store_true")
    parser.add_argument("--sub-embedding-only", action="store_true",
                        help="only the DCNv2 SE/ME sub-embedding IA fits (at the "
                        "largest scale common to --se-scales and --me-scales)")
    parser.add_argument("--criteo", default=None)
    parser.add_argument("--avazu", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="CSV of every fit")
    parser.add_argument("--preregistered", default=None, metavar="PLAN.json",
                        help="run exactly this committed plan (see the docstring);"
                        " only --resume, --n-jobs, --threads, --device may go "
                        "with it")
    parser.add_argument("--resume", action="store_true",
                        help="with --preregistered: skip cells whose result file "
                        "exists")
    parser.add_argument("--only", default=None, metavar="MODELS",
                        help="with --preregistered: run only these models' cells "
                        "this time (comma-separated; the plan is unchanged, the "
                        "other cells wait for a later --resume)")
    parser.add_argument("--allow-uncommitted-plan", action="store_true",
                        help="with --preregistered: run a plan that is not "
                        "committed (smoke runs; recorded in the files)")
    return parser


def explicit_options(argv):
    """The destinations of the options given on the command line."""
    probe = build_parser()
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(argv)))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preregistered:
        extra = sorted(explicit_options(argv) - set(PREREG_EXECUTION))
        if extra:
            flags = ", ".join(
                "EVAL_DATA" if d == "eval_data" else "--" + d.replace("_", "-")
                for d in extra)
            parser.error(
                f"--preregistered runs exactly the plan in {args.preregistered}; "
                f"{flags} would change it. Remove them (allowed with it: --resume, "
                "--n-jobs, --threads, --device, --only, --allow-uncommitted-plan).")
        if not os.path.isfile(args.preregistered):
            parser.error(f"--preregistered: no file {args.preregistered!r}")
        torch.set_num_threads(args.threads)
        run_preregistered(args, argv)
        return
    if args.resume or args.allow_uncommitted_plan or args.only:
        parser.error("--resume, --only and --allow-uncommitted-plan only go with "
                     "--preregistered")
    args.seeds = list(range(args.seeds))
    args.se_scales = _ints(args.se_scales)
    args.me_scales = _ints(args.me_scales)
    if not args.se_scales and not [s for s in args.me_scales if s > 1]:
        parser.error("--se-scales and --me-scales (above 1) are both empty; "
                     "give at least one scale to fit")
    args.models = [m for m in args.models.split(",") if m]
    torch.set_num_threads(args.threads)
    print(" ".join(sys.argv))
    print(f"sizes: base {args.base_dim} (NFwFM {args.nfwfm_base_dim}), MLP "
          f"{args.hidden}, {args.n_cross_layers} cross layers, max {args.max_epochs} "
          f"epochs, patience {args.patience}, seeds {args.seeds}, device "
          f"{args.device}")
    frames = []
    for dataset in [d for d in args.datasets.split(",") if d]:
        data = DATASETS[dataset](args)
        print(f"\n== {dataset}: {data['note']}")
        if args.sub_embedding_only:
            sub_embedding_check(data, args, dataset)
            continue
        results = []
        for name in args.models:
            t0 = time.perf_counter()
            res = run_model(name, data, args)
            print(f"  {name}: {len(res)} fits in {time.perf_counter() - t0:.0f} s",
                  flush=True)
            results.append(res)
            # each model's rows as soon as they exist (long runs can be cut)
            print_tables(res, argparse.Namespace(**{**vars(args), "models": [name]}),
                         dataset)
            sys.stdout.flush()
        results = pd.concat(results, ignore_index=True)
        print_tables(results, args, dataset)
        print_field_ia(results, args, dataset)
        if dataset in PAPER:
            print(f"\npaper ({dataset}, Table 1) SE base..10x / ME 2x..10x:")
            for name in [m for m in args.models if m in PAPER[dataset]]:
                se, me = PAPER[dataset][name]
                print(f"{name:<9} SE " + " ".join(f"{v:.5f}" for v in se)
                      + " | ME " + " ".join(f"{v:.5f}" for v in me))
        frames.append(results.assign(dataset=dataset))
        if args.out:  # written before the (optional) sub-embedding fits
            pd.concat(frames, ignore_index=True).to_csv(args.out, index=False)
            print(f"\nwrote {args.out}")
        if not args.no_sub_embedding:
            sub_embedding_check(data, args, dataset)


if __name__ == "__main__":
    main()
