"""The ``skcollapse`` command line (also ``python -m skcollapse``).

Sub-commands live in their own modules, listed in :data:`_COMMANDS`. Each module
defines ``add_parser(subparsers)``, which registers its sub-parser and sets
``func=handler`` where ``handler(args) -> int`` returns the exit code. Modules are
imported when :func:`main` runs, so a listed module that is missing fails loudly.

User errors (:class:`CLIError`, and ``ValueError``/``TypeError``/``OSError`` such
as a missing file) print one line ``skcollapse: error: ...`` on stderr and exit
with code 2, like argparse's own usage errors; no traceback. Output piped into a
reader that stops early (``skcollapse score X | head``) ends quietly, exit code 1.

Model files
-----------
The file ``skcollapse train`` writes is a fitted estimator with its metadata, in
a versioned format (see :mod:`skcollapse.cli._model_file`). Python code writes
and reads the same files with :func:`save_model` and :func:`load_model`::

    from skcollapse.cli import load_model, save_model

    save_model(estimator, "mf.skc", model="mf", note="baseline")
    estimator, meta = load_model("mf.skc", return_metadata=True)

Reading a model file runs no code from it (format 2: JSON and plain arrays). A
format-1 file, written by older releases, is a pickle: ``load_model`` refuses it
unless ``trusted=True``, ``skcollapse score`` refuses it always, and
``skcollapse convert OLD NEW`` rewrites a trusted one in format 2. A file whose
format version this release does not know is refused with a ``ValueError`` that
names the file and the versions found and supported.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from skcollapse.cli._model_file import (
    FORMAT_VERSION,
    load_model,
    read_model_header,
    save_model,
)

__all__ = [
    "FORMAT_VERSION",
    "CLIError",
    "load_model",
    "main",
    "read_model_header",
    "save_model",
]

#: Modules that each contribute one sub-command through ``add_parser(subparsers)``.
_COMMANDS = [
    "skcollapse.cli._convert",
    "skcollapse.cli._demo",
    "skcollapse.cli._score",
    "skcollapse.cli._train",
]

#: Exit code for bad user input (same as argparse usage errors).
EXIT_USAGE = 2


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command of :data:`_COMMANDS`."""
    from skcollapse import __version__

    parser = argparse.ArgumentParser(
        prog="skcollapse",
        description="Measure, watch and fix embedding collapse in recommender models.",
    )
    parser.add_argument(
        "--version", action="version", version=f"skcollapse {__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in _COMMANDS:
        module = importlib.import_module(module_name)
        module.add_parser(subparsers)
    return parser


def _error(message) -> int:
    text = " ".join(str(message).split()) or "unknown error"
    print(f"skcollapse: error: {text}", file=sys.stderr)
    return EXIT_USAGE


def _silence_stdout():
    """Point stdout at devnull, so the final flush finds no broken pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # stdout is not a real file
        pass


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 on success, 2 for bad input, 1 when stdout was closed
        early (broken pipe), 130 on Ctrl-C.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader went away (``skcollapse score X | head``): stop quietly, as
        # Python's docs recommend (signal module, "Note on SIGPIPE").
        _silence_stdout()
        return 1
    except CLIError as exc:
        return _error(exc)
    except FileNotFoundError as exc:
        name = exc.filename if exc.filename is not None else exc
        return _error(f"no such file: {name}")
    except (ValueError, TypeError, OSError) as exc:
        return _error(exc)
    except KeyboardInterrupt:
        print("skcollapse: interrupted", file=sys.stderr)
        return 130
