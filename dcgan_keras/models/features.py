"""The discriminator's features as a representation (Radford et al. 2016, section 5.1).

"We use all layers' convolutional features, max-pooling each layer's representation to
produce a 4x4 spatial grid. These features are then flattened and concatenated." The
same code serves three callers: the SavedModel exporter (the `features` signature), the
SVM probe (through that signature) and the probe's randomly initialised D baseline, so
the trained and random networks are measured identically.

Features are read in inference mode: BatchNorm uses its moving statistics, so an image's
features do not depend on the other images of its batch.
"""
import keras
import numpy as np
import tensorflow as tf
from keras import layers

from dcgan_keras.models import architecture
from dcgan_keras.models.discriminator import Discriminator

GRID = 4  # the paper's 4x4 pooling grid
FEATURES_SIGNATURE = "features"


def feature_size(image_size, base_width, grid=GRID):
    """Length of the feature vector: grid^2 * (sum of D's conv widths).

    For 32x32 with base_width=64 (D: 64, 128, 256 filters) it is 16 * 448 = 7,168; for
    the paper's 64x64 model with base_width=128 it is 16 * 1920 = 30,720.
    """
    return grid * grid * sum(architecture.widths(image_size, base_width))


def feature_model(discriminator, grid=GRID):
    """A functional Keras model: images [B, S, S, C] -> features [B, F], sharing D's weights.

    Every `block{i}_lrelu` activation [B, h, w, c] is max-pooled with a (h/grid)x(h/grid)
    window and stride (non-overlapping, so each grid cell covers a distinct region),
    flattened in (row, column, channel) order and concatenated, highest resolution first.

    Args:
        discriminator: a `Discriminator`.
        grid: side of the pooled grid (4 in the paper); D's last block is 4x4, so grid
            must divide 4.
    Returns:
        keras.Model with input "images" and output "features" (float32).
    """
    if 4 % grid:
        raise ValueError(f"grid must divide 4 (D's lowest resolution), got {grid}")
    pooled = []
    for name in discriminator.feature_layer_names:
        x = discriminator.get_layer(name).output
        side = x.shape[1]
        if side > grid:
            x = layers.MaxPooling2D(pool_size=side // grid, name=f"{name}_pool")(x)
        x = layers.Flatten(name=f"{name}_flat")(x)
        pooled.append(layers.Activation("linear", dtype="float32", name=f"{name}_f32")(x))
    features = layers.Concatenate(axis=-1, name="features")(pooled)
    return keras.Model(discriminator.input, features, name="discriminator_features")


def batched(fn, batch_size=500):
    """Wraps fn(images [b, ...]) -> [b, F] into a NumPy function over any number of images."""
    def apply(images):
        images = np.asarray(images, np.float32)
        if not len(images):
            raise ValueError("no images to compute features of")
        return np.concatenate([np.asarray(fn(images[i:i + batch_size]), np.float32)
                               for i in range(0, len(images), batch_size)])
    return apply


def keras_feature_fn(discriminator, batch_size=500, grid=GRID):
    """NumPy feature function of a Keras `Discriminator` (inference mode)."""
    model = feature_model(discriminator, grid)
    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return batched(lambda x: call(tf.constant(x)).numpy(), batch_size)


def reinitialize(model, seed):
    """Redraws every weight of `model` from its own initializer, seeded: a fresh network.

    Uses each layer's initializers (the DCGAN N(0, 0.02) kernels, BatchNorm gamma ~
    N(1, 0.02), zero beta and moving mean, unit moving variance) with seeds derived from
    `seed`, so the result is reproducible without touching the global random state.
    """
    weights = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")
    count = 0
    for layer in model.layers:
        for name in weights:
            variable = getattr(layer, name, None)
            initializer = getattr(layer, f"{name}_initializer", None)
            if variable is None or initializer is None:
                continue
            config = dict(initializer.get_config())
            if "seed" in config:
                config["seed"] = seed * 10_000 + count
            value = type(initializer).from_config(config)(variable.shape, variable.dtype)
            variable.assign(value)
            count += 1
    return model


def random_discriminator_feature_fn(image_size, channels, base_width, seed=0,
                                    batch_size=500):
    """Features of a freshly initialised D of the given architecture (the probe baseline).

    The paper contrasts its trained D with a randomly initialised one of the same
    architecture (section 6.2); this draws the weights from the DCGAN init with `seed` and
    reads them through the same feature code as the trained D.
    """
    discriminator = Discriminator(image_size=image_size, channels=channels,
                                  base_width=base_width, name="random_discriminator")
    return keras_feature_fn(reinitialize(discriminator, seed), batch_size)


def saved_model_feature_fn(export_dir, batch_size=500):
    """NumPy feature function that calls the exported `features` signature.

    Args:
        export_dir: an export directory (with discriminator/) or the discriminator
            SavedModel itself.
    Returns:
        (fn, feature_dim): fn(images float32 [N, S, S, C] in [-1, 1]) -> [N, F].
    """
    path = export_dir
    if tf.io.gfile.exists(tf.io.gfile.join(export_dir, "discriminator", "saved_model.pb")):
        path = tf.io.gfile.join(export_dir, "discriminator")
    if not tf.io.gfile.exists(tf.io.gfile.join(path, "saved_model.pb")):
        raise FileNotFoundError(
            f"no discriminator SavedModel in {export_dir!r} (expected "
            f"{export_dir}/discriminator/saved_model.pb); export one with "
            "python -m dcgan_keras.binaries.export --workdir=...")
    loaded = tf.saved_model.load(path)
    if FEATURES_SIGNATURE not in loaded.signatures:
        raise ValueError(f"{path} has signatures {sorted(loaded.signatures)}, not "
                         f"{FEATURES_SIGNATURE!r}; re-export it with dcgan_keras.binaries.export")
    signature = loaded.signatures[FEATURES_SIGNATURE]
    dim = signature.structured_outputs["features"].shape[-1]

    def call(x):
        return signature(images=tf.constant(x))["features"].numpy()

    fn = batched(call, batch_size)
    fn.saved_model = loaded  # keeps the loaded object (and its variables) alive
    return fn, dim
