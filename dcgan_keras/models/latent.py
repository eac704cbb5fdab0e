"""The prior of z: what every part of the package draws G's input from.

The paper draws z from a 100-dimensional uniform distribution (Radford et al. 2016,
figure 1's caption; the authors' code, Newmu/dcgan_code, draws uniform(-1, 1)), and so do
both E-GAN codebases; PyTorch's DCGAN example draws N(0, 1). The prior belongs to a
trained G: samples, walks, arithmetic and dissection of a G must draw from the prior it
was trained on, so `Generator.z_distribution` carries it, and config.json and the export
metadata record it.
"""
import numpy as np
import tensorflow as tf

UNIFORM, NORMAL = "uniform", "normal"
Z_DISTRIBUTIONS = (UNIFORM, NORMAL)
PAPER = UNIFORM
# What a workdir, export or .keras file written before the choice existed was trained on.
LEGACY = NORMAL


def check(distribution):
    """Raises ValueError unless `distribution` is one of Z_DISTRIBUTIONS."""
    if distribution not in Z_DISTRIBUTIONS:
        raise ValueError(f"z_distribution must be one of {', '.join(Z_DISTRIBUTIONS)}, got "
                         f"{distribution!r}")
    return distribution


def stateless(shape, seed, distribution, dtype=tf.float32):
    """z of `shape` from the prior, a pure function of the stateless `seed` ([2] ints).

    uniform: U(-1, 1) per dimension (the paper); normal: N(0, 1) per dimension. Both are
    counter-based (Philox) draws that fill the tensor in order.
    """
    if check(distribution) == UNIFORM:
        return tf.random.stateless_uniform(shape, seed=seed, minval=-1.0, maxval=1.0,
                                           dtype=dtype)
    return tf.random.stateless_normal(shape, seed=seed, dtype=dtype)


def numpy(rng, shape, distribution):
    """z of `shape` from the prior with the NumPy Generator `rng`, float32."""
    if check(distribution) == UNIFORM:
        return rng.uniform(-1.0, 1.0, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def of(generator):
    """The prior a generator was trained on: `Generator.z_distribution`, or the paper's
    for any other Keras model that maps z to images (a user's own G)."""
    return getattr(generator, "z_distribution", PAPER)
