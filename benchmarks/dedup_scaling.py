r"""How the de-duplication's pair search grows with the number of images.

    .venv/bin/python benchmarks/dedup_scaling.py                        # 2.5k ... 40k
    .venv/bin/python benchmarks/dedup_scaling.py --sizes=2500,5000 --old_max=5000
    .venv/bin/python benchmarks/dedup_scaling.py --codes=/tmp/codes.npy  # reuse codes

Trains the paper's autoencoder once (dcgan_keras.data.dedup.semantic_hash, --epochs on
the first max(--sizes) Fashion-MNIST training images), writes their codes (image + 4
one-pixel shifted probes, as `semantic_hash.code_pass` does) and then, for the first n images of those
codes for each n in --sizes, times the pair search:
- `hash_bands` (the previous default, up to --old_max images): hash collisions on bands of
  median-thresholded bits, every collision verified;
- `radius` (data.dedup.radius.radius_pairs): the exact search for every pair within
  --max_distance.
Reports candidate pairs (distances computed), verified pairs, groups and seconds per n,
whether the radius search's pairs contain every verified hash-band pair, and the growth
exponent b of seconds ~ n^b (least squares on log-log) for each method.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
from dedup_planted import cpu_model  # noqa: E402  (benchmarks/dedup_planted.py)

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


def make_codes(path, n, epochs, seed, data_dir):
    """Trains the autoencoder on the first n training images and writes their codes."""
    from dcgan_keras.data.dedup import semantic_hash as dedup
    from dcgan_keras.data import idx, source as source_lib
    arrays = idx.load_idx_split("fashion_mnist", "train", data_dir)
    if arrays is None:
        sys.exit(f"no Fashion-MNIST IDX files in {data_dir}")
    source = source_lib.array_source("fashion_mnist", "train", arrays[0][:n])
    encoder, loss = dedup.train_autoencoder(source, epochs, 256, seed=seed)
    codes, _ = dedup.code_pass(encoder, source, path)
    return codes, loss


def hash_band_search(codes, max_distance, seed=0):
    """The previous candidate search: returns (candidates, verified edges [M, 2])."""
    from dcgan_keras.data.dedup import match as m
    thresholds = m.unit_thresholds(codes)
    bands = m.hash_bands(thresholds, codes, len(codes), seed)
    pairs = m.candidate_pairs(m.band_keys(codes, thresholds, bands))
    keep = m.code_distances(codes, pairs) <= max_distance
    return len(pairs), pairs[keep][:, [0, 2]]


def undirected(edges):
    return {(int(a), int(b)) for a, b in np.sort(edges, 1)} if len(edges) else set()


def exponent(sizes, seconds):
    """b of seconds ~ n^b, least squares on log-log (None with fewer than 2 points)."""
    if len(sizes) < 2:
        return None
    return round(float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0]), 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2500,5000,10000,20000,40000")
    parser.add_argument("--old_max", type=int, default=20000,
                        help="run the hash-band search up to this many images")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max_distance", type=float, default=0.04)
    parser.add_argument("--dims", type=int, default=16, help="radius search's PCA dims")
    parser.add_argument("--slab_rows", type=int, default=65_536,
                        help="radius search's images per slab")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data_dir", default=FMNIST_DIR)
    parser.add_argument("--codes", default="", help="codes .npy: reused if it exists, "
                        "else written there (default: a temporary file)")
    parser.add_argument("--out", default="", help="also write the result as JSON here")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    from dcgan_keras.data.dedup import radius as dedup_radius
    path = args.codes or os.path.join("/tmp", f"dedup_scaling_{os.getpid()}.npy")
    start = time.perf_counter()
    loss = None
    if os.path.exists(path):
        codes = np.load(path, mmap_mode="r")
        if len(codes) < sizes[-1]:
            sys.exit(f"{path} holds {len(codes)} images, --sizes asks for {sizes[-1]}")
    else:
        codes, loss = make_codes(path, sizes[-1], args.epochs, args.seed, args.data_dir)
    coding_seconds = round(time.perf_counter() - start, 1)
    rows = []
    for n in sizes:
        sub = codes[:n]
        row = dict(n=n)
        t = time.perf_counter()
        pairs, stats = dedup_radius.radius_pairs(sub, args.max_distance, dims=args.dims,
                                                   slab_rows=args.slab_rows)
        row["radius"] = dict(seconds=round(time.perf_counter() - t, 2),
                             candidate_pairs=stats["candidate_pairs"],
                             verified_pairs=len(undirected(pairs[:, [0, 2]])),
                             slabs=stats["slabs"], slab_queries=stats["slab_queries"])
        new = undirected(pairs[:, [0, 2]])
        if n <= args.old_max:
            t = time.perf_counter()
            candidates, edges = hash_band_search(sub, args.max_distance, args.seed)
            old = undirected(edges)
            row["hash_bands"] = dict(seconds=round(time.perf_counter() - t, 2),
                                     candidate_pairs=int(candidates),
                                     verified_pairs=len(old))
            row["radius_has_every_hash_band_pair"] = old <= new
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = dict(
        rows=rows, max_distance=args.max_distance, dims=args.dims, slab_rows=args.slab_rows,
        epochs=args.epochs,
        coding_seconds=coding_seconds, reconstruction_mse=loss,
        exponent_radius=exponent([r["n"] for r in rows],
                                 [r["radius"]["seconds"] for r in rows]),
        exponent_hash_bands=exponent(
            [r["n"] for r in rows if "hash_bands" in r],
            [r["hash_bands"]["seconds"] for r in rows if "hash_bands" in r]),
        exponent_radius_candidates=exponent(
            [r["n"] for r in rows], [max(1, r["radius"]["candidate_pairs"]) for r in rows]),
        exponent_hash_band_candidates=exponent(
            [r["n"] for r in rows if "hash_bands" in r],
            [r["hash_bands"]["candidate_pairs"] for r in rows if "hash_bands" in r]),
        machine=cpu_model(), date=time.strftime("%Y-%m-%d"))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    if not args.codes:
        os.remove(path)


if __name__ == "__main__":
    main()
