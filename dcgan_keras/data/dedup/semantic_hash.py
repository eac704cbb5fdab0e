"""De-duplication by semantic hashing (Radford et al. 2016, section 4.1.1).

"We fit a 3072-128-3072 de-noising dropout regularized RELU autoencoder on 32x32
downsampled center-crops of training examples. The resulting code layer activations are
then binarized via thresholding the ReLU activation [...] allowing for linear time
de-duplication."

The paper's rule as written (`match="equal_hash"`: bit = ReLU code > 0, images with equal
128-bit hashes form a group) groups many distinct images: few units fire per image and
many never do, so similar images share their set of active units (measured in
docs/benchmarks.md). The default (`match="verified"`) keeps the autoencoder's code and
matches codes by distance instead of equal bits:
- each image is also encoded shifted by one pixel each way (`PROBE_SHIFTS`), so a
  shifted copy can meet its original;
- two images are duplicates if the codes (unit length) of one (or of a shifted probe of
  it) and of the other are within `max_distance`; the groups are the connected
  components of those pairs. All such pairs are found by an exact fixed-radius search
  (`radius`: slabs along the first principal axis, k-d trees on a few more),
  ~linear in N with fixed-size slabs; the earlier search verified collisions of
  median-thresholded hash bands (`match`, `search="hash_bands"`), whose
  candidates grew ~quadratically.

Everything streams through tf.data: the autoencoder trains on the shuffled training
stream, the code pass reads the split once in order and writes each image's codes
(5 probes x 128 float16, 1.3 KB) to codes.npy in the workdir, never the images; the
pair search holds a float32 coordinate and a sort index per image and probe and one
slab's codes (3M LSUN images: ~4 GB of codes on disk, ~0.3 GB in memory).
"""
import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from dcgan_keras.data.dedup.match import group, hash_codes, verified_groups
from dcgan_keras.data import pipeline
from dcgan_keras.utils import images as image_utils

SIDE = 32  # the paper's 32x32 downsampled centre crops, RGB: 3072 inputs
CODE_UNITS = 128
PIXELS = SIDE * SIDE * 3


def build_autoencoder(noise_stddev=0.2, dropout=0.2, seed=0):
    """The paper's 3072-128-3072 de-noising, dropout-regularised ReLU autoencoder.

    Args:
        noise_stddev: Gaussian noise added to the [-1, 1] inputs while training.
        dropout: dropout rate on the noisy input and on the code while training.
    Returns:
        (autoencoder: [B, 3072] -> [B, 3072], encoder: [B, 3072] -> ReLU code [B, 128]).
    """
    pixels = keras.Input((PIXELS,), name="pixels")
    x = keras.layers.GaussianNoise(noise_stddev, seed=seed, name="input_noise")(pixels)
    x = keras.layers.Dropout(dropout, seed=seed + 1, name="input_dropout")(x)
    code = keras.layers.Dense(CODE_UNITS, activation="relu", name="code")(x)
    x = keras.layers.Dropout(dropout, seed=seed + 2, name="code_dropout")(code)
    reconstruction = keras.layers.Dense(PIXELS, name="reconstruction")(x)
    autoencoder = keras.Model(pixels, reconstruction, name="dedup_autoencoder")
    return autoencoder, keras.Model(pixels, code, name="dedup_encoder")


def _flat(images):
    return tf.reshape(images, [-1, PIXELS])


def train_autoencoder(source, epochs, batch_size, steps_per_epoch=0, noise_stddev=0.2,
                      dropout=0.2, learning_rate=1e-3, seed=0, preprocess="crop_resize"):
    """Fits the autoencoder on the shuffled stream of `source` (32x32 RGB in [-1, 1]).

    Returns:
        (encoder, final reconstruction loss).
    """
    keras.utils.set_random_seed(seed)
    autoencoder, encoder = build_autoencoder(noise_stddev, dropout, seed)
    autoencoder.compile(keras.optimizers.Adam(learning_rate), loss="mse")
    batch_size = min(batch_size, source.num_examples)
    stream = pipeline.train_dataset(source, SIDE, 3, batch_size, seed=seed,
                                    preprocess_mode=preprocess)
    stream = stream.map(lambda x: (_flat(x), _flat(x)))
    steps = steps_per_epoch or max(1, source.num_examples // batch_size)
    history = autoencoder.fit(stream, epochs=epochs, steps_per_epoch=steps, verbose=2)
    return encoder, float(history.history["loss"][-1])


# Each image is also encoded shifted by one pixel each way (multi-probe hashing): a copy
# shifted by a pixel then meets its original's hash bucket. (dy, dx); the first is the image.
PROBE_SHIFTS = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0))
MATCHES = ("verified", "equal_hash")
# Codes closer than this (unit-length codes, Euclidean) are near-duplicates. Set from the
# Fashion-MNIST train split (benchmarks/dedup_planted.py): its JPEG/noise copies came
# within 0.03 and 0.1% of its distinct images had a neighbour nearer than 0.05.
DEFAULT_MAX_DISTANCE = 0.04


def shift_images(images, dy, dx):
    """images [B, H, W, C] moved by (dy, dx) pixels, the vacated border edge-replicated."""
    size = tf.shape(images)[1:3]
    pad = [[0, 0], [max(dy, 0), max(-dy, 0)], [max(dx, 0), max(-dx, 0)], [0, 0]]
    padded = tf.pad(images, pad, mode="SYMMETRIC")
    return padded[:, max(-dy, 0):max(-dy, 0) + size[0], max(-dx, 0):max(-dx, 0) + size[1]]


def code_pass(encoder, source, path, batch_size=512, probes=PROBE_SHIFTS,
              preprocess="crop_resize"):
    """One ordered pass over `source`: the codes of every image and of its shifted probes.

    The codes go to a float16 .npy file at `path` ([N, len(probes), 128], 256 bytes per
    image and probe, written as they come: nothing but one batch is held in memory).

    Returns:
        (read-only memory map of the codes, mean number of ReLU units > 0 per image).
    """
    @tf.function
    def encode(images):
        return tf.stack([encoder(_flat(shift_images(images, dy, dx)), training=False)
                         for dy, dx in probes], axis=1)

    n = source.num_examples
    tmp = path + ".tmp.npy"
    codes = np.lib.format.open_memmap(tmp, "w+", np.float16, (n, len(probes), CODE_UNITS))
    done, bits_on, start = 0, 0.0, time.perf_counter()
    for i, (images, _) in enumerate(pipeline.eval_dataset(source, SIDE, 3, batch_size,
                                                          preprocess)):
        batch = encode(images).numpy()
        codes[done:done + len(batch)] = batch
        bits_on += float((batch[:, 0] > 0).sum())
        done += len(batch)
        if (i + 1) % 100 == 0:
            logging.info("encoded %d of %d images (%.0f img/s)", done, n,
                         done / (time.perf_counter() - start))
    if done != n:
        raise ValueError(f"read {done} images of {source.name}, expected {n}")
    codes.flush()
    del codes
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r"), bits_on / max(n, 1)


def images_at(source, indices, preprocess="crop_resize"):
    """The 32x32 images [len(indices), 32, 32, 3] of records `indices`, in that order
    (by random access, or for a streaming source in one pass that keeps those records)."""
    table = np.asarray(indices, np.int64)
    if source.record_at is not None:
        records = lambda: (  # noqa: E731
            tf.data.Dataset.from_tensor_slices(table).map(source.record_at))
        order = np.arange(len(table))
    else:  # the stream yields them in ascending index order
        wanted = tf.constant(np.unique(table))
        records = lambda: (source.records().enumerate()  # noqa: E731
                           .filter(lambda i, record: tf.reduce_any(tf.equal(i, wanted)))
                           .map(lambda i, record: record))
        order = np.searchsorted(np.unique(table), table)
    picked = dataclasses.replace(source, num_examples=len(table), records=records)
    return pipeline.load_numpy(picked, SIDE, 3, preprocess)[0][order]


def groups_grid(source, groups, max_groups=16, max_members=8, preprocess="crop_resize"):
    """A uint8 PNG grid: one row per group (its first members), blank tiles after."""
    shown = [list(g[:max_members]) for g in groups[:max_groups]]
    flat = [i for g in shown for i in g]
    pictures = images_at(source, flat, preprocess) if flat else np.zeros((0, SIDE, SIDE, 3))
    tiles = np.full((len(shown) * max_members, SIDE, SIDE, 3), 1.0, np.float32)
    k = 0
    for row, g in enumerate(shown):
        tiles[row * max_members:row * max_members + len(g)] = pictures[k:k + len(g)]
        k += len(g)
    return image_utils.make_grid(tiles, cols=max_members)


def _write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def run(source, workdir, epochs=10, batch_size=256, steps_per_epoch=0, noise_stddev=0.2,
        dropout=0.2, learning_rate=1e-3, threshold=0.0, seed=0, preprocess="crop_resize",
        match="verified", max_distance=DEFAULT_MAX_DISTANCE):
    """Trains the autoencoder, hashes `source`, writes the results to `workdir`.

    Args:
        match: "verified" (default): bits are the codes thresholded at each unit's median,
            images colliding on any hash band (also one-pixel-shifted probes) are grouped
            when their codes are within `max_distance`; "equal_hash": the paper's rule as
            written, bit = ReLU code > `threshold`, groups of equal 128-bit hashes.
        max_distance: "verified": the largest distance between unit-length codes.
    Writes:
        dedup.json: counts, settings and every group as record ids (file paths for
            folders, keys for LMDB, indices otherwise).
        exclude_list.txt: every group member but the first, one id a line (the train
            binary's --exclude_list).
        dedup_groups.png: example groups, one per row.
        autoencoder.weights.h5: the encoder's weights.
        codes.npy: float16 codes [N, probes, 128] (the image and its shifted probes).
    Returns:
        the summary dict written to dedup.json (without the groups).
    """
    if match not in MATCHES:
        raise ValueError(f"match must be one of {', '.join(MATCHES)}, got {match!r}")
    os.makedirs(workdir, exist_ok=True)
    encoder, loss = train_autoencoder(source, epochs, batch_size, steps_per_epoch,
                                      noise_stddev, dropout, learning_rate, seed, preprocess)
    encoder.save_weights(os.path.join(workdir, "autoencoder.weights.h5"))
    probes = PROBE_SHIFTS if match == "verified" else PROBE_SHIFTS[:1]
    codes, bits_on = code_pass(encoder, source, os.path.join(workdir, "codes.npy"),
                               probes=probes, preprocess=preprocess)
    if match == "verified":
        groups, stats = verified_groups(codes, max_distance, seed)
    else:
        groups, stats = group(hash_codes(codes[:, 0], threshold)), {}
    n = len(codes)
    ids = source.ids() if source.ids is not None else [str(i) for i in range(n)]
    excluded = [ids[i] for g in groups for i in g[1:]]
    summary = dict(
        dataset=source.name, split=source.split, num_images=int(n),
        num_groups=len(groups), num_in_groups=int(sum(len(g) for g in groups)),
        num_excluded=len(excluded), distinct_images=int(n - len(excluded)),
        mean_relu_units_on=round(bits_on, 2), reconstruction_mse=round(loss, 5), **stats,
        settings=dict(epochs=epochs, batch_size=batch_size, noise_stddev=noise_stddev,
                      dropout=dropout, learning_rate=learning_rate, match=match,
                      threshold=threshold if match == "equal_hash" else "per-unit median",
                      max_distance=max_distance if match == "verified" else None,
                      probe_shifts=[list(p) for p in probes],
                      seed=seed, image_side=SIDE, code_units=CODE_UNITS),
        ids_are=("paths relative to the folder" if source.name == "folder" else
                 "LMDB keys" if source.name == "lsun" else "record indices"))
    _write_atomically(os.path.join(workdir, "dedup.json"), json.dumps(
        dict(summary, groups=[[ids[i] for i in g] for g in groups]), indent=1))
    _write_atomically(os.path.join(workdir, "exclude_list.txt"),
                      "".join(f"{i}\n" for i in excluded))
    image_utils.write_png(os.path.join(workdir, "dedup_groups.png"),
                          groups_grid(source, groups, preprocess=preprocess))
    return summary
