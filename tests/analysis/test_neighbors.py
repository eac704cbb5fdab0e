"""Nearest neighbours: exact, streaming, and a planted copy is found."""
import numpy as np

from dcgan_keras.analysis import neighbors


def test_finds_a_planted_exact_copy_and_matches_brute_force():
    rng = np.random.default_rng(0)
    train = rng.uniform(-1, 1, [237, 8, 8, 1]).astype(np.float32)
    samples = rng.uniform(-1, 1, [5, 8, 8, 1]).astype(np.float32)
    samples[2] = train[161]  # a memorised image
    batches = (train[i:i + 50] for i in range(0, len(train), 50))
    found = neighbors.nearest(samples, batches, k=3,
                              feature_fn=lambda x: x.reshape(len(x), -1)[:, :10])
    pixels = found["pixels"]
    assert found["pixels"]["searched"] == 237
    assert pixels["indices"][2, 0] == 161 and pixels["distances"][2, 0] < 1e-6
    np.testing.assert_array_equal(pixels["images"][2, 0], train[161])
    brute = np.linalg.norm(samples.reshape(5, 1, -1) - train.reshape(1, 237, -1), axis=2)
    np.testing.assert_array_equal(pixels["indices"], np.argsort(brute, axis=1)[:, :3])
    np.testing.assert_allclose(pixels["distances"], np.sort(brute, axis=1)[:, :3], atol=1e-6)
    np.testing.assert_array_equal(pixels["images"], train[pixels["indices"]])
    assert found["features"]["indices"][2, 0] == 161
