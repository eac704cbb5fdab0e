"""Inverting the generator: for each image, the z whose G(z) reproduces it.

The first stage of GANPaint Studio (Bau et al. 2019) and of iGAN (Zhu et al. 2016):
gradient descent on z, from several starts drawn from the prior, on

    L(z) = mean((G(z) - x)^2) + feature_weight * sum_l mean((D_l(G(z)) - D_l(x))^2) / s_l

where D_l are the discriminator's conv block activations (its `feature_layer_names`,
inference mode) and s_l the mean square of the target's activations at layer l, so each
layer counts alike whatever its scale: a perceptual loss from the model's own D, which
needs no download. z stays in the prior's support: U(-1, 1) is projected back onto the
cube after each step; N(0, 1) is left free. Every start of every image is optimised at
once (one batch), and each image keeps the start of lowest final loss.

Images come from a folder of image files or a .npz / .npy (a sample sheet's "images", or
an array [N, H, W, C]); they take the run's own preprocessing (`--preprocess`: centre
crop and resize, or pad) to its image size and channels.

Outputs (`run`): OUT/inverted.npz, a sample sheet (the reconstructions as "images", "z",
plus "originals", "pixel_mse" and "psnr") that `sample --z_file`, `analyze arithmetic
--sheet`, `forget --sheet` and `neighbors --sheet` take; OUT/inversion.png (each original
beside its reconstruction); OUT/inversion.json (each image's errors and the settings).
"""
import dataclasses
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from dcgan_keras.analysis import outputs
from dcgan_keras.data import folder, preprocessing
from dcgan_keras.models import latent
from dcgan_keras.utils import images as images_lib

FORMAT = 1


@dataclasses.dataclass
class Inversion:
    """z [N, z_dim], reconstructions [N, S, S, C] in [-1, 1], and per image: the final
    loss, the pixel MSE (in [-1, 1] units), the PSNR (dB, images in [0, 1]) and the
    index of the start that won."""
    z: np.ndarray
    reconstructions: np.ndarray
    loss: np.ndarray
    pixel_mse: np.ndarray
    psnr: np.ndarray
    start: np.ndarray


def psnr(a, b):
    """PSNR in dB of images in [-1, 1] ([N, ...]), as for images in [0, 1]."""
    mse01 = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2,
                    axis=tuple(range(1, np.ndim(a)))) / 4.0
    return 10.0 * np.log10(1.0 / np.maximum(mse01, 1e-12))


def _feature_model(discriminator):
    names = list(discriminator.feature_layer_names)
    return keras.Model(discriminator.input,
                       [discriminator.get_layer(n).output for n in names])


def invert(generator, discriminator, images, starts=4, steps=300, learning_rate=0.05,
           feature_weight=1.0, seed=0, batch_size=32, progress=None):
    """Finds z for each image (see the module doc).

    Args:
        generator, discriminator: the run's networks (D only for the feature loss).
        images: float [N, S, S, C] in [-1, 1], G's image shape.
        starts: random starts per image.
        steps: Adam steps per start.
        learning_rate: Adam's step size on z.
        feature_weight: weight of D's feature loss (0: pixels alone).
        seed: seed of the starts.
        batch_size: images optimised together (each with its `starts` starts).
        progress: called as progress(images_done, total, seconds) after each batch.
    Returns:
        an `Inversion`.
    """
    images = np.asarray(images, np.float32)
    shape = tuple(generator.output.shape[1:])
    z_dim = int(generator.input.shape[-1])
    if images.ndim != 4 or images.shape[1:] != shape:
        raise ValueError(f"the generator makes {shape} images; got images of shape "
                         f"{images.shape[1:]}")
    if starts < 1 or steps < 0 or not learning_rate > 0 or feature_weight < 0:
        raise ValueError(f"invert needs starts >= 1, steps >= 0, learning_rate > 0 and "
                         f"feature_weight >= 0; got {starts}, {steps}, {learning_rate}, "
                         f"{feature_weight}")
    prior = latent.of(generator)
    features = _feature_model(discriminator) if feature_weight else None
    out = {k: [] for k in ("z", "reconstructions", "loss", "start")}
    clock = time.perf_counter()
    for first in range(0, len(images), batch_size):
        target = tf.repeat(tf.constant(images[first:first + batch_size]), starts, axis=0)
        n = int(target.shape[0])
        z0 = latent.stateless([n, z_dim], [seed, first], prior)
        z = tf.Variable(z0)
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build([z])
        target_features = features(target, training=False) if features is not None else []
        scales = [tf.reduce_mean(tf.square(t)) + 1e-8 for t in target_features]

        def per_image_loss():
            fake = tf.cast(generator(z, training=False), tf.float32)
            loss = tf.reduce_mean(tf.square(fake - target), axis=[1, 2, 3])
            if features is not None:
                for f, t, s in zip(features(fake, training=False), target_features, scales):
                    loss += feature_weight * tf.reduce_mean(
                        tf.square(tf.cast(f, tf.float32) - t), axis=[1, 2, 3]) / s
            return loss

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(per_image_loss())
            optimizer.apply([tape.gradient(loss, z)], [z])
            if prior == "uniform":
                z.assign(tf.clip_by_value(z, -1.0, 1.0))

        for _ in range(steps):
            step()
        loss = per_image_loss().numpy().reshape(-1, starts)
        best = np.argmin(loss, axis=1)
        rows = np.arange(len(best)) * starts + best
        chosen = z.numpy()[rows]
        out["z"].append(chosen)
        out["reconstructions"].append(
            np.asarray(generator(chosen, training=False), np.float32))
        out["loss"].append(loss[np.arange(len(best)), best])
        out["start"].append(best)
        if progress:
            progress(min(first + batch_size, len(images)), len(images),
                     time.perf_counter() - clock)
    result = {k: np.concatenate(v) for k, v in out.items()}
    mse = np.mean((result["reconstructions"] - images) ** 2, axis=(1, 2, 3))
    return Inversion(result["z"], result["reconstructions"], result["loss"], mse,
                     psnr(result["reconstructions"], images), result["start"])


def load_images(path, image_size, channels, preprocess="crop_resize", max_images=0):
    """Images to invert, float32 [N, image_size, image_size, channels] in [-1, 1], and a
    note (or "") on the ones the preprocessing had to crop or resize.

    Args:
        path: a folder of image files (every file must decode), or a .npz / .npy: a sample
            sheet ("images") or an array [N, H, W, C] (uint8, or floats in [-1, 1]).
        image_size, channels, preprocess: the run's.
        max_images: keep the first N (0: all).
    Raises:
        ValueError: one line saying what is wrong with the input and how to fix it.
    """
    if os.path.isdir(path):
        paths = folder.list_image_files(path)[0]
        paths = paths[:max_images] if max_images else paths
        raw = []
        for p in paths:
            try:
                raw.append(preprocessing.decode(tf.io.read_file(p), 3).numpy())
            except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
                raise ValueError(f"{p} is not an image that decodes (JPEG, PNG, GIF, BMP or "
                                 "WebP); remove it or convert it") from None
    elif path.lower().endswith((".npz", ".npy")) and os.path.isfile(path):
        try:
            data = np.load(path)
            array = data["images"] if (hasattr(data, "files") or data.dtype.names) else data
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"cannot read images from {path} ({e}); give a sample sheet "
                             "(.npz with 'images') or an array [N, H, W, C]") from None
        array = np.asarray(array)
        if array.ndim == 3:
            array = array[..., None]
        if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
            raise ValueError(f"{path} holds an array of shape {array.shape}; images must be "
                             "[N, H, W, C] with C = 1, 3 or 4 (RGBA)")
        if array.dtype != np.uint8:
            if array.min() < -1.0 - 1e-6 or array.max() > 1.0 + 1e-6:
                raise ValueError(f"{path} holds {array.dtype} images outside [-1, 1]; give "
                                 "uint8 images or floats in [-1, 1]")
            array = np.round((array + 1.0) * 127.5).astype(np.uint8)
        raw = list(array[:max_images] if max_images else array)
    else:
        raise ValueError(f"--images={path!r} is neither a folder of images nor a .npz/.npy "
                         "file")
    if not raw:
        raise ValueError(f"no images in {path}")
    changed = sum(r.shape[:2] != (image_size, image_size) for r in raw)
    images = np.stack([preprocessing.preprocess(tf.constant(r), image_size, channels,
                                                preprocess).numpy() for r in raw])
    how = "cropped and resized" if preprocess == "crop_resize" else "padded or cropped"
    note = (f"{changed} of {len(raw)} images are not {image_size}x{image_size}: the run's "
            f"'{preprocess}' preprocessing {how} them" if changed else "")
    return images, note


def pairs_grid(originals, reconstructions, cols=8):
    """Each original beside its reconstruction: rows of `cols` pairs, uint8."""
    stacked = np.stack([originals, reconstructions], axis=1).reshape(
        (-1,) + originals.shape[1:])
    return images_lib.make_grid(np.clip(stacked, -1.0, 1.0),
                                cols=2 * min(cols, len(originals)))


def run(generator, discriminator, images, out_dir, starts=4, steps=300,
        learning_rate=0.05, feature_weight=1.0, seed=0, note=""):
    """Inverts `images` and writes the outputs of the module doc; returns the JSON dict."""
    def progress(done, total, seconds):
        print(f"inverted {done}/{total} images ({seconds:.0f} s, "
              f"{seconds / done:.2f} s per image)", file=sys.stderr, flush=True)

    if note:
        print(f"note: {note}", file=sys.stderr, flush=True)
    result = invert(generator, discriminator, images, starts, steps, learning_rate,
                    feature_weight, seed, progress=progress)
    os.makedirs(out_dir, exist_ok=True)
    to_uint8 = lambda x: np.round((np.clip(x, -1, 1) + 1) * 127.5).astype(np.uint8)  # noqa
    np.savez(os.path.join(out_dir, "inverted.npz"), images=to_uint8(result.reconstructions),
             z=result.z.astype(np.float32), originals=to_uint8(images),
             pixel_mse=result.pixel_mse, psnr=result.psnr)
    images_lib.write_png(os.path.join(out_dir, "inversion.png"),
                         pairs_grid(images[:64], result.reconstructions[:64]))
    summary = dict(
        format=FORMAT, num_images=len(images), starts=starts, steps=steps,
        learning_rate=learning_rate, feature_weight=feature_weight, seed=seed, note=note,
        mean_psnr=float(np.mean(result.psnr)), mean_pixel_mse=float(np.mean(result.pixel_mse)),
        images=[dict(index=i, psnr=float(p), pixel_mse=float(m), loss=float(l), start=int(s))
                for i, (p, m, l, s) in enumerate(zip(result.psnr, result.pixel_mse,
                                                     result.loss, result.start))])
    outputs.write_json(out_dir, "inversion.json", summary)
    return summary
