"""The generator split at a named layer: head then tail is G, edits touch only what they
name, and G itself is never changed."""
import numpy as np
import pytest
import tensorflow as tf
from testutil import lively

from dcgan_keras.analysis import nethook
from dcgan_keras.models import Discriminator, Generator


@pytest.fixture(scope="module")
def generator():
    return lively(Generator(image_size=16, channels=3, z_dim=8, base_width=4))


def _z(n=5, seed=0):
    return np.random.default_rng(seed).standard_normal([n, 8]).astype(np.float32)


@pytest.mark.parametrize("layer", ["project_relu", "block1_bn", "block1_relu"])
def test_head_then_tail_is_the_generator(generator, layer):
    split = nethook.SplitGenerator(generator, layer)
    z = _z()
    direct = generator(z, training=False).numpy()
    acts = split.activations(z, batch_size=2)
    assert list(acts.shape[1:]) == split.activation_shape
    np.testing.assert_allclose(split.images_from(acts), direct, atol=1e-5)
    np.testing.assert_allclose(split.generate(z), direct, atol=1e-5)


def test_dropping_maps_zeroes_exactly_the_chosen_channels():
    x = tf.constant(np.random.default_rng(1).uniform(0.5, 2.0, [3, 4, 4, 6]), tf.float32)
    edited = nethook.ChannelEdit([1, 4])(x).numpy()
    np.testing.assert_array_equal(edited[..., [1, 4]], 0.0)
    np.testing.assert_array_equal(edited[..., [0, 2, 3, 5]], x.numpy()[..., [0, 2, 3, 5]])
    where = np.zeros([4, 4], np.float32)
    where[:2] = 1.0  # top half only, value 3 (an insertion)
    inserted = nethook.ChannelEdit([2], value=3.0, where=where)(x).numpy()
    np.testing.assert_array_equal(inserted[:, :2, :, 2], 3.0)
    np.testing.assert_array_equal(inserted[:, 2:, :, 2], x.numpy()[:, 2:, :, 2])
    with pytest.raises(ValueError, match=r"channels must be in \[0, 6\)"):
        nethook.ChannelEdit([6])(x)


def test_edit_goes_between_head_and_tail_and_leaves_g_unchanged(generator):
    split = nethook.SplitGenerator(generator, "block1_relu")
    z = _z()
    before = generator(z, training=False).numpy()
    edit = nethook.ChannelEdit([0, 2])
    acts = split.activations(z)
    expected = split.tail(tf.constant(np.asarray(edit(acts))), training=False).numpy()
    edited = split.generate(z, edit=edit)
    np.testing.assert_allclose(edited, expected, atol=1e-6)
    assert np.abs(edited - before).max() > 0.05  # the edit changed the images
    np.testing.assert_array_equal(generator(z, training=False).numpy(), before)
    np.testing.assert_allclose(split.generate(z), before, atol=1e-5)  # no edit: G again


def test_unknown_layer_lists_the_valid_ones(generator):
    with pytest.raises(nethook.UnknownLayerError) as info:
        nethook.SplitGenerator(generator, "block9_relu")
    message = str(info.value)
    assert "unknown layer 'block9_relu'" in message
    for name in ("project_relu", "block1_relu", "output_tanh"):
        assert name in message
    d = Discriminator(image_size=16, channels=3, base_width=4)
    with pytest.raises(nethook.UnknownLayerError, match="block1_lrelu, .*block2_lrelu"):
        nethook.check_layer(d, "block2_relu")
