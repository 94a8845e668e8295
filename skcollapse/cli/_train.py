"""``skcollapse train``: train one recommender on interactions and save it.

The data is the built-in synthetic set, a fetched MovieLens release, or a CSV /
TSV / Parquet file of interactions. Flags mirror the estimator's parameters
(``--embedding-dim`` is ``embedding_dim``, ...); any other parameter, including a
regularizer's own (``regularizer__weight``), goes through ``--param NAME=VALUE``.

The trained estimator is written with :func:`skcollapse.cli.save_model` (the
versioned model-file format of :mod:`skcollapse.cli._model_file`), with the run's
metadata in its header; ``skcollapse score MODEL`` and
:func:`skcollapse.cli.load_model` read it back.
"""

from __future__ import annotations

import ast
import datetime as _dt
import os
import sys
import time
from pathlib import Path

import numpy as np

from skcollapse.cli import CLIError
from skcollapse.cli._model_file import check_output_path, save_model

#: Model name on the command line -> estimator class in skcollapse.recommenders.
MODELS = {"mf": "MFRecommender", "lightgcn": "LightGCNRecommender"}

#: MovieLens releases ``--data`` accepts, e.g. ``--data ml-100k``.
MOVIELENS = {
    "ml-100k": "100k",
    "ml-1m": "1m",
    "ml-latest-small": "latest-small",
    "ml-20m": "20m",
    "ml-25m": "25m",
}

#: Built-in synthetic data: ``make_interactions`` with these sizes.
SYNTHETIC = {"n_users": 1000, "n_items": 500}

#: (flag, estimator parameter, type, help, models that have it or None for all).
PARAM_FLAGS = (
    ("--embedding-dim", "embedding_dim", int, "embedding size", None),
    ("--loss", "loss", str, "training loss: bpr, bce, softmax, align or ccl", None),
    ("--n-negatives", "n_negatives", int, "negatives per positive (or per batch)", None),
    (
        "--negative-sampling",
        "negative_sampling",
        str,
        "independent (per positive) or shared (one set per batch)",
        None,
    ),
    ("--similarity", "similarity", str, "score: dot or cosine", None),
    ("--temperature", "temperature", float, "softmax loss temperature", None),
    ("--weight-decay", "weight_decay", float, "L2 on the batch embeddings", None),
    ("--init-std", "init_std", float, "std of the initial embeddings", None),
    ("--lr", "lr", float, "learning rate", None),
    ("--max-epochs", "max_epochs", int, "training epochs", None),
    ("--batch-size", "batch_size", int, "positive pairs per batch", None),
    ("--k", "k", int, "cut-off of the ranking metrics (NDCG@k)", None),
    ("--n-layers", "n_layers", int, "LightGCN propagation layers", ("lightgcn",)),
    (
        "--regularizer",
        "regularizer",
        str,
        "anti-collapse regularizer name (see skcollapse.regularizers)",
        None,
    ),
)

#: Routed parameter prefixes that ``--param`` accepts besides plain parameters.
_ROUTED_PREFIXES = (
    "regularizer__",
    "module__",
    "optimizer__",
    "criterion__",
    "iterator_train__",
    "iterator_valid__",
)


# ------------------------------------------------------------------ the parser
def add_parser(subparsers):
    """Register the ``train`` sub-command."""
    import argparse

    parser = subparsers.add_parser(
        "train",
        help="train one recommender on interactions and save it",
        description=(
            "Train one recommender on a data set and save it to a model file that "
            "'skcollapse score' reads. DATA is 'synthetic' (built-in, the default), "
            f"a MovieLens release ({', '.join(MOVIELENS)}; downloaded once), or a "
            "CSV/TSV/Parquet file of (user, item) interactions."
        ),
        epilog=(
            "Example: skcollapse train --model lightgcn --data ratings.csv "
            "--user-col userId --item-col movieId --regularizer logdet "
            "--param regularizer__weight=0.1 -o lightgcn.skc"
        ),
    )
    parser.add_argument(
        "--model", choices=sorted(MODELS), default="mf", help="model (default: mf)"
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        default="synthetic",
        metavar="DATA",
        help="'synthetic', a MovieLens name, or a CSV/TSV/Parquet file",
    )
    data.add_argument(
        "--user-col", help="user column of a file (name or 0-based position)"
    )
    data.add_argument(
        "--item-col", help="item column of a file (name or 0-based position)"
    )
    data.add_argument("--sep", help="field separator of a text file (default: guessed)")
    data.add_argument("--data-home", help="cache folder of fetched data sets")
    data.add_argument(
        "--test-size",
        type=float,
        default=0.0,
        help="hold out this fraction of each user's interactions and report "
        "ranking quality on it (default: 0, train on everything)",
    )
    est = parser.add_argument_group("estimator parameters")
    for flag, param, kind, text, models in PARAM_FLAGS:
        where = f" ({', '.join(models)} only)" if models else ""
        est.add_argument(
            flag,
            dest=f"param_{param}",
            type=kind,
            default=argparse.SUPPRESS,
            metavar=kind.__name__.upper(),
            help=f"{text}{where}; sets {param}",
        )
    est.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other estimator parameter, e.g. regularizer__weight=0.1 "
        "(repeatable; VALUE is a Python literal or a string)",
    )
    est.add_argument(
        "--no-monitor",
        action="store_true",
        help="do not record erank/IA of the tables after each epoch",
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "-o",
        "--output",
        help="model file to write (default: <model>.skc in the current folder)",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="replace an existing model file"
    )
    run.add_argument(
        "--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)"
    )
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    run.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.set_defaults(func=run_train)
    return parser


# ------------------------------------------------------------------ parameters
def _literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def estimator_params(args) -> dict:
    """Estimator parameters from the flags and ``--param`` pairs."""
    params = {}
    for _, param, _, _, models in PARAM_FLAGS:
        key = f"param_{param}"
        if hasattr(args, key):
            if models is not None and args.model not in models:
                flag = "--" + param.replace("_", "-")
                raise CLIError(
                    f"{flag} is not a parameter of --model {args.model} "
                    f"(only of {', '.join(models)})"
                )
            value = getattr(args, key)
            if param == "regularizer" and value.lower() == "none":
                value = None
            params[param] = value
    for item in args.param:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CLIError(f"--param expects NAME=VALUE, got {item!r}")
        if name in ("device", "random_state", "verbose", "callbacks"):
            flag = {"device": "--device", "random_state": "--seed"}.get(name)
            hint = f"; use {flag}" if flag else ""
            raise CLIError(f"--param {name} is set by the command itself{hint}")
        if name in params:
            raise CLIError(f"parameter {name} is given twice")
        params[name] = _literal(value.strip())
    return params


def _estimator_class(model):
    from skcollapse import recommenders

    return getattr(recommenders, MODELS[model])


def _check_param_names(cls, params, model):
    valid = set(cls().get_params(deep=False))
    for name in params:
        if name in valid or name.startswith(_ROUTED_PREFIXES):
            continue
        raise CLIError(
            f"{name} is not a parameter of {cls.__name__} (--model {model}); "
            f"valid ones include {', '.join(sorted(p for p in valid if '__' not in p))}"
        )


# ------------------------------------------------------------------ data
def _column(frame, spec, candidates, role):
    columns = list(frame.columns)
    if spec is None:
        lowered = {str(c).lower(): c for c in columns}
        for cand in candidates:
            if cand in lowered:
                return lowered[cand]
        position = 0 if role == "user" else 1
        if len(columns) <= position:
            raise CLIError(
                f"the file has {len(columns)} column(s); need a {role} column "
                f"(give --{role}-col)"
            )
        return columns[position]
    if spec in columns:
        return spec
    if str(spec).lstrip("-").isdigit():
        pos = int(spec)
        if 0 <= pos < len(columns):
            return columns[pos]
        raise CLIError(f"--{role}-col {spec}: the file has only {len(columns)} columns")
    raise CLIError(
        f"--{role}-col {spec!r} is not a column of the file; columns: "
        f"{', '.join(map(str, columns))}"
    )


def _read_table(path, sep):
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError:
            raise CLIError(
                "reading Parquet needs pyarrow or fastparquet: pip install pyarrow "
                "(or the 'parquet' extra: pip install 'skcollapse[parquet]')"
            ) from None
        except (OSError, ValueError) as exc:
            raise CLIError(f"{path}: cannot read as Parquet ({exc})") from None
    if suffix not in (".csv", ".tsv", ".txt", ".dat", ".data"):
        raise CLIError(
            f"{path}: unsupported data file type {suffix or '(none)'!r}; use .csv, "
            ".tsv, .txt, .dat, .data or .parquet"
        )
    first = _first_line(path)
    if sep is None:
        sep = _guess_sep(first, suffix)
    tokens = first.split() if sep == r"\s+" else first.split(sep)
    tokens = [t.strip() for t in tokens if t.strip()]
    # a first row of numbers is data (e.g. MovieLens u.data), not a header
    header = None if tokens and all(_is_number(t) for t in tokens) else "infer"
    try:
        return pd.read_csv(
            path, sep=sep, header=header, engine="python" if sep == r"\s+" else "c"
        )
    except pd.errors.EmptyDataError:
        raise CLIError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CLIError(f"{path}: cannot parse ({first})") from None


def _first_line(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    return line.rstrip("\r\n")
    except OSError as exc:
        raise CLIError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return ""


def _guess_sep(line, suffix):
    """The separator of a text file from its first line (default ',')."""
    if suffix == ".tsv":
        return "\t"
    counts = {c: line.count(c) for c in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    if counts[best]:
        return best
    if len(line.split()) > 1:
        return r"\s+"
    return ","


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def interactions_from_frame(frame, *, user_col=None, item_col=None, source="file"):
    """The user and item columns of a DataFrame, as ``(user, item)`` pairs of ids.

    Returns a DataFrame with columns ``"user"`` and ``"item"`` holding the ids as
    they are in the file (integers or strings): the estimator learns their
    vocabulary (``user_ids_``, ``item_ids_``) exactly as when it is fitted on the
    same columns in Python, so both give the same model.
    """
    import pandas as pd

    if frame.shape[0] == 0:
        raise CLIError(f"{source} holds no interactions (no data rows)")
    ucol = _column(frame, user_col, ("user", "user_id", "userid", "uid"), "user")
    icol = _column(
        frame, item_col, ("item", "item_id", "itemid", "iid", "movieid"), "item"
    )
    if ucol == icol:
        raise CLIError(f"user and item columns are both {ucol!r}")
    for col in (ucol, icol):
        missing = int(frame[col].isna().sum())
        if missing:
            raise CLIError(f"column {col!r} of {source} has {missing} missing values")
    return pd.DataFrame(
        {"user": frame[ucol].to_numpy(), "item": frame[icol].to_numpy()}
    )


def load_interactions(
    source, *, user_col=None, item_col=None, sep=None, data_home=None, seed=0
):
    """Return ``(X, info)`` for ``--data``: the ``(user, item)`` pairs with the
    data's own ids, and a description of the data."""
    if source == "synthetic":
        from skcollapse.datasets import make_interactions

        X = make_interactions(**SYNTHETIC, random_state=seed)
        info = {
            "source": "synthetic",
            "description": "make_interactions("
            + ", ".join(f"{k}={v}" for k, v in SYNTHETIC.items())
            + f", random_state={seed})",
        }
        return X, info
    if source in MOVIELENS:
        from skcollapse.datasets import fetch_movielens

        bunch = fetch_movielens(MOVIELENS[source], data_home=data_home)
        # MovieLens' own ids, as a user reading u.data would pass them
        X = np.asarray(bunch.data, dtype=np.int64)
        info = {"source": source, "description": f"MovieLens {MOVIELENS[source]}"}
        return X, info
    path = Path(source)
    if not path.exists():
        raise CLIError(
            f"--data {source!r} is neither 'synthetic', a MovieLens name "
            f"({', '.join(MOVIELENS)}) nor an existing file"
        )
    if path.is_dir():
        raise CLIError(f"--data {source} is a directory; give a CSV/Parquet file")
    frame = _read_table(path, sep)
    X = interactions_from_frame(
        frame, user_col=user_col, item_col=item_col, source=str(path)
    )
    info = {"source": os.fspath(path), "description": f"interactions of {path.name}"}
    return X, info


# ------------------------------------------------------------------ the command
def _say(args, *parts):
    if not args.quiet:
        print(*parts)


def _callbacks(args):
    callbacks = []
    if not args.no_monitor:
        try:
            from skcollapse.callbacks import CollapseMonitor
        except ImportError:  # pragma: no cover - the callbacks ship together
            CollapseMonitor = None
        if CollapseMonitor is not None:
            callbacks.append(CollapseMonitor())
    if not args.quiet and sys.stderr.isatty():
        # batch-level bar on a terminal; the per-epoch log is printed either way
        from skorch.callbacks import ProgressBar

        callbacks.append(ProgressBar(detect_notebook=False))
    return callbacks


#: Collapse metrics stored in the model file, as ``<table>_<alias>`` keys.
TABLE_METRICS = ("effective_rank", "information_abundance")


def _table_metrics(estimator):
    """Metrics of every table, from one spectrum per table (``collapse_metrics``)."""
    from skcollapse.metrics import (
        collapse_metrics,
        get_embedding_tables,
        resolve_collapse_metrics,
    )

    entries = resolve_collapse_metrics(list(TABLE_METRICS))
    out = {}
    for name, table in get_embedding_tables(estimator, to_numpy=True).items():
        values = collapse_metrics(table, metrics=[m.name for m in entries])
        for m in entries:
            out[f"{name}_{m.alias}"] = float(values[m.name])
    return out


def run_train(args) -> int:
    """Handler of ``skcollapse train``."""
    from skcollapse.utils._device import resolve_device

    if not 0.0 <= args.test_size < 1.0:
        raise CLIError(f"--test-size must be in [0, 1), got {args.test_size}")
    params = estimator_params(args)
    device = str(resolve_device(args.device, name="--device"))
    cls = _estimator_class(args.model)
    _check_param_names(cls, params, args.model)
    output = Path(args.output) if args.output else Path(f"{args.model}.skc")
    try:  # before any work: a wrong --output fails now, not after training
        check_output_path(output, overwrite=args.overwrite)
    except OSError as exc:
        raise CLIError(f"--output: {exc.strerror}") from None

    if device == "cpu" and not args.quiet:
        from skcollapse.cli._threads import busy_machine_hint

        hint = busy_machine_hint()
        if hint:
            print(hint, file=sys.stderr)
    X, info = load_interactions(
        args.data,
        user_col=args.user_col,
        item_col=args.item_col,
        sep=args.sep,
        data_home=args.data_home,
        seed=args.seed,
    )
    from skcollapse.utils._interactions import check_interactions

    users, items = check_interactions(X)
    n_users, n_items = np.unique(users).size, np.unique(items).size
    _say(
        args,
        f"data: {info['description']}: {X.shape[0]} interactions, "
        f"{n_users} users, {n_items} items",
    )
    X_train, X_test = X, None
    if args.test_size > 0:
        from skcollapse.model_selection import train_test_split_interactions

        X_train, X_test = train_test_split_interactions(
            X, test_size=args.test_size, random_state=args.seed
        )
        _say(args, f"held out {X_test.shape[0]} interactions for evaluation")

    # the estimator learns the ids of the training part, as in Python; held-out
    # ids it never saw count as misses in the evaluation
    estimator = cls(
        **params,
        random_state=args.seed,
        device=device,
        verbose=0 if args.quiet else 1,
        callbacks=_callbacks(args),
    )
    _say(args, f"training {cls.__name__} on {device} ...")
    from skcollapse.recommenders import ModelFitError

    start = time.perf_counter()
    try:
        estimator.fit(X_train)
    except ModelFitError as exc:  # diverged: a user-fixable setting, no traceback
        raise CLIError(f"training failed: {exc}") from None
    fit_seconds = time.perf_counter() - start

    metrics = _table_metrics(estimator)
    if X_test is not None:
        metrics[f"ndcg@{estimator.k}"] = float(estimator.score(X_test))
    metadata = {
        "model": args.model,
        "estimator": f"{type(estimator).__module__}.{type(estimator).__name__}",
        "params": {k: v for k, v in params.items()},
        "seed": args.seed,
        "device": device,
        "data": {
            **info,
            "n_interactions": int(X.shape[0]),
            "n_train": int(X_train.shape[0]),
            "n_users": n_users,
            "n_items": n_items,
            "test_size": args.test_size,
        },
        "fit_seconds": round(fit_seconds, 3),
        "metrics": metrics,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "skcollapse_version": _version(),
    }
    save_model(  # checks the path again: it may have changed during training
        estimator,
        output,
        user_ids=estimator.user_ids_,
        item_ids=estimator.item_ids_,
        overwrite=args.overwrite,
        **metadata,
    )
    summary = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    _say(args, f"trained in {fit_seconds:.1f} s: {summary}")
    _say(args, f"saved {output} (score it with: skcollapse score {output})")
    return 0


def _version():
    from skcollapse import __version__

    return __version__
