"""The SavedModels, loaded in a fresh process without dcgan_keras, match the Keras nets."""
import numpy as np
import pytest
import tensorflow as tf

from dcgan_keras.utils.images import to_uint8
from dcgan_keras.models import features as features_lib
from dcgan_keras.exporters import sampling, saved_model

SAVED_MODEL_ATOL = 1e-5


def test_loaded_without_dcgan_keras(fresh):
    _, _, modules = fresh
    assert modules == []


def test_generator_signatures_match_keras(fresh, models, inputs):
    out, _, _ = fresh
    g = models[0]
    assert sorted(out["g_signatures"]) == sorted(saved_model.GENERATOR_SIGNATURES)
    expected = g(inputs["z"], training=False).numpy()
    assert out["g_float"].dtype == np.float32 and out["g_float"].shape == (5, 16, 16, 1)
    np.testing.assert_allclose(out["g_float"], expected, atol=SAVED_MODEL_ATOL, rtol=0)
    assert expected.std() > 0.3  # the comparison is not between near-constant images
    assert out["g_uint8"].dtype == np.uint8
    diff = np.abs(out["g_uint8"].astype(int) - to_uint8(expected).numpy().astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99  # only rounding ties may differ


def test_sample_signature_is_a_function_of_the_seed(fresh, models):
    out, _, _ = fresh
    np.testing.assert_array_equal(out["s4_3_images"], out["s4_3b_images"])
    assert out["s4_3_images"].shape == (4, 16, 16, 1) and out["s4_3_images"].dtype == np.uint8
    # A longer draw starts with the shorter one.
    np.testing.assert_array_equal(out["s6_3_images"][:4], out["s4_3_images"])
    assert not np.array_equal(out["s4_4_images"], out["s4_3_images"])
    # The noise is sampling.latents, so the sample binary reproduces the signature.
    np.testing.assert_allclose(out["s4_3_z"], sampling.latents(4, 3, 8, "uniform").numpy(),
                               atol=0)
    # and it draws from G's prior, the paper's U(-1, 1) (seed (3, 0)), as the metadata says
    np.testing.assert_array_equal(out["s4_3_z"], tf.random.stateless_uniform(
        [4, 8], seed=[3, 0], minval=-1.0, maxval=1.0).numpy())
    expected = to_uint8(models[0](out["s4_3_z"], training=False)).numpy().astype(int)
    assert np.abs(out["s4_3_images"].astype(int) - expected).max() <= 1


def test_discriminator_signatures_match_keras(fresh, models, inputs):
    out, _, _ = fresh
    d = models[1]
    assert sorted(out["d_signatures"]) == sorted(saved_model.DISCRIMINATOR_SIGNATURES)
    expected = features_lib.feature_model(d)(inputs["images"], training=False).numpy()
    assert out["d_features"].shape == (5, features_lib.feature_size(16, 8)) == (5, 16 * 24)
    np.testing.assert_allclose(out["d_features"], expected, atol=SAVED_MODEL_ATOL, rtol=0)
    logits = d(inputs["images"], training=False).numpy()
    np.testing.assert_allclose(out["d_logits"], logits, atol=SAVED_MODEL_ATOL, rtol=0)
    np.testing.assert_allclose(out["d_probability"], 1 / (1 + np.exp(-logits)),
                               atol=SAVED_MODEL_ATOL, rtol=0)


@pytest.mark.parametrize("case, expected", [
    ("g_shape", "z must be float32 [batch, 8], got shape] [2 9]"),
    ("g_rank", "z must be float32 [batch, 8], got shape] [8]"),
    ("g_dtype", "expected to be a float tensor but is a double tensor"),
    ("sample_dtype", "expected to be a int32 tensor but is a float tensor"),
    ("sample_negative", "num must be >= 0"),
    ("d_shape", "images must be float32 [batch, 16, 16, 1], got shape] [2 32 32 1]"),
    ("d_channels", "images must be float32 [batch, 16, 16, 1], got shape] [5 16 16 3]"),
])
def test_wrong_inputs_are_refused_naming_the_expected_ones(fresh, case, expected):
    _, errors, _ = fresh
    assert errors[case] is not None, f"{case} was accepted"
    assert expected in errors[case], errors[case]


def test_check_shape_passes_good_inputs_through():
    x = tf.ones([3, 4, 2])
    np.testing.assert_array_equal(saved_model.check_shape(x, [4, 2], "x"), x)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"x must be float32 \[batch, 4, 2\]"):
        saved_model.check_shape(tf.ones([3, 2, 4]), [4, 2], "x")
