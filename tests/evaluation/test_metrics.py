"""Tests for dcgan_keras.evaluation.metrics.

Every metric is checked against an independent reference written differently
from the library code (eigendecomposition instead of scipy.linalg.sqrtm,
explicit loops / sklearn kernels instead of blocked kernel sums,
scipy.stats.entropy, sklearn NearestNeighbors + scipy cdist) and against cases
with known closed-form answers.
"""

import warnings

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist
from scipy.stats import entropy
from sklearn.metrics.pairwise import polynomial_kernel
from sklearn.neighbors import NearestNeighbors

from dcgan_keras.evaluation import metrics
from dcgan_keras.evaluation.metrics import (
    PrecisionRecall,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    load_statistics,
    polynomial_mmd2_unbiased,
    precision_recall,
    save_statistics,
)


# ---------------------------------------------------------------------------
# Independent references
# ---------------------------------------------------------------------------


def _psd_sqrt(matrix):
    """Symmetric PSD square root via eigh (independent of scipy.linalg.sqrtm)."""
    w, v = np.linalg.eigh(matrix)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _reference_frechet(mu1, sigma1, mu2, sigma2):
    # Tr (S1 S2)^(1/2) = Tr (S1^(1/2) S2 S1^(1/2))^(1/2): the latter is symmetric PSD.
    root1 = _psd_sqrt(sigma1)
    eig = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    tr_covmean = np.sum(np.sqrt(np.clip(eig, 0.0, None)))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def _reference_stats(x):
    x = np.asarray(x, dtype=np.float64)
    mu = x.sum(axis=0) / len(x)
    centred = x - mu
    return mu, centred.T @ centred / (len(x) - 1)


def _random_cov(rng, d, n=None):
    a = rng.normal(size=(n or 3 * d, d))
    return a.T @ a / len(a)


def _reference_mmd2_loops(x, y, degree=3, gamma=None, coef0=1.0):
    d = x.shape[1]
    gamma = 1.0 / d if gamma is None else gamma

    def k(a, b):
        return (gamma * float(np.dot(a, b)) + coef0) ** degree

    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j)
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (n * m)


def _reference_mmd2_sklearn(x, y):
    # torch-fidelity / MMD-GAN "unbiased" estimator for equal-size sets.
    kxx = polynomial_kernel(x, x, degree=3, gamma=None, coef0=1)
    kyy = polynomial_kernel(y, y, degree=3, gamma=None, coef0=1)
    kxy = polynomial_kernel(x, y, degree=3, gamma=None, coef0=1)
    m = len(x)
    return (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.sum() / m**2
    )


def _reference_inception_score(probs, splits):
    n = len(probs)
    scores = []
    for i in range(splits):
        part = probs[i * n // splits : (i + 1) * n // splits]
        p_y = part.mean(axis=0)
        scores.append(np.exp(np.mean([entropy(row, p_y) for row in part])))
    return np.mean(scores), np.std(scores)


def _reference_precision_recall(real, fake, k):
    real_r = NearestNeighbors(n_neighbors=k + 1).fit(real).kneighbors(real)[0][:, -1]
    fake_r = NearestNeighbors(n_neighbors=k + 1).fit(fake).kneighbors(fake)[0][:, -1]
    dist = cdist(fake, real)  # [n_fake, n_real]
    precision = np.mean([np.any(dist[j] <= real_r) for j in range(len(fake))])
    recall = np.mean([np.any(dist[:, i] <= fake_r) for i in range(len(real))])
    return precision, recall


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---------------------------------------------------------------------------
# FID
# ---------------------------------------------------------------------------


def test_feature_statistics_matches_reference(rng):
    x = rng.normal(size=(50, 6)).astype(np.float32)
    mu, sigma = feature_statistics(x)
    ref_mu, ref_sigma = _reference_stats(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    assert mu.shape == (6,) and sigma.shape == (6, 6)
    np.testing.assert_allclose(mu, ref_mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-10, atol=1e-12)


def test_feature_statistics_single_feature_gives_2d_covariance(rng):
    mu, sigma = feature_statistics(rng.normal(size=(10, 1)))
    assert mu.shape == (1,) and sigma.shape == (1, 1)


def test_frechet_distance_matches_eig_reference_on_random_covariances(rng):
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    expected = _reference_frechet(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_from_features_matches_reference(rng):
    f1 = rng.normal(size=(200, 12))
    f2 = rng.normal(loc=0.3, scale=1.5, size=(150, 12)) @ rng.normal(size=(12, 12))
    expected = _reference_frechet(*_reference_stats(f1), *_reference_stats(f2))
    assert fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-8)


def test_fid_of_identical_sets_is_zero(rng):
    f = rng.normal(size=(300, 20))
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-8)
    assert fid_from_features(f, f.copy()) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_shifted_identity_gaussians_is_squared_shift(rng):
    d = 8
    mu = rng.normal(size=d)
    shift = rng.normal(size=d)
    eye = np.eye(d)
    assert frechet_distance(mu, eye, mu + shift, eye) == pytest.approx(shift @ shift, rel=1e-12)


def test_fid_from_samples_of_shifted_gaussians_approaches_squared_shift(rng):
    d = 4
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    f1 = rng.normal(size=(20000, d))
    f2 = rng.normal(size=(20000, d)) + shift
    # Sampling std of the mean term is 2 |m| sqrt(2 / n) ~ 0.05; trace terms are smaller.
    assert fid_from_features(f1, f2) == pytest.approx(shift @ shift, abs=0.2)


def test_frechet_distance_diagonal_covariances_closed_form(rng):
    d = 10
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a = rng.uniform(0.1, 3.0, size=d)
    b = rng.uniform(0.1, 3.0, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_one_dimensional_closed_form():
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) = (m1 - m2)^2 + (s1 - s2)^2.
    value = frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]])
    assert value == pytest.approx(3.0**2 + (2.0 - 3.0) ** 2, rel=1e-12)


def test_frechet_distance_rank_deficient_covariances(rng):
    # Fewer samples than dimensions: singular covariances (the usual cause of
    # numerical trouble); result must stay finite and match the eig reference.
    f1 = rng.normal(size=(10, 40))
    f2 = rng.normal(size=(12, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = fid_from_features(f1, f2)
    expected = _reference_frechet(*_reference_stats(f1), *_reference_stats(f2))
    assert np.isfinite(value)
    assert value == pytest.approx(expected, rel=1e-5)


def test_frechet_distance_adds_eps_offset_when_sqrtm_fails(rng, monkeypatch):
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    real_sqrtm = scipy.linalg.sqrtm
    calls = []

    def flaky_sqrtm(matrix, *args, **kwargs):
        calls.append(matrix.copy())
        if len(calls) == 1:
            return np.full_like(matrix, np.nan)
        return real_sqrtm(matrix, *args, **kwargs)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
    eps = 1e-6
    with pytest.warns(RuntimeWarning, match="singular"):
        value = frechet_distance(mu1, s1, mu2, s2, eps=eps)
    assert len(calls) == 2
    offset = eps * np.eye(d)
    np.testing.assert_allclose(calls[1], (s1 + offset) @ (s2 + offset))
    assert value == pytest.approx(_reference_frechet(mu1, s1, mu2, s2), rel=1e-5)


def test_frechet_distance_nilpotent_product_tries_offset_then_rejects_indefinite_input():
    # sigma1 is symmetric but indefinite, so sigma1 @ sigma2 = [[0, 0], [1, 0]] is
    # nilpotent and has no square root: the eps offset is tried (warning), and the
    # offset result has a large imaginary part, which is reported as an error.
    sigma1 = np.array([[0.0, 1.0], [1.0, 0.0]])
    sigma2 = np.diag([1.0, 0.0])
    with pytest.warns(RuntimeWarning, match="adding 1e-06 to the diagonal"):
        with pytest.raises(ValueError, match="positive semi-definite"):
            frechet_distance(np.zeros(2), sigma1, np.zeros(2), sigma2, eps=1e-6)


def test_frechet_distance_discards_tiny_imaginary_parts(rng, monkeypatch):
    d = 5
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    real_sqrtm = scipy.linalg.sqrtm
    monkeypatch.setattr(
        scipy.linalg, "sqrtm", lambda m, *a, **k: real_sqrtm(m, *a, **k) + 1e-9j
    )
    value = frechet_distance(np.zeros(d), s1, np.zeros(d), s2)
    assert isinstance(value, float)
    assert value == pytest.approx(_reference_frechet(np.zeros(d), s1, np.zeros(d), s2), rel=1e-6)


def test_frechet_distance_raises_on_large_imaginary_component():
    # Not a PSD covariance: sqrtm(diag(-1, 1)) = diag(i, 1).
    with pytest.raises(ValueError, match="imaginary component"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([-1.0, 1.0]))


@pytest.mark.parametrize(
    "features, match",
    [
        (np.zeros(3), r"features1 must be 2-D \[n, d\], got shape \(3,\)"),
        (np.zeros((2, 3, 4)), r"must be 2-D \[n, d\], got shape \(2, 3, 4\)"),
        (np.zeros((1, 4)), r"at least 2 samples"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), r"NaN or Inf"),
    ],
)
def test_fid_from_features_validation(features, match):
    with pytest.raises(ValueError, match=match):
        fid_from_features(features, np.zeros((5, 2)))


def test_fid_from_features_dimension_mismatch():
    with pytest.raises(ValueError, match=r"same feature dimension, got 3 and 4"):
        fid_from_features(np.zeros((5, 3)), np.zeros((5, 4)))


def test_feature_statistics_error_message_names_shape():
    with pytest.raises(ValueError, match=r"features must be 2-D \[n, d\], got shape \(3,\)"):
        feature_statistics(np.zeros(3))


def test_frechet_distance_validation():
    eye = np.eye(3)
    with pytest.raises(ValueError, match=r"mu1 must be a 1-D mean vector"):
        frechet_distance(np.zeros((3, 1)), eye, np.zeros(3), eye)
    with pytest.raises(ValueError, match=r"same dimension"):
        frechet_distance(np.zeros(3), eye, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match=r"sigma2 must be a square covariance matrix of shape \(3, 3\)"):
        frechet_distance(np.zeros(3), eye, np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match=r"sigma1 must be symmetric"):
        frechet_distance(np.zeros(3), np.triu(np.ones((3, 3))), np.zeros(3), eye)
    with pytest.raises(ValueError, match=r"eps must be a positive"):
        frechet_distance(np.zeros(3), eye, np.zeros(3), eye, eps=0.0)


# ---------------------------------------------------------------------------
# Statistics cache
# ---------------------------------------------------------------------------


def test_statistics_npz_round_trip(rng, tmp_path):
    mu, sigma = feature_statistics(rng.normal(size=(40, 5)))
    path = tmp_path / "sub" / "celeba_stats"  # no suffix: written exactly here
    save_statistics(path, mu, sigma, dataset="celeba", num_samples=40, layer_dims=[5])
    assert path.exists()

    mu2, sigma2 = load_statistics(path)
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)

    mu3, sigma3, meta = load_statistics(str(path), return_metadata=True)
    np.testing.assert_array_equal(sigma3, sigma)
    assert meta["dataset"] == "celeba"
    assert meta["num_samples"] == 40
    np.testing.assert_array_equal(meta["layer_dims"], [5])

    # Cached statistics give the same FID as the raw features.
    f = rng.normal(size=(30, 5))
    assert frechet_distance(*feature_statistics(f), mu2, sigma2) == pytest.approx(
        frechet_distance(*feature_statistics(f), mu, sigma), rel=1e-12
    )


def test_load_statistics_reads_plain_mu_sigma_npz(tmp_path):
    path = tmp_path / "ref.npz"
    np.savez(path, mu=np.zeros(2, dtype=np.float32), sigma=np.eye(2, dtype=np.float32))
    mu, sigma, meta = load_statistics(path, return_metadata=True)
    assert mu.dtype == np.float64 and sigma.shape == (2, 2) and meta == {}


def test_statistics_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_statistics(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=np.zeros(2))
    with pytest.raises(ValueError, match=r"lacks required arrays \['mu', 'sigma'\]"):
        load_statistics(bad)
    with pytest.raises(ValueError, match="cannot be stored without pickle"):
        save_statistics(tmp_path / "x.npz", np.zeros(2), np.eye(2), info={"a": 1})
    with pytest.raises(ValueError, match=r"sigma must be a square covariance matrix"):
        save_statistics(tmp_path / "y.npz", np.zeros(2), np.eye(3))


# ---------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------


def test_polynomial_mmd2_matches_double_loop_unequal_sizes(rng):
    x = rng.normal(size=(7, 5))
    y = rng.normal(loc=0.5, size=(9, 5))
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(_reference_mmd2_loops(x, y), rel=1e-10)
    assert polynomial_mmd2_unbiased(x, y, degree=2, gamma=0.3, coef0=0.5) == pytest.approx(
        _reference_mmd2_loops(x, y, degree=2, gamma=0.3, coef0=0.5), rel=1e-10
    )


def test_polynomial_mmd2_matches_sklearn_kernel_equal_sizes(rng):
    x = rng.normal(size=(60, 16))
    y = rng.normal(scale=1.3, size=(60, 16))
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(_reference_mmd2_sklearn(x, y), rel=1e-10)


def test_polynomial_mmd2_blocked_sums_match_for_large_sets(rng):
    # More rows than one kernel block (1024) to exercise the blocked accumulation.
    x = rng.normal(size=(1100, 3))
    y = rng.normal(loc=0.2, size=(1100, 3))
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(_reference_mmd2_sklearn(x, y), rel=1e-8)


def test_polynomial_mmd2_point_masses_known_answer():
    # All x equal to a, all y equal to b (d = 1): MMD^2 = k(a,a) + k(b,b) - 2 k(a,b).
    a, b = 0.5, -1.5
    x = np.full((4, 1), a)
    y = np.full((6, 1), b)
    expected = (a * a + 1) ** 3 + (b * b + 1) ** 3 - 2 * (a * b + 1) ** 3
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-12)


def test_kid_matches_reference_subset_procedure(rng):
    f1 = rng.normal(size=(80, 8))
    f2 = rng.normal(loc=0.4, size=(70, 8))
    mean, std = kernel_inception_distance(f1, f2, num_subsets=20, subset_size=30, seed=7)
    ref_rng = np.random.default_rng(7)
    mmds = []
    for _ in range(20):
        i1 = ref_rng.choice(80, 30, replace=False)
        i2 = ref_rng.choice(70, 30, replace=False)
        mmds.append(_reference_mmd2_sklearn(f1[i1], f2[i2]))
    assert mean == pytest.approx(np.mean(mmds), rel=1e-10)
    assert std == pytest.approx(np.std(mmds), rel=1e-8)  # torch-fidelity convention (ddof=0)


def test_kid_subset_size_is_clipped_to_smaller_set(rng):
    f1 = rng.normal(size=(40, 6))
    f2 = rng.normal(loc=1.0, size=(40, 6))
    # subset_size > n: every subset is a permutation of the full sets -> same MMD each time.
    mean, std = kernel_inception_distance(f1, f2, num_subsets=5, subset_size=1000)
    assert mean == pytest.approx(_reference_mmd2_sklearn(f1, f2), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_identical_sets_is_slightly_negative_closed_form(rng):
    f = rng.normal(size=(100, 10))
    # subset_size clipped to n: every subset compares X with a permutation of X, where the
    # unbiased estimator equals 2 (S - n D) / (n^2 (n - 1)) <= 0 (S = sum of the kernel
    # matrix, D = its trace; S <= n D by Cauchy-Schwarz), i.e. slightly negative, O(1/n).
    mean, std = kernel_inception_distance(f, f, num_subsets=3, subset_size=1000)
    kxx = polynomial_kernel(f, f, degree=3, gamma=None, coef0=1)
    n = len(f)
    expected = 2 * (kxx.sum() - n * np.trace(kxx)) / (n**2 * (n - 1))
    assert mean == pytest.approx(expected, rel=1e-10)
    assert mean <= 0.0
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_identical_large_set_is_near_zero(rng):
    # Subsets much smaller than the set barely overlap, so KID(X, X) ~ 0.
    f = rng.normal(size=(3000, 16))
    mean, _ = kernel_inception_distance(f, f, num_subsets=10, subset_size=100, seed=1)
    shifted, _ = kernel_inception_distance(f, f + 0.5, num_subsets=10, subset_size=100, seed=1)
    assert abs(mean) < 0.05 * shifted


def test_kid_same_distribution_near_zero_and_is_deterministic(rng):
    f1 = rng.normal(size=(400, 16))
    f2 = rng.normal(size=(400, 16))
    mean, std = kernel_inception_distance(f1, f2, num_subsets=10, subset_size=200, seed=3)
    far, _ = kernel_inception_distance(f1, f2 + 0.5, num_subsets=10, subset_size=200, seed=3)
    assert abs(mean) < 0.05 * far
    assert std > 0
    assert kernel_inception_distance(f1, f2, num_subsets=10, subset_size=200, seed=3) == (mean, std)


def test_kid_validation():
    f = np.zeros((10, 3))
    with pytest.raises(ValueError, match=r"features1 must be 2-D \[n, d\], got shape \(10,\)"):
        kernel_inception_distance(np.zeros(10), f)
    with pytest.raises(ValueError, match=r"same feature dimension"):
        kernel_inception_distance(f, np.zeros((10, 4)))
    with pytest.raises(ValueError, match=r"num_subsets must be >= 1, got 0"):
        kernel_inception_distance(f, f, num_subsets=0)
    with pytest.raises(ValueError, match=r"subset_size must be >= 2, got 1"):
        kernel_inception_distance(f, f, subset_size=1)
    with pytest.raises(TypeError, match=r"num_subsets must be an int"):
        kernel_inception_distance(f, f, num_subsets=2.5)
    with pytest.raises(ValueError, match=r"gamma must be a positive"):
        polynomial_mmd2_unbiased(f, f, gamma=-1.0)
    with pytest.raises(ValueError, match=r"x needs at least 2 samples"):
        polynomial_mmd2_unbiased(np.zeros((1, 3)), f)


# ---------------------------------------------------------------------------
# Inception Score
# ---------------------------------------------------------------------------


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_inception_score_matches_scipy_entropy_reference(rng):
    probs = _softmax(rng.normal(scale=3.0, size=(103, 10)))  # 103 not divisible by splits
    mean, std = inception_score(probs, splits=4)
    ref_mean, ref_std = _reference_inception_score(probs, 4)
    assert mean == pytest.approx(ref_mean, rel=1e-10)
    assert std == pytest.approx(ref_std, rel=1e-8)


def test_inception_score_one_hot_uniform_is_num_classes():
    num_classes, splits = 7, 5
    probs = np.tile(np.eye(num_classes), (splits, 1))  # each split holds every class once
    mean, std = inception_score(probs, splits=splits)
    assert mean == pytest.approx(num_classes, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_identical_rows_is_one(rng):
    probs = np.tile(_softmax(rng.normal(size=(1, 12))), (50, 1))
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_validation():
    with pytest.raises(ValueError, match=r"probs must be 2-D \[n, d\], got shape \(4,\)"):
        inception_score(np.full(4, 0.25), splits=1)
    with pytest.raises(ValueError, match=r"non-negative.*not logits"):
        inception_score(np.array([[1.5, -0.5], [0.5, 0.5]]), splits=1)
    with pytest.raises(ValueError, match=r"sum to 1 \(within 1e-3\); 1 row\(s\) do not, e.g. row 1 sums to 0.9"):
        inception_score(np.array([[0.5, 0.5], [0.45, 0.45]]), splits=1)
    with pytest.raises(ValueError, match=r"splits must be <= the number of samples \(2\), got 3"):
        inception_score(np.full((2, 2), 0.5), splits=3)
    # Within tolerance: accepted.
    inception_score(np.array([[0.5, 0.5005], [0.5, 0.5]]), splits=1)


# ---------------------------------------------------------------------------
# Precision and recall
# ---------------------------------------------------------------------------


def test_precision_recall_matches_sklearn_reference(rng):
    real = rng.normal(size=(150, 8))
    fake = rng.normal(loc=0.5, scale=0.8, size=(120, 8))
    result = precision_recall(real, fake, k=3, batch_size=32)
    ref_p, ref_r = _reference_precision_recall(real, fake, 3)
    assert isinstance(result, PrecisionRecall)
    assert result.precision == pytest.approx(ref_p, abs=1e-12)
    assert result.recall == pytest.approx(ref_r, abs=1e-12)
    assert 0.0 < result.precision < 1.0 and 0.0 < result.recall < 1.0
    assert result.as_dict() == {"precision": result.precision, "recall": result.recall}


@pytest.mark.parametrize("k", [1, 5])
def test_precision_recall_independent_of_batch_size(rng, k):
    real = rng.normal(size=(90, 4))
    fake = rng.normal(loc=0.3, size=(70, 4))
    big = precision_recall(real, fake, k=k, batch_size=10000)
    assert precision_recall(real, fake, k=k, batch_size=7) == big
    assert precision_recall(real, fake, k=k, batch_size=1) == big
    ref_p, ref_r = _reference_precision_recall(real, fake, k)
    assert big.precision == pytest.approx(ref_p) and big.recall == pytest.approx(ref_r)


def test_precision_recall_identical_sets(rng):
    real = rng.normal(size=(100, 16))
    result = precision_recall(real, real.copy(), k=3)
    assert result.precision == 1.0 and result.recall == 1.0


def test_precision_recall_far_apart_sets(rng):
    real = rng.normal(size=(100, 16))
    fake = rng.normal(size=(100, 16)) + 100.0
    result = precision_recall(real, fake, k=3)
    assert result.precision == 0.0 and result.recall == 0.0


def test_precision_recall_mode_dropping(rng):
    d = 4
    centre = np.zeros(d)
    centre[0] = 50.0
    real = np.concatenate([rng.normal(size=(300, d)), rng.normal(size=(300, d)) + centre])
    fake = rng.normal(size=(300, d))  # covers only the first real cluster
    result = precision_recall(real, fake, k=5)
    # Finite-sample k-NN balls miss a few tail samples, hence "~1" and "~0.5".
    assert result.precision >= 0.9
    assert 0.4 <= result.recall <= 0.5


def test_precision_recall_validation():
    real = np.zeros((10, 3))
    with pytest.raises(ValueError, match=r"real_features must be 2-D \[n, d\], got shape \(3,\)"):
        precision_recall(np.zeros(3), real)
    with pytest.raises(ValueError, match=r"same feature dimension"):
        precision_recall(real, np.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"fake_features needs more than k=3 samples"):
        precision_recall(real, np.zeros((3, 3)), k=3)
    with pytest.raises(ValueError, match=r"k must be >= 1, got 0"):
        precision_recall(real, real, k=0)
    with pytest.raises(ValueError, match=r"batch_size must be >= 1, got 0"):
        precision_recall(real, real, batch_size=0)


def test_public_api_is_exported():
    for name in metrics.__all__:
        assert hasattr(metrics, name)
