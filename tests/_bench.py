"""Loading a script of ``benchmarks/`` as a module, for the tests of its tables."""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def load_benchmark(name, *, shared=False):
    """``benchmarks/<name>.py`` as a fresh module; ``shared=True`` registers it
    in ``sys.modules`` (and reuses it there), so that the scripts importing it
    see the same module object (e.g. a redirected ``_results.RESULTS``)."""
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    if shared and name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    if shared:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
