"""Seeded fits give the curves and tables recorded before the issue-30 refactor.

The reference (``tests/data/refactor_invariance.npz``) was written by
``tests/_invariance_cases.py`` on the commit before the fit-state / sampler /
bases refactor.  The training is deterministic for a seed, so on the machine that
recorded it the tables are equal bit for bit (``sha/*``); elsewhere BLAS and CPU
may round differently, so the curves and table projections are compared to
float rounding and the hashes only where ``SKCOLLAPSE_BITWISE=1``.

How much rounding: several epochs of float32 training carry a CPU's rounding
forward. On an AMD EPYC machine (the reference came from another CPU) the
five cases differed from it by at most 9.3e-6 absolute and 2.4e-5 relative,
so the tolerance is rtol=1e-4, atol=1e-5: a few times that drift, and orders of
magnitude below what a changed sampler, seed stream or loss gives (values
that differ in the first digits).
"""

import os
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _invariance_cases import CASES, fit_case, summary

REFERENCE = pathlib.Path(__file__).parent / "data" / "refactor_invariance.npz"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", sorted(CASES))
def test_seeded_fit_is_unchanged(name):
    reference = np.load(REFERENCE)
    got = summary(fit_case(name))
    expected = {
        key.split(":", 1)[1]: reference[key]
        for key in reference.files
        if key.startswith(f"{name}:")
    }
    assert set(got) == set(expected)
    for key, value in expected.items():
        if key.startswith("sha/"):
            if os.environ.get("SKCOLLAPSE_BITWISE") == "1":
                assert str(got[key]) == str(value), key
            continue
        np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-5,
                                   err_msg=key)
