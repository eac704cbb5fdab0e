"""Shared pieces of the DCGAN architecture (Radford et al. 2016, section 3).

The guidelines: strided / fractional-strided convolutions instead of pooling, BatchNorm in
both nets except the G output and the D input, no hidden fully connected layers, ReLU + tanh
in G, LeakyReLU(0.2) in D, weights drawn from N(0, 0.02).
"""
import math

import keras

from dcgan_keras.models import fast_layers

MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 256
# The paper's LSUN model: G 100 -> 4x4x1024 -> ... -> 64x64x3, i.e. 128 filters in the
# widest-resolution hidden layer. The PyTorch DCGAN example uses 64.
PAPER_BASE_WIDTH = 128
BATCHNORM_MOMENTUM = 0.9  # the reference implementations' moving-average decay
BATCHNORM_EPSILON = 1e-5
LEAKY_SLOPE = 0.2


def validate(image_size, channels, z_dim=None, base_width=None):
    """Raises ValueError with a fix-it message for unsupported architecture arguments."""
    if (not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE
            or image_size > MAX_IMAGE_SIZE or image_size & (image_size - 1)):
        raise ValueError(
            f"image_size must be a power of two between {MIN_IMAGE_SIZE} and "
            f"{MAX_IMAGE_SIZE}, got {image_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    if z_dim is not None and (not isinstance(z_dim, int) or z_dim < 1):
        raise ValueError(f"z_dim must be a positive integer, got {z_dim!r}")
    if base_width is not None and (not isinstance(base_width, int) or base_width < 1):
        raise ValueError(f"base_width must be a positive integer, got {base_width!r}")


def num_blocks(image_size):
    """Number of 2x resolution changes between 4x4 and image_size (4 for 64x64)."""
    return int(math.log2(image_size // 4))


def widths(image_size, base_width):
    """Filters per resolution from image_size/2 down to 4x4: [b, 2b, 4b, ...].

    For 64x64 with b=128 this is [128, 256, 512, 1024]: D's conv widths in order, and G's
    widths in reverse (4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128).
    """
    return [base_width * 2**i for i in range(num_blocks(image_size))]


def weight_init():
    """The paper's N(0, 0.02) for every conv and dense kernel."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def batch_norm(name, synchronized=False):
    """BatchNorm with gamma ~ N(1, 0.02), beta = 0 (as the reference DCGAN code).

    Args:
        name: layer name.
        synchronized: compute batch statistics over the global batch under a
            tf.distribute strategy (so N replicas behave like one).
    """
    return fast_layers.BatchNormalization(
        momentum=BATCHNORM_MOMENTUM,
        epsilon=BATCHNORM_EPSILON,
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=0.02),
        beta_initializer="zeros",
        synchronized=synchronized,
        name=name,
    )
