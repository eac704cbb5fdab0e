"""Images out of a generator: [-1, 1] floats to uint8, and PNG grids."""
import math

import numpy as np
import tensorflow as tf

from dcgan_keras.utils import files


def to_uint8(images):
    """[-1, 1] float images -> uint8 [0, 255] (for PNG grids, TensorBoard and exports)."""
    images = tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) * 127.5, 0.0, 255.0)
    return tf.cast(tf.round(images), tf.uint8)


def make_grid(images, cols=None, pad=2, pad_value=255):
    """Tiles images [N, H, W, C] ([-1, 1] floats or uint8) into one uint8 [H', W', C] grid.

    Args:
        images: N images; floats are taken to be in [-1, 1].
        cols: images per row (default: ceil(sqrt(N))).
        pad: pixels between tiles.
        pad_value: uint8 value of the padding.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
    if images.dtype != np.uint8:
        images = to_uint8(images).numpy()
    n, h, w, c = images.shape
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), pad_value, np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[top:top + h, left:left + w] = image
    return grid


def write_png(path, image):
    """Writes a uint8 [H, W, C] image as PNG, atomically (temp file + rename)."""
    return files.write_bytes(path, tf.io.encode_png(np.asarray(image, np.uint8)).numpy())


def read_png(path):
    return tf.io.decode_png(tf.io.read_file(path)).numpy()
