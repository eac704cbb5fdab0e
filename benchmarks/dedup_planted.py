r"""Precision and recall of the de-duplication hash on planted near-duplicates.

    .venv/bin/python benchmarks/dedup_planted.py                  # 10,000 + 4 x 200, minutes
    .venv/bin/python benchmarks/dedup_planted.py --distinct=2000 --planted=100 --epochs=5
    .venv/bin/python benchmarks/dedup_planted.py --match=equal_hash    # the paper's rule as is
    .venv/bin/python benchmarks/dedup_planted.py --split=test          # held-out images

Takes --distinct different Fashion-MNIST training images (IDX files, e.g. Debian's
dataset-fashion-mnist; exact byte-duplicates removed), and plants, for the first
--planted of them, four copies: an exact copy, one with Gaussian noise (sigma 4 of 255),
a JPEG re-encode (quality 75) and a one-pixel shift (right, zero fill). All are written
as image files to a temporary folder and de-duplicated with dcgan_keras.data.dedup,
exactly what `python -m dcgan_keras.binaries.dedup --dataset=folder` runs.

Reports recall per kind (a copy counts as found if it has its original's hash) and
pairwise precision (of all pairs of images with equal hashes, the share that are an
original and its copy or two copies of one original), and how many distinct originals
share a hash with another original (these should be 0: distinct images must not be
grouped; a Fashion-MNIST image can still be a near-duplicate of another by nature, and
dedup_groups.png in --workdir shows the groups).
"""
import argparse
import io
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

KINDS = ("exact", "noise", "jpeg", "shift")
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


def plant(image, kind, rng):
    """One near-duplicate of a uint8 [H, W] image; returns (uint8 array or None, bytes or None)."""
    if kind == "exact":
        return image.copy()
    if kind == "noise":
        return np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    if kind == "shift":
        shifted = np.zeros_like(image)
        shifted[:, 1:] = image[:, :-1]
        return shifted
    raise ValueError(kind)


def encode(image, fmt, **kwargs):
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def write_planted_folder(directory, images, distinct, planted, seed=0):
    """Writes originals and copies; returns {file name: (original index, kind)}."""
    rng = np.random.default_rng(seed)
    _, first = np.unique(images.reshape(len(images), -1), axis=0, return_index=True)
    chosen = np.sort(first)[:distinct]  # no two byte-identical originals
    truth = {}
    for k, i in enumerate(chosen):
        name = f"orig_{k:05d}.png"
        with open(os.path.join(directory, name), "wb") as f:
            f.write(encode(images[i], "PNG"))
        truth[name] = (k, "original")
        if k >= planted:
            continue
        for kind in KINDS:
            if kind == "jpeg":
                data, ext = encode(images[i], "JPEG", quality=75), "jpg"
            else:
                data, ext = encode(plant(images[i], kind, rng), "PNG"), "png"
            name = f"copy_{kind}_{k:05d}.{ext}"
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)
            truth[name] = (k, kind)
    return truth


def score(groups, truth, planted):
    """Recall per kind, pairwise precision and distinct originals grouped together."""
    group_of = {name: g for g, members in enumerate(groups) for name in members}
    recall = {}
    for kind in KINDS:
        found = sum(1 for name, (k, kd) in truth.items() if kd == kind and
                    name in group_of and group_of.get(f"orig_{k:05d}.png") == group_of[name])
        recall[kind] = found / planted
    pairs = [(a, b) for members in groups for a, b in itertools.combinations(members, 2)]
    true_pairs = sum(truth[a][0] == truth[b][0] for a, b in pairs)
    originals_grouped = sum(
        1 for members in groups
        for name in members if truth[name][1] == "original"
        and any(truth[o][1] == "original" and o != name for o in members))
    mixed_groups = sum(len({truth[m][0] for m in members}) > 1 for members in groups)
    return dict(recall=recall, recall_all=sum(recall.values()) / len(KINDS),
                pairs=len(pairs), precision=true_pairs / len(pairs) if pairs else 1.0,
                distinct_originals_grouped=originals_grouped, mixed_groups=mixed_groups)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distinct", type=int, default=10000)
    parser.add_argument("--planted", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--noise_stddev", type=float, default=0.2)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--threshold", type=float, default=0.0)
    parser.add_argument("--match", default="verified", help="verified or equal_hash")
    parser.add_argument("--max_distance", type=float, default=0.04)
    parser.add_argument("--split", default="train", help="Fashion-MNIST split the images "
                        "come from (test: held out from the choice of --max_distance)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data_dir", default=FMNIST_DIR)
    parser.add_argument("--workdir", default="", help="keep dedup's outputs here")
    parser.add_argument("--out", default="", help="also write the result as JSON here")
    args = parser.parse_args()

    from dcgan_keras.data.dedup import semantic_hash as dedup
    from dcgan_keras.data import datasets, idx
    arrays = idx.load_idx_split("fashion_mnist", args.split, args.data_dir)
    if arrays is None:
        sys.exit(f"no Fashion-MNIST IDX files in {args.data_dir} (apt-get install "
                 "dataset-fashion-mnist)")
    images = arrays[0][..., 0]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "images")
        os.makedirs(folder)
        truth = write_planted_folder(folder, images, args.distinct, args.planted, args.seed)
        source = datasets.get_source("folder", "train", folder)
        workdir = args.workdir or os.path.join(tmp, "dedup")
        summary = dedup.run(source, workdir, epochs=args.epochs,
                            noise_stddev=args.noise_stddev, dropout=args.dropout,
                            threshold=args.threshold, seed=args.seed, match=args.match,
                            max_distance=args.max_distance)
        with open(os.path.join(workdir, "dedup.json")) as f:
            groups = json.load(f)["groups"]
    result = dict(score(groups, truth, args.planted), images=len(truth),
                  distinct=args.distinct, planted_per_kind=args.planted,
                  epochs=args.epochs, noise_stddev=args.noise_stddev, dropout=args.dropout,
                  threshold=args.threshold, seed=args.seed, match=args.match,
                  max_distance=args.max_distance, split=args.split,
                  mean_relu_units_on=summary["mean_relu_units_on"],
                  groups=summary["num_groups"],
                  **{k: summary[k] for k in ("hash_bands", "candidate_pairs",
                                             "verified_pairs") if k in summary},
                  seconds=round(time.perf_counter() - start, 1), machine=cpu_model(),
                  date=time.strftime("%Y-%m-%d"))
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


def cpu_model():
    """The CPU's model name (lscpu), for the record of a measurement."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return re.search(r"Model name:\s*(.+)", out).group(1).strip()
    except (OSError, AttributeError):
        return platform.processor()


if __name__ == "__main__":
    main()
