"""De-duplication by semantic hashing (Radford et al. 2016, section 4.1.1).

"We fit a 3072-128-3072 de-noising dropout regularized RELU autoencoder on 32x32
downsampled center-crops of training examples. The resulting code layer activations are
then binarized via thresholding the ReLU activation [...] allowing for linear time
de-duplication." Images whose 128-bit codes are equal form a group; all but the first
member of each group are duplicates.

Everything streams through tf.data: the autoencoder trains on the shuffled training
stream, the hash pass reads the split once in order and keeps 16 bytes per image, so a
3M-image LSUN split needs ~48 MB here, never the images.
"""
import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from dcgan_keras.data import datasets
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
    stream = datasets.train_dataset(source, SIDE, 3, batch_size, seed=seed,
                                    preprocess_mode=preprocess)
    stream = stream.map(lambda x: (_flat(x), _flat(x)))
    steps = steps_per_epoch or max(1, source.num_examples // batch_size)
    history = autoencoder.fit(stream, epochs=epochs, steps_per_epoch=steps, verbose=2)
    return encoder, float(history.history["loss"][-1])


def hash_split(encoder, source, batch_size=512, threshold=0.0, preprocess="crop_resize"):
    """One ordered pass over `source`: packed hashes [N, 16] and the mean bits set."""
    encode = tf.function(lambda x: encoder(_flat(x), training=False))
    hashes, bits_on, start = [], 0.0, time.perf_counter()
    for i, (images, _) in enumerate(datasets.eval_dataset(source, SIDE, 3, batch_size,
                                                          preprocess)):
        codes = encode(images).numpy()
        hashes.append(hash_codes(codes, threshold))
        bits_on += float((codes > threshold).sum())
        if (i + 1) % 100 == 0:
            done = (i + 1) * batch_size
            logging.info("hashed %d of %d images (%.0f img/s)", done, source.num_examples,
                         done / (time.perf_counter() - start))
    hashes = np.concatenate(hashes) if hashes else np.zeros((0, CODE_UNITS // 8), np.uint8)
    return hashes, bits_on / max(len(hashes), 1)


def images_at(source, indices, preprocess="crop_resize"):
    """The 32x32 images [len(indices), 32, 32, 3] of records `indices`, in that order
    (by random access, or for a streaming source in one pass that keeps those records)."""
    table = np.asarray(indices, np.int64)
    if source.record_at is not None:
        records = lambda: tf.data.Dataset.from_tensor_slices(table).map(source.record_at)  # noqa: E731
        order = np.arange(len(table))
    else:  # the stream yields them in ascending index order
        wanted = tf.constant(np.unique(table))
        records = lambda: (source.records().enumerate()  # noqa: E731
                           .filter(lambda i, record: tf.reduce_any(tf.equal(i, wanted)))
                           .map(lambda i, record: record))
        order = np.searchsorted(np.unique(table), table)
    picked = dataclasses.replace(source, num_examples=len(table), records=records)
    return datasets.load_numpy(picked, SIDE, 3, preprocess)[0][order]


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
        dropout=0.2, learning_rate=1e-3, threshold=0.0, seed=0, preprocess="crop_resize"):
    """Trains the autoencoder, hashes `source`, writes the results to `workdir`.

    Writes:
        dedup.json: counts, settings and every group as record ids (file paths for
            folders, keys for LMDB, indices otherwise).
        exclude_list.txt: every group member but the first, one id a line (the train
            binary's --exclude_list).
        dedup_groups.png: example groups, one per row.
        autoencoder.weights.h5: the encoder's weights.
    Returns:
        the summary dict written to dedup.json (without the groups).
    """
    os.makedirs(workdir, exist_ok=True)
    encoder, loss = train_autoencoder(source, epochs, batch_size, steps_per_epoch,
                                      noise_stddev, dropout, learning_rate, seed, preprocess)
    encoder.save_weights(os.path.join(workdir, "autoencoder.weights.h5"))
    hashes, bits_on = hash_split(encoder, source, threshold=threshold, preprocess=preprocess)
    groups = group(hashes)
    ids = source.ids() if source.ids is not None else [str(i) for i in range(len(hashes))]
    excluded = [ids[i] for g in groups for i in g[1:]]
    summary = dict(
        dataset=source.name, split=source.split, num_images=int(len(hashes)),
        num_groups=len(groups), num_in_groups=int(sum(len(g) for g in groups)),
        num_excluded=len(excluded), distinct_hashes=int(len(hashes) - len(excluded)),
        mean_bits_on=round(bits_on, 2), reconstruction_mse=round(loss, 5),
        settings=dict(epochs=epochs, batch_size=batch_size, noise_stddev=noise_stddev,
                      dropout=dropout, learning_rate=learning_rate, threshold=threshold,
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
