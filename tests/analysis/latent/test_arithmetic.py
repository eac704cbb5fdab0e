"""Vector arithmetic on z: A - A + C is C, groups are checked, the neighbourhood is +-0.25."""
import numpy as np
import pytest
from testutil import lively

from dcgan_keras.analysis import outputs
from dcgan_keras.analysis.latent import arithmetic
from dcgan_keras.models import Generator


def test_a_minus_a_plus_c_gives_c_image():
    g = lively(Generator(image_size=16, channels=1, z_dim=8, base_width=4))
    z = np.random.default_rng(0).standard_normal([9, 8]).astype(np.float32)
    a, c = arithmetic.concept_vectors(z, [[0, 1, 2], [6, 7, 8]])
    np.testing.assert_allclose(a, z[:3].mean(0), atol=1e-6)
    generate = outputs.generator_fn(g)
    result, expected = generate(np.stack([arithmetic.expression(a, a, c), c]))
    np.testing.assert_allclose(result, expected, atol=1e-6)
    b = arithmetic.concept_vectors(z, [[3, 4, 5]])[0]
    assert np.abs(generate(arithmetic.expression(a, b, c)[None])[0] - expected).max() > 0.05


def test_groups_parse_and_indices_are_checked():
    assert arithmetic.parse_groups("0,1,2;3,4;5") == [[0, 1, 2], [3, 4], [5]]
    with pytest.raises(ValueError, match="sample indices"):
        arithmetic.parse_groups("0,a;1")
    with pytest.raises(IndexError, match=r"out of range: the sheet has 9 samples \(0..8\)"):
        arithmetic.concept_vectors(np.zeros([9, 4]), [[0, 1], [9]])


def test_neighbourhood_and_attribute_path():
    z = np.arange(5, dtype=np.float32)
    near = arithmetic.neighbourhood(z, num=9, seed=3)
    assert near.shape == (9, 5)
    np.testing.assert_array_equal(near[0], z)
    assert np.abs(near[1:] - z).max() <= arithmetic.NOISE_SCALE
    assert np.abs(near[1:] - z).max() > 0.1
    path = arithmetic.attribute_path(z, np.ones(5), [-1.0, 0.0, 2.0])
    np.testing.assert_allclose(path, [z - 1, z, z + 2])
