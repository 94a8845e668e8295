"""Torch tensors give numpy's numbers, computed on their own device."""

import numpy as np
import pytest
import torch

from skcollapse.metrics import (
    alignment,
    collapse_metrics,
    condition_number,
    effective_rank,
    information_abundance,
    normalized_std,
    singular_values,
    stable_rank,
    uniformity,
)
from skcollapse.testing import CollapseMetricTests

SPECTRAL = (effective_rank, information_abundance, stable_rank, condition_number)


def _tables():
    rng = np.random.default_rng(0)
    return {
        "tall": rng.standard_normal((1500, 24)) * np.geomspace(1, 1e-3, 24),
        "wide": rng.standard_normal((20, 50)),
        "offset": 30.0 + rng.standard_normal((1500, 8)),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["tall", "wide", "offset"])
def test_torch_matches_numpy(torch_device, name, dtype):
    E = _tables()[name]
    T = torch.as_tensor(E, dtype=dtype, device=torch_device)
    E_seen = T.cpu().double().numpy()  # the values the tensor really holds
    for func in SPECTRAL:
        for opts in ({}, {"center": True}, {"row_normalize": True}):
            got = func(T, **opts)
            assert isinstance(got, float)
            np.testing.assert_allclose(got, func(E_seen, **opts), rtol=1e-6)
    got = normalized_std(T)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, normalized_std(E_seen), rtol=1e-9)
    np.testing.assert_allclose(
        singular_values(T), singular_values(E_seen), rtol=1e-7, atol=1e-12
    )
    np.testing.assert_allclose(uniformity(T), uniformity(E_seen), rtol=1e-9)
    half = E_seen.shape[0] // 2
    np.testing.assert_allclose(
        alignment(T[:half], T[half : 2 * half]),
        alignment(E_seen[:half], E_seen[half : 2 * half]),
        rtol=1e-9,
    )


def test_tensor_requiring_grad_and_parameter(torch_device):
    emb = torch.nn.Embedding(300, 16).to(torch_device)
    value = effective_rank(emb.weight)
    assert isinstance(value, float)
    np.testing.assert_allclose(
        value, effective_rank(emb.weight.detach().cpu().numpy()), rtol=1e-6
    )
    assert emb.weight.grad is None  # no graph was built
    out = collapse_metrics({"a": emb.weight, "b": emb.weight[:, :4]})
    assert set(out) == {"a", "b"}


def test_torch_bad_input():
    with pytest.raises(ValueError, match="NaN or infinite"):
        effective_rank(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        effective_rank(torch.full((3000, 4), float("inf")))
    with pytest.raises(ValueError, match="NaN or infinite"):
        normalized_std(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        effective_rank(torch.ones(5))
    with pytest.raises(ValueError, match="empty"):
        information_abundance(torch.ones(0, 3))
    with pytest.raises(TypeError, match="real floating"):
        effective_rank(torch.ones(3, 3, dtype=torch.complex64))
    np.testing.assert_allclose(effective_rank(torch.eye(4, dtype=torch.int64)), 4.0)


class TestTorchKnownAnswers(CollapseMetricTests):
    def convert(self, E):
        return torch.as_tensor(E)

    def metric(self, E):
        return effective_rank(E)


class TestTorchIAKnownAnswers(CollapseMetricTests):
    def convert(self, E):
        return torch.as_tensor(E)

    def metric(self, E):
        return information_abundance(E)
