"""Sample-quality metrics for generative models, computed from feature arrays.

Every function here is pure NumPy/SciPy and operates on arrays that some
feature network (usually Inception-v3 pool3 features or softmax outputs) has
already produced; the feature network itself is pluggable and lives elsewhere.
Keeping the metrics framework-free makes them easy to test against independent
references and lets reference statistics be cached once and reused.

Metrics:

* Frechet Inception Distance (FID) -- Heusel et al. 2017, "GANs Trained by a
  Two Time-Scale Update Rule Converge to a Local Nash Equilibrium".
  :func:`frechet_distance`, :func:`fid_from_features`,
  :func:`feature_statistics`, :func:`save_statistics`, :func:`load_statistics`.
* Kernel Inception Distance (KID) -- Binkowski et al. 2018, "Demystifying MMD
  GANs". :func:`kernel_inception_distance`, :func:`polynomial_mmd2_unbiased`.
* Inception Score (IS) -- Salimans et al. 2016, "Improved Techniques for
  Training GANs". :func:`inception_score`.
* Improved precision and recall -- Kynkaanniemi et al. 2019, "Improved
  Precision and Recall Metric for Assessing Generative Models".
  :func:`precision_recall`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Dict, Tuple, Union

import numpy as np
from scipy import linalg
from scipy import special

__all__ = [
    "PrecisionRecall",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "load_statistics",
    "polynomial_mmd2_unbiased",
    "precision_recall",
    "save_statistics",
]

PathLike = Union[str, "os.PathLike[str]"]

# Relative residual ||X @ X - A||_F / ||A||_F above which the matrix square root
# of the covariance product is considered unreliable (near-singular product).
_SQRTM_MAX_RELATIVE_RESIDUAL = 1e-3
# Largest tolerated imaginary part on the diagonal of sqrtm(sigma1 @ sigma2);
# same tolerance as the reference TTUR / pytorch-fid implementation.
_MAX_IMAGINARY_COMPONENT = 1e-3


# ---------------------------------------------------------------------------
# Input validation helpers
# ---------------------------------------------------------------------------


def _as_features(features: Any, name: str = "features", min_samples: int = 1) -> np.ndarray:
    """Validates a [n, d] feature array and returns it as float64."""
    arr = np.asarray(features)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D [n, d], got shape {arr.shape}; "
            "reshape to (num_samples, feature_dim), e.g. x.reshape(len(x), -1)."
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real-valued, got complex dtype {arr.dtype}.")
    n, d = arr.shape
    if d < 1:
        raise ValueError(f"{name} must have at least one feature column, got shape {arr.shape}.")
    if n < min_samples:
        raise ValueError(
            f"{name} needs at least {min_samples} samples (rows), got {n}; pass more samples."
        )
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} contains NaN or Inf values; check the feature extractor output "
            "(e.g. inputs outside the expected range) before computing metrics."
        )
    return arr


def _check_same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same feature dimension, got "
            f"{a.shape[1]} and {b.shape[1]} (shapes {a.shape} and {b.shape}); "
            "extract both with the same feature network/layer."
        )


def _as_mean(mu: Any, name: str) -> np.ndarray:
    arr = np.asarray(mu, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D mean vector [d], got shape {arr.shape}; "
            "use feature_statistics(features) to compute (mu, sigma)."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf values.")
    return arr


def _as_covariance(sigma: Any, dim: int, name: str) -> np.ndarray:
    arr = np.asarray(sigma, dtype=np.float64)
    if arr.ndim != 2 or arr.shape != (dim, dim):
        raise ValueError(
            f"{name} must be a square covariance matrix of shape ({dim}, {dim}) matching "
            f"its mean vector, got shape {arr.shape}; use feature_statistics(features)."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf values.")
    scale = float(np.max(np.abs(arr))) if arr.size else 0.0
    if not np.allclose(arr, arr.T, rtol=0.0, atol=1e-6 * max(scale, 1e-12)):
        raise ValueError(
            f"{name} must be symmetric (a covariance matrix); got a non-symmetric matrix. "
            "Compute it with np.cov(features, rowvar=False) or feature_statistics()."
        )
    return arr


def _check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r}).")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


# ---------------------------------------------------------------------------
# Frechet Inception Distance
# ---------------------------------------------------------------------------


def feature_statistics(features: Any) -> Tuple[np.ndarray, np.ndarray]:
    """Computes the Gaussian statistics (mean, covariance) used by the FID.

    From Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
    Converge to a Local Nash Equilibrium" (NeurIPS). The statistics can be
    cached with :func:`save_statistics` so that the reference (real data) side
    of the FID is computed only once.

    Args:
        features: Array of shape [n, d] with one feature vector per row
            (n >= 2 samples, e.g. Inception pool3 activations).

    Returns:
        A tuple ``(mu, sigma)``: ``mu`` is the float64 mean of shape [d] and
        ``sigma`` the float64 unbiased (ddof=1) covariance of shape [d, d],
        i.e. ``np.cov(features, rowvar=False)``.

    Raises:
        ValueError: If ``features`` is not a finite 2-D array with at least two
            rows.
    """
    feats = _as_features(features, "features", min_samples=2)
    mu = feats.mean(axis=0)
    sigma = np.atleast_2d(np.cov(feats, rowvar=False))
    return mu, sigma


def _sqrtm_with_residual(matrix: np.ndarray) -> Tuple[np.ndarray, float]:
    """Returns sqrtm(matrix) and its relative residual ||X X - A||_F / ||A||_F."""
    with warnings.catch_warnings():
        # Singular-matrix warnings are handled by the caller via the residual
        # and finiteness checks (eps offset fallback), so silence them here.
        warnings.simplefilter("ignore")
        root = linalg.sqrtm(matrix)
        if not np.all(np.isfinite(root)):
            return root, float("inf")
        norm = np.linalg.norm(matrix)
        residual = np.linalg.norm(root @ root - matrix)
    if norm == 0.0:
        return root, float(residual)
    return root, float(residual / norm)


def frechet_distance(
    mu1: Any,
    sigma1: Any,
    mu2: Any,
    sigma2: Any,
    eps: float = 1e-6,
) -> float:
    """Frechet distance between two multivariate Gaussians.

    Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge
    to a Local Nash Equilibrium" (NeurIPS); the Frechet (2-Wasserstein)
    distance between N(mu1, sigma1) and N(mu2, sigma2) is::

        d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

    Numerical robustness follows the reference TTUR / pytorch-fid
    implementation: if the matrix square root of ``sigma1 @ sigma2`` is not
    finite or inaccurate (the product is (near) singular, e.g. fewer samples
    than feature dimensions), ``eps * I`` is added to both covariances and the
    square root recomputed (with a ``RuntimeWarning``). Tiny imaginary parts
    produced by ``scipy.linalg.sqrtm`` are discarded; if an imaginary
    component on the diagonal exceeds 1e-3 a ``ValueError`` is raised.

    Args:
        mu1: Mean vector of shape [d] of the first distribution (e.g. generated
            samples).
        sigma1: Covariance matrix of shape [d, d] of the first distribution.
        mu2: Mean vector of shape [d] of the second distribution (e.g. real
            data / cached reference statistics).
        sigma2: Covariance matrix of shape [d, d] of the second distribution.
        eps: Diagonal offset added to both covariances when their product is
            (near) singular.

    Returns:
        The squared Frechet distance as a Python float (this is the value
        reported as "FID"). It can be very slightly negative due to round-off
        when both distributions are identical.

    Raises:
        ValueError: On shape mismatches, non-finite or non-symmetric inputs, a
            non-positive ``eps``, or when the square root of the covariance
            product has a large imaginary component (inputs are not valid
            covariance matrices).
    """
    mu1 = _as_mean(mu1, "mu1")
    mu2 = _as_mean(mu2, "mu2")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"mu1 and mu2 must have the same dimension, got shapes {mu1.shape} and "
            f"{mu2.shape}; both statistics must come from the same feature layer."
        )
    dim = mu1.shape[0]
    sigma1 = _as_covariance(sigma1, dim, "sigma1")
    sigma2 = _as_covariance(sigma2, dim, "sigma2")
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a positive finite float, got {eps!r}.")

    diff = mu1 - mu2
    covmean, residual = _sqrtm_with_residual(sigma1 @ sigma2)
    if residual > _SQRTM_MAX_RELATIVE_RESIDUAL:
        warnings.warn(
            "frechet_distance: sigma1 @ sigma2 is (near) singular (sqrtm relative "
            f"residual {residual:.3g}); adding {eps:g} to the diagonal of both "
            "covariance estimates. Use more samples than feature dimensions to avoid this.",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = np.eye(dim) * eps
        covmean, residual = _sqrtm_with_residual((sigma1 + offset) @ (sigma2 + offset))
        if not np.all(np.isfinite(covmean)):
            raise ValueError(
                "frechet_distance: the matrix square root of the covariance product is "
                f"not finite even after adding eps={eps:g} to the diagonal; check that "
                "sigma1 and sigma2 are valid (positive semi-definite) covariances or "
                "increase eps."
            )

    # Numerical error may give a slight imaginary component.
    if np.iscomplexobj(covmean):
        max_imag_diag = float(np.max(np.abs(np.diagonal(covmean).imag))) if dim else 0.0
        if max_imag_diag > _MAX_IMAGINARY_COMPONENT:
            raise ValueError(
                "frechet_distance: sqrtm(sigma1 @ sigma2) has a large imaginary component "
                f"({max_imag_diag:.3g} > {_MAX_IMAGINARY_COMPONENT:g}); sigma1 and sigma2 must "
                "be positive semi-definite covariance matrices (e.g. from feature_statistics)."
            )
        covmean = covmean.real

    tr_covmean = float(np.trace(covmean))
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def fid_from_features(features1: Any, features2: Any, eps: float = 1e-6) -> float:
    """Frechet Inception Distance between two sets of features.

    Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge
    to a Local Nash Equilibrium" (NeurIPS). Fits a Gaussian to each feature set
    (:func:`feature_statistics`) and returns their :func:`frechet_distance`.

    Args:
        features1: Array [n1, d] of features (e.g. of generated samples), n1 >= 2.
        features2: Array [n2, d] of features (e.g. of real samples), n2 >= 2.
        eps: Diagonal offset used if the covariance product is near singular.

    Returns:
        The FID as a Python float (0 for identical feature sets, up to round-off).

    Raises:
        ValueError: If the arrays are not finite 2-D arrays with at least two
            rows each and the same number of columns.
    """
    f1 = _as_features(features1, "features1", min_samples=2)
    f2 = _as_features(features2, "features2", min_samples=2)
    _check_same_dim(f1, f2, "features1", "features2")
    mu1, sigma1 = feature_statistics(f1)
    mu2, sigma2 = feature_statistics(f2)
    return frechet_distance(mu1, sigma1, mu2, sigma2, eps=eps)


def save_statistics(path: PathLike, mu: Any, sigma: Any, **metadata: Any) -> None:
    """Caches FID reference statistics as an ``.npz`` file.

    The file stores arrays ``mu`` and ``sigma`` (the same keys used by the
    TTUR / pytorch-fid statistics files of Heusel et al. 2017) plus any extra
    metadata (e.g. ``dataset="celeba"``, ``num_samples=50000``,
    ``feature_layer="pool3"``). The file is written exactly at ``path`` (no
    ``.npz`` suffix is appended) and parent directories are created.

    Args:
        path: Destination file path.
        mu: Mean vector [d] (see :func:`feature_statistics`).
        sigma: Covariance matrix [d, d].
        **metadata: Extra values to store; each must be convertible to a
            non-object NumPy array (numbers, strings, booleans, numeric
            sequences) so the file can be loaded without pickle. The names
            ``mu`` and ``sigma`` are reserved.

    Raises:
        ValueError: If ``mu``/``sigma`` are malformed or a metadata value cannot
            be stored without pickle.
    """
    mu_arr = _as_mean(mu, "mu")
    sigma_arr = _as_covariance(sigma, mu_arr.shape[0], "sigma")
    arrays: Dict[str, np.ndarray] = {}
    for key, value in metadata.items():
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ValueError(
                f"metadata value for {key!r} ({type(value).__name__}) cannot be stored "
                "without pickle; pass numbers, strings, booleans or numeric arrays."
            )
        arrays[key] = arr
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez(fh, mu=mu_arr, sigma=sigma_arr, **arrays)


def load_statistics(
    path: PathLike, return_metadata: bool = False
) -> Union[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray, Dict[str, Any]]]:
    """Loads FID statistics written by :func:`save_statistics`.

    Also reads TTUR / pytorch-fid style ``.npz`` files (keys ``mu`` and
    ``sigma``); Heusel et al. 2017.

    Args:
        path: Path to the ``.npz`` file.
        return_metadata: If True, also return the metadata dictionary.

    Returns:
        ``(mu, sigma)`` as float64 arrays of shapes [d] and [d, d]; or
        ``(mu, sigma, metadata)`` if ``return_metadata`` is True, where
        0-d metadata arrays are converted to Python scalars/strings.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file lacks ``mu``/``sigma`` or they are malformed.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"statistics file {path!r} does not exist; create it with "
            "save_statistics(path, *feature_statistics(features))."
        )
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("mu", "sigma") if k not in data.files]
        if missing:
            raise ValueError(
                f"statistics file {path!r} lacks required arrays {missing} (found "
                f"{sorted(data.files)}); it must be written by save_statistics()."
            )
        mu = _as_mean(data["mu"], "mu")
        sigma = _as_covariance(data["sigma"], mu.shape[0], "sigma")
        metadata: Dict[str, Any] = {}
        for key in data.files:
            if key in ("mu", "sigma"):
                continue
            value = data[key]
            metadata[key] = value.item() if value.ndim == 0 else value
    if return_metadata:
        return mu, sigma, metadata
    return mu, sigma


# ---------------------------------------------------------------------------
# Kernel Inception Distance
# ---------------------------------------------------------------------------


def _polynomial_kernel_sum(
    x: np.ndarray,
    y: np.ndarray,
    degree: int,
    gamma: float,
    coef0: float,
    block_size: int = 1024,
) -> float:
    """Sum of (gamma x_i.y_j + coef0)^degree over all pairs, in row blocks."""
    total = 0.0
    for start in range(0, x.shape[0], block_size):
        block = gamma * (x[start : start + block_size] @ y.T) + coef0
        total += float(np.sum(block**degree))
    return total


def polynomial_mmd2_unbiased(
    x: Any,
    y: Any,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1,
) -> float:
    """Unbiased estimate of the squared MMD with a polynomial kernel.

    Binkowski et al. 2018, "Demystifying MMD GANs" (ICLR), with kernel
    ``k(a, b) = (gamma * a.b + coef0) ** degree`` (defaults: the cubic kernel
    ``(a.b / d + 1) ** 3`` used by KID). With n = len(x), m = len(y)::

        MMD^2_u = sum_{i != j} k(x_i, x_j) / (n (n - 1))
                + sum_{i != j} k(y_i, y_j) / (m (m - 1))
                - 2 sum_{i, j} k(x_i, y_j) / (n m)

    (Gretton et al. 2012, Lemma 6). For n == m this equals the "unbiased"
    estimator of the KID reference code and torch-fidelity. Kernel sums are
    accumulated in row blocks, so the full kernel matrices are never stored.

    Args:
        x: Array [n, d] of features, n >= 2.
        y: Array [m, d] of features, m >= 2.
        degree: Polynomial degree (>= 1).
        gamma: Scale of the dot product; ``None`` means ``1 / d``.
        coef0: Additive constant of the kernel.

    Returns:
        The unbiased MMD^2 estimate as a Python float; it is ~0 (and may be
        slightly negative) when x and y come from the same distribution.

    Raises:
        ValueError: If the inputs are malformed (not 2-D, fewer than two rows,
            mismatched feature dimensions) or ``gamma`` is not positive.
    """
    x = _as_features(x, "x", min_samples=2)
    y = _as_features(y, "y", min_samples=2)
    _check_same_dim(x, y, "x", "y")
    degree = _check_positive_int(degree, "degree")
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    if not np.isfinite(gamma) or gamma <= 0:
        raise ValueError(f"gamma must be a positive finite float or None (=1/d), got {gamma!r}.")
    coef0 = float(coef0)
    n, m = x.shape[0], y.shape[0]

    diag_x = (gamma * np.einsum("ij,ij->i", x, x) + coef0) ** degree
    diag_y = (gamma * np.einsum("ij,ij->i", y, y) + coef0) ** degree
    sum_xx = _polynomial_kernel_sum(x, x, degree, gamma, coef0) - float(diag_x.sum())
    sum_yy = _polynomial_kernel_sum(y, y, degree, gamma, coef0) - float(diag_y.sum())
    sum_xy = _polynomial_kernel_sum(x, y, degree, gamma, coef0)
    return float(sum_xx / (n * (n - 1)) + sum_yy / (m * (m - 1)) - 2.0 * sum_xy / (n * m))


def kernel_inception_distance(
    features1: Any,
    features2: Any,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int | None = 0,
) -> Tuple[float, float]:
    """Kernel Inception Distance (KID) between two feature sets.

    Binkowski et al. 2018, "Demystifying MMD GANs" (ICLR): the unbiased MMD^2
    (:func:`polynomial_mmd2_unbiased`) with the cubic polynomial kernel
    ``k(x, y) = (x.y / d + 1) ** 3``, averaged over ``num_subsets`` random
    subsets. Each subset draws ``subset_size`` rows without replacement from
    each feature set independently (``subset_size`` is clipped to the smaller
    set size).

    The second return value follows the convention of the KID reference code
    (mbinkowski/MMD-GAN ``compute_scores.py``) and torch-fidelity
    (``kernel_inception_distance_std``): it is the standard deviation of the
    per-subset MMD^2 estimates, ``np.std(mmds)`` (ddof=0), which is what papers
    report as "KID mean +- std". It is *not* divided by ``sqrt(num_subsets)``;
    the subsets overlap, so ``std / sqrt(num_subsets)`` would not be a valid
    standard error of the mean anyway.

    Args:
        features1: Array [n1, d] of features (e.g. generated samples), n1 >= 2.
        features2: Array [n2, d] of features (e.g. real samples), n2 >= 2.
        num_subsets: Number of random subsets to average over (>= 1).
        subset_size: Rows drawn from each set per subset (>= 2); clipped to
            ``min(n1, n2)``.
        seed: Seed for ``np.random.default_rng`` (None for nondeterministic).

    Returns:
        A tuple ``(mean, std)`` of Python floats: the mean of the per-subset
        unbiased MMD^2 estimates (the KID; may be slightly negative for
        identical distributions) and their standard deviation over subsets.

    Raises:
        ValueError: If the feature arrays are malformed or the subset settings
            are out of range.
    """
    f1 = _as_features(features1, "features1", min_samples=2)
    f2 = _as_features(features2, "features2", min_samples=2)
    _check_same_dim(f1, f2, "features1", "features2")
    num_subsets = _check_positive_int(num_subsets, "num_subsets")
    subset_size = _check_positive_int(subset_size, "subset_size", minimum=2)
    subset_size = min(subset_size, f1.shape[0], f2.shape[0])

    rng = np.random.default_rng(seed)
    mmds = np.empty(num_subsets, dtype=np.float64)
    for i in range(num_subsets):
        idx1 = rng.choice(f1.shape[0], subset_size, replace=False)
        idx2 = rng.choice(f2.shape[0], subset_size, replace=False)
        mmds[i] = polynomial_mmd2_unbiased(f1[idx1], f2[idx2], degree=3, gamma=None, coef0=1)
    return float(np.mean(mmds)), float(np.std(mmds))


# ---------------------------------------------------------------------------
# Inception Score
# ---------------------------------------------------------------------------


def inception_score(probs: Any, splits: int = 10) -> Tuple[float, float]:
    """Inception Score from classifier softmax outputs.

    Salimans et al. 2016, "Improved Techniques for Training GANs" (NeurIPS)::

        IS = exp(E_x KL(p(y|x) || p(y))),  p(y) = E_x p(y|x),

    computed separately on ``splits`` consecutive chunks of the rows (chunk i
    is ``probs[i * n // splits:(i + 1) * n // splits]``, as in the original
    implementation), with ``0 * log 0 = 0``.

    Args:
        probs: Array [n, num_classes] of predicted class probabilities
            p(y|x), one row per generated sample; rows must be non-negative and
            sum to 1 (within 1e-3).
        splits: Number of chunks (1 <= splits <= n).

    Returns:
        A tuple ``(mean, std)`` of Python floats over the splits (std with
        ddof=0, as in the original code). The score lies in [1, num_classes].

    Raises:
        ValueError: If ``probs`` is not a finite 2-D array of probability rows
            or ``splits`` is out of range.
    """
    p = _as_features(probs, "probs", min_samples=1)
    splits = _check_positive_int(splits, "splits")
    n = p.shape[0]
    if splits > n:
        raise ValueError(
            f"splits must be <= the number of samples ({n}), got {splits}; "
            "use fewer splits or more samples."
        )
    if np.any(p < 0):
        raise ValueError(
            f"probs must be non-negative class probabilities, found minimum {p.min():.3g}; "
            "pass softmax outputs, not logits (apply a softmax first)."
        )
    row_sums = p.sum(axis=1)
    bad = np.abs(row_sums - 1.0) > 1e-3
    if np.any(bad):
        first = int(np.argmax(bad))
        raise ValueError(
            f"each row of probs must sum to 1 (within 1e-3); {int(bad.sum())} row(s) do not, "
            f"e.g. row {first} sums to {row_sums[first]:.6g}. Pass softmax outputs, not logits."
        )

    scores = np.empty(splits, dtype=np.float64)
    for i in range(splits):
        part = p[(i * n) // splits : ((i + 1) * n) // splits]
        p_y = part.mean(axis=0, keepdims=True)
        # KL(p(y|x) || p(y)) per row; xlogy gives 0 log 0 = 0 and p_y > 0 whenever part > 0.
        kl = np.sum(special.xlogy(part, part) - special.xlogy(part, p_y), axis=1)
        scores[i] = np.exp(np.mean(kl))
    return float(np.mean(scores)), float(np.std(scores))


# ---------------------------------------------------------------------------
# Improved precision and recall
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Attributes:
        precision: Fraction of generated samples inside the real manifold.
        recall: Fraction of real samples inside the generated manifold.
    """

    precision: float
    recall: float

    def as_dict(self) -> Dict[str, float]:
        """Returns ``{"precision": ..., "recall": ...}``."""
        return dataclasses.asdict(self)


def _squared_distances(a: np.ndarray, b: np.ndarray, b_sq_norms: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances [len(a), len(b)], clipped at 0."""
    a_sq = np.einsum("ij,ij->i", a, a)
    d2 = a_sq[:, None] + b_sq_norms[None, :] - 2.0 * (a @ b.T)
    np.maximum(d2, 0.0, out=d2)
    return d2


def _knn_squared_radii(features: np.ndarray, k: int, batch_size: int) -> np.ndarray:
    """Squared distance of each row to its k-th nearest other row (self excluded)."""
    sq_norms = np.einsum("ij,ij->i", features, features)
    radii = np.empty(features.shape[0], dtype=np.float64)
    for start in range(0, features.shape[0], batch_size):
        stop = min(start + batch_size, features.shape[0])
        d2 = _squared_distances(features[start:stop], features, sq_norms)
        # The point itself sits at distance 0 (sorted position 0), so the k-th
        # nearest *other* point is at sorted position k.
        d2[np.arange(stop - start), np.arange(start, stop)] = 0.0
        radii[start:stop] = np.partition(d2, k, axis=1)[:, k]
    return radii


def precision_recall(
    real_features: Any,
    fake_features: Any,
    k: int = 3,
    batch_size: int = 1024,
) -> PrecisionRecall:
    """Improved precision and recall of generated samples.

    Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for
    Assessing Generative Models" (NeurIPS). Each set's manifold is the union of
    balls centred at its samples, with radius the distance to the sample's
    k-th nearest neighbour within the same set (excluding the sample itself).
    A point is inside a manifold if it is within the radius (``<=``) of at
    least one of its samples.

    * precision = fraction of fake samples inside the real manifold;
    * recall = fraction of real samples inside the fake manifold.

    Pairwise distances are computed in row batches: peak extra memory is about
    ``batch_size * max(n_real, n_fake)`` float64 values (e.g. ~80 MB for
    batch_size=1024 and 10k samples) instead of the full n^2 matrix; the
    real-fake distance blocks are computed once and used for both metrics.

    Args:
        real_features: Array [n_real, d] of real-sample features.
        fake_features: Array [n_fake, d] of generated-sample features.
        k: Neighbourhood size (the paper uses 3); both sets need more than k
            samples.
        batch_size: Number of rows per distance block (>= 1).

    Returns:
        A :class:`PrecisionRecall` with ``precision`` and ``recall`` in [0, 1]
        (use ``.as_dict()`` for a dict).

    Raises:
        ValueError: If the arrays are malformed, have different feature
            dimensions, or either set has at most ``k`` samples.
    """
    real = _as_features(real_features, "real_features")
    fake = _as_features(fake_features, "fake_features")
    _check_same_dim(real, fake, "real_features", "fake_features")
    k = _check_positive_int(k, "k")
    batch_size = _check_positive_int(batch_size, "batch_size")
    for name, arr in (("real_features", real), ("fake_features", fake)):
        if arr.shape[0] <= k:
            raise ValueError(
                f"{name} needs more than k={k} samples to define k-NN radii, got "
                f"{arr.shape[0]}; pass more samples or lower k."
            )

    real_radii = _knn_squared_radii(real, k, batch_size)
    fake_radii = _knn_squared_radii(fake, k, batch_size)

    real_sq_norms = np.einsum("ij,ij->i", real, real)
    fake_in_real = np.zeros(fake.shape[0], dtype=bool)
    real_in_fake = np.zeros(real.shape[0], dtype=bool)
    for start in range(0, fake.shape[0], batch_size):
        stop = min(start + batch_size, fake.shape[0])
        d2 = _squared_distances(fake[start:stop], real, real_sq_norms)  # [b, n_real]
        fake_in_real[start:stop] = np.any(d2 <= real_radii[None, :], axis=1)
        real_in_fake |= np.any(d2 <= fake_radii[start:stop, None], axis=0)

    return PrecisionRecall(
        precision=float(np.mean(fake_in_real)),
        recall=float(np.mean(real_in_fake)),
    )
