"""Run the ReSN authors' code (LIN452/ReSN, WSDM 2025) as it is, and keep what it learns.

Runs in its own environment (``bash benchmarks/peers/setup_resn.sh``: Python 3.7,
TensorFlow 1.15, the authors' pins); it imports nothing of skcollapse.
``benchmarks/bench_resn.py`` scores what this script saves with skcollapse's
metrics, beside skcollapse's own ``regularizer="resn"``.

What "as it is" means here
--------------------------
The authors' entry point ``src/main.py`` is executed unchanged (``runpy``, with
the command line of their README: ``regmf --lr 0.002 --reglam_list ... --alpha0 0
--dim 256``). Their training loop (``src/trainer.py: pointwise_trainer_new``),
model (``src/models/recommenders.py: PointwiseRecommender_New``) and evaluator
(``src/evaluate/evaluator.py: evaluator_new_nogroup``) run as published. Three
things had to be supplied around them, none of which changes what they compute:

1. **Modules the repository does not ship.** ``main.py`` imports
   ``data.preprocessor`` and ``visualize``, ``trainer.py`` imports
   ``models.expomf`` and ``models.dibmf``; only compiled CPython 3.7/3.8 files of
   three of them sit in ``__pycache__`` (which Python does not import without the
   source) and ``visualize`` is absent. The names imported from them are never
   called on the ``regmf`` path, so each is replaced by a placeholder that raises
   if it is ever called (``_SHIMS`` below): the run proves they are unused.
2. **Their input files.** ``trainer.py`` loads about a dozen ``.npy`` files and
   ``s_norm_adj_mat.npz`` from ``../data/<dataset>/``, produced by three Jupyter
   notebooks (``src/data/process.ipynb``, ``sample.ipynb``; the adjacency by none
   of the shipped files). The notebooks hard-code ``ml-1m``, and ``sample.ipynb``
   builds 201 epochs of negatives by growing arrays one user at a time
   (tens of minutes, about 10 GB in float64). :func:`prepare` writes the same
   files, in the same layout and meaning, from any ``train.txt``/``test.txt`` pair
   in their format (``user item item ...``) -- this is our code, written from the
   notebooks' description, not theirs: popularity groups (5 groups of equal total
   training popularity, least popular first), per-user test lists sorted by
   training popularity, users shuffled into batches of ``2**batch_size``, each
   batch's positives, 4 uniform negatives per positive among the items the user
   has not interacted with in training, redrawn for each of ``--neg-epochs``
   epochs (201 in ``sample.ipynb``; the trainer cycles through them), and the
   evaluation mask (1 on the items not in the user's training set). Ids are
   stored as the smallest integer type that holds them (the notebook's float64
   arrays are cast to int32 by TensorFlow's feed in the same way). The adjacency
   is the symmetric-normalised user-item graph D^-1/2 A D^-1/2 (LightGCN's);
   the MF backbone loads it without using it.
3. **Observation.** The trainer keeps no embeddings (``best_uemb`` stays
   ``None``). This script wraps -- without replacing -- the evaluator the trainer
   calls every 10 epochs: before delegating to the original it saves the current
   user and item tables (``tf.Session.run`` on the model's variables through the
   session and model the trainer built, captured by thin subclasses), and after it
   records the metrics the original returned. ``bench_resn.py`` scores these
   tables; the authors' own figures (their evaluator, on the ``test.txt`` given
   here, best NDCG@20 over evaluations -- i.e. **selected on the test split**, as
   their code does) are kept beside them.

Facts of their code that matter for a comparison
-------------------------------------------------
* **Unseeded.** ``trainer.py`` calls ``tf.set_random_seed(12345)`` and then
  ``ops.reset_default_graph()``: the seed is set on the graph that is thrown
  away, so the initialisation differs from run to run (``np.random.seed(123)``
  seeds nothing that is used). Repeat the run (``--work`` folders
  ``reference``, ``reference-2``, ...) to see their spread. ``--seed`` here
  seeds only the batches and negatives this script writes.
* **Only the MF backbone runs.** ``PointwiseRecommender_LGN`` and
  ``_XSimGCL`` (``--backbone lightgcn``/``xsimgcl``) read
  ``self.item_embeddings``, which they never define (``recommenders.py``,
  line 386): ``AttributeError`` while the graph is built.
* **Selected on test**, see 3. above; and it evaluates every 10 epochs only.

The working tree: ``WORK/src`` mirrors the checkout's ``src`` by symbolic links
(their relative paths ``../data/<dataset>`` then land in ``WORK/data``), so the
checkout stays untouched.

Usage (in the ReSN venv)::

    benchmarks/peers/.venv-resn/bin/python benchmarks/peers/resn_reference.py \\
        CHECKOUT --train TRAIN.txt --test TEST.txt --work WORK \\
        [--reglam 0 0.01] [--lr 0.002] [--dim 256] [--max-iters 221] \\
        [--batch-exp 11] [--lam 1e-5] [--neg-epochs 201] [--seed 0]

writes ``WORK/runs/reglam-<x>/emb-e<epoch>.npz`` (``user``, ``item``: float32
tables after ``epoch`` epochs) and ``WORK/runs/reglam-<x>/log.json`` (the
authors' metrics at every evaluation, their selected epoch, timings), and the
full console output to ``WORK/console.log``.
"""

import argparse
import hashlib
import json
import os
import platform
import runpy
import sys
import time

import numpy as np

N_GROUPS = 5  # their --group_num default; the data folder is point/<group_num>
N_NEG = 4  # negatives per positive (trainer.py and sample.ipynb: neg_num = 4)


# --------------------------------------------------------------------- input files
def read_split(path):
    """``user item item ...`` lines -> dict user -> list of items (file order)."""
    out = {}
    with open(path) as fh:
        for line in fh:
            tok = line.split()
            if tok:
                out.setdefault(int(tok[0]), []).extend(int(t) for t in tok[1:])
    return out


def _int_dtype(upper):
    for dt in (np.int16, np.int32):
        if upper <= np.iinfo(dt).max:
            return dt
    return np.int64


def _object_array(items, shape=None):
    arr = np.empty(len(items) if shape is None else shape, dtype=object)
    flat = arr.reshape(-1)
    for k, v in enumerate(items):
        flat[k] = v
    return arr


def prepare(train_path, test_path, folder, batch_exp, neg_epochs, seed, log=print):
    """Write the files ``trainer.py`` loads, under ``folder`` (``data/<name>``)."""
    import scipy.sparse as sp

    train_u, test_u = read_split(train_path), read_split(test_path)
    n_users = 1 + max(max(train_u), max(test_u) if test_u else 0)
    n_items = 1 + max(max((max(v) for v in d.values() if v), default=0)
                      for d in (train_u, test_u))
    rng = np.random.RandomState(seed)
    idt = _int_dtype(max(n_users, n_items))

    pos_u = [train_u.get(u, []) for u in range(n_users)]
    train = np.array([(u, i) for u in range(n_users) for i in pos_u[u]], dtype=np.int64)
    item_freq = np.bincount(train[:, 1], minlength=n_items).astype(np.float64)
    user_freq = np.bincount(train[:, 0], minlength=n_users).astype(np.float64)

    # 5 groups of (about) equal total popularity, least popular items first
    order = np.argsort(item_freq, kind="stable")
    group_item, j, share = [[] for _ in range(N_GROUPS)], 0, item_freq.sum() / N_GROUPS
    for g in range(N_GROUPS):
        cur = 0.0
        while cur < share and j < n_items:
            group_item[g].append(int(order[j]))
            cur += item_freq[order[j]]
            j += 1
    group_of = {i: g for g, items in enumerate(group_item) for i in items}
    target_u, target_u_pop = [], []
    for u in range(n_users):
        items = sorted(test_u.get(u, []), key=lambda i: -item_freq[i])
        target_u.append(items)
        target_u_pop.append([[i for i in items if group_of.get(i) == g]
                             for g in range(N_GROUPS)])
    all_items = np.arange(n_items)
    candidate_u = [np.setdiff1d(all_items, pos_u[u]).tolist() for u in range(n_users)]

    bs = 2 ** batch_exp
    n_batch = n_users // bs
    users = np.arange(n_users, dtype=np.int32)
    rng.shuffle(users)
    user_batch = [users[b * bs:(b + 1) * bs] for b in range(n_batch)]
    user_batch.append(users[n_batch * bs:])
    pos_cnt = user_freq.astype(np.int64)
    train_batch, eval_mask = [], []
    for ub in user_batch:
        rows = [np.column_stack([np.full(len(pos_u[u]), u), pos_u[u]])
                for u in ub if pos_u[u]]
        train_batch.append(np.concatenate(rows).astype(idt) if rows
                           else np.zeros((0, 2), idt))
        mask = np.ones((len(ub), n_items), dtype=np.float32)
        for r, u in enumerate(ub):
            mask[r, pos_u[u]] = 0.0
        eval_mask.append(mask)

    # negatives: N_NEG per positive, uniform over the user's non-positive items
    log(f"sampling negatives for {neg_epochs} epochs")
    cand = [np.asarray(c, dtype=np.int64) for c in candidate_u]
    neg = np.empty((neg_epochs, len(user_batch)), dtype=object)
    for e in range(neg_epochs):
        for b, ub in enumerate(user_batch):
            parts = []
            for u in ub:
                k = N_NEG * pos_cnt[u]
                if k:
                    items = cand[u][rng.randint(0, len(cand[u]), size=k)]
                    parts.append(np.column_stack([np.full(k, u), items]))
            neg[e, b] = (np.concatenate(parts).astype(idt) if parts
                         else np.zeros((0, 2), idt))

    point, grp = os.path.join(folder, "point"), os.path.join(folder, "point", str(N_GROUPS))
    os.makedirs(grp, exist_ok=True)
    np.save(os.path.join(point, "train.npy"), train)
    np.save(os.path.join(point, "item_freq.npy"), item_freq)
    np.save(os.path.join(point, "user_freq.npy"), user_freq)
    for name, value in [("group_item", group_item), ("target_u", target_u),
                        ("target_u_pop", target_u_pop), ("candidate_u", candidate_u),
                        ("pos_u", pos_u), ("train_batch", train_batch),
                        ("user_batch", user_batch), ("eval_mask", eval_mask)]:
        np.save(os.path.join(grp, name + ".npy"), _object_array(value),
                allow_pickle=True)
    np.save(os.path.join(grp, "pos_cnt.npy"), pos_cnt)
    np.save(os.path.join(grp, "train_batch_neg_list.npy"), neg, allow_pickle=True)

    a = sp.coo_matrix((np.ones(len(train)), (train[:, 0], n_users + train[:, 1])),
                      shape=(n_users + n_items,) * 2)
    a = (a + a.T).tocsr()
    deg = np.asarray(a.sum(axis=1)).ravel()
    dinv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1.0)), 0.0)
    sp.save_npz(os.path.join(folder, "s_norm_adj_mat.npz"),
                sp.diags(dinv).dot(a).dot(sp.diags(dinv)).tocsr())
    return {"n_users": n_users, "n_items": n_items, "n_train": len(train),
            "n_test": sum(len(v) for v in target_u), "n_batches": len(user_batch),
            "batch_users": bs, "neg_epochs": neg_epochs, "seed": seed}


# ------------------------------------------------------------------- working tree
_SHIMS = {
    "data/preprocessor.py": ["preprocess_dataset", "preprocess_dataset_new"],
    "visualize.py": ["plot_test_curves_with_ranking_metrics"],
    "models/expomf.py": ["ExpoMF"],
    "models/dibmf.py": ["DIBMF"],
}


def build_tree(checkout, work):
    """``work/src``: links to every entry of ``checkout/src`` plus placeholders
    for the modules the repository does not ship (``_SHIMS``)."""
    src, dst = os.path.join(checkout, "src"), os.path.join(work, "src")
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = os.path.relpath(root, src)
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for f in files:
            link = os.path.join(dst, rel, f)
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(os.path.join(root, f)), link)
    for rel, names in _SHIMS.items():
        path = os.path.join(dst, rel)
        if os.path.exists(os.path.join(src, rel)):
            continue  # the authors' own module exists: use it
        with open(path, "w") as fh:
            fh.write('"""Placeholder (benchmarks/peers/resn_reference.py): this module is '
                     'not in LIN452/ReSN; the names below are imported but never used '
                     'on the regmf path."""\n\n\n')
            fh.writelines(f"def {name}(*args, **kwargs):\n    raise NotImplementedError("
                          f"'{name} is not shipped with LIN452/ReSN')\n\n\n"
                          for name in names)
    return dst


# ----------------------------------------------------------------------- observing
class Recorder:
    """Wraps the authors' evaluator: saves the tables, keeps their metrics."""

    def __init__(self, out_dir, evaluator):
        self.out_dir, self.evaluator = out_dir, evaluator
        self.session = self.model = None
        self.runs = []

    def new_model(self, model):
        self.model = model
        tag = f"reglam-{model.reglam:g}"
        self.runs.append({"tag": tag, "reglam": float(model.reglam),
                          "started": time.time(), "evals": []})
        os.makedirs(os.path.join(self.out_dir, tag), exist_ok=True)

    def tables(self):
        m = self.model
        if hasattr(m, "user_embeddings"):
            fetch = [m.user_embeddings, m.item_embeddings]
        else:  # LightGCN/XSimGCL backbones: the propagated tables
            fetch = [m.usera_embeddings, m.itema_embeddings]
        return self.session.run(fetch)

    def __call__(self, *args, **kwargs):
        run = self.runs[-1]
        epoch = 10 * len(run["evals"]) + 1  # trainer.py: evaluates when i % 10 == 0
        user, item = self.tables()
        np.savez(os.path.join(self.out_dir, run["tag"], f"emb-e{epoch:04d}.npz"),
                 user=user.astype(np.float32), item=item.astype(np.float32))
        start = time.time()
        ret, p = self.evaluator(*args, **kwargs)
        col = ret.columns[0]
        run["evals"].append({
            "epoch": epoch,
            "wall_s": start - run["started"],
            "eval_s": time.time() - start,
            "ndcg": float(ret.loc["N@20", col]), "recall": float(ret.loc["R@20", col]),
            "their_P": float(p[0]), "their_RR": [float(x) for x in p[1]],
        })
        self.dump()
        return ret, p

    def dump(self):
        for run in self.runs:
            evals = run["evals"]
            best = None
            for e in evals:  # trainer.py: strictly greater N@20 replaces the best
                if best is None or e["ndcg"] > best["ndcg"]:
                    best = e
            rec = dict(run, authors_selection={
                "rule": "best NDCG@20 on the test.txt given to their code, checked "
                        "every 10 epochs (trainer.py)",
                "epoch": best["epoch"] if best else None,
                "ndcg": best["ndcg"] if best else None,
                "recall": best["recall"] if best else None})
            with open(os.path.join(self.out_dir, run["tag"], "log.json"), "w") as fh:
                json.dump(rec, fh, indent=1, sort_keys=True)


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
            st.flush()

    def flush(self):
        for st in self.streams:
            st.flush()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkout", help="a work tree of LIN452/ReSN")
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--dataset", default="skc", help="name of the folder under WORK/data")
    ap.add_argument("--reglam", nargs="+", type=float, default=[0.0, 0.01],
                    help="their --reglam_list (ReSN's beta; 0 = plain MF)")
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--max-iters", type=int, default=221)
    ap.add_argument("--batch-exp", type=int, default=11)
    ap.add_argument("--lam", type=float, default=1e-5)
    ap.add_argument("--backbone", default="mf")
    ap.add_argument("--neg-epochs", type=int, default=201)
    ap.add_argument("--seed", type=int, default=0, help="our batching/negatives draw")
    ap.add_argument("--threads", type=int, default=0,
                    help="TF intra/inter-op threads (0: TensorFlow's choice)")
    args = ap.parse_args(argv)

    work = os.path.abspath(args.work)
    # the authors' code runs from WORK/src: every path is made absolute first
    args.train, args.test = os.path.abspath(args.train), os.path.abspath(args.test)
    os.makedirs(work, exist_ok=True)
    # open for the whole run: the tee below writes to it until the process ends
    console = open(os.path.join(work, "console.log"), "a")  # noqa: SIM115
    sys.stdout = _Tee(sys.__stdout__, console)
    sys.stderr = _Tee(sys.__stderr__, console)
    checkout = os.path.abspath(args.checkout)
    src = build_tree(checkout, work)
    folder = os.path.join(work, "data", args.dataset)

    t0 = time.time()
    info = prepare(args.train, args.test, folder, args.batch_exp, args.neg_epochs,
                   args.seed)
    info["prepare_s"] = time.time() - t0
    print("prepared", info, flush=True)

    os.chdir(src)
    sys.path.insert(0, src)
    import tensorflow as tf
    trainer = __import__("trainer")
    out_dir = os.path.join(work, "runs")
    rec = Recorder(out_dir, trainer.evaluator_new_nogroup)

    base_session = tf.Session

    class Session(base_session):
        def __init__(self, target="", graph=None, config=None):
            if args.threads and config is not None:
                config.intra_op_parallelism_threads = args.threads
                config.inter_op_parallelism_threads = args.threads
            base_session.__init__(self, target, graph, config)
            rec.session = self

    def observed(cls):
        class Observed(cls):
            def __init__(self, *a, **k):
                cls.__init__(self, *a, **k)
                rec.new_model(self)
        Observed.__name__ = cls.__name__
        return Observed

    tf.Session = Session
    for name in ("PointwiseRecommender_New", "PointwiseRecommender_LGN",
                 "PointwiseRecommender_XSimGCL"):
        setattr(trainer, name, observed(getattr(trainer, name)))
    trainer.evaluator_new_nogroup = rec

    command = ["main.py", "regmf", "--dataset", args.dataset,
               "--lr", repr(args.lr), "--dim", str(args.dim),
               "--max_iters", str(args.max_iters), "--batch_size", str(args.batch_exp),
               "--lam", repr(args.lam), "--alpha0", "0", "--backbone", args.backbone,
               "--reglam_list"] + [repr(x) for x in args.reglam]
    meta = {"command": " ".join(sys.argv), "authors_command": " ".join(command),
            "checkout": checkout, "prepared": info,
            "train": {"path": os.path.abspath(args.train), "sha256": sha256(args.train)},
            "test": {"path": os.path.abspath(args.test), "sha256": sha256(args.test)},
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "numpy": np.__version__, "shims": sorted(_SHIMS)}
    try:
        import subprocess
        meta["checkout_commit"] = subprocess.check_output(
            ["git", "-C", checkout, "rev-parse", "HEAD"]).decode().strip()
    except Exception:  # noqa: BLE001 - a tarball has no commit
        meta["checkout_commit"] = None
    with open(os.path.join(work, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True)

    sys.argv = command
    start = time.time()
    runpy.run_path(os.path.join(src, "main.py"), run_name="__main__")
    meta["train_s"] = time.time() - start
    for run in rec.runs:
        run["finished"] = time.time()
    rec.dump()
    with open(os.path.join(work, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True)
    print("reference runs:", [r["tag"] for r in rec.runs], "in", work, flush=True)


if __name__ == "__main__":
    main()
