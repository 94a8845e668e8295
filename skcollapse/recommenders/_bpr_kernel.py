"""A compiled CPU kernel for one MF-BPR step with the row-sparse Adam update.

:func:`~skcollapse.nn.bpr_step` computes the loss and sparse gradient of an
MF-BPR batch in a few torch calls; :class:`~skcollapse.nn.SparseRowAdam` then
updates the rows of the batch. On a CPU the cost of that pair is dominated by
the per-call dispatch of a dozen small tensor operations, not by arithmetic
(an MF batch is ``B (2 + n)`` rows of ``d`` floats). This module does both in
one numba-compiled loop over the batch, reading and writing the table and the
optimiser's moment buffers in place (numpy views of the same memory): the
same arithmetic in the table's dtype, with the rows of the batch updated
once each, as the coalesced sparse gradient is.

The step has two compiled phases: the gradient, summed per distinct row of the
batch (serial: a popular item's row collects many pairs' terms), then Adam on
the distinct rows. The second phase is memory-bound (three table-sized arrays
read and written at random rows) and its rows are disjoint, so it is cut into
ranges run on ``threads`` threads (the estimators pass torch's thread count),
each thread taking the next range when it is free, so a worker that starts
late on a busy machine leaves its share to the calling thread instead of
making it wait (the rows and their arithmetic are the same whichever thread
runs them: the result does not depend on the thread count);
the kernels release the GIL, and the pool is plain Python threads, so the
step stays safe under fork and under callers' own threads, where numba's
``parallel=True`` layers are not (the OpenMP layer is not fork-safe, and the
built-in one aborts on concurrent calls).

numba is imported lazily, on the first call of :func:`get_bpr_adam_kernel`
(see :mod:`skcollapse.utils._numba`):
``import skcollapse`` does not pay for it, and without numba the estimators
keep the torch step. The compiled code is cached on disk (numba's
``cache=True``), so a new process does not compile it again.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from skcollapse.utils._numba import lazy_kernel

__all__ = ["adam_hyper", "get_bpr_adam_kernel"]


@lazy_kernel
def get_bpr_adam_kernel():
    """The compiled kernel, or ``None`` when numba is missing or switched off."""
    import numba
    import numpy as np

    # error_model="numpy": no ZeroDivisionError check in the loops, which would
    # keep them from vectorising (the denominators are > 0 by construction)
    @numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
    def bpr_grad(weight, n_users, users, pos, neg, hyper, slot, rows, grad,
                 pos_score, extra_user, extra_item):
        """One BPR batch: its loss and its gradient, summed per distinct row.

        ``hyper`` holds, in the table's dtype (so that the arithmetic stays in
        that dtype, as torch's, and vectorises), ``weight_decay / B``,
        ``1 / (B n)``, ``beta1``, ``beta2``, ``1 - beta1``, ``1 - beta2``,
        ``eps``, Adam's step size ``lr / (1 - beta1**t)`` and
        ``1 / sqrt(1 - beta2**t)``: see :func:`adam_hyper`.
        ``slot`` (one int per table row, all -1 between calls) maps a table
        row to its place in ``rows``/``grad`` while the batch's gradient is
        accumulated; ``rows`` and ``grad`` hold at least ``B (2 + n)``
        entries. ``extra_user``/``extra_item`` (``(B, d)``, or ``(0, d)`` for
        none) are gradients of other terms (a regularizer's penalty) with
        respect to the batch's user and positive-item rows, added to theirs.
        Returns the batch loss and the number of distinct rows (``rows[:n]``
        with their gradients ``grad[:n]``; ``slot`` maps them until
        :func:`adam_rows` resets it); ``pos_score[b]`` receives
        ``<p_u, q_i>`` of pair ``b``.
        """
        B = users.shape[0]
        n = neg.shape[1]
        d = weight.shape[1]
        wd, inv = hyper[0], hyper[1]
        # scalars of the table's dtype (a Python int or float would promote
        # the arithmetic to float64)
        zero = wd - wd
        one = inv / inv
        n_rows = 0
        loss = 0.0
        l2 = zero
        # the gradient of every occurrence, summed per distinct row (reads the
        # weights only: the update below starts once every row is summed)
        for b in range(B):
            ru = users[b]
            ri = pos[b] + n_users
            wu = weight[ru]
            wi = weight[ri]
            s_pos = zero
            for c in range(d):
                s_pos += wu[c] * wi[c]
            pos_score[b] = s_pos
            for r in (ru, ri):
                if slot[r] < 0:
                    slot[r] = n_rows
                    rows[n_rows] = r
                    grad[n_rows, :] = 0
                    n_rows += 1
            gu = grad[slot[ru]]
            gi = grad[slot[ri]]
            coef_sum = zero
            for k in range(n):
                rj = neg[b, k] + n_users
                wj = weight[rj]
                s_neg = zero
                for c in range(d):
                    s_neg += wu[c] * wj[c]
                x = s_pos - s_neg
                # softplus(-x) and sigmoid(-x), stable for either sign of x
                if x > 0:
                    e = np.exp(-x)
                    loss += np.log1p(e)
                    sig = e / (one + e)
                else:
                    e = np.exp(x)
                    loss += -x + np.log1p(e)
                    sig = one / (one + e)
                coef = -sig * inv
                coef_sum += coef
                if slot[rj] < 0:
                    slot[rj] = n_rows
                    rows[n_rows] = rj
                    grad[n_rows, :] = 0
                    n_rows += 1
                gj = grad[slot[rj]]
                # d/dp_u of -log sigmoid(p_u.q_i - p_u.q_j) gets -coef q_j;
                # d/dq_j gets -coef p_u
                for c in range(d):
                    gu[c] -= coef * wj[c]
                    gj[c] -= coef * wu[c]
                if wd != 0:
                    for c in range(d):
                        gj[c] += wd * wj[c]
                        l2 += wj[c] * wj[c]
            for c in range(d):
                gu[c] += coef_sum * wi[c]
                gi[c] += coef_sum * wu[c]
            if wd != 0:
                for c in range(d):
                    gu[c] += wd * wu[c]
                    gi[c] += wd * wi[c]
                    l2 += wu[c] * wu[c] + wi[c] * wi[c]
            if extra_user.shape[0]:
                eu = extra_user[b]
                ei = extra_item[b]
                for c in range(d):
                    gu[c] += eu[c]
                    gi[c] += ei[c]
        return loss * inv + 0.5 * wd * l2, n_rows

    @numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
    def adam_rows(weight, exp_avg, exp_avg_sq, hyper, slot, rows, grad, lo, hi):
        """Adam on the distinct rows ``rows[lo:hi]`` (SparseRowAdam's rule);
        resets their ``slot``. Disjoint ranges touch disjoint rows, so they
        may run on several threads at once (the kernel releases the GIL)."""
        d = weight.shape[1]
        beta1, beta2, c1, c2 = hyper[2], hyper[3], hyper[4], hyper[5]
        eps, step_size, inv_bias2 = hyper[6], hyper[7], hyper[8]
        for s in range(lo, hi):
            r = rows[s]
            slot[r] = -1
            g = grad[s]
            m = exp_avg[r]
            v = exp_avg_sq[r]
            w = weight[r]
            # two loops that vectorise: the Adam direction into g, then w
            for c in range(d):
                mc = beta1 * m[c] + c1 * g[c]
                vc = beta2 * v[c] + c2 * g[c] * g[c]
                m[c] = mc
                v[c] = vc
                g[c] = mc / (np.sqrt(vc) * inv_bias2 + eps)
            for c in range(d):
                w[c] -= step_size * g[c]

    def bpr_adam_step(weight, exp_avg, exp_avg_sq, n_users, users, pos, neg,
                      hyper, slot, rows, grad, pos_score, extra_user,
                      extra_item, threads=1):
        """One BPR batch: loss, gradient and the lazy-Adam update of its rows
        (``bpr_grad``, then ``adam_rows`` over ``threads`` threads); the
        arguments are ``bpr_grad``'s, the table and moments updated in place.
        Returns the batch loss."""
        loss, n_rows = bpr_grad(weight, n_users, users, pos, neg, hyper, slot,
                                rows, grad, pos_score, extra_user, extra_item)
        _run_split(adam_rows, (weight, exp_avg, exp_avg_sq, hyper, slot, rows,
                               grad), n_rows, threads)
        return loss

    return bpr_adam_step


#: below this many rows a second thread costs more than it saves
_MIN_ROWS_PER_THREAD = 1024
_POOL = {}


def _pool(threads):
    """This process's thread pool of ``threads - 1`` workers (made anew in a
    forked child, whose copy of the parent's pool has no threads)."""
    key = (os.getpid(), threads)
    pool = _POOL.get(key)
    if pool is None:
        _POOL.clear()
        pool = _POOL[key] = ThreadPoolExecutor(max_workers=threads - 1,
                                               thread_name_prefix="skcollapse-adam")
    return pool


#: ranges each thread's share is cut into, so that a thread that starts late
#: (a busy machine) finds fewer left instead of making the others wait for it
_RANGES_PER_THREAD = 4


class _Ranges:
    """``kernel(*args, lo, hi)`` over ranges given out one at a time to the
    threads that ask (:meth:`work`); :meth:`wait` returns once every range
    given out is done. A worker that starts after the calling thread has run
    every range finds none left and returns without touching the arrays."""

    def __init__(self, kernel, args, bounds):
        self.kernel, self.args, self.bounds = kernel, args, bounds
        self.next = 0
        self.running = 0
        self.error = None
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)

    def work(self):
        """Run ranges until none is left to give out."""
        last = len(self.bounds) - 1
        while True:
            with self.lock:
                k = self.next
                if k >= last:
                    return
                self.next = k + 1
                self.running += 1
            try:
                self.kernel(*self.args, self.bounds[k], self.bounds[k + 1])
            except BaseException as exc:  # re-raised by wait()  # noqa: BLE001
                self.error = exc
            finally:
                with self.lock:
                    self.running -= 1
                    if not self.running:
                        self.done.notify_all()

    def wait(self):
        """Return once no range is running (after :meth:`work` on this
        thread, every range has been given out)."""
        with self.lock:
            while self.running:
                self.done.wait()
        if self.error is not None:
            raise self.error


def _run_split(kernel, args, n, threads):
    """``kernel(*args, lo, hi)`` over ``[0, n)`` on at most ``threads``
    threads, the calling one included: the rows are cut into
    :data:`_RANGES_PER_THREAD` equal ranges per thread, taken one at a time by
    whichever thread is free (a late worker leaves more to the others)."""
    threads = max(1, min(int(threads), n // _MIN_ROWS_PER_THREAD))
    if threads == 1:
        kernel(*args, 0, n)
        return
    parts = threads * _RANGES_PER_THREAD
    job = _Ranges(kernel, args, [n * k // parts for k in range(parts + 1)])
    pool = _pool(threads)
    for _ in range(threads - 1):
        pool.submit(job.work)
    job.work()
    job.wait()


def adam_hyper(out, *, batch_size, n_negatives, weight_decay, lr, beta1, beta2,
               eps, step):
    """Fill ``out`` (9 entries, the table's dtype) with the kernel's scalars for
    Adam step ``step`` (1-based) of a batch of ``batch_size`` rows."""
    out[:] = (
        weight_decay / batch_size,
        1.0 / (batch_size * n_negatives),
        beta1,
        beta2,
        1.0 - beta1,
        1.0 - beta2,
        eps,
        lr / (1.0 - beta1**step),
        1.0 / math.sqrt(1.0 - beta2**step),
    )
    return out


