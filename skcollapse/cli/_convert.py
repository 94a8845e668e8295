"""``skcollapse convert``: rewrite a model file in the current, pickle-free format.

A format-1 model file is a pickle: reading it can run any code the file holds,
so :func:`~skcollapse.cli.load_model` refuses it unless ``trusted=True`` and
``skcollapse score`` refuses it always. ``skcollapse convert OLD NEW`` reads
``OLD`` as trusted (running the command is that decision) and writes ``NEW`` in
format 2, which every reader opens without running code. A format-2 ``OLD`` is
read safely and written again.
"""

from __future__ import annotations

from pathlib import Path

from skcollapse.cli import CLIError
from skcollapse.cli._model_file import (
    FORMAT_VERSION,
    check_output_path,
    load_model,
    read_model_header,
    save_model,
)


def add_parser(subparsers):
    """Register the ``convert`` sub-command."""
    parser = subparsers.add_parser(
        "convert",
        help="rewrite a trusted model file in the safe format (no pickle)",
        description=(
            f"Rewrite the model file OLD as NEW in format {FORMAT_VERSION}, which "
            "is read without running any code from it. A format-1 OLD is a "
            "Python pickle: reading it runs whatever code it holds, and this "
            "command reads it. Running 'skcollapse convert' says that you trust "
            "OLD (you wrote it, or it comes from someone you trust); never "
            "convert a file you were sent by someone you do not trust."
        ),
        epilog="Example: skcollapse convert old-mf.skc mf.skc",
    )
    parser.add_argument("old", metavar="OLD", help="model file to read (trusted)")
    parser.add_argument("new", metavar="NEW", help="model file to write")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace NEW if it exists"
    )
    parser.set_defaults(func=run_convert)
    return parser


def run_convert(args) -> int:
    """Handler of ``skcollapse convert``."""
    old, new = Path(args.old), Path(args.new)
    try:  # a wrong NEW fails before OLD is read
        check_output_path(new, overwrite=args.overwrite)
    except OSError as exc:
        raise CLIError(f"NEW: {exc.strerror}") from None
    header = read_model_header(old)
    estimator, meta = load_model(old, trusted=True, return_metadata=True)
    extra = {
        k: v for k, v in meta.items()
        if k not in ("format_version", "user_ids", "item_ids")
    }
    try:
        save_model(
            estimator,
            new,
            user_ids=meta["user_ids"],
            item_ids=meta["item_ids"],
            overwrite=args.overwrite,
            **extra,
        )
    except TypeError as exc:
        raise CLIError(
            f"cannot convert {old}: {exc} In Python: est = load_model(OLD, "
            "trusted=True), fix that parameter with est.set_params(...), then "
            "save_model(est, NEW)."
        ) from None
    print(
        f"converted {old} (format {header['format_version']}) to {new} (format "
        f"{FORMAT_VERSION}, no pickle: skcollapse score {new})"
    )
    return 0
