"""The paper's D features: every conv block, max-pooled to 4x4, flattened, concatenated."""
import keras
import numpy as np
import pytest

from dcgan_keras.models import features as features_lib
from dcgan_keras.exporters import saved_model
from dcgan_keras.models import Discriminator


def _perturbed_discriminator(image_size=32, channels=3, base_width=8, seed=0):
    """A D whose BatchNorm moving statistics are far from (0, 1), so that inference mode
    (moving statistics) and training mode (batch statistics) differ visibly."""
    d = Discriminator(image_size=image_size, channels=channels, base_width=base_width)
    rng = np.random.default_rng(seed)
    for v in d.weights:
        if v.path.endswith("moving_mean"):
            v.assign(rng.normal(0, 0.05, v.shape).astype(np.float32))
        elif v.path.endswith("moving_variance"):
            v.assign(rng.uniform(0.01, 0.1, v.shape).astype(np.float32))
    return d


def _numpy_reference(d, images, grid=4):
    """Straight from the paper's words, in NumPy, on activations read by layer name."""
    names = d.feature_layer_names
    acts = keras.Model(d.input, [d.get_layer(n).output for n in names])(images, training=False)
    parts = []
    for a in acts:
        a = np.asarray(a)
        b, h, w, c = a.shape
        k = h // grid
        pooled = a.reshape(b, grid, k, grid, k, c).max(axis=(2, 4))  # [b, 4, 4, c]
        parts.append(pooled.reshape(b, -1))
    return np.concatenate(parts, axis=1)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(-1, 1, (6, 32, 32, 3)).astype(np.float32)


def test_feature_size():
    assert features_lib.feature_size(32, 64) == 16 * (64 + 128 + 256) == 7168
    assert features_lib.feature_size(64, 128) == 16 * (128 + 256 + 512 + 1024) == 30720
    assert features_lib.feature_size(16, 8) == 16 * (8 + 16)


def test_features_match_the_numpy_reference(images):
    d = _perturbed_discriminator()
    assert d.feature_layer_names == ["block1_lrelu", "block2_lrelu", "block3_lrelu"]
    got = features_lib.feature_model(d)(images, training=False).numpy()
    assert got.shape == (6, features_lib.feature_size(32, 8)) and got.dtype == np.float32
    np.testing.assert_allclose(got, _numpy_reference(d, images), atol=1e-6, rtol=0)
    # Highest resolution first: the first 16 * 8 entries are block1's pooled maps.
    block1 = keras.Model(d.input, d.get_layer("block1_lrelu").output)(images).numpy()
    np.testing.assert_allclose(got[:, :128].reshape(6, 4, 4, 8),
                               block1.reshape(6, 4, 4, 4, 4, 8).max(axis=(2, 4)), atol=1e-6)


def test_features_use_inference_mode(images):
    d = _perturbed_discriminator()
    fn = features_lib.keras_feature_fn(d, batch_size=4)
    all_at_once = fn(images)
    # Moving statistics: an image's features do not depend on its batch.
    np.testing.assert_allclose(fn(images[:1]), all_at_once[:1], atol=1e-5)
    training_mode = features_lib.feature_model(d)(images, training=True).numpy()
    assert np.abs(training_mode - all_at_once).max() > 0.1


def test_grid_must_divide_four():
    with pytest.raises(ValueError, match="grid must divide 4"):
        features_lib.feature_model(Discriminator(16, 1, 8), grid=3)


def test_random_discriminator_is_seeded_and_uses_the_same_code(images):
    a = features_lib.random_discriminator_feature_fn(32, 3, 8, seed=3)(images)
    b = features_lib.random_discriminator_feature_fn(32, 3, 8, seed=3)(images)
    c = features_lib.random_discriminator_feature_fn(32, 3, 8, seed=4)(images)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (6, features_lib.feature_size(32, 8)) and not np.allclose(a, c)


def test_saved_model_feature_fn_equals_keras(images, tmp_path):
    d = _perturbed_discriminator()
    saved_model.export_discriminator(d, str(tmp_path / "discriminator"))
    fn, dim = features_lib.saved_model_feature_fn(str(tmp_path), batch_size=4)
    assert dim == features_lib.feature_size(32, 8)
    np.testing.assert_allclose(fn(images), _numpy_reference(d, images), atol=1e-5, rtol=0)
    with pytest.raises(FileNotFoundError, match="no discriminator SavedModel"):
        features_lib.saved_model_feature_fn(str(tmp_path / "missing"))


def test_reinitialize_draws_the_dcgan_init_reproducibly():
    a = features_lib.reinitialize(Discriminator(32, 3, 64), seed=5)
    b = features_lib.reinitialize(Discriminator(32, 3, 64), seed=5)
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    kernel = a.get_layer("block2_conv").kernel.numpy()
    assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002
    gamma = a.get_layer("block2_bn").gamma.numpy()
    assert abs(gamma.mean() - 1.0) < 0.01 and 0.01 < gamma.std() < 0.03
    np.testing.assert_array_equal(a.get_layer("block2_bn").moving_variance.numpy(), 1.0)
