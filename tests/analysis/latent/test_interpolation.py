"""Latent walks: endpoints, slerp's norm, and the sharpness number."""
import numpy as np
import pytest

from dcgan_keras.analysis.latent import interpolation


@pytest.mark.parametrize("mode", interpolation.MODES)
def test_walk_endpoints_equal_the_inputs(mode):
    rng = np.random.default_rng(0)
    z0, z1 = rng.standard_normal([2, 100]).astype(np.float32)
    path = interpolation.walk(z0, z1, 7, mode)
    assert path.shape == (7, 100)
    np.testing.assert_allclose(path[0], z0, atol=1e-6)
    np.testing.assert_allclose(path[-1], z1, atol=1e-6)


def test_slerp_keeps_the_norm_of_equal_norm_endpoints():
    rng = np.random.default_rng(1)
    z0, z1 = rng.standard_normal([2, 100])
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)
    norms = np.linalg.norm(interpolation.slerp(z0, z1, np.linspace(0, 1, 11)), axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(z0), rtol=1e-5)
    # the linear path cuts through the inside of the sphere
    assert np.linalg.norm(interpolation.lerp(z0, z1, [0.5])[0]) < 0.9 * np.linalg.norm(z0)


def test_sharpness_is_one_for_even_steps_and_large_for_one_jump():
    even = np.linspace(0, 1, 10)[:, None] * np.ones([1, 4])
    assert interpolation.sharpness(even) == pytest.approx(1.0)
    jump = np.zeros([10, 4])
    jump[5:] = 1.0  # all the change in one of 9 steps
    assert interpolation.sharpness(jump) == pytest.approx(9.0)


def test_random_walks_share_endpoints_across_modes():
    lin = interpolation.random_walks(3, 5, 8, seed=2, mode="linear")
    sph = interpolation.random_walks(3, 5, 8, seed=2, mode="spherical")
    np.testing.assert_allclose(lin[:, [0, -1]], sph[:, [0, -1]], atol=1e-5)
    with pytest.raises(ValueError, match="at least 2 steps"):
        interpolation.walk(lin[0, 0], lin[0, 1], 1)
