"""Samples from a training workdir or an export directory, reproducible from a seed.

The noise is `latents(num, seed, z_dim, prior)`, the same stateless draw as the exported
generator's `sample` signature, so `sample --seed=3` gives the same images from the
workdir, from the export and from `g.signatures["sample"](num=..., seed=3)` (up to
float round-off of the two runtimes before the uint8 rounding). The first 16 of 64
samples are the 16 samples of `--num=16`.
"""
import os

import numpy as np
import tensorflow as tf

from dcgan_keras import workdir as workdir_lib
from dcgan_keras.models import latent
from dcgan_keras.utils.images import to_uint8
from dcgan_keras.utils import images as images_lib
from dcgan_keras.utils import files

OUTPUT_FORMATS = (".png", ".npy", ".npz")


def latents(num, seed, z_dim, distribution):
    """z float32 [num, z_dim] from the prior `distribution` (models/latent.py), a pure
    function of (num, seed).

    One stateless draw seeded by (seed, 0): no random state, so it runs the same eagerly
    and inside the exported SavedModel. The counter-based (Philox) generator fills the
    tensor in order, so row i is the same for every num > i (a test checks this on the
    platform it runs on).
    """
    seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    shape = tf.stack([tf.cast(num, tf.int32), tf.constant(z_dim, tf.int32)])
    return latent.stateless(shape, seed, distribution)


def _generate(generate_uint8, z, batch_size):
    return np.concatenate([np.asarray(generate_uint8(z[i:i + batch_size]))
                           for i in range(0, max(len(z), 1), batch_size)])


def _given_z(z, z_dim):
    z = np.atleast_2d(np.asarray(z, np.float32))
    if z.ndim != 2 or z.shape[1] != z_dim or not len(z):
        raise ValueError(f"the generator takes z of {z_dim} dimensions; the z given have "
                         f"shape {z.shape} (another model's?)")
    return z


def sample_from_export(export_dir, num, seed, batch_size=256, z=None):
    """(images uint8 [num, S, S, C], z float32 [num, z_dim]) from export_dir/generator;
    with `z` given (e.g. an inversion's), G(z) of those instead of (num, seed)'s."""
    path = os.path.join(export_dir, "generator")
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise FileNotFoundError(f"no generator SavedModel at {path}; export one with "
                                "python -m dcgan_keras.binaries.export --workdir=...")
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["generate_uint8"]
    z_dim = signature.structured_input_signature[1]["z"].shape[-1]
    if z is None:
        z = latents(num, seed, z_dim, workdir_lib.export_z_distribution(export_dir)).numpy()
    else:
        z, num = _given_z(z, z_dim), len(z)
    images = _generate(lambda x: signature(z=tf.constant(x))["images"], z, batch_size)
    return images[:num], z


def sample_from_workdir(workdir, num, seed, checkpoint="latest", generator_key="generator",
                        batch_size=256, z=None):
    """(images uint8 [num, S, S, C], z float32 [num, z_dim]) from a workdir's checkpoint;
    with `z` given, G(z) of those instead."""
    generator = workdir_lib.restore_models(workdir, checkpoint, generator_key)[0]
    if z is None:
        z = latents(num, seed, generator.z_dim, generator.z_distribution).numpy()
    else:
        z, num = _given_z(z, generator.z_dim), len(z)
    call = tf.function(lambda x: to_uint8(generator(x, training=False)),
                       reduce_retracing=True)
    images = _generate(lambda x: call(tf.constant(x)), z, batch_size)
    return images[:num], z


def save_samples(path, images, z):
    """Writes samples to .png (a grid), .npy or .npz (images and the z of each).

    The .npy file holds a structured array (no pickle needed to read it):
    `a = np.load(path); a["images"]` uint8 [N, S, S, C], `a["z"]` float32 [N, z_dim]; the
    .npz file holds the arrays "images" and "z".
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in OUTPUT_FORMATS:
        raise ValueError(f"--out must end in one of {', '.join(OUTPUT_FORMATS)}, got {path!r}")
    images, z = np.asarray(images, np.uint8), np.asarray(z, np.float32)
    if len(images) != len(z):
        raise ValueError(f"{len(images)} images but {len(z)} latent vectors")
    if ext == ".png":
        return images_lib.write_png(path, images_lib.make_grid(images))
    if ext == ".npy":
        records = np.zeros(len(images), dtype=[("images", np.uint8, images.shape[1:]),
                                                ("z", np.float32, z.shape[1:])])
        records["images"], records["z"] = images, z
        return files.write_npy(path, records)
    return files.write_npz(path, images=images, z=z)


def load_samples(path):
    """(images, z) from a .npy or .npz file written by `save_samples`."""
    data = np.load(path)
    return data["images"], data["z"]
