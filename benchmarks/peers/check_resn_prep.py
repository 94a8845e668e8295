"""Check that ``resn_reference.prepare`` writes what the authors' notebook writes.

Executes the code cells of ``src/data/process.ipynb`` of a ``LIN452/ReSN``
checkout as they are (the notebook hard-codes ``ml-1m`` and writes into the
checkout's ``data/ml-1m/point``), runs :func:`resn_reference.prepare` on the same
``data/ml-1m/train.txt``/``test.txt`` into ``OUT``, and compares the files both
write: equal arrays, or equal sets where the notebook's order comes from a Python
``set`` or an unstable sort. ``sample.ipynb`` (random batches and negatives) is
not compared; ``prepare`` follows its description. In the ReSN venv::

    benchmarks/peers/.venv-resn/bin/python benchmarks/peers/check_resn_prep.py \\
        CHECKOUT [OUT]

On the authors' ML-1M (December 2026): every comparison holds (about 2 minutes).
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resn_reference


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    checkout = os.path.abspath(argv[0])
    out = os.path.abspath(argv[1] if len(argv) > 1 else "/tmp/resn-prep-check")
    with open(os.path.join(checkout, "src", "data", "process.ipynb")) as fh:
        notebook = json.load(fh)
    here = os.getcwd()
    os.chdir(os.path.join(checkout, "src", "data"))  # its paths: ../../data/ml-1m
    namespace = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), namespace)  # noqa: S102 - their notebook
    os.chdir(here)
    data = os.path.join(checkout, "data", "ml-1m")
    resn_reference.prepare(os.path.join(data, "train.txt"), os.path.join(data, "test.txt"),
                           os.path.join(out, "ml-1m"), 11, 1, 0)
    theirs, ours = os.path.join(data, "point"), os.path.join(out, "ml-1m", "point")

    def load(folder, name):
        return np.load(os.path.join(folder, name + ".npy"), allow_pickle=True)

    checks = {}
    for name in ("train", "item_freq", "user_freq"):
        checks[name] = np.array_equal(load(theirs, name), load(ours, name))
    for name in ("group_item", "candidate_u"):  # set order / unstable argsort
        a, b = load(theirs, "5/" + name).tolist(), load(ours, "5/" + name).tolist()
        checks[name] = len(a) == len(b) and all(set(x) == set(y) for x, y in zip(a, b))
    checks["target_u"] = (load(theirs, "5/target_u").tolist()
                          == load(ours, "5/target_u").tolist())
    a, b = load(theirs, "5/target_u_pop").tolist(), load(ours, "5/target_u_pop").tolist()
    checks["target_u_pop"] = all(set(x[g]) == set(y[g]) for x, y in zip(a, b)
                                 for g in range(len(x)))
    for name, ok in checks.items():
        print(f"{name:>13}: {'same' if ok else 'DIFFERENT'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
