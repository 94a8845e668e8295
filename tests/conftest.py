"""Shared fixtures: deterministic seeds, an rng, and a cpu/cuda device fixture."""

import os
import random

import numpy as np
import pytest
import torch

from skcollapse.utils import _device
from skcollapse.utils._warnings import reset_warn_once


@pytest.fixture(autouse=True)
def _fresh_warn_once():
    """Each test sees the once-per-process warnings (utils/_warnings.py) afresh."""
    reset_warn_once()
    yield


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    if _device.HAS_CUDA:
        torch.cuda.manual_seed_all(0)
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run on one torch thread: no oversubscription of shared CI cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def torch_device(request):
    if request.param == "cuda" and not _device.HAS_CUDA:
        pytest.skip("CUDA is not available on this machine")
    return request.param


def pytest_collection_modifyitems(config, items):
    if os.environ.get("SKCOLLAPSE_NETWORK_TESTS") == "1":
        return
    skip_net = pytest.mark.skip(reason="network tests need SKCOLLAPSE_NETWORK_TESTS=1")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip_net)
