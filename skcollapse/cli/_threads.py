"""A note for users who train on a busy machine (``skcollapse demo`` and ``train``)."""

from __future__ import annotations

import os

__all__ = ["busy_machine_hint"]


def busy_machine_hint(load=None, n_cpus=None, environ=None):
    """A hint to print before training on a busy machine, or None.

    PyTorch's CPU build runs each parallel operation on OpenMP threads that
    spin while they wait for each other. When other processes hold the cores,
    a waiting thread burns the time slice its partner needs, and a training
    loop of many small operations pays for it at every step (the demo takes
    several times as long beside one busy core; ``OMP_WAIT_POLICY=PASSIVE``
    or ``OMP_NUM_THREADS=1`` undo most of that but cost on idle cores: see
    ``docs/scaling.md`` and ``benchmarks/bench_threads.py``). The policy is
    read when torch loads, so the hint names the variables rather than
    setting them. ``None`` when the 1-minute load average is under half the
    CPUs, or the user already set ``OMP_WAIT_POLICY`` or ``OMP_NUM_THREADS``.
    """
    environ = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in environ or "OMP_NUM_THREADS" in environ:
        return None
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on this platform
            return None
    n_cpus = n_cpus or os.cpu_count() or 1
    if n_cpus < 2 or load < 0.5 * n_cpus:
        return None
    return (f"note: this machine is busy (load {load:.1f} on {n_cpus} CPUs); "
            "PyTorch's threads spin while they wait for a core, which can make "
            "training several times slower. If it is slow, run it again with "
            "OMP_WAIT_POLICY=PASSIVE (or OMP_NUM_THREADS=1) set before it starts.")
