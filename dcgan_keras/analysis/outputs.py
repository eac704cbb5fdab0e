"""What every analysis shares: generating, real images, sample sheets, PNG and JSON out."""
import json
import os

import numpy as np
import tensorflow as tf

from dcgan_keras.analysis import nethook
from dcgan_keras.data import datasets, pipeline
from dcgan_keras.exporters import sampling
from dcgan_keras.models import features as features_lib
from dcgan_keras.utils import images as images_lib


def generator_fn(generator, batch_size=256):
    """z [N, z_dim] -> images [N, S, S, C] in [-1, 1] (NumPy), G in inference mode."""
    call = tf.function(lambda z: generator(z, training=False), reduce_retracing=True)
    return lambda z: nethook.batched_call(call, z, batch_size)


def untrained_copy(model, seed=0):
    """A freshly initialised network of the same architecture (the paper's baselines)."""
    config = dict(model.get_config(), name=f"untrained_{model.name}")
    return features_lib.reinitialize(type(model).from_config(config), seed)


def load_sheet(path):
    """(images uint8 [N, S, S, C], z [N, z_dim]) of a sample sheet (.npz/.npy of `sample`)."""
    try:
        images, z = sampling.load_samples(path)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"cannot read the sample sheet {path} ({e}); write one with "
                         "python -m dcgan_keras.binaries.sample --out=sheet.npz") from None
    return np.asarray(images), np.asarray(z, np.float32)


def load_z_file(path):
    """z [N, z_dim] from a .npy file of latent vectors (or a sample sheet)."""
    if path.endswith(".npz") or (path.endswith(".npy") and np.load(path).dtype.names):
        return load_sheet(path)[1]
    try:
        z = np.load(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read z file {path} ({e})") from None
    return np.atleast_2d(np.asarray(z, np.float32))


def real_batches(dataset, image_size, channels, data_dir=None, preprocess="crop_resize",
                 max_examples=None, batch_size=500, split="train"):
    """A generator of the dataset's images [B, S, S, C] in [-1, 1], in their fixed order."""
    source = datasets.get_source(dataset, split, data_dir or None)
    ds = pipeline.eval_dataset(source, image_size, channels, batch_size, preprocess,
                               max_examples or None)
    for images, _ in ds.as_numpy_iterator():
        yield images


def write_grid(out_dir, name, images, cols=None):
    """Writes images [N, S, S, C] ([-1, 1] or uint8) as one PNG grid; returns its path."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.clip(images, -1.0, 1.0)
    return images_lib.write_png(os.path.join(out_dir, name), images_lib.make_grid(images, cols))


def write_json(out_dir, name, data):
    """Writes data as JSON, atomically; returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)
    return path
