"""The networks against the paper's guidelines (Radford et al. 2016, section 3)."""
import keras
import numpy as np
import pytest

from dcgan_keras.models import Discriminator, Generator


def _output_shape(model, name):
    return tuple(model.get_layer(name).output.shape[1:])


def test_generator_64_has_the_paper_shapes():
    g = Generator(image_size=64, channels=3, z_dim=100, base_width=128)
    assert g.input_shape == (None, 100)
    assert _output_shape(g, "project_relu") == (4, 4, 1024)
    assert _output_shape(g, "block1_relu") == (8, 8, 512)
    assert _output_shape(g, "block2_relu") == (16, 16, 256)
    assert _output_shape(g, "block3_relu") == (32, 32, 128)
    assert g.output_shape == (None, 64, 64, 3)
    assert g.conv_layer_names == ["project_relu", "block1_relu", "block2_relu", "block3_relu"]


def test_discriminator_64_mirrors_the_generator():
    d = Discriminator(image_size=64, channels=3, base_width=128)
    shapes = [_output_shape(d, n) for n in d.feature_layer_names]
    assert shapes == [(32, 32, 128), (16, 16, 256), (8, 8, 512), (4, 4, 1024)]
    assert d.output_shape == (None, 1)


def _types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_no_pooling_no_hidden_dense_strided_convs():
    g, d = Generator(64, 3, base_width=16), Discriminator(64, 3, base_width=16)
    for model in (g, d):
        assert not any("Pool" in t for t in _types(model))
    # Only z's projection (no activation before the reshape) and D's logit are Dense.
    assert [l.name for l in g.layers if isinstance(l, keras.layers.Dense)] == ["project"]
    assert [l.name for l in d.layers if isinstance(l, keras.layers.Dense)] == ["logit"]
    for layer in g.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            assert layer.strides == (2, 2) and layer.kernel_size == (4, 4)
    for layer in d.layers:
        if isinstance(layer, keras.layers.Conv2D):
            assert layer.strides == (2, 2) and layer.kernel_size == (4, 4)


def test_batchnorm_everywhere_except_g_output_and_d_input():
    g, d = Generator(64, 3, base_width=16), Discriminator(64, 3, base_width=16)
    # G: every conv/projection is followed by BN, except the output deconv (then tanh).
    g_names = [l.name for l in g.layers]
    for name in ["project", "block1_deconv", "block2_deconv", "block3_deconv"]:
        nxt = g_names[g_names.index(name) + 1]
        nxt = g_names[g_names.index(nxt) + 1] if nxt == "project_reshape" else nxt
        assert isinstance(g.get_layer(nxt), keras.layers.BatchNormalization), name
    after_out = g.layers[g_names.index("output_deconv") + 1]
    assert isinstance(after_out, keras.layers.Activation)
    # D: no BN after the first conv, BN after every other conv.
    d_names = [l.name for l in d.layers]
    assert not isinstance(d.layers[d_names.index("block1_conv") + 1],
                          keras.layers.BatchNormalization)
    for i in (2, 3, 4):
        assert isinstance(d.layers[d_names.index(f"block{i}_conv") + 1],
                          keras.layers.BatchNormalization)
    bn = lambda m: sum(isinstance(l, keras.layers.BatchNormalization) for l in m.layers)
    assert bn(g) == 4 and bn(d) == 3


def test_activations():
    g, d = Generator(32, 1, base_width=8), Discriminator(32, 1, base_width=8)
    assert all(isinstance(g.get_layer(n), keras.layers.ReLU) for n in g.conv_layer_names)
    assert g.get_layer("output_tanh").activation.__name__ == "tanh"
    for name in d.feature_layer_names:
        layer = d.get_layer(name)
        assert isinstance(layer, keras.layers.LeakyReLU)
        assert layer.negative_slope == pytest.approx(0.2)
    z = np.random.default_rng(0).normal(size=(4, 100)).astype("float32") * 50
    images = g(z, training=True).numpy()
    assert images.min() >= -1 and images.max() <= 1


def test_init_statistics():
    g, d = Generator(64, 3, base_width=64), Discriminator(64, 3, base_width=64)
    for model in (g, d):
        for layer in model.layers:
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose,
                                  keras.layers.Dense)):
                w = layer.kernel.numpy()
                assert abs(w.mean()) < 2e-3, layer.name
                assert w.std() == pytest.approx(0.02, rel=0.05), layer.name
            if isinstance(layer, keras.layers.BatchNormalization):
                gamma = layer.gamma.numpy()
                assert gamma.mean() == pytest.approx(1.0, abs=0.01), layer.name
                assert 0.01 < gamma.std() < 0.03, layer.name
                np.testing.assert_array_equal(layer.beta.numpy(), 0.0)


@pytest.mark.parametrize("size,channels", [(16, 1), (32, 3), (128, 3)])
def test_other_resolutions(size, channels):
    g = Generator(size, channels, z_dim=8, base_width=4)
    d = Discriminator(size, channels, base_width=4)
    assert g.output_shape == (None, size, size, channels)
    assert _output_shape(d, d.feature_layer_names[-1])[:2] == (4, 4)
    assert d(g(np.zeros((2, 8), "float32"))).shape == (2, 1)


@pytest.mark.parametrize("kwargs,message", [
    (dict(image_size=48), "power of two"),
    (dict(image_size=8), "power of two"),
    (dict(image_size=512), "power of two"),
    (dict(channels=2), "channels must be 1"),
    (dict(z_dim=0), "z_dim"),
    (dict(base_width=0), "base_width"),
])
def test_bad_arguments_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Generator(**{"image_size": 32, **kwargs})


def test_config_round_trip():
    g = Generator(32, 1, z_dim=10, base_width=8, name="g")
    g2 = Generator.from_config(g.get_config())
    assert g2.get_config() == g.get_config()
    assert [l.name for l in g2.layers] == [l.name for l in g.layers]
    d = Discriminator(32, 1, base_width=8)
    assert Discriminator.from_config(d.get_config()).get_config() == d.get_config()


def test_no_biases_as_in_the_paper_code():
    """The paper's code (and the PyTorch peer) has no conv/dense biases: BatchNorm's beta
    is the only offset. Trainable weights are kernels, gammas and betas only."""
    g, d = Generator(32, 1, base_width=8), Discriminator(32, 1, base_width=8)
    for model in (g, d):
        names = sorted({w.path.split("/")[-1] for w in model.trainable_weights})
        assert names == ["beta", "gamma", "kernel"], (model.name, names)
    # G: 4 kernels, 3 BNs; D: 4 kernels (3 convs + logit), 2 BNs.
    assert len(g.trainable_weights) == 4 + 2 * 3
    assert len(d.trainable_weights) == 4 + 2 * 2
