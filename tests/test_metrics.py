"""Collapse metrics against an independent float64 ``np.linalg.svd`` reference."""

import numpy as np
import pytest

from skcollapse.metrics import (
    GramAccumulator,
    alignment,
    collapse_metrics,
    condition_number,
    effective_rank,
    information_abundance,
    normalized_std,
    random_reference,
    singular_values,
    stable_rank,
    uniformity,
)
from skcollapse.testing import CollapseMetricTests
from skcollapse.testing import reference_effective_rank as ref_erank
from skcollapse.testing import reference_erank_of_spectrum as erank_of
from skcollapse.testing import reference_information_abundance as ref_ia
from skcollapse.testing import reference_singular_values as ref_sigma

# ----------------------------------------------------------------- references
# ref_sigma, erank_of, ref_erank, ref_ia: skcollapse.testing's float64
# np.linalg.svd references, imported above


def _matrix(kind, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "random":
        E = rng.standard_normal((300, 20))
    elif kind == "planted":
        # Exactly rank 5 in float32 too: small integer factors, exact products.
        U = rng.integers(-3, 4, (1500, 5)) * np.array([8, 4, 2, 1, 1])
        E = (U @ rng.integers(-3, 4, (5, 32))).astype(np.float64)
    elif kind == "ill":  # condition number 1e5
        U = np.linalg.qr(rng.standard_normal((1200, 24)))[0]
        V = np.linalg.qr(rng.standard_normal((24, 24)))[0]
        E = U @ np.diag(np.geomspace(1.0, 1e-5, 24)) @ V.T
    elif kind == "tall":
        E = rng.standard_normal((6000, 48)) @ rng.standard_normal((48, 48))
    elif kind == "wide":
        E = rng.standard_normal((25, 120))
    elif kind == "offset":  # large common offset, tests centering precision
        E = 1e4 + rng.standard_normal((3000, 16)) * np.geomspace(1, 1e-2, 16)
    return E.astype(dtype)


KINDS = ["random", "planted", "ill", "tall", "wide", "offset"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["auto", "gram", "svd"])
def test_metrics_match_float64_svd(kind, dtype, method):
    E = _matrix(kind, dtype)
    ref64 = E.astype(np.float64)  # the exact values the metric sees
    rtol = 1e-6
    if kind == "offset" and method == "gram":
        # Uncentered Gram of a huge-offset matrix: its small singular values sit
        # below the Gram route's documented resolution; only the IA/erank top is
        # checked through the centered variant below.
        pytest.skip("uncentered Gram of a 1e4 offset is below the route's resolution")
    s = ref_sigma(ref64)
    np.testing.assert_allclose(effective_rank(E, method=method), erank_of(s), rtol=rtol)
    np.testing.assert_allclose(
        information_abundance(E, method=method), s.sum() / s[0], rtol=rtol
    )
    np.testing.assert_allclose(
        stable_rank(E, method=method), (s**2).sum() / s[0] ** 2, rtol=rtol
    )
    np.testing.assert_allclose(
        effective_rank(E, spectrum="eig", method=method), erank_of(s, power=2),
        rtol=rtol,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["gram", "svd"])
def test_centered_and_row_normalized_match_reference(kind, method):
    E = _matrix(kind, np.float64, seed=1)
    for opts in ({"center": True}, {"row_normalize": True},
                 {"center": True, "row_normalize": True}):
        np.testing.assert_allclose(
            effective_rank(E, method=method, **opts), ref_erank(E, **opts), rtol=1e-6
        )
        np.testing.assert_allclose(
            information_abundance(E, method=method, **opts), ref_ia(E, **opts),
            rtol=1e-6,
        )


def test_singular_values_match_reference_and_order():
    E = _matrix("tall", np.float32)
    s = singular_values(E)
    ref = ref_sigma(E)
    assert s.dtype == np.float64 and s.shape == (48,)
    assert np.all(np.diff(s) <= 0)
    np.testing.assert_allclose(s, ref, rtol=1e-9)
    wide = _matrix("wide", np.float64)
    assert singular_values(wide).shape == (25,)


def test_condition_number_matches_reference():
    E = _matrix("ill", np.float64)
    s = ref_sigma(E)
    np.testing.assert_allclose(condition_number(E, method="svd"), s[0] / s[-1], rtol=1e-6)
    np.testing.assert_allclose(condition_number(E), s[0] / s[-1], rtol=1e-4)
    assert condition_number(np.zeros((5, 3))) == float("inf")
    assert condition_number(np.outer(np.arange(1.0, 6), [1.0, 2.0])) == float("inf")
    # centering removes one dimension when n <= d: cond over the attainable rank
    wide = np.random.default_rng(0).standard_normal((4, 10))
    sc = ref_sigma(wide, center=True)[:3]
    np.testing.assert_allclose(condition_number(wide, center=True), sc[0] / sc[-1],
                               rtol=1e-6)


# ----------------------------------------------------------------- known answers
class TestEffectiveRankKnownAnswers(CollapseMetricTests):
    def metric(self, E):
        return effective_rank(E)


class TestInformationAbundanceKnownAnswers(CollapseMetricTests):
    def metric(self, E):
        return information_abundance(E)


class TestStableRankKnownAnswers(CollapseMetricTests):
    def metric(self, E):
        return stable_rank(E)


class TestMemmapKnownAnswers(CollapseMetricTests):
    """Same answers when the table is streamed from a memmap in tiny chunks."""

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path):
        self.tmp_path = tmp_path
        self.count = 0

    def convert(self, E):
        self.count += 1
        path = self.tmp_path / f"t{self.count}.npy"
        np.save(path, E)
        return np.load(path, mmap_mode="r")

    def metric(self, E):
        return effective_rank(E)


def test_normalize_divides_by_attainable_rank():
    E = _matrix("random", np.float64)
    np.testing.assert_allclose(
        effective_rank(E, normalize=True), ref_erank(E) / 20, rtol=1e-9
    )
    np.testing.assert_allclose(
        information_abundance(E, normalize=True), ref_ia(E) / 20, rtol=1e-9
    )
    # centered wide table: rank is at most n - 1
    W = _matrix("wide", np.float64)
    np.testing.assert_allclose(
        effective_rank(W, center=True, normalize=True),
        ref_erank(W, center=True) / 24, rtol=1e-9,
    )
    np.testing.assert_allclose(effective_rank(np.eye(7), normalize=True), 1.0)


def test_erank_eig_never_exceeds_sv():
    rng = np.random.default_rng(0)
    for _ in range(5):
        E = rng.standard_normal((200, 10)) * rng.uniform(0.01, 2, 10)
        assert effective_rank(E, spectrum="eig") <= effective_rank(E) + 1e-12


# ----------------------------------------------------------------- several tables
def test_list_and_dict_of_tables_give_per_table_values():
    rng = np.random.default_rng(0)
    tables = {"user": rng.standard_normal((100, 8)), "item": np.eye(6)}
    out = information_abundance(tables)
    assert set(out) == {"user", "item"}
    np.testing.assert_allclose(out["user"], ref_ia(tables["user"]), rtol=1e-9)
    np.testing.assert_allclose(out["item"], 6.0)
    as_list = effective_rank(list(tables.values()))
    assert isinstance(as_list, list) and len(as_list) == 2
    np.testing.assert_allclose(as_list[1], 6.0)
    with pytest.raises(ValueError, match="empty dict"):
        effective_rank({})


def test_collapse_metrics_equal_single_functions():
    E = _matrix("tall", np.float32)
    out = collapse_metrics(
        E, metrics=["effective_rank", "information_abundance", "stable_rank",
                    "condition_number", "normalized_std"],
    )
    assert out["effective_rank"] == effective_rank(E)
    assert out["information_abundance"] == information_abundance(E)
    assert out["stable_rank"] == stable_rank(E)
    assert out["condition_number"] == condition_number(E)
    assert out["normalized_std"] == normalized_std(E)
    rel = collapse_metrics(E, metrics=["effective_rank"], relative=True)
    np.testing.assert_allclose(rel["effective_rank"], effective_rank(E, relative=True))
    with pytest.raises(ValueError, match="metrics"):
        collapse_metrics(E, metrics=["nope"])


# ----------------------------------------------------------------- streaming
def test_memmap_streams_and_matches_in_memory(tmp_path):
    E = _matrix("tall", np.float32)
    path = tmp_path / "E.npy"
    np.save(path, E)
    for mode in ("r", "r+", "c"):
        M = np.load(path, mmap_mode=mode)
        assert isinstance(M, np.memmap)
        np.testing.assert_allclose(effective_rank(M), ref_erank(E), rtol=1e-6)
        np.testing.assert_allclose(
            information_abundance(M, center=True), ref_ia(E, center=True), rtol=1e-6
        )
        np.testing.assert_allclose(normalized_std(M), normalized_std(E), rtol=1e-9)
        # many small chunks: several threads stream and release pages concurrently
        np.testing.assert_allclose(
            singular_values(M, chunk_size=97), ref_sigma(E), rtol=1e-8
        )
        # a view that starts mid-file still maps the right rows
        np.testing.assert_allclose(
            effective_rank(M[123:5000]), ref_erank(E[123:5000]), rtol=1e-6
        )
    # the memmap is still readable after its pages were released
    np.testing.assert_array_equal(np.load(path, mmap_mode="r")[:5], E[:5])
    raw = np.memmap(tmp_path / "raw.bin", dtype=np.float32, mode="w+", shape=E.shape)
    raw[:] = E
    np.testing.assert_allclose(effective_rank(raw), ref_erank(E), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(raw[-3:]), E[-3:])


def test_memmap_with_nan_is_rejected(tmp_path):
    E = _matrix("tall", np.float32)
    E[5777, 3] = np.nan
    path = tmp_path / "bad.npy"
    np.save(path, E)
    with pytest.raises(ValueError, match="NaN or infinite"):
        effective_rank(np.load(path, mmap_mode="r"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        normalized_std(np.load(path, mmap_mode="r"))


def test_chunk_size_does_not_change_the_result():
    E = _matrix("offset", np.float64)
    ref = ref_sigma(E, center=True)
    for chunk in (1, 7, 1000, 10**6):
        s = singular_values(E, center=True, method="gram", chunk_size=chunk)
        np.testing.assert_allclose(s, ref, rtol=1e-7)
    with pytest.raises(ValueError, match="chunk_size"):
        singular_values(E, chunk_size=0)


def test_gram_accumulator_merges_exactly():
    rng = np.random.default_rng(0)
    E = 50.0 + rng.standard_normal((999, 6)) * [5, 3, 1, 0.5, 0.1, 0.01]
    parts = np.array_split(E, 5)
    for center in (False, True):
        whole = GramAccumulator(6, center=center).update(E)
        merged = GramAccumulator(6, center=center)
        for p in parts:
            merged.merge(GramAccumulator(6, center=center).update(p))
        np.testing.assert_allclose(merged.gram, whole.gram, rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(
            merged.singular_values(), ref_sigma(E, center=center), rtol=1e-8
        )
        assert merged.n_samples_seen == 999


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "NaN or infinite"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), ValueError, "NaN or infinite"),
        (np.full((2000, 4), np.nan), ValueError, "NaN or infinite"),
        (np.zeros((0, 3)), ValueError, "empty"),
        (np.zeros((3, 0)), ValueError, "empty"),
        (np.ones(5), ValueError, "2-D"),
        (np.ones((2, 3, 4)), ValueError, "2-D"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "numeric dtype"),
        (np.array([[1, "b"]], dtype=object), TypeError, "numeric dtype"),
        (np.ones((3, 3), dtype=complex), TypeError, "numeric dtype"),
        ("not an array", TypeError, "2-D array"),
        (3.0, TypeError, "2-D array"),
        ([[1.0, 2.0], [3.0]], TypeError, "could not be converted"),
    ],
)
def test_bad_input_raises_clear_errors(bad, exc, match):
    for func in (effective_rank, information_abundance, normalized_std, stable_rank):
        with pytest.raises(exc, match=match):
            func(bad)


def test_non_finite_values_are_not_hidden_by_row_normalization():
    E = np.random.default_rng(0).standard_normal((3000, 8))
    E[17, 2] = np.nan
    for method in ("gram", "svd"):
        with pytest.raises(ValueError, match="NaN or infinite"):
            effective_rank(E, row_normalize=True, method=method)
    E[17, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        information_abundance(E, row_normalize=True, center=True)
    # huge but finite rows are normalised, not zeroed
    E[17] = 1e200
    ref = ref_erank(np.vstack([E[:17], np.ones((1, 8)), E[18:]]), row_normalize=True)
    np.testing.assert_allclose(effective_rank(E, row_normalize=True), ref, rtol=1e-6)


def test_bad_options_raise():
    E = np.eye(3)
    with pytest.raises(ValueError, match="spectrum"):
        effective_rank(E, spectrum="squared")
    with pytest.raises(ValueError, match="method"):
        effective_rank(E, method="qr")
    with pytest.raises(TypeError, match="center"):
        effective_rank(E, center="yes")
    with pytest.raises(ValueError, match=r"'t' parameter of uniformity must be a float"):
        uniformity(E, t=-1)
    with pytest.raises(ValueError, match=r"'alpha' parameter of alignment must be"):
        alignment(E, E, alpha=0)
    with pytest.raises(ValueError, match="same shape"):
        alignment(E, np.eye(4))
    with pytest.raises(ValueError, match="at least 2 rows"):
        uniformity(np.ones((1, 3)))


def test_integer_and_bool_inputs_are_cast():
    np.testing.assert_allclose(effective_rank(np.eye(4, dtype=int)), 4.0)
    np.testing.assert_allclose(information_abundance(np.eye(3, dtype=bool)), 3.0)


# ----------------------------------------------------------------- row metrics
def test_normalized_std_matches_direct_formula():
    rng = np.random.default_rng(0)
    E = rng.standard_normal((5000, 16)) + 0.3
    Z = E / np.linalg.norm(E, axis=1, keepdims=True)
    ref = Z.std(axis=0, ddof=1).mean()
    np.testing.assert_allclose(normalized_std(E), ref, rtol=1e-10)
    np.testing.assert_allclose(normalized_std(E, relative=True), ref * 4, rtol=1e-10)
    # isotropic reference 1/sqrt(d); collapsed -> 0; zero rows stay zero
    iso = rng.standard_normal((20000, 16))
    np.testing.assert_allclose(normalized_std(iso, relative=True), 1.0, atol=0.02)
    assert normalized_std(np.outer(rng.uniform(1, 2, 50), np.ones(4))) < 1e-12
    assert normalized_std(np.zeros((4, 3))) == 0.0
    assert normalized_std(np.ones((1, 3))) == 0.0


def test_alignment_and_uniformity_match_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((60, 5)), rng.standard_normal((60, 5))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    ref_align = np.mean([np.linalg.norm(a - b) ** 2 for a, b in zip(xn, yn)])
    np.testing.assert_allclose(alignment(x, y), ref_align, rtol=1e-10)
    ref_a3 = np.mean([np.linalg.norm(a - b) ** 3 for a, b in zip(xn, yn)])
    np.testing.assert_allclose(alignment(x, y, alpha=3), ref_a3, rtol=1e-10)
    pairs = [np.exp(-2 * np.sum((xn[i] - xn[j]) ** 2))
             for i in range(60) for j in range(i + 1, 60)]
    np.testing.assert_allclose(uniformity(x), np.log(np.mean(pairs)), rtol=1e-10)
    # more than one block of pairs
    big = rng.standard_normal((2500, 3))
    bn = big / np.linalg.norm(big, axis=1, keepdims=True)
    d2 = np.clip(2 - 2 * bn @ bn.T, 0, None)
    iu = np.triu_indices(2500, k=1)
    np.testing.assert_allclose(
        uniformity(big, max_samples=None), np.log(np.mean(np.exp(-2 * d2[iu]))),
        rtol=1e-9,
    )
    # a collapsed table is the least uniform possible: log(1) = 0
    assert uniformity(np.ones((10, 4))) == pytest.approx(0.0, abs=1e-12)
    # subsampling is reproducible
    assert uniformity(big, max_samples=500, random_state=3) == uniformity(
        big, max_samples=500, random_state=3
    )


# ----------------------------------------------------------------- random reference
def test_random_reference_matches_direct_simulation():
    rng = np.random.default_rng(123)
    for n, d in ((300, 12), (12, 40), (50, 50)):
        direct = [ref_erank(rng.standard_normal((n, d))) for _ in range(200)]
        direct_ia = [ref_ia(rng.standard_normal((n, d))) for _ in range(200)]
        ref = random_reference((n, d), "effective_rank", n_draws=200)
        ref_ia_val = random_reference((n, d), "information_abundance", n_draws=200)
        se = np.std(direct) / np.sqrt(200)
        se_ia = np.std(direct_ia) / np.sqrt(200)
        assert abs(ref - np.mean(direct)) < 6 * se + 1e-9
        assert abs(ref_ia_val - np.mean(direct_ia)) < 6 * se_ia + 1e-9
    centered = [ref_erank(rng.standard_normal((30, 8)), center=True) for _ in range(200)]
    ref_c = random_reference((30, 8), center=True, n_draws=200)
    assert abs(ref_c - np.mean(centered)) < 6 * np.std(centered) / np.sqrt(200)


def test_relative_is_about_one_for_a_gaussian_table():
    E = np.random.default_rng(5).standard_normal((3000, 16))
    for func in (effective_rank, information_abundance, stable_rank):
        np.testing.assert_allclose(func(E, relative=True), 1.0, atol=0.05)
        np.testing.assert_allclose(
            func(E, relative=True, row_normalize=True), 1.0, atol=0.05
        )
    collapsed = E[:, :2] @ np.random.default_rng(6).standard_normal((2, 16))
    assert information_abundance(collapsed, relative=True) < 0.2
    np.testing.assert_allclose(
        random_reference(E, "normalized_std"), 1 / np.sqrt(16)
    )
    with pytest.raises(ValueError, match="metric"):
        random_reference((3, 3), "nope")
    with pytest.raises(ValueError, match="shape"):
        random_reference((3, 0))
