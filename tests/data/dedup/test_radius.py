"""The de-duplication's exact fixed-radius pair search against brute force."""
import numpy as np
import pytest

from dcgan_keras.data.dedup import match as dedup_match, radius as dedup_radius


def _brute_force(codes, radius):
    """Every (i, probe, j), i != j, within `radius`, by all distances."""
    u = codes.astype(np.float32)
    u /= np.linalg.norm(u, axis=2, keepdims=True) + 1e-6
    near = []
    for p in range(codes.shape[1]):
        distance = np.linalg.norm(u[:, p, None] - u[None, :, 0], axis=-1)
        i, j = np.where(distance <= radius + 1e-3)  # then decided by the exact arithmetic
        near.append(np.stack([i, np.full_like(i, p), j], 1)[i != j])
    near = np.concatenate(near)
    return {tuple(t) for t in near[dedup_radius.code_distances(codes, near) <= radius].tolist()}


def _clustered_codes(n=240, seed=0):
    """ReLU-like codes [n, 5, 128]: near copies of the first 40 images (all probes), a
    shifted probe that meets another image, and all-zero codes."""
    rng = np.random.default_rng(seed)
    codes = np.maximum(rng.normal(0.3, 1.0, (n, 5, 128)), 0)
    for k in range(40):
        codes[100 + k] = codes[k] * (1 + rng.normal(0, 0.003 * (k % 8), (5, 128)))
    codes[200, 3] = codes[5, 0] * (1 + rng.normal(0, 0.002, 128))
    codes[210:214] = 0
    return codes.astype(np.float16)


@pytest.mark.parametrize("radius,dims,slab_rows", [
    (0.01, 4, 37), (0.04, 16, 50), (0.08, 2, 1000), (0.04, 1, 7)])
def test_radius_pairs_are_exactly_the_pairs_within_the_radius(radius, dims, slab_rows):
    codes = _clustered_codes()
    pairs, stats = dedup_radius.radius_pairs(codes, radius, dims=dims, slab_rows=slab_rows)
    expected = _brute_force(codes, radius)
    assert {tuple(p) for p in pairs.tolist()} == expected
    assert len(pairs) == len(expected)  # no pair twice
    assert pairs.tolist() == sorted(pairs.tolist())
    assert (200, 3, 5) in expected and (210, 0, 211) in expected  # probe; zero codes
    assert stats["slabs"] == -(-len(codes) // slab_rows)
    assert len(pairs) <= stats["candidate_pairs"] < len(codes) ** 2 * 5


def test_radius_pairs_of_a_memory_map_in_slabs(tmp_path):
    codes = _clustered_codes(seed=1)
    np.save(tmp_path / "codes.npy", codes)
    mapped = np.load(tmp_path / "codes.npy", mmap_mode="r")
    pairs, _ = dedup_radius.radius_pairs(mapped, 0.04, slab_rows=16)
    whole, _ = dedup_radius.radius_pairs(codes, 0.04, slab_rows=len(codes))
    np.testing.assert_array_equal(pairs, whole)
    assert {tuple(p) for p in pairs.tolist()} == _brute_force(codes, 0.04)


def test_radius_search_finds_every_pair_the_hash_bands_verify():
    codes = _clustered_codes(seed=2)
    radius_groups, radius = dedup_match.verified_groups(codes, 0.04, search="radius")
    band_groups, bands = dedup_match.verified_groups(codes, 0.04, search="hash_bands")
    members = lambda groups: {int(i) for g in groups for i in g}  # noqa: E731
    assert members(band_groups) <= members(radius_groups)
    assert radius["verified_pairs"] >= bands["verified_pairs"] > 0


def test_too_few_images_and_a_bad_search():
    assert dedup_radius.radius_pairs(np.ones((1, 5, 128), np.float16), 0.04)[0].shape == (0, 3)
    with pytest.raises(ValueError, match="search must be one of"):
        dedup_match.verified_groups(np.ones((3, 5, 128), np.float16), 0.04, search="tree")
