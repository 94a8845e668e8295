"""DeepFM beside DNN and FM (issue 31): test AUC, log loss and per-field IA.

Usage::

    python benchmarks/bench_deepfm.py [EVAL_DATA] [--datasets synthetic,frappe]
        [--plan benchmarks/preregistered/me_synthetic.json] [--resume]
        [--n-jobs 2] [--threads 1] [--device cpu] [--allow-uncommitted-plan]

What runs is fixed by the pre-registered multi-embedding plan (``--plan``, the
committed ``me_synthetic.json``; ``--allow-uncommitted-plan`` for smoke runs of
a temporary copy): every fit is the plan's single-embedding base cell (1x) of
``bench_scaling.py --preregistered`` for FM, DNN and DeepFM, fitted by the same
function (``bench_scaling._fit_seed``). The sizes are the plan's: embedding
size ``base_dim`` (10) and one embedding set for all three, MLP
``hidden_units`` (200-200) with the plan's dropout and batch norm for DNN and
DeepFM (FM has no MLP); Adam with the plan's learning rate, batch size and
weight decay; up to ``max_epochs`` epochs with early stopping on validation AUC
(``patience``, a strictly better score resets it, the best epoch restored);
the plan's ``seeds`` (0, 1, 2). The only choice is the epoch, made on the
validation rows; the test rows are scored once per fit.

Data sets:

* ``synthetic``: the plan's generated rows (``bench_scaling.plan_data``: the
  plan's ``make_ctr`` parameters and its seeded 8:1:1 split). Its DNN file
  repeats the plan's ``dnn-se-1x`` cell (same data, seeds and fit).
* ``frappe``: ``EVAL_DATA/frappe`` read by ``bench_scaling.frappe``. **Only the
  validation and test files of the NFM/BARS split exist here: the models train
  on the validation file (split 8:1 into training and validation rows by the
  plan's split seed, as ``scaling_curve`` splits it) and are tested on the
  test file.** The libFM files name no fields; their columns are named
  ``FRAPPE_FIELDS``.

Each (data set, model) writes
``benchmarks/results/deepfm/<dataset>/<model>.json``: the plan's path, SHA-256
and commit, the estimator's sizes, the data (row counts, click rate, the
SHA-256 of the arrays fitted and tested, of the Frappe files in ``meta``), and
per seed the validation AUC per epoch, the selected epoch, test AUC and log
loss, the per-field IA (``skcollapse.metrics.field_ia``) and timings.
``benchmarks/tables_deepfm.py`` makes the evidence page's tables from these
files only (``python benchmarks/make_tables.py``).

A smoke run that writes nowhere near the committed files::

    SKCOLLAPSE_BENCH_RESULTS=/tmp/deepfm-smoke python benchmarks/bench_deepfm.py \\
        --plan /tmp/tiny_plan.json --allow-uncommitted-plan
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import _results
import bench_scaling as bs
import torch

FOLDER = "deepfm"
MODELS = ("fm", "dnn", "deepfm")
DATASETS = ("synthetic", "frappe")
PLAN = os.path.join("benchmarks", "preregistered", "me_synthetic.json")
#: the Frappe README's context fields less ``cnt`` (the label), in the order of
#: the libFM files' blocks of global ids (user 0-956, item 957-5038, daytime
#: 5039-5045, weekday, isweekend, homework, cost, weather, country 5069-5148,
#: city 5149-5381: each block as long as the README's count of that field)
FRAPPE_FIELDS = ("user", "item", "daytime", "weekday", "isweekend", "homework",
                 "cost", "weather", "country", "city")


def result_path(dataset, model):
    return f"{FOLDER}/{dataset}/{model}.json"


def arrays_sha256(data):
    """SHA-256 of the rows a fit sees and the rows it is tested on, in order."""
    h = hashlib.sha256()
    for key in ("X_fit", "y_fit", "fold", "X_test", "y_test"):
        h.update(np.ascontiguousarray(data[key], dtype=np.int64).tobytes())
    return h.hexdigest()


def load_dataset(name, plan, eval_data):
    """``(data, files)``: what ``_fit_seed`` reads, and the files it came from."""
    exp = plan["experiment"]
    if name == "synthetic":
        data = bs.plan_data(plan)
        data["info"].update(
            field_names=plan.get("field_names"),
            note="the plan's make_ctr rows, its seeded 8:1:1 split")
        files = []
    else:
        raw = bs.frappe(argparse.Namespace(eval_data=eval_data, n_rows=0))
        data = bs.split_rows(raw["X"], raw["y"], exp["split"],
                             exp["split_random_state"], test_data=raw["test_data"])
        n_fields = raw["X"].shape[1]
        data["info"].update(
            field_names=(list(FRAPPE_FIELDS) if n_fields == len(FRAPPE_FIELDS)
                         else [f"x{f}" for f in range(n_fields)]),
            note=raw["note"])
        folder = os.path.join(eval_data, "frappe")
        files = [os.path.join(folder, f"frappe.{part}.libfm")
                 for part in ("validation", "test")]
    data["info"]["arrays_sha256"] = arrays_sha256(data)
    return data, files


def write_model(args, argv, plan, git, dataset, name, data, files, fits, elapsed):
    """The result file of one (data set, model)."""
    exp, rule = plan["experiment"], plan["decision_rule"]
    record = {
        "benchmark": "bench_deepfm",
        "command": " ".join(["benchmarks/bench_deepfm.py", *argv]),
        "dataset": dataset,
        "model": name,
        "kind": "SE",
        "scale": 1,
        "seeds": fits,
        "config": {
            "plan": git["path"],
            "plan_sha256": _results.sha256(args.plan),
            "plan_git": git,
            **bs.estimator_config(bs.plan_estimator(name, "SE", 1, exp, args.device)),
            "experiment": exp,
            "comparison": {
                "test": "two-sided paired t-test over seeds",
                "alpha": rule["alpha"], "min_se_multiple": rule["min_se_multiple"],
                "source": "the plan's decision_rule (alpha, min_se_multiple)"},
        },
        "data": data["info"],
        "timing": {"fit_s": sum(f["fit_s"] for f in fits), "run_elapsed_s": elapsed,
                   "n_jobs": args.n_jobs, "threads": args.threads,
                   "device": args.device},
        "meta": _results.run_metadata(files),
    }
    out = _results.write_result(result_path(dataset, name), record)
    auc = [f["test"]["roc_auc"] for f in fits]
    print(f"  {dataset} {name}: test AUC {bs.fmt(auc)}, selected epochs "
          f"{[f['selected_epoch'] for f in fits]}, {record['timing']['fit_s']:.0f} s "
          f"of fits; {os.path.relpath(out)}", flush=True)


def run(args, argv):
    from joblib import Parallel, delayed

    plan = bs.load_plan(args.plan)
    git = bs.plan_git(args.plan)
    if not (git["committed"] and git["clean"]) and not args.allow_uncommitted_plan:
        raise SystemExit(
            f"{args.plan} is not committed or differs from HEAD: the sizes come "
            "from a committed plan (--allow-uncommitted-plan for a smoke run of a "
            "temporary copy).")
    exp = plan["experiment"]
    seeds = list(exp["seeds"])
    todo = []
    for dataset in args.datasets:
        for name in MODELS:
            rel = result_path(dataset, name)
            if not os.path.exists(os.path.join(_results.RESULTS, rel)):
                todo.append((dataset, name))
            elif args.resume:
                print(f"  {dataset} {name}: done before ({rel}), skipped", flush=True)
            else:
                raise SystemExit(f"{rel} exists: --resume skips the files already "
                                 "written (delete the file to run it again).")
    loaded = {d: load_dataset(d, plan, args.eval_data)
              for d in dict.fromkeys(d for d, _ in todo)}
    for dataset, (data, _) in loaded.items():
        info = data["info"]
        print(f"{dataset}: {info['n_train']}/{info['n_valid']}/{info['n_test']} "
              f"rows (train/validation/test); {info['note']}", flush=True)
    # one pool over every (data set, model, seed); a file as soon as its seeds are in
    fits = Parallel(n_jobs=args.n_jobs, return_as="generator")(
        delayed(bs._fit_seed)(name, "SE", 1, seed, exp, loaded[dataset][0],
                              args.device, args.threads)
        for dataset, name in todo for seed in seeds)
    t0 = time.perf_counter()
    for dataset, name in todo:
        done = [next(fits) for _ in seeds]
        data, files = loaded[dataset]
        write_model(args, argv, plan, git, dataset, name, data, files, done,
                    time.perf_counter() - t0)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("eval_data", nargs="?", default="../shared/eval-data")
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help="comma-separated, of " + ", ".join(DATASETS))
    parser.add_argument("--plan", default=os.path.join(_results.ROOT, PLAN),
                        help="the plan whose sizes, seeds and protocol are used")
    parser.add_argument("--allow-uncommitted-plan", action="store_true",
                        help="run a plan that is not committed (smoke runs; "
                        "recorded in the files)")
    parser.add_argument("--resume", action="store_true",
                        help="skip the (data set, model) files that exist")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="fits in parallel (processes)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per fit")
    parser.add_argument("--device", default="cpu")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.datasets = [d for d in args.datasets.split(",") if d]
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown or not args.datasets:
        parser.error(f"--datasets {','.join(unknown) or '(empty)'}: expected a "
                     f"comma-separated list of {', '.join(DATASETS)}")
    if not os.path.isfile(args.plan):
        parser.error(f"--plan: no file {args.plan!r}")
    if "frappe" in args.datasets:
        for part in ("validation", "test"):
            path = os.path.join(args.eval_data, "frappe", f"frappe.{part}.libfm")
            if not os.path.isfile(path):
                parser.error(f"EVAL_DATA: no file {path!r} (the frappe data set "
                             "reads EVAL_DATA/frappe/frappe.{validation,test}.libfm)")
    torch.set_num_threads(args.threads)
    run(args, argv)


if __name__ == "__main__":
    main()
