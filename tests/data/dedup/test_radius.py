"""The de-duplication's exact fixed-radius pair search against brute force."""
import functools

import numpy as np
import pytest

from dcgan_keras.data.dedup import match as dedup_match, radius as dedup_radius


RADII = (0.01, 0.04, 0.08)  # the radii the tests search with
MARGIN = 1e-3  # no pair is closer than this to a radius (float32 errors are ~1e-6)


def _distances(codes, rows=slice(None), images=slice(None)):
    """float64 [rows, probes, images]: ||unit(codes[i, p]) - unit(codes[j, 0])|| for the
    images i in `rows`, every probe p and the images j in `images`; the unit of an all-zero
    code is 0."""
    x = np.asarray(codes, np.float64)  # float16 codes are exact in float64
    norm = np.linalg.norm(x, axis=2, keepdims=True)
    u = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    a, b = u[rows], u[images, 0]  # [R, P, 128], [J, 128]
    squared = ((a ** 2).sum(-1)[..., None] + (b ** 2).sum(-1)[None, None]
               - 2 * np.einsum("rpk,jk->rpj", a, b))
    return np.sqrt(np.maximum(squared, 0.0))


def _brute_force(codes, radius):
    """Every (i, probe, j), i != j, within `radius`, from all float64 distances."""
    d = _distances(codes)
    d[np.arange(len(d)), :, np.arange(len(d))] = np.inf  # i == j
    return {tuple(t) for t in np.argwhere(d <= radius).tolist()}


def _far_from_the_radii(codes, row):
    """True if every pair with image `row` on either side is MARGIN away from each radius."""
    d = np.concatenate([_distances(codes, rows=[row]).ravel(),
                        _distances(codes, images=[row]).ravel()])
    return all(np.abs(d - r).min() > MARGIN for r in RADII)


def _unit(x):
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def _first_axis(codes):
    """The first principal axis [128] of the unit-length image codes (probe 0)."""
    x = _unit(codes[:, 0])
    return np.linalg.eigh(np.cov(x - x.mean(0), rowvar=False))[1][:, -1]


# Rows planted just inside each radius along the first principal axis: (row, image, distance).
ON_AXIS = ((220, 60, RADII[0] - 1.5 * MARGIN), (221, 61, RADII[1] - 1.5 * MARGIN),
           (222, 62, RADII[2] - 1.5 * MARGIN))


def _clustered_codes(n=240, seed=0):
    """ReLU-like float16 codes [n, 5, 128]: near copies of the first 40 images (all probes;
    distances ~0 to ~0.1, across the radii), a shifted probe that meets another image,
    all-zero codes, and for each radius an image just inside it whose difference lies
    along the first principal axis (where the search's projection filters are tight).
    A near copy is redrawn until every pair it makes is MARGIN away from each radius, so
    float rounding in the code under test cannot flip a pair."""
    return _build_codes(n, seed).copy()


@functools.lru_cache
def _build_codes(n, seed):  # built once per (n, seed): ~0.5 s
    rng = np.random.default_rng(seed)
    codes = np.maximum(rng.normal(0.3, 1.0, (n, 5, 128)), 0).astype(np.float16)
    levels = (0.0, 0.004, 0.01, 0.02, 0.045, 0.06, 0.1, 0.13)  # distance ~0.7 level

    def plant(row, probes, source, level):
        for _ in range(100):
            codes[row, probes] = source * (1 + rng.normal(0, level, source.shape))
            if _far_from_the_radii(codes, row):
                return
        raise AssertionError(f"no copy {row} at noise {level} away from the radii")

    for k in range(40):
        plant(100 + k, slice(None), codes[k].astype(np.float64), levels[k % 8])
    plant(200, 3, codes[5, 0].astype(np.float64), 0.002)
    codes[210:214] = 0
    for row, image, _ in ON_AXIS:
        codes[row] = codes[image]
    for _ in range(4):  # the axis moves a little with the planted rows: iterate
        axis = _first_axis(codes)
        for row, image, distance in ON_AXIS:
            base, t = _unit(codes[image, 0]), distance
            for _ in range(20):  # ||unit(base + t axis) - base|| = distance
                t *= distance / np.linalg.norm(_unit(base + t * axis) - base)
            codes[row, 0] = (base + t * axis) * np.linalg.norm(codes[image, 0].astype(float))
    return codes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_test_codes_have_pairs_on_both_sides_of_each_radius_with_a_margin(seed):
    codes = _clustered_codes(seed=seed)
    d = _distances(codes)
    d[np.arange(len(d)), :, np.arange(len(d))] = np.inf
    axis = _first_axis(codes)
    for (row, image, _), r in zip(ON_AXIS, RADII):
        assert np.abs(d - r).min() > MARGIN
        assert ((d < r) & (d > 0)).sum() >= 5 and ((d > r) & (d < 2 * r)).sum() >= 3, r
        difference = _unit(codes[row, 0]) - _unit(codes[image, 0])
        assert r - 2 * MARGIN < d[row, 0, image] < r  # just inside, along the first axis
        assert abs(difference @ axis) > 0.9 * d[row, 0, image]


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
    assert all((row, 0, image) in expected and (image, 0, row) in expected
               for row, image, distance in ON_AXIS if distance <= radius)
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
