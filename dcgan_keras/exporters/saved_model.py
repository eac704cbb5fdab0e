"""SavedModels of the generator and the discriminator, loadable with TensorFlow alone.

    g = tf.saved_model.load("export/generator")
    images = g.signatures["serving_default"](z=tf.random.uniform([16, 100], -1, 1))["images"]

Generator signatures:
    serving_default: z float32 [batch, z_dim] -> images float32 [batch, S, S, C] in [-1, 1]
    generate_uint8:  z float32 [batch, z_dim] -> images uint8 [batch, S, S, C]
    sample:          num int32 [], seed int64 [] -> images uint8 [num, S, S, C],
                     z float32 [num, z_dim]; the same seed always gives the same images.
Discriminator signatures:
    features:        images float32 [batch, S, S, C] in [-1, 1] -> features float32
                     [batch, F] (the paper's probe representation, see models.features)
    serving_default: images -> logits float32 [batch, 1], probability float32 [batch, 1]

Both nets run in inference mode (BatchNorm moving statistics). A loaded signature checks
only the dtype of its inputs, so every endpoint also checks the shape at run time and
fails with "z must be float32 [batch, 100], got shape [2 7]"-style messages.
"""
import keras
import tensorflow as tf

from dcgan_keras.utils.images import to_uint8
from dcgan_keras.models import features as features_lib, latent
from dcgan_keras.exporters.sampling import latents

GENERATOR_SIGNATURES = ("serving_default", "generate_uint8", "sample")
DISCRIMINATOR_SIGNATURES = ("features", "serving_default")
_MAX_RANK = 8


def check_shape(x, trailing, name):
    """Returns x after a run-time check that its shape is [batch, *trailing].

    A SavedModel signature accepts any shape of the right dtype, and the first op to
    notice a wrong one names its own internals ("Matrix size-incompatible ..."), so the
    check goes first and its message names the expected shape.
    """
    expected = tf.constant([1 + len(trailing)] + list(trailing), tf.int32)
    shape = tf.shape(x, out_type=tf.int32)
    actual = tf.concat([tf.shape(shape), shape[1:]], axis=0)  # [rank, d1, d2, ...]
    pad = lambda v: tf.pad(v, [[0, _MAX_RANK]])[:_MAX_RANK]  # noqa: E731
    ok = tf.reduce_all(tf.equal(pad(actual), pad(expected)))
    want = ", ".join(["batch"] + [str(d) for d in trailing])
    check = tf.debugging.Assert(ok, [f"{name} must be {x.dtype.name} [{want}], got shape",
                                     shape], summarize=_MAX_RANK,
                                 name=f"check_{name}_shape")
    with tf.control_dependencies([check]):
        return tf.identity(x)


def export_generator(generator, path):
    """Writes the generator SavedModel (signatures: see the module docstring).

    Args:
        generator: a `Generator` (any Keras model with input [B, z_dim], output
            [B, S, S, C] in [-1, 1] and attributes z_dim, image_size, channels).
        path: output directory.
    Returns:
        path.
    """
    z_dim, distribution = generator.z_dim, latent.of(generator)
    z_spec = tf.TensorSpec([None, z_dim], tf.float32, name="z")

    def generate(z):
        return generator(check_shape(z, [z_dim], "z"), training=False)

    def serving_default(z):
        return {"images": generate(z)}

    def generate_uint8(z):
        return {"images": to_uint8(generate(z))}

    def sample(num, seed):
        check = tf.debugging.assert_non_negative(num, message="num must be >= 0")
        with tf.control_dependencies([check]):
            z = latents(num, seed, z_dim, distribution)
        return {"images": to_uint8(generator(z, training=False)), "z": z}

    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint("serving_default", serving_default, input_signature=[z_spec])
    archive.add_endpoint("generate_uint8", generate_uint8, input_signature=[z_spec])
    archive.add_endpoint("sample", sample, input_signature=[
        tf.TensorSpec([], tf.int32, name="num"), tf.TensorSpec([], tf.int64, name="seed")])
    archive.write_out(path, verbose=False)
    return path


def export_discriminator(discriminator, path):
    """Writes the discriminator SavedModel with `features` and `serving_default`.

    Args:
        discriminator: a `Discriminator`.
        path: output directory.
    Returns:
        path.
    """
    shape = [discriminator.image_size, discriminator.image_size, discriminator.channels]
    images_spec = tf.TensorSpec([None] + shape, tf.float32, name="images")
    feature_model = features_lib.feature_model(discriminator)

    def features(images):
        images = check_shape(images, shape, "images")
        return {"features": feature_model(images, training=False)}

    def serving_default(images):
        images = check_shape(images, shape, "images")
        logits = tf.cast(discriminator(images, training=False), tf.float32)
        return {"logits": logits, "probability": tf.sigmoid(logits)}

    archive = keras.export.ExportArchive()
    archive.track(discriminator)
    archive.track(feature_model)
    archive.add_endpoint(features_lib.FEATURES_SIGNATURE, features,
                         input_signature=[images_spec])
    archive.add_endpoint("serving_default", serving_default, input_signature=[images_spec])
    archive.write_out(path, verbose=False)
    return path
