"""Exact fixed-radius pair search over de-duplication codes, in bounded memory.

Finds every (image i, probe p, image j), i != j, whose unit-length codes are within a
radius r: ||unit(codes[i, p]) - unit(codes[j, 0])|| <= r (the verification rule of
`match`). Without enumerating all pairs and without a hash's misses:

- An orthonormal projection never lengthens a difference, so a pair within r stays
  within r on the codes' first `dims` principal axes (from a sample of the images) and
  on the first axis alone. These are filters that cannot drop a pair.
- Images are sorted by their first-axis coordinate and cut into slabs of `slab_rows`
  images. A slab is matched against the images and probes whose first coordinate lies
  within r of its range (found by binary search in the sorted coordinates).
- In a slab, a k-d tree over the `dims`-d projections yields the candidate pairs within
  r (scipy's dual-tree `sparse_distance_matrix`), and each candidate's full 128-d
  distance decides (`code_distances`, the arithmetic the hash-band search verified with).

Memory: one float32 coordinate per image and probe, their sort order, and one slab's
codes and trees, whatever the number of images; codes may be a memory map. Time: a tree
query per image and probe and slab it reaches: ~linear in N for a fixed slab size while
the slabs are not much thinner than 2r (docs/benchmarks.md, "De-duplication search
scaling").
"""
import numpy as np
from scipy.spatial import cKDTree

PCA_DIMS = 16
SLAB_ROWS = 65_536


def unit_rows(codes, rows, probe):
    """float32 codes [len(rows), 128] of images `rows` at `probe`, scaled to unit length
    (an all-zero code stays zero)."""
    x = np.asarray(codes[rows, probe], np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-6
    return x


def code_distances(codes, pairs, chunk=65_536):
    """Distances between the unit-length codes of (probe p of image i, image j)."""
    out = np.empty(len(pairs), np.float32)
    for lo in range(0, len(pairs), chunk):
        i, p, j = pairs[lo:lo + chunk].T
        out[lo:lo + chunk] = np.linalg.norm(unit_rows(codes, i, p) - unit_rows(codes, j, 0),
                                            axis=1)
    return out


def principal_axes(codes, dims=PCA_DIMS, sample=50_000):
    """(mean [128], orthonormal axes [128, <= dims]) of the unit-length image codes of
    <= `sample` evenly spaced images, the axes in order of decreasing variance."""
    rows = np.unique(np.linspace(0, len(codes) - 1, min(sample, len(codes))).astype(np.int64))
    x = unit_rows(codes, rows, 0).astype(np.float64)
    mean = x.mean(0)
    _, axes = np.linalg.eigh(np.cov(x - mean, rowvar=False))  # ascending
    return mean, axes[:, ::-1][:, :dims]


def _project(codes, rows, probes, mean, axes, chunk=65_536):
    """[len(rows), axes] coordinates of the unit-length codes (rows, probes), read in
    chunks (`probes`: one probe or one per row)."""
    probes = np.broadcast_to(probes, np.shape(rows))
    out = np.empty((len(rows), axes.shape[1]))
    for lo in range(0, len(rows), chunk):
        part = slice(lo, lo + chunk)
        out[part] = (unit_rows(codes, rows[part], probes[part]) - mean) @ axes
    return out


def first_coordinates(codes, mean, axis, chunk=65_536):
    """float32 [N, probes]: every image's and probe's coordinate on `axis`."""
    n, probes = codes.shape[:2]
    out = np.empty((n, probes), np.float32)
    for lo in range(0, n, chunk):
        rows = np.arange(lo, min(n, lo + chunk))
        for p in range(probes):
            out[rows, p] = _project(codes, rows, p, mean, axis[:, None])[:, 0]
    return out


def radius_pairs(codes, max_distance, dims=PCA_DIMS, slab_rows=SLAB_ROWS):
    """Every (i, probe of i, j), i != j, with unit-length codes within `max_distance`.

    Args:
        codes: [N, probes, 128] codes (probe 0: the image), an array or a memory map.
        max_distance: the radius (Euclidean distance between unit-length codes).
        dims: principal axes the k-d trees work in (more: fewer candidates, slower trees).
        slab_rows: images per slab (memory: a few slabs' codes).
    Returns:
        (pairs int64 [M, 3] sorted, stats dict: candidate_pairs (full distances
        computed), slabs, slab_queries (image-probes matched against a slab, summed)).
    """
    n, probes = codes.shape[:2]
    stats = dict(candidate_pairs=0, slabs=0, slab_queries=0, pca_dims=dims)
    if n < 2:
        return np.zeros((0, 3), np.int64), stats
    mean, axes = principal_axes(codes, dims)
    first = first_coordinates(codes, mean, axes[:, 0])
    # Float rounding margin for the filters; the final test is code_distances <= r.
    reach = max_distance * (1 + 1e-4) + 1e-5
    images = np.argsort(first[:, 0], kind="stable")
    queries = np.argsort(first.ravel(), kind="stable")  # flat index i * probes + p
    sorted_first = first.ravel()[queries]
    found = []
    for lo in range(0, n, slab_rows):
        slab = images[lo:lo + slab_rows]
        low, high = first[slab[0], 0] - reach, first[slab[-1], 0] + reach
        span = queries[np.searchsorted(sorted_first, low, "left"):
                       np.searchsorted(sorted_first, high, "right")]
        span = np.sort(span)  # file order: sequential reads of a memory map
        qi, qp = span // probes, span % probes
        base = np.sort(slab)
        near = cKDTree(_project(codes, qi, qp, mean, axes)).sparse_distance_matrix(
            cKDTree(_project(codes, base, 0, mean, axes)), reach, output_type="ndarray")
        candidates = np.stack([qi[near["i"]], qp[near["i"]], base[near["j"]]], 1)
        candidates = candidates[candidates[:, 0] != candidates[:, 2]]
        found.append(candidates[code_distances(codes, candidates) <= max_distance])
        stats["slabs"] += 1
        stats["slab_queries"] += int(len(span))
        stats["candidate_pairs"] += int(len(candidates))
    pairs = np.concatenate(found).astype(np.int64)
    return pairs[np.lexsort(pairs.T[::-1])], stats
