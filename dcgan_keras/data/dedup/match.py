"""Near-duplicate groups from semantic-hash codes (see `semantic_hash` for the method).

Codes are [N, probes, 128] (probe 0: the image; the others: it shifted by a pixel), as
`semantic_hash.code_pass` writes them; a memory map works, rows are read in chunks.
"""
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from dcgan_keras.data.dedup.radius import code_distances, radius_pairs

CODE_UNITS = 128


def hash_codes(codes, threshold=0.0):
    """ReLU codes [N, 128] -> packed binary hashes [N, 16] uint8 (bit = code > threshold)."""
    return np.packbits(np.asarray(codes) > threshold, axis=1)


def group(hashes):
    """Groups of equal hashes: a list of index arrays (ascending), groups of >= 2 only,
    ordered by their first member."""
    hashes = np.ascontiguousarray(hashes)
    keys = hashes.view(np.dtype((np.void, hashes.shape[1]))).ravel()
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    members = np.argsort(inverse, kind="stable")  # indices grouped by hash, ascending
    bounds = np.cumsum(counts)[:-1]
    groups = [g for g in np.split(members, bounds) if len(g) > 1]
    return sorted(groups, key=lambda g: g[0])


def unit_thresholds(codes, sample=100_000):
    """Per-unit medians of the images' codes (over <= `sample` evenly spaced images): the
    thresholds that make each bit 1 for half the data (balanced bits)."""
    rows = np.unique(np.linspace(0, len(codes) - 1, min(sample, len(codes))).astype(np.int64))
    return np.median(np.asarray(codes[rows, 0], np.float32), axis=0)


def hash_bands(thresholds, codes, n, seed=0):
    """The units of each hash band: the units whose bit varies over the data, shuffled and
    cut into bands of about ceil(log2(n)) bits (~1 image per bucket if the bits were
    independent; at least 8 bits, or all the live units if fewer)."""
    sample = np.asarray(codes[np.linspace(0, len(codes) - 1, min(len(codes), 10_000))
                              .astype(np.int64), 0], np.float32)
    bits = sample > thresholds
    live = np.where(bits.any(0) & ~bits.all(0))[0]
    if not len(live):
        return [np.arange(CODE_UNITS)]
    live = np.random.default_rng(seed).permutation(live)
    width = int(np.clip(np.ceil(np.log2(max(n, 2))), 8, 64))
    return [band[:64] for band in np.array_split(live, max(1, len(live) // width))]


def band_keys(codes, thresholds, bands, chunk=65_536):
    """uint64 keys [N, probes, bands]: each band's bits of every image and probe."""
    n, probes = codes.shape[:2]
    keys = np.zeros((n, probes, len(bands)), np.uint64)
    for lo in range(0, n, chunk):
        bits = np.asarray(codes[lo:lo + chunk], np.float32) > thresholds
        for b, units in enumerate(bands):
            weights = np.left_shift(np.uint64(1), np.arange(len(units), dtype=np.uint64))
            keys[lo:lo + chunk, :, b] = (bits[..., units].astype(np.uint64) * weights).sum(-1)
    return keys


def candidate_pairs(keys):
    """(i, probe of i, j) with i != j such that probe of i and image j (unshifted) share a
    band's key: the hash collisions to verify, unique, as an int64 array [M, 3]."""
    n, probes, nbands = keys.shape
    image = np.repeat(np.arange(n), probes)
    probe = np.tile(np.arange(probes), n)
    found = []
    for b in range(nbands):
        k = keys[:, :, b].ravel()
        order = np.argsort(k, kind="stable")
        _, starts, counts = np.unique(k[order], return_index=True, return_counts=True)
        for start, count in zip(starts[counts > 1], counts[counts > 1]):
            members = order[start:start + count]
            bases = members[probe[members] == 0]
            if not len(bases):
                continue
            a = np.repeat(members, len(bases))
            j = np.tile(image[bases], len(members))
            keep = image[a] != j
            found.append(np.stack([image[a][keep], probe[a][keep], j[keep]], 1))
    if not found:
        return np.zeros((0, 3), np.int64)
    return np.unique(np.concatenate(found), axis=0)


def components(n, pairs):
    """Connected components (>= 2 members, ascending, ordered by first member) of the
    graph on n images with edges `pairs` [M, 2] (scipy's connected_components: compiled,
    linear in n + M)."""
    if not n:
        return []
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    graph = sparse.coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])),
                              shape=(n, n))
    _, labels = csgraph.connected_components(graph, directed=False)
    return group(labels[:, None].astype(np.int64).view(np.uint8))


SEARCHES = ("radius", "hash_bands")


def verified_groups(codes, max_distance, seed=0, search="radius"):
    """Groups of near-duplicates: the connected components of the pairs (any shifted probe
    of one image, another image) whose unit-length codes are within `max_distance`.

    Args:
        search: "radius" (default): all such pairs, by the exact search of `radius`
            (~linear); "hash_bands": only those among the hash collisions (any band,
            any probe), the previous search, whose candidates grow ~quadratically.
    Returns:
        (groups, stats dict).
    """
    if search == "radius":
        found, stats = radius_pairs(codes, max_distance)
        edges = found[:, [0, 2]]
        stats = dict(search=search, **stats)
    elif search == "hash_bands":
        thresholds = unit_thresholds(codes)
        bands = hash_bands(thresholds, codes, len(codes), seed)
        pairs = candidate_pairs(band_keys(codes, thresholds, bands))
        edges = pairs[code_distances(codes, pairs) <= max_distance][:, [0, 2]]
        stats = dict(search=search, hash_bands=[len(b) for b in bands],
                     candidate_pairs=int(len(pairs)))
    else:
        raise ValueError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    groups = components(len(codes), edges)
    stats["verified_pairs"] = int(len(np.unique(np.sort(edges, 1), axis=0)))
    return groups, stats
