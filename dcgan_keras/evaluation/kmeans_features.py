"""Single-layer K-means features (Coates, Lee & Ng, AISTATS 2011).

This is the baseline of the DCGAN paper's representation-learning probe (section 5.1):
random patches -> per-patch brightness/contrast normalisation -> ZCA whitening ->
K-means dictionary; an image is encoded by the "triangle" activation of every
``patch_size`` x ``patch_size`` patch (stride 1), sum-pooled over the 4 image quadrants,
giving ``4 * num_centroids`` features.

Scaling conventions. Images are float NHWC in [-1, 1] (the DCGAN preprocessing).
Coates et al. normalise [0, 255] patches as ``(p - mean(p)) / sqrt(var(p) + 10)``.
Because ``x = p / 127.5 - 1`` is affine, the same normalised patch is obtained in [-1, 1]
units with ``contrast_eps = 10 / 127.5**2`` (~6.15e-4), the default here. After that
normalisation patches are scale-free, so the ZCA regulariser ``whitening_eps = 0.1`` of
the original code applies unchanged to [-1, 1] images.

Speed (2-core Xeon Sapphire Rapids VM, TF 2.21, XLA on, K=1600, 6,400 features):
encoding 10,000 32x32x3 images costs 42-46 CPU-seconds, i.e. ~22 s wall on two free
cores (54-62 s measured while other jobs shared the cores); the bulk is ~2.5 TFLOP of
patch-centroid products. ``fit`` with the defaults (400k patches, up to 50 Lloyd
iterations) cost ~155 CPU-seconds (~80 s wall on two free cores).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Coates et al.'s contrast-normalisation constant for [0, 255] pixels, in [-1, 1] units.
DEFAULT_CONTRAST_EPS = 10.0 / 127.5**2


def _check_images(images, name: str = "images") -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"{name} must be NHWC with 4 dims, got shape {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{name} contains NaN or inf")
    # A generous bound: catches [0, 255] data passed by mistake (which would silently
    # break the contrast constant) yet tolerates resize overshoot slightly past +-1.
    if np.abs(images).max() > 1.5:
        raise ValueError(f"{name} must be scaled to [-1, 1] (x / 127.5 - 1); max |x| is "
                         f"{np.abs(images).max():.3g}")
    return images


def extract_patches(images: np.ndarray, patch_size: int) -> np.ndarray:
    """All stride-1 patches of a batch, as a view-based im2col.

    Args:
      images: float array [n, h, w, c].
      patch_size: side of the square patches.

    Returns:
      Array [n, h - p + 1, w - p + 1, p * p * c]; each patch is flattened in
      (row, column, channel) order, the same as ``tf.image.extract_patches``.
    """
    win = np.lib.stride_tricks.sliding_window_view(images, (patch_size, patch_size), axis=(1, 2))
    n, rows, cols, c = win.shape[:4]
    # Window axes come last ([n, r, c, ch, pr, pc]); reorder to (pr, pc, ch) per patch.
    return win.transpose(0, 1, 2, 4, 5, 3).reshape(n, rows, cols, patch_size * patch_size * c)


def normalize_patches(patches: np.ndarray, eps: float) -> np.ndarray:
    """Per-patch brightness and contrast normalisation (rows are patches)."""
    patches = patches - patches.mean(axis=1, keepdims=True)
    # ddof=1 matches MATLAB's var() used by the original code.
    return patches / np.sqrt(patches.var(axis=1, ddof=1, keepdims=True) + eps)


def zca_whitening(patches: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """ZCA whitening transform ``(x - mean) @ w`` fitted on ``patches`` [m, d].

    Returns:
      ``(mean [d], w [d, d])`` with ``w = V diag(1 / sqrt(lambda + eps)) V^T``.
    """
    x = patches.astype(np.float64)
    mean = x.mean(axis=0)
    cov = np.cov(x, rowvar=False)
    eigval, eigvec = np.linalg.eigh(cov)
    eigval = np.maximum(eigval, 0.0)  # round-off can make the null direction slightly negative
    w = (eigvec * (1.0 / np.sqrt(eigval + eps))) @ eigvec.T
    return mean.astype(np.float32), w.astype(np.float32)


def run_kmeans(x: np.ndarray, k: int, iterations: int, rng: np.random.Generator,
               tol: float = 1e-3, chunk: int = 32768) -> np.ndarray:
    """Standard (Lloyd) K-means on rows of ``x``; returns centroids [k, d].

    Initialised from ``k`` distinct data points; a cluster that empties is re-seeded with a
    random data point (Coates et al. zero such clusters, which wastes dictionary atoms).
    Stops after ``iterations`` or once at most a fraction ``tol`` of assignments change.
    """
    n = x.shape[0]
    if n < k:
        raise ValueError(f"need at least num_centroids={k} patches for K-means, got {n}")
    centroids = x[rng.choice(n, size=k, replace=False)].copy()
    labels = np.full(n, -1, dtype=np.int64)
    xt = tf.constant(x, tf.float32)
    for _ in range(iterations):
        cent = tf.constant(centroids, tf.float32)
        half_c2 = 0.5 * tf.reduce_sum(cent * cent, axis=1)
        # argmin ||x - c||^2 == argmax x.c - ||c||^2 / 2; TF's multi-threaded GEMM is ~2x
        # numpy's here. Chunked so the [chunk, k] score block stays small.
        new_labels = np.concatenate([
            tf.argmax(tf.matmul(xt[s:s + chunk], cent, transpose_b=True) - half_c2,
                      axis=1).numpy() for s in range(0, n, chunk)])
        changed = np.count_nonzero(new_labels != labels)
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centroids)
        _scatter_sum(sums, labels, x)
        empty = counts == 0
        centroids = sums / np.maximum(counts, 1)[:, None]
        if empty.any():
            centroids[empty] = x[rng.choice(n, size=int(empty.sum()), replace=False)]
        if changed <= tol * n and not empty.any():
            break
    return centroids.astype(np.float32)


def _scatter_sum(out: np.ndarray, labels: np.ndarray, x: np.ndarray) -> None:
    # out[labels[i]] += x[i]; sorting once + reduceat is far faster than np.add.at.
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    out[sorted_labels[starts]] = np.add.reduceat(x[order], starts, axis=0)


def quadrant_sum(maps: np.ndarray) -> np.ndarray:
    """Sum-pools [n, rows, cols, k] maps over 4 quadrants -> [n, 4 * k].

    The split is at ``ceil(rows / 2)`` (MATLAB ``round`` of the original code); output is
    quadrant-major: top-left, top-right, bottom-left, bottom-right.
    """
    hr, hc = (maps.shape[1] + 1) // 2, (maps.shape[2] + 1) // 2
    quads = [maps[:, :hr, :hc], maps[:, :hr, hc:], maps[:, hr:, :hc], maps[:, hr:, hc:]]
    return np.concatenate([q.sum(axis=(1, 2)) for q in quads], axis=1)


class KMeansFeatures:
    """Coates-style single-layer K-means feature extractor.

    Example::

        kmf = KMeansFeatures(num_centroids=1600).fit(train_images)
        feats = kmf(test_images)  # [n, 6400]

    Attributes (after ``fit``): ``mean_`` [d] and ``whitening_`` [d, d] (ZCA),
    ``centroids_`` [K, d] in whitened space, ``input_shape_`` (h, w, c) seen in ``fit``.
    """

    def __init__(self, patch_size: int = 6, num_centroids: int = 1600,
                 whitening_eps: float = 0.1, contrast_eps: float = DEFAULT_CONTRAST_EPS,
                 num_patches: int = 400_000, kmeans_iterations: int = 50,
                 kmeans_tol: float = 1e-3, batch_size: int = 100, seed: int = 0,
                 jit_compile: bool = True):
        """Configures the extractor.

        Args:
          patch_size: side of the square receptive field (6 in Coates et al. for 32x32).
          num_centroids: dictionary size K; features have 4K dims (1600 -> 6400).
          whitening_eps: ZCA regulariser added to the eigenvalues of the covariance of
            contrast-normalised patches (0.1 in the original code).
          contrast_eps: added to each patch's variance before dividing, in [-1, 1] units;
            the default equals the original 10 for [0, 255] pixels.
          num_patches: random patches drawn for whitening and K-means (400k originally).
          kmeans_iterations: maximum Lloyd iterations (50 originally).
          kmeans_tol: stop K-means early once at most this fraction of patches changes
            cluster in an iteration (0 runs all iterations unless nothing changes).
          batch_size: images encoded per step by ``__call__`` (bounds memory:
            ~batch * patches_per_image * K * 4 bytes).
          seed: seeds patch sampling and K-means initialisation.
          jit_compile: compile the encoder with XLA (about 1.6x faster on CPU).
        """
        for name, value in [("patch_size", patch_size), ("num_centroids", num_centroids),
                            ("num_patches", num_patches), ("batch_size", batch_size),
                            ("kmeans_iterations", kmeans_iterations)]:
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if whitening_eps < 0 or contrast_eps < 0:
            raise ValueError("whitening_eps and contrast_eps must be non-negative")
        self.patch_size, self.num_centroids = int(patch_size), int(num_centroids)
        self.whitening_eps, self.contrast_eps = float(whitening_eps), float(contrast_eps)
        self.num_patches, self.kmeans_iterations = int(num_patches), int(kmeans_iterations)
        self.kmeans_tol = float(kmeans_tol)
        self.batch_size, self.seed, self.jit_compile = int(batch_size), int(seed), jit_compile
        self.mean_ = self.whitening_ = self.centroids_ = self.input_shape_ = None
        self._encode = None

    @property
    def output_dim(self) -> int:
        """Number of features per image, ``4 * num_centroids``."""
        return 4 * self.num_centroids

    def _check_input(self, images, name: str) -> np.ndarray:
        images = _check_images(images, name)
        if min(images.shape[1:3]) < self.patch_size:
            raise ValueError(f"{name} of size {images.shape[1:3]} are smaller than "
                             f"patch_size={self.patch_size}")
        return images

    def sample_patches(self, images: np.ndarray, num_patches: int,
                       rng: np.random.Generator) -> np.ndarray:
        """Flattened random patches [num_patches, p*p*c] (uniform image and position)."""
        n, h, w, _ = images.shape
        p = self.patch_size
        idx = rng.integers(0, n, num_patches)
        r, c = rng.integers(0, h - p + 1, num_patches), rng.integers(0, w - p + 1, num_patches)
        off = np.arange(p)
        patches = images[idx[:, None, None], (r[:, None] + off)[:, :, None],
                         (c[:, None] + off)[:, None, :]]  # [m, p, p, ch]
        return patches.reshape(num_patches, -1)

    def fit(self, images) -> "KMeansFeatures":
        """Learns the whitening transform and the K-means dictionary.

        Args:
          images: float [n, h, w, c] in [-1, 1].

        Returns:
          ``self``.
        """
        images = self._check_input(images, "images")
        rng = np.random.default_rng(self.seed)
        patches = normalize_patches(self.sample_patches(images, self.num_patches, rng),
                                    self.contrast_eps)
        self.mean_, self.whitening_ = zca_whitening(patches, self.whitening_eps)
        white = (patches - self.mean_) @ self.whitening_
        self.centroids_ = run_kmeans(white, self.num_centroids, self.kmeans_iterations, rng,
                                     tol=self.kmeans_tol)
        self.input_shape_ = images.shape[1:]
        self._encode = None
        return self

    def whiten(self, patches: np.ndarray) -> np.ndarray:
        """Normalises and whitens flattened patches [m, d] with the fitted transform."""
        self._check_fitted()
        return (normalize_patches(np.asarray(patches, np.float32), self.contrast_eps)
                - self.mean_) @ self.whitening_

    def _check_fitted(self):
        if self.centroids_ is None:
            raise RuntimeError("KMeansFeatures must be fit() before use")

    def _build_encoder(self):
        p, d, ch = self.patch_size, self.mean_.shape[0], self.input_shape_[2]
        w = tf.constant(self.whitening_)
        # Normalise-then-whiten of every patch, folded into one convolution (about 4x
        # cheaper than im2col + GEMM): with patch p, mean mu, s = sqrt(var + eps),
        #   ((p - mu) / s - m) @ W = (p @ W - mu * (1 @ W)) / s - m @ W,
        # and p @ W for all positions is a VALID conv with W reshaped to [p, p, ch, d]
        # (patches flatten in (row, col, channel) order, the kernel's layout).
        kernel = tf.reshape(w, [p, p, ch, d])
        ones_w, mean_w = tf.reduce_sum(w, axis=0), tf.linalg.matvec(w, self.mean_, True)
        cent = tf.constant(self.centroids_)
        c2 = tf.reduce_sum(cent * cent, axis=1)
        eps = self.contrast_eps

        def encode(images):
            pw = tf.nn.conv2d(images, kernel, 1, "VALID")  # [n, rows, cols, d]
            n, rows, cols = pw.shape[0], pw.shape[1], pw.shape[2]
            mu = tf.nn.avg_pool2d(tf.reduce_mean(images, 3, keepdims=True), p, 1, "VALID")
            sq = tf.nn.avg_pool2d(tf.reduce_mean(images * images, 3, keepdims=True), p, 1,
                                  "VALID")
            var = tf.maximum(sq - mu * mu, 0.0) * (d / (d - 1))  # ddof=1, like MATLAB
            x = tf.reshape((pw - mu * ones_w) / tf.sqrt(var + eps) - mean_w, [-1, d])
            # ||x - c||^2 = ||x||^2 + ||c||^2 - 2 x.c: one GEMM, clipped for round-off.
            dist2 = tf.reduce_sum(x * x, axis=1, keepdims=True) + c2 \
                - 2.0 * tf.matmul(x, cent, transpose_b=True)
            z = tf.sqrt(tf.maximum(dist2, 0.0))
            act = tf.nn.relu(tf.reduce_mean(z, axis=1, keepdims=True) - z)
            act = tf.reshape(act, [n, rows, cols, -1])
            # Quadrant sums, columns first then rows (XLA runs this ~15% faster than four
            # 2-D slice reductions); the result is TL, TR, BL, BR, as in quadrant_sum().
            hr, hc = (rows + 1) // 2, (cols + 1) // 2
            halves = tf.stack([tf.reduce_sum(act[:, :, :hc], 2),
                               tf.reduce_sum(act[:, :, hc:], 2)], axis=2)  # [n, rows, 2, K]
            quads = tf.stack([tf.reduce_sum(halves[:, :hr], 1),
                              tf.reduce_sum(halves[:, hr:], 1)], axis=1)  # [n, 2, 2, K]
            return tf.reshape(quads, [n, -1])

        return tf.function(encode, jit_compile=self.jit_compile, reduce_retracing=False)

    def __call__(self, images) -> np.ndarray:
        """Encodes images into [n, 4K] non-negative float32 features.

        Args:
          images: float [n, h, w, c] in [-1, 1] with the channel count used in ``fit``
            (other spatial sizes work; pooling is always over 4 quadrants).
        """
        self._check_fitted()
        images = self._check_input(images, "images")
        if images.shape[3] != self.input_shape_[2]:
            raise ValueError(f"images have {images.shape[3]} channels, fit() saw "
                             f"{self.input_shape_[2]}")
        if self._encode is None:
            self._encode = self._build_encoder()
        n = images.shape[0]
        # Every step runs at one fixed batch shape (the tail is zero-padded) so XLA
        # compiles once per image size instead of once per remainder.
        bs = min(self.batch_size, n)
        out = np.empty((n, self.output_dim), np.float32)
        for start in range(0, n, bs):
            chunk = images[start:start + bs]
            m = chunk.shape[0]
            if m < bs:
                chunk = np.concatenate([chunk, np.zeros((bs - m,) + chunk.shape[1:], np.float32)])
            out[start:start + m] = self._encode(tf.constant(chunk)).numpy()[:m]
        return out
