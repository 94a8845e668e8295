"""Training cost per row of every cell of the plan: the compute estimate in README.md.

Usage::

    python benchmarks/preregistered/time_cells.py [--fields 10,39] [--models ...]

For each model at SE 1x/2x/4x/10x and ME 2x/4x/10x (3x: the geometric mean of
2x and 4x), the CPU time (one thread) of one epoch over 8,192 random rows
(batch 2048) after a warm-up fit, with the plan's sizes and ``F`` fields of 300
codes. The plan's cost is the sum over its cells of seeds x microseconds per row;
the earlier 200,000-row synthetic run (10 fields, 3 seeds, 138 fits: every cell
but SE 10x of NFwFM and xDeepFM) took 147 min on the 2 cores (README), so the
plan at ``n`` rows and ``F`` fields is estimated at ``147 min x cost(plan, F) /
cost(earlier, 10) x n / 200,000``, assuming the fits stop after as many epochs.
Timings only: nothing here looks at a model's accuracy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))

from bench_scaling import MODELS, plan_estimator, plan_seeds

EARLIER_MIN, EARLIER_ROWS = 147, 200_000
PROBED = [("SE", 1), ("SE", 2), ("SE", 4), ("SE", 10),
          ("ME", 2), ("ME", 4), ("ME", 10)]


def probe(name, n_fields, experiment, n_rows=8192):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 300, size=(n_rows, n_fields))
    y = rng.integers(0, 2, n_rows)
    out = {}
    for kind, s in PROBED:
        est = plan_estimator(name, kind, s, experiment, "cpu").set_params(
            max_epochs=1, random_state=0, cardinalities=[300] * n_fields)
        est.fit(X[:2048], y[:2048])  # warm-up
        t0 = time.process_time()
        est.partial_fit(X, y)
        out[(kind, s)] = 1e6 * (time.process_time() - t0) / n_rows
    return out


def us_per_row(table, kind, s):
    if (kind, s) in table:
        return table[(kind, s)]
    if s == 3:
        return math.sqrt(table[(kind, 2)] * table[(kind, 4)])
    raise KeyError((kind, s))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default=os.path.join(HERE, "me_synthetic.json"))
    parser.add_argument("--fields", default="10,39")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with open(args.plan) as fh:
        plan = json.load(fh)
    exp = plan["experiment"]
    models = [m for m in args.models.split(",") if m]
    cells = [("SE", s) for s in exp["se_scales"]] + [
        ("ME", s) for s in exp["me_scales"] if s > 1]
    earlier = [("SE", s) for s in (1, 2, 3, 4, 10)] + [("ME", s) for s in (2, 3, 4)]
    cost = {}
    for n_fields in [int(f) for f in args.fields.split(",")]:
        plan_us = earlier_us = 0.0
        for name in models:
            table = probe(name, n_fields, exp)
            print(f"{n_fields} fields {name}: " + ", ".join(
                f"{k} {s}x {v:.1f}" for (k, s), v in table.items()) + " us/row",
                flush=True)
            plan_us += sum(len(plan_seeds(exp, s)) * us_per_row(table, k, s)
                           for k, s in cells)
            earlier_us += sum(3 * us_per_row(table, k, s) for k, s in earlier
                              if not (name in ("nfwfm", "xdeepfm") and k == "SE"
                                      and s == 10))
        cost[n_fields] = (plan_us, earlier_us)
        print(f"{n_fields} fields: plan {plan_us:,.0f} us, earlier run's cells "
              f"{earlier_us:,.0f} us (seeds x us/row summed)")
    if 10 in cost:
        base = cost[10][1]
        for n_fields, (plan_us, _) in cost.items():
            for rows in (plan["make_ctr"]["n_samples"], 404_000):
                minutes = EARLIER_MIN * plan_us / base * rows / EARLIER_ROWS
                print(f"{n_fields} fields, {rows:,} rows: {EARLIER_MIN} min x "
                      f"{plan_us:,.0f} / {base:,.0f} x {rows:,} / "
                      f"{EARLIER_ROWS:,} = {minutes:.0f} min = "
                      f"{minutes / 60:.1f} h on the 2 cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
