"""Speed and embedding scaling of the CTR classifiers.

Usage::

    python benchmarks/bench_ctr.py /path/to/eval-data [--sections speed,scaling]
        [--speed-epochs 3] [--speed-repeats 3] [--models dcnv2,dnn,finalmlp]
        [--datasets synthetic,frappe] [--max-epochs 8] [--seeds 1] [--device cpu]

``eval-data`` must hold ``frappe/frappe.validation.libfm`` and
``frappe/frappe.test.libfm`` (the NFM / BARS Frappe_x1 files; the train file is
not available, see below). Every figure is printed next to a baseline measured in
the same run.

* ``speed``: seconds per training epoch of DCNv2 (dim 16, 3 cross layers, MLP
  400-400-400, batch 2048, Adam) on the Frappe validation file (57,722 rows):
  ``DCNv2Classifier.fit`` vs a lean hand-written PyTorch loop with the same
  architecture, data already in tensors, ``randperm`` + slicing batches. The two
  alternate epoch blocks so both see the same machine load; medians over all
  epochs, and the ratio.
* ``scaling``: Guo et al.'s experiment in small. Single embedding (SE) at
  ``embedding_dim`` 10/20/40 vs multi-embedding (ME) with 2/4 sets of 10 (one set
  of 10 *is* SE-10) for DCNv2 and other models, on ``make_ctr`` data and on
  Frappe. **Frappe: trained on the validation file, tested on the test file**
  (the train file could not be obtained), with 10% of the validation file held
  out for early stopping on AUC (patience 2, best epoch restored). Reports test
  AUC, log loss and the mean per-field information abundance (IA) of the
  embedding tables: for ME, each field's ``M`` set tables are concatenated to a
  ``(cardinality, M*K)`` table, so SE-40 and ME-4x10 compare at equal width (the
  mean IA of single set tables is printed too).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.metrics import log_loss, roc_auc_score
from sklearn.preprocessing import OrdinalEncoder
from skorch.callbacks import Callback, EarlyStopping, EpochScoring
from skorch.dataset import ValidSplit

from skcollapse.datasets import load_libfm, make_ctr
from skcollapse.metrics import information_abundance
from skcollapse.recommenders import (
    DCNv2Classifier,
    DeepFMClassifier,
    DNNClassifier,
    FinalMLPClassifier,
    IPNNClassifier,
    NFwFMClassifier,
    xDeepFMClassifier,
)

MODELS = {
    "dcnv2": DCNv2Classifier,
    "dnn": DNNClassifier,
    "ipnn": IPNNClassifier,
    "nfwfm": NFwFMClassifier,
    "xdeepfm": xDeepFMClassifier,
    "finalmlp": FinalMLPClassifier,
    "deepfm": DeepFMClassifier,
}


# ------------------------------------------------------------------------ data
def load_frappe(eval_data):
    folder = Path(eval_data) / "frappe"
    Xv, yv = load_libfm(folder / "frappe.validation.libfm")
    Xt, yt = load_libfm(folder / "frappe.test.libfm")
    enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                         dtype=np.int64).fit(Xv)
    return enc.transform(Xv), yv, enc.transform(Xt), yt


def synthetic(seed, n_train=40_000, n_test=20_000):
    X, y, p = make_ctr(n_train + n_test, n_fields=10, random_state=seed)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:], p[n_train:]


# ------------------------------------------------------------------------ lean DCNv2
class LeanDCNv2(nn.Module):
    """Stacked DCNv2 written directly: one offset embedding, cross, MLP, logit."""

    def __init__(self, field_dims, dim, n_cross, units, dropout):
        super().__init__()
        self.register_buffer(
            "offsets", torch.as_tensor(np.r_[0, np.cumsum(field_dims)[:-1]])
        )
        self.emb = nn.Embedding(int(sum(field_dims)), dim)
        nn.init.xavier_uniform_(self.emb.weight)
        d = len(field_dims) * dim
        self.W = nn.ParameterList(
            [nn.Parameter(nn.init.xavier_uniform_(torch.empty(d, d)))
             for _ in range(n_cross)]
        )
        self.b = nn.ParameterList([nn.Parameter(torch.zeros(d)) for _ in range(n_cross)])
        layers, prev = [], d
        for u in units:
            layers += [nn.Linear(prev, u), nn.BatchNorm1d(u), nn.ReLU(),
                       nn.Dropout(dropout)]
            prev = u
        layers.append(nn.Linear(prev, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x):
        x0 = self.emb(x + self.offsets).flatten(1)
        h = x0
        for w, b in zip(self.W, self.b):
            h = x0 * F.linear(h, w, b) + h
        return self.mlp(h).squeeze(1)


class CPUTimer(Callback):
    """Record the process CPU seconds of each epoch as ``cpu_dur``."""

    def on_epoch_begin(self, net, **kwargs):
        self._t0 = time.process_time()

    def on_epoch_end(self, net, **kwargs):
        net.history.record("cpu_dur", time.process_time() - self._t0)


def lean_epochs(model, opt, X, y, batch, n_epochs, gen):
    """Train ``n_epochs``; return (wall, cpu) seconds per epoch."""
    times, cpu = [], []
    model.train()
    for _ in range(n_epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(X.shape[0], generator=gen)
        for start in range(0, X.shape[0], batch):
            idx = perm[start : start + batch]
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return times, cpu


def run_speed(eval_data, epochs, repeats, device):
    Xv, yv, _, _ = load_frappe(eval_data)
    field_dims = [int(v) for v in Xv.max(axis=0) + 2]  # + OOV row like skcollapse
    print(f"\n== speed: DCNv2 (dim 16, 3 cross, MLP 400-400-400, batch 2048) on the "
          f"Frappe validation file ({Xv.shape[0]:,} rows), device={device}, "
          f"torch threads={torch.get_num_threads()}")
    Xt = torch.as_tensor(Xv, device=device)
    yt = torch.as_tensor(yv, dtype=torch.float32, device=device)
    lean_t, lean_c, sk_t, sk_c, sk_fit = [], [], [], [], []
    for r in range(repeats):
        torch.manual_seed(r)
        lean = LeanDCNv2(field_dims, 16, 3, (400, 400, 400), 0.2).to(device)
        opt = torch.optim.Adam(lean.parameters(), lr=1e-3)
        wall, cpu = lean_epochs(lean, opt, Xt, yt, 2048, epochs,
                                torch.Generator().manual_seed(r))
        lean_t += wall
        lean_c += cpu
        clf = DCNv2Classifier(embedding_dim=16, n_cross_layers=3,
                              hidden_units=(400, 400, 400), batch_size=2048,
                              max_epochs=epochs, device=device, random_state=r,
                              callbacks=[("cpu_timer", CPUTimer())])
        t0 = time.perf_counter()
        clf.fit(Xv, yv)
        sk_fit.append((time.perf_counter() - t0) / epochs)
        sk_t += list(clf.history[:, "dur"])
        sk_c += list(clf.history[:, "cpu_dur"])
        print(f"  round {r}: wall s/epoch lean {np.round(wall, 2).tolist()}, "
              f"DCNv2Classifier {np.round(sk_t[-epochs:], 2).tolist()}; CPU s/epoch "
              f"lean {np.round(cpu, 2).tolist()}, DCNv2Classifier "
              f"{np.round(sk_c[-epochs:], 2).tolist()}", flush=True)
    lean_med, sk_med = statistics.median(lean_t), statistics.median(sk_t)
    lean_cmed, sk_cmed = statistics.median(lean_c), statistics.median(sk_c)
    fit_med = statistics.median(sk_fit)
    print(f"  median wall s/epoch: lean {lean_med:.3f} | DCNv2Classifier "
          f"{sk_med:.3f} (ratio {sk_med / lean_med:.2f}x) | whole fit() / epochs "
          f"{fit_med:.3f} (ratio {fit_med / lean_med:.2f}x)")
    print(f"  median CPU s/epoch:  lean {lean_cmed:.3f} | DCNv2Classifier "
          f"{sk_cmed:.3f} (ratio {sk_cmed / lean_cmed:.2f}x)")
    print("  reference on this machine type (issue, wall): lean 1.19 s, "
          "DeepCTR-Torch 1.7-1.9 s, FuxiCTR 3.7-5.2 s per epoch")
    return {"lean": lean_med, "skcollapse": sk_med, "fit": fit_med}


# ------------------------------------------------------------------------ scaling
def _configs():
    return [("SE", 10, 1), ("SE", 20, 1), ("SE", 40, 1), ("ME", 10, 2), ("ME", 10, 4)]


def _mean_field_ia(clf):
    emb = clf.get_embeddings()
    n_sets = clf.n_embedding_sets
    concat, single = [], []
    for field in clf.field_names_:
        if n_sets == 1:
            tables = [emb[field]]
        else:
            tables = [emb[f"{field}/set{m}"] for m in range(n_sets)]
        if tables[0].shape[0] < 2:
            continue
        concat.append(information_abundance(np.hstack(tables)))
        single.extend(information_abundance(t) for t in tables)
    return float(np.mean(concat)), float(np.mean(single))


def fit_one(cls, kind, dim, n_sets, Xtr, ytr, seed, max_epochs, device,
            batch_size=2048):
    params = {
        "embedding_dim": dim,
        "n_embedding_sets": n_sets,
        "max_epochs": max_epochs,
        "batch_size": batch_size,
        "lr": 1e-3,
        "optimizer__weight_decay": 1e-6,
        "random_state": seed,
        "device": device,
        "train_split": ValidSplit(0.1, stratified=True, random_state=seed),
        "callbacks": [
            ("valid_auc", EpochScoring("roc_auc", lower_is_better=False,
                                       name="valid_auc")),
            ("stop", EarlyStopping(monitor="valid_auc", lower_is_better=False,
                                   patience=2, load_best=True)),
        ],
    }
    if cls is NFwFMClassifier:
        params["embedding_dim"] = dim * 5  # the paper's base 50 instead of 10
    t0 = time.perf_counter()
    clf = cls(**params).fit(Xtr, ytr)
    return clf, time.perf_counter() - t0


def run_scaling(eval_data, models, datasets, max_epochs, seeds, device,
                batch_size=2048, n_train=40_000):
    rows = []
    for data_name in datasets:
        for seed in range(seeds):
            if data_name == "frappe":
                Xtr, ytr, Xte, yte = load_frappe(eval_data)
                note = "Frappe: train = validation file, test = test file"
                bayes = None
            else:
                Xtr, ytr, Xte, yte, pte = synthetic(seed, n_train, n_train // 2)
                bayes = roc_auc_score(yte, pte), log_loss(yte, pte)
                note = (f"make_ctr (10 fields, {n_train:,} train / "
                        f"{n_train // 2:,} test), Bayes AUC "
                        f"{bayes[0]:.4f}, Bayes log loss {bayes[1]:.4f}")
            print(f"\n== scaling on {data_name}, seed {seed}: {note}; batch "
                  f"{batch_size}, at most {max_epochs} epochs")
            print(f"  {'model':9s} {'config':7s} {'AUC':>7s} {'logloss':>8s} "
                  f"{'IA(field)':>9s} {'IA(set)':>8s} {'epochs':>6s} {'s':>6s}")
            for model in models:
                for kind, dim, n_sets in _configs():
                    clf, secs = fit_one(MODELS[model], kind, dim, n_sets, Xtr, ytr,
                                        seed, max_epochs, device, batch_size)
                    proba = clf.predict_proba(Xte)[:, 1]
                    auc, ll = roc_auc_score(yte, proba), log_loss(yte, proba)
                    ia_field, ia_set = _mean_field_ia(clf)
                    label = f"{kind}-{dim}" if kind == "SE" else f"ME-{n_sets}x{dim}"
                    best = int(np.argmax(clf.history[:, "valid_auc"])) + 1
                    print(f"  {model:9s} {label:7s} {auc:7.4f} {ll:8.4f} "
                          f"{ia_field:9.2f} {ia_set:8.2f} {best:>3d}/{len(clf.history):<2d}"
                          f" {secs:6.1f}", flush=True)
                    rows.append((data_name, seed, model, label, auc, ll, ia_field))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("eval_data", help="folder holding frappe/*.libfm")
    parser.add_argument("--sections", default="speed,scaling")
    parser.add_argument("--speed-epochs", type=int, default=3)
    parser.add_argument("--speed-repeats", type=int, default=3)
    parser.add_argument("--models", default="dcnv2,dnn,finalmlp")
    parser.add_argument("--datasets", default="synthetic,frappe")
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=2048,
                        help="batch size of the scaling fits (the paper: 2048)")
    parser.add_argument("--synthetic-train", type=int, default=40_000,
                        help="make_ctr training rows (test: half as many)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1 avoids oversubscribing a "
                        "shared machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not (Path(args.eval_data) / "frappe").is_dir():
        parser.error(f"{args.eval_data}/frappe not found")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(shared machine: timings are noisy; compare only within this run)")
    sections = set(args.sections.split(","))
    if "speed" in sections:
        run_speed(args.eval_data, args.speed_epochs, args.speed_repeats, args.device)
    if "scaling" in sections:
        models = args.models.split(",")
        unknown = set(models) - set(MODELS)
        if unknown:
            parser.error(f"unknown models {sorted(unknown)}; choose from {list(MODELS)}")
        run_scaling(args.eval_data, models, args.datasets.split(","),
                    args.max_epochs, args.seeds, args.device, args.batch_size,
                    args.synthetic_train)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
