"""Seconds per training epoch of RecBole's LightGCN, for benchmarks/bench_speed.py.

Run by the RecBole venv's interpreter (``benchmarks/peers/setup_recbole.sh``),
never the project's: it imports nothing from skcollapse. The data are RecBole
atomic files that ``bench_speed.py`` writes into a temporary folder::

    DATA_PATH/NAME/NAME.train.inter   user_id:token <TAB> item_id:token
    DATA_PATH/NAME/NAME.valid.inter   (RecBole needs three parts; not used)
    DATA_PATH/NAME/NAME.test.inter

RecBole's own ``Trainer._train_epoch`` is timed, one call per epoch (its
negative-sampling data loader included), after a warm-up epoch that is not
counted; evaluation is never run. The last line of stdout is one JSON object:
``epoch_s`` and ``epoch_cpu_s`` (each timed epoch), ``loss`` (mean batch loss
of every epoch, the warm-up first), ``warmup_s``, ``setup_s`` (dataset, data loaders and
model: RecBole builds the normalised adjacency here) and the versions.

Usage::

    .venv-recbole/bin/python recbole_lightgcn.py DATA_PATH NAME [--epochs 3]
        [--dim 64] [--layers 3] [--batch-size 2048] [--lr 1e-3]
        [--reg-weight 1e-4] [--threads 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_path")
    parser.add_argument("name")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--reg-weight", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole's Config reads command-line overrides

    import torch

    torch.set_num_threads(args.threads)

    import numpy
    import pandas
    import recbole
    import scipy
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import LightGCN
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    # RecBole writes tensorboard logs and checkpoints under the working folder
    os.chdir(args.data_path)
    config = Config(
        model="LightGCN",
        dataset=args.name,
        config_dict={
            "data_path": args.data_path,
            "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id"]},
            "USER_ID_FIELD": "user_id",
            "ITEM_ID_FIELD": "item_id",
            "embedding_size": args.dim,
            "n_layers": args.layers,
            "reg_weight": args.reg_weight,
            "train_batch_size": args.batch_size,
            "learner": "adam",
            "learning_rate": args.lr,
            "train_neg_sample_args": {
                "distribution": "uniform", "sample_num": 1, "alpha": 1.0,
                "dynamic": False, "candidate_num": 0,
            },
            "epochs": args.epochs + 1,
            "use_gpu": False,
            "device": "cpu",
            "seed": args.seed,
            "show_progress": False,
            "log_wandb": False,
            "checkpoint_dir": os.path.join(args.data_path, "saved"),
            "worker": 0,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    t0 = time.perf_counter()
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    model = LightGCN(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    setup_s = time.perf_counter() - t0

    epoch_s, epoch_cpu_s, losses = [], [], []
    n_batches = len(train_data)
    for epoch in range(args.epochs + 1):
        t, c = time.perf_counter(), time.process_time()
        loss = trainer._train_epoch(train_data, epoch, show_progress=False)
        t, c = time.perf_counter() - t, time.process_time() - c
        if epoch:  # the first epoch is a warm-up
            epoch_s.append(t)
            epoch_cpu_s.append(c)
        else:
            warmup_s = t
        total = sum(loss) if isinstance(loss, tuple) else loss
        losses.append(float(total) / max(n_batches, 1))
    print(json.dumps({
        "epoch_s": epoch_s,
        "epoch_cpu_s": epoch_cpu_s,
        "loss": losses,
        "setup_s": setup_s,
        "warmup_s": warmup_s,
        "n_users": int(dataset.user_num),
        "n_items": int(dataset.item_num),
        "n_train": len(train_data.dataset),
        "batches_per_epoch": n_batches,
        "threads": torch.get_num_threads(),
        "versions": {
            "recbole": recbole.__version__, "torch": torch.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__,
            "pandas": pandas.__version__,
        },
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
