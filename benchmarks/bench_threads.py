"""The README demo on idle and on busy cores, under OpenMP's wait policies.

PyTorch's CPU build runs its parallel operations on OpenMP threads that spin
while they wait for each other. This measures what that costs a user whose
machine is busy, and what the two usual remedies cost on idle cores:

* ``default``: nothing set (torch's threads, spinning);
* ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep);
* ``1-thread``: ``OMP_NUM_THREADS=1``.

Each is run as a user runs it, ``python -m skcollapse demo --quiet`` in a fresh
process (the variables are read when torch loads), on idle cores and beside
``--busy N`` processes that each hold one core (``while True: pass``). Every
figure is the wall time of the whole process, ``--repeats`` times, the
settings interleaved. The demo's own data (``make_interactions``, built in)
needs no data folder.

    python benchmarks/bench_threads.py --repeats 2

writes ``benchmarks/results/threads/demo.json``; ``make_tables.py`` builds the
table of ``docs/scaling.md`` from it. Run it on an otherwise idle machine: the
"idle" rows mean nothing otherwise (the load average before each run is kept).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import _results

SETTINGS = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1-thread": {"OMP_NUM_THREADS": "1"},
}
CONDITIONS = ("idle", "busy")
_SPIN = "while True: pass"


def run_demo(setting, extra_args=()):
    """Wall seconds of one ``python -m skcollapse demo --quiet`` process."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env.update(SETTINGS[setting])
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "skcollapse", "demo", "--quiet",
                    *extra_args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--busy", type=int, default=1,
                        help="processes that each hold one core in the busy runs")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS),
                        default=list(SETTINGS))
    parser.add_argument("--demo-args", nargs=argparse.REMAINDER, default=[],
                        help="passed to `skcollapse demo` (e.g. --epochs 2)")
    args = parser.parse_args(argv)
    runs = []
    for condition in CONDITIONS:
        spinners = []
        if condition == "busy":
            spinners = [subprocess.Popen([sys.executable, "-c", _SPIN])
                        for _ in range(args.busy)]
            time.sleep(1.0)
        try:
            for repeat in range(args.repeats):
                for setting in args.settings:
                    load = os.getloadavg()[0]
                    wall = run_demo(setting, args.demo_args)
                    runs.append({"condition": condition, "setting": setting,
                                 "repeat": repeat, "wall_s": wall,
                                 "load_before": load})
                    print(f"{condition:5s} {setting:9s} {wall:6.1f} s (load before "
                          f"{load:.1f})", flush=True)
        finally:
            for p in spinners:
                p.kill()
                p.wait()
    record = {
        "benchmark": "threads",
        "command": " ".join(sys.argv),
        "config": {"repeats": args.repeats, "busy": args.busy,
                   "settings": {k: SETTINGS[k] for k in args.settings},
                   "demo_args": list(args.demo_args), "cpus": os.cpu_count()},
        "runs": runs,
        "meta": _results.run_metadata(),
    }
    path = _results.write_result(os.path.join("threads", "demo.json"), record)
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
