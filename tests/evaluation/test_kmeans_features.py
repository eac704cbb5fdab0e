"""Tests for the Coates-style single-layer K-means features."""

import numpy as np
import pytest

from dcgan_keras.evaluation.kmeans_features import (
    DEFAULT_CONTRAST_EPS, KMeansFeatures, extract_patches, normalize_patches, quadrant_sum,
    run_kmeans)


def _images(n=30, h=10, w=10, c=3, seed=0):
    """Smooth-ish random images in [-1, 1] (a blurred noise field, so patches correlate)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h + 2, w + 2, c))
    x = (x[:, :-2, :-2] + x[:, 1:-1, 1:-1] + x[:, 2:, 2:]) / 3  # correlated neighbours
    return np.tanh(x).astype(np.float32)


def _small(**kw):
    args = dict(patch_size=3, num_centroids=6, num_patches=3000, kmeans_iterations=20,
                batch_size=7, seed=0, jit_compile=False)
    args.update(kw)
    return KMeansFeatures(**args)


def _naive_features(kmf, images):
    """Per-patch loop reference: normalise, whiten, triangle, quadrant sums."""
    n, h, w, _ = images.shape
    p, k = kmf.patch_size, kmf.num_centroids
    rows, cols = h - p + 1, w - p + 1
    hr, hc = int(np.ceil(rows / 2)), int(np.ceil(cols / 2))
    out = np.zeros((n, 4, k))
    for i in range(n):
        for r in range(rows):
            for c in range(cols):
                x = images[i, r:r + p, c:c + p, :].reshape(-1).astype(np.float64)
                x = (x - x.mean()) / np.sqrt(x.var(ddof=1) + kmf.contrast_eps)
                x = (x - kmf.mean_) @ kmf.whitening_
                z = np.sqrt(((x - kmf.centroids_) ** 2).sum(axis=1))
                f = np.maximum(0.0, z.mean() - z)
                out[i, 2 * (r >= hr) + (c >= hc)] += f
    return out.reshape(n, 4 * k)


def test_shape_dtype_and_nonnegative():
    images = _images()
    kmf = _small().fit(images)
    feats = kmf(images)
    assert feats.shape == (len(images), 4 * 6) == (len(images), kmf.output_dim)
    assert feats.dtype == np.float32
    assert np.all(feats >= 0)
    assert np.all(np.isfinite(feats))
    assert feats.sum() > 0  # triangle activation is not identically zero


@pytest.mark.parametrize("channels, h, w", [(1, 9, 8), (3, 7, 10)])
def test_matches_naive_loop_reference(channels, h, w):
    # Odd sizes exercise the uneven quadrant split; batch_size=2 with 3 images exercises
    # the zero-padded tail batch.
    images = _images(n=12, h=h, w=w, c=channels, seed=1)
    kmf = _small(batch_size=2).fit(images)
    tiny = images[:3]
    np.testing.assert_allclose(kmf(tiny), _naive_features(kmf, tiny), rtol=1e-4, atol=1e-3)


def test_xla_and_eager_encoders_agree():
    images = _images(n=10)
    kmf = _small().fit(images)
    jit = _small(jit_compile=True)
    jit.__dict__.update({k: v for k, v in kmf.__dict__.items() if k.endswith("_")})
    np.testing.assert_allclose(jit(images), kmf(images), rtol=1e-4, atol=1e-3)


def test_whitening_gives_identity_covariance_on_training_patches():
    images = _images(n=40)
    kmf = _small(whitening_eps=1e-8).fit(images)
    # fit() draws its patches first from default_rng(seed): redraw exactly those.
    patches = kmf.sample_patches(images, kmf.num_patches, np.random.default_rng(kmf.seed))
    cov = np.cov(kmf.whiten(patches), rowvar=False)
    d = patches.shape[1]
    # Per-patch mean removal leaves no variance along the all-ones direction; every other
    # direction is whitened to unit variance.
    np.testing.assert_allclose(cov, np.eye(d) - np.ones((d, d)) / d, atol=2e-3)


def test_regularised_whitening_shrinks_but_never_amplifies():
    images = _images(n=40)
    kmf = _small(whitening_eps=0.1).fit(images)
    patches = kmf.sample_patches(images, kmf.num_patches, np.random.default_rng(kmf.seed))
    eig = np.linalg.eigvalsh(np.cov(kmf.whiten(patches), rowvar=False))
    assert eig.max() <= 1.0 + 1e-3
    assert eig.max() > 0.5


def test_extract_patches_order_and_normalisation():
    images = _images(n=2, h=5, w=6, c=3)
    patches = extract_patches(images, 3)
    assert patches.shape == (2, 3, 4, 27)
    np.testing.assert_array_equal(patches[1, 2, 3], images[1, 2:5, 3:6, :].reshape(-1))
    norm = normalize_patches(patches.reshape(-1, 27), DEFAULT_CONTRAST_EPS)
    np.testing.assert_allclose(norm.mean(axis=1), 0, atol=1e-5)
    assert np.all(norm.std(axis=1) <= 1.0 + 1e-5)


def test_quadrant_sum_matches_loop():
    maps = np.random.default_rng(0).random((2, 5, 4, 3))
    ref = np.zeros((2, 4, 3))
    for r in range(5):
        for c in range(4):
            ref[:, 2 * (r >= 3) + (c >= 2)] += maps[:, r, c]
    np.testing.assert_allclose(quadrant_sum(maps), ref.reshape(2, 12))


def test_deterministic_given_seed():
    images = _images()
    a, b, c = _small(seed=3).fit(images), _small(seed=3).fit(images), _small(seed=4).fit(images)
    np.testing.assert_array_equal(a.centroids_, b.centroids_)
    np.testing.assert_array_equal(a(images), b(images))
    assert not np.allclose(a.centroids_, c.centroids_)


def test_run_kmeans_recovers_separated_blobs():
    rng = np.random.default_rng(0)
    centers = np.array([[10, 0], [0, 10], [-10, -10]], np.float32)
    x = (centers[rng.integers(0, 3, 600)] + rng.normal(0, 0.5, (600, 2))).astype(np.float32)
    found = run_kmeans(x, 3, 30, np.random.default_rng(1))
    # Forgy init can put two seeds in one blob; with 3 blobs and a good seed it does not.
    dist = np.linalg.norm(found[:, None] - centers[None], axis=2)
    assert np.all(dist.min(axis=0) < 0.5)


def test_input_validation():
    images = _images(n=10)
    with pytest.raises(RuntimeError, match="fit"):
        _small()(images)
    with pytest.raises(ValueError, match="4 dims"):
        _small().fit(images[0])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        _small().fit((images + 1) * 127.5)
    with pytest.raises(ValueError, match="smaller than patch_size"):
        _small(patch_size=12).fit(images)
    with pytest.raises(ValueError, match="num_centroids"):
        _small(num_centroids=50, num_patches=20).fit(images)
    with pytest.raises(ValueError, match="positive integer"):
        _small(num_centroids=0)
    with pytest.raises(ValueError, match="NaN"):
        _small().fit(np.full_like(images, np.nan))
    kmf = _small().fit(images)
    with pytest.raises(ValueError, match="channels"):
        kmf(images[..., :1])
