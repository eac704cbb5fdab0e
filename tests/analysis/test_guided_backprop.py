"""Guided backpropagation: no negative gradient through a ReLU; D's forward unchanged."""
import keras
import numpy as np
import tensorflow as tf

from dcgan_keras.analysis import guided_backprop, nethook
from dcgan_keras.models import Discriminator


def test_no_negative_gradient_passes_a_relu():
    x = tf.constant(np.random.default_rng(0).standard_normal([1000]), tf.float32)
    dy = tf.constant(np.random.default_rng(1).standard_normal([1000]), tf.float32)
    for activation in (tf.nn.relu, lambda v: tf.nn.leaky_relu(v, 0.2)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = guided_backprop.guided(activation)(x)
        grad = tape.gradient(y, x, output_gradients=dy).numpy()
        np.testing.assert_allclose(y, activation(x), atol=1e-7)
        assert (grad >= 0).all()
        passed = (x.numpy() > 0) & (dy.numpy() > 0)
        np.testing.assert_array_equal(grad[passed], dy.numpy()[passed])
        assert (grad[~passed] == 0).all()


def test_guided_model_has_d_forward_values_and_nonnegative_relu_gradients():
    d = Discriminator(image_size=16, channels=3, base_width=4)
    images = np.random.default_rng(2).uniform(-1, 1, [4, 16, 16, 3]).astype(np.float32)
    guided = guided_backprop.guided_model(d, "block2_lrelu")
    reader = nethook.layer_model(d, ["block2_lrelu"])
    expected = reader(images, training=False)
    assert guided(images, training=False).shape == expected.shape == (4, 4, 4, 8)
    np.testing.assert_allclose(guided(images, training=False), expected, atol=1e-5)
    # The gradient of a unit w.r.t. the first layer's activation (input of block2's conv)
    # is the conv transpose of positive gradients only past block2's guided LeakyReLU.
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = guided(x, training=False)[..., 1]
    assert np.abs(tape.gradient(out, x).numpy()).max() > 0
    assert not any(isinstance(l, keras.layers.Lambda) for l in d.layers)  # D untouched


def test_top_images_finds_the_planted_strongest_image():
    images = np.zeros([20, 4, 4, 1], np.float32)
    images[13, 1, 2] = 5.0
    images[7, 0, 0] = 3.0
    order, acts = guided_backprop.top_images(lambda x: x, images, [0], top_k=2, batch_size=6)
    assert order.tolist() == [[13, 7]]
    np.testing.assert_allclose(acts, [[5.0, 3.0]])
